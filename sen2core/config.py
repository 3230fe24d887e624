"""Configuration of the processor, passed in explicitly (never read at import time).

:class:`SceneClassificationConfig` holds every threshold of the scene classification
(SCL). Its defaults are Sen2Cor 2.8's: the values of ``L2A_CAL_SC_GIPP.xml`` for the
thresholds Sen2Cor reads from that file, and the constants hard-coded in Sen2Cor's
``L2A_SceneClass.py`` for the others (all named here so that they can be changed).
The few options that go beyond Sen2Cor (cloud buffer, bright-surface and thin-cloud
fixes, per-pixel view parallax in the shadow projection) are documented where they
are declared.

A configuration is built from the defaults, from Sen2Cor's own files
(:func:`sen2core.io.read.gipp.scene_classification_from_gipp`: ``L2A_CAL_SC_GIPP.xml`` for thresholds,
the user ``L2A_GIPP.xml`` for the scene-classification switches) or from the
project's TOML/JSON file (:meth:`SceneClassificationConfig.from_file`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sen2core.errors import ConfigurationError, SettingRangeError
from sen2core.settings import Length, OddSize, Ordered, Range, Rule, check_settings

__all__ = [
    "SCENE_CLASSIFICATION_RANGES",
    "SCENE_CLASSIFICATION_RULES",
    "SC_GIPP_ROOT",
    "SC_GIPP_TAGS",
    "USER_GIPP_ROOT",
    "SceneClassificationConfig",
]

SC_GIPP_ROOT = "Level-2A_CAL_SC_Ground_Image_Processing_Parameter"
"""Root element of Sen2Cor's ``L2A_CAL_SC_GIPP.xml``."""
USER_GIPP_ROOT = "Level-2A_Ground_Image_Processing_Parameter"
"""Root element of Sen2Cor's user ``L2A_GIPP.xml``."""

SC_GIPP_TAGS: Mapping[str, str] = {
    "T1_B02": "t1_b02",
    "T2_B02": "t2_b02",
    "T1_B04": "t1_b04",
    "T2_B04": "t2_b04",
    "T1_B8A": "t1_b8a",
    "T2_B8A": "t2_b8a",
    "T1_B10": "t1_b10",
    "T2_B10": "t2_b10",
    "T1_B12": "t1_b12",
    "T_B02_B12": "t_b02_b12",
    "T_CLOUD_LP": "t_cloud_lp",
    "T_CLOUD_MP": "t_cloud_mp",
    "T_CLOUD_HP": "t_cloud_hp",
    "T1_NDSI_CLD": "t1_ndsi_cld",
    "T2_NDSI_CLD": "t2_ndsi_cld",
    "T1_NDSI_SNW": "t1_ndsi_snw",
    "T2_NDSI_SNW": "t2_ndsi_snw",
    "T1_NDVI": "t1_ndvi",
    "T2_NDVI": "t2_ndvi",
    "T1_SNOW": "t1_snow",
    "T1_R_B02_B04": "t1_r_b02_b04",
    "T2_R_B02_B04": "t2_r_b02_b04",
    "T1_R_B8A_B03": "t1_r_b8a_b03",
    "T2_R_B8A_B03": "t2_r_b8a_b03",
    "T1_R_B8A_B11": "t1_r_b8a_b11",
    "T2_R_B8A_B11": "t2_r_b8a_b11",
    "T11_B02": "t11_b02",
    "T12_B02": "t12_b02",
    "T11_R_B02_B11": "t11_r_b02_b11",
    "T12_R_B02_B11": "t12_r_b02_b11",
    "T21_R_B02_B11": "t21_r_b02_b11",
    "T22_R_B02_B11": "t22_r_b02_b11",
    "T21_B12": "t21_b12",
    "T22_B12": "t22_b12",
}
"""``Scene_Classification/Thresholds`` elements of ``L2A_CAL_SC_GIPP.xml`` and the field each sets."""

# Valid range of every numeric setting (checked in __post_init__ by sen2core.settings.check_settings;
# documented in docs/settings.md). The bounds are physical (reflectance, indices in [-1, 1],
# angles) or keep a processing chunk's overlap within reason (distances).
_REFL = Range(0.0, 2.0, "TOA reflectance", "reflectance (clouds and snow reach about 1.6)")
_B10 = Range(0.0, 1.0, "TOA reflectance", "B10 reflectance")
_INDEX = Range(-1.0, 1.0, "", "normalised difference")
_RATIO = Range(0.0, 100.0, "", "band ratio", low_open=True)
_LINE = Range(-10.0, 10.0, "", "slope or intercept of a threshold line")
_SHARE = Range(0.0, 1.0, "", "confidence, probability or fraction")
_HILLSHADE = Range(0.0, 255.0, "", "8-bit hillshade")
_SIGMAS = Range(0.0, 10.0, "standard deviations", "statistics")
_REACH_M = Range(0.0, 10000.0, "m", "overlap between processing chunks")

SCENE_CLASSIFICATION_RANGES: Mapping[str, Range] = {
    "t1_b04": _REFL, "t2_b04": _REFL, "dark_b04_max": _REFL, "dark_b8a_min": _REFL, "dark_b8a_max": _REFL,
    "t1_ndsi_cld": _INDEX, "t2_ndsi_cld": _INDEX, "t1_ndsi_snw": _INDEX, "t2_ndsi_snw": _INDEX,
    "snow_b05_b8a_min": _RATIO, "t1_b8a": _REFL, "t2_b8a": _REFL, "t1_b02": _REFL, "t2_b02": _REFL,
    "t1_r_b02_b04": _RATIO, "t2_r_b02_b04": _RATIO, "t1_snow": _SHARE,
    "snow_ring_iterations": Range(0, 50, "dilations", "overlap between processing chunks", integer=True),
    "t1_b12": _REFL, "t1_ndvi": _INDEX, "t2_ndvi": _INDEX, "vegetation_b02_max": _REFL,
    "t1_r_b8a_b03": _RATIO, "t2_r_b8a_b03": _RATIO,
    "t11_b02": _LINE, "t12_b02": _LINE, "soil_b02_min": _REFL, "soil_b02_max": _REFL,
    "t11_r_b02_b11": _RATIO, "t12_r_b02_b11": _RATIO, "t21_r_b02_b11": _RATIO, "t22_r_b02_b11": _RATIO,
    "t21_b12": _LINE, "t22_b12": _LINE, "water_b12_min": _REFL, "water_b12_max": _REFL, "water_b02_max": _REFL,
    "water_b02_b04_diff": Range(-1.0, 1.0, "TOA reflectance", "difference of reflectances"),
    "rock_b02_slope": _LINE, "rock_b02_intercept": _LINE, "rock_b02_min": _REFL, "rock_b02_max": _REFL,
    "t1_r_b8a_b11": _RATIO, "t2_r_b8a_b11": _RATIO, "rock_b02_b11_factor": _RATIO,
    "t1_r_b04_b11": _RATIO, "t2_r_b04_b11": _RATIO,
    "t_cloud_lp": _SHARE, "t_cloud_mp": _SHARE, "t_cloud_hp": _SHARE, "t1_b10": _B10, "t2_b10": _B10,
    "cirrus_b02_max": _REFL,
    "cirrus_leakage_quantile": Range(0.0, 1.0, "", "quantile", low_open=True, high_open=True),
    "cirrus_leakage_min_pixels": Range(0, 121_000_000, "pixels", "pixels of a tile at 10 m", integer=True),
    "cirrus_dem_max_m": Range(-500.0, 9000.0, "m", "elevations on Earth (as the DEM is clipped)"),
    "t_b02_b12": _REFL, "shadow_reference": _REFL, "shadow_water_ratio": _RATIO, "shadow_cloud_cmc": _SHARE,
    "shadow_threshold": _SHARE,
    "shadow_sigma_px": Range(0.0, 50.0, "pixels", "overlap between processing chunks"),
    "cloud_height_min_m": Range(0.0, 20000.0, "m", "the troposphere"),
    "cloud_height_max_m": Range(0.0, 20000.0, "m", "the troposphere", low_open=True),
    "shadow_grid_m": Range(0.0, 1000.0, "m", "projection grid", low_open=True),
    "shadow_max_sun_zenith_deg": Range(0.0, 89.0, "degrees", "shadow length (overlap)", high_open=True),
    "shadow_max_view_zenith_deg": Range(0.0, 60.0, "degrees", "overlap; the MSI sees 11.5 degrees off nadir",
                                        high_open=True),
    "shadow_match_grid_m": Range(0.0, 3000.0, "m", "matching grid", low_open=True),
    "shadow_match_window_px": Range(1, 101, "cells", "matching neighbourhood (odd)", integer=True),
    "shadow_match_min_score": _SHARE, "shadow_match_plateau": _SHARE, "shadow_match_min_observed": _SHARE,
    "shadow_match_dilation_px": Range(0, 20, "cells", "overlap between processing chunks", integer=True),
    "recovery_unclassified_b8a_max": _REFL, "recovery_soil_ratio": _RATIO,
    "hillshade_water_max": _HILLSHADE, "slope_water_min_deg": Range(0.0, 90.0, "degrees", "slope"),
    "hillshade_shadow_max": _HILLSHADE, "hillshade_snow_max": _HILLSHADE,
    "terrain_shadow_max_distance_m": _REACH_M,
    "land_min_fraction": _SHARE, "land_min_area_km2": Range(0.0, 12100.0, "km2", "a tile's area"),
    "hpc_high_fraction": _SHARE, "hpc_low_fraction": _SHARE, "r7_b10_floor": _B10, "hpc_blob_m": _REACH_M,
    "r8_soil_sigma": _SIGMAS, "r8_land_floor": _B10, "r8_water_sigma": _SIGMAS, "r8_water_floor": _B10,
    "r9_ring_cloud_max": _SHARE, "r9_max_blob_m": _REACH_M,
    "saturated_reflectance": Range(1.0, 6.6, "TOA reflectance", "DN 65535 is 6.4535 or 6.5535"),
    "median_filter": Range(0, 15, "pixels", "0 (off) or an odd size; overlap between chunks", integer=True),
    "cloud_buffer_m": Range(0.0, 5000.0, "m", "overlap between processing chunks"),
    "cloud_buffer_classes": Range(0, 11, "SCL code", "Sen2Cor's classes", integer=True),
    "bright_surface_min_redness": _INDEX,
    "thin_cloud_probability": Range(0.0, 1.0, "", "probability", low_open=True, high_open=True),
    "background_window_m": Range(0.0, 2000.0, "m", "overlap between processing chunks"),
    "cloud_edge_growth_m": Range(0.0, 400.0, "m", "overlap between processing chunks"),
    "cloud_edge_min_brightening": _REFL,
    "relative_shadow_darkness": Range(0.0, 1.0, "", "share of the background", low_open=True, high_open=True),
}  # fmt: skip
"""Valid range of every numeric setting of :class:`SceneClassificationConfig` (booleans: true or false)."""

SCENE_CLASSIFICATION_RULES: tuple[Rule, ...] = (
    # Pairs (a, b) used as ramp(x, a, b): ramps need a < b.
    Ordered(("t1_b02", "t2_b02")),
    Ordered(("t1_b04", "t2_b04")),
    Ordered(("t1_b8a", "t2_b8a")),
    Ordered(("t1_b10", "t2_b10")),
    Ordered(("t1_ndsi_cld", "t2_ndsi_cld")),
    Ordered(("t1_ndsi_snw", "t2_ndsi_snw")),
    Ordered(("t1_ndvi", "t2_ndvi")),
    Ordered(("t1_r_b02_b04", "t2_r_b02_b04")),
    Ordered(("t1_r_b8a_b03", "t2_r_b8a_b03")),
    Ordered(("t1_r_b8a_b11", "t2_r_b8a_b11")),
    Ordered(("t11_r_b02_b11", "t12_r_b02_b11")),
    Ordered(("t21_r_b02_b11", "t22_r_b02_b11")),
    Ordered(("t1_r_b04_b11", "t2_r_b04_b11")),
    Ordered(("cloud_height_min_m", "cloud_height_max_m")),
    Ordered(("t_cloud_lp", "t_cloud_mp", "t_cloud_hp"), strict=False),
    OddSize("median_filter", zero_is_off=True),
    Length("shadow_reference", 6, "B2 B3 B4 B8A B11 B12"),
    OddSize("shadow_match_window_px"),
)
"""Conditions on the form of settings and between settings of :class:`SceneClassificationConfig`
(checked after :data:`SCENE_CLASSIFICATION_RANGES`, in this order)."""


@dataclass(frozen=True)
class SceneClassificationConfig:
    """Every threshold and switch of the scene classification.

    Field names are the lower-case GIPP names where Sen2Cor reads the value from
    ``L2A_CAL_SC_GIPP.xml`` (``T1_B04`` is :attr:`t1_b04`); the constants Sen2Cor
    hard-codes have descriptive names. Step numbers (``step 1.1`` ...) number the tests in the order of
    Sen2Cor 2.8's ``L2A_SceneClass.py``, whose method the Sen2Cor Level-2A Algorithm Theoretical Basis
    Document (ESA, S2-PDGS-MPC-ATBD-L2A) describes.
    Reflectances are top-of-atmosphere, in [0, 1].
    """

    # -- step 1.1: brightness on B4 (cloud confidence CMC = ramp(B4, t1, t2)^2)
    t1_b04: float = 0.06
    """B4 below which a pixel is not cloud (CMC = 0)."""
    t2_b04: float = 0.25
    """B4 above which the brightness test gives full cloud confidence."""
    dark_b04_max: float = 0.1
    """Dark features (class 2): B4 below this ..."""
    dark_b8a_min: float = 0.04
    """... and B8A above this ..."""
    dark_b8a_max: float = 0.15
    """... and below this."""
    # -- step 1.2: NDSI cloud filter
    t1_ndsi_cld: float = -0.24
    """NDSI at which CMC is multiplied by 0."""
    t2_ndsi_cld: float = -0.16
    """NDSI from which CMC is kept unchanged."""
    # -- step 2: snow chain (snow confidence CMS)
    t1_ndsi_snw: float = 0.35
    """NDSI at which snow confidence starts."""
    t2_ndsi_snw: float = 0.50
    """NDSI of full snow confidence."""
    snow_b05_b8a_min: float = 0.85
    """Step 2.1bis: B5/B8A below this is not snow (snow is flat from 705 to 865 nm)."""
    t1_b8a: float = 0.15
    """Step 2.2: B8A ramp start."""
    t2_b8a: float = 0.35
    """Step 2.2: B8A ramp end."""
    t1_b02: float = 0.18
    """Step 2.3: B2 ramp start."""
    t2_b02: float = 0.22
    """Step 2.3: B2 ramp end."""
    t1_r_b02_b04: float = 0.85
    """Step 2.4: B2/B4 ramp start."""
    t2_r_b02_b04: float = 0.95
    """Step 2.4: B2/B4 ramp end."""
    t1_snow: float = 0.12
    """Step 2.5: snow confidence above which a pixel is SNOW_ICE."""
    snow_ring_iterations: int = 3
    """Step 2.5: 4-connected dilations defining the ring around snow."""
    t1_b12: float = 0.25
    """Step 2.5: in the snow ring, B12 below this clears the cloud confidence."""
    # -- step 3: NDVI
    t1_ndvi: float = 0.36
    """NDVI ramp start."""
    t2_ndvi: float = 0.42
    """NDVI from which a pixel is VEGETATION (if also B2 < ``vegetation_b02_max``)."""
    vegetation_b02_max: float = 0.15
    """Step 3: vegetation is dark in the blue."""
    # -- step 4 (disabled in Sen2Cor 2.8) and recovery R1: B8A/B3
    t1_r_b8a_b03: float = 1.50
    """B8A/B3 ramp start (step 4, not applied, as in 2.8)."""
    t2_r_b8a_b03: float = 2.50
    """R1: B8A/B3 above this on a dark or unclassified pixel is VEGETATION."""
    # -- step 5.1: soils, R = B2/B11
    t11_b02: float = -0.40
    """Slope of the B2 threshold line against B2/B11."""
    t12_b02: float = 0.46
    """Intercept of the B2 threshold line against B2/B11."""
    soil_b02_min: float = 0.15
    """Lower clip of the B2 threshold line."""
    soil_b02_max: float = 0.32
    """Upper clip of the B2 threshold line."""
    t11_r_b02_b11: float = 0.70
    """B2/B11 below which (and B2 under the line) a pixel is NOT_VEGETATED."""
    t12_r_b02_b11: float = 1.0
    """End of the B2/B11 ramp that lowers CMC."""
    # -- step 5.2: water
    t21_r_b02_b11: float = 2.00
    """B2/B11 from which CMC is lowered towards water."""
    t22_r_b02_b11: float = 4.00
    """B2/B11 above which (with the other conditions) a pixel is WATER."""
    t21_b12: float = 0.1
    """Slope of the B12 threshold line against B2/B11."""
    t22_b12: float = -0.09
    """Intercept of the B12 threshold line against B2/B11."""
    water_b12_min: float = 0.07
    """Lower clip of the B12 threshold line."""
    water_b12_max: float = 0.21
    """Upper clip of the B12 threshold line."""
    water_b02_max: float = 0.2
    """Water is darker than this in B2."""
    water_b02_b04_diff: float = 0.034
    """Second water test: B2 - B4 above this (with B8A < B4 and B2 < ``water_b02_max``)."""
    # -- step 6: rocks and sand, R8 = B8A/B11
    rock_b02_slope: float = -0.25
    """Slope of the B2 threshold line against B8A/B11."""
    rock_b02_intercept: float = 0.475
    """Intercept of the B2 threshold line against B8A/B11."""
    rock_b02_min: float = 0.16
    """Lower clip of that line."""
    rock_b02_max: float = 0.35
    """Upper clip of that line."""
    t1_r_b8a_b11: float = 0.90
    """B8A/B11 below which (with the B2 tests) a pixel is NOT_VEGETATED."""
    t2_r_b8a_b11: float = 1.10
    """End of the B8A/B11 ramp that lowers CMC."""
    rock_b02_b11_factor: float = 0.8
    """Rocks and sand: B2 < factor * B11."""
    # -- step 6bis: B4/B11
    t1_r_b04_b11: float = 3.0
    """B4/B11 ramp start."""
    t2_r_b04_b11: float = 6.0
    """B4/B11 from which CMC = 0."""
    # -- step 7: cloud classes and cirrus
    t_cloud_lp: float = 0.0
    """CMC above which an unclassified pixel is low-probability cloud (code 7)."""
    t_cloud_mp: float = 0.20
    """CMC from which a pixel is CLOUD_MEDIUM_PROBABILITY."""
    t_cloud_hp: float = 0.80
    """CMC from which a pixel is CLOUD_HIGH_PROBABILITY."""
    t1_b10: float = 0.012
    """B10 above which a pixel may be THIN_CIRRUS."""
    t2_b10: float = 0.035
    """B10 from which a pixel is thick cirrus (CLOUD_MEDIUM_PROBABILITY)."""
    cirrus_b02_max: float = 0.50
    """Thin cirrus is darker than this in B2."""
    cirrus_leakage_correction: bool = True
    """Beyond Sen2Cor: subtract from B10 what bright ground leaks into it through dry
    air (``B10 - k * B11``, ``k`` a low quantile of B10/B11 over bright land of the
    scene) before the cirrus tests. Off: raw B10, as Sen2Cor."""
    cirrus_leakage_quantile: float = 0.05
    """Quantile of B10/B11 over bright land taken as the ground's leakage."""
    cirrus_leakage_min_pixels: int = 1000
    """Fewer bright land pixels than this: no leakage correction."""
    cirrus_dem_max_m: float = 1500.0
    """With a DEM: thin cirrus only below this elevation (high ground shows in B10)."""
    # -- cloud shadows
    t_b02_b12: float = 0.018
    """Radiometric shadow test: mean absolute distance to the shadow spectrum below this."""
    shadow_reference: tuple[float, float, float, float, float, float] = (0.12, 0.08, 0.06, 0.10, 0.0545, 0.0255)
    """Reference TOA spectrum of a cloud shadow in B2, B3, B4, B8A, B11, B12 (Sen2Cor's RV_MEAN)."""
    shadow_water_ratio: float = 6.0
    """B2/B11 above this is water, never shadow."""
    shadow_cloud_cmc: float = 0.33
    """Cloud mask for the projection: median3(CMC) above this."""
    shadow_threshold: float = 0.05
    """CLOUD_SHADOWS where radiometric x geometric shadow exceeds this."""
    shadow_sigma_px: float = 3.0
    """Gaussian smoothing (pixels of the classification grid) of the projected shadow."""
    cloud_height_min_m: float = 300.0
    """Lowest cloud height (m) of the shadow projection. Sen2Cor's height distribution
    reaches its class-3 threshold (0.05) at 290 m (:meth:`sen2cor` uses 290 m)."""
    cloud_height_max_m: float = 12000.0
    """Highest cloud height (m) of the shadow projection: the mid-latitude tropopause.
    Sen2Cor's distribution stops at 5150 m (used by :meth:`sen2cor`), which misses
    the shadows of mid- and high-level clouds."""
    shadow_grid_m: float = 60.0
    """Pixel size (m) on which the cloud mask is projected; a multiple of the
    classification resolution. Coarser is faster and needs a smaller overlap between
    chunks; the projection is then upsampled and combined with the radiometric test
    at full resolution."""
    shadow_max_sun_zenith_deg: float = 70.0
    """Sun zenith clip of the projection (Sen2Cor clips to 70 degrees); also bounds
    the overlap between chunks."""
    shadow_max_view_zenith_deg: float = 12.0
    """View zenith bound used for the overlap between chunks (Sentinel-2 sees at most
    about 11.5 degrees off nadir)."""
    shadow_height_matching: bool = True
    """Beyond Sen2Cor: find the cloud heights by matching the projected clouds with dark
    pixels (:func:`sen2core.kernels.shadow.match_shadow_zone`), and take as cloud
    shadow every pixel of the matched zone that is dark in the NIR and SWIR (B8A,
    B11, B12 below the reference shadow spectrum). Sen2Cor's test needs all six bands
    dark and excludes B2/B11 > 6 as water, which rejects most real shadows (the sky
    light that lights a shadow is blue; shadows are black in the SWIR); it stays
    as a second test."""
    shadow_match_grid_m: float = 300.0
    """Cell size (m) of the height matching; a multiple of the classification resolution."""
    shadow_match_window_px: int = 15
    """Neighbourhood (cells of the matching grid, odd) whose clouds are matched together."""
    shadow_match_min_score: float = 0.3
    """A neighbourhood whose best match leaves less than this fraction of its observable
    shadow dark has no matched height."""
    shadow_match_plateau: float = 0.9
    """Heights scoring at least this fraction of the best one are accepted."""
    shadow_match_min_observed: float = 0.1
    """Shifts that leave less than this fraction of the clouds' shadow observable (not
    under a cloud) are not scored."""
    shadow_match_dilation_px: int = 1
    """Dilation (cells of the matching grid) of the matched zone."""
    view_parallax: bool = True
    """Beyond Sen2Cor: shift the projection by the per-pixel view parallax of the cloud
    (the cloud appears displaced away from the satellite by h tan(view zenith))."""
    # -- recovery steps
    recovery_unclassified_b8a_max: float = 0.3
    """R2: an unclassified pixel recovered as water must be darker than this in B8A."""
    recovery_soil_ratio: float = 0.65
    """R6: dark pixels with B2/B11 below this are NOT_VEGETATED."""
    hillshade_water_max: float = 128.0
    """R4: water on slopes with hillshade below this is DARK_AREA."""
    slope_water_min_deg: float = 15.0
    """R4: ... and slope above this."""
    hillshade_shadow_max: float = 32.0
    """R4: cloud shadow with 0 < hillshade < this is DARK_AREA (terrain, not cloud)."""
    hillshade_snow_max: float = 128.0
    """R4: topographic shadow over snow below this hillshade is DARK_AREA."""
    terrain_shadow_max_distance_m: float = 5000.0
    """Cast-shadow ray length (m): terrain farther than this along the sun direction is
    ignored. Bounds the overlap between chunks."""
    land_min_fraction: float = 0.05
    """R7: land must cover at least this fraction of valid pixels ..."""
    land_min_area_km2: float = 121.0
    """R7: ... and at least this area."""
    hpc_high_fraction: float = 0.20
    """R7: above this fraction of high-probability cloud the B10 threshold comes from all of them."""
    hpc_low_fraction: float = 0.02
    """R7: below this fraction the B10 threshold is the land mean."""
    r7_b10_floor: float = 0.0015
    """R7: lowest B10 threshold."""
    hpc_blob_m: float = 300.0
    """R7: between the two fractions, only high-probability cloud inside blobs at least
    this wide (erosion by a square of this size) gives statistics."""
    r8_soil_sigma: float = 3.0
    """R8: thin cirrus on land above mean + this many standard deviations of B10 on bare soil ..."""
    r8_land_floor: float = 0.003
    """R8: ... and above this."""
    r8_water_sigma: float = 1.0
    """R8: thin cirrus on water above mean + this many standard deviations of B10 on water ..."""
    r8_water_floor: float = 0.002
    """R8: ... and above this."""
    r9_ring_cloud_max: float = 0.35
    """R9: a low/medium cloud blob on urban or bare land whose 1-pixel ring is at most
    this cloudy is NOT_VEGETATED."""
    r9_max_blob_m: float = 2000.0
    """R9: only blobs at most this long and wide are considered (bounds the overlap
    between chunks; larger bright surfaces are not recovered)."""
    # -- no data, saturation
    saturated_reflectance: float = 6.4
    """Reflectance from which a band is saturated: L1C codes saturation as DN 65535,
    i.e. 6.5535 (PB < 04.00) or 6.4535 (PB >= 04.00, offset -1000)."""
    # -- user L2A_GIPP.xml switches
    median_filter: int = 0
    """``Median_Filter`` of L2A_GIPP.xml: size of a median filter on the SCL (0 = off)."""
    handle_l1c_quality_mask: bool = True
    """``Handle_L1C_QLT_Mask``: pixels flagged in the L1C quality masks are
    SATURATED_OR_DEFECTIVE."""
    # -- beyond Sen2Cor
    cloud_buffer_m: float = 0.0
    """Dilation (m) of the cloud classes; buffered pixels become CLOUD_MEDIUM_PROBABILITY.
    0 = off (Sen2Cor 2.8 does not dilate)."""
    cloud_buffer_classes: tuple[int, ...] = (8, 9)
    """Classes that the buffer dilates (thin cirrus is left out: it is wide and thin)."""
    bright_surface_fix: bool = True
    """Beyond Sen2Cor: bright, warm-coloured surfaces (sand, rock, roofs) whose spectrum
    rises from blue to SWIR and that show no high-cloud signal in B10 are not cloud."""
    bright_surface_min_redness: float = 0.05
    """Bright-surface fix: (B4 - B2) / (B4 + B2) above this is a red surface, not a white
    cloud (at the top of the atmosphere Rayleigh scattering makes clouds bluish)."""
    thin_cloud_fix: bool = True
    """Beyond Sen2Cor: pixels left clear or unclassified whose calibrated cloud
    probability reaches ``thin_cloud_probability`` are CLOUD_MEDIUM_PROBABILITY."""
    thin_cloud_probability: float = 0.5
    """Calibrated probability from which the thin-cloud fix marks a pixel as cloud."""
    background_window_m: float = 1000.0
    """Edge growth and relative shadows: edge of the square (m) over which the local clear
    background is averaged (51 pixels at 20 m, 17 at 60 m: the nearest odd count)."""
    cloud_edge_growth_m: float = 40.0
    """Beyond Sen2Cor: grow the cloud classes 8/9 by up to this distance (2 pixels at 20 m, 1 at
    60 m) into dim pixels whose blue exceeds the local clear background's by
    ``cloud_edge_min_brightening`` and that are not redder than a cloud (B2 >= B4): the soft
    edges that thresholds on brightness miss. 0 = off. Grown pixels become
    CLOUD_MEDIUM_PROBABILITY."""
    cloud_edge_min_brightening: float = 0.02
    """Edge growth: TOA B2 above the local clear background's mean by at least this much."""
    relative_shadow: bool = True
    """Beyond Sen2Cor: in the geometric shadow zone (the clouds projected along the sun and view
    directions over the cloud heights), pixels darker than the local sunlit background in B8A
    and B11 by the factor ``relative_shadow_darkness`` are cloud shadow, grey or black; water
    (B8A below B4) is left out."""
    relative_shadow_darkness: float = 0.75
    """Relative shadows: B8A and B11 below this share of the local sunlit background's mean."""

    def __post_init__(self) -> None:
        check_settings(self, SCENE_CLASSIFICATION_RANGES, SCENE_CLASSIFICATION_RULES, "scene classification")

    def __dask_tokenize__(self) -> object:
        return ("sen2core.SceneClassificationConfig", dataclasses.astuple(self))

    # ------------------------------------------------------------------ builders

    @classmethod
    def sen2cor(cls, **overrides: Any) -> SceneClassificationConfig:
        """Sen2Cor 2.8 behaviour: every improvement off (no buffer, no bright-surface or
        thin-cloud fix, no view parallax, no height matching, Sen2Cor's 290-5150 m
        cloud heights, raw B10), with optional ``overrides``."""
        base: dict[str, Any] = {
            "bright_surface_fix": False,
            "thin_cloud_fix": False,
            "view_parallax": False,
            "cloud_buffer_m": 0.0,
            "shadow_height_matching": False,
            "cloud_height_min_m": 290.0,
            "cloud_height_max_m": 5150.0,
            "cirrus_leakage_correction": False,
            "cloud_edge_growth_m": 0.0,
            "relative_shadow": False,
        }
        base.update(overrides)
        return cls().replace(**base)

    def replace(self, **changes: Any) -> SceneClassificationConfig:
        """A copy with some fields changed (values are checked and converted).

        Raises
        ------
        ConfigurationError
            If a name is not a field or a value has the wrong type or is out of range.
        """
        return dataclasses.replace(self, **_coerce_fields(changes, source="replace()"))

    def updated_from(
        self, changes: Mapping[str, Any], *, source: str, labels: Mapping[str, str] | None = None
    ) -> SceneClassificationConfig:
        """A copy with ``changes`` read from the file ``source`` (values checked and converted).

        ``labels`` maps a field to the file's own name of the setting, for the messages.

        Raises
        ------
        ConfigurationError
            Unknown setting, wrong type or out of range, naming ``source`` and the setting.
        """
        return _replace_from(self, _coerce_fields(changes, source=source, labels=labels), source, labels)

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (tuples as lists), for JSON or TOML."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], base: SceneClassificationConfig | None = None
    ) -> SceneClassificationConfig:
        """Read the project's configuration file (TOML or JSON).

        Keys are field names. In TOML they may sit at the top level or in a
        ``[scene_classification]`` table; in JSON at the top level or under a
        ``"scene_classification"`` key. Fields not in the file keep the value of
        ``base`` (default: Sen2Cor 2.8 defaults).

        Raises
        ------
        ConfigurationError
            If the file cannot be read or parsed, has another suffix than ``.toml`` or
            ``.json``, or has an unknown key or a bad value.
        """
        p = Path(path)
        suffix = p.suffix.lower()
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"{p}: cannot read configuration: {exc}") from exc
        try:
            if suffix == ".toml":
                data: Any = tomllib.loads(raw.decode("utf-8"))
            elif suffix == ".json":
                data = json.loads(raw.decode("utf-8"))
            else:
                raise ConfigurationError(f"{p}: configuration must be .toml or .json, not {suffix or 'no suffix'}")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"{p}: cannot parse configuration: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigurationError(f"{p}: configuration must be a table/object")
        section = data.get("scene_classification", data)
        if not isinstance(section, dict):
            raise ConfigurationError(f"{p}: scene_classification must be a table/object")
        if section is not data:
            extra = set(data) - {"scene_classification"}
            if extra:
                raise ConfigurationError(f"{p}: unknown configuration section(s): {', '.join(sorted(extra))}")
        return _replace_from(base or cls(), _coerce_fields(section, source=str(p)), str(p))


# ---------------------------------------------------------------------- helpers

_FIELDS = {f.name: f for f in dataclasses.fields(SceneClassificationConfig)}


def _replace_from(config: SceneClassificationConfig, changes: dict[str, Any], source: str,
                  labels: Mapping[str, str] | None = None) -> SceneClassificationConfig:  # fmt: skip
    """``config`` with ``changes`` read from ``source``; errors name the file and the file's name of the setting."""
    try:
        return dataclasses.replace(config, **changes)
    except SettingRangeError as exc:
        raise exc.located(source, (labels or {}).get(exc.setting)) from None
    except ConfigurationError as exc:  # settings inconsistent with each other
        raise ConfigurationError(f"{source}: {exc}") from None


def _coerce_fields(values: Mapping[str, Any], *, source: str, labels: Mapping[str, str] | None = None
                   ) -> dict[str, Any]:  # fmt: skip
    """Check names and convert values to the field types."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        f = _FIELDS.get(name)
        if f is None:
            raise ConfigurationError(f"{source}: unknown scene classification setting {name!r}")
        label = (labels or {}).get(name)
        out[name] = _coerce(f"{label} ({name})" if label else name, value, f.default, source)
    return out


class _WrongType(Exception):
    """A value that cannot be converted; its message says what was expected (``a number``)."""


def _to_bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
        return value.strip().upper() == "TRUE"
    raise _WrongType("a boolean")


def _to_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        raise _WrongType("an integer")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _WrongType("an integer") from None
    if not number.is_integer():
        raise _WrongType("an integer")
    return int(number)


def _to_float(value: Any, default: float) -> float:
    if isinstance(value, bool):
        raise _WrongType("a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _WrongType("a number") from None


def _to_tuple(value: Any, default: tuple[Any, ...]) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise _WrongType("a list")
    items = list(value)
    if default and isinstance(default[0], int):
        try:
            return tuple(_to_int(v, default[0]) for v in items)
        except _WrongType:
            raise _WrongType("a list of integers") from None
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise _WrongType("a list of numbers") from None


# How a value read from a file becomes a field's type, by the type of the field's default.
_CONVERTERS: Mapping[type, Callable[[Any, Any], Any]] = {
    bool: _to_bool, int: _to_int, float: _to_float, tuple: _to_tuple,
}  # fmt: skip


def _coerce(name: str, value: Any, default: Any, source: str) -> Any:
    """``value`` as the type of ``default``; ``name`` is how messages call the setting."""
    convert = _CONVERTERS.get(type(default))
    try:
        if convert is None:  # pragma: no cover - every field type has a converter
            raise _WrongType(type(default).__name__)
        return convert(value, default)
    except _WrongType as exc:
        raise ConfigurationError(f"{source}: {name} must be {exc}, got {value!r}") from None

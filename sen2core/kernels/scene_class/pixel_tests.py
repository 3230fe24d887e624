"""Pixel tests: steps 0 to 7 of Sen2Cor's scene classification, one function per step.

Each step sets the class of the pixels it recognises in the class map ``cm`` (internal
code ``NC`` = not yet classified) and adjusts the cloud confidence ``cmc``, in place;
a step only looks at the pixels the previous steps left unclassified. Pixel by pixel,
except the snow ring of step 2.5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from sen2core.kernels import morphology
from sen2core.kernels.scene_class.common import (
    F32,
    LOW,
    NC,
    REQUIRED_BANDS,
    SNC_WATER,
    U8,
    BoolArray,
    band_ratio,
    normalized_difference,
    prepare_bands,
    ramp,
)
from sen2core.kernels.scene_class.leakage import cirrus_signal
from sen2core.kernels.scene_class.legend import SCL
from sen2core.kernels.scene_class.parameters import ClassificationParameters


def classify_pixels(
    bands: Mapping[str, ArrayLike],
    config: ClassificationParameters,
    *,
    dem: ArrayLike | None = None,
    quality_mask: ArrayLike | None = None,
    snow_possible: bool | None = None,
    snow_condition: ArrayLike | None = None,
    snow_condition_mean: float | None = None,
    b10_leakage: float = 0.0,
) -> tuple[U8, F32, F32]:
    """Steps 0 to 7 of Sen2Cor: no data, saturation, cloud confidence, snow, soils, water, clouds, cirrus.

    Parameters
    ----------
    bands
        TOA reflectance per band (``REQUIRED_BANDS``), NaN = no data.
    config
        Thresholds.
    dem
        Elevation (m) on the same grid, or None: thin cirrus is then not limited to
        low ground.
    quality_mask
        True where the L1C quality masks flag the pixel as defective (used when
        ``config.handle_l1c_quality_mask``).
    snow_possible
        False when a snow climatology says the tile never has snow: the snow chain is
        skipped. None (no climatology) or True: it runs.
    snow_condition, snow_condition_mean
        ESA-CCI snow-condition map (percent, 254 = water) and the mean of its non-water
        pixels over the scene: where that mean is below 10 %, snow found on CCI water
        is taken for cloud.
    b10_leakage
        The scene's B10 leakage coefficient (:func:`leakage_from_histogram`): the cirrus
        tests use :func:`cirrus_signal` instead of raw B10.

    Returns
    -------
    (cm, cmc, cms)
        Class map with internal codes (``NC`` = not yet classified, 7 = low-probability
        cloud), cloud confidence and snow confidence (float32, 0..1).

    Notes
    -----
    Reach: ``config.snow_ring_iterations`` pixels (the snow ring of step 2.5).
    """
    b, valid = prepare_bands(bands)
    cm = mark_invalid(b, valid, config, quality_mask)
    cmc = brightness_confidence(b, cm, config)
    # Step 1.2: NDSI cloud filter -- SWIR much brighter than green is soil, not cloud.
    ndsi = normalized_difference(b["B03"], b["B11"])
    cmc *= ramp(ndsi, config.t1_ndsi_cld, config.t2_ndsi_cld)
    # Step 2: snow chain (skipped when a climatology excludes snow).
    cms = np.zeros(cm.shape, dtype=np.float32)
    if snow_possible is not False:
        cms = classify_snow(b, ndsi, cm, cmc, config, snow_condition, snow_condition_mean)
    classify_vegetation(b, cm, cmc, config)
    # Step 4 (B8A/B3 senescing vegetation) is disabled in Sen2Cor 2.8: not applied.
    r_b2_b11 = band_ratio(b["B02"], b["B11"])
    classify_soil(b, r_b2_b11, cm, cmc, config)
    classify_water(b, r_b2_b11, cm, cmc, config)
    classify_rocks(b, cm, cmc, config)
    classify_clouds(cm, cmc, config)
    classify_cirrus(b, valid, cm, cmc, config, dem, b10_leakage)
    cmc[~valid] = 0.0
    cms[~valid] = 0.0
    return cm, cmc.astype(np.float32), cms.astype(np.float32)


def mark_invalid(
    b: Mapping[str, F32], valid: BoolArray, config: ClassificationParameters, quality_mask: ArrayLike | None
) -> U8:
    """Step 0: a new class map, NO_DATA and SATURATED_OR_DEFECTIVE set, every other pixel ``NC``."""
    shape = valid.shape
    cm = np.full(shape, NC, dtype=np.uint8)
    # Any band without data -> NO_DATA; every later rule skips these pixels.
    cm[~valid] = SCL.NO_DATA
    # Saturated or defective: DN 65535 in any band, or the L1C quality masks.
    saturated = np.zeros(shape, dtype=bool)
    for name in REQUIRED_BANDS:
        saturated |= b[name] >= config.saturated_reflectance
    if quality_mask is not None and config.handle_l1c_quality_mask:
        saturated |= np.asarray(quality_mask, dtype=bool)
    cm[valid & saturated] = SCL.SATURATED_OR_DEFECTIVE
    return cm


def brightness_confidence(b: Mapping[str, F32], cm: U8, config: ClassificationParameters) -> F32:
    """Step 1.1: the first cloud confidence, from the brightness on B4; dark features set in ``cm``."""
    b4, b8a = b["B04"], b["B8A"]
    free = cm == NC
    cmc = ramp(b4, config.t1_b04, config.t2_b04) ** 2
    # Dark features: dark in the red but with some NIR (shadowed land, dark soils).
    dark = free & (b4 < config.dark_b04_max) & (b8a > config.dark_b8a_min) & (b8a < config.dark_b8a_max)
    cm[dark] = SCL.DARK_AREA_PIXELS
    cmc[dark] = 0.0
    return cmc


def classify_snow(
    b: Mapping[str, F32],
    ndsi: F32,
    cm: U8,
    cmc: F32,
    config: ClassificationParameters,
    snow_condition: ArrayLike | None,
    snow_condition_mean: float | None,
) -> F32:
    """Step 2, in place on ``cm`` and ``cmc``: the snow chain; returns the snow confidence.

    Reach: ``config.snow_ring_iterations`` pixels (the snow ring of step 2.5).
    """
    b2, b4, b5, b8a, b12 = (b[k] for k in ("B02", "B04", "B05", "B8A", "B12"))
    free = cm == NC
    # 2.1: snow confidence from NDSI, none where the brightness test saw nothing.
    cms = ramp(ndsi, config.t1_ndsi_snw, config.t2_ndsi_snw)
    cms[cmc == 0] = 0.0
    # 2.1bis: snow is spectrally flat from 705 to 865 nm.
    cms[band_ratio(b5, b8a) < config.snow_b05_b8a_min] = 0.0
    # 2.2 - 2.4: snow is bright in the NIR and the blue, and bluer than red.
    cms *= ramp(b8a, config.t1_b8a, config.t2_b8a)
    cms *= ramp(b2, config.t1_b02, config.t2_b02)
    cms *= ramp(band_ratio(b2, b4), config.t1_r_b02_b04, config.t2_r_b02_b04)
    cms[~free] = 0.0
    # 2.5: snow class; around snow, low B12 means snow edges rather than cloud.
    snow = free & (cms > config.t1_snow)
    ring = morphology.dilate(snow, config.snow_ring_iterations) & ~snow
    cmc[ring & (b12 < config.t1_b12)] = 0.0
    cmc[snow] = 0.0
    cm[snow] = SCL.SNOW_ICE
    if snow_condition is not None and snow_condition_mean is not None and snow_condition_mean < 10.0:
        # Post of step 2: in a scene the climatology calls snow-free, "snow" on
        # CCI water is ice cloud.
        on_water = snow & (np.asarray(snow_condition) == SNC_WATER)
        cm[on_water] = SCL.CLOUD_MEDIUM_PROBABILITY
        cms[on_water] = 0.0
    return cms


def classify_vegetation(b: Mapping[str, F32], cm: U8, cmc: F32, config: ClassificationParameters) -> None:
    """Step 3, in place: NDVI -- vegetation, and less cloud confidence for green pixels."""
    b2, b4, b8a = b["B02"], b["B04"], b["B8A"]
    free = cm == NC
    # (Conditions on the ramp, "r == 1" and "0 < r < 1", are written on the index
    # itself: the float32 ramp of the upper threshold may miss 1 by rounding.)
    ndvi = normalized_difference(b8a, b4)
    r = ramp(ndvi, config.t1_ndvi, config.t2_ndvi)
    veg = free & (ndvi >= config.t2_ndvi) & (b2 < config.vegetation_b02_max)
    cm[veg] = SCL.VEGETATION
    cmc[veg] = 0.0
    partial = free & (ndvi > config.t1_ndvi) & (ndvi < config.t2_ndvi)
    cmc[partial] *= 1.0 - r[partial]


def classify_soil(b: Mapping[str, F32], r_b2_b11: F32, cm: U8, cmc: F32, config: ClassificationParameters) -> None:
    """Step 5.1, in place: soils, R = B2/B11 -- soils are darker in the blue than in the SWIR."""
    b2 = b["B02"]
    free = cm == NC
    b02_ft = np.clip(config.t11_b02 * r_b2_b11 + config.t12_b02, config.soil_b02_min, config.soil_b02_max)
    soil = free & (b2 < b02_ft) & (r_b2_b11 < config.t11_r_b02_b11)
    cm[soil] = SCL.NOT_VEGETATED
    cmc[soil] = 0.0
    partial = free & (r_b2_b11 > config.t11_r_b02_b11) & (r_b2_b11 < config.t12_r_b02_b11) & (b2 < b02_ft)
    cmc[partial] *= ramp(r_b2_b11[partial], config.t11_r_b02_b11, config.t12_r_b02_b11)


def classify_water(b: Mapping[str, F32], r_b2_b11: F32, cm: U8, cmc: F32, config: ClassificationParameters) -> None:
    """Step 5.2, in place: water -- dark in the SWIR, NIR below red, not bright in the blue."""
    b2, b4, b8a, b12 = b["B02"], b["B04"], b["B8A"], b["B12"]
    free = cm == NC
    b12_ft = np.clip(config.t21_b12 * r_b2_b11 + config.t22_b12, config.water_b12_min, config.water_b12_max)
    water_like = free & (b12 < b12_ft) & (b8a < b4) & (b2 < config.water_b02_max)
    water = water_like & (r_b2_b11 > config.t22_r_b02_b11)
    partial = water_like & (r_b2_b11 >= config.t21_r_b02_b11) & (r_b2_b11 < config.t22_r_b02_b11)
    cmc[partial] *= 1.0 - (r_b2_b11[partial] - config.t21_r_b02_b11) / (config.t22_r_b02_b11 - config.t21_r_b02_b11)
    water |= free & ((b2 - b4) > config.water_b02_b04_diff) & (b8a < b4) & (b2 < config.water_b02_max)
    cm[water] = SCL.WATER
    cmc[water] = 0.0


def classify_rocks(b: Mapping[str, F32], cm: U8, cmc: F32, config: ClassificationParameters) -> None:
    """Steps 6 and 6bis, in place: rocks and sand, and red pixels that are not water clouds."""
    b2, b4, b8a, b11 = b["B02"], b["B04"], b["B8A"], b["B11"]
    free = cm == NC
    # Step 6: R8 = B8A/B11 -- more SWIR than NIR, darker blue than SWIR.
    r8 = band_ratio(b8a, b11)
    b02_ft = np.clip(config.rock_b02_slope * r8 + config.rock_b02_intercept, config.rock_b02_min, config.rock_b02_max)
    rock = free & (b2 < b02_ft) & (r8 < config.t1_r_b8a_b11) & (b2 < config.rock_b02_b11_factor * b11)
    cm[rock] = SCL.NOT_VEGETATED
    cmc[rock] = 0.0
    free = cm == NC
    partial = free & (r8 > config.t1_r_b8a_b11) & (r8 < config.t2_r_b8a_b11)
    cmc[partial] *= ramp(r8[partial], config.t1_r_b8a_b11, config.t2_r_b8a_b11)

    # Step 6bis: B4/B11 -- red far above SWIR is not a water cloud.
    r_b4_b11 = band_ratio(b4, b11)
    r = ramp(r_b4_b11, config.t1_r_b04_b11, config.t2_r_b04_b11)
    cmc[free & (r_b4_b11 >= config.t2_r_b04_b11)] = 0.0
    partial = free & (r_b4_b11 > config.t1_r_b04_b11) & (r_b4_b11 < config.t2_r_b04_b11)
    cmc[partial] *= 1.0 - r[partial]


def classify_clouds(cm: U8, cmc: F32, config: ClassificationParameters) -> None:
    """Step 7, in place: cloud classes of the pixels still unclassified, from the confidence."""
    free = cm == NC
    cm[free & (cmc > config.t_cloud_lp) & (cmc < config.t_cloud_mp)] = LOW
    cm[free & (cmc >= config.t_cloud_mp) & (cmc < config.t_cloud_hp)] = SCL.CLOUD_MEDIUM_PROBABILITY
    cm[free & (cmc >= config.t_cloud_hp)] = SCL.CLOUD_HIGH_PROBABILITY


def classify_cirrus(
    b: Mapping[str, F32],
    valid: BoolArray,
    cm: U8,
    cmc: F32,
    config: ClassificationParameters,
    dem: ArrayLike | None,
    b10_leakage: float,
) -> None:
    """Step 7, cirrus, in place: thin cirrus and thick cirrus on B10 less its ground leakage.

    Overrides the class of any pixel with data; high ground shows in B10 through the
    thin dry air above it, hence the DEM limit.
    """
    b2 = b["B02"]
    classified = valid & (cm != SCL.SATURATED_OR_DEFECTIVE)
    b10 = cirrus_signal(b["B10"], b["B11"], b10_leakage)
    thin = (
        classified
        & (b10 > config.t1_b10)
        & (b10 < config.t2_b10)
        & (b2 < config.cirrus_b02_max)
        & (cmc < config.t_cloud_mp)
    )
    if dem is not None:
        thin &= np.asarray(dem, dtype=np.float64) < config.cirrus_dem_max_m
    cm[thin] = SCL.THIN_CIRRUS
    # Thick cirrus: strong B10 signal without a high cloud confidence.
    cm[classified & (b10 >= config.t2_b10) & (cmc < config.t_cloud_hp)] = SCL.CLOUD_MEDIUM_PROBABILITY


def snow_condition_mean(snow_condition: ArrayLike) -> float:
    """Mean of the non-water, valid pixels of a CCI snow-condition map (percent)."""
    snc = np.asarray(snow_condition, dtype=np.float64)
    ok = (snc <= 100) & np.isfinite(snc)
    return float(snc[ok].mean()) if ok.any() else math.nan

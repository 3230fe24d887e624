"""The last pass of the scene classification: cloud shadows, recovery, post-processing, improvements.

:func:`finalize` runs, in Sen2Cor's order, the SHD step
(:func:`~sen2core.kernels.scene_class.shadows.classify_cloud_shadows`), the recovery steps
R1-R9 (:mod:`sen2core.kernels.scene_class.recovery`) and the post-processing, then
sen2core's improvements: the bright-surface and thin-cloud fixes, the growth of cloud
masks into their dim edges and the optional cloud buffer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

from sen2core.kernels import morphology
from sen2core.kernels.scene_class.common import (
    CLOUDY_CODES,
    F32,
    NC,
    U8,
    BoolArray,
    background_window_px,
    cloud_edge_growth_px,
    normalized_difference,
    prepare_bands,
)
from sen2core.kernels.scene_class.leakage import cirrus_signal
from sen2core.kernels.scene_class.legend import SCL
from sen2core.kernels.scene_class.parameters import ClassificationParameters
from sen2core.kernels.scene_class.recovery import (
    clean_with_dem,
    r9_max_px,
    recover_cci_water,
    recover_dark_vegetation,
    recover_snow,
    recover_soil,
    recover_water,
    recover_with_land_cover,
)
from sen2core.kernels.scene_class.shadows import classify_cloud_shadows
from sen2core.kernels.scene_class.statistics import SceneStatistics


def finalize_reach(resolution_m: float, config: ClassificationParameters, *, land_cover: bool = False) -> int:
    """Reach (pixels) of :func:`finalize`: the sum of its successive neighbourhood steps."""
    half = background_window_px(resolution_m, config) // 2
    # Shadow smoothing and the relative shadow test's background, side by side.
    reach = max(morphology.gaussian_reach(config.shadow_sigma_px), half if config.relative_shadow else 0)
    reach += 1  # hillshade and slope (DEM), R5 snow dilation
    reach += 1
    if land_cover:
        reach += r9_max_px(resolution_m, config) + 2  # R9 blobs and their ring
    reach += config.median_filter // 2
    growth = cloud_edge_growth_px(resolution_m, config)
    if growth:
        reach += growth + half  # edge growth and its background
    reach += int(math.ceil(config.cloud_buffer_m / resolution_m))
    return reach


def finalize(
    bands: Mapping[str, ArrayLike],
    cm: ArrayLike,
    csd1: ArrayLike,
    cloud: ArrayLike,
    projected: ArrayLike,
    resolution_m: float,
    config: ClassificationParameters,
    *,
    dark: ArrayLike | None = None,
    matched: ArrayLike | None = None,
    probability: ArrayLike | None = None,
    sun_zenith: ArrayLike | None = None,
    sun_azimuth: ArrayLike | None = None,
    dem: ArrayLike | None = None,
    cast: ArrayLike | None = None,
    water_bodies: ArrayLike | None = None,
    land_cover: ArrayLike | None = None,
    statistics: SceneStatistics | None = None,
    b10_leakage: float = 0.0,
) -> tuple[U8, BoolArray]:
    """Cloud shadows, recovery steps R1-R9, post-processing and the improvements.

    Parameters
    ----------
    bands
        TOA reflectance per band.
    cm
        Class map of :func:`classify_pixels`.
    csd1, cloud
        Outputs of :func:`shadow_inputs`.
    projected
        Geometric shadow zone (:func:`project_cloud_shadow`) on this grid.
    dark, matched
        sen2core's shadow test (:func:`shadow_inputs`) and the zone of matched cloud
        heights (:func:`match_cloud_shadow`) on this grid; pixels in both are cloud
        shadow too. None: Sen2Cor's test only.
    resolution_m
        Pixel size (m).
    config
        Thresholds and switches.
    probability
        Calibrated cloud probability (:func:`calibrated_cloud_probability`), needed by
        the thin-cloud fix.
    sun_zenith, sun_azimuth, dem
        With a DEM (m): hillshade and slope for the DEM cleaning R4 (needs the sun angles).
    cast
        Terrain cast shadow on this grid (from the DEM), or None.
    water_bodies, land_cover
        ESA-CCI water bodies (2 = water) and land cover maps on this grid, or None.
    statistics
        Scene-wide thresholds for R7/R8 (:func:`statistics_from_sums`); with
        ``land_cover`` only.
    b10_leakage
        The scene's B10 leakage coefficient, for the bright-surface fix.

    Returns
    -------
    (scl, buffered)
        The SCL (uint8 codes 0-11) and the mask of pixels the cloud buffer turned
        into cloud.

    Notes
    -----
    Reach: :func:`finalize_reach`.
    """
    b, valid = prepare_bands(bands)
    cm = np.array(cm, dtype=np.uint8, copy=True)
    z = None if dem is None else np.asarray(dem, dtype=np.float64)

    classify_cloud_shadows(b, valid, cm, csd1, cloud, projected, resolution_m, config, dark=dark, matched=matched)
    recover_dark_vegetation(b, cm, config)
    recover_water(b, cm, config)
    if water_bodies is not None:
        recover_cci_water(cm, water_bodies)
    if z is not None:
        clean_with_dem(b, cm, z, sun_zenith, sun_azimuth, resolution_m, config, water_bodies=water_bodies, cast=cast)
    recover_snow(b, cm)
    recover_soil(b, cm, config)
    if land_cover is not None:
        recover_with_land_cover(b, cm, land_cover, z, resolution_m, config, statistics)
    cm = post_process(cm, valid, config)

    # Beyond Sen2Cor.
    if config.bright_surface_fix:
        fix_bright_surfaces(b, cm, config, b10_leakage)
    if config.thin_cloud_fix and probability is not None:
        fix_thin_cloud(cm, probability, config)
    if cloud_edge_growth_px(resolution_m, config):
        grow_cloud_edges(cm, b, valid, resolution_m, config)
    buffered = buffer_clouds(cm, valid, resolution_m, config)
    return cm, buffered


def post_process(cm: U8, valid: BoolArray, config: ClassificationParameters) -> U8:
    """What no rule classified becomes UNCLASSIFIED; optional median filter; NO_DATA restored."""
    cm[cm == NC] = SCL.UNCLASSIFIED
    if config.median_filter > 1:
        cm = np.asarray(morphology.median_filter(cm, config.median_filter), dtype=np.uint8)
    cm[~valid] = SCL.NO_DATA
    return cm


def fix_bright_surfaces(b: Mapping[str, F32], cm: U8, config: ClassificationParameters, b10_leakage: float) -> None:
    """Bright ground taken for cloud becomes NOT_VEGETATED, in place.

    A white cloud is at least as bright in the blue as in the red at the top of the
    atmosphere (Rayleigh scattering adds blue), and water and ice clouds absorb at
    1.6 um (B11 below B8A). Sand, rock and roofs are red and brighter in B11 than in
    B8A; without a B10 signal nothing high lies above them.
    """
    b2, b4, b8a, b10, b11 = (b[k] for k in ("B02", "B04", "B8A", "B10", "B11"))
    redness = normalized_difference(b4, b2)
    high = cirrus_signal(b10, b11, b10_leakage)
    ground = (redness > config.bright_surface_min_redness) & (b11 > b8a) & (high < config.t1_b10)
    cm[ground & np.isin(cm, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY))] = SCL.NOT_VEGETATED


def fix_thin_cloud(cm: U8, probability: ArrayLike, config: ClassificationParameters) -> None:
    """Thin cloud that Sen2Cor's brightness test misses, seen by the calibrated probability, in place."""
    p = np.nan_to_num(np.asarray(probability, dtype=np.float32), nan=0.0)
    thin = (p >= config.thin_cloud_probability) & np.isin(
        cm, (SCL.DARK_AREA_PIXELS, SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.UNCLASSIFIED)
    )
    cm[thin] = SCL.CLOUD_MEDIUM_PROBABILITY


def buffer_clouds(cm: U8, valid: BoolArray, resolution_m: float, config: ClassificationParameters) -> BoolArray:
    """The cloud buffer, in place: ``config.cloud_buffer_m`` around the buffered classes becomes cloud.

    Returns the mask of the pixels the buffer turned into cloud (all False without a buffer).
    """
    buffered = np.zeros(cm.shape, dtype=bool)
    if config.cloud_buffer_m > 0:
        grown = morphology.buffer_mask(np.isin(cm, config.cloud_buffer_classes), config.cloud_buffer_m / resolution_m)
        buffered = grown & valid & ~np.isin(cm, (SCL.NO_DATA, SCL.SATURATED_OR_DEFECTIVE, *CLOUDY_CODES))
        cm[buffered] = SCL.CLOUD_MEDIUM_PROBABILITY
    return buffered


def grow_cloud_edges(
    cm: U8, b: Mapping[str, F32], valid: BoolArray, resolution_m: float, config: ClassificationParameters
) -> None:
    """Grow the cloud classes 8/9 into their dim edges, in place (grown pixels become 8).

    A cloud's edge is thin and broken: its pixels are a little brighter than the ground
    around, not bright. Up to :func:`cloud_edge_growth_px` times, a clear, dark or
    unclassified pixel next to cloud becomes cloud when its B2 exceeds the mean B2 of the
    clear pixels of its :func:`background_window_px` window by ``cloud_edge_min_brightening``
    and it is not redder than a cloud (B2 >= B4: soils and sand are red, a cloud's top of
    atmosphere white to bluish). The background is taken once, from the classes before
    growing. Reach: ``cloud_edge_growth_px + background_window_px // 2``.
    """
    clear = valid & np.isin(cm, (SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, SCL.DARK_AREA_PIXELS))
    background, _ = morphology.masked_box_mean(b["B02"], clear, background_window_px(resolution_m, config))
    with np.errstate(invalid="ignore"):
        brighter = (b["B02"].astype(np.float64) - background) > config.cloud_edge_min_brightening
    candidate = (
        valid
        & brighter
        & (b["B02"] >= b["B04"])
        & np.isin(cm, (SCL.DARK_AREA_PIXELS, SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.UNCLASSIFIED))
    )
    cloud = np.isin(cm, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY))
    grown = cloud
    for _ in range(cloud_edge_growth_px(resolution_m, config)):
        grown = grown | (morphology.dilate(grown) & candidate)
    cm[grown & ~cloud] = SCL.CLOUD_MEDIUM_PROBABILITY

"""Recovery steps R1 to R9: classes the pixel tests got wrong, put right with context.

Each step works in place on the class map, in Sen2Cor's order (:func:`sen2core.kernels.scene_class.finalize.finalize`
runs them): R1 dark vegetation, R2 water, R3 CCI water bodies, R4 the DEM, R5 snow,
R6 soil, then with a land-cover map R7 bright land, R8 cirrus, R9 urban and bare land.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from sen2core.kernels import morphology
from sen2core.kernels import shadow as shadow_kernels
from sen2core.kernels.scene_class.common import (
    CLOUDY_CODES,
    F32,
    F64,
    LC_BARE,
    LC_URBAN,
    LC_WATER,
    LOW,
    NC,
    U8,
    UNCLASSIFIED_CODES,
    WB_WATER,
    BoolArray,
    band_ratio,
    normalized_difference,
)
from sen2core.kernels.scene_class.legend import SCL
from sen2core.kernels.scene_class.parameters import ClassificationParameters
from sen2core.kernels.scene_class.statistics import SceneStatistics


def recover_dark_vegetation(b: Mapping[str, F32], cm: U8, config: ClassificationParameters) -> None:
    """R1, in place: dark or unclassified pixels green in NIR/red or NIR/green are VEGETATION."""
    ndvi = normalized_difference(b["B8A"], b["B04"])
    green = (ndvi > config.t2_ndvi) | (band_ratio(b["B8A"], b["B03"]) > config.t2_r_b8a_b03)
    cm[green & np.isin(cm, (SCL.DARK_AREA_PIXELS, LOW, NC))] = SCL.VEGETATION


def recover_water(b: Mapping[str, F32], cm: U8, config: ClassificationParameters) -> None:
    """R2, in place: blue far above SWIR and NIR below red is WATER (dark and unclassified pixels)."""
    b2, b4, b8a, b11 = b["B02"], b["B04"], b["B8A"], b["B11"]
    watery = (band_ratio(b2, b11) > config.t22_r_b02_b11) & (b8a < b4)
    cm[watery & (cm == SCL.DARK_AREA_PIXELS)] = SCL.WATER
    cm[watery & np.isin(cm, UNCLASSIFIED_CODES) & (b8a < config.recovery_unclassified_b8a_max)] = SCL.WATER


def recover_cci_water(cm: U8, water_bodies: ArrayLike) -> None:
    """R3, in place: dark, shadow and unclassified pixels on CCI water bodies are WATER."""
    wb = np.asarray(water_bodies)
    cm[(wb == WB_WATER) & np.isin(cm, (SCL.DARK_AREA_PIXELS, SCL.CLOUD_SHADOWS, LOW, NC))] = SCL.WATER


def clean_with_dem(
    b: Mapping[str, F32],
    cm: U8,
    z: F64,
    sun_zenith: ArrayLike | None,
    sun_azimuth: ArrayLike | None,
    resolution_m: float,
    config: ClassificationParameters,
    *,
    water_bodies: ArrayLike | None = None,
    cast: ArrayLike | None = None,
) -> None:
    """R4, in place: water on steep shaded slopes, and shadows that the terrain casts.

    ``z`` is the elevation (m); the hillshade and slope need the sun angles. Reach: 1 pixel.
    """
    b2, b4, b8a = b["B02"], b["B04"], b["B8A"]
    if sun_zenith is None or sun_azimuth is None:
        raise ValueError("finalize: a DEM needs the sun angles")
    shade, slope = shadow_kernels.hillshade(z, sun_zenith, sun_azimuth, resolution_m)
    cm[(cm == SCL.WATER) & (shade < config.hillshade_water_max) & (slope > config.slope_water_min_deg)] = (
        SCL.DARK_AREA_PIXELS
    )
    cm[(cm == SCL.CLOUD_SHADOWS) & (shade > 0) & (shade < config.hillshade_shadow_max)] = SCL.DARK_AREA_PIXELS
    not_cci_water = np.ones(cm.shape, dtype=bool) if water_bodies is None else np.asarray(water_bodies) != WB_WATER
    shaded_snow = (
        (shade < config.hillshade_snow_max)
        & not_cci_water
        & ((b2 - b4) > config.water_b02_b04_diff)
        & (b8a < b4)
        & (b2 > config.water_b02_max)
    )
    cm[shaded_snow & np.isin(cm, (LOW, NC, SCL.CLOUD_MEDIUM_PROBABILITY))] = SCL.DARK_AREA_PIXELS
    if cast is not None:
        # Sen2Cor >= 2.10 (PB 04.00): terrain cast shadows are class 2.
        cm[np.asarray(cast, dtype=bool) & np.isin(cm, (SCL.DARK_AREA_PIXELS, SCL.CLOUD_SHADOWS, LOW, NC))] = (
            SCL.DARK_AREA_PIXELS
        )


def recover_snow(b: Mapping[str, F32], cm: U8) -> None:
    """R5, in place: unclassified pixels next to snow, darker in B11 than in B3, are SNOW_ICE (reach 1)."""
    near_snow = morphology.dilate(cm == SCL.SNOW_ICE)
    cm[near_snow & (b["B11"] < b["B03"]) & np.isin(cm, UNCLASSIFIED_CODES)] = SCL.SNOW_ICE


def recover_soil(b: Mapping[str, F32], cm: U8, config: ClassificationParameters) -> None:
    """R6, in place: dark pixels with a low B2/B11 are soil (NOT_VEGETATED)."""
    cm[(cm == SCL.DARK_AREA_PIXELS) & (band_ratio(b["B02"], b["B11"]) < config.recovery_soil_ratio)] = SCL.NOT_VEGETATED


def recover_bright_land(b: Mapping[str, F32], cm: U8, land: BoolArray, statistics: SceneStatistics) -> None:
    """R7, in place: "clouds" with little B10 signal and a land-like B9/B8A are bright ground.

    Needs B09 and a scene whose land is large enough (``statistics.r7_enabled``).
    """
    if statistics.r7_enabled and "B09" in b:
        low_cloud = (
            np.isin(cm, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY))
            & (b["B10"] < statistics.r7_b10_threshold)
            & (band_ratio(b["B09"], b["B8A"]) < statistics.r7_b9_b8a_threshold)
            & land
        )
        cm[low_cloud] = SCL.NOT_VEGETATED


def recover_cirrus(
    b: Mapping[str, F32],
    cm: U8,
    land: BoolArray,
    statistics: SceneStatistics,
    z: F64 | None,
    config: ClassificationParameters,
) -> None:
    """R8, in place: clear land or water with more B10 than the scene's clear land or water shows is THIN_CIRRUS."""
    b10 = b["B10"]
    cirrus = (land & np.isin(cm, (SCL.VEGETATION, SCL.NOT_VEGETATED)) & (b10 > statistics.r8_land_threshold)) | (
        (cm == SCL.WATER) & (b10 > statistics.r8_water_threshold)
    )
    if z is not None:
        cirrus &= z < config.cirrus_dem_max_m
    cm[cirrus] = SCL.THIN_CIRRUS


def recover_urban_bare(cm: U8, land_cover: ArrayLike, resolution_m: float, config: ClassificationParameters) -> None:
    """R9, in place: on urban and bare land, unclassified is bare, and so are isolated cloud blobs."""
    lc = np.asarray(land_cover)
    urban_bare = (lc == LC_URBAN) | np.isin(lc, LC_BARE)
    cm[urban_bare & np.isin(cm, UNCLASSIFIED_CODES)] = SCL.NOT_VEGETATED
    recover_bright_blobs(cm, urban_bare & (cm == SCL.CLOUD_MEDIUM_PROBABILITY), resolution_m, config)


def recover_with_land_cover(
    b: Mapping[str, F32],
    cm: U8,
    land_cover: ArrayLike,
    z: F64 | None,
    resolution_m: float,
    config: ClassificationParameters,
    statistics: SceneStatistics | None,
) -> None:
    """R7 to R9, in place, with the CCI land cover (R7 and R8 only with the scene's statistics)."""
    lc = np.asarray(land_cover)
    land = (lc != LC_WATER) & (lc != 0)
    if statistics is not None:
        recover_bright_land(b, cm, land, statistics)
        recover_cirrus(b, cm, land, statistics, z, config)
    recover_urban_bare(cm, lc, resolution_m, config)


def r9_max_px(resolution_m: float, config: ClassificationParameters) -> int:
    """Largest extent (pixels) of a cloud blob R9 may recover, ``config.r9_max_blob_m`` on this grid."""
    return max(1, int(config.r9_max_blob_m // resolution_m))


def recover_bright_blobs(cm: U8, candidate: BoolArray, resolution_m: float, config: ClassificationParameters) -> None:
    """R9 blob test, in place: cloud blobs on urban/bare land with a mostly clear ring."""
    labels, n = ndimage.label(candidate, structure=morphology.CROSS)
    if n == 0:
        return
    index = np.arange(1, n + 1)
    rows, cols = np.indices(cm.shape)
    height = ndimage.maximum(rows, labels, index) - ndimage.minimum(rows, labels, index) + 1
    width = ndimage.maximum(cols, labels, index) - ndimage.minimum(cols, labels, index) + 1
    small = (np.asarray(height) <= r9_max_px(resolution_m, config)) & (
        np.asarray(width) <= r9_max_px(resolution_m, config)
    )
    # Ring pixels: 4-neighbours of a blob outside it. A ring pixel may border several
    # blobs; count it once per blob.
    padded = np.pad(labels, 1)
    cloudy = np.isin(cm, CLOUDY_CODES)
    keys: list[NDArray[np.int64]] = []
    flags: list[NDArray[np.bool_]] = []
    flat = np.arange(labels.size).reshape(labels.shape)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[1 + dr : 1 + dr + labels.shape[0], 1 + dc : 1 + dc + labels.shape[1]]
        ring = (neighbour > 0) & (labels == 0)
        keys.append(neighbour[ring].astype(np.int64) * labels.size + flat[ring])
        flags.append(cloudy[ring])
    key = np.concatenate(keys)
    flag = np.concatenate(flags)
    key, first = np.unique(key, return_index=True)
    flag = flag[first]
    owner = key // labels.size
    ring_n = np.bincount(owner, minlength=n + 1)[1:]
    ring_cloudy = np.bincount(owner, weights=flag.astype(np.float64), minlength=n + 1)[1:]
    fraction = np.divide(ring_cloudy, ring_n, out=np.ones(n), where=ring_n > 0)
    keep = small & (fraction <= config.r9_ring_cloud_max)
    recover = np.concatenate([[False], keep])[labels]
    cm[recover] = SCL.NOT_VEGETATED

"""The whole scene classification on whole numpy arrays: the reference the chunked run is tested against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sen2core.kernels import morphology
from sen2core.kernels import shadow as shadow_kernels
from sen2core.kernels.radiometry import block_mean
from sen2core.kernels.scene_class.common import F32, U8, BoolArray, prepare_bands, probability_to_uint8
from sen2core.kernels.scene_class.finalize import finalize
from sen2core.kernels.scene_class.leakage import leakage_from_histogram, leakage_histogram
from sen2core.kernels.scene_class.parameters import ClassificationParameters
from sen2core.kernels.scene_class.pixel_tests import classify_pixels, snow_condition_mean
from sen2core.kernels.scene_class.probability import calibrated_cloud_probability
from sen2core.kernels.scene_class.shadows import (
    coarse_sun,
    match_cloud_shadow,
    match_counts,
    match_grid_factor,
    project_cloud_shadow,
    shadow_displacement_field,
    shadow_grid_factor,
    shadow_inputs,
    sun_components,
)
from sen2core.kernels.scene_class.statistics import hpc_blob_mask, scene_statistics, statistics_from_sums


@dataclass(frozen=True)
class SceneClassificationArrays:
    """Scene classification of a whole image (numpy)."""

    scl: U8
    """Class codes 0-11."""
    cloud_probability: U8
    """``MSK_CLDPRB``: Sen2Cor's cloud confidence in percent."""
    snow_probability: U8
    """``MSK_SNWPRB``: Sen2Cor's snow confidence in percent."""
    calibrated_cloud_probability: F32
    """Calibrated probability of cloud, 0..1 (NaN without data)."""
    buffered: BoolArray
    """Pixels the cloud buffer turned into cloud."""


def shadow_zones(
    cloud: BoolArray,
    dark: BoolArray,
    sun_zenith: ArrayLike,
    sun_azimuth: ArrayLike,
    view_zenith: ArrayLike | None,
    view_azimuth: ArrayLike | None,
    resolution_m: float,
    config: ClassificationParameters,
    dem: ArrayLike | None = None,
) -> tuple[BoolArray, BoolArray | None, BoolArray | None]:
    """The zones of a whole image where shadows can be: projected, matched, cast by the terrain.

    The projection and the terrain shadows run on the shadow grid, the height matching on
    the matching grid, each brought back to the pixels. ``matched`` is None when the
    height matching is off, ``cast`` None without a DEM.
    """
    shape = np.shape(cloud)
    k = shadow_grid_factor(resolution_m, config)
    drow, dcol = shadow_displacement_field(sun_zenith, sun_azimuth, view_zenith, view_azimuth, config)
    projected_c = project_cloud_shadow(
        morphology.block_any(cloud, k), block_mean(drow, k), block_mean(dcol, k), resolution_m * k, config
    )
    projected = morphology.upsample_blocks(projected_c, k, shape)
    matched = None
    if config.shadow_height_matching:
        m = match_grid_factor(resolution_m, config)
        zone_m = match_cloud_shadow(*match_counts(cloud, dark, drow, dcol, m), resolution_m * m, config)
        matched = morphology.upsample_blocks(zone_m, m, shape)
    cast = None
    if dem is not None:
        sz, sin_az, cos_az = sun_components(sun_zenith, sun_azimuth)
        sz_c, sa_c = coarse_sun(sz, sin_az, cos_az, k)
        cast_c = shadow_kernels.cast_shadow(
            block_mean(np.asarray(dem, dtype=np.float32), k),
            sz_c,
            sa_c,
            resolution_m * k,
            config.terrain_shadow_max_distance_m,
        )
        cast = morphology.upsample_blocks(cast_c, k, shape)
    return projected, matched, cast


def scene_classification(
    bands: Mapping[str, ArrayLike],
    sun_zenith: ArrayLike,
    sun_azimuth: ArrayLike,
    view_zenith: ArrayLike | None,
    view_azimuth: ArrayLike | None,
    resolution_m: float,
    config: ClassificationParameters,
    *,
    dem: ArrayLike | None = None,
    quality_mask: ArrayLike | None = None,
    water_bodies: ArrayLike | None = None,
    land_cover: ArrayLike | None = None,
    snow_condition: ArrayLike | None = None,
    snow_possible: bool | None = None,
) -> SceneClassificationArrays:
    """The whole classification on whole arrays: every pass in order.

    Same parameters as :func:`sen2core.scl.classify`, as numpy arrays on one grid.
    This is the reference for the chunked computation: both call the same pass
    functions, so they agree exactly.
    """
    _, valid = prepare_bands(bands)
    snc_mean = snow_condition_mean(snow_condition) if snow_condition is not None else None
    leakage = leakage_from_histogram(leakage_histogram(bands), config)
    cm, cmc, cms = classify_pixels(
        bands,
        config,
        dem=dem,
        quality_mask=quality_mask,
        snow_possible=snow_possible,
        snow_condition=snow_condition,
        snow_condition_mean=snc_mean,
        b10_leakage=leakage,
    )
    probability = calibrated_cloud_probability(bands, cm, cmc, leakage)
    csd1, cloud, dark = shadow_inputs(bands, cm, cmc, config)
    projected, matched, cast = shadow_zones(
        cloud, dark, sun_zenith, sun_azimuth, view_zenith, view_azimuth, resolution_m, config, dem
    )
    statistics = None
    if land_cover is not None:
        sums = scene_statistics(bands, cm, hpc_blob_mask(cm, resolution_m, config), land_cover)
        statistics = statistics_from_sums(sums, resolution_m, config)
    scl, buffered = finalize(
        bands,
        cm,
        csd1,
        cloud,
        projected,
        resolution_m,
        config,
        dark=dark,
        matched=matched,
        probability=probability,
        sun_zenith=sun_zenith,
        sun_azimuth=sun_azimuth,
        dem=dem,
        cast=cast,
        water_bodies=water_bodies,
        land_cover=land_cover,
        statistics=statistics,
        b10_leakage=leakage,
    )
    return SceneClassificationArrays(
        scl=scl,
        cloud_probability=probability_to_uint8(cmc),
        snow_probability=probability_to_uint8(cms),
        calibrated_cloud_probability=np.where(valid, probability, np.float32(np.nan)).astype(np.float32),
        buffered=buffered,
    )

"""Cloud and terrain shadows: radiometric tests, geometric projection, height matching, the SHD step.

The projection runs on a coarser shadow grid (:func:`shadow_grid_factor`), the height
matching on a matching grid (:func:`match_grid_factor`); each function states its
reach in pixels of the grid it runs on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from sen2core.kernels import morphology
from sen2core.kernels import shadow as shadow_kernels
from sen2core.kernels.radiometry import block_mean
from sen2core.kernels.scene_class.common import (
    F32,
    F64,
    LOW,
    NC,
    U8,
    BoolArray,
    background_window_px,
    band_ratio,
    prepare_bands,
)
from sen2core.kernels.scene_class.legend import SCL
from sen2core.kernels.scene_class.parameters import ClassificationParameters


def shadow_grid_factor(resolution_m: float, config: ClassificationParameters) -> int:
    """Integer ratio between the shadow projection grid and the classification grid (>= 1)."""
    return max(1, int(round(config.shadow_grid_m / resolution_m)))


def shadow_inputs(
    bands: Mapping[str, ArrayLike],
    cm: ArrayLike,
    cmc: ArrayLike,
    config: ClassificationParameters,
) -> tuple[F32, BoolArray, BoolArray]:
    """Radiometric shadow tests and the cloud mask to project (Sen2Cor L2A_CSHD, and sen2core's).

    ``csd1`` (Sen2Cor): distance of the spectrum (B2, B3, B4, B8A, B11, B12) to a
    reference shadow spectrum. ``1 - median3(mean |dist|)`` where that exceeds
    ``1 - T_B02_B12``; 1 where ``median3`` of the fraction of bands darker than the
    reference is 1 (dark in every band); 0 on water (B2/B11 above
    ``shadow_water_ratio``), thin cirrus and no data. Cloud mask: 4-connected dilation
    of ``median3(CMC) > shadow_cloud_cmc``.

    ``dark`` (sen2core): darker than the reference in B8A, B11 and B12, outside the
    cloud mask. Without the direct sun a surface keeps only the diffuse sky light,
    a few percent of the irradiance beyond 800 nm, so every shadowed surface (snow and
    sand included) is dark there, and few sunlit ones are: water, which the
    geometric zone tells apart.

    Reach: 2 pixels.
    """
    b, valid = prepare_bands(bands)
    cm_ = np.asarray(cm)
    stack = np.stack([b[k] for k in ("B02", "B03", "B04", "B8A", "B11", "B12")])
    dist = stack - np.asarray(config.shadow_reference, dtype=np.float32)[:, None, None]
    msd_dark = morphology.median3(np.mean(dist < 0, axis=0).astype(np.float32))
    msd = 1.0 - morphology.median3(np.mean(np.abs(dist), axis=0).astype(np.float32))
    csd1 = np.where(msd < 1.0 - config.t_b02_b12, np.float32(0.0), msd).astype(np.float32)
    csd1[msd_dark == 1.0] = 1.0
    csd1[band_ratio(b["B02"], b["B11"]) > config.shadow_water_ratio] = 0.0
    csd1[cm_ == SCL.THIN_CIRRUS] = 0.0
    csd1[~valid] = 0.0
    cloud = morphology.dilate(morphology.median3(np.asarray(cmc, dtype=np.float32)) > config.shadow_cloud_cmc) & valid
    ref = config.shadow_reference
    dark = valid & ~cloud & (b["B8A"] < ref[3]) & (b["B11"] < ref[4]) & (b["B12"] < ref[5])
    return csd1, cloud, dark


def shadow_displacement_field(
    sun_zenith: ArrayLike,
    sun_azimuth: ArrayLike,
    view_zenith: ArrayLike | None,
    view_azimuth: ArrayLike | None,
    config: ClassificationParameters,
) -> tuple[F32, F32]:
    """Per-pixel cloud-to-shadow displacement (m per m of cloud height), rows then columns.

    Uses the view parallax when ``config.view_parallax`` and view angles are given.
    Components, unlike angles, can be averaged to a coarser grid (view azimuths jump
    by 180 degrees between detectors). Pixel by pixel (reach 0).
    """
    use_view = config.view_parallax and view_zenith is not None and view_azimuth is not None
    drow, dcol = shadow_kernels.shadow_displacement(
        np.nan_to_num(np.asarray(sun_zenith, dtype=np.float64)),
        np.nan_to_num(np.asarray(sun_azimuth, dtype=np.float64)),
        np.nan_to_num(np.asarray(view_zenith, dtype=np.float64)) if use_view else None,
        np.nan_to_num(np.asarray(view_azimuth, dtype=np.float64)) if use_view else None,
        max_sun_zenith=config.shadow_max_sun_zenith_deg,
    )
    return drow.astype(np.float32), dcol.astype(np.float32)


def project_cloud_shadow(
    cloud: ArrayLike,
    drow: ArrayLike,
    dcol: ArrayLike,
    pixel_m: float,
    config: ClassificationParameters,
) -> BoolArray:
    """Geometric cloud-shadow zone: the cloud mask swept over the cloud heights.

    Runs on the shadow grid (``config.shadow_grid_m``) with the displacement of
    :func:`shadow_displacement_field` averaged to that grid. Reach: :func:`shadow_reach`.
    """
    return shadow_kernels.project_mask(
        cloud,
        drow,
        dcol,
        config.cloud_height_min_m,
        config.cloud_height_max_m,
        pixel_m,
        max_displacement=_max_displacement(config),
    )


def _max_displacement(config: ClassificationParameters) -> float:
    view = config.shadow_max_view_zenith_deg if config.view_parallax else 0.0
    return math.tan(math.radians(config.shadow_max_sun_zenith_deg)) + math.tan(math.radians(view))


def shadow_reach(pixel_m: float, config: ClassificationParameters, max_sun_zenith_deg: float | None = None) -> int:
    """Reach (pixels of a grid of ``pixel_m``) of :func:`project_cloud_shadow`.

    ``max_sun_zenith_deg``: an upper bound of the sun zenith over the image, when
    known, that is below the configured clip: it shortens the reach.
    """
    clip = config.shadow_max_sun_zenith_deg
    bound = clip if max_sun_zenith_deg is None else min(clip, max_sun_zenith_deg)
    return shadow_kernels.projection_reach(
        config.cloud_height_max_m,
        pixel_m,
        max_sun_zenith=bound,
        max_view_zenith=config.shadow_max_view_zenith_deg if config.view_parallax else 0.0,
    )


def terrain_shadow_reach(pixel_m: float, config: ClassificationParameters) -> int:
    """Reach (pixels) of the terrain cast-shadow ray march."""
    return int(math.ceil(config.terrain_shadow_max_distance_m / pixel_m))


def match_grid_factor(resolution_m: float, config: ClassificationParameters) -> int:
    """Integer ratio between the height-matching grid and the classification grid (>= 1)."""
    return max(1, int(round(config.shadow_match_grid_m / resolution_m)))


def match_counts(
    cloud: ArrayLike, dark: ArrayLike, drow: ArrayLike, dcol: ArrayLike, factor: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], F32, F32]:
    """Per cell of the matching grid: cloud, dark and all pixel counts, and the mean displacement.

    Partial edge cells count what they hold. Pixel by pixel within cells (reach 0).
    """
    return (
        morphology.block_sum(cloud, factor),
        morphology.block_sum(dark, factor),
        morphology.block_sum(np.ones(np.shape(cloud), dtype=bool), factor),
        block_mean(np.asarray(drow, dtype=np.float32), factor),
        block_mean(np.asarray(dcol, dtype=np.float32), factor),
    )


def match_cloud_shadow(
    cloud_count: ArrayLike,
    dark_count: ArrayLike,
    pixel_count: ArrayLike,
    drow: ArrayLike,
    dcol: ArrayLike,
    pixel_m: float,
    config: ClassificationParameters,
) -> BoolArray:
    """Shadow zone with matched cloud heights on the matching grid (reach: :func:`match_zone_reach`)."""
    return shadow_kernels.match_shadow_zone(
        cloud_count,
        dark_count,
        pixel_count,
        drow,
        dcol,
        pixel_m,
        min_height_m=config.cloud_height_min_m,
        max_height_m=config.cloud_height_max_m,
        max_displacement=_max_displacement(config),
        window=config.shadow_match_window_px,
        min_score=config.shadow_match_min_score,
        plateau=config.shadow_match_plateau,
        min_observed=config.shadow_match_min_observed,
        dilation=config.shadow_match_dilation_px,
    )


def match_zone_reach(pixel_m: float, config: ClassificationParameters, max_sun_zenith_deg: float | None = None) -> int:
    """Reach (cells of the matching grid) of :func:`match_cloud_shadow`."""
    clip = config.shadow_max_sun_zenith_deg
    bound = clip if max_sun_zenith_deg is None else min(clip, max_sun_zenith_deg)
    view = config.shadow_max_view_zenith_deg if config.view_parallax else 0.0
    displacement = math.tan(math.radians(bound)) + math.tan(math.radians(view))
    return shadow_kernels.match_reach(
        config.cloud_height_max_m,
        pixel_m,
        max_displacement=displacement,
        window=config.shadow_match_window_px,
        dilation=config.shadow_match_dilation_px,
    )


def relative_shadow(
    b: Mapping[str, F32],
    valid: BoolArray,
    cloud: BoolArray,
    zone: BoolArray,
    resolution_m: float,
    config: ClassificationParameters,
) -> BoolArray:
    """Cloud shadow by darkness relative to the local sunlit background, inside the geometric zone.

    A shadow keeps the sky light and what the cloud transmits, so it is grey, not black:
    an absolute threshold (Sen2Cor's reference spectrum) finds only the darkest. In the
    zone where the clouds, projected along the sun and view directions over the cloud
    heights, can cast shadow (``zone``), a pixel is shadow when B8A and B11 are below
    ``relative_shadow_darkness`` times their mean over the valid pixels outside the cloud
    mask (shadows in the window lower it a little, which keeps the test strict) of
    the :func:`background_window_px` window around it. NIR and SWIR are used because the sky
    light there is weakest. Water (B8A below B4) is dark against land without any shadow and
    is left out; so are pixels without any non-cloud pixel in their window. Reach:
    ``background_window_px // 2``.
    """
    sunlit = valid & ~cloud
    size = background_window_px(resolution_m, config)
    k = np.float64(config.relative_shadow_darkness)
    dark = valid & zone & ~cloud & (b["B8A"] >= b["B04"])
    for name in ("B8A", "B11"):
        mean, _ = morphology.masked_box_mean(b[name], sunlit, size)
        with np.errstate(invalid="ignore"):
            dark &= b[name].astype(np.float64) < k * mean
    return np.asarray(dark, dtype=bool)


def classify_cloud_shadows(
    b: Mapping[str, F32],
    valid: BoolArray,
    cm: U8,
    csd1: ArrayLike,
    cloud: ArrayLike,
    projected: ArrayLike,
    resolution_m: float,
    config: ClassificationParameters,
    *,
    dark: ArrayLike | None = None,
    matched: ArrayLike | None = None,
) -> None:
    """Cloud shadows (SHD), in place: the geometric zone where the radiometric tests agree.

    Sen2Cor: the projected zone (:func:`project_cloud_shadow`) minus the clouds, smoothed,
    times the radiometric test ``csd1`` of :func:`shadow_inputs`, above
    ``config.shadow_threshold``. sen2core adds the pixels both ``dark`` and in the zone of
    matched cloud heights (``matched``, :func:`match_cloud_shadow`; None: not used) and,
    with ``config.relative_shadow``, :func:`relative_shadow`. Only dark, clear, water and
    not yet classified pixels become CLOUD_SHADOWS. Reach: the smoothing's or the
    relative test's, whichever is longer.
    """
    # SHD: geometric x radiometric shadow. The projected zone minus the clouds
    # themselves, smoothed (Sen2Cor: Gaussian, sigma 3 px), times the radiometric test.
    csd2 = np.clip(np.asarray(projected, dtype=np.float32), 0.0, 1.0) - np.asarray(cloud, dtype=np.float32)
    csd2 = np.clip(csd2, 0.0, 1.0)
    if config.shadow_sigma_px > 0:
        csd2 = ndimage.gaussian_filter(csd2, config.shadow_sigma_px, mode="nearest", truncate=4.0)
    csd2[~valid] = 0.0
    shadow = np.asarray(csd1, dtype=np.float32) * csd2 > config.shadow_threshold
    if dark is not None and matched is not None:
        # sen2core: dark in the NIR and SWIR where a matched cloud casts its shadow.
        shadow |= np.asarray(dark, dtype=bool) & np.asarray(matched, dtype=bool)
    if config.relative_shadow:
        shadow |= relative_shadow(
            b, valid, np.asarray(cloud, dtype=bool), np.asarray(projected, dtype=bool), resolution_m, config
        )
    shadow &= np.isin(cm, (SCL.DARK_AREA_PIXELS, SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, LOW, NC))
    cm[shadow] = SCL.CLOUD_SHADOWS


def sun_components(sun_zenith: ArrayLike, sun_azimuth: ArrayLike) -> tuple[F32, F32, F32]:
    """Sun zenith and the sine and cosine of the sun azimuth (float32, NaN as 0), for :func:`coarse_sun`."""
    sa = np.radians(np.nan_to_num(np.asarray(sun_azimuth, dtype=np.float64)))
    return (
        np.nan_to_num(np.asarray(sun_zenith, dtype=np.float32)),
        np.sin(sa).astype(np.float32),
        np.cos(sa).astype(np.float32),
    )


def coarse_sun(sun_zenith: ArrayLike, sin_az: ArrayLike, cos_az: ArrayLike, factor: int) -> tuple[F64, F64]:
    """Sun zenith and azimuth (degrees) on a ``factor`` times coarser grid.

    Azimuths are averaged as directions (through their sine and cosine).
    """
    sz = block_mean(np.asarray(sun_zenith, dtype=np.float32), factor).astype(np.float64)
    s = block_mean(np.asarray(sin_az, dtype=np.float32), factor).astype(np.float64)
    c = block_mean(np.asarray(cos_az, dtype=np.float32), factor).astype(np.float64)
    return sz, np.degrees(np.arctan2(s, c)) % 360.0

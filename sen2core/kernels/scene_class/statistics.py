"""Scene-wide statistics for the land-cover recovery steps R7 and R8.

Chunks give sums (:func:`scene_statistics`, pixel by pixel) that add up to the scene's;
:func:`statistics_from_sums` turns the totals into thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sen2core.kernels import morphology
from sen2core.kernels.scene_class.common import F64, LC_WATER, BoolArray, band_ratio, prepare_bands
from sen2core.kernels.scene_class.legend import SCL
from sen2core.kernels.scene_class.parameters import ClassificationParameters


@dataclass(frozen=True)
class SceneStatistics:
    """Scene-wide quantities for the land-cover recovery steps R7 and R8."""

    r7_enabled: bool
    """Land covers enough of the scene for R7."""
    r7_b10_threshold: float
    """R7: medium/high cloud below this B10 may be bright land."""
    r7_b9_b8a_threshold: float
    """R7: ... if also B9/B8A is below this (land mean + one standard deviation)."""
    r8_land_threshold: float
    """R8: B10 above this on clear land is thin cirrus."""
    r8_water_threshold: float
    """R8: B10 above this on water is thin cirrus."""


N_STATISTICS = 21
"""Length of the vector of :func:`scene_statistics`."""


def hpc_blob_mask(cm: ArrayLike, resolution_m: float, config: ClassificationParameters) -> BoolArray:
    """High-probability cloud inside blobs at least ``hpc_blob_m`` wide (R7 statistics).

    Erosion by a square of ``hpc_blob_m``: what remains lies at least half that
    distance inside a cloud. Reach: :func:`hpc_blob_reach`.
    """
    hpc = np.asarray(cm) == SCL.CLOUD_HIGH_PROBABILITY
    size = max(1, int(round(config.hpc_blob_m / resolution_m)))
    return np.asarray(morphology.erode_square(hpc, size) & hpc, dtype=bool)


def hpc_blob_reach(resolution_m: float, config: ClassificationParameters) -> int:
    """Reach (pixels) of :func:`hpc_blob_mask`."""
    return max(1, int(round(config.hpc_blob_m / resolution_m))) // 2


def scene_statistics(
    bands: Mapping[str, ArrayLike],
    cm: ArrayLike,
    hpc_blob: ArrayLike,
    land_cover: ArrayLike,
) -> F64:
    """Sums over a (chunk of a) scene for :func:`statistics_from_sums` (R7, R8).

    Returns 21 float64 sums: counts of valid, land and high-probability-cloud (HPC)
    pixels; then (count, sum, sum of squares) of B10 on clear land, on HPC, on HPC
    blobs (:func:`hpc_blob_mask`), on bare soil; of B9/B8A on clear land; and of B10
    on water. Pixel by pixel (reach 0): chunk sums add up to the scene's.
    """
    b, valid = prepare_bands(bands)
    cm_ = np.asarray(cm)
    lc = np.asarray(land_cover)
    land = valid & (lc != LC_WATER) & (lc != 0)
    clear_land = land & np.isin(cm_, (SCL.VEGETATION, SCL.NOT_VEGETATED))
    hpc = valid & (cm_ == SCL.CLOUD_HIGH_PROBABILITY)
    soil = land & (cm_ == SCL.NOT_VEGETATED)
    water = valid & (cm_ == SCL.WATER)
    b10 = b["B10"].astype(np.float64)
    if "B09" in b:
        ratio = band_ratio(b["B09"], b["B8A"]).astype(np.float64)
        ratio_mask = clear_land
    else:
        ratio, ratio_mask = b10, np.zeros_like(clear_land)
    sums = [float(valid.sum()), float(land.sum()), float(hpc.sum())]
    for values, m in (
        (b10, clear_land),
        (b10, hpc),
        (b10, valid & np.asarray(hpc_blob, dtype=bool)),
        (b10, soil),
        (ratio, ratio_mask),
        (b10, water),
    ):
        x = values[m]
        sums += [float(x.size), float(x.sum()), float((x * x).sum())]
    return np.asarray(sums, dtype=np.float64)


def _mean_std(n: float, s: float, s2: float) -> tuple[float, float]:
    if n <= 0:
        return math.nan, math.nan
    mean = s / n
    return mean, math.sqrt(max(s2 / n - mean * mean, 0.0))


def statistics_from_sums(sums: ArrayLike, resolution_m: float, config: ClassificationParameters) -> SceneStatistics:
    """Thresholds of R7 and R8 from the sums of :func:`scene_statistics`."""
    v = np.asarray(sums, dtype=np.float64)
    n_valid, n_land, n_hpc = v[0], v[1], v[2]
    land_mean, _ = _mean_std(*v[3:6])
    hpc_mean, hpc_std = _mean_std(*v[6:9])
    blob_mean, blob_std = _mean_std(*v[9:12])
    soil_mean, soil_std = _mean_std(*v[12:15])
    ratio_mean, ratio_std = _mean_std(*v[15:18])
    water_mean, water_std = _mean_std(*v[18:21])
    pixel_km2 = (resolution_m / 1000.0) ** 2
    r7 = (
        n_valid > 0
        and n_land >= config.land_min_fraction * n_valid
        and n_land * pixel_km2 >= config.land_min_area_km2
        and math.isfinite(land_mean)
        and math.isfinite(ratio_mean)
    )
    hpc_fraction = n_hpc / n_valid if n_valid > 0 else 0.0
    if hpc_fraction > config.hpc_high_fraction and math.isfinite(hpc_mean):
        t_b10 = max(config.r7_b10_floor, min(land_mean, hpc_mean - 2.0 * hpc_std))
    elif hpc_fraction < config.hpc_low_fraction or not math.isfinite(blob_mean):
        t_b10 = land_mean
    else:
        t_b10 = max(config.r7_b10_floor, min(land_mean, blob_mean - 2.0 * blob_std))
    land_t = (
        max(soil_mean + config.r8_soil_sigma * soil_std, config.r8_land_floor) if math.isfinite(soil_mean) else math.inf
    )
    water_t = (
        max(water_mean + config.r8_water_sigma * water_std, config.r8_water_floor)
        if math.isfinite(water_mean)
        else math.inf
    )
    return SceneStatistics(
        r7_enabled=bool(r7),
        r7_b10_threshold=float(t_b10) if math.isfinite(t_b10) else -math.inf,
        r7_b9_b8a_threshold=float(ratio_mean + ratio_std) if math.isfinite(ratio_mean) else -math.inf,
        r8_land_threshold=float(land_t),
        r8_water_threshold=float(water_t),
    )

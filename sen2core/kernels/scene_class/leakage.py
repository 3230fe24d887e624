"""B10 surface leakage: how much bright ground shows in the cirrus band through dry air.

A scene-wide histogram (:func:`leakage_histogram`, chunk counts add up) gives the
coefficient (:func:`leakage_from_histogram`) that the cirrus tests take off B10
(:func:`cirrus_signal`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sen2core.kernels.scene_class.common import F32, normalized_difference, prepare_bands
from sen2core.kernels.scene_class.parameters import ClassificationParameters

LEAKAGE_BINS = 400
"""Bins of the B10/B11 histogram of :func:`leakage_histogram` (0 to 0.2, steps of 0.0005)."""
LEAKAGE_MAX = 0.2
"""Top of the histogram's B10/B11 range."""


def cirrus_signal(b10: ArrayLike, b11: ArrayLike, leakage: float) -> F32:
    """B10 minus what the ground leaks into it: ``B10 - leakage * B11``.

    The 1375 nm band is blind to the ground only when the air holds enough water
    vapour. Over dry air a bright surface shows in B10 in proportion to its SWIR
    reflectance (B11 is the nearest window band): thin-cirrus tests on raw B10 then
    take bright deserts for cirrus (the real T29RKH product Sen2Cor made shows it).
    """
    return np.asarray(
        np.asarray(b10, dtype=np.float32) - np.float32(leakage) * np.asarray(b11, dtype=np.float32), dtype=np.float32
    )


def leakage_histogram(bands: Mapping[str, ArrayLike]) -> NDArray[np.int64]:
    """Histogram of B10/B11 over bright land pixels (B11 >= 0.15, not snow-like: NDSI < 0.2).

    Counts add up over chunks (reach 0); :func:`leakage_from_histogram` turns the
    scene's histogram into the leakage coefficient.
    """
    b, valid = prepare_bands(bands)
    b10, b11 = b["B10"], b["B11"]
    use = valid & (b11 >= 0.15) & (normalized_difference(b["B03"], b11) < 0.2)
    ratio = np.asarray(b10[use] / b11[use], dtype=np.float64)
    # Clip the index, not the ratio: in float32 a ratio clipped just below the top rounds up to it.
    index = np.clip((ratio / LEAKAGE_MAX * LEAKAGE_BINS).astype(np.int64), 0, LEAKAGE_BINS - 1)
    return np.bincount(index, minlength=LEAKAGE_BINS).astype(np.int64)


def leakage_from_histogram(histogram: ArrayLike, config: ClassificationParameters) -> float:
    """The scene's B10 leakage coefficient: a low quantile of B10/B11 on bright land.

    Cirrus only adds to B10, so the lower tail of the ratio is the ground's own
    leakage. Without ``cirrus_leakage_min_pixels`` bright pixels, 0 (no correction).
    """
    h = np.asarray(histogram, dtype=np.int64)
    total = int(h.sum())
    if not config.cirrus_leakage_correction or total < config.cirrus_leakage_min_pixels:
        return 0.0
    k = int(np.searchsorted(np.cumsum(h), config.cirrus_leakage_quantile * total))
    return float(k * LEAKAGE_MAX / LEAKAGE_BINS)

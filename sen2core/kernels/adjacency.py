"""Background (adjacency) reflectance: a NaN-aware box mean over the adjacency range."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

Array = NDArray[np.float64]


def window_pixels(range_km: float, pixel_m: float) -> int:
    """Odd box width covering ``range_km`` (Sen2Cor ``Adj_Km``; at least 3 pixels)."""
    n = max(int(round(range_km * 1000.0 / pixel_m)), 3)
    return n if n % 2 else n + 1


def nan_smooth(values: Array, smooth: Callable[[Array], Array], min_weight: float) -> Array:
    """Apply a linear smoothing filter to the finite values only (normalised convolution).

    NaN pixels neither contribute nor stay NaN where enough valid neighbours
    (filter weight above ``min_weight``) surround them.
    """
    ok = np.isfinite(values)
    num = smooth(np.where(ok, values, 0.0).astype(np.float64))
    den = smooth(ok.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > min_weight, num / den, np.nan)


def box_mean(values: Array, size: int) -> Array:
    """Mean of the finite values in a ``size`` x ``size`` box; NaN where the box has none."""
    return nan_smooth(values, lambda v: ndimage.uniform_filter(v, size=size, mode="nearest"), 1e-9)

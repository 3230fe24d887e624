"""Background (adjacency) reflectance: a NaN-aware box mean over the adjacency range."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

Array = NDArray[np.float64]


def window_pixels(range_km: float, pixel_m: float) -> int:
    """Odd box width covering ``range_km`` (Sen2Cor ``Adj_Km``; at least 3 pixels)."""
    n = max(int(round(range_km * 1000.0 / pixel_m)), 3)
    return n if n % 2 else n + 1


def box_mean(values: Array, size: int) -> Array:
    """Mean of the finite values in a ``size`` x ``size`` box; NaN where the box has none."""
    ok = np.isfinite(values)
    num = ndimage.uniform_filter(np.where(ok, values, 0.0), size=size, mode="nearest")
    den = ndimage.uniform_filter(ok.astype(np.float64), size=size, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 1e-9, num / den, np.nan)

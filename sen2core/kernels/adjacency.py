"""Background (adjacency) reflectance: a NaN-aware box mean over the adjacency range."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sen2core.kernels.strips import row_strips

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


def bilinear_refine(coarse: Array, factor: int, shape: tuple[int, int], halo: int = 1) -> NDArray[np.float32]:
    """Bilinear values at the pixel centres of a grid ``factor`` times finer than ``coarse``.

    ``coarse`` carries ``halo`` extra cells on every side (its neighbours', or the edge
    values repeated at the image edge); the fine grid of ``shape`` starts at the corner of
    the first non-halo cell. A coarse cell's value sits at its centre.
    """
    rows, cols = shape

    def axis(n: int, size: int) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        u = (np.arange(n) + 0.5) / factor - 0.5 + halo
        u = np.clip(u, 0.0, size - 1.0)
        i0 = np.minimum(np.floor(u).astype(np.intp), size - 2) if size > 1 else np.zeros(n, dtype=np.intp)
        return i0, (u - i0) if size > 1 else np.zeros(n)

    c = np.asarray(coarse, dtype=np.float64)
    if c.shape[0] == 1 or c.shape[1] == 1:
        c = np.pad(c, ((0, 1 if c.shape[0] == 1 else 0), (0, 1 if c.shape[1] == 1 else 0)), mode="edge")
    r0, fr = axis(rows, c.shape[0])
    c0, fc = axis(cols, c.shape[1])
    # Along the rows first, on the coarse rows only: each fine row then blends two of them.
    across = c[:, c0] * (1 - fc) + c[:, c0 + 1] * fc
    out = np.empty((rows, cols), dtype=np.float32)
    for s in row_strips(rows, cols):  # temporaries in the CPU caches (see sen2core.kernels.strips)
        r, f = r0[s], fr[s]
        out[s] = across[r] * (1 - f)[:, None] + across[r + 1] * f[:, None]
    return out

"""Vectorised root finding for monotonic per-pixel retrievals."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def bisect(
    residual: Callable[[Array], Array], lo: float, hi: float, shape: tuple[int, ...], iterations: int = 12
) -> Array:
    """Root of a per-pixel residual that decreases with ``x`` on ``[lo, hi]``.

    Where the residual keeps one sign over the whole interval the result is the
    bound it points to (``lo`` when already negative at ``lo``, ``hi`` when still
    positive at ``hi``): the physical answer is then at or beyond the grid edge.
    After ``iterations`` halvings the error is ``(hi - lo) / 2**iterations``; the
    final step interpolates linearly inside the last bracket.
    """
    a = np.full(shape, lo, dtype=np.float64)
    b = np.full(shape, hi, dtype=np.float64)
    fa, fb = residual(a), residual(b)
    f_lo, f_hi = fa, fb
    for _ in range(iterations):
        m = 0.5 * (a + b)
        fm = residual(m)
        right = fm > 0  # root lies above m
        a = np.where(right, m, a)
        fa = np.where(right, fm, fa)
        b = np.where(right, b, m)
        fb = np.where(right, fb, fm)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(fa != fb, a + (b - a) * fa / (fa - fb), 0.5 * (a + b))
    x = np.clip(x, a, b)
    x = np.where(f_lo <= 0, lo, x)
    return np.where(f_hi >= 0, hi, x)

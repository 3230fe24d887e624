"""Radiometry kernels: digital numbers to reflectance, and resampling of reflectance.

Pure numpy: arrays in, arrays out, no I/O, no dask. Reflectances are float32 with NaN
for "no data", so that resampling can ignore missing pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["block_mean", "dn_to_reflectance", "upsample_nearest"]

F32 = NDArray[np.float32]


def dn_to_reflectance(
    dn: ArrayLike,
    add_offset: float,
    quantification_value: float,
    nodata: int = 0,
) -> F32:
    """Convert Sentinel-2 digital numbers to reflectance.

    ``rho = (DN + add_offset) / quantification_value``; pixels equal to ``nodata`` become
    NaN. Saturated pixels (65535) are converted like any other value.

    Parameters
    ----------
    dn
        Integer digital numbers (uint16 for Sentinel-2).
    add_offset
        ``RADIO_ADD_OFFSET`` (L1C) or ``BOA_ADD_OFFSET`` (L2A) of the band: -1000 from
        processing baseline 04.00, 0 before.
    quantification_value
        ``QUANTIFICATION_VALUE`` (10000 for every baseline so far).
    nodata
        The no-data digital number (0).

    Returns
    -------
    ndarray of float32
        Reflectance, NaN where ``dn == nodata``.
    """
    if quantification_value == 0:
        raise ValueError("quantification_value must not be 0")
    d = np.asarray(dn)
    out = (d.astype(np.float32) + np.float32(add_offset)) / np.float32(quantification_value)
    out[d == nodata] = np.nan
    return out


def block_mean(a: ArrayLike, factor: int) -> F32:
    """Aggregate by the mean of ``factor x factor`` blocks, ignoring NaN.

    Parameters
    ----------
    a
        2-D float array. Its shape need not be a multiple of ``factor``: the last row
        and column of blocks are then partial and averaged over what they hold.
    factor
        Integer aggregation factor (2 for 10 m to 20 m, 6 for 10 m to 60 m).

    Returns
    -------
    ndarray of float32
        Shape ``ceil(rows / factor), ceil(cols / factor)``; NaN where a block has no
        finite value.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    x = np.asarray(a, dtype=np.float32)
    if factor == 1:
        return x.copy()
    rows, cols = x.shape
    out_r = -(-rows // factor)
    out_c = -(-cols // factor)
    if rows % factor or cols % factor:
        padded = np.full((out_r * factor, out_c * factor), np.nan, dtype=np.float32)
        padded[:rows, :cols] = x
        x = padded

    def block_sums(v: NDArray[Any], dtype: Any) -> NDArray[Any]:
        if factor <= 3:
            # The TOA resampling (10 to 20 m, 20 to 60 m), recomputed in every pass over the
            # bands: in-place additions of strided slices are about four times faster than
            # the reductions below. Float64 sums of up to nine float32 reflectances (steps of
            # 1e-4 up to a few units) are exact, so the order of the additions is moot.
            rows = v[0::factor].astype(dtype)
            for i in range(1, factor):
                rows += v[i::factor]
            out = rows[:, 0::factor].copy()
            for j in range(1, factor):
                out += rows[:, j::factor]
            return out
        # Rows of each block first (contiguous rows), then columns: two cheap reductions
        # instead of one over a strided 4-D view.
        part = v.reshape(out_r, factor, out_c * factor).sum(axis=1, dtype=dtype)
        return np.asarray(part.reshape(out_r, out_c, factor).sum(axis=2))

    valid = np.isfinite(x)
    if valid.all():
        return np.asarray(block_sums(x, np.float64) / (factor * factor), dtype=np.float32)
    # float64 sums, and sums and counts kept apart (no empty-slice warnings from nanmean).
    total = block_sums(np.where(valid, x, np.float32(0.0)), np.float64)
    count = block_sums(valid, np.int32)
    mean = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
    return np.asarray(mean, dtype=np.float32)


def upsample_nearest(a: ArrayLike, factor: int) -> NDArray[np.generic]:
    """Refine a 2-D array by repeating each pixel ``factor x factor`` times.

    Parameters
    ----------
    a
        2-D array of any dtype.
    factor
        Integer refinement factor (2 for 20 m to 10 m).

    Returns
    -------
    ndarray
        Shape ``(rows * factor, cols * factor)``, same dtype as ``a``.
    """
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    x = np.asarray(a)
    if factor == 1:
        return x.copy()
    return np.repeat(np.repeat(x, factor, axis=0), factor, axis=1)

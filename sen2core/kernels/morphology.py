"""Neighbourhood operations on masks and class maps used by the scene classification.

Pure numpy/scipy: arrays in, arrays out. Every function documents its *reach*, the
number of pixels beyond which input does not influence output, so that a chunked
caller can give it enough overlap (``map_overlap`` depth) to be exact. Array edges
are handled as if the image continued with its edge values (``mode="nearest"``) or
with nothing (dilation), never by wrapping.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "CROSS",
    "block_any",
    "block_centres",
    "block_sum",
    "buffer_mask",
    "dilate",
    "downsample_classes",
    "erode_square",
    "gaussian_reach",
    "masked_box_mean",
    "median3",
    "nan_median3",
    "median_filter",
    "upsample_blocks",
]

BoolArray = NDArray[np.bool_]

CROSS = ndimage.generate_binary_structure(2, 1)
"""4-connected structuring element (Sen2Cor's ``iterate_structure`` base)."""


def dilate(mask: ArrayLike, iterations: int = 1) -> BoolArray:
    """4-connected binary dilation repeated ``iterations`` times (reach: ``iterations``)."""
    m = np.asarray(mask, dtype=bool)
    if iterations <= 0:
        return m.copy()
    return np.asarray(ndimage.binary_dilation(m, structure=CROSS, iterations=iterations, border_value=0))


def erode_square(mask: ArrayLike, size: int) -> BoolArray:
    """Binary erosion by a ``size x size`` square (reach: ``size // 2``).

    Pixels beyond the array edge count as set, so that a region touching the edge of
    the image is not eroded from the outside (the image has no information there).
    """
    m = np.asarray(mask, dtype=bool)
    if size <= 1:
        return m.copy()
    return np.asarray(ndimage.binary_erosion(m, structure=np.ones((size, size), dtype=bool), border_value=1))


def median3(a: ArrayLike) -> NDArray[Any]:
    """3 x 3 median filter, edges by nearest value (reach: 1). NaN-free input expected."""
    return np.asarray(ndimage.median_filter(np.asarray(a), size=3, mode="nearest"))


def nan_median3(a: ArrayLike) -> NDArray[np.float64]:
    """3 x 3 median of a field with gaps: NaN stays NaN (filled with 0 while filtering)."""
    x = np.asarray(a, dtype=np.float64)
    ok = np.isfinite(x)
    return np.where(ok, ndimage.median_filter(np.where(ok, x, 0.0), size=3, mode="nearest"), np.nan)


def median_filter(a: ArrayLike, size: int) -> NDArray[Any]:
    """``size x size`` median filter, edges by nearest value (reach: ``size // 2``); 0 or 1 = copy."""
    x = np.asarray(a)
    if size <= 1:
        return x.copy()
    return np.asarray(ndimage.median_filter(x, size=size, mode="nearest"))


def gaussian_reach(sigma: float, truncate: float = 4.0) -> int:
    """Reach in pixels of :func:`scipy.ndimage.gaussian_filter` with ``sigma`` and ``truncate``."""
    return int(truncate * float(sigma) + 0.5) if sigma > 0 else 0


def masked_box_mean(a: ArrayLike, mask: ArrayLike, size: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean of ``a`` over the ``mask`` pixels of each ``size`` x ``size`` window, and their count.

    Windows reaching beyond the array hold nothing there. Each output is a direct sum over
    its window (``correlate1d`` with ones, not a running sum), so a chunk extended by the
    reach gives bit for bit the values of the whole image. Where the window holds no mask
    pixel the mean is NaN. Reach: ``size // 2``.
    """
    m = np.asarray(mask, dtype=bool)
    v = np.where(m, np.asarray(a, dtype=np.float64), 0.0)
    ones = np.ones(size, dtype=np.float64)

    def box(x: NDArray[np.float64]) -> NDArray[np.float64]:
        y = ndimage.correlate1d(x, ones, axis=0, mode="constant", cval=0.0)
        return np.asarray(ndimage.correlate1d(y, ones, axis=1, mode="constant", cval=0.0), dtype=np.float64)

    total = box(v)
    count = box(m.astype(np.float64))
    mean = np.full(total.shape, np.nan)
    np.divide(total, count, out=mean, where=count > 0)
    return mean, count


def buffer_mask(mask: ArrayLike, radius_px: float) -> BoolArray:
    """Pixels within ``radius_px`` (Euclidean, centre to centre) of a set pixel.

    Exact Euclidean distance transform, so its cost does not grow with the radius
    (reach: ``ceil(radius_px)``). The set pixels themselves are included.
    """
    m = np.asarray(mask, dtype=bool)
    if radius_px <= 0 or not m.any():
        return m.copy()
    if m.all():
        return m.copy()
    distance = ndimage.distance_transform_edt(~m)
    return np.asarray(distance <= radius_px)


def block_any(mask: ArrayLike, factor: int) -> BoolArray:
    """Aggregate a mask to ``factor x factor`` blocks: set if any pixel of the block is set.

    The shape need not be a multiple of ``factor``: the last blocks are partial.
    """
    m = np.asarray(mask, dtype=bool)
    if factor == 1:
        return m.copy()
    rows, cols = m.shape
    out_r, out_c = -(-rows // factor), -(-cols // factor)
    padded = np.zeros((out_r * factor, out_c * factor), dtype=bool)
    padded[:rows, :cols] = m
    return np.asarray(padded.reshape(out_r, factor, out_c, factor).any(axis=(1, 3)))


def block_sum(a: ArrayLike, factor: int) -> NDArray[np.int64]:
    """Integer sum of ``factor x factor`` blocks (partial edge blocks sum what they hold)."""
    x = np.asarray(a).astype(np.int64)
    rows, cols = x.shape
    out_r, out_c = -(-rows // factor), -(-cols // factor)
    padded = np.zeros((out_r * factor, out_c * factor), dtype=np.int64)
    padded[:rows, :cols] = x
    return np.asarray(padded.reshape(out_r, factor, out_c, factor).sum(axis=(1, 3)), dtype=np.int64)


def upsample_blocks(a: ArrayLike, factor: int, shape: tuple[int, int]) -> NDArray[Any]:
    """Repeat each pixel into a ``factor x factor`` block and crop to ``shape`` (nearest neighbour)."""
    x = np.asarray(a)
    if factor == 1:
        return x[: shape[0], : shape[1]].copy()
    return np.repeat(np.repeat(x, factor, axis=0), factor, axis=1)[: shape[0], : shape[1]]


def block_centres(a: ArrayLike, factor: int) -> NDArray[Any]:
    """Nearest-neighbour resize by an integer ``factor``: the centre pixel of each block.

    As ``skimage.transform.resize(order=0)`` from ``n`` to ``n / factor`` pixels:
    pixel ``factor * i + factor // 2``; the last pixel of a partial edge block.
    """
    x = np.asarray(a)
    rows, cols = x.shape
    r = np.minimum(np.arange(-(-rows // factor)) * factor + factor // 2, rows - 1)
    c = np.minimum(np.arange(-(-cols // factor)) * factor + factor // 2, cols - 1)
    return np.asarray(x[np.ix_(r, c)])


def downsample_classes(scl: ArrayLike, factor: int = 3) -> NDArray[np.uint8]:
    """Class map at a ``factor`` times coarser grid, as Sen2Cor derives the 60 m SCL from 20 m.

    Sen2Cor 2.8 applies a 3 x 3 median filter and then resizes with nearest
    neighbour (:func:`block_centres`). Reach: 1 pixel around each block.
    """
    x = np.asarray(scl, dtype=np.uint8)
    if factor == 1:
        return x.copy()
    return np.asarray(block_centres(median3(x), factor), dtype=np.uint8)

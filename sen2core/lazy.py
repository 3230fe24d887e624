"""Thin dask adapters over the numpy kernels: resampling, neighbourhood filters, reductions.

Neighbourhood operations go through ``map_overlap`` with a depth that covers the
kernel's reach, so chunked results equal unchunked ones. Scene-wide statistics
are sums of small per-block numpy vectors, so they cost one pass and no
full-array compute.

Those sums are named (:func:`block_sum`), and so is every place that keeps an
intermediate (:func:`persist`): inside :func:`window` the same graph is computed
for a rectangle of chunk blocks only (a processing tile), the sums come from the
caller (added up over all tiles) and nothing is persisted scene-wide. A sum the
caller does not know yet stops the build with :class:`PendingSum`, carrying this
window's part of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sen2core.kernels.adjacency import box_mean as _box_mean
from sen2core.kernels.adjacency import nan_smooth
from sen2core.kernels.morphology import nan_median3
from sen2core.kernels.radiometry import block_mean, upsample_nearest

F32 = np.float32


def _meta(dtype: Any) -> NDArray[Any]:
    return np.empty((0, 0), dtype=dtype)


def downsample_mean(x: da.Array, factor: int) -> da.Array:
    """NaN-aware block mean by an integer factor; chunks must be multiples of it (except at the edge)."""
    if factor == 1:
        return x
    chunks = tuple(tuple(-(-c // factor) for c in dim) for dim in x.chunks)
    return x.map_blocks(block_mean, factor, chunks=chunks, dtype=F32, meta=_meta(F32))


def chunk_divisor(chunk_px: int, resolution_m: float, target_m: float) -> int:
    """The divisor of ``chunk_px`` whose multiple of ``resolution_m`` is nearest ``target_m``.

    A grid that much coarser has whole cells in every chunk (but the last), so its
    blocks pair one to one with the chunks.
    """
    return min((d for d in range(1, chunk_px + 1) if chunk_px % d == 0), key=lambda d: abs(d * resolution_m - target_m))


def upsample(x: da.Array, factor: int, shape: tuple[int, int]) -> da.Array:
    """Nearest-neighbour refinement by an integer factor, cropped to ``shape``."""
    if factor == 1:
        return x
    chunks = tuple(tuple(c * factor for c in dim) for dim in x.chunks)
    out = x.map_blocks(upsample_nearest, factor, chunks=chunks, dtype=x.dtype, meta=_meta(x.dtype))
    return out[: shape[0], : shape[1]]


def overlap(func: Callable[..., NDArray[Any]], x: da.Array, depth: int, dtype: Any = F32, **kwargs: Any) -> da.Array:
    """Apply a neighbourhood ``func`` block-wise with ``depth`` pixels of overlap.

    Array edges are not padded (``boundary="none"``): the kernel's own edge mode
    applies there exactly as on the whole array.
    """
    # One chunk along an axis needs no overlap; elsewhere dask merges chunks thinner than the depth.
    per_axis = {i: (0 if len(c) == 1 else min(int(depth), x.shape[i])) for i, c in enumerate(x.chunks)}
    out = x.map_overlap(func, depth=per_axis, boundary="none", dtype=dtype, meta=_meta(dtype), **kwargs)
    # Back on the input's chunks, which other arrays are paired with block by block.
    return out.rechunk(x.chunks) if out.chunks != x.chunks else out


def _gaussian_nan(block: NDArray[Any], sigma: float) -> NDArray[np.float32]:
    smooth = lambda v: ndimage.gaussian_filter(v, sigma, mode="nearest")  # noqa: E731
    return nan_smooth(block.astype(np.float64), smooth, 1e-6).astype(F32)


def gaussian(x: da.Array, sigma_px: float) -> da.Array:
    """NaN-aware Gaussian smoothing (NaN pixels neither contribute nor stay NaN if a neighbour is valid)."""
    return overlap(_gaussian_nan, x, math.ceil(4.0 * sigma_px), sigma=sigma_px)


def _box_block(block: NDArray[Any], size: int) -> NDArray[np.float32]:
    return _box_mean(block.astype(np.float64), size).astype(F32)


def box_mean(x: da.Array, size: int) -> da.Array:
    """NaN-aware box mean of odd width ``size``."""
    return overlap(_box_block, x, size // 2 + 1, size=size)


def _median3(block: NDArray[Any]) -> NDArray[np.float32]:
    return nan_median3(block).astype(F32)


def median3(x: da.Array) -> da.Array:
    """3x3 median, keeping NaN where the input is NaN."""
    return overlap(_median3, x, 1)


@dataclass(frozen=True)
class Window:
    """A rectangle of chunk blocks (``[start, stop)`` block indices) and the scene-wide sums known so far."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    known: Mapping[str, NDArray[np.float64]]
    probe: bool = False
    """Stop at the first unknown sum without computing this window's part (``PendingSum.part`` is empty)."""
    store: str | None = None
    """Folder of the stored checkpoints (:func:`checkpoint`, :func:`stage_layer_path`)."""

    def blocks(self, grid: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Indices of this window's blocks in a chunk grid of shape ``grid`` (rows, cols)."""
        if self.rows[1] > grid[0] or self.cols[1] > grid[1]:
            raise ValueError(f"window {self.rows}x{self.cols} exceeds the chunk grid {grid}")
        return [(r, c) for r in range(*self.rows) for c in range(*self.cols)]


class PendingSum(Exception):  # noqa: N818 - control flow, not an error: never leaves sen2core
    """Raised inside :func:`window` by a scene-wide sum not in ``known``; ``part`` is this window's share."""

    def __init__(self, name: str, part: NDArray[np.float64]) -> None:
        super().__init__(name)
        self.name, self.part = name, part


class PendingStage(Exception):  # noqa: N818 - control flow, not an error: never leaves sen2core
    """Raised inside :func:`window` by a :func:`checkpoint` not stored yet; ``layers`` are its lazy arrays."""

    def __init__(self, name: str, layers: Mapping[str, da.Array]) -> None:
        super().__init__(name)
        self.name, self.layers = name, dict(layers)


_WINDOW: ContextVar[Window | None] = ContextVar("sen2core_window", default=None)


def stage_key(name: str) -> str:
    """The key of ``known`` that says checkpoint ``name`` is stored."""
    return f"stage:{name}"


def stage_layer_path(store: str, name: str, layer: str) -> str:
    """Where layer ``layer`` of checkpoint ``name`` is stored (a staged GeoTIFF, see ``sen2core.io.write``)."""
    return f"{store}/.stage-{name}/{layer}.part.tif"


@contextmanager
def window(
    rows: tuple[int, int],
    cols: tuple[int, int],
    known: Mapping[str, Any],
    probe: bool = False,
    store: str | None = None,
) -> Iterator[Window]:
    """Build graphs for the chunk blocks ``rows`` x ``cols`` only, with the scene-wide sums ``known``."""
    w = Window(rows, cols, {k: np.asarray(v, dtype=np.float64) for k, v in known.items()}, probe, store)
    token = _WINDOW.set(w)
    try:
        yield w
    finally:
        _WINDOW.reset(token)


def current_window() -> Window | None:
    """The active :func:`window`, if any."""
    return _WINDOW.get()


def persist(*arrays: da.Array) -> tuple[da.Array, ...]:
    """``dask.persist``, except inside :func:`window`: a tile must not compute the whole scene."""
    if _WINDOW.get() is not None:
        return arrays
    return tuple(dask.persist(*arrays))


def checkpoint(name: str, layers: Mapping[str, da.Array]) -> dict[str, da.Array]:
    """Intermediates that later stages read widely (the scene classification): kept, not recomputed.

    Outside a :func:`window`: persisted in the cluster. Inside one: read back from the
    files a previous round stored (every tile's window), or, when not stored yet,
    :class:`PendingStage` is raised for the caller to store this window's part.
    """
    w = _WINDOW.get()
    if w is None:
        return dict(zip(layers, persist(*layers.values()), strict=True))
    if stage_key(name) not in w.known or w.store is None:
        raise PendingStage(name, layers)
    from sen2core.io.lazy import stored_array  # reading files is the io package's business

    return {k: stored_array(stage_layer_path(w.store, name, k), v.chunks, v.dtype) for k, v in layers.items()}


def block_sum(func: Callable[..., NDArray[np.float64]], *arrays: da.Array, name: str, **kwargs: Any) -> Any:
    """Scene-wide sum over blocks of ``func(*aligned_blocks, **kwargs)`` (a small float64 vector).

    Arrays must share their chunking. Outside a :func:`window` the result is a
    :class:`dask.delayed.Delayed` to compute together with others. Inside one, it is
    the total the caller gave under ``name`` (an array: ``dask.compute`` passes it
    through), or, when unknown, this window's part is computed and raised as
    :class:`PendingSum`.
    """
    if any(isinstance(v, da.Array) for v in kwargs.values()):
        # A keyword array would reach every block whole, not block by block.
        raise TypeError("block_sum takes arrays as positional arguments only")
    grids = [a.to_delayed() for a in arrays]
    shape = grids[0].shape
    for g in grids[1:]:
        if g.shape != shape:
            raise ValueError("block_sum needs arrays with the same chunk grid")
    w = _WINDOW.get()
    if w is not None and name in w.known:
        return w.known[name]
    if w is not None and w.probe:
        raise PendingSum(name, np.zeros(0))
    part = dask.delayed(func, pure=True)
    blocks = list(np.ndindex(*shape)) if w is None else w.blocks(shape)
    parts = [part(*(g[idx] for g in grids), **kwargs) for idx in blocks]
    total = dask.delayed(sum, pure=True)(parts, np.zeros(1))
    if w is not None:
        (value,) = dask.compute(total)
        raise PendingSum(name, np.asarray(value, dtype=np.float64))
    return total

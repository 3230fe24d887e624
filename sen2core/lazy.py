"""Thin dask adapters over the numpy kernels: resampling, neighbourhood filters, reductions.

Neighbourhood operations go through :func:`halo_map` with a depth that covers the
kernel's reach, so chunked results equal unchunked ones. Scene-wide statistics
are sums of small per-block numpy vectors, so they cost one pass and no
full-array compute.

The sums are explicit (:class:`BlockSums`): per-block parts that a caller adds
up over the whole scene at once, or computes window by window (processing tiles)
and adds up afterwards; either way the total is the same, bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import dask.array as da
import numpy as np
from dask.base import compute, tokenize
from dask.base import persist as dask_persist
from dask.delayed import Delayed, delayed
from dask.highlevelgraph import HighLevelGraph
from numpy.typing import NDArray
from scipy import ndimage

from sen2core.kernels.adjacency import box_mean as _box_mean
from sen2core.kernels.adjacency import nan_smooth
from sen2core.kernels.interp import multilinear
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
    out: da.Array = da.map_blocks(block_mean, x, factor, chunks=chunks, dtype=F32, meta=_meta(F32))
    return out


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
    out: da.Array = da.map_blocks(upsample_nearest, x, factor, chunks=chunks, dtype=x.dtype, meta=_meta(x.dtype))
    cropped: da.Array = out[: shape[0], : shape[1]]
    return cropped


def _spans(
    bounds: NDArray[np.int64], index: int, depth: int, boundary: str
) -> tuple[list[tuple[int, slice]], tuple[int, int], tuple[int, int]]:
    """Source blocks and slices that extend block ``index`` by ``depth`` along one axis.

    Returns the (block, slice) pairs in order, the edge padding (before, after) and the
    trim (before, after) that takes the extended result back to the block.
    """
    start, stop, size = int(bounds[index]), int(bounds[index + 1]), int(bounds[-1])
    lo, hi = max(start - depth, 0), min(stop + depth, size)
    pieces = []
    for b in range(len(bounds) - 1):
        b0, b1 = int(bounds[b]), int(bounds[b + 1])
        if b1 > lo and b0 < hi:
            pieces.append((b, slice(max(lo, b0) - b0, min(hi, b1) - b0)))
    pad = (depth - (start - lo), depth - (hi - stop)) if boundary == "nearest" else (0, 0)
    return pieces, pad, (start - lo + pad[0], hi - stop + pad[1])


def _halo_block(
    func: Callable[..., NDArray[Any]], late: list[Any], cuts: list[list[list[tuple[slice, slice]]]],
    pad: tuple[tuple[int, int], ...], trim: tuple[tuple[int, int], ...] | None, *grids: list[list[NDArray[Any]]],
) -> NDArray[Any]:  # fmt: skip
    extended = []
    for grid, cut in zip(grids, cuts, strict=True):
        a = np.block(
            [
                [blk[..., rs, cs] for blk, (rs, cs) in zip(line, cut_line, strict=True)]
                for line, cut_line in zip(grid, cut, strict=True)
            ]
        )
        if any(pad[0]) or any(pad[1]):
            a = np.pad(a, [(0, 0)] * (a.ndim - 2) + list(pad), mode="edge")
        extended.append(a)
    out = func(*extended, late=late)
    if trim is None:
        return out
    (t0, b0), (t1, b1) = trim
    return out[..., t0 : out.shape[-2] - b0, t1 : out.shape[-1] - b1]


def _edge(block: NDArray[Any], rows: slice, cols: slice) -> NDArray[Any]:
    # A copy: a view would keep the whole neighbour block alive until the halo task runs.
    return np.array(block[..., rows, cols])


#: Blocks larger than this reach a neighbour's halo task as the strip it needs (one small task
#: each), not whole: whole blocks would stay in memory until all their neighbours have run
#: (+1.1 GiB at the peak on a full tile at 10 m); small ones (coarse grids) go whole.
HALO_WHOLE_BLOCK_BYTES = 1 << 20


def _with_late(
    func: Callable[..., NDArray[Any]], names: tuple[str, ...], *blocks: NDArray[Any], late: list[Any], **kwargs: Any
) -> NDArray[Any]:
    return func(*blocks, **kwargs, **dict(zip(names, late, strict=True)))


def halo_map(
    func: Callable[..., NDArray[Any]],
    *arrays: da.Array,
    depth: int,
    dtype: Any = F32,
    chunks: tuple[tuple[int, ...], ...] | None = None,
    boundary: Literal["none", "nearest"] = "none",
    trim: bool = True,
    **kwargs: Any,
) -> da.Array:
    """Apply ``func`` to every chunk block extended by ``depth`` pixels of its neighbours, one task a block.

    Parameters
    ----------
    func
        ``func(*extended_blocks, **kwargs)``: one array per input, the extended blocks.
    arrays
        Arrays with the same chunks on their last two axes (rows, columns); leading
        axes (a stack of layers) must be one chunk.
    depth
        Pixels of neighbours on each side. A neighbourhood may span several blocks
        (chunks thinner than ``depth``): every block it touches is read.
    chunks
        The output's chunks (default: the first array's). Leading output axes are one chunk.
    boundary
        ``"none"``: at the image edge the block is not extended (the kernel's own edge
        mode applies, as on the whole image); ``"nearest"``: extended by repeating the edge.
    trim
        Cut the result back to the block (``func`` returns the extended shape); without
        it ``func`` returns the output block itself (given as ``chunk_shape``).

    Each block's result depends only on the pixels within ``depth`` of it, so a window's
    blocks, computed from a window with that margin, are those of the whole image, bit
    for bit. Unlike ``dask.array.map_overlap`` this is one task a block (no slicing and
    concatenating tasks, no rechunking of thin chunks), which is what the scheduler pays for.
    """
    if any(isinstance(v, da.Array) for v in kwargs.values()):
        raise TypeError("halo_map takes arrays as positional arguments only")
    # Delayed keyword values (scene-wide figures) are computed first and given to every block.
    late = {k: v for k, v in kwargs.items() if isinstance(v, Delayed)}
    fixed = {k: v for k, v in kwargs.items() if k not in late}
    keys = [v.key for v in late.values()]
    grid = arrays[0].chunks[-2:]
    for a in arrays:
        if a.chunks[-2:] != grid or any(len(c) != 1 for c in a.chunks[:-2]):
            raise ValueError("halo_map needs arrays with the same row/column chunks and one chunk on leading axes")
    out_chunks = tuple(chunks) if chunks is not None else (*arrays[0].chunks[:-2], *grid)
    bounds = [np.cumsum((0, *c)) for c in grid]
    label = getattr(func, "__name__", "halo").lstrip("_") or "halo"
    name = f"{label}-halo-{tokenize(func, kwargs, [a.name for a in arrays], depth, boundary, out_chunks, trim)}"
    lead = (0,) * (len(out_chunks) - 2)

    big = [max(grid[0]) * max(grid[1]) * math.prod(a.shape[:-2]) * a.dtype.itemsize > HALO_WHOLE_BLOCK_BYTES
           for a in arrays]  # fmt: skip
    layer: dict[Any, Any] = {}
    for i in range(len(grid[0])):
        row_spans, row_pad, row_trim = _spans(bounds[0], i, depth, boundary)
        for j in range(len(grid[1])):
            col_spans, col_pad, col_trim = _spans(bounds[1], j, depth, boundary)
            shape: dict[str, Any] = {} if trim else {"chunk_shape": (out_chunks[-2][i], out_chunks[-1][j])}
            fn = functools.partial(_with_late, func, tuple(late), **fixed, **shape)
            grids, cuts = [], []
            for n, a in enumerate(arrays):
                grid_a, cut_a = [], []
                for rb, rs in row_spans:
                    keys_line, cut_line = [], []
                    for cb, cs in col_spans:
                        src = (a.name, *((0,) * (a.ndim - 2)), rb, cb)
                        if (rb, cb) != (i, j) and big[n]:
                            edge = (f"{name}-edge{n}", i, j, rb, cb)
                            layer[edge] = (_edge, src, rs, cs)
                            keys_line.append(edge)
                            cut_line.append((slice(None), slice(None)))
                        else:
                            keys_line.append(src)
                            cut_line.append((rs, cs))
                    grid_a.append(keys_line)
                    cut_a.append(cut_line)
                grids.append(grid_a)
                cuts.append(cut_a)
            cut = (row_trim, col_trim) if trim else None
            layer[(name, *lead, i, j)] = (_halo_block, fn, keys, cuts, (row_pad, col_pad), cut, *grids)
    dependencies: list[Any] = [*arrays, *late.values()]
    graph = HighLevelGraph.from_collections(name, layer, dependencies=dependencies)
    return da.Array(graph, name, out_chunks, dtype=dtype, meta=np.empty((0,) * len(out_chunks), dtype=dtype))


def overlap(func: Callable[..., NDArray[Any]], x: da.Array, depth: int, dtype: Any = F32, **kwargs: Any) -> da.Array:
    """Apply a neighbourhood ``func`` block-wise with ``depth`` pixels of overlap (:func:`halo_map`).

    Array edges are not padded: the kernel's own edge mode applies there exactly as on
    the whole array.
    """
    return halo_map(func, x, depth=int(depth), dtype=dtype, **kwargs)


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


def _node_field_block(
    like: NDArray[Any], *, grid: NDArray[np.float64], shape: tuple[int, int], block_info: dict[Any, Any] | None = None
) -> NDArray[np.float32]:
    (r0, r1), (c0, c1) = (block_info or {})[0]["array-location"]
    # Pixel centres in node units: the first and last nodes lie on the array's outer edges.
    rows = (np.arange(r0, r1) + 0.5) / shape[0] * (grid.shape[0] - 1)
    cols = (np.arange(c0, c1) + 0.5) / shape[1] * (grid.shape[1] - 1)
    nodes = [np.arange(n, dtype=np.float64) for n in grid.shape]
    return multilinear(grid, nodes, [rows[:, None], cols[None, :]]).astype(F32)


def node_field(grid: Any, like: da.Array) -> da.Array:
    """A smooth field given on a node grid over the whole of ``like`` (corner nodes on its outer edges),
    interpolated bilinearly at the centres of ``like``'s pixels, with ``like``'s chunks.

    Each pixel's value depends only on its position, so any window of it equals the whole array's.
    """
    values = np.asarray(grid, dtype=np.float64)
    shape = (int(like.shape[0]), int(like.shape[1]))
    field: da.Array = da.map_blocks(_node_field_block, like, grid=values, shape=shape, dtype=F32)
    return field


def persist(*arrays: da.Array) -> tuple[da.Array, ...]:
    """``dask.persist``: intermediates that one stage reads several times, kept in the cluster."""
    return tuple(dask_persist(*arrays))


@dataclass(frozen=True)
class BlockSums:
    """A scene-wide sum over chunk blocks, still in parts: one small float64 vector per block.

    The parts are lazy (:class:`dask.delayed.Delayed`). :meth:`total` adds all of
    them; :meth:`parts` computes a window's, and :func:`add_block_parts` adds parts
    computed apart (processing tiles) in the same order as :meth:`total`, so a
    scene-wide figure is bit for bit the same however its blocks were computed.
    """

    name: str
    grid: tuple[int, ...]
    """Chunk blocks (rows, columns)."""
    blocks: Mapping[tuple[int, ...], Any]
    """Block index -> delayed part."""

    def total(self) -> Any:
        """The delayed sum of every block's part (row-major order)."""
        return delayed(_add_in_order, pure=True)([self.blocks[i] for i in np.ndindex(*self.grid)])

    def parts(self, rows: tuple[int, int], cols: tuple[int, int]) -> dict[tuple[int, ...], NDArray[np.float64]]:
        """Compute the parts of the blocks ``rows`` x ``cols`` (``[start, stop)`` indices)."""
        if rows[1] > self.grid[0] or cols[1] > self.grid[1]:
            raise ValueError(f"window {rows}x{cols} exceeds the chunk grid {self.grid}")
        keys = [(r, c) for r in range(*rows) for c in range(*cols)]
        values = compute(*(self.blocks[k] for k in keys))
        return {k: np.asarray(v, dtype=np.float64) for k, v in zip(keys, values, strict=True)}


def _add_in_order(parts: list[Any]) -> NDArray[np.float64]:
    total = np.zeros(1)
    for p in parts:
        total = total + np.asarray(p, dtype=np.float64)
    return np.asarray(total, dtype=np.float64)


def add_block_parts(parts: Mapping[tuple[int, ...], Any], grid: tuple[int, ...]) -> NDArray[np.float64]:
    """The total of parts computed apart (every block of ``grid`` once), as :meth:`BlockSums.total` adds them."""
    missing = [i for i in np.ndindex(*grid) if i not in parts]
    if missing:
        raise ValueError(f"{len(missing)} block part(s) missing, e.g. block {missing[0]}")
    return _add_in_order([parts[i] for i in np.ndindex(*grid)])


def block_sums(func: Callable[..., NDArray[np.float64]], *arrays: da.Array, name: str, **kwargs: Any) -> BlockSums:
    """The parts of the scene-wide sum ``name`` of ``func(*aligned_blocks, **kwargs)`` (a small float64 vector).

    Arrays must share their chunking.
    """
    if any(isinstance(v, da.Array) for v in kwargs.values()):
        # A keyword array would reach every block whole, not block by block.
        raise TypeError("block_sums takes arrays as positional arguments only")
    grids = [a.to_delayed() for a in arrays]
    shape = grids[0].shape
    for g in grids[1:]:
        if g.shape != shape:
            raise ValueError("block_sums needs arrays with the same chunk grid")
    part = delayed(func, pure=True)
    blocks = {idx: part(*(g[idx] for g in grids), **kwargs) for idx in np.ndindex(*shape)}
    return BlockSums(name, tuple(int(n) for n in shape), blocks)

"""Process one product by processing tiles: rectangles of chunk blocks, each computed on its own.

The unit of :func:`sen2core.pipeline.process_product` is the product: one graph,
whose scene-wide statistics are computed between its stages. Here the same graph
is built in every tile's task and computed for that tile's chunk blocks only
(:func:`sen2core.lazy.window`): dask culls it to the tile and to the overlaps its
kernels read from the neighbouring blocks (cloud shadows, adjacency, smoothing), so
a tile's pixels are those of the whole-product run. A tile is aligned across
10, 20 and 60 m because chunks are (18.3 km by default: 1830, 915 and 305 px).

The scene-wide statistics are sums over blocks. They are reduced between rounds:

1. :func:`plan_tiles` splits the product (and creates the staging folder);
2. a round is a :class:`Step` (:func:`next_step` names the one after what is known):

   - a ``sum``: :func:`tile_sum` computes one tile's part of the first scene-wide sum not
     known yet and :func:`add_parts` adds the tiles' parts. :data:`SCREENING_SUMS` (B10
     leakage and the other classification sums) come first, then the correction's: cirrus
     gamma (when enabled), DDV aerosol, negative-reflectance check, water-vapour land mean;
   - a ``stage``: the scene classification, which every later stage reads with wide
     neighbourhoods, is computed once per tile (:func:`tile_stage`, into files that
     :func:`prepare_stage` pre-allocates) and read back by the later rounds instead of
     being computed again with every tile's margins (:func:`sen2core.lazy.checkpoint`);

3. :func:`prepare_outputs` pre-allocates the staged rasters, and :func:`write_tile`
   writes each tile's windows of every output, with its class counts;
4. :func:`package` encodes the rasters, writes metadata and STAC item, and publishes.

Rounds share nothing but files and the small sums, so each decodes the tile's bands
again (with its neighbours' margins). :func:`process_tiled` runs the rounds in this
process, one tile after the other; the Prefect flows (``tasks.tiles``) map them over
the task runner's cluster.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sen2core import lazy
from sen2core.errors import ConfigurationError, OutputError
from sen2core.io.write import RasterSpec, create_staged, store_blocks
from sen2core.package import (
    ProductRasters,
    is_done,
    layout_outputs,
    remove_stale_siblings,
    temporary_sibling,
    write_product,
)
from sen2core.pipeline import L2AResult, ProcessingConfig, _build, _Clock, _open, _skipped, _summary
from sen2core.scl import percentages_from_counts

log = logging.getLogger(__name__)

__all__ = [
    "SCREENING_SUMS",
    "Tile",
    "TilePart",
    "TilePlan",
    "TileWritten",
    "add_parts",
    "Step",
    "next_step",
    "prepare_stage",
    "stage_stored",
    "tile_stage",
    "package",
    "plan_tiles",
    "prepare_outputs",
    "process_tiled",
    "tile_sum",
    "write_tile",
]

#: Scene-wide sums of the scene classification (the rest belong to the atmospheric correction).
SCREENING_SUMS = frozenset({"b10_leakage", "snow_condition_mean", "r7_r8_statistics"})
_COUNTS = ".class-counts"
#: Chunk edges must be multiples of this (the scene classification's coarsest grid, 300 m).
TILE_UNIT_M = 300.0


@dataclass(frozen=True)
class Tile:
    """One processing tile: chunk blocks ``rows`` x ``cols`` (``[start, stop)``) of the product's grid."""

    index: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    bounds: tuple[float, float, float, float]
    """``(left, bottom, right, top)`` in the product's CRS (metres)."""

    @property
    def label(self) -> str:
        """``r{row}c{col}`` of its first block."""
        return f"r{self.rows[0]}c{self.cols[0]}"


@dataclass(frozen=True)
class Step:
    """One round over the tiles: a scene-wide ``sum`` to reduce, or a ``stage`` (checkpoint) to store."""

    kind: Literal["sum", "stage"]
    name: str


@dataclass(frozen=True)
class TilePlan:
    """A product split into processing tiles, and where its rasters are staged."""

    l1c_href: str
    output_root: str
    config: ProcessingConfig
    product_id: str
    l2a_id: str
    final: str
    staging: str
    grid: tuple[int, int]
    """Chunk blocks of the product (rows, columns)."""
    tiles: tuple[Tile, ...]
    first_step: Step | None
    """The first round (None: the rasters can be written at once)."""


@dataclass(frozen=True)
class TilePart:
    """A tile's part of scene-wide sum ``name``."""

    tile: int
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class TileWritten:
    """A tile whose windows of every output are in the staged rasters."""

    tile: int
    blocks: int


def _quiet() -> _Clock:
    return _Clock(None)


def _graph(plan: TilePlan, tile: Tile, known: Mapping[str, Sequence[float]], probe: bool = False) -> Any:
    product, _, _ = _open(plan.l1c_href, plan.output_root, plan.config)
    with lazy.window(tile.rows, tile.cols, known, probe=probe, store=plan.staging):
        return product, _build(product, plan.config, _quiet())


def plan_tiles(
    l1c_href: str | os.PathLike[str],
    output_root: str | os.PathLike[str],
    config: ProcessingConfig | None = None,
    tile_blocks: int = 2,
) -> TilePlan | L2AResult:
    """Split a product into tiles of ``tile_blocks`` x ``tile_blocks`` chunk blocks.

    Returns the :class:`~sen2core.pipeline.L2AResult` of a product already done
    (and not ``config.overwrite``) instead: there is nothing to plan.
    """
    if tile_blocks < 1:
        raise ValueError(f"tile_blocks must be at least 1, not {tile_blocks}")
    config = config or ProcessingConfig()
    if config.chunk_m % TILE_UNIT_M:
        # The scene classification aligns its chunks to its 300 m grids: a chunk grid that is
        # not aligned already would differ from the one the tiles are cut from.
        raise ConfigurationError(
            f"processing tiles need chunk_m in multiples of {TILE_UNIT_M:g} m, not {config.chunk_m:g}"
        )
    product, ident, final = _open(l1c_href, output_root, config)
    if is_done(final) and not config.overwrite:
        return _skipped(product, ident, final)
    wr = 60 if config.resolution == 60 else 20
    grid = tuple(product.toa("B04", wr).numblocks)
    gb = product.geobox(wr)
    chunk = product.chunk_pixels(wr) * wr
    left, top = gb.transform.c, gb.transform.f
    tiles = []
    for r in range(0, grid[0], tile_blocks):
        for c in range(0, grid[1], tile_blocks):
            rows, cols = (r, min(r + tile_blocks, grid[0])), (c, min(c + tile_blocks, grid[1]))
            bounds = (left + c * chunk, max(top - rows[1] * chunk, top - gb.shape[0] * wr),
                      min(left + cols[1] * chunk, left + gb.shape[1] * wr), top - r * chunk)  # fmt: skip
            tiles.append(Tile(len(tiles), rows, cols, bounds))
    remove_stale_siblings(final)
    staging = temporary_sibling(final)
    plan = TilePlan(str(l1c_href), str(output_root), config, product.product_id, ident, str(final), str(staging),
                    (int(grid[0]), int(grid[1])), tuple(tiles), None)  # fmt: skip
    first = next_step(plan, {})
    log.info("%s: %d processing tile(s) of %dx%d chunk blocks", ident, len(tiles), tile_blocks, tile_blocks)
    return TilePlan(**{**plan.__dict__, "first_step": first})


def next_step(plan: TilePlan, known: Mapping[str, Sequence[float]]) -> Step | None:
    """The round that follows ``known``; None when the rasters can be written. Computes nothing."""
    try:
        _graph(plan, plan.tiles[0], known, probe=True)
    except lazy.PendingSum as pending:
        return Step("sum", pending.name)
    except lazy.PendingStage as pending:
        return Step("stage", pending.name)
    return None


def _stage_outputs(pending: lazy.PendingStage, geobox: Any) -> dict[str, tuple[Any, RasterSpec]]:
    out = {}
    for layer, arr in pending.layers.items():
        stored = arr.astype(np.uint8) if arr.dtype == bool else arr
        out[layer] = (stored, RasterSpec(geobox, str(stored.dtype), None, (layer,)))
    return out


def _pending_stage(plan: TilePlan, tile: Tile, known: Mapping[str, Sequence[float]], probe: bool) -> tuple[
        lazy.PendingStage, Any]:  # fmt: skip
    try:
        product, _ = _graph(plan, tile, known, probe=probe)
    except lazy.PendingStage as pending:
        wr = 60 if plan.config.resolution == 60 else 20
        product, _, _ = _open(plan.l1c_href, plan.output_root, plan.config)
        return pending, product.geobox(wr)
    raise OutputError(f"{plan.l2a_id}: no intermediate left to store")


def prepare_stage(plan: TilePlan, known: Mapping[str, Sequence[float]], name: str) -> list[str]:
    """Pre-allocate the files of checkpoint ``name`` (the next round); return its layers."""
    pending, geobox = _pending_stage(plan, plan.tiles[0], known, probe=True)
    if pending.name != name:
        raise OutputError(f"{plan.l2a_id}: the next intermediate is {pending.name}, not {name}")
    folder = os.path.dirname(lazy.stage_layer_path(plan.staging, name, "x"))
    create_staged(_stage_outputs(pending, geobox), folder)
    return sorted(pending.layers)


def tile_stage(plan: TilePlan, tile: Tile, known: Mapping[str, Sequence[float]]) -> TileWritten:
    """Compute this tile's window of the next checkpoint (the scene classification) and store it."""
    pending, geobox = _pending_stage(plan, tile, known, probe=False)
    folder = os.path.dirname(lazy.stage_layer_path(plan.staging, pending.name, "x"))
    store_blocks(_stage_outputs(pending, geobox), folder, tile.rows, tile.cols)
    return TileWritten(tile.index, (tile.rows[1] - tile.rows[0]) * (tile.cols[1] - tile.cols[0]))


def stage_stored(known: Mapping[str, Sequence[float]], name: str) -> dict[str, tuple[float, ...]]:
    """``known`` plus the mark that checkpoint ``name`` is stored for every tile."""
    return {**{k: tuple(v) for k, v in known.items()}, lazy.stage_key(name): ()}


def tile_sum(plan: TilePlan, tile: Tile, known: Mapping[str, Sequence[float]]) -> TilePart | None:
    """This tile's part of the first scene-wide sum not in ``known`` (None: all are known)."""
    try:
        _graph(plan, tile, known)
    except lazy.PendingSum as pending:
        return TilePart(tile.index, pending.name, tuple(float(v) for v in np.ravel(pending.part)))
    return None


def add_parts(parts: Sequence[TilePart | None], plan: TilePlan) -> tuple[str, tuple[float, ...]]:
    """The scene-wide sum from every tile's part (in tile order)."""
    if len(parts) != len(plan.tiles) or any(p is None for p in parts):
        raise OutputError(f"{plan.l2a_id}: {len(plan.tiles)} tile parts expected, got {len(parts)}")
    names = {p.name for p in parts if p is not None}
    if len(names) != 1:
        raise OutputError(f"{plan.l2a_id}: tiles disagree on the sum to reduce: {sorted(names)}")
    ordered = sorted((p for p in parts if p is not None), key=lambda p: p.tile)
    total = np.sum([np.asarray(p.values) for p in ordered], axis=0)
    return names.pop(), tuple(float(v) for v in np.ravel(total))


def _product_rasters(plan: TilePlan, product: Any, graph: Any, percentages: dict[str, float]) -> ProductRasters:
    summary = _summary(product, plan.l2a_id, plan.config, graph, percentages, {})
    return ProductRasters(product, plan.l2a_id, graph.rasters, summary, plan.config.resolution)


def prepare_outputs(plan: TilePlan, known: Mapping[str, Sequence[float]]) -> list[str]:
    """Pre-allocate the staged raster of every output (all sums known); return their names."""
    product, graph = _graph(plan, plan.tiles[0], known)
    outputs, stage_spec = layout_outputs(_product_rasters(plan, product, graph, {}), plan.config.format)
    for name, (arr, _) in outputs.items():
        if tuple(arr.numblocks[-2:]) != plan.grid:
            raise OutputError(f"{name}: chunk grid {arr.numblocks[-2:]} is not the product's {plan.grid}")
    create_staged(outputs, plan.staging, stage_spec)
    (Path(plan.staging) / _COUNTS).mkdir(exist_ok=True)
    return sorted(outputs)


class _CountsTarget:
    """``da.store`` target of per-block class counts: one ``.npy`` per block (a rewrite replaces it)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        for i in range(value.shape[0]):
            for j in range(value.shape[1]):
                name = os.path.join(self.folder, f"{key[0].start + i}-{key[1].start + j}")
                np.save(name + ".tmp.npy", value[i, j])
                os.replace(name + ".tmp.npy", name + ".npy")


def write_tile(plan: TilePlan, tile: Tile, known: Mapping[str, Sequence[float]]) -> TileWritten:
    """Compute this tile's windows of every output into the staged rasters, with its class counts."""
    product, graph = _graph(plan, tile, known)
    outputs, _ = layout_outputs(_product_rasters(plan, product, graph, {}), plan.config.format)
    per_block = graph.classification.class_counts_per_block()
    window = (slice(*tile.rows), slice(*tile.cols))
    counts = (per_block.blocks[window], _CountsTarget(os.path.join(plan.staging, _COUNTS)), (*window, slice(None),
              slice(None)))  # fmt: skip
    store_blocks(outputs, plan.staging, tile.rows, tile.cols, extra=[counts])
    n = (tile.rows[1] - tile.rows[0]) * (tile.cols[1] - tile.cols[0])
    return TileWritten(tile.index, n)


def package(
    plan: TilePlan, known: Mapping[str, Sequence[float]], seconds: Mapping[str, float] | None = None
) -> L2AResult:
    """Encode the staged rasters, write the metadata and the STAC item (or ``MTD_MSIL2A.xml``), publish.

    Raises
    ------
    OutputError
        A tile's rasters were not written.
    """
    folder = Path(plan.staging) / _COUNTS
    expected = [f"{r}-{c}.npy" for r in range(plan.grid[0]) for c in range(plan.grid[1])]
    missing = [n for n in expected if not (folder / n).is_file()]
    if missing:
        raise OutputError(f"{plan.l2a_id}: {len(missing)} chunk block(s) not written, e.g. {missing[0]}")
    counts = np.sum([np.load(folder / n) for n in expected], axis=0)
    shutil.rmtree(folder)
    for stage in Path(plan.staging).glob(".stage-*"):
        shutil.rmtree(stage)
    percentages = percentages_from_counts(counts, plan.config.classification)
    product, graph = _graph(plan, plan.tiles[0], known)
    rasters = _product_rasters(plan, product, graph, percentages)
    rasters.summary["seconds"] = dict(seconds or {})
    rasters.summary["processing_tiles"] = len(plan.tiles)
    files = write_product(rasters, Path(plan.final), plan.config.format, staged=Path(plan.staging))
    return L2AResult(plan.product_id, plan.l2a_id, plan.final, "done", percentages, graph.atmosphere,
                     dict(seconds or {}), tuple(files))  # fmt: skip


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - since, 2)
        return now


def process_tiled(
    l1c_href: str | os.PathLike[str],
    output_root: str | os.PathLike[str],
    config: ProcessingConfig | None = None,
    tile_blocks: int = 2,
    progress: Callable[[str], None] | None = None,
) -> L2AResult:
    """Process a product tile by tile in this process (the rounds of the module docstring).

    The same product as :func:`sen2core.pipeline.process_product` writes: a reference
    for the tiled flows and for measuring what tiling costs.
    """
    timer = _Timer()
    t = time.perf_counter()
    plan = plan_tiles(l1c_href, output_root, config, tile_blocks)
    if isinstance(plan, L2AResult):
        return plan
    t = timer.add("plan", t)
    known: dict[str, tuple[float, ...]] = {}
    step = plan.first_step
    while step is not None:
        if progress:
            progress(f"{step.kind} {step.name}")
        if step.kind == "stage":
            prepare_stage(plan, known, step.name)
            for tile in plan.tiles:
                tile_stage(plan, tile, known)
            known = stage_stored(known, step.name)
            t = timer.add(f"{step.name} tiles", t)
        else:
            parts = [tile_sum(plan, tile, known) for tile in plan.tiles]
            reduced, total = add_parts(parts, plan)
            known[reduced] = total
            t = timer.add("screening sums" if reduced in SCREENING_SUMS else "correction sums", t)
        step = next_step(plan, known)
    if progress:
        progress("write tiles")
    prepare_outputs(plan, known)
    for tile in plan.tiles:
        write_tile(plan, tile, known)
    t = timer.add("write tiles", t)
    if progress:
        progress("package")
    result = package(plan, known, timer.seconds)
    timer.add("package", t)
    return L2AResult(**{**result.__dict__, "seconds": timer.seconds})


"""A product's processing as an explicit plan of stages, shared by the library and the flows.

:func:`plan_product` states what one product's processing is (a :class:`ProductPlan`);
its stages, in order (:meth:`ProductPlan.stages`):

``decode``
    The input files checked against the checksums of ``manifest.safe`` (unless
    ``verify_checksums`` is off), then the Level-1C bands decoded once into uncompressed
    files in the work folder.
``screening``
    The scene classification (SCL, cloud and snow probabilities, cloud buffer) stored
    as a checkpoint, with the class counts of every chunk block.
``atmosphere``
    The AOT and water-vapour maps stored as a checkpoint (not with ``sc_only``).
``correction-{res}m``
    One per resolution group (the 10 m outputs apart from the 20/60 m ones): every
    output raster of the group computed into its staged file, while the files of the
    group stored before are encoded.
``packaging``
    The remaining files encoded, quicklook, metadata, checksums, the STAC item last,
    and the product folder published.

Each stage reads only what earlier stages left in the work folder (a hidden sibling of
the product folder) and small values: the plan and the scene-wide totals known so far.
Those totals are sums over chunk blocks (:class:`sen2core.lazy.BlockSums`). A stage
run over the whole product computes the totals it needs itself and returns them
(:class:`StageDone`). Run by processing tiles (rectangles of chunk blocks, aligned
across 10, 20 and 60 m), the same stage is split into rounds (:func:`next_step`): the
totals still unknown are added up from every block's parts (:func:`add_sums`, over the whole
product: the same totals as every tile's parts, :func:`sum_parts`, added by
:func:`add_parts`); where wide neighbourhoods read an intermediate
(the classification's pixel layers with the shadow zones' coarse inputs, then the shadow
zones, the DDV layers, the raw water vapour on APDA's 60 m cells, the first passes of the
correction's adjacency background), every tile first stores its window of it
(:func:`store_part`, which also returns its parts of a sum that reads only those blocks:
:data:`SUM_WITH_STORE`); then every tile computes and stores its window of the stage
(:func:`run_stage`; a correction group's files are encoded by :func:`encode_group` once its
tiles are done, beside the next group's tiles). Both ways give the same totals and the
same bytes.

A tile reads its window plus the margins its kernels need from the kept files and
the checkpoints; nothing is decoded or classified twice. Every stage rewrites only
its own files, so a retried stage (or tile) reruns only itself.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
from dask.base import compute

from sen2core import __version__, lazy
from sen2core.atmosphere.lut import load_lut
from sen2core.correction import (
    AEROSOL_MODELS,
    INTERMEDIATES,
    Atmosphere,
    AtmosphericCorrection,
    Scene,
    background_chunks,
    config_dict,
    ddv_layer_count,
    water_vapour_grid,
)
from sen2core.errors import ConfigurationError, InputProductError, OutputError
from sen2core.io.read.auxdata import AuxiliaryData, read_product_auxiliary
from sen2core.io.read.bands import (
    CheckpointTarget,
    allocate_checkpoint,
    checkpoint_array,
    cloud_mask_table,
    kept_quality,
    load_checkpoint,
    quality_grid,
)
from sen2core.io.read.dem import dem_info, dem_on_grid
from sen2core.io.read.integrity import verify_checksums
from sen2core.io.read.model import granule_tiles
from sen2core.io.read.opening import open_l1c
from sen2core.io.read.product import Product
from sen2core.io.stac.cog_product import SUMMARY_NAME
from sen2core.io.stac.collection import COLLECTION_NAME
from sen2core.io.write.raster import RasterSpec, cog_tasks, create_staged, jp2_tasks, store_blocks, store_delayed
from sen2core.io.write.rasters import ProductRasters, logical_name, store_group
from sen2core.kernels import encode, terrain
from sen2core.kernels.pressure import pressure_elevation_km
from sen2core.kernels.quality import CLASSI_CATEGORIES, QUALITY_LAYERS, agreement_summary
from sen2core.kernels.scene_class import probability_to_uint8
from sen2core.kernels.scene_class.legend import SCL_CLASSES
from sen2core.kernels.shadow import cast_shadow
from sen2core.package import (
    is_done,
    layout_outputs,
    remove_stale_siblings,
    temporary_sibling,
    write_product,
)
from sen2core.run import (
    BANDS_10M,
    INPUT_BANDS,
    WORKING_BANDS,
    L2AResult,
    ProcessingConfig,
    l2a_id,
    output_dir,
    spacecraft_code,
)
from sen2core.scl import (
    PIXEL_LAYERS,
    SHADOW_LAYERS,
    SceneClassification,
    classify,
    percentages_from_counts,
    scene_sums,
    shadow_input_grids,
)

log = logging.getLogger(__name__)

__all__ = [
    "BACKGROUND",
    "STORED",
    "SUM_WITH_STORE",
    "ProductPlan",
    "StageDone",
    "Step",
    "SumParts",
    "Tile",
    "Totals",
    "add_parts",
    "add_sums",
    "correction_group",
    "parts_with",
    "decode",
    "encode_group",
    "discard",
    "has_rounds",
    "next_step",
    "next_sum",
    "open_product",
    "package",
    "plan_product",
    "run_stage",
    "skipped_result",
    "stage_names",
    "store_part",
    "stored",
    "sum_parts",
]

F32 = np.float32
#: Scene-wide totals known so far: sum name -> values.
Totals = Mapping[str, tuple[float, ...]]
#: Chunk edges of processing tiles must be multiples of this (the classification's coarsest grid, 300 m).
TILE_UNIT_M = 300.0
#: Layers of the screening checkpoint and the dtype each is stored in.
SCREENING_LAYERS = {
    "scl": np.uint8, "cloud_probability": np.uint8, "snow_probability": np.uint8,
    "calibrated_cloud_probability": np.uint8, "cloud_buffer": np.bool_,
}  # fmt: skip
ATMOSPHERE_LAYERS = ("aot", "water_vapour")
SCL_COLOURS = {c.value: (*c.rgb, 255) for c in SCL_CLASSES}
_BANDS, _SCREENING, _ATMOSPHERE, _CORRECTION, _DONE = ".bands", ".screening", ".atmosphere", ".correction", ".done"
#: The intermediate of the correction that processing tiles store before it runs (its first passes).
BACKGROUND = "background"
_COUNTS = "class_counts"
#: Record of the checksum verification (decode) read by packaging (JSON; not named .json: only
#: a published product has JSON files).
_INTEGRITY = "integrity.record"
#: Saturated or defective pixels of the L1C quality masks on the working grid (only when some are).
_QUALITY_GRID = "QUALITY.npy"
#: Record of what the quality masks flagged (decode), read by packaging.
_QUALITY = "l1c_quality.record"


@dataclass(frozen=True)
class Tile:
    """A processing tile: chunk blocks ``rows`` x ``cols`` (``[start, stop)``) of the product's grid."""

    index: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    bounds: tuple[float, float, float, float]
    """``(left, bottom, right, top)`` in the product's CRS (metres)."""

    @property
    def label(self) -> str:
        """``r{row}c{col}`` of its first block."""
        return f"r{self.rows[0]}c{self.cols[0]}"

    @property
    def blocks(self) -> int:
        """Number of chunk blocks."""
        return (self.rows[1] - self.rows[0]) * (self.cols[1] - self.cols[0])


@dataclass(frozen=True)
class ProductPlan:
    """One product's processing: what it reads, where it works and writes, and its stages."""

    l1c_href: str
    output_root: str
    config: ProcessingConfig
    product_id: str
    l2a_id: str
    final: str
    """The product folder (published by :func:`package`)."""
    work: str
    """Hidden sibling folder of ``final``: kept bands, checkpoints, staged rasters."""
    grid: tuple[int, int]
    """Chunk blocks of the product (rows, columns), the same at 10, 20 and 60 m."""
    bounds: tuple[float, float, float, float]
    """``(left, bottom, right, top)`` of the product in its CRS."""
    bands: tuple[str, ...]
    """Bands decoded (``decode``) and read by the later stages."""
    sun: tuple[float, float, float]
    """Largest, mean zenith and mean azimuth of the sun on the working grid (degrees)."""
    groups: tuple[int, ...]
    """Correction groups, by the finest resolution each holds, in the order they are stored."""
    tile_blocks: int | None = None
    """Processing tiles of ``tile_blocks`` x ``tile_blocks`` chunk blocks (None: the product is one tile)."""
    tiles: tuple[Tile, ...] = ()
    planned_at: float = 0.0
    """When the plan was made (seconds since the epoch): reports count a product's time from it."""
    aux: AuxiliaryData | None = None
    """The L1C's CAMS / ECMWF fields on the tile, read once here (None: the product has none)."""

    def stages(self) -> tuple[str, ...]:
        """Names of the stages, in order (:func:`stage_names`)."""
        return stage_names(self.config, self.tile_blocks)

    @property
    def whole(self) -> Tile:
        """The whole product as one tile."""
        return Tile(0, (0, self.grid[0]), (0, self.grid[1]), self.bounds)


@dataclass(frozen=True)
class SumParts:
    """A tile's parts of scene-wide sum ``name``: one vector per chunk block."""

    name: str
    tile: int
    parts: tuple[tuple[int, int, tuple[float, ...]], ...]
    """``(block row, block column, values)``."""


@dataclass(frozen=True)
class StageDone:
    """What a stage (or one tile of it) did: small enough to return from a task."""

    stage: str
    tile: int | None = None
    blocks: int = 0
    totals: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Scene-wide totals the stage computed itself (a stage over the whole product)."""
    seconds: float = 0.0
    """Wall time, when the caller measured it."""
    parts: SumParts | None = None
    """A tile's store (:func:`store_part`): its parts of the sum that reads the stored blocks next, if any."""


# ----------------------------------------------------------------------------- plan


def open_product(l1c_href: str | os.PathLike[str], config: ProcessingConfig) -> Product:
    """Open the Level-1C product (the configured granule of an old multi-granule product)."""
    product = open_l1c(l1c_href, tile=config.granule, chunk_m=config.chunk_m)
    if config.granule and product.tile_id != config.granule.upper().lstrip("T"):
        raise InputProductError(product.href, f"no granule of tile {config.granule} (tiles: "
                                f"{', '.join(granule_tiles(product)) or product.tile_id})")  # fmt: skip
    return product


def skipped_result(product: Product, final: Path) -> L2AResult:
    """The result of a product that is already done, from the figures it recorded."""
    summary_file = final / SUMMARY_NAME
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
    else:  # SAFE layout: the figures are in its metadata
        from sen2core.io.write.mtd_l2a import read_quality_indicators

        summary = read_quality_indicators((final / "MTD_MSIL2A.xml").read_bytes(), product=str(final))
    files = tuple(sorted(str(p.relative_to(final)) for p in final.rglob("*") if p.is_file()))
    return L2AResult(product.product_id, l2a_id(product), str(final), "skipped", summary.get("class_percentages", {}),
                     summary.get("atmosphere", {}), {}, files)  # fmt: skip


def stage_names(config: ProcessingConfig, tile_blocks: int | None = None) -> tuple[str, ...]:
    """The stages of every product processed with ``config``, in order (the module docstring says what each does)."""
    atmosphere = () if config.sc_only else ("atmosphere",)
    # One group after the other (the 10 m outputs, then the 20/60 m ones), whole or by tiles: the
    # files of the groups stored before are encoded while a group is computed.
    correction = tuple(f"correction-{g}m" for g in _groups(config))
    return ("decode", "screening", *atmosphere, *correction, "packaging")


def _groups(config: ProcessingConfig) -> tuple[int, ...]:
    # Outputs stored apart (sen2core.io.write.rasters.store_group): the 10 m ones first, as the layouts list them.
    if config.sc_only or config.resolution in (20, 60):
        return (config.working_resolution,)
    return (10, 20)


def plan_product(
    l1c_href: str | os.PathLike[str],
    output_root: str | os.PathLike[str],
    config: ProcessingConfig | None = None,
    tile_blocks: int | None = None,
) -> ProductPlan | L2AResult:
    """State the processing of one product and create its work folder.

    Returns the :class:`~sen2core.run.L2AResult` of a product already done (and not
    ``config.overwrite``) instead: there is nothing to plan.

    Parameters
    ----------
    l1c_href
        SAFE folder, ``.SAFE.zip``, ``MTD_MSIL1C.xml`` or AWS tile folder.
    output_root
        Root of the output tree.
    config
        Processing options.
    tile_blocks
        Split the stages into processing tiles of this many chunk blocks a side.

    Raises
    ------
    InputProductError
        The input is not a usable Level-1C product (missing bands, unknown granule).
    ConfigurationError
        ``tile_blocks`` below 1, or chunks that tiles cannot be cut from.
    """
    config = config or ProcessingConfig()
    if tile_blocks is not None:
        if tile_blocks < 1:
            raise ConfigurationError(f"tile_blocks must be at least 1, not {tile_blocks}")
        if config.chunk_m % TILE_UNIT_M:
            # The classification aligns its chunks to its 300 m grids: chunks not aligned already
            # would differ from the grid the tiles are cut from.
            raise ConfigurationError(
                f"processing tiles need chunk_m in multiples of {TILE_UNIT_M:g} m, not {config.chunk_m:g}"
            )
    product = open_product(l1c_href, config)
    final = output_dir(product, Path(output_root), config.format)
    if is_done(final) and not config.overwrite:
        return skipped_result(product, final)
    missing = [b for b in WORKING_BANDS if b not in product.band_files]
    if missing:
        raise InputProductError(product.href, f"bands needed for Level-2A are missing: {', '.join(missing)}")
    if config.dem:
        dem_info(config.dem, product.geobox(config.working_resolution))  # a DEM that misses the tile fails here
    present = [b for b in INPUT_BANDS if b in product.band_files]
    # B08 is only corrected at 10 m, but decoded either way: once, by whole JPEG 2000 tiles.
    bands = tuple([*present, *(b for b in ("B08",) if b in product.band_files)])
    for b in bands:
        # Headers only: a band of the wrong size (a crop) or not the product's file is refused
        # here, by name, before a work folder exists.
        product.band_source(b)
    wr = config.working_resolution
    gb = product.geobox(wr)
    grid = tuple(int(n) for n in product.toa("B04", wr).numblocks)
    sza, saa = product.sun_angles(wr)
    # The highest zenith bounds how far cloud shadows reach (the chunk overlaps); the means
    # set the terrain's cast-shadow direction.
    sun = tuple(float(v) for v in compute(da.nanmax(sza), da.nanmean(sza), da.nanmean(saa)))
    left, top = gb.transform.c, gb.transform.f
    bounds = (left, top - gb.shape[0] * wr, left + gb.shape[1] * wr, top)
    tiles: list[Tile] = []
    if tile_blocks is not None:
        chunk = product.chunk_pixels(wr) * wr
        for r in range(0, grid[0], tile_blocks):
            for c in range(0, grid[1], tile_blocks):
                rows, cols = (r, min(r + tile_blocks, grid[0])), (c, min(c + tile_blocks, grid[1]))
                box = (left + c * chunk, max(top - rows[1] * chunk, bounds[1]),
                       min(left + cols[1] * chunk, bounds[2]), top - r * chunk)  # fmt: skip
                tiles.append(Tile(len(tiles), rows, cols, box))
    remove_stale_siblings(final)
    work = temporary_sibling(final)
    plan = ProductPlan(
        str(l1c_href), str(output_root), config, product.product_id, l2a_id(product), str(final), str(work),
        (grid[0], grid[1]), bounds, bands, (sun[0], sun[1], sun[2]), _groups(config), tile_blocks, tuple(tiles),
        time.time(), None if config.sc_only else read_product_auxiliary(product),
    )  # fmt: skip
    _allocate_checkpoints(plan, product, gb.shape)
    if tiles:
        log.info("%s: %d processing tile(s) of %dx%d chunk blocks", plan.l2a_id, len(tiles), tile_blocks, tile_blocks)
    return plan


def _path(plan: ProductPlan, folder: str, name: str) -> str:
    return os.path.join(plan.work, folder, f"{name}.npy")


def _allocate_checkpoints(plan: ProductPlan, product: Product, shape: tuple[int, int]) -> None:
    # Created once, here: tiles then write their windows into them in any order.
    for name, dtype in SCREENING_LAYERS.items():
        allocate_checkpoint(_path(plan, _SCREENING, name), shape, np.uint8 if dtype is np.bool_ else dtype)
    allocate_checkpoint(_path(plan, _SCREENING, _COUNTS), (*plan.grid, 3, 12), np.int64)
    if plan.tile_blocks is not None:
        working = product.toa("B04", plan.config.working_resolution).chunks
        paths = _pixel_paths(plan, working)
        for name, (chunks, dtype) in _pixel_layers(plan, working).items():
            allocate_checkpoint(paths[name], tuple(sum(c) for c in chunks), np.uint8 if dtype is np.bool_ else dtype)
        for path in _shadow_paths(plan).values():
            allocate_checkpoint(path, shape, np.uint8)
    if not plan.config.sc_only:
        for path in [_path(plan, _ATMOSPHERE, n) for n in ATMOSPHERE_LAYERS]:
            allocate_checkpoint(path, shape, F32)
        for name in INTERMEDIATES if plan.tile_blocks is not None else ():
            chunks = _intermediate_chunks(plan, product.toa("B04", plan.config.working_resolution).chunks, name)
            for path in _intermediate_paths(plan, name):
                allocate_checkpoint(path, tuple(sum(c) for c in chunks), F32)
        for path, coarse in _background_files(plan, product).values():
            allocate_checkpoint(path, tuple(sum(c) for c in coarse), F32)


def _correction_groups(plan: ProductPlan) -> dict[int, tuple[str, ...]]:
    """The bands corrected on each grid: the working grid's, and the 10 m ones when corrected."""
    groups: dict[int, tuple[str, ...]] = {plan.config.working_resolution: WORKING_BANDS}
    if plan.config.corrects_10m:
        groups[10] = BANDS_10M
    return groups


#: ``(resolution, band)`` -> a file and the chunks of what it holds.
_Files = dict[tuple[int, str], tuple[str, tuple[tuple[int, ...], ...]]]


def _background_files(plan: ProductPlan, product: Product) -> _Files:
    """``(resolution, band)`` -> the file of its stored first pass and its chunks on the background grid.

    Processing tiles only (none for the whole product, nor where the background has no coarser grid).
    """
    if plan.tile_blocks is None or plan.config.sc_only:
        return {}
    out = {}
    for res, bands in _correction_groups(plan).items():
        coarse = background_chunks(product.toa("B04", res).chunks, res)
        if coarse is None:
            continue
        for b in bands:
            out[(res, b)] = (_path(plan, _CORRECTION, f"first_{res}m_{b}"), coarse)
    return out


def discard(plan: ProductPlan) -> None:
    """Remove the work folder of a plan that will not be finished (a failed product).

    The ``{tile}/{yyyy}/{mm}/{dd}`` folders made for it go too when nothing else is in them:
    left empty, they would look like products being written.
    """
    shutil.rmtree(plan.work, ignore_errors=True)
    root = Path(plan.output_root).resolve()
    for folder in Path(plan.work).resolve().parents:
        if folder == root or root not in folder.parents:
            break
        try:
            folder.rmdir()  # only if empty: another product of that day keeps it
        except OSError:
            break


# ----------------------------------------------------------------------------- decode


def decode(plan: ProductPlan) -> StageDone:
    """Verify the input files, then decode the plan's bands into the work folder (by strips of whole
    JPEG 2000 tiles).

    Raises
    ------
    ChecksumError
        An input file does not have the checksum ``manifest.safe`` lists.
    BandReadError
        A band cannot be decoded.
    OutputError
        The files cannot be written.
    """
    product = open_product(plan.l1c_href, plan.config)
    use_masks = plan.config.classification.handle_l1c_quality_mask
    inputs = _input_files(product, plan.bands, use_masks)
    if plan.config.verify_checksums:
        checked = verify_checksums(product.store, product.href, product.manifest.checksums if product.manifest
                                   else {}, inputs).to_dict()  # fmt: skip
        log.info("%s: %d input file(s) match manifest.safe's checksums (%.1f MB in %.2f s)", plan.product_id,
                 checked["files"], checked["bytes"] / 1e6, checked["seconds"])  # fmt: skip
    else:
        checked = {"skipped": "verify_checksums is off (--no-verify)", "unchecked": inputs}
    kept = os.path.join(plan.work, _BANDS)
    product.keep_dn(plan.bands, kept, quality=use_masks)
    _write_json(os.path.join(kept, _INTEGRITY), checked)
    wr = plan.config.working_resolution
    quality_grid(kept, {b: product.band_resolution(b) for b in plan.bands}, wr, product.geobox(wr).shape,
                 os.path.join(kept, _QUALITY_GRID))  # fmt: skip
    _write_json(os.path.join(kept, _QUALITY), _quality_record(product, plan.bands, kept, use_masks))
    _mark(plan, "decode", plan.whole)
    return StageDone("decode", blocks=plan.grid[0] * plan.grid[1])


def _input_files(product: Product, bands: tuple[str, ...], masks: bool) -> list[str]:
    """The product's files the processing reads: metadata, the bands of the plan, their quality
    masks and ESA's cloud mask (with ``masks``)."""
    files = [m.source for m in (product.user_metadata, product.tile_metadata) if m is not None]
    files += [product.band_files[b].path for b in bands]
    if masks:
        files += [f for f in (*(product.quality_mask_file(b) for b in bands), product.cloud_mask_file()) if f]
    return files


def _quality_record(product: Product, bands: tuple[str, ...], kept: str, used: bool) -> dict[str, Any]:
    """What the L1C quality masks flagged, per band and layer (for the summary)."""
    if not used:
        return {"source": None, "note": "not read: Handle_L1C_QLT_Mask is off"}
    counts = {}
    for b in bands:
        record = kept_quality(kept, b)
        if record is not None:
            counts[b] = {name: int(n) for name, n in zip(QUALITY_LAYERS.values(), record[0], strict=True)}
    if counts:
        return {"source": "MSK_QUALIT", "flagged_pixels": counts,
                "bands_without_mask": [b for b in bands if b not in counts]}  # fmt: skip
    legacy = product.legacy_quality_masks()
    note = (
        f"GML masks of a product before processing baseline 04.00 ({len(legacy)} files) are not read: "
        "saturation from DN 65535 only"
        if legacy
        else "no MSK_QUALIT masks: saturation from DN 65535 only"
    )
    return {"source": None, "note": note}


def _write_json(path: str, value: Mapping[str, Any]) -> None:
    """A small record of a stage for a later one (in the work folder)."""
    try:
        Path(path).write_text(json.dumps(value), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc})") from exc


def _read_json(path: str) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: cannot read the record of an earlier stage ({exc})") from exc
    return value


def _mark(plan: ProductPlan, step: str, tile: Tile) -> None:
    """Record that ``step`` wrote the blocks of ``tile`` (one empty file per block).

    A step is a plan stage (``screening``) or a round of one that stores an intermediate
    (``{stage}-{name}``: ``atmosphere-ddv``).
    """
    folder = os.path.join(plan.work, _DONE, step)
    os.makedirs(folder, exist_ok=True)
    for r in range(*tile.rows):
        for c in range(*tile.cols):
            Path(folder, f"{r}-{c}").touch()


def _require(plan: ProductPlan, steps: tuple[str, ...]) -> None:
    """Refuse to go on unless every block of each of ``steps`` (stages or rounds, :func:`_mark`) was written.

    Raises
    ------
    OutputError
        Naming the first stage or round with blocks missing (a lost or failed tile).
    """
    for step in steps:
        folder = os.path.join(plan.work, _DONE, step)
        done = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        missing = [f"{r}-{c}" for r in range(plan.grid[0]) for c in range(plan.grid[1]) if f"{r}-{c}" not in done]
        if missing:
            kind = "stage" if step in plan.stages() else "round"
            raise OutputError(f"{plan.l2a_id}: {kind} {step} has {len(missing)} chunk block(s) not written, "
                              f"e.g. block {missing[0]}")  # fmt: skip


# ----------------------------------------------------------------------------- inputs of the later stages


@dataclass(frozen=True, eq=False)
class _Inputs:
    """The lazy inputs every later stage builds on: kept bands, angles, elevation."""

    product: Product
    dn: dict[str, da.Array]
    toa: dict[str, da.Array]
    sun_zenith: da.Array
    sun_azimuth: da.Array
    view_zenith: dict[str, da.Array]
    view_azimuth: dict[str, da.Array]
    sun_azimuth_coarse: da.Array | None
    view_8a: tuple[da.Array, da.Array]
    dem_km: da.Array | None
    elevation_km: da.Array
    """What the LUT's elevation (pressure) axis is given: the ground's, or the standard atmosphere's
    elevation with the surface pressure when the L1C has the ECMWF sea-level pressure."""
    sources: dict[str, str]
    """``ELEVATION_SOURCE`` (DEM or CONFIG) and ``PRESSURE_SOURCE`` (ECMWF or STANDARD)."""
    quality: da.Array | None = None
    """Saturated or defective pixels of the L1C quality masks on the working grid (None: none flagged)."""


def _geometry_grid(product: Product, res: float, chunks: tuple[tuple[int, ...], ...]) -> tuple[float, int] | None:
    """A coarse grid (about 300 m) whose blocks match ``chunks`` one to one, or None.

    The correction takes one geometry per block (its mean angles), so view angles are
    only needed on such a grid: interpolating them per pixel for every band cost about
    a sixth of the processing time.
    """
    cp = chunks[0][0]
    k = lazy.chunk_divisor(cp, res, 300.0)
    coarse = res * k
    shape = product.geobox(coarse).shape
    blocks = tuple(len(c) for c in chunks)
    if tuple(-(-n // (cp // k)) for n in shape) != blocks:
        return None
    return coarse, cp // k


_INPUTS_LOCK = threading.Lock()
#: Products whose lazy inputs this process keeps (:func:`_inputs`): those in flight on one worker.
_INPUTS_KEPT = 4
_INPUTS: OrderedDict[tuple[str, float, ProcessingConfig, tuple[str, ...]], _Inputs] = OrderedDict()


def _inputs(plan: ProductPlan) -> _Inputs:
    """The plan's lazy inputs (metadata parsed, kept bands, angles, elevation), built once per process.

    Every stage and tile task of a product builds on them, and they are the same graphs for
    as long as the plan lives (the kept bands do not change once decoded; a new plan, as a
    retried tiling makes, has another time): building them in every task cost the per-tile
    flow on the 1830 px scene about 4 s of its 38.
    """
    # By value, not by identity: every task gets its own copy of the plan.
    key = (plan.work, plan.planned_at, plan.config, plan.bands)
    with _INPUTS_LOCK:
        if key in _INPUTS:
            _INPUTS.move_to_end(key)
            return _INPUTS[key]
    built = _build_inputs(plan)
    with _INPUTS_LOCK:
        _INPUTS[key] = built
        while len(_INPUTS) > _INPUTS_KEPT:
            _INPUTS.popitem(last=False)
    return built


def _build_inputs(plan: ProductPlan) -> _Inputs:
    config = plan.config
    product = open_product(plan.l1c_href, config)
    wr = config.working_resolution
    dn = product.kept_dn(plan.bands, os.path.join(plan.work, _BANDS))
    present = [b for b in INPUT_BANDS if b in dn]
    toa = {b: product.toa(b, wr, dn=dn[b]) for b in present}
    sza, saa = product.sun_angles(wr)
    geo = _geometry_grid(product, wr, toa["B04"].chunks)
    vza, vaa = {}, {}
    for b in present:
        vza[b], vaa[b] = product.view_angles(b, geo[0], chunks=geo[1]) if geo else product.view_angles(b, wr)
    dem_km = None
    if config.dem:
        dem_m = dem_on_grid(config.dem, product.geobox(wr), toa["B04"].chunks)
        dem_km = da.clip(da.where(da.isfinite(dem_m), dem_m, 0.0), -500.0, 9000.0) / 1000.0
    elev = dem_km if dem_km is not None else da.full(product.geobox(wr).shape, config.correction.elevation_km,
                                                     dtype=F32, chunks=toa["B04"].chunks)  # fmt: skip
    msl = AuxiliaryData.mean(plan.aux.msl_pressure_hpa) if plan.aux is not None else None
    if msl is not None:
        # The LUT's elevation axis is 6S's standard atmosphere: a pressure, given as the
        # elevation whose standard pressure is the surface pressure (8 m per hPa off 1013.25).
        elev = da.map_blocks(lambda z: pressure_elevation_km(z, msl).astype(F32), elev, dtype=F32)
    sources = {"ELEVATION_SOURCE": "DEM" if dem_km is not None else "CONFIG",
               "PRESSURE_SOURCE": "STANDARD" if msl is None else "ECMWF"}  # fmt: skip
    quality_path = os.path.join(plan.work, _BANDS, _QUALITY_GRID)
    quality = checkpoint_array(quality_path, toa["B04"].chunks, np.uint8) if os.path.exists(quality_path) else None
    return _Inputs(
        product, dn, toa, sza, saa, vza, vaa, product.sun_angles(geo[0], chunks=geo[1])[1] if geo else None,
        # Cloud shadows are projected with the per-pixel view geometry.
        product.view_angles("B8A", wr), dem_km, elev, sources, quality,
    )  # fmt: skip


# ----------------------------------------------------------------------------- screening


def _pixel_paths(plan: ProductPlan, chunks: Any) -> dict[str, str]:
    """The files of the pixel rules' layers and of the shadow zones' coarse inputs (:func:`_pixel_layers`)."""
    return {n: _path(plan, _SCREENING, f"pixels_{n}") for n in _pixel_layers(plan, chunks)}


def _pixel_layers(plan: ProductPlan, chunks: Any) -> dict[str, tuple[Any, Any]]:
    """What the screening's ``pixels`` round stores, for a working grid of ``chunks``: each layer's
    chunks and dtype (the pixel rules' layers on the working grid, the shadow inputs on theirs)."""
    coarse = shadow_input_grids(chunks, plan.config.working_resolution, plan.config.classification,
                                dem=bool(plan.config.dem))  # fmt: skip
    return {**{n: (chunks, dtype) for n, dtype in PIXEL_LAYERS.items()}, **coarse}


def _shadow_paths(plan: ProductPlan) -> dict[str, str]:
    return {n: _path(plan, _SCREENING, f"shadows_{n}") for n in SHADOW_LAYERS}


def _classification(plan: ProductPlan, inp: _Inputs, known: Totals, want: str | None = None) -> Any:
    bands = {b: x for b, x in inp.toa.items()}
    stored_layers: dict[str, da.Array] = {}
    chunks = inp.toa["B04"].chunks
    if STORED + "pixels" in known:
        _require(plan, ("screening-pixels",))
        paths = _pixel_paths(plan, chunks)
        stored_layers = {f"pixels.{n}": checkpoint_array(paths[n], own, dtype)
                         for n, (own, dtype) in _pixel_layers(plan, chunks).items()}  # fmt: skip
    if STORED + "shadows" in known:
        _require(plan, ("screening-shadows",))
        stored_layers.update({f"shadows.{n}": checkpoint_array(path, chunks, np.bool_)
                              for n, path in _shadow_paths(plan).items()})  # fmt: skip
    res = classify(
        bands, inp.sun_zenith, inp.sun_azimuth, *inp.view_8a, resolution_m=plan.config.working_resolution,
        config=plan.config.classification, dem=None if inp.dem_km is None else inp.dem_km * 1000.0,
        quality_mask=inp.quality,
        max_sun_zenith_deg=min(plan.sun[0] + 2.0, 89.0), private_bands=True, known=known, stored=stored_layers,
        want=want,
    )  # fmt: skip
    if want is not None:
        return res
    # Kept as percent (uint8), a quarter of the float32 it is computed in: it is only written out.
    return replace(res, calibrated_cloud_probability=da.map_blocks(
        probability_to_uint8, res.calibrated_cloud_probability, dtype=np.uint8))  # fmt: skip


def _stored_classification(plan: ProductPlan, inp: _Inputs) -> SceneClassification:
    chunks = inp.toa["B04"].chunks
    layers = {n: checkpoint_array(_path(plan, _SCREENING, n), chunks, dtype) for n, dtype in SCREENING_LAYERS.items()}
    return SceneClassification(**layers, resolution_m=float(plan.config.working_resolution),
                               config=plan.config.classification)  # fmt: skip


def _store_window(items: list[tuple[da.Array, str, bool]], tile: Tile, whole: bool) -> None:
    """Compute the window ``tile`` of each array into its checkpoint file.

    ``items``: ``(array, file, per_block)``; ``per_block`` arrays are tables with one row
    and column per chunk block (class counts), the others 2-D layers.
    """
    sources: list[da.Array] = []
    # Any: dask's stubs know only arrays as targets, not objects with ``__setitem__``.
    targets: list[Any] = []
    regions: list[tuple[slice, ...]] = []
    for arr, path, per_block in items:
        window = (slice(*tile.rows), slice(*tile.cols))
        sub = arr.blocks[window]
        if per_block:
            region: tuple[slice, ...] = (*window, *(slice(None),) * (arr.ndim - 2))
        else:
            y0, x0 = sum(arr.chunks[0][: tile.rows[0]]), sum(arr.chunks[1][: tile.cols[0]])
            region = (slice(y0, y0 + sub.shape[0]), slice(x0, x0 + sub.shape[1]))
        sources.append(sub.astype(np.uint8) if sub.dtype == bool else sub)
        targets.append(CheckpointTarget(path))
        regions.append(region)
    if whole:
        da.store(sources, targets, regions=regions, lock=False)
        return
    # Unfused: dask 2026.8's low-level fusion fails on some block selections of these graphs ("Cannot
    # fuse tasks with multiple outputs"), and tiles run at once must send the scheduler the keys they
    # share (their margins) with one definition; fusion names and merges them per graph.
    with dask.config.set({"optimization.fuse.active": False}):
        da.store(sources, targets, regions=regions, lock=False)


# ----------------------------------------------------------------------------- atmosphere


def _scene(plan: ProductPlan, inp: _Inputs) -> Scene:
    wr = plan.config.working_resolution
    terrain_arrays: tuple[Any, ...] = (None, None, None)
    if inp.dem_km is not None:
        terrain_arrays = _terrain_arrays(inp.dem_km, inp.sun_zenith, inp.sun_azimuth, wr, plan.sun[1], plan.sun[2])
    return Scene(toa=inp.toa, sun_zenith=inp.sun_zenith, sun_azimuth=inp.sun_azimuth, view_zenith=inp.view_zenith,
                 view_azimuth=inp.view_azimuth, elevation_km=inp.elevation_km, resolution_m=wr,
                 spacecraft=spacecraft_code(inp.product), cos_incidence=terrain_arrays[0], sunlit=terrain_arrays[1],
                 sky_view=terrain_arrays[2], sun_azimuth_coarse=inp.sun_azimuth_coarse, aux=plan.aux,
                 sources=inp.sources)  # fmt: skip


def _terrain_arrays(
    dem_km: da.Array, sza: da.Array, saa: da.Array, res: float, mean_sza: float, mean_saa: float
) -> tuple[da.Array, da.Array, da.Array]:
    def slope(block: np.ndarray) -> np.ndarray:
        return terrain.slope_aspect(block.astype(np.float64) * 1000.0, res)[0].astype(F32)

    def aspect(block: np.ndarray) -> np.ndarray:
        return terrain.slope_aspect(block.astype(np.float64) * 1000.0, res)[1].astype(F32)

    slope_a, aspect_a = lazy.overlap(slope, dem_km, 1), lazy.overlap(aspect, dem_km, 1)
    cos_i = da.map_blocks(lambda s, a, z, az: terrain.cos_incidence(s, a, z, az).astype(F32), slope_a, aspect_a, sza,
                          saa, dtype=F32)  # fmt: skip
    sky = da.map_blocks(lambda s: terrain.sky_view(s).astype(F32), slope_a, dtype=F32)
    # Cast shadows reach at most the relief over the sun's elevation; 5 km covers 2 km of relief at 68 deg.
    reach = min(5000.0, 2000.0 * math.tan(math.radians(min(mean_sza, 80.0))))
    depth = max(int(reach / res), 1)

    def shadow(block: np.ndarray) -> np.ndarray:
        return (~cast_shadow(block.astype(np.float64) * 1000.0, mean_sza, mean_saa, res, reach)).astype(F32)

    return cos_i, lazy.overlap(shadow, dem_km, depth), sky


@dataclass(frozen=True, eq=False)
class _Atmosphere:
    """The working-grid scene after cirrus removal, the retrieval, and the 10 m scene when corrected."""

    corrector: AtmosphericCorrection
    scene: Scene
    gamma: float | None
    retrieved: Atmosphere | None
    """None while a retrieval sum is unknown."""
    scene10: Scene | None
    pending: lazy.BlockSums | None
    """The first scene-wide sum not known yet (None: all known)."""
    store: tuple[str, Any] | None = None
    """By processing tiles: the next intermediate to store (name, lazy array), before any sum it feeds."""


def _scene10(plan: ProductPlan, inp: _Inputs, scene: Scene) -> Scene:
    product = inp.product
    toa10 = {b: product.toa(b, 10, dn=inp.dn.get(b)) for b in BANDS_10M}
    sza10, saa10 = product.sun_angles(10)
    up = _upsampler(plan, inp, toa10["B02"].chunks)
    geo10 = _geometry_grid(product, 10, toa10["B02"].chunks)
    view10 = {b: product.view_angles(b, *geo10) if geo10 else product.view_angles(b, 10) for b in BANDS_10M}
    if "B10" in inp.dn:
        toa10["B10"] = product.toa("B10", 10, dn=inp.dn["B10"])
    return Scene(
        toa=toa10, sun_zenith=sza10, sun_azimuth=saa10, view_zenith={b: v[0] for b, v in view10.items()},
        view_azimuth={b: v[1] for b, v in view10.items()}, elevation_km=up(scene.elevation_km), resolution_m=10,
        spacecraft=scene.spacecraft,
        cos_incidence=None if scene.cos_incidence is None else up(scene.cos_incidence),
        sunlit=None if scene.sunlit is None else up(scene.sunlit),
        sky_view=None if scene.sky_view is None else up(scene.sky_view),
        sun_azimuth_coarse=product.sun_angles(*geo10)[1] if geo10 else None, aux=scene.aux, sources=scene.sources,
    )  # fmt: skip


def _upsampler(plan: ProductPlan, inp: _Inputs, chunks: Any) -> Any:
    shape = inp.product.geobox(10).shape
    return lambda x: lazy.upsample(x, 2, shape).rechunk(chunks)


def _atmosphere(plan: ProductPlan, inp: _Inputs, scl: da.Array, known: Totals, keep: bool,
                given: Mapping[str, da.Array] | None = None) -> _Atmosphere:  # fmt: skip
    """The atmosphere as far as ``known`` allows (``keep``: a whole-product run that computes missing totals).

    ``given``: intermediates (:data:`INTERMEDIATES`) as lazy arrays, taken as if they were stored.
    """
    config = plan.config
    ac = AtmosphericCorrection(config.correction, load_lut(config.lut))
    scene = _scene(plan, inp)
    totals = dict(known)

    def missing(sums: lazy.BlockSums | None) -> lazy.BlockSums | None:
        if sums is None or sums.name in totals:
            return None
        if not keep:
            return sums
        (value,) = compute(sums.total())
        totals[sums.name] = tuple(float(v) for v in np.ravel(value))
        return None

    gamma = None
    if config.correction.cirrus_correction:
        pending = missing(ac.cirrus_sums(scene))
        if pending is not None:
            return _Atmosphere(ac, scene, None, None, None, pending)
        scene, gamma = ac.remove_cirrus(scene, scl, totals)
    if keep:
        retrieved = ac.retrieve(scene, scl, totals, keep=True)
        totals.update(retrieved.totals)
    else:
        # By tiles, the intermediates that wide neighbourhoods read (the DDV layers under the AOT
        # smoothing, the raw water vapour under its median) are stored once, each before the first
        # sum that reads it: a tile then reads its neighbours' instead of computing them.
        stored = {**_stored_intermediates(plan, inp, known), **(given or {})}
        for name in INTERMEDIATES if plan.tile_blocks is not None else ():
            if name in stored:
                continue
            found = ac.intermediate(scene, scl, name, totals, stored)
            if isinstance(found, lazy.BlockSums):
                return _Atmosphere(ac, scene, gamma, None, None, found)
            return _Atmosphere(ac, scene, gamma, None, None, None, (name, found))
        pending = ac.next_sum(scene, scl, totals, stored)
        if pending is not None:
            return _Atmosphere(ac, scene, gamma, None, None, pending)
        retrieved = ac.retrieve(scene, scl, totals, keep=False, stored=stored)
    scene10 = None
    if config.corrects_10m:
        scene10 = _scene10(plan, inp, scene)
        if gamma is not None:
            pending = missing(ac.cirrus_sums(scene10))
            if pending is not None:
                return _Atmosphere(ac, scene, gamma, retrieved, scene10, pending)
        else:
            scene10 = Scene(**{**scene10.__dict__, "toa": {b: scene10.toa[b] for b in BANDS_10M}})
    retrieved = replace(retrieved, totals={**totals})
    return _Atmosphere(ac, scene, gamma, retrieved, scene10, None)


# ----------------------------------------------------------------------------- scene-wide sums


@dataclass(frozen=True)
class Step:
    """A round of the tiles before a stage runs: a scene-wide ``sum`` to add up, or an intermediate to ``store``."""

    kind: Literal["sum", "store"]
    name: str


def has_rounds(plan: ProductPlan, stage: str) -> bool:
    """Whether ``stage`` of ``plan`` may have rounds to run before it (:func:`next_step`).

    The screening and the atmosphere (scene-wide sums; by processing tiles, intermediates to
    store); by processing tiles, the first correction stage (the first passes of the
    adjacency background, which every group reads).
    """
    if stage in ("screening", "atmosphere"):
        return True
    return plan.tile_blocks is not None and not plan.config.sc_only and stage == _first_correction(plan)


def correction_group(stage: str) -> int | None:
    """The resolution group (m) of a ``correction-{res}m`` stage; None for any other stage."""
    res = stage[len("correction-") : -1] if stage.startswith("correction-") and stage.endswith("m") else ""
    return int(res) if res.isdigit() else None


def _first_correction(plan: ProductPlan) -> str:
    """The first ``correction-{res}m`` stage: by processing tiles, its round stores the adjacency background."""
    return f"correction-{plan.groups[0]}m"


#: Prefix of the entries of the known values that say an intermediate is stored for every tile.
STORED = "stored:"


def stored(known: Totals, name: str) -> dict[str, tuple[float, ...]]:
    """``known`` plus the fact that intermediate ``name`` is stored (every tile ran :func:`store_part`)."""
    return {**known, STORED + name: ()}


def _ddv_layers(plan: ProductPlan) -> int:
    models = AEROSOL_MODELS if plan.config.correction.aerosol == "auto" else (plan.config.correction.aerosol,)
    return ddv_layer_count(len(models))


def _intermediate_paths(plan: ProductPlan, name: str) -> list[str]:
    if name == "ddv":
        return [_path(plan, _ATMOSPHERE, f"ddv_{i}") for i in range(_ddv_layers(plan))]
    return [_path(plan, _ATMOSPHERE, name)]


def _intermediate_chunks(plan: ProductPlan, chunks: Any, name: str) -> Any:
    """The chunks of intermediate ``name`` for a working grid of ``chunks`` (``wv_raw``: on APDA's grid)."""
    return water_vapour_grid(chunks, plan.config.working_resolution)[1] if name == "wv_raw" else chunks


def _read_intermediate(plan: ProductPlan, chunks: Any, name: str) -> da.Array:
    own = _intermediate_chunks(plan, chunks, name)
    layers = [checkpoint_array(path, own, F32) for path in _intermediate_paths(plan, name)]
    return da.stack(layers) if name == "ddv" else layers[0]


def _stored_intermediates(plan: ProductPlan, inp: _Inputs, known: Totals) -> dict[str, da.Array]:
    out = {}
    for name in INTERMEDIATES:
        if STORED + name in known:
            _require(plan, (f"atmosphere-{name}",))
            out[name] = _read_intermediate(plan, inp.toa["B04"].chunks, name)
    return out


def next_step(plan: ProductPlan, stage: str, known: Totals) -> Step | None:
    """The round the tiles must run before ``stage`` can (None: the stage can run). Computes nothing.

    Only the stages of :func:`has_rounds` have rounds: ``screening`` (sums, and by processing tiles
    the pixel layers to store), ``atmosphere`` (sums, and intermediates to store) and, by processing
    tiles, the first ``correction-{res}m`` (the first passes of the adjacency background to store).
    """
    pending, store = _pending(plan, stage, known)
    if store is not None:
        return Step("store", store.name)
    return None if pending is None else Step("sum", pending.name)


def next_sum(plan: ProductPlan, stage: str, known: Totals) -> str | None:
    """The name of the next round of ``stage`` (a sum or an intermediate to store), or None (:func:`next_step`)."""
    step = next_step(plan, stage, known)
    return None if step is None else step.name


#: Intermediate -> the sum that follows it and reads each of its blocks alone (no neighbours): a tile
#: computes its parts of that sum with its store (:func:`store_part`), which saves the sum a round.
SUM_WITH_STORE = {"ddv": "ddv"}


@dataclass(frozen=True, eq=False)
class _Store:
    """An intermediate to store: its name, and its lazy layers with the files they go to."""

    name: str
    arrays: list[tuple[da.Array, str]]
    then: lazy.BlockSums | None = None
    """The sum of :data:`SUM_WITH_STORE` that reads it next, on its stored blocks (when asked for: ``with_sum``)."""


def _screening_round(plan: ProductPlan, inp: _Inputs, known: Totals) -> tuple[lazy.BlockSums | None, str | None]:
    """The screening's next scene-wide sum, else (processing tiles) the layers it stores next: ``pixels``,
    then ``shadows``; (None, None) when the stage can run. Builds the sum only, not the classification.

    The later passes read the pixel rules' layers with wide neighbourhoods (the shadow zones),
    and the post-processing reads the shadow zones with wide neighbourhoods.
    """
    pending = scene_sums(inp.toa, plan.config.working_resolution, plan.config.classification, known=known)
    if pending is not None or plan.tile_blocks is None or STORED + "shadows" in known:
        return pending, None
    return None, "shadows" if STORED + "pixels" in known else "pixels"


def _background_due(plan: ProductPlan, known: Totals) -> bool:
    """Processing tiles, the first passes of the correction's adjacency background are still to be stored."""
    return plan.tile_blocks is not None and not plan.config.sc_only and STORED + BACKGROUND not in known


def _pending(plan: ProductPlan, stage: str, known: Totals, with_sum: bool = False
             ) -> tuple[lazy.BlockSums | None, _Store | None]:  # fmt: skip
    """The stage's next scene-wide sum, or its next intermediate to store.

    ``with_sum``: for an intermediate of :data:`SUM_WITH_STORE`, also the sum that reads it
    next, built on its files (a tile reads its own blocks of them once it has stored them).
    """
    correcting = stage.startswith("correction-")
    if stage not in ("screening", "atmosphere") and not (correcting and _background_due(plan, known)):
        return None, None
    inp = _inputs(plan)
    if correcting:
        # The background's box mean and refinement read neighbouring blocks of the first passes.
        first = _first_passes(plan, inp, known)
        return None, (_Store(BACKGROUND, first) if first else None)
    if stage == "screening":
        pending, name = _screening_round(plan, inp, known)
        if name is None:
            return pending, None
        layers = _classification(plan, inp, known, want=name)
        paths = _shadow_paths(plan) if name == "shadows" else _pixel_paths(plan, inp.toa["B04"].chunks)
        return None, _Store(name, [(layers[n], paths[n]) for n in layers])
    scl = _stored_classification(plan, inp).scl
    atm = _atmosphere(plan, inp, scl, known, keep=False)
    if atm.store is None:
        return atm.pending, None
    name, arr = atm.store
    files = _intermediate_paths(plan, name)
    layers = [arr[i] for i in range(len(files))] if arr.ndim == 3 else [arr]
    then = None
    if with_sum and name in SUM_WITH_STORE:
        # On the files, not on ``arr``: computed with the store, the sum's graph and the store's would
        # send the scheduler keys they share with two definitions (dask optimises them apart), and
        # tiles run at once then failed on a missing key.
        given = {name: _read_intermediate(plan, inp.toa["B04"].chunks, name)}
        after = _atmosphere(plan, inp, scl, known, keep=False, given=given)
        if after.store is None and after.pending is not None and after.pending.name == SUM_WITH_STORE[name]:
            then = after.pending
    return None, _Store(name, list(zip(layers, files, strict=True)), then)


def store_part(plan: ProductPlan, stage: str, name: str, known: Totals, tile: Tile) -> StageDone:
    """Compute tile ``tile``'s window of the intermediate ``name`` that :func:`next_step` asks for, and store it.

    Raises
    ------
    ConfigurationError
        ``name`` is not the intermediate the stage needs next.
    """
    _, store = _pending(plan, stage, known, with_sum=True)
    if store is None or store.name != name:
        raise ConfigurationError(f"{plan.l2a_id}: stage {stage} does not need {name} stored next "
                                 f"({'nothing' if store is None else store.name})")  # fmt: skip
    _store_window([(x, path, False) for x, path in store.arrays], tile, whole=False)
    _mark(plan, f"{stage}-{name}", tile)
    # The sum reads each block alone: this tile's blocks are stored, whatever the other tiles' state.
    parts = None if store.then is None else _sum_parts(store.then, tile)
    return StageDone(f"{stage}-{name}", tile.index, tile.blocks, parts=parts)


def sum_parts(plan: ProductPlan, stage: str, known: Totals, tile: Tile) -> SumParts | None:
    """Tile ``tile``'s parts of the first scene-wide sum of ``stage`` not in ``known`` (None: none left)."""
    pending, store = _pending(plan, stage, known)
    if store is not None:
        raise ConfigurationError(f"{plan.l2a_id}: {store.name} must be stored before the next sum of {stage}")
    return None if pending is None else _sum_parts(pending, tile)


def add_sums(plan: ProductPlan, stage: str, known: Totals) -> tuple[dict[str, tuple[float, ...]], Step | None]:
    """Add up, over the whole product, the scene-wide sums ``stage`` needs before its next store or its run.

    Returns ``known`` with those totals, and the stage's next round: an intermediate to store
    (:func:`store_part`), or None when the stage can run. Each sum reads every chunk block once
    and adds the blocks' parts as :func:`add_parts` does: the totals are those of a sum added up
    from every tile's parts (:func:`sum_parts`). Processing tiles, these sums (reads of the kept
    bands and stored blocks, a few seconds) take no round of tile tasks of their own.
    """
    out = dict(known)
    while True:
        pending, store = _pending(plan, stage, out)
        if store is not None:
            return out, Step("store", store.name)
        if pending is None:
            return out, None
        name, total = add_parts(plan, [_sum_parts(pending, plan.whole)])
        out[name] = total


def _sum_parts(sums: lazy.BlockSums, tile: Tile) -> SumParts:
    """Tile ``tile``'s blocks' parts of ``sums``, computed unfused, like the tiles' stores: tiles run at once
    send the scheduler the keys they share with the same definitions (:func:`_store_window`)."""
    with dask.config.set({"optimization.fuse.active": False}):
        parts = sums.parts(tile.rows, tile.cols)
    return SumParts(sums.name, tile.index, tuple((r, c, tuple(float(v) for v in np.ravel(p)))
                                                 for (r, c), p in parts.items()))  # fmt: skip


def parts_with(stores: list[StageDone]) -> list[SumParts | None]:
    """The parts of a sum that came with a round of stores (:data:`SUM_WITH_STORE`), for :func:`add_parts`;
    empty when the round brought none."""
    return [d.parts for d in stores] if any(d.parts is not None for d in stores) else []


def add_parts(plan: ProductPlan, parts: Sequence[SumParts | None]) -> tuple[str, tuple[float, ...]]:
    """The scene-wide total from every tile's parts, added in the order a whole-product run adds them.

    Raises
    ------
    OutputError
        A tile's parts are missing, or the tiles disagree on the sum.
    """
    found = [p for p in parts if p is not None]
    names = {p.name for p in found}
    if len(found) != len(parts) or len(names) != 1:
        raise OutputError(f"{plan.l2a_id}: every tile must give its parts of one sum, got {sorted(names)} "
                          f"from {len(found)} of {len(parts)} tiles")  # fmt: skip
    blocks: dict[tuple[int, ...], Any] = {(r, c): np.asarray(v, dtype=np.float64) for p in found for r, c, v in p.parts}
    try:
        total = lazy.add_block_parts(blocks, plan.grid)
    except ValueError as exc:
        raise OutputError(f"{plan.l2a_id}: {exc}") from exc
    return names.pop(), tuple(float(v) for v in np.ravel(total))


# ----------------------------------------------------------------------------- stages


def run_stage(plan: ProductPlan, stage: str, known: Totals, tile: Tile | None = None) -> StageDone:
    """Run ``stage`` (any but ``decode`` and ``packaging``) for ``tile`` or, by default, the whole product.

    Over the whole product, scene-wide totals missing from ``known`` are computed and
    returned; for a tile, every total must be known (:func:`next_sum`).

    Raises
    ------
    ConfigurationError
        Unknown stage, or a tile run with a total still unknown.
    """
    whole = tile is None or tile.blocks == plan.grid[0] * plan.grid[1]
    window = plan.whole if tile is None else tile
    names = plan.stages()
    if stage in names:
        _require(plan, names[: names.index(stage)])
    inp = _inputs(plan)

    def refuse(needed: str | None) -> None:
        if needed is not None:
            raise ConfigurationError(f"{plan.l2a_id}: stage {stage} of tile {window.label} needs {needed} first")

    if not whole:
        refuse(_tile_needs(plan, stage, inp, known))
    log.info("%s: %s%s", plan.l2a_id, stage, "" if tile is None else f" of tile {window.label}")
    totals: dict[str, tuple[float, ...]] = {}
    if stage == "screening":
        if whole:
            pending = scene_sums(inp.toa, plan.config.working_resolution, plan.config.classification, known=known)
            all_known = dict(known)
            while pending is not None:
                (value,) = compute(pending.total())
                all_known[pending.name] = totals[pending.name] = tuple(float(v) for v in np.ravel(value))
                pending = scene_sums(inp.toa, plan.config.working_resolution, plan.config.classification,
                                     known=all_known)  # fmt: skip
            known = all_known
        res = _classification(plan, inp, known)
        items = [(getattr(res, n), _path(plan, _SCREENING, n), False) for n in SCREENING_LAYERS]
        items.append((res.class_counts_per_block(), _path(plan, _SCREENING, _COUNTS), True))
        _store_window(items, window, whole)
    elif stage == "atmosphere":
        scl = _stored_classification(plan, inp).scl
        atm = _atmosphere(plan, inp, scl, known, keep=whole)
        # A tile's round is checked here, as the stage is built (building it twice cost every tile task).
        refuse(atm.store[0] if atm.store is not None else atm.pending.name if atm.pending is not None else None)
        assert atm.retrieved is not None
        totals = {k: v for k, v in atm.retrieved.totals.items() if k not in known}
        maps = [(atm.retrieved.aot, _path(plan, _ATMOSPHERE, "aot"), False),
                (atm.retrieved.water_vapour, _path(plan, _ATMOSPHERE, "water_vapour"), False)]  # fmt: skip
        _store_window(maps, window, whole)
    elif (group := correction_group(stage)) is not None:
        if group not in plan.groups:
            raise ConfigurationError(f"{plan.l2a_id}: no stage {stage} (groups: {plan.groups})")
        _correct(plan, inp, known, group, None if tile is None else window)
    else:
        raise ConfigurationError(f"{plan.l2a_id}: no stage {stage!r} to run (stages: {', '.join(plan.stages())})")
    _mark(plan, stage, window)
    return StageDone(stage, None if tile is None else tile.index, window.blocks, totals)


def _tile_needs(plan: ProductPlan, stage: str, inp: _Inputs, known: Totals) -> str | None:
    """The round a tile's run of ``stage`` still lacks (:func:`next_step`), found without building the stage.

    The atmosphere's rounds are found as its tile builds it (:func:`run_stage`).
    """
    if stage == "screening":
        pending, name = _screening_round(plan, inp, known)
        if name == "shadows":
            # A round said to be stored whose tiles did not all store it is the error to report.
            _require(plan, ("screening-pixels",))
        return pending.name if pending is not None else name
    return BACKGROUND if stage.startswith("correction-") and _background_due(plan, known) else None


def _stored_atmosphere(plan: ProductPlan, inp: _Inputs, scl: da.Array, known: Totals) -> _Atmosphere:
    atm = _atmosphere(plan, inp, scl, known, keep=False)
    if atm.pending is not None or atm.retrieved is None:
        raise ConfigurationError(f"{plan.l2a_id}: the correction needs {atm.pending and atm.pending.name} first")
    chunks = inp.toa["B04"].chunks
    stored = {n: checkpoint_array(_path(plan, _ATMOSPHERE, n), chunks, F32) for n in ATMOSPHERE_LAYERS}
    return replace(atm, retrieved=replace(atm.retrieved, aot=stored["aot"], water_vapour=stored["water_vapour"]))


def _rasters(plan: ProductPlan, inp: _Inputs, known: Totals) -> tuple[dict[str, tuple[da.Array, RasterSpec]],
                                                                     dict[str, Any]]:  # fmt: skip
    """Every output raster by logical name, from the checkpoints; and the atmosphere's summary."""
    config = plan.config
    product = inp.product
    wr = config.working_resolution
    gb, gb60 = product.geobox(wr), product.geobox(60)
    chunks = inp.toa["B04"].chunks
    scl_res = _stored_classification(plan, inp)
    scl = scl_res.scl
    rasters: dict[str, tuple[da.Array, RasterSpec]] = {}

    def add(kind: str, res: int, arr: da.Array, spec: RasterSpec) -> None:
        rasters[logical_name(kind, res)] = (arr, spec)

    def to60(x: da.Array) -> da.Array:
        # 20 m -> 60 m by 3x3 block mean, on the chunk grid shared by all resolutions.
        out: da.Array = lazy.downsample_mean(x.rechunk(chunks), 3)[: gb60.shape[0], : gb60.shape[1]]
        return out

    def scl_spec(grid: Any) -> RasterSpec:
        return RasterSpec(grid, "uint8", 0, ("SCL",), resampling="mode", colormap=SCL_COLOURS)

    def prob_spec(grid: Any, description: str) -> RasterSpec:
        return RasterSpec(grid, "uint8", None, (description,), resampling="average")

    cloud, calibrated, snow = "cloud confidence % (Sen2Cor)", "calibrated cloud probability %", "snow confidence %"
    add("SCL", wr, scl, scl_spec(gb))
    add("MSK_CLDPRB", wr, scl_res.cloud_probability, prob_spec(gb, cloud))
    add("MSK_SNWPRB", wr, scl_res.snow_probability, prob_spec(gb, snow))
    add("CLD_PROB_CALIBRATED", wr, scl_res.calibrated_cloud_probability, prob_spec(gb, calibrated))
    if wr == 20:
        add("SCL", 60, scl_res.scl_60m(), scl_spec(gb60))
        add("MSK_CLDPRB", 60, scl_res.cloud_probability_60m(), prob_spec(gb60, cloud))
        add("MSK_SNWPRB", 60, scl_res.snow_probability_60m(), prob_spec(gb60, snow))
    if config.sc_only:
        return rasters, {}

    stored, grids = _correction_grids(plan, inp, known, scl)
    atm, ac = grids[wr].atmosphere, stored.corrector
    summary = dict(atm.summary, CIRRUS_GAMMA=stored.gamma)
    first = _stored_first_passes(plan, inp, known)
    boa_wr = ac.correct(grids[wr].scene, atm, scl, WORKING_BANDS, first.get(wr))
    legacy = config.legacy_encoding
    # Negative reflectance is stored below DN 1000 (clipped to 1 with the legacy encoding).
    boa_scaling: dict[str, Any] = dict(encode.boa_raster_scaling(legacy), negative_below=2 if legacy else 1000)

    def enc(x: da.Array) -> da.Array:
        out: da.Array = da.map_blocks(encode.encode_boa, x, legacy, dtype=np.uint16)
        return out

    def enc_scaled(x: da.Array, scale: float) -> da.Array:
        out: da.Array = da.map_blocks(encode.encode_scaled, x, scale, dtype=np.uint16)
        return out

    def boa(band: str, res: int, x: da.Array, grid: Any) -> None:
        add(band, res, enc(x), RasterSpec(grid, "uint16", 0, (band,), **boa_scaling))

    def tci(res: int, r: da.Array, g: da.Array, b: da.Array, grid: Any) -> None:
        dn = [enc(x) for x in (r, g, b)]
        arr = da.map_blocks(encode.tci, *dn, new_axis=0, chunks=((3,),) + dn[0].chunks, dtype=np.uint8)
        add("TCI", res, arr, RasterSpec(grid, "uint8", 0, ("red", "green", "blue")))

    aot_dn = enc_scaled(atm.aot, encode.AOT_QUANTIFICATION)
    wvp_dn = enc_scaled(atm.water_vapour, encode.WVP_QUANTIFICATION)
    aot_spec = RasterSpec(gb, "uint16", 0, ("AOT x1000",), scale=1e-3)
    wvp_spec = RasterSpec(gb, "uint16", 0, ("WVP cm x1000",), scale=1e-3)
    add("AOT", wr, aot_dn, aot_spec)
    add("WVP", wr, wvp_dn, wvp_spec)
    for b in WORKING_BANDS:
        # Sen2Cor's R20m holds B01 (baseline 04.00 on) but not B09.
        if wr == 60 or b != "B09" or config.resolution == 20:
            boa(b, wr, boa_wr[b], gb)
    tci(wr, boa_wr["B04"], boa_wr["B03"], boa_wr["B02"], gb)
    if wr == 20:
        add("AOT", 60, enc_scaled(to60(atm.aot), encode.AOT_QUANTIFICATION), replace(aot_spec, geobox=gb60))
        add("WVP", 60, enc_scaled(to60(atm.water_vapour), encode.WVP_QUANTIFICATION), replace(wvp_spec, geobox=gb60))
        b60 = {b: to60(boa_wr[b]) for b in WORKING_BANDS}
        for b in WORKING_BANDS:
            boa(b, 60, b60[b], gb60)
        tci(60, b60["B04"], b60["B03"], b60["B02"], gb60)
    if 10 in grids:
        gb10 = product.geobox(10)
        g10 = grids[10]
        up = _upsampler(plan, inp, g10.scene.toa["B02"].chunks)
        boa10 = ac.correct(g10.scene, g10.atmosphere, g10.scl, BANDS_10M, first.get(10))
        for b in BANDS_10M:
            boa(b, 10, boa10[b], gb10)
        add("AOT", 10, up(aot_dn), replace(aot_spec, geobox=gb10))
        add("WVP", 10, up(wvp_dn), replace(wvp_spec, geobox=gb10))
        tci(10, boa10["B04"], boa10["B03"], boa10["B02"], gb10)
    return rasters, summary


@dataclass(frozen=True, eq=False)
class _Grid:
    """A grid the correction runs on: its scene (cirrus removed), atmosphere and classification."""

    scene: Scene
    atmosphere: Atmosphere
    scl: da.Array


def _correction_grids(
    plan: ProductPlan, inp: _Inputs, known: Totals, scl: da.Array
) -> tuple[_Atmosphere, dict[int, _Grid]]:
    """The stored atmosphere, and the grids the correction runs on by resolution (the working grid, 10 m)."""
    stored = _stored_atmosphere(plan, inp, scl, known)
    atm = stored.retrieved
    assert atm is not None
    grids = {plan.config.working_resolution: _Grid(stored.scene, atm, scl)}
    if stored.scene10 is not None:
        scene10 = stored.scene10
        up = _upsampler(plan, inp, scene10.toa["B02"].chunks)
        scl10 = up(scl)
        if stored.gamma is not None:
            scene10, _ = stored.corrector.remove_cirrus(scene10, scl10, known)
        grids[10] = _Grid(scene10, replace(atm, aot=up(atm.aot), water_vapour=up(atm.water_vapour)), scl10)
    return stored, grids


def _first_passes(plan: ProductPlan, inp: _Inputs, known: Totals) -> list[tuple[da.Array, str]]:
    """The correction's first passes (:meth:`AtmosphericCorrection.first_pass`) with the files they are stored in."""
    stored, grids = _correction_grids(plan, inp, known, _stored_classification(plan, inp).scl)
    files = _background_files(plan, inp.product)
    out = []
    for res, bands in _correction_groups(plan).items():
        g = grids[res]
        for b, arr in stored.corrector.first_pass(g.scene, g.atmosphere, g.scl, bands).items():
            out.append((arr, files[(res, b)][0]))
    return out


def _stored_first_passes(plan: ProductPlan, inp: _Inputs, known: Totals) -> dict[int, dict[str, da.Array]]:
    """The first passes stored by every tile, by resolution and band (none before they are)."""
    if STORED + BACKGROUND not in known:
        return {}
    _require(plan, (f"{_first_correction(plan)}-{BACKGROUND}",))
    out: dict[int, dict[str, da.Array]] = {}
    for (res, b), (path, coarse) in _background_files(plan, inp.product).items():
        out.setdefault(res, {})[b] = checkpoint_array(path, (coarse[0], coarse[1]), F32)
    return out


def _product_rasters(plan: ProductPlan, inp: _Inputs, known: Totals) -> tuple[ProductRasters, dict[str, Any]]:
    rasters, atmosphere = _rasters(plan, inp, known)
    return ProductRasters(inp.product, plan.l2a_id, rasters, {}, plan.config.resolution), atmosphere


def _by_group(outputs: Mapping[str, tuple[Any, RasterSpec]], plan: ProductPlan) -> dict[int, dict[str, Any]]:
    groups: dict[int, dict[str, Any]] = {g: {} for g in plan.groups}
    for name, (arr, spec) in outputs.items():
        g = plan.groups[0] if len(plan.groups) == 1 else (10 if store_group(spec) else plan.groups[-1])
        groups[g][name] = (arr, spec)
    return groups


def _finalise_tasks(outputs: Mapping[str, tuple[Any, RasterSpec]], plan: ProductPlan) -> list[Any]:
    tasks = cog_tasks if plan.config.format == "cog" else jp2_tasks
    return tasks(outputs, plan.work, store=False) if outputs else []


def _correct(plan: ProductPlan, inp: _Inputs, known: Totals, group: int, tile: Tile | None) -> None:
    """Store ``group``'s outputs over the whole product (encoding the groups stored before meanwhile),
    or (``tile``) the tile's window of them."""
    product, _ = _product_rasters(plan, inp, known)
    outputs, stage_spec = layout_outputs(product, plan.config.format)
    groups = _by_group(outputs, plan)
    if tile is not None:
        # Tiles write windows of the group's outputs (all groups share the chunk grid); the groups
        # stored before are encoded by encode_group, beside the tiles.
        for name, (arr, _) in groups[group].items():
            if tuple(arr.numblocks[-2:]) != plan.grid:
                raise OutputError(f"{name}: chunk grid {arr.numblocks[-2:]} is not the product's {plan.grid}")
        create_staged(groups[group], plan.work, stage_spec, keep_existing=True)
        store_blocks(groups[group], plan.work, tile.rows, tile.cols)
        return
    earlier = {n: o for g in plan.groups[: plan.groups.index(group)] for n, o in groups[g].items()}
    # The files of the groups stored before are encoded while this group is computed: the
    # cores its store leaves idle (its last chunks, waits on neighbours) encode.
    compute(store_delayed(groups[group], plan.work, stage_spec), *_finalise_tasks(earlier, plan))


def encode_group(plan: ProductPlan, group: int, known: Totals) -> StageDone:
    """Encode the files of correction group ``group`` (``correction-{group}m`` stored by every tile).

    By processing tiles the next group's tiles run meanwhile, as the whole-product stage
    encodes the groups stored before while it computes the next (:func:`run_stage`);
    packaging then encodes only the files left.

    Raises
    ------
    OutputError
        A block of the group is not stored, or a file cannot be encoded.
    """
    stage = f"correction-{group}m"
    _require(plan, (stage,))
    product, _ = _product_rasters(plan, _inputs(plan), known)
    outputs, _ = layout_outputs(product, plan.config.format)
    compute(*_finalise_tasks(_by_group(outputs, plan)[group], plan))
    return StageDone(f"encoding-{group}m", None, plan.whole.blocks)


# ----------------------------------------------------------------------------- packaging


def _cloud_mask_agreement(plan: ProductPlan, inp: _Inputs) -> dict[str, Any]:
    """ESA's L1C cloud mask (``MSK_CLASSI_B00``) against the stored SCL: a sanity check for the summary."""
    product = inp.product
    rel = product.cloud_mask_file() if plan.config.classification.handle_l1c_quality_mask else None
    if rel is None:
        return {"source": None, "note": "no MSK_CLASSI_B00.jp2 (products before processing baseline 04.00)"}
    scl = checkpoint_array(_path(plan, _SCREENING, "scl"), inp.toa["B04"].chunks, np.uint8)
    table = cloud_mask_table(product.store.gdal_path(rel), scl, plan.config.working_resolution,
                             product=product.href, display=f"{product.store.display}/{rel}",
                             gdal_options=product.gdal_options).compute()  # fmt: skip
    return {"source": "MSK_CLASSI_B00", **agreement_summary(table),
            "table": {"rows": "L1C mask", "columns": "SCL", "categories": list(CLASSI_CATEGORIES),
                      "counts": np.asarray(table).tolist()}}  # fmt: skip


def package(plan: ProductPlan, known: Totals, seconds: Mapping[str, float] | None = None) -> L2AResult:
    """Encode the files not encoded yet, write metadata and the STAC item (or ``MTD_MSIL2A.xml``), publish.

    Raises
    ------
    OutputError
        A checkpoint or a staged raster is missing, or a file cannot be written.
    """
    _require(plan, plan.stages()[:-1])
    inp = _inputs(plan)
    counts = load_checkpoint(_path(plan, _SCREENING, _COUNTS)).sum(axis=(0, 1))
    percentages = percentages_from_counts(counts, plan.config.classification)
    product, atmosphere = _product_rasters(plan, inp, known)
    summary = {
        "l1c_id": plan.product_id, "l2a_id": plan.l2a_id, "processor": f"sen2core {__version__}",
        "lut_id": load_lut(plan.config.lut).id, "spacecraft_srf": spacecraft_code(inp.product),
        "resolution": plan.config.resolution, "sc_only": plan.config.sc_only, "format": plan.config.format,
        "legacy_encoding": plan.config.legacy_encoding, "class_percentages": percentages, "atmosphere": atmosphere,
        "correction_config": config_dict(plan.config.correction), "seconds": dict(seconds or {}),
        "warnings": list(inp.product.warnings),
        # Measured once per process (cached): the DEM's name, CRS and coverage of the tile.
        "dem": dem_info(plan.config.dem, inp.product.geobox(plan.config.working_resolution)).to_dict()
        if plan.config.dem else None,
        # The L1C's CAMS / ECMWF files and their tile means: inputs like the DEM and the LUT.
        "auxiliary_data": plan.aux.to_dict() if plan.aux is not None else None,
    }  # fmt: skip
    summary["input_checksums"] = _read_json(os.path.join(plan.work, _BANDS, _INTEGRITY))
    summary["l1c_quality"] = _read_json(os.path.join(plan.work, _BANDS, _QUALITY))
    summary["l1c_cloud_mask"] = _cloud_mask_agreement(plan, inp)
    if plan.tile_blocks is not None:
        summary["processing_tiles"] = len(plan.tiles)
    # The graphs above read the checkpoints lazily: the staged rasters are all that packaging computes from.
    for folder in (_BANDS, _SCREENING, _ATMOSPHERE, _CORRECTION, _DONE):
        shutil.rmtree(os.path.join(plan.work, folder), ignore_errors=True)
    product = replace(product, summary=summary)
    # The item joins the collection at the output root (which the CLI and the flows update next).
    collection = os.path.relpath(Path(plan.output_root) / COLLECTION_NAME, plan.final).replace(os.sep, "/")
    files = write_product(product, Path(plan.final), plan.config.format, staged=Path(plan.work),
                          collection_href=collection)  # fmt: skip
    return L2AResult(plan.product_id, plan.l2a_id, plan.final, "done", percentages, atmosphere, dict(seconds or {}),
                     tuple(files))  # fmt: skip

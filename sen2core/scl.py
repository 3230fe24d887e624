"""Scene classification on dask arrays: a thin adapter over :mod:`sen2core.kernels.scene_class`.

:func:`classify` builds a lazy graph; nothing is computed until the caller computes or
stores the arrays of the returned :class:`SceneClassification`. Each kernel pass runs
per chunk, through ``map_blocks`` or, where it looks at neighbours, on chunks extended
by exactly the pass's reach (``dask.array.overlap``), so the chunked result equals the
whole-image reference :func:`sen2core.kernels.scene_class.scene_classification`:

- pixel rules (steps 0-7): overlap = snow-ring dilations (3 px);
- radiometric shadow test and cloud mask: 2 px;
- shadow projection: on a coarser grid (``config.shadow_grid_m``, 60 m by default) with
  an overlap of the longest possible shadow (``cloud_height_max_m`` at the sun zenith
  clip ``shadow_max_sun_zenith_deg`` plus the view parallax; pass ``max_sun_zenith_deg``
  to :func:`classify` to bound it by the scene's sun instead). The zone is upsampled
  (nearest) and combined with the full-resolution radiometric test;
- cloud heights matched with dark pixels (``config.shadow_height_matching``): on a
  300 m grid, overlap twice the longest shadow plus the matching window;
- terrain cast shadows (with a DEM): on the 60 m shadow grid, overlap
  ``terrain_shadow_max_distance_m``;
- recovery and post-processing: Gaussian smoothing of the shadow, snow dilation, R9
  blobs, median filter and cloud buffer.

Scene-wide quantities are small reductions: the B10/B11 histogram of bright land (ground
leakage into B10), the mean of the CCI snow-condition map, the R7/R8 B10 statistics
(with a land-cover map), and the class counts behind the percentages. No chunk holds
more than its own neighbourhood: a full tile is never one numpy array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from dask.base import is_dask_collection
from dask.delayed import Delayed, delayed
from dask.graph_manipulation import bind, clone

from sen2core import lazy
from sen2core.config import SceneClassificationConfig
from sen2core.errors import ConfigurationError, InputProductError
from sen2core.kernels import morphology
from sen2core.kernels import shadow as shadow_kernels
from sen2core.kernels.radiometry import block_mean
from sen2core.kernels.scene_class import (
    OPTIONAL_BANDS,
    REQUIRED_BANDS,
    SCL,
    SceneStatistics,
    calibrated_cloud_probability,
    class_counts,
    class_percentages,
    classify_pixels,
    coarse_sun,
    finalize,
    finalize_reach,
    hpc_blob_mask,
    hpc_blob_reach,
    leakage_from_histogram,
    leakage_histogram,
    match_cloud_shadow,
    match_counts,
    match_grid_factor,
    match_zone_reach,
    probability_to_uint8,
    project_cloud_shadow,
    scene_statistics,
    shadow_displacement_field,
    shadow_grid_factor,
    shadow_inputs,
    shadow_reach,
    statistics_from_sums,
    sun_components,
    terrain_shadow_reach,
)

__all__ = [
    "INPUT_SUMS",
    "PIXEL_LAYERS",
    "SHADOW_INPUTS",
    "SHADOW_LAYERS",
    "AuxiliaryMaps",
    "SceneClassification",
    "classify",
    "percentages_from_counts",
    "scene_sums",
    "shadow_input_grids",
]

Chunks = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True, eq=False)
class AuxiliaryMaps:
    """Optional auxiliary maps on the classification grid (dask or numpy 2-D arrays).

    Each is used when given; the steps that need it are skipped when it is not.
    """

    water_bodies: Any = None
    """ESA-CCI water bodies (1 land, 2 water): recovery R3 and the land percentage."""
    land_cover: Any = None
    """ESA-CCI land cover classes: recoveries R7 (needs B09), R8 and R9."""
    snow_condition: Any = None
    """ESA-CCI snow-condition climatology (percent, 254 water): in a snow-free scene
    (mean below 10 %) snow found on water is cloud."""
    snow_possible: bool | None = None
    """From a snow climatology (Sen2Cor's GlobalSnowMap over the tile): False skips the
    snow chain; None (unknown) runs it."""


@dataclass(frozen=True, eq=False)
class SceneClassification:
    """Lazy scene classification products (dask arrays on the classification grid)."""

    scl: da.Array
    """SCL, uint8 codes 0-11 (:class:`~sen2core.kernels.scene_class.SCL`)."""
    cloud_probability: da.Array
    """``MSK_CLDPRB``: uint8 percent, ``uint8(CMC * 100 + 0.5)``."""
    snow_probability: da.Array
    """``MSK_SNWPRB``: uint8 percent, ``uint8(CMS * 100 + 0.5)``."""
    calibrated_cloud_probability: da.Array
    """float32 probability of cloud, 0..1, calibrated on synthetic truth (NaN without data)."""
    cloud_buffer: da.Array
    """bool, pixels the cloud buffer turned into CLOUD_MEDIUM_PROBABILITY (all False
    when ``config.cloud_buffer_m`` is 0)."""
    resolution_m: float
    """Pixel size of the classification grid (m)."""
    config: SceneClassificationConfig
    """Configuration used."""
    water_bodies: da.Array | None = None
    """CCI water bodies, when given (for ``CLOUDY_PIXEL_OVER_LAND_PERCENTAGE``)."""

    def scl_60m(self) -> da.Array:
        """The 60 m SCL as Sen2Cor derives it from 20 m: 3 x 3 median, then nearest resize.

        Raises
        ------
        ValueError
            If the classification grid is not 20 m.
        """
        factor = self._factor_to_60m()
        (filtered,) = _overlap_map(lambda s: (morphology.median3(s),), [_aligned_to(self.scl, factor)], 1, 1)
        filtered = filtered.astype(np.uint8)
        return _to_coarse(lambda s: (morphology.block_centres(s, factor),), [filtered], factor, 1, np.uint8)[0]

    def cloud_probability_60m(self) -> da.Array:
        """``MSK_CLDPRB`` at 60 m: 3 x 3 block mean of the 20 m mask, rounded (uint8 percent)."""
        return self._probability_60m(self.cloud_probability)

    def snow_probability_60m(self) -> da.Array:
        """``MSK_SNWPRB`` at 60 m: 3 x 3 block mean of the 20 m mask, rounded (uint8 percent)."""
        return self._probability_60m(self.snow_probability)

    def _factor_to_60m(self) -> int:
        if not math.isclose(self.resolution_m, 20.0):
            raise ValueError(f"the 60 m products derive from a 20 m classification, not {self.resolution_m:g} m")
        return 3

    def _probability_60m(self, mask: da.Array) -> da.Array:
        factor = self._factor_to_60m()

        def mean_u8(a: np.ndarray) -> tuple[np.ndarray]:
            return (np.floor(block_mean(a.astype(np.float32), factor) + np.float32(0.5)).astype(np.uint8),)

        return _to_coarse(mean_u8, [_aligned_to(mask, factor)], factor, 1, np.uint8)[0]

    def class_counts(self) -> da.Array:
        """Lazy (3, 12) int64 table of :func:`~sen2core.kernels.scene_class.class_counts`: a small reduction."""
        total: da.Array = self.class_counts_per_block().sum(axis=(0, 1))
        return total

    def class_counts_per_block(self) -> da.Array:
        """Lazy (block rows, block columns, 3, 12) table: the counts of each chunk block."""
        arrays = [self.scl, self.cloud_buffer] + ([self.water_bodies] if self.water_bodies is not None else [])

        def counts(scl: np.ndarray, buffered: np.ndarray, *wb: np.ndarray) -> np.ndarray:
            return class_counts(scl, wb[0] if wb else None, buffered)[None, None]

        rows, cols = self.scl.chunks
        per_block: da.Array = da.map_blocks(
            counts,
            *arrays,
            new_axis=[2, 3],
            dtype=np.int64,
            chunks=((1,) * len(rows), (1,) * len(cols), (3,), (12,)),
            meta=np.empty((0, 0, 0, 0), dtype=np.int64),
        )
        return per_block

    def percentages(self) -> Delayed:
        """Lazy dict of Sen2Cor's percentages (:func:`~sen2core.kernels.scene_class.class_percentages`:
        ``CLOUDY_PIXEL_PERCENTAGE``, ``CLOUDY_PIXEL_OVER_LAND_PERCENTAGE``...) plus
        ``CLOUD_BUFFER_M`` (the buffer used) and ``CLOUD_BUFFER_PERCENTAGE``."""
        result: Delayed = delayed(percentages_from_counts, pure=True)(self.class_counts(), self.config)
        return result


def percentages_from_counts(counts: np.ndarray, config: SceneClassificationConfig) -> dict[str, float]:
    """Sen2Cor's percentages from a (3, 12) table of :meth:`SceneClassification.class_counts` (or a sum of them)."""
    out = class_percentages(np.asarray(counts))
    out["CLOUD_BUFFER_M"] = float(config.cloud_buffer_m)
    return out


# ---------------------------------------------------------------------------- helpers


def _aligned_to(x: da.Array, factor: int) -> da.Array:
    """``x`` on chunks that are multiples of ``factor`` (coarse blocks must not straddle chunks)."""
    chunks = _aligned_chunks((tuple(x.chunks[0]), tuple(x.chunks[1])), factor)
    return x.rechunk(chunks) if chunks != x.chunks else x


def _overlap_map(
    func: Callable[..., Sequence[Any]],
    arrays: Sequence[da.Array],
    depth: int,
    n_out: int,
    dtypes: Sequence[Any] | None = None,
    **kwargs: Any,
) -> list[da.Array]:
    """Run ``func`` on blocks extended by ``depth`` pixels; ``n_out`` same-shape outputs.

    The outputs are packed into one float32 stack per block (class codes, masks and
    confidences are all exact in float32), trimmed back to the chunks of ``arrays[0]``
    and split. Edges of the image get no padding (``boundary="none"``): there the
    kernel sees the true image edge, as on the whole image. An array may be a stack
    ``(layers, rows, cols)`` with one chunk along its first axis: ``func`` then gets
    its 3-D blocks.

    With ``dtypes`` (one per output) each output is copied out of the stack in its own
    dtype: a plain split is a view that keeps the whole float32 stack alive as long as
    any output is waiting for a consumer, four times the size of a uint8 mask.
    """
    chunks = arrays[0].chunks[-2:]

    def packed(*blocks: np.ndarray, **kw: Any) -> np.ndarray:
        return np.stack([np.asarray(o, dtype=np.float32) for o in func(*blocks, **kw)])

    packed.__name__ = getattr(func, "__name__", "packed")
    stacked = lazy.halo_map(packed, *arrays, depth=depth, dtype=np.float32, chunks=((n_out,), *chunks), **kwargs)
    return [_layers(stacked, i, dt) for i, dt in enumerate(dtypes or (np.float32,) * n_out)]


def _stack(*blocks: np.ndarray) -> np.ndarray:
    return np.stack(blocks)


def _layer(stack: np.ndarray, index: int, dtype: Any) -> np.ndarray:
    return np.array(stack[index], dtype=dtype)


def _layers(stacked: da.Array, index: int, dtype: Any) -> da.Array:
    """Layer ``index`` of a stack (one chunk on axis 0) as ``dtype``, a task per block.

    Blockwise, unlike ``stacked[index]``: dask fuses it with the operations that follow
    instead of sending the scheduler a slicing task a block, which graphs computed
    unfused (processing tiles) otherwise pay for.
    """
    out: da.Array = da.map_blocks(_layer, stacked, index, dtype, drop_axis=0, dtype=dtype,
                                  meta=np.empty((0, 0), dtype=dtype))  # fmt: skip
    return out


def _to_coarse(
    func: Callable[..., Sequence[Any]], arrays: Sequence[da.Array], factor: int, n_out: int, dtype: Any
) -> list[da.Array]:
    """Run a ``factor``-coarsening kernel per chunk (chunks are multiples of ``factor``)."""
    out_chunks = _coarse_chunks(arrays[0].chunks, factor)

    def packed(*blocks: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(o, dtype=np.float64) for o in func(*blocks)])

    stacked = da.map_blocks(
        packed,
        *arrays,
        new_axis=0,
        chunks=((n_out,), *out_chunks),
        dtype=np.float64,
        meta=np.empty((0, 0, 0), dtype=np.float64),
    )
    return [_layers(stacked, i, dtype) for i in range(n_out)]


def _coarse_chunks(chunks: Any, factor: int) -> Chunks:
    """The chunks of a ``factor``-coarser grid: one cell per started ``factor`` x ``factor`` block of a chunk."""
    rows, cols = (tuple(-(-c // factor) for c in dim) for dim in chunks)
    return (rows, cols)


def _to_fine(coarse: da.Array, factor: int, chunks: Chunks, dtype: Any) -> da.Array:
    """Nearest-neighbour upsampling of a coarse array onto the fine chunks."""
    coarse_chunks = _coarse_chunks(chunks, factor)
    if coarse.chunks != coarse_chunks:
        coarse = coarse.rechunk(coarse_chunks)

    def up(a: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
        shape = (block_info or {})[None]["chunk-shape"]
        return np.asarray(morphology.upsample_blocks(a, factor, shape), dtype=dtype)

    fine: da.Array = da.map_blocks(up, coarse, chunks=chunks, dtype=dtype, meta=np.empty((0, 0), dtype=dtype))
    return fine


def _aligned_chunks(chunks: Chunks, unit: int) -> Chunks:
    """Chunks whose sizes (except the last) are multiples of ``unit``."""
    out = []
    for dim in chunks:
        total = sum(dim)
        if all(c % unit == 0 for c in dim[:-1]):
            out.append(tuple(dim))
            continue
        size = max(unit, -(-dim[0] // unit) * unit)
        full, rest = divmod(total, size)
        out.append((size,) * full + ((rest,) if rest else ()))
    return (out[0], out[1])


def _as_dask(a: Any, chunks: Chunks, name: str, shape: tuple[int, ...]) -> da.Array:
    if np.shape(a) != shape:
        raise InputProductError("scene classification", f"{name} is {np.shape(a)}, the bands are {shape}")
    x = a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=chunks)
    return x.rechunk(chunks) if x.chunks != chunks else x


def _below_100_sums(snc: np.ndarray) -> np.ndarray:
    ok = snc <= 100
    return np.array([float(snc[ok].astype(np.float64).sum()), float(np.count_nonzero(ok))])


def _mean_from_sums(sums: np.ndarray) -> float:
    return float(sums[0]) / float(sums[1]) if sums[1] else math.nan


def _scene_mean_below_100(snc: da.Array, known: Mapping[str, Any]) -> Delayed | float:
    if "snow_condition_mean" in known:
        return _mean_from_sums(np.asarray(known["snow_condition_mean"]))
    total = lazy.block_sums(_below_100_sums, snc, name="snow_condition_mean").total()
    mean: Delayed = delayed(_mean_from_sums, pure=True)(total)
    return mean


def _leakage_histogram(*blocks: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    return leakage_histogram(dict(zip(names, blocks, strict=True))).astype(np.float64)


def _statistics_sums(*blocks: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    nb = len(names)
    b = dict(zip(names, blocks[:nb], strict=True))
    return np.asarray(scene_statistics(b, blocks[nb], blocks[nb + 1], blocks[nb + 2]), dtype=np.float64)


# ---------------------------------------------------------------------------- classify


def _classification_chunks(ref: Any, resolution_m: float, cfg: SceneClassificationConfig) -> Chunks:
    """The chunks :func:`classify` works on: the caller's, rounded up to its coarse grids' cells."""
    shape = tuple(np.shape(ref))
    base = ref.chunks if isinstance(ref, da.Array) else da.core.normalize_chunks((915, 915), shape)
    return _aligned_to_grids((tuple(base[0]), tuple(base[1])), resolution_m, cfg)


def _aligned_to_grids(chunks: Chunks, resolution_m: float, cfg: SceneClassificationConfig) -> Chunks:
    unit = math.lcm(
        shadow_grid_factor(resolution_m, cfg),
        match_grid_factor(resolution_m, cfg) if cfg.shadow_height_matching else 1,
        3 if math.isclose(resolution_m, 20.0) else 1,
    )
    return _aligned_chunks(chunks, unit)


#: The coarse inputs of the shadow zones: on the shadow grid (``config.shadow_grid_m``) or the
#: height-matching grid (``config.shadow_match_grid_m``), and their dtypes. Processing tiles
#: store them with the :data:`PIXEL_LAYERS` (``want="pixels"``, ``stored``): the zones read
#: them with wide neighbourhoods, and computed there each tile computed its neighbours'
#: per-pixel angles and cloud-to-shadow displacements again.
SHADOW_INPUTS: dict[str, tuple[str, Any]] = {
    "projection_cloud": ("shadow", np.float32), "projection_drow": ("shadow", np.float32),
    "projection_dcol": ("shadow", np.float32),
    "match_cloud": ("match", np.float64), "match_dark": ("match", np.float64), "match_pixels": ("match", np.float64),
    "match_drow": ("match", np.float64), "match_dcol": ("match", np.float64),
    "terrain_dem": ("shadow", np.float64), "terrain_sun_zenith": ("shadow", np.float64),
    "terrain_sun_azimuth": ("shadow", np.float64),
}  # fmt: skip


def shadow_input_grids(chunks: Chunks, resolution_m: float, config: SceneClassificationConfig | None = None,
                       dem: bool = False) -> dict[str, tuple[Chunks, Any]]:  # fmt: skip
    """The :data:`SHADOW_INPUTS` that :func:`classify` computes with ``config`` (and a DEM), for bands
    on ``chunks``: each one's chunks on its coarse grid, and its dtype."""
    cfg = config if config is not None else SceneClassificationConfig()
    aligned = _aligned_to_grids(chunks, resolution_m, cfg)
    factors = {"shadow": shadow_grid_factor(resolution_m, cfg), "match": match_grid_factor(resolution_m, cfg)}
    out = {}
    for name, (grid, dtype) in SHADOW_INPUTS.items():
        if (name.startswith("match_") and not cfg.shadow_height_matching) or (name.startswith("terrain_") and not dem):
            continue
        out[name] = (_coarse_chunks(aligned, factors[grid]), dtype)
    return out


#: Layers of the pixel rules (steps 0-7 and the shadow inputs) that the later passes read with wide
#: neighbourhoods, and their dtypes (:func:`classify`'s ``stored`` and ``want``).
PIXEL_LAYERS = {
    "classes": np.uint8, "cloud_confidence": np.uint8, "snow_confidence": np.uint8, "probability": np.float32,
    "shadow_test": np.float32, "cloud": np.bool_, "dark": np.bool_,
}  # fmt: skip

#: The shadow zones the post-processing reads with wide neighbourhoods: Sen2Cor's projected
#: zone, the zone matched with dark pixels and the terrain's cast shadows (the last two only
#: with height matching, and with a DEM). Each one is computed with a wide overlap itself.
SHADOW_LAYERS = ("projected", "matched", "cast")

#: Scene-wide sums of :func:`classify` over its inputs, in the order it needs them
#: (:func:`scene_sums`); the R7/R8 statistics, which need the pixel classes, are not among them.
INPUT_SUMS = ("b10_leakage", "snow_condition_mean")


def scene_sums(
    bands: Mapping[str, da.Array],
    resolution_m: float,
    config: SceneClassificationConfig | None = None,
    aux: AuxiliaryMaps | None = None,
    known: Mapping[str, Any] | None = None,
) -> lazy.BlockSums | None:
    """The first scene-wide sum of :func:`classify`'s inputs not in ``known`` (None: none left).

    Give the totals to :func:`classify` (``known``) so that it computes none itself:
    a caller that computes the classification window by window (processing tiles)
    adds up every window's parts first.
    """
    cfg = config if config is not None else SceneClassificationConfig()
    maps = aux if aux is not None else AuxiliaryMaps()
    known = known or {}
    names = [*REQUIRED_BANDS, *(b for b in OPTIONAL_BANDS if b in bands)]
    ref = bands["B02"]
    shape = tuple(np.shape(ref))
    chunks = _classification_chunks(ref, resolution_m, cfg)
    if cfg.cirrus_leakage_correction and "b10_leakage" not in known:
        arrays = [_as_dask(bands[n], chunks, n, shape).astype(np.float32) for n in names]
        return lazy.block_sums(_leakage_histogram, *arrays, name="b10_leakage", names=tuple(names))
    if maps.snow_condition is not None and "snow_condition_mean" not in known:
        snc = _as_dask(maps.snow_condition, chunks, "snow_condition", shape).astype(np.uint8)
        return lazy.block_sums(_below_100_sums, snc, name="snow_condition_mean")
    return None


@dataclass(frozen=True, eq=False)
class _Inputs:
    """:func:`classify`'s inputs on its chunks, and how each pass gets the bands."""

    cfg: SceneClassificationConfig
    maps: AuxiliaryMaps
    resolution_m: float
    names: tuple[str, ...]
    """Bands used, in kernel order (``REQUIRED_BANDS`` then the optional ones given)."""
    shape: tuple[int, ...]
    chunks: Chunks
    """The classification's chunks (:func:`_classification_chunks`)."""
    in_chunks: Chunks
    """The caller's chunks, which the outputs go back to."""
    band_inputs: list[da.Array]
    band_arrays: list[da.Array]
    private_bands: bool
    sz: da.Array
    sa: da.Array
    vz: da.Array | None
    va: da.Array | None
    dem: da.Array | None
    qm: da.Array | None
    wb: da.Array | None
    lc: da.Array | None
    snc: da.Array | None

    @property
    def k(self) -> int:
        """Shadow-grid factor."""
        return shadow_grid_factor(self.resolution_m, self.cfg)

    @property
    def nbk(self) -> int:
        """Number of blocks a pass with an overlap gets for the bands: one stack when they are private."""
        return 1 if self.private_bands else len(self.names)

    def prep(self, a: Any, name: str, dtype: Any = np.float32) -> da.Array:
        """``a`` as a dask array of ``dtype`` on the classification's chunks."""
        x: da.Array = _as_dask(a, self.chunks, name, self.shape).astype(dtype)
        return x

    def band_dict(self, blocks: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The bands by name from a pass's blocks (the first ``nbk`` of them)."""
        return dict(zip(self.names, blocks[0] if self.private_bands else blocks[: len(self.names)], strict=True))

    def bands_for(self, pass_name: str, after: Sequence[Any] = (), stacked: bool = False) -> list[da.Array]:
        """The bands one pass reads: shared, or with ``private_bands`` that pass's own copy."""
        # A private copy is computed when its pass is about to run, not as soon as the
        # data it derives from are there: it waits for what that pass also needs, which
        # takes a scene-wide reduction or wide overlaps to compute.
        if not self.private_bands:
            return self.band_arrays
        # Copies of the caller's arrays, prepared as the shared ones: a cloned rechunk lost
        # keys of its graph (dask 2026.8).
        inputs = self.band_inputs
        own = list(bind(inputs, list(after), seed=pass_name) if after else clone(*inputs, seed=pass_name))
        own = [self.prep(a, n) for n, a in zip(self.names, own, strict=True)]
        if not stacked:
            return own
        # For an overlap: one task per chunk computes every band (the copies fuse into it) and
        # the neighbours wait for one block, not one per band that the scheduler computes in
        # any order (measured: with a block per band, those of 30 chunks waited at once).
        nb = len(self.names)
        return [da.map_blocks(_stack, *own, new_axis=0, chunks=((nb,), *own[0].chunks), dtype=np.float32,
                              meta=np.empty((0, 0, 0), dtype=np.float32))]  # fmt: skip


def _prepare_inputs(
    bands: Mapping[str, da.Array],
    sun_zenith: da.Array,
    sun_azimuth: da.Array,
    view_zenith: da.Array | None,
    view_azimuth: da.Array | None,
    resolution_m: float,
    cfg: SceneClassificationConfig,
    dem: da.Array | None,
    quality_mask: da.Array | None,
    maps: AuxiliaryMaps,
    private_bands: bool,
) -> _Inputs:
    """Check the inputs and put them on the classification's chunks."""
    missing = [b for b in REQUIRED_BANDS if b not in bands]
    if missing:
        raise InputProductError("scene classification", f"missing band(s) {', '.join(missing)}")
    names = (*REQUIRED_BANDS, *(b for b in OPTIONAL_BANDS if b in bands))
    ref = bands["B02"]
    shape = tuple(np.shape(ref))
    if len(shape) != 2:
        raise InputProductError("scene classification", f"bands must be 2-D, B02 is {shape}")
    base = ref.chunks if isinstance(ref, da.Array) else da.core.normalize_chunks((915, 915), shape)
    chunks = _classification_chunks(ref, resolution_m, cfg)

    def prep(a: Any, name: str, dtype: Any = np.float32) -> da.Array:
        x: da.Array = _as_dask(a, chunks, name, shape).astype(dtype)
        return x

    band_inputs = [bands[n] if isinstance(bands[n], da.Array) else prep(bands[n], n) for n in names]
    use_view = view_zenith is not None and view_azimuth is not None
    return _Inputs(
        cfg=cfg,
        maps=maps,
        resolution_m=resolution_m,
        names=names,
        shape=shape,
        chunks=chunks,
        in_chunks=(tuple(base[0]), tuple(base[1])),
        band_inputs=band_inputs,
        band_arrays=[prep(a, n) for n, a in zip(names, band_inputs, strict=True)],
        private_bands=private_bands,
        sz=prep(sun_zenith, "sun_zenith"),
        sa=prep(sun_azimuth, "sun_azimuth"),
        vz=prep(view_zenith, "view_zenith") if use_view else None,
        va=prep(view_azimuth, "view_azimuth") if use_view else None,
        dem=prep(dem, "dem") if dem is not None else None,
        qm=prep(quality_mask, "quality_mask", bool) if quality_mask is not None else None,
        wb=prep(maps.water_bodies, "water_bodies", np.uint8) if maps.water_bodies is not None else None,
        lc=prep(maps.land_cover, "land_cover", np.uint16) if maps.land_cover is not None else None,
        snc=prep(maps.snow_condition, "snow_condition", np.uint8) if maps.snow_condition is not None else None,
    )


def _b10_leakage(inp: _Inputs, known: Mapping[str, Any]) -> Delayed | float:
    """Scene-wide B10 leakage of bright ground (a histogram reduction), or 0 when not corrected."""
    cfg = inp.cfg
    if cfg.cirrus_leakage_correction and "b10_leakage" in known:
        return leakage_from_histogram(np.asarray(known["b10_leakage"]), cfg)
    if cfg.cirrus_leakage_correction:
        hist = lazy.block_sums(_leakage_histogram, *inp.bands_for("leakage"), name="b10_leakage",
                               names=inp.names).total()  # fmt: skip
        result: Delayed = delayed(leakage_from_histogram, pure=True)(hist, cfg)
        return result
    return 0.0


def _pixel_pass(inp: _Inputs, leakage: Delayed | float, snc_mean: Delayed | float | None) -> list[da.Array]:
    """Steps 0-7, the calibrated probability and the shadow inputs: the :data:`PIXEL_LAYERS`, in order.

    One pass so that neither the bands nor the float outputs of steps 0-7 are held in
    between. On blocks extended by both reaches (snow ring and shadow inputs) steps 0-7
    are exact but within their reach of the extension's edge, and the shadow inputs
    within their own reach of that: on the block itself.
    """
    cfg, maps, nbk = inp.cfg, inp.maps, inp.nbk
    has_dem, has_qm, has_snc = inp.dem is not None, inp.qm is not None, inp.snc is not None

    def pixel_rules(
        *blocks: np.ndarray, snow_condition_mean: float | None = None, b10_leakage: float = 0.0
    ) -> tuple[np.ndarray, ...]:
        b = inp.band_dict(blocks)
        rest = iter(blocks[nbk:])
        dem_b = next(rest) if has_dem else None
        qm_b = next(rest) if has_qm else None
        snc_b = next(rest) if has_snc else None
        cm, cmc, cms = classify_pixels(
            b,
            cfg,
            dem=dem_b,
            quality_mask=qm_b,
            snow_possible=maps.snow_possible,
            snow_condition=snc_b,
            snow_condition_mean=snow_condition_mean,
            b10_leakage=b10_leakage,
        )
        p = calibrated_cloud_probability(b, cm, cmc, b10_leakage)
        p[cm == SCL.NO_DATA] = np.nan
        csd1, cloud, dark = shadow_inputs(b, cm, cmc, cfg)
        return cm, probability_to_uint8(cmc), probability_to_uint8(cms), p, csd1, cloud, dark

    kw: dict[str, Any] = {"b10_leakage": leakage}
    if snc_mean is not None:
        kw["snow_condition_mean"] = snc_mean
    extras = [a for a in (inp.dem, inp.qm, inp.snc) if a is not None]
    bands = inp.bands_for("pixels", [leakage] if isinstance(leakage, Delayed) else [], stacked=True)
    return _overlap_map(
        pixel_rules, [*bands, *extras], cfg.snow_ring_iterations + 2, len(PIXEL_LAYERS),
        dtypes=tuple(PIXEL_LAYERS.values()), **kw,
    )  # fmt: skip


def _displacement(inp: _Inputs, max_sun_zenith_deg: float | None) -> list[da.Array]:
    """Per-pixel cloud-to-shadow displacement, rows then columns (reach 0)."""
    cfg = inp.cfg
    use_view = inp.vz is not None and inp.va is not None

    def displacement(*blocks: np.ndarray) -> tuple[np.ndarray, ...]:
        if max_sun_zenith_deg is not None and np.nanmax(blocks[0], initial=0.0) > max_sun_zenith_deg:
            raise ConfigurationError(
                f"sun zenith {float(np.nanmax(blocks[0])):.2f} exceeds max_sun_zenith_deg={max_sun_zenith_deg}: "
                "the shadow projection would need a larger chunk overlap"
            )
        if use_view:
            return shadow_displacement_field(blocks[0], blocks[1], blocks[2], blocks[3], cfg)
        return shadow_displacement_field(blocks[0], blocks[1], None, None, cfg)

    angles = [inp.sz, inp.sa] + ([inp.vz, inp.va] if inp.vz is not None and inp.va is not None else [])
    return _overlap_map(displacement, angles, 0, 2)


def _shadow_inputs(inp: _Inputs, cloud: da.Array, dark: da.Array, max_sun_zenith_deg: float | None
                   ) -> dict[str, da.Array]:  # fmt: skip
    """The coarse inputs of the shadow zones (:data:`SHADOW_INPUTS` this configuration uses), chunk by chunk.

    The zones read them with wide neighbourhoods; they read only their own chunk (reach 0).
    """
    cfg, k = inp.cfg, inp.k
    drow, dcol = _displacement(inp, max_sun_zenith_deg)

    def named(prefix: str, func: Callable[..., Sequence[Any]], arrays: list[da.Array], factor: int
              ) -> dict[str, da.Array]:  # fmt: skip
        # Names and dtypes as SHADOW_INPUTS states them (the files processing tiles store them in).
        names = [n for n in SHADOW_INPUTS if n.startswith(prefix)]
        layers = _to_coarse(func, arrays, factor, len(names), SHADOW_INPUTS[names[0]][1])
        return dict(zip(names, layers, strict=True))

    out = named("projection_", lambda c, r, co: (morphology.block_any(c, k), block_mean(r, k), block_mean(co, k)),
                [cloud, drow, dcol], k)  # fmt: skip
    if cfg.shadow_height_matching:
        m = match_grid_factor(inp.resolution_m, cfg)
        out.update(named("match_", lambda c, d, r, co: match_counts(c, d, r, co, m), [cloud, dark, drow, dcol], m))
    if inp.dem is not None:

        def coarse_terrain(z: np.ndarray, zen: np.ndarray, azi: np.ndarray) -> tuple[np.ndarray, ...]:
            zen_f, sin_az, cos_az = sun_components(zen, azi)
            zen_c, az_c = coarse_sun(zen_f, sin_az, cos_az, k)
            return block_mean(z, k), zen_c, az_c

        out.update(named("terrain_", coarse_terrain, [inp.dem, inp.sz, inp.sa], k))
    return out


def _projected_shadow(inp: _Inputs, coarse: Mapping[str, da.Array], max_sun_zenith_deg: float | None) -> da.Array:
    """Sen2Cor's geometric shadow zone, projected on the shadow grid and brought back to the pixels."""
    cfg, k = inp.cfg, inp.k
    pixel_c = inp.resolution_m * k
    (projected_c,) = _overlap_map(
        lambda c, r, co: (project_cloud_shadow(c, r, co, pixel_c, cfg),),
        [coarse["projection_cloud"].astype(bool), coarse["projection_drow"], coarse["projection_dcol"]],
        shadow_reach(pixel_c, cfg, max_sun_zenith_deg),
        1,
    )
    return _to_fine(projected_c.astype(bool), k, inp.chunks, bool)


def _matched_shadow(inp: _Inputs, coarse: Mapping[str, da.Array], max_sun_zenith_deg: float | None
                    ) -> da.Array | None:  # fmt: skip
    """Cloud heights matched with dark pixels, on the matching grid (None: matching off)."""
    cfg = inp.cfg
    if not cfg.shadow_height_matching:
        return None
    m = match_grid_factor(inp.resolution_m, cfg)
    pixel_m = inp.resolution_m * m
    (zone_m,) = _overlap_map(
        lambda cc, dk, nn, r, co: (match_cloud_shadow(cc, dk, nn, r, co, pixel_m, cfg),),
        [
            coarse["match_cloud"].astype(np.int64),
            coarse["match_dark"].astype(np.int64),
            coarse["match_pixels"].astype(np.int64),
            coarse["match_drow"].astype(np.float32),
            coarse["match_dcol"].astype(np.float32),
        ],
        match_zone_reach(pixel_m, cfg, max_sun_zenith_deg),
        1,
    )
    return _to_fine(zone_m.astype(bool), m, inp.chunks, bool)


def _terrain_shadow(inp: _Inputs, coarse: Mapping[str, da.Array]) -> da.Array | None:
    """Terrain cast shadows on the shadow grid, brought back to the pixels (None without a DEM)."""
    if inp.dem is None:
        return None
    cfg, k = inp.cfg, inp.k
    pixel_c = inp.resolution_m * k
    (cast_c,) = _overlap_map(
        lambda z, zen, azi: (shadow_kernels.cast_shadow(z, zen, azi, pixel_c, cfg.terrain_shadow_max_distance_m),),
        [coarse["terrain_dem"].astype(np.float32), coarse["terrain_sun_zenith"], coarse["terrain_sun_azimuth"]],
        terrain_shadow_reach(pixel_c, cfg),
        1,
    )
    return _to_fine(cast_c.astype(bool), k, inp.chunks, bool)


def _recovery_statistics(inp: _Inputs, cm: da.Array, known: Mapping[str, Any]) -> Delayed | SceneStatistics | None:
    """Scene statistics for R7/R8 (with a land-cover map only; None without)."""
    if inp.lc is None:
        return None
    cfg, resolution_m = inp.cfg, inp.resolution_m
    (blob,) = _overlap_map(lambda c: (hpc_blob_mask(c, resolution_m, cfg),), [cm], hpc_blob_reach(resolution_m, cfg), 1)
    if "r7_r8_statistics" in known:
        return statistics_from_sums(np.asarray(known["r7_r8_statistics"]), resolution_m, cfg)
    sums = lazy.block_sums(_statistics_sums, *inp.bands_for("statistics"), cm, blob.astype(bool), inp.lc,
                           name="r7_r8_statistics", names=inp.names).total()  # fmt: skip
    result: Delayed = delayed(statistics_from_sums, pure=True)(sums, resolution_m, cfg)
    return result


def _final_pass(
    inp: _Inputs,
    pixels: Mapping[str, da.Array],
    projected: da.Array,
    matched: da.Array | None,
    cast: da.Array | None,
    statistics: Delayed | SceneStatistics | None,
    leakage: Delayed | float,
    zones_stored: bool = False,
) -> list[da.Array]:
    """Shadows, recoveries, post-processing and improvements: the SCL and the cloud-buffer mask.

    ``zones_stored``: the shadow zones are read back from files (processing tiles), not computed.
    """
    cfg, resolution_m, nbk = inp.cfg, inp.resolution_m, inp.nbk
    optional = {"dem": inp.dem, "cast": cast, "water_bodies": inp.wb, "land_cover": inp.lc, "matched": matched}
    present = {key: a for key, a in optional.items() if a is not None}
    sun = [inp.sz, inp.sa] if inp.dem is not None else []

    def final(
        *blocks: np.ndarray, statistics: SceneStatistics | None = None, b10_leakage: float = 0.0
    ) -> tuple[np.ndarray, ...]:
        b = inp.band_dict(blocks)
        cm_b, csd1_b, cloud_b, proj_b, p_b, dark_b = blocks[nbk : nbk + 6]
        rest = list(blocks[nbk + 6 :])
        sun_b = rest[:2] if sun else [None, None]
        kw = dict(zip(present, rest[len(sun) :], strict=True))
        return finalize(
            b,
            cm_b,
            csd1_b,
            cloud_b,
            proj_b,
            resolution_m,
            cfg,
            dark=dark_b,
            probability=p_b,
            sun_zenith=sun_b[0],
            sun_azimuth=sun_b[1],
            statistics=statistics,
            b10_leakage=b10_leakage,
            **kw,
        )

    kw: dict[str, Any] = {"b10_leakage": leakage}
    if statistics is not None:
        kw["statistics"] = statistics
    # The pass's own copy of the bands waits for the shadow zones' wide overlaps, when they are
    # computed here. Read back from files they take no such wait, and binding to them put keys
    # named after a random token into each tile's graph, beside keys the tiles share (dask
    # then warned of one key with two definitions).
    zones = () if zones_stored else (projected, matched, cast)
    after = [a for a in (*zones, statistics) if is_dask_collection(a)]
    bands = inp.bands_for("finalize", after, stacked=True)
    per_pixel = [pixels[n] for n in ("classes", "shadow_test", "cloud", "probability", "dark")]
    cm, csd1, cloud, probability, dark = per_pixel
    return _overlap_map(
        final,
        [*bands, cm, csd1, cloud, projected, probability, dark, *sun, *present.values()],
        finalize_reach(resolution_m, cfg, land_cover=inp.lc is not None),
        2,
        dtypes=(np.uint8, bool),
        **kw,
    )


def classify(
    bands: Mapping[str, da.Array],
    sun_zenith: da.Array,
    sun_azimuth: da.Array,
    view_zenith: da.Array | None,
    view_azimuth: da.Array | None,
    resolution_m: float,
    config: SceneClassificationConfig | None = None,
    dem: da.Array | None = None,
    quality_mask: da.Array | None = None,
    aux: AuxiliaryMaps | None = None,
    *,
    max_sun_zenith_deg: float | None = None,
    private_bands: bool = False,
    known: Mapping[str, Any] | None = None,
    stored: Mapping[str, da.Array] | None = None,
    want: str | None = None,
) -> Any:
    """Build the lazy scene classification of one image.

    Parameters
    ----------
    bands
        TOA reflectance (float, NaN = no data) of ``B02 B03 B04 B05 B8A B10 B11 B12``
        (and ``B09`` for R7), all on the classification grid (20 m or 60 m) with the
        same shape.
    sun_zenith, sun_azimuth, view_zenith, view_azimuth
        Per-pixel angles (degrees) on the same grid; the view angles may be None
        (nadir: no parallax).
    resolution_m
        Pixel size of the grid in metres.
    config
        Thresholds and switches (default: Sen2Cor 2.8 with sen2core's fixes).
    dem
        Elevation (m) on the same grid: thin-cirrus elevation limit, DEM cleaning R4
        and terrain cast shadows.
    quality_mask
        True where the L1C quality masks (``MSK_QUALIT``) flag a pixel as defective.
    aux
        Optional ESA-CCI maps and snow climatology (:class:`AuxiliaryMaps`).
    max_sun_zenith_deg
        An upper bound of the sun zenith over the image (e.g. the maximum of the
        metadata's 5 km sun grid plus a margin). The chunk overlap of the shadow
        projection is the longest shadow at this zenith instead of at the configured
        clip (70 degrees), which makes chunks much smaller for a high sun. Results do
        not depend on it; a pixel with a larger sun zenith raises when computed.
    private_bands
        Give each pass over the bands (leakage histogram, pixel rules, R7/R8 statistics,
        post-processing) its own copy of the bands' graphs
        (:func:`dask.graph_manipulation.clone`), recomputed per pass. For bands derived
        cheaply from persisted data (TOA from kept digital numbers): shared, they are
        held whole across the scene-wide histogram and the wide overlaps of the shadow
        passes; private, each pass computes a chunk's bands when it needs them. Results
        do not depend on it.
    known
        Totals of scene-wide sums already added up (:func:`scene_sums`: ``b10_leakage``,
        ``snow_condition_mean``; ``r7_r8_statistics``); the others are computed over the
        whole image as part of the graph.
    stored
        ``{"pixels": {layer: array}}``-like mapping: the :data:`PIXEL_LAYERS` of the
        pixel rules (steps 0-7, shadow inputs) computed earlier and read back, so that
        the later passes' wide neighbourhoods read them instead of computing them
        (processing tiles). Given as ``{f"pixels.{layer}": array}``, with the coarse
        :data:`SHADOW_INPUTS` as ``{f"pixels.{name}": array}`` on their own chunks
        (:func:`shadow_input_grids`); the shadow zones (:data:`SHADOW_LAYERS`) likewise,
        as ``{f"shadows.{zone}": array}``.
    want
        ``"pixels"``: return the :data:`PIXEL_LAYERS` and the :data:`SHADOW_INPUTS` this
        configuration uses (a dict of lazy arrays) instead of the classification, to store
        them; ``"shadows"``: the shadow zones this configuration computes (a dict of lazy
        boolean arrays).

    Returns
    -------
    SceneClassification
        (or, with ``want``, a dict of the layers asked for)
        Lazy arrays with the chunks of ``bands["B02"]`` (rounded up to multiples of
        the shadow-grid factor and, at 20 m, of 3).

    Raises
    ------
    InputProductError
        If a band is missing or an input is not on the bands' grid.
    ConfigurationError
        When computed, if a sun zenith exceeds ``max_sun_zenith_deg``.
    """
    cfg = config if config is not None else SceneClassificationConfig()
    maps = aux if aux is not None else AuxiliaryMaps()
    inp = _prepare_inputs(
        bands, sun_zenith, sun_azimuth, view_zenith, view_azimuth, resolution_m, cfg, dem, quality_mask, maps,
        private_bands,
    )  # fmt: skip
    known = known or {}
    snc_mean = _scene_mean_below_100(inp.snc, known) if inp.snc is not None else None
    leakage = _b10_leakage(inp, known)
    layers = _pixel_pass(inp, leakage, snc_mean)
    stored = stored or {}
    if all(f"pixels.{n}" in stored for n in PIXEL_LAYERS):
        layers = [inp.prep(stored[f"pixels.{n}"], n, dtype) for n, dtype in PIXEL_LAYERS.items()]
    pixels = dict(zip(PIXEL_LAYERS, layers, strict=True))

    coarse = _shadow_inputs(inp, pixels["cloud"], pixels["dark"], max_sun_zenith_deg)
    if want == "pixels":
        return {**pixels, **coarse}
    coarse = {n: stored.get(f"pixels.{n}", x) for n, x in coarse.items()}
    zones = {
        "projected": _projected_shadow(inp, coarse, max_sun_zenith_deg),
        "matched": _matched_shadow(inp, coarse, max_sun_zenith_deg),
        "cast": _terrain_shadow(inp, coarse),
    }
    zones = {n: z if z is None or f"shadows.{n}" not in stored else inp.prep(stored[f"shadows.{n}"], n, bool)
             for n, z in zones.items()}  # fmt: skip
    if want == "shadows":
        return {n: z for n, z in zones.items() if z is not None}
    projected, matched, cast = (zones[n] for n in SHADOW_LAYERS)
    assert projected is not None  # always computed; the other two depend on the configuration
    statistics = _recovery_statistics(inp, pixels["classes"], known)
    zones_stored = all(f"shadows.{n}" in stored for n, z in zones.items() if z is not None)
    scl, buffered = _final_pass(inp, pixels, projected, matched, cast, statistics, leakage, zones_stored)

    def back(x: da.Array) -> da.Array:
        # Outputs on the caller's chunks: callers pair them block by block with their inputs.
        return x.rechunk(inp.in_chunks) if x.chunks != inp.in_chunks else x

    return SceneClassification(
        scl=back(scl),
        cloud_probability=back(pixels["cloud_confidence"]),
        snow_probability=back(pixels["snow_confidence"]),
        calibrated_cloud_probability=back(pixels["probability"]),
        cloud_buffer=back(buffered),
        resolution_m=float(resolution_m),
        config=cfg,
        water_bodies=None if inp.wb is None else back(inp.wb),
    )

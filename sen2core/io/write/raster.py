"""Raster writers: dask arrays to Cloud-Optimised GeoTIFFs or JPEG 2000, written once and chunk by chunk.

Each chunk lands in an uncompressed tiled GeoTIFF (pre-allocated, so windows can
be written in any order) under a lock shared by every process that writes the
file; a finaliser then encodes it once: GDAL's COG driver (compression, internal
overviews; :func:`cog_tasks`) or GDAL's JP2OpenJPEG driver (lossless, tiled, with
resolution levels as in Sen2Cor's products; :func:`jp2_tasks`). Both steps run
where the data is (threads or Dask workers), never in the client.

A full disk is one :class:`~sen2core.errors.DiskFullError`: the free space is checked for
all staged files before the first is created and each is allocated for real (GDAL
extends an uncompressed GeoTIFF sparsely), and a write or an encoding that runs out of
space says so, naming the folder. Failures carry GDAL's message and no exception chain
(they travel from Dask workers; see :mod:`sen2core.errors`).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import operator
import os
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
from dask.base import annotate, compute
from dask.delayed import delayed
from rasterio.windows import Window

from sen2core.errors import OutputError, Sen2CoreError
from sen2core.io.failures import allocate, gdal_message, require_free, write_failure
from sen2core.io.read.metadata import GeoBox
from sen2core.parallel import codec_threads

#: GDAL options while writing (set inside each writing function: they do not travel with the graph).
# A bounded block cache: by default GDAL may keep 5 % of the machine's memory per process,
# and the COG conversion reads each staged file once.
GDAL_WRITE_OPTIONS = {"GDAL_TIFF_INTERNAL_MASK": "YES", "GDAL_CACHEMAX": 256 * 2**20}


def _write_env(**extra: Any) -> rasterio.Env:
    """:data:`GDAL_WRITE_OPTIONS` and the codec threads of this worker (:func:`~sen2core.parallel.codec_threads`)."""
    return rasterio.Env(**GDAL_WRITE_OPTIONS, GDAL_NUM_THREADS=codec_threads(), **extra)


@dataclass(frozen=True)
class RasterSpec:
    """One output raster: its grid, type, no-data value and descriptions."""

    geobox: GeoBox
    dtype: str
    nodata: float | int | None = 0
    band_names: tuple[str, ...] = ()
    resampling: str = "average"
    """Overview resampling (``average`` for reflectance, ``mode`` for class maps)."""
    compress: str = "DEFLATE"
    predictor: int = 2
    scale: float | None = None
    offset: float | None = None
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None
    negative_below: int | None = None
    """Count stored values in ``(0, negative_below)`` (negative reflectance) while writing; see
    :func:`collect_negative_fractions`."""


class _FileLock:
    """An exclusive ``flock`` on ``{path}.lock``, shared by every thread and process writing ``path``.

    Chunk windows do not align with the file's tiles, so two writers may update one tile:
    they must take turns. A lock file needs no scheduler and pickles as a path, unlike a
    ``distributed.Lock``, which failed intermittently when several products were written
    at once on one cluster. Each acquisition opens its own descriptor, so one instance
    serves many threads.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path) + ".lock"

    def create(self) -> None:
        """Create the lock file (with the staged file: writers never create it, see :meth:`held`)."""
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644))

    @contextmanager
    def held(self) -> Iterator[None]:
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            # The staged file's folder was removed: its run gave up after another failure while this
            # window was in flight. Creating the lock file again would leave debris in a folder
            # that is gone.
            raise OutputError(
                f"{self.path[: -len('.lock')]}: removed before this window was written (the write was abandoned)"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _stats_path(staged: str) -> str:
    return staged + ".negstats"


def collect_negative_fractions(folder: str | Path) -> dict[str, float]:
    """Percent of valid pixels with negative reflectance per written file (relative name), and
    remove the counts left by writing (outputs whose spec set ``negative_below``)."""
    folder = Path(folder)
    out = {}
    for stats in sorted(folder.rglob("*.part.tif.negstats")):
        # One line per written window, keyed by its origin: a window written again (a retried
        # processing tile) replaces its earlier count instead of adding to it.
        windows = {}
        for line in stats.read_text(encoding="ascii").splitlines():
            if line.strip():
                row, col, negative, valid = (int(v) for v in line.split())
                windows[row, col] = (negative, valid)
        negative, valid = (sum(v[i] for v in windows.values()) for i in (0, 1))
        name = str(stats.relative_to(folder))[: -len(".part.tif.negstats")]
        out[name] = round(100.0 * negative / valid, 4) if valid else 0.0
        stats.unlink()
    return out


def _finished(tmp: str, final: str) -> str:
    """Remove the staged file, its lock file and any GDAL sidecar of ``final``; return ``final``.

    Raises
    ------
    OutputError
        The staged file was removed while it was encoded: the run gave up on its folder after
        another output failed (Dask does not stop the tasks already running). What this
        encoding wrote is removed, so that the folder does not reappear.
    """
    if not os.path.exists(tmp):
        _abandon(final)
        raise OutputError(f"{final}: its staged file was removed while it was encoded (the write was abandoned)")
    os.remove(tmp)
    for leftover in (os.path.abspath(tmp) + ".lock", final + ".aux.xml"):
        if os.path.exists(leftover):
            os.remove(leftover)
    return final


def _abandon(final: str) -> None:
    """Remove ``final`` and then its folders while they are empty, up to the hidden temporary folder
    holding them (``.{name}.tmp-...``); nothing above it, and no folder at all without one."""
    for leftover in (final, final + ".aux.xml"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)
    folders = []
    folder = os.path.dirname(os.path.abspath(final))
    while True:
        folders.append(folder)
        if os.path.basename(folder).startswith("."):
            break
        if os.path.dirname(folder) == folder:
            return
        folder = os.path.dirname(folder)
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


class _WindowTarget:
    """``da.store`` target: writes a region into an existing GeoTIFF, reopening it per write."""

    def __init__(self, path: str, bands: int, lock: Any, negative_below: int | None = None) -> None:
        self.path, self.bands, self.lock = path, bands, lock
        self.negative_below = negative_below

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        rows, cols = key[-2], key[-1]
        win = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        data = value if value.ndim == 3 else value[None]
        failure: OutputError | None = None
        try:
            with self.lock.held(), _write_env(), rasterio.open(self.path, "r+") as dst:
                dst.write(data, window=win)
                if self.negative_below is not None:
                    # Counted as the chunk goes by: no second pass over the band.
                    valid = int(np.count_nonzero(data > 0))
                    negative = int(np.count_nonzero((data > 0) & (data < self.negative_below)))
                    with open(_stats_path(self.path), "a", encoding="ascii") as f:
                        f.write(f"{rows.start} {cols.start} {negative} {valid}\n")
        except OutputError as exc:
            failure = exc
        except Exception as exc:  # rasterio's errors, CPLE_* (not RasterioError) and OSError
            failure = write_failure(exc, self.path, f"cannot write window {win}")
        if failure is not None:
            raise failure  # outside the except block: no unpicklable chain


#: Staged GeoTIFF tile edge (px).
STAGE_BLOCK = 256


def staged_bytes(spec: RasterSpec, bands: int) -> int:
    """Size of the uncompressed staged GeoTIFF of an output (its tiles, padded to whole tiles, plus headers)."""
    gb = spec.geobox
    tiles = -(-gb.width // STAGE_BLOCK) * -(-gb.height // STAGE_BLOCK)
    return tiles * STAGE_BLOCK * STAGE_BLOCK * bands * np.dtype(spec.dtype).itemsize + 65536


def _create(path: str, spec: RasterSpec, bands: int) -> None:
    gb = spec.geobox
    failure: OutputError | None = None
    try:
        with _write_env(), rasterio.open(
            path, "w", driver="GTiff", width=gb.width, height=gb.height, count=bands, dtype=spec.dtype,
            crs=gb.crs, transform=gb.transform, nodata=spec.nodata, tiled=True, blockxsize=STAGE_BLOCK,
            blockysize=STAGE_BLOCK, compress="NONE", sparse_ok=False, bigtiff="IF_SAFER",
        ) as dst:  # fmt: skip
            for i, name in enumerate(spec.band_names, start=1):
                dst.set_band_description(i, name)
            if spec.scale is not None or spec.offset is not None:
                dst.scales = (spec.scale if spec.scale is not None else 1.0,) * bands
                dst.offsets = (spec.offset if spec.offset is not None else 0.0,) * bands
            if spec.colormap:
                dst.write_colormap(1, dict(spec.colormap))
        # GDAL grows an uncompressed file with empty tiles sparsely, whatever SPARSE_OK says: the
        # windows written later would find the disk full. Its blocks are reserved now.
        allocate(path, os.path.getsize(path), os.path.dirname(os.path.abspath(path)),
                 f"the staged raster {os.path.basename(path)}")  # fmt: skip
        _FileLock(path).create()
    except OutputError:
        raise
    except Exception as exc:
        failure = write_failure(exc, path, "cannot create the staged raster", staged_bytes(spec, bands))
    if failure is not None:
        raise failure  # outside the except block: no unpicklable chain


def _to_cog(tmp: str, final: str, spec: RasterSpec) -> str:
    """Compress ``tmp`` into the COG ``final`` (overviews included) and remove ``tmp``."""
    opts: dict[str, Any] = dict(
        driver="COG", compress=spec.compress, blocksize=512, overview_resampling=spec.resampling,
        num_threads=codec_threads(), bigtiff="IF_SAFER",
    )  # fmt: skip
    if spec.compress in ("DEFLATE", "ZSTD", "LZW") and spec.predictor:
        opts["predictor"] = "YES" if spec.predictor == 2 else "FLOATING_POINT"
    failure: OutputError | None = None
    try:
        with _write_env():
            rasterio.shutil.copy(tmp, final, **opts)
    except Exception as exc:  # rasterio.shutil.copy raises CPLE_* errors, which are not RasterioError
        failure = _encoding_failure(exc, tmp, final, "COG encoding failed")
    if failure is not None:
        raise failure  # outside the except block: no unpicklable chain
    return _finished(tmp, final)


def _encoding_failure(exc: BaseException, tmp: str, final: str, what: str) -> OutputError:
    """The error of a failed encoding, after removing the partial output (the staged file is kept for
    the message's size and goes with the temporary folder)."""
    if not os.path.exists(tmp):  # abandoned (see _finished): its folder is gone
        _abandon(final)
        return OutputError(f"{final}: its staged file was removed while it was encoded (the write was abandoned)")
    # Its size bounds what the encoded file needs: compression can only make it smaller, overviews
    # add at most a third.
    failure = write_failure(exc, final, what, os.path.getsize(tmp) * 4 // 3)
    with contextlib.suppress(FileNotFoundError):
        os.remove(final)
    return failure


#: JPEG 2000 code-block tile edge (px), as in Sen2Cor's and ESA's products.
JP2_BLOCK = 1024
#: Smallest edge (px) of the coarsest JPEG 2000 resolution level.
JP2_MIN_LEVEL_PX = 32
#: At most this many resolution levels (ESA's 1024 px tiles: 1024 ... 32 px).
JP2_MAX_LEVELS = 6


def jp2_creation_options(width: int, height: int) -> dict[str, str]:
    """Lossless JPEG 2000 options for a ``width`` x ``height`` raster.

    Reversible 5/3 wavelet (``QUALITY=100``, ``REVERSIBLE=YES``: bit-exact), 1024 px
    tiles (the whole raster when smaller), and as many resolution levels as fit in a
    tile down to about 32 px, at most 6 (ESA's products: 1024 to 32 px). GDAL shows
    the levels as overviews, which makes decimated reads cheap.
    """
    bx, by = min(JP2_BLOCK, width), min(JP2_BLOCK, height)
    edge = min(bx, by)
    # OpenJPEG requires every tile edge to be at least 2 ** (levels - 1).
    levels = 1 if edge < 2 * JP2_MIN_LEVEL_PX else 1 + int(math.log2(edge / JP2_MIN_LEVEL_PX))
    return {
        "QUALITY": "100", "REVERSIBLE": "YES", "BLOCKXSIZE": str(bx), "BLOCKYSIZE": str(by),
        "RESOLUTIONS": str(max(1, min(levels, JP2_MAX_LEVELS))),
    }  # fmt: skip


def _to_jp2(tmp: str, final: str, spec: RasterSpec) -> str:
    """Encode ``tmp`` as lossless JPEG 2000 ``final`` and remove ``tmp``.

    GDAL keeps what JPEG 2000 cannot hold (no-data value, scale/offset, band
    descriptions) in a ``.aux.xml`` sidecar. Sen2Cor's products have none: their
    MTD_MSIL2A.xml carries the special values and quantification, so PAM is
    switched off and no sidecar is written.
    """
    gb = spec.geobox
    failure: OutputError | None = None
    try:
        with _write_env(GDAL_PAM_ENABLED="NO"):
            rasterio.shutil.copy(tmp, final, driver="JP2OpenJPEG", **jp2_creation_options(gb.width, gb.height))
    except Exception as exc:  # rasterio.shutil.copy raises CPLE_* errors, which are not RasterioError
        failure = _encoding_failure(exc, tmp, final, "JPEG 2000 encoding failed")
    if failure is not None:
        raise failure  # outside the except block: no unpicklable chain
    return _finished(tmp, final)


@dataclass(frozen=True)
class _Staged:
    tmp: str
    final: str
    spec: RasterSpec
    bands: int


def _staged(outputs: Mapping[str, tuple[da.Array, RasterSpec]], folder: str | Path) -> list[_Staged]:
    folder = Path(folder)
    out = []
    for name, (arr, spec) in outputs.items():
        final = str(folder / name)
        if arr.shape[-2:] != spec.geobox.shape:
            raise OutputError(f"{final}: array shape {arr.shape} does not match grid {spec.geobox.shape}")
        out.append(_Staged(final + ".part.tif", final, spec, arr.shape[0] if arr.ndim == 3 else 1))
    return out


def create_staged(
    outputs: Mapping[str, tuple[da.Array, RasterSpec]],
    folder: str | Path,
    stage_spec: Callable[[RasterSpec], RasterSpec] = lambda spec: spec,
    keep_existing: bool = False,
) -> None:
    """Pre-allocate the staged GeoTIFF of every output in ``folder``.

    Any existing one is replaced, unless ``keep_existing``: then only the missing files
    are created, each made under a private name and linked into place, so that tasks
    writing windows of the same outputs (processing tiles, retried or concurrent) never
    replace a file another one has written into.

    Raises
    ------
    DiskFullError
        The staged files do not fit in the free space of ``folder`` (checked before the first
        is created), or the disk filled up while they were allocated.
    """
    staged = _staged(outputs, folder)
    if keep_existing:
        staged = [s for s in staged if not os.path.exists(s.tmp)]
    existing = sum(os.path.getsize(s.tmp) for s in staged if os.path.exists(s.tmp))
    needed = sum(staged_bytes(stage_spec(s.spec), s.bands) for s in staged) - existing
    if staged:
        require_free(folder, needed, f"the {len(staged)} uncompressed staged raster(s) of the product")
    for s in staged:
        # Layouts with sub-folders (SAFE: GRANULE/<id>/IMG_DATA/R10m/...) create them here.
        Path(s.final).parent.mkdir(parents=True, exist_ok=True)
        if not keep_existing:
            _create(s.tmp, stage_spec(s.spec), s.bands)
        elif not os.path.exists(s.tmp):
            private = f"{s.tmp}.{os.getpid()}-{threading.get_ident()}.new"
            _create(private, stage_spec(s.spec), s.bands)
            _FileLock(s.tmp).create()  # before the file appears: its writers need the lock
            try:
                os.link(private, s.tmp)  # fails if another task created it meanwhile: theirs is kept
            except FileExistsError:
                pass
            finally:
                os.remove(private)
                os.remove(_FileLock(private).path)


def store_delayed(
    outputs: Mapping[str, tuple[da.Array, RasterSpec]],
    folder: str | Path,
    stage_spec: Callable[[RasterSpec], RasterSpec] = lambda spec: spec,
) -> Any:
    """Pre-allocate the staged files of ``outputs`` now; return the delayed store of every array into them.

    Compute it together with other work (the encoding of files stored earlier).
    """
    create_staged(outputs, folder, stage_spec)
    staged = _staged(outputs, folder)
    sources = [arr.astype(s.spec.dtype) for s, (arr, _) in zip(staged, outputs.values(), strict=True)]
    targets: list[Any] = [_target(s) for s in staged]
    return da.store(sources, targets, lock=False, compute=False)


def _target(s: _Staged) -> _WindowTarget:
    return _WindowTarget(s.tmp, s.bands, _FileLock(s.tmp), s.spec.negative_below)


def store_blocks(
    outputs: Mapping[str, tuple[da.Array, RasterSpec]],
    folder: str | Path,
    rows: tuple[int, int],
    cols: tuple[int, int],
    extra: Sequence[tuple[da.Array, Any, tuple[slice, ...]]] = (),
) -> None:
    """Compute the chunk blocks ``rows`` x ``cols`` of every output into its staged file (see :func:`create_staged`).

    All outputs must share their chunk grid (one block covers the same ground in each).
    They are computed in one graph, as :func:`cog_tasks` does for whole arrays, together
    with the ``extra`` ``(source, target, region)`` stores (small per-block tables).
    """
    sources: list[da.Array] = [e[0] for e in extra]
    targets: list[Any] = [e[1] for e in extra]
    regions: list[tuple[slice, ...]] = [e[2] for e in extra]
    for s, (arr, _) in zip(_staged(outputs, folder), outputs.values(), strict=True):
        if not os.path.exists(s.tmp):
            raise OutputError(f"{s.final}: no staged file to write a window into")
        sub = arr.blocks[..., slice(*rows), slice(*cols)]
        y0, x0 = sum(arr.chunks[-2][: rows[0]]), sum(arr.chunks[-1][: cols[0]])
        region = (slice(y0, y0 + sub.shape[-2]), slice(x0, x0 + sub.shape[-1]))
        sources.append(sub.astype(s.spec.dtype))
        targets.append(_target(s))
        regions.append((slice(None), *region) if arr.ndim == 3 else region)
    # dask 2026.8's low-level fusion fails on some block selections of this graph ("Cannot
    # fuse tasks with multiple outputs"); a tile's graph is small enough to run unfused.
    with dask.config.set({"optimization.fuse.active": False}):
        da.store(sources, targets, regions=regions, lock=False)


@dataclass(frozen=True)
class _Failed:
    """A finalisation's error, returned as its result (see :func:`_finalisations`)."""

    error: BaseException


def _settle(finalise: Callable[[str, str, RasterSpec], str], tmp: str, final: str, spec: RasterSpec) -> str | _Failed:
    """``finalise(tmp, final, spec)``, its failure returned instead of raised."""
    failure: BaseException
    try:
        return finalise(tmp, final, spec)
    except Sen2CoreError as exc:
        failure = exc
    except Exception as exc:  # unexpected: still one library error naming the file, without GDAL's chain
        failure = OutputError(f"{final}: {gdal_message(exc)}")
    return _Failed(failure)


def _all_ended(*results: str | _Failed) -> list[str]:
    """The finalised files of a batch once every finalisation has ended; the first failure is raised then."""
    for result in results:
        if isinstance(result, _Failed):
            raise result.error
    return [r for r in results if isinstance(r, str)]


def _finalisations(finalise: Callable[[str, str, RasterSpec], str], files: Sequence[_Staged]) -> Any:
    """One delayed list of the finalised ``files``, failing only after *every* finalisation has ended.

    Dask raises the first error of a computation at once and leaves its other tasks running: an
    encoding still writing into the temporary folder after the caller removed it (the run failed)
    would recreate files there, debris that looks like a product being written. Each
    finalisation returns its failure instead, and the batch raises the first one at the end.
    """
    settled: list[Any] = [None] * len(files)
    # Largest first: one thread encodes a file, and a large file that started last ran alone at the
    # end of a batch, the other cores idle. Priorities at and below the default (0) of the tasks
    # computed with them: the encodings still fill the cores a store leaves idle.
    for rank, i in enumerate(sorted(range(len(files)), key=lambda i: -staged_bytes(files[i].spec, files[i].bands))):
        with annotate(priority=-rank):
            settled[i] = delayed(_settle, pure=False)(finalise, files[i].tmp, files[i].final, files[i].spec)
    return delayed(_all_ended, pure=False)(*settled)


def _staged_tasks(
    outputs: Mapping[str, tuple[da.Array, RasterSpec]],
    folder: str | Path,
    finalise: Callable[[str, str, RasterSpec], str],
    stage_spec: Callable[[RasterSpec], RasterSpec] = lambda spec: spec,
    group: Callable[[RasterSpec], Hashable] | None = None,
    store: bool = True,
) -> list[Any]:
    """Compute every output into an uncompressed staged GeoTIFF now; return one delayed finalisation per file.

    ``group`` splits the outputs into stores computed one after the other (in order of
    first appearance): outputs that share no costly intermediate need not be in flight
    together, and each store holds less in memory. Outputs that share one must be in the
    same group (see below). Each group's files are finalised while the next group is
    computed; the returned tasks of those files only hold their results. With
    ``store=False`` the staged files were written already (window by window,
    :func:`store_blocks`, or by :func:`store_delayed`) and only the finalisations of
    those not finalised yet are returned. A failed finalisation is raised once the
    others of its batch have ended (see :func:`_finalisations`).
    """
    staged = _staged(outputs, folder)
    if not store:
        # A staged file that is gone was finalised already (by the task that stored the next group).
        missing = [s.final for s in staged if not os.path.exists(s.tmp) and not os.path.exists(s.final)]
        if missing:
            raise OutputError(f"staged file(s) missing: {', '.join(missing)}")
        pending = [i for i, s in enumerate(staged) if os.path.exists(s.tmp)]
        batch = _finalisations(finalise, [staged[i] for i in pending])
        results: list[Any] = [delayed(s.final) for s in staged]
        for k, i in enumerate(pending):
            results[i] = delayed(operator.getitem, pure=True)(batch, k)
        return results
    create_staged(outputs, folder, stage_spec)
    stores: dict[Hashable, tuple[list[Any], list[Any], list[int]]] = {}
    for i, (s, (arr, _)) in enumerate(zip(staged, outputs.values(), strict=True)):
        sources, targets, members = stores.setdefault(None if group is None else group(s.spec), ([], [], []))
        sources.append(arr.astype(s.spec.dtype))
        targets.append(_target(s))
        members.append(i)
    # One store per group, computed here: dask optimises a group's graphs together. Stored
    # one by one (or handed to delayed functions as arguments), each graph is optimised alone
    # and an intermediate two outputs share (a band and the true-colour image) is fused into
    # both and computed twice. The files of one group are encoded while the next group is
    # computed: the cores that the store leaves idle (its last chunks, waits on neighbours)
    # encode, and only the last group's files remain to encode at the end.
    done: dict[int, Any] = {}
    pending = []
    for sources, targets, members in stores.values():
        finalised = compute(da.store(sources, targets, lock=False, compute=False),
                                 _finalisations(finalise, [staged[i] for i in pending]))[1]  # fmt: skip
        done.update(zip(pending, finalised, strict=True))
        pending = members
    # Already encoded files are returned as computed values, so callers compute every result alike.
    batch = _finalisations(finalise, [staged[i] for i in pending])
    last = {i: delayed(operator.getitem, pure=True)(batch, k) for k, i in enumerate(pending)}
    return [delayed(done[i]) if i in done else last[i] for i in range(len(staged))]


def cog_tasks(
    outputs: Mapping[str, tuple[da.Array, RasterSpec]],
    folder: str | Path,
    group: Callable[[RasterSpec], Hashable] | None = None,
    store: bool = True,
) -> list[Any]:
    """Write each ``name -> (array, spec)`` to ``folder/name`` as a COG.

    Arrays are 2-D ``(rows, cols)`` or 3-D ``(bands, rows, cols)`` with the spec's
    grid. All arrays are computed now, in one graph, so that the inputs and
    intermediates they share are computed once, and streamed chunk by chunk into
    staged GeoTIFFs; the returned delayed tasks (compute them together) compress
    each staged file into its COG. ``store=False``: see :func:`_staged_tasks`.
    """
    return _staged_tasks(outputs, folder, _to_cog, group=group, store=store)


def jp2_tasks(
    outputs: Mapping[str, tuple[da.Array, RasterSpec]],
    folder: str | Path,
    group: Callable[[RasterSpec], Hashable] | None = None,
    store: bool = True,
) -> list[Any]:
    """As :func:`cog_tasks`, but each file is lossless JPEG 2000 (``name`` may hold sub-folders).

    Colour tables are not written: Sen2Cor's SCL has none, and a JPEG 2000 palette
    box would make some readers expand the classes to RGB. Each task returns the
    path of its file.
    """
    return _staged_tasks(outputs, folder, _to_jp2, jp2_stage_spec, group=group, store=store)


def jp2_stage_spec(spec: RasterSpec) -> RasterSpec:
    """The staged file's spec for a JPEG 2000 output (see :func:`jp2_tasks` on colour tables)."""
    return replace(spec, colormap=None)

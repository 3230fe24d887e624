"""Dask adapters: lazy band reads and per-pixel angle fields built from the pure kernels.

Every block function here runs on a worker: it opens its own dataset and its own
``rasterio.Env`` (GDAL options are thread-local and do not travel with the graph), reads
only its window, and turns any GDAL failure into :class:`~sen2core.errors.BandReadError`
naming the product, band and file (:class:`~sen2core.errors.TransientIOError` for a
system error worth a retry). Those errors carry GDAL's message and no exception chain,
so that they reach a Dask client with their type (see :mod:`sen2core.errors`). Graph
construction never reads pixels.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import rasterio
from dask.base import compute, tokenize
from dask.delayed import delayed
from numpy.typing import NDArray
from rasterio.windows import Window

from sen2core.errors import BandReadError, DiskFullError, OutputError, Sen2CoreError, TransientIOError
from sen2core.io.failures import (
    allocate,
    describe_bytes,
    free_bytes,
    gdal_message,
    is_disk_full,
    is_transient_http,
    is_transient_os,
    require_free,
)
from sen2core.io.read.jp2_tiles import RepeatedTiles
from sen2core.kernels.angles import bilinear, grid_indices, interpolate_azimuth, utm_to_lonlat
from sen2core.kernels.quality import QUALITY_LAYERS, classi_agreement, flags_on_grid, split_quality
from sen2core.parallel import codec_threads
from sen2core.solar import solar_position

__all__ = [
    "BandHeader",
    "BandSource",
    "angle_field",
    "cloud_mask_table",
    "constant_field",
    "dn_array",
    "decode_to_files",
    "kept_quality",
    "layer_count",
    "quality_grid",
    "read_layers",
    "read_header",
    "read_window",
    "solar_field",
    "stored_array",
]

Chunks = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class BandHeader:
    """What opening a raster tells without decoding pixels."""

    shape: tuple[int, int]
    """``(rows, cols)``."""
    dtype: str
    """Data type name of band 1."""
    transform: tuple[float, float, float, float, float, float]
    """Affine coefficients ``(a, b, c, d, e, f)``."""
    epsg: int | None
    """EPSG code of the CRS when it has one."""
    block_rows: int = 1
    """Rows of one block (JPEG 2000 tile, GeoTIFF tile or strip) of band 1."""


def read_header(path: str, *, product: str, band: str, display: str, gdal_options: Mapping[str, str]) -> BandHeader:
    """Open a band raster and read its header.

    Raises
    ------
    BandReadError
        If GDAL cannot open the file.
    """
    try:
        with rasterio.Env(**gdal_options), rasterio.open(path) as ds:
            if ds.count < 1:
                # GDAL opens some non-rasters (an XML it knows, a folder) as band-less containers.
                raise ValueError(f"not a raster: GDAL's {ds.driver} driver opens it with no band")
            epsg = ds.crs.to_epsg() if ds.crs is not None else None
            t = ds.transform
            return BandHeader(
                shape=(ds.height, ds.width),
                dtype=ds.dtypes[0],
                transform=(t.a, t.b, t.c, t.d, t.e, t.f),
                epsg=epsg,
                block_rows=ds.block_shapes[0][0],
            )
    except Exception as exc:
        # GDAL reports through several exception types (RasterioIOError, CPLE_*,
        # sometimes plain RuntimeError); all of them mean "this band cannot be read".
        failure = _read_failure(exc, product, f"band {band}: cannot open {display}")
    raise failure  # outside the except block: no unpicklable chain (see sen2core.errors)


def layer_count(path: str, *, product: str, display: str, gdal_options: Mapping[str, str]) -> int:
    """Number of bands (layers) of a raster.

    Raises
    ------
    BandReadError
        If GDAL cannot open the file.
    """
    try:
        with rasterio.Env(**gdal_options), rasterio.open(path) as ds:
            return int(ds.count)
    except Exception as exc:
        failure = _read_failure(exc, product, f"cannot open {display}")
    raise failure  # outside the except block: no unpicklable chain (see sen2core.errors)


def _read_failure(exc: BaseException, product: str, what: str) -> Sen2CoreError:
    """The library error for a failed read: transient for a system error worth a retry, else BandReadError."""
    message = gdal_message(exc)
    if is_transient_os(exc) or is_transient_http(exc):
        return TransientIOError(f"{product}: {what} ({message})")
    return BandReadError(product, f"{what} ({message})")


# GDAL's block cache defaults to 5 % of the machine's memory in every process (1.2 GB per Dask
# worker on 24 GB); each window is decoded once, so a small cache loses nothing.
READ_CACHE_BYTES = 128 * 2**20


def read_window(
    path: str,
    row0: int,
    row1: int,
    col0: int,
    col1: int,
    *,
    product: str,
    band: str,
    display: str,
    gdal_options: Mapping[str, str],
) -> NDArray[np.uint16]:
    """Read one window of band 1 as uint16.

    A JPEG 2000 window is decoded one tile (block) at a time, whatever the number of codec
    threads: GDAL's OpenJPEG driver decodes the tiles of a multi-tile request in threads of
    its own, and a tile that fails there (``Stream too short``) is only logged, its block
    left as zeros, and the read reported as a success (GDAL 3.10). One tile per request
    decodes in the calling thread, where failures are raised, with the codec threads
    working inside the tile (measured as fast on a 1830 px band with 1024 px tiles).

    Raises
    ------
    BandReadError
        If the file cannot be opened or the window cannot be decoded (truncated or
        corrupt JPEG 2000).
    TransientIOError
        If the read failed on a system error worth a retry (see
        :data:`~sen2core.io.failures.TRANSIENT_ERRNOS`).
    """
    failure: Sen2CoreError | None = None
    try:
        options = {"GDAL_CACHEMAX": READ_CACHE_BYTES, "GDAL_NUM_THREADS": codec_threads(), **gdal_options}
        with rasterio.Env(**options), rasterio.open(path) as ds:
            if ds.driver == "JP2OpenJPEG":
                data = np.empty((row1 - row0, col1 - col0), dtype=np.uint16)
                for r0, r1, c0, c1 in _block_windows(ds.block_shapes[0], row0, row1, col0, col1):
                    data[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = ds.read(
                        1, window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype="uint16")  # fmt: skip
            else:
                data = ds.read(1, window=Window(col0, row0, col1 - col0, row1 - row0), out_dtype="uint16")
    except Exception as exc:
        failure = _read_failure(exc, product, f"band {band}: cannot decode rows {row0}:{row1}, cols {col0}:{col1} "
                                              f"of {display}")  # fmt: skip
    if failure is not None:
        raise failure  # outside the except block: no unpicklable chain (see sen2core.errors)
    if data.shape != (row1 - row0, col1 - col0):
        raise BandReadError(product, f"band {band}: short read from {display}: got {data.shape}")
    return np.asarray(data, dtype=np.uint16)


def read_layers(
    path: str,
    layers: tuple[int, ...],
    row0: int,
    row1: int,
    col0: int,
    col1: int,
    *,
    product: str,
    what: str,
    display: str,
    gdal_options: Mapping[str, str],
    repeats: RepeatedTiles | None = None,
) -> NDArray[np.uint8]:
    """Read one window of several layers (1-based band indexes) of a mask as ``(layers, rows, cols)`` uint8.

    Decoded one JPEG 2000 tile per request, as :func:`read_window` does, so that a tile that
    fails to decode raises. With ``repeats`` (the file's tiles that decode alike,
    :func:`~sen2core.io.read.jp2_tiles.repeated_tiles`), a tile of a group is decoded once
    per call and copied to the others of the window: the same pixels, without decoding
    the empty tiles of a quality mask one by one.

    Raises
    ------
    BandReadError
        If the file cannot be opened, has fewer layers, or the window cannot be decoded.
    TransientIOError
        If the read failed on a system error worth a retry.
    """
    failure: Sen2CoreError | None = None
    data = np.empty((len(layers), row1 - row0, col1 - col0), dtype=np.uint8)
    try:
        options = {"GDAL_CACHEMAX": READ_CACHE_BYTES, "GDAL_NUM_THREADS": codec_threads(), **gdal_options}
        with rasterio.Env(**options), rasterio.open(path) as ds:
            if ds.count < max(layers):
                raise ValueError(f"{ds.count} layer(s), layer {max(layers)} needed")
            block = ds.block_shapes[0] if ds.driver == "JP2OpenJPEG" else (row1 - row0, col1 - col0)
            alike = repeats if (repeats is not None and ds.driver == "JP2OpenJPEG" and repeats.tile == tuple(block)
                                and repeats.shape == ds.shape) else None  # fmt: skip
            decoded: dict[int, NDArray[np.uint8]] = {}
            for r0, r1, c0, c1 in _block_windows(block, row0, row1, col0, col1):
                if alike is None:
                    data[:, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = ds.read(
                        list(layers), window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype="uint8")  # fmt: skip
                    continue
                # The whole tile: the copy must come from the same place in a tile of the group.
                t0, u0 = r0 - r0 % block[0], c0 - c0 % block[1]
                group = alike.representative(r0, c0)
                tile = decoded.get(group)
                if tile is None:
                    whole = Window(u0, t0, min(block[1], ds.width - u0), min(block[0], ds.height - t0))
                    tile = ds.read(list(layers), window=whole, out_dtype="uint8")
                    if alike.repeated(group):
                        decoded[group] = tile
                data[:, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = tile[:, r0 - t0 : r1 - t0, c0 - u0 : c1 - u0]
    except Exception as exc:
        failure = _read_failure(exc, product, f"{what}: cannot decode rows {row0}:{row1}, cols {col0}:{col1} "
                                              f"of {display}")  # fmt: skip
    if failure is not None:
        raise failure  # outside the except block: no unpicklable chain (see sen2core.errors)
    return data


def _block_windows(block: tuple[int, int], row0: int, row1: int, col0: int, col1: int
                   ) -> list[tuple[int, int, int, int]]:  # fmt: skip
    """The parts ``(r0, r1, c0, c1)`` of a window that each lie in one block of ``block = (rows, cols)``."""
    by, bx = max(1, block[0]), max(1, block[1])
    rows = [(r, min((r // by + 1) * by, row1)) for r in _starts(row0, row1, by)]
    cols = [(c, min((c // bx + 1) * bx, col1)) for c in _starts(col0, col1, bx)]
    return [(r0, r1, c0, c1) for r0, r1 in rows for c0, c1 in cols]


def _starts(first: int, end: int, step: int) -> list[int]:
    return [first, *range((first // step + 1) * step, end, step)] if first < end else []


def _block_rows_cols(block_info: dict[Any, Any] | None) -> tuple[int, int, int, int]:
    if block_info is None:
        raise TypeError("block functions run inside dask.array.map_blocks, which passes block_info")
    loc = block_info[None]["array-location"]
    (r0, r1), (c0, c1) = loc[-2], loc[-1]
    return r0, r1, c0, c1


def _dn_block(
    *,
    path: str,
    product: str,
    band: str,
    display: str,
    gdal_options: Mapping[str, str],
    block_info: dict[Any, Any] | None = None,
) -> NDArray[np.uint16]:
    r0, r1, c0, c1 = _block_rows_cols(block_info)
    return read_window(path, r0, r1, c0, c1, product=product, band=band, display=display, gdal_options=gdal_options)


def dn_array(
    path: str, *, chunks: Chunks, product: str, band: str, display: str, gdal_options: Mapping[str, str]
) -> da.Array:
    """Lazy uint16 array of a band, one windowed read per chunk."""
    name = f"sen2core-dn-{band}-{tokenize(path, chunks, dict(gdal_options))}"
    arr: da.Array = da.map_blocks(
        _dn_block,
        chunks=chunks,
        dtype=np.uint16,
        meta=np.empty((0, 0), dtype=np.uint16),
        name=name,
        path=path,
        product=product,
        band=band,
        display=display,
        gdal_options=dict(gdal_options),
    )
    return arr


def _angle_block(
    *,
    grid: NDArray[np.float64],
    azimuth: bool,
    row_step: float,
    col_step: float,
    pixel: float,
    x_off: float,
    y_off: float,
    block_info: dict[Any, Any] | None = None,
) -> NDArray[np.float32]:
    r0, r1, c0, c1 = _block_rows_cols(block_info)
    gy = grid_indices(r0, r1, pixel, row_step, offset=y_off)
    gx = grid_indices(c0, c1, pixel, col_step, offset=x_off)
    values = interpolate_azimuth(grid, gy, gx) if azimuth else bilinear(grid, gy, gx)
    return values.astype(np.float32)


def angle_field(
    zenith: NDArray[np.float64],
    azimuth: NDArray[np.float64],
    *,
    row_step: float,
    col_step: float,
    pixel: float,
    x_off: float,
    y_off: float,
    chunks: Chunks,
    label: str,
    owner: str = "",
) -> tuple[da.Array, da.Array]:
    """Per-pixel zenith and azimuth interpolated from a NaN-free grid pair.

    ``x_off``/``y_off`` are the distances (m, positive east/south) from grid node (0, 0)
    to the upper-left corner of the pixel grid. ``owner`` (the product) goes into the
    dask key, so that products processed at once on one cluster never share a key.
    The two are separate arrays: a caller that needs only the zenith (most do) never
    computes the azimuth, and no stacked block is sliced apart.
    """
    z = np.ascontiguousarray(zenith, dtype=np.float64)
    a = np.ascontiguousarray(azimuth, dtype=np.float64)
    token = tokenize(owner, z, a, row_step, col_step, pixel, x_off, y_off, chunks)
    common = dict(row_step=row_step, col_step=col_step, pixel=pixel, x_off=x_off, y_off=y_off)
    out = []
    for kind, grid in (("zenith", z), ("azimuth", a)):
        out.append(da.map_blocks(_angle_block, chunks=chunks, dtype=np.float32, meta=np.empty((0, 0), dtype=np.float32),
                                 name=f"sen2core-{label}-{kind}-{token}", grid=grid, azimuth=kind == "azimuth",
                                 **common))  # fmt: skip
    return out[0], out[1]


def _solar_block(
    *, time: str, epsg: int, transform: tuple[float, ...], block_info: dict[Any, Any] | None = None
) -> NDArray[np.float32]:
    r0, r1, c0, c1 = _block_rows_cols(block_info)
    a, _, c, _, e, f = transform[:6]
    x = c + (np.arange(c0, c1, dtype=np.float64) + 0.5) * a
    y = f + (np.arange(r0, r1, dtype=np.float64) + 0.5) * e
    xx, yy = np.meshgrid(x, y)
    if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
        lon, lat = utm_to_lonlat(xx, yy, epsg % 100, south=epsg > 32700)
    else:
        from rasterio.warp import transform as warp_transform

        with rasterio.Env():
            lo, la = warp_transform(f"EPSG:{epsg}", "EPSG:4326", xx.ravel().tolist(), yy.ravel().tolist())
        lon = np.asarray(lo).reshape(xx.shape)
        lat = np.asarray(la).reshape(xx.shape)
    zen, az = solar_position(time, lat, lon)
    return np.stack([zen, az]).astype(np.float32)


def solar_field(
    time: _dt.datetime, *, epsg: int, transform: tuple[float, ...], chunks: Chunks, owner: str = ""
) -> tuple[da.Array, da.Array]:
    """Per-pixel sun zenith and azimuth from the solar position at each pixel centre."""
    iso = time.astimezone(_dt.UTC).isoformat()
    t6 = tuple(float(v) for v in transform[:6])
    name = f"sen2core-sun-position-{tokenize(owner, iso, epsg, t6, chunks)}"
    stacked = da.map_blocks(
        _solar_block,
        chunks=((2,), *chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        name=name,
        time=iso,
        epsg=epsg,
        transform=t6,
    )
    return stacked[0], stacked[1]


def constant_field(zenith: float, azimuth: float, *, chunks: Chunks) -> tuple[da.Array, da.Array]:
    """A constant zenith/azimuth pair on a pixel grid (the nadir or mean-angle fallback)."""
    shape = (sum(chunks[0]), sum(chunks[1]))
    z = da.full(shape, zenith, dtype=np.float32, chunks=chunks)
    a = da.full(shape, azimuth, dtype=np.float32, chunks=chunks)
    return z, a


def _stored_block(path: str, dtype: Any, block_info: dict[Any, Any] | None = None) -> NDArray[Any]:
    r0, r1, c0, c1 = _block_rows_cols(block_info)
    failure: Sen2CoreError | None = None
    try:
        with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_BYTES), rasterio.open(path) as ds:
            data = ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
    except Exception as exc:
        what = f"{path}: cannot read stored rows {r0}:{r1}, cols {c0}:{c1} ({gdal_message(exc)})"
        failure = TransientIOError(what) if is_transient_os(exc) else OutputError(what)
    if failure is not None:
        raise failure  # outside the except block: no unpicklable chain (see sen2core.errors)
    out: NDArray[Any] = data.astype(dtype, copy=False)
    return out


def stored_array(path: str, chunks: Chunks, dtype: Any) -> da.Array:
    """A 2-D raster written by the processor itself (a stored intermediate), read lazily on ``chunks``."""
    name = f"stored-{tokenize(path, chunks, str(dtype))}"
    arr: da.Array = da.map_blocks(_stored_block, path, np.dtype(dtype), chunks=chunks, dtype=dtype,
                                  meta=np.empty((0, 0), dtype=dtype), name=name)  # fmt: skip
    return arr


# ---------------------------------------------------------------------------- bands decoded to files

#: Rows decoded per task by :func:`decode_to_files`: whole rows of the file's blocks (JPEG 2000
#: tiles), at least this many. Windows on the chunk grid straddle tiles, and a tile shared by
#: two windows is decoded twice: 2.2 times the work for a 10 m band (1830 px chunks, 1024 px tiles).
STRIP_MIN_ROWS = 1024


@dataclass(frozen=True)
class BandSource:
    """A band raster checked against the tile grid: what a worker needs to decode it."""

    path: str
    """GDAL path of the raster."""
    product: str
    """Product href, for errors."""
    band: str
    display: str
    """Path shown in errors."""
    gdal_options: Mapping[str, str]
    shape: tuple[int, int]
    block_rows: int
    """Rows of one block (tile) of the file."""
    quality_path: str | None = None
    """GDAL path of the band's ``MSK_QUALIT`` mask (same grid), read with it; None when there is none."""
    quality_display: str | None = None
    """Path of the mask shown in errors."""
    quality_tiles: RepeatedTiles | None = None
    """The mask's tiles that decode alike (read once per strip); None: every tile decoded."""

    def strips(self) -> list[tuple[int, int]]:
        """Row ranges ``(first, end)`` made of whole block rows, :data:`STRIP_MIN_ROWS` or more each."""
        step = self.block_rows * max(1, -(-STRIP_MIN_ROWS // max(self.block_rows, 1)))
        rows = self.shape[0]
        return [(r, min(r + step, rows)) for r in range(0, rows, step)]

    def read_rows(self, row0: int, row1: int) -> NDArray[np.uint16]:
        """Rows ``row0:row1``, full width (see :func:`read_window`)."""
        return read_window(self.path, row0, row1, 0, self.shape[1], product=self.product, band=self.band,
                           display=self.display, gdal_options=self.gdal_options)  # fmt: skip


def _kept_failure(exc: BaseException, message: str) -> OutputError | TransientIOError:
    return TransientIOError(message) if is_transient_os(exc) else OutputError(message)


@dataclass(frozen=True)
class StripQuality:
    """What a band's quality mask flags in one strip of rows (:func:`decode_to_files`)."""

    row0: int
    row1: int
    counts: tuple[int, ...]
    """Flagged pixels of each layer of :data:`~sen2core.kernels.quality.QUALITY_LAYERS`."""
    flags: NDArray[np.uint8] | None
    """Saturated or defective pixels (not lost), bits packed along rows (``np.packbits(axis=1)``);
    None when there is none."""


def _decode_strip(source: BandSource, row0: int, row1: int, target: str) -> StripQuality | None:
    data = source.read_rows(row0, row1)
    quality = None
    if source.quality_path is not None:
        layers = read_layers(source.quality_path, tuple(QUALITY_LAYERS), row0, row1, 0, source.shape[1],
                             product=source.product, what=f"band {source.band}: quality mask",
                             display=source.quality_display or source.quality_path,
                             gdal_options=source.gdal_options, repeats=source.quality_tiles)  # fmt: skip
        lost, bad, counts = split_quality(layers)
        # Lost MSI packets carry no signal: no data, as DN 0 is.
        data[lost] = 0
        quality = StripQuality(row0, row1, tuple(int(n) for n in counts),
                               np.packbits(bad, axis=1) if bad.any() else None)  # fmt: skip
    failure: Sen2CoreError | None = None
    try:
        # The file's blocks were allocated by decode_to_files: these pages cannot fault on a full disk.
        kept = np.load(target, mmap_mode="r+")
        kept[row0:row1] = data
        kept.flush()
        del kept
    except (OSError, ValueError) as exc:
        failure = _kept_failure(exc, f"{target}: cannot keep rows {row0}:{row1} of band {source.band} ({exc})")
    if failure is not None:
        raise failure  # outside the except block: no chain (see sen2core.errors)
    return quality


def _npy_block(path: str, dtype: Any, what: str, block_info: dict[Any, Any] | None = None) -> NDArray[Any]:
    """A chunk's window of a kept ``.npy`` file (a decoded band or a checkpoint layer) as ``dtype``."""
    r0, r1, c0, c1 = _block_rows_cols(block_info)
    failure: Sen2CoreError | None = None
    try:
        kept = np.load(path, mmap_mode="r")
        data = np.array(kept[r0:r1, c0:c1], dtype=dtype)
        del kept  # unmapped: the pages stay in the page cache, not in this process
    except (OSError, ValueError) as exc:
        failure = _kept_failure(exc, f"{path}: cannot read {what} rows {r0}:{r1}, cols {c0}:{c1} ({exc})")
    if failure is not None:
        raise failure  # outside the except block: no chain (see sen2core.errors)
    return data


def decode_to_files(
    sources: Mapping[str, BandSource], chunks: Mapping[str, Chunks], folder: str | os.PathLike[str]
) -> dict[str, da.Array]:
    """Decode bands now into uncompressed ``.npy`` files under ``folder``; return arrays reading them back.

    For bands that stages far apart read again (the digital numbers the 10 m stage
    reuses): held in the cluster's memory, they would sit there through the whole scene
    classification. Each band is decoded by strips of whole tiles (no tile twice), one
    task per strip, and each chunk of the returned arrays (on ``chunks[name]``) reads its
    window of the file, which the operating system's page cache mostly holds and can drop
    under pressure. ``folder`` must be visible to every worker (beside the output, as the
    staged files are).

    The files are allocated on disk before anything is decoded: the free space is checked
    for all of them first, then each file's blocks are reserved (``posix_fallocate``). A
    memory-mapped file left sparse would fail only when a page is written back on a full
    disk, as a ``SIGBUS`` that kills the process without a word.

    A band whose source has a quality mask (``BandSource.quality_path``) is read with it,
    strip by strip: pixels of lost MSI packets are kept as DN 0 (no data), and the layer
    counts and the saturated or defective pixels go to ``{name}.quality.npz``
    (:func:`kept_quality`, :func:`quality_grid`).

    Raises
    ------
    DiskFullError
        If the files do not fit on the file system of ``folder`` (nothing is decoded).
    BandReadError
        If a strip cannot be decoded.
    OutputError
        If a file cannot be written, or when computed, read back.
    """
    root = os.fspath(folder)
    os.makedirs(root, exist_ok=True)
    # Header included: a .npy header is at most a few hundred bytes (np.lib.format pads it to 64).
    sizes = {name: int(np.prod(src.shape)) * np.dtype(np.uint16).itemsize + 4096 for name, src in sources.items()}
    require_free(root, sum(sizes.values()), f"the {len(sources)} band(s) decoded for the later stages (uncompressed)")
    decode = delayed(_decode_strip, pure=True)
    tasks = []
    owners: list[str] = []
    targets = {}
    for name, src in sources.items():
        target = targets[name] = os.path.join(root, f"{name}.npy")
        try:
            # Allocated whole, then filled by strips (disjoint rows: no lock needed).
            np.lib.format.open_memmap(target, mode="w+", dtype=np.uint16, shape=src.shape)
            allocate(target, os.path.getsize(target), root, f"the kept band {src.band} "
                     f"({describe_bytes(sizes[name])} uncompressed)")  # fmt: skip
        except OSError as exc:
            if isinstance(exc, Sen2CoreError):
                raise
            if is_disk_full(exc):
                raise DiskFullError(
                    root,
                    f"no space left for the kept band {src.band}: {describe_bytes(sizes[name])} "
                    f"needed, {describe_bytes(free_bytes(root))} free",
                ) from None
            raise OutputError(f"{target}: cannot allocate the kept band {src.band} ({exc})") from exc
        tasks += [decode(src, r0, r1, target, dask_key_name=f"decode-{name}-{r0}-{tokenize(target)}")
                  for r0, r1 in src.strips()]  # fmt: skip
        owners += [name] * len(src.strips())
    strips = compute(*tasks)
    by_band: dict[str, list[StripQuality]] = {}
    for name, strip in zip(owners, strips, strict=True):
        if strip is not None:
            by_band.setdefault(name, []).append(strip)
    for name, parts in by_band.items():
        _write_quality(os.path.join(root, f"{name}{QUALITY_SUFFIX}"), parts, sources[name].shape)
    return {name: kept_array(target, chunks[name]) for name, target in targets.items()}


#: Pixel size of ESA's L1C cloud mask ``MSK_CLASSI_B00`` (m).
CLASSI_M = 60


def _classi_block(scl: NDArray[np.uint8], *, path: str, grid_m: int, product: str, display: str,
                  gdal_options: Mapping[str, str],
                  block_info: dict[Any, Any] | None = None) -> NDArray[np.int64]:  # fmt: skip
    if block_info is None:
        raise TypeError("block functions run inside dask.array.map_blocks, which passes block_info")
    # The input's location: the output's last axes are the table's.
    (r0, r1), (c0, c1) = block_info[0]["array-location"]
    f = CLASSI_M // grid_m
    # The 60 m pixels under this block (grids share their origin), repeated onto its grid.
    m0, m1, n0, n1 = r0 // f, -(-r1 // f), c0 // f, -(-c1 // f)
    layers = read_layers(path, (1, 2, 3), m0, m1, n0, n1, product=product, what="L1C cloud mask", display=display,
                         gdal_options=gdal_options)  # fmt: skip
    fine = np.repeat(np.repeat(layers, f, axis=1), f, axis=2)
    fine = fine[:, r0 - m0 * f : r1 - m0 * f, c0 - n0 * f : c1 - n0 * f]
    return classi_agreement(scl, fine)[None, None]


def cloud_mask_table(path: str, scl: da.Array, grid_m: int, *, product: str, display: str,
                     gdal_options: Mapping[str, str]) -> da.Array:  # fmt: skip
    """Lazy ``(3, 3)`` table of ESA's L1C cloud mask against ``scl``.

    As :func:`~sen2core.kernels.quality.classi_agreement` gives it.

    Each block of ``scl`` (on a grid of ``grid_m``: 20 or 60 m) reads the window of the
    60 m mask under it.

    Raises
    ------
    BandReadError
        When computed, if the mask cannot be read or has fewer than 3 layers.
    """
    if CLASSI_M % grid_m:
        raise ValueError(f"the {CLASSI_M} m cloud mask cannot be compared on a {grid_m} m grid")
    rows, cols = scl.chunks
    per_block = da.map_blocks(
        _classi_block, scl, path=path, grid_m=grid_m, product=product, display=display,
        gdal_options=dict(gdal_options), new_axis=[2, 3], dtype=np.int64,
        chunks=((1,) * len(rows), (1,) * len(cols), (3,), (3,)), meta=np.empty((0, 0, 0, 0), dtype=np.int64),
    )  # fmt: skip
    counts: da.Array = per_block.sum(axis=(0, 1))
    return counts


#: Suffix of the record :func:`decode_to_files` writes for a band read with its quality mask.
QUALITY_SUFFIX = ".quality.npz"


def _write_quality(path: str, parts: list[StripQuality], shape: tuple[int, int]) -> None:
    counts = np.sum([p.counts for p in parts], axis=0).astype(np.int64)
    arrays: dict[str, NDArray[Any]] = {"counts": counts}
    if any(p.flags is not None for p in parts):
        packed = np.zeros((shape[0], -(-shape[1] // 8)), dtype=np.uint8)
        for p in parts:
            if p.flags is not None:
                packed[p.row0 : p.row1] = p.flags
        arrays["flags"] = packed
    try:
        with open(path, "wb") as f:
            # numpy's stub types **kwds as if a key could be its allow_pickle flag; these are arrays.
            np.savez(f, **arrays)  # type: ignore[arg-type]
    except OSError as exc:
        raise OutputError(f"{path}: cannot keep the quality mask record ({exc})") from exc


def kept_quality(folder: str | os.PathLike[str],
                 band: str) -> tuple[NDArray[np.int64], NDArray[np.uint8] | None] | None:  # fmt: skip
    """The quality record :func:`decode_to_files` kept for ``band``: layer counts and packed class-1 flags.

    None when the band was read without a quality mask.

    Raises
    ------
    OutputError
        If the record exists but cannot be read.
    """
    path = os.path.join(os.fspath(folder), f"{band}{QUALITY_SUFFIX}")
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as z:
            return np.array(z["counts"]), (np.array(z["flags"]) if "flags" in z.files else None)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputError(f"{path}: cannot read the quality mask record ({exc})") from exc


def quality_grid(folder: str | os.PathLike[str], bands: Mapping[str, int], grid_m: int,
                 shape: tuple[int, int], target: str) -> bool:  # fmt: skip
    """Write ``target``: uint8 1 where any of ``bands`` (name -> native resolution) is saturated or
    defective, on the ``grid_m`` grid of ``shape``; return False (nothing written) when none is.

    Raises
    ------
    OutputError
        If a record cannot be read or the grid cannot be written.
    """
    out: NDArray[np.bool_] | None = None
    for band, res in bands.items():
        record = kept_quality(folder, band)
        if record is None or record[1] is None:
            continue
        packed = record[1]
        if out is None:
            out = np.zeros(shape, dtype=bool)
        width = packed.shape[1] * 8
        # Unpacked a strip at a time: a whole 10 m band would be 120 MB of booleans.
        for r in range(0, packed.shape[0], STRIP_MIN_ROWS):
            rows, cols = np.nonzero(np.unpackbits(packed[r : r + STRIP_MIN_ROWS], axis=1, count=width))
            flags_on_grid(rows + r, cols, res, grid_m, out)
    if out is None:
        return False
    try:
        np.save(target, out.astype(np.uint8))
    except OSError as exc:
        raise OutputError(f"{target}: cannot write the quality grid ({exc})") from exc
    return True


def kept_array(path: str, chunks: Chunks) -> da.Array:
    """A band kept by :func:`decode_to_files`, read lazily on ``chunks``."""
    key = f"kept-{tokenize(path, chunks)}"
    arr: da.Array = da.map_blocks(_npy_block, path, np.dtype(np.uint16), "kept", chunks=chunks, dtype=np.uint16,
                                  meta=np.empty((0, 0), dtype=np.uint16), name=key)  # fmt: skip
    return arr


def kept_shape(path: str) -> tuple[int, ...]:
    """Shape of a kept band or checkpoint file (``.npy``), from its header.

    Raises
    ------
    OutputError
        If the file is missing or not an ``.npy`` file.
    """
    try:
        shape = np.load(path, mmap_mode="r").shape  # the header only: nothing is read
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: cannot read the kept file ({exc})") from exc
    return tuple(int(n) for n in shape)


# ---------------------------------------------------------------------------- checkpoints


def allocate_checkpoint(path: str, shape: tuple[int, ...], dtype: Any) -> None:
    """Create the ``.npy`` file of a checkpoint layer (zeros), replacing any earlier one.

    Raises
    ------
    DiskFullError
        The file system has no room for it.
    OutputError
        If the file cannot be created.
    """
    folder = os.path.dirname(path)
    tmp = f"{path}.{os.getpid()}.tmp.npy"
    failure: Sen2CoreError | None = None
    try:
        os.makedirs(folder, exist_ok=True)
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=shape)
        del arr
        # Written later through memory maps, as the kept bands: its blocks must exist (no SIGBUS on a full disk).
        allocate(tmp, os.path.getsize(tmp), folder, f"the checkpoint {os.path.basename(path)}")
        os.replace(tmp, path)
    except DiskFullError:
        os.remove(tmp)
        raise
    except OSError as exc:
        failure = _kept_failure(exc, f"{path}: cannot allocate the checkpoint ({exc})")
    if failure is not None:
        raise failure  # outside the except block: no chain (see sen2core.errors)


class CheckpointTarget:
    """``da.store`` target writing regions into a checkpoint ``.npy`` file (a rewrite replaces them)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __setitem__(self, key: tuple[slice, ...], value: NDArray[Any]) -> None:
        failure: Sen2CoreError | None = None
        try:
            kept = np.load(self.path, mmap_mode="r+")
            kept[key] = value
            kept.flush()
            del kept
        except (OSError, ValueError) as exc:
            failure = _kept_failure(exc, f"{self.path}: cannot store region {key} ({exc})")
        if failure is not None:
            raise failure  # on a Dask worker: outside the except block, no unpicklable chain


def checkpoint_array(path: str, chunks: Chunks, dtype: Any) -> da.Array:
    """A 2-D checkpoint layer stored by an earlier stage, read lazily on ``chunks`` as ``dtype``."""
    name = f"checkpoint-{tokenize(path, chunks, str(dtype))}"
    arr: da.Array = da.map_blocks(_npy_block, path, np.dtype(dtype), "stored", chunks=chunks, dtype=dtype,
                                  meta=np.empty((0, 0), dtype=dtype), name=name)  # fmt: skip
    return arr


def load_checkpoint(path: str) -> NDArray[Any]:
    """A small checkpoint (a table) read whole.

    Raises
    ------
    OutputError
        If it cannot be read.
    """
    try:
        return np.array(np.load(path, mmap_mode="r"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: cannot read the checkpoint ({exc})") from exc

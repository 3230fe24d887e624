"""Raster writers: dask arrays to Cloud-Optimised GeoTIFFs, written once and chunk by chunk.

Each chunk lands in an uncompressed tiled GeoTIFF (pre-allocated, so windows can
be written in any order) under a lock shared by every process that writes the
file; GDAL's COG driver then compresses it once with internal overviews. Both
steps run where the data is (threads or Dask workers), never in the client.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
from dask.utils import SerializableLock
from rasterio.windows import Window

from sen2core.errors import OutputError
from sen2core.io.metadata import GeoBox

#: GDAL options while writing (set inside each writing function: they do not travel with the graph).
GDAL_WRITE_OPTIONS = {"GDAL_NUM_THREADS": "ALL_CPUS", "GDAL_TIFF_INTERNAL_MASK": "YES"}


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


def _lock(path: str) -> Any:
    """A lock every writer of ``path`` shares: distributed across worker processes, else in-process."""
    try:
        from distributed import Lock, get_client

        get_client()
        return Lock(f"sen2core-write-{os.path.abspath(path)}")
    except (ImportError, ValueError):
        return SerializableLock(f"sen2core-write-{os.path.abspath(path)}")


class _WindowTarget:
    """``da.store`` target: writes a region into an existing GeoTIFF, reopening it per write."""

    def __init__(self, path: str, bands: int) -> None:
        self.path, self.bands = path, bands

    def __setitem__(self, key: tuple[slice, ...], value: np.ndarray) -> None:
        rows, cols = key[-2], key[-1]
        win = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        data = value if value.ndim == 3 else value[None]
        try:
            with rasterio.Env(**GDAL_WRITE_OPTIONS), rasterio.open(self.path, "r+") as dst:
                dst.write(data, window=win)
        except rasterio.errors.RasterioError as exc:
            raise OutputError(f"{self.path}: cannot write window {win}: {exc}") from exc


def _create(path: str, spec: RasterSpec, bands: int) -> None:
    gb = spec.geobox
    with rasterio.Env(**GDAL_WRITE_OPTIONS), rasterio.open(
        path, "w", driver="GTiff", width=gb.width, height=gb.height, count=bands, dtype=spec.dtype,
        crs=gb.crs, transform=gb.transform, nodata=spec.nodata, tiled=True, blockxsize=256, blockysize=256,
        compress="NONE", sparse_ok=False, bigtiff="IF_SAFER",
    ) as dst:  # fmt: skip
        for i, name in enumerate(spec.band_names, start=1):
            dst.set_band_description(i, name)
        if spec.scale is not None or spec.offset is not None:
            dst.scales = (spec.scale if spec.scale is not None else 1.0,) * bands
            dst.offsets = (spec.offset if spec.offset is not None else 0.0,) * bands
        if spec.colormap:
            dst.write_colormap(1, dict(spec.colormap))


def _to_cog(tmp: str, final: str, spec: RasterSpec, _stored: object = None) -> str:
    """Compress ``tmp`` into the COG ``final`` (overviews included) and remove ``tmp``."""
    opts: dict[str, Any] = dict(
        driver="COG", compress=spec.compress, blocksize=512, overview_resampling=spec.resampling,
        num_threads="ALL_CPUS", bigtiff="IF_SAFER",
    )  # fmt: skip
    if spec.compress in ("DEFLATE", "ZSTD", "LZW") and spec.predictor:
        opts["predictor"] = "YES" if spec.predictor == 2 else "FLOATING_POINT"
    try:
        with rasterio.Env(**GDAL_WRITE_OPTIONS):
            rasterio.shutil.copy(tmp, final, **opts)
    except rasterio.errors.RasterioError as exc:
        raise OutputError(f"{final}: COG encoding failed: {exc}") from exc
    os.remove(tmp)
    aux = final + ".aux.xml"
    if os.path.exists(aux):
        os.remove(aux)
    return final


def cog_tasks(outputs: Mapping[str, tuple[da.Array, RasterSpec]], folder: str | Path) -> list[Any]:
    """Delayed tasks writing each ``name -> (array, spec)`` to ``folder/name``; compute them together.

    Arrays are 2-D ``(rows, cols)`` or 3-D ``(bands, rows, cols)`` with the spec's
    grid. Computing all outputs in one ``dask.compute`` lets dask share the inputs
    they have in common and stream chunks to disk as soon as they exist.
    """
    folder = Path(folder)
    tasks = []
    for name, (arr, spec) in outputs.items():
        final = str(folder / name)
        tmp = final + ".part.tif"
        bands = arr.shape[0] if arr.ndim == 3 else 1
        if arr.shape[-2:] != spec.geobox.shape:
            raise OutputError(f"{final}: array shape {arr.shape} does not match grid {spec.geobox.shape}")
        _create(tmp, spec, bands)
        stored = da.store(arr.astype(spec.dtype), _WindowTarget(tmp, bands), lock=_lock(tmp), compute=False)
        tasks.append(dask.delayed(_to_cog, pure=False)(tmp, final, spec, stored))
    return tasks

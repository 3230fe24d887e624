"""Digital elevation model: any GeoTIFF (or GDAL raster), warped onto the tile grid chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import rasterio
from dask.base import tokenize
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from sen2core.errors import AuxDataError, Sen2CoreError, TransientIOError
from sen2core.io.failures import gdal_message, is_transient_os
from sen2core.io.metadata import GeoBox


def _dem_block(path: str, epsg: int, transform: tuple[float, ...], block_info: dict | None = None) -> np.ndarray:
    assert block_info is not None
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    shape = block_info[None]["shape"]
    from affine import Affine

    failure: Sen2CoreError | None = None
    try:
        with rasterio.open(path) as src, WarpedVRT(
            src, crs=f"EPSG:{epsg}", transform=Affine(*transform[:6]), width=shape[1], height=shape[0],
            resampling=Resampling.bilinear, src_nodata=src.nodata, nodata=np.nan, dtype="float32",
        ) as vrt:  # fmt: skip
            data = vrt.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
    except Exception as exc:  # RasterioError and the CPLE_* errors, which are not RasterioError
        message = f"DEM {path}: cannot read rows {r0}:{r1}, cols {c0}:{c1} ({gdal_message(exc)})"
        failure = TransientIOError(message) if is_transient_os(exc) else AuxDataError(message)
    if failure is not None:
        # Outside the except block: a block read runs on Dask workers, and GDAL's exceptions in
        # the chain would not unpickle (see sen2core.errors).
        raise failure
    return data.astype(np.float32)


def dem_on_grid(path: str | Path, geobox: GeoBox, chunks: tuple[tuple[int, ...], tuple[int, ...]]) -> da.Array:
    """Lazy DEM (metres, float32, NaN outside the DEM) resampled bilinearly onto ``geobox``."""
    p = str(path)
    try:
        with rasterio.open(p) as src:
            if src.crs is None:
                raise AuxDataError(f"DEM {p}: no coordinate reference system")
    except rasterio.errors.RasterioError as exc:
        raise AuxDataError(f"DEM {p}: not a readable raster ({gdal_message(exc)})") from None
    t = tuple(geobox.transform)
    name = "dem-" + tokenize(p, geobox.epsg, t, chunks)
    return da.map_blocks(_dem_block, p, geobox.epsg, t, chunks=chunks, dtype=np.float32, name=name,
                         meta=np.empty((0, 0), np.float32))  # fmt: skip

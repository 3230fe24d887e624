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

from sen2core.errors import AuxDataError
from sen2core.io.metadata import GeoBox


def _dem_block(path: str, epsg: int, transform: tuple[float, ...], block_info: dict | None = None) -> np.ndarray:
    assert block_info is not None
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    shape = block_info[None]["shape"]
    from affine import Affine

    try:
        with rasterio.open(path) as src, WarpedVRT(
            src, crs=f"EPSG:{epsg}", transform=Affine(*transform[:6]), width=shape[1], height=shape[0],
            resampling=Resampling.bilinear, src_nodata=src.nodata, nodata=np.nan, dtype="float32",
        ) as vrt:  # fmt: skip
            data = vrt.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
    except rasterio.errors.RasterioError as exc:
        raise AuxDataError(f"DEM {path}: cannot read: {exc}") from exc
    return data.astype(np.float32)


def dem_on_grid(path: str | Path, geobox: GeoBox, chunks: tuple[tuple[int, ...], tuple[int, ...]]) -> da.Array:
    """Lazy DEM (metres, float32, NaN outside the DEM) resampled bilinearly onto ``geobox``."""
    p = str(path)
    try:
        with rasterio.open(p) as src:
            if src.crs is None:
                raise AuxDataError(f"DEM {p}: no coordinate reference system")
    except rasterio.errors.RasterioError as exc:
        raise AuxDataError(f"DEM {p}: not a readable raster: {exc}") from exc
    t = tuple(geobox.transform)
    name = "dem-" + tokenize(p, geobox.epsg, t, chunks)
    return da.map_blocks(_dem_block, p, geobox.epsg, t, chunks=chunks, dtype=np.float32, name=name,
                         meta=np.empty((0, 0), np.float32))  # fmt: skip

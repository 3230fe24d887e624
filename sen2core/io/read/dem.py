"""Digital elevation model: any GeoTIFF (or GDAL raster), warped onto the tile grid chunk by chunk.

Before it is used, the DEM's coverage of the tile is measured (:func:`dem_info`): a DEM
of another place, or one that covers too little of the tile, would otherwise be used
silently as sea level wherever it has no value (flat terrain, wrong pressure). Below
:data:`MIN_COVERAGE` of the tile it is refused; below full coverage a warning is
logged. :class:`DemInfo` (name, CRS, coverage) is what a run records about its DEM.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import rasterio
from affine import Affine
from dask.base import tokenize
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from sen2core.errors import AuxDataError, Sen2CoreError, TransientIOError
from sen2core.io.failures import gdal_message, is_transient_os
from sen2core.io.read.metadata import GeoBox

__all__ = ["COVERAGE_GRID_PX", "MIN_COVERAGE", "DemInfo", "dem_info", "dem_on_grid", "open_dem"]

log = logging.getLogger(__name__)

MIN_COVERAGE = 0.5
"""Smallest share of the tile a DEM must cover (with a value, not no data) to be used.

Where it has no value the elevation is taken as sea level and the terrain as flat, so a
DEM covering less than half the tile would make the correction of most of it wrong
without saying so; between this and full coverage the DEM is used, with a warning."""
COVERAGE_GRID_PX = 256
"""The coverage is measured on a grid of at most this many pixels a side over the tile (a few
hundred metres per pixel on a full tile: one small warped read)."""


@dataclass(frozen=True)
class DemInfo:
    """What a run records about the DEM it used."""

    name: str
    """File name of the DEM."""
    path: str
    """The DEM as given."""
    crs: str
    """Its coordinate reference system (``EPSG:4326``, or the CRS's name or WKT)."""
    coverage: float
    """Share of the tile's pixels (0 to 1) with a DEM value."""

    def to_dict(self) -> dict[str, Any]:
        """For the run summary and the STAC item: name, CRS and coverage in percent."""
        return {"name": self.name, "crs": self.crs, "coverage_percent": round(100.0 * self.coverage, 2)}


def _cause(exc: BaseException) -> str:
    """The messages of an exception and its causes, innermost last, without rasterio's pointers to them.

    rasterio says "Read failed. See previous exception for details." and puts GDAL's reason in the
    cause (``CPLE_*`` exceptions, which also cannot be pickled across Dask workers): the text is kept,
    the exception objects are not.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).replace("See previous exception for details.", "").strip().rstrip(".")
        if text and not any(text in part for part in parts):
            parts.append(text)
        current = current.__cause__ or current.__context__
    return ": ".join(parts) or type(exc).__name__


def _crs_name(crs: Any) -> str:
    epsg = crs.to_epsg()
    if epsg is not None:
        return f"EPSG:{epsg}"
    name = getattr(crs, "name", None) or crs.to_string()
    return str(name)


def _dem_block(
    path: str, epsg: int, transform: tuple[float, ...], block_info: dict[Any, Any] | None = None
) -> np.ndarray:
    assert block_info is not None
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    shape = block_info[None]["shape"]

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
    out: np.ndarray = data.astype(np.float32)
    return out


def _coverage_grid(geobox: GeoBox) -> tuple[Affine, int, int]:
    k = max(1, math.ceil(max(geobox.shape) / COVERAGE_GRID_PX))
    rows, cols = math.ceil(geobox.shape[0] / k), math.ceil(geobox.shape[1] / k)
    return geobox.transform * Affine.scale(k), rows, cols


@functools.lru_cache(maxsize=16)
def _measure(path: str, stamp: tuple[int, int], epsg: int, transform: tuple[float, ...],
             shape: tuple[int, int]) -> DemInfo:  # fmt: skip
    geobox = GeoBox(epsg, Affine(*transform[:6]), shape)
    grid, rows, cols = _coverage_grid(geobox)
    problem, crs = None, None
    try:
        with rasterio.open(path) as src:
            if src.crs is not None:
                crs = _crs_name(src.crs)
                with WarpedVRT(src, crs=geobox.crs, transform=grid, width=cols, height=rows,
                               resampling=Resampling.nearest, src_nodata=src.nodata, nodata=np.nan,
                               dtype="float32") as vrt:  # fmt: skip
                    sample = vrt.read(1)
    except Exception as exc:  # noqa: BLE001 - GDAL reports through several exception types
        problem = _cause(exc)
    if problem is not None:
        raise AuxDataError(f"DEM {path}: not a readable raster: {problem}")
    if crs is None:
        raise AuxDataError(f"DEM {path}: no coordinate reference system")
    # The last row and column of the coarse grid may lie partly beyond the tile: they count for
    # the part over it.
    k = round(grid.a / geobox.transform.a)
    wr = np.minimum(shape[0] - k * np.arange(rows), k) / k
    wc = np.minimum(shape[1] - k * np.arange(cols), k) / k
    weights = np.outer(wr, wc)
    covered = float(np.sum(weights * np.isfinite(sample)) / np.sum(weights))
    return DemInfo(name=Path(path).name, path=path, crs=crs, coverage=covered)


def dem_info(path: str | os.PathLike[str], geobox: GeoBox, min_coverage: float = MIN_COVERAGE) -> DemInfo:
    """The DEM's name, CRS and coverage of ``geobox``; refused if it covers too little of it.

    Parameters
    ----------
    path
        The DEM (any GDAL raster with a CRS).
    geobox
        The tile grid.
    min_coverage
        Smallest share of the tile (0 to 1) the DEM must cover with values.

    Returns
    -------
    DemInfo

    Raises
    ------
    AuxDataError
        The DEM cannot be read, has no CRS, or covers less than ``min_coverage`` of the tile.
    """
    p = str(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise AuxDataError(f"DEM {p}: cannot read: {exc.strerror or exc}") from None
    info = _measure(p, (st.st_mtime_ns, st.st_size), geobox.epsg, tuple(geobox.transform)[:6], geobox.shape)
    left, bottom, right, top = geobox.bounds
    where = f"the tile ({geobox.crs}, x {left:.0f} to {right:.0f}, y {bottom:.0f} to {top:.0f})"
    if info.coverage < min_coverage:
        raise AuxDataError(f"DEM {p} ({info.crs}) covers {100 * info.coverage:.1f} % of {where}; at least "
                           f"{100 * min_coverage:g} % is needed (is it the DEM of this place?)")  # fmt: skip
    if info.coverage < 1.0:
        _warn_partial(p, info.crs, info.coverage, where)
    return info


@functools.lru_cache(maxsize=16)
def _warn_partial(path: str, crs: str, coverage: float, where: str) -> None:
    # Once per process for a DEM and a grid: every stage of a run asks for the DEM again.
    log.warning("DEM %s (%s) covers %.1f %% of %s: elsewhere the tile is corrected as flat, at sea level",
                path, crs, 100 * coverage, where)  # fmt: skip


def open_dem(path: str | os.PathLike[str], geobox: GeoBox, chunks: tuple[tuple[int, ...], tuple[int, ...]],
             min_coverage: float = MIN_COVERAGE) -> tuple[da.Array, DemInfo]:  # fmt: skip
    """The DEM on ``geobox`` (lazy, metres, float32, NaN outside the DEM) and what to record about it.

    The DEM's coverage of the tile is checked first (:func:`dem_info`); it is then resampled
    bilinearly, chunk by chunk, when the array is computed.

    Raises
    ------
    AuxDataError
        As :func:`dem_info`; a read failure when the array is computed names the DEM and GDAL's reason.
    """
    p = str(path)
    info = dem_info(p, geobox, min_coverage)
    t = tuple(geobox.transform)
    name = "dem-" + tokenize(p, geobox.epsg, t, chunks)
    arr = da.map_blocks(_dem_block, p, geobox.epsg, t, chunks=chunks, dtype=np.float32, name=name,
                        meta=np.empty((0, 0), np.float32))  # fmt: skip
    return arr, info


def dem_on_grid(path: str | os.PathLike[str], geobox: GeoBox, chunks: tuple[tuple[int, ...], tuple[int, ...]],
                min_coverage: float = MIN_COVERAGE) -> da.Array:  # fmt: skip
    """:func:`open_dem` without the record: the lazy DEM only (its coverage is checked all the same)."""
    return open_dem(path, geobox, chunks, min_coverage)[0]

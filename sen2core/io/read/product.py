"""The lazy band reader of an opened Sentinel-2 product: band sources, DN, TOA reflectance, angles.

:class:`Product` is the metadata model (:class:`~sen2core.io.read.model.ProductModel`)
plus the methods that build dask arrays of its pixels. Products are opened by
:func:`sen2core.io.read.opening.open_product`, which chooses the layout adapter
(:mod:`sen2core.io.read.layouts`); this module does not know the layouts.

Missing optional metadata never makes opening fail: a documented fallback is used and
a warning is recorded in :attr:`Product.warnings` and emitted as
:class:`~sen2core.errors.MetadataWarning`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import dask.array as da
import numpy as np
from numpy.typing import NDArray

from sen2core.errors import BandReadError, InputProductError, MetadataError
from sen2core.io.read import bands as band_io
from sen2core.io.read.jp2_tiles import repeated_tiles
from sen2core.io.read.metadata import (
    GeoBox,
    MeanAngles,
    normalize_band,
)
from sen2core.io.read.model import BandFile, ProductModel
from sen2core.io.read.store import ProductStore
from sen2core.kernels.angles import circular_mean, fill_nan_nearest, merge_detector_grids, utm_to_lonlat
from sen2core.kernels.radiometry import block_mean, dn_to_reflectance, upsample_nearest
from sen2core.solar import solar_position

__all__ = ["Product"]

#: Last two bytes of a complete JPEG 2000 codestream (EOC marker).
_J2K_END = b"\xff\xd9"


def _cause(exc: BandReadError) -> str:
    """GDAL's own words for a header that could not be read (the library error around it names the file)."""
    return str(exc.__cause__ or exc.problem).strip()


def _size_problem(store: ProductStore, rel: str, actual: int, declared: int, link: str | None,
                  header: Callable[[], band_io.BandHeader]) -> str:  # fmt: skip
    """What a band file whose size differs from ``manifest.safe``'s really is.

    "Truncated" only when it is shorter and its JPEG 2000 codestream is cut; otherwise
    a link to something else, a file that is not a raster, or a complete raster of
    another size (not the file the product was delivered with).
    """
    sizes = f"{actual} bytes, manifest.safe says {declared}"
    try:
        header()
        unreadable = None
    except BandReadError as exc:
        unreadable = _cause(exc)
    if link is not None:
        what = f"which is not a readable raster ({unreadable})" if unreadable else "a raster of another size"
        return f"{rel} is a symbolic link to {link}, {what} ({sizes})"
    cut = None
    if rel.lower().endswith(".jp2"):
        try:
            cut = store.tail(rel, 2) != _J2K_END
        except OSError:
            cut = None
    if actual < declared and cut is not False:
        return f"{rel} is truncated ({sizes})"
    if unreadable:
        return f"{rel} is not a readable raster ({sizes}): {unreadable}"
    if cut:
        return f"{rel} is damaged: its JPEG 2000 codestream does not end as a complete one does ({sizes})"
    return f"{rel} is a complete raster of another size than the product lists: not the product's file ({sizes})"


@dataclass(frozen=True, eq=False)
class Product(ProductModel):
    """An opened Sentinel-2 Level-1C or Level-2A product: its metadata model plus the lazy band reader.

    Every method here builds dask arrays (or reads a band header); nothing is decoded
    until they are computed.
    """

    def _chunks(
        self, shape: tuple[int, int], resolution_m: float, chunks: int | tuple[int, int] | None
    ) -> band_io.Chunks:
        if chunks is None:
            cy = cx = self.chunk_pixels(resolution_m)
        elif isinstance(chunks, int):
            cy = cx = chunks
        else:
            cy, cx = chunks
        if cy < 1 or cx < 1:
            raise ValueError(f"chunks must be positive, got {chunks!r}")
        normalized = da.core.normalize_chunks((cy, cx), shape)
        return (tuple(normalized[0]), tuple(normalized[1]))

    # ------------------------------------------------------------------ pixels

    def band_source(self, band: str) -> band_io.BandSource:
        """A band's raster, opened once here and checked against the tile grid.

        Raises
        ------
        BandReadError
            If the raster is missing, cannot be opened, has another size than
            ``manifest.safe`` lists (the message says whether it is truncated, damaged or
            another file), or has a shape other than the tile grid.
        """
        b = normalize_band(band)
        bf = self.band_file(b)
        gb = self.geobox(bf.resolution)
        display = f"{self.store.display}/{bf.path}"
        declared = self.manifest.file_sizes.get(bf.path) if self.manifest is not None else None
        actual = self.store.size(bf.path)
        path = self.store.gdal_path(bf.path)
        link = self.store.link_target(bf.path)

        def header() -> band_io.BandHeader:
            return band_io.read_header(path, product=self.href, band=b, display=display, gdal_options=self.gdal_options)

        if declared is not None and actual is not None and actual != declared:
            try:
                head = header()
            except BandReadError:
                head = None
            if head is not None and head.shape != gb.shape:
                # A readable raster of another pixel size (a crop, another tile's band): its pixel
                # size is the clearer statement, whatever its byte size.
                raise BandReadError(self.href, self._shape_problem(b, bf, head.shape, gb.shape))
            problem = _size_problem(self.store, bf.path, actual, declared, link, header)
            raise BandReadError(self.href, f"band {b}: {problem}")
        try:
            head = header()
        except BandReadError as exc:
            if link is None:
                raise
            raise BandReadError(self.href, f"band {b}: {bf.path} is a symbolic link to {link}, which is not a "
                                           f"readable raster ({_cause(exc)})") from None  # fmt: skip
        if head.shape != gb.shape:
            raise BandReadError(self.href, self._shape_problem(b, bf, head.shape, gb.shape))
        return band_io.BandSource(path, self.href, b, display, dict(self.gdal_options), head.shape, head.block_rows)

    def band_source_with_quality(self, band: str) -> band_io.BandSource:
        """:meth:`band_source`, with the band's ``MSK_QUALIT`` mask when the product has one.

        Raises
        ------
        BandReadError
            As :meth:`band_source`; or the mask cannot be opened, has fewer than 8 layers
            or another size than the band.
        """
        src = self.band_source(band)
        rel = self.quality_mask_file(src.band)
        if rel is None:
            return src
        path, display = self.store.gdal_path(rel), f"{self.store.display}/{rel}"
        head = band_io.read_header(path, product=self.href, band=src.band, display=display,
                                gdal_options=self.gdal_options)  # fmt: skip
        layers = band_io.layer_count(path, product=self.href, display=display, gdal_options=self.gdal_options)
        if head.shape != src.shape or layers < 8:
            raise BandReadError(self.href, f"band {src.band}: quality mask {rel} is {head.shape[0]}x{head.shape[1]} "
                                           f"px with {layers} layer(s), the band {src.shape[0]}x{src.shape[1]} px "
                                           "(8 layers expected)")  # fmt: skip
        try:
            tiles = repeated_tiles(self.store.read_bytes(rel))
        except (MetadataError, OSError):
            # Too large for a mask, or unreadable as bytes: every tile decoded (the decode reports a bad file).
            tiles = None
        return replace(src, quality_path=path, quality_display=display, quality_tiles=tiles)

    def _shape_problem(self, band: str, bf: BandFile, shape: tuple[int, ...], grid: tuple[int, int]) -> str:
        """The message for a band raster whose pixel size is not the one the metadata declares."""
        source = "MTD_TL.xml" if self.tile_metadata is not None and self.tile_metadata.grids else "the tile metadata"
        return (
            f"band {band}: {bf.path} is {shape[0]}x{shape[1]} px, but {source} declares "
            f"{grid[0]}x{grid[1]} px at {bf.resolution} m: a crop or another file, not the band of this tile"
        )

    def read_dn(self, band: str, chunks: int | tuple[int, int] | None = None) -> da.Array:
        """Lazy digital numbers of a band at its native resolution.

        Parameters
        ----------
        band
            Band name (``"B04"``, ``"B8A"``; ``"B4"`` accepted).
        chunks
            Chunk edge in pixels (int or ``(rows, cols)``); default ``chunk_m`` metres.

        Returns
        -------
        dask.array.Array
            uint16, shape of :meth:`geobox` at :meth:`band_resolution`. Each chunk is one
            windowed read of the file, opened inside the task.

        Raises
        ------
        BandReadError
            See :meth:`band_source`. Decode failures surface as BandReadError when the
            array is computed.
        """
        src = self.band_source(band)
        return band_io.dn_array(
            src.path,
            chunks=self._chunks(src.shape, self.band_resolution(src.band), chunks),
            product=self.href,
            band=src.band,
            display=src.display,
            gdal_options=self.gdal_options,
        )

    def keep_dn(self, bands: Sequence[str], folder: str | os.PathLike[str],
                quality: bool = False) -> dict[str, da.Array]:  # fmt: skip
        """Decode ``bands`` now into files under ``folder`` (see :func:`sen2core.io.read.band_io.decode_to_files`).

        With ``quality``, each band is read with its ``MSK_QUALIT`` mask when the product
        has one (:meth:`band_source_with_quality`): lost MSI packets become no data (DN 0)
        and the saturated or defective pixels are recorded beside the band.

        Returns
        -------
        dict
            Band name to a lazy uint16 array on the same chunks as :meth:`read_dn`'s,
            read back from the files.

        Raises
        ------
        BandReadError
            As :meth:`read_dn`, raised here (the bands are decoded now).
        OutputError
            If the files cannot be written.
        """
        sources = {b: self.band_source_with_quality(b) if quality else self.band_source(b) for b in bands}
        chunks = {b: self._chunks(s.shape, self.band_resolution(b), None) for b, s in sources.items()}
        return band_io.decode_to_files(sources, chunks, folder)

    def kept_dn(self, bands: Sequence[str], folder: str | os.PathLike[str]) -> dict[str, da.Array]:
        """The bands :meth:`keep_dn` decoded into ``folder`` earlier (another task), read lazily.

        Raises
        ------
        OutputError
            If a band's file is missing or unreadable.
        """
        out = {}
        for b in bands:
            path = os.path.join(os.fspath(folder), f"{b}.npy")
            shape = band_io.kept_shape(path)
            out[b] = band_io.kept_array(path, self._chunks((shape[0], shape[1]), self.band_resolution(b), None))
        return out

    def toa(
        self,
        band: str,
        resolution_m: float | None = None,
        chunks: int | tuple[int, int] | None = None,
        dn: da.Array | None = None,
    ) -> da.Array:
        """Lazy top-of-atmosphere reflectance of a Level-1C band.

        ``rho = (DN + RADIO_ADD_OFFSET) / QUANTIFICATION_VALUE``; DN 0 gives NaN.

        Parameters
        ----------
        band
            Band name.
        resolution_m
            Output resolution; default the band's native one. Coarser: mean of the valid
            pixels of each block; finer: nearest neighbour. The ratio must be an integer.
        chunks
            Output chunk edge in pixels; default ``chunk_m`` metres, so that chunks align
            across resolutions.
        dn
            The band's digital numbers already read (:meth:`read_dn` with default chunks,
            possibly persisted): several resolutions of one band then share one decoding.

        Returns
        -------
        dask.array.Array
            float32 on :meth:`geobox` ``(resolution_m)``.

        Raises
        ------
        InputProductError
            If the product is Level-2A.
        BandReadError
            See :meth:`read_dn`.
        ValueError
            If the resolution ratio is not an integer.
        """
        if self.level != "L1C":
            raise InputProductError(
                self.href, f"{self.product_id} is a Level-2A product; TOA reflectance needs Level-1C"
            )
        b = normalize_band(band)
        native = self.band_resolution(b)
        target = float(native if resolution_m is None else resolution_m)
        offset = float(self.radiometry.add_offset.get(b, 0.0))
        quant = float(self.radiometry.quantification_value)
        nodata = int(self.radiometry.nodata)
        out_gb = self.geobox(target)
        out_chunks = self._chunks(out_gb.shape, target, chunks)
        cy, cx = out_chunks[0][0], out_chunks[1][0]

        def to_rho(chunks: tuple[int, int]) -> da.Array:
            if dn is not None:
                if dn.shape != self.geobox(native).shape:
                    raise ValueError(f"dn of {b} has shape {dn.shape}, not the {native} m grid")
                src = dn.rechunk(chunks)
            else:
                src = self.read_dn(b, chunks=chunks)
            rho: da.Array = da.map_blocks(
                dn_to_reflectance, src, offset, quant, nodata, dtype=np.float32, meta=np.empty((0, 0), dtype=np.float32)
            )
            return rho

        if math.isclose(target, native):
            return to_rho((cy, cx))
        if target > native:
            factor = _integer_ratio(target, native)
            rho = to_rho((cy * factor, cx * factor))
            coarse_chunks = tuple(tuple(-(-c // factor) for c in dim) for dim in rho.chunks)
            out: da.Array = da.map_blocks(
                block_mean, rho, factor, chunks=coarse_chunks, dtype=np.float32, meta=np.empty((0, 0), dtype=np.float32)
            )
        else:
            factor = _integer_ratio(native, target)
            ny = cy // factor if cy % factor == 0 else max(1, cy // factor)
            nx = cx // factor if cx % factor == 0 else max(1, cx // factor)
            rho = to_rho((ny, nx))
            fine_chunks = tuple(tuple(c * factor for c in dim) for dim in rho.chunks)
            out = da.map_blocks(
                upsample_nearest,
                rho,
                factor,
                chunks=fine_chunks,
                dtype=np.float32,
                meta=np.empty((0, 0), dtype=np.float32),
            )
        rows, cols = out_gb.shape
        if out.shape[0] < rows or out.shape[1] < cols:
            raise MetadataError(self.href, f"band {b} at {native} m does not cover the {target:g} m grid {rows}x{cols}")
        cropped: da.Array = out[:rows, :cols]
        return cropped

    def sun_angles(self, resolution_m: float, chunks: int | tuple[int, int] | None = None) -> tuple[da.Array, da.Array]:
        """Lazy per-pixel sun zenith and azimuth (degrees, float32).

        Bilinear interpolation of the 5 km ``Sun_Angles_Grid`` at each pixel centre
        (azimuth through sine and cosine; NaN nodes filled from the nearest valid
        node). Without a grid, the solar position at each pixel centre's latitude and
        longitude at the sensing time (NOAA algorithm, geometric, no refraction).

        Raises
        ------
        MetadataError
            If there is no grid and no sensing time, or no tile geocoding.
        """
        gb = self.geobox(resolution_m)
        ch = self._chunks(gb.shape, gb.resolution, chunks)
        tm = self.tile_metadata
        if tm is not None and tm.sun_grid is not None:
            g = tm.sun_grid
            x_off, y_off = self._grid_offsets(gb)
            return band_io.angle_field(
                fill_nan_nearest(g.zenith),
                fill_nan_nearest(g.azimuth),
                row_step=g.row_step,
                col_step=g.col_step,
                pixel=gb.resolution,
                x_off=x_off,
                y_off=y_off,
                chunks=ch,
                label="sun",
                owner=self.href,
            )
        if self.sensing_time is None:
            raise MetadataError(self.href, "no sun angle grid and no sensing time: sun angles unknown")
        return band_io.solar_field(
            self.sensing_time, epsg=gb.epsg, transform=tuple(gb.transform)[:6], chunks=ch, owner=self.href
        )

    def view_angles(
        self, band: str, resolution_m: float, chunks: int | tuple[int, int] | None = None
    ) -> tuple[da.Array, da.Array]:
        """Lazy per-pixel viewing zenith and azimuth of a band (degrees, float32).

        The band's per-detector 5 km grids are merged (mean where detectors overlap,
        azimuth as a direction), gaps filled from the nearest valid node, then
        interpolated bilinearly at pixel centres. Without grids for the band: the
        band's mean viewing angles when the metadata has them, else nadir (0, 0).
        """
        b = normalize_band(band)
        gb = self.geobox(resolution_m)
        ch = self._chunks(gb.shape, gb.resolution, chunks)
        merged = self._merged_view_grid(b)
        if merged is not None:
            zen, az, row_step, col_step, _ = merged
            x_off, y_off = self._grid_offsets(gb)
            return band_io.angle_field(
                zen,
                az,
                row_step=row_step,
                col_step=col_step,
                pixel=gb.resolution,
                x_off=x_off,
                y_off=y_off,
                chunks=ch,
                label=f"view-{b}",
                owner=self.href,
            )
        mean = self._metadata_mean_view(b)
        if mean is not None:
            return band_io.constant_field(mean.zenith, mean.azimuth, chunks=ch)
        return band_io.constant_field(0.0, 0.0, chunks=ch)

    def _grid_offsets(self, gb: GeoBox) -> tuple[float, float]:
        # Angle grid node (0, 0) is the tile's upper-left corner, the common corner of
        # all resolutions; offsets are only non-zero for a grid not starting there.
        ref = self.grids[min(self.grids)]
        return float(gb.transform.c - ref.ulx), float(ref.uly - gb.transform.f)

    def _merged_view_grid(self, band: str) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray] | None:
        """Merged, gap-filled view grid of a band, its steps, and the mask of nodes some
        detector actually covers."""
        tm = self.tile_metadata
        if tm is None or band not in tm.view_grids:
            return None
        grids = [g for _, g in tm.view_grids[band]]
        first = grids[0]
        # Detectors of one band share the grid geometry; an odd one out cannot be merged.
        same = [
            g for g in grids if g.shape == first.shape and g.row_step == first.row_step and g.col_step == first.col_step
        ]
        zs = np.stack([g.zenith for g in same])
        azs = np.stack([g.azimuth for g in same])
        covered: NDArray[np.bool_] = np.asarray((np.isfinite(zs) & np.isfinite(azs)).any(axis=0), dtype=bool)
        if not covered.any():
            return None
        zen, az = merge_detector_grids(zs, azs)
        return zen, az, first.row_step, first.col_step, covered

    def _metadata_mean_view(self, band: str) -> MeanAngles | None:
        tm = self.tile_metadata
        if tm is None:
            return None
        m = tm.mean_view.get(band)
        return m if m is not None and m.finite else None

    # ------------------------------------------------------------------ summaries

    def mean_sun_angles(self) -> MeanAngles | None:
        """Mean sun zenith/azimuth: ``Mean_Sun_Angle``, else the mean of the sun grid,
        else the solar position averaged over the tile's 5 km nodes; None if unknown."""
        tm = self.tile_metadata
        if tm is not None and tm.mean_sun is not None and tm.mean_sun.finite:
            return tm.mean_sun
        if tm is not None and tm.sun_grid is not None:
            return MeanAngles(float(np.nanmean(tm.sun_grid.zenith)), float(circular_mean(tm.sun_grid.azimuth)))
        if self.sensing_time is None or self.epsg is None or not self.grids:
            return None
        gb = self.geobox(min(self.grids))
        step = 5000.0
        width_m, height_m = gb.width * gb.resolution, gb.height * gb.resolution
        xs = gb.transform.c + np.arange(0.0, width_m + 1.0, step)
        ys = gb.transform.f - np.arange(0.0, height_m + 1.0, step)
        xx, yy = np.meshgrid(xs, ys)
        lon, lat = _to_lonlat(xx, yy, gb.epsg)
        zen, az = solar_position(self.sensing_time, lat, lon)
        return MeanAngles(float(zen.mean()), float(circular_mean(az)))

    def mean_view_angles(self, band: str) -> MeanAngles | None:
        """Mean viewing zenith/azimuth of a band: ``Mean_Viewing_Incidence_Angle``, else
        the mean of its merged grid, else nadir when the product has no viewing grids."""
        b = normalize_band(band)
        m = self._metadata_mean_view(b)
        if m is not None:
            return m
        merged = self._merged_view_grid(b)
        if merged is not None:
            zen, az, _, _, covered = merged
            return MeanAngles(float(np.mean(zen[covered])), float(circular_mean(az[covered])))
        tm = self.tile_metadata
        if tm is None or not tm.view_grids:
            return MeanAngles(0.0, 0.0)
        return None


def _integer_ratio(coarse: float, fine: float) -> int:
    ratio = coarse / fine
    if not math.isclose(ratio, round(ratio), rel_tol=1e-9) or round(ratio) < 1:
        raise ValueError(f"resolution {coarse:g} m is not an integer multiple of {fine:g} m")
    return round(ratio)


def _to_lonlat(x: np.ndarray, y: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
        return utm_to_lonlat(x, y, epsg % 100, south=epsg > 32700)
    import rasterio
    from rasterio.warp import transform as warp_transform

    with rasterio.Env():
        lo, la = warp_transform(f"EPSG:{epsg}", "EPSG:4326", x.ravel().tolist(), y.ravel().tolist())
    return np.asarray(lo).reshape(x.shape), np.asarray(la).reshape(x.shape)

"""The metadata model of an opened Sentinel-2 product: identity, grids, band files, radiometry.

:class:`ProductModel` holds what the metadata files say and answers questions about it
(pixel grids, band resolutions, where a band's file is) without reading any pixel. The
lazy band reader, :class:`sen2core.io.read.product.Product`, extends it; layout adapters
(:mod:`sen2core.io.read.layouts`) build it.
"""

from __future__ import annotations

import datetime as _dt
import math
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from affine import Affine

from sen2core.errors import BandReadError, MetadataError
from sen2core.io.read.metadata import (
    BAND_IDS,
    NOMINAL_RESOLUTION,
    GeoBox,
    Level,
    ManifestMetadata,
    Radiometry,
    ResolutionGrid,
    TileInfo,
    TileMetadata,
    UserProductMetadata,
    normalize_band,
)
from sen2core.io.read.store import ProductStore

__all__ = [
    "ANGLE_FALLBACK_WARNING",
    "DEFAULT_CHUNK_M",
    "DEFAULT_GDAL_OPTIONS",
    "BandFile",
    "Layout",
    "ProductModel",
    "granule_tiles",
]

DEFAULT_CHUNK_M = 18300.0
"""Default chunk edge in metres: 1830 px at 10 m = 915 at 20 m = 305 at 60 m."""

ANGLE_FALLBACK_WARNING = "no angle grids: sun angles computed from sensing time and footprint, view assumed nadir"
"""Warning recorded when a product has neither sun nor viewing angle grids."""

DEFAULT_GDAL_OPTIONS: Mapping[str, str] = MappingProxyType({"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"})
"""GDAL options set inside every read: no directory listing on open (SAFE folders are
large and /vsizip/ listings are slow), nothing else changed from GDAL's defaults."""

Layout = Literal["SAFE", "SAFE.zip", "AWS"]
"""How a product is stored: SAFE directory, SAFE zip archive, or AWS tile folder."""


@dataclass(frozen=True)
class BandFile:
    """Where a band's raster lives inside a product."""

    band: str
    """Band name (``"B8A"``)."""
    path: str
    """POSIX path relative to the product root."""
    resolution: int
    """Native pixel size of the file in metres."""


@dataclass(frozen=True, eq=False)
class ProductModel:
    """What the metadata of an opened Sentinel-2 Level-1C or Level-2A product says.

    Layout adapters (:mod:`sen2core.io.read.layouts`) fill it; :class:`~sen2core.io.read.product.Product`
    adds the lazy band reader on top.
    """

    href: str
    """The reference the product was opened from (used in messages)."""
    layout: Layout
    """``SAFE`` (directory), ``SAFE.zip`` (archive read in place) or ``AWS`` (tile folder)."""
    product_id: str
    """Product identifier (``S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234``)."""
    level: Level
    """``L1C`` or ``L2A``."""
    product_type: str | None
    """``S2MSI1C``, ``S2MSI2A``... when known."""
    spacecraft: str | None
    """``Sentinel-2A``, ``Sentinel-2B``... when known."""
    sensing_time: _dt.datetime | None
    """Tile sensing time (UTC): ``MTD_TL`` ``SENSING_TIME``, else datatake start, else
    product start, else the AWS ``timestamp``."""
    processing_baseline: str | None
    """``"05.09"``."""
    tile_id: str | None
    """MGRS tile (``"34UCF"``)."""
    epsg: int | None
    """EPSG code of the tile's UTM CRS."""
    grids: Mapping[int, ResolutionGrid]
    """Pixel grids per resolution (m) from the tile geocoding (or band headers)."""
    band_files: Mapping[str, BandFile]
    """Band rasters that exist in the product."""
    missing_bands: Mapping[str, str]
    """Bands expected but not found, with the path that was looked for."""
    radiometry: Radiometry
    """Resolved radiometric constants."""
    user_metadata: UserProductMetadata | None
    """Parsed ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``."""
    tile_metadata: TileMetadata | None
    """Parsed ``MTD_TL.xml``."""
    manifest: ManifestMetadata | None
    """Parsed ``manifest.safe``."""
    tile_info: TileInfo | None
    """Parsed AWS ``tileInfo.json``."""
    warnings: tuple[str, ...]
    """Fallbacks used while opening (missing optional metadata)."""
    store: ProductStore = field(repr=False)
    """File access (directory or zip archive)."""
    chunk_m: float = DEFAULT_CHUNK_M
    """Default chunk edge in metres for the lazy arrays."""
    gdal_options: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_GDAL_OPTIONS))
    """GDAL configuration options set with ``rasterio.Env`` inside each read."""

    def __post_init__(self) -> None:
        for name in ("grids", "band_files", "missing_bands", "gdal_options"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def __dask_tokenize__(self) -> object:
        # The tile too: the granules of an old multi-granule product share href and id.
        return ("sen2core.Product", self.href, self.product_id, self.tile_id, self.chunk_m)

    # ------------------------------------------------------------------ metadata

    @property
    def bands(self) -> tuple[str, ...]:
        """Bands whose raster exists, in band order."""
        return tuple(b for b in BAND_IDS if b in self.band_files)

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Resolutions (m) with a pixel grid in the metadata."""
        return tuple(sorted(self.grids))

    @property
    def has_sun_grid(self) -> bool:
        """True when the tile metadata has a usable sun angle grid."""
        return self.tile_metadata is not None and self.tile_metadata.sun_grid is not None

    def band_resolution(self, band: str) -> int:
        """Native pixel size (m) of a band: from its file, else the metadata, else nominal."""
        b = normalize_band(band)
        if b in self.band_files:
            return self.band_files[b].resolution
        if self.user_metadata is not None and b in self.user_metadata.band_resolution:
            return self.user_metadata.band_resolution[b]
        return NOMINAL_RESOLUTION[b]

    def geobox(self, resolution_m: float) -> GeoBox:
        """Pixel grid of the tile at a resolution.

        Resolutions of the metadata (10, 20, 60 m; 900 m for the coarse AWS sample) come
        from the tile geocoding; others are derived from the tile extent of the finest
        grid (e.g. 120 m gives 915 x 915 px).

        Raises
        ------
        MetadataError
            If the product has no tile geocoding or no CRS.
        ValueError
            If ``resolution_m`` is not positive.
        """
        if not resolution_m or resolution_m <= 0:
            raise ValueError(f"resolution must be positive, got {resolution_m!r}")
        if self.epsg is None or not self.grids:
            raise MetadataError(self.href, "no tile geocoding (MTD_TL.xml Tile_Geocoding): pixel grid unknown")
        key = int(resolution_m) if float(resolution_m).is_integer() else None
        if key is not None and key in self.grids:
            return self.grids[key].geobox(self.epsg)
        ref = self.grids[min(self.grids)]
        width_m = ref.ncols * ref.xdim
        height_m = ref.nrows * -ref.ydim
        res = float(resolution_m)
        cols, rows = _pixel_count(width_m, res), _pixel_count(height_m, res)
        return GeoBox(epsg=self.epsg, transform=Affine(res, 0.0, ref.ulx, 0.0, -res, ref.uly), shape=(rows, cols))

    def chunk_pixels(self, resolution_m: float) -> int:
        """Default chunk edge in pixels at a resolution (``chunk_m / resolution``, at least 1)."""
        return max(1, math.floor(self.chunk_m / resolution_m + 1e-9))

    def band_href(self, band: str) -> str:
        """GDAL path of a band raster (a ``/vsizip/`` path for archives).

        Raises
        ------
        BandReadError
            If the band has no raster in the product.
        """
        return self.store.gdal_path(self.band_file(normalize_band(band)).path)

    def band_file(self, band: str) -> BandFile:
        """Where a band's raster lives.

        Raises
        ------
        BandReadError
            If the band has no raster in the product.
        """
        if band in self.band_files:
            return self.band_files[band]
        where = self.missing_bands.get(band)
        detail = f" (expected {where})" if where else ""
        raise BandReadError(self.href, f"band {band}: raster file not found in {self.product_id}{detail}")

    def granule_dir(self) -> str | None:
        """The SAFE granule folder (``GRANULE/L1C_...``) the bands sit in, or None (another layout)."""
        for bf in self.band_files.values():
            parent = posixpath.dirname(bf.path)
            if posixpath.basename(parent) == "IMG_DATA":
                return posixpath.dirname(parent)
        return None

    def quality_mask_file(self, band: str) -> str | None:
        """``QI_DATA/MSK_QUALIT_{band}.jp2`` of the granule (processing baseline 04.00 and later), or None."""
        granule = self.granule_dir()
        rel = f"{granule}/QI_DATA/MSK_QUALIT_{normalize_band(band)}.jp2" if granule is not None else None
        return rel if rel is not None and self.store.exists(rel) else None

    def cloud_mask_file(self) -> str | None:
        """ESA's L1C cloud mask ``QI_DATA/MSK_CLASSI_B00.jp2`` (baseline 04.00 and later), or None."""
        granule = self.granule_dir()
        rel = f"{granule}/QI_DATA/MSK_CLASSI_B00.jp2" if granule is not None else None
        return rel if rel is not None and self.store.exists(rel) else None

    def legacy_quality_masks(self) -> tuple[str, ...]:
        """The GML pixel masks of products made before baseline 04.00 (``MSK_SATURA``, ``MSK_DEFECT``,
        ``MSK_NODATA``...): listed, not read."""
        granule = self.granule_dir()
        return tuple(self.store.glob(f"{granule}/QI_DATA/MSK_*.gml")) if granule is not None else ()


def _pixel_count(extent_m: float, res: float) -> int:
    # Exact multiples (109800 m / 60 m) must not become 1831 through rounding noise.
    n = extent_m / res
    return round(n) if math.isclose(n, round(n)) else math.ceil(n)


_GRANULE_TILE_RE = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)")


def granule_tiles(product: ProductModel) -> tuple[str, ...]:
    """MGRS tiles of the product's granules, in metadata order (several only in products made before
    December 2016, which held every granule of a datatake segment)."""
    ids = product.user_metadata.granule_ids if product.user_metadata is not None else ()
    tiles: list[str] = []
    for gid in ids:
        m = _GRANULE_TILE_RE.search(gid)
        if m and m.group(1) not in tiles:
            tiles.append(m.group(1))
    return tuple(tiles)

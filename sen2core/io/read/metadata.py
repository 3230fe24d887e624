"""Value objects for Sentinel-2 product metadata.

Frozen dataclasses, one per metadata file (user product ``MTD_MSIL1C.xml`` /
``MTD_MSIL2A.xml``, tile ``MTD_TL.xml``, ``manifest.safe``, AWS ``tileInfo.json``),
plus the resolved radiometry and pixel grid (:class:`GeoBox`) of a product. Parsers
never raise for a missing *optional* element: they record a human-readable warning in
the ``warnings`` attribute instead.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from affine import Affine
from numpy.typing import NDArray

__all__ = [
    "BAND_IDS",
    "NOMINAL_RESOLUTION",
    "NOMINAL_SOLAR_IRRADIANCE",
    "AngleGrid",
    "GeoBox",
    "Level",
    "ManifestMetadata",
    "MeanAngles",
    "Radiometry",
    "ResolutionGrid",
    "TileInfo",
    "TileMetadata",
    "UserProductMetadata",
    "band_from_index",
    "normalize_band",
]

Level = Literal["L1C", "L2A"]
"""Processing level of a product."""

BAND_IDS: tuple[str, ...] = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
"""The 13 MSI bands in ``bandId`` order (``bandId="8"`` is B8A)."""

NOMINAL_RESOLUTION: Mapping[str, int] = MappingProxyType(
    {
        "B01": 60,
        "B02": 10,
        "B03": 10,
        "B04": 10,
        "B05": 20,
        "B06": 20,
        "B07": 20,
        "B08": 10,
        "B8A": 20,
        "B09": 60,
        "B10": 60,
        "B11": 20,
        "B12": 20,
    }
)
"""Native pixel size (m) of each band in SAFE products."""

# Values written by ESA in the MTD_MSIL1C.xml of each spacecraft (W m-2 um-1), used only
# when a product's own Solar_Irradiance_List is absent (AWS tile folders without metadata).
NOMINAL_SOLAR_IRRADIANCE: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "Sentinel-2A": MappingProxyType(
            dict(
                zip(
                    BAND_IDS,
                    (
                        1884.69,
                        1959.66,
                        1823.24,
                        1512.06,
                        1424.64,
                        1287.61,
                        1162.08,
                        1041.63,
                        955.32,
                        812.92,
                        367.15,
                        245.59,
                        85.25,
                    ),
                    strict=True,
                )
            )
        ),
        "Sentinel-2B": MappingProxyType(
            dict(
                zip(
                    BAND_IDS,
                    (
                        1874.30,
                        1959.75,
                        1824.93,
                        1512.79,
                        1425.78,
                        1291.13,
                        1175.57,
                        1041.28,
                        953.93,
                        817.58,
                        365.41,
                        247.08,
                        87.75,
                    ),
                    strict=True,
                )
            )
        ),
    }
)
"""Nominal solar irradiance per spacecraft and band (W m-2 um-1)."""


def band_from_index(index: int | str) -> str:
    """Band name of a metadata ``bandId`` (0..12).

    Raises
    ------
    ValueError
        If the index is out of range or not an integer.
    """
    i = int(index)
    if not 0 <= i < len(BAND_IDS):
        raise ValueError(f"bandId {index!r} out of range 0..12")
    return BAND_IDS[i]


def normalize_band(name: str) -> str:
    """Canonical band name: ``"B1"``, ``"b01"``, ``"B8a"`` give ``"B01"``, ``"B01"``, ``"B8A"``.

    Raises
    ------
    ValueError
        If ``name`` is not a Sentinel-2 band.
    """
    n = name.strip().upper()
    if n.startswith("B") and n[1:].isdigit():
        n = f"B{int(n[1:]):02d}"
    if n not in BAND_IDS:
        raise ValueError(f"{name!r} is not a Sentinel-2 band (expected one of {', '.join(BAND_IDS)})")
    return n


def _frozen_map(m: Mapping[Any, Any] | None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class GeoBox:
    """A north-up pixel grid: CRS, affine transform and shape."""

    epsg: int
    """EPSG code of the CRS (326zz / 327zz for Sentinel-2 UTM tiles)."""
    transform: Affine
    """Pixel-corner affine transform (``c``, ``f`` = upper-left corner)."""
    shape: tuple[int, int]
    """``(rows, cols)``."""

    @property
    def crs(self) -> str:
        """CRS as an ``"EPSG:nnnnn"`` string (accepted by rasterio and pyproj)."""
        return f"EPSG:{self.epsg}"

    @property
    def resolution(self) -> float:
        """Pixel size in metres."""
        return float(self.transform.a)

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.shape[1]

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.shape[0]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units."""
        left, top = self.transform.c, self.transform.f
        right = left + self.transform.a * self.shape[1]
        bottom = top + self.transform.e * self.shape[0]
        return (float(left), float(bottom), float(right), float(top))

    def __dask_tokenize__(self) -> object:
        return ("GeoBox", self.epsg, tuple(self.transform)[:6], self.shape)


@dataclass(frozen=True)
class ResolutionGrid:
    """``Tile_Geocoding`` ``Size`` and ``Geoposition`` of one resolution."""

    resolution: int
    """Pixel size in metres (the ``resolution`` attribute)."""
    nrows: int
    """``NROWS``."""
    ncols: int
    """``NCOLS``."""
    ulx: float
    """``ULX``: easting of the upper-left pixel corner."""
    uly: float
    """``ULY``: northing of the upper-left pixel corner."""
    xdim: float
    """``XDIM`` (positive)."""
    ydim: float
    """``YDIM`` (negative: rows go south)."""

    def geobox(self, epsg: int) -> GeoBox:
        """The :class:`GeoBox` of this grid in CRS ``epsg``."""
        return GeoBox(
            epsg=epsg,
            transform=Affine(self.xdim, 0.0, self.ulx, 0.0, self.ydim, self.uly),
            shape=(self.nrows, self.ncols),
        )


@dataclass(frozen=True, eq=False)
class AngleGrid:
    """A zenith/azimuth grid pair on a regular step (``Sun_Angles_Grid`` or one detector's
    ``Viewing_Incidence_Angles_Grids``). Node (0, 0) is the tile's upper-left corner."""

    zenith: NDArray[np.float64]
    """Zenith angles (degrees), shape ``(rows, cols)``; NaN where undefined. Read-only."""
    azimuth: NDArray[np.float64]
    """Azimuth angles (degrees clockwise from north), same shape; NaN where undefined. Read-only."""
    row_step: float
    """``ROW_STEP`` in metres (5000)."""
    col_step: float
    """``COL_STEP`` in metres (5000)."""

    def __post_init__(self) -> None:
        self.zenith.setflags(write=False)
        self.azimuth.setflags(write=False)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid."""
        return (int(self.zenith.shape[0]), int(self.zenith.shape[1]))

    def __dask_tokenize__(self) -> object:
        return ("AngleGrid", self.zenith.tobytes(), self.azimuth.tobytes(), self.shape, self.row_step, self.col_step)


@dataclass(frozen=True)
class MeanAngles:
    """A mean zenith/azimuth pair (``Mean_Sun_Angle`` or ``Mean_Viewing_Incidence_Angle``)."""

    zenith: float
    """Zenith (degrees); may be NaN when the metadata says so."""
    azimuth: float
    """Azimuth (degrees clockwise from north); may be NaN."""

    @property
    def finite(self) -> bool:
        """True when both angles are finite numbers."""
        return math.isfinite(self.zenith) and math.isfinite(self.azimuth)


@dataclass(frozen=True, eq=False)
class TileMetadata:
    """Parsed tile metadata (``MTD_TL.xml``, or ``metadata.xml`` of an AWS tile folder)."""

    source: str
    """Where it was read from (for messages)."""
    level: Level | None
    """From the root element (``Level-1C_Tile_ID`` / ``Level-2A_Tile_ID``)."""
    tile_id: str | None
    """``TILE_ID`` (granule identifier)."""
    datastrip_id: str | None
    """``DATASTRIP_ID``."""
    l1c_tile_id: str | None
    """``L1C_TILE_ID`` (L2A only)."""
    sensing_time: _dt.datetime | None
    """``SENSING_TIME`` (UTC)."""
    epsg: int | None
    """From ``HORIZONTAL_CS_CODE``."""
    cs_name: str | None
    """``HORIZONTAL_CS_NAME``."""
    grids: Mapping[int, ResolutionGrid]
    """``Tile_Geocoding`` per resolution (m)."""
    sun_grid: AngleGrid | None
    """``Sun_Angles_Grid``; None when absent, empty or unusable."""
    view_grids: Mapping[str, tuple[tuple[int, AngleGrid], ...]]
    """Per band, ``(detectorId, grid)`` pairs of ``Viewing_Incidence_Angles_Grids``."""
    mean_sun: MeanAngles | None
    """``Mean_Sun_Angle``."""
    mean_view: Mapping[str, MeanAngles]
    """``Mean_Viewing_Incidence_Angle`` per band."""
    warnings: tuple[str, ...] = ()
    """Optional parts that were missing or unusable."""

    def __post_init__(self) -> None:
        for name in ("grids", "view_grids", "mean_view"):
            object.__setattr__(self, name, _frozen_map(getattr(self, name)))

    def __dask_tokenize__(self) -> object:
        return ("TileMetadata", self.source, self.tile_id, self.sensing_time)


@dataclass(frozen=True)
class UserProductMetadata:
    """Parsed user-product metadata (``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``)."""

    source: str
    """Where it was read from (for messages)."""
    level: Level
    """``L1C`` or ``L2A``."""
    product_uri: str | None
    """``PRODUCT_URI`` (``PRODUCT_URI_2A`` in the oldest L2A layout), with ``.SAFE``."""
    product_type: str | None
    """``PRODUCT_TYPE`` (``S2MSI1C``, ``S2MSI2A``, ``S2MSI2Ap``)."""
    processing_baseline: str | None
    """``PROCESSING_BASELINE`` (``"05.09"``)."""
    spacecraft: str | None
    """``SPACECRAFT_NAME`` (``"Sentinel-2A"``)."""
    product_start_time: _dt.datetime | None
    """``PRODUCT_START_TIME``."""
    datatake_sensing_start: _dt.datetime | None
    """``DATATAKE_SENSING_START``."""
    generation_time: _dt.datetime | None
    """``GENERATION_TIME``."""
    quantification_value: float | None
    """L1C ``QUANTIFICATION_VALUE`` (TOA)."""
    boa_quantification_value: float | None
    """L2A ``BOA_QUANTIFICATION_VALUE``."""
    aot_quantification_value: float | None
    """L2A ``AOT_QUANTIFICATION_VALUE``."""
    wvp_quantification_value: float | None
    """L2A ``WVP_QUANTIFICATION_VALUE``."""
    radio_add_offset: Mapping[str, float]
    """L1C ``RADIO_ADD_OFFSET`` per band (empty before baseline 04.00)."""
    boa_add_offset: Mapping[str, float]
    """L2A ``BOA_ADD_OFFSET`` per band (empty before baseline 04.00)."""
    u: float | None
    """``Reflectance_Conversion/U``."""
    solar_irradiance: Mapping[str, float]
    """``SOLAR_IRRADIANCE`` per band (W m-2 um-1)."""
    band_resolution: Mapping[str, int]
    """``Spectral_Information/RESOLUTION`` per band (m)."""
    central_wavelength: Mapping[str, float]
    """``Spectral_Information/Wavelength/CENTRAL`` per band (nm)."""
    nodata_value: int | None
    """``Special_Values`` NODATA index."""
    saturated_value: int | None
    """``Special_Values`` SATURATED index."""
    image_files: tuple[str, ...]
    """``IMAGE_FILE`` / ``IMAGE_FILE_2A`` entries (relative, without extension)."""
    image_format: str | None
    """``Granule/@imageFormat`` (``JPEG2000``)."""
    granule_ids: tuple[str, ...]
    """``Granule/@granuleIdentifier`` values."""
    datastrip_ids: tuple[str, ...]
    """``Granule/@datastripIdentifier`` values."""
    warnings: tuple[str, ...] = ()
    """Optional parts that were missing or unusable."""

    def __post_init__(self) -> None:
        for name in ("radio_add_offset", "boa_add_offset", "solar_irradiance", "band_resolution", "central_wavelength"):
            object.__setattr__(self, name, _frozen_map(getattr(self, name)))

    def __dask_tokenize__(self) -> object:
        return ("UserProductMetadata", self.source, self.product_uri)


@dataclass(frozen=True)
class ManifestMetadata:
    """Parsed ``manifest.safe``."""

    source: str
    """Where it was read from (for messages)."""
    level: Level | None
    """From the product ``unitType`` (``Product_Level-1C``) or the XFDU ``version``."""
    spacecraft: str | None
    """``safe:platform`` family name and number (``"Sentinel-2A"``)."""
    start_time: _dt.datetime | None
    """``safe:acquisitionPeriod/safe:startTime``."""
    file_sizes: Mapping[str, int | None] = field(default_factory=dict)
    """Relative path (no leading ``./``) of every ``fileLocation`` and its ``byteStream`` size."""
    checksums: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Relative path to ``(algorithm, lower-case hex digest)`` of every ``byteStream`` with a
    ``checksum`` (``SHA3-256`` from processing baseline 03.00, ``MD5`` before)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "file_sizes", _frozen_map(self.file_sizes))
        object.__setattr__(self, "checksums", _frozen_map(self.checksums))


@dataclass(frozen=True)
class TileInfo:
    """Parsed AWS ``tileInfo.json`` (``sentinel-s2-l1c`` / ``-l2a`` tile folders)."""

    source: str
    """Where it was read from (for messages)."""
    path: str | None
    """``path`` of the tile folder in the bucket."""
    timestamp: _dt.datetime | None
    """``timestamp``: tile sensing time (UTC)."""
    utm_zone: int | None
    """``utmZone``."""
    latitude_band: str | None
    """``latitudeBand``."""
    grid_square: str | None
    """``gridSquare``."""
    datastrip_id: str | None
    """``datastrip.id``."""
    product_name: str | None
    """``productName``."""
    epsg: int | None
    """From the ``tileGeometry`` (or ``tileOrigin``) CRS name."""
    origin: tuple[float, float] | None
    """``tileOrigin`` coordinates (upper-left corner)."""
    bounds: tuple[float, float, float, float] | None
    """``(left, bottom, right, top)`` of ``tileGeometry``."""
    data_coverage_percentage: float | None = None
    """``dataCoveragePercentage`` when given."""

    @property
    def tile_id(self) -> str | None:
        """MGRS tile (``"19UDP"``), or None if a part is missing."""
        if self.utm_zone is None or not self.latitude_band or not self.grid_square:
            return None
        return f"{self.utm_zone:02d}{self.latitude_band}{self.grid_square}"


@dataclass(frozen=True)
class Radiometry:
    """Resolved radiometric constants of a product (metadata values or documented defaults)."""

    quantification_value: float
    """L1C TOA ``QUANTIFICATION_VALUE``; for L2A the ``BOA_QUANTIFICATION_VALUE``."""
    add_offset: Mapping[str, float]
    """Per band offset added to DN before dividing: ``RADIO_ADD_OFFSET`` (L1C) or
    ``BOA_ADD_OFFSET`` (L2A)."""
    u: float
    """Earth-Sun distance correction ``U``."""
    solar_irradiance: Mapping[str, float]
    """Per band solar irradiance (W m-2 um-1)."""
    aot_quantification_value: float | None = None
    """L2A only."""
    wvp_quantification_value: float | None = None
    """L2A only."""
    nodata: int = 0
    """No-data digital number."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "add_offset", _frozen_map(self.add_offset))
        object.__setattr__(self, "solar_irradiance", _frozen_map(self.solar_irradiance))

    def __dask_tokenize__(self) -> object:
        return (
            "Radiometry",
            self.quantification_value,
            tuple(sorted(self.add_offset.items())),
            self.u,
            tuple(sorted(self.solar_irradiance.items())),
            self.nodata,
        )

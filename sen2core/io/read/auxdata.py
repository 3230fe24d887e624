"""The auxiliary data a Level-1C carries: CAMS aerosol and ECMWF meteorology (GRIB).

Since processing baseline 04.00 every granule holds two GRIB files in ``AUX_DATA/``,
forecasts on a small latitude/longitude grid (about 9 x 9 points) over the tile:

``AUX_CAMSFO``
    CAMS forecast aerosol optical depths, ECMWF GRIB 1 local table 210: total AOD at
    550 nm (parameter 207), at 469, 670, 865 and 1240 nm (213-216) and per species at
    550 nm (sea salt 208, dust 209, organic matter 210, black carbon 211, sulphate 212).
``AUX_ECMWFT``
    ECMWF forecast: total column water vapour (kg m-2 = mm), mean sea-level pressure (Pa),
    total column ozone (kg m-2; 1 DU = 2.1415e-5 kg m-2), wind and humidity (not read).

One parser per file kind (:func:`read_cams`, :func:`read_ecmwf`) returns the fields on
their own grid (:class:`GribFields`); :func:`auxiliary_on_tile` reads a product's files
and interpolates them bilinearly onto a node grid over the tile
(:class:`AuxiliaryData`, small plain values for the kernels).

GDAL cannot write GRIB 1: files sen2core writes (the synthetic generator,
:func:`write_grib`) are GRIB 2 with ECMWF's convention for parameters that have no WMO
GRIB 2 code, discipline 192, category = the GRIB 1 table, number = the GRIB 1
parameter (so table 210 parameter 207 is 192/210/207). The readers accept both.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from numpy.typing import NDArray
from rasterio.io import MemoryFile
from rasterio.warp import transform as warp_transform

from sen2core.errors import AuxDataError
from sen2core.io.read.store import ProductStore
from sen2core.kernels.interp import multilinear

if TYPE_CHECKING:
    from sen2core.io.read.product import Product

__all__ = [
    "CAMS_FILE",
    "CAMS_PARAMETERS",
    "DU_KG_M2",
    "ECMWF_FILE",
    "ECMWF_PARAMETERS",
    "AuxiliaryData",
    "GribFields",
    "auxiliary_on_tile",
    "find_auxiliary_files",
    "read_cams",
    "read_ecmwf",
    "read_product_auxiliary",
    "write_grib",
]

CAMS_FILE = "AUX_CAMSFO"
ECMWF_FILE = "AUX_ECMWFT"
#: Kilograms of ozone per square metre in one Dobson unit.
DU_KG_M2 = 2.1415e-5
#: CAMS fields read: name -> (GRIB 1 table, parameter).
CAMS_PARAMETERS: Mapping[str, tuple[int, int]] = MappingProxyType({
    "aod550": (210, 207), "aod469": (210, 213), "aod670": (210, 214), "aod865": (210, 215), "aod1240": (210, 216),
    "sea_salt": (210, 208), "dust": (210, 209), "organic_matter": (210, 210), "black_carbon": (210, 211),
    "sulphate": (210, 212),
})  # fmt: skip
#: ECMWF fields read: name -> (GRIB 1 table, parameter); units kg m-2, Pa, kg m-2.
ECMWF_PARAMETERS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"tcwv": (128, 137), "msl": (128, 151), "tco3": (128, 206)}
)
# GDAL names the table-128 parameters it knows instead of numbering them.
_GDAL_NAMES = {"PWC": (128, 137), "TCWV": (128, 137), "MSL": (128, 151), "PRMSL": (128, 151), "TCO3": (128, 206)}
_GRIB1_UNKNOWN = re.compile(r"var(\d+) of table (\d+)")
_SPECIES = ("sea_salt", "dust", "organic_matter", "black_carbon", "sulphate")
_SPECTRAL_NM = {"aod469": 469, "aod550": 550, "aod670": 670, "aod865": 865, "aod1240": 1240}


@dataclass(frozen=True, eq=False)
class GribFields:
    """Fields of one GRIB file on its latitude/longitude grid (grid points at pixel centres)."""

    fields: Mapping[str, NDArray[np.float64]]
    """By name (:data:`CAMS_PARAMETERS`, :data:`ECMWF_PARAMETERS`), in the file's units, rows north to south."""
    lon0: float
    """Longitude of the first column's points (degrees)."""
    lat0: float
    """Latitude of the first row's points (degrees)."""
    dlon: float
    dlat: float
    """Grid steps (degrees; ``dlat`` negative when rows go south)."""

    def at(self, name: str, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.float64]:
        """Bilinear value of field ``name`` at the points (clamped to the grid's edges)."""
        values = self.fields[name]
        rows = np.asarray(self.lat0 + self.dlat * np.arange(values.shape[0]), dtype=np.float64)
        cols = np.asarray(self.lon0 + self.dlon * np.arange(values.shape[1]), dtype=np.float64)
        # Longitudes on the grid's own convention (0-360 or -180-180).
        lon = np.where(lon < cols.min() - 180.0, lon + 360.0, np.where(lon > cols.max() + 180.0, lon - 360.0, lon))
        if rows[0] > rows[-1]:
            rows, values = rows[::-1], values[::-1]
        if cols[0] > cols[-1]:
            cols, values = cols[::-1], values[:, ::-1]
        return multilinear(values, [rows, cols], [lat, lon])


def _identify(tags: Mapping[str, str]) -> tuple[int, int] | None:
    """(GRIB 1 table, parameter) of a band from GDAL's GRIB metadata, or None."""
    if tags.get("GRIB_DISCIPLINE", "").split("(")[0] == "192":
        numbers = tags.get("GRIB_PDS_TEMPLATE_NUMBERS", "").split()
        if len(numbers) >= 2:
            return int(numbers[0]), int(numbers[1])
        return None
    element = tags.get("GRIB_ELEMENT", "")
    found = _GRIB1_UNKNOWN.search(element)
    if found:
        return int(found.group(2)), int(found.group(1))
    return _GDAL_NAMES.get(element)


class _LocalTableNotice(logging.Filter):
    """Drops GDAL's notices that ECMWF's local parameter tables (210, 128) are not its own: the
    parameters are identified here, by table and number, so the notices say nothing about a product."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ("GRIB:" in text and ("parameter table" in text or "local use section" in text))


def _quiet_local_tables() -> None:
    for name in ("rasterio._err", "rasterio._env"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _LocalTableNotice) for f in logger.filters):
            logger.addFilter(_LocalTableNotice())


def _read(data: bytes, what: str, wanted: Mapping[str, tuple[int, int]], required: Sequence[str]) -> GribFields:
    _quiet_local_tables()
    by_code = {code: name for name, code in wanted.items()}
    found: dict[str, NDArray[np.float64]] = {}
    try:
        with rasterio.Env(), MemoryFile(data) as mem, mem.open(driver="GRIB") as ds:
            t = ds.transform
            for i in range(1, ds.count + 1):
                name = by_code.get(_identify(ds.tags(i)) or (-1, -1))
                if name is not None and name not in found:
                    found[name] = ds.read(i).astype(np.float64)
    except rasterio.errors.RasterioError as exc:
        raise AuxDataError(f"{what}: not a readable GRIB file ({exc})") from None
    missing = [n for n in required if n not in found]
    if missing:
        raise AuxDataError(f"{what}: no {', '.join(missing)} field (GRIB table/parameter "
                           f"{', '.join(f'{wanted[n][0]}/{wanted[n][1]}' for n in missing)})")  # fmt: skip
    for name, values in found.items():
        if not np.isfinite(values).all():
            raise AuxDataError(f"{what}: field {name} has values that are not numbers")
    return GribFields(MappingProxyType(found), t.c + t.a / 2, t.f + t.e / 2, t.a, t.e)


def read_cams(data: bytes, what: str = CAMS_FILE) -> GribFields:
    """Parse an ``AUX_CAMSFO`` file (GRIB 1 as ESA writes it, or GRIB 2 as :func:`write_grib` does).

    Parameters
    ----------
    data
        The file's bytes.
    what
        Names the file in error messages (product and path).

    Raises
    ------
    AuxDataError
        Not GRIB, no total AOD at 550 nm (table 210 parameter 207), or values that are not numbers.
    """
    return _read(data, what, CAMS_PARAMETERS, ("aod550",))


def read_ecmwf(data: bytes, what: str = ECMWF_FILE) -> GribFields:
    """Parse an ``AUX_ECMWFT`` file: total column water vapour, mean sea-level pressure, total column ozone.

    Raises
    ------
    AuxDataError
        Not GRIB, none of the three fields, or values that are not numbers.
    """
    fields = _read(data, what, ECMWF_PARAMETERS, ())
    if not fields.fields:
        raise AuxDataError(f"{what}: none of total column water vapour, mean sea-level pressure, total column ozone")
    return fields


Grid = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class AuxiliaryData:
    """CAMS and ECMWF fields of a product on a node grid over its tile (plain values, picklable).

    Node ``(i, j)`` lies at ``x = left + j (right - left) / (n - 1)``, ``y = top - i (top - bottom) / (n - 1)``:
    the first and last nodes are on the tile's edges.
    """

    bounds: tuple[float, float, float, float]
    """``(left, bottom, right, top)`` of the tile in its CRS (metres)."""
    aot550: Grid | None = None
    """CAMS total AOD at 550 nm."""
    water_vapour_cm: Grid | None = None
    """ECMWF total column water vapour (cm)."""
    msl_pressure_hpa: Grid | None = None
    """ECMWF mean sea-level pressure (hPa)."""
    ozone_du: Grid | None = None
    """ECMWF total column ozone (Dobson units)."""
    spectral: tuple[tuple[int, float], ...] = ()
    """Tile mean CAMS AOD by wavelength: ``(nm, AOD)`` pairs (see :attr:`spectral_aod`)."""
    species: tuple[tuple[str, float], ...] = ()
    """Tile mean CAMS AOD at 550 nm by species: ``(name, AOD)`` pairs (see :attr:`species_aod`)."""
    files: tuple[str, ...] = ()
    """The files read (paths inside the product)."""

    @property
    def spectral_aod(self) -> dict[int, float]:
        """Tile mean CAMS AOD by wavelength (nm)."""
        return dict(self.spectral)

    @property
    def species_aod(self) -> dict[str, float]:
        """Tile mean CAMS AOD at 550 nm by species (sea salt, dust, organic matter, black carbon, sulphate)."""
        return dict(self.species)

    @staticmethod
    def mean(grid: Grid | None) -> float | None:
        """Mean over the nodes of a field (None without it)."""
        return None if grid is None else float(np.mean(np.asarray(grid, dtype=np.float64)))

    def __dask_tokenize__(self) -> object:
        return ("sen2core.AuxiliaryData", repr(self))

    def to_dict(self) -> dict[str, Any]:
        """Tile means of the fields and the files read, for the run summary (strict JSON)."""

        def rounded(grid: Grid | None, digits: int) -> float | None:
            value = self.mean(grid)
            return None if value is None else round(value, digits)

        return {
            "files": list(self.files), "cams_aot550": rounded(self.aot550, 4),
            "ecmwf_water_vapour_cm": rounded(self.water_vapour_cm, 4),
            "ecmwf_msl_pressure_hpa": rounded(self.msl_pressure_hpa, 2), "ecmwf_ozone_du": rounded(self.ozone_du, 1),
            "cams_aod_by_wavelength_nm": {str(k): v for k, v in self.spectral_aod.items()},
            "cams_aod550_by_species": self.species_aod,
        }  # fmt: skip


def find_auxiliary_files(store: ProductStore, granule: str) -> dict[str, str]:
    """Paths of the ``AUX_CAMSFO`` and ``AUX_ECMWFT`` files of a granule folder (those that exist)."""
    out = {}
    for name in (CAMS_FILE, ECMWF_FILE):
        rel = f"{granule}/AUX_DATA/{name}"
        if store.exists(rel):
            out[name] = rel
    return out


def _grid(values: NDArray[np.float64]) -> Grid:
    return tuple(tuple(float(v) for v in row) for row in values)


def auxiliary_on_tile(
    files: Mapping[str, bytes],
    epsg: int,
    bounds: tuple[float, float, float, float],
    *,
    nodes: int = 12,
    what: str = "",
) -> AuxiliaryData | None:
    """Read the auxiliary files of a product and interpolate them onto ``nodes`` x ``nodes`` points over the tile.

    Parameters
    ----------
    files
        File name (:data:`CAMS_FILE`, :data:`ECMWF_FILE`) -> bytes; either may be absent.
    epsg, bounds
        The tile's CRS and ``(left, bottom, right, top)``.
    nodes
        Points per side (the CAMS grid is about 0.4 degree, 3-4 cells across a tile).
    what
        Names the product in error messages.

    Returns
    -------
    AuxiliaryData or None
        None when neither file is given.

    Raises
    ------
    AuxDataError
        A file that is not a CAMS / ECMWF GRIB (see :func:`read_cams`, :func:`read_ecmwf`).
    """
    if not files:
        return None
    left, bottom, right, top = bounds
    y = np.linspace(top, bottom, nodes)
    x = np.linspace(left, right, nodes)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    with rasterio.Env():
        lon_l, lat_l = warp_transform(f"EPSG:{epsg}", "EPSG:4326", xx.ravel().tolist(), yy.ravel().tolist())
    lon, lat = np.asarray(lon_l).reshape(xx.shape), np.asarray(lat_l).reshape(xx.shape)
    prefix = f"{what}: " if what else ""
    out: dict[str, Any] = {"bounds": tuple(float(v) for v in bounds), "files": tuple(sorted(files))}
    if CAMS_FILE in files:
        cams = read_cams(files[CAMS_FILE], prefix + CAMS_FILE)
        out["aot550"] = _grid(cams.at("aod550", lon, lat))
        present = [n for n in (*_SPECTRAL_NM, *_SPECIES) if n in cams.fields]
        means = {n: round(float(cams.at(n, lon, lat).mean()), 5) for n in present}
        out["spectral"] = tuple((_SPECTRAL_NM[n], v) for n, v in means.items() if n in _SPECTRAL_NM)
        out["species"] = tuple((n, v) for n, v in means.items() if n in _SPECIES)
    if ECMWF_FILE in files:
        ecmwf = read_ecmwf(files[ECMWF_FILE], prefix + ECMWF_FILE)
        f = ecmwf.fields
        if "tcwv" in f:
            out["water_vapour_cm"] = _grid(ecmwf.at("tcwv", lon, lat) / 10.0)  # kg m-2 = mm
        if "msl" in f:
            out["msl_pressure_hpa"] = _grid(ecmwf.at("msl", lon, lat) / 100.0)
        if "tco3" in f:
            out["ozone_du"] = _grid(ecmwf.at("tco3", lon, lat) / DU_KG_M2)
    return AuxiliaryData(**out)


# ----------------------------------------------------------------------------- writing


def write_grib(
    path: str | Path,
    fields: Sequence[tuple[tuple[int, int], NDArray[np.floating]]],
    *,
    lon0: float,
    lat0: float,
    dlon: float,
    dlat: float,
    reference_time: str,
) -> None:
    """Write fields as GRIB 2 on a latitude/longitude grid, each coded 192 / GRIB 1 table / GRIB 1 parameter.

    Parameters
    ----------
    path
        The file to write.
    fields
        ``((table, parameter), values)``, values with rows from ``lat0`` southwards.
    lon0, lat0
        Longitude and latitude of the first grid point (upper left).
    dlon, dlat
        Positive grid steps (degrees).
    reference_time
        Forecast reference time, ``YYYY-MM-DDTHH:MM:SSZ``.
    """
    if not fields or dlon <= 0 or dlat <= 0:
        raise ValueError("write_grib needs fields and positive grid steps")
    shape = fields[0][1].shape
    options = {
        "IDS": f"CENTER=98 SUBCENTER=0 MASTER_TABLE=2 SIGNF_REF_TIME=1 REF_TIME={reference_time} PROD_STATUS=0 TYPE=1",
        "DATA_ENCODING": "SIMPLE_PACKING", "NBITS": "24",
    }  # fmt: skip
    for i, ((table, parameter), _) in enumerate(fields, start=1):
        options[f"BAND_{i}_DISCIPLINE"] = "192"
        options[f"BAND_{i}_PDS_PDTN"] = "0"
        # Template 4.0: category, number, analysis/forecast, background and process ids, cut-off,
        # hours, forecast time 0, ground surface (1), no second surface (255).
        options[f"BAND_{i}_PDS_TEMPLATE_ASSEMBLED_VALUES"] = f"{table} {parameter} 2 0 0 0 0 1 0 1 0 0 255 0 0"
    transform = rasterio.transform.from_origin(lon0 - dlon / 2, lat0 + dlat / 2, dlon, dlat)
    with rasterio.Env(), rasterio.open(
        path, "w", driver="GRIB", width=shape[1], height=shape[0], count=len(fields), dtype="float64",
        crs="EPSG:4326", transform=transform, **options,
    ) as ds:  # fmt: skip
        for i, (_, values) in enumerate(fields, start=1):
            if values.shape != shape:
                raise ValueError("write_grib: every field needs the same shape")
            ds.write(np.asarray(values, dtype=np.float64), i)


def read_product_auxiliary(product: Product) -> AuxiliaryData | None:
    """The CAMS / ECMWF fields of a Level-1C product's granule on its tile, or None when it has no such files.

    The files are looked for in ``GRANULE/<granule>/AUX_DATA/`` beside the band folder
    (SAFE layouts; other layouts have none).

    Raises
    ------
    AuxDataError
        A file that is there but is not a CAMS / ECMWF GRIB (the message names the product and the file).
    """
    band = product.band_files.get("B04") or next(iter(product.band_files.values()), None)
    if band is None or product.epsg is None:
        return None
    parts = band.path.split("/")
    if "IMG_DATA" not in parts:
        return None
    granule = "/".join(parts[: parts.index("IMG_DATA")])
    found = find_auxiliary_files(product.store, granule)
    files = {name: product.store.read_bytes(rel) for name, rel in found.items()}
    gb = product.geobox(min(product.grids))
    res = gb.transform.a
    left, top = gb.transform.c, gb.transform.f
    bounds = (left, top - gb.shape[0] * res, left + gb.shape[1] * res, top)
    aux = auxiliary_on_tile(files, product.epsg, bounds, what=product.product_id)
    return None if aux is None else AuxiliaryData(**{**aux.__dict__, "files": tuple(sorted(found.values()))})

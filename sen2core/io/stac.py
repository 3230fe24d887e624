"""STAC metadata of Level-2A COG products: the item, the output collection and offline validation.

The item describes one finished product folder. Its asset hrefs are relative (the
folder is built under a temporary name and renamed afterwards), it carries the eo,
projection, raster, view, file, processing, mgrs and classification extensions, and it
is the last file written: its presence marks the product done.

Extension versions are those whose schemas ship in ``sen2core/data/stac-schemas``, so
validation never needs the network: eo v1.1.0, projection v2.0.0, raster v1.1.0, view
v1.0.0, file v2.1.0, mgrs v1.0.0 (as pystac writes them), processing v1.2.0 and
classification v1.1.0 (written by hand: pystac has no processing support and writes
classification v2.0.0, whose schema is not shipped).

:func:`update_collection` maintains ``collection.json`` at the output root; it is a
publishing step run after a product is in place, safe with concurrent callers in
several processes (an ``fcntl`` lock) and atomic for readers (``os.replace``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import json
import math
import os
import posixpath
import random
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.mgrs import MgrsExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.extensions.view import ViewExtension
from pystac.validation.local_validator import get_local_schema_cache
from rasterio.warp import transform_geom
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

from sen2core import __version__
from sen2core.errors import OutputError, RemoteAccessError
from sen2core.io.checksums import FileDigest
from sen2core.io.failures import write_failure
from sen2core.io.jsonutil import strict_json_dumps
from sen2core.io.metadata import GeoBox
from sen2core.io.product import Product
from sen2core.io.remote import is_remote
from sen2core.io.remote_output import output_objects
from sen2core.io.write import RasterSpec
from sen2core.kernels.angles import circular_mean
from sen2core.kernels.scene_class.legend import SCL_CLASSES

EXTENSION_BASE = "https://stac-extensions.github.io"
PROCESSING_SCHEMA = f"{EXTENSION_BASE}/processing/v1.2.0/schema.json"
CLASSIFICATION_SCHEMA = f"{EXTENSION_BASE}/classification/v1.1.0/schema.json"
COLLECTION_NAME = "collection.json"
"""File name of the collection at the output root."""
COLLECTION_ID = "sentinel-2-l2a-sen2core"
"""Id of the output collection."""
_LOCK_NAME = ".collection.json.lock"
_COG = pystac.MediaType.COG
_DATA_TYPES = {t.value: t for t in DataType}


class STACValidationError(OutputError, ValueError):
    """A STAC document does not validate against its (offline) JSON schemas."""


# ----------------------------------------------------------------------------- band metadata


@dataclass(frozen=True)
class MsiBand:
    """Spectral description of one MSI band (Sentinel-2A values)."""

    common_name: str
    """eo common name."""
    center: float
    """Centre wavelength (micrometres)."""
    fwhm: float
    """Full width at half maximum (micrometres)."""


MSI_BANDS: Mapping[str, MsiBand] = {
    "B01": MsiBand("coastal", 0.443, 0.027), "B02": MsiBand("blue", 0.490, 0.098),
    "B03": MsiBand("green", 0.560, 0.045), "B04": MsiBand("red", 0.665, 0.038),
    "B05": MsiBand("rededge", 0.704, 0.019), "B06": MsiBand("rededge", 0.740, 0.018),
    "B07": MsiBand("rededge", 0.783, 0.028), "B08": MsiBand("nir", 0.842, 0.145),
    "B8A": MsiBand("nir08", 0.865, 0.033), "B09": MsiBand("nir09", 0.945, 0.026),
    "B10": MsiBand("cirrus", 1.375, 0.075), "B11": MsiBand("swir16", 1.610, 0.143),
    "B12": MsiBand("swir22", 2.190, 0.242),
}  # fmt: skip
"""MSI bands: common name, centre wavelength and FWHM (the L1C metadata's centre wins when present)."""

#: Title, roles and unit of the non-reflectance layers of the COG layout.
_LAYERS: Mapping[str, tuple[str, tuple[str, ...], str | None]] = {
    "SCL": ("Scene classification map (SCL)", ("data", "classification"), None),
    "AOT": ("Aerosol optical thickness at 550 nm (AOT)", ("data",), None),
    "WVP": ("Water vapour column (WVP)", ("data",), "cm"),
    "TCI": ("True colour image (TCI)", ("visual", "overview"), None),
    "MSK_CLDPRB": ("Cloud confidence, Sen2Cor's (MSK_CLDPRB)", ("data", "cloud"), "%"),
    "MSK_SNWPRB": ("Snow confidence, Sen2Cor's (MSK_SNWPRB)", ("data", "snow-ice"), "%"),
    "CLD_PROB_CALIBRATED": ("Calibrated cloud probability (CLD_PROB_CALIBRATED)", ("data", "cloud"), "%"),
}
#: TCI bands in file order.
_TCI_BANDS = ("B04", "B03", "B02")


@dataclass(frozen=True)
class RasterAsset:
    """A raster file of the product, as the item lists it."""

    href: str
    """File name relative to the product folder."""
    kind: str
    """Band (``B8A``) or layer (``SCL``, ``AOT``, ``WVP``, ``TCI``, ``MSK_CLDPRB`` ...); the asset key."""
    spec: RasterSpec
    """Grid, data type, no-data value, scale and offset of the file."""


@dataclass(frozen=True)
class FileAsset:
    """A non-raster file of the product (quicklook, metadata, checksum manifest)."""

    key: str
    href: str
    title: str
    media_type: str
    roles: tuple[str, ...]


# ----------------------------------------------------------------------------- geometry


def footprint(geobox: GeoBox, points_per_edge: int = 8) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON geometry (lon/lat, WGS 84) and bbox of a pixel grid's outline.

    The edges are densified (UTM straight lines are curves in lon/lat) and the polygon
    is cut at the antimeridian when it crosses it.
    """
    left, bottom, right, top = geobox.bounds
    xs = np.linspace(left, right, points_per_edge + 1)
    ys = np.linspace(top, bottom, points_per_edge + 1)
    # Counter-clockwise exterior ring (RFC 7946): down the west edge, east along the south...
    ring = ([(left, float(y)) for y in ys] + [(float(x), bottom) for x in xs[1:]]
            + [(right, float(y)) for y in ys[::-1][1:]] + [(float(x), top) for x in xs[::-1][1:]])  # fmt: skip
    geom = dict(transform_geom(geobox.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]},
                               antimeridian_cutting=True, precision=7))  # fmt: skip
    coords = np.asarray(list(_points(geom["coordinates"])), dtype=np.float64)
    bbox = [float(coords[:, 0].min()), float(coords[:, 1].min()), float(coords[:, 0].max()), float(coords[:, 1].max())]
    return _plain(geom), bbox


def _points(coords: Any) -> Iterable[tuple[float, float]]:
    if len(coords) and isinstance(coords[0], (int, float)):
        yield (float(coords[0]), float(coords[1]))
        return
    for c in coords:
        yield from _points(c)


def _plain(obj: Any) -> Any:
    # rasterio returns GeoJSON with tuples and its own mapping type; STAC wants plain JSON.
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- item


def _num(value: Any, ndigits: int = 6) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return value
    v = float(value)
    if not math.isfinite(v):
        return None
    return int(v) if isinstance(value, (int, np.integer)) else round(v, ndigits)


def _utc_text(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _platform(product: Product) -> str | None:
    text = f"{product.spacecraft or ''} {product.product_id}".upper()
    for unit in "ABCD":
        if f"2{unit}" in text:
            return f"sentinel-2{unit.lower()}"
    return None


def _view_angles(product: Product, bands: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    sun = product.mean_sun_angles()
    if sun is not None and sun.finite:
        out["sun_elevation"] = 90.0 - sun.zenith
        out["sun_azimuth"] = sun.azimuth % 360.0
    views = [m for m in (product.mean_view_angles(b) for b in bands) if m is not None and m.finite]
    if views:
        out["incidence_angle"] = float(np.mean([m.zenith for m in views]))
        out["azimuth"] = float(circular_mean([m.azimuth for m in views])) % 360.0
    return {k: round(v, 4) for k, v in out.items()}


def _raster_bands(spec: RasterSpec, unit: str | None) -> list[RasterBand]:
    count = max(1, len(spec.band_names))
    data_type = _DATA_TYPES.get(str(spec.dtype))
    bands = []
    for _ in range(count):
        bands.append(RasterBand.create(
            nodata=spec.nodata, data_type=data_type, spatial_resolution=spec.geobox.resolution, unit=unit,
            scale=spec.scale, offset=spec.offset if spec.scale is not None or spec.offset is not None else None,
        ))  # fmt: skip
    return bands


def _eo_band(product: Product, band: str) -> Band:
    info = MSI_BANDS[band]
    um = product.user_metadata
    centre = um.central_wavelength.get(band) if um is not None else None
    irradiance = um.solar_irradiance.get(band) if um is not None else None
    return Band.create(
        name=band, common_name=info.common_name, description=f"{band} ({info.common_name})",
        center_wavelength=round(centre / 1000.0, 4) if centre else info.center, full_width_half_max=info.fwhm,
        solar_illumination=round(irradiance, 2) if irradiance else None,
    )  # fmt: skip


def _no_valid_pixel(percentages: Mapping[str, Any]) -> bool:
    """True when the scene classification found no pixel with data (every pixel is no data)."""
    nodata = _num(percentages.get("NODATA_PIXEL_PERCENTAGE"))
    return isinstance(nodata, (int, float)) and nodata >= 100.0


#: Why a product without any pixel with data has no ``eo:cloud_cover`` (and no per-class shares).
NO_VALID_PIXEL_NOTE = ("no pixel with data (NODATA_PIXEL_PERCENTAGE is 100): cloud cover and class shares are "
                       "undefined, not 0")  # fmt: skip


def _s2_properties(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Sen2Cor's quality figures as ``s2:`` properties.

    ``CLOUD_SHADOW_PERCENTAGE`` becomes ``s2:cloud_shadow_percentage``, ``GRANULE_MEAN_AOT``
    ``s2:granule_mean_aot`` (the names of other Sentinel-2 L2A catalogues). Shares of the
    pixels with data are left out when there is none (they would read 0).
    """
    out: dict[str, Any] = {}
    empty = _no_valid_pixel(summary.get("class_percentages") or {})
    for section in ("class_percentages", "atmosphere"):
        for key, value in (summary.get(section) or {}).items():
            value = _num(value)
            if key == "LUT_ID" or value is None or not isinstance(value, (str, int, float, bool)):
                continue
            if empty and section == "class_percentages" and key != "NODATA_PIXEL_PERCENTAGE":
                continue
            out[f"s2:{key.lower()}"] = value
    return out


def _dem_lineage(dem: Mapping[str, Any] | None) -> str:
    if not dem:
        return ""
    return f", DEM {dem.get('name')} ({dem.get('crs')}, {dem.get('coverage_percent')} % of the tile)"


def build_item(
    product: Product,
    l2a_id: str,
    summary: Mapping[str, Any],
    rasters: Sequence[RasterAsset],
    files: Sequence[FileAsset],
    digests: Mapping[str, FileDigest],
    processed: dt.datetime | None = None,
    collection_href: str | None = None,
) -> pystac.Item:
    """The STAC item of a finished COG product.

    Parameters
    ----------
    product
        The Level-1C product (sensing time, tile, angles, spacecraft, spectral metadata).
    l2a_id
        Item id.
    summary
        The run summary (``class_percentages``, ``atmosphere``, ``lut_id``, ``l1c_id``, and
        ``dem``: name, CRS and coverage of the DEM used, if any).
    rasters, files
        The assets, with hrefs relative to the product folder.
    digests
        File name -> checksum and size; every asset must have one.
    processed
        Processing time (default: now).
    collection_href
        Where the item's collection (:func:`update_collection`) is, relative to the item: the
        item then names it (``collection``: :data:`COLLECTION_ID`) and links to it as its
        ``collection``, ``parent`` and ``root``.

    Returns
    -------
    pystac.Item

    Raises
    ------
    OutputError
        The product has no sensing time, or an asset has no checksum.
    """
    if product.sensing_time is None:
        raise OutputError(f"{l2a_id}: sensing time unknown: cannot build the STAC item")
    if not rasters:
        raise OutputError(f"{l2a_id}: no raster to describe in the STAC item")
    processed = processed or dt.datetime.now(dt.UTC)
    finest = min(rasters, key=lambda r: r.spec.geobox.resolution).spec.geobox
    geometry, bbox = footprint(finest)
    item = pystac.Item(id=l2a_id, geometry=geometry, bbox=bbox, datetime=product.sensing_time, properties={})
    common = item.common_metadata
    common.platform = _platform(product)
    common.constellation = "sentinel-2"
    common.instruments = ["msi"]
    common.gsd = finest.resolution
    common.created = processed
    percentages = summary.get("class_percentages") or {}
    lut_id = summary.get("lut_id")
    item.properties.update({
        "processing:level": "L2A",
        "processing:software": {"sen2core": __version__},
        "processing:datetime": _utc_text(processed),
        "processing:lineage": (f"Level-2A (scene classification and atmospheric correction) by sen2core {__version__}"
                               f" from {summary.get('l1c_id') or product.product_id}"
                               + (f", radiative-transfer LUT {lut_id}" if lut_id else "")
                               + _dem_lineage(summary.get("dem"))),
        "s2:product_type": "S2MSI2A",
        "s2:mgrs_tile": product.tile_id,
        "sen2core:l1c_id": summary.get("l1c_id") or product.product_id,
    })  # fmt: skip
    if lut_id:
        # The LUT is versioned data the result depends on as much as on the code: recorded beside it.
        item.properties["processing:software"]["sen2core-lut"] = lut_id
        item.properties["sen2core:lut_id"] = lut_id
    if summary.get("dem"):
        # The elevation the correction used is an input like the LUT: recorded with it.
        item.properties["sen2core:dem"] = dict(summary["dem"])
    item.properties.update(_s2_properties(summary))
    item.stac_extensions.append(PROCESSING_SCHEMA)

    EOExtension.ext(item, add_if_missing=True)
    if _no_valid_pixel(percentages):
        # 0 % would match every "cloud_cover < x" search; the eo schema has no null, so the
        # field is left out (unknown) and the item says why.
        item.properties["sen2core:cloud_cover_note"] = NO_VALID_PIXEL_NOTE
    elif "CLOUDY_PIXEL_PERCENTAGE" in percentages:
        cloudy = float(percentages["CLOUDY_PIXEL_PERCENTAGE"])
        EOExtension.ext(item).cloud_cover = round(min(max(cloudy, 0.0), 100.0), 4)
    ProjectionExtension.ext(item, add_if_missing=True).code = finest.crs
    bands_for_view = [r.kind for r in rasters if r.kind in MSI_BANDS] or list(product.bands)
    view = _view_angles(product, bands_for_view)
    if view:
        v = ViewExtension.ext(item, add_if_missing=True)
        v.sun_elevation, v.sun_azimuth = view.get("sun_elevation"), view.get("sun_azimuth")
        v.incidence_angle, v.azimuth = view.get("incidence_angle"), view.get("azimuth")
    m = re.fullmatch(r"(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})", product.tile_id or "")
    if m:
        mgrs = MgrsExtension.ext(item, add_if_missing=True)
        mgrs.utm_zone, mgrs.latitude_band, mgrs.grid_square = int(m[1]), m[2], m[3]
    RasterExtension.add_to(item)
    FileExtension.add_to(item)

    def checksum(asset: pystac.Asset, href: str) -> None:
        if href not in digests:
            raise OutputError(f"{l2a_id}: no checksum for {href}")
        f = FileExtension.ext(asset)
        f.checksum, f.size = digests[href].multihash, digests[href].size

    order = [*MSI_BANDS, *_LAYERS]
    for r in sorted(rasters, key=lambda r: (order.index(r.kind) if r.kind in order else len(order), r.kind)):
        gb = r.spec.geobox
        res = int(gb.resolution) if float(gb.resolution).is_integer() else gb.resolution
        if r.kind in MSI_BANDS:
            info = MSI_BANDS[r.kind]
            roles: tuple[str, ...] = ("data", "reflectance")
            title, unit = f"{r.kind} {info.common_name} reflectance - {res} m", None
        else:
            title, roles, unit = _LAYERS.get(r.kind, (r.kind, ("data",), None))
            title = f"{title} - {res} m"
        asset = pystac.Asset(href=r.href, title=title, media_type=_COG, roles=list(roles), extra_fields={"gsd": res})
        item.add_asset(r.kind, asset)
        proj = ProjectionExtension.ext(asset)
        proj.shape = [gb.height, gb.width]
        proj.transform = [float(v) for v in tuple(gb.transform)[:6]]
        proj.bbox = list(gb.bounds)
        RasterExtension.ext(asset).bands = _raster_bands(r.spec, unit)
        if r.kind in MSI_BANDS:
            EOExtension.ext(asset).bands = [_eo_band(product, r.kind)]
        elif r.kind == "TCI":
            EOExtension.ext(asset).bands = [_eo_band(product, b) for b in _TCI_BANDS]
        elif r.kind == "SCL":
            asset.extra_fields["classification:classes"] = [
                {"value": c.value, "name": c.name, "description": c.description, "color_hint": c.color_hint}
                for c in SCL_CLASSES
            ]
            if CLASSIFICATION_SCHEMA not in item.stac_extensions:
                item.stac_extensions.append(CLASSIFICATION_SCHEMA)
        checksum(asset, r.href)
    for f in files:
        asset = pystac.Asset(href=f.href, title=f.title, media_type=f.media_type, roles=list(f.roles))
        item.add_asset(f.key, asset)
        checksum(asset, f.href)
    if collection_href is not None:
        item.collection_id = COLLECTION_ID
        title = "Sentinel-2 Level-2A (sen2core)"
        for rel in ("collection", "parent", "root"):
            item.add_link(pystac.Link(rel, collection_href, media_type=pystac.MediaType.JSON, title=title))
    return item


def item_dict(item: pystac.Item) -> dict[str, Any]:
    """The item as JSON, hrefs kept relative and without a self link (the folder moves after writing)."""
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _atomic_write_json(path: Path, content: Mapping[str, Any]) -> None:
    """Write JSON through a temporary file in the same folder, flushed to disk, then ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(strict_json_dumps(content, indent=1, ensure_ascii=False))
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failure(exc, path, "cannot write") from exc


def write_item(item: pystac.Item, path: str | os.PathLike[str]) -> Path:
    """Write ``item`` to ``path`` (atomically: readers see no file or the whole item); return the path."""
    path = Path(path)
    _atomic_write_json(path, item_dict(item))
    return path


# ----------------------------------------------------------------------------- validation


@functools.cache
def _extension_schemas() -> dict[str, dict[str, Any]]:
    """Canonical URI -> schema of every extension schema shipped as package data."""
    root = resources.files("sen2core").joinpath("data", "stac-schemas")
    out = {}
    for name in root.iterdir():
        if not name.is_dir():
            continue
        for version in name.iterdir():
            schema = version.joinpath("schema.json")
            if schema.is_file():
                out[f"{EXTENSION_BASE}/{name.name}/{version.name}/schema.json"] = json.loads(schema.read_text("utf-8"))
    return out


def _offline(uri: str) -> Resource[Any]:
    # Any reference not shipped locally is an error, never a download.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


@functools.cache
def _registry() -> Registry[Any]:
    schemas = {**get_local_schema_cache(), **_extension_schemas()}
    resources_ = []
    for uri, schema in schemas.items():
        resource = Resource.from_contents(schema)
        resources_ += [(uri, resource), (uri + "#", resource)]
    return Registry(retrieve=_offline).with_resources(resources_)  # type: ignore[call-arg]


def _core_schema_uri(kind: str, version: str) -> str:
    spec = "item-spec" if kind == "item" else f"{kind}-spec"
    return f"https://schemas.stacspec.org/v{version}/{spec}/json-schema/{kind}.json"


def _load(obj: pystac.STACObject | Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    if isinstance(obj, pystac.Item):
        return item_dict(obj)
    if isinstance(obj, pystac.STACObject):
        return obj.to_dict(include_self_link=False, transform_hrefs=False)
    if isinstance(obj, Mapping):
        return dict(obj)
    try:
        loaded = json.loads(Path(obj).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise STACValidationError(f"{obj}: cannot read STAC JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise STACValidationError(f"{obj}: not a JSON object")
    return loaded


def _validate(doc: Mapping[str, Any], kind: str) -> list[str]:
    expected = {"item": "Feature", "collection": "Collection"}[kind]
    name = doc.get("id", "?")
    if doc.get("type") != expected:
        raise STACValidationError(f"{name}: type is {doc.get('type')!r}, expected {expected!r}")
    version = str(doc.get("stac_version"))
    uris = [_core_schema_uri(kind, version)] + list(doc.get("stac_extensions") or [])
    registry = _registry()
    problems: list[str] = []
    for uri in uris:
        try:
            schema = registry.contents(uri)
        except NoSuchResource:
            problems.append(f"{uri}: schema not available offline")
            continue
        validator = Draft7Validator(schema, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)
        try:
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        except Unresolvable as exc:
            problems.append(f"{uri}: reference not available offline: {exc}")
            continue
        for err in errors[:10]:
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            problems.append(f"{uri}: {where}: {err.message[:300]}")
    if problems:
        raise STACValidationError(f"{name}: invalid STAC {kind}:\n  " + "\n  ".join(problems))
    return uris


def validate_item(item_or_path: pystac.Item | Mapping[str, Any] | str | os.PathLike[str]) -> list[str]:
    """Validate a STAC item against the core schema and each of its extensions, offline.

    Parameters
    ----------
    item_or_path
        A pystac item, its JSON as a mapping, or the path of its JSON file.

    Returns
    -------
    list of str
        The schema URIs checked.

    Raises
    ------
    STACValidationError
        The item is invalid, or uses a schema that is not available offline.
    """
    return _validate(_load(item_or_path), "item")


def validate_collection(
    collection_or_path: pystac.Collection | Mapping[str, Any] | str | os.PathLike[str],
) -> list[str]:
    """Validate a STAC collection offline (see :func:`validate_item`)."""
    return _validate(_load(collection_or_path), "collection")


# ----------------------------------------------------------------------------- collection


_OPEN_INTERVAL: list[list[dt.datetime | None]] = [[None, None]]


def _new_collection() -> dict[str, Any]:
    coll = pystac.Collection(
        id=COLLECTION_ID,
        title="Sentinel-2 Level-2A (sen2core)",
        description=(
            "Sentinel-2 MSI bottom-of-atmosphere reflectance, scene classification, aerosol optical "
            "thickness and water vapour, processed from Level-1C by sen2core (Sen2Cor-compatible "
            "Level-2A algorithms) as Cloud-Optimised GeoTIFFs."
        ),  # fmt: skip
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]), pystac.TemporalExtent(_OPEN_INTERVAL)
        ),  # fmt: skip
        license="other",
        providers=[
            pystac.Provider(
                "ESA",
                roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                url="https://sentinel.esa.int/web/sentinel/missions/sentinel-2",
            ),
            pystac.Provider("sen2core", roles=[pystac.ProviderRole.PROCESSOR]),
        ],  # fmt: skip
        keywords=["sentinel", "copernicus", "esa", "msi", "level-2a", "reflectance", "sen2core"],
    )
    d = coll.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = [
        {"rel": "root", "href": f"./{COLLECTION_NAME}", "type": pystac.MediaType.JSON},
        {"rel": "license", "href": "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice",
         "title": "Legal notice on the use of Copernicus Sentinel Data and Service Information"},
    ]  # fmt: skip
    d["summaries"] = {"constellation": ["sentinel-2"], "instruments": ["msi"]}
    return d


def _item_interval(item: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    props = item.get("properties", {})
    start = props.get("start_datetime") or props.get("datetime")
    end = props.get("end_datetime") or props.get("datetime")
    if not start or not end:
        raise OutputError(f"{item.get('id')}: item without datetime")
    return pystac.utils.str_to_datetime(start), pystac.utils.str_to_datetime(end)


def _merge_item(coll: dict[str, Any], item: Mapping[str, Any], href: str) -> None:
    bbox = [float(v) for v in item["bbox"]]
    if len(bbox) == 6:  # 3-D bbox: keep the horizontal part
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    start, end = _item_interval(item)
    links = coll.get("links", [])
    # Until the first item the extent is a placeholder (whole globe, open interval): replace it.
    if any(ln.get("rel") == "item" for ln in links):
        old = coll["extent"]["spatial"]["bbox"][0]
        bbox = [min(old[0], bbox[0]), min(old[1], bbox[1]), max(old[2], bbox[2]), max(old[3], bbox[3])]
        old_start, old_end = (pystac.utils.str_to_datetime(v) for v in coll["extent"]["temporal"]["interval"][0])
        start, end = min(start, old_start), max(end, old_end)
    coll["extent"] = {
        "spatial": {"bbox": [bbox]},
        "temporal": {"interval": [[pystac.utils.datetime_to_str(start), pystac.utils.datetime_to_str(end)]]},
    }
    summaries = coll.setdefault("summaries", {})
    props = item.get("properties", {})
    for key in ("platform", "gsd"):
        if props.get(key) is not None:
            summaries[key] = sorted(set(summaries.get(key, [])) | {props[key]})
    # One link per item id: a reprocessed product replaces its old link.
    same = {href, item.get("id")}
    links = [ln for ln in links if ln.get("rel") != "item" or not ({ln.get("href"), ln.get("title")} & same)]
    links.append({"rel": "item", "href": href, "type": pystac.MediaType.GEOJSON, "title": item.get("id")})
    items = sorted((ln for ln in links if ln.get("rel") == "item"), key=lambda ln: ln["href"])
    coll["links"] = [ln for ln in links if ln.get("rel") != "item"] + items


#: Attempts of a conditional collection write before giving up (each loses only to another writer's success).
COLLECTION_WRITE_ATTEMPTS = 20


def _update_remote_collection(root: str, item_hrefs: Sequence[str]) -> str:
    """:func:`update_collection` on object storage: read with its ETag, merge, write only if unchanged.

    The write is conditional (``If-Match`` the ETag read, ``If-None-Match: *`` when there was
    no collection): when another writer updated it in between, the write is refused (412)
    and the merge is done again on the new content, so no writer loses another's items.
    """
    objects, key = output_objects(root)
    items = []
    for href in item_hrefs:
        item_objects, item_key = output_objects(href)
        got = item_objects.get_with_etag(item_key)
        if got is None:
            raise OutputError(f"{href}: no STAC item there")
        try:
            items.append((json.loads(got[0]), item_key))
        except ValueError as exc:
            raise OutputError(f"{href}: cannot read the STAC item: {exc}") from exc
    coll_key = f"{key}/{COLLECTION_NAME}" if key else COLLECTION_NAME
    href = objects.href(coll_key)
    for attempt in range(COLLECTION_WRITE_ATTEMPTS):
        got = objects.get_with_etag(coll_key)
        try:
            coll = json.loads(got[0]) if got is not None else _new_collection()
        except ValueError as exc:
            raise OutputError(f"{href}: existing collection is not valid JSON: {exc}") from exc
        for item, item_key in items:
            rel = posixpath.relpath(item_key, key or ".")
            _merge_item(coll, item, rel if rel.startswith("../") else f"./{rel}")
        body = strict_json_dumps(coll, indent=1, ensure_ascii=False).encode("utf-8")
        try:
            objects.put(coll_key, body, content_type="application/json",
                        if_match=got[1] if got is not None else None, if_none_match=got is None)  # fmt: skip
            return href
        except RemoteAccessError as exc:
            if exc.status not in (409, 412):
                raise OutputError(f"{href}: cannot write the collection: {exc}") from None
            # Another writer got there first: read its version and merge again.
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise OutputError(f"{href}: collection still changed by other writers after {COLLECTION_WRITE_ATTEMPTS} attempts")


def update_collection(output_root: str | Path, item_paths: Sequence[str | Path]) -> Path | str:
    """Create or update ``collection.json`` at ``output_root`` with the items at ``item_paths``.

    The extent grows to cover the items and each gets one relative ``item`` link. Callers
    in several processes may run at once: an exclusive ``fcntl`` lock on a lock file
    beside the collection serialises the read-modify-write, and the new collection
    replaces the old in one ``os.replace`` (readers see the old or the new file whole).
    On object storage (``s3://`` root and item hrefs) the write is conditional on the
    ETag read instead, and redone on a fresh read when another writer came first.

    Parameters
    ----------
    output_root
        Root of the output tree (created if missing).
    item_paths
        STAC item JSON files (normally under ``output_root``).

    Returns
    -------
    Path or str
        The collection file (its href on object storage).

    Raises
    ------
    OutputError
        An item cannot be read, or the collection cannot be written.
    """
    if is_remote(os.fspath(output_root)):
        return _update_remote_collection(os.fspath(output_root), [os.fspath(p) for p in item_paths])
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for p in item_paths:
        p = Path(p)
        try:
            items.append((json.loads(p.read_text(encoding="utf-8")), p))
        except (OSError, ValueError) as exc:
            raise OutputError(f"{p}: cannot read the STAC item: {exc}") from exc
    path = root / COLLECTION_NAME
    with open(root / _LOCK_NAME, "a+") as lock:
        # Blocking exclusive lock: held only for a small read-merge-write. Released when the
        # file is closed, also if this process dies (the kernel drops flock locks).
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if path.is_file():
                try:
                    coll = json.loads(path.read_text(encoding="utf-8"))
                except ValueError as exc:
                    raise OutputError(f"{path}: existing collection is not valid JSON: {exc}") from exc
            else:
                coll = _new_collection()
            for item, p in items:
                rel = os.path.relpath(p.resolve(), root.resolve()).replace(os.sep, "/")
                _merge_item(coll, item, rel if rel.startswith("../") else f"./{rel}")
            _atomic_write_json(path, coll)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return path


__all__ = [
    "CLASSIFICATION_SCHEMA",
    "COLLECTION_ID",
    "COLLECTION_NAME",
    "MSI_BANDS",
    "NO_VALID_PIXEL_NOTE",
    "PROCESSING_SCHEMA",
    "FileAsset",
    "MsiBand",
    "RasterAsset",
    "STACValidationError",
    "build_item",
    "footprint",
    "item_dict",
    "update_collection",
    "validate_collection",
    "validate_item",
    "write_item",
]

"""STAC item of a Level-2A COG product: properties, extensions and assets of one finished product folder.

The item describes one finished product folder. Its asset hrefs are relative (the
folder is built under a temporary name and renamed afterwards), it carries the eo,
projection, raster, view, file, processing, mgrs and classification extensions and
sen2core's own (:mod:`sen2core.io.stac.extension`), and it is the last file written: its
presence marks the product done.

Extension versions are those whose schemas ship in ``sen2core/data/stac-schemas``, so
validation never needs the network: eo v1.1.0, projection v2.0.0, raster v1.1.0, view
v1.0.0, file v2.1.0, mgrs v1.0.0 (as pystac writes them), processing v1.2.0 and
classification v1.1.0 (written by hand: pystac has no processing support and writes
classification v2.0.0, whose schema is not shipped), and sen2core v1.0.0.

Validation is :mod:`sen2core.io.stac.validation`'s, the output collection
:mod:`sen2core.io.stac.collection`'s.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.mgrs import MgrsExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.extensions.view import ViewExtension
from rasterio.warp import transform_geom

from sen2core import __version__
from sen2core.errors import OutputError
from sen2core.io.jsonutil import atomic_write_json
from sen2core.io.read.metadata import GeoBox
from sen2core.io.read.product import Product
from sen2core.io.stac.extension import EXTENSION_BASE, Sen2CoreExtension
from sen2core.io.write.checksums import FileDigest
from sen2core.io.write.raster import RasterSpec
from sen2core.kernels.angles import circular_mean
from sen2core.kernels.scene_class.legend import SCL_CLASSES

PROCESSING_SCHEMA = f"{EXTENSION_BASE}/processing/v1.2.0/schema.json"
CLASSIFICATION_SCHEMA = f"{EXTENSION_BASE}/classification/v1.1.0/schema.json"
COLLECTION_ID = "sentinel-2-l2a-sen2core"
"""Id of the output collection."""
_COG = pystac.MediaType.COG
_DATA_TYPES = {t.value: t for t in DataType}


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
        Where the item's collection (:func:`sen2core.io.stac.collection.update_collection`) is,
        relative to the item: the item then names it (``collection``: :data:`COLLECTION_ID`) and links to it as its
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
    })  # fmt: skip
    own = Sen2CoreExtension.ext(item, add_if_missing=True)
    own.l1c_id = summary.get("l1c_id") or product.product_id
    if lut_id:
        # The LUT is versioned data the result depends on as much as on the code: recorded beside it.
        item.properties["processing:software"]["sen2core-lut"] = lut_id
        own.lut_id = lut_id
    if summary.get("dem"):
        # The elevation the correction used is an input like the LUT: recorded with it.
        own.dem = summary["dem"]
    item.properties.update(_s2_properties(summary))
    item.stac_extensions.append(PROCESSING_SCHEMA)

    EOExtension.ext(item, add_if_missing=True)
    if _no_valid_pixel(percentages):
        # 0 % would match every "cloud_cover < x" search; the eo schema has no null, so the
        # field is left out (unknown) and the item says why.
        own.cloud_cover_note = NO_VALID_PIXEL_NOTE
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


def write_item(item: pystac.Item, path: str | os.PathLike[str]) -> Path:
    """Write ``item`` to ``path`` (atomically: readers see no file or the whole item); return the path."""
    path = Path(path)
    atomic_write_json(path, item_dict(item))
    return path


__all__ = [
    "CLASSIFICATION_SCHEMA",
    "COLLECTION_ID",
    "MSI_BANDS",
    "NO_VALID_PIXEL_NOTE",
    "PROCESSING_SCHEMA",
    "FileAsset",
    "MsiBand",
    "RasterAsset",
    "build_item",
    "footprint",
    "item_dict",
    "write_item",
]

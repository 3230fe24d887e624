"""Layout adapters: from a path to a :class:`~sen2core.io.read.product.Product`.

Three layouts are recognised: a SAFE product (directory, ``.SAFE.zip`` archive read in
place, or the path of its ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``), including old-style
file names and multi-granule products; and an AWS tile folder (``tileInfo.json``, band
files ``B01.jp2``..., optionally ``metadata.xml`` and ``product_metadata.xml``). Each
adapter resolves what the metadata lacks with a documented fallback and records a
warning for it.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import rasterio

from sen2core.errors import BandReadError, InputProductError, MetadataError, RemoteAccessError
from sen2core.io.read import bands as band_io
from sen2core.io.read.manifest import parse_manifest
from sen2core.io.read.metadata import (
    BAND_IDS,
    NOMINAL_RESOLUTION,
    NOMINAL_SOLAR_IRRADIANCE,
    Level,
    ManifestMetadata,
    Radiometry,
    ResolutionGrid,
    TileInfo,
    TileMetadata,
    UserProductMetadata,
    normalize_band,
)
from sen2core.io.read.model import ANGLE_FALLBACK_WARNING, DEFAULT_GDAL_OPTIONS, BandFile, Layout
from sen2core.io.read.mtd_product import baseline_from_name, parse_user_product
from sen2core.io.read.mtd_tile import parse_tile
from sen2core.io.read.product import Product
from sen2core.io.read.store import DirStore, ProductStore, RemoteStore, ZipStore
from sen2core.io.read.tileinfo import parse_tile_info
from sen2core.io.remote import RangeOpener, RemoteSettings, objects_for
from sen2core.solar import reflectance_conversion_factor

__all__ = ["open_location", "open_remote"]

_USER_MTD_RE = re.compile(r"^(MTD_MSIL(1C|2A)|S2[A-D_]_(OPER|USER)_MTD_SAF(L1C|L2A)_.*)\.xml$", re.IGNORECASE)
_TILE_RE = re.compile(r"_T(\d{2}[C-X][A-Z]{2})(?:_|\.|$)")
_BAND_FILE_RE = re.compile(r"_(B(?:0[1-9]|1[0-2]|8A))(?:_(\d+)m)?(?:\.jp2|\.tif)?$", re.IGNORECASE)
_AWS_BAND_RE = re.compile(r"^(?:R(\d+)m/)?(B(?:0[1-9]|1[0-2]|8A))\.(?:jp2|tif)$", re.IGNORECASE)
_SPACECRAFT_RE = re.compile(r"^S2([A-D])_")

_NOT_A_PRODUCT = (
    "not a Sentinel-2 product: expected a SAFE directory, a .SAFE.zip archive, "
    "MTD_MSIL1C.xml / MTD_MSIL2A.xml, or an AWS tile folder with tileInfo.json"
)


def open_location(path: Path, display: str, *, tile: str | None, chunk_m: float) -> Product:
    """Open the product at an existing path, choosing the layout adapter.

    Raises
    ------
    InputProductError, MetadataError
        As :func:`sen2core.io.read.product.open_product`.
    """
    if path.is_dir():
        return _open_dir(DirStore(path), display, tile=tile, chunk_m=chunk_m, layout="SAFE")
    if path.suffix.lower() == ".zip" or _looks_like_zip(path):
        return _open_zip(path, display, tile=tile, chunk_m=chunk_m)
    if _USER_MTD_RE.match(path.name):
        return _open_safe(DirStore(path.parent), path.name, display, tile=tile, chunk_m=chunk_m, layout="SAFE")
    if path.name == "tileInfo.json":
        return _open_aws(DirStore(path.parent), display, chunk_m=chunk_m)
    raise InputProductError(display, _NOT_A_PRODUCT)


def open_remote(href: str, *, tile: str | None, chunk_m: float, settings: RemoteSettings) -> Product:
    """Open the product at an ``s3://`` or ``http(s)://`` href, read in place.

    The href is a SAFE folder, a ``.zip`` archive (read by range requests, rasters through
    ``/vsizip/`` over ``/vsis3/`` or ``/vsicurl/``), an ``MTD_MSIL1C.xml`` /
    ``MTD_MSIL2A.xml``, an AWS tile folder or its ``tileInfo.json``. The product's GDAL
    options are ``settings``' (endpoint, addressing, requester-pays, retries).

    Raises
    ------
    RemoteAccessError
        The href (or the folder's metadata) does not exist (404) or is forbidden (403).
    TransientIOError
        The server kept failing after the retries.
    InputProductError, MetadataError
        As :func:`open_location`.
    """
    objects, key = objects_for(href, settings)
    key = key.rstrip("/")
    parent, _, name = key.rpartition("/")
    # The AWS layout reads band headers while it opens: through GDAL with the same settings.
    with rasterio.Env(**settings.gdal_options()):
        if name.lower().endswith(".zip"):
            size = objects.head(key)
            if size is None:
                raise RemoteAccessError(href, "HTTP 404: no such object", status=404)
            root_store, names = ZipStore.open(href, opener=RangeOpener(objects, key, size),
                                              vsi=f"/vsizip/{objects.vsi(key)}")  # fmt: skip
            product = _open_archive(root_store, names, href, tile=tile, chunk_m=chunk_m)
        elif _USER_MTD_RE.match(name) or name == "tileInfo.json":
            store = RemoteStore(objects, parent)
            if not store.exists(name):
                raise RemoteAccessError(href, "HTTP 404: no such object", status=404)
            product = (
                _open_aws(store, href, chunk_m=chunk_m)
                if name == "tileInfo.json"
                else _open_safe(store, name, href, tile=tile, chunk_m=chunk_m, layout="SAFE")
            )
        else:
            store = RemoteStore(objects, key)
            if store.empty:
                what = (
                    "no object under this prefix"
                    if store.listable
                    else "no MTD_MSIL1C.xml, MTD_MSIL2A.xml, manifest.safe or tileInfo.json under this URL"
                )
                raise RemoteAccessError(href, f"HTTP 404: {what}", status=404)
            product = _open_dir(store, href, tile=tile, chunk_m=chunk_m, layout="SAFE")
    return replace(product, gdal_options=settings.gdal_options())


def _looks_like_zip(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _user_mtd_name(names: list[str]) -> str | None:
    found = sorted(n for n in names if _USER_MTD_RE.match(n))
    # The compact name wins over an old-style duplicate.
    found.sort(key=lambda n: not n.upper().startswith("MTD_"))
    return found[0] if found else None


def _open_dir(store: ProductStore, display: str, *, tile: str | None, chunk_m: float, layout: Layout) -> Product:
    names = store.listdir()
    mtd = _user_mtd_name(names)
    if mtd is not None:
        return _open_safe(store, mtd, display, tile=tile, chunk_m=chunk_m, layout=layout)
    if "tileInfo.json" in names:
        return _open_aws(store, display, chunk_m=chunk_m)
    # A folder holding exactly one unpacked product (as a download often leaves it).
    if isinstance(store, DirStore):
        safes = [n for n in names if n.upper().endswith(".SAFE") and (store.root / n).is_dir()]
        if len(safes) == 1:
            return _open_dir(DirStore(store.root / safes[0]), display, tile=tile, chunk_m=chunk_m, layout=layout)
    if "manifest.safe" in names or "GRANULE" in names:
        level = ""
        if "manifest.safe" in names:
            level = f" (manifest.safe describes a {_manifest_level(store, display) or 'Sentinel-2'} product)"
        raise MetadataError(display, f"missing product metadata: no MTD_MSIL1C.xml or MTD_MSIL2A.xml{level}")
    if not names:
        raise InputProductError(display, f"{_NOT_A_PRODUCT} (the directory is empty)")
    raise InputProductError(display, _NOT_A_PRODUCT)


def _manifest_level(store: ProductStore, display: str) -> str | None:
    try:
        m = parse_manifest(store.read_bytes("manifest.safe"), product=display)
    except MetadataError:
        return None
    return {"L1C": "Level-1C", "L2A": "Level-2A"}.get(m.level or "")


def _open_zip(path: Path, display: str, *, tile: str | None, chunk_m: float) -> Product:
    root_store, names = ZipStore.open(path)
    return _open_archive(root_store, names, display, tile=tile, chunk_m=chunk_m)


def _open_archive(root_store: ZipStore, names: list[str], display: str, *, tile: str | None, chunk_m: float) -> Product:
    candidates = []
    for n in names:
        parts = n.rstrip("/").split("/")
        if len(parts) <= 2 and (_USER_MTD_RE.match(parts[-1]) or parts[-1] == "tileInfo.json"):
            candidates.append(parts)
    candidates.sort(key=lambda p: (len(p), _parts_rank(p[-1])))
    if not candidates:
        if any(n.rstrip("/").endswith("manifest.safe") for n in names):
            raise MetadataError(display, "missing product metadata: no MTD_MSIL1C.xml or MTD_MSIL2A.xml in the archive")
        raise InputProductError(display, f"{_NOT_A_PRODUCT} (the archive holds no Sentinel-2 metadata)")
    parts = candidates[0]
    prefix = parts[0] + "/" if len(parts) == 2 else ""
    store = root_store.with_prefix(prefix)
    if parts[-1] == "tileInfo.json":
        return _open_aws(store, display, chunk_m=chunk_m)
    return _open_safe(store, parts[-1], display, tile=tile, chunk_m=chunk_m, layout="SAFE.zip")


def _parts_rank(name: str) -> int:
    """Sort key of metadata file names found in an archive: compact MTD first."""
    if name.upper().startswith("MTD_"):
        return 0
    return 1 if _USER_MTD_RE.match(name) else 2


# ---------------------------------------------------------------------- SAFE


def _find_tile_metadata(
    store: ProductStore, um: UserProductMetadata, manifest: ManifestMetadata | None, tile: str | None
) -> tuple[list[str], list[str]]:
    """Candidate MTD_TL paths (best first) and the granule directories they belong to."""
    found: list[str] = []
    for f in um.image_files:
        parts = f.split("/")
        if len(parts) >= 2 and parts[0] == "GRANULE":
            compact = f"GRANULE/{parts[1]}/MTD_TL.xml"
            old_style = store.glob(f"GRANULE/{parts[1]}/S2*_MTD_*TL*.xml")
            for cand in ([compact] if store.exists(compact) else []) + old_style:
                if cand not in found:
                    found.append(cand)
    if manifest is not None:
        for rel in manifest.file_sizes:
            base = rel.rsplit("/", 1)[-1]
            if (
                (base == "MTD_TL.xml" or re.match(r"S2.*_MTD_.*TL.*\.xml$", base))
                and rel not in found
                and store.exists(rel)
            ):
                found.append(rel)
    for pattern in ("GRANULE/*/MTD_TL.xml", "GRANULE/*/S2*_MTD_*TL*.xml", "*/MTD_TL.xml", "MTD_TL.xml"):
        for cand in store.glob(pattern):
            if cand not in found:
                found.append(cand)
    if tile:
        t = tile.upper().lstrip("T")
        matching = [f for f in found if f"T{t}" in f.upper() or f"_{t}" in f.upper()]
        found = matching + [f for f in found if f not in matching]
    # Only GRANULE/<id>/ directories are granules; other hits are fallback copies of the
    # same tile metadata (seen in re-packaged products).
    granules = []
    for f in found:
        parts = f.split("/")
        if len(parts) == 3 and parts[0] == "GRANULE" and f"GRANULE/{parts[1]}" not in granules:
            granules.append(f"GRANULE/{parts[1]}")
    return found, granules


def _band_files_safe(
    store: ProductStore,
    um: UserProductMetadata,
    level: Level,
    granule_dir: str | None,
    manifest: ManifestMetadata | None,
) -> tuple[dict[str, BandFile], dict[str, str]]:
    ext = ".jp2" if (um.image_format or "JPEG2000").upper().startswith("JPEG2000") else ".tif"
    by_band: dict[str, list[tuple[int, str]]] = {}
    for f in um.image_files:
        if granule_dir and f.startswith("GRANULE/") and not f.startswith(granule_dir + "/"):
            continue
        m = _BAND_FILE_RE.search(f)
        if not m:
            continue
        band = normalize_band(m.group(1))
        res = int(m.group(2)) if m.group(2) else um.band_resolution.get(band, NOMINAL_RESOLUTION[band])
        rel = f if re.search(r"\.(jp2|tif)$", f, re.IGNORECASE) else f + ext
        by_band.setdefault(band, []).append((res, rel))

    found: dict[str, BandFile] = {}
    missing: dict[str, str] = {}
    bands = BAND_IDS if level == "L1C" else tuple(b for b in BAND_IDS if b != "B10")
    listed = list(manifest.file_sizes) if manifest is not None else []
    for band in bands:
        nominal = NOMINAL_RESOLUTION[band]
        options = sorted(by_band.get(band, []), key=lambda t: (t[0] != nominal, t[0]))
        chosen = next(((r, p) for r, p in options if store.exists(p)), None)
        if chosen is None:
            chosen = _search_band(store, band, nominal, granule_dir, listed, ext)
        if chosen is not None:
            found[band] = BandFile(band=band, path=chosen[1], resolution=chosen[0])
        else:
            missing[band] = options[0][1] if options else f"{granule_dir or 'GRANULE/*'}/IMG_DATA/*_{band}{ext}"
    return found, missing


def _search_band(
    store: ProductStore, band: str, nominal: int, granule_dir: str | None, listed: list[str], ext: str
) -> tuple[int, str] | None:
    """Find a band file the metadata did not list (or listed at a wrong path)."""
    base = granule_dir or "GRANULE/*"
    patterns = [
        (nominal, f"{base}/IMG_DATA/*_{band}{ext}"),
        (nominal, f"{base}/IMG_DATA/R{nominal}m/*_{band}_{nominal}m{ext}"),
    ] + [(r, f"{base}/IMG_DATA/R{r}m/*_{band}_{r}m{ext}") for r in (10, 20, 60) if r != nominal]
    for res, pattern in patterns:
        hits = store.glob(pattern)
        if hits:
            return res, hits[0]
    for rel in listed:
        m = _BAND_FILE_RE.search(rel)
        if m and normalize_band(m.group(1)) == band and "IMG_DATA" in rel and store.exists(rel):
            return (int(m.group(2)) if m.group(2) else nominal), rel
    return None


def _product_id(*names: str | None) -> str | None:
    for n in names:
        if n:
            n = n.rstrip("/").rsplit("/", 1)[-1]
            for suffix in (".zip", ".SAFE", ".safe"):
                if n.endswith(suffix):
                    n = n[: -len(suffix)]
            if n:
                return n
    return None


def _tile_from(*names: str | None) -> str | None:
    for n in names:
        if n:
            m = _TILE_RE.search(n)
            if m:
                return m.group(1)
    return None


def _spacecraft_from(*names: str | None) -> str | None:
    for n in names:
        if n:
            m = _SPACECRAFT_RE.match(n.rsplit("/", 1)[-1])
            if m:
                return f"Sentinel-2{m.group(1)}"
    return None


def _epsg_from_tile(tile_id: str | None) -> int | None:
    if not tile_id:
        return None
    zone = int(tile_id[:2])
    band = tile_id[2]
    return (32600 if band >= "N" else 32700) + zone


def _baseline_ge_4(baseline: str | None) -> bool | None:
    if not baseline:
        return None
    try:
        return float(baseline) >= 4.0
    except ValueError:
        return None


def _radiometry(
    level: Level,
    um: UserProductMetadata | None,
    *,
    baseline: str | None,
    spacecraft: str | None,
    sensing_time: _dt.datetime | None,
    warnings: list[str],
) -> Radiometry:
    """Resolve radiometric constants, recording each default that had to be used."""
    post4 = _baseline_ge_4(baseline)
    default_offset = -1000.0 if post4 else 0.0
    offset_name = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    if level == "L1C":
        quant = um.quantification_value if um is not None else None
        offsets = dict(um.radio_add_offset) if um is not None else {}
    else:
        quant = um.boa_quantification_value if um is not None else None
        offsets = dict(um.boa_add_offset) if um is not None else {}
    if um is None:
        warnings.append(
            f"no product metadata: QUANTIFICATION_VALUE 10000 and {offset_name} {default_offset:g} "
            f"assumed from processing baseline {baseline or 'unknown'}"
        )
    elif quant is None:
        warnings.append("QUANTIFICATION_VALUE missing: 10000 assumed")
    missing = [b for b in BAND_IDS if b not in offsets]
    if um is not None and missing and (post4 or post4 is None):
        warnings.append(
            f"{offset_name} missing for {', '.join(missing)}: {default_offset:g} assumed from processing "
            f"baseline {baseline or 'unknown'}"
        )
    for b in missing:
        offsets[b] = default_offset

    u = um.u if um is not None else None
    if u is None or not math.isfinite(u):
        if sensing_time is not None:
            u = reflectance_conversion_factor(sensing_time)
            warnings.append(f"U missing: {u:.6f} computed from the sensing date")
        else:
            u = 1.0
            warnings.append("U missing and no sensing time: 1.0 assumed")
    e0 = dict(um.solar_irradiance) if um is not None else {}
    missing_e0 = [b for b in BAND_IDS if b not in e0]
    if missing_e0:
        craft = spacecraft if spacecraft is not None and spacecraft in NOMINAL_SOLAR_IRRADIANCE else "Sentinel-2A"
        nominal = NOMINAL_SOLAR_IRRADIANCE[craft]
        for b in missing_e0:
            e0[b] = nominal[b]
        warnings.append(f"solar irradiance missing for {', '.join(missing_e0)}: nominal {craft} values used")
    return Radiometry(
        quantification_value=float(quant) if quant else 10000.0,
        add_offset=offsets,
        u=float(u),
        solar_irradiance=e0,
        aot_quantification_value=um.aot_quantification_value if um is not None else None,
        wvp_quantification_value=um.wvp_quantification_value if um is not None else None,
        nodata=um.nodata_value if um is not None and um.nodata_value is not None else 0,
    )


def _angle_warnings(tm: TileMetadata | None, level: Level, warnings: list[str]) -> None:
    if tm is None or (tm.sun_grid is None and not tm.view_grids):
        warnings.append(ANGLE_FALLBACK_WARNING)
        return
    if tm.sun_grid is None:
        warnings.append("no sun angle grid: sun angles computed from sensing time and footprint")
    if not tm.view_grids:
        warnings.append("no viewing angle grids: mean viewing angles used, nadir where unknown")
        return
    bands = BAND_IDS if level == "L1C" else tuple(b for b in BAND_IDS if b != "B10")
    lacking = [b for b in bands if b not in tm.view_grids]
    if lacking:
        warnings.append(f"no viewing angle grid for {', '.join(lacking)}: mean viewing angle used, nadir where unknown")


def _open_safe(
    store: ProductStore, mtd_name: str, display: str, *, tile: str | None, chunk_m: float, layout: Layout
) -> Product:
    if not store.exists(mtd_name):
        raise MetadataError(display, f"missing product metadata: {mtd_name} not found")
    um = parse_user_product(store.read_bytes(mtd_name), product=display, name=mtd_name)
    warnings: list[str] = list(um.warnings)
    manifest = None
    if store.exists("manifest.safe"):
        manifest = parse_manifest(store.read_bytes("manifest.safe"), product=display)
        if manifest.level is not None and manifest.level != um.level:
            warnings.append(f"manifest.safe says {manifest.level} but {mtd_name} says {um.level}; using {um.level}")

    tl_paths, granules = _find_tile_metadata(store, um, manifest, tile)
    tm: TileMetadata | None = None
    granule_dir: str | None = None
    if tl_paths:
        granule_dir = tl_paths[0].rsplit("/", 1)[0] if tl_paths[0].startswith("GRANULE/") else None
        if len(granules) > 1 and not tile:
            # A granule chosen by its tile is no fallback: only the implicit choice is reported.
            warnings.append(
                f"product holds {len(granules)} granules; using {granule_dir} (pass tile= to choose another)"
            )
        tm = parse_tile(store.read_bytes(tl_paths[0]), product=display, name=tl_paths[0])
        warnings.extend(tm.warnings)
        if tm.level is not None and tm.level != um.level:
            warnings.append(f"{tl_paths[0]} is {tm.level} tile metadata in a {um.level} product")
    else:
        warnings.append("no tile metadata (MTD_TL.xml) found: geocoding and angle grids unavailable")

    root_name = getattr(store, "root", None)
    fallback_name = root_name.name if isinstance(root_name, Path) else Path(display).name
    product_id = _product_id(um.product_uri, fallback_name, display) or "unknown"
    baseline = (
        um.processing_baseline or baseline_from_name(tm.tile_id if tm else None) or baseline_from_name(product_id)
    )
    tile_id = _tile_from(tm.tile_id if tm else None, product_id, *um.granule_ids)
    spacecraft = um.spacecraft or (manifest.spacecraft if manifest else None) or _spacecraft_from(product_id)
    sensing = (
        (tm.sensing_time if tm else None)
        or um.datatake_sensing_start
        or um.product_start_time
        or (manifest.start_time if manifest else None)
    )
    epsg = tm.epsg if tm else None
    if epsg is None:
        epsg = _epsg_from_tile(tile_id)
        if epsg is not None:
            warnings.append(f"EPSG:{epsg} derived from tile id {tile_id}")

    band_files, missing = _band_files_safe(store, um, um.level, granule_dir, manifest)
    if not band_files:
        warnings.append("no band raster files found (metadata only)")
    elif missing:
        warnings.append(f"band raster files missing for {', '.join(missing)}")
    radiometry = _radiometry(
        um.level, um, baseline=baseline, spacecraft=spacecraft, sensing_time=sensing, warnings=warnings
    )
    _angle_warnings(tm, um.level, warnings)
    return Product(
        href=display,
        layout=layout,
        product_id=product_id,
        level=um.level,
        product_type=um.product_type,
        spacecraft=spacecraft,
        sensing_time=sensing,
        processing_baseline=baseline,
        tile_id=tile_id,
        epsg=epsg,
        grids=dict(tm.grids) if tm else {},
        band_files=band_files,
        missing_bands=missing,
        radiometry=radiometry,
        user_metadata=um,
        tile_metadata=tm,
        manifest=manifest,
        tile_info=None,
        warnings=tuple(dict.fromkeys(warnings)),
        chunk_m=chunk_m,
        store=store,
    )


# ---------------------------------------------------------------------- AWS


def _open_aws(store: ProductStore, display: str, *, chunk_m: float) -> Product:
    """AWS tile folder: ``tileInfo.json`` + ``B01.jp2``..., optional ``metadata.xml`` and
    ``product_metadata.xml``."""
    ti, tm, um, warnings = _aws_metadata(store, display)
    level = _aws_level(um, tm, ti, display)
    root_name = getattr(store, "root", None)
    product_id = (
        _product_id(
            ti.product_name, um.product_uri if um else None, root_name.name if isinstance(root_name, Path) else display
        )
        or "unknown"
    )
    baseline = (
        (um.processing_baseline if um else None)
        or baseline_from_name(ti.datastrip_id)
        or baseline_from_name(ti.product_name)
        or baseline_from_name(tm.tile_id if tm else None)
    )
    spacecraft = (um.spacecraft if um else None) or _spacecraft_from(ti.product_name, ti.datastrip_id)
    sensing = (tm.sensing_time if tm else None) or ti.timestamp or (um.datatake_sensing_start if um else None)
    tile_id = _tile_from(tm.tile_id if tm else None, ti.product_name) or ti.tile_id
    if ti.tile_id and tile_id and ti.tile_id != tile_id:
        warnings.append(f"tileInfo.json says tile {ti.tile_id} but the tile metadata says {tile_id}; using {tile_id}")
    epsg = (tm.epsg if tm else None) or ti.epsg or _epsg_from_tile(tile_id)

    band_files, missing, headers = _aws_band_files(store, display, level, warnings)
    grids, epsg = _aws_grids(tm, ti, headers, epsg, warnings)
    if not band_files:
        warnings.append("no band raster files found (metadata only)")
    elif missing:
        warnings.append(f"band raster files missing for {', '.join(missing)}")

    radiometry = _radiometry(
        level, um, baseline=baseline, spacecraft=spacecraft, sensing_time=sensing, warnings=warnings
    )
    _angle_warnings(tm, level, warnings)
    return Product(
        href=display,
        layout="AWS",
        product_id=product_id,
        level=level,
        product_type=um.product_type if um else None,
        spacecraft=spacecraft,
        sensing_time=sensing,
        processing_baseline=baseline,
        tile_id=tile_id,
        epsg=epsg,
        grids=grids,
        band_files=band_files,
        missing_bands=missing,
        radiometry=radiometry,
        user_metadata=um,
        tile_metadata=tm,
        manifest=None,
        tile_info=ti,
        warnings=tuple(dict.fromkeys(warnings)),
        chunk_m=chunk_m,
        store=store,
    )


def _aws_metadata(
    store: ProductStore, display: str
) -> tuple[TileInfo, TileMetadata | None, UserProductMetadata | None, list[str]]:
    """``tileInfo.json``, then ``metadata.xml`` and ``product_metadata.xml`` where present, and their warnings."""
    ti = parse_tile_info(store.read_bytes("tileInfo.json"), product=display)
    warnings: list[str] = []
    tm = (
        parse_tile(store.read_bytes("metadata.xml"), product=display, name="metadata.xml")
        if store.exists("metadata.xml")
        else None
    )
    um = (
        parse_user_product(store.read_bytes("product_metadata.xml"), product=display, name="product_metadata.xml")
        if store.exists("product_metadata.xml")
        else None
    )
    if tm is not None:
        warnings.extend(tm.warnings)
    if um is not None:
        warnings.extend(w for w in um.warnings if "IMAGE_FILE" not in w)
    return ti, tm, um, warnings


def _aws_level(um: UserProductMetadata | None, tm: TileMetadata | None, ti: TileInfo, display: str) -> Level:
    """The processing level: from the metadata files, else from the product, datastrip or tile name."""
    level: Level | None = um.level if um else (tm.level if tm else None)
    if level is None:
        for n in (ti.product_name, ti.datastrip_id, tm.tile_id if tm else None):
            if n and re.search(r"MSI_?L1C", n):
                level = "L1C"
                break
            if n and re.search(r"MSI_?L2A", n):
                level = "L2A"
                break
    if level is None:
        raise MetadataError(display, "tileInfo.json: cannot tell the processing level (no productName or datastrip id)")
    return level


def _aws_band_files(
    store: ProductStore, display: str, level: Level, warnings: list[str]
) -> tuple[dict[str, BandFile], dict[str, str], dict[str, band_io.BandHeader]]:
    """The band files found (``B01.jp2`` or ``R60m/B01.jp2``...), the bands missing, and the headers read."""
    band_files: dict[str, BandFile] = {}
    missing: dict[str, str] = {}
    headers: dict[str, band_io.BandHeader] = {}
    candidates: dict[str, list[tuple[int | None, str]]] = {}
    for rel in store.glob("*.jp2") + store.glob("R*m/*.jp2") + store.glob("*.tif"):
        m = _AWS_BAND_RE.match(rel)
        if m:
            candidates.setdefault(normalize_band(m.group(2)), []).append((int(m.group(1)) if m.group(1) else None, rel))
    bands = BAND_IDS if level == "L1C" else tuple(b for b in BAND_IDS if b != "B10")
    chosen: dict[str, tuple[int | None, str]] = {}
    for band in bands:
        options = sorted(
            candidates.get(band, []), key=lambda t: (t[0] is not None and t[0] != NOMINAL_RESOLUTION[band], t[0] or 0)
        )
        if not options:
            missing[band] = f"{band}.jp2"
            continue
        chosen[band] = options[0]
        # Band pixel sizes are not in tileInfo.json: the file headers tell (60 m for B01 in
        # a real AWS folder, 900 m for every band of the coarse sample).
        try:
            headers[band] = band_io.read_header(
                store.gdal_path(options[0][1]),
                product=display,
                band=band,
                display=f"{store.display}/{options[0][1]}",
                gdal_options=DEFAULT_GDAL_OPTIONS,
            )
        except BandReadError as exc:
            warnings.append(f"band {band}: header unreadable ({exc.problem})")
    header_res = {round(abs(h.transform[0])) for h in headers.values()}
    common_res = next(iter(header_res)) if len(header_res) == 1 else None
    for band, (res_hint, rel) in chosen.items():
        if band in headers:
            res = round(abs(headers[band].transform[0]))
        else:
            # Unreadable header: assume the folder's common pixel size, so that reading the
            # band fails on the file rather than on a grid mismatch.
            res = res_hint or common_res or NOMINAL_RESOLUTION[band]
        band_files[band] = BandFile(band=band, path=rel, resolution=res)
    return band_files, missing, headers


def _aws_grids(
    tm: TileMetadata | None,
    ti: TileInfo,
    headers: Mapping[str, band_io.BandHeader],
    epsg: int | None,
    warnings: list[str],
) -> tuple[dict[int, ResolutionGrid], int | None]:
    """Pixel grids per resolution: the tile metadata's, else the band headers', else the tile geometry's.

    Returns the grids and the EPSG code (the headers' when no metadata gave one).
    """
    grids: dict[int, ResolutionGrid] = dict(tm.grids) if tm is not None else {}
    for header in headers.values():
        a, _, c, _, e, f = header.transform
        res = round(abs(a))
        if res not in grids:
            grids[res] = ResolutionGrid(
                resolution=res, nrows=header.shape[0], ncols=header.shape[1], ulx=c, uly=f, xdim=a, ydim=e
            )
        if epsg is None and header.epsg is not None:
            epsg = header.epsg
    if not grids and ti.bounds is not None:
        left, bottom, right, top = ti.bounds
        for res in (10, 20, 60):
            grids[res] = ResolutionGrid(
                resolution=res,
                nrows=round((top - bottom) / res),
                ncols=round((right - left) / res),
                ulx=left,
                uly=top,
                xdim=float(res),
                ydim=-float(res),
            )
        warnings.append("pixel grids derived from the tileInfo.json tile geometry")
    return grids, epsg

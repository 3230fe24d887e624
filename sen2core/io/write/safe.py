"""Sen2Cor's Level-2A SAFE layout: JPEG 2000 rasters, ``MTD_TL.xml``, ``manifest.safe``, ``MTD_MSIL2A.xml``.

:func:`write_safe` writes one product into an empty folder (the caller renames it to
``{l2a_id}.SAFE`` once complete)::

    MTD_MSIL2A.xml                                   written last: the product is done
    manifest.safe                                    sizes and SHA3-256 of every other file
    GRANULE/L2A_T{tile}_A{orbit}_{datastrip start}/
        MTD_TL.xml
        IMG_DATA/R10m/T{tile}_{datatake start}_{B02,B03,B04,B08,AOT,WVP,TCI}_10m.jp2
        IMG_DATA/R20m/..._{B01..B07,B8A,B11,B12,AOT,WVP,SCL,TCI}_20m.jp2
        IMG_DATA/R60m/..._{B01..B07,B8A,B09,B11,B12,AOT,WVP,SCL,TCI}_60m.jp2
        QI_DATA/MSK_CLDPRB_{20,60}m.jp2, MSK_SNWPRB_{20,60}m.jp2, T{tile}_{datatake start}_PVI.jp2

Only the rasters the run made are written, following Sen2Cor's band list of each
resolution folder: a ``resolution=20`` run has R20m and R60m, a scene
classification run only SCL and the masks. Layers Sen2Cor does not have (the
calibrated cloud probability, B09 at 20 m) stay out of the SAFE. Every raster is
lossless JPEG 2000 (:func:`sen2core.io.write.raster.jp2_tasks`) with no ``.aux.xml``
sidecar, as Sen2Cor writes them: no-data (0) and quantification are in
``MTD_MSIL2A.xml``. DATASTRIP, HTML, INSPIRE.xml and the Level-1C quality masks are
not written.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from dask.base import compute
from rasterio.enums import Resampling

from sen2core.errors import OutputError
from sen2core.io.write.mtd_l2a import (
    IMAGE_ORDER,
    QI_MASKS,
    SafeNaming,
    product_metadata_xml,
    safe_naming,
    tile_metadata_xml,
)
from sen2core.io.write.raster import RasterSpec, jp2_creation_options, jp2_tasks
from sen2core.io.write.rasters import ProductRasters, logical_name, record_negative_fractions, store_group
from sen2core.io.write.xmlbuild import iso_ms, iso_us, xml_bytes

__all__ = ["PRODUCT_METADATA", "safe_outputs", "write_safe"]

log = logging.getLogger(__name__)

#: The file written last: its presence means the SAFE is complete.
PRODUCT_METADATA = "MTD_MSIL2A.xml"
#: Preview pixel size (m): 343 x 343 px for a full tile, as Sen2Cor's PVI.
PVI_RESOLUTION_M = 320

_NS_XFDU = "urn:ccsds:schema:xfdu:1"
_NS_SAFE = "http://www.esa.int/safe/sentinel/1.1"
_MASK_IDS = {"MSK_CLDPRB": "CloudPrbMask", "MSK_SNWPRB": "SnowPrbMask"}


def safe_outputs(product: ProductRasters) -> dict[str, tuple[da.Array, RasterSpec]]:
    """The rasters of the SAFE layout: relative file name -> (lazy array, spec)."""
    return _selection(product, safe_naming(product))[0]


def write_safe(product: ProductRasters, folder: Path, store: bool = True) -> list[str]:
    """Write ``product`` as a Level-2A SAFE into ``folder`` (empty); return the relative file names.

    All rasters are computed in one ``dask.compute``, so inputs shared by several
    outputs (the corrected bands behind the 20 m, 60 m and TCI files) are computed
    once. ``MTD_MSIL2A.xml`` is written last.

    Parameters
    ----------
    product
        Lazy rasters by logical name (``B02_10m``, ``SCL_20m``, ``MSK_CLDPRB_60m``...),
        the run summary and the Level-1C product.
    folder
        An existing empty folder, renamed to ``{l2a_id}.SAFE`` by the caller.
    store
        False when the rasters are already in their staged files in ``folder``
        (written by processing tiles): they are only encoded.

    Returns
    -------
    list of str
        POSIX paths relative to ``folder``, sorted.

    Raises
    ------
    OutputError
        Nothing to write, a raster that does not fit its resolution's grid, or a
        file that cannot be written.
    """
    folder = Path(folder)
    naming = safe_naming(product)
    generated = _dt.datetime.now(_dt.UTC)
    outputs, image_files, masks = _selection(product, naming)
    if not outputs:
        raise OutputError(f"{product.l2a_id}: no raster of the SAFE layout in this run")
    for rel, (_, spec) in outputs.items():
        res = _resolution_of(rel)
        if abs(spec.geobox.resolution - res) > 1e-6:
            raise OutputError(f"{rel}: raster grid is {spec.geobox.resolution:g} m, not {res} m")
    log.info("%s: writing %d JPEG 2000 files", product.l2a_id, len(outputs))
    compute(*jp2_tasks(outputs, folder, group=store_group, store=store))
    finest: dict[str, tuple[int, str]] = {}
    for rel in outputs:
        kind, res = Path(rel).stem.split("_")[-2], _resolution_of(rel)
        if kind not in finest or res < finest[kind][0]:
            finest[kind] = (res, rel)
    record_negative_fractions(product, {rel: kind for kind, (_, rel) in finest.items()}, folder)

    pvi = _write_preview(folder, naming, image_files)
    tile_xml = tile_metadata_xml(product, naming, masks, pvi, generated)
    _write_bytes(folder / naming.tile_metadata_file, tile_xml)
    mtd = product_metadata_xml(product, naming, image_files, generated)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    stray = [f for f in files if f.endswith((".part.tif", ".aux.xml"))]
    if stray:
        raise OutputError(f"{folder}: unexpected files left by the encoder: {', '.join(stray)}")
    entries = [(rel, (folder / rel).stat().st_size, _sha3(folder / rel)) for rel in files]
    entries.append((PRODUCT_METADATA, len(mtd), hashlib.sha3_256(mtd).hexdigest().upper()))
    _write_bytes(folder / "manifest.safe", manifest_xml(product, entries, generated))
    # Last: a SAFE without MTD_MSIL2A.xml is never taken for a finished product.
    _write_bytes(folder / PRODUCT_METADATA, mtd)
    return sorted([*files, "manifest.safe", PRODUCT_METADATA])


def _selection(
    product: ProductRasters, naming: SafeNaming
) -> tuple[dict[str, tuple[da.Array, RasterSpec]], list[str], list[tuple[str, str]]]:
    """Files to write (relative path -> raster), ``IMAGE_FILE`` entries, and quality masks ``(type, path)``."""
    outputs: dict[str, tuple[da.Array, RasterSpec]] = {}
    image_files: list[str] = []
    # Sen2Cor writes B01 at 20 m from processing baseline 04.00 on.
    b01_at_20 = _baseline_value(naming.baseline) >= 4.0
    for res, kinds in IMAGE_ORDER.items():
        for kind in kinds:
            name = logical_name(kind, res)
            if name not in product.rasters or (kind == "B01" and res == 20 and not b01_at_20):
                continue
            rel = naming.image_file(kind, res)
            outputs[rel + ".jp2"] = product.rasters[name]
            image_files.append(rel)
    masks: list[tuple[str, str]] = []
    for res in (20, 60):
        for kind in QI_MASKS:
            name = logical_name(kind, res)
            if name in product.rasters:
                rel = naming.qi_file(kind, res)
                outputs[rel] = product.rasters[name]
                masks.append((kind, rel))
    return outputs, image_files, masks


def _baseline_value(baseline: str) -> float:
    try:
        return float(baseline)
    except ValueError:
        return 99.99


def _resolution_of(rel: str) -> int:
    return int(rel.rsplit("_", 1)[-1].split(".")[0].rstrip("m"))


def _write_bytes(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc})") from exc


def _sha3(path: Path) -> str:
    h = hashlib.sha3_256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest().upper()


# ----------------------------------------------------------------------------- preview


def _write_preview(folder: Path, naming: SafeNaming, image_files: list[str]) -> str | None:
    """``QI_DATA/..._PVI.jp2``: the finest TCI averaged to 320 m (343 x 343 px for a full tile).

    Read from the TCI just written, through its JPEG 2000 resolution levels, so it
    costs a fraction of a full decode. Returns None when the run made no TCI.
    """
    tci = next((f for f in image_files if f.endswith(tuple(f"_TCI_{r}m" for r in (10, 20, 60)))), None)
    if tci is None:
        return None
    rel = naming.pvi_file
    dst = folder / rel
    try:
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(folder / f"{tci}.jp2") as src:
            res = abs(src.transform.a)
            rows = max(1, int(src.height * res // PVI_RESOLUTION_M))
            cols = max(1, int(src.width * res // PVI_RESOLUTION_M))
            data = src.read(out_shape=(src.count, rows, cols), resampling=Resampling.average)
            transform = src.transform * Affine.scale(src.width / cols, src.height / rows)
            # rasterio's writer refuses tile edges that are not multiples of 16: the
            # preview is small enough to be a single tile anyway.
            options = {k: v for k, v in jp2_creation_options(cols, rows).items() if not k.startswith("BLOCK")}
            profile = {"driver": "JP2OpenJPEG", "width": cols, "height": rows, "count": src.count,
                       "dtype": "uint8", "crs": src.crs, "transform": transform}  # fmt: skip
        with (
            rasterio.Env(GDAL_PAM_ENABLED="NO"),
            rasterio.open(dst, "w", **profile, **options) as out,
        ):
            out.write(np.asarray(data, dtype=np.uint8))
    except rasterio.errors.RasterioError as exc:
        raise OutputError(f"{dst}: cannot write the preview image: {exc}") from exc
    return rel


# ----------------------------------------------------------------------------- manifest.safe


def _data_object_id(rel: str) -> tuple[str, str]:
    """(dataObject ID, mimeType) of a file, as in Sen2Cor's manifests."""
    name = rel.rsplit("/", 1)[-1]
    if rel == PRODUCT_METADATA:
        return "S2_Level-2A_Product_Metadata", "text/xml"
    if name == "MTD_TL.xml":
        return "S2_Level-2A_Tile1_Metadata", "application/xml"
    if name.endswith("_PVI.jp2"):
        return "Preview_0_Tile1_Data", "application/octet-stream"
    stem = name[: -len(".jp2")]
    kind, res = stem.rsplit("_", 1)
    if stem.startswith("MSK_"):
        base = _MASK_IDS.get(kind, kind)
        return (f"{base}_Tile1_Data" if res == "20m" else f"{base}_1_Tile1_Data"), "application/octet-stream"
    band = kind.rsplit("_", 1)[-1]
    return f"IMG_DATA_Band_{band}_{res}_Tile1_Data", "application/octet-stream"


def manifest_xml(product: ProductRasters, files: Iterable[tuple[str, int, str]], generated: _dt.datetime) -> bytes:
    """``manifest.safe`` listing ``files`` as ``(relative path, size, SHA3-256)``.

    The content units are flat (one per file), the metadata section holds the
    acquisition period, orbit, platform, processing (with the processor) and the
    footprint when the Level-1C metadata gives them.
    """
    # Prefixes written literally (ElementTree's prefix registry is process-global).
    x, s = "xfdu:", "safe:"
    l1c = product.product
    files = list(files)
    version = "esa/safe/sentinel/1.1/sentinel-2/msi/archive_l2a_user_product"
    root = ET.Element(f"{x}XFDU", {"xmlns:xfdu": _NS_XFDU, "xmlns:safe": _NS_SAFE, "version": version})
    ipm = ET.SubElement(root, "informationPackageMap")
    top = ET.SubElement(ipm, f"{x}contentUnit", dmdID="acquisitionPeriod platform", pdiID="processing",
                        textInfo="SENTINEL-2 MSI Level-2A User Product", unitType="Product_Level-2A")  # fmt: skip
    for rel, _, _ in files:
        ident, _ = _data_object_id(rel)
        unit_id = ident.replace("_Data", "_Unit").replace("_Metadata", "_Metadata_Unit")
        unit_type = "Metadata Unit" if rel.endswith(".xml") else "Measurement Data Unit"
        unit = ET.SubElement(top, f"{x}contentUnit", ID=unit_id, unitType=unit_type)
        ET.SubElement(unit, "dataObjectPointer", dataObjectID=ident)
    ms = ET.SubElement(root, "metadataSection")

    def wrap(ident: str, text: str, category: str = "DMD", classification: str = "DESCRIPTION") -> ET.Element:
        mo = ET.SubElement(ms, "metadataObject", ID=ident, category=category, classification=classification)
        mw = ET.SubElement(mo, "metadataWrap", mimeType="text/xml", textInfo=text, vocabularyName="Sentinel-SAFE")
        return ET.SubElement(mw, "xmlData")

    um = l1c.user_metadata
    start = (um.datatake_sensing_start or um.product_start_time) if um is not None else None
    start = start or l1c.sensing_time
    if start is not None:
        period = ET.SubElement(wrap("acquisitionPeriod", "Acquisition Period"), f"{s}acquisitionPeriod")
        ET.SubElement(period, f"{s}startTime").text = iso_ms(start)
    sat = (l1c.spacecraft or "")[-1:].upper()
    if sat:
        pl = ET.SubElement(wrap("platform", "Platform Description"), f"{s}platform")
        ET.SubElement(pl, f"{s}familyName").text = "SENTINEL"
        ET.SubElement(pl, f"{s}number").text = f"2{sat}"
        ins = ET.SubElement(pl, f"{s}instrument")
        ET.SubElement(ins, f"{s}familyName", abbreviation="MSI").text = "Multi-Spectral Instrument"
    proc = ET.SubElement(wrap("processing", "Processing", "PDI", "PROVENANCE"), f"{s}processing",
                         name="Generation of Level-2A User Product", start=iso_us(generated))  # fmt: skip
    facility = ET.SubElement(proc, f"{s}facility", name="sen2core")
    processor = str(product.summary.get("processor") or "sen2core").split()
    ET.SubElement(facility, f"{s}software", name=processor[0], version=processor[-1] if len(processor) > 1 else "")
    ET.SubElement(proc, f"{s}resource", name=f"{l1c.product_id}.SAFE", role="Level-1C product")

    dos = ET.SubElement(root, "dataObjectSection")
    for rel, size, digest in files:
        ident, mime = _data_object_id(rel)
        do = ET.SubElement(dos, "dataObject", ID=ident)
        bs = ET.SubElement(do, "byteStream", mimeType=mime, size=str(size))
        ET.SubElement(bs, "fileLocation", href=f"./{rel}", locatorType="URL")
        ET.SubElement(bs, "checksum", checksumName="SHA3-256").text = digest
    return xml_bytes(root)

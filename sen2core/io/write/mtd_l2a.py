"""Builders of the Level-2A metadata files ``MTD_MSIL2A.xml`` and ``MTD_TL.xml``.

The files follow the element names, order and namespaces of Sen2Cor's products
(PSD 14.x, processing baseline 04.00 and later; see the real samples under
``tests/data/metadata``), so that GDAL's SENTINEL2 driver and sen2core's own parsers
read them as Level-2A products. They are built with :mod:`xml.etree.ElementTree`
from:

- the Level-1C :class:`~sen2core.io.read.product.Product` the run started from. What the
  parsed metadata does not keep (datatake identifier, footprint, spectral responses,
  auxiliary data references, angle grids) is copied element by element from the
  Level-1C ``MTD_MSIL1C.xml`` / ``MTD_TL.xml``, read again with :mod:`defusedxml`;
  when they cannot be read (an AWS tile folder without them), it is rebuilt from
  the parsed values;
- the run summary of :class:`~sen2core.io.write.rasters.ProductRasters` (scene
  classification percentages, atmosphere: AOT retrieval method, granule mean AOT
  and water vapour, ozone; LUT id; processor; BOA encoding).

:class:`SafeNaming` holds the file and identifier names of the SAFE (granule folder,
tile file prefix, image file paths); :func:`read_quality_indicators` reads the
percentages and atmosphere back from a written ``MTD_MSIL2A.xml``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sen2core.errors import MetadataError, OutputError
from sen2core.io.read.metadata import BAND_IDS, AngleGrid
from sen2core.io.read.mtd_product import baseline_from_name
from sen2core.io.write.xmlbuild import XSI, grid_value, iso_ms, iso_us, sub, xml_bytes
from sen2core.io.xmlutil import find_text, parse_xml
from sen2core.kernels.scene_class.legend import SCL_CLASSES

if TYPE_CHECKING:
    from sen2core.io.read.product import Product
    from sen2core.io.write.rasters import ProductRasters

__all__ = [
    "CLASS_PERCENTAGE_KEYS",
    "IMAGE_ORDER",
    "QI_MASKS",
    "SCENE_CLASSES",
    "SafeNaming",
    "product_metadata_xml",
    "read_quality_indicators",
    "safe_naming",
    "tile_metadata_xml",
]

_NS_UP = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd"
_NS_TL = "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd"

#: Scene classification classes as Sen2Cor lists them in ``Scene_Classification_List``.
SCENE_CLASSES: tuple[str, ...] = tuple(c.sen2cor_text for c in SCL_CLASSES)
#: ``Image_Content_QI`` percentages of ``MTD_MSIL2A.xml``, in Sen2Cor's order (run summary keys).
CLASS_PERCENTAGE_KEYS: tuple[str, ...] = (
    "CLOUDY_PIXEL_OVER_LAND_PERCENTAGE", "NODATA_PIXEL_PERCENTAGE", "SATURATED_DEFECTIVE_PIXEL_PERCENTAGE",
    "DARK_FEATURES_PERCENTAGE", "CLOUD_SHADOW_PERCENTAGE", "VEGETATION_PERCENTAGE", "NOT_VEGETATED_PERCENTAGE",
    "WATER_PERCENTAGE", "UNCLASSIFIED_PERCENTAGE", "MEDIUM_PROBA_CLOUDS_PERCENTAGE", "HIGH_PROBA_CLOUDS_PERCENTAGE",
    "THIN_CIRRUS_PERCENTAGE", "SNOW_ICE_PERCENTAGE",
)  # fmt: skip
#: Accuracies Sen2Cor writes, always as 0.0 (it has no estimate of them).
_ACCURACY_KEYS = ("RADIATIVE_TRANSFER_ACCURACY", "WATER_VAPOUR_RETRIEVAL_ACCURACY", "AOT_RETRIEVAL_ACCURACY")
#: Atmosphere keys of the run summary written in ``Image_Content_QI`` (PSD 14.8 and later).
_ATMOSPHERE_KEYS = ("AOT_RETRIEVAL_METHOD", "GRANULE_MEAN_AOT", "GRANULE_MEAN_WV", "OZONE_SOURCE", "OZONE_VALUE")
_TEXT_KEYS = frozenset({"AOT_RETRIEVAL_METHOD", "OZONE_SOURCE"})
#: Image files per resolution folder, in the order of Sen2Cor's ``Granule`` listing.
IMAGE_ORDER: Mapping[int, tuple[str, ...]] = {
    10: ("B02", "B03", "B04", "B08", "TCI", "AOT", "WVP"),
    20: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "TCI", "AOT", "WVP", "SCL"),
    60: ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12", "TCI", "AOT", "WVP", "SCL"),
}
#: Quality masks of ``QI_DATA`` (Sen2Cor writes them at 20 and 60 m).
QI_MASKS: tuple[str, ...] = ("MSK_CLDPRB", "MSK_SNWPRB")

_L1C_ID_RE = re.compile(r"^(S2[A-Z_])_(OPER|USER)_MSI_L1C_(TL|DS)_(.{4})_(\d{8}T\d{6})_(.+)_N(\d{2}\.\d{2})$")
_ORBIT_RE = re.compile(r"_A(\d{6})(?:_|$)")
_DS_START_RE = re.compile(r"_S(\d{8}T\d{6})(?:_|$)")
_REL_ORBIT_RE = re.compile(r"_R(\d{3})(?:_|$)")


# ----------------------------------------------------------------------------- naming


@dataclass(frozen=True)
class SafeNaming:
    """File and identifier names of one Level-2A SAFE."""

    l2a_id: str
    """Product identifier (``S2A_MSIL2A_20230715T102040_N9001_R065_T31TCJ_20230715T132006``)."""
    tile: str
    """MGRS tile (``31TCJ``)."""
    file_prefix: str
    """Prefix of the image files: tile and datatake sensing start (``T31TCJ_20230715T102040``)."""
    granule: str
    """Granule folder (``L2A_T31TCJ_A042104_20230715T102032``)."""
    baseline: str
    """Processing baseline (``90.01`` for sen2core 0.1: ``N9{major}{minor:02d}``)."""

    @property
    def granule_dir(self) -> str:
        """``GRANULE/{granule}``."""
        return f"GRANULE/{self.granule}"

    def image_file(self, kind: str, res: int) -> str:
        """``IMAGE_FILE`` entry (no extension): ``GRANULE/../IMG_DATA/R20m/T.._B8A_20m``."""
        return f"{self.granule_dir}/IMG_DATA/R{res}m/{self.file_prefix}_{kind}_{res}m"

    def qi_file(self, kind: str, res: int) -> str:
        """Quality mask file: ``GRANULE/../QI_DATA/MSK_CLDPRB_20m.jp2``."""
        return f"{self.granule_dir}/QI_DATA/{kind}_{res}m.jp2"

    @property
    def pvi_file(self) -> str:
        """Preview image: ``GRANULE/../QI_DATA/T31TCJ_20230715T102040_PVI.jp2``."""
        return f"{self.granule_dir}/QI_DATA/{self.file_prefix}_PVI.jp2"

    @property
    def tile_metadata_file(self) -> str:
        """``GRANULE/../MTD_TL.xml``."""
        return f"{self.granule_dir}/MTD_TL.xml"


def safe_naming(product: ProductRasters) -> SafeNaming:
    """Names of the SAFE of ``product``, derived from its Level-2A id and its Level-1C granule.

    GDAL's SENTINEL2 driver rebuilds image file names from ``PRODUCT_URI``
    (characters 10-26: datatake start, 38-44: tile), so the file prefix comes from
    the Level-2A id when it has the compact form.

    Raises
    ------
    OutputError
        If the tile or the sensing time is unknown.
    """
    l1c = product.product
    if l1c.tile_id is None or l1c.sensing_time is None:
        raise OutputError(f"{product.l2a_id}: tile or sensing time unknown: cannot name the SAFE files")
    parts = product.l2a_id.split("_")
    compact = len(parts) == 7 and parts[1] == "MSIL2A" and re.fullmatch(r"\d{8}T\d{6}", parts[2]) is not None
    start = parts[2] if compact else f"{_datatake_start(l1c):%Y%m%dT%H%M%S}"
    granule = _l1c_granule(l1c)
    if granule is not None and granule.startswith("L1C_"):
        granule = "L2A_" + granule[4:]
    else:
        ds_start = _match(_DS_START_RE, _datastrip_id(l1c)) or f"{l1c.sensing_time:%Y%m%dT%H%M%S}"
        granule = f"L2A_T{l1c.tile_id}_A{_absolute_orbit(l1c):06d}_{ds_start}"
    baseline = baseline_from_name(product.l2a_id) or "99.99"
    return SafeNaming(product.l2a_id, l1c.tile_id, f"T{l1c.tile_id}_{start}", granule, baseline)


def _match(pattern: re.Pattern[str], text: str | None) -> str | None:
    m = pattern.search(text or "")
    return m.group(1) if m else None


def _l1c_granule(l1c: Product) -> str | None:
    """Granule folder name of the Level-1C product (``L1C_T31TCJ_A042104_20230715T102032``)."""
    candidates = list(l1c.user_metadata.image_files if l1c.user_metadata else ())
    if l1c.tile_metadata is not None:
        candidates.append(l1c.tile_metadata.source)
    for path in candidates:
        parts = path.split("/")
        if len(parts) >= 3 and parts[0] == "GRANULE":
            return parts[1]
    return None


def _tile_id(l1c: Product) -> str | None:
    if l1c.tile_metadata is not None and l1c.tile_metadata.tile_id:
        return l1c.tile_metadata.tile_id
    ids = l1c.user_metadata.granule_ids if l1c.user_metadata else ()
    return ids[0] if ids else None


def _datastrip_id(l1c: Product) -> str | None:
    if l1c.tile_metadata is not None and l1c.tile_metadata.datastrip_id:
        return l1c.tile_metadata.datastrip_id
    ids = l1c.user_metadata.datastrip_ids if l1c.user_metadata else ()
    return ids[0] if ids else None


def _absolute_orbit(l1c: Product) -> int:
    for text in (_tile_id(l1c), _l1c_granule(l1c)):
        orbit = _match(_ORBIT_RE, text)
        if orbit is not None:
            return int(orbit)
    return 0


def _datatake_start(l1c: Product) -> _dt.datetime:
    um = l1c.user_metadata
    start = (um.datatake_sensing_start or um.product_start_time) if um is not None else None
    assert l1c.sensing_time is not None
    return start or l1c.sensing_time


def _l2a_id_from_l1c(l1c_id: str | None, naming: SafeNaming, generated: _dt.datetime) -> str | None:
    """Level-2A tile or datastrip identifier made from the Level-1C one, as Sen2Cor's user runs name them."""
    m = _L1C_ID_RE.match(l1c_id or "")
    if m is None:
        return None
    sat, _, kind, centre, _, rest, _ = m.groups()
    return f"{sat}_USER_MSI_L2A_{kind}_{centre}_{generated:%Y%m%dT%H%M%S}_{rest}_N{naming.baseline}"


# ----------------------------------------------------------------------------- formatting


def _fixed(v: float) -> str:
    """Six decimals, as Sen2Cor writes percentages and means."""
    return f"{float(v):.6f}"


def _root(tag: str, namespace: str) -> tuple[ET.Element, str]:
    """Root element with the ``n1`` prefix written literally.

    ElementTree's prefix registry is global: two products built at once in
    different threads could swap ``n1`` between the product and tile namespaces.
    Literal ``n1:`` names and ``xmlns`` attributes serialise the same everywhere.
    """
    attrib = {"xmlns:n1": namespace, "xmlns:xsi": XSI, "xsi:schemaLocation": namespace}
    return ET.Element(f"n1:{tag}", attrib), "n1:"


def _comment(product: ProductRasters) -> str:
    processor = str(product.summary.get("processor") or "sen2core")
    lut = product.summary.get("lut_id")
    return f"Level-2A product made by {processor} from {product.product.product_id}" + (f" (LUT {lut})" if lut else "")


# ----------------------------------------------------------------------------- Level-1C XML


def _l1c_xml(l1c: Product, name: str | None) -> ET.Element | None:
    """The Level-1C metadata file ``name`` parsed again (defusedxml), or None when unreadable."""
    if not name:
        return None
    try:
        return parse_xml(l1c.store.read_bytes(name), product=l1c.href, name=name)
    except (OSError, MetadataError):
        return None


def _copy_children(src: ET.Element | None, dst: ET.Element, tags: Iterable[str] | None = None) -> None:
    if src is None:
        return
    wanted = None if tags is None else set(tags)
    for child in src:
        if isinstance(child.tag, str) and (wanted is None or child.tag in wanted):
            dst.append(copy.deepcopy(child))


# ----------------------------------------------------------------------------- MTD_MSIL2A.xml


def product_metadata_xml(
    product: ProductRasters, naming: SafeNaming, image_files: Sequence[str], generated: _dt.datetime
) -> bytes:
    """``MTD_MSIL2A.xml`` of ``product``.

    Parameters
    ----------
    product
        The run's rasters and summary, with the Level-1C product.
    naming
        Names of the SAFE (:func:`safe_naming`).
    image_files
        ``IMAGE_FILE`` entries (relative to the SAFE, no extension) of the written
        rasters, in Sen2Cor's order (:data:`IMAGE_ORDER`).
    generated
        Generation time (UTC).

    Returns
    -------
    bytes
        UTF-8 XML.
    """
    l1c = product.product
    summary = product.summary
    src = _l1c_xml(l1c, l1c.user_metadata.source if l1c.user_metadata else None)
    src_gi = src.find("General_Info") if src is not None else None
    src_info = src_gi.find("Product_Info") if src_gi is not None else None
    src_chars = src_gi.find("Product_Image_Characteristics") if src_gi is not None else None
    start = _datatake_start(l1c)

    root, n1 = _root("Level-2A_User_Product", _NS_UP)
    gi = sub(root, f"{n1}General_Info")
    pi = sub(gi, "Product_Info")
    um = l1c.user_metadata
    sub(pi, "PRODUCT_START_TIME", iso_ms((um.product_start_time if um else None) or start))
    sub(pi, "PRODUCT_STOP_TIME", find_text(src_info, "PRODUCT_STOP_TIME") or iso_ms(start))
    sub(pi, "PRODUCT_URI", f"{product.l2a_id}.SAFE")
    sub(pi, "PROCESSING_LEVEL", "Level-2A")
    sub(pi, "PRODUCT_TYPE", "S2MSI2A")
    sub(pi, "PROCESSING_BASELINE", naming.baseline)
    sub(pi, "GENERATION_TIME", iso_us(generated))
    sub(pi, "PREVIEW_IMAGE_URL", "Not applicable")
    sub(pi, "PREVIEW_GEO_INFO", "Not applicable")
    datatake = src_info.find("Datatake") if src_info is not None else None
    if datatake is not None:
        pi.append(copy.deepcopy(datatake))
    else:
        _datatake(pi, l1c, start)
    qo = sub(pi, "Query_Options", completeSingleTile="true")
    sub(qo, "PRODUCT_FORMAT", "SAFE_COMPACT")
    gl = sub(sub(pi, "Product_Organisation"), "Granule_List")
    datastrip = _l2a_id_from_l1c(_datastrip_id(l1c), naming, generated) or f"{naming.l2a_id}_DS"
    granule_id = _l2a_id_from_l1c(_tile_id(l1c), naming, generated) or naming.granule
    gr = sub(gl, "Granule", datastripIdentifier=datastrip, granuleIdentifier=granule_id, imageFormat="JPEG2000")
    for f in image_files:
        sub(gr, "IMAGE_FILE", f)

    pic = sub(gi, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        sv = sub(pic, "Special_Values")
        sub(sv, "SPECIAL_VALUE_TEXT", text)
        sub(sv, "SPECIAL_VALUE_INDEX", index)
    ido = sub(pic, "Image_Display_Order")
    for channel, index in (("RED_CHANNEL", 3), ("GREEN_CHANNEL", 2), ("BLUE_CHANNEL", 1)):
        sub(ido, channel, index)
    qvl = sub(pic, "QUANTIFICATION_VALUES_LIST")
    sub(qvl, "BOA_QUANTIFICATION_VALUE", 10000, unit="none")
    sub(qvl, "AOT_QUANTIFICATION_VALUE", "1000.0", unit="none")
    sub(qvl, "WVP_QUANTIFICATION_VALUE", "1000.0", unit="cm")
    # The processing baseline (9x.yy) is above 04.00, where readers assume -1000 when
    # the list is absent: the legacy encoding therefore writes 0 explicitly.
    offset = 0 if summary.get("legacy_encoding") else -1000
    bol = sub(pic, "BOA_ADD_OFFSET_VALUES_LIST")
    for i in range(len(BAND_IDS)):
        sub(bol, "BOA_ADD_OFFSET", offset, band_id=str(i))
    rc = sub(pic, "Reflectance_Conversion")
    sub(rc, "U", repr(float(l1c.radiometry.u)))
    sil = sub(rc, "Solar_Irradiance_List")
    for i, band in enumerate(BAND_IDS):
        if band in l1c.radiometry.solar_irradiance:
            sub(sil, "SOLAR_IRRADIANCE", f"{l1c.radiometry.solar_irradiance[band]:g}", bandId=str(i), unit="W/m²/µm")
    _copy_children(src_chars, pic, ("Spectral_Information_List", "PHYSICAL_GAINS", "REFERENCE_BAND"))
    scl = sub(pic, "Scene_Classification_List")
    for index, text in enumerate(SCENE_CLASSES):
        sc = sub(scl, "Scene_Classification_ID")
        sub(sc, "SCENE_CLASSIFICATION_TEXT", text)
        sub(sc, "SCENE_CLASSIFICATION_INDEX", index)

    geo = sub(root, f"{n1}Geometric_Info")
    _copy_children(src.find("Geometric_Info") if src is not None else None, geo)
    if not len(geo):
        crs = sub(geo, "Coordinate_Reference_System")
        sub(crs, "GEO_TABLES", "EPSG", version="1")
        sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")

    aux = sub(root, f"{n1}Auxiliary_Data_Info")
    l1c_aux = ("GIPP_List", "PRODUCTION_DEM_TYPE", "IERS_BULLETIN_FILENAME", "GRI_List", "ECMWF_DATA_REF")
    _copy_children(src.find("Auxiliary_Data_Info") if src is not None else None, aux, l1c_aux)
    lut = sub(aux, "LUT_List")
    sub(lut, "LUT_FILENAME", summary.get("lut_id") or "None")
    # sen2core uses none of Sen2Cor's climatology maps.
    for tag in ("SNOW_CLIMATOLOGY_MAP", "ESACCI_WaterBodies_Map", "ESACCI_LandCover_Map",
                "ESACCI_SnowCondition_Map_Dir"):  # fmt: skip
        sub(aux, tag, "None")

    qii = sub(root, f"{n1}Quality_Indicators_Info")
    percentages: Mapping[str, Any] = summary.get("class_percentages") or {}
    if "CLOUDY_PIXEL_PERCENTAGE" in percentages:
        sub(qii, "Cloud_Coverage_Assessment", _fixed(percentages["CLOUDY_PIXEL_PERCENTAGE"]))
    src_qii = src.find("Quality_Indicators_Info") if src is not None else None
    tqa = src_qii.find("Technical_Quality_Assessment") if src_qii is not None else None
    if tqa is not None:
        qii.append(copy.deepcopy(tqa))
    else:
        tqa = sub(qii, "Technical_Quality_Assessment")
        sub(tqa, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
        sub(tqa, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    _image_content_qi(qii, summary)
    return xml_bytes(root, _comment(product))


def _datatake(parent: ET.Element, l1c: Product, start: _dt.datetime) -> None:
    """``Datatake`` rebuilt from the parsed Level-1C metadata (no MTD_MSIL1C.xml to copy from)."""
    sat = (l1c.spacecraft or l1c.product_id or "S2A")[-1:].upper()
    baseline = l1c.processing_baseline or "00.00"
    ident = f"GS2{sat}_{start:%Y%m%dT%H%M%S}_{_absolute_orbit(l1c):06d}_N{baseline}"
    dt = sub(parent, "Datatake", datatakeIdentifier=ident)
    sub(dt, "SPACECRAFT_NAME", l1c.spacecraft or f"Sentinel-2{sat}")
    sub(dt, "DATATAKE_TYPE", "INS-NOBS")
    sub(dt, "DATATAKE_SENSING_START", iso_ms(start))
    rel = _match(_REL_ORBIT_RE, l1c.product_id)
    if rel is not None:
        sub(dt, "SENSING_ORBIT_NUMBER", int(rel))
    # Sentinel-2 acquires on the descending (day-side) pass.
    sub(dt, "SENSING_ORBIT_DIRECTION", "DESCENDING")


def _image_content_qi(parent: ET.Element, summary: Mapping[str, Any], tile: bool = False,
                      degraded: str | None = None) -> None:  # fmt: skip
    percentages: Mapping[str, Any] = summary.get("class_percentages") or {}
    atmosphere: Mapping[str, Any] = summary.get("atmosphere") or {}
    ic = sub(parent, "Image_Content_QI")
    keys: list[str] = list(CLASS_PERCENTAGE_KEYS)
    if tile:
        keys = ["CLOUDY_PIXEL_PERCENTAGE", keys[0], "DEGRADED_MSI_DATA_PERCENTAGE"] + keys[1:]
    for key in keys:
        if key == "DEGRADED_MSI_DATA_PERCENTAGE":
            sub(ic, key, degraded if degraded is not None else _fixed(0.0))
        elif percentages.get(key) is not None:
            sub(ic, key, _fixed(percentages[key]))
    for key in _ACCURACY_KEYS:
        sub(ic, key, "0.0")
    for key in _ATMOSPHERE_KEYS:
        value = atmosphere.get(key)
        if value is None:
            continue
        sub(ic, key, str(value) if key in _TEXT_KEYS else _fixed(value))


# ----------------------------------------------------------------------------- MTD_TL.xml


def tile_metadata_xml(
    product: ProductRasters, naming: SafeNaming, masks: Sequence[tuple[str, str]], pvi: str | None,
    generated: _dt.datetime,
) -> bytes:  # fmt: skip
    """``GRANULE/<granule>/MTD_TL.xml`` of ``product``.

    Parameters
    ----------
    product
        The run's rasters and summary, with the Level-1C product.
    naming
        Names of the SAFE (:func:`safe_naming`).
    masks
        ``(type, path)`` of the quality masks written (``("MSK_CLDPRB", "GRANULE/../MSK_CLDPRB_20m.jp2")``).
    pvi
        Path of the preview image, or None when none was written.
    generated
        Generation time (UTC), as in ``MTD_MSIL2A.xml``.

    Returns
    -------
    bytes
        UTF-8 XML.

    Raises
    ------
    OutputError
        If the Level-1C product has no tile geocoding.
    """
    l1c = product.product
    tm = l1c.tile_metadata
    if l1c.epsg is None or not l1c.grids:
        raise OutputError(f"{product.l2a_id}: the Level-1C product has no tile geocoding")
    src = _l1c_xml(l1c, tm.source if tm is not None else None)
    src_gi = src.find("General_Info") if src is not None else None

    root, n1 = _root("Level-2A_Tile_ID", _NS_TL)
    gi = sub(root, f"{n1}General_Info")
    l1c_tile = _tile_id(l1c)
    if l1c_tile:
        sub(gi, "L1C_TILE_ID", l1c_tile, metadataLevel="Brief")
    sub(gi, "TILE_ID", _l2a_id_from_l1c(l1c_tile, naming, generated) or naming.granule, metadataLevel="Brief")
    ds = _l2a_id_from_l1c(_datastrip_id(l1c), naming, generated)
    if ds:
        sub(gi, "DATASTRIP_ID", ds, metadataLevel="Standard")
    sub(gi, "DOWNLINK_PRIORITY", find_text(src_gi, "DOWNLINK_PRIORITY") or "NOMINAL", metadataLevel="Standard")
    sensing = tm.sensing_time if tm is not None and tm.sensing_time else l1c.sensing_time
    assert sensing is not None
    sub(gi, "SENSING_TIME", iso_us(sensing), metadataLevel="Standard")

    geo = sub(root, f"{n1}Geometric_Info")
    tg = sub(geo, "Tile_Geocoding", metadataLevel="Brief")
    sub(tg, "HORIZONTAL_CS_NAME", (tm.cs_name if tm is not None else None) or _cs_name(l1c.epsg))
    sub(tg, "HORIZONTAL_CS_CODE", f"EPSG:{l1c.epsg}")
    grids = [l1c.grids[r] for r in sorted(l1c.grids)]
    for g in grids:
        size = sub(tg, "Size", resolution=str(g.resolution))
        sub(size, "NROWS", g.nrows)
        sub(size, "NCOLS", g.ncols)
    for g in grids:
        pos = sub(tg, "Geoposition", resolution=str(g.resolution))
        sub(pos, "ULX", f"{g.ulx:.10g}")
        sub(pos, "ULY", f"{g.uly:.10g}")
        sub(pos, "XDIM", f"{g.xdim:g}")
        sub(pos, "YDIM", f"{g.ydim:g}")
    src_geo = src.find("Geometric_Info") if src is not None else None
    angles = src_geo.find("Tile_Angles") if src_geo is not None else None
    if angles is not None:
        # Verbatim: the grids keep the Level-1C digits and NaN outside detector footprints.
        geo.append(copy.deepcopy(angles))
    elif tm is not None:
        _tile_angles(geo, l1c)

    qii = sub(root, f"{n1}Quality_Indicators_Info", metadataLevel="Standard")
    src_qi = src.find("Quality_Indicators_Info/Image_Content_QI") if src is not None else None
    _image_content_qi(qii, product.summary, tile=True, degraded=find_text(src_qi, "DEGRADED_MSI_DATA_PERCENTAGE"))
    if masks:
        plq = sub(qii, "Pixel_Level_QI", geometry="FULL_RESOLUTION")
        for kind, path in masks:
            sub(plq, "MASK_FILENAME", path, type=kind)
    if pvi:
        sub(qii, "PVI_FILENAME", pvi)
    return xml_bytes(root, _comment(product))


def _cs_name(epsg: int) -> str:
    if 32601 <= epsg <= 32660 or 32701 <= epsg <= 32760:
        return f"WGS84 / UTM zone {epsg % 100:02d}{'N' if epsg < 32700 else 'S'}"
    return f"EPSG:{epsg}"


def _angle_pair(parent: ET.Element, grid: AngleGrid) -> None:
    for tag, values in (("Zenith", grid.zenith), ("Azimuth", grid.azimuth)):
        el = sub(parent, tag)
        sub(el, "COL_STEP", f"{grid.col_step:g}", unit="m")
        sub(el, "ROW_STEP", f"{grid.row_step:g}", unit="m")
        vl = sub(el, "Values_List")
        for row in np.asarray(values, dtype=np.float64):
            sub(vl, "VALUES", " ".join(grid_value(float(v)) for v in row))


def _tile_angles(parent: ET.Element, l1c: Product) -> None:
    """``Tile_Angles`` rebuilt from the parsed grids (no Level-1C MTD_TL.xml to copy from)."""
    tm = l1c.tile_metadata
    assert tm is not None
    ta = sub(parent, "Tile_Angles", metadataLevel="Standard")
    if tm.sun_grid is not None:
        _angle_pair(sub(ta, "Sun_Angles_Grid"), tm.sun_grid)
    if tm.mean_sun is not None:
        msa = sub(ta, "Mean_Sun_Angle")
        sub(msa, "ZENITH_ANGLE", repr(tm.mean_sun.zenith), unit="deg")
        sub(msa, "AZIMUTH_ANGLE", repr(tm.mean_sun.azimuth), unit="deg")
    for i, band in enumerate(BAND_IDS):
        for detector, grid in tm.view_grids.get(band, ()):
            _angle_pair(sub(ta, "Viewing_Incidence_Angles_Grids", bandId=str(i), detectorId=str(detector)), grid)
    if tm.mean_view:
        mvl = sub(ta, "Mean_Viewing_Incidence_Angle_List")
        for i, band in enumerate(BAND_IDS):
            m = tm.mean_view.get(band)
            if m is not None:
                mv = sub(mvl, "Mean_Viewing_Incidence_Angle", bandId=str(i))
                sub(mv, "ZENITH_ANGLE", repr(m.zenith), unit="deg")
                sub(mv, "AZIMUTH_ANGLE", repr(m.azimuth), unit="deg")


# ----------------------------------------------------------------------------- reading back


def read_quality_indicators(data: bytes, *, product: str = "MTD_MSIL2A.xml") -> dict[str, Any]:
    """Percentages and atmosphere of a Level-2A ``MTD_MSIL2A.xml``, keyed as the run summary.

    Returns
    -------
    dict
        ``{"class_percentages": {...}, "atmosphere": {...}}``: ``CLOUDY_PIXEL_PERCENTAGE``
        (from ``Cloud_Coverage_Assessment``) and the ``Image_Content_QI`` percentages as
        floats; AOT retrieval method, granule mean AOT and WV, ozone source and value.

    Raises
    ------
    MetadataError
        If the XML is unsafe or malformed.
    """
    root = parse_xml(data, product=product, name="MTD_MSIL2A.xml")
    qii = root.find("Quality_Indicators_Info")
    percentages: dict[str, float] = {}
    atmosphere: dict[str, Any] = {}
    cloudy = find_text(qii, "Cloud_Coverage_Assessment")
    if cloudy is not None:
        percentages["CLOUDY_PIXEL_PERCENTAGE"] = float(cloudy)
    ic = qii.find("Image_Content_QI") if qii is not None else None
    for el in ic if ic is not None else ():
        text = (el.text or "").strip()
        if el.tag in CLASS_PERCENTAGE_KEYS and text:
            percentages[el.tag] = float(text)
        elif el.tag in _ATMOSPHERE_KEYS and text:
            atmosphere[el.tag] = text if el.tag in _TEXT_KEYS else float(text)
    return {"class_percentages": percentages, "atmosphere": atmosphere}

"""Parser for the user-product metadata ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``.

Handles the compact SAFE layouts of processing baselines 02.xx to 05.xx, the oldest
Level-2A layout (``L2A_Product_Info``, ``IMAGE_FILE_2A``,
``L1C_L2A_Quantification_Values_List``) and old-style names
(``S2A_OPER_MTD_SAFL1C_*.xml``), which share the same schema.
"""

from __future__ import annotations

import datetime as _dt
import re
from xml.etree.ElementTree import Element

from sen2core.errors import MetadataError
from sen2core.io.read.metadata import Level, UserProductMetadata, band_from_index, normalize_band
from sen2core.io.xmlutil import find_text, parse_float, parse_time, parse_xml

__all__ = ["baseline_from_name", "parse_user_product"]

_ROOTS: dict[str, Level] = {"Level-1C_User_Product": "L1C", "Level-2A_User_Product": "L2A"}


def _first(parent: Element | None, *paths: str) -> Element | None:
    if parent is None:
        return None
    for p in paths:
        el = parent.find(p)
        if el is not None:
            return el
    return None


def _band_of(el: Element) -> str | None:
    for attr in ("bandId", "band_id"):
        value = el.get(attr)
        if value is not None:
            try:
                return band_from_index(value)
            except ValueError:
                return None
    return None


def _per_band(parent: Element | None, tag: str, *, product: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if parent is None:
        return out
    for el in parent.iter(tag):
        band = _band_of(el)
        value = parse_float((el.text or "").strip() or None, product=product, what=tag)
        if band is not None and value is not None:
            out[band] = value
    return out


def _number(parent: Element | None, paths: tuple[str, ...], *, product: str, what: str) -> float | None:
    for p in paths:
        value = parse_float(find_text(parent, p), product=product, what=what)
        if value is not None:
            return value
    return None


def parse_user_product(data: bytes, *, product: str, name: str = "MTD_MSIL1C.xml") -> UserProductMetadata:
    """Parse ``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``.

    Parameters
    ----------
    data
        File content.
    product
        Product reference for messages.
    name
        File name for messages.

    Returns
    -------
    UserProductMetadata
        Missing optional elements are None / empty and listed in ``warnings``.

    Raises
    ------
    MetadataError
        If the XML is unsafe, malformed or truncated, or is not a Sentinel-2
        user-product metadata file.
    """
    root = parse_xml(data, product=product, name=name)
    level = _ROOTS.get(root.tag)
    if level is None:
        raise MetadataError(product, f"{name}: not Sentinel-2 user-product metadata (root element <{root.tag}>)")
    warnings: list[str] = []
    gi = root.find("General_Info")
    if gi is None:
        raise MetadataError(product, f"{name}: no General_Info element")
    info = _first(gi, "Product_Info", "L2A_Product_Info")
    chars = _first(gi, "Product_Image_Characteristics", "L2A_Product_Image_Characteristics")
    if info is None:
        warnings.append(f"{name}: no Product_Info element")
    if chars is None:
        warnings.append(f"{name}: no Product_Image_Characteristics element")

    product_uri = find_text(info, "PRODUCT_URI") or find_text(info, "PRODUCT_URI_2A")
    baseline = find_text(info, "PROCESSING_BASELINE")
    if baseline is None:
        warnings.append(f"{name}: no PROCESSING_BASELINE")
    spacecraft = find_text(info, "Datatake/SPACECRAFT_NAME")

    def time(path: str) -> _dt.datetime | None:
        return parse_time(find_text(info, path), product=product, what=f"{name} {path}")

    image_files: list[str] = []
    granule_ids: list[str] = []
    datastrip_ids: list[str] = []
    image_format: str | None = None
    if info is not None:
        for granule in info.iter("Granule"):
            gid = granule.get("granuleIdentifier")
            if gid and gid not in granule_ids:
                granule_ids.append(gid)
            did = granule.get("datastripIdentifier")
            if did and did not in datastrip_ids:
                datastrip_ids.append(did)
            image_format = image_format or granule.get("imageFormat")
            for el in granule:
                if el.tag in ("IMAGE_FILE", "IMAGE_FILE_2A") and el.text and el.text.strip():
                    image_files.append(el.text.strip())
    if not image_files:
        warnings.append(f"{name}: no IMAGE_FILE entries; band files will be searched for")

    quant = boa_q = aot_q = wvp_q = None
    if level == "L1C":
        quant = _number(chars, ("QUANTIFICATION_VALUE",), product=product, what="QUANTIFICATION_VALUE")
        if quant is None:
            warnings.append(f"{name}: no QUANTIFICATION_VALUE")
    else:
        qlist = _first(chars, "QUANTIFICATION_VALUES_LIST", "L1C_L2A_Quantification_Values_List")
        boa_q = _number(
            qlist,
            ("BOA_QUANTIFICATION_VALUE", "L2A_BOA_QUANTIFICATION_VALUE"),
            product=product,
            what="BOA_QUANTIFICATION_VALUE",
        )
        aot_q = _number(
            qlist,
            ("AOT_QUANTIFICATION_VALUE", "L2A_AOT_QUANTIFICATION_VALUE"),
            product=product,
            what="AOT_QUANTIFICATION_VALUE",
        )
        wvp_q = _number(
            qlist,
            ("WVP_QUANTIFICATION_VALUE", "L2A_WVP_QUANTIFICATION_VALUE"),
            product=product,
            what="WVP_QUANTIFICATION_VALUE",
        )
        if boa_q is None:
            warnings.append(f"{name}: no BOA_QUANTIFICATION_VALUE")

    radio = _per_band(_first(chars, "Radiometric_Offset_List"), "RADIO_ADD_OFFSET", product=product)
    boa_off = _per_band(_first(chars, "BOA_ADD_OFFSET_VALUES_LIST"), "BOA_ADD_OFFSET", product=product)
    refl = _first(chars, "Reflectance_Conversion")
    u = parse_float(find_text(refl, "U"), product=product, what="U")
    if u is None:
        warnings.append(f"{name}: no Reflectance_Conversion/U")
    e0 = _per_band(_first(refl, "Solar_Irradiance_List"), "SOLAR_IRRADIANCE", product=product)
    if not e0:
        warnings.append(f"{name}: no SOLAR_IRRADIANCE values")

    band_res: dict[str, int] = {}
    central: dict[str, float] = {}
    for si in chars.iter("Spectral_Information") if chars is not None else ():
        band = _band_of(si)
        if band is None and si.get("physicalBand"):
            try:
                band = normalize_band(si.get("physicalBand", ""))
            except ValueError:
                band = None
        if band is None:
            continue
        res = parse_float(find_text(si, "RESOLUTION"), product=product, what="RESOLUTION")
        if res is not None:
            band_res[band] = int(res)
        wl = parse_float(find_text(si, "Wavelength/CENTRAL"), product=product, what="CENTRAL")
        if wl is not None:
            central[band] = wl

    nodata = saturated = None
    for sv in chars.iter("Special_Values") if chars is not None else ():
        label = (find_text(sv, "SPECIAL_VALUE_TEXT") or "").upper()
        index = parse_float(find_text(sv, "SPECIAL_VALUE_INDEX"), product=product, what="SPECIAL_VALUE_INDEX")
        if index is None:
            continue
        if label == "NODATA":
            nodata = int(index)
        elif label == "SATURATED":
            saturated = int(index)

    return UserProductMetadata(
        source=name,
        level=level,
        product_uri=product_uri,
        product_type=find_text(info, "PRODUCT_TYPE"),
        processing_baseline=baseline,
        spacecraft=spacecraft,
        product_start_time=time("PRODUCT_START_TIME"),
        datatake_sensing_start=time("Datatake/DATATAKE_SENSING_START"),
        generation_time=time("GENERATION_TIME"),
        quantification_value=quant,
        boa_quantification_value=boa_q,
        aot_quantification_value=aot_q,
        wvp_quantification_value=wvp_q,
        radio_add_offset=radio,
        boa_add_offset=boa_off,
        u=u,
        solar_irradiance=e0,
        band_resolution=band_res,
        central_wavelength=central,
        nodata_value=nodata,
        saturated_value=saturated,
        image_files=tuple(image_files),
        image_format=image_format,
        granule_ids=tuple(granule_ids),
        datastrip_ids=tuple(datastrip_ids),
        warnings=tuple(warnings),
    )


_BASELINE_RE = re.compile(r"_N(\d{2})\.?(\d{2})(?:_|$|\.SAFE)")


def baseline_from_name(name: str | None) -> str | None:
    """Processing baseline from an identifier: ``..._N05.09`` or ``..._N0509_...`` give ``"05.09"``."""
    if not name:
        return None
    m = _BASELINE_RE.search(name)
    return f"{m.group(1)}.{m.group(2)}" if m else None

"""Writing a Level-1C SAFE: metadata XML as ESA writes it, lossless JPEG 2000 bands.

XML is built with :mod:`xml.etree.ElementTree` following the element names, order and
namespaces of real products (``MTD_MSIL1C.xml``, ``MTD_TL.xml``, ``MTD_DS.xml`` and
``manifest.safe`` of processing baselines 02.09, 03.01 and 05.09 in the fixtures):

- baseline < 04.00: no ``Radiometric_Offset_List``, no ``PRODUCT_DOI``, no snow
  percentages; baseline < 03.00: MD5 checksums in the manifest, SHA3-256 from 03.00;
- baseline >= 04.00: ``RADIO_ADD_OFFSET`` -1000 for every band, ``PRODUCT_DOI``,
  ``Snow_Coverage_Assessment`` and ``SNOW_PIXEL_PERCENTAGE``.

Nothing depends on the wall clock: every time comes from the acquisition. The top
comment of each metadata file says the product is synthetic.

Bands are first written strip by strip to uncompressed scratch GeoTIFFs, then encoded
with GDAL's JP2OpenJPEG driver (``CreateCopy`` reads the source tile by tile, so
memory stays bounded) and any ``.aux.xml`` sidecar is removed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.windows import Window

from sen2core.atmosphere.srf import BANDS, nominal_srf
from sen2core.synthetic.config import Acquisition, SynthConfig
from sen2core.synthetic.mgrs import TileGrid

__all__ = [
    "AUX_AEROSOL_MIX",
    "BAND_RESOLUTION",
    "PHYSICAL_GAINS",
    "SOLAR_IRRADIANCE",
    "ProductMetadata",
    "datastrip_xml",
    "encode_jp2",
    "file_checksum",
    "manifest_xml",
    "open_scratch",
    "tile_xml",
    "user_product_xml",
    "write_aux_data",
    "write_preview",
]

#: Native resolution (m) of each band.
BAND_RESOLUTION: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
#: Solar irradiance ESA writes for each spacecraft (W m-2 um-1), in band order.
SOLAR_IRRADIANCE: dict[str, tuple[float, ...]] = {
    "S2A": (1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32, 812.92, 367.15,
            245.59, 85.25),
    "S2B": (1874.30, 1959.75, 1824.93, 1512.79, 1425.78, 1291.13, 1175.57, 1041.28, 953.93, 817.58, 365.41,
            247.08, 87.75),
}  # fmt: skip
#: ``PHYSICAL_GAINS`` of real products of each spacecraft (metadata fixtures), informative only.
PHYSICAL_GAINS: dict[str, tuple[float, ...]] = {
    "S2A": (4.10704469, 3.7510155, 4.17672732, 4.5073641, 5.18832596, 4.85294746, 4.51488207, 6.1342933,
            5.11345501, 8.49134074, 54.75127074, 35.08231952, 106.16068443),
    "S2B": (3.96374669, 3.82020478, 4.23767272, 4.77546721, 5.18343615, 5.08988587, 4.76395679, 6.82067015,
            5.7604695, 9.37540607, 56.4054263, 37.17859102, 108.68988978),
}  # fmt: skip
_PHYSICAL_BAND = {b: ("B8A" if b == "B8A" else f"B{int(b[1:])}") for b in BANDS}
_NOMINAL_CENTRE_NM: dict[str, tuple[float, ...]] = {
    "S2A": (442.7, 492.7, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5, 1613.7, 2202.4),
    "S2B": (442.3, 492.3, 559.0, 665.0, 703.8, 739.1, 779.7, 833.0, 864.0, 943.2, 1376.9, 1610.4, 2185.7),
}  # fmt: skip
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_NS_UP = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"
_NS_TL = "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd"
_NS_DS = "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Datastrip_Metadata.xsd"
_NS_XFDU = "urn:ccsds:schema:xfdu:1"
_NS_SAFE = "http://www.esa.int/safe/sentinel/1.1"
_NS_GML = "http://www.opengis.net/gml"
_NSSDC = {"S2A": "2015-028A", "S2B": "2017-013A"}
_PRODUCT_DOI = "https://doi.org/10.5270/S2_-742ikth"

AngleGrids = tuple[NDArray[np.float64], NDArray[np.float64]]


@dataclass(frozen=True)
class ProductMetadata:
    """What the metadata files say, gathered by the generator."""

    config: SynthConfig
    acq: Acquisition
    grid: TileGrid
    size: int
    """Tile edge in 10 m pixels."""
    sun: AngleGrids
    """Quantised sun zenith and azimuth grids."""
    mean_sun: tuple[float, float]
    view: Mapping[str, Mapping[int, AngleGrids]]
    """Per band, per detector, quantised viewing zenith and azimuth grids (NaN outside)."""
    mean_view: Mapping[str, tuple[float, float]]
    u: float
    """Earth-Sun distance correction."""
    cloudy_percent: float
    snow_percent: float
    footprint_latlon: Sequence[tuple[float, float]]
    """Closed polygon of the data footprint, (lat, lon) pairs."""
    image_files: Sequence[str]
    """``IMAGE_FILE`` entries (relative paths without ``.jp2``)."""
    preview_file: str
    """Relative path of the PVI file."""
    mask_files: Sequence[str] = ()
    """``QI_DATA`` pixel masks listed in ``Pixel_Level_QI`` (``MSK_QUALIT_Bxx.jp2``, ``MSK_CLASSI_B00.jp2``)."""

    @property
    def post4(self) -> bool:
        """Processing baseline 04.00 or later (radiometric offset)."""
        return self.config.baseline_value >= 4.0


# ---------------------------------------------------------------------------- formatting


def _iso_ms(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _iso_us(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(v: float) -> str:
    """Six significant digits, ``NaN`` for NaN (as in ``MTD_TL.xml`` angle grids)."""
    return "NaN" if not np.isfinite(v) else f"{v:.6g}"


def _pct(v: float) -> str:
    return repr(round(float(v), 6))


def _sub(parent: ET.Element, tag: str, text: Any = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = str(text)
    return el


def _xml_bytes(root: ET.Element, comment: str | None = None) -> bytes:
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    head = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    if comment:
        head += f"<!-- {comment} -->\n"
    return (head + body + "\n").encode("utf-8")


def _register() -> None:
    for prefix, uri in (("xsi", _XSI), ("xfdu", _NS_XFDU), ("safe", _NS_SAFE), ("gml", _NS_GML)):
        ET.register_namespace(prefix, uri)


def _synthetic_comment(meta: ProductMetadata) -> str:
    return (
        f"Synthetic Sentinel-2 Level-1C product made by sen2core synth (seed {meta.config.seed}); "
        f"not Copernicus data. Truth: ../{meta.acq.product_id}.truth/"
    )


# ---------------------------------------------------------------------------- MTD_MSIL1C.xml


def _footprint_text(points: Sequence[tuple[float, float]]) -> str:
    return "".join(f"{lat!r} {lon!r} " for lat, lon in points)


def user_product_xml(meta: ProductMetadata) -> bytes:
    """``MTD_MSIL1C.xml``."""
    _register()
    cfg, acq = meta.config, meta.acq
    n1 = f"{{{_NS_UP}}}"
    ET.register_namespace("n1", _NS_UP)
    root = ET.Element(f"{n1}Level-1C_User_Product", {f"{{{_XSI}}}schemaLocation": _NS_UP})
    gi = _sub(root, f"{n1}General_Info")
    pi = _sub(gi, "Product_Info")
    _sub(pi, "PRODUCT_START_TIME", _iso_ms(acq.datatake_start))
    _sub(pi, "PRODUCT_STOP_TIME", _iso_ms(acq.datatake_start))
    _sub(pi, "PRODUCT_URI", f"{acq.product_id}.SAFE")
    _sub(pi, "PROCESSING_LEVEL", "Level-1C")
    _sub(pi, "PRODUCT_TYPE", "S2MSI1C")
    _sub(pi, "PROCESSING_BASELINE", cfg.baseline)
    if meta.post4:
        _sub(pi, "PRODUCT_DOI", _PRODUCT_DOI)
    _sub(pi, "GENERATION_TIME", _iso_us(acq.generation_time))
    _sub(pi, "PREVIEW_IMAGE_URL", "Not applicable")
    _sub(pi, "PREVIEW_GEO_INFO", "Not applicable")
    dt = _sub(pi, "Datatake", datatakeIdentifier=acq.datatake_id)
    _sub(dt, "SPACECRAFT_NAME", f"Sentinel-2{cfg.spacecraft[-1]}")
    _sub(dt, "DATATAKE_TYPE", "INS-NOBS")
    _sub(dt, "DATATAKE_SENSING_START", _iso_ms(acq.datatake_start))
    _sub(dt, "SENSING_ORBIT_NUMBER", acq.relative_orbit)
    _sub(dt, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    qo = _sub(pi, "Query_Options", completeSingleTile="true")
    _sub(qo, "PRODUCT_FORMAT", "SAFE_COMPACT")
    org = _sub(pi, "Product_Organisation")
    gl = _sub(org, "Granule_List")
    gr = _sub(
        gl, "Granule", datastripIdentifier=acq.datastrip_id, granuleIdentifier=acq.tile_id, imageFormat="JPEG2000"
    )
    for f in meta.image_files:
        _sub(gr, "IMAGE_FILE", f)

    pic = _sub(gi, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        sv = _sub(pic, "Special_Values")
        _sub(sv, "SPECIAL_VALUE_TEXT", text)
        _sub(sv, "SPECIAL_VALUE_INDEX", index)
    ido = _sub(pic, "Image_Display_Order")
    _sub(ido, "RED_CHANNEL", 3)
    _sub(ido, "GREEN_CHANNEL", 2)
    _sub(ido, "BLUE_CHANNEL", 1)
    _sub(pic, "QUANTIFICATION_VALUE", 10000, unit="none")
    if meta.post4:
        rol = _sub(pic, "Radiometric_Offset_List")
        for i in range(len(BANDS)):
            _sub(rol, "RADIO_ADD_OFFSET", cfg.offset, band_id=str(i))
    rc = _sub(pic, "Reflectance_Conversion")
    _sub(rc, "U", repr(meta.u))
    sil = _sub(rc, "Solar_Irradiance_List")
    for i, e0 in enumerate(SOLAR_IRRADIANCE[cfg.spacecraft]):
        _sub(sil, "SOLAR_IRRADIANCE", f"{e0:g}", bandId=str(i), unit="W/m²/µm")
    spl = _sub(pic, "Spectral_Information_List")
    for i, band in enumerate(BANDS):
        _spectral_information(spl, cfg.spacecraft, i, band)
    for i, gain in enumerate(PHYSICAL_GAINS[cfg.spacecraft]):
        _sub(pic, "PHYSICAL_GAINS", repr(gain), bandId=str(i))

    geo = _sub(root, f"{n1}Geometric_Info")
    pf = _sub(geo, "Product_Footprint")
    pf2 = _sub(pf, "Product_Footprint")
    gf = _sub(pf2, "Global_Footprint")
    _sub(gf, "EXT_POS_LIST", _footprint_text(meta.footprint_latlon))
    _sub(pf, "RASTER_CS_TYPE", "POINT")
    _sub(pf, "PIXEL_ORIGIN", 1)
    crs = _sub(geo, "Coordinate_Reference_System")
    _sub(crs, "GEO_TABLES", "EPSG", version="1")
    _sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")

    aux = _sub(root, f"{n1}Auxiliary_Data_Info")
    _sub(aux, "GIPP_List")
    _sub(aux, "PRODUCTION_DEM_TYPE", "S2__OPER_DEM_GLOBEF_PDMC_19800101T000000_S19800101T000000")
    day = acq.datatake_start.date()
    _sub(
        aux,
        "IERS_BULLETIN_FILENAME",
        f"S2__OPER_AUX_UT1UTC_PDMC_{day - _dt.timedelta(days=6):%Y%m%d}T000000_V{day - _dt.timedelta(days=5):%Y%m%d}"
        f"T000000_{day + _dt.timedelta(days=360):%Y%m%d}T000000",
    )
    _sub(aux, "GRI_List")
    _sub(
        aux,
        "ECMWF_DATA_REF",
        f"S2__OPER_AUX_ECMWFD_ADG__{day:%Y%m%d}T000000_V{day:%Y%m%d}T090000_{day + _dt.timedelta(days=2):%Y%m%d}"
        "T030000",
    )

    qii = _sub(root, f"{n1}Quality_Indicators_Info")
    _sub(qii, "Cloud_Coverage_Assessment", _pct(meta.cloudy_percent))
    if meta.post4:
        _sub(qii, "Snow_Coverage_Assessment", _pct(meta.snow_percent))
    tqa = _sub(qii, "Technical_Quality_Assessment")
    _sub(tqa, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
    _sub(tqa, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    qcc = _sub(qii, "Quality_Control_Checks")
    qin = _sub(qcc, "Quality_Inspections")
    for check in (
        "FORMAT_CORRECTNESS",
        "GENERAL_QUALITY",
        "GEOMETRIC_QUALITY",
        "RADIOMETRIC_QUALITY",
        "SENSOR_QUALITY",
    ):
        _sub(qin, "quality_check", "PASSED", checkType=check)
    _sub(qcc, "Failed_Inspections")
    return _xml_bytes(root, _synthetic_comment(meta))


def _spectral_information(parent: ET.Element, spacecraft: str, index: int, band: str) -> None:
    """One ``Spectral_Information``: the response the LUT was built with, at 1 nm steps."""
    srf = nominal_srf(spacecraft, band)
    wl_nm = srf.wavelengths_um * 1000.0
    lo, hi = int(np.ceil(wl_nm[0])), int(np.floor(wl_nm[-1]))
    grid = np.arange(lo, hi + 1, dtype=np.float64)
    values = np.interp(grid, wl_nm, np.asarray(srf.values))
    values = values / values.max()
    si = _sub(parent, "Spectral_Information", bandId=str(index), physicalBand=_PHYSICAL_BAND[band])
    _sub(si, "RESOLUTION", BAND_RESOLUTION[band])
    wl = _sub(si, "Wavelength")
    _sub(wl, "MIN", lo, unit="nm")
    _sub(wl, "MAX", hi, unit="nm")
    _sub(wl, "CENTRAL", f"{_NOMINAL_CENTRE_NM[spacecraft][index]:g}", unit="nm")
    sr = _sub(si, "Spectral_Response")
    _sub(sr, "STEP", 1, unit="nm")
    _sub(sr, "VALUES", " ".join(f"{v:.8g}" for v in values))


# ---------------------------------------------------------------------------- MTD_TL.xml


def _values_list(parent: ET.Element, grid: NDArray[np.float64]) -> None:
    vl = _sub(parent, "Values_List")
    for row in grid:
        _sub(vl, "VALUES", " ".join(_num(v) for v in row))


def _angle_pair(parent: ET.Element, zen: NDArray[np.float64], az: NDArray[np.float64]) -> None:
    for tag, grid in (("Zenith", zen), ("Azimuth", az)):
        el = _sub(parent, tag)
        _sub(el, "COL_STEP", 5000, unit="m")
        _sub(el, "ROW_STEP", 5000, unit="m")
        _values_list(el, grid)


def tile_xml(meta: ProductMetadata) -> bytes:
    """``GRANULE/<granule>/MTD_TL.xml``."""
    _register()
    acq, g = meta.acq, meta.grid
    n1 = f"{{{_NS_TL}}}"
    ET.register_namespace("n1", _NS_TL)
    root = ET.Element(f"{n1}Level-1C_Tile_ID", {f"{{{_XSI}}}schemaLocation": _NS_TL})
    gi = _sub(root, f"{n1}General_Info")
    _sub(gi, "TILE_ID", acq.tile_id, metadataLevel="Brief")
    _sub(gi, "DATASTRIP_ID", acq.datastrip_id, metadataLevel="Standard")
    _sub(gi, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    _sub(gi, "SENSING_TIME", _iso_us(acq.sensing_time), metadataLevel="Standard")
    ai = _sub(gi, "Archiving_Info", metadataLevel="Expertise")
    centre = acq.datastrip_dir.split("_")[1]
    _sub(ai, "ARCHIVING_CENTRE", centre if len(centre) == 4 else f"{centre}_")
    _sub(ai, "ARCHIVING_TIME", _iso_us(acq.generation_time + _dt.timedelta(minutes=23, seconds=17)))

    geo = _sub(root, f"{n1}Geometric_Info")
    tg = _sub(geo, "Tile_Geocoding", metadataLevel="Brief")
    _sub(tg, "HORIZONTAL_CS_NAME", g.crs_name)
    _sub(tg, "HORIZONTAL_CS_CODE", f"EPSG:{g.epsg}")
    for res in (10, 20, 60):
        size = _sub(tg, "Size", resolution=str(res))
        n = meta.size * 10 // res
        _sub(size, "NROWS", n)
        _sub(size, "NCOLS", n)
    for res in (10, 20, 60):
        pos = _sub(tg, "Geoposition", resolution=str(res))
        _sub(pos, "ULX", g.ulx)
        _sub(pos, "ULY", g.uly)
        _sub(pos, "XDIM", res)
        _sub(pos, "YDIM", -res)
    ta = _sub(geo, "Tile_Angles", metadataLevel="Standard")
    sag = _sub(ta, "Sun_Angles_Grid")
    _angle_pair(sag, *meta.sun)
    msa = _sub(ta, "Mean_Sun_Angle")
    _sub(msa, "ZENITH_ANGLE", repr(meta.mean_sun[0]), unit="deg")
    _sub(msa, "AZIMUTH_ANGLE", repr(meta.mean_sun[1]), unit="deg")
    for i, band in enumerate(BANDS):
        for det, (zen, az) in sorted(meta.view[band].items()):
            vg = _sub(ta, "Viewing_Incidence_Angles_Grids", bandId=str(i), detectorId=str(det))
            _angle_pair(vg, zen, az)
    mvl = _sub(ta, "Mean_Viewing_Incidence_Angle_List")
    for i, band in enumerate(BANDS):
        mv = _sub(mvl, "Mean_Viewing_Incidence_Angle", bandId=str(i))
        _sub(mv, "ZENITH_ANGLE", repr(meta.mean_view[band][0]), unit="deg")
        _sub(mv, "AZIMUTH_ANGLE", repr(meta.mean_view[band][1]), unit="deg")

    qii = _sub(root, f"{n1}Quality_Indicators_Info", metadataLevel="Standard")
    ic = _sub(qii, "Image_Content_QI")
    _sub(ic, "CLOUDY_PIXEL_PERCENTAGE", _pct(meta.cloudy_percent))
    _sub(ic, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    if meta.post4:
        _sub(ic, "SNOW_PIXEL_PERCENTAGE", _pct(meta.snow_percent))
    if meta.mask_files:
        plq = _sub(qii, "Pixel_Level_QI", geometry="FULL_RESOLUTION")
        for rel in meta.mask_files:
            kind, band = rel.rsplit("/", 1)[-1][:-4].rsplit("_", 1)
            attrs = {"bandId": str(BANDS.index(band))} if band in BANDS else {}
            _sub(plq, "MASK_FILENAME", rel, **attrs, type=kind)
    _sub(qii, "PVI_FILENAME", meta.preview_file)
    return _xml_bytes(root, _synthetic_comment(meta))


# ---------------------------------------------------------------------------- MTD_DS.xml


def datastrip_xml(meta: ProductMetadata) -> bytes:
    """``DATASTRIP/<datastrip>/MTD_DS.xml`` (general and radiometric information only)."""
    _register()
    cfg, acq = meta.config, meta.acq
    n1 = f"{{{_NS_DS}}}"
    ET.register_namespace("n1", _NS_DS)
    root = ET.Element(f"{n1}Level-1C_DataStrip_ID", {f"{{{_XSI}}}schemaLocation": _NS_DS})
    gi = _sub(root, f"{n1}General_Info")
    _sub(gi, "DATASTRIP_ID", acq.datastrip_id, metadataLevel="Brief")
    _sub(gi, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    dti = _sub(gi, "Datatake_Info", datatakeIdentifier=acq.datatake_id, metadataLevel="Brief")
    _sub(dti, "DATATAKE_TYPE", "INS-NOBS")
    _sub(dti, "DATATAKE_SENSING_START", _iso_ms(acq.datatake_start))
    _sub(dti, "SENSING_ORBIT_NUMBER", acq.relative_orbit)
    _sub(dti, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    _sub(dti, "SPACECRAFT_NAME", f"Sentinel-2{cfg.spacecraft[-1]}")
    ti = _sub(gi, "Datastrip_Time_Info", metadataLevel="Brief")
    _sub(ti, "DATASTRIP_SENSING_START", _iso_us(acq.datastrip_start))
    stop = acq.sensing_time + (acq.sensing_time - acq.datastrip_start)
    _sub(ti, "DATASTRIP_SENSING_STOP", _iso_us(stop))
    pi = _sub(gi, "Processing_Info", metadataLevel="Brief")
    _sub(pi, "UTC_DATE_TIME", _iso_us(acq.generation_time))
    _sub(pi, "PROCESSING_BASELINE", cfg.baseline)
    idi = _sub(root, f"{n1}Image_Data_Info")
    ri = _sub(idi, "Radiometric_Info", metadataLevel="Standard")
    _sub(ri, "QUANTIFICATION_VALUE", 10000, unit="none")
    if meta.post4:
        rol = _sub(ri, "Radiometric_Offset_List")
        for i in range(len(BANDS)):
            _sub(rol, "RADIO_ADD_OFFSET", cfg.offset, band_id=str(i))
    rc = _sub(ri, "Reflectance_Conversion")
    _sub(rc, "U", repr(meta.u))
    sil = _sub(rc, "Solar_Irradiance_List")
    for i, e0 in enumerate(SOLAR_IRRADIANCE[cfg.spacecraft]):
        _sub(sil, "SOLAR_IRRADIANCE", f"{e0:g}", bandId=str(i), unit="W/m²/µm")
    return _xml_bytes(root, _synthetic_comment(meta))


# ---------------------------------------------------------------------------- manifest.safe


def file_checksum(path: Path, algorithm: str) -> str:
    """Hex digest of a file (``MD5`` or ``SHA3-256``), read in 8 MiB blocks."""
    h = hashlib.md5() if algorithm == "MD5" else hashlib.sha3_256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest().upper()


def _data_object_id(rel: str, granule_index: int = 1) -> tuple[str, str]:
    """(dataObject ID, mimeType) of a file, as ESA names them."""
    name = rel.rsplit("/", 1)[-1]
    if rel == "MTD_MSIL1C.xml":
        return "S2_Level-1C_Product_Metadata", "text/xml"
    if name == "MTD_DS.xml":
        return "S2_Level-1C_Datastrip1_Metadata", "application/xml"
    if name == "MTD_TL.xml":
        return f"S2_Level-1C_Tile{granule_index}_Metadata", "application/xml"
    if name.endswith("_PVI.jp2"):
        return f"Preview_0_Tile{granule_index}_Data", "application/octet-stream"
    if name.endswith("_TCI.jp2"):
        return f"IMG_DATA_Band_TCI_Tile{granule_index}_Data", "application/octet-stream"
    if name in ("AUX_CAMSFO", "AUX_ECMWFT"):
        return f"{name[4:8]}_Tile{granule_index}_Data", "application/octet-stream"
    if name == "MSK_CLASSI_B00.jp2":
        return f"ClassiPixelsMask_Band_00m_0_Tile{granule_index}_Data", "application/octet-stream"
    band = name.rsplit("_", 1)[-1][:-4]
    res = BAND_RESOLUTION[band]
    same = [
        b
        for b in ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12", "B01", "B09", "B10")
        if BAND_RESOLUTION[b] == res
    ]
    if name.startswith("MSK_QUALIT_"):
        return (f"QualitPixelsMask_Band_{res}m_{same.index(band) + 1}_Tile{granule_index}_Data",
                "application/octet-stream")  # fmt: skip
    return f"IMG_DATA_Band_{res}m_{same.index(band) + 1}_Tile{granule_index}_Data", "application/octet-stream"


def manifest_xml(meta: ProductMetadata, files: Iterable[tuple[str, int, str]]) -> bytes:
    """``manifest.safe`` listing ``files`` as (relative path, size, checksum)."""
    _register()
    cfg, acq = meta.config, meta.acq
    x, s, gml = f"{{{_NS_XFDU}}}", f"{{{_NS_SAFE}}}", f"{{{_NS_GML}}}"
    algorithm = "MD5" if cfg.baseline_value < 3.0 else "SHA3-256"
    files = list(files)
    root = ET.Element(f"{x}XFDU", version="esa/safe/sentinel/1.1/sentinel-2/msi/archive_l1c_user_product")
    ipm = _sub(root, "informationPackageMap")
    top = _sub(
        ipm,
        f"{x}contentUnit",
        dmdID="acquisitionPeriod platform",
        pdiID="processing",
        textInfo="SENTINEL-2 MSI Level-1C User Product",
        unitType="Product_Level-1C",
    )
    for rel, _, _ in files:
        ident, _ = _data_object_id(rel)
        unit = _sub(
            top,
            f"{x}contentUnit",
            ID=ident.replace("_Data", "_Unit").replace("_Metadata", "_Metadata_Unit"),
            unitType="Metadata Unit" if rel.endswith(".xml") else "Measurement Data Unit",
        )
        _sub(unit, "dataObjectPointer", dataObjectID=ident)
    ms = _sub(root, "metadataSection")
    mo = _sub(ms, "metadataObject", ID="acquisitionPeriod", category="DMD", classification="DESCRIPTION")
    xd = _sub(
        _sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Acquisition Period", vocabularyName="Sentinel-SAFE"),
        "xmlData",
    )
    _sub(_sub(xd, f"{s}acquisitionPeriod"), f"{s}startTime", _iso_ms(acq.datatake_start))
    mo = _sub(ms, "metadataObject", ID="measurementOrbitReference", category="DMD", classification="DESCRIPTION")
    xd = _sub(
        _sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Orbit Reference", vocabularyName="Sentinel-SAFE"),
        "xmlData",
    )
    orb = _sub(xd, f"{s}orbitReference")
    _sub(orb, f"{s}orbitNumber", f"{acq.absolute_orbit:06d}", groundTrackDirection="descending", type="start")
    _sub(orb, f"{s}relativeOrbitNumber", acq.relative_orbit, type="start")
    mo = _sub(ms, "metadataObject", ID="platform", category="DMD", classification="DESCRIPTION")
    xd = _sub(
        _sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Platform Description", vocabularyName="Sentinel-SAFE"),
        "xmlData",
    )
    pl = _sub(xd, f"{s}platform")
    _sub(pl, f"{s}nssdcIdentifier", _NSSDC[cfg.spacecraft])
    _sub(pl, f"{s}familyName", "SENTINEL")
    _sub(pl, f"{s}number", cfg.spacecraft[1:])
    ins = _sub(pl, f"{s}instrument")
    _sub(ins, f"{s}familyName", "Multi-Spectral Instrument", abbreviation="MSI")
    mo = _sub(ms, "metadataObject", ID="processing", category="PDI", classification="PROVENANCE")
    xd = _sub(
        _sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Processing", vocabularyName="Sentinel-SAFE"), "xmlData"
    )
    _sub(xd, f"{s}processing", name="Generation of Level-1C User Product", start=_iso_us(acq.generation_time))
    mo = _sub(ms, "metadataObject", ID="measurementFrameSet", category="DMD", classification="DESCRIPTION")
    xd = _sub(
        _sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Frame Set", vocabularyName="Sentinel-SAFE"), "xmlData"
    )
    fp = _sub(_sub(xd, f"{s}frameSet"), f"{s}footPrint", srsName="http://www.opengis.net/gml/srs/epsg.xml#4326")
    _sub(fp, f"{gml}coordinates", _footprint_text(meta.footprint_latlon))
    dos = _sub(root, "dataObjectSection")
    for rel, size, digest in files:
        ident, mime = _data_object_id(rel)
        do = _sub(dos, "dataObject", ID=ident)
        bs = _sub(do, "byteStream", mimeType=mime, size=str(size))
        _sub(bs, "fileLocation", href=f"./{rel}", locatorType="URL")
        _sub(bs, "checksum", digest, checksumName=algorithm)
    return _xml_bytes(root)


# ---------------------------------------------------------------------------- rasters


def open_scratch(
    path: Path, size: int, res: int, grid: TileGrid, dtype: str, count: int = 1
) -> rasterio.io.DatasetWriter:
    """Uncompressed tiled GeoTIFF on the tile grid, written strip by strip before encoding."""
    return rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=count,
        dtype=dtype,
        crs=f"EPSG:{grid.epsg}",
        transform=Affine(res, 0.0, grid.ulx, 0.0, -res, grid.uly),
        tiled=True,
        blockxsize=256,
        blockysize=256,
        BIGTIFF="IF_SAFER",
        interleave="pixel" if count > 1 else "band",
    )


def write_mask(scratch: Path, dst: Path, size: int, res: int, grid: TileGrid, layers: int,
               flags: Mapping[int, tuple[NDArray[np.integer], NDArray[np.integer]]]) -> None:  # fmt: skip
    """A 0/1 pixel mask of ``layers`` uint8 layers as ESA writes them (lossless JPEG 2000).

    ``flags`` maps a layer (1-based) to the ``(rows, cols)`` of its flagged pixels; the rest
    is 0. The scratch GeoTIFF is sparse: a full-tile mask of zeros costs no disk.
    """
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": layers,
        "dtype": "uint8",
        "crs": f"EPSG:{grid.epsg}",
        "transform": Affine(res, 0.0, grid.ulx, 0.0, -res, grid.uly),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "SPARSE_OK": "TRUE",
        "interleave": "band",
    }
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(scratch, "w", **profile) as ds:
        for layer, (rows, cols) in sorted(flags.items()):
            for r, c in zip(np.asarray(rows).tolist(), np.asarray(cols).tolist(), strict=True):
                ds.write(np.ones((1, 1), dtype=np.uint8), layer, window=Window(c, r, 1, 1))
    encode_jp2(scratch, dst)
    scratch.unlink()


def _jp2_block(width: int) -> int:
    for block in (1024, 512, 256, 128, 64):
        if block <= width:
            return block
    return 32


def encode_jp2(src: Path, dst: Path, *, threads: int = 1) -> None:
    """Encode a scratch GeoTIFF as lossless JPEG 2000 and drop GDAL's ``.aux.xml`` sidecar."""
    with rasterio.Env(GDAL_CACHEMAX=256, GDAL_NUM_THREADS=str(threads), GDAL_PAM_ENABLED="NO"):
        with rasterio.open(src) as ds:
            block = _jp2_block(ds.width)
        rasterio.shutil.copy(
            src,
            dst,
            driver="JP2OpenJPEG",
            QUALITY="100",
            REVERSIBLE="YES",
            BLOCKXSIZE=str(block),
            BLOCKYSIZE=str(block),
            YCC="NO",
        )
    aux = dst.with_name(dst.name + ".aux.xml")
    if aux.exists():
        aux.unlink()


def write_preview(tci: Path, dst: Path, size: int) -> None:
    """Preview image (``PVI``): the TCI averaged to 320 m (343 x 343 px for a full tile)."""
    n = max(1, size // 32)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(tci) as ds:
        data = ds.read(out_shape=(3, n, n), resampling=Resampling.average)
        scale = ds.width / n
        transform = ds.transform @ Affine.scale(scale)
        profile = {
            "driver": "JP2OpenJPEG",
            "width": n,
            "height": n,
            "count": 3,
            "dtype": "uint8",
            "crs": ds.crs,
            "transform": transform,
            "QUALITY": "100",
            "REVERSIBLE": "YES",
            "YCC": "NO",
        }
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    aux = dst.with_name(dst.name + ".aux.xml")
    if aux.exists():
        aux.unlink()


#: Share of the AOD at 550 nm per CAMS species, and the Angstrom exponent, of each LUT aerosol model
#: (continental: sulphate and organic matter; maritime: sea salt).
AUX_AEROSOL_MIX: dict[str, tuple[dict[str, float], float]] = {
    "continental": ({"sea_salt": 0.05, "dust": 0.10, "organic_matter": 0.30, "black_carbon": 0.05, "sulphate": 0.50},
                    1.3),
    "maritime": ({"sea_salt": 0.70, "dust": 0.05, "organic_matter": 0.05, "black_carbon": 0.0, "sulphate": 0.20},
                 0.5),
}  # fmt: skip


def write_aux_data(
    aux_dir: Path,
    grid: TileGrid,
    size_m: float,
    field_60m: dict[str, NDArray[np.floating]],
    *,
    ozone_cm_atm: float,
    aerosol: str,
    reference_time: _dt.datetime,
    points: int = 9,
) -> list[Path]:
    """``AUX_CAMSFO`` and ``AUX_ECMWFT`` with the scene's atmosphere, on a lat/lon grid over the tile.

    ``field_60m``: ``aot`` (AOT550) and ``wv`` (cm), the columns above the ground on the 60 m grid
    of the tile's ``size_m`` x ``size_m`` upper-left part. The grid has ``points`` x ``points`` points
    and reaches one step beyond the part; each point takes the field at its place (the edge
    values outside). Sea-level pressure is the standard 1013.25 hPa, the generator's atmosphere.
    Written as GRIB 2 coded 192 / GRIB 1 table / parameter (:func:`sen2core.io.read.auxdata.write_grib`).
    """
    from rasterio.warp import transform as warp_transform

    from sen2core.io.read.auxdata import CAMS_FILE, CAMS_PARAMETERS, DU_KG_M2, ECMWF_FILE, ECMWF_PARAMETERS, write_grib
    from sen2core.kernels.interp import multilinear

    crs = f"EPSG:{grid.epsg}"
    cx = [grid.ulx, grid.ulx + size_m, grid.ulx, grid.ulx + size_m]
    cy = [grid.uly, grid.uly, grid.uly - size_m, grid.uly - size_m]
    lon_c, lat_c = warp_transform(crs, "EPSG:4326", cx, cy)
    dlon = (max(lon_c) - min(lon_c)) / (points - 3)
    dlat = (max(lat_c) - min(lat_c)) / (points - 3)
    lons = min(lon_c) - dlon + dlon * np.arange(points)
    lats = max(lat_c) + dlat - dlat * np.arange(points)
    lon2, lat2 = np.meshgrid(lons, lats)
    x, y = warp_transform("EPSG:4326", crs, lon2.ravel().tolist(), lat2.ravel().tolist())
    rows = (grid.uly - np.asarray(y)) / 60.0 - 0.5
    cols = (np.asarray(x) - grid.ulx) / 60.0 - 0.5

    def sample(values: NDArray[np.floating]) -> NDArray[np.float64]:
        nodes = [np.arange(n, dtype=np.float64) for n in values.shape]
        return multilinear(values.astype(np.float64), nodes, [rows, cols]).reshape(points, points)

    aod = sample(field_60m["aot"])
    shares, angstrom = AUX_AEROSOL_MIX[aerosol]
    cams = [(CAMS_PARAMETERS["aod550"], aod)]
    cams += [(CAMS_PARAMETERS[f"aod{nm}"], aod * (nm / 550.0) ** -angstrom) for nm in (469, 670, 865, 1240)]
    cams += [(CAMS_PARAMETERS[name], aod * share) for name, share in shares.items()]
    ecmwf = [
        (ECMWF_PARAMETERS["tcwv"], sample(field_60m["wv"]) * 10.0),  # cm -> kg m-2
        (ECMWF_PARAMETERS["msl"], np.full((points, points), 101325.0)),
        (ECMWF_PARAMETERS["tco3"], np.full((points, points), ozone_cm_atm * 1000.0 * DU_KG_M2)),
    ]
    aux_dir.mkdir(parents=True, exist_ok=True)
    ref = f"{reference_time:%Y-%m-%d}T00:00:00Z"
    out = []
    for name, fields in ((CAMS_FILE, cams), (ECMWF_FILE, ecmwf)):
        write_grib(aux_dir / name, fields, lon0=float(lons[0]), lat0=float(lats[0]), dlon=dlon, dlat=dlat,
                   reference_time=ref)  # fmt: skip
        out.append(aux_dir / name)
    return out

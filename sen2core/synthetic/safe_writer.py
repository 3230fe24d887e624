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

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from numpy.typing import NDArray
from rasterio.enums import Resampling
from rasterio.windows import Window

from sen2core.atmosphere.srf import BANDS, nominal_srf
from sen2core.io.write.xmlbuild import XSI, grid_value, iso_ms, iso_us, sub, xml_bytes
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


def _pct(v: float) -> str:
    return repr(round(float(v), 6))


def _register() -> None:
    for prefix, uri in (("xsi", XSI), ("xfdu", _NS_XFDU), ("safe", _NS_SAFE), ("gml", _NS_GML)):
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
    root = ET.Element(f"{n1}Level-1C_User_Product", {f"{{{XSI}}}schemaLocation": _NS_UP})
    gi = sub(root, f"{n1}General_Info")
    pi = sub(gi, "Product_Info")
    sub(pi, "PRODUCT_START_TIME", iso_ms(acq.datatake_start))
    sub(pi, "PRODUCT_STOP_TIME", iso_ms(acq.datatake_start))
    sub(pi, "PRODUCT_URI", f"{acq.product_id}.SAFE")
    sub(pi, "PROCESSING_LEVEL", "Level-1C")
    sub(pi, "PRODUCT_TYPE", "S2MSI1C")
    sub(pi, "PROCESSING_BASELINE", cfg.baseline)
    if meta.post4:
        sub(pi, "PRODUCT_DOI", _PRODUCT_DOI)
    sub(pi, "GENERATION_TIME", iso_us(acq.generation_time))
    sub(pi, "PREVIEW_IMAGE_URL", "Not applicable")
    sub(pi, "PREVIEW_GEO_INFO", "Not applicable")
    dt = sub(pi, "Datatake", datatakeIdentifier=acq.datatake_id)
    sub(dt, "SPACECRAFT_NAME", f"Sentinel-2{cfg.spacecraft[-1]}")
    sub(dt, "DATATAKE_TYPE", "INS-NOBS")
    sub(dt, "DATATAKE_SENSING_START", iso_ms(acq.datatake_start))
    sub(dt, "SENSING_ORBIT_NUMBER", acq.relative_orbit)
    sub(dt, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    qo = sub(pi, "Query_Options", completeSingleTile="true")
    sub(qo, "PRODUCT_FORMAT", "SAFE_COMPACT")
    org = sub(pi, "Product_Organisation")
    gl = sub(org, "Granule_List")
    gr = sub(gl, "Granule", datastripIdentifier=acq.datastrip_id, granuleIdentifier=acq.tile_id, imageFormat="JPEG2000")
    for f in meta.image_files:
        sub(gr, "IMAGE_FILE", f)

    pic = sub(gi, "Product_Image_Characteristics")
    for text, index in (("NODATA", 0), ("SATURATED", 65535)):
        sv = sub(pic, "Special_Values")
        sub(sv, "SPECIAL_VALUE_TEXT", text)
        sub(sv, "SPECIAL_VALUE_INDEX", index)
    ido = sub(pic, "Image_Display_Order")
    sub(ido, "RED_CHANNEL", 3)
    sub(ido, "GREEN_CHANNEL", 2)
    sub(ido, "BLUE_CHANNEL", 1)
    sub(pic, "QUANTIFICATION_VALUE", 10000, unit="none")
    if meta.post4:
        rol = sub(pic, "Radiometric_Offset_List")
        for i in range(len(BANDS)):
            sub(rol, "RADIO_ADD_OFFSET", cfg.offset, band_id=str(i))
    rc = sub(pic, "Reflectance_Conversion")
    sub(rc, "U", repr(meta.u))
    sil = sub(rc, "Solar_Irradiance_List")
    for i, e0 in enumerate(SOLAR_IRRADIANCE[cfg.spacecraft]):
        sub(sil, "SOLAR_IRRADIANCE", f"{e0:g}", bandId=str(i), unit="W/m²/µm")
    spl = sub(pic, "Spectral_Information_List")
    for i, band in enumerate(BANDS):
        _spectral_information(spl, cfg.spacecraft, i, band)
    for i, gain in enumerate(PHYSICAL_GAINS[cfg.spacecraft]):
        sub(pic, "PHYSICAL_GAINS", repr(gain), bandId=str(i))

    geo = sub(root, f"{n1}Geometric_Info")
    pf = sub(geo, "Product_Footprint")
    pf2 = sub(pf, "Product_Footprint")
    gf = sub(pf2, "Global_Footprint")
    sub(gf, "EXT_POS_LIST", _footprint_text(meta.footprint_latlon))
    sub(pf, "RASTER_CS_TYPE", "POINT")
    sub(pf, "PIXEL_ORIGIN", 1)
    crs = sub(geo, "Coordinate_Reference_System")
    sub(crs, "GEO_TABLES", "EPSG", version="1")
    sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")

    aux = sub(root, f"{n1}Auxiliary_Data_Info")
    sub(aux, "GIPP_List")
    sub(aux, "PRODUCTION_DEM_TYPE", "S2__OPER_DEM_GLOBEF_PDMC_19800101T000000_S19800101T000000")
    day = acq.datatake_start.date()
    sub(
        aux,
        "IERS_BULLETIN_FILENAME",
        f"S2__OPER_AUX_UT1UTC_PDMC_{day - _dt.timedelta(days=6):%Y%m%d}T000000_V{day - _dt.timedelta(days=5):%Y%m%d}"
        f"T000000_{day + _dt.timedelta(days=360):%Y%m%d}T000000",
    )
    sub(aux, "GRI_List")
    sub(
        aux,
        "ECMWF_DATA_REF",
        f"S2__OPER_AUX_ECMWFD_ADG__{day:%Y%m%d}T000000_V{day:%Y%m%d}T090000_{day + _dt.timedelta(days=2):%Y%m%d}"
        "T030000",
    )

    qii = sub(root, f"{n1}Quality_Indicators_Info")
    sub(qii, "Cloud_Coverage_Assessment", _pct(meta.cloudy_percent))
    if meta.post4:
        sub(qii, "Snow_Coverage_Assessment", _pct(meta.snow_percent))
    tqa = sub(qii, "Technical_Quality_Assessment")
    sub(tqa, "DEGRADED_ANC_DATA_PERCENTAGE", "0.0")
    sub(tqa, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    qcc = sub(qii, "Quality_Control_Checks")
    qin = sub(qcc, "Quality_Inspections")
    for check in (
        "FORMAT_CORRECTNESS",
        "GENERAL_QUALITY",
        "GEOMETRIC_QUALITY",
        "RADIOMETRIC_QUALITY",
        "SENSOR_QUALITY",
    ):
        sub(qin, "quality_check", "PASSED", checkType=check)
    sub(qcc, "Failed_Inspections")
    return xml_bytes(root, _synthetic_comment(meta))


def _spectral_information(parent: ET.Element, spacecraft: str, index: int, band: str) -> None:
    """One ``Spectral_Information``: the response the LUT was built with, at 1 nm steps."""
    srf = nominal_srf(spacecraft, band)
    wl_nm = srf.wavelengths_um * 1000.0
    lo, hi = int(np.ceil(wl_nm[0])), int(np.floor(wl_nm[-1]))
    grid = np.arange(lo, hi + 1, dtype=np.float64)
    values = np.interp(grid, wl_nm, np.asarray(srf.values))
    values = values / values.max()
    si = sub(parent, "Spectral_Information", bandId=str(index), physicalBand=_PHYSICAL_BAND[band])
    sub(si, "RESOLUTION", BAND_RESOLUTION[band])
    wl = sub(si, "Wavelength")
    sub(wl, "MIN", lo, unit="nm")
    sub(wl, "MAX", hi, unit="nm")
    sub(wl, "CENTRAL", f"{_NOMINAL_CENTRE_NM[spacecraft][index]:g}", unit="nm")
    sr = sub(si, "Spectral_Response")
    sub(sr, "STEP", 1, unit="nm")
    sub(sr, "VALUES", " ".join(f"{v:.8g}" for v in values))


# ---------------------------------------------------------------------------- MTD_TL.xml


def _values_list(parent: ET.Element, grid: NDArray[np.float64]) -> None:
    vl = sub(parent, "Values_List")
    for row in grid:
        sub(vl, "VALUES", " ".join(grid_value(v) for v in row))


def _angle_pair(parent: ET.Element, zen: NDArray[np.float64], az: NDArray[np.float64]) -> None:
    for tag, grid in (("Zenith", zen), ("Azimuth", az)):
        el = sub(parent, tag)
        sub(el, "COL_STEP", 5000, unit="m")
        sub(el, "ROW_STEP", 5000, unit="m")
        _values_list(el, grid)


def tile_xml(meta: ProductMetadata) -> bytes:
    """``GRANULE/<granule>/MTD_TL.xml``."""
    _register()
    acq, g = meta.acq, meta.grid
    n1 = f"{{{_NS_TL}}}"
    ET.register_namespace("n1", _NS_TL)
    root = ET.Element(f"{n1}Level-1C_Tile_ID", {f"{{{XSI}}}schemaLocation": _NS_TL})
    gi = sub(root, f"{n1}General_Info")
    sub(gi, "TILE_ID", acq.tile_id, metadataLevel="Brief")
    sub(gi, "DATASTRIP_ID", acq.datastrip_id, metadataLevel="Standard")
    sub(gi, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    sub(gi, "SENSING_TIME", iso_us(acq.sensing_time), metadataLevel="Standard")
    ai = sub(gi, "Archiving_Info", metadataLevel="Expertise")
    centre = acq.datastrip_dir.split("_")[1]
    sub(ai, "ARCHIVING_CENTRE", centre if len(centre) == 4 else f"{centre}_")
    sub(ai, "ARCHIVING_TIME", iso_us(acq.generation_time + _dt.timedelta(minutes=23, seconds=17)))

    geo = sub(root, f"{n1}Geometric_Info")
    tg = sub(geo, "Tile_Geocoding", metadataLevel="Brief")
    sub(tg, "HORIZONTAL_CS_NAME", g.crs_name)
    sub(tg, "HORIZONTAL_CS_CODE", f"EPSG:{g.epsg}")
    for res in (10, 20, 60):
        size = sub(tg, "Size", resolution=str(res))
        n = meta.size * 10 // res
        sub(size, "NROWS", n)
        sub(size, "NCOLS", n)
    for res in (10, 20, 60):
        pos = sub(tg, "Geoposition", resolution=str(res))
        sub(pos, "ULX", g.ulx)
        sub(pos, "ULY", g.uly)
        sub(pos, "XDIM", res)
        sub(pos, "YDIM", -res)
    ta = sub(geo, "Tile_Angles", metadataLevel="Standard")
    sag = sub(ta, "Sun_Angles_Grid")
    _angle_pair(sag, *meta.sun)
    msa = sub(ta, "Mean_Sun_Angle")
    sub(msa, "ZENITH_ANGLE", repr(meta.mean_sun[0]), unit="deg")
    sub(msa, "AZIMUTH_ANGLE", repr(meta.mean_sun[1]), unit="deg")
    for i, band in enumerate(BANDS):
        for det, (zen, az) in sorted(meta.view[band].items()):
            vg = sub(ta, "Viewing_Incidence_Angles_Grids", bandId=str(i), detectorId=str(det))
            _angle_pair(vg, zen, az)
    mvl = sub(ta, "Mean_Viewing_Incidence_Angle_List")
    for i, band in enumerate(BANDS):
        mv = sub(mvl, "Mean_Viewing_Incidence_Angle", bandId=str(i))
        sub(mv, "ZENITH_ANGLE", repr(meta.mean_view[band][0]), unit="deg")
        sub(mv, "AZIMUTH_ANGLE", repr(meta.mean_view[band][1]), unit="deg")

    qii = sub(root, f"{n1}Quality_Indicators_Info", metadataLevel="Standard")
    ic = sub(qii, "Image_Content_QI")
    sub(ic, "CLOUDY_PIXEL_PERCENTAGE", _pct(meta.cloudy_percent))
    sub(ic, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    if meta.post4:
        sub(ic, "SNOW_PIXEL_PERCENTAGE", _pct(meta.snow_percent))
    if meta.mask_files:
        plq = sub(qii, "Pixel_Level_QI", geometry="FULL_RESOLUTION")
        for rel in meta.mask_files:
            kind, band = rel.rsplit("/", 1)[-1][:-4].rsplit("_", 1)
            attrs = {"bandId": str(BANDS.index(band))} if band in BANDS else {}
            sub(plq, "MASK_FILENAME", rel, **attrs, type=kind)
    sub(qii, "PVI_FILENAME", meta.preview_file)
    return xml_bytes(root, _synthetic_comment(meta))


# ---------------------------------------------------------------------------- MTD_DS.xml


def datastrip_xml(meta: ProductMetadata) -> bytes:
    """``DATASTRIP/<datastrip>/MTD_DS.xml`` (general and radiometric information only)."""
    _register()
    cfg, acq = meta.config, meta.acq
    n1 = f"{{{_NS_DS}}}"
    ET.register_namespace("n1", _NS_DS)
    root = ET.Element(f"{n1}Level-1C_DataStrip_ID", {f"{{{XSI}}}schemaLocation": _NS_DS})
    gi = sub(root, f"{n1}General_Info")
    sub(gi, "DATASTRIP_ID", acq.datastrip_id, metadataLevel="Brief")
    sub(gi, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    dti = sub(gi, "Datatake_Info", datatakeIdentifier=acq.datatake_id, metadataLevel="Brief")
    sub(dti, "DATATAKE_TYPE", "INS-NOBS")
    sub(dti, "DATATAKE_SENSING_START", iso_ms(acq.datatake_start))
    sub(dti, "SENSING_ORBIT_NUMBER", acq.relative_orbit)
    sub(dti, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    sub(dti, "SPACECRAFT_NAME", f"Sentinel-2{cfg.spacecraft[-1]}")
    ti = sub(gi, "Datastrip_Time_Info", metadataLevel="Brief")
    sub(ti, "DATASTRIP_SENSING_START", iso_us(acq.datastrip_start))
    stop = acq.sensing_time + (acq.sensing_time - acq.datastrip_start)
    sub(ti, "DATASTRIP_SENSING_STOP", iso_us(stop))
    pi = sub(gi, "Processing_Info", metadataLevel="Brief")
    sub(pi, "UTC_DATE_TIME", iso_us(acq.generation_time))
    sub(pi, "PROCESSING_BASELINE", cfg.baseline)
    idi = sub(root, f"{n1}Image_Data_Info")
    ri = sub(idi, "Radiometric_Info", metadataLevel="Standard")
    sub(ri, "QUANTIFICATION_VALUE", 10000, unit="none")
    if meta.post4:
        rol = sub(ri, "Radiometric_Offset_List")
        for i in range(len(BANDS)):
            sub(rol, "RADIO_ADD_OFFSET", cfg.offset, band_id=str(i))
    rc = sub(ri, "Reflectance_Conversion")
    sub(rc, "U", repr(meta.u))
    sil = sub(rc, "Solar_Irradiance_List")
    for i, e0 in enumerate(SOLAR_IRRADIANCE[cfg.spacecraft]):
        sub(sil, "SOLAR_IRRADIANCE", f"{e0:g}", bandId=str(i), unit="W/m²/µm")
    return xml_bytes(root, _synthetic_comment(meta))


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
    ipm = sub(root, "informationPackageMap")
    top = sub(
        ipm,
        f"{x}contentUnit",
        dmdID="acquisitionPeriod platform",
        pdiID="processing",
        textInfo="SENTINEL-2 MSI Level-1C User Product",
        unitType="Product_Level-1C",
    )
    for rel, _, _ in files:
        ident, _ = _data_object_id(rel)
        unit = sub(
            top,
            f"{x}contentUnit",
            ID=ident.replace("_Data", "_Unit").replace("_Metadata", "_Metadata_Unit"),
            unitType="Metadata Unit" if rel.endswith(".xml") else "Measurement Data Unit",
        )
        sub(unit, "dataObjectPointer", dataObjectID=ident)
    ms = sub(root, "metadataSection")
    mo = sub(ms, "metadataObject", ID="acquisitionPeriod", category="DMD", classification="DESCRIPTION")
    xd = sub(
        sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Acquisition Period", vocabularyName="Sentinel-SAFE"),
        "xmlData",
    )
    sub(sub(xd, f"{s}acquisitionPeriod"), f"{s}startTime", iso_ms(acq.datatake_start))
    mo = sub(ms, "metadataObject", ID="measurementOrbitReference", category="DMD", classification="DESCRIPTION")
    xd = sub(
        sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Orbit Reference", vocabularyName="Sentinel-SAFE"),
        "xmlData",
    )
    orb = sub(xd, f"{s}orbitReference")
    sub(orb, f"{s}orbitNumber", f"{acq.absolute_orbit:06d}", groundTrackDirection="descending", type="start")
    sub(orb, f"{s}relativeOrbitNumber", acq.relative_orbit, type="start")
    mo = sub(ms, "metadataObject", ID="platform", category="DMD", classification="DESCRIPTION")
    xd = sub(
        sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Platform Description", vocabularyName="Sentinel-SAFE"),
        "xmlData",
    )
    pl = sub(xd, f"{s}platform")
    sub(pl, f"{s}nssdcIdentifier", _NSSDC[cfg.spacecraft])
    sub(pl, f"{s}familyName", "SENTINEL")
    sub(pl, f"{s}number", cfg.spacecraft[1:])
    ins = sub(pl, f"{s}instrument")
    sub(ins, f"{s}familyName", "Multi-Spectral Instrument", abbreviation="MSI")
    mo = sub(ms, "metadataObject", ID="processing", category="PDI", classification="PROVENANCE")
    xd = sub(
        sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Processing", vocabularyName="Sentinel-SAFE"), "xmlData"
    )
    sub(xd, f"{s}processing", name="Generation of Level-1C User Product", start=iso_us(acq.generation_time))
    mo = sub(ms, "metadataObject", ID="measurementFrameSet", category="DMD", classification="DESCRIPTION")
    xd = sub(
        sub(mo, "metadataWrap", mimeType="text/xml", textInfo="Frame Set", vocabularyName="Sentinel-SAFE"), "xmlData"
    )
    fp = sub(sub(xd, f"{s}frameSet"), f"{s}footPrint", srsName="http://www.opengis.net/gml/srs/epsg.xml#4326")
    sub(fp, f"{gml}coordinates", _footprint_text(meta.footprint_latlon))
    dos = sub(root, "dataObjectSection")
    for rel, size, digest in files:
        ident, mime = _data_object_id(rel)
        do = sub(dos, "dataObject", ID=ident)
        bs = sub(do, "byteStream", mimeType=mime, size=str(size))
        sub(bs, "fileLocation", href=f"./{rel}", locatorType="URL")
        sub(bs, "checksum", digest, checksumName=algorithm)
    return xml_bytes(root)


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

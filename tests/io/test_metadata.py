"""Metadata parsers: one per file, checked on every fixture against an independent parse."""

from __future__ import annotations

import dataclasses
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from sen2core.errors import MetadataError
from sen2core.io.read.manifest import parse_manifest
from sen2core.io.read.metadata import BAND_IDS, GeoBox, ResolutionGrid, band_from_index, normalize_band
from sen2core.io.read.mtd_product import baseline_from_name, parse_user_product
from sen2core.io.read.mtd_tile import parse_epsg, parse_tile
from sen2core.io.read.tileinfo import parse_tile_info

DATA = Path(__file__).parents[1] / "data" / "metadata"
USER_FILES = sorted(
    p
    for p in DATA.rglob("*.xml")
    if re.match(r"MTD_MSIL(1C|2A)\.xml$", p.name, re.I) or p.name == "product_metadata.xml"
)
TILE_FILES = sorted(p for p in DATA.rglob("*.xml") if p.name in ("MTD_TL.xml", "metadata.xml"))
MANIFESTS = sorted(DATA.rglob("manifest.safe"))
TILE_INFOS = sorted(DATA.rglob("tileInfo.json"))


def _tree(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    for el in root.iter():
        el.tag = el.tag.rsplit("}", 1)[-1]
    return root


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(DATA).as_posix()[-70:] for p in paths]


def _grid(el: ET.Element) -> np.ndarray | None:
    rows = [v.text.split() for v in el.iter("VALUES") if v.text and v.text.strip()]
    return np.array(rows, dtype=float) if rows else None


@pytest.mark.parametrize("path", USER_FILES, ids=_ids(USER_FILES))
def test_user_product_matches_xml(path: Path) -> None:
    md = parse_user_product(path.read_bytes(), product=str(path), name=path.name)
    root = _tree(path)
    assert md.level == ("L1C" if "1C" in root.tag else "L2A")

    def text(tag: str) -> str | None:
        el = next(root.iter(tag), None)
        return el.text.strip() if el is not None and el.text and el.text.strip() else None

    assert md.processing_baseline == text("PROCESSING_BASELINE")
    assert md.spacecraft == text("SPACECRAFT_NAME")
    assert md.product_uri == (text("PRODUCT_URI") or text("PRODUCT_URI_2A"))
    assert md.product_type == text("PRODUCT_TYPE")
    files = [e.text.strip() for e in root.iter() if e.tag in ("IMAGE_FILE", "IMAGE_FILE_2A")]
    assert list(md.image_files) == files
    if md.level == "L1C":
        assert md.quantification_value == float(text("QUANTIFICATION_VALUE"))
    else:
        boa = text("BOA_QUANTIFICATION_VALUE") or text("L2A_BOA_QUANTIFICATION_VALUE")
        assert md.boa_quantification_value == (float(boa) if boa else None)
    for tag, got in (("RADIO_ADD_OFFSET", md.radio_add_offset), ("BOA_ADD_OFFSET", md.boa_add_offset)):
        expected = {BAND_IDS[int(e.get("band_id"))]: float(e.text) for e in root.iter(tag)}
        assert dict(got) == expected
    e0 = {BAND_IDS[int(e.get("bandId"))]: float(e.text) for e in root.iter("SOLAR_IRRADIANCE")}
    assert dict(md.solar_irradiance) == e0
    assert md.u == (float(text("U")) if text("U") else None)
    if md.u is None:
        assert any("U" in w for w in md.warnings)
    assert set(md.central_wavelength) <= set(BAND_IDS)


@pytest.mark.parametrize("path", TILE_FILES, ids=_ids(TILE_FILES))
def test_tile_matches_xml(path: Path) -> None:
    md = parse_tile(path.read_bytes(), product=str(path), name=path.name)
    root = _tree(path)
    assert md.level == ("L1C" if "1C" in root.tag else "L2A")
    code = next(root.iter("HORIZONTAL_CS_CODE")).text
    assert md.epsg == int(code.split(":")[1])
    for size in root.iter("Size"):
        res = int(size.get("resolution"))
        expected = (int(size.find("NROWS").text), int(size.find("NCOLS").text))
        assert (md.grids[res].nrows, md.grids[res].ncols) == expected
    for pos in root.iter("Geoposition"):
        g = md.grids[int(pos.get("resolution"))]
        assert (g.ulx, g.uly, g.xdim, g.ydim) == tuple(float(pos.find(k).text) for k in ("ULX", "ULY", "XDIM", "YDIM"))

    sun = next(root.iter("Sun_Angles_Grid"), None)
    zen = _grid(sun.find("Zenith")) if sun is not None else None
    if zen is None:
        assert md.sun_grid is None and md.warnings
    else:
        np.testing.assert_array_equal(md.sun_grid.zenith, zen)
        np.testing.assert_array_equal(md.sun_grid.azimuth, _grid(sun.find("Azimuth")))
        assert md.sun_grid.row_step == md.sun_grid.col_step == 5000.0
        assert not md.sun_grid.zenith.flags.writeable

    view_xml = {}
    for vg in root.iter("Viewing_Incidence_Angles_Grids"):
        z = _grid(vg.find("Zenith"))
        step = float(vg.find("Zenith/COL_STEP").text)
        if z is not None and step > 0 and np.isfinite(z).any():
            view_xml[(BAND_IDS[int(vg.get("bandId"))], int(vg.get("detectorId")))] = z
    parsed = {(b, d): g.zenith for b, grids in md.view_grids.items() for d, g in grids}
    assert parsed.keys() == view_xml.keys()
    for key, z in view_xml.items():
        np.testing.assert_array_equal(parsed[key], z)  # NaN cells kept as NaN

    ms = next(root.iter("Mean_Sun_Angle"), None)
    if ms is not None:
        zen_m = float(ms.find("ZENITH_ANGLE").text)
        assert (math.isnan(zen_m) and math.isnan(md.mean_sun.zenith)) or md.mean_sun.zenith == zen_m
    for mv in root.iter("Mean_Viewing_Incidence_Angle"):
        band = BAND_IDS[int(mv.get("bandId"))]
        z_m = float(mv.find("ZENITH_ANGLE").text)
        assert (math.isnan(z_m) and not md.mean_view[band].finite) or md.mean_view[band].zenith == z_m


def test_tile_nan_and_degenerate_grids() -> None:
    with_nan = DATA / (
        "stactools-sentinel2/S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE/"
        "GRANULE/L1C_T46RER_A032448_20210908T043714/MTD_TL.xml"
    )
    md = parse_tile(with_nan.read_bytes(), product="p")
    assert any(np.isnan(g.zenith).any() for _, g in md.view_grids["B01"])
    degenerate = DATA / "stactools-sentinel2/S2A_OPER_MSI_L2A_TL_2APS_20240108T121951_A044635_T34VEL/metadata.xml"
    md = parse_tile(degenerate.read_bytes(), product="p", name="metadata.xml")
    assert md.view_grids == {} and any("step is missing or not positive" in w for w in md.warnings)
    assert not md.mean_view["B01"].finite
    empty = DATA / "gdal-autotest-sentinel2/fake_l1c_safecompact/S2A_MSIL1C_test.SAFE/GRANULE/FOO/MTD_TL.xml"
    md = parse_tile(empty.read_bytes(), product="p")
    assert md.sun_grid is None and md.mean_sun.zenith == 26.0
    assert any("Sun_Angles_Grid: empty" in w for w in md.warnings)


@pytest.mark.parametrize("path", MANIFESTS, ids=_ids(MANIFESTS))
def test_manifest(path: Path) -> None:
    md = parse_manifest(path.read_bytes(), product=str(path))
    root = _tree(path)
    hrefs = [h[2:] if h.startswith("./") else h for h in (loc.get("href") for loc in root.iter("fileLocation"))]
    assert list(md.file_sizes) == hrefs
    assert md.level in ("L1C", "L2A")
    assert (md.level == "L1C") == ("L1C" in path.parent.name)
    assert md.spacecraft in ("Sentinel-2A", "Sentinel-2B")
    if next(root.iter("startTime"), None) is not None:
        assert md.start_time is not None and md.start_time.tzinfo is not None
    sizes = [int(bs.get("size")) for bs in root.iter("byteStream") if bs.find("fileLocation") is not None]
    assert list(md.file_sizes.values()) == sizes
    assert any(re.match(r"MTD_MSIL(1C|2A)\.xml$", h) for h in md.file_sizes)


@pytest.mark.parametrize("path", TILE_INFOS, ids=_ids(TILE_INFOS))
def test_tile_info(path: Path) -> None:
    import json

    doc = json.loads(path.read_text())
    ti = parse_tile_info(path.read_bytes(), product=str(path))
    assert ti.tile_id == f"{doc['utmZone']:02d}{doc['latitudeBand']}{doc['gridSquare']}"
    assert ti.epsg == int(doc["tileGeometry"]["crs"]["properties"]["name"].rsplit(":", 1)[1])
    assert ti.origin == tuple(doc["tileOrigin"]["coordinates"])
    left, bottom, right, top = ti.bounds
    assert (right - left, top - bottom) == (109800.0, 109800.0)
    assert ti.datastrip_id == doc["datastrip"]["id"] and ti.product_name == doc["productName"]


def test_missing_optional_parts_become_warnings() -> None:
    src = DATA / (
        "stactools-sentinel2/S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE/MTD_MSIL1C.xml"
    )
    text = src.read_text(encoding="utf-8")
    text = re.sub(r"<U>.*?</U>", "", text)
    text = re.sub(r"<Solar_Irradiance_List>.*?</Solar_Irradiance_List>", "", text, flags=re.DOTALL)
    text = re.sub(r"<PROCESSING_BASELINE>.*?</PROCESSING_BASELINE>", "", text)
    md = parse_user_product(text.encode(), product="p", name="MTD_MSIL1C.xml")
    assert md.u is None and not md.solar_irradiance and md.processing_baseline is None
    assert {
        "MTD_MSIL1C.xml: no Reflectance_Conversion/U",
        "MTD_MSIL1C.xml: no SOLAR_IRRADIANCE values",
        "MTD_MSIL1C.xml: no PROCESSING_BASELINE",
    } <= set(md.warnings)


@pytest.mark.parametrize("parser", [parse_user_product, parse_tile, parse_manifest], ids=["user", "tile", "manifest"])
@pytest.mark.parametrize(
    "payload",
    [
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c"><!ENTITY d "&b;&b;">]><a>&d;</a>',
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/hostname">]><a>&e;</a>',
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><a/>',
    ],
    ids=["entity-expansion", "external-entity", "external-parameter-entity"],
)
def test_unsafe_xml_refused(parser, payload: bytes) -> None:
    with pytest.raises(MetadataError, match="unsafe XML refused"):
        parser(payload, product="P", name="f.xml")


@pytest.mark.parametrize("payload", [b"", b"<a><b>", b"\x89PNG\r\n\x1a\n\x00\x00", b"<?xml version='1.0'?>"])
def test_malformed_xml(payload: bytes) -> None:
    with pytest.raises(MetadataError, match=r"^P: f\.xml: malformed or truncated XML"):
        parse_tile(payload, product="P", name="f.xml")


def test_bad_number_is_a_metadata_error() -> None:
    xml = (
        b"<Level-1C_User_Product><General_Info><Product_Image_Characteristics>"
        b"<QUANTIFICATION_VALUE>ten</QUANTIFICATION_VALUE></Product_Image_Characteristics></General_Info>"
        b"</Level-1C_User_Product>"
    )
    with pytest.raises(MetadataError, match="QUANTIFICATION_VALUE: 'ten' is not a number"):
        parse_user_product(xml, product="P")


def test_band_helpers() -> None:
    assert band_from_index(8) == "B8A" and band_from_index("12") == "B12"
    assert [normalize_band(b) for b in ("B1", "b01", "B8a", "B10")] == ["B01", "B01", "B8A", "B10"]
    with pytest.raises(ValueError):
        normalize_band("B13")
    with pytest.raises(ValueError):
        band_from_index(13)
    assert baseline_from_name("S2A_OPER_MSI_L1C_DS_SGS__20170729T190750_S20170729T153557_N02.05") == "02.05"
    assert baseline_from_name("S2B_MSIL2A_20220413T150759_N0400_R025_T33XWJ_20220414T082126") == "04.00"
    assert parse_epsg("urn:ogc:def:crs:EPSG:8.8.1:32619") == 32619 and parse_epsg("EPSG:32634") == 32634


def test_value_objects_are_frozen() -> None:
    g = ResolutionGrid(resolution=20, nrows=5490, ncols=5490, ulx=300000.0, uly=6100020.0, xdim=20.0, ydim=-20.0)
    gb = g.geobox(32634)
    assert isinstance(gb, GeoBox) and gb.bounds == (300000.0, 5990220.0, 409800.0, 6100020.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        gb.epsg = 4326  # type: ignore[misc]
    md = parse_user_product(USER_FILES[0].read_bytes(), product="p")
    with pytest.raises(TypeError):
        md.solar_irradiance["B01"] = 0.0  # type: ignore[index]

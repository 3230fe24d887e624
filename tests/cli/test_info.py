"""``sen2core info``: JSON values checked against the XML, parsed here independently."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from sen2core.cli import main

AWS_900M = Path(__file__).parents[1] / "data" / "l1c-T19UDP-20170729-900m"
FALLBACK = "no angle grids: sun angles computed from sensing time and footprint, view assumed nadir"

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def _strip(root: ET.Element) -> ET.Element:
    for el in root.iter():
        if isinstance(el.tag, str):
            el.tag = el.tag.rsplit("}", 1)[-1]
    return root


def _parse(path: Path | None) -> ET.Element | None:
    return _strip(ET.parse(path).getroot()) if path is not None else None


def _first(root: ET.Element | None, tag: str) -> str | None:
    if root is None:
        return None
    el = next(root.iter(tag), None)
    return el.text.strip() if el is not None and el.text and el.text.strip() else None


def _per_band(root: ET.Element | None, tag: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if root is not None:
        for el in root.iter(tag):
            idx = el.get("bandId", el.get("band_id"))
            if idx is not None and el.text:
                out[BANDS[int(idx)]] = float(el.text)
    return out


def _time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    t = dt.datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _files(root: Path) -> tuple[Path | None, Path | None, Path | None]:
    user = next((p for p in sorted(root.iterdir()) if re.match(r"MTD_MSIL(1C|2A)\.xml$", p.name, re.I)), None)
    user = user or (root / "product_metadata.xml" if (root / "product_metadata.xml").exists() else None)
    patterns = ("GRANULE/*/MTD_TL.xml", "MTD_TL.xml", "metadata.xml")
    tiles = [p for pattern in patterns for p in sorted(root.glob(pattern))]
    tile = tiles[0] if tiles else None
    info = root / "tileInfo.json"
    return user, tile, info if info.exists() else None


def _run_info(path: Path) -> dict:
    result = CliRunner().invoke(main, ["info", "--json", str(path)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_info_json_matches_xml(metadata_product: Path) -> None:
    out = _run_info(metadata_product)
    user_p, tile_p, info_p = _files(metadata_product)
    user, tile = _parse(user_p), _parse(tile_p)
    tinfo = json.loads(info_p.read_text()) if info_p else {}

    root_tag = (user if user is not None else tile).tag
    assert out["level"] == ("L1C" if "1C" in root_tag else "L2A")
    is_l1c = out["level"] == "L1C"

    baseline = _first(user, "PROCESSING_BASELINE")
    if baseline is None:
        baseline = re.search(r"_N(\d\d\.\d\d)$", tinfo["datastrip"]["id"]).group(1)
    assert out["processing_baseline"] == baseline
    if _first(user, "SPACECRAFT_NAME"):
        assert out["spacecraft"] == _first(user, "SPACECRAFT_NAME")
    tile_id = _first(tile, "TILE_ID")
    if tile_id:
        assert out["tile_id"] == re.search(r"_T(\d\d[A-Z]{3})_", tile_id).group(1)

    sensing = _first(tile, "SENSING_TIME") or tinfo.get("timestamp") or _first(user, "DATATAKE_SENSING_START")
    assert out["sensing_time"].endswith("Z")
    assert _time(out["sensing_time"]) == _time(sensing)

    if tile is not None and _first(tile, "HORIZONTAL_CS_CODE"):
        assert out["epsg"] == int(_first(tile, "HORIZONTAL_CS_CODE").split(":")[1])
        sizes = {el.get("resolution"): el for el in tile.iter("Size")}
        positions = {el.get("resolution"): el for el in tile.iter("Geoposition")}
        assert set(out["grids"]) == set(sizes)
        for res, size in sizes.items():
            g = out["grids"][res]
            nrows, ncols = int(size.find("NROWS").text), int(size.find("NCOLS").text)
            ulx, uly = float(positions[res].find("ULX").text), float(positions[res].find("ULY").text)
            assert (g["height"], g["width"]) == (nrows, ncols)
            assert g["bounds"] == pytest.approx([ulx, uly - nrows * int(res), ulx + ncols * int(res), uly])
            assert g["transform"] == pytest.approx([int(res), 0, ulx, 0, -int(res), uly])

    post4 = float(baseline) >= 4.0
    if is_l1c:
        q = _first(user, "QUANTIFICATION_VALUE")
        assert out["quantification_value"] == (float(q) if q else 10000.0)
        assert out["boa_quantification_value"] is None and out["boa_add_offset"] is None
        xml_off, got_off = _per_band(user, "RADIO_ADD_OFFSET"), out["radio_add_offset"]
    else:
        q = _first(user, "BOA_QUANTIFICATION_VALUE") or _first(user, "L2A_BOA_QUANTIFICATION_VALUE")
        assert out["boa_quantification_value"] == (float(q) if q else 10000.0)
        for key, tags in (
            ("aot_quantification_value", ("AOT_QUANTIFICATION_VALUE", "L2A_AOT_QUANTIFICATION_VALUE")),
            ("wvp_quantification_value", ("WVP_QUANTIFICATION_VALUE", "L2A_WVP_QUANTIFICATION_VALUE")),
        ):
            v = _first(user, tags[0]) or _first(user, tags[1])
            assert out[key] == (float(v) if v else None)
        assert out["quantification_value"] is None and out["radio_add_offset"] is None
        xml_off, got_off = _per_band(user, "BOA_ADD_OFFSET"), out["boa_add_offset"]
    for band, value in got_off.items():
        assert value == xml_off.get(band, -1000.0 if post4 else 0.0)

    u = _first(user, "U")
    if u is not None:
        assert out["u"] == float(u)
    else:
        assert any(w.startswith("U missing") for w in out["warnings"])
        assert 0.96 < out["u"] < 1.04
    e0 = _per_band(user, "SOLAR_IRRADIANCE")
    if e0:
        assert {b: out["solar_irradiance"][b] for b in e0} == e0

    mean_sun = next(tile.iter("Mean_Sun_Angle"), None) if tile is not None else None
    if mean_sun is not None and math.isfinite(float(mean_sun.find("ZENITH_ANGLE").text)):
        assert out["mean_sun_zenith"] == float(mean_sun.find("ZENITH_ANGLE").text)
        assert out["mean_sun_azimuth"] == float(mean_sun.find("AZIMUTH_ANGLE").text)
    elif out["grids"]:
        assert 0.0 <= out["mean_sun_zenith"] <= 90.0
    for mv in tile.iter("Mean_Viewing_Incidence_Angle") if tile is not None else ():
        band = BANDS[int(mv.get("bandId"))]
        zen, az = float(mv.find("ZENITH_ANGLE").text), float(mv.find("AZIMUTH_ANGLE").text)
        if math.isfinite(zen) and band in out["mean_view_zenith"]:
            assert out["mean_view_zenith"][band] == zen
            assert out["mean_view_azimuth"][band] == az

    has_sun_grid = tile is not None and any(
        (v.text or "").strip() for g in tile.iter("Sun_Angles_Grid") for v in g.iter("VALUES")
    )
    assert out["sun_angle_grid"] == has_sun_grid
    if not has_sun_grid and not out["view_angle_grid_bands"]:
        assert FALLBACK in out["warnings"]


def test_info_json_keys_are_documented() -> None:
    out = _run_info(AWS_900M)
    doc = (Path(__file__).parents[2] / "docs" / "info-json.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", doc, flags=re.MULTILINE))
    assert set(out) <= documented
    assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in out)


def test_info_900m_aws_sample() -> None:
    out = _run_info(AWS_900M)
    assert out["product_id"] == "S2A_MSIL1C_20170729T153601_N0205_R111_T19UDP_20170729T153557"
    assert out["layout"] == "AWS"
    assert (out["level"], out["processing_baseline"], out["tile_id"], out["epsg"]) == ("L1C", "02.05", "19UDP", 32619)
    assert out["sensing_time"] == "2017-07-29T15:35:57.455000Z"
    assert out["grids"]["900"]["width"] == out["grids"]["900"]["height"] == 122
    assert out["grids"]["900"]["bounds"] == [399960.0, 5290200.0, 509760.0, 5400000.0]
    assert out["quantification_value"] == 10000.0
    assert set(out["radio_add_offset"].values()) == {0.0}
    assert out["bands"] == list(BANDS)
    assert out["solar_irradiance"]["B01"] == 1884.69
    assert out["mean_view_zenith"]["B04"] == 0.0
    assert 30.0 < out["mean_sun_zenith"] < 36.0
    assert FALLBACK in out["warnings"]


def test_info_human_table(l1c_safe: Path) -> None:
    result = CliRunner().invoke(main, ["info", str(l1c_safe)])
    assert result.exit_code == 0, result.output
    for text in (
        "S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234 (L1C)",
        "34UCF",
        "05.09",
        "32634",
        "Pixel grids",
        "B8A",
        "-1000",
    ):
        assert text in result.stdout
    assert "MetadataWarning" not in result.output


def test_info_l2a_reports_boa_values() -> None:
    path = (
        Path(__file__).parents[1]
        / "data/metadata/gdal-autotest-sentinel2/fake_l2a_processing_baseline_5_09"
        / ("S2B_MSIL2A_20230823T095559_N0509_R122_T34UCF_20230823T124759.SAFE")
    )
    out = _run_info(path)
    assert out["level"] == "L2A"
    assert (out["boa_quantification_value"], out["aot_quantification_value"], out["wvp_quantification_value"]) == (
        10000.0,
        1000.0,
        1000.0,
    )
    assert set(out["boa_add_offset"].values()) == {-1000.0}
    assert "B10" not in out["bands"]

"""``--format safe``: Sen2Cor's Level-2A SAFE with JPEG 2000, read back by GDAL and by sen2core.

One small synthetic scene (366 px at 10 m) is processed once per layout and
resolution (module fixtures); the tests then look at the files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from sen2core.io.read.mtd_product import parse_user_product
from sen2core.io.read.opening import open_l1c
from sen2core.io.read.product import Product
from sen2core.io.write.mtd_l2a import read_quality_indicators, safe_naming
from sen2core.io.write.raster import jp2_creation_options
from sen2core.io.write.rasters import ProductRasters
from sen2core.io.write.xmlbuild import grid_value, iso_ms, iso_us, sub, xml_bytes
from sen2core.package import is_done
from sen2core.pipeline import L2AResult, ProcessingConfig, l2a_id, process_product

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SIZE = 366
R10 = ("B02", "B03", "B04", "B08", "AOT", "WVP", "TCI")
R20 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "AOT", "WVP", "SCL", "TCI")
R60 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12", "AOT", "WVP", "SCL", "TCI")
QI = ("MSK_CLDPRB_20m", "MSK_CLDPRB_60m", "MSK_SNWPRB_20m", "MSK_SNWPRB_60m")
#: Bands GDAL's SENTINEL2 driver shows per subdataset of a compact L2A product (its own fixed list).
GDAL_BANDS = {
    10: ["B4", "B3", "B2", "B8", "AOT", "WVP"],
    20: ["B5", "B6", "B7", "B8A", "B11", "B12", "AOT", "CLD", "SCL", "SNW", "WVP"],
    60: ["B1", "B9", "AOT", "CLD", "SCL", "SNW", "WVP"],
}


def _cli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "sen2core.cli", *args], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


@pytest.fixture(scope="module")
def l1c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = _cli("synth", str(tmp_path_factory.mktemp("l1c")), "--size", str(SIZE), "--seed", "21", "--cloud-cover", "15")
    return Path(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def safe_run(l1c: Path, tmp_path_factory: pytest.TempPathFactory) -> L2AResult:
    """Default run (every resolution), SAFE layout."""
    return process_product(l1c, tmp_path_factory.mktemp("safe"), ProcessingConfig(format="safe"))


@pytest.fixture(scope="module")
def cog_run(l1c: Path, tmp_path_factory: pytest.TempPathFactory) -> L2AResult:
    """The same product in the COG layout."""
    return process_product(l1c, tmp_path_factory.mktemp("cog"), ProcessingConfig(format="cog"))


@pytest.fixture(scope="module")
def safe20(l1c: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sen2core process --format safe --resolution 20`` through the command line."""
    root = tmp_path_factory.mktemp("safe20")
    out = json.loads(_cli("process", str(l1c), "-o", str(root), "--format", "safe", "--resolution", "20", "--json"))
    return Path(out["output_dir"])


def _epsg(safe: Path) -> int:
    with warnings.catch_warnings():
        # The container dataset of the product has no geotransform, only subdatasets.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(safe / "MTD_MSIL2A.xml") as ds:
            subdatasets = ds.subdatasets
    assert subdatasets, "GDAL's SENTINEL2 driver lists no subdataset"
    return int(subdatasets[0].rsplit("EPSG_", 1)[1])


def _subdataset(safe: Path, res: int | str) -> str:
    kind = f"{res}m" if isinstance(res, int) else res
    return f"SENTINEL2_L2A:{safe / 'MTD_MSIL2A.xml'}:{kind}:EPSG_{_epsg(safe)}"


def _granule(safe: Path) -> Path:
    (granule,) = (safe / "GRANULE").iterdir()
    return granule


def _jp2(safe: Path, kind: str, res: int) -> Path:
    folder = "QI_DATA" if kind.startswith("MSK_") else f"IMG_DATA/R{res}m"
    pattern = f"{kind}_{res}m.jp2" if kind.startswith("MSK_") else f"T*_{kind}_{res}m.jp2"
    (path,) = (_granule(safe) / folder).glob(pattern)
    return path


def _read(path: str | Path, band: int | None = None) -> np.ndarray:
    with rasterio.open(path) as ds:
        return np.asarray(ds.read(band) if band is not None else ds.read())


def _cog(run: L2AResult, logical: str) -> Path:
    (name,) = [f for f in run.files if Path(f).name == f"{logical}.tif"]
    return Path(run.output_dir) / name


def test_safe_tree_follows_sen2cor(safe_run: L2AResult) -> None:
    safe = Path(safe_run.output_dir)
    assert safe_run.status == "done" and safe.name == f"{safe_run.l2a_id}.SAFE"
    files = sorted(p.relative_to(safe).as_posix() for p in safe.rglob("*") if p.is_file())
    assert list(safe_run.files) == files
    granule = _granule(safe)
    tile = safe_run.l2a_id.split("_")[5]
    assert granule.name.startswith(f"L2A_{tile}_A")
    prefix = f"{tile}_{safe_run.l2a_id.split('_')[2]}"
    expected = {"MTD_MSIL2A.xml", "manifest.safe", f"GRANULE/{granule.name}/MTD_TL.xml",
                f"GRANULE/{granule.name}/QI_DATA/{prefix}_PVI.jp2"}  # fmt: skip
    for res, kinds in ((10, R10), (20, R20), (60, R60)):
        expected |= {f"GRANULE/{granule.name}/IMG_DATA/R{res}m/{prefix}_{k}_{res}m.jp2" for k in kinds}
    expected |= {f"GRANULE/{granule.name}/QI_DATA/{q}.jp2" for q in QI}
    assert set(files) == expected
    with rasterio.open(granule / "QI_DATA" / f"{prefix}_PVI.jp2") as pvi:
        assert (pvi.count, pvi.dtypes[0], pvi.width) == (3, "uint8", SIZE * 10 // 320)


def test_jp2_files_are_lossless_tiled_and_have_no_sidecar(safe_run: L2AResult) -> None:
    safe = Path(safe_run.output_dir)
    assert not list(safe.rglob("*.aux.xml")) and not list(safe.rglob("*.part.tif"))
    with rasterio.open(_jp2(safe, "B04", 10)) as ds:
        assert ds.driver == "JP2OpenJPEG" and ds.dtypes[0] == "uint16" and ds.count == 1
        assert ds.overviews(1), "no JPEG 2000 resolution levels"
    with rasterio.open(_jp2(safe, "TCI", 10)) as ds:
        assert (ds.count, ds.dtypes[0]) == (3, "uint8")
    assert jp2_creation_options(10980, 10980) == {"QUALITY": "100", "REVERSIBLE": "YES", "BLOCKXSIZE": "1024",
                                                  "BLOCKYSIZE": "1024", "RESOLUTIONS": "6"}  # fmt: skip
    assert jp2_creation_options(61, 61)["RESOLUTIONS"] == "1"


@pytest.mark.parametrize("res", [10, 20, 60])
def test_gdal_sentinel2_driver_opens_each_resolution(safe_run: L2AResult, res: int) -> None:
    safe = Path(safe_run.output_dir)
    with rasterio.open(_subdataset(safe, res)) as ds:
        assert ds.driver == "SENTINEL2"
        assert (ds.width, ds.height) == (SIZE * 10 // res,) * 2
        assert ds.crs.to_epsg() == _epsg(safe) and ds.transform.a == res
        assert [d.split(",")[0] for d in ds.descriptions] == GDAL_BANDS[res]
        tags = ds.tags()
        assert tags["PRODUCT_TYPE"] == "S2MSI2A" and tags["PROCESSING_LEVEL"] == "Level-2A"
        assert tags["BOA_QUANTIFICATION_VALUE"] == "10000" and tags["AOT_QUANTIFICATION_VALUE"] == "1000.0"
        assert tags["WVP_QUANTIFICATION_VALUE"] == "1000.0" and tags["WVP_QUANTIFICATION_VALUE_UNIT"] == "cm"
        assert ds.tags(1)["BOA_ADD_OFFSET"] == "-1000"


def test_gdal_pixels_equal_jp2_and_cog(safe_run: L2AResult, cog_run: L2AResult) -> None:
    """Bit-identical DN: SENTINEL2 subdataset band == JP2 file == COG of the same L1C."""
    safe = Path(safe_run.output_dir)
    checks = [(10, "B4", "B04"), (10, "AOT", "AOT"), (20, "B8A", "B8A"), (20, "SCL", "SCL"), (60, "B1", "B01"),
              (20, "CLD", "MSK_CLDPRB")]  # fmt: skip
    for res, gdal_name, kind in checks:
        with rasterio.open(_subdataset(safe, res)) as ds:
            band = [d.split(",")[0] for d in ds.descriptions].index(gdal_name) + 1
            via_driver = ds.read(band)
        jp2 = _read(_jp2(safe, kind, res), 1)
        cog = _read(_cog(cog_run, f"{kind}_{res}m"), 1)
        assert via_driver.dtype == np.uint16
        np.testing.assert_array_equal(via_driver, jp2, err_msg=f"{kind}_{res}m: driver != JP2")
        np.testing.assert_array_equal(jp2, cog, err_msg=f"{kind}_{res}m: JP2 != COG")
    with rasterio.open(_subdataset(safe, "TCI")) as ds:
        np.testing.assert_array_equal(ds.read(), _read(_cog(cog_run, "TCI_10m")))
    assert (jp2 > 0).any()


def test_sen2core_reads_the_safe_as_level_2a(safe_run: L2AResult, open_s2: Callable[..., Product]) -> None:
    safe = Path(safe_run.output_dir)
    product = open_s2(safe)
    assert product.level == "L2A" and product.product_type == "S2MSI2A" and product.warnings == ()
    assert product.bands == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    assert product.band_files["B04"].resolution == 10 and product.band_files["B09"].resolution == 60
    info = json.loads(_cli("info", "--json", str(safe)))
    assert info["level"] == "L2A" and info["product_type"] == "S2MSI2A" and info["warnings"] == []
    assert info["processing_baseline"] == f"{safe_run.l2a_id.split('_')[3][1:3]}.{safe_run.l2a_id.split('_')[3][3:]}"
    assert (info["boa_quantification_value"], info["aot_quantification_value"],
            info["wvp_quantification_value"]) == (10000, 1000, 1000)  # fmt: skip
    assert set(info["boa_add_offset"].values()) == {-1000}
    assert info["sun_angle_grid"] and "B8A" in info["view_angle_grid_bands"]


def test_metadata_matches_the_run_summary(safe_run: L2AResult) -> None:
    safe = Path(safe_run.output_dir)
    qi = read_quality_indicators((safe / "MTD_MSIL2A.xml").read_bytes())
    expected = {k: v for k, v in safe_run.class_percentages.items() if k in qi["class_percentages"]}
    assert len(expected) >= 14 and "CLOUDY_PIXEL_PERCENTAGE" in expected
    for key, value in expected.items():
        assert qi["class_percentages"][key] == pytest.approx(value, abs=1e-6), key
    atm = safe_run.atmosphere
    assert qi["atmosphere"]["AOT_RETRIEVAL_METHOD"] == atm["AOT_RETRIEVAL_METHOD"]
    assert qi["atmosphere"]["OZONE_SOURCE"] == atm["OZONE_SOURCE"]
    for key in ("GRANULE_MEAN_AOT", "GRANULE_MEAN_WV", "OZONE_VALUE"):
        assert qi["atmosphere"][key] == pytest.approx(atm[key], abs=1e-6), key
    um = parse_user_product((safe / "MTD_MSIL2A.xml").read_bytes(), product=str(safe), name="MTD_MSIL2A.xml")
    assert um.level == "L2A" and um.processing_baseline is not None and um.processing_baseline.startswith("9")
    assert len(um.image_files) == len(R10) + len(R20) + len(R60)
    tl = (_granule(safe) / "MTD_TL.xml").read_text(encoding="utf-8")
    cloudy = safe_run.class_percentages["CLOUDY_PIXEL_PERCENTAGE"]
    assert f"<CLOUDY_PIXEL_PERCENTAGE>{cloudy:.6f}</CLOUDY_PIXEL_PERCENTAGE>" in tl
    assert tl.count("<MASK_FILENAME") == 4 and "<PVI_FILENAME>" in tl and "<Viewing_Incidence_Angles_Grids" in tl
    mtd = (safe / "MTD_MSIL2A.xml").read_text(encoding="utf-8")
    assert mtd.count("<Scene_Classification_ID>") == 12 and "<LUT_FILENAME>" in mtd


def test_manifest_lists_every_file_with_size_and_checksum(safe_run: L2AResult) -> None:
    safe = Path(safe_run.output_dir)
    text = (safe / "manifest.safe").read_text(encoding="utf-8")
    for rel in safe_run.files:
        if rel == "manifest.safe":
            continue
        data = (safe / rel).read_bytes()
        assert f'href="./{rel}"' in text, rel
        assert f'size="{len(data)}"' in text and hashlib.sha3_256(data).hexdigest().upper() in text, rel


def test_resolution_20_writes_r20m_and_r60m(safe20: Path, open_s2: Callable[..., Product]) -> None:
    granule = _granule(safe20)
    assert sorted(p.name for p in (granule / "IMG_DATA").iterdir()) == ["R20m", "R60m"]
    assert sorted(p.name.split("_")[2] for p in (granule / "IMG_DATA" / "R20m").iterdir()) == sorted(R20)
    for res in (20, 60):
        with rasterio.open(_subdataset(safe20, res)) as ds:
            assert [d.split(",")[0] for d in ds.descriptions] == GDAL_BANDS[res]
            assert (ds.read(1) > 0).any()
    product = open_s2(safe20)
    assert product.level == "L2A" and "B08" not in product.bands
    assert product.band_files["B02"].resolution == 20
    assert any("B08" in w for w in product.warnings)


def test_rerun_is_a_no_op_and_done_needs_mtd(l1c: Path, tmp_path: Path) -> None:
    cfg = ProcessingConfig(format="safe", sc_only=True)
    first = process_product(l1c, tmp_path, cfg)
    safe = Path(first.output_dir)
    granule = _granule(safe)
    assert sorted(p.name for p in (granule / "IMG_DATA").iterdir()) == ["R20m", "R60m"]
    assert {p.name.split("_")[2] for p in (granule / "IMG_DATA").rglob("*.jp2")} == {"SCL"}
    assert is_done(safe)
    assert process_product(l1c, tmp_path, cfg).status == "skipped"
    (safe / "MTD_MSIL2A.xml").rename(tmp_path / "MTD_MSIL2A.xml")
    assert not is_done(safe)
    again = process_product(l1c, tmp_path, cfg)
    assert again.status == "done" and is_done(safe)
    assert set(again.files) == set(first.files)
    shutil.rmtree(safe)


def test_legacy_encoding_writes_zero_offsets(l1c: Path) -> None:
    product = open_l1c(l1c)
    summary = {"legacy_encoding": True, "class_percentages": {"CLOUDY_PIXEL_PERCENTAGE": 1.5}, "atmosphere": {}}
    rasters = ProductRasters(product, l2a_id(product), {}, summary)
    from sen2core.io.write.mtd_l2a import product_metadata_xml

    xml = product_metadata_xml(rasters, safe_naming(rasters), [], dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    um = parse_user_product(xml, product="test", name="MTD_MSIL2A.xml")
    assert set(um.boa_add_offset.values()) == {0.0} and len(um.boa_add_offset) == 13
    assert read_quality_indicators(xml)["class_percentages"] == {"CLOUDY_PIXEL_PERCENTAGE": 1.5}


def test_xml_building_helpers_write_utc_times_and_sen2cor_number_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    # One helper module formats the Level-2A metadata, the SAFE manifest and the synthetic Level-1C.
    t = dt.datetime(2023, 7, 15, 11, 37, 10, 26461, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert iso_ms(t) == "2023-07-15T09:37:10.026Z" and iso_us(t) == "2023-07-15T09:37:10.026461Z"
    # A naive time is UTC whatever the machine's zone (products hold UTC only).
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert iso_ms(dt.datetime(2023, 7, 15, 9, 37, 10, 999999)) == "2023-07-15T09:37:10.999Z"
    finally:
        monkeypatch.undo()
        time.tzset()
    assert [grid_value(v) for v in (12.3456789, float("nan"), 1e-7)] == ["12.3457", "NaN", "1e-07"]
    root = ET.Element("n1:Root", {"xmlns:n1": "urn:x"})
    sub(sub(root, "A", x="1"), "B", 0.5)
    sub(root, "C")
    expected = (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!-- made by a test -->\n'
        '<n1:Root xmlns:n1="urn:x">\n  <A x="1">\n    <B>0.5</B>\n  </A>\n  <C />\n</n1:Root>\n'
    )
    assert xml_bytes(root, "made by a test") == expected.encode("utf-8")
    assert xml_bytes(ET.Element("R")) == b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<R />\n'

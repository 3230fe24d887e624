"""The COG + STAC product: item and collection (offline validation), checksums, COGs, quicklook,
metadata, and the bands loaded through the item with odc-stac against the synthetic truth."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from PIL import Image
from rio_cogeo.cogeo import cog_validate
from scipy import ndimage

from sen2core.io.stac.cog_product import MTD_NAME, SUMMARY_NAME, item_name, quicklook_name
from sen2core.io.stac.collection import COLLECTION_NAME, update_collection
from sen2core.io.stac.extension import SCHEMA_URI, Sen2CoreExtension
from sen2core.io.stac.item import CLASSIFICATION_SCHEMA
from sen2core.io.stac.validation import STACValidationError, validate_collection, validate_item
from sen2core.io.write.checksums import MANIFEST_NAME, read_manifest, verify_manifest
from sen2core.package import is_done
from sen2core.pipeline import L2AResult, process_product

pytestmark = pytest.mark.slow

SR_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")


def synth(folder: Path, *args: str) -> Path:
    out = subprocess.run([sys.executable, "-m", "sen2core.cli", "synth", str(folder), *args],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return Path(out.strip().splitlines()[-1])


@dataclass(frozen=True)
class Processed:
    safe: Path
    truth: Path
    result: L2AResult
    folder: Path
    item_path: Path


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Processed:
    """A small synthetic scene processed with the default (all resolutions) run."""
    tmp = tmp_path_factory.mktemp("stac")
    safe = synth(tmp / "l1c", "--size", "366", "--seed", "7", "--cloud-cover", "10")
    result = process_product(safe, tmp / "l2a")
    folder = Path(result.output_dir)
    truth = safe.with_name(safe.name[: -len(".SAFE")] + ".truth")
    return Processed(safe, truth, result, folder, folder / item_name(folder))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


def test_item_is_last_marker_and_validates_offline(product: Processed, no_network: None) -> None:
    assert product.result.status == "done" and is_done(product.folder)
    item = json.loads(product.item_path.read_text())
    checked = validate_item(product.item_path)
    ext = {u.split("/")[3] + "/" + u.split("/")[4] for u in item["stac_extensions"]}
    assert ext == {"eo/v1.1.0", "projection/v2.0.0", "raster/v1.1.0", "view/v1.0.0", "file/v2.1.0", "mgrs/v1.0.0",
                   "processing/v1.2.0", "classification/v1.1.0", "sen2core/v1.0.0"}  # fmt: skip
    assert len(checked) == len(ext) + 1  # core item schema too
    assert item["id"] == product.result.l2a_id == product.folder.name
    props = item["properties"]
    assert props["platform"] == "sentinel-2a" and props["instruments"] == ["msi"]
    assert props["constellation"] == "sentinel-2" and props["proj:code"] == "EPSG:32631"
    cloudy = product.result.class_percentages["CLOUDY_PIXEL_PERCENTAGE"]
    assert props["eo:cloud_cover"] == pytest.approx(cloudy, abs=1e-3)
    assert props["processing:level"] == "L2A" and "sen2core" in props["processing:software"]
    assert props["sen2core:lut_id"] in props["processing:lineage"]
    assert props["processing:software"]["sen2core-lut"] == props["sen2core:lut_id"]
    assert props["s2:granule_mean_aot"] == pytest.approx(product.result.atmosphere["GRANULE_MEAN_AOT"], abs=1e-6)
    assert props["s2:aot_retrieval_method"] == product.result.atmosphere["AOT_RETRIEVAL_METHOD"]
    assert 0 < props["view:sun_elevation"] < 90 and 0 <= props["view:incidence_angle"] < 15
    lon0, lat0, lon1, lat1 = item["bbox"]
    assert -180 <= lon0 < lon1 <= 180 and -90 <= lat0 < lat1 <= 90
    assets = item["assets"]
    # Every file of the folder but the item is an asset, with a relative href.
    files = {p.name for p in product.folder.iterdir()} - {product.item_path.name}
    assert {a["href"] for a in assets.values()} == files
    for a in assets.values():
        assert "/" not in a["href"] and a["file:checksum"].startswith("1220") and a["file:size"] > 0
    b04 = assets["B04"]
    assert b04["raster:bands"] == [{"nodata": 0, "data_type": "uint16", "spatial_resolution": 10.0,
                                    "scale": 0.0001, "offset": -0.1}]  # fmt: skip
    assert b04["eo:bands"][0]["common_name"] == "red" and b04["roles"] == ["data", "reflectance"]
    assert b04["proj:shape"] == [366, 366] and b04["proj:transform"][0] == 10.0
    assert assets["B05"]["proj:shape"] == [183, 183] and assets["B01"]["proj:transform"][0] == 60.0
    assert [b["name"] for b in assets["TCI"]["eo:bands"]] == ["B04", "B03", "B02"]
    assert "visual" in assets["TCI"]["roles"] and assets["thumbnail"]["roles"][0] == "thumbnail"
    assert "cloud" in assets["MSK_CLDPRB"]["roles"] and "snow-ice" in assets["MSK_SNWPRB"]["roles"]
    classes = assets["SCL"]["classification:classes"]
    assert [c["value"] for c in classes] == list(range(12)) and classes[4]["name"] == "vegetation"
    assert CLASSIFICATION_SCHEMA in item["stac_extensions"]
    assert assets["AOT"]["raster:bands"][0]["scale"] == 0.001 and assets["WVP"]["raster:bands"][0]["unit"] == "cm"


def test_item_agrees_with_checksum_manifest(product: Processed) -> None:
    manifest = read_manifest(product.folder / MANIFEST_NAME)
    # Every file but the manifest itself and the item; sha256sum -c accepts it.
    assert set(manifest) == {p.name for p in product.folder.iterdir()} - {MANIFEST_NAME, product.item_path.name}
    assert verify_manifest(product.folder) == []
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--quiet", "-c", MANIFEST_NAME], cwd=product.folder, check=True)
    item = json.loads(product.item_path.read_text())
    by_href = {a["href"]: a for a in item["assets"].values()}
    for name, digest in manifest.items():
        assert by_href[name]["file:checksum"] == "1220" + digest
        assert by_href[name]["file:size"] == (product.folder / name).stat().st_size


def test_every_raster_is_a_valid_cog(product: Processed) -> None:
    tifs = sorted(product.folder.glob("*.tif"))
    assert len(tifs) == 19
    for p in tifs:
        valid, errors, warnings = cog_validate(str(p), quiet=True)
        assert valid, (p.name, errors)
        with rasterio.open(p) as ds:
            # GDAL's COG driver makes overviews down to one 512 px block: none for smaller rasters.
            assert ds.overviews(1) or max(ds.shape) <= 512, f"{p.name}: no internal overviews"
            assert ds.compression is not None


def test_quicklook_shows_true_colour_and_classes(product: Processed) -> None:
    with Image.open(product.folder / quicklook_name(product.result.l2a_id)) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.width == 1000 and 300 < im.height < 600
        rgb = np.asarray(im)
    # The SCL panel holds Sen2Cor's vegetation green somewhere.
    assert np.any(np.all(rgb == (0, 160, 0), axis=-1))


def test_summary_and_product_metadata_hold_quality_figures(product: Processed) -> None:
    summary = json.loads((product.folder / SUMMARY_NAME).read_text())
    md = summary["product_metadata"]
    qi = md["Quality_Indicators_Info"]["Image_Content_QI"]
    pct = product.result.class_percentages
    for key in ("VEGETATION_PERCENTAGE", "CLOUD_SHADOW_PERCENTAGE", "SNOW_ICE_PERCENTAGE", "NODATA_PIXEL_PERCENTAGE"):
        assert qi[key] == pytest.approx(pct[key])
    assert qi["GRANULE_MEAN_AOT"] == product.result.atmosphere["GRANULE_MEAN_AOT"]
    assert qi["GRANULE_MEAN_WV"] == product.result.atmosphere["GRANULE_MEAN_WV"]
    assert qi["AOT_RETRIEVAL_METHOD"] in ("SEN2COR_DDV", "DEFAULT")
    assert md["Quality_Indicators_Info"]["Cloud_Coverage_Assessment"] == pytest.approx(pct["CLOUDY_PIXEL_PERCENTAGE"])
    chars = md["Product_Image_Characteristics"]
    assert chars["QUANTIFICATION_VALUES_LIST"]["BOA_QUANTIFICATION_VALUE"] == 10000
    assert chars["BOA_ADD_OFFSET_VALUES_LIST"]["B02"] == -1000 and len(chars["BOA_ADD_OFFSET_VALUES_LIST"]) == 12
    assert [c["SCENE_CLASSIFICATION_TEXT"] for c in chars["Scene_Classification_List"]][:2] == [
        "SC_NODATA", "SC_SATURATED_DEFECTIVE"]  # fmt: skip
    assert md["Auxiliary_Data_Info"]["LUT_List"] == [summary["lut_id"]]
    mtd = product.folder / MTD_NAME
    if mtd.exists():  # written through the SAFE layout's builder
        from sen2core.io.write.mtd_l2a import read_quality_indicators

        back = read_quality_indicators(mtd.read_bytes())
        assert json.dumps(back)  # parses and is plain data
        assert b"<CLOUDY_PIXEL_OVER_LAND_PERCENTAGE>" in mtd.read_bytes()


def _clear_land(truth_scl: np.ndarray, product_scl: np.ndarray, buffer_px: int) -> np.ndarray:
    """Land that is clear in the truth and in the product, away from clouds and shadows
    (their edges carry adjacency and sub-pixel cloud that the truth classes do not show)."""
    land = np.isin(truth_scl, (4, 5))
    far = ~ndimage.binary_dilation(~np.isin(truth_scl, (4, 5, 6)), iterations=buffer_px)
    return land & np.isin(product_scl, (4, 5)) & far


@pytest.mark.timeout(120)
def test_odc_stac_loads_scaled_bands_matching_truth(product: Processed) -> None:
    odc_stac = pytest.importorskip("odc.stac")
    item = pystac.Item.from_file(str(product.item_path))
    rmse = {}
    for res, (bands, truth, clear) in _clear_truth(product).items():
        data = odc_stac.load([item], bands=list(bands), resolution=res, chunks={}).compute()
        for b in bands:
            rb = item.assets[b].extra_fields["raster:bands"][0]
            dn = data[b].isel(time=0).values
            assert dn.dtype == np.uint16 and dn.shape == truth[b].shape
            # odc-stac leaves the DN as stored: apply the item's scale and offset.
            rho = np.where(dn == rb["nodata"], np.nan, dn * rb["scale"] + rb["offset"])
            err = rho[clear] - truth[b][clear]
            rmse[b] = float(np.sqrt(np.nanmean(err**2)))
    print("BOA RMSE over clear land:", {b: round(v, 4) for b, v in rmse.items()})
    assert max(rmse.values()) <= 0.015, rmse


def test_validation_fails_offline_on_bad_or_unknown_schema(product: Processed, no_network: None) -> None:
    item = json.loads(product.item_path.read_text())
    bad = json.loads(json.dumps(item))
    bad["assets"]["B04"]["raster:bands"][0]["data_type"] = "uint17"
    with pytest.raises(STACValidationError, match="raster"):
        validate_item(bad)
    bad = json.loads(json.dumps(item))
    bad["properties"]["view:sun_elevation"] = 123.0
    with pytest.raises(STACValidationError, match="view"):
        validate_item(bad)
    unknown = json.loads(json.dumps(item))
    unknown["stac_extensions"].append("https://stac-extensions.github.io/sat/v1.0.0/schema.json")
    with pytest.raises(STACValidationError, match="not available offline"):
        validate_item(unknown)
    projjson = json.loads(json.dumps(item))
    projjson["properties"]["proj:projjson"] = {"type": "ProjectedCRS"}
    with pytest.raises(STACValidationError, match="offline"):
        validate_item(projjson)


def test_sen2core_extension_fields_are_checked_against_the_shipped_schema(product: Processed, no_network: None) -> None:
    item = json.loads(product.item_path.read_text())
    assert SCHEMA_URI in item["stac_extensions"]
    checked = validate_item(item)
    assert SCHEMA_URI in checked
    own = Sen2CoreExtension.ext(pystac.Item.from_dict(item))
    assert (
        own.l1c_id == product.result.l1c_id and own.lut_id == item["properties"]["processing:software"]["sen2core-lut"]
    )
    assert own.dem is None and own.cloud_cover_note is None
    for field, value in [
        ("sen2core:l1c_id", 5),
        ("sen2core:lut_id", ""),
        ("sen2core:unknown_field", "x"),
        ("sen2core:dem", {"name": "dem.tif", "crs": "EPSG:4326", "coverage_percent": 150.0}),
    ]:
        bad = json.loads(json.dumps(item))
        bad["properties"][field] = value
        with pytest.raises(STACValidationError, match=r"sen2core/v1\.0\.0/schema\.json: properties"):
            validate_item(bad)
    missing = json.loads(json.dumps(item))
    del missing["properties"]["sen2core:l1c_id"]
    with pytest.raises(STACValidationError, match="sen2core:l1c_id"):
        validate_item(missing)
    on_asset = json.loads(json.dumps(item))
    on_asset["assets"]["B04"]["sen2core:lut_id"] = "x"
    with pytest.raises(STACValidationError, match=r"sen2core/v1\.0\.0/schema\.json: assets/B04"):
        validate_item(on_asset)


def test_sen2core_extension_follows_pystac_extension_protocol() -> None:
    item = pystac.Item("x", None, None, dt.datetime(2023, 7, 15, tzinfo=dt.UTC), {})
    with pytest.raises(pystac.ExtensionNotImplemented):
        Sen2CoreExtension.ext(item)
    assert not Sen2CoreExtension.has_extension(item)
    own = Sen2CoreExtension.ext(item, add_if_missing=True)
    assert item.stac_extensions == [SCHEMA_URI] and Sen2CoreExtension.has_extension(item)
    own.l1c_id, own.dem = "S2A_MSIL1C_X", {"name": "dem.tif", "crs": "EPSG:4326", "coverage_percent": 99.5}
    own.cloud_cover_note = "no pixel with data"
    assert item.properties == {"sen2core:l1c_id": "S2A_MSIL1C_X",
                               "sen2core:dem": {"name": "dem.tif", "crs": "EPSG:4326", "coverage_percent": 99.5},
                               "sen2core:cloud_cover_note": "no pixel with data"}  # fmt: skip
    own.cloud_cover_note = None
    assert "sen2core:cloud_cover_note" not in item.properties and own.lut_id is None
    with pytest.raises(pystac.ExtensionTypeError):
        Sen2CoreExtension.ext(
            pystac.Collection(
                "c",
                "d",
                pystac.Extent.from_dict(
                    {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}}
                ),
            )
        )  # type: ignore[arg-type]


def test_legacy_encoding_has_zero_offset(product: Processed) -> None:
    from sen2core.io.read.opening import open_l1c
    from sen2core.io.stac.item import RasterAsset, build_item
    from sen2core.io.write.checksums import FileDigest
    from sen2core.io.write.raster import RasterSpec
    from sen2core.kernels.encode import boa_raster_scaling

    l1c = open_l1c(product.safe)
    spec = RasterSpec(l1c.geobox(10), "uint16", 0, ("B02",), **boa_raster_scaling(legacy=True))
    item = build_item(l1c, "x", {"legacy_encoding": True}, [RasterAsset("B02_10m.tif", "B02", spec)], [],
                      {"B02_10m.tif": FileDigest("0" * 64, 1)})  # fmt: skip
    band = item.assets["B02"].extra_fields["raster:bands"][0]
    assert band["scale"] == 0.0001 and band["offset"] == 0.0
    validate_item(item)


_WRITER = """
import json, sys
from pathlib import Path
from sen2core.io.stac.collection import update_collection
root, template, worker, n = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), sys.argv[3], int(sys.argv[4])
for i in range(n):
    item = dict(template, id=f"{template['id']}-{worker}-{i}")
    w, s, e, nn = template["bbox"]
    item["bbox"] = [w + int(worker), s - i, e + int(worker), nn - i]
    item["properties"] = dict(template["properties"], datetime=f"2023-0{1 + int(worker)}-1{i}T10:00:00Z")
    path = root / "T" / worker / str(i) / f"{item['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(item))
    update_collection(root, [path])
"""


@pytest.mark.timeout(60)
def test_collection_grows_atomically_with_concurrent_writers(product: Processed, tmp_path: Path) -> None:
    # Without items yet: a valid collection with an open extent.
    validate_collection(update_collection(tmp_path / "empty", []))
    root = tmp_path / "out"
    first = update_collection(root, [product.item_path.resolve()])
    assert first == root / COLLECTION_NAME
    validate_collection(first)
    coll = json.loads(first.read_text())
    assert coll["extent"]["spatial"]["bbox"] == [json.loads(product.item_path.read_text())["bbox"]]
    # Items outside the root are linked relatively all the same.
    assert [ln["href"] for ln in coll["links"] if ln["rel"] == "item"][0].startswith("../")

    root2 = tmp_path / "concurrent"
    template = tmp_path / "template.json"
    template.write_text(product.item_path.read_text())
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(root2), str(template), str(w), "6"])
             for w in range(4)]  # fmt: skip
    assert [p.wait(timeout=50) for p in procs] == [0, 0, 0, 0]
    path = root2 / COLLECTION_NAME
    validate_collection(path)
    coll = json.loads(path.read_text())
    links = [ln for ln in coll["links"] if ln["rel"] == "item"]
    assert len(links) == 24 and len({ln["href"] for ln in links}) == 24  # no update was lost
    for ln in links:
        assert ln["href"].startswith("./T/") and (root2 / ln["href"]).is_file()
    w, s, e, n = coll["extent"]["spatial"]["bbox"][0]
    tw, ts, te, tn = json.loads(template.read_text())["bbox"]
    assert (w, s, e, n) == pytest.approx((tw, ts - 5, te + 3, tn))
    assert coll["extent"]["temporal"]["interval"] == [["2023-01-10T10:00:00Z", "2023-04-15T10:00:00Z"]]
    assert not list(root2.glob(".collection.json.tmp-*"))
    # Adding an item again does not duplicate its link.
    again = root2 / links[0]["href"]
    update_collection(root2, [again])
    assert len([ln for ln in json.loads(path.read_text())["links"] if ln["rel"] == "item"]) == 24


# ------------------------------------------------------------------- loading with the STAC tools, as documented


def _clear_truth(product: Processed) -> dict[int, tuple[tuple[str, ...], dict[str, np.ndarray], np.ndarray]]:
    """Per resolution: the bands, their true surface reflectance, and the clear-land pixels compared."""
    with rasterio.open(product.folder / "SCL_20m.tif") as ds:
        scl20 = ds.read(1)
    with rasterio.open(product.truth / "SCL_20m.tif") as ds:
        clear20 = _clear_land(ds.read(1), scl20, 10)
    clear10 = np.repeat(np.repeat(clear20, 2, axis=0), 2, axis=1)
    with rasterio.open(product.truth / "SR_20m.tif") as ds:
        truth20 = {b: ds.read(SR_BANDS.index(b) + 1) for b in BANDS_20M}
    with rasterio.open(product.truth / "SR_10m.tif") as ds:
        truth10 = {b: ds.read(i + 1) for i, b in enumerate(BANDS_10M)}
    assert clear20.sum() > 5000
    return {10: (BANDS_10M, truth10, clear10), 20: (BANDS_20M, truth20, clear20)}


def _check_reflectance(product: Processed, res: int, band: str, rho: np.ndarray, truth: np.ndarray,
                       clear: np.ndarray) -> float:  # fmt: skip
    """``rho`` is the stored band as reflectance (NaN = no data); returns its RMSE against the truth."""
    with rasterio.open(product.folder / f"{band}_{res}m.tif") as ds:
        dn = ds.read(1)
    assert rho.shape == dn.shape == truth.shape
    # Exactly DN * 0.0001 - 0.1 where there is data, NaN where there is none.
    np.testing.assert_array_equal(np.isnan(rho), dn == 0)
    np.testing.assert_allclose(rho[dn > 0], dn[dn > 0] * 1e-4 - 0.1, atol=1e-6)
    return float(np.sqrt(np.nanmean((rho[clear] - truth[clear]) ** 2)))


@pytest.mark.timeout(120)
def test_sen2core_load_gives_reflectance_matching_truth(product: Processed) -> None:
    import sen2core

    rmse = {}
    for res, (bands, truth, clear) in _clear_truth(product).items():
        data = sen2core.load(product.item_path, bands, resolution=res, chunks={}).compute()
        for b in bands:
            rho = data[b].isel(time=0).values
            assert rho.dtype == np.float32
            rmse[b] = _check_reflectance(product, res, b, rho, truth[b], clear)
    assert max(rmse.values()) <= 0.015, rmse


@pytest.mark.timeout(120)
def test_stackstac_rescale_gives_reflectance_matching_truth(product: Processed) -> None:
    stackstac = pytest.importorskip("stackstac")
    # stackstac opens asset hrefs as written: the item's are relative to its file.
    item = pystac.Item.from_file(str(product.item_path)).make_asset_hrefs_absolute()
    epsg = int(item.properties["proj:code"].split(":")[1])
    rmse = {}
    for res, (bands, truth, clear) in _clear_truth(product).items():
        # The product's own grid (the item bbox, in lon/lat, would add a margin).
        bounds = tuple(item.assets[bands[0]].extra_fields["proj:bbox"])
        stack = stackstac.stack([item], assets=list(bands), epsg=epsg, resolution=res, bounds=bounds, rescale=True,
                                dtype="float64", fill_value=np.nan).compute()  # fmt: skip
        for b in bands:
            rmse[b] = _check_reflectance(product, res, b, stack.sel(band=b).isel(time=0).values, truth[b], clear)
    assert max(rmse.values()) <= 0.015, rmse


def test_rioxarray_mask_and_scale_gives_reflectance_matching_truth(product: Processed) -> None:
    rioxarray = pytest.importorskip("rioxarray")
    rmse = {}
    for res, (bands, truth, clear) in _clear_truth(product).items():
        for b in bands:
            with rioxarray.open_rasterio(product.folder / f"{b}_{res}m.tif", mask_and_scale=True) as da_:
                rho = da_.isel(band=0).values
            rmse[b] = _check_reflectance(product, res, b, rho, truth[b], clear)
    assert max(rmse.values()) <= 0.015, rmse


def test_item_names_its_collection_and_links_to_it(product: Processed) -> None:
    item = json.loads(product.item_path.read_text())
    assert item["collection"] == "sentinel-2-l2a-sen2core"
    links = {ln["rel"]: ln["href"] for ln in item["links"]}
    root = product.result.output_dir
    collection = Path(root).parents[4] / COLLECTION_NAME
    for rel in ("collection", "parent", "root"):
        assert (product.folder / links[rel]).resolve() == collection.resolve()


def test_stac_validator_passes_offline_on_item_and_collection(product: Processed, tmp_path: Path,
                                                              no_network: None) -> None:  # fmt: skip
    from pystac.validation.local_validator import get_local_schema_cache
    from stac_validator.validate import StacValidate

    from sen2core.io.stac.extension import EXTENSION_BASE

    schemas = Path(__file__).parents[2] / "sen2core" / "data" / "stac-schemas"
    schema_map = {f"{EXTENSION_BASE}/{p.parent.parent.name}/{p.parent.name}/schema.json": str(p)
                  for p in schemas.glob("*/*/schema.json")}  # fmt: skip
    for i, (uri, schema) in enumerate(get_local_schema_cache().items()):
        path = tmp_path / f"core-{i}.json"
        path.write_text(json.dumps(schema))
        schema_map[uri] = schema_map[uri + "#"] = str(path)
    root = Path(product.result.output_dir).parents[4]
    update_collection(root, [product.item_path])
    for target in (product.item_path, root / COLLECTION_NAME):
        validator = StacValidate(str(target), schema_map=schema_map)
        assert validator.run(), validator.message
        assert validator.message[0]["valid_stac"] is True

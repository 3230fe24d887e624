"""Issue 16: hostile settings and inputs are refused, nothing is exposed.

Each test here failed before its fix: band paths that leave the product, settings out
of range, non-strict JSON, a DEM that misses the tile, misleading messages, Dask
dashboards on every interface, credentials in STAC URLs.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest

from sen2core.errors import InputProductError, MetadataWarning
from sen2core.io.read.opening import open_product
from sen2core.io.read.product import Product

GRANULE = "GRANULE/L1C_T34UCF_A033753_20230823T095553"
B04 = f"{GRANULE}/IMG_DATA/T34UCF_20230823T095559_B04.jp2"


def _open_quiet(href: Path) -> Product:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        return open_product(href)


# ------------------------------------------------- item 13: band paths stay inside the product


def test_band_symlink_leaving_the_product_is_refused(tmp_path: Path, safe_builder) -> None:
    safe = safe_builder.l1c(tmp_path / "in", bands=("B02", "B03", "B04"))
    outside = tmp_path / "elsewhere" / "secret.jp2"
    outside.parent.mkdir()
    shutil.move(safe / B04, outside)  # a valid raster, but not the product's
    (safe / B04).symlink_to(outside)
    with pytest.raises(InputProductError) as info:
        _open_quiet(safe)
    text = str(info.value)
    assert text.startswith(f"{safe}: ") and B04 in text and str(outside) in text and "outside the product" in text
    # A symlink that stays inside the product is fine.
    inside = safe / GRANULE / "IMG_DATA" / "copy_of_B04.jp2"
    (safe / B04).unlink()
    shutil.move(outside, inside)
    (safe / B04).symlink_to(inside)
    assert _open_quiet(safe).band_files["B04"].path == B04


def test_image_file_with_dotdot_is_refused(tmp_path: Path, safe_builder) -> None:
    safe = safe_builder.l1c(tmp_path / "in", bands=("B02", "B03", "B04"))
    stolen = tmp_path / "stolen" / "T34UCF_20230823T095559_B04.jp2"
    stolen.parent.mkdir()
    shutil.copy(safe / B04, stolen)
    mtd = safe / "MTD_MSIL1C.xml"
    rel = f"{GRANULE}/IMG_DATA/T34UCF_20230823T095559_B04"
    text = mtd.read_text(encoding="utf-8")
    assert f">{rel}<" in text
    evil = f"{GRANULE}/IMG_DATA/../../../../../stolen/T34UCF_20230823T095559_B04"
    mtd.write_text(text.replace(f">{rel}<", f">{evil}<"), encoding="utf-8")
    with pytest.raises(InputProductError) as info:
        _open_quiet(safe).band_source("B04")
    message = str(info.value)
    assert message.startswith(f"{safe}: ") and evil in message and "outside the product" in message


def test_zip_member_path_with_dotdot_is_refused(tmp_path: Path, safe_builder) -> None:
    safe = safe_builder.l1c(tmp_path / "in", bands=("B02",))
    archive = safe_builder.zip(safe, tmp_path / f"{safe.name}.zip")
    product = _open_quiet(archive)
    with pytest.raises(InputProductError, match="outside the product"):
        product.store.gdal_path(f"../other.SAFE/{B04}")


# ------------------------------------------------- item 10: size mismatches say what is wrong


def _manifest_product(tmp: Path, builder) -> tuple[Path, Path]:
    safe = builder.l1c(tmp, bands=("B02", "B03", "B04"), manifest=True)
    return safe, safe / GRANULE / "IMG_DATA" / "T34UCF_20230823T095559_B03.jp2"


def test_wrong_size_band_is_not_called_truncated(tmp_path: Path, safe_builder) -> None:
    import numpy as np
    from conftest import write_band

    from sen2core.errors import BandReadError

    safe, jp2 = _manifest_product(tmp_path, safe_builder)
    # Another complete raster of the tile's shape (a flat one compresses to fewer bytes).
    write_band(jp2, np.full((366, 366), 1234, np.uint16), ulx=300000.0, uly=6100020.0, res=10.0)
    with pytest.raises(BandReadError) as info:
        _open_quiet(safe).read_dn("B03")
    text = str(info.value)
    assert "truncated" not in text and "complete raster of another size" in text and "manifest.safe says" in text


def test_symlink_to_a_non_raster_is_not_called_truncated(tmp_path: Path, safe_builder) -> None:
    from sen2core.errors import BandReadError

    safe, jp2 = _manifest_product(tmp_path, safe_builder)
    jp2.unlink()
    jp2.symlink_to(safe / "MTD_MSIL1C.xml")
    with pytest.raises(BandReadError) as info:
        _open_quiet(safe).read_dn("B03")
    text = str(info.value)
    assert "truncated" not in text and "symbolic link to MTD_MSIL1C.xml, which is not a readable raster" in text
    # Without a manifest the link is named too.
    (safe / "manifest.safe").unlink()
    with pytest.raises(BandReadError, match="symbolic link to MTD_MSIL1C.xml, which is not a readable raster"):
        _open_quiet(safe).read_dn("B03")


def test_truncated_band_is_still_called_truncated(tmp_path: Path, safe_builder) -> None:
    from sen2core.errors import BandReadError

    safe, jp2 = _manifest_product(tmp_path, safe_builder)
    jp2.write_bytes(jp2.read_bytes()[:6000])
    with pytest.raises(BandReadError, match=r"B03\.jp2 is truncated \(6000 bytes, manifest.safe says \d+\)"):
        _open_quiet(safe).read_dn("B03")


# ------------------------------------------------- item 11: Dask dashboards on the loopback only


def _dashboard_hosts(cluster) -> set[str]:
    """The addresses the scheduler's dashboard (its HTTP server) really listens on."""
    return {sock.getsockname()[0] for sock in cluster.scheduler.http_server._sockets.values()}


@pytest.mark.timeout(120)
def test_dashboards_of_created_clusters_listen_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    from flows.runner import Sen2CoreTaskRunner, local_cluster_kwargs
    from sen2core.parallel import DASHBOARD_ENV, local_cluster

    monkeypatch.delenv(DASHBOARD_ENV, raising=False)
    # `sen2core process --workers N` and the benchmarks.
    with local_cluster(0) as cluster:
        assert _dashboard_hosts(cluster) == {"127.0.0.1"}
    # The flows' default cluster, and one whose arguments name no dashboard address.
    with LocalCluster(**{**local_cluster_kwargs(), "n_workers": 0}) as cluster:
        assert _dashboard_hosts(cluster) == {"127.0.0.1"}
    with Sen2CoreTaskRunner(cluster_kwargs={"n_workers": 0, "processes": False}) as runner:
        assert runner.client is not None
        assert _dashboard_hosts(runner._cluster) == {"127.0.0.1"}
    # Unless the user asks otherwise.
    monkeypatch.setenv(DASHBOARD_ENV, ":0")
    with local_cluster(0) as cluster:
        assert _dashboard_hosts(cluster) == {"0.0.0.0"}


# ------------------------------------------------- item 5: every setting has a valid range


GIPP_DIR = Path(__file__).parents[1] / "data" / "gipp"


def _user_gipp(tmp: Path, **values: str) -> Path:
    text = (GIPP_DIR / "sen2cor_L2A_GIPP_DEM_ON.xml").read_text(encoding="utf-8")
    for tag, value in values.items():
        start, end = text.index(f"<{tag}>"), text.index(f"</{tag}>")
        text = text[:start] + f"<{tag}>{value}" + text[end:]
    path = tmp / "L2A_GIPP.xml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("tag", "value", "message"),
    [
        ("Adj_Km", "-1", r"Adj_Km = '-1' \(adjacency_km\) must be in \[0, 5\] km, got -1.0"),
        ("Adj_Km", "NaN", r"Adj_Km = 'NaN' \(adjacency_km\) must be finite and in \[0, 5\] km, got nan"),
        ("Altitude", "inf", r"Altitude = 'inf' \(elevation_km\) must be finite and in \[-0.5, 9\] km, got inf"),
        ("Altitude", "-50", r"Altitude = '-50' \(elevation_km\) must be in \[-0.5, 9\] km, got -50.0"),
        ("Ozone_Content", "1e9", r"Ozone_Content = '1e9' \(ozone_cm_atm\) must be in \[0.2, 0.5\] cm-atm"),
        # Parse errors name the setting too (item 10).
        ("Adj_Km", "one", r"Adj_Km must be a number, got 'one'"),
        ("Cirrus_Correction", "maybe", r"Cirrus_Correction must be TRUE or FALSE, got 'maybe'"),
        ("Visibility", "nan", r"Visibility must be finite and in \[5, 120\] km, got nan"),
    ],
)
def test_out_of_range_user_gipp_is_refused(tmp_path: Path, tag: str, value: str, message: str) -> None:
    from sen2core.correction import correction_config_from_gipp
    from sen2core.errors import ConfigurationError

    path = _user_gipp(tmp_path, **{tag: value})
    with pytest.raises(ConfigurationError, match=f"^{path}: {message}"):
        correction_config_from_gipp(path)


def test_out_of_range_settings_through_the_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sen2core.cli import main

    path = _user_gipp(tmp_path, Adj_Km="-1")
    result = CliRunner().invoke(main, ["process", str(tmp_path), "-o", str(tmp_path / "out"), "--gipp", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"sen2core: error: {path}: Adj_Km = '-1' (adjacency_km) must be in [0, 5] km, got -1.0"
    ]
    assert not (tmp_path / "out").exists()


def test_scene_classification_files_name_file_setting_and_range(tmp_path: Path) -> None:
    from sen2core.config import SceneClassificationConfig
    from sen2core.errors import ConfigurationError
    from sen2core.io.read.gipp import scene_classification_from_gipp

    sc = (GIPP_DIR / "L2A_CAL_SC_GIPP.xml").read_text(encoding="utf-8")
    start, end = sc.index("<T2_B04>"), sc.index("</T2_B04>")
    gipp = tmp_path / "L2A_CAL_SC_GIPP.xml"
    gipp.write_text(sc[:start] + "<T2_B04>7" + sc[end:], encoding="utf-8")
    with pytest.raises(
        ConfigurationError, match=rf"^{gipp}: T2_B04 \(t2_b04\) must be in \[0, 2\] TOA reflectance, got 7.0$"
    ):
        scene_classification_from_gipp(gipp)
    user = _user_gipp(tmp_path, Median_Filter="abc")
    with pytest.raises(ConfigurationError, match=rf"^{user}: Median_Filter \(median_filter\) must be an integer"):
        scene_classification_from_gipp(user)
    toml = tmp_path / "sen2core.toml"
    toml.write_text("[scene_classification]\nthin_cloud_probability = 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=rf"^{toml}: thin_cloud_probability must be in \(0, 1\), got 1.5$"):
        SceneClassificationConfig.from_file(toml)
    with pytest.raises(ConfigurationError, match=r"^scene classification: hillshade_water_max must be finite"):
        SceneClassificationConfig().replace(hillshade_water_max=float("inf"))


def test_every_setting_has_a_documented_range() -> None:
    import dataclasses

    from sen2core.config import SCENE_CLASSIFICATION_RANGES, SceneClassificationConfig
    from sen2core.correction import CORRECTION_RANGES, CorrectionConfig
    from sen2core.settings_docs import settings_markdown

    def numeric(cls: type, prefix: str = "") -> set[str]:
        names = set()
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            if dataclasses.is_dataclass(default):
                names |= numeric(type(default), f"{prefix}{f.name}.")
            elif not isinstance(default, (bool, str)):
                names.add(prefix + f.name)
        return names

    assert numeric(SceneClassificationConfig) == set(SCENE_CLASSIFICATION_RANGES)
    assert numeric(CorrectionConfig) == set(CORRECTION_RANGES)
    docs = Path(__file__).parents[2] / "docs" / "settings.md"
    regenerate = "python -m sen2core.settings_docs > docs/settings.md"
    assert docs.read_text(encoding="utf-8") == settings_markdown(), f"run: {regenerate}"


def test_strict_json_has_no_nan_or_infinity() -> None:
    import json

    import numpy as np

    from sen2core.io.jsonutil import strict_json_dumps

    summary = {
        "elevation_km": float("inf"),
        "GRANULE_MEAN_WV": np.float32("nan"),
        "aot": np.float64(0.25),
        "counts": np.array([1, 2]),
        "flag": np.bool_(True),
        "nested": ({"x": -float("inf")},),
    }
    text = strict_json_dumps(summary, indent=1)

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    assert json.loads(text, parse_constant=refuse) == {
        "elevation_km": None,
        "GRANULE_MEAN_WV": None,
        "aot": 0.25,
        "counts": [1, 2],
        "flag": True,
        "nested": [{"x": None}],
    }


# ------------------------------------------------- item 6: a DEM must cover the tile


def _write_dem(path: Path, crs: str, left: float, top: float, res: float, shape: tuple[int, int], **profile) -> Path:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    data = (100.0 + np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape) % 500.0).astype(np.float32)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=shape[1],
        height=shape[0],
        count=1,
        dtype="float32",
        crs=crs,
        transform=from_origin(left, top, res, res),
        nodata=-9999.0,
        **profile,
    ) as ds:
        ds.write(data, 1)
    return path


def _tile_grid(l1c_safe: Path):
    return _open_quiet(l1c_safe).geobox(20)


def test_dem_of_another_place_is_refused(tmp_path: Path, l1c_safe: Path) -> None:
    from sen2core.errors import AuxDataError
    from sen2core.io.read.dem import dem_on_grid

    gb = _tile_grid(l1c_safe)
    dem = _write_dem(tmp_path / "alps.tif", "EPSG:4326", 6.0, 47.0, 0.001, (200, 200))
    with pytest.raises(AuxDataError) as info:
        dem_on_grid(dem, gb, ((gb.shape[0],), (gb.shape[1],)))
    text = str(info.value)
    assert text.startswith(f"DEM {dem} (EPSG:4326) covers 0.0 % of the tile (EPSG:32634") and "at least 50 %" in text


def test_dem_partly_covering_the_tile_is_used_with_a_warning(tmp_path: Path, l1c_safe: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    import numpy as np

    from sen2core.io.read.dem import dem_info, dem_on_grid

    gb = _tile_grid(l1c_safe)
    left, bottom, right, top = gb.bounds
    width = right - left
    # The DEM misses the western 30 % of the tile.
    dem = _write_dem(tmp_path / "east.tif", gb.crs, left + 0.3 * width, top, 20.0, (gb.shape[0], gb.shape[1]))
    with caplog.at_level("WARNING", logger="sen2core"):
        info = dem_info(dem, gb)
        arr = dem_on_grid(dem, gb, ((gb.shape[0],), (gb.shape[1],))).compute()
    assert info.name == "east.tif" and info.crs == "EPSG:32634" and abs(info.coverage - 0.7) < 0.02
    recorded = {"name": "east.tif", "crs": "EPSG:32634", "coverage_percent": round(100 * info.coverage, 2)}
    assert info.to_dict() == recorded
    assert any(
        re.search(r"covers (69|70)\.\d %", r.getMessage()) and "flat, at sea level" in r.getMessage()
        for r in caplog.records
    )
    assert abs(np.isfinite(arr).mean() - 0.7) < 0.02


def test_dem_read_errors_give_gdals_reason(tmp_path: Path, l1c_safe: Path) -> None:
    from sen2core.errors import AuxDataError
    from sen2core.io.read.dem import _dem_block, dem_on_grid

    gb = _tile_grid(l1c_safe)
    left, _, _, top = gb.bounds
    dem = _write_dem(
        tmp_path / "cut.tif",
        gb.crs,
        left,
        top,
        20.0,
        gb.shape,
        tiled=True,
        blockxsize=64,
        blockysize=64,
        compress="deflate",
    )
    data = dem.read_bytes()
    dem.write_bytes(data[: len(data) * 2 // 3])  # header intact, tiles cut off
    with pytest.raises(AuxDataError) as info:
        dem_on_grid(dem, gb, ((gb.shape[0],), (gb.shape[1],))).compute()
    text = str(info.value)
    assert text.startswith(f"DEM {dem}: not a readable raster: ") and "See previous exception" not in text
    assert "TIFFFillTile:Read error" in text, text
    # The same when a chunk is read (on a Dask worker: the error carries no unpicklable GDAL cause).
    import pickle

    with pytest.raises(AuxDataError) as info:
        _dem_block(str(dem), gb.epsg, tuple(gb.transform), block_info={None: {
            "array-location": [(0, gb.shape[0]), (0, gb.shape[1])], "shape": gb.shape}})  # fmt: skip
    text = str(info.value)
    assert text.startswith(f"DEM {dem}: cannot read rows 0:{gb.shape[0]}") and "TIFFFillTile:Read error" in text
    assert "See previous exception" not in text and info.value.__cause__ is None
    assert str(pickle.loads(pickle.dumps(info.value))) == text


def test_dem_that_misses_the_tile_stops_processing(tmp_path: Path, l1c_safe: Path) -> None:
    from click.testing import CliRunner

    from sen2core.cli import main

    dem = _write_dem(tmp_path / "alps.tif", "EPSG:4326", 6.0, 47.0, 0.001, (200, 200))
    out = tmp_path / "l2a"
    result = CliRunner().invoke(main, ["process", str(l1c_safe), "-o", str(out), "--resolution", "60", "--dem",
                                       str(dem)])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"sen2core: error: DEM {dem} (EPSG:4326) covers 0.0 % of the tile" in result.stderr
    assert not list(out.rglob("*.json"))


def _item(l1c_safe: Path, summary: dict):
    from sen2core.io.stac.item import RasterAsset, build_item
    from sen2core.io.write.checksums import FileDigest
    from sen2core.io.write.raster import RasterSpec

    l1c = _open_quiet(l1c_safe)
    spec = RasterSpec(l1c.geobox(20), "uint8", 0, ("SCL",))
    return build_item(l1c, "x", summary, [RasterAsset("SCL_20m.tif", "SCL", spec)], [],
                      {"SCL_20m.tif": FileDigest("0" * 64, 1)})  # fmt: skip


def test_dem_is_recorded_in_the_stac_item(l1c_safe: Path) -> None:
    from sen2core.io.stac.validation import validate_item

    dem = {"name": "east.tif", "crs": "EPSG:32634", "coverage_percent": 69.9}
    item = _item(l1c_safe, {"l1c_id": "L1C", "lut_id": "lut", "dem": dem})
    assert item.properties["sen2core:dem"] == dem
    assert item.properties["processing:lineage"].endswith(", DEM east.tif (EPSG:32634, 69.9 % of the tile)")
    validate_item(item)
    assert "sen2core:dem" not in _item(l1c_safe, {"l1c_id": "L1C"}).properties


# ------------------------------------------------- item 10: no cloud cover without a valid pixel


def test_no_valid_pixel_has_no_cloud_cover(l1c_safe: Path) -> None:
    from sen2core.io.stac.item import NO_VALID_PIXEL_NOTE
    from sen2core.io.stac.validation import validate_item

    empty = {"NODATA_PIXEL_PERCENTAGE": 100.0, "CLOUDY_PIXEL_PERCENTAGE": 0.0, "VEGETATION_PERCENTAGE": 0.0}
    item = _item(l1c_safe, {"class_percentages": empty, "atmosphere": {"GRANULE_MEAN_AOT": float("nan")}})
    props = item.properties
    # Not 0: a "cloud cover below 10 %" search must not find a product without any data.
    assert "eo:cloud_cover" not in props and props["sen2core:cloud_cover_note"] == NO_VALID_PIXEL_NOTE
    assert props["s2:nodata_pixel_percentage"] == 100.0
    assert "s2:cloudy_pixel_percentage" not in props and "s2:vegetation_percentage" not in props
    assert "s2:granule_mean_aot" not in props
    validate_item(item)
    cloudy = {"NODATA_PIXEL_PERCENTAGE": 40.0, "CLOUDY_PIXEL_PERCENTAGE": 12.5}
    props = _item(l1c_safe, {"class_percentages": cloudy}).properties
    assert props["eo:cloud_cover"] == 12.5 and "sen2core:cloud_cover_note" not in props


# ------------------------------------------------- item 12: credentials are never logged or stored


TOKEN = "s3cr3tTOKEN42"


def test_urls_and_text_are_redacted() -> None:
    from sen2core.redact import redact_text, redact_url, split_url_credentials

    url = f"http://user:{TOKEN}@host:8080/v1?api_key={TOKEN}&limit=5"
    assert redact_url(url) == "http://***@host:8080/v1?api_key=***&limit=5"
    signed = f"https://bucket.s3.amazonaws.com/x.SAFE.zip?X-Amz-Credential=AKIA%2F1&X-Amz-Signature={TOKEN}&v=2"
    assert TOKEN not in redact_url(signed) and "AKIA" not in redact_url(signed) and "v=2" in redact_url(signed)
    for text in (
        f"Max retries exceeded with url: /v1/search?token={TOKEN} (Caused by x)",
        f"GET {url} Headers: {{'Authorization': 'Bearer {TOKEN}'}}",
        f"password={TOKEN}; sig={TOKEN}",
    ):
        assert TOKEN not in redact_text(text), text
    assert redact_text("plain message with key words, no secrets") == "plain message with key words, no secrets"
    clean, found = split_url_credentials(url)
    assert clean == "http://host:8080/v1?limit=5"
    assert found == {"username": "user", "password": TOKEN, "parameters": {"api_key": TOKEN}}
    assert redact_text(f"anything holding {TOKEN} now") == "anything holding *** now"  # registered


def test_exceptions_are_redacted_keeping_their_type() -> None:
    import pickle

    from sen2core.errors import InputProductError, TransientIOError
    from sen2core.redact import redact_exception
    from tasks.retry import is_transient

    bad = InputProductError(f"/in/x.SAFE.zip?X-Amz-Signature={TOKEN}", "no such file or directory")
    masked = redact_exception(bad)
    assert type(masked) is InputProductError and TOKEN not in str(masked)
    assert TOKEN not in str(pickle.loads(pickle.dumps(masked)))
    flaky = TransientIOError(f"GET http://u:{TOKEN}@h/ failed")
    assert isinstance(redact_exception(flaky), TransientIOError) and is_transient(redact_exception(flaky))
    fine = ValueError("nothing secret")
    assert redact_exception(fine) is fine


def test_log_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from sen2core.redact import install_log_redaction

    install_log_redaction()
    logger = logging.getLogger("sen2core.test")
    with caplog.at_level("INFO", logger="sen2core.test"):
        logger.info("searching %s", f"http://user:{TOKEN}@host/v1?api_key={TOKEN}")
        try:
            raise OSError(f"cannot reach http://host/v1?api_key={TOKEN}")
        except OSError:
            logger.exception("discovery failed")
    assert TOKEN not in caplog.text and "http://***@host/v1?api_key=***" in caplog.text


def test_source_refuses_credentials_in_its_href() -> None:
    from pydantic import ValidationError

    from tasks.models import Source

    with pytest.raises(ValidationError) as info:
        Source(kind="stac-api", href=f"http://host/v1?api_key={TOKEN}")
    assert TOKEN not in str(info.value) and "SEN2CORE_STAC_API_TOKEN" in str(info.value)
    assert Source(kind="stac-api", href="http://host/v1", secret_block="stac-token").secret_block == "stac-token"


class _GuardedStacApi:
    """A STAC API that answers only requests carrying the credentials, and echoes them in its links."""

    def __init__(self, item_href: str) -> None:
        import base64
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        api = self
        self.requests: list[tuple[str, str, bool]] = []
        basic = "Basic " + base64.b64encode(f"user:{TOKEN}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, doc: dict) -> None:
                import json

                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _allowed(self) -> bool:
                ok = self.headers.get("Authorization") == basic and f"api_key={TOKEN}" in self.path
                api.requests.append((self.command, self.path.split("?")[0], ok))
                if not ok:
                    self._send(401, {"code": "Unauthorized"})
                return ok

            def do_GET(self) -> None:  # noqa: N802
                if not self._allowed():
                    return
                base = f"http://127.0.0.1:{self.server.server_address[1]}"
                self._send(200, {
                    "type": "Catalog", "id": "guarded", "stac_version": "1.0.0", "description": "needs a token",
                    "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                   "https://api.stacspec.org/v1.0.0/item-search"],
                    "links": [{"rel": "self", "href": f"{base}/v1?api_key={TOKEN}"},
                              {"rel": "root", "href": f"{base}/v1?api_key={TOKEN}"},
                              {"rel": "search", "href": f"{base}/v1/search", "method": "POST",
                               "type": "application/geo+json"}],
                })  # fmt: skip

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                if not self._allowed():
                    return
                pid = "S2B_MSIL1C_20230715T101559_N0509_R122_T32TQM_20230715T120234"
                self._send(200, {"type": "FeatureCollection", "links": [], "features": [{
                    "type": "Feature", "stac_version": "1.0.0", "id": pid, "bbox": [11, 45, 12, 46],
                    "geometry": {"type": "Polygon",
                                 "coordinates": [[[11, 45], [12, 45], [12, 46], [11, 46], [11, 45]]]},
                    "properties": {"datetime": "2023-07-15T10:15:59Z", "s2:mgrs_tile": "32TQM"},
                    "assets": {"product": {"href": item_href}},
                    "links": [{"rel": "self", "href": f"http://127.0.0.1/v1/items/{pid}?api_key={TOKEN}"}],
                }]})  # fmt: skip

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def __enter__(self) -> str:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://user:{TOKEN}@127.0.0.1:{self.server.server_address[1]}/v1?api_key={TOKEN}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_stac_api_credentials_leave_no_trace(tmp_path: Path, flow_products: dict[str, Path]) -> None:
    import os
    import stat
    import subprocess
    import sys

    # A signed asset href: the product cannot be opened, and its error message holds the signature.
    signed = f"{flow_products['corrupt']}?X-Amz-Signature={TOKEN}"
    home, out = tmp_path / "prefect-home", tmp_path / "l2a"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SEN2CORE_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180", PREFECT_LOGGING_LEVEL="DEBUG",
               PREFECT_LOGGING_EXTRA_LOGGERS="pystac_client,urllib3")  # fmt: skip
    guarded = _GuardedStacApi(signed)
    with guarded as api_url, subprocess.Popen([
        sys.executable, "-m", "sen2core.cli", "flow", "backfill", "--stac-api", api_url,
        "--start", "2023-07-15", "--end", "2023-07-15", "-o", str(out), "--workers", "1", "--json",
    ], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 1, stderr[-3000:]  # the product failed (it cannot be opened), the run reports it
    summary = json.loads(stdout)
    assert [o["status"] for o in summary["outcomes"]] == ["failed"], stdout
    assert "X-Amz-Signature=***" in summary["outcomes"][0]["l1c_href"]
    # The credentials still reached the API, on every request (also those following its links).
    assert {m for m, _, _ in guarded.requests} == {"GET", "POST"} and all(ok for _, _, ok in guarded.requests)
    assert "credentials taken out of the --stac-api URL" in stderr
    # No trace of the token: terminal output, report files, Prefect's database and any result file.
    assert TOKEN not in stdout and TOKEN not in stderr
    stored = [p for root in (out, home) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "summary.json" for p in stored) and any(p.suffix == ".db" for p in stored)
    leaks = [str(p) for p in stored if TOKEN.encode() in p.read_bytes()]
    assert not leaks, leaks
    reports = [p for p in (out / "reports").rglob("*")]
    assert reports
    for p in reports:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o750 if p.is_dir() else 0o640), (p, oct(mode))


def test_stac_credentials_from_environment_or_secret_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from prefect.blocks import system

    from sen2core.errors import ConfigurationError
    from sen2core.redact import redact_text
    from tasks.discover import STAC_TOKEN_ENV, StacAuth, stac_auth
    from tasks.models import Source

    api = Source(kind="stac-api", href="http://host/v1")
    monkeypatch.delenv(STAC_TOKEN_ENV, raising=False)
    assert stac_auth(api) is None
    monkeypatch.setenv(STAC_TOKEN_ENV, "plainTOKEN123")
    assert stac_auth(api) == StacAuth(headers={"Authorization": "Bearer plainTOKEN123"})
    monkeypatch.setenv(STAC_TOKEN_ENV, json.dumps({"username": "u", "password": "pw-123456",
                                                   "parameters": {"api_key": "key-123456"}}))  # fmt: skip
    auth = stac_auth(api)
    assert auth is not None and auth.parameters == {"api_key": "key-123456"}
    basic = base64.b64encode(b"u:pw-123456").decode()
    assert auth.headers == {"Authorization": f"Basic {basic}"}
    assert "pw-123456" not in repr(auth) and redact_text(f"{basic} key-123456") == "*** ***"

    class FakeSecret:
        @classmethod
        def load(cls, name: str) -> FakeSecret:
            assert name == "stac-token"
            return cls()

        def get(self) -> dict:
            return {"headers": {"X-Api-Key": "fromTheBlock1"}}

    monkeypatch.setattr(system, "Secret", FakeSecret)
    with_block = Source(kind="stac-api", href="http://host/v1", secret_block="stac-token")
    assert stac_auth(with_block) == StacAuth(headers={"X-Api-Key": "fromTheBlock1"})  # the block wins
    monkeypatch.setenv(STAC_TOKEN_ENV, "{not json")
    with pytest.raises(ConfigurationError, match=f"^{STAC_TOKEN_ENV}: STAC API credentials are not valid JSON$"):
        stac_auth(api)


def _worker_log_message() -> str:
    import logging

    record = logging.getLogger("distributed.worker").makeRecord(
        "distributed.worker", logging.WARNING, __file__, 1, "Compute Failed: %s", (f"http://h/?token={TOKEN}",), None
    )
    return record.getMessage()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_workers_of_created_clusters_mask_their_logs() -> None:
    from distributed import Client

    from sen2core.parallel import local_cluster
    from sen2core.redact import redact_worker_logs

    with local_cluster(1) as cluster, Client(cluster) as client:
        assert TOKEN in next(iter(client.run(_worker_log_message).values()))  # a fresh worker process
        client.register_plugin(redact_worker_logs())
        assert set(client.run(_worker_log_message).values()) == {"Compute Failed: http://h/?token=***"}


@pytest.mark.slow
def test_dem_is_recorded_in_the_run_summary(tmp_path: Path, cloudy_l1c: Path) -> None:
    import json

    from sen2core.io.read.opening import open_l1c
    from sen2core.pipeline import ProcessingConfig, process_product

    gb = open_l1c(cloudy_l1c).geobox(60)
    left, _, right, top = gb.bounds
    dem = _write_dem(tmp_path / "east.tif", gb.crs, left + 0.3 * (right - left), top, 60.0, gb.shape)
    result = process_product(cloudy_l1c, tmp_path / "out", ProcessingConfig(resolution=60, sc_only=True, dem=str(dem)))
    text = (Path(result.output_dir) / "L2A_SUMMARY.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert summary["dem"]["name"] == "east.tif" and abs(summary["dem"]["coverage_percent"] - 70.0) < 2.0

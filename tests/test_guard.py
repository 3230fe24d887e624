"""Issue 16: hostile settings and inputs are refused, nothing is exposed.

Each test here failed before its fix: band paths that leave the product, settings out
of range, non-strict JSON, a DEM that misses the tile, misleading messages, Dask
dashboards on every interface, credentials in STAC URLs.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from sen2core.errors import InputProductError, MetadataWarning
from sen2core.io.product import Product, open_product

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


GIPP_DIR = Path(__file__).parent / "data" / "gipp"


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
        f"sen2core: error: {path}: Adj_Km = '-1' (adjacency_km) must be in [0, 5] km, got -1.0"]
    assert not (tmp_path / "out").exists()


def test_scene_classification_files_name_file_setting_and_range(tmp_path: Path) -> None:
    from sen2core.config import SceneClassificationConfig
    from sen2core.errors import ConfigurationError

    sc = (GIPP_DIR / "L2A_CAL_SC_GIPP.xml").read_text(encoding="utf-8")
    start, end = sc.index("<T2_B04>"), sc.index("</T2_B04>")
    gipp = tmp_path / "L2A_CAL_SC_GIPP.xml"
    gipp.write_text(sc[:start] + "<T2_B04>7" + sc[end:], encoding="utf-8")
    with pytest.raises(ConfigurationError,
                       match=rf"^{gipp}: T2_B04 \(t2_b04\) must be in \[0, 2\] TOA reflectance, got 7.0$"):
        SceneClassificationConfig.from_gipp(gipp)
    user = _user_gipp(tmp_path, Median_Filter="abc")
    with pytest.raises(ConfigurationError, match=rf"^{user}: Median_Filter \(median_filter\) must be an integer"):
        SceneClassificationConfig.from_gipp(user)
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
    from sen2core.settings import settings_markdown

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
    docs = Path(__file__).parents[1] / "docs" / "settings.md"
    assert docs.read_text(encoding="utf-8") == settings_markdown(), "run: python -m sen2core.settings > docs/settings.md"


def test_strict_json_has_no_nan_or_infinity() -> None:
    import json

    import numpy as np

    from sen2core.io.jsonutil import strict_json_dumps

    summary = {"elevation_km": float("inf"), "GRANULE_MEAN_WV": np.float32("nan"), "aot": np.float64(0.25),
               "counts": np.array([1, 2]), "flag": np.bool_(True), "nested": ({"x": -float("inf")},)}
    text = strict_json_dumps(summary, indent=1)

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    assert json.loads(text, parse_constant=refuse) == {
        "elevation_km": None, "GRANULE_MEAN_WV": None, "aot": 0.25, "counts": [1, 2], "flag": True,
        "nested": [{"x": None}]}

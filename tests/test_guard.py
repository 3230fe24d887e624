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

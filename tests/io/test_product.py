"""Opening products (SAFE directory, MTD path, .SAFE.zip, AWS tile folder) and the pixel API."""

from __future__ import annotations

import shutil
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio

from sen2core.errors import InputProductError
from sen2core.io.read import bands
from sen2core.io.read.metadata import BAND_IDS
from sen2core.io.read.opening import open_l1c
from sen2core.kernels.radiometry import block_mean, dn_to_reflectance, upsample_nearest

DATA = Path(__file__).parents[1] / "data"
AWS_900M = DATA / "l1c-T19UDP-20170729-900m"
L2A_509 = (
    DATA
    / "metadata/gdal-autotest-sentinel2/fake_l2a_processing_baseline_5_09"
    / ("S2B_MSIL2A_20230823T095559_N0509_R122_T34UCF_20230823T124759.SAFE")
)


# ---------------------------------------------------------------- opening


def test_open_safe_directory(l1c_safe: Path, open_s2) -> None:
    p = open_s2(l1c_safe)
    assert (p.level, p.layout, p.processing_baseline, p.tile_id, p.epsg) == ("L1C", "SAFE", "05.09", "34UCF", 32634)
    assert p.product_id == "S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234"
    assert p.bands == BAND_IDS
    assert p.resolutions == (10, 20, 60)
    assert p.radiometry.quantification_value == 10000.0
    assert set(p.radiometry.add_offset.values()) == {-1000.0}
    assert p.has_sun_grid
    assert p.warnings == ()


def test_open_via_mtd_path_is_the_same_product(l1c_safe: Path, open_s2) -> None:
    a = open_s2(l1c_safe)
    b = open_s2(l1c_safe / "MTD_MSIL1C.xml")
    assert b.product_id == a.product_id and b.grids == a.grids and b.band_files == a.band_files


def test_geobox_per_resolution(l1c_safe: Path, open_s2) -> None:
    p = open_s2(l1c_safe)
    g10, g20, g60 = p.geobox(10), p.geobox(20), p.geobox(60)
    assert (g10.shape, g20.shape, g60.shape) == ((366, 366), (183, 183), (61, 61))
    assert g10.crs == "EPSG:32634" and g10.epsg == 32634
    assert tuple(g20.transform)[:6] == (20.0, 0.0, 300000.0, 0.0, -20.0, 6100020.0)
    assert g10.bounds == g20.bounds == g60.bounds == (300000.0, 6096360.0, 303660.0, 6100020.0)
    # A resolution not in the metadata is derived from the tile extent.
    assert p.geobox(120).shape == (31, 31) and p.geobox(183).shape == (20, 20)
    with pytest.raises(ValueError):
        p.geobox(0)


def test_read_dn_is_lazy_and_exact(l1c_safe: Path, open_s2, monkeypatch, band_pattern) -> None:
    p = open_s2(l1c_safe, chunk_m=1200)
    calls: list[tuple[int, int, int, int]] = []
    real = bands.read_window

    def counting(path: str, r0: int, r1: int, c0: int, c1: int, **kw):
        calls.append((r0, r1, c0, c1))
        return real(path, r0, r1, c0, c1, **kw)

    monkeypatch.setattr(bands, "read_window", counting)
    dn = p.read_dn("B04")
    assert dn.dtype == np.uint16 and dn.shape == (366, 366)
    assert dn.chunks[0] == (120, 120, 120, 6)
    assert calls == []  # building the graph read no pixels
    with dask.config.set(scheduler="sync"):
        assert np.array_equal(dn.compute(), band_pattern("B04", (366, 366)))
    assert len(calls) == 16 and all(r1 - r0 <= 120 for r0, r1, _, _ in calls)
    calls.clear()
    with dask.config.set(scheduler="sync"):
        dn[:10, :10].compute()
    assert calls == [(0, 120, 0, 120)]  # one window, not the whole band


def test_chunks_align_across_resolutions(l1c_safe: Path, open_s2) -> None:
    p = open_s2(l1c_safe, chunk_m=1200)
    c10, c20, c60 = p.read_dn("B02").chunks, p.read_dn("B05").chunks, p.read_dn("B01").chunks
    edges = [np.cumsum(c[0]) * r for c, r in ((c10, 10), (c20, 20), (c60, 60))]
    assert all(np.array_equal(edges[0], e) for e in edges[1:])
    assert p.read_dn("B02", chunks=(50, 70)).chunks[1][0] == 70
    default = open_s2(l1c_safe)  # 18300 m chunks: one chunk for this small tile
    assert default.chunk_pixels(10) == 1830 and default.chunk_pixels(20) == 915 and default.chunk_pixels(60) == 305
    assert default.read_dn("B02").numblocks == (1, 1)


def test_toa_native(l1c_safe: Path, open_s2, expected_toa) -> None:
    p = open_s2(l1c_safe)
    for band, n in (("B02", 366), ("B8A", 183), ("B10", 61)):
        rho = p.toa(band)
        assert rho.dtype == np.float32 and rho.shape == (n, n)
        np.testing.assert_array_equal(rho.compute(), expected_toa(band, (n, n), -1000.0))


def test_toa_resampling(l1c_safe: Path, open_s2, expected_toa) -> None:
    p = open_s2(l1c_safe, chunk_m=1200)
    native10 = expected_toa("B04", (366, 366), -1000.0)
    to20 = p.toa("B04", 20)
    assert to20.shape == (183, 183) and to20.chunks[0][0] == 60
    np.testing.assert_allclose(to20.compute(), block_mean(native10, 2), rtol=1e-6)
    to60 = p.toa("B04", 60).compute()
    np.testing.assert_allclose(to60, block_mean(native10, 6), rtol=1e-6)
    # A 6x6 block that straddles the no-data strip averages its valid pixels only.
    assert np.isnan(native10[:6, 18:24]).any() and np.isfinite(native10[:6, 18:24]).any()
    assert to60[0, 3] == pytest.approx(float(np.nanmean(native10[:6, 18:24])))
    native20 = expected_toa("B11", (183, 183), -1000.0)
    to10 = p.toa("B11", 10)
    assert to10.shape == (366, 366) and to10.chunks[0][0] == 120
    np.testing.assert_array_equal(to10.compute(), upsample_nearest(native20, 2))
    with pytest.raises(ValueError, match="integer multiple"):
        p.toa("B04", 25)


def test_toa_pre_baseline_4_has_no_offset(tmp_path: Path, safe_builder, open_s2, expected_toa) -> None:
    safe = safe_builder.l1c(tmp_path, baseline="02.09", offsets=False, angles=False, bands=("B03",))
    p = open_s2(safe)
    assert p.radiometry.add_offset["B03"] == 0.0
    assert not any("RADIO_ADD_OFFSET" in w for w in p.warnings)
    np.testing.assert_array_equal(p.toa("B03").compute(), expected_toa("B03", (366, 366), 0.0))


def test_toa_missing_offsets_from_baseline_4(tmp_path: Path, safe_builder, open_s2) -> None:
    safe = safe_builder.l1c(tmp_path, baseline="04.00", offsets=False, bands=("B03",))
    p = open_s2(safe)
    assert p.radiometry.add_offset["B03"] == -1000.0
    assert any(w.startswith("RADIO_ADD_OFFSET missing") for w in p.warnings)
    assert any("band raster files missing" in w for w in p.warnings)


def test_open_zip_in_place(tmp_path: Path, l1c_safe: Path, safe_builder, open_s2, expected_toa) -> None:
    work = tmp_path / "inbox"
    work.mkdir()
    archive = safe_builder.zip(l1c_safe, work / f"{l1c_safe.stem}.SAFE.zip")
    before = sorted(p.name for p in work.rglob("*"))
    p = open_s2(archive)
    assert p.layout == "SAFE.zip" and p.level == "L1C" and p.bands == BAND_IDS
    href = p.band_href("B8A")
    assert href.startswith("/vsizip/") and href.endswith("_B8A.jp2") and str(archive) in href
    np.testing.assert_array_equal(p.toa("B8A").compute(), expected_toa("B8A", (183, 183), -1000.0))
    zen, _ = p.sun_angles(60)
    assert np.isfinite(zen.compute()).all()
    assert sorted(q.name for q in work.rglob("*")) == before  # nothing extracted
    assert not list(Path.cwd().glob("*.jp2"))


def test_open_old_style_names(tmp_path: Path, safe_builder, open_s2) -> None:
    safe = safe_builder.l1c(tmp_path, bands=("B02",))
    (safe / "MTD_MSIL1C.xml").rename(safe / "S2B_OPER_MTD_SAFL1C_PDMC_20230823T120234_R122_V20230823T095559.xml")
    granule = next((safe / "GRANULE").iterdir())
    (granule / "MTD_TL.xml").rename(granule / "S2B_OPER_MTD_L1C_TL_2BPS_20230823T120234_A033753_T34UCF.xml")
    p = open_s2(safe)
    assert p.tile_metadata is not None and p.epsg == 32634 and p.bands == ("B02",)


def test_aws_900m_sample(open_s2) -> None:
    p = open_s2(AWS_900M)
    assert (p.layout, p.level, p.epsg, p.tile_id, p.processing_baseline) == ("AWS", "L1C", 32619, "19UDP", "02.05")
    assert p.spacecraft == "Sentinel-2A"
    assert p.bands == BAND_IDS and all(p.band_resolution(b) == 900 for b in BAND_IDS)
    gb = p.geobox(900)
    assert gb.shape == (122, 122) and gb.epsg == 32619
    assert (gb.transform.c, gb.transform.f) == (399960.0, 5400000.0)
    assert p.geobox(10).shape == (10980, 10980)
    assert p.radiometry.quantification_value == 10000.0 and p.radiometry.add_offset["B04"] == 0.0
    assert p.radiometry.u == pytest.approx(0.9696, abs=1e-3)
    with rasterio.open(AWS_900M / "B04.jp2") as ds:
        dn = ds.read(1)
    rho = p.toa("B04").compute()
    valid = dn > 0
    assert (~valid).any() and valid.any()
    np.testing.assert_allclose(rho[valid], dn[valid] / 10000.0, rtol=1e-6)
    assert np.isnan(rho[~valid]).all()
    for r, c in ((60, 60), (100, 121), (5, 120)):
        assert rho[r, c] == pytest.approx(dn[r, c] / 10000.0)
    # Coarsened to 1800 m, refined to 300 m.
    assert p.toa("B04", 1800).shape == (61, 61)
    np.testing.assert_array_equal(p.toa("B04", 300)[::3, ::3].compute(), rho)


def test_aws_folder_via_tileinfo_path(aws_900m: Path, open_s2) -> None:
    p = open_s2(aws_900m / "tileInfo.json")
    assert p.layout == "AWS" and p.bands == BAND_IDS


def test_aws_band_missing_is_recorded(aws_900m: Path, open_s2) -> None:
    (aws_900m / "B09.jp2").unlink()
    p = open_s2(aws_900m)
    assert "B09" not in p.bands and "B09" in p.missing_bands
    assert any("missing for B09" in w for w in p.warnings)


def test_open_l1c_accepts_l1c_and_lazy_arrays_tokenize(l1c_safe: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = open_l1c(l1c_safe)
    assert p.level == "L1C"
    a, b = p.toa("B02"), p.toa("B02")
    assert a.name == b.name  # deterministic graph keys


def test_l2a_product_pixels(open_s2) -> None:
    p = open_s2(L2A_509)
    assert p.level == "L2A" and p.radiometry.quantification_value == 10000.0
    assert p.radiometry.aot_quantification_value == 1000.0
    with pytest.raises(InputProductError, match="is a Level-2A product"):
        p.toa("B04")


def test_radiometry_kernel() -> None:
    dn = np.array([[0, 1000, 1001], [65535, 11000, 2]], dtype=np.uint16)
    rho = dn_to_reflectance(dn, -1000.0, 10000.0)
    assert rho.dtype == np.float32 and np.isnan(rho[0, 0])
    assert rho[0, 1] == 0.0 and rho[0, 2] == pytest.approx(1e-4) and rho[1, 1] == pytest.approx(1.0)
    assert rho[1, 2] == pytest.approx(-0.0998)
    assert block_mean(np.array([[1.0, np.nan, 5.0], [3.0, np.nan, np.nan]]), 2).tolist() == [[2.0, 5.0]]
    assert np.isnan(block_mean(np.full((2, 2), np.nan), 2)).all()
    assert upsample_nearest(np.array([[1, 2]], dtype=np.uint16), 2).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2]]
    with pytest.raises(ValueError):
        dn_to_reflectance(dn, 0.0, 0.0)


def test_copy_of_safe_reads_independently(tmp_path: Path, l1c_safe: Path, open_s2) -> None:
    copy = tmp_path / l1c_safe.name
    shutil.copytree(l1c_safe, copy)
    p = open_s2(copy, chunk_m=600)
    z, a = p.sun_angles(10)
    v, w = p.view_angles("B8A", 20)
    zc, vc = dask.compute(z, v)
    assert zc.shape == (366, 366) and vc.shape == (183, 183)
    assert np.isfinite(zc).all() and np.isfinite(vc).all()


@pytest.mark.slow
def test_graphs_are_serialisable_for_distributed(l1c_safe: Path, open_s2, expected_toa) -> None:
    import pickle

    import cloudpickle

    p = open_s2(l1c_safe, chunk_m=1200)
    arrays = [p.toa("B04", 20), p.sun_angles(60)[0], p.view_angles("B8A", 20)[1]]
    for arr in arrays:
        graph = dict(arr.__dask_graph__())
        restored = pickle.loads(cloudpickle.dumps(graph))
        assert restored.keys() == graph.keys()
    with dask.config.set(scheduler="processes", num_workers=1):
        np.testing.assert_array_equal(
            p.toa("B02")[:50, :50].compute(), expected_toa("B02", (366, 366), -1000.0)[:50, :50]
        )

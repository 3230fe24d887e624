"""Angle kernels and the per-pixel sun/view angle fields of products."""

from __future__ import annotations

import warnings
from pathlib import Path

import dask
import numpy as np
import pytest
from rasterio.warp import transform as warp_transform

from sen2core.errors import MetadataWarning
from sen2core.io.read.model import ANGLE_FALLBACK_WARNING
from sen2core.io.read.opening import open_product
from sen2core.kernels.angles import (
    bilinear,
    circular_mean,
    fill_nan_nearest,
    grid_indices,
    interpolate_angles,
    merge_detector_grids,
    utm_to_lonlat,
)
from sen2core.solar import solar_position

DATA = Path(__file__).parents[1] / "data"
T46RER = DATA / "metadata/stactools-sentinel2/S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE"
T01WCP_NAN_MEANS = DATA / (
    "metadata/stactools-sentinel2/S2A_MSIL2A_20230625T234621_N0509_R073_T01WCP_20230626T022158.SAFE"
)
AWS_900M = DATA / "l1c-T19UDP-20170729-900m"


def _quiet_open(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        return open_product(path)


# ---------------------------------------------------------------- kernels


def test_bilinear_exact_at_nodes_and_midpoints() -> None:
    rng = np.random.default_rng(0)
    grid = rng.uniform(20, 60, size=(23, 23))
    nodes = np.arange(23, dtype=float)
    assert np.array_equal(bilinear(grid, nodes, nodes), grid)
    mid = bilinear(grid, np.array([0.5]), np.array([0.5]))[0, 0]
    assert mid == pytest.approx(grid[:2, :2].mean())


def test_bilinear_clamps_outside_and_handles_single_row() -> None:
    grid = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = bilinear(grid, np.array([-3.0, 9.0]), np.array([-1.0, 7.0]))
    assert out.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert bilinear(np.array([[5.0, 7.0]]), np.array([0.0, 3.0]), np.array([0.5])).tolist() == [[6.0], [6.0]]


def test_grid_indices_pixel_centres() -> None:
    # 10 m pixels on a 5 km grid: pixel 0's centre is 5 m from node 0; pixel 500's is 5005 m.
    g = grid_indices(0, 1001, 10.0, 5000.0)
    assert g[0] == pytest.approx(0.001) and g[500] == pytest.approx(1.001)
    assert grid_indices(2, 3, 60.0, 5000.0, offset=100.0)[0] == pytest.approx((100 + 150) / 5000)


def test_azimuth_interpolated_as_direction() -> None:
    zen = np.full((2, 2), 10.0)
    az = np.array([[359.0, 1.0], [359.0, 1.0]])
    _, out = interpolate_angles(zen, az, np.array([0.0, 1.0]), np.array([0.5]))
    assert np.allclose((out + 180) % 360 - 180, 0.0, atol=1e-9)
    assert circular_mean(np.array([350.0, 10.0, np.nan])) == pytest.approx(0.0, abs=1e-9)


def test_fill_nan_nearest() -> None:
    g = np.array([[1.0, np.nan, np.nan], [np.nan, np.nan, 3.0]])
    out = fill_nan_nearest(g)
    assert out.tolist() == [[1.0, 1.0, 3.0], [1.0, 3.0, 3.0]]
    assert np.isnan(fill_nan_nearest(np.full((2, 2), np.nan))).all()


def test_merge_detector_grids_overlap_and_gaps() -> None:
    nan = np.nan
    z = np.array([[[5.0, 6.0, nan, nan]], [[nan, 8.0, 9.0, nan]]])
    a = np.array([[[100.0, 350.0, nan, nan]], [[nan, 10.0, 120.0, nan]]])
    zen, az = merge_detector_grids(z, a)
    assert zen.tolist() == [[5.0, 7.0, 9.0, 9.0]]  # overlap averaged, gap filled from nearest
    assert az[0, 1] == pytest.approx(0.0, abs=1e-9) and az[0, 3] == pytest.approx(120.0)


def test_utm_to_lonlat_matches_proj() -> None:
    x = np.array([399960.0, 509760.0, 166021.0, 833978.0, 600000.0])
    y = np.array([5400000.0, 5290200.0, 1000000.0, 9000000.0, 100000.0])
    for epsg in (32619, 32734, 32601, 32760):
        lon, lat = utm_to_lonlat(x, y, epsg % 100, south=epsg > 32700)
        lo, la = warp_transform(f"EPSG:{epsg}", "EPSG:4326", x.tolist(), y.tolist())
        assert np.abs(lat - la).max() < 1e-7 and np.abs((lon - lo + 180) % 360 - 180).max() < 1e-7


# ---------------------------------------------------------------- products


def test_sun_zenith_at_grid_nodes_equals_grid() -> None:
    p = _quiet_open(T46RER)
    grid = p.tile_metadata.sun_grid
    zen, az = p.sun_angles(10)
    assert zen.shape == (10980, 10980) and zen.dtype == np.float32
    # Pixel (500 i, 500 j) has its centre 5 m east and south of node (i, j): 0.001 node.
    idx = np.array([0, 500, 1000, 5000, 10500])
    zs, azs = dask.compute(zen[idx][:, idx], az[idx][:, idx])
    nodes = idx // 500
    assert np.abs(zs - grid.zenith[np.ix_(nodes, nodes)]).max() < 1e-3
    assert np.abs((azs - grid.azimuth[np.ix_(nodes, nodes)] + 180) % 360 - 180).max() < 1e-2


def test_mean_sun_field_close_to_metadata_mean() -> None:
    p = _quiet_open(T46RER)
    zen, az = dask.compute(*p.sun_angles(600))
    assert zen.shape == (183, 183)
    assert float(zen.mean()) == pytest.approx(p.tile_metadata.mean_sun.zenith, abs=0.02)
    assert float(circular_mean(az)) == pytest.approx(p.tile_metadata.mean_sun.azimuth, abs=0.05)


def test_view_angles_nan_cells_filled_and_close_to_means() -> None:
    p = _quiet_open(T46RER)
    raw = p.tile_metadata.view_grids["B04"]
    assert any(np.isnan(g.zenith).any() for _, g in raw)  # detector gaps exist
    # Half of this tile is outside the swath; ESA's means cover the swath only, so the
    # comparison uses the pixels whose nearest grid node some detector covers.
    rows = np.minimum(np.round((np.arange(122) + 0.5) * 900 / 5000).astype(int), 22)
    for band in ("B01", "B04", "B8A", "B12"):
        zen, az = dask.compute(*p.view_angles(band, 900))
        assert np.isfinite(zen).all() and np.isfinite(az).all()
        covered = np.isfinite(np.stack([g.zenith for _, g in p.tile_metadata.view_grids[band]])).any(axis=0)
        in_swath = covered[np.ix_(rows, rows)]
        mean = p.tile_metadata.mean_view[band]
        assert float(zen[in_swath].mean()) == pytest.approx(mean.zenith, abs=0.2)
        assert float(circular_mean(az[in_swath])) == pytest.approx(mean.azimuth, abs=1.5)
        assert zen.min() >= 0.0 and zen.max() < 13.0


def test_nan_mean_angles_fall_back_to_grids() -> None:
    p = _quiet_open(T01WCP_NAN_MEANS)
    assert not p.tile_metadata.mean_sun.finite
    m = p.mean_sun_angles()
    assert m is not None and m.zenith == pytest.approx(float(np.mean(p.tile_metadata.sun_grid.zenith)))
    v = p.mean_view_angles("B04")
    assert v is not None and np.isfinite(v.zenith)


def test_angles_are_lazy_and_chunk_aligned() -> None:
    p = _quiet_open(T46RER)
    z10, _ = p.sun_angles(10)
    z20, _ = p.sun_angles(20)
    z60, _ = p.sun_angles(60)
    assert z10.chunks[0][0] == 1830 and z20.chunks[0][0] == 915 and z60.chunks[0][0] == 305
    assert len(z10.chunks[0]) == len(z20.chunks[0]) == len(z60.chunks[0]) == 6


def test_fallback_sun_angles_from_solar_position(open_s2) -> None:
    p = open_s2(AWS_900M)
    assert ANGLE_FALLBACK_WARNING in p.warnings
    zen, az = dask.compute(*p.sun_angles(900))
    # Independent reference at a few pixel centres, via PROJ for the coordinates.
    gb = p.geobox(900)
    rows, cols = np.array([0, 61, 121]), np.array([0, 30, 121])
    x = gb.transform.c + (cols + 0.5) * 900.0
    y = gb.transform.f - (rows + 0.5) * 900.0
    lon, lat = warp_transform("EPSG:32619", "EPSG:4326", x.tolist(), y.tolist())
    z_ref, a_ref = solar_position(p.sensing_time, np.array(lat), np.array(lon))
    assert np.allclose(zen[rows, cols], z_ref, atol=1e-3)
    assert np.allclose(az[rows, cols], a_ref, atol=1e-3)
    vz, va = dask.compute(*p.view_angles("B04", 900))
    assert (vz == 0).all() and (va == 0).all()

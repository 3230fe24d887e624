"""Atmospheric-correction kernels against truth made with the shared forward model."""

from __future__ import annotations

import numpy as np
import pytest

from sen2core.atmosphere.lut import load_lut
from sen2core.kernels import adjacency, aot, cirrus, encode, rt, terrain, wv
from sen2core.kernels.lut import toa_reflectance
from sen2core.kernels.shadow import cast_shadow
from sen2core.kernels.solve import bisect

GEOM = dict(sza=38.0, vza=6.5, raa=110.0)


def _table(band: str, aerosol: str = "continental"):
    return load_lut().geometry_table("S2A", band, aerosol, GEOM["sza"], GEOM["vza"], GEOM["raa"], 0.33)


def test_bisect_finds_roots_and_clamps() -> None:
    target = np.array([-1.0, 0.3, 0.77, 2.0])
    x = bisect(lambda v: target - v, 0.0, 1.0, target.shape, iterations=30)
    np.testing.assert_allclose(x, [0.0, 0.3, 0.77, 1.0], atol=1e-9)


@pytest.mark.parametrize("true_aot", [0.05, 0.25, 0.6])
def test_ddv_aot_recovers_truth(true_aot: float) -> None:
    rng = np.random.default_rng(int(true_aot * 100))
    n = 400
    rho12 = rng.uniform(0.015, 0.05, n)
    z, w = rng.uniform(0, 1.5, n), np.full(n, 1.7)
    red, b12 = _table("B04"), _table("B12")
    cos_sza = np.full(n, np.cos(np.radians(GEOM["sza"])))
    toa_red = toa_reflectance(0.5 * rho12, red.at(true_aot, z, w))
    toa_12 = toa_reflectance(rho12, b12.at(true_aot, z, w))
    got = aot.aot_at_ddv(toa_red, toa_12, red, b12, z, w, cos_sza)
    assert np.max(np.abs(got - true_aot)) < 0.01


def test_ddv_candidate_levels() -> None:
    rho12 = np.array([0.03, 0.07, 0.11, 0.03, 0.03, 0.005])
    toa4 = np.array([0.04, 0.04, 0.04, 0.15, 0.04, 0.04])
    toa8a = np.full(6, 0.30)
    scl = np.array([4, 4, 4, 4, 5, 4])
    lvl = aot.ddv_candidates(rho12, toa4, toa8a, scl, np.full(6, 0.8), np.ones(6, bool))
    # strict threshold, relaxed 0.10, relaxed 0.12; too bright in red; not vegetation; too dark in B12
    assert lvl.tolist() == [1, 2, 3, 0, 0, 0]


def test_visibility_conversion_matches_sen2cor_fit() -> None:
    assert aot.visibility_to_aot(40.0) == pytest.approx(0.2011, abs=1e-3)
    assert aot.visibility_to_aot(5.0, 2.5) < aot.visibility_to_aot(5.0, 0.0)


@pytest.mark.parametrize("true_wv", [0.4, 1.5, 3.2, 5.0])
def test_apda_recovers_water_vapour(true_wv: float) -> None:
    rng = np.random.default_rng(5)
    n = 300
    rho = rng.uniform(0.08, 0.5, n)
    z, a = rng.uniform(0, 2, n), np.full(n, 0.2)
    t8, t9 = _table("B8A"), _table("B09")
    toa8 = toa_reflectance(rho, t8.at(a, z, true_wv))
    toa9 = toa_reflectance(rho, t9.at(a, z, true_wv))
    got = wv.water_vapour_apda(toa8, toa9, t8, t9, a, z)
    assert np.max(np.abs(got - true_wv)) < 0.02 * true_wv + 0.01


def test_cirrus_gamma_and_removal() -> None:
    rng = np.random.default_rng(9)
    n = 60_000
    surface_toa = rng.normal(0.12, 0.01, n)
    rho_c = np.where(rng.random(n) < 0.5, rng.uniform(0.02, 0.05, n), rng.uniform(0.002, 0.007, n))
    gamma = 0.8
    toa = surface_toa + np.where(rho_c > 0.01, rho_c / gamma, 0.0)
    sums = cirrus.gamma_sums(toa, np.where(rho_c > 0.01, rho_c, rho_c))
    g = cirrus.gamma_from_sums(sums)
    assert g is not None and abs(g - gamma) < 0.03
    fixed = cirrus.remove_cirrus(toa, np.where(rho_c > 0.01, rho_c, 0.0), g)
    assert abs(fixed.mean() - 0.12) < 0.002
    assert cirrus.band_gamma(0.8, 1.61) == pytest.approx(1.6)


def test_terrain_of_a_tilted_plane_and_a_wall() -> None:
    px = 20.0
    rows, cols = np.indices((50, 50)).astype(float)
    east_down = 1000.0 - cols * px * np.tan(np.radians(20.0))  # falls towards the east
    slope, aspect = terrain.slope_aspect(east_down, px)
    assert slope[10:-10, 10:-10] == pytest.approx(20.0, abs=1e-6)
    assert aspect[10:-10, 10:-10] == pytest.approx(90.0, abs=1e-6)
    # Sun in the east at 40 deg zenith: the east-facing slope sees it at 20 deg.
    assert terrain.cos_incidence(20.0, 90.0, 40.0, 90.0) == pytest.approx(np.cos(np.radians(20.0)))
    assert terrain.sky_view(np.array(0.0)) == 1.0
    wall = np.zeros((40, 40))
    wall[:, 20] = 200.0  # a 200 m wall; sun in the east (azimuth 90) at 45 deg zenith
    shade = cast_shadow(wall, 45.0, 90.0, px, 400.0)
    # Shadow west of the wall over 200 m = 10 pixels, none east of it.
    assert shade[20, 11:20].all() and not shade[20, 5] and not shade[20, 21:].any()
    assert terrain.is_quasi_flat(np.full((10, 10), 300.0), np.zeros((10, 10)))
    assert not terrain.is_quasi_flat(east_down, slope)


def test_adjacency_background_is_a_nan_aware_box_mean() -> None:
    v = np.ones((9, 9))
    v[4, 4] = np.nan
    v[0, 0] = 10.0
    m = adjacency.box_mean(v, 3)
    assert m[4, 4] == pytest.approx(1.0) and m[1, 1] == pytest.approx(2.0)
    assert adjacency.window_pixels(1.0, 20.0) == 51 and adjacency.window_pixels(1.0, 60.0) == 17


def test_inversion_with_background_undoes_adjacency() -> None:
    t = _table("B04").at(0.3, 0.0, 2.0)
    e = rt.irradiance_factor(t, np.cos(np.radians(GEOM["sza"])))
    field = np.full((61, 61), 0.35)
    field[25:36, 25:36] = 0.03  # a dark field in bright surroundings
    bg = adjacency.box_mean(field, 51)
    toa = rt.toa_from_surface(field, bg, t, e)
    naive = rt.surface_from_toa_uniform(toa, t, e)
    assert naive[30, 30] > 0.035  # adjacency makes the dark field look brighter
    np.testing.assert_allclose(rt.surface_from_toa(toa, bg, t, e), field, atol=1e-9)


def test_boa_encoding_round_trip_and_edges() -> None:
    rho = np.array([np.nan, -0.2, -0.05, 0.0, 0.1234, 0.5, 4.0])
    dn = encode.encode_boa(rho)
    assert dn.tolist() == [0, 1, 500, 1000, 2234, 6000, 32767]
    back = encode.decode_boa(dn)
    assert np.isnan(back[0]) and back[4] == pytest.approx(0.1234, abs=1e-4)
    assert encode.encode_boa(np.array([0.1234, -0.1]), legacy=True).tolist() == [1234, 1]
    assert encode.encode_scaled(np.array([0.2345, np.nan]), 1000.0).tolist() == [235, 0]
    t = encode.tci(np.array([0, 1000, 2250, 9000]), np.array([1, 1000, 2250, 9000]), np.array([1, 1000, 2250, 9000]))
    assert t[0].tolist() == [0, 1, 128, 255]


def test_bilinear_refine_reproduces_linear_fields_and_block_edges() -> None:
    """The adjacency background is refined from a ~100 m grid: a linear field comes back exactly,
    and a chunk's cells line up with its fine pixels (cell centres at (i + 0.5) * factor)."""
    from sen2core.kernels.adjacency import bilinear_refine

    yy, xx = np.mgrid[0:6, 0:6].astype(float)
    fine = bilinear_refine(2 * yy + 3 * xx, 5, (20, 20))
    v = (np.arange(20) + 0.5) / 5 - 0.5 + 1
    assert np.allclose(fine, 2 * v[:, None] + 3 * v[None, :])
    const = bilinear_refine(np.full((3, 3), 0.25), 4, (4, 4))
    assert np.allclose(const, 0.25)

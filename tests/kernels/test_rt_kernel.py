"""The shared forward/inverse radiative-transfer kernel."""

from __future__ import annotations

import numpy as np

from sen2core.atmosphere.lut import load_lut
from sen2core.kernels import rt
from sen2core.kernels.lut import toa_reflectance


def _terms(n: int, rng: np.random.Generator):
    return load_lut().terms(
        "S2B", "B04", "continental", rng.uniform(10, 70, n), rng.uniform(0, 12, n), rng.uniform(0, 180, n),
        rng.uniform(0, 1, n), rng.uniform(0, 3, n), rng.uniform(0.2, 5, n), 0.3,
    )  # fmt: skip


def test_uniform_flat_case_is_the_lut_model() -> None:
    rng = np.random.default_rng(1)
    t = _terms(1000, rng)
    rho = rng.uniform(0, 0.9, 1000)
    e = rt.irradiance_factor(t, np.cos(np.radians(30.0)))
    np.testing.assert_allclose(rt.toa_from_surface(rho, rho, t, e), toa_reflectance(rho, t), atol=1e-12)
    np.testing.assert_allclose(rt.surface_from_toa_uniform(toa_reflectance(rho, t), t, e), rho, atol=1e-9)


def test_inverse_undoes_forward_with_background_and_terrain() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    t = _terms(n, rng)
    cos_sza = rng.uniform(0.3, 1.0, n)
    e = rt.irradiance_factor(t, cos_sza, rng.uniform(0.0, 1.0, n), rng.integers(0, 2, n), rng.uniform(0.7, 1.0, n))
    rho, bg = rng.uniform(0, 0.8, n), rng.uniform(0, 0.5, n)
    back = rt.surface_from_toa(rt.toa_from_surface(rho, bg, t, e), bg, t, e)
    ok = e > 1e-3  # a shaded pixel facing away from the sun with no sky keeps no signal
    np.testing.assert_allclose(back[ok], rho[ok], atol=1e-9)


def test_shadow_and_adjacency_have_the_physical_sign() -> None:
    rng = np.random.default_rng(3)
    t = _terms(1, rng)
    cs = 0.8
    lit, shade = (rt.irradiance_factor(t, cs, sunlit=s) for s in (1.0, 0.0))
    assert shade.item() < 0.5 * lit.item()  # losing the direct sun darkens a pixel a lot
    dark_in_bright = rt.toa_from_surface(0.02, 0.4, t, lit)
    dark_in_dark = rt.toa_from_surface(0.02, 0.02, t, lit)
    assert dark_in_bright.item() > dark_in_dark.item()  # bright surroundings brighten a dark target

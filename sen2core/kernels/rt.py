"""Radiative-transfer forward and inverse models for a Lambertian surface.

One formulation serves the synthetic scene generator (forward) and the
atmospheric correction (inverse), so that what one writes the other can undo.
With a target of reflectance ``rho`` in surroundings of mean reflectance
``rho_bg`` (the adjacency background, Tanre/Vermote form as in 6S)::

    rho_toa = path + Tg * E * (t_up_dir * rho + t_up_dif * rho_bg) / (1 - S * rho_bg)

where ``E`` is the relative irradiance of the pixel. On flat ground ``E`` is the
total downward transmittance ``t_down``; on a slope (terrain correction)::

    E = t_down_dir * sunlit * cos_i / cos_sza + t_down_dif * sky_view

with ``cos_i`` the cosine of the local solar incidence angle, ``sunlit`` 0 in
cast shadow and ``sky_view`` the sky-view factor. A cloud shadow is a pixel with
``sunlit = 0``. With ``rho_bg = rho`` and flat ground this is the homogeneous
model of :func:`sen2core.kernels.lut.toa_reflectance`.

All functions are pure numpy and broadcast over their inputs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sen2core.kernels.lut import AtmosphericTerms

Array = NDArray[np.float64]


def irradiance_factor(
    t: AtmosphericTerms,
    cos_sza: ArrayLike,
    cos_i: ArrayLike | None = None,
    sunlit: ArrayLike = 1.0,
    sky_view: ArrayLike = 1.0,
) -> Array:
    """Relative irradiance ``E`` of a pixel (1 = top of atmosphere, flat and sunlit: ``t_down``).

    Parameters
    ----------
    t
        Atmospheric terms.
    cos_sza
        Cosine of the solar zenith angle.
    cos_i
        Cosine of the local incidence angle on the slope; ``None`` for flat ground.
    sunlit
        1 where the direct sun reaches the pixel, 0 in cast or cloud shadow.
    sky_view
        Fraction of the sky hemisphere seen by the pixel.
    """
    ci = (
        np.asarray(cos_sza, dtype=np.float64)
        if cos_i is None
        else np.clip(np.asarray(cos_i, dtype=np.float64), 0.0, None)
    )
    direct = t.t_down_dir * np.asarray(sunlit, dtype=np.float64) * ci / np.asarray(cos_sza, dtype=np.float64)
    return direct + (t.t_down - t.t_down_dir) * np.asarray(sky_view, dtype=np.float64)


def toa_from_surface(rho: ArrayLike, rho_bg: ArrayLike, t: AtmosphericTerms, irradiance: ArrayLike) -> Array:
    """Forward model: TOA reflectance of a pixel of reflectance ``rho`` in a background ``rho_bg``."""
    r = np.asarray(rho, dtype=np.float64)
    bg = np.asarray(rho_bg, dtype=np.float64)
    up = t.t_up_dir * r + (t.t_up - t.t_up_dir) * bg
    return t.path + t.gas * np.asarray(irradiance, dtype=np.float64) * up / (1.0 - t.spherical_albedo * bg)


def surface_from_toa(toa: ArrayLike, rho_bg: ArrayLike, t: AtmosphericTerms, irradiance: ArrayLike) -> Array:
    """Inverse model: surface reflectance from TOA reflectance, given the background ``rho_bg``."""
    bg = np.asarray(rho_bg, dtype=np.float64)
    signal = (np.asarray(toa, dtype=np.float64) - t.path) * (1.0 - t.spherical_albedo * bg)
    signal = signal / (t.gas * np.asarray(irradiance, dtype=np.float64))
    return (signal - (t.t_up - t.t_up_dir) * bg) / t.t_up_dir


def surface_from_toa_uniform(toa: ArrayLike, t: AtmosphericTerms, irradiance: ArrayLike) -> Array:
    """Inverse model for uniform surroundings (``rho_bg = rho``); first step before adjacency."""
    y = (np.asarray(toa, dtype=np.float64) - t.path) / (t.gas * np.asarray(irradiance, dtype=np.float64) * t.t_up)
    return y / (1.0 + t.spherical_albedo * y)

"""Water vapour of 6S's standard atmosphere: the column above the ground and 6S's input.

With a user-defined water-vapour content (6S atmosphere type 8), 6SV1.1 scales the
water-vapour profile of the US Standard Atmosphere 1962 so that its column *from sea
level* equals the input, and a raised target then only has the part of that profile
above it. The input is therefore not the column above the ground: a 2 km target with
2.0 cm has about the same B09 transmittance as sea level with 0.68 cm (measured with
live 6S). Users, Sen2Cor and AERONET mean the column above the ground (precipitable
water), so every LUT lookup converts::

    input_6s = column_above_ground / fraction_above(z)

where ``fraction_above(z)`` is the share of the profile's water vapour above the
elevation ``z``.

Derivation of ``fraction_above``: the profile gives the water-vapour density at
altitude levels (1 km apart up to 25 km); between two levels the density is taken
as exponential in altitude (6S interpolates its profile log-linearly in altitude
when it places a raised target between levels), so a layer from ``z0`` to ``z1``
with densities ``a`` and ``b`` holds ``(a - b) (z1 - z0) / ln(a / b)``. The sea-level
column of these densities is 1.418 g/cm2 (6S states 1.424 for the same profile,
integrating mixing ratios over pressure with its temperatures; the fractions of the
two ways agree to 0.6 % up to 3.5 km). The fraction is 0.65 at 1 km, 0.40 at 2 km,
0.24 at 3 km and 0.18 at 3.5 km: half of the column lies below 1.5 km.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["US62_H2O_DENSITY", "US62_LEVELS_KM", "column_above_ground", "fraction_above", "sixs_input"]

#: Altitude levels of the US Standard Atmosphere 1962 as 6S tabulates it, km.
US62_LEVELS_KM = np.array(
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 30, 35, 40, 45,
     50, 70, 100], dtype=np.float64,
)  # fmt: skip
#: Water-vapour density at those levels, g/m3 (US Standard Atmosphere 1962 supplement, as in 6S).
US62_H2O_DENSITY = np.array(
    [5.9, 4.2, 2.9, 1.8, 1.1, 0.64, 0.38, 0.21, 0.12, 0.046, 0.018, 8.2e-3, 3.7e-3, 1.8e-3, 8.4e-4, 7.2e-4,
     6.1e-4, 5.2e-4, 4.4e-4, 4.4e-4, 4.4e-4, 4.8e-4, 5.2e-4, 5.7e-4, 6.1e-4, 6.6e-4, 3.8e-4, 1.6e-4, 6.7e-5,
     3.2e-5, 1.2e-5, 1.5e-7, 1.0e-9], dtype=np.float64,
)  # fmt: skip


def _layer_columns(z0: NDArray[np.float64], z1: NDArray[np.float64], a: NDArray[np.float64],
                   b: NDArray[np.float64]) -> NDArray[np.float64]:  # fmt: skip
    """Water vapour (g/m3 x km) of layers with densities ``a`` at ``z0`` and ``b`` at ``z1``, exponential between."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(a / b)
        exp_mean = np.where(np.abs(ratio) > 1e-9, (a - b) / ratio, 0.5 * (a + b))
    return exp_mean * (z1 - z0)


def _column_above(z_km: NDArray[np.float64]) -> NDArray[np.float64]:
    lv, rho = US62_LEVELS_KM, US62_H2O_DENSITY
    full = _layer_columns(lv[:-1], lv[1:], rho[:-1], rho[1:])
    # Column above each level: the layers above it.
    above_level = np.concatenate([np.cumsum(full[::-1])[::-1], [0.0]])
    z = np.clip(z_km, lv[0], lv[-1])
    i = np.clip(np.searchsorted(lv, z, side="right") - 1, 0, len(lv) - 2)
    f = (z - lv[i]) / (lv[i + 1] - lv[i])
    at_z = rho[i] * (rho[i + 1] / rho[i]) ** f
    return np.asarray(_layer_columns(z, lv[i + 1], at_z, rho[i + 1]) + above_level[i + 1])


def fraction_above(elevation_km: ArrayLike) -> NDArray[np.float64]:
    """Share of the standard profile's water vapour above ``elevation_km`` (1 at sea level).

    Elevations below sea level are taken as sea level, where 6S places such targets too.
    """
    z = np.asarray(elevation_km, dtype=np.float64)
    return _column_above(np.maximum(z, 0.0)) / _column_above(np.zeros(()))


def sixs_input(column_above_ground: ArrayLike, elevation_km: ArrayLike) -> NDArray[np.float64]:
    """6S's water-vapour input (sea-level column, cm) for a column above a ground at ``elevation_km``."""
    return np.asarray(column_above_ground, dtype=np.float64) / fraction_above(elevation_km)


def column_above_ground(sixs_water_vapour: ArrayLike, elevation_km: ArrayLike) -> NDArray[np.float64]:
    """Column above a ground at ``elevation_km`` (cm) of 6S's water-vapour input ``sixs_water_vapour``."""
    return np.asarray(sixs_water_vapour, dtype=np.float64) * fraction_above(elevation_km)

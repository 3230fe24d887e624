"""Terrain: slope, aspect, illumination, sky view and cast shadows from a DEM on the tile grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class TerrainSettings:
    """Quasi-flat switch (Sen2Cor ``AC_Dem_P2p_Val``, ``AC_Slope_Th``, ``AC_Topo_Corr_Th``)."""

    flat_peak_to_peak_m: float = 50.0
    slope_threshold_deg: float = 6.0
    steep_fraction: float = 0.01


def slope_aspect(dem: Array, pixel_m: float) -> tuple[Array, Array]:
    """Slope and aspect (degrees; aspect clockwise from north, facing downhill) by Horn's method.

    ``dem`` rows run north to south, columns west to east (north-up grid). Edge
    pixels use replicated neighbours.
    """
    z = np.pad(dem, 1, mode="edge")
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * pixel_m)  # towards east
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * pixel_m)  # towards south
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    # Downhill direction is minus the gradient; north is minus the row direction.
    aspect = np.degrees(np.arctan2(-dzdx, dzdy)) % 360.0
    return slope, aspect


def cos_incidence(slope_deg: Array, aspect_deg: Array, sza_deg: Array, saa_deg: Array) -> Array:
    """Cosine of the angle between the sun and the surface normal."""
    s, sz = np.radians(slope_deg), np.radians(sza_deg)
    return np.asarray(
        np.cos(sz) * np.cos(s) + np.sin(sz) * np.sin(s) * np.cos(np.radians(saa_deg - aspect_deg)), dtype=np.float64
    )


def sky_view(slope_deg: Array) -> Array:
    """Isotropic sky-view factor of a tilted plane."""
    return 0.5 * (1.0 + np.cos(np.radians(slope_deg)))


def is_quasi_flat(dem: Array, slope_deg: Array, settings: TerrainSettings = TerrainSettings()) -> bool:
    """Sen2Cor's switch to flat processing for terrain with little relief."""
    finite = np.isfinite(dem)
    if not finite.any():
        return True
    p2p = float(np.nanmax(dem) - np.nanmin(dem))
    steep = float(np.mean(slope_deg[finite] > settings.slope_threshold_deg))
    return p2p < settings.flat_peak_to_peak_m and steep < settings.steep_fraction

"""Surface pressure from the mean sea-level pressure and the elevation (barometric formula).

The LUT's elevation axis is 6S's target altitude in its standard atmosphere, so pressure
enters the lookups as an elevation: the one whose standard pressure equals the surface
pressure. With the standard troposphere (288.15 K at sea level, 6.5 K/km, exponent
g M / (R L) = 5.25588) the surface pressure is ``p0 (1 - z / H)^n`` with ``H = 44.3308 km``,
and the equivalent elevation ``H (1 - (p0 / 1013.25)^(1/n) (1 - z / H))``: the ground's
elevation shifted by about 8.3 m per hPa the sea-level pressure departs from 1013.25.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["STANDARD_MSL_HPA", "pressure_elevation_km", "surface_pressure_hpa"]

STANDARD_MSL_HPA = 1013.25
_H_KM = 288.15 / 6.5
_N = 5.25588


def surface_pressure_hpa(msl_hpa: ArrayLike, elevation_km: ArrayLike) -> NDArray[np.float64]:
    """Surface pressure (hPa) at ``elevation_km`` under a sea-level pressure ``msl_hpa``."""
    z = np.asarray(elevation_km, dtype=np.float64)
    return np.asarray(msl_hpa, dtype=np.float64) * (1.0 - z / _H_KM) ** _N


def pressure_elevation_km(elevation_km: ArrayLike, msl_hpa: float) -> NDArray[np.float64]:
    """Elevation of the standard atmosphere whose pressure is the surface pressure (km)."""
    z = np.asarray(elevation_km, dtype=np.float64)
    ratio = (float(msl_hpa) / STANDARD_MSL_HPA) ** (1.0 / _N)
    return np.asarray(_H_KM * (1.0 - ratio * (1.0 - z / _H_KM)), dtype=np.float64)

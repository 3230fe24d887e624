"""Solar position and Earth-Sun distance (NOAA solar calculator algorithm).

Pure numpy, no I/O. The algorithm is the one of NOAA's Global Monitoring Laboratory
solar calculator, itself a simplification of Meeus, *Astronomical Algorithms* (1991):
low-precision solar coordinates with an equation of time and apparent longitude
correction. Its accuracy is about 0.01 degree for dates between 1800 and 2100, well
inside what atmospheric correction needs (the Sentinel-2 5 km angle grids themselves
are given to 1e-4 degree but vary by ~0.1 degree across a tile).

Angles are in degrees: zenith from the local vertical, azimuth clockwise from
geographic north (the Sentinel-2 convention). No atmospheric refraction is applied
unless asked for, because the Sentinel-2 metadata angles are geometric.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "TimeLike",
    "earth_sun_distance",
    "julian_day",
    "reflectance_conversion_factor",
    "solar_position",
]

TimeLike = _dt.datetime | np.datetime64 | str
"""A UTC instant: an aware or naive (taken as UTC) datetime, a numpy datetime64 or an ISO string."""

_UNIX_EPOCH_JD = 2440587.5
_J2000_JD = 2451545.0
_CNES_EPOCH_JD = 2433282.5  # 1950-01-01T00:00:00 UTC


def julian_day(time: TimeLike) -> float:
    """Julian day (UT) of an instant.

    Parameters
    ----------
    time
        The instant. Naive datetimes and numpy datetime64 values are taken as UTC.

    Returns
    -------
    float
        Julian day number with fraction.
    """
    if isinstance(time, str):
        time = _dt.datetime.fromisoformat(time)
    if isinstance(time, _dt.datetime):
        if time.tzinfo is None:
            time = time.replace(tzinfo=_dt.UTC)
        seconds = time.timestamp()
    else:
        seconds = float(np.datetime64(time).astype("datetime64[us]").astype(np.int64)) / 1e6
    return seconds / 86400.0 + _UNIX_EPOCH_JD


def _sun_coordinates(jd: float) -> tuple[float, float, float, float]:
    """Return (declination deg, equation of time minutes, radius vector AU, apparent longitude deg)."""
    jc = (jd - _J2000_JD) / 36525.0
    mean_long = (280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360.0
    mean_anom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc)
    ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
    m = np.radians(mean_anom)
    centre = (
        np.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
        + np.sin(2 * m) * (0.019993 - 0.000101 * jc)
        + np.sin(3 * m) * 0.000289
    )
    true_long = mean_long + centre
    true_anom = mean_anom + centre
    radius = (1.000001018 * (1 - ecc * ecc)) / (1 + ecc * np.cos(np.radians(true_anom)))
    omega = np.radians(125.04 - 1934.136 * jc)
    app_long = true_long - 0.00569 - 0.00478 * np.sin(omega)
    mean_obliq = 23.0 + (26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0
    obliq = np.radians(mean_obliq + 0.00256 * np.cos(omega))
    decl = np.degrees(np.arcsin(np.sin(obliq) * np.sin(np.radians(app_long))))
    y = np.tan(obliq / 2.0) ** 2
    l0 = np.radians(mean_long)
    eq_time = 4.0 * np.degrees(
        y * np.sin(2 * l0)
        - 2 * ecc * np.sin(m)
        + 4 * ecc * y * np.sin(m) * np.cos(2 * l0)
        - 0.5 * y * y * np.sin(4 * l0)
        - 1.25 * ecc * ecc * np.sin(2 * m)
    )
    return float(decl), float(eq_time), float(radius), float(app_long)


def earth_sun_distance(time: TimeLike) -> float:
    """Earth-Sun distance in astronomical units.

    Parameters
    ----------
    time
        The instant (UTC).

    Returns
    -------
    float
        Distance in AU (about 0.983 in early January to 1.017 in early July).
    """
    return _sun_coordinates(julian_day(time))[2]


def reflectance_conversion_factor(time: TimeLike) -> float:
    """Sentinel-2 ``U``: the Earth-Sun distance correction of the L1C processor.

    Uses the formula of the Sentinel-2 Level-1 algorithm (``MTD_MSIL1C.xml``
    ``Reflectance_Conversion/U``)::

        U = 1 / (1 - 0.01673 * cos(0.0172 * (t - 2)))**2

    with ``t`` the day counted from 1950-01-01 (CNES Julian day). It agrees with the
    values ESA writes to about 3e-4; it differs from the astronomical ``1 / d**2`` of
    :func:`earth_sun_distance` by up to 3e-3, and ESA's value is the one the L1C
    reflectances embed.

    Parameters
    ----------
    time
        Sensing instant (UTC).

    Returns
    -------
    float
        ``U``, about 0.967 in early July to 1.034 in early January.
    """
    t = julian_day(time) - _CNES_EPOCH_JD
    return float(1.0 / (1.0 - 0.01673 * np.cos(0.0172 * (t - 2.0))) ** 2)


def _refraction(elevation_deg: NDArray[np.float64]) -> NDArray[np.float64]:
    """NOAA approximation of atmospheric refraction (degrees) for a standard atmosphere."""
    e = elevation_deg
    te = np.tan(np.radians(np.clip(e, -89.0, 89.9)))
    arcsec = np.where(
        e > 85.0,
        0.0,
        np.where(
            e > 5.0,
            58.1 / te - 0.07 / te**3 + 0.000086 / te**5,
            np.where(
                e > -0.575,
                1735.0 + e * (-518.2 + e * (103.4 + e * (-12.79 + e * 0.711))),
                -20.772 / te,
            ),
        ),
    )
    return np.asarray(arcsec / 3600.0, dtype=np.float64)


def solar_position(
    time: TimeLike,
    lat: ArrayLike,
    lon: ArrayLike,
    *,
    refraction: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Solar zenith and azimuth angles for one instant at many places.

    Parameters
    ----------
    time
        The instant (UTC); one per call, as a Sentinel-2 tile is sensed in seconds.
    lat, lon
        Geodetic latitude and longitude in degrees (east positive); broadcastable arrays.
    refraction
        Apply NOAA's standard-atmosphere refraction correction to the zenith angle.
        Off by default: Sentinel-2 metadata angles are geometric.

    Returns
    -------
    zenith, azimuth : ndarray of float64
        Degrees; azimuth clockwise from north in ``[0, 360)``.
    """
    lat_r = np.radians(np.asarray(lat, dtype=np.float64))
    lon_d = np.asarray(lon, dtype=np.float64)
    jd = julian_day(time)
    decl_d, eq_time, _, _ = _sun_coordinates(jd)
    decl = np.radians(decl_d)
    minutes_utc = ((jd + 0.5) % 1.0) * 1440.0
    true_solar_time = (minutes_utc + eq_time + 4.0 * lon_d) % 1440.0
    hour_angle = np.radians(true_solar_time / 4.0 - 180.0)

    cos_zen = np.sin(lat_r) * np.sin(decl) + np.cos(lat_r) * np.cos(decl) * np.cos(hour_angle)
    zenith = np.degrees(np.arccos(np.clip(cos_zen, -1.0, 1.0)))
    # atan2 form rather than NOAA's arccos form: stays defined at the poles and at the zenith.
    azimuth = np.mod(
        np.degrees(
            np.arctan2(
                np.sin(hour_angle),
                np.cos(hour_angle) * np.sin(lat_r) - np.tan(decl) * np.cos(lat_r),
            )
        )
        + 180.0,
        360.0,
    )
    azimuth = np.where(azimuth >= 360.0, 0.0, azimuth)
    if refraction:
        zenith = zenith - _refraction(90.0 - zenith)
    return np.asarray(zenith, dtype=np.float64), np.asarray(azimuth, dtype=np.float64)

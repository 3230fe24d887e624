"""Angle kernels: 5 km grid interpolation, detector merging, UTM to geographic.

Pure numpy (and scipy.ndimage for nearest filling): arrays in, arrays out, no I/O,
no dask. Angles are degrees; azimuths clockwise from north.

Geometry convention (Sentinel-2 ``MTD_TL.xml``): node ``(i, j)`` of a
``Sun_Angles_Grid`` or ``Viewing_Incidence_Angles_Grids`` sits at
``x = ULX + j * COL_STEP``, ``y = ULY - i * ROW_STEP``, i.e. node (0, 0) is the tile's
upper-left corner, not a pixel centre.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "bilinear",
    "circular_mean",
    "fill_nan_nearest",
    "grid_indices",
    "interpolate_angles",
    "interpolate_azimuth",
    "merge_detector_grids",
    "utm_to_lonlat",
]

F64 = NDArray[np.float64]


def _wrap360(deg: ArrayLike) -> F64:
    # np.mod(-1e-15, 360) rounds to 360.0; fold it back so results stay in [0, 360).
    r = np.mod(np.asarray(deg, dtype=np.float64), 360.0)
    return np.asarray(np.where(r >= 360.0, 0.0, r), dtype=np.float64)


def grid_indices(start: int, stop: int, pixel_size: float, step: float, offset: float = 0.0) -> F64:
    """Fractional grid coordinates of pixel centres along one axis.

    Parameters
    ----------
    start, stop
        Pixel index range ``[start, stop)`` along the axis (rows or columns).
    pixel_size
        Pixel size in metres along the axis (positive).
    step
        Grid step in metres (``ROW_STEP`` or ``COL_STEP``, positive).
    offset
        Distance in metres from grid node 0 to the edge of pixel 0, positive
        eastwards (columns) or southwards (rows); 0 when the pixel grid starts at the
        tile's upper-left corner, as every Sentinel-2 resolution does.

    Returns
    -------
    ndarray of float64
        ``(offset + (index + 0.5) * pixel_size) / step`` for each pixel: 0 at grid
        node 0, 1 at the next node.
    """
    idx = np.arange(start, stop, dtype=np.float64)
    return np.asarray((offset + (idx + 0.5) * pixel_size) / step, dtype=np.float64)


def _axis_weights(g: F64, n: int) -> tuple[NDArray[np.intp], NDArray[np.intp], F64]:
    if n == 1:
        zeros = np.zeros(g.shape, dtype=np.intp)
        return zeros, zeros, np.zeros(g.shape, dtype=np.float64)
    i0 = np.clip(np.floor(g), 0, n - 2).astype(np.intp)
    # Clamping t to [0, 1] holds edge values beyond the grid instead of extrapolating.
    t = np.clip(g - i0, 0.0, 1.0)
    return i0, i0 + 1, t


def bilinear(grid: ArrayLike, gy: ArrayLike, gx: ArrayLike) -> F64:
    """Bilinear interpolation of a grid on the outer product of two coordinate vectors.

    Parameters
    ----------
    grid
        2-D array of node values (no NaN: fill gaps first with :func:`fill_nan_nearest`).
    gy, gx
        1-D fractional row and column coordinates (node units). Values outside the grid
        take the nearest edge value.

    Returns
    -------
    ndarray of float64
        Shape ``(len(gy), len(gx))``.
    """
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"grid must be a non-empty 2-D array, got shape {g.shape}")
    y = np.asarray(gy, dtype=np.float64)
    x = np.asarray(gx, dtype=np.float64)
    # Bilinear interpolation is separable: rows(gy) @ grid @ cols(gx).T with two non-zero
    # weights per row of each matrix. The grid is small (about 23 x 23 nodes), so this is one
    # BLAS product per block instead of four full-size gathers and six full-size operations.
    return _weights(y, g.shape[0]) @ g @ _weights(x, g.shape[1]).T


def _weights(g: F64, n: int) -> F64:
    i0, i1, t = _axis_weights(g, n)
    w = np.zeros((g.size, n), dtype=np.float64)
    rows = np.arange(g.size)
    np.add.at(w, (rows, i0), 1.0 - t)
    np.add.at(w, (rows, i1), t)
    return w


def interpolate_angles(
    zenith_grid: ArrayLike, azimuth_grid: ArrayLike, gy: ArrayLike, gx: ArrayLike
) -> tuple[F64, F64]:
    """Interpolate a zenith/azimuth grid pair at pixel centres.

    The zenith is interpolated bilinearly; the azimuth through its sine and cosine so
    that 359 and 1 degree average to 0, not 180.

    Parameters
    ----------
    zenith_grid, azimuth_grid
        2-D node values in degrees, same shape, without NaN.
    gy, gx
        1-D fractional row and column coordinates (see :func:`grid_indices`).

    Returns
    -------
    zenith, azimuth : ndarray of float64
        Degrees, shape ``(len(gy), len(gx))``; azimuth in ``[0, 360)``.
    """
    return bilinear(zenith_grid, gy, gx), interpolate_azimuth(azimuth_grid, gy, gx)


def interpolate_azimuth(azimuth_grid: ArrayLike, gy: ArrayLike, gx: ArrayLike) -> F64:
    """Interpolate an azimuth grid (degrees) through its sine and cosine; result in ``[0, 360)``."""
    az_r = np.radians(np.asarray(azimuth_grid, dtype=np.float64))
    s = bilinear(np.sin(az_r), gy, gx)
    c = bilinear(np.cos(az_r), gy, gx)
    return _wrap360(np.degrees(np.arctan2(s, c)))


def fill_nan_nearest(grid: ArrayLike) -> F64:
    """Replace NaN cells by the value of the nearest valid cell.

    Parameters
    ----------
    grid
        2-D array, possibly with NaN (cells outside a detector footprint or outside
        the swath).

    Returns
    -------
    ndarray of float64
        A copy without NaN. An all-NaN grid is returned unchanged (still all NaN): the
        caller decides what to do when there is nothing to fill from.
    """
    g = np.array(grid, dtype=np.float64, copy=True)
    invalid = ~np.isfinite(g)
    if not invalid.any() or invalid.all():
        return g
    _, (ri, ci) = ndimage.distance_transform_edt(invalid, return_indices=True)
    return np.asarray(g[ri, ci], dtype=np.float64)


def circular_mean(azimuth_deg: ArrayLike, axis: int | None = None) -> F64:
    """Mean of angles in degrees through unit vectors, ignoring NaN.

    Parameters
    ----------
    azimuth_deg
        Angles in degrees.
    axis
        Axis to reduce; all axes when None.

    Returns
    -------
    ndarray of float64
        Mean direction in ``[0, 360)``; NaN where no value is finite.
    """
    a = np.radians(np.asarray(azimuth_deg, dtype=np.float64))
    valid = np.isfinite(a)
    s = np.where(valid, np.sin(a), 0.0).sum(axis=axis)
    c = np.where(valid, np.cos(a), 0.0).sum(axis=axis)
    n = valid.sum(axis=axis)
    out = np.where(n > 0, _wrap360(np.degrees(np.arctan2(s, c))), np.nan)
    return np.asarray(out, dtype=np.float64)


def merge_detector_grids(zenith: ArrayLike, azimuth: ArrayLike) -> tuple[F64, F64]:
    """Merge the per-detector viewing grids of one band into one grid pair.

    Each detector's grid is NaN outside its footprint. Where footprints overlap the
    zenith is averaged and the azimuth is averaged as a direction; cells covered by no
    detector are then filled from the nearest covered cell.

    Parameters
    ----------
    zenith, azimuth
        Arrays of shape ``(n_detectors, rows, cols)`` in degrees.

    Returns
    -------
    zenith, azimuth : ndarray of float64
        Shape ``(rows, cols)``. All NaN when no detector has a finite value.
    """
    z = np.asarray(zenith, dtype=np.float64)
    a = np.asarray(azimuth, dtype=np.float64)
    if z.ndim != 3 or z.shape != a.shape:
        raise ValueError(f"expected two (detectors, rows, cols) arrays, got {z.shape} and {a.shape}")
    valid = np.isfinite(z) & np.isfinite(a)
    n = valid.sum(axis=0)
    zsum = np.where(valid, z, 0.0).sum(axis=0)
    zen = np.where(n > 0, zsum / np.maximum(n, 1), np.nan)
    az = circular_mean(np.where(valid, a, np.nan), axis=0)
    return fill_nan_nearest(zen), fill_nan_nearest(az)


# WGS84 and UTM constants for the Krueger series (Karney 2011, third order in n:
# sub-millimetre within the 6-degree zone plus the Sentinel-2 overlap).
_A = 6378137.0
_F = 1.0 / 298.257223563
_N = _F / (2.0 - _F)
_A_RECT = _A / (1.0 + _N) * (1.0 + _N**2 / 4.0 + _N**4 / 64.0)
_BETA = (
    _N / 2.0 - 2.0 * _N**2 / 3.0 + 37.0 * _N**3 / 96.0,
    _N**2 / 48.0 + _N**3 / 15.0,
    17.0 * _N**3 / 480.0,
)
_DELTA = (
    2.0 * _N - 2.0 * _N**2 / 3.0 - 2.0 * _N**3,
    7.0 * _N**2 / 3.0 - 8.0 * _N**3 / 5.0,
    56.0 * _N**3 / 15.0,
)
_K0 = 0.9996


def utm_to_lonlat(x: ArrayLike, y: ArrayLike, zone: int, south: bool) -> tuple[F64, F64]:
    """Convert WGS84 / UTM coordinates to geographic longitude and latitude.

    Parameters
    ----------
    x, y
        Easting and northing in metres (broadcastable).
    zone
        UTM zone, 1 to 60.
    south
        True for the southern-hemisphere zones (EPSG 327xx, false northing 10 000 km).

    Returns
    -------
    lon, lat : ndarray of float64
        Degrees; longitude in ``[-180, 180)``.
    """
    if not 1 <= zone <= 60:
        raise ValueError(f"UTM zone must be in 1..60, got {zone}")
    e = np.asarray(x, dtype=np.float64) - 500000.0
    n = np.asarray(y, dtype=np.float64) - (10000000.0 if south else 0.0)
    xi = n / (_K0 * _A_RECT)
    eta = e / (_K0 * _A_RECT)
    xi_p = xi.copy()
    eta_p = eta.copy()
    for j, b in enumerate(_BETA, start=1):
        xi_p = xi_p - b * np.sin(2 * j * xi) * np.cosh(2 * j * eta)
        eta_p = eta_p - b * np.cos(2 * j * xi) * np.sinh(2 * j * eta)
    chi = np.arcsin(np.sin(xi_p) / np.cosh(eta_p))
    lat = chi.copy()
    for j, d in enumerate(_DELTA, start=1):
        lat = lat + d * np.sin(2 * j * chi)
    lon0 = zone * 6.0 - 183.0
    lon = lon0 + np.degrees(np.arctan2(np.sinh(eta_p), np.cos(xi_p)))
    lon = (lon + 180.0) % 360.0 - 180.0
    return np.asarray(lon, dtype=np.float64), np.asarray(np.degrees(lat), dtype=np.float64)

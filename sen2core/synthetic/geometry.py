"""Acquisition geometry of a synthetic tile: sun grid, swath and detectors, cloud parallax.

Pure numpy: arrays in, arrays out.

Sun angles are the real solar position (NOAA algorithm, :func:`sen2core.solar.solar_position`)
at the nodes of the 5 km ``Sun_Angles_Grid`` for the tile's sensing time.

Viewing angles follow a push-broom model of the MSI: a descending sun-synchronous ground
track (inclination 98.62 deg, altitude 786 km, 290 km swath) whose heading at the tile's
latitude includes the Earth's rotation; twelve detector modules side by side across
track, slightly overlapping, odd and even modules tilted forward and backward along
track, and each band seen at its own along-track angle (the bands sit at different
places of the focal plane). That gives what real grids show: view zenith growing from
0 at nadir to about 10.5 deg at the swath edge, view azimuth perpendicular to the track
away from nadir, and azimuth jumps between odd and even detectors near nadir.

Metadata values are quantised to six significant digits, as ESA writes them, and the
physics uses the quantised values: the per-pixel view geometry of a band *is* the
bilinear interpolation of its detector grids merged the way a reader merges them
(:func:`sen2core.kernels.angles.merge_detector_grids`), so a processor that reads the
grids sees exactly the geometry the scene was made with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sen2core.kernels.angles import circular_mean, merge_detector_grids
from sen2core.solar import TimeLike, solar_position

__all__ = [
    "ALTITUDE_KM",
    "ANGLE_STEP_M",
    "BAND_ALONG_TRACK_DEG",
    "N_DETECTORS",
    "SWATH_KM",
    "Swath",
    "angle_grid_shape",
    "ground_track_heading",
    "mean_view_angles",
    "merged_grid",
    "merged_grid_unfilled",
    "node_coordinates",
    "quantize",
    "shadow_offset",
    "sun_grid",
]

F64 = NDArray[np.float64]

ANGLE_STEP_M = 5000.0
"""Node spacing of the Sentinel-2 angle grids (``COL_STEP``/``ROW_STEP``)."""
ALTITUDE_KM = 786.0
"""Mean altitude of Sentinel-2."""
SWATH_KM = 290.0
"""Swath width."""
N_DETECTORS = 12
"""Detector modules across the swath."""
INCLINATION_DEG = 98.62
"""Orbit inclination."""
_GROUND_SPEED_KM_S = 6.8
_EARTH_SURFACE_SPEED_KM_S = 0.4651
_DETECTOR_OVERLAP_KM = 1.8
# Odd/even detector modules look forward/backward along track (about 1 deg apart).
_PARITY_TILT_DEG = 0.45
#: Along-track viewing angle of each band (deg): the bands' places on the focal plane.
BAND_ALONG_TRACK_DEG: dict[str, float] = {
    "B02": -0.40, "B08": -0.32, "B03": -0.24, "B10": -0.16, "B04": -0.08, "B05": 0.00, "B06": 0.08,
    "B07": 0.16, "B8A": 0.24, "B09": 0.32, "B11": 0.12, "B12": 0.28, "B01": 0.40,
}  # fmt: skip


def quantize(values: ArrayLike) -> F64:
    """Round to six significant digits, the precision of the angles in ``MTD_TL.xml``.

    NaN stays NaN. ``float(f"{v:.6g}")`` of the result is the result itself, so the
    value written to XML and read back is the value used by the physics.
    """
    a = np.asarray(values, dtype=np.float64)
    out = np.full(a.shape, np.nan)
    flat_in = a.ravel()
    flat_out = out.ravel()
    for i, v in enumerate(flat_in):
        if math.isfinite(v):
            flat_out[i] = float(f"{v:.6g}")
    return out


def angle_grid_shape(extent_m: float, step_m: float = ANGLE_STEP_M) -> int:
    """Nodes per axis of an angle grid covering ``extent_m`` (23 for a full 109.8 km tile)."""
    return math.ceil(extent_m / step_m - 1e-9) + 1


def node_coordinates(ulx: float, uly: float, n: int, step_m: float = ANGLE_STEP_M) -> tuple[F64, F64]:
    """Easting and northing of the nodes of an ``n`` x ``n`` angle grid (meshgrid, rows x cols)."""
    k = np.arange(n, dtype=np.float64) * step_m
    return np.meshgrid(ulx + k, uly - k)


def sun_grid(lon: ArrayLike, lat: ArrayLike, time: TimeLike) -> tuple[F64, F64]:
    """Quantised sun zenith and azimuth at grid nodes.

    Parameters
    ----------
    lon, lat
        Node longitude and latitude (degrees).
    time
        Sensing time (UTC).

    Returns
    -------
    zenith, azimuth : ndarray of float64
        Degrees, six significant digits.
    """
    zen, az = solar_position(time, lat, lon)
    return quantize(zen), quantize(az)


def ground_track_heading(lat_deg: float) -> float:
    """Heading (deg clockwise from north) of a descending Sentinel-2 ground track.

    The inertial track of a retrograde orbit crosses latitude ``lat`` at an angle
    ``asin(cos(i) / cos(lat))`` west of south; the Earth turning east under the
    satellite adds a westward ground speed ``omega * R * cos(lat)``.
    """
    c = math.cos(math.radians(lat_deg))
    s = min(1.0, abs(math.cos(math.radians(INCLINATION_DEG))) / max(c, 1e-6))
    beta = math.asin(s)
    south = _GROUND_SPEED_KM_S * math.cos(beta)
    west = _GROUND_SPEED_KM_S * math.sin(beta) + _EARTH_SURFACE_SPEED_KM_S * c
    return 180.0 + math.degrees(math.atan2(west, south))


@dataclass(frozen=True)
class Swath:
    """Where the tile sits in the MSI swath.

    Cross-track coordinates are kilometres from the nadir line, positive to the right
    of the direction of motion.
    """

    heading_deg: float
    """Ground-track heading (deg from north)."""
    centre_x: float
    """Easting of the point the cross-track offset refers to (m)."""
    centre_y: float
    """Northing of that point (m)."""
    centre_cross_km: float
    """Cross-track coordinate of that point (km)."""

    def cross_track_km(self, x: ArrayLike, y: ArrayLike) -> F64:
        """Cross-track coordinate (km) of map points (m)."""
        h = math.radians(self.heading_deg)
        # Unit vector to the right of the motion: heading + 90 deg.
        rx, ry = math.cos(h), -math.sin(h)
        dx = np.asarray(x, dtype=np.float64) - self.centre_x
        dy = np.asarray(y, dtype=np.float64) - self.centre_y
        return np.asarray(self.centre_cross_km + (dx * rx + dy * ry) / 1000.0, dtype=np.float64)

    def in_swath(self, x: ArrayLike, y: ArrayLike) -> NDArray[np.bool_]:
        """True where a map point is inside the swath."""
        return np.asarray(np.abs(self.cross_track_km(x, y)) <= SWATH_KM / 2.0)

    @staticmethod
    def detector_bounds(detector: int) -> tuple[float, float]:
        """Cross-track interval (km) imaged by a detector module (1 to 12, left to right)."""
        width = SWATH_KM / N_DETECTORS
        lo = -SWATH_KM / 2.0 + (detector - 1) * width
        return lo - _DETECTOR_OVERLAP_KM / 2.0, lo + width + _DETECTOR_OVERLAP_KM / 2.0

    def view_angles(self, band: str, detector: int, x: ArrayLike, y: ArrayLike) -> tuple[F64, F64]:
        """Viewing zenith and azimuth (deg) of a band's detector module at map points.

        The azimuth is that of the direction from the ground to the satellite, as in
        the Sentinel-2 metadata. A flat Earth is assumed over the 145 km half swath
        (the real zenith at the swath edge is about 0.4 deg larger).
        """
        c = self.cross_track_km(x, y)
        tilt = BAND_ALONG_TRACK_DEG[band] + (_PARITY_TILT_DEG if detector % 2 else -_PARITY_TILT_DEG)
        along = ALTITUDE_KM * math.tan(math.radians(tilt))
        # Horizontal vector ground -> satellite: back across track to the nadir line, and
        # along track by the module's tilt.
        h = math.radians(self.heading_deg)
        ax, ay = math.sin(h), math.cos(h)
        rx, ry = math.cos(h), -math.sin(h)
        east = -c * rx + along * ax
        north = -c * ry + along * ay
        dist = np.hypot(east, north)
        zen = np.degrees(np.arctan2(dist, ALTITUDE_KM))
        az = np.mod(np.degrees(np.arctan2(east, north)), 360.0)
        return np.asarray(zen, dtype=np.float64), np.asarray(az, dtype=np.float64)

    def detector_grids(self, band: str, x: F64, y: F64, step_m: float = ANGLE_STEP_M) -> dict[int, tuple[F64, F64]]:
        """Quantised per-detector viewing grids of a band at grid nodes ``x``, ``y``.

        A node gets a value for a detector when it lies within half a grid step of the
        detector's footprint (so neighbouring detectors share a column of nodes, as in
        real products) and inside the swath; other nodes are NaN. Detectors with no
        node are left out.
        """
        c = self.cross_track_km(x, y)
        margin = step_m / 2000.0
        edge = SWATH_KM / 2.0
        grids: dict[int, tuple[F64, F64]] = {}
        for det in range(1, N_DETECTORS + 1):
            lo, hi = self.detector_bounds(det)
            inside = (c >= max(lo, -edge) - margin) & (c <= min(hi, edge) + margin)
            if not inside.any():
                continue
            zen, az = self.view_angles(band, det, x, y)
            grids[det] = (quantize(np.where(inside, zen, np.nan)), quantize(np.where(inside, az, np.nan)))
        return grids


def merged_grid(grids: dict[int, tuple[F64, F64]]) -> tuple[F64, F64]:
    """A band's detector grids merged as a reader merges them (mean where they overlap)."""
    dets = sorted(grids)
    zen = np.stack([grids[d][0] for d in dets])
    az = np.stack([grids[d][1] for d in dets])
    return merge_detector_grids(zen, az)


def mean_view_angles(grids: dict[int, tuple[F64, F64]]) -> tuple[float, float]:
    """Mean viewing zenith and azimuth of a band over the nodes its detectors cover."""
    zen, az = merged_grid_unfilled(grids)
    return float(np.nanmean(zen)), float(circular_mean(az[np.isfinite(az)]))


def merged_grid_unfilled(grids: dict[int, tuple[F64, F64]]) -> tuple[F64, F64]:
    """Like :func:`merged_grid` but NaN where no detector covers a node."""
    dets = sorted(grids)
    zen = np.stack([grids[d][0] for d in dets])
    az = np.stack([grids[d][1] for d in dets])
    valid = np.isfinite(zen)
    n = valid.sum(axis=0)
    z = np.where(n > 0, np.where(valid, zen, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    a = circular_mean(np.where(valid, az, np.nan), axis=0)
    return np.asarray(z, dtype=np.float64), np.asarray(a, dtype=np.float64)


def shadow_offset(
    height_m: ArrayLike, sza: ArrayLike, saa: ArrayLike, vza: ArrayLike, vaa: ArrayLike
) -> tuple[F64, F64]:
    """Map offset (east, north in m) from where a cloud appears to where its shadow falls.

    L1C images are orthorectified at ground level, so a cloud at height ``h`` appears
    displaced away from the sensor: it really stands above ``A + h tan(vza) u(vaa)``
    when it appears at ``A``. Its shadow falls ``h tan(sza)`` from there, away from the
    sun. Azimuths are those of the directions to the sun and to the sensor.
    """
    h = np.asarray(height_m, dtype=np.float64)
    ts, tv = np.tan(np.radians(sza)), np.tan(np.radians(vza))
    sa, va = np.radians(saa), np.radians(vaa)
    east = h * (tv * np.sin(va) - ts * np.sin(sa))
    north = h * (tv * np.cos(va) - ts * np.cos(sa))
    return np.asarray(east, dtype=np.float64), np.asarray(north, dtype=np.float64)

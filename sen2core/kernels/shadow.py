"""Geometry of shadows: cloud-shadow projection and terrain (cast) shadows.

Pure numpy: arrays in, arrays out. Angles are degrees, azimuths clockwise from
north; image rows run north to south and columns west to east. Sun and view
azimuths are the directions *from the pixel towards* the sun and the satellite
(the Sentinel-2 metadata convention for both grids).

Geometry of a cloud at height ``h`` above ground point ``G``:

- its shadow falls at ``G - h tan(sun zenith) u(sun azimuth)``;
- the satellite sees it at ``G - h tan(view zenith) u(view azimuth)`` (parallax);

with ``u(az) = (east sin az, north cos az)``. The shadow is therefore displaced from
the cloud *as seen in the image* by ``h * D`` with
``D = tan(vz) u(vaa) - tan(sz) u(saa)``. :func:`shadow_displacement` gives ``D`` per
pixel (from per-pixel sun and view angles) and :func:`project_mask` sweeps the cloud
mask along it over a range of cloud heights.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from sen2core.kernels.terrain import cos_incidence, slope_aspect

__all__ = [
    "box_sum",
    "cast_shadow",
    "hillshade",
    "match_reach",
    "match_shadow_zone",
    "project_mask",
    "projection_reach",
    "shadow_displacement",
]

F64 = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def shadow_displacement(
    sun_zenith: ArrayLike,
    sun_azimuth: ArrayLike,
    view_zenith: ArrayLike | None = None,
    view_azimuth: ArrayLike | None = None,
    *,
    max_sun_zenith: float = 90.0,
) -> tuple[F64, F64]:
    """Per-pixel displacement from a cloud, as seen in the image, to its shadow.

    Parameters
    ----------
    sun_zenith, sun_azimuth
        Sun angles (degrees) per pixel.
    view_zenith, view_azimuth
        Viewing angles (degrees) per pixel; ``None`` ignores the parallax (nadir view).
    max_sun_zenith
        Sun zenith clip (Sen2Cor clips at 70 degrees).

    Returns
    -------
    (drow, dcol)
        Displacement in metres per metre of cloud height, along rows (southwards)
        and columns (eastwards).
    """
    sz = np.radians(np.minimum(np.asarray(sun_zenith, dtype=np.float64), max_sun_zenith))
    sa = np.radians(np.asarray(sun_azimuth, dtype=np.float64))
    t = np.tan(sz)
    # Away from the sun: east component -t sin(saa), north component -t cos(saa);
    # rows run southwards, so the row component is +t cos(saa).
    drow = t * np.cos(sa)
    dcol = -t * np.sin(sa)
    if view_zenith is not None and view_azimuth is not None:
        tv = np.tan(np.radians(np.asarray(view_zenith, dtype=np.float64)))
        va = np.radians(np.asarray(view_azimuth, dtype=np.float64))
        drow = drow - tv * np.cos(va)
        dcol = dcol + tv * np.sin(va)
    return np.asarray(drow, dtype=np.float64), np.asarray(dcol, dtype=np.float64)


def projection_reach(
    max_height_m: float, pixel_m: float, *, max_sun_zenith: float, max_view_zenith: float = 0.0
) -> int:
    """Pixels that :func:`project_mask` can reach: the overlap a chunked caller needs.

    Bounds ``|D|`` by ``tan(max_sun_zenith) + tan(max_view_zenith)``; adds the
    rounding of the doubling sweep (half a pixel per doubling level) and one pixel.
    """
    bound = math.tan(math.radians(max_sun_zenith)) + math.tan(math.radians(max_view_zenith))
    reach = max_height_m * bound / pixel_m
    levels = max(1, math.ceil(math.log2(reach + 2.0)))
    return int(math.ceil(reach + 0.5 * levels)) + 1


def _gather(a: NDArray[Any], rows: F64, cols: F64, fill: object) -> NDArray[Any]:
    """``a`` sampled at rounded positions ``(rows, cols)``; ``fill`` outside the array."""
    r = np.rint(rows).astype(np.intp)
    c = np.rint(cols).astype(np.intp)
    inside = (r >= 0) & (r < a.shape[0]) & (c >= 0) & (c < a.shape[1])
    out = np.full(a.shape, fill, dtype=a.dtype)
    out[inside] = a[r[inside], c[inside]]
    return out


def project_mask(
    mask: ArrayLike,
    drow: ArrayLike,
    dcol: ArrayLike,
    min_height_m: float,
    max_height_m: float,
    pixel_m: float,
    *,
    max_displacement: float,
) -> BoolArray:
    """Sweep a cloud mask along the per-pixel shadow direction over a height range.

    Output pixel ``q`` is set when ``mask`` is set at ``q - h D(q)`` for some height
    ``h`` in ``[min_height_m, max_height_m]`` (a gather with each pixel's own
    direction). The sweep over heights uses doubling, ``log2(n)`` gathers for ``n``
    height steps instead of ``n``: a window covering ``[0, 2L)`` steps is the union of
    the window ``[0, L)`` and its copy shifted by ``L`` steps. The shifted copy is read
    at ``q - L s D(q)`` with ``D`` of that pixel, which assumes ``D`` is constant along
    the sweep; sun and view angles change by a fraction of a degree over the ~10 km
    of a shadow, which moves the shadow by less than one 60 m pixel.

    Parameters
    ----------
    mask
        Cloud mask.
    drow, dcol
        Output of :func:`shadow_displacement` (metres per metre of height) per pixel.
    min_height_m, max_height_m
        Range of cloud heights.
    pixel_m
        Pixel size of ``mask`` in metres.
    max_displacement
        Upper bound of ``|D|``: sets the height step (at most one pixel of
        displacement per step). Pass the same bound for every chunk of an image so
        that chunked and whole-image results agree.

    Returns
    -------
    ndarray of bool
        The projected mask (clouds themselves included only where a cloud lies
        along another cloud's shadow path).
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any() or max_height_m < min_height_m:
        return np.zeros_like(m)
    dr = np.asarray(drow, dtype=np.float64) / pixel_m
    dc = np.asarray(dcol, dtype=np.float64) / pixel_m
    step_m = pixel_m / max(max_displacement, 1e-6)
    n_steps = int(math.ceil((max_height_m - min_height_m) / step_m))
    rows, cols = np.indices(m.shape, dtype=np.float64)

    def shifted(a: BoolArray, height: float) -> BoolArray:
        return np.asarray(_gather(a, rows - height * dr, cols - height * dc, False), dtype=bool)

    acc = shifted(m, min_height_m)
    covered = 1  # acc covers offsets [0, covered) height steps
    while 2 * covered <= n_steps + 1:
        acc = acc | shifted(acc, covered * step_m)
        covered *= 2
    if covered < n_steps + 1:
        acc = acc | shifted(acc, (n_steps + 1 - covered) * step_m)
    return acc


def cast_shadow(
    dem: ArrayLike,
    sun_zenith: ArrayLike,
    sun_azimuth: ArrayLike,
    pixel_m: float,
    max_distance_m: float,
) -> BoolArray:
    """Terrain cast shadow with per-pixel sun angles (ray march towards the sun).

    A pixel is in cast shadow when terrain along its ray to the sun, within
    ``max_distance_m``, rises above the ray. Reach: ``ceil(max_distance_m / pixel_m)``.
    NaN elevations neither cast nor receive shadow.
    """
    z = np.asarray(dem, dtype=np.float64)
    sz = np.radians(np.clip(np.asarray(sun_zenith, dtype=np.float64), 0.0, 89.0))
    sa = np.radians(np.asarray(sun_azimuth, dtype=np.float64))
    rise = pixel_m / np.tan(sz)  # height gained by the ray per pixel of horizontal distance
    drow, dcol = -np.cos(sa), np.sin(sa)  # one pixel towards the sun
    rows, cols = np.indices(z.shape, dtype=np.float64)
    filled = np.where(np.isfinite(z), z, -np.inf)
    shadow = np.zeros(z.shape, dtype=bool)
    for step in range(1, int(math.ceil(max_distance_m / pixel_m)) + 1):
        horizon = _gather(filled, rows + step * drow, cols + step * dcol, -np.inf)
        shadow |= horizon > filled + step * rise
    return shadow & np.isfinite(z)


def hillshade(
    dem: ArrayLike,
    sun_zenith: ArrayLike,
    sun_azimuth: ArrayLike,
    pixel_m: float,
) -> tuple[F64, F64]:
    """Hillshade (1..255, as ``gdaldem hillshade``) and slope (degrees) of a DEM.

    Sen2Cor computes both with gdaldem from the scene-mean sun; here the sun angles
    are per pixel. Self-shadowed slopes get 1; NaN elevations give NaN. Reach: 1.
    """
    z = np.asarray(dem, dtype=np.float64)
    slope, aspect = slope_aspect(z, pixel_m)
    cos_i = cos_incidence(
        slope, aspect, np.asarray(sun_zenith, dtype=np.float64), np.asarray(sun_azimuth, dtype=np.float64)
    )
    shade = 1.0 + 254.0 * np.clip(cos_i, 0.0, 1.0)
    return np.asarray(shade, dtype=np.float64), np.asarray(slope, dtype=np.float64)


def box_sum(a: NDArray[np.int64], size: int) -> NDArray[np.int64]:
    """Sum over a ``size x size`` window centred on each pixel (zeros beyond the edges).

    Integer cumulative sums, so that the result is exact and does not depend on where
    the array starts (a chunked caller gets the same values as the whole image).
    Reach: ``size // 2``.
    """
    x = np.asarray(a, dtype=np.int64)
    half = size // 2
    padded = np.pad(x, ((half + 1, half), (half + 1, half)))
    c = padded.cumsum(axis=0).cumsum(axis=1)
    rows, cols = x.shape
    return np.asarray(
        c[size : size + rows, size : size + cols]
        - c[:rows, size : size + cols]
        - c[size : size + rows, :cols]
        + c[:rows, :cols],
        dtype=np.int64,
    )


def match_reach(max_height_m: float, pixel_m: float, *, max_displacement: float, window: int, dilation: int) -> int:
    """Reach (pixels of the matching grid) of :func:`match_shadow_zone`."""
    steps = int(math.ceil(max_height_m * max_displacement / pixel_m))
    return 2 * steps + window // 2 + dilation + 1


def match_shadow_zone(
    cloud_count: ArrayLike,
    dark_count: ArrayLike,
    pixel_count: ArrayLike,
    drow: ArrayLike,
    dcol: ArrayLike,
    pixel_m: float,
    *,
    min_height_m: float,
    max_height_m: float,
    max_displacement: float,
    window: int,
    min_score: float,
    plateau: float,
    min_observed: float,
    dilation: int,
) -> BoolArray:
    """Where the shadows of the clouds fall, with cloud heights found by matching.

    Works on a coarse grid (300 m by default) whose cells count the cloud pixels,
    the shadow-like (dark in the NIR and SWIR) pixels and all pixels of the
    classification grid below them. For each displacement ``s`` cells along the
    shadow direction (one cell per step, heights ``s * pixel_m / |D|`` within
    ``[min_height_m, max_height_m]``), the score of a cell is the fraction of the
    *observable* shadow of the clouds in a ``window x window`` neighbourhood that is
    dark: dark pixels at the shifted places, over the shifted places not themselves
    under a cloud. A neighbourhood with at most ``min_observed`` of its cloud area
    observable is not scored. The heights whose score is within ``plateau`` of the
    neighbourhood's best (when that is at least ``min_score``) are accepted: a large
    shadow stays dark over a range of shifts. The zone is the cloud cells swept over
    their accepted shifts, dilated by ``dilation`` cells.

    Parameters
    ----------
    cloud_count, dark_count, pixel_count
        Integer counts per cell.
    drow, dcol
        Mean cloud-to-shadow displacement per metre of height in the cell
        (:func:`shadow_displacement`).
    pixel_m
        Cell size (m).
    max_displacement
        Bound of ``|D|`` over the image (sets the number of shifts; the same for every
        chunk).

    Returns
    -------
    ndarray of bool
        The shadow zone on the coarse grid. Reach: :func:`match_reach`.
    """
    cc = np.asarray(cloud_count, dtype=np.int64)
    dk = np.asarray(dark_count, dtype=np.int64)
    nn = np.asarray(pixel_count, dtype=np.int64)
    zone = np.zeros(cc.shape, dtype=bool)
    if not cc.any():
        return zone
    dr = np.asarray(drow, dtype=np.float64)
    dc = np.asarray(dcol, dtype=np.float64)
    mag = np.hypot(dr, dc)
    moving = mag > 1e-6
    ur = np.where(moving, dr / np.where(moving, mag, 1.0), 0.0)
    uc = np.where(moving, dc / np.where(moving, mag, 1.0), 0.0)
    rows, cols = np.indices(cc.shape, dtype=np.float64)
    steps = int(math.ceil(max_height_m * max_displacement / pixel_m))
    den = box_sum(cc * nn, window)

    def score(s: int) -> NDArray[np.float64]:
        height = np.where(moving, s * pixel_m / np.where(moving, mag, 1.0), -1.0)
        allowed = moving & (height >= min_height_m) & (height <= max_height_m)
        dark = _gather(dk, rows + s * ur, cols + s * uc, 0)
        shaded = _gather(cc, rows + s * ur, cols + s * uc, 0)
        total = _gather(nn, rows + s * ur, cols + s * uc, 0)
        num = box_sum(cc * dark, window)
        observed = box_sum(cc * (total - shaded), window)
        ok = allowed & (den > 0) & (observed > 0) & (observed >= min_observed * den)
        out = np.zeros(cc.shape)
        np.divide(num, observed, out=out, where=ok)
        return out

    best = np.zeros(cc.shape)
    for s in range(steps + 1):
        best = np.maximum(best, score(s))
    accepted_cells = best >= min_score
    if not accepted_cells.any():
        return zone
    source = cc > 0
    for s in range(steps + 1):
        good = (score(s) >= plateau * best) & accepted_cells & source
        if good.any():
            zone |= np.asarray(_gather(good, rows - s * ur, cols - s * uc, False), dtype=bool)
    if dilation > 0:
        zone = np.asarray(ndimage.binary_dilation(zone, iterations=dilation))
    return zone

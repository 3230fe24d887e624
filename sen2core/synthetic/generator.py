"""Generate a synthetic Level-1C product and its truth, streaming in row strips.

The tile is processed in strips of 732 rows at 10 m (366 at 20 m, 122 at 60 m), each
with a halo of half the adjacency window. For every strip the surface is made at
10 m for all 13 bands; each band's top-of-atmosphere reflectance is computed at 10 m
through the project's forward model (:func:`sen2core.kernels.rt.toa_from_surface`)
with atmospheric terms constant over each pixel of the band's native resolution, and
averaged to that resolution, as the sensor integrates over its footprint. Only a
strip's worth of arrays is ever in memory; the bands go to scratch GeoTIFFs and are
encoded to JPEG 2000 at the end.

Adjacency background: ``rho_bg`` is the surface reflectance at 20 m box-averaged over
``adjacency_km`` (51 x 51 px for 1 km; mirrored at the tile edges, i.e.
``scipy.ndimage.uniform_filter(SR_20m, 51, mode="reflect")``), constant over each 20 m
pixel, averaged over 3 x 3 of them for the 60 m bands.

Forward model of a 10 m sub-pixel of band b (terms of the band at its native pixel)::

    clear  = toa_from_surface(rho, rho_bg, terms, irradiance_factor(terms, cos_sza, cos_i, sunlit, sky_view))
    cloud  = toa_from_surface(rho_c, rho_c, terms_top, irradiance_factor(terms_top, 1))
    rho_c  = R s_b + (1 - R)^2 rho / (1 - R rho)          (cloud layer over the surface)
    toa    = (1 - alpha) clear + alpha cloud + cirrus_b

``sunlit`` is the direct sunlight left by the clouds between the pixel and the sun
(``prod 1 - alpha_k (1 - exp(-tau_k / cos(sza)))``), ``cos_i``/``sky_view`` come from the
relief (1 on flat ground).

Physical clouds (``cloud_model="physical"``) add to that the sunlight the clouds transmit
as diffuse light, ``t_down_dir (sunlit_total - sunlit)`` with ``sunlit_total = prod 1 -
alpha_k (1 - T(tau_k alpha_k ** (5/3), cos(sza)))``
(:func:`~sen2core.synthetic.scene.cloud_transmission`, averaged over the sun's disc for the
penumbra), and multiply the sky view by ``1 -``
:func:`~sen2core.synthetic.scene.sky_occlusion`; the cloud's own reflectance uses the
thinned ``tau alpha ** (5/3)`` and the spectral factors of its phase.

Digital numbers: ``DN = round(10000 toa) - RADIO_ADD_OFFSET``, clipped to 1..65534; 0
outside the swath, 65535 at the saturated pixels.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sen2core import __version__
from sen2core.atmosphere.lut import load_lut
from sen2core.atmosphere.srf import BANDS
from sen2core.errors import ConfigurationError, OutputError
from sen2core.kernels.angles import circular_mean, utm_to_lonlat
from sen2core.kernels.lut import AtmosphericTerms
from sen2core.kernels.rt import irradiance_factor, toa_from_surface
from sen2core.parallel import map_parallel
from sen2core.solar import reflectance_conversion_factor
from sen2core.stopwatch import Stopwatch
from sen2core.synthetic import geometry as geo
from sen2core.synthetic.atmosphere import (
    AEROSOL_SCALE_HEIGHT_KM,
    NODE_STEP_M,
    TERM_NAMES,
    VAPOUR_SCALE_HEIGHT_KM,
    LutRanges,
    TermGrid,
    angles_at,
    term_grid,
    terms_above,
)
from sen2core.synthetic.config import Acquisition, SynthConfig, acquisition
from sen2core.synthetic.safe_writer import (
    BAND_RESOLUTION,
    ProductMetadata,
    datastrip_xml,
    encode_jp2,
    file_checksum,
    manifest_xml,
    open_scratch,
    tile_xml,
    user_product_xml,
    write_aux_data,
    write_mask,
    write_preview,
)
from sen2core.synthetic.scene import (
    CIRRUS_CLASS_MIN,
    CIRRUS_SPECTRAL_FACTOR,
    CLASS_CODES,
    CLOUD_EDGE_FRACTION,
    CLOUD_LABEL_FRACTION,
    CLOUD_SPECTRAL_FACTOR,
    ENDMEMBERS,
    ICE_CLOUD_MIN_HEIGHT_M,
    ICE_CLOUD_SPECTRAL_FACTOR,
    NIR_DIRECT_SHARE,
    SHADOW_LABEL_IRRADIANCE,
    SUN_ANGULAR_RADIUS_RAD,
    THICK_CLOUD_TAU,
    Cirrus,
    CloudObjects,
    block_mean,
    box_mean_rows,
    cloud_reflectance,
    cloud_transmission,
    field_rng,
    fractal_field,
    interp_rows_cols,
    make_cirrus,
    make_clouds,
    make_landscape,
    pixel_coords,
    sky_occlusion,
)
from sen2core.synthetic.surface_source import SourceSurface
from sen2core.synthetic.truth import TruthWriter, gdal_env, write_truth_json

__all__ = ["STRIP_ROWS", "ProgressFn", "SynthResult", "synthesize"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]
"""``progress(step, done, total)``: steps ``scene`` (strips), ``encode`` (files)."""

STRIP_ROWS = 732
"""Rows of a processing strip at 10 m (a multiple of 6; 15 strips for a full tile)."""

_AOT_SIGMA = 0.25
_WV_SIGMA = 0.12
_FIELD_CORR_M = 25000.0
_RELIEF_KM = 2.2
_MAX_SHADOW_KM = 40.0
_TEN_M_BANDS = ("B02", "B03", "B04", "B08")


@dataclass(frozen=True)
class SynthResult:
    """What :func:`synthesize` made."""

    product: Path
    """The ``.SAFE`` directory."""
    truth: Path
    """The ``.truth`` directory beside it."""
    product_id: str
    """Product name without ``.SAFE``."""
    seconds: float
    """Wall time."""
    class_percent: dict[int, float]
    """Share of each class code in the 20 m truth (percent of all pixels)."""
    cloudy_percent: float
    """``CLOUDY_PIXEL_PERCENTAGE`` (classes 8, 9, 10 among valid pixels)."""


# ---------------------------------------------------------------------------- helpers


def _points_angles(
    zen: NDArray[np.float64], az: NDArray[np.float64], y_m: NDArray[np.float64], x_m: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A 5 km angle grid at scattered points (bilinear, clamped; azimuth as a direction)."""
    gy = np.clip(np.asarray(y_m) / geo.ANGLE_STEP_M, 0, zen.shape[0] - 1)
    gx = np.clip(np.asarray(x_m) / geo.ANGLE_STEP_M, 0, zen.shape[1] - 1)
    z = ndimage.map_coordinates(zen, [gy, gx], order=1, mode="nearest")
    a = np.radians(az)
    s = ndimage.map_coordinates(np.sin(a), [gy, gx], order=1, mode="nearest")
    c = ndimage.map_coordinates(np.cos(a), [gy, gx], order=1, mode="nearest")
    return np.asarray(z, dtype=np.float64), np.mod(np.degrees(np.arctan2(s, c)), 360.0)


def _field_points(
    field: NDArray[np.floating], y_m: NDArray[np.float64], x_m: NDArray[np.float64], step_m: float
) -> NDArray[np.float64]:
    """A cell-centred field at scattered tile coordinates (bilinear, clamped)."""
    gy = np.clip(np.asarray(y_m) / step_m - 0.5, 0, field.shape[0] - 1)
    gx = np.clip(np.asarray(x_m) / step_m - 0.5, 0, field.shape[1] - 1)
    return np.asarray(
        ndimage.map_coordinates(np.asarray(field, dtype=np.float64), [gy, gx], order=1, mode="nearest"),
        dtype=np.float64,
    )


def _clip_polygon(
    points: list[tuple[float, float]], inside: Callable[[float, float], float]
) -> list[tuple[float, float]]:
    """Sutherland-Hodgman clip of a polygon by the half-plane ``inside(x, y) >= 0`` (linear)."""
    out: list[tuple[float, float]] = []
    n = len(points)
    for i in range(n):
        p, q = points[i], points[(i + 1) % n]
        fp, fq = inside(*p), inside(*q)
        if fp >= 0:
            out.append(p)
        if (fp >= 0) != (fq >= 0):
            t = fp / (fp - fq)
            out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return out


def _terms4(t: AtmosphericTerms) -> AtmosphericTerms:
    """Terms of native pixels shaped (rows, 1, cols, 1) to broadcast over sub-pixels."""
    return AtmosphericTerms(*(np.asarray(getattr(t, k))[:, None, :, None] for k in TERM_NAMES))


def _gather(t: AtmosphericTerms, index: NDArray[np.integer]) -> AtmosphericTerms:
    return AtmosphericTerms(*(np.asarray(getattr(t, k))[index] for k in TERM_NAMES))


def _classify(
    ground: NDArray[np.uint8],
    alpha: NDArray[np.floating],
    thick: NDArray[np.bool_],
    cirrus: NDArray[np.floating],
    sunlit: NDArray[np.floating],
    nodata: NDArray[np.bool_],
    saturated: NDArray[np.bool_],
    irradiance: NDArray[np.floating] | None = None,
) -> NDArray[np.uint8]:
    """Truth class from the physical state of a pixel (see ``truth.json`` ``class_rules``).

    ``irradiance`` (physical clouds): the share of the clear-sky near-infrared irradiance the
    ground gets; shadow and cloud are then labelled by :data:`SHADOW_LABEL_IRRADIANCE` and
    :data:`CLOUD_LABEL_FRACTION` instead of direct sunlight and cover at 0.5.
    """
    cls = ground.astype(np.uint8, copy=True)
    if irradiance is None:
        cls[sunlit <= 0.5] = 3
    else:
        cls[irradiance <= SHADOW_LABEL_IRRADIANCE] = 3
    cls[cirrus >= CIRRUS_CLASS_MIN] = 10
    cloud = alpha >= (0.5 if irradiance is None else CLOUD_LABEL_FRACTION)
    cls[cloud] = np.where(thick[cloud], 9, 8)
    cls[saturated] = 1
    cls[nodata] = 0
    return cls


def _majority_2x2(ground10: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Ground class of 20 m pixels: the most frequent of the four 10 m classes (ties: snow,
    water, vegetation, not vegetated)."""
    r, c = ground10.shape
    blocks = ground10.reshape(r // 2, 2, c // 2, 2)
    order = np.array([11, 6, 4, 5], dtype=np.uint8)
    counts = np.stack([(blocks == k).sum(axis=(1, 3)) for k in order])
    return np.asarray(order[np.argmax(counts, axis=0)], dtype=np.uint8)


def _repeat2(a: NDArray[Any]) -> NDArray[Any]:
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


# ---------------------------------------------------------------------------- the scene


class _Scene:
    """Everything decided before the strips are streamed."""

    def __init__(self, config: SynthConfig, acq: Acquisition) -> None:
        self.config = config
        self.acq = acq
        self.lut = load_lut(config.lut)
        self.ranges = LutRanges.of(self.lut)
        self.grid = config.grid
        self.n = config.size
        self.extent = self.n * 10.0
        seed = config.seed
        r = self.ranges
        if not r.ozone[0] <= config.ozone <= r.ozone[1]:
            raise ConfigurationError(f"--ozone {config.ozone}: outside the LUT range {r.ozone}")
        if config.aot > r.aot[1] or config.wv > r.water_vapour[1]:
            raise ConfigurationError(
                f"--aot {config.aot} / --wv {config.wv}: the LUT {self.lut.id} covers AOT up to {r.aot[1]} "
                f"and water vapour up to {r.water_vapour[1]} cm"
            )

        # Sun: real solar position at the 5 km nodes.
        g = self.grid
        n_ang = geo.angle_grid_shape(self.extent)
        xs, ys = geo.node_coordinates(g.ulx, g.uly, n_ang)
        lon, lat = utm_to_lonlat(xs, ys, g.zone, g.south)
        self.sun_zen, self.sun_az = geo.sun_grid(lon, lat, acq.sensing_time)
        if float(np.max(self.sun_zen)) > r.sza[1]:
            raise ConfigurationError(
                f"sun zenith reaches {np.max(self.sun_zen):.1f} deg on {acq.sensing_time:%Y-%m-%d} over T{g.tile_id}, "
                f"beyond the LUT's {r.sza[1]:g} deg: choose another date or tile"
            )
        self.mean_sun = (float(np.mean(self.sun_zen)), float(circular_mean(self.sun_az)))

        # Swath and detectors.
        rng = np.random.default_rng([seed, 0x5A])
        heading = geo.ground_track_heading(acq.centre_lat)
        h = math.radians(heading)
        half_cross = self.extent / 2.0 * (abs(math.cos(h)) + abs(math.sin(h))) / 1000.0
        xc, yc = g.ulx + self.extent / 2.0, g.uly - self.extent / 2.0
        if config.nodata_edge:
            side = float(rng.choice([-1.0, 1.0]))
            c0 = side * (geo.SWATH_KM / 2.0 - float(rng.uniform(0.35, 0.75)) * half_cross)
        else:
            lim = max(0.0, geo.SWATH_KM / 2.0 - half_cross - 2.0)
            c0 = float(rng.uniform(-lim, lim))
        self.swath = geo.Swath(heading_deg=heading, centre_x=xc, centre_y=yc, centre_cross_km=c0)
        self.view: dict[str, dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]]] = {}
        self.view_merged: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
        self.mean_view: dict[str, tuple[float, float]] = {}
        for band in BANDS:
            grids = self.swath.detector_grids(band, xs, ys)
            self.view[band] = grids
            self.view_merged[band] = geo.merged_grid(grids)
            self.mean_view[band] = geo.mean_view_angles(grids)

        # Relief (20 m) and its normalised 60 m version for the land cover.
        n60 = self.n // 6
        self.dem20: NDArray[np.float32] | None = None
        elev_norm60: NDArray[np.float32] | None = None
        if config.dem:
            f = fractal_field(
                (n60, n60), (1500.0 / 60, 5000.0 / 60, 15000.0 / 60), (0.2, 0.35, 0.45), field_rng(seed, "dem")
            )
            # Unit-variance field to [0, 1]: the same relief statistics at any tile size.
            zn = np.clip((f + 2.5) / 5.0, 0.0, 1.0) ** 1.5
            z60 = config.elevation + _RELIEF_KM * zn
            z20 = ndimage.zoom(z60, 3, order=3, mode="nearest", grid_mode=True)
            self.dem20 = np.clip(z20, r.elevation[0], r.elevation[1]).astype(np.float32)
            elev_norm60 = zn.astype(np.float32)
        self.z60 = (
            block_mean(self.dem20, 3)
            if self.dem20 is not None
            else np.full((n60, n60), np.clip(config.elevation, *r.elevation), dtype=np.float32)
        )

        # Aerosol and water vapour: smooth log-normal fields decreasing with height,
        # scaled to the requested tile means and kept inside the LUT.
        corr = _FIELD_CORR_M / 60.0
        a = np.exp(_AOT_SIGMA * fractal_field((n60, n60), (corr,), (1.0,), field_rng(seed, "aot")))
        w = np.exp(_WV_SIGMA * fractal_field((n60, n60), (corr,), (1.0,), field_rng(seed, "wv")))
        # a and w are the columns a sea-level ground would have: the column above a
        # ground at z is a exp(-z / H). Scale so that the tile means over the ground are
        # the requested ones.
        a = a * config.aot / float(np.mean(a * np.exp(-self.z60 / AEROSOL_SCALE_HEIGHT_KM)))
        w = w * config.wv / float(np.mean(w * np.exp(-self.z60 / VAPOUR_SCALE_HEIGHT_KM)))
        self.aot0_60 = a.astype(np.float32)
        self.wv0_60 = w.astype(np.float32)
        self.aot60 = self.aot_at(self.aot0_60, self.z60)
        self.wv60 = self.wv_at(self.wv0_60, self.z60)

        # Surface.
        self.source = SourceSurface(config.surface, self.n) if config.surface else None
        self.landscape = None if self.source else make_landscape(seed, self.n, config.snow, elev_norm60)

        # Clouds, with a margin wide enough for the longest shadow.
        max_sza = float(np.max(self.sun_zen))
        top_km = config.cloud_heights[1]
        reach_km = min(_MAX_SHADOW_KM, top_km * (math.tan(math.radians(max_sza)) + math.tan(math.radians(12.0))))
        margin = math.ceil(reach_km * 1000.0 / 60.0) if config.cloud_cover > 0 else 0
        heights = (config.cloud_heights[0] * 1000.0, config.cloud_heights[1] * 1000.0)
        self.physical = config.cloud_model == "physical"
        self.clouds: CloudObjects = make_clouds(
            seed, self.n, config.cloud_cover, margin, heights, physical=self.physical
        )
        self._cloud_geometry()
        self.sky_occlusion60: NDArray[np.float64] | None = None
        if self.physical and self.clouds.count:
            cl = self.clouds
            alpha60 = np.clip((cl.density - cl.threshold) / cl.edge_width + 0.5, 0.0, 1.0) * (cl.labels > 0)
            self.sky_occlusion60 = sky_occlusion(alpha60, cl.pixel_tau(cl.labels, alpha60), 60.0)
        self.cirrus: Cirrus | None = make_cirrus(seed, self.n, config.cirrus) if config.cirrus > 0 else None
        self._cirrus_factors()

        # LUT terms at the nodes, per band.
        self.term_grids: dict[str, TermGrid] = {}
        self._node_terms()

        sat = np.random.default_rng([seed, 0x5A7]).integers(0, self.n, size=(config.saturated, 2))
        self.saturated = sat
        # Flagged only in the quality masks (their own streams: other options keep their bytes).
        self.defective = np.random.default_rng([seed, 0xDEF]).integers(0, self.n, size=(config.defective, 2))
        self.lost_packets = np.random.default_rng([seed, 0x1057]).integers(0, self.n, size=(config.lost_packets, 2))

    def aot_at(self, aot0: NDArray[np.floating], z_km: NDArray[np.floating] | float) -> NDArray[np.float32]:
        """AOT above grounds at ``z_km`` from the sea-level field, inside the LUT's range."""
        a = np.clip(aot0 * np.exp(-np.asarray(z_km) / AEROSOL_SCALE_HEIGHT_KM), *self.ranges.aot)
        return np.asarray(a, dtype=np.float32)

    def wv_at(self, wv0: NDArray[np.floating], z_km: NDArray[np.floating] | float) -> NDArray[np.float32]:
        """Water vapour above grounds at ``z_km`` from the sea-level field, inside the LUT's range."""
        w = np.clip(wv0 * np.exp(-np.asarray(z_km) / VAPOUR_SCALE_HEIGHT_KM), *self.ranges.water_vapour)
        return np.asarray(w, dtype=np.float32)

    # -- clouds -------------------------------------------------------------------------

    def _cloud_geometry(self) -> None:
        cl = self.clouds
        cfg = self.config
        east, south = cl.centroid_m[:, 0], cl.centroid_m[:, 1]
        y = np.clip(south, 0.0, self.extent)
        x = np.clip(east, 0.0, self.extent)
        sza, saa = _points_angles(self.sun_zen, self.sun_az, y, x)
        ground = _field_points(self.z60, y, x, 60.0)
        # Clouds stand at least 500 m above the ground.
        cl.height_m[1:] = np.maximum(cl.height_m[1:], ground[1:] * 1000.0 + 500.0)
        aot = self.aot_at(_field_points(self.aot0_60, y, x, 60.0), ground).astype(np.float64)
        wv = self.wv_at(_field_points(self.wv0_60, y, x, 60.0), ground).astype(np.float64)
        ve = np.zeros_like(x)
        vn = np.zeros_like(x)
        self.cloud_terms: dict[str, AtmosphericTerms] = {}
        for band in BANDS:
            vza, vaa = _points_angles(*self.view_merged[band], y, x)
            tv = np.tan(np.radians(vza))
            ve += tv * np.sin(np.radians(vaa)) / len(BANDS)
            vn += tv * np.cos(np.radians(vaa)) / len(BANDS)
            self.cloud_terms[band] = terms_above(
                self.lut,
                self.ranges,
                cfg.spacecraft,
                band,
                cfg.aerosol,
                height_km=cl.height_m / 1000.0,
                ground_km=ground,
                sza=np.clip(sza, *self.ranges.sza),
                saa=saa,
                vza=np.clip(vza, *self.ranges.vza),
                vaa=vaa,
                aot_ground=aot,
                wv_ground=wv,
                ozone=cfg.ozone,
            )
        # The cloud's own parallax is that of the mean line of sight of the bands.
        vza_eff = np.degrees(np.arctan(np.hypot(ve, vn)))
        vaa_eff = np.mod(np.degrees(np.arctan2(ve, vn)), 360.0)
        se, sn = geo.shadow_offset(cl.height_m, sza, saa, vza_eff, vaa_eff)
        self.shadow_east = se
        self.shadow_south = -sn
        self.cloud_mu = np.cos(np.radians(sza))

    def _cirrus_factors(self) -> None:
        """Cirrus reflectance added in each band per unit of B10 cirrus reflectance."""
        self.cirrus_factor = {b: 0.0 for b in BANDS}
        if self.cirrus is None:
            return
        cfg = self.config
        h_km = self.cirrus.height_m / 1000.0
        wv_above = float(np.mean(self.wv60)) * math.exp(-h_km / VAPOUR_SCALE_HEIGHT_KM)
        gas = {}
        for band in BANDS:
            t = self.lut.terms(
                cfg.spacecraft,
                band,
                cfg.aerosol,
                min(self.mean_sun[0], self.ranges.sza[1]),
                min(self.mean_view[band][0], self.ranges.vza[1]),
                90.0,
                self.ranges.aot[0],
                self.ranges.elevation[1],
                np.clip(wv_above, *self.ranges.water_vapour),
                cfg.ozone,
            )
            gas[band] = float(np.asarray(t.gas))
        ref = CIRRUS_SPECTRAL_FACTOR["B10"] * gas["B10"]
        self.cirrus_factor = {b: CIRRUS_SPECTRAL_FACTOR[b] * gas[b] / ref for b in BANDS}

    # -- terms --------------------------------------------------------------------------

    def _node_terms(self) -> None:
        cfg, r = self.config, self.ranges
        n_nodes = math.ceil(self.extent / NODE_STEP_M) + 1
        pos = np.arange(n_nodes, dtype=np.float64) * NODE_STEP_M
        sza, saa = angles_at(self.sun_zen, self.sun_az, pos, pos)
        g60 = pos / 60.0 - 0.5
        relief = self.dem20 is not None
        if relief:
            # Node elevation: the mean over the node's cell, so pixels depart little from it.
            k = round(NODE_STEP_M / 60.0)
            zsm = ndimage.uniform_filter(self.z60.astype(np.float64), size=k, mode="nearest")
            z = interp_rows_cols(zsm, g60, g60).astype(np.float64)
        else:
            z = np.full(sza.shape, float(self.z60[0, 0]))
        aot = self.aot_at(interp_rows_cols(self.aot0_60, g60, g60), z).astype(np.float64)
        wv = self.wv_at(interp_rows_cols(self.wv0_60, g60, g60), z).astype(np.float64)
        for band in BANDS:
            vza, vaa = angles_at(*self.view_merged[band], pos, pos)
            self.term_grids[band] = term_grid(
                self.lut,
                cfg.spacecraft,
                band,
                cfg.aerosol,
                sza=np.clip(sza, *r.sza),
                saa=saa,
                vza=np.clip(vza, *r.vza),
                vaa=vaa,
                aot=aot,
                wv=wv,
                z_km=z,
                ozone=cfg.ozone,
                relief=relief,
            )


# ---------------------------------------------------------------------------- strips


@dataclass
class _StripState:
    """Per-strip atmospheric state at 10 m (rows r0..r1)."""

    alpha: NDArray[np.float32]
    label: NDArray[np.int32]
    sunlit: NDArray[np.float32]
    sunlit_total: NDArray[np.float32]
    """Physical clouds: direct and cloud-transmitted sunlight (``sunlit`` otherwise)."""
    sky: NDArray[np.float32]
    """Physical clouds: share of the sky light the clouds leave (1 otherwise)."""
    cirrus: NDArray[np.float32]
    nodata10: NDArray[np.bool_]
    saturated10: NDArray[np.bool_]


def _shadow(scene: _Scene, r0: int, r1: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Direct sunlight reaching the ground through the clouds, 10 m rows ``r0..r1``, and
    (physical clouds) direct plus transmitted sunlight, averaged over the sun's disc."""
    n = scene.n
    cl = scene.clouds
    sunlit = np.ones((r1 - r0, n), dtype=np.float32)
    total = np.ones((r1 - r0, n), dtype=np.float32)
    if cl.count == 0:
        return sunlit, total
    for k in range(1, cl.count + 1):
        b0, b1, c0, c1 = cl.bbox[k]
        se, ss = scene.shadow_east[k], scene.shadow_south[k]
        mu = max(scene.cloud_mu[k], 0.05)
        # Penumbra: the sun's disc seen from the ground spans this much of the cloud edge.
        rp = cl.height_m[k] / mu * SUN_ANGULAR_RADIUS_RAD if cl.physical else 0.0
        # Object bounding box in tile metres, shifted onto its shadow.
        y0 = (b0 - cl.margin) * 60.0 + ss - rp
        y1 = (b1 - cl.margin) * 60.0 + ss + rp
        x0 = (c0 - cl.margin) * 60.0 + se - rp
        x1 = (c1 - cl.margin) * 60.0 + se + rp
        ra, rb = max(r0, math.floor(y0 / 10.0)), min(r1, math.ceil(y1 / 10.0))
        ca, cb = max(0, math.floor(x0 / 10.0)), min(n, math.ceil(x1 / 10.0))
        if ra >= rb or ca >= cb:
            continue
        ys = (np.arange(ra, rb) + 0.5) * 10.0 - ss
        xs = (np.arange(ca, cb) + 0.5) * 10.0 - se
        offsets = ((0.0, 0.0), (rp, 0.0), (-rp, 0.0), (0.0, rp), (0.0, -rp)) if rp > 0 else ((0.0, 0.0),)
        lost_direct = np.zeros((rb - ra, cb - ca))
        lost_total = np.zeros((rb - ra, cb - ca))
        for dy, dx in offsets:
            gy, gx = (ys + dy) / 60.0 - 0.5 + cl.margin, (xs + dx) / 60.0 - 0.5 + cl.margin
            alpha = (cl.alpha_at(gy, gx) * (cl.label_at(gy, gx) == k)).astype(np.float64)
            tau = cl.pixel_tau(np.full(alpha.shape, k), alpha)
            lost_direct += alpha * (1.0 - np.exp(-tau / mu))
            if cl.physical:
                lost_total += alpha * (1.0 - cloud_transmission(tau, mu))
        if not lost_direct.any():
            continue
        sunlit[ra - r0 : rb - r0, ca:cb] *= (1.0 - lost_direct / len(offsets)).astype(np.float32)
        if cl.physical:
            total[ra - r0 : rb - r0, ca:cb] *= (1.0 - lost_total / len(offsets)).astype(np.float32)
    return sunlit, (total if cl.physical else sunlit)


def _strip_state(scene: _Scene, r0: int, r1: int) -> _StripState:
    n = scene.n
    cl = scene.clouds
    gy = pixel_coords(r0, r1, 10.0, 60.0, cl.margin)
    gx = pixel_coords(0, n, 10.0, 60.0, cl.margin)
    label = cl.label_at(gy, gx)
    alpha = np.where(label > 0, cl.alpha_at(gy, gx), 0.0).astype(np.float32)
    sunlit, sunlit_total = _shadow(scene, r0, r1)
    if scene.sky_occlusion60 is not None:
        sky = (1.0 - interp_rows_cols(scene.sky_occlusion60, gy, gx)).astype(np.float32)
    else:
        sky = np.ones((r1 - r0, n), dtype=np.float32)
    if scene.cirrus is not None:
        cirrus = scene.cirrus.rho_b10(pixel_coords(r0, r1, 10.0, 60.0), pixel_coords(0, n, 10.0, 60.0))
    else:
        cirrus = np.zeros((r1 - r0, n), dtype=np.float32)
    g = scene.grid
    if scene.config.nodata_edge:
        ys = g.uly - (np.arange(r0, r1) + 0.5) * 10.0
        xs = g.ulx + (np.arange(n) + 0.5) * 10.0
        nodata10 = ~scene.swath.in_swath(xs[None, :], ys[:, None])
    else:
        nodata10 = np.zeros((r1 - r0, n), dtype=bool)
    sat = np.zeros((r1 - r0, n), dtype=bool)
    for rr, cc in scene.saturated:
        if r0 <= rr < r1:
            sat[rr - r0, cc] = True
    return _StripState(
        alpha=alpha,
        label=label,
        sunlit=sunlit,
        sunlit_total=sunlit_total,
        sky=sky,
        cirrus=cirrus,
        nodata10=nodata10,
        saturated10=sat,
    )


def _nodata_native(scene: _Scene, r0: int, r1: int, res: int) -> NDArray[np.bool_]:
    if not scene.config.nodata_edge:
        return np.zeros(((r1 - r0) * 10 // res, scene.n * 10 // res), dtype=bool)
    g = scene.grid
    ys = g.uly - (np.arange(r0 * 10 // res, r1 * 10 // res) + 0.5) * res
    xs = g.ulx + (np.arange(scene.n * 10 // res) + 0.5) * res
    return ~scene.swath.in_swath(xs[None, :], ys[:, None])


@dataclass
class _Relief:
    """Illumination of the strip's 20 m pixels by the relief."""

    cos_i20: NDArray[np.float32]
    sky20: NDArray[np.float32]
    cos_sza20: NDArray[np.float32]
    z20: NDArray[np.float32]


def _relief(scene: _Scene, r0: int, r1: int) -> _Relief | None:
    if scene.dem20 is None:
        return None
    a, b = r0 // 2, r1 // 2
    dem = scene.dem20
    lo, hi = max(0, a - 1), min(dem.shape[0], b + 1)
    z = dem[lo:hi].astype(np.float64) * 1000.0
    dz_row, dz_col = (np.asarray(g, dtype=np.float64) for g in np.gradient(z, 20.0))
    zx = dz_col[a - lo : a - lo + (b - a)]
    zn = -dz_row[a - lo : a - lo + (b - a)]
    pos_y = (np.arange(a, b, dtype=np.float64) + 0.5) * 20.0
    pos_x = (np.arange(dem.shape[1], dtype=np.float64) + 0.5) * 20.0
    sza, saa = angles_at(scene.sun_zen, scene.sun_az, pos_y, pos_x)
    s, sa = np.radians(sza), np.radians(saa)
    norm = np.sqrt(1.0 + zx**2 + zn**2)
    cos_i = (-zx * np.sin(s) * np.sin(sa) - zn * np.sin(s) * np.cos(sa) + np.cos(s)) / norm
    sky = 0.5 * (1.0 + 1.0 / norm)
    return _Relief(
        cos_i20=cos_i.astype(np.float32),
        sky20=sky.astype(np.float32),
        cos_sza20=np.cos(s).astype(np.float32),
        z20=dem[a:b],
    )


# ---------------------------------------------------------------------------- main


def synthesize(
    config: SynthConfig, output_dir: str | Path, *, overwrite: bool = False, progress: ProgressFn | None = None
) -> SynthResult:
    """Write a synthetic Level-1C SAFE and its truth into ``output_dir``.

    Parameters
    ----------
    config
        Scene options.
    output_dir
        Folder receiving ``{product_id}.SAFE`` and ``{product_id}.truth``; created if
        needed. Both are built in a hidden sibling folder and moved into place at the
        end, so an interrupted run leaves no half product.
    overwrite
        Replace a product of the same name.
    progress
        Called as ``progress(step, done, total)``.

    Returns
    -------
    SynthResult

    Raises
    ------
    ConfigurationError
        For options the LUT or the geometry cannot honour.
    OutputError
        If the product exists (without ``overwrite``) or cannot be written.
    """
    watch = Stopwatch()
    acq = acquisition(config)
    out = Path(output_dir)
    safe_final = out / f"{acq.product_id}.SAFE"
    truth_final = out / f"{acq.product_id}.truth"
    if (safe_final.exists() or truth_final.exists()) and not overwrite:
        raise OutputError(f"{safe_final} already exists (use --overwrite to replace it)")
    scene = _Scene(config, acq)
    try:
        out.mkdir(parents=True, exist_ok=True)
        work = out / f".{acq.product_id}.partial"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder ({exc})") from exc
    try:
        result = _write(scene, work, progress)
        for final in (safe_final, truth_final):
            if final.exists():
                shutil.rmtree(final)
        (work / safe_final.name).rename(safe_final)
        (work / truth_final.name).rename(truth_final)
        shutil.rmtree(work)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the product ({exc})") from exc
    seconds = watch.elapsed()
    return SynthResult(
        product=safe_final,
        truth=truth_final,
        product_id=acq.product_id,
        seconds=seconds,
        class_percent=result["class_percent"],
        cloudy_percent=result["cloudy_percent"],
    )


def _write(scene: _Scene, work: Path, progress: ProgressFn | None) -> dict[str, Any]:
    cfg, acq, g, n = scene.config, scene.acq, scene.grid, scene.n
    safe = work / f"{acq.product_id}.SAFE"
    granule = f"GRANULE/{acq.granule_dir}"
    img_dir = safe / granule / "IMG_DATA"
    img_dir.mkdir(parents=True)
    (safe / granule / "QI_DATA").mkdir()
    (safe / "DATASTRIP" / acq.datastrip_dir).mkdir(parents=True)
    scratch = work / "scratch"
    scratch.mkdir()
    truth_dir = work / f"{acq.product_id}.truth"
    truth_names = (
        ["SR_10m", "SR_20m", "SCL_10m", "SCL_20m", "AOT_20m", "WVP_20m", "CTH_20m", "CLD_20m", "CIR_20m", "SUN_20m"]
        + (["DEM_20m"] if scene.dem20 is not None else [])
        + (["IRR_20m", "EDG_20m"] if scene.physical else [])
    )
    size20 = 2 * round(cfg.adjacency_km * 1000.0 / 20.0 / 2.0) + 1
    halo10 = 2 * (size20 // 2)
    strip = min(STRIP_ROWS, n)
    starts = list(range(0, n, strip))
    counts = np.zeros(12, dtype=np.int64)
    with gdal_env():
        truth = TruthWriter(truth_dir, g, n, truth_names)
        band_scratch = {
            b: open_scratch(scratch / f"{b}.tif", n * 10 // BAND_RESOLUTION[b], BAND_RESOLUTION[b], g, "uint16")
            for b in BANDS
        }
        tci_scratch = open_scratch(scratch / "TCI.tif", n, 10, g, "uint8", count=3)
        try:
            for i, r0 in enumerate(starts):
                r1 = min(n, r0 + strip)
                _process_strip(scene, r0, r1, halo10, size20, truth, band_scratch, tci_scratch, counts)
                if progress:
                    progress("scene", i + 1, len(starts))
        finally:
            truth.close()
            for ds in band_scratch.values():
                ds.close()
            tci_scratch.close()

    # JPEG 2000 encoding, one band per job (joblib: threads, or the Dask cluster if one is active).
    files = [(scratch / f"{b}.tif", img_dir / f"{acq.image_prefix}_{b}.jp2") for b in BANDS]
    files.append((scratch / "TCI.tif", img_dir / f"{acq.image_prefix}_TCI.jp2"))
    map_parallel(encode_jp2, files, n_jobs=2)
    if progress:
        progress("encode", len(files), len(files) + 1)
    pvi_rel = f"{granule}/QI_DATA/{acq.image_prefix}_PVI.jp2"
    write_preview(scratch / "TCI.tif", safe / pvi_rel, n)
    mask_files = _write_masks(scene, safe, granule, scratch, truth_dir) if cfg.baseline_value >= 4.0 else []
    if progress:
        progress("encode", len(files) + 1, len(files) + 1)
    shutil.rmtree(scratch)

    valid = int(counts[1:].sum())
    total = int(counts.sum())
    cloudy = 100.0 * float(counts[8] + counts[9] + counts[10]) / valid if valid else 0.0
    snow = 100.0 * float(counts[11]) / valid if valid else 0.0
    class_percent = {int(k): round(100.0 * float(counts[k]) / total, 6) for k in CLASS_CODES}

    image_files = [f"{granule}/IMG_DATA/{acq.image_prefix}_{b}" for b in BANDS] + [
        f"{granule}/IMG_DATA/{acq.image_prefix}_TCI"
    ]
    meta = ProductMetadata(
        config=cfg,
        acq=acq,
        grid=g,
        size=n,
        sun=(scene.sun_zen, scene.sun_az),
        mean_sun=scene.mean_sun,
        view=scene.view,
        mean_view=scene.mean_view,
        u=reflectance_conversion_factor(acq.sensing_time),
        cloudy_percent=cloudy,
        snow_percent=snow,
        footprint_latlon=_footprint(scene),
        image_files=image_files,
        preview_file=pvi_rel,
        mask_files=mask_files,
    )
    (safe / granule / "MTD_TL.xml").write_bytes(tile_xml(meta))
    ds_rel = f"DATASTRIP/{acq.datastrip_dir}/MTD_DS.xml"
    (safe / ds_rel).write_bytes(datastrip_xml(meta))
    (safe / "MTD_MSIL1C.xml").write_bytes(user_product_xml(meta))
    rels = ["MTD_MSIL1C.xml", ds_rel, f"{granule}/MTD_TL.xml"] + [f"{f}.jp2" for f in image_files] + [pvi_rel]
    if cfg.aux_data:
        aux = write_aux_data(safe / granule / "AUX_DATA", g, n * 10.0, {"aot": scene.aot60, "wv": scene.wv60},
                             ozone_cm_atm=cfg.ozone, aerosol=cfg.aerosol, reference_time=acq.sensing_time)  # fmt: skip
        rels += [p.relative_to(safe).as_posix() for p in aux]
    rels += mask_files
    algorithm = "MD5" if cfg.baseline_value < 3.0 else "SHA3-256"
    listing = [(rel, (safe / rel).stat().st_size, file_checksum(safe / rel, algorithm)) for rel in rels]
    (safe / "manifest.safe").write_bytes(manifest_xml(meta, listing))

    _write_truth_json(scene, truth_dir, meta, counts, class_percent, cloudy, snow)
    return {"class_percent": class_percent, "cloudy_percent": cloudy}


#: ``MSK_CLASSI_B00`` layers (1-based) and the truth classes (20 m) each flags where they hold most of a 60 m pixel.
_CLASSI_TRUTH = {1: (8, 9), 2: (10,), 3: (11,)}


def _native_points(points: NDArray[np.integer], res: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Unique native pixels (rows, cols) of a band holding the given 10 m pixels."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    native = np.unique(np.asarray(points, dtype=np.int64) // (res // 10), axis=0)
    return native[:, 0], native[:, 1]


def _write_masks(scene: _Scene, safe: Path, granule: str, scratch: Path, truth_dir: Path) -> list[str]:
    """``MSK_QUALIT_Bxx.jp2`` of every band (layers 3, 5 and 8 at the lost, defective and saturated
    pixels) and ``MSK_CLASSI_B00.jp2`` from the truth classes, as baseline 04.00 products carry them."""
    import rasterio

    g, n = scene.grid, scene.n
    scratch.mkdir(exist_ok=True)
    rels = []
    for band in BANDS:
        res = BAND_RESOLUTION[band]
        flags = {3: _native_points(scene.lost_packets, res), 5: _native_points(scene.defective, res),
                 8: _native_points(scene.saturated, res)}  # fmt: skip
        rel = f"{granule}/QI_DATA/MSK_QUALIT_{band}.jp2"
        write_mask(scratch / f"q{band}.tif", safe / rel, n * 10 // res, res, g, 8, flags)
        rels.append(rel)
    with rasterio.open(truth_dir / "SCL_20m.tif") as ds:
        scl20 = ds.read(1)
    m = scl20.shape[0] // 3
    blocks = scl20[: m * 3, : m * 3].reshape(m, 3, m, 3)
    classi: dict[int, tuple[NDArray[np.intp], NDArray[np.intp]]] = {}
    for layer, codes in _CLASSI_TRUTH.items():
        rows, cols = np.nonzero(np.isin(blocks, codes).sum(axis=(1, 3)) >= 5)
        classi[layer] = (rows, cols)
    rel = f"{granule}/QI_DATA/MSK_CLASSI_B00.jp2"
    write_mask(scratch / "classi.tif", safe / rel, n // 6, 60, g, 3, classi)
    return [*rels, rel]


def _footprint(scene: _Scene) -> list[tuple[float, float]]:
    g = scene.grid
    e = scene.extent
    corners = [(g.ulx, g.uly), (g.ulx + e, g.uly), (g.ulx + e, g.uly - e), (g.ulx, g.uly - e)]
    if scene.config.nodata_edge:
        sw = scene.swath
        side = 1.0 if sw.centre_cross_km > 0 else -1.0

        def inside(x: float, y: float) -> float:
            return geo.SWATH_KM / 2.0 - side * float(sw.cross_track_km(x, y))

        corners = _clip_polygon(corners, inside)
    xs = np.array([p[0] for p in corners])
    ys = np.array([p[1] for p in corners])
    lon, lat = utm_to_lonlat(xs, ys, g.zone, g.south)
    pts = [(round(float(la), 12), round(float(lo), 12)) for la, lo in zip(lat, lon, strict=True)]
    return pts + [pts[0]]


def _process_strip(
    scene: _Scene,
    r0: int,
    r1: int,
    halo10: int,
    size20: int,
    truth: TruthWriter,
    band_scratch: dict[str, Any],
    tci_scratch: Any,
    counts: NDArray[np.int64],
) -> None:
    from rasterio.windows import Window

    cfg, n = scene.config, scene.n
    h0, h1 = max(0, r0 - halo10), min(n, r1 + halo10)
    surface = scene.source.sample(h0, h1) if scene.source is not None else scene.landscape.sample(h0, h1)  # type: ignore[union-attr]
    keep10 = slice(r0 - h0, r1 - h0)
    keep20 = slice((r0 - h0) // 2, (r1 - h0) // 2)
    st = _strip_state(scene, r0, r1)
    relief = _relief(scene, r0, r1)
    cl = scene.clouds

    # ---- truth maps
    ground10 = surface.classes[keep10]
    thick10 = cl.pixel_tau(st.label, st.alpha) >= THICK_CLOUD_TAU
    physical = scene.physical
    irr10 = (
        (NIR_DIRECT_SHARE * st.sunlit_total + (1.0 - NIR_DIRECT_SHARE) * st.sky).astype(np.float32)
        if physical
        else None
    )
    scl10 = _classify(ground10, st.alpha, thick10, st.cirrus, st.sunlit, st.nodata10, st.saturated10, irr10)
    a, b = r0 // 2, r1 // 2
    alpha20 = block_mean(st.alpha, 2)
    lab_blocks = st.label.reshape(b - a, 2, n // 2, 2)
    alpha_blocks = st.alpha.reshape(b - a, 2, n // 2, 2)
    pick = alpha_blocks.transpose(0, 2, 1, 3).reshape(b - a, n // 2, 4).argmax(axis=2)
    label20 = np.take_along_axis(lab_blocks.transpose(0, 2, 1, 3).reshape(b - a, n // 2, 4), pick[..., None], axis=2)[
        ..., 0
    ]
    label20 = np.where(alpha20 > 0, label20, 0)
    cirrus20 = block_mean(st.cirrus, 2)
    sunlit20 = block_mean(st.sunlit, 2)
    nodata20 = _nodata_native(scene, r0, r1, 20)
    sat20 = np.asarray(st.saturated10.reshape(b - a, 2, n // 2, 2).any(axis=(1, 3)), dtype=bool)
    irr20 = block_mean(irr10, 2) if irr10 is not None else None
    scl20 = _classify(
        _majority_2x2(ground10),
        alpha20,
        cl.pixel_tau(label20, alpha20) >= THICK_CLOUD_TAU,
        cirrus20,
        sunlit20,
        nodata20,
        sat20,
        irr20,
    )
    counts += np.bincount(scl20.ravel(), minlength=12)[:12]
    if irr20 is not None:
        truth.write("IRR_20m", a, irr20)
        truth.write("EDG_20m", a, (np.isin(scl20, (8, 9)) & (alpha20 < CLOUD_EDGE_FRACTION)).astype(np.uint8))
    truth.write("SCL_10m", r0, scl10)
    truth.write("SCL_20m", a, scl20)
    truth.write("CLD_20m", a, alpha20)
    truth.write("SUN_20m", a, sunlit20)
    truth.write("CIR_20m", a, cirrus20)
    truth.write("CTH_20m", a, np.where(label20 > 0, cl.height_m[label20], 0.0).astype(np.float32))
    z20 = relief.z20 if relief is not None else np.full((b - a, n // 2), float(scene.z60[0, 0]), dtype=np.float32)
    gy20 = pixel_coords(a, b, 20.0, 60.0)
    gx20 = pixel_coords(0, n // 2, 20.0, 60.0)
    # AOT and water vapour above each pixel's own elevation.
    truth.write("AOT_20m", a, scene.aot_at(interp_rows_cols(scene.aot0_60, gy20, gx20), z20))
    truth.write("WVP_20m", a, scene.wv_at(interp_rows_cols(scene.wv0_60, gy20, gx20), z20))
    if relief is not None:
        truth.write("DEM_20m", a, relief.z20 * 1000.0)

    # ---- radiometry, band by band
    cloud_px = st.alpha > 0
    obj = st.label[cloud_px]
    alpha_c = st.alpha[cloud_px].astype(np.float64)
    r_cloud = cloud_reflectance(cl.pixel_tau(obj, alpha_c))
    ice = cl.is_ice(obj)
    transmitted = (st.sunlit_total - st.sunlit) if physical else None
    any_shadow = bool((st.sunlit < 1.0).any())
    nodata_native = {res: _nodata_native(scene, r0, r1, res) for res in (10, 20, 60)}
    tci_dn: dict[str, NDArray[np.uint16]] = {}
    for bi, band in enumerate(BANDS):
        res = BAND_RESOLUTION[band]
        f = res // 10
        rho10_h = surface.band(bi)
        rho20_h = block_mean(rho10_h, 2)
        bg20 = box_mean_rows(rho20_h, size20, h0 == 0, h1 == n, keep20)
        truth.write("SR_20m", a, rho20_h[keep20], band=bi + 1)
        if band in _TEN_M_BANDS:
            truth.write("SR_10m", r0, rho10_h[keep10], band=_TEN_M_BANDS.index(band) + 1)
        rho10 = rho10_h[keep10]
        # Terms are constant over each native pixel, and over 20 m for the 10 m bands
        # (they change by ~1e-7 over 10 m); fb is that block in 10 m sub-pixels.
        fb = max(2, f)
        rows_b, cols_b = (r1 - r0) // fb, n // fb
        bg = bg20 if fb == 2 else block_mean(bg20, 3)
        z_b = None if relief is None else (relief.z20 if fb == 2 else block_mean(relief.z20, 3))
        terms = scene.term_grids[band].at(r0 // fb, r1 // fb, cols_b, float(10 * fb), z_b)
        t4 = _terms4(terms)
        sub = (rows_b, fb, cols_b, fb)
        if relief is not None:
            cos_sza = (relief.cos_sza20 if fb == 2 else block_mean(relief.cos_sza20, 3))[:, None, :, None]
            cos_i = _repeat2(relief.cos_i20).reshape(sub)
            sky = _repeat2(relief.sky20).reshape(sub)
            if physical:
                e = irradiance_factor(t4, cos_sza, cos_i, st.sunlit.reshape(sub), sky * st.sky.reshape(sub))
            else:
                e = irradiance_factor(t4, cos_sza, cos_i, st.sunlit.reshape(sub), sky)
        elif physical:
            e = irradiance_factor(t4, 1.0, None, st.sunlit.reshape(sub), st.sky.reshape(sub))
        else:
            e = irradiance_factor(t4, 1.0, None, st.sunlit.reshape(sub) if any_shadow else 1.0, 1.0)
        if transmitted is not None:
            # Light the clouds transmit is diffuse: it reaches slopes as the sky light does.
            e = e + t4.t_down_dir * transmitted.reshape(sub) * (sky if relief is not None else 1.0)
        toa = toa_from_surface(rho10.reshape(sub), bg[:, None, :, None], t4, e)
        toa = np.broadcast_to(toa, sub).reshape(r1 - r0, n)
        if not toa.flags.writeable:
            toa = toa.copy()
        if cloud_px.any():
            rs = rho10[cloud_px].astype(np.float64)
            rc = r_cloud * np.where(ice, ICE_CLOUD_SPECTRAL_FACTOR[band], CLOUD_SPECTRAL_FACTOR[band])
            rho_eff = rc + (1.0 - r_cloud) ** 2 * rs / (1.0 - rc * rs)
            tc = _gather(scene.cloud_terms[band], obj)
            toa_cloud = toa_from_surface(rho_eff, rho_eff, tc, irradiance_factor(tc, 1.0))
            toa[cloud_px] = (1.0 - alpha_c) * toa[cloud_px] + alpha_c * toa_cloud
        if scene.cirrus is not None:
            toa += st.cirrus * scene.cirrus_factor[band]
        rows_nat, cols_nat = (r1 - r0) // f, n // f
        toa_nat = toa if f == 1 else toa.reshape(rows_nat, f, cols_nat, f).mean(axis=(1, 3))
        dn = np.clip(np.rint(toa_nat * 10000.0) - cfg.offset, 1, 65534).astype(np.uint16)
        dn[nodata_native[res]] = 0
        for rr, cc in scene.saturated:
            if r0 <= rr < r1 and not _nodata_native_point(scene, rr, cc, res):
                dn[(rr - r0) // f, cc // f] = 65535
        band_scratch[band].write(dn, 1, window=Window(0, r0 // f, cols_nat, rows_nat))
        if band in ("B02", "B03", "B04"):
            tci_dn[band] = dn

    # ---- true colour image: reflectance 0..0.2 -> 1..255, 0 for no data
    rgb = []
    for band in ("B04", "B03", "B02"):
        dn = tci_dn[band]
        rho = (dn.astype(np.float64) + cfg.offset) / 10000.0
        v = (1 + np.rint(np.clip(rho / 0.2, 0.0, 1.0) * 254.0)).astype(np.uint8)
        v[dn == 0] = 0
        rgb.append(v)
    tci_scratch.write(np.stack(rgb), window=Window(0, r0, n, r1 - r0))


def _nodata_native_point(scene: _Scene, row10: int, col10: int, res: int) -> bool:
    if not scene.config.nodata_edge:
        return False
    f = res // 10
    g = scene.grid
    y = g.uly - ((row10 // f) + 0.5) * res
    x = g.ulx + ((col10 // f) + 0.5) * res
    return not bool(scene.swath.in_swath(x, y))


def _write_truth_json(
    scene: _Scene,
    truth_dir: Path,
    meta: ProductMetadata,
    counts: NDArray[np.int64],
    class_percent: dict[int, float],
    cloudy: float,
    snow: float,
) -> None:
    cfg, acq = scene.config, scene.acq
    cl = scene.clouds
    content: dict[str, Any] = {
        "generator": f"sen2core {__version__} synth",
        "product_id": acq.product_id,
        "safe": f"../{acq.product_id}.SAFE",
        "options": cfg.as_dict(),
        "provenance": cfg.extra,
        "lut_id": scene.lut.id,
        "lut_ranges": {
            k: list(getattr(scene.ranges, k)) for k in ("sza", "vza", "aot", "elevation", "water_vapour", "ozone")
        },
        "tile": {
            "id": scene.grid.tile_id,
            "epsg": scene.grid.epsg,
            "ulx": scene.grid.ulx,
            "uly": scene.grid.uly,
            "size_10m": scene.n,
        },
        "acquisition": {
            "sensing_time": acq.sensing_time.isoformat().replace("+00:00", "Z"),
            "datatake_start": acq.datatake_start.isoformat().replace("+00:00", "Z"),
            "absolute_orbit": acq.absolute_orbit,
            "relative_orbit": acq.relative_orbit,
            "centre_lon": acq.centre_lon,
            "centre_lat": acq.centre_lat,
        },
        "radiometry": {
            "quantification_value": 10000,
            "radio_add_offset": cfg.offset,
            "u": meta.u,
            "dn": "round(10000 * toa) - RADIO_ADD_OFFSET, clipped to 1..65534; 0 no data; 65535 saturated",
        },
        "geometry": {
            "mean_sun_zenith": scene.mean_sun[0],
            "mean_sun_azimuth": scene.mean_sun[1],
            "mean_view": {b: list(v) for b, v in scene.mean_view.items()},
            "ground_track_heading_deg": scene.swath.heading_deg,
            "tile_centre_cross_track_km": scene.swath.centre_cross_km,
            "view_geometry": "per pixel: bilinear interpolation of the band's MTD_TL detector grids merged "
            "(mean where detectors overlap), as sen2core.io reads them",
        },
        "atmosphere": {
            "aerosol_model": cfg.aerosol,
            "ozone_cm_atm": cfg.ozone,
            "aot550_mean": float(np.mean(scene.aot60)),
            "water_vapour_mean_cm": float(np.mean(scene.wv60)),
            "aot550_range": [float(scene.aot60.min()), float(scene.aot60.max())],
            "water_vapour_range_cm": [float(scene.wv60.min()), float(scene.wv60.max())],
            "aerosol_scale_height_km": AEROSOL_SCALE_HEIGHT_KM,
            "vapour_scale_height_km": VAPOUR_SCALE_HEIGHT_KM,
            "lut_node_step_m": NODE_STEP_M,
        },
        "adjacency_km": cfg.adjacency_km,
        "adjacency_window_px_20m": 2 * round(cfg.adjacency_km * 1000.0 / 20.0 / 2.0) + 1,
        "adjacency": "rho_bg = uniform_filter(SR_20m, adjacency_window_px_20m, mode='reflect'); constant over each "
        "20 m pixel (10 m bands: repeated; 60 m bands: 3x3 mean)",
        "forward_model": "sen2core.kernels.rt.toa_from_surface with irradiance_factor; see "
        "sen2core.synthetic.generator",
        "clouds": {
            "count": cl.count,
            "cover_percent_requested": cfg.cloud_cover,
            "height_m_range": [float(cl.height_m[1:].min()), float(cl.height_m[1:].max())] if cl.count else None,
            "optical_thickness_range": [float(cl.tau[1:].min()), float(cl.tau[1:].max())] if cl.count else None,
            "reflectance": "R = 0.15 tau / (2 + 0.15 tau), times CLOUD_SPECTRAL_FACTOR",
            "spectral_factor": CLOUD_SPECTRAL_FACTOR,
            "model": cfg.cloud_model,
            "physical": None
            if not scene.physical
            else {
                "pixel_tau": "tau * alpha ** (5/3) (the cloud thins with its cover fraction at the edges)",
                "ice_from_height_m": ICE_CLOUD_MIN_HEIGHT_M,
                "ice_spectral_factor": ICE_CLOUD_SPECTRAL_FACTOR,
                "label_fraction": CLOUD_LABEL_FRACTION,
                "edge_fraction": CLOUD_EDGE_FRACTION,
                "shadow_label_irradiance": SHADOW_LABEL_IRRADIANCE,
                "nir_direct_share": NIR_DIRECT_SHARE,
                "penumbra": f"sun disc radius {SUN_ANGULAR_RADIUS_RAD} rad times height / cos(sza)",
            },
            "objects": [
                {
                    "id": k,
                    "height_m": float(cl.height_m[k]),
                    "tau": float(cl.tau[k]),
                    "centroid_east_m": float(cl.centroid_m[k, 0]),
                    "centroid_south_m": float(cl.centroid_m[k, 1]),
                    "shadow_offset_east_m": float(scene.shadow_east[k]),
                    "shadow_offset_south_m": float(scene.shadow_south[k]),
                }
                for k in range(1, cl.count + 1)
            ],
        },
        "cirrus": None
        if scene.cirrus is None
        else {
            "height_m": scene.cirrus.height_m,
            "b10_amplitude": scene.cirrus.amplitude,
            "factor_per_band": scene.cirrus_factor,
        },
        "surface": {"source": cfg.surface or "synthetic", "endmembers": ENDMEMBERS if cfg.surface is None else None},
        "class_codes": {str(k): v for k, v in CLASS_CODES.items()},
        "class_rules": _physical_class_rules()
        if scene.physical
        else {
            "0": "pixel centre outside the swath",
            "1": "saturated pixel (DN 65535 in every band)",
            "9": f"cloud cover fraction >= 0.5 and cloud optical thickness >= {THICK_CLOUD_TAU:g}",
            "8": f"cloud cover fraction >= 0.5 and optical thickness < {THICK_CLOUD_TAU:g}",
            "10": f"cirrus B10 reflectance >= {CIRRUS_CLASS_MIN:g} (and not cloud)",
            "3": "direct sunlight <= 50 % (cloud shadow; not cloud, not cirrus)",
            "11": "snow",
            "6": "water",
            "4": "green vegetation cover >= 0.5",
            "5": "other land (soil, sand, urban, senescent vegetation)",
            "20m": "atmospheric quantities averaged over the four 10 m pixels, ground class by majority",
        },
        "class_percent_20m": {str(k): v for k, v in class_percent.items()},
        "cloudy_pixel_percentage": cloudy,
        "snow_pixel_percentage": snow,
        "saturated_pixels_10m": [[int(r), int(c)] for r, c in scene.saturated],
        "defective_pixels_10m": [[int(r), int(c)] for r, c in scene.defective],
        "lost_packet_pixels_10m": [[int(r), int(c)] for r, c in scene.lost_packets],
        "files": sorted(p.name for p in truth_dir.glob("*.tif")),
    }
    write_truth_json(truth_dir / "truth.json", content)


def _physical_class_rules() -> dict[str, str]:
    """``truth.json`` class rules of physical clouds (see :mod:`sen2core.synthetic.scene`)."""
    return {
        "0": "pixel centre outside the swath",
        "1": "saturated pixel (DN 65535 in every band)",
        "9": f"cloud cover fraction >= {CLOUD_LABEL_FRACTION:g} and optical thickness tau * alpha ** (5/3) >= "
        f"{THICK_CLOUD_TAU:g}",
        "8": f"cloud cover fraction >= {CLOUD_LABEL_FRACTION:g} and tau * alpha ** (5/3) < {THICK_CLOUD_TAU:g}",
        "edge": f"EDG_20m.tif: cloud (8, 9) with cover fraction < {CLOUD_EDGE_FRACTION:g}",
        "10": f"cirrus B10 reflectance >= {CIRRUS_CLASS_MIN:g} (and not cloud)",
        "3": f"ground NIR irradiance <= {SHADOW_LABEL_IRRADIANCE:g} of clear sky (IRR_20m.tif: "
        f"{NIR_DIRECT_SHARE:g} x (direct + cloud-transmitted sunlight) + {1 - NIR_DIRECT_SHARE:g} x sky light "
        "left by the clouds); not cloud, not cirrus",
        "11": "snow",
        "6": "water",
        "4": "green vegetation cover >= 0.5",
        "5": "other land (soil, sand, urban, senescent vegetation)",
        "20m": "atmospheric quantities averaged over the four 10 m pixels, ground class by majority",
    }

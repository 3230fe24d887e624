"""Synthetic scene kernels: random fields, land cover and spectra, clouds, cirrus.

Pure numpy/scipy: arrays in, arrays out, no I/O. Every random draw comes from the
seed: smooth fields from ``numpy.random.Generator`` streams keyed by ``(seed, field)``,
pixel-scale texture from a counter-based hash of the global pixel index, so a pixel's
value never depends on how the tile is cut into strips.

**Surface.** Each 10 m pixel is a linear mixture of at most three endmember spectra
(:data:`ENDMEMBERS`, typical laboratory/field reflectances at the band centres) times a
brightness texture. Land cover comes from smooth random fields thresholded at the
quantiles that give the target fractions: lakes and rivers, towns, a sand region,
forest, snow and agricultural parcels (a Voronoi tiling, each parcel green, bare or
senescent). The class of a pixel is what it physically is: water, snow, vegetation
when the green-vegetation cover fraction is at least 0.5, otherwise not vegetated.
No spectrum is tuned to any classifier's thresholds.

**Clouds.** Opaque clouds are the connected regions of a fractal field above a
threshold; each cloud has its own optical thickness ``tau`` (log-uniform 3-80) and top
height (1-10 km). A pixel's cloud cover fraction ``alpha`` ramps from 0 to 1 across the
cloud edge (about 80 m). The cloud layer reflects ``R = (1-g) tau / (2 + (1-g) tau)``
(two-stream, conservative scattering, g = 0.85), slightly less in the SWIR where
liquid water absorbs. Thin cirrus is a separate streaky field that adds reflectance.

**Physical clouds** (``cloud_model="physical"``; :func:`make_clouds` with ``physical``).
Real cloud edges are wide and ragged, and real shadows grey:

- the density field gets two finer scales (150 m and 400 m), so edges are fractal, and the
  edge ramp is six times wider (a few hundred metres);
- inside the edge the cloud thins as well as breaks up: the covered part of a pixel has the
  optical thickness ``tau * alpha ** (5/3)`` (:meth:`CloudObjects.pixel_tau`: an adiabatic
  cloud's optical thickness grows as its geometric thickness to the power 5/3, and that
  thickness is taken to grow with the cover fraction), so an edge pixel is dim
  (``alpha R(tau alpha ** (5/3))``), not a half-bright cloud;
- phase by top height: tops from :data:`ICE_CLOUD_MIN_HEIGHT_M` are ice, which absorbs more
  at 1.6 and 2.2 um (:data:`ICE_CLOUD_SPECTRAL_FACTOR`). B10 needs no rule of its own: the
  1375 nm band sees a cloud top through the water vapour above it (the LUT's gas
  transmission from the top's height), so low water clouds show little B10 and high ones
  much;
- shadows: the direct beam through a cloud is lost, but a conservative cloud transmits
  ``1 - R`` of the sunlight as diffuse light (:func:`cloud_transmission`), so shadows of thin
  clouds are grey and of thick ones dark; the sky light is reduced by the clouds overhead
  (:func:`sky_occlusion`) and the shadow edge is blurred by the sun's disc (penumbra,
  :data:`SUN_ANGULAR_RADIUS_RAD` times the cloud height).

Truth of physical clouds: cloud where the cover fraction is at least
:data:`CLOUD_LABEL_FRACTION`, its *edge band* where that fraction is below
:data:`CLOUD_EDGE_FRACTION` (``EDG_20m.tif``); cloud shadow where the ground gets at most
:data:`SHADOW_LABEL_IRRADIANCE` of its clear-sky near-infrared irradiance (``IRR_20m.tif``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from sen2core.atmosphere.srf import BANDS
from sen2core.kernels.scene_class.legend import SCL

__all__ = [
    "CIRRUS_SPECTRAL_FACTOR",
    "CLASS_CODES",
    "CLOUD_EDGE_FRACTION",
    "CLOUD_LABEL_FRACTION",
    "CLOUD_SPECTRAL_FACTOR",
    "ENDMEMBERS",
    "ICE_CLOUD_MIN_HEIGHT_M",
    "ICE_CLOUD_SPECTRAL_FACTOR",
    "NIR_DIRECT_SHARE",
    "SHADOW_LABEL_IRRADIANCE",
    "SUN_ANGULAR_RADIUS_RAD",
    "Cirrus",
    "CloudObjects",
    "Landscape",
    "MixtureStrip",
    "block_mean",
    "box_mean_rows",
    "cloud_reflectance",
    "cloud_transmission",
    "fractal_field",
    "gaussian_field",
    "hash_uniform",
    "interp_rows_cols",
    "make_cirrus",
    "make_clouds",
    "make_landscape",
    "mix_band",
    "pixel_coords",
    "sky_occlusion",
]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

#: Scene classification codes used by the truth (Sen2Cor SCL).
CLASS_CODES: dict[int, str] = {
    int(c): c.name
    for c in (
        SCL.NO_DATA, SCL.SATURATED_OR_DEFECTIVE, SCL.CLOUD_SHADOWS, SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER,
        SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY, SCL.THIN_CIRRUS, SCL.SNOW_ICE,
    )
}  # fmt: skip

# Endmember reflectances at the band centres, in BANDS order
# (B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12). The two forests are canopy-level
# spectra: shadowed, multiply-scattering canopies have visible/2.1 um ratios near the ones
# measured from aircraft over dense vegetation (red 0.5 and blue 0.25 of 2.1 um, Kaufman
# et al. 1997, JGR 102(D14) 17051), unlike single-leaf laboratory spectra (red about 0.35).
ENDMEMBERS: dict[str, tuple[float, ...]] = {
    "green_crop":   (.030, .040, .085, .045, .130, .330, .420, .460, .470, .460, .120, .250, .120),
    "broadleaf":    (.024, .024, .058, .045, .100, .280, .360, .390, .400, .390, .100, .200, .090),
    "conifer":      (.014, .013, .035, .025, .060, .160, .210, .230, .240, .235, .060, .120, .050),
    "dry_vegetation": (.060, .075, .110, .140, .180, .220, .250, .270, .280, .285, .150, .380, .280),
    "bright_soil":  (.090, .110, .160, .220, .250, .270, .290, .310, .320, .330, .300, .420, .360),
    "dark_soil":    (.040, .050, .070, .090, .110, .125, .140, .150, .160, .165, .120, .230, .190),
    "sand":         (.140, .180, .280, .380, .430, .460, .480, .500, .510, .520, .450, .600, .540),
    "concrete":     (.120, .140, .170, .190, .200, .210, .220, .230, .235, .240, .220, .280, .250),
    "asphalt_roof": (.060, .070, .080, .090, .095, .100, .105, .110, .112, .115, .100, .140, .130),
    "clear_water":  (.045, .040, .030, .012, .008, .005, .004, .003, .003, .002, .001, .001, .001),
    "turbid_water": (.055, .065, .090, .070, .060, .035, .030, .028, .026, .018, .004, .004, .002),
    "fresh_snow":   (.950, .960, .950, .930, .910, .890, .860, .830, .810, .720, .300, .060, .040),
    "old_snow":     (.780, .790, .770, .740, .720, .690, .660, .620, .600, .520, .200, .040, .030),
}  # fmt: skip
_EM_NAMES = tuple(ENDMEMBERS)
_EM = {name: i for i, name in enumerate(_EM_NAMES)}
#: Endmember table, shape (n_endmembers, 13).
ENDMEMBER_TABLE: F32 = np.array([ENDMEMBERS[n] for n in _EM_NAMES], dtype=np.float32)

#: Cloud-top reflectance relative to the visible, per band (liquid water absorbs in the SWIR).
CLOUD_SPECTRAL_FACTOR: dict[str, float] = {b: 1.0 for b in BANDS} | {"B10": 0.95, "B11": 0.85, "B12": 0.70}
#: Cirrus (ice) reflectance relative to B10, per band (ice absorbs at 1.6 and 2.2 um).
CIRRUS_SPECTRAL_FACTOR: dict[str, float] = {b: 1.0 for b in BANDS} | {"B11": 0.6, "B12": 0.45}

#: Physical clouds: tops at least this high are ice (colder than about -25 C in a standard atmosphere).
ICE_CLOUD_MIN_HEIGHT_M = 6000.0
#: Ice-cloud reflectance relative to the visible, per band: ice absorbs more than liquid water at
#: 1.6 and 2.2 um (larger absorption coefficients and larger crystals).
ICE_CLOUD_SPECTRAL_FACTOR: dict[str, float] = {b: 1.0 for b in BANDS} | {"B10": 0.95, "B11": 0.55, "B12": 0.40}
#: Physical clouds: truth cloud from this sub-pixel cover fraction.
CLOUD_LABEL_FRACTION = 0.2
#: Physical clouds: truth cloud pixels below this cover fraction are the edge band.
CLOUD_EDGE_FRACTION = 0.8
#: Physical clouds: truth cloud shadow where the ground gets at most this share of its clear-sky
#: near-infrared irradiance.
SHADOW_LABEL_IRRADIANCE = 0.7
#: Share of the direct beam in the near-infrared irradiance of flat ground (for the shadow label).
NIR_DIRECT_SHARE = 0.85
#: Angular radius of the sun's disc: the penumbra of a cloud edge at height h is h times as wide.
SUN_ANGULAR_RADIUS_RAD = 0.00465
#: Sky occlusion: clouds within this distance of the zenith of a pixel (45 degrees for a 4 km
#: high cloud) hide its sky; the cos-weighted sky within 45 degrees of the zenith is half of it.
_SKY_RADIUS_M = 4000.0
_SKY_CONE_WEIGHT = 0.5

_ASYMMETRY = 0.85
_CLOUD_EDGE_WIDTH = 0.08
_PHYSICAL_EDGE_WIDTH = 0.5
# Adiabatic clouds: optical thickness grows as the geometric thickness to the power 5/3
# (Brenguier et al. 2000, J. Atmos. Sci. 57, 803); the geometric thickness is taken to grow
# with the cover fraction across the edge.
_ADIABATIC_EXPONENT = 5.0 / 3.0
_TAU_RANGE = (3.0, 80.0)
_HEIGHT_RANGE_M = (1000.0, 10000.0)
#: Optical thickness above which a cloud is "high probability" (class 9).
THICK_CLOUD_TAU = 8.0
#: Cirrus B10 reflectance above which a pixel is thin cirrus (class 10).
CIRRUS_CLASS_MIN = 0.01

_U64 = np.uint64
_M1, _M2, _M3 = _U64(0x9E3779B97F4A7C15), _U64(0xBF58476D1CE4E5B9), _U64(0x94D049BB133111EB)


# ---------------------------------------------------------------------------- noise


def hash_uniform(rows: NDArray[np.integer], cols: NDArray[np.integer], seed: int, stream: int) -> F32:
    """Uniform [0, 1) noise of global pixel indices (splitmix64 of the index and the seed).

    Parameters
    ----------
    rows, cols
        1-D global row and column indices; the result is their outer product.
    seed, stream
        Seed and an identifier of the noise field.

    Returns
    -------
    ndarray of float32
        Shape ``(len(rows), len(cols))``; independent of how the tile is cut in strips.
    """
    r = np.asarray(rows, dtype=np.uint64)[:, None]
    c = np.asarray(cols, dtype=np.uint64)[None, :]
    salt = np.array([(seed * 0x632BE59BD9B4E019 + stream * 0xD6E8FEB86659FD93) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    z = (r << _U64(32)) ^ c ^ salt
    z = z + _M1
    z = (z ^ (z >> _U64(30))) * _M2
    z = (z ^ (z >> _U64(27))) * _M3
    z = z ^ (z >> _U64(31))
    return ((z >> _U64(40)).astype(np.float32) * np.float32(1.0 / (1 << 24))).astype(np.float32)


def gaussian_field(
    shape: tuple[int, int], corr_px: float, rng: np.random.Generator, anisotropy: float = 1.0, angle_deg: float = 0.0
) -> F64:
    """Smooth Gaussian random field with unit variance.

    White noise low-pass filtered with a Gaussian kernel of standard deviation
    ``corr_px`` pixels (stretched ``anisotropy`` times along ``angle_deg`` from the
    row axis), by FFT. The field is drawn on a periodic domain at least four
    correlation lengths wide and its upper-left ``shape`` part returned, so a small
    tile is a piece of a field with the same statistics, not a stretched one.
    """
    reach = 4.0 * corr_px * max(1.0, anisotropy)
    dom = (
        min(max(shape[0], math.ceil(reach)), max(shape[0], 4096)),
        min(max(shape[1], math.ceil(reach)), max(shape[1], 4096)),
    )
    white = rng.standard_normal(dom)
    spec = np.fft.rfft2(white)
    ky = np.fft.fftfreq(dom[0])[:, None]
    kx = np.fft.rfftfreq(dom[1])[None, :]
    a = np.radians(angle_deg)
    k_along = ky * np.cos(a) + kx * np.sin(a)
    k_across = -ky * np.sin(a) + kx * np.cos(a)
    s_along, s_across = corr_px * anisotropy, corr_px
    spec *= np.exp(-2.0 * np.pi**2 * ((k_along * s_along) ** 2 + (k_across * s_across) ** 2))
    spec[0, 0] = 0.0
    f = np.fft.irfft2(spec, s=dom)
    std = f.std()
    return np.asarray(f[: shape[0], : shape[1]] / (std if std > 0 else 1.0), dtype=np.float64)


def fractal_field(
    shape: tuple[int, int],
    corrs_px: tuple[float, ...],
    weights: tuple[float, ...],
    rng: np.random.Generator,
    anisotropy: float = 1.0,
    angle_deg: float = 0.0,
) -> F64:
    """Weighted sum of independent unit-variance Gaussian fields at several scales, unit variance."""
    f = np.zeros(shape)
    for corr, w in zip(corrs_px, weights, strict=True):
        f += w * gaussian_field(shape, corr, rng, anisotropy, angle_deg)
    return np.asarray(f / math.sqrt(sum(w * w for w in weights)), dtype=np.float64)


def field_rng(seed: int, name: str) -> np.random.Generator:
    """Independent generator for one named field."""
    key = int.from_bytes(name.encode()[:16].ljust(16, b"\0"), "little")
    return np.random.default_rng([seed, key & 0xFFFFFFFF, key >> 32 & 0xFFFFFFFF, key >> 64 & 0xFFFFFFFF])


# ---------------------------------------------------------------------------- resampling


def interp_rows_cols(grid: NDArray[np.floating], gy: F64, gx: F64) -> F32:
    """Separable bilinear interpolation of a 2-D grid at fractional node coordinates.

    Coordinates outside the grid take the edge value. Interpolating along columns
    first for the few grid rows involved keeps the cost at a few operations per output
    pixel.

    Parameters
    ----------
    grid
        Node values (rows, cols).
    gy, gx
        1-D fractional row and column coordinates.

    Returns
    -------
    ndarray of float32
        Shape ``(len(gy), len(gx))``.
    """
    g = np.asarray(grid, dtype=np.float32)
    ny, nx = g.shape

    def weights(c: F64, n: int) -> tuple[NDArray[np.intp], NDArray[np.intp], F32]:
        if n == 1:
            z = np.zeros(c.shape, dtype=np.intp)
            return z, z, np.zeros(c.shape, dtype=np.float32)
        i0 = np.clip(np.floor(c), 0, n - 2).astype(np.intp)
        t = np.clip(c - i0, 0.0, 1.0).astype(np.float32)
        return i0, i0 + 1, t

    r0, r1, ty = weights(np.asarray(gy, dtype=np.float64), ny)
    c0, c1, tx = weights(np.asarray(gx, dtype=np.float64), nx)
    rows = np.unique(np.concatenate([r0, r1]))
    sub = g[rows]
    across = sub[:, c0] * (1.0 - tx) + sub[:, c1] * tx
    pos = np.searchsorted(rows, np.arange(ny))
    a0 = across[pos[r0]]
    a1 = across[pos[r1]]
    ty2 = ty[:, None]
    return np.asarray(a0 + (a1 - a0) * ty2, dtype=np.float32)


def pixel_coords(start: int, stop: int, pixel_m: float, grid_step_m: float, grid_offset_px: float = 0.0) -> F64:
    """Fractional coordinates of pixel centres on a cell-centred grid.

    Pixels ``start..stop`` of a grid of ``pixel_m`` metres that starts at the tile edge
    are mapped onto a grid of step ``grid_step_m`` whose node ``k`` is centred
    ``(k - grid_offset_px + 0.5) * grid_step_m`` metres from the same edge.
    """
    centres = (np.arange(start, stop, dtype=np.float64) + 0.5) * pixel_m
    return centres / grid_step_m - 0.5 + grid_offset_px


def block_mean(a: NDArray[np.floating], factor: int) -> F32:
    """Mean of ``factor`` x ``factor`` blocks (dimensions must divide)."""
    if factor == 1:
        return np.asarray(a, dtype=np.float32)
    r, c = a.shape
    return np.asarray(
        a.reshape(r // factor, factor, c // factor, factor).mean(axis=(1, 3), dtype=np.float64), dtype=np.float32
    )


def box_mean_rows(a: NDArray[np.floating], size: int, at_top: bool, at_bottom: bool, keep: slice) -> F32:
    """Box (uniform) mean over ``size`` x ``size`` pixels of the rows ``keep`` of a strip.

    ``a`` is a horizontal strip of an image holding, around ``keep``, a halo of at least
    ``size // 2`` rows unless the strip touches the image's top (``at_top``) or bottom
    (``at_bottom``), where rows are mirrored (``scipy.ndimage`` "reflect" mode). The
    result is ``uniform_filter(image, size, mode="reflect")`` on those rows.
    """
    half = size // 2
    if (keep.start < half and not at_top) or (a.shape[0] - keep.stop < half and not at_bottom):
        raise ValueError("strip halo too small for the box filter")
    f = ndimage.uniform_filter1d(np.asarray(a, dtype=np.float32), size, axis=1, mode="reflect")
    f = ndimage.uniform_filter1d(f, size, axis=0, mode="reflect")
    return np.asarray(f[keep], dtype=np.float32)


# ---------------------------------------------------------------------------- land cover


@dataclass
class MixtureStrip:
    """Surface of a strip of 10 m rows as endmember mixtures."""

    classes: NDArray[np.uint8]
    """Ground class: 4 vegetation, 5 not vegetated, 6 water, 11 snow."""
    members: NDArray[np.uint8]
    """Endmember indices into :data:`ENDMEMBER_TABLE`, shape (3, rows, cols)."""
    weights: F32
    """Mixing weights (sum 1), shape (3, rows, cols)."""
    brightness: F32
    """Multiplicative texture."""

    def band(self, index: int) -> F32:
        """Surface reflectance of band ``BANDS[index]``."""
        return mix_band(self.members, self.weights, self.brightness, index)


@dataclass
class Landscape:
    """Land-cover fields of a tile on a 60 m grid and the thresholds that cut them.

    :meth:`sample` turns them into 10 m classes and endmember mixtures for any rows.
    """

    seed: int
    size: int
    """Tile edge in 10 m pixels."""
    fields: dict[str, F32]
    """60 m fields, tile only (size/6 square)."""
    thresholds: dict[str, float]
    elevation_norm: F32 | None
    """Relief normalised to [0, 1] on the 60 m grid (None: flat)."""

    parcel_m: float = 400.0

    def _sample(self, name: str, gy: F64, gx: F64) -> F32:
        return interp_rows_cols(self.fields[name], gy, gx)

    def sample(self, row0: int, row1: int) -> MixtureStrip:
        """Ground classes and endmember mixtures of the 10 m rows ``row0..row1``."""
        n = self.size
        gy = pixel_coords(row0, row1, 10.0, 60.0)
        gx = pixel_coords(0, n, 10.0, 60.0)
        shape = (row1 - row0, n)
        rows_idx = np.arange(row0, row1)
        cols_idx = np.arange(n)
        noise_a = hash_uniform(rows_idx, cols_idx, self.seed, 1)
        noise_b = hash_uniform(rows_idx, cols_idx, self.seed, 2)
        th = self.thresholds

        members = np.zeros((3,) + shape, dtype=np.uint8)
        weights = np.zeros((3,) + shape, dtype=np.float32)
        classes = np.full(shape, 5, dtype=np.uint8)
        brightness = (1.0 + 0.06 * (noise_a - 0.5)).astype(np.float32)

        soil = self._sample("soil", gy, gx)
        moist = np.clip(0.5 + 0.3 * soil + 0.25 * (noise_b - 0.5), 0.0, 1.0)

        # Agricultural parcels everywhere first; other covers overwrite them.
        # Parcels are drawn at 20 m (their straight edges are then 20 m steps at 10 m).
        pid20, pu = _voronoi_parcels(row0 // 2, (row1 + 1) // 2, (n + 1) // 2, 20.0, self.parcel_m, self.seed)
        pid = np.repeat(np.repeat(pid20, 2, axis=0), 2, axis=1)[row0 % 2 : row0 % 2 + (row1 - row0), :n]
        state, u_fc, u_mix = pu[0][pid], pu[1][pid], pu[2][pid]
        vig = self._sample("vigour", gy, gx)
        green = state < 0.55
        senescent = state >= 0.85
        fc = np.where(green, 0.55 + 0.45 * u_fc, np.where(senescent, 0.05 + 0.25 * u_fc, 0.25 * u_fc))
        fc = np.clip(fc + 0.05 * vig + 0.06 * (noise_b - 0.5), 0.0, 1.0).astype(np.float32)
        fd = np.where(senescent, 0.5 + 0.4 * u_mix, 0.0).astype(np.float32)
        fd = np.minimum(fd, 1.0 - fc)
        members[0] = np.where(u_mix < 0.6, _EM["green_crop"], _EM["broadleaf"])
        members[1] = np.where(senescent, _EM["dry_vegetation"], _EM["dark_soil"])
        members[2] = _EM["bright_soil"]
        weights[0] = fc
        # Soil: a moist (dark) / dry (bright) mixture under the vegetation; senescent
        # parcels carry dry vegetation instead of the dark soil part.
        soil_part = 1.0 - fc - fd
        weights[1] = np.where(senescent, fd + soil_part * moist, soil_part * moist)
        weights[2] = 1.0 - weights[0] - weights[1]
        classes[:] = np.where(fc >= 0.5, 4, 5)

        def put(mask: NDArray[np.bool_], cls: int, m: tuple[int, int, int], w: tuple[F32 | float, ...]) -> None:
            classes[mask] = cls
            for k in range(3):
                members[k][mask] = m[k]
                wk = w[k]
                weights[k][mask] = wk[mask] if isinstance(wk, np.ndarray) else wk

        forest = self._sample("forest", gy, gx) > th["forest"]
        u = np.clip(0.5 + 0.5 * self._sample("forest_mix", gy, gx) + 0.2 * (noise_b - 0.5), 0.0, 1.0)
        ffc = (0.8 + 0.2 * noise_a).astype(np.float32)
        put(
            forest,
            4,
            (_EM["conifer"], _EM["broadleaf"], _EM["dark_soil"]),
            ((ffc * u).astype(np.float32), (ffc * (1 - u)).astype(np.float32), (1 - ffc).astype(np.float32)),
        )

        sand = self._sample("arid", gy, gx) > th["arid"]
        s = np.clip(0.7 + 0.25 * soil, 0.3, 1.0).astype(np.float32)
        put(sand, 5, (_EM["sand"], _EM["bright_soil"], _EM["dry_vegetation"]), (s, (1 - s) * 0.8, (1 - s) * 0.2))

        urban = self._sample("urban", gy, gx) > th["urban"]
        park = np.clip(0.3 * noise_b - 0.05, 0.0, 0.25).astype(np.float32)
        mat = noise_a
        put(
            urban,
            5,
            (_EM["concrete"], _EM["asphalt_roof"], _EM["broadleaf"]),
            (((1 - park) * mat).astype(np.float32), ((1 - park) * (1 - mat)).astype(np.float32), park),
        )
        brightness = np.where(urban, 1.0 + 0.25 * (noise_b - 0.5), brightness).astype(np.float32)

        river = np.abs(self._sample("river", gy, gx)) < th["river"]
        lake = self._sample("lake", gy, gx) > th["lake"]
        water = river | lake
        turb = np.clip(0.35 + 0.35 * self._sample("turbidity", gy, gx) + np.where(river, 0.3, 0.0), 0.0, 1.0)
        turb = turb.astype(np.float32)
        put(water, 6, (_EM["clear_water"], _EM["turbid_water"], _EM["clear_water"]), ((1 - turb), turb, 0.0))
        brightness = np.where(water, 1.0 + 0.01 * (noise_a - 0.5), brightness).astype(np.float32)

        if "snow" in th:
            snow = self._sample("snow", gy, gx) > th["snow"]
            age = np.clip(0.5 + 0.4 * self._sample("snow_age", gy, gx), 0.0, 1.0).astype(np.float32)
            put(snow, 11, (_EM["fresh_snow"], _EM["old_snow"], _EM["fresh_snow"]), (1 - age, age, 0.0))
            brightness = np.where(snow, 1.0 + 0.03 * (noise_a - 0.5), brightness).astype(np.float32)
        return MixtureStrip(classes=classes, members=members, weights=weights, brightness=brightness)


def _voronoi_parcels(
    row0: int, row1: int, ncols: int, pixel_m: float, cell_m: float, seed: int
) -> tuple[NDArray[np.int32], tuple[F32, F32, F32]]:
    """Voronoi parcels from a jittered grid of seeds, on a grid of ``pixel_m`` pixels.

    Returns each pixel's parcel (flat index into the returned per-parcel uniforms) and
    three uniforms per parcel (state, cover, mixture) for the strip's cell window.
    """
    ys = ((np.arange(row0, row1, dtype=np.float64) + 0.5) * pixel_m).astype(np.float32)
    xs = ((np.arange(ncols, dtype=np.float64) + 0.5) * pixel_m).astype(np.float32)
    ci0 = int(np.floor(ys[0] / cell_m)) - 1
    ci1 = int(np.floor(ys[-1] / cell_m)) + 2
    cj1 = int(np.floor(xs[-1] / cell_m)) + 2
    cell_rows = np.arange(ci0, ci1)
    cell_cols = np.arange(-1, cj1)
    # Cell coordinates can be -1: shift so that the hash sees non-negative integers.
    jy = hash_uniform(cell_rows + 1, cell_cols + 1, seed, 11)
    jx = hash_uniform(cell_rows + 1, cell_cols + 1, seed, 12)
    sy = ((cell_rows[:, None] + 0.1 + 0.8 * jy) * cell_m).astype(np.float32)
    sx = ((cell_cols[None, :] + 0.1 + 0.8 * jx) * cell_m).astype(np.float32)
    iy = np.floor(ys / cell_m).astype(np.intp) - ci0
    ix = np.floor(xs / cell_m).astype(np.intp) + 1
    best = np.full((len(ys), len(xs)), np.inf, dtype=np.float32)
    pid = np.zeros((len(ys), len(xs)), dtype=np.int32)
    ncol = len(cell_cols)
    for dy in (-1, 0, 1):
        ry = np.clip(iy + dy, 0, len(cell_rows) - 1)
        for dx in (-1, 0, 1):
            rx = np.clip(ix + dx, 0, ncol - 1)
            d2 = (sy[ry][:, rx] - ys[:, None]) ** 2 + (sx[ry][:, rx] - xs[None, :]) ** 2
            closer = d2 < best
            best = np.where(closer, d2, best)
            pid = np.where(closer, (ry[:, None] * ncol + rx[None, :]).astype(np.int32), pid)
    u = tuple(hash_uniform(cell_rows + 1, cell_cols + 1, seed, 20 + k).ravel() for k in range(3))
    return pid, (u[0], u[1], u[2])


def make_landscape(seed: int, size: int, snow_percent: float, elevation_norm: F32 | None) -> Landscape:
    """Draw the land-cover fields of a tile and set their thresholds.

    Target fractions of the tile: lakes 4 %, rivers about 0.5 %, towns 4 %, a sand
    region 6 %, forest 22 %, snow as asked; the rest agricultural parcels. With relief,
    lakes keep to the lowlands and snow to the heights.
    """
    n60 = size // 6
    shape = (n60, n60)
    px = 60.0

    def f(name: str, corrs_m: tuple[float, ...], weights: tuple[float, ...], **kw: float) -> F64:
        return fractal_field(shape, tuple(c / px for c in corrs_m), weights, field_rng(seed, name), **kw)

    fields: dict[str, F64] = {
        "soil": f("soil", (250.0, 1200.0), (0.6, 0.4)),
        "vigour": f("vigour", (4000.0,), (1.0,)),
        "forest": f("forest", (1500.0, 5000.0), (0.5, 0.5)),
        "forest_mix": f("forest_mix", (2500.0,), (1.0,)),
        "arid": f("arid", (1200.0, 15000.0), (0.3, 0.7)),
        "urban": f("urban", (500.0, 12000.0), (0.5, 0.5)),
        "river": f("river", (6000.0,), (1.0,)),
        "lake": f("lake", (900.0, 3000.0), (0.5, 0.5)),
        "turbidity": f("turbidity", (4000.0,), (1.0,)),
        "snow": f("snow", (800.0, 4000.0), (0.4, 0.6)),
        "snow_age": f("snow_age", (2000.0,), (1.0,)),
    }
    if elevation_norm is not None:
        fields["lake"] = fields["lake"] - 3.0 * elevation_norm
        fields["snow"] = 0.3 * fields["snow"] + 4.0 * elevation_norm
    thresholds = {
        "forest": float(np.quantile(fields["forest"], 1 - 0.22)),
        "arid": float(np.quantile(fields["arid"], 1 - 0.06)),
        "urban": float(np.quantile(fields["urban"], 1 - 0.04)),
        "lake": float(np.quantile(fields["lake"], 1 - 0.04)),
        # Rivers follow the zero line of a smooth field (where the tile has one): the
        # 0.5 % of the tile closest to it.
        "river": min(float(np.quantile(np.abs(fields["river"]), 0.005)), 0.03),
    }
    if snow_percent > 0:
        thresholds["snow"] = float(np.quantile(fields["snow"], 1 - snow_percent / 100.0))
    return Landscape(
        seed=seed,
        size=size,
        fields={k: v.astype(np.float32) for k, v in fields.items()},
        thresholds=thresholds,
        elevation_norm=elevation_norm,
    )


def mix_band(members: NDArray[np.uint8], weights: F32, brightness: F32, band_index: int) -> F32:
    """Surface reflectance of one band from endmember indices, weights and brightness."""
    col = ENDMEMBER_TABLE[:, band_index]
    out = weights[0] * col[members[0]] + weights[1] * col[members[1]] + weights[2] * col[members[2]]
    return np.asarray(np.clip(out * brightness, 0.0, 1.0), dtype=np.float32)


# ---------------------------------------------------------------------------- clouds


def cloud_reflectance(tau: NDArray[np.floating] | float) -> F64:
    """Reflectance of a conservative-scattering cloud layer of optical thickness ``tau``."""
    t = np.asarray(tau, dtype=np.float64)
    return np.asarray((1 - _ASYMMETRY) * t / (2.0 + (1 - _ASYMMETRY) * t), dtype=np.float64)


def cloud_transmission(tau: NDArray[np.floating] | float, mu: NDArray[np.floating] | float) -> F64:
    """Share of the sunlight (direct and diffuse) a conservative cloud lets through, sun at ``cos = mu``.

    Two-stream: ``1 - R`` with the slant scaled thickness ``(1 - g) tau / mu`` (an oblique sun
    meets more cloud). The direct beam alone is ``exp(-tau / mu)``, nearly nothing; the rest
    is light scattered forward through the cloud, which keeps shadows grey.
    """
    t = (1 - _ASYMMETRY) * np.asarray(tau, dtype=np.float64) / np.maximum(np.asarray(mu, dtype=np.float64), 0.05)
    return np.asarray(2.0 / (2.0 + t), dtype=np.float64)


def sky_occlusion(alpha: NDArray[np.floating], tau: NDArray[np.floating], pixel_m: float) -> F64:
    """Share of a pixel's diffuse sky light that the clouds around its zenith take away.

    The clouds within :data:`_SKY_RADIUS_M` cover the cos-weighted cone of the sky above a
    pixel (half of the sky light); what of that cone's light they reflect away is the
    box mean of ``alpha R(tau)`` (mirrored at the edges of the grid).
    """
    size = max(1, int(round(2 * _SKY_RADIUS_M / pixel_m)) | 1)
    lost = np.asarray(alpha, dtype=np.float64) * cloud_reflectance(tau)
    return np.asarray(_SKY_CONE_WEIGHT * ndimage.uniform_filter(lost, size, mode="reflect"), dtype=np.float64)


@dataclass
class CloudObjects:
    """Opaque clouds on a 60 m grid extended by a margin around the tile.

    Grid node ``(i, j)`` is centred at tile coordinates
    ``((j - margin + 0.5) * 60, (i - margin + 0.5) * 60)`` metres east and south of the
    tile's upper-left corner.
    """

    density: F32
    threshold: float
    edge_width: float
    labels: NDArray[np.int32]
    """Connected clouds (1..n), dilated by one node so that edge pixels find their cloud."""
    margin: int
    height_m: F64
    """Cloud-top height per cloud (index 0 unused)."""
    tau: F64
    """Optical thickness per cloud (index 0 unused)."""
    bbox: NDArray[np.intp]
    """Per cloud: row0, row1, col0, col1 on the extended grid (index 0 unused)."""
    centroid_m: F64
    """Per cloud: east and south tile coordinates (m) of the centroid."""
    physical: bool = False
    """Physical clouds: optical thickness thins with the cover fraction (:meth:`pixel_tau`)."""

    def pixel_tau(self, label: NDArray[np.integer], alpha: NDArray[np.floating]) -> F64:
        """Optical thickness of the covered part of pixels of cloud ``label`` with cover ``alpha``."""
        tau = self.tau[np.asarray(label)]
        if not self.physical:
            return np.asarray(tau, dtype=np.float64)
        return np.asarray(tau * np.asarray(alpha, dtype=np.float64) ** _ADIABATIC_EXPONENT, dtype=np.float64)

    def is_ice(self, label: NDArray[np.integer]) -> NDArray[np.bool_]:
        """Physical clouds: whether the cloud's top is ice (always False for simple clouds)."""
        h = self.height_m[np.asarray(label)]
        return np.asarray((h >= ICE_CLOUD_MIN_HEIGHT_M) & self.physical, dtype=bool)

    @property
    def count(self) -> int:
        """Number of clouds."""
        return len(self.height_m) - 1

    def alpha_at(self, gy: F64, gx: F64) -> F32:
        """Cloud cover fraction on the outer product of grid coordinates."""
        d = interp_rows_cols(self.density, gy, gx)
        return np.asarray(np.clip((d - self.threshold) / self.edge_width + 0.5, 0.0, 1.0), dtype=np.float32)

    def label_at(self, gy: F64, gx: F64) -> NDArray[np.int32]:
        """Cloud index (0: none) at the nearest grid node."""
        iy = np.clip(np.rint(gy).astype(np.intp), 0, self.labels.shape[0] - 1)
        ix = np.clip(np.rint(gx).astype(np.intp), 0, self.labels.shape[1] - 1)
        return self.labels[iy][:, ix]


def make_clouds(
    seed: int,
    size: int,
    cover_percent: float,
    margin: int,
    heights_m: tuple[float, float] = _HEIGHT_RANGE_M,
    physical: bool = False,
) -> CloudObjects:
    """Draw opaque clouds covering ``cover_percent`` of the tile (alpha >= 0.5).

    ``margin`` 60 m nodes are added around the tile so that clouds just outside it cast
    their shadows in. ``physical``: fractal edges, six times wider, and clouds that thin
    towards them (see the module docstring); the same seed draws the same large-scale
    clouds, heights and thicknesses either way.
    """
    n60 = size // 6
    shape = (n60 + 2 * margin, n60 + 2 * margin)
    rng = field_rng(seed, "clouds")
    dens = fractal_field(shape, (900.0 / 60, 2500.0 / 60, 7000.0 / 60), (0.25, 0.45, 0.3), rng)
    w = _CLOUD_EDGE_WIDTH
    if physical:
        fine = fractal_field(shape, (150.0 / 60, 400.0 / 60), (0.5, 0.5), field_rng(seed, "cloud_edges"))
        dens = dens + 0.25 * fine
        w = _PHYSICAL_EDGE_WIDTH
    inner = dens[margin : margin + n60, margin : margin + n60]
    if cover_percent <= 0:
        thr = float(dens.max()) + 10.0 * w
    else:
        thr = float(np.quantile(inner, 1.0 - cover_percent / 100.0))
    region = dens > thr - w / 2.0
    labels, count = ndimage.label(region)
    labels = labels.astype(np.int32)
    props = np.random.default_rng([seed, 0xC10D])
    heights = np.concatenate([[0.0], props.uniform(*heights_m, size=count)])
    lo, hi = np.log(_TAU_RANGE[0]), np.log(_TAU_RANGE[1])
    taus = np.concatenate([[0.0], np.exp(props.uniform(lo, hi, size=count))])
    bbox = np.zeros((count + 1, 4), dtype=np.intp)
    centroid = np.zeros((count + 1, 2))
    if count:
        slices = ndimage.find_objects(labels)
        idx = np.arange(1, count + 1)
        cy = np.asarray(ndimage.mean(np.indices(shape)[0], labels, idx))
        cx = np.asarray(ndimage.mean(np.indices(shape)[1], labels, idx))
        for k, sl in enumerate(slices, start=1):
            assert sl is not None
            bbox[k] = (
                max(sl[0].start - 1, 0),
                min(sl[0].stop + 1, shape[0]),
                max(sl[1].start - 1, 0),
                min(sl[1].stop + 1, shape[1]),
            )
        centroid[1:, 0] = (cx - margin + 0.5) * 60.0
        centroid[1:, 1] = (cy - margin + 0.5) * 60.0
    dilated = ndimage.grey_dilation(labels, size=(3, 3)).astype(np.int32)
    labels = np.where(labels > 0, labels, dilated).astype(np.int32)
    return CloudObjects(
        density=dens.astype(np.float32),
        threshold=thr,
        edge_width=w,
        labels=labels,
        margin=margin,
        height_m=heights,
        tau=taus,
        bbox=bbox,
        centroid_m=centroid,
        physical=physical,
    )


@dataclass
class Cirrus:
    """Thin cirrus: B10 reflectance of the cirrus layer on the 60 m tile grid."""

    field: F32
    threshold: float
    amplitude: float
    ramp: float
    height_m: float

    def rho_b10(self, gy: F64, gx: F64) -> F32:
        """Cirrus reflectance in B10 on the outer product of 60 m grid coordinates."""
        c = interp_rows_cols(self.field, gy, gx)
        return np.asarray(self.amplitude * np.clip((c - self.threshold) / self.ramp, 0.0, 1.0), dtype=np.float32)


def make_cirrus(seed: int, size: int, cover_percent: float) -> Cirrus:
    """Streaky cirrus whose B10 reflectance reaches 0.01-0.04 over ``cover_percent`` of the tile."""
    n60 = size // 6
    rng = field_rng(seed, "cirrus")
    props = np.random.default_rng([seed, 0xC1A5])
    angle = float(props.uniform(0, 180))
    amplitude = float(props.uniform(0.02, 0.04))
    height = float(props.uniform(8000.0, 12000.0))
    field = fractal_field((n60, n60), (1500.0 / 60, 6000.0 / 60), (0.4, 0.6), rng, anisotropy=4.0, angle_deg=angle)
    ramp = 0.6
    if cover_percent <= 0:
        thr = float(field.max()) + 10.0
    else:
        # rho >= CIRRUS_CLASS_MIN where field >= thr + ramp * CIRRUS_CLASS_MIN / amplitude.
        q = float(np.quantile(field, 1.0 - cover_percent / 100.0))
        thr = q - ramp * CIRRUS_CLASS_MIN / amplitude
    return Cirrus(field=field.astype(np.float32), threshold=thr, amplitude=amplitude, ramp=ramp, height_m=height)

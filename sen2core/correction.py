"""Atmospheric correction on dask arrays: AOT (DDV), water vapour (APDA), cirrus, terrain, adjacency, BOA.

Follows Sen2Cor's method (the atmospheric correction described in the Sen2Cor Level-2A Algorithm
Theoretical Basis Document, ESA S2-PDGS-MPC-ATBD-L2A) with the project's 6S LUT. Every block takes
one geometry (its mean sun and view angles, which vary slowly) and evaluates the LUT per pixel only
along AOT, elevation and water vapour (:meth:`RadiativeTransferLUT.geometry_table`), as vectorised
gathers. Scene-wide choices (DDV threshold, aerosol model, AOT scaling, water-vapour land mean,
cirrus gamma) are small block sums computed between the retrieval's steps.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from dask.base import compute
from dask.graph_manipulation import clone
from numpy.typing import NDArray

from sen2core import lazy
from sen2core.atmosphere.lut import RadiativeTransferLUT, load_lut
from sen2core.atmosphere.srf import BANDS
from sen2core.errors import ConfigurationError, SettingRangeError
from sen2core.io.read.auxdata import AuxiliaryData
from sen2core.kernels import adjacency, cirrus, rt
from sen2core.kernels.aot import DDVSettings, aot_at_ddv, corrected_reflectance, ddv_candidates, visibility_to_aot
from sen2core.kernels.lut import AtmosphericTerms, DenseTable, relative_azimuth
from sen2core.kernels.radiometry import block_mean
from sen2core.kernels.scene_class.legend import SCL
from sen2core.kernels.strips import row_strips
from sen2core.kernels.wv import water_vapour_apda, water_vapour_of_cells
from sen2core.settings import AllAbove, Increasing, OneOf, Range, Rule, check_settings

log = logging.getLogger(__name__)

F32 = np.float32
NODATA, SHADOW, VEGETATION, NOT_VEGETATED, WATER = (
    int(SCL.NO_DATA),
    int(SCL.CLOUD_SHADOWS),
    int(SCL.VEGETATION),
    int(SCL.NOT_VEGETATED),
    int(SCL.WATER),
)
CLOUD_MEDIUM, CLOUD_HIGH, THIN_CIRRUS, SNOW = (
    int(SCL.CLOUD_MEDIUM_PROBABILITY),
    int(SCL.CLOUD_HIGH_PROBABILITY),
    int(SCL.THIN_CIRRUS),
    int(SCL.SNOW_ICE),
)
WAVELENGTH_UM = dict(
    zip(
        BANDS, (0.443, 0.490, 0.560, 0.665, 0.705, 0.740, 0.783, 0.842, 0.865, 0.945, 1.375, 1.610, 2.190), strict=False
    )
)
AEROSOL_MODELS = ("continental", "maritime")
#: With ``aerosol="auto"`` and no DDV pixel: maritime when sea salt makes at least this share of the
#: CAMS species' AOD at 550 nm (sea salt, dust, organic matter, black carbon, sulphate).
SEA_SALT_MARITIME_SHARE = 0.5
#: Ozone (cm-atm) used when the setting asks for the ECMWF value (0) and the product has none.
DEFAULT_OZONE_CM_ATM = 0.331
NEGATIVE_CHECK_FACTORS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0)


_LUT = "the radiative-transfer LUT's axis"
_REFL = Range(0.0, 1.0, "reflectance", "reflectance")
_KM = Range(0.0, 5.0, "km", "overlap between processing chunks")

CORRECTION_RANGES: Mapping[str, Range] = {
    "default_aot": Range(0.0, 1.3, "AOT550", _LUT),
    "ozone_cm_atm": Range(
        0.2,
        0.5,
        "cm-atm (200 to 500 DU)",
        _LUT + "; or 0: the product's ECMWF ozone (0.331 without it)",
        also=(0.0,),
    ),
    "start_water_vapour_cm": Range(0.0, 6.0, "cm above the ground", _LUT),
    "default_water_vapour_cm": Range(0.0, 6.0, "cm above the ground", _LUT),
    "elevation_km": Range(-0.5, 9.0, "km", "elevations on Earth (as a DEM is clipped)"),
    "adjacency_km": Range(0.0, 5.0, "km", "overlap between processing chunks (0: a 3-pixel window)"),
    "aot_smoothing_km": _KM,
    "cloud_distance_km": _KM,
    "negative_fraction": Range(0.0, 1.0, "", "fraction"),
    "negative_red": Range(0.0, 0.1, "reflectance", "a dark red surface"),
    "cams_prior_weight": Range(0.0, 1.0, "", "a weight (0: DDV alone, 1: CAMS alone)"),
    "ddv.b12_lower": _REFL,
    "ddv.b12_upper": _REFL,
    "ddv.red_toa_max": _REFL,
    "ddv.ndvi_min": Range(-1.0, 1.0, "", "normalised difference"),
    "ddv.nir_max": _REFL,
    "ddv.min_fraction": Range(0.0, 1.0, "", "fraction"),
    "ddv.red_b12_ratio": Range(0.0, 2.0, "", "reflectance ratio", low_open=True),
    "ddv.max_sza": Range(0.0, 89.0, "degrees", "sun zenith"),
    "ddv.aot_max": Range(0.0, 1.3, "AOT550", _LUT, low_open=True),
    "cirrus.cirrus_min": _REFL,
    "cirrus.cirrus_min_fallback": _REFL,
    "cirrus.clear_range": _REFL,
    "cirrus.min_cirrus_pixels": Range(0, 121_000_000, "pixels", "pixels of a tile at 10 m", integer=True),
    "cirrus.min_clear_pixels": Range(0, 121_000_000, "pixels", "pixels of a tile at 10 m", integer=True),
}
"""Valid range of every numeric setting of :class:`CorrectionConfig` (checked in its ``__post_init__``,
documented in ``docs/settings.md``); ``aerosol`` is one of continental, maritime or auto."""

CORRECTION_RULES: tuple[Rule, ...] = (
    OneOf("aerosol", (*AEROSOL_MODELS, "auto")),
    AllAbove("ddv.b12_upper", "ddv.b12_lower"),
    Increasing("cirrus.clear_range"),
)
"""Conditions on the form of settings and between settings of :class:`CorrectionConfig` (checked after
:data:`CORRECTION_RANGES`, in this order)."""

#: Sen2Cor user GIPP (``L2A_GIPP.xml``) names of the settings read from it.
GIPP_NAMES: Mapping[str, str] = {
    "aerosol": "Aerosol_Type", "ozone_cm_atm": "Ozone_Content", "cirrus_correction": "Cirrus_Correction",
    "adjacency_km": "Adj_Km", "default_aot": "Visibility", "elevation_km": "Altitude",
}  # fmt: skip


@dataclass(frozen=True)
class CorrectionConfig:
    """Settings of the atmospheric correction (Sen2Cor 2.8 GIPP defaults where one exists)."""

    aerosol: str = "continental"
    """``continental`` (Sen2Cor RURAL), ``maritime`` or ``auto`` (the model whose blue DDV reflectance fits best)."""
    default_aot: float = field(default_factory=lambda: round(visibility_to_aot(40.0), 3))
    """AOT550 used when DDV fails (Sen2Cor ``Visibility`` 40 km)."""
    ozone_cm_atm: float = 0.331
    """Ozone column (Sen2Cor ``Ozone_Content`` 331 DU); 0: the product's ECMWF ozone (``AUX_ECMWFT``), or
    :data:`DEFAULT_OZONE_CM_ATM` without it."""
    start_water_vapour_cm: float = 1.0
    """Column above the ground assumed where APDA has no answer before the AOT is known: the DDV
    candidate selection (``AC_Wv_Iter_Start_Summer``) and DDV pixels without B8A/B09 signal."""
    default_water_vapour_cm: float = 1.0
    """Column above the ground used where APDA has no land pixel at all."""
    elevation_km: float = 0.0
    """Surface elevation when no DEM is given."""
    cirrus_correction: bool = False
    """Sen2Cor ``Cirrus_Correction`` (off by default)."""
    adjacency_km: float = 1.0
    """Sen2Cor ``Adj_Km``: range of the adjacency background."""
    aot_smoothing_km: float = 1.0
    """Sen2Cor ``AC_Ddv_Smooting_Window``: Gaussian sigma of the AOT map."""
    cloud_distance_km: float = 1.0
    """DDV pixels must be this far from clouds."""
    negative_fraction: float = 0.01
    """``AC_Cut_Off_Aot_Iter``: at most this fraction of vegetation/soil with red BOA below ``negative_red``."""
    negative_red: float = 0.01
    cams_prior_weight: float = 0.0
    """Weight of the L1C's CAMS forecast AOT in the AOT map where DDV succeeds: the map is
    ``(1 - w) DDV + w CAMS`` (0: DDV alone, as Sen2Cor; no effect on products without ``AUX_CAMSFO``).
    Where DDV fails CAMS is used whole whatever the weight."""
    ddv: DDVSettings = field(default_factory=DDVSettings)
    cirrus: cirrus.CirrusSettings = field(default_factory=cirrus.CirrusSettings)

    def __post_init__(self) -> None:
        check_settings(self, CORRECTION_RANGES, CORRECTION_RULES, "atmospheric correction")


@dataclass(frozen=True)
class Scene:
    """What the correction needs of a product on one working grid (all dask arrays, same chunks)."""

    toa: dict[str, da.Array]
    """TOA reflectance per band (float32, NaN = no data)."""
    sun_zenith: da.Array
    sun_azimuth: da.Array
    view_zenith: dict[str, da.Array]
    """Per band; per pixel, or on a coarse grid with the same blocks (only block means are used)."""
    view_azimuth: dict[str, da.Array]
    elevation_km: da.Array
    resolution_m: float
    spacecraft: str
    """``S2A`` or ``S2B`` (LUT spectral responses)."""
    cos_incidence: da.Array | None = None
    """Terrain: cosine of the local solar incidence (None = flat)."""
    sunlit: da.Array | None = None
    """Terrain: 0 in cast shadow."""
    sky_view: da.Array | None = None
    """Terrain: sky-view factor."""
    sun_azimuth_coarse: da.Array | None = None
    """Sun azimuth on the grid of the view angles when those are coarse (for relative azimuths)."""
    aux: AuxiliaryData | None = None
    """The product's CAMS / ECMWF fields (None: the L1C has none)."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """Sources of inputs decided before the correction (``ELEVATION_SOURCE``, ``PRESSURE_SOURCE``), for the summary."""


@dataclass(frozen=True)
class Atmosphere:
    """Retrieved atmosphere on the working grid and its summary."""

    aot: da.Array
    """AOT550 map (float32, NaN = no data)."""
    water_vapour: da.Array
    """Water vapour map in cm (float32, NaN = no data)."""
    aerosol: str
    """Aerosol model used."""
    summary: dict[str, Any]
    """AOT_RETRIEVAL_METHOD, GRANULE_MEAN_AOT, GRANULE_MEAN_WV, DDV_PIXEL_PERCENTAGE, ..."""
    totals: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """The scene-wide sums the retrieval used, by name (given or computed)."""


def _lut(path: str) -> RadiativeTransferLUT:
    return load_lut(Path(path))


def _mean_angle(a: NDArray[Any]) -> float:
    v = a[np.isfinite(a)]
    return float(v.mean()) if v.size else 0.0


def _table(lut_path: str, spacecraft: str, band: str, aerosol: str, ozone: float, sza: NDArray[Any], vza: NDArray[Any],
           raa: NDArray[Any]) -> DenseTable:  # fmt: skip
    geometry = (_mean_angle(sza), _mean_angle(vza), _mean_angle(raa))
    return _lut(lut_path).geometry_table(spacecraft, band, aerosol, *geometry, ozone).dense()


def _irradiance(t: AtmosphericTerms, sza: NDArray[Any], terrain: tuple[NDArray[Any], ...] | None) -> NDArray[Any]:
    cos_sza = np.cos(np.radians(sza))
    if terrain is None:
        return rt.irradiance_factor(t, cos_sza)
    cos_i, sunlit, sky = terrain
    return rt.irradiance_factor(t, cos_sza, cos_i, sunlit, sky)


def _relative_azimuth(saa: da.Array, vaa: da.Array) -> da.Array:
    raa: da.Array = da.map_blocks(relative_azimuth, saa, vaa, dtype=np.float64)
    return raa


# --- DDV aerosol ------------------------------------------------------------------------------------------------


#: Margin on the B12 thresholds for the pixels whose water vapour is retrieved before the DDV
#: selection: B12's two-way gas transmittance changes by at most 12 % between the default start
#: column (1 cm) and 6 cm, and 6 % down to 0 cm, at air masses up to 5.
DDV_WV_MARGIN = 1.2


def ddv_layer_count(n_models: int) -> int:
    """Layers of the DDV intermediate: level, water vapour, then per aerosol model AOT and blue residual."""
    return 2 + 2 * n_models


def _ddv_block(
    toa04: NDArray[Any], toa8a: NDArray[Any], toa09: NDArray[Any], toa12: NDArray[Any], toa02: NDArray[Any],
    scl: NDArray[Any], near_cloud: NDArray[Any], bg04: NDArray[Any], bg12: NDArray[Any], bg02: NDArray[Any],
    sza: NDArray[Any], vza: NDArray[Any], raa: NDArray[Any], elev: NDArray[Any], *,
    lut_path: str, spacecraft: str, models: tuple[str, ...], wv: float, ozone: float, settings: DDVSettings,
    start_aot: float, wv_cell: int,
) -> NDArray[np.float32]:  # fmt: skip
    """Per pixel: [DDV level, water vapour, then per model: AOT, blue residual] (NaN where not DDV).

    The DDV selection (B12 reflectance thresholds) and the AOT use each pixel's own water
    vapour, not a fixed column (whose AOT error grew with the real column): APDA first, at
    the prior AOT ``start_aot`` (APDA depends little on the aerosol), on the ``wv_cell`` x
    ``wv_cell`` cells of B09's native grid holding pixels that could be DDV.
    """
    out = np.full((ddv_layer_count(len(models)),) + toa04.shape, np.nan, dtype=F32)
    out[0] = 0
    usable = np.isfinite(toa04) & np.isfinite(toa12) & ~near_cloud & np.isin(scl, (VEGETATION, NOT_VEGETATED))
    if not usable.any():
        return out
    cos_sza = np.cos(np.radians(sza))
    b12_0 = _table(lut_path, spacecraft, "B12", models[0], ozone, sza, vza, raa)
    t12 = b12_0.at(start_aot, elev, wv)
    rho12 = rt.surface_from_toa_uniform(toa12, t12, rt.irradiance_factor(t12, cos_sza))
    # Pixels that could be DDV at any column; their B12 reflectance is then redone with their own.
    wide = replace(settings, b12_lower=settings.b12_lower / DDV_WV_MARGIN,
                   b12_upper=tuple(u * DDV_WV_MARGIN for u in settings.b12_upper))  # fmt: skip
    maybe = ddv_candidates(rho12, toa04, toa8a, scl, cos_sza, usable, wide) > 0
    if not maybe.any():
        return out
    b8a, b09 = (_table(lut_path, spacecraft, b, models[0], ozone, sza, vza, raa) for b in ("B8A", "B09"))
    wv_px = np.full(toa04.shape, np.nan)
    wv_px[maybe] = water_vapour_of_cells(toa8a, toa09, b8a, b09, start_aot, elev, maybe, wv_cell, wv)
    t12m = b12_0.at(start_aot, elev[maybe], wv_px[maybe])
    rho12[maybe] = rt.surface_from_toa_uniform(toa12[maybe], t12m, rt.irradiance_factor(t12m, cos_sza[maybe]))
    level = ddv_candidates(rho12, toa04, toa8a, scl, cos_sza, usable & maybe, settings)
    out[0] = level
    sel = level > 0
    if not sel.any():
        return out
    wv_sel = wv_px[sel]
    out[1][sel] = wv_sel
    for i, model in enumerate(models):
        red, b12 = (_table(lut_path, spacecraft, b, model, ozone, sza, vza, raa) for b in ("B04", "B12"))
        aot = aot_at_ddv(toa04[sel], toa12[sel], red, b12, elev[sel], wv_sel, cos_sza[sel], settings, bg04[sel],
                         bg12[sel])  # fmt: skip
        # Blue check (Sen2Cor's aerosol-type test): rho_blue should be half of rho_red.
        tb = _table(lut_path, spacecraft, "B02", model, ozone, sza, vza, raa).at(aot, elev[sel], wv_sel)
        rho_blue = corrected_reflectance(toa02[sel], bg02[sel], tb, cos_sza[sel])
        rho12s = corrected_reflectance(toa12[sel], bg12[sel], b12.at(aot, elev[sel], wv_sel), cos_sza[sel])
        out[2 + 2 * i][sel] = aot
        out[3 + 2 * i][sel] = rho_blue - 0.25 * rho12s
    return out


def _ddv_sums(
    scl: NDArray[Any], level: NDArray[Any], wv: NDArray[Any], *per_model: NDArray[Any], n_levels: int
) -> NDArray[np.float64]:
    """[non-water valid count] + per level k: [count, sum water vapour, per model: sum AOT, sum blue residual^2]."""
    out = [
        float(
            np.sum(
                np.isin(
                    scl, (VEGETATION, NOT_VEGETATED, SHADOW, int(SCL.UNCLASSIFIED), SNOW, int(SCL.DARK_AREA_PIXELS))
                )
            )
        )
    ]
    for k in range(1, n_levels + 1):
        m = (level >= 1) & (level <= k)
        out.append(float(m.sum()))
        out.append(float(np.sum(wv[m], dtype=np.float64)))
        for j in range(0, len(per_model), 2):
            out.append(float(np.sum(per_model[j][m], dtype=np.float64)))
            out.append(float(np.sum(np.square(per_model[j + 1][m], dtype=np.float64))))
    return np.asarray(out)


def _negative_block(
    toa04: NDArray[Any], scl: NDArray[Any], sza: NDArray[Any], vza: NDArray[Any], raa: NDArray[Any],
    elev: NDArray[Any], *, lut_path: str, spacecraft: str, aerosol: str, aot: float, wv: float, ozone: float,
    red_min: float,
) -> NDArray[np.float64]:  # fmt: skip
    """[count of vegetation/soil] + per AOT factor: count with red BOA below ``red_min``."""
    land = np.isin(scl, (VEGETATION, NOT_VEGETATED)) & np.isfinite(toa04)
    out = [float(land.sum())]
    if not land.any():
        return np.asarray(out + [0.0] * len(NEGATIVE_CHECK_FACTORS))
    table = _table(lut_path, spacecraft, "B04", aerosol, ozone, sza, vza, raa)
    cos_sza = np.cos(np.radians(sza[land]))
    for f in NEGATIVE_CHECK_FACTORS:
        t = table.at(aot * f, elev[land], wv)
        rho = rt.surface_from_toa_uniform(toa04[land], t, rt.irradiance_factor(t, cos_sza))
        out.append(float(np.sum(rho < red_min)))
    return np.asarray(out)


def _select_ddv(level: NDArray[Any], aot: NDArray[Any], *, k: int, fill: float, scale: float) -> NDArray[np.float32]:
    sel = (level >= 1) & (level <= k) & np.isfinite(aot)
    return (np.where(sel, aot, fill) * scale).astype(F32)


# --- water vapour -----------------------------------------------------------------------------------------------


def _wv_block(
    toa8a: NDArray[Any], toa09: NDArray[Any], aot: NDArray[Any], sza: NDArray[Any], vza: NDArray[Any],
    raa: NDArray[Any], elev: NDArray[Any], *, lut_path: str, spacecraft: str, aerosol: str, ozone: float,
) -> NDArray[np.float32]:  # fmt: skip
    ok = np.isfinite(toa8a) & np.isfinite(toa09) & np.isfinite(aot)
    out = np.full(toa8a.shape, np.nan, dtype=F32)
    if ok.any():
        t8 = _table(lut_path, spacecraft, "B8A", aerosol, ozone, sza, vza, raa)
        t9 = _table(lut_path, spacecraft, "B09", aerosol, ozone, sza, vza, raa)
        out[ok] = water_vapour_apda(toa8a[ok], toa09[ok], t8, t9, aot[ok], elev[ok])
    return out


def _land_sums(wv: NDArray[Any], scl: NDArray[Any]) -> NDArray[np.float64]:
    land = np.isin(scl, (VEGETATION, NOT_VEGETATED, SNOW)) & np.isfinite(wv)
    valid = np.isfinite(wv)
    return np.asarray([float(wv[land].sum()), float(land.sum()), float(wv[valid].sum()), float(valid.sum())])


def _wv_fill(wv: NDArray[Any], scl: NDArray[Any], *, land_mean: float) -> NDArray[np.float32]:
    # Over water and clouds APDA has no usable surface: Sen2Cor's WV_Watermask=1 puts the land average there.
    land = np.isin(scl, (VEGETATION, NOT_VEGETATED, SNOW)) & np.isfinite(wv)
    out = np.where(land, wv, land_mean)
    return np.where(scl == NODATA, np.nan, out).astype(F32)


def _wv_fill_field(wv: NDArray[Any], scl: NDArray[Any], fill: NDArray[Any]) -> NDArray[np.float32]:
    # As _wv_fill, with a field (the ECMWF column) in place of the land mean.
    land = np.isin(scl, (VEGETATION, NOT_VEGETATED, SNOW)) & np.isfinite(wv)
    out = np.where(land, wv, fill)
    return np.where(scl == NODATA, np.nan, out).astype(F32)


# --- cirrus -----------------------------------------------------------------------------------------------------


def _gamma_sums(*blocks: NDArray[Any], settings: cirrus.CirrusSettings) -> NDArray[np.float64]:
    # Blocks: the visible bands then the cirrus reflectance; their sums add up.
    rho_c = blocks[-1].astype(np.float64)
    total: NDArray[np.float64] = np.sum(
        [cirrus.gamma_sums(t.astype(np.float64), rho_c, settings) for t in blocks[:-1]], axis=0
    )
    return total


def _background_factor(chunk_px: int, resolution_m: float) -> int:
    """How many pixels a side one cell of the adjacency background's grid (about 100 m) holds."""
    return lazy.chunk_divisor(chunk_px, resolution_m, 100.0)


def _coarse_chunks(chunks: tuple[tuple[int, ...], ...], factor: int) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(-(-c // factor) for c in dim) for dim in chunks)


def background_chunks(chunks: tuple[tuple[int, ...], ...], resolution_m: float) -> tuple[tuple[int, ...], ...] | None:
    """The chunks of the first passes (:meth:`AtmosphericCorrection.first_pass`) of bands on ``chunks``.

    None when those chunks do not split into coarser cells (the background is then computed at
    full resolution, with no first pass to store).
    """
    k = _background_factor(chunks[0][0], resolution_m)
    return None if k == 1 else _coarse_chunks(chunks, k)


def _remove_cirrus(toa: NDArray[Any], rho_c: NDArray[Any], *, gamma: float) -> NDArray[np.float32]:
    return cirrus.remove_cirrus(toa, rho_c, gamma).astype(F32)


# --- BOA --------------------------------------------------------------------------------------------------------


def _boa_block(
    toa: NDArray[Any], bg: NDArray[Any] | None, aot: NDArray[Any], wv: NDArray[Any], elev: NDArray[Any],
    sza: NDArray[Any], vza: NDArray[Any], raa: NDArray[Any], *terrain: NDArray[Any], lut_path: str, spacecraft: str,
    band: str, aerosol: str, ozone: float,
) -> NDArray[np.float32]:  # fmt: skip
    ok = np.isfinite(toa) & np.isfinite(aot) & np.isfinite(wv)
    out = np.full(toa.shape, np.nan, dtype=F32)
    if not ok.any():
        return out
    table = _table(lut_path, spacecraft, band, aerosol, ozone, sza, vza, raa)
    # Strip by strip: the temporaries stay in the CPU caches (see sen2core.kernels.strips).
    for s in row_strips(*toa.shape):
        m = ok[s]
        if m.any():
            out[s][m] = _boa_pixels(
                table, m, toa[s], None if bg is None else bg[s], aot[s], wv[s], elev[s], sza[s],
                tuple(x[s] for x in terrain),
            )  # fmt: skip
    return out


def _boa_pixels(
    table: DenseTable, ok: NDArray[np.bool_], toa: NDArray[Any], bg: NDArray[Any] | None, aot: NDArray[Any],
    wv: NDArray[Any], elev: NDArray[Any], sza: NDArray[Any], terrain: tuple[NDArray[Any], ...],
) -> NDArray[np.floating]:  # fmt: skip
    """Surface reflectance of the pixels ``ok`` of a strip (see :func:`_boa_block`)."""
    t = table.at(aot[ok], elev[ok], wv[ok])
    ter = tuple(x[ok] for x in terrain) if terrain else None
    e = _irradiance(t, sza[ok], ter)
    rho_toa = toa[ok]
    with np.errstate(invalid="ignore", divide="ignore"):
        if bg is None:
            rho = rt.surface_from_toa_uniform(rho_toa, t, e)
        else:
            b = bg[ok].astype(np.float64)
            gap = ~np.isfinite(b)
            if gap.any():  # no background (all clouds around): a uniform surface, for those pixels only
                tg = AtmosphericTerms(*(np.asarray(getattr(t, f.name))[gap] for f in fields(t)))
                b[gap] = rt.surface_from_toa_uniform(rho_toa[gap], tg, e[gap])
            rho = rt.surface_from_toa(rho_toa, b, t, e)
    return np.clip(rho, -0.2, 1.5)  # beyond this a pixel is not a surface the model describes


def _quantise(x: da.Array, step: float = 1e-3) -> da.Array:
    quantised: da.Array = (da.round(x / step) * step).astype(F32)
    return quantised


def _mask_clouds(rho: NDArray[Any], scl: NDArray[Any]) -> NDArray[np.float32]:
    # Cloud tops are not the ground the adjacency effect comes from: leave them out of the background.
    return np.where(np.isin(scl, (CLOUD_MEDIUM, CLOUD_HIGH)), np.nan, rho).astype(F32)


def _masked_block_mean(rho: NDArray[Any], scl: NDArray[Any], *, factor: int) -> NDArray[np.float32]:
    return block_mean(_mask_clouds(rho, scl), factor)


def _cloud_free_mean(x: da.Array, scl: da.Array, factor: int) -> da.Array:
    """Means of ``factor`` x ``factor`` blocks with cloud pixels left out, chunk by chunk."""
    chunks = _coarse_chunks(x.chunks, factor)
    means: da.Array = da.map_blocks(_masked_block_mean, x, scl, factor=factor, chunks=chunks, dtype=F32)
    return means


def _private(*arrays: da.Array, seed: Any) -> tuple[da.Array, ...]:
    """Copies of ``arrays`` with keys of their own (persisted inputs are shared, not recomputed).

    A cheap per-pixel input (TOA from the kept digital numbers, an upsampled AOT map) that
    several bands and passes share is computed once and held until its last consumer runs.
    A private copy has one consumer, into which dask fuses it.
    """
    return tuple(clone(*arrays, seed=seed))


def _refined(coarse: da.Array, factor: int, chunks: tuple[tuple[int, ...], ...]) -> da.Array:
    """``coarse`` refined bilinearly onto ``chunks`` (a one-cell halo joins the blocks smoothly)."""
    return lazy.halo_map(_refine, coarse, depth=1, chunks=chunks, boundary="nearest", trim=False, factor=factor)


def _refine(coarse: NDArray[Any], *, factor: int, chunk_shape: tuple[int, int]) -> NDArray[np.float32]:
    return adjacency.bilinear_refine(coarse, factor, chunk_shape)


def _near(mask: NDArray[Any], *, size: int) -> NDArray[np.bool_]:
    return adjacency.box_mean(mask.astype(np.float64), size) > 5.0 / 255.0


def water_vapour_grid(chunks: tuple[tuple[int, ...], ...], resolution_m: float
                      ) -> tuple[int, tuple[tuple[int, ...], ...]]:  # fmt: skip
    """The grid APDA runs on, for a working grid of ``chunks`` at ``resolution_m``: the factor of its cells
    (B09's 60 m, where every block but the last splits into them; else 1, the working grid) and its chunks.

    The intermediate ``wv_raw`` (:data:`INTERMEDIATES`) is on this grid: refining it onto the
    working grid reads one cell of the neighbouring blocks.
    """
    k = round(60 / resolution_m)
    if not (k > 1 and all(c % k == 0 for dim in chunks for c in dim[:-1])):
        return 1, chunks
    return k, tuple(tuple(-(-c // k) for c in dim) for dim in chunks)


def _cams_prior(scene: Scene, scl: da.Array) -> tuple[da.Array, float] | None:
    """The L1C's CAMS forecast AOT within the LUT's range: its map (lazy) and tile mean; None without one."""
    cams = scene.aux.aot550 if scene.aux is not None else None
    mean = AuxiliaryData.mean(cams)
    if cams is None or mean is None:
        return None
    return da.clip(lazy.node_field(cams, scl), 0.0, 1.3), float(np.clip(mean, 0.0, 1.3))


class _SceneSums:
    """Totals of the retrieval's scene-wide sums: those already known, or (``compute_missing``) computed here."""

    def __init__(self, known: dict[str, Any], compute_missing: bool) -> None:
        self.known = known
        self.compute_missing = compute_missing

    def total(self, sums: lazy.BlockSums) -> NDArray[np.float64] | None:
        """The total of ``sums`` (None: not known and not to be computed)."""
        if sums.name not in self.known:
            if not self.compute_missing:
                return None
            (self.known[sums.name],) = compute(sums.total())
        return np.asarray(self.known[sums.name], dtype=np.float64)


@dataclass(frozen=True)
class _DDVLevel:
    """The DDV level chosen: the first whose pixels are enough (B12 thresholds in increasing order)."""

    index: int
    """Index of its threshold in ``ddv.b12_upper``."""
    layers: list[da.Array]
    """The DDV layers (:func:`_ddv_block`)."""
    sums: NDArray[np.float64]
    """Its totals: count, water vapour, then per model AOT and blue misfit (:func:`_ddv_sums`)."""
    nonwater: float
    """Valid pixels other than water."""


#: Intermediates of the retrieval that a caller may compute once, store and give back
#: (:meth:`AtmosphericCorrection.intermediate`, ``stored``), in the order they are needed.
INTERMEDIATES = ("ddv", "wv_raw")


class AtmosphericCorrection:
    """Retrieve the atmosphere of a scene and correct its bands (lazy, on dask arrays)."""

    def __init__(self, config: CorrectionConfig = CorrectionConfig(), lut: RadiativeTransferLUT | None = None):
        self.config = config
        self.lut = lut or load_lut()
        self.lut_path = str(self.lut.path)

    def _raa(self, scene: Scene, band: str) -> da.Array:
        saa = scene.sun_azimuth if scene.sun_azimuth_coarse is None else scene.sun_azimuth_coarse
        return _relative_azimuth(saa, scene.view_azimuth[band])

    def ozone(self, scene: Scene) -> tuple[float, str]:
        """Ozone column (cm-atm) used for ``scene`` and its source: ``CONFIG``, ``ECMWF`` or ``DEFAULT``.

        A configured column is used as it is; 0 asks for the product's ECMWF total column
        (its mean over the tile, clipped to the LUT's 0.2-0.5 cm-atm), else 0.331.
        """
        if self.config.ozone_cm_atm != 0:
            return self.config.ozone_cm_atm, "CONFIG"
        du = AuxiliaryData.mean(scene.aux.ozone_du) if scene.aux is not None else None
        if du is None:
            return DEFAULT_OZONE_CM_ATM, "DEFAULT"
        # Quantised to 0.1 DU, as the summary records it: the correction uses what the product states.
        return round(min(max(du / 1000.0, 0.2), 0.5), 4), "ECMWF"

    def _terrain(self, scene: Scene) -> tuple[da.Array, ...]:
        if scene.cos_incidence is None:
            return ()
        assert scene.sunlit is not None and scene.sky_view is not None
        return (scene.cos_incidence, scene.sunlit, scene.sky_view)

    def cirrus_sums(self, scene: Scene) -> lazy.BlockSums | None:
        """The scene-wide sums behind the cirrus gamma (None without B10), named ``cirrus_gamma_{res}m``."""
        if "B10" not in scene.toa:
            return None
        rho_c = lazy.median3(scene.toa["B10"])
        visible = [scene.toa[b] for b in ("B01", "B02", "B03") if b in scene.toa]
        name = f"cirrus_gamma_{scene.resolution_m:g}m"
        return lazy.block_sums(_gamma_sums, *visible, rho_c, name=name, settings=self.config.cirrus)

    def remove_cirrus(
        self, scene: Scene, scl: da.Array, known: Mapping[str, Any] | None = None
    ) -> tuple[Scene, float | None]:
        """Cirrus-corrected scene (Sen2Cor's cirrus correction) and the gamma used; unchanged when too few samples.

        ``known``: totals of :meth:`cirrus_sums` already added up (by name); computed here otherwise.
        """
        sums = self.cirrus_sums(scene)
        if sums is None:
            return scene, None
        rho_c = lazy.median3(scene.toa["B10"])
        if known is not None and sums.name in known:
            total = np.asarray(known[sums.name], dtype=np.float64)
        else:
            (total,) = compute(sums.total())
        gamma = cirrus.gamma_from_sums(total, self.config.cirrus)
        if gamma is None:
            log.info("cirrus correction skipped: too few cirrus or clear samples")
            return scene, None
        toa = dict(scene.toa)
        for b, x in scene.toa.items():
            if b != "B10":
                g = cirrus.band_gamma(gamma, WAVELENGTH_UM[b])
                toa[b] = da.map_blocks(_remove_cirrus, x, rho_c, gamma=g, dtype=F32)
        return Scene(**{**scene.__dict__, "toa": toa}), gamma

    def retrieve(
        self,
        scene: Scene,
        scl: da.Array,
        known: Mapping[str, Any] | None = None,
        keep: bool = True,
        stored: Mapping[str, da.Array] | None = None,
    ) -> Atmosphere:
        """AOT by DDV and water vapour by APDA on the scene's working grid.

        Parameters
        ----------
        scene, scl
            The scene and its classification.
        known
            Totals of the scene-wide sums already added up (:meth:`next_sum`); the
            others are computed here, over the whole scene, in order.
        keep
            Persist the intermediates read more than once (the DDV layers, the maps) in
            the cluster: for a run over the whole scene; a window's run keeps nothing.
        stored
            :data:`INTERMEDIATES` computed earlier and read back from files (processing
            tiles: a window's neighbourhoods then read them instead of computing them).
        """
        found = self._retrieval(scene, scl, dict(known or {}), keep, compute_missing=True, stored=stored)
        assert isinstance(found, Atmosphere)
        return found

    def intermediate(
        self, scene: Scene, scl: da.Array, name: str, known: Mapping[str, Any],
        stored: Mapping[str, da.Array] | None = None,
    ) -> da.Array | lazy.BlockSums:  # fmt: skip
        """The lazy intermediate ``name`` of :data:`INTERMEDIATES`, or the first sum it needs not in ``known``.

        ``ddv``: the DDV layers (level, water vapour, then AOT and misfit per aerosol model), stacked on
        axis 0; ``wv_raw``: the APDA water vapour before the land-mean fill, on APDA's own grid
        (:func:`water_vapour_grid`: 60 m cells on a 20 m working grid).
        """
        if name not in INTERMEDIATES:
            raise ValueError(f"no intermediate {name!r} (intermediates: {', '.join(INTERMEDIATES)})")
        found = self._retrieval(scene, scl, dict(known), keep=False, compute_missing=False, stored=stored, want=name)
        assert isinstance(found, da.Array | lazy.BlockSums)
        return found

    def next_sum(
        self, scene: Scene, scl: da.Array, known: Mapping[str, Any], stored: Mapping[str, da.Array] | None = None
    ) -> lazy.BlockSums | None:
        """The first scene-wide sum of :meth:`retrieve` not in ``known`` (None: all known).

        The sums depend on each other (DDV selection, then its negative-reflectance
        check, then the land mean of the water vapour): ask again once a total is known.
        """
        found = self._retrieval(scene, scl, dict(known), keep=False, compute_missing=False, stored=stored)
        return found if isinstance(found, lazy.BlockSums) else None

    def _retrieval(
        self,
        scene: Scene,
        scl: da.Array,
        known: dict[str, Any],
        keep: bool,
        compute_missing: bool,
        stored: Mapping[str, da.Array] | None = None,
        want: str | None = None,
    ) -> Atmosphere | lazy.BlockSums | da.Array:
        """The retrieval's steps in order: DDV layers, aerosol and AOT map, water vapour, summary.

        Returns the intermediate ``want`` when it is reached, the first scene-wide sum that is not
        in ``known`` (unless ``compute_missing``: then it is computed and added to ``known``),
        else the atmosphere.
        """
        stored = stored or {}
        sums = _SceneSums(known, compute_missing)
        models = AEROSOL_MODELS if self.config.aerosol == "auto" else (self.config.aerosol,)
        ozone, ozone_source = self.ozone(scene)
        raa = self._raa(scene, "B04")
        ddv = stored["ddv"] if "ddv" in stored else self._ddv_layers(scene, scl, models, ozone, raa)
        if want == "ddv":
            return ddv
        if keep:
            (ddv,) = lazy.persist(ddv)
        summary: dict[str, Any] = {"AEROSOL_TYPE": None, "DDV_SWIR_THRESHOLD": None}
        aerosol_found = self._aerosol(scene, scl, ddv, models, ozone, raa, sums, summary)
        if isinstance(aerosol_found, lazy.BlockSums):
            return aerosol_found
        aerosol, aot_map, scene_aot = aerosol_found
        # Quantised as stored (AOT x1000): the correction then uses exactly the AOT the product records.
        aot_map = _quantise(aot_map)
        if keep:
            (aot_map,) = lazy.persist(aot_map)
        cells = stored["wv_raw"] if "wv_raw" in stored else self._water_vapour_cells(scene, aot_map, aerosol, ozone)
        if want == "wv_raw":
            return cells
        wv_raw = self._on_working_grid(cells, scene)
        if keep:
            (wv_raw,) = lazy.persist(wv_raw)
        wv_found = self._water_vapour(scene, scl, wv_raw, sums)
        if isinstance(wv_found, lazy.BlockSums):
            return wv_found
        wv_map, land_mean, wv_method, wv_fill_source = wv_found
        if keep:
            (wv_map,) = lazy.persist(wv_map)
        summary.update(GRANULE_MEAN_AOT=round(float(scene_aot), 4), WV_RETRIEVAL_METHOD=wv_method,
                       GRANULE_MEAN_WV=round(float(land_mean), 4), OZONE_SOURCE=ozone_source,
                       OZONE_VALUE=round(ozone * 1000.0, 1), LUT_ID=self.lut.id)  # fmt: skip
        # Where every input came from (the L1C's CAMS / ECMWF files, the retrieval, the settings).
        aot_source = {"SEN2COR_DDV": "DDV"}.get(summary["AOT_RETRIEVAL_METHOD"], summary["AOT_RETRIEVAL_METHOD"])
        summary.update(AOT_SOURCE="DDV+CAMS" if "AOT_CAMS_WEIGHT" in summary else aot_source,
                       WV_SOURCE=wv_method.split("_")[0], WV_FILL_SOURCE=wv_fill_source, **scene.sources)  # fmt: skip
        totals = {k: tuple(float(v) for v in np.ravel(x)) for k, x in known.items()}
        return Atmosphere(aot=aot_map, water_vapour=wv_map, aerosol=aerosol, summary=summary, totals=totals)

    def _ddv_layers(
        self, scene: Scene, scl: da.Array, models: tuple[str, ...], ozone: float, raa: da.Array
    ) -> da.Array:
        """Step 1: the DDV layers (level, water vapour, then AOT and blue misfit per model; :func:`_ddv_block`)."""
        cfg, res, t = self.config, scene.resolution_m, scene.toa
        cloud = da.isin(scl, (CLOUD_MEDIUM, CLOUD_HIGH, THIN_CIRRUS))
        size = adjacency.window_pixels(cfg.cloud_distance_km, res)
        near_cloud = lazy.overlap(_near, cloud, size // 2 + 1, dtype=bool, size=size)
        adj = adjacency.window_pixels(cfg.adjacency_km, res)
        bg = {b: lazy.box_mean(t[b], adj) for b in ("B04", "B12", "B02")}
        n_layers = ddv_layer_count(len(models))
        # APDA on B09's 60 m pixels where the blocks start on that grid (as for the water-vapour map).
        wv_cell, _ = water_vapour_grid(t["B09"].chunks, res)
        ddv: da.Array = da.map_blocks(
            _ddv_block, t["B04"], t["B8A"], t["B09"], t["B12"], t["B02"], scl, near_cloud, bg["B04"], bg["B12"],
            bg["B02"], scene.sun_zenith,
            scene.view_zenith["B04"], raa, scene.elevation_km,
            lut_path=self.lut_path, spacecraft=scene.spacecraft, models=models, wv=cfg.start_water_vapour_cm,
            ozone=ozone, settings=cfg.ddv, start_aot=cfg.default_aot, wv_cell=wv_cell,
            new_axis=0, chunks=((n_layers,),) + t["B04"].chunks, dtype=F32,
        )  # fmt: skip
        return ddv

    def _aerosol(
        self, scene: Scene, scl: da.Array, ddv: da.Array, models: tuple[str, ...], ozone: float, raa: da.Array,
        sums: _SceneSums, summary: dict[str, Any],
    ) -> tuple[str, da.Array, float] | lazy.BlockSums:  # fmt: skip
        """Step 2: the aerosol model, AOT map and scene AOT, from the DDV level with enough pixels (else CAMS,
        else the default); the first missing sum instead, if any. Records its choices in ``summary``."""
        cfg = self.config
        layers = [ddv[i] for i in range(ddv.shape[0])]
        n_levels = len(cfg.ddv.b12_upper)
        ddv_sums = lazy.block_sums(_ddv_sums, scl, *layers, name="ddv", n_levels=n_levels)
        totals = sums.total(ddv_sums)
        if totals is None:
            return ddv_sums
        # Per level: count, water vapour, then per model AOT and blue misfit (see _ddv_sums).
        nonwater, per_level = totals[0], totals[1:].reshape(n_levels, 2 + 2 * len(models))
        enough = cfg.ddv.min_fraction * nonwater
        k_sel = next((k for k in range(n_levels) if nonwater > 0 and per_level[k, 0] >= enough), None)
        if k_sel is None:
            found = self._aot_without_ddv(scene, scl, models, summary)
        else:
            ddv_level = _DDVLevel(k_sel, layers, per_level[k_sel], float(nonwater))
            by_ddv = self._aot_from_ddv(scene, scl, ddv_level, models, ozone, raa, sums, summary)
            if isinstance(by_ddv, lazy.BlockSums):
                return by_ddv
            found = by_ddv
        summary["AEROSOL_TYPE"] = found[0]
        if len(models) == 1:
            summary["AEROSOL_TYPE_SOURCE"] = "CONFIG"
        elif "AEROSOL_TYPE_SOURCE" not in summary:
            summary["AEROSOL_TYPE_SOURCE"] = "DDV" if k_sel is not None else "DEFAULT"
        return found

    def _aot_without_ddv(
        self, scene: Scene, scl: da.Array, models: tuple[str, ...], summary: dict[str, Any]
    ) -> tuple[str, da.Array, float]:
        """Step 2 without dark vegetation: the L1C's CAMS forecast (Sen2Cor 2.10+), else the configured AOT."""
        aerosol = models[0]
        cams = _cams_prior(scene, scl)
        if cams is None:
            aot_map = da.where(scl == NODATA, np.nan, F32(self.config.default_aot)).astype(F32)
            summary.update(AOT_RETRIEVAL_METHOD="DEFAULT", DDV_PIXEL_PERCENTAGE=0.0, AOT_SCALING=1.0)
            return aerosol, aot_map, self.config.default_aot
        cams_map, cams_mean = cams
        if len(models) > 1 and scene.aux is not None and scene.aux.species:
            # No blue test without DDV: the model from the CAMS species instead.
            species = scene.aux.species_aod
            share = species.get("sea_salt", 0.0) / max(sum(species.values()), 1e-9)
            aerosol = "maritime" if share >= SEA_SALT_MARITIME_SHARE else "continental"
            summary["AEROSOL_TYPE_SOURCE"] = "CAMS"
        aot_map = da.where(scl == NODATA, np.nan, cams_map).astype(F32)
        summary.update(AOT_RETRIEVAL_METHOD="CAMS", DDV_PIXEL_PERCENTAGE=0.0, AOT_SCALING=1.0)
        return aerosol, aot_map, cams_mean

    def _aot_from_ddv(
        self, scene: Scene, scl: da.Array, level: _DDVLevel, models: tuple[str, ...], ozone: float, raa: da.Array,
        sums: _SceneSums, summary: dict[str, Any],
    ) -> tuple[str, da.Array, float] | lazy.BlockSums:  # fmt: skip
        """Step 2 by DDV: the model that fits the blue best, its AOT scaled down until few pixels are too dark
        in red (Sen2Cor's negative-reflectance check), smoothed, and blended with the CAMS prior if asked."""
        cfg, res = self.config, scene.resolution_m
        count = level.sums[0]
        sse = [level.sums[3 + 2 * i] for i in range(len(models))]
        im = int(np.argmin(sse)) if len(models) > 1 else 0
        aerosol = models[im]
        scene_aot = float(level.sums[2 + 2 * im] / count)
        # The column the DDV pixels were corrected with, for the check of the same correction.
        ddv_wv = float(level.sums[1] / count)
        neg_sums = lazy.block_sums(
            _negative_block, scene.toa["B04"], scl, scene.sun_zenith, scene.view_zenith["B04"], raa,
            scene.elevation_km, name="negative_check", lut_path=self.lut_path, spacecraft=scene.spacecraft,
            aerosol=aerosol, aot=scene_aot, wv=ddv_wv, ozone=ozone, red_min=cfg.negative_red,
        )  # fmt: skip
        neg = sums.total(neg_sums)
        if neg is None:
            return neg_sums
        land, too_dark = neg[0], neg[1:]
        scale = next(
            (f for f, n in zip(NEGATIVE_CHECK_FACTORS, too_dark, strict=False)
             if land == 0 or n <= cfg.negative_fraction * land),
            0.0,
        )  # fmt: skip
        sigma = max(cfg.aot_smoothing_km * 1000.0 / res, 1.0)
        raw = da.map_blocks(_select_ddv, level.layers[0], level.layers[2 + 2 * im], k=level.index + 1,
                            fill=scene_aot, scale=scale, dtype=F32)  # fmt: skip
        kc = lazy.chunk_divisor(raw.chunks[0][0], res, 100.0)
        if kc > 1 and sigma / kc >= 2.0:
            # A Gaussian of 1 km is smooth on a ~100 m grid: filter the block means there
            # (25 times fewer pixels, a 5 times narrower kernel) and refine bilinearly.
            smooth = _refined(lazy.gaussian(lazy.downsample_mean(raw, kc), sigma / kc), kc, raw.chunks)
        else:
            smooth = lazy.gaussian(raw, sigma)
        scene_aot *= scale
        cams = _cams_prior(scene, scl)
        w = cfg.cams_prior_weight if cams is not None else 0.0
        if cams is not None and w > 0.0:
            # A prior, not a replacement: the forecast's large-scale field pulls the DDV map
            # towards it (DDV is local and biased on some canopies; CAMS is coarse and biased too).
            cams_map, cams_mean = cams
            smooth = (F32(1.0 - w) * smooth + F32(w) * cams_map).astype(F32)
            scene_aot = (1.0 - w) * scene_aot + w * cams_mean
            summary["AOT_CAMS_WEIGHT"] = w
        aot_map = da.where(scl == NODATA, np.nan, da.clip(smooth, 0.0, 1.3))
        ddv_percent = round(float(100.0 * count / level.nonwater), 3)
        summary.update(AOT_RETRIEVAL_METHOD="SEN2COR_DDV", DDV_PIXEL_PERCENTAGE=ddv_percent,
                       DDV_SWIR_THRESHOLD=cfg.ddv.b12_upper[level.index], AOT_SCALING=scale,
                       DDV_MEAN_WV=round(ddv_wv, 4))  # fmt: skip
        return aerosol, aot_map, scene_aot

    def _water_vapour_cells(self, scene: Scene, aot_map: da.Array, aerosol: str, ozone: float) -> da.Array:
        """Step 3: APDA water vapour (NaN where it has no answer), before the fill, on its own grid
        (:func:`water_vapour_grid`); :meth:`_on_working_grid` brings it to the working grid."""
        res, t = scene.resolution_m, scene.toa
        pixels = (t["B8A"], t["B09"], aot_map, scene.sun_zenith)
        angles = (scene.view_zenith["B8A"], self._raa(scene, "B8A"))  # only their block means are used
        wv_kw = dict(lut_path=self.lut_path, spacecraft=scene.spacecraft, aerosol=aerosol, ozone=ozone, dtype=F32)
        # B09 is a 60 m band: APDA runs on its native grid (B8A and the other inputs as 60 m
        # means), nine times fewer inversions than on the 20 m grid, and the map is refined
        # bilinearly. Where the chunks do not split into 60 m cells it runs on the working grid.
        k, _ = water_vapour_grid(t["B09"].chunks, res)
        if k > 1:
            coarse = [lazy.downsample_mean(x, k) for x in (*pixels, scene.elevation_km)]
            cells: da.Array = da.map_blocks(_wv_block, *coarse[:4], *angles, coarse[4], **wv_kw)
            return cells
        wv_raw: da.Array = da.map_blocks(_wv_block, *pixels, *angles, scene.elevation_km, **wv_kw)
        return wv_raw

    def _on_working_grid(self, cells: da.Array, scene: Scene) -> da.Array:
        """The APDA map of :meth:`_water_vapour_cells` refined bilinearly onto the working grid (if coarser)."""
        chunks = scene.toa["B09"].chunks
        k, _ = water_vapour_grid(chunks, scene.resolution_m)
        return _refined(cells, k, chunks) if k > 1 else cells

    def _water_vapour(
        self, scene: Scene, scl: da.Array, wv_raw: da.Array, sums: _SceneSums
    ) -> tuple[da.Array, float, str, str] | lazy.BlockSums:
        """Step 4: the water-vapour map (APDA over land, the land mean or the ECMWF field elsewhere, a 3x3
        median as Sen2Cor's Smooth_WV_Map) with its land mean, method and fill source; or the missing sum."""
        land_sums = lazy.block_sums(_land_sums, wv_raw, scl, name="water_vapour_land")
        ls = sums.total(land_sums)
        if ls is None:
            return land_sums
        ecmwf_wv = scene.aux.water_vapour_cm if scene.aux is not None else None
        ecmwf_mean = AuxiliaryData.mean(ecmwf_wv)
        if ls[1] >= 2:
            land_mean, wv_method = float(ls[0] / ls[1]), "APDA"
        elif ls[3] >= 2:
            land_mean, wv_method = float(ls[2] / ls[3]), "APDA_NO_LAND"
        elif ecmwf_mean is not None:
            land_mean, wv_method = float(np.clip(ecmwf_mean, 0.0, 6.0)), "ECMWF"
        else:
            land_mean, wv_method = self.config.default_water_vapour_cm, "DEFAULT"
        if ecmwf_wv is None or ecmwf_mean is None:
            filled = da.map_blocks(_wv_fill, wv_raw, scl, land_mean=land_mean, dtype=F32)
            wv_fill_source = "LAND_MEAN" if wv_method.startswith("APDA") else wv_method
        else:
            # Over water and clouds: the ECMWF column's pattern at the level of the land retrieval
            # (the forecast's own mean where there is none), so no step appears at coasts.
            level = land_mean / max(ecmwf_mean, 1e-3)
            fill = da.clip(lazy.node_field(ecmwf_wv, scl) * F32(level), 0.0, 6.0)
            filled = da.map_blocks(_wv_fill_field, wv_raw, scl, fill, dtype=F32)
            wv_fill_source = "ECMWF"
        return _quantise(lazy.median3(filled)), land_mean, wv_method, wv_fill_source

    def _background_grid(self, scene: Scene, band: str) -> tuple[int, int]:
        """The coarsening factor of the adjacency background's grid (about 100 m) and its window in cells."""
        k = _background_factor(scene.toa[band].chunks[0][0], scene.resolution_m)
        return k, adjacency.window_pixels(self.config.adjacency_km, scene.resolution_m * k)

    def _band_terms(self, scene: Scene, atmosphere: Atmosphere, band: str) -> dict[str, Any]:
        return dict(lut_path=self.lut_path, spacecraft=scene.spacecraft, band=band, aerosol=atmosphere.aerosol,
                    ozone=self.ozone(scene)[0], dtype=F32)  # fmt: skip

    def _pixel_inputs(self, scene: Scene, atmosphere: Atmosphere) -> tuple[da.Array, ...]:
        return (atmosphere.aot, atmosphere.water_vapour, scene.elevation_km, scene.sun_zenith, *self._terrain(scene))

    @staticmethod
    def _own(scene: Scene, k: int) -> bool:
        # At 10 m the shared per-pixel inputs held between passes reached gigabytes: there each
        # band and pass gets private copies. Measured on a full tile with copies at every
        # resolution, the write stage's peak fell from 6.5 to 3.4 GiB and the stage took about
        # 30 s longer; at 20 m the inputs are four times smaller and stay shared.
        return k > 1 and scene.resolution_m < 15

    def _first_pass(
        self, scene: Scene, atmosphere: Atmosphere, scl: da.Array, band: str, k: int,
        coarse_inputs: tuple[da.Array, ...],
    ) -> da.Array:  # fmt: skip
        """The background's first pass (uniform surface) of ``band`` on the ``k`` times coarser grid."""
        # The first pass runs on the ~100 m means of the cloud-free TOA and of the per-pixel inputs
        # instead of averaging a full-resolution first pass: the inversion is close to linear over
        # such a block (the difference is of the order of S * var(rho), below 1e-3 in the background
        # and 1e-4 in the BOA), and each band is then inverted at full resolution once instead of
        # twice. View angles (and the coarse sun azimuth) only enter through their block means.
        own = self._own(scene, k)
        toa_c, scl_c = _private(scene.toa[band], scl, seed=(band, "first")) if own else (scene.toa[band], scl)
        geo_c = (*coarse_inputs[:4], scene.view_zenith[band], self._raa(scene, band), *coarse_inputs[4:])
        first: da.Array = da.map_blocks(_boa_block, _cloud_free_mean(toa_c, scl_c, k), None, *geo_c,
                                        **self._band_terms(scene, atmosphere, band))  # fmt: skip
        return first

    def first_pass(
        self, scene: Scene, atmosphere: Atmosphere, scl: da.Array, bands: tuple[str, ...]
    ) -> dict[str, da.Array]:  # fmt: skip
        """The adjacency background's first pass of ``bands`` on its ~100 m grid (lazy, float32).

        The box mean over the adjacency range and the refinement that :meth:`correct` applies
        to it read neighbouring blocks, and those the full-resolution bands: a caller that
        processes windows stores these once and gives them back to :meth:`correct`
        (``first``), so that a window reads its neighbours' instead of computing them.
        Empty where the chunks do not split into coarser cells (the background is then
        computed at full resolution).
        """
        k, _ = self._background_grid(scene, bands[0])
        if k == 1:
            return {}
        coarse_inputs = tuple(lazy.downsample_mean(x, k) for x in self._pixel_inputs(scene, atmosphere))
        return {b: self._first_pass(scene, atmosphere, scl, b, k, coarse_inputs) for b in bands}

    def correct(
        self, scene: Scene, atmosphere: Atmosphere, scl: da.Array, bands: tuple[str, ...],
        first: Mapping[str, da.Array] | None = None,
    ) -> dict[str, da.Array]:  # fmt: skip
        """Lazy BOA reflectance (float32, NaN = no data) of ``bands`` with adjacency and terrain terms.

        ``first``: the background's first pass of some of ``bands`` stored earlier (:meth:`first_pass`).
        """
        terrain = self._terrain(scene)
        # The background is a box mean over about a kilometre: a smooth field, computed on a
        # grid of about 100 m and refined bilinearly. Each block's first pass is reduced at
        # once, so no full-resolution intermediate waits for its neighbours (memory), and the
        # box filter runs on a grid 25-100 times smaller.
        k, size = self._background_grid(scene, bands[0])
        per_pixel_inputs = self._pixel_inputs(scene, atmosphere)
        # Band-independent block means, computed once: small, so sharing them holds little.
        coarse_inputs = tuple(lazy.downsample_mean(x, k) for x in per_pixel_inputs)
        own = self._own(scene, k)
        out = {}
        for b in bands:
            common = self._band_terms(scene, atmosphere, b)
            geo = (atmosphere.aot, atmosphere.water_vapour, scene.elevation_km, scene.sun_zenith,
                   scene.view_zenith[b], self._raa(scene, b), *terrain)  # fmt: skip
            toa = scene.toa[b]
            if k == 1:
                first_full = da.map_blocks(_boa_block, toa, None, *geo, **common)
                bg = lazy.box_mean(da.map_blocks(_mask_clouds, first_full, scl, dtype=F32), size)
            else:
                first_c = first[b] if first is not None and b in first else self._first_pass(
                    scene, atmosphere, scl, b, k, coarse_inputs)  # fmt: skip
                bg = _refined(lazy.box_mean(first_c, size), k, scene.toa[b].chunks)
                if own:
                    toa, *per_pixel = _private(scene.toa[b], *per_pixel_inputs, seed=(b, "second"))
                    geo = (*per_pixel[:4], scene.view_zenith[b], self._raa(scene, b), *per_pixel[4:])
            out[b] = da.map_blocks(_boa_block, toa, bg, *geo, **common)
        return out


def correction_config_from_gipp(
    path: str | Path, base: CorrectionConfig | None = None
) -> tuple[CorrectionConfig, dict[str, str]]:
    """Atmospheric-correction settings of Sen2Cor's user ``L2A_GIPP.xml``.

    Read: ``Aerosol_Type`` (RURAL = continental, MARITIME, AUTO), ``Ozone_Content`` in DU
    (0 = Sen2Cor's automatic choice: the product's ECMWF ozone), ``Cirrus_Correction``,
    ``Adj_Km``, ``Visibility`` (the fallback AOT) and ``Altitude`` (surface elevation
    without a DEM). Returns the configuration and the other settings the run may use
    (``DEM_Directory``).

    Raises
    ------
    ConfigurationError
        If the file is not a user GIPP, or a value is not a number, not one of the
        allowed words, or outside its valid range (:data:`CORRECTION_RANGES`); the
        message names the file, the setting and the range.
    """
    from sen2core.config import USER_GIPP_ROOT
    from sen2core.io.read.gipp import read_gipp
    from sen2core.io.xmlutil import local_name

    root = read_gipp(path)
    if local_name(root.tag) != USER_GIPP_ROOT:
        raise ConfigurationError(f"{path}: not a Sen2Cor L2A_GIPP.xml (root element {local_name(root.tag)!r})")
    values = {local_name(e.tag): (e.text or "").strip() for e in root.iter() if len(e) == 0}
    cfg = base or CorrectionConfig()

    def number(tag: str) -> float:
        try:
            return float(values[tag])
        except ValueError:
            raise ConfigurationError(f"{path}: {tag} must be a number, got {values[tag]!r}") from None

    changes: dict[str, Any] = {}
    if "Aerosol_Type" in values:
        kinds = {"RURAL": "continental", "MARITIME": "maritime", "AUTO": "auto"}
        if values["Aerosol_Type"].upper() not in kinds:
            raise ConfigurationError(f"{path}: Aerosol_Type must be RURAL, MARITIME or AUTO, got "
                                     f"{values['Aerosol_Type']!r}")  # fmt: skip
        changes["aerosol"] = kinds[values["Aerosol_Type"].upper()]
    # Ozone_Content 0 is Sen2Cor's automatic choice: the product's ECMWF ozone (0.331 without it).
    if values.get("Ozone_Content"):
        changes["ozone_cm_atm"] = number("Ozone_Content") / 1000.0
    if "Cirrus_Correction" in values:
        flag = values["Cirrus_Correction"].upper()
        if flag not in ("TRUE", "FALSE", "1", "0"):
            raise ConfigurationError(f"{path}: Cirrus_Correction must be TRUE or FALSE, got "
                                     f"{values['Cirrus_Correction']!r}")  # fmt: skip
        changes["cirrus_correction"] = flag in ("TRUE", "1")
    if "Adj_Km" in values:
        changes["adjacency_km"] = number("Adj_Km")
    if "Visibility" in values:
        vis = number("Visibility")
        if not 5.0 <= vis <= 120.0:
            raise ConfigurationError(f"{path}: Visibility must be finite and in [5, 120] km, got {vis!r}")
        changes["default_aot"] = round(visibility_to_aot(vis), 3)
    if "Altitude" in values:
        changes["elevation_km"] = number("Altitude")
    extra = {k: values[k] for k in ("DEM_Directory",) if values.get(k, "NONE").upper() != "NONE"}
    try:
        return replace(cfg, **changes), extra
    except SettingRangeError as exc:
        tag = GIPP_NAMES.get(exc.setting)
        raise exc.located(str(path), tag, values.get(tag) if tag else None) from None
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None


def config_dict(config: CorrectionConfig) -> dict[str, Any]:
    """JSON-serialisable view of a configuration (for product metadata)."""
    d = asdict(config)
    d["default_aot"] = float(config.default_aot)
    return d


__all__ = [
    "CORRECTION_RANGES",
    "CORRECTION_RULES",
    "GIPP_NAMES",
    "AtmosphericCorrection",
    "Atmosphere",
    "CorrectionConfig",
    "DEFAULT_OZONE_CM_ATM",
    "SEA_SALT_MARITIME_SHARE",
    "Scene",
    "background_chunks",
    "config_dict",
    "correction_config_from_gipp",
    "ddv_layer_count",
    "water_vapour_grid",
]

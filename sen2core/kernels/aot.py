"""Aerosol optical thickness by the dark dense vegetation (DDV) method of Sen2Cor
(Sen2Cor Level-2A ATBD, ESA S2-PDGS-MPC-ATBD-L2A).

Over dense dark vegetation the surface reflectance of the red band is tied to
that of the 2.2 um band (B12), which aerosols barely affect:
``rho_red = 0.5 * rho_B12`` (and ``rho_blue = 0.5 * rho_red``). The AOT of a DDV
pixel is the one for which the atmospherically corrected red equals that
reference.

The corrected reflectances depend on the water vapour (B12 sits on the wing of a
vapour band): the caller gives each DDV pixel its own column, retrieved first by APDA
(:func:`sen2core.kernels.wv.water_vapour_of_cells`), which depends little on the aerosol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sen2core.atmosphere.lut import DenseTable, GeometryTable
from sen2core.kernels import rt
from sen2core.kernels.solve import bisect

Array = NDArray[np.float64]

VEGETATION = 4
#: Upper B12 surface-reflectance thresholds tried in turn until enough DDV pixels are found.
DDV_B12_UPPER = (0.05, 0.10, 0.12)


@dataclass(frozen=True)
class DDVSettings:
    """Thresholds of the DDV selection and retrieval (Sen2Cor ``L2A_CAL_AC_GIPP`` defaults)."""

    b12_lower: float = 0.01
    """``AC_Swir_Refl_Lower_Th``."""
    b12_upper: tuple[float, ...] = DDV_B12_UPPER
    """``AC_Ddv_Swir_Refl_Th1..3``."""
    red_toa_max: float = 0.10
    """Maximum TOA red reflectance of a DDV pixel."""
    ndvi_min: float = 0.10
    """``AC_Swir_Refl_Ndvi_Th`` (TOA NDVI on B8A and B4)."""
    nir_max: float = 0.38
    """Maximum B8A reflectance."""
    min_fraction: float = 0.02
    """``AC_Min_Ddv_Area``: DDV pixels needed, as a fraction of non-water pixels."""
    red_b12_ratio: float = 0.5
    """``AC_Swir_22um_Red_Refl_Ratio``."""
    max_sza: float = 75.0
    """Pixels with a sun lower than this are never DDV."""
    aot_max: float = 1.3
    """Upper bound of the retrieval."""


def ddv_candidates(
    rho_b12: Array, toa_b04: Array, toa_b8a: Array, scl: NDArray[np.integer], cos_sza: Array, usable: NDArray[np.bool_],
    settings: DDVSettings = DDVSettings(),
) -> NDArray[np.uint8]:  # fmt: skip
    """DDV level per pixel: 0 = not DDV, k = DDV with the k-th (1-based) B12 upper threshold or a stricter one.

    ``usable`` excludes no data, cloud shadows, cirrus and pixels near clouds.
    Counting the pixels of each level over the scene tells which threshold gives
    enough DDV pixels (a scene-wide reduction), without a second pass.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (toa_b8a - toa_b04) / (toa_b8a + toa_b04)
    base = (
        usable & (scl == VEGETATION) & (rho_b12 > settings.b12_lower) & (toa_b04 <= settings.red_toa_max)
        & (ndvi > settings.ndvi_min) & (toa_b8a < settings.nir_max)
        & (cos_sza > np.cos(np.radians(settings.max_sza)))
    )  # fmt: skip
    level = np.zeros(rho_b12.shape, dtype=np.uint8)
    for k, upper in reversed(list(enumerate(settings.b12_upper, start=1))):
        level[base & (rho_b12 < upper)] = k
    return level


def corrected_reflectance(toa: Array, bg_toa: Array | None, t: rt.AtmosphericTerms, cos_sza: Array) -> Array:
    e = rt.irradiance_factor(t, cos_sza)
    if bg_toa is None:
        return rt.surface_from_toa_uniform(toa, t, e)
    # The background is the neighbourhood's TOA inverted as if uniform; the pixel is then
    # corrected for it (Sen2Cor adds the adjacency term to the DDV reference as well).
    return rt.surface_from_toa(toa, rt.surface_from_toa_uniform(bg_toa, t, e), t, e)


def aot_at_ddv(
    toa_red: Array, toa_b12: Array, red: GeometryTable | DenseTable, b12: GeometryTable | DenseTable,
    elevation_km: Array, water_vapour: Array,
    cos_sza: Array, settings: DDVSettings = DDVSettings(), bg_red: Array | None = None, bg_b12: Array | None = None,
) -> Array:  # fmt: skip
    """AOT550 of DDV pixels (1-D arrays of those pixels) where ``rho_red(AOT) = 0.5 * rho_B12(AOT)``.

    ``bg_red`` and ``bg_b12`` are the TOA reflectances of the surroundings (mean over
    the adjacency range); without them the surroundings are taken as uniform, which
    overestimates the AOT of dark vegetation next to bright land. More aerosol means
    more path reflectance to subtract, so the corrected red falls faster with AOT
    than the B12 reference: the residual decreases with AOT.
    """

    def residual(aot: Array) -> Array:
        tr, t12 = red.at(aot, elevation_km, water_vapour), b12.at(aot, elevation_km, water_vapour)
        rho_red = corrected_reflectance(toa_red, bg_red, tr, cos_sza)
        return rho_red - settings.red_b12_ratio * corrected_reflectance(toa_b12, bg_b12, t12, cos_sza)

    return bisect(residual, 0.0, settings.aot_max, toa_red.shape, iterations=10)


def visibility_to_aot(visibility_km: float, elevation_km: float = 0.0) -> float:
    """AOT550 of a Sen2Cor visibility (Sen2Cor's fit, linear in elevation between 0, 0.7 and 2.5 km)."""
    z = np.clip(elevation_km, 0.0, 2.5)
    a = np.interp(z, [0.0, 0.7, 2.5], [1.54641, 1.40593, 0.926640])
    b = np.interp(z, [0.0, 0.7, 2.5], [-0.854022, -0.844382, -0.805663])
    return float(np.exp(a + b * np.log(visibility_km)))

"""Cirrus correction with the 1.375 um band B10 of Sen2Cor
(Sen2Cor Level-2A ATBD, ESA S2-PDGS-MPC-ATBD-L2A).

Thin cirrus adds to every band a reflectance proportional to the one it shows
in B10, where the vapour below it hides the surface: ``rho*(band) = rho(band) -
rho_c / gamma(band)``. ``gamma`` comes from the scene: the mean of cirrus pixels
after correction must equal the mean of cirrus-free pixels in the blue/green
bands. All that needs is a few sums, accumulated chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

GAMMA_RANGE = (0.6, 1.0)


@dataclass(frozen=True)
class CirrusSettings:
    """Cirrus pixel selection (Sen2Cor defaults)."""

    cirrus_min: float = 0.02
    """B10 reflectance above which a pixel is a cirrus sample (fallback 0.014)."""
    cirrus_min_fallback: float = 0.014
    clear_range: tuple[float, float] = (0.001, 0.008)
    """B10 range of cirrus-free samples."""
    min_cirrus_pixels: int = 10_000
    min_clear_pixels: int = 2_000


def gamma_sums(toa: Array, rho_c: Array, settings: CirrusSettings = CirrusSettings()) -> NDArray[np.float64]:
    """Partial sums of one band for the scene-wide gamma: [sum_toa, sum_c, n] for cirrus at
    both thresholds, then [sum_toa, n] for clear pixels (8 numbers, to add over chunks)."""
    ok = np.isfinite(toa) & np.isfinite(rho_c)
    out = []
    for thr in (settings.cirrus_min, settings.cirrus_min_fallback):
        m = ok & (rho_c > thr)
        out += [float(toa[m].sum()), float(rho_c[m].sum()), float(m.sum())]
    lo, hi = settings.clear_range
    m = ok & (rho_c > lo) & (rho_c < hi)
    out += [float(toa[m].sum()), float(m.sum())]
    return np.asarray(out)


def gamma_from_sums(sums: NDArray[np.float64], settings: CirrusSettings = CirrusSettings()) -> float | None:
    """Gamma from the scene sums of :func:`gamma_sums` (summed over bands B01-B03); None if too few samples."""
    clear_toa, n_clear = sums[6], sums[7]
    if n_clear < settings.min_clear_pixels:
        return None
    for i in (0, 3):
        cir_toa, cir_c, n = sums[i : i + 3]
        if n >= settings.min_cirrus_pixels:
            excess = cir_toa / n - clear_toa / n_clear
            if excess <= 0:
                return GAMMA_RANGE[1]
            return float(np.clip((cir_c / n) / excess, *GAMMA_RANGE))
    return None


def band_gamma(gamma: float, wavelength_um: float) -> float:
    """Gamma of a band: doubled from 1.5 um on, where ice absorbs (Sen2Cor)."""
    return 2.0 * gamma if wavelength_um >= 1.5 else gamma


def remove_cirrus(toa: Array, rho_c: Array, gamma: float) -> Array:
    """Cirrus-corrected TOA reflectance."""
    return toa - np.where(np.isfinite(rho_c), np.clip(rho_c, 0.0, None), 0.0) / gamma

"""Spectral response functions (SRF) of the Sentinel-2 MSI bands.

The official ESA SRF table cannot be shipped or downloaded here, so the default
responses are flat-topped super-Gaussians built from the published centre
wavelength and bandwidth of each band and satellite. Their integrals and
centroids match the published figures; their edges are smoother than the real
filters. An operator who has ESA's SRF spreadsheet exported as CSV can build
the LUT from it instead (:func:`load_srf_csv`, ``sen2core lut build --srf``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sen2core.errors import ConfigurationError

#: Band names in the order of ``band_id`` 0..12 of the Sentinel-2 metadata.
BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip

SPACECRAFT: tuple[str, ...] = ("S2A", "S2B")

# Centre wavelength (nm) and bandwidth (nm) per band, from ESA's published band table.
_CENTRE_NM: dict[str, tuple[float, ...]] = {
    "S2A": (442.7, 492.4, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5, 1613.7, 2202.4),
    "S2B": (442.2, 492.1, 559.0, 664.9, 703.8, 739.1, 779.7, 832.9, 864.0, 943.2, 1376.9, 1610.4, 2185.7),
}  # fmt: skip
_WIDTH_NM: dict[str, tuple[float, ...]] = {
    "S2A": (21, 66, 36, 31, 16, 15, 20, 106, 21, 20, 31, 91, 175),
    "S2B": (21, 66, 36, 31, 16, 15, 20, 106, 21, 21, 30, 94, 185),
}  # fmt: skip

#: 6S integrates filter functions on a fixed 2.5 nm grid.
STEP_NM = 2.5
_SUPER_GAUSSIAN_ORDER = 6


@dataclass(frozen=True)
class SpectralResponse:
    """Relative spectral response of one band on 6S's 2.5 nm grid."""

    spacecraft: str
    """``S2A`` or ``S2B``."""
    band: str
    """Band name, e.g. ``B04``."""
    start_um: float
    """Wavelength of the first sample in micrometres."""
    values: tuple[float, ...]
    """Response samples every 2.5 nm, peak normalised to 1."""

    @property
    def wavelengths_um(self) -> NDArray[np.float64]:
        """Sample wavelengths in micrometres."""
        return np.asarray(self.start_um + np.arange(len(self.values)) * STEP_NM / 1000.0, dtype=np.float64)

    @property
    def centre_um(self) -> float:
        """Response-weighted centre wavelength in micrometres."""
        v = np.asarray(self.values)
        return float((self.wavelengths_um * v).sum() / v.sum())


def _trim(spacecraft: str, band: str, wl_nm: NDArray[np.float64], v: NDArray[np.float64]) -> SpectralResponse:
    v = v / v.max()
    keep = np.nonzero(v >= 1e-3)[0]
    lo, hi = keep[0], keep[-1] + 1
    return SpectralResponse(spacecraft, band, float(wl_nm[lo]) / 1000.0, tuple(float(round(x, 5)) for x in v[lo:hi]))


def nominal_srf(spacecraft: str, band: str) -> SpectralResponse:
    """Super-Gaussian response of ``band`` on ``spacecraft`` (see module docstring)."""
    if spacecraft not in SPACECRAFT:
        raise ConfigurationError(f"unknown spacecraft {spacecraft!r}; expected one of {SPACECRAFT}")
    if band not in BANDS:
        raise ConfigurationError(f"unknown band {band!r}; expected one of {BANDS}")
    i = BANDS.index(band)
    c, w = _CENTRE_NM[spacecraft][i], float(_WIDTH_NM[spacecraft][i])
    wl = np.arange(np.floor((c - w) / STEP_NM) * STEP_NM, c + w + STEP_NM, STEP_NM)
    v = np.exp(-np.log(2.0) * np.abs(2.0 * (wl - c) / w) ** _SUPER_GAUSSIAN_ORDER)
    return _trim(spacecraft, band, wl, v)


def load_srf_csv(path: str | Path, spacecraft: str, band: str) -> SpectralResponse:
    """Read one band's response from ESA's SRF table exported as CSV.

    The CSV has a wavelength column ``SR_WL`` (nm) and one column per band named
    like ``S2A_SR_AV_B4`` or ``S2B_SR_AV_B8A``; it is resampled to 2.5 nm.
    """
    col = f"{spacecraft}_SR_AV_B{band[1:].lstrip('0')}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
        wl = np.array([float(r["SR_WL"]) for r in rows])
        val = np.array([float(r[col]) for r in rows])
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigurationError(f"{path}: cannot read column {col!r} of an SRF table: {exc}") from exc
    grid = np.arange(np.ceil(wl.min() / STEP_NM) * STEP_NM, wl.max() + 1e-9, STEP_NM)
    return _trim(spacecraft, band, grid, np.clip(np.interp(grid, wl, val), 0.0, None))

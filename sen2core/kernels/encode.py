"""Level-2A output encoding (as Sen2Cor writes it; Sentinel-2 Products Specification Document, ESA
S2-PDGS-TAS-DI-PSD)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sen2core.kernels.strips import by_strips

BOA_QUANTIFICATION = 10000.0
BOA_ADD_OFFSET = -1000
AOT_QUANTIFICATION = 1000.0
WVP_QUANTIFICATION = 1000.0


def encode_boa(rho: NDArray[np.floating], legacy: bool = False) -> NDArray[np.uint16]:
    """BOA reflectance to DN; NaN (no data) to 0.

    From processing baseline 04.00 on, ``DN = rho * 10000 + 1000`` so that
    slightly negative reflectances survive; values that would still fall below
    1 become 1 (0 is no data), and the top is clipped to 32767. ``legacy``
    gives the pre-04.00 encoding ``DN = rho * 10000`` with reflectance floored at
    1e-4.
    """
    return by_strips(lambda r: _encode_boa(r, legacy), np.uint16, rho)


def _encode_boa(rho: NDArray[np.floating], legacy: bool) -> NDArray[np.uint16]:
    r = np.asarray(rho, dtype=np.float64)
    ok = np.isfinite(r)
    # Sen2Cor rounds half up (uint16(x + 0.5)), not half to even.
    if legacy:
        dn = np.floor(np.maximum(np.where(ok, r, 0.0), 1e-4) * BOA_QUANTIFICATION + 0.5)
    else:
        dn = np.floor(np.where(ok, r, 0.0) * BOA_QUANTIFICATION - BOA_ADD_OFFSET + 0.5)
    return np.where(ok, np.clip(dn, 1, 32767), 0).astype(np.uint16)


def decode_boa(dn: NDArray[np.integer], legacy: bool = False) -> NDArray[np.float32]:
    """DN to BOA reflectance (NaN for no data): ``(DN + BOA_ADD_OFFSET) / 10000``."""
    d = np.asarray(dn).astype(np.float32)
    rho = d / BOA_QUANTIFICATION if legacy else (d + BOA_ADD_OFFSET) / BOA_QUANTIFICATION
    return np.where(d == 0, np.nan, rho).astype(np.float32)


def encode_scaled(values: NDArray[np.floating], scale: float) -> NDArray[np.uint16]:
    """AOT or WV map to uint16 (``round(value * scale)``), NaN to 0."""
    return by_strips(lambda v: _encode_scaled(v, scale), np.uint16, values)


def _encode_scaled(values: NDArray[np.floating], scale: float) -> NDArray[np.uint16]:
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    return np.where(ok, np.clip(np.floor(np.where(ok, v, 0.0) * scale + 0.5), 0, 65535), 0).astype(np.uint16)


def tci(
    b04: NDArray[np.integer], b03: NDArray[np.integer], b02: NDArray[np.integer], offset: int = 1000
) -> NDArray[np.uint8]:
    """True-colour image (bands, rows, cols) as Sen2Cor scales it: reflectance 0-0.25 to 1-255, 0 = no data."""
    return np.stack([by_strips(lambda d: _tci_channel(d, offset), np.uint8, dn) for dn in (b04, b03, b02)])


def _tci_channel(dn: NDArray[np.integer], offset: int) -> NDArray[np.uint8]:
    d = np.asarray(dn).astype(np.float64)
    refl_dn = np.clip(d - offset, 0, 2500)  # reflectance x 10000
    v = np.floor(refl_dn * 254.0 / 2500.0 + 1.0 + 0.5)
    return np.where(d == 0, 0, v).astype(np.uint8)


def boa_raster_scaling(legacy: bool = False) -> dict[str, float]:
    """GDAL ``scale``/``offset`` that turn stored BOA DN into reflectance (``rho = DN * scale + offset``)."""
    offset = 0.0 if legacy else BOA_ADD_OFFSET / BOA_QUANTIFICATION
    return {"scale": 1.0 / BOA_QUANTIFICATION, "offset": offset}

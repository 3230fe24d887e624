"""What every pass of the scene classification shares: array types, internal codes, band input, ratios."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sen2core.errors import InputProductError
from sen2core.kernels.scene_class.legend import SCL
from sen2core.kernels.scene_class.parameters import ClassificationParameters

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]
BoolArray = NDArray[np.bool_]


NC = 100
"""Internal code of a pixel no rule has classified yet (Sen2Cor's initial value)."""
LOW = int(SCL.UNCLASSIFIED)
"""Step 7 gives low-probability clouds the UNCLASSIFIED code, as Sen2Cor does."""


REQUIRED_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B8A", "B10", "B11", "B12")
"""Bands the classification needs, on the classification grid."""
OPTIONAL_BANDS: tuple[str, ...] = ("B09",)
"""Bands used when present (B09 for the land recovery R7)."""


CLOUDY_CODES: tuple[int, ...] = (
    int(SCL.CLOUD_MEDIUM_PROBABILITY),
    int(SCL.CLOUD_HIGH_PROBABILITY),
    int(SCL.THIN_CIRRUS),
)
"""Cloud classes: medium and high probability, thin cirrus."""
UNCLASSIFIED_CODES: tuple[int, ...] = (LOW, NC)
"""Internal codes of pixels no rule has settled: low-probability cloud and not yet classified."""


LC_WATER = 210
"""ESA-CCI land cover: water bodies (R7-R9 leave them out of the land)."""
LC_URBAN = 190
"""ESA-CCI land cover: urban areas (R9)."""
LC_BARE: tuple[int, ...] = (200, 201, 202)
"""ESA-CCI land cover: bare areas (R9)."""
WB_WATER = 2
"""ESA-CCI water bodies map: water (R3, and the percentages over land)."""
SNC_WATER = 254
"""ESA-CCI snow-condition map: water (the post-processing of step 2)."""


def ramp(x: ArrayLike, a: float, b: float) -> F32:
    """Sen2Cor's ``ramp``: 0 below ``a``, 1 above ``b``, linear in between."""
    v = np.asarray(x, dtype=np.float32)
    return np.asarray((np.clip(v, a, b) - np.float32(a)) / np.float32(b - a), dtype=np.float32)


def band_ratio(a: F32, b: F32) -> F32:
    """``a / b`` for reflectances: a large number where ``b <= 0 < a``, 0 where both are <= 0."""
    out = np.where(a > 0, np.float32(1e6), np.float32(0.0)).astype(np.float32)
    np.divide(a, b, out=out, where=b > 0)
    return out


def normalized_difference(a: F32, b: F32) -> F32:
    """``(a - b) / (a + b)``, 0 where the sum is not positive."""
    s = a + b
    out = np.zeros(a.shape, dtype=np.float32)
    np.divide(a - b, s, out=out, where=s > 0)
    return out


def prepare_bands(bands: Mapping[str, ArrayLike]) -> tuple[dict[str, F32], BoolArray]:
    """Bands as float32 with NaN replaced by 0, and the valid-data mask."""
    missing = [b for b in REQUIRED_BANDS if b not in bands]
    if missing:
        raise InputProductError("scene classification", f"missing band(s) {', '.join(missing)}")
    shape = np.shape(bands["B02"])
    out: dict[str, F32] = {}
    valid = np.ones(shape, dtype=bool)
    for name in (*REQUIRED_BANDS, *OPTIONAL_BANDS):
        if name not in bands:
            continue
        v = np.asarray(bands[name], dtype=np.float32)
        if v.shape != shape:
            raise InputProductError(
                "scene classification", f"band {name} is {v.shape}, B02 is {shape}: bands must share one grid"
            )
        finite = np.isfinite(v)
        if name in REQUIRED_BANDS:
            valid &= finite
        out[name] = np.where(finite, v, np.float32(0.0)).astype(np.float32)
    return out, valid


def probability_to_uint8(p: ArrayLike) -> U8:
    """Sen2Cor's encoding of a confidence in [0, 1]: ``uint8(p * 100 + 0.5)`` (percent)."""
    x = np.clip(np.nan_to_num(np.asarray(p, dtype=np.float32), nan=0.0), 0.0, 1.0)
    return np.asarray(x * np.float32(100.0) + np.float32(0.5), dtype=np.float32).astype(np.uint8)


def background_window_px(resolution_m: float, config: ClassificationParameters) -> int:
    """Odd edge (pixels) of the local background window, ``config.background_window_m`` on this grid."""
    return 2 * int(round(config.background_window_m / resolution_m / 2.0)) + 1


def cloud_edge_growth_px(resolution_m: float, config: ClassificationParameters) -> int:
    """Steps (pixels) of the cloud edge growth, ``config.cloud_edge_growth_m`` on this grid."""
    return int(round(config.cloud_edge_growth_m / resolution_m))

"""Pixel counts per class and Sen2Cor's ``Image_Content_QI`` percentages from them."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sen2core.kernels.scene_class.common import WB_WATER
from sen2core.kernels.scene_class.legend import PERCENTAGE_NAMES, SCL


def class_counts(
    scl: ArrayLike, water_bodies: ArrayLike | None = None, buffered: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Pixel counts per class: a (3, 12) int64 table that adds up over chunks.

    Row 0: all pixels; row 1: pixels on CCI water bodies (zeros without the map);
    row 2: pixels the cloud buffer added (zeros without a buffer).
    """
    s = np.asarray(scl).ravel()
    out = np.zeros((3, 12), dtype=np.int64)
    out[0] = np.bincount(s, minlength=12)[:12]
    if water_bodies is not None:
        out[1] = np.bincount(s[np.asarray(water_bodies).ravel() == WB_WATER], minlength=12)[:12]
    if buffered is not None:
        out[2] = np.bincount(s[np.asarray(buffered, dtype=bool).ravel()], minlength=12)[:12]
    return out


def class_percentages(counts: ArrayLike) -> dict[str, float]:
    """Sen2Cor's ``Image_Content_QI`` percentages from :func:`class_counts` totals.

    Class percentages are over pixels with data; ``NODATA_PIXEL_PERCENTAGE`` over all
    pixels. ``CLOUDY_PIXEL_PERCENTAGE`` = medium + high probability + thin cirrus.
    ``CLOUDY_PIXEL_OVER_LAND_PERCENTAGE``: cloudy pixels not on known water, over
    pixels with data that are not known water (SCL WATER, or CCI water bodies when
    given). ``CLOUD_BUFFER_PERCENTAGE`` (sen2core): pixels the buffer turned into cloud.
    """
    c = np.asarray(counts, dtype=np.int64)
    total = int(c[0].sum())
    valid = total - int(c[0, 0])
    pct: dict[str, float] = {"NODATA_PIXEL_PERCENTAGE": float(100.0 * c[0, 0] / total) if total else 0.0}

    def share(n: float, d: float) -> float:
        return float(100.0 * n / d) if d > 0 else 0.0

    for code, name in PERCENTAGE_NAMES.items():
        pct[name] = share(c[0, code], valid)
    cloudy = [int(SCL.CLOUD_MEDIUM_PROBABILITY), int(SCL.CLOUD_HIGH_PROBABILITY), int(SCL.THIN_CIRRUS)]
    pct["CLOUDY_PIXEL_PERCENTAGE"] = share(c[0, cloudy].sum(), valid)
    on_water_valid = int(c[1, 1:].sum())
    known_water = int(c[0, SCL.WATER]) + on_water_valid - int(c[1, SCL.WATER])
    land = valid - known_water
    pct["CLOUDY_PIXEL_OVER_LAND_PERCENTAGE"] = share(c[0, cloudy].sum() - c[1, cloudy].sum(), land)
    pct["CLOUD_BUFFER_PERCENTAGE"] = share(c[2].sum(), valid)
    return pct

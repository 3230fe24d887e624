"""L1C pixel quality masks and ESA's L1C cloud mask: pure functions of arrays.

``MSK_QUALIT_Bxx.jp2`` (processing baseline 04.00 and later) holds eight 0/1 layers per
band, on the band's grid. The layers used here (1-based, as in the file):

3. ``MSI_LOST``: lost MSI packets, no valid signal: the pixel has no data in that band;
5. ``QT_DEFECTIVE_PIXELS`` and 8. ``QT_SATURATED_PIXELS``: SCL class 1 (saturated or defective);
7. ``QT_PARTIALLY_CORRECTED_PIXELS``: cross-talk only partly corrected, still usable: counted only.

``MSK_CLASSI_B00.jp2`` (60 m, three 0/1 layers: opaque clouds, cirrus, snow) is ESA's own
L1C classification, compared with the SCL as a sanity check (:func:`classi_agreement`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CLASSI_CATEGORIES",
    "QUALITY_LAYERS",
    "agreement_summary",
    "classi_agreement",
    "flags_on_grid",
    "split_quality",
]

#: Layers read from ``MSK_QUALIT_Bxx.jp2`` (1-based band indexes of the file) and their names.
QUALITY_LAYERS: dict[int, str] = {3: "msi_lost", 5: "defective", 7: "partially_corrected", 8: "saturated"}

#: Categories compared by :func:`classi_agreement`, in table order.
CLASSI_CATEGORIES = ("clear", "cloud", "snow")

_CLOUD_SCL = (8, 9, 10)
_SNOW_SCL = 11


def split_quality(layers: NDArray[np.uint8]) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.int64]]:
    """Lost-packet and class-1 masks of a window of the :data:`QUALITY_LAYERS`, and each layer's count.

    Parameters
    ----------
    layers
        ``(4, rows, cols)``: layers 3, 5, 7 and 8 of the file, 1 = flagged.

    Returns
    -------
    (lost, defective_or_saturated, counts)
        ``counts`` holds the flagged pixels of each layer, in :data:`QUALITY_LAYERS` order.
        A lost pixel is not also counted as class 1: it has no data.
    """
    flagged = np.asarray(layers) == 1
    lost = flagged[0]
    bad = (flagged[1] | flagged[3]) & ~lost
    counts = flagged.reshape(flagged.shape[0], -1).sum(axis=1).astype(np.int64)
    return lost, bad, counts


def flags_on_grid(rows: NDArray[np.integer], cols: NDArray[np.integer], native_m: int, grid_m: int,
                  out: NDArray[np.bool_]) -> None:  # fmt: skip
    """Mark in ``out`` (a grid of ``grid_m`` pixels) every pixel that holds a flagged native pixel.

    A coarser grid takes a pixel when any native pixel inside it is flagged (a 20 m pixel
    with one defective 10 m pixel is class 1); a finer grid takes every pixel of a flagged
    native one. ``rows`` and ``cols`` are native pixel indexes; grids share their origin.
    """
    if native_m <= grid_m:
        f = grid_m // native_m
        out[np.asarray(rows) // f, np.asarray(cols) // f] = True
        return
    f = native_m // grid_m
    for dr in range(f):
        for dc in range(f):
            r, c = np.asarray(rows) * f + dr, np.asarray(cols) * f + dc
            keep = (r < out.shape[0]) & (c < out.shape[1])
            out[r[keep], c[keep]] = True


def classi_agreement(scl: NDArray[np.uint8], classi: NDArray[np.uint8]) -> NDArray[np.int64]:
    """Counts of ESA's L1C class against the SCL's, on one grid.

    Parameters
    ----------
    scl
        SCL codes.
    classi
        ``(3, rows, cols)`` layers of ``MSK_CLASSI_B00`` on the same grid: opaque clouds,
        cirrus, snow (1 = flagged).

    Returns
    -------
    ndarray
        ``(3, 3)`` int64: rows ESA's category, columns the SCL's, both in
        :data:`CLASSI_CATEGORIES` order (cloud: ESA opaque or cirrus, SCL 8, 9, 10;
        snow: ESA snow without cloud, SCL 11; clear: the rest). Pixels without data or
        saturated/defective in the SCL (0, 1) are left out.
    """
    layers = np.asarray(classi) == 1
    esa = np.where(layers[0] | layers[1], 1, np.where(layers[2], 2, 0))
    s = np.asarray(scl)
    ours = np.where(np.isin(s, _CLOUD_SCL), 1, np.where(s == _SNOW_SCL, 2, 0))
    keep = s > 1
    table = np.bincount((esa[keep] * 3 + ours[keep]).ravel(), minlength=9)
    return table.reshape(3, 3).astype(np.int64)


def agreement_summary(table: NDArray[np.integer]) -> dict[str, float | int | None]:
    """Shares (%) from a :func:`classi_agreement` table: overall agreement, cloud and snow as each sees them.

    Percentages are None when no pixel was compared.
    """
    t = np.asarray(table, dtype=np.int64)
    n = int(t.sum())

    def pct(x: int) -> float | None:
        return round(100.0 * x / n, 3) if n else None

    cloud_both = int(t[1, 1])
    cloud_either = int(t[1].sum() + t[:, 1].sum() - cloud_both)
    return {
        "pixels_compared": n,
        "agreement_percentage": pct(int(np.trace(t))),
        "l1c_cloud_percentage": pct(int(t[1].sum())),
        "scl_cloud_percentage": pct(int(t[:, 1].sum())),
        "cloud_intersection_over_union": round(cloud_both / cloud_either, 4) if cloud_either else None,
        "l1c_snow_percentage": pct(int(t[2].sum())),
        "scl_snow_percentage": pct(int(t[:, 2].sum())),
    }

"""Water vapour by the atmospheric pre-corrected differential absorption (APDA) of Sen2Cor
(Sen2Cor Level-2A ATBD, ESA S2-PDGS-MPC-ATBD-L2A).

B8A (865 nm) is the window band and B09 (945 nm) the absorption band. The
surface reflectance at 945 nm is taken equal to that retrieved at 865 nm;
the vapour column is the one whose modelled B09 TOA reflectance matches the
measured one. Sen2Cor fits an exponential to the band ratio per elevation class;
here the LUT model is inverted per pixel by bisection, with the path reflectance
and B8A's slight vapour absorption re-evaluated at each step (Sen2Cor's two
iterations are the special case of stopping early).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from sen2core.atmosphere.lut import DenseTable, GeometryTable, toa_reflectance
from sen2core.kernels import rt
from sen2core.kernels.radiometry import block_mean
from sen2core.kernels.solve import bisect

Array = NDArray[np.float64]

WV_MAX_CM = 6.0


def water_vapour_apda(
    toa_b8a: Array, toa_b09: Array, b8a: GeometryTable | DenseTable, b09: GeometryTable | DenseTable, aot: Array,
    elevation_km: Array,
    iterations: int = 12,
) -> Array:  # fmt: skip
    """Water vapour column (cm) per pixel; NaN where either band has no data or no signal."""

    def residual(wv: Array) -> Array:
        t8 = b8a.at(aot, elevation_km, wv)
        rho = rt.surface_from_toa_uniform(toa_b8a, t8, t8.t_down)
        # More vapour absorbs more at 945 nm: the modelled TOA falls with the column.
        return toa_reflectance(rho, b09.at(aot, elevation_km, wv)) - toa_b09

    shape = np.broadcast_shapes(np.shape(toa_b8a), np.shape(toa_b09))
    wv = bisect(residual, 0.0, WV_MAX_CM, shape, iterations=iterations)
    bad = ~np.isfinite(toa_b8a) | ~np.isfinite(toa_b09) | (toa_b8a <= 0.0)
    return np.where(bad, np.nan, wv)


def water_vapour_of_cells(
    toa_b8a: Array, toa_b09: Array, b8a: GeometryTable | DenseTable, b09: GeometryTable | DenseTable, aot: float,
    elevation_km: Array, where: NDArray[np.bool_], factor: int, fallback: float,
) -> Array:  # fmt: skip
    """Water vapour (cm above the ground) of the pixels ``where``, retrieved on ``factor`` x ``factor`` cells.

    B09 is a 60 m band: on a finer grid a pixel carries its 60 m cell's B09 but its own
    B8A, so at the edge of a patch the two need not see the same ground. The means of
    both bands over the cell (B09's native pixel when the block starts on the 60 m grid)
    do, and a cell is inverted once for all its pixels. Only cells holding a pixel of
    ``where`` are inverted, at the AOT ``aot``; where APDA has no answer the column is
    ``fallback``.

    Returns
    -------
    numpy.ndarray
        1-D, one value per pixel of ``where`` in row-major order (as ``x[where]``).
    """
    rows, cols = np.nonzero(where)
    c8, c9, cz = (block_mean(x, factor) for x in (toa_b8a, toa_b09, elevation_km))
    cells, pixel_cell = np.unique((rows // factor) * c8.shape[1] + cols // factor, return_inverse=True)
    found = water_vapour_apda(c8.ravel()[cells], c9.ravel()[cells], b8a, b09, np.full(cells.size, float(aot)),
                              cz.ravel()[cells])  # fmt: skip
    wv = found[pixel_cell.ravel()]
    return np.where(np.isfinite(wv), wv, fallback)

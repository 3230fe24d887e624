"""Atmospheric terms of a synthetic scene from the project's 6S LUT.

Sun and view angles, AOT and water vapour vary smoothly across a tile, so the LUT is
evaluated once per band on a coarse grid of nodes (every 300 m, node 0 at the tile's
upper-left corner) and the seven terms are interpolated bilinearly to each pixel.
With relief the elevation varies from pixel to pixel: the terms' derivative with
respect to elevation (at the node's mean elevation, AOT and water vapour decreasing
with height) is interpolated too and applied to each pixel's departure from it.

Scale heights: aerosols and water vapour decrease as ``exp(-z / 2 km)``; a cloud top
at height ``h`` sees the AOT, water vapour and ozone above ``h`` (the LUT is queried at
``min(h, 3.5 km)``, its top elevation, with the column amounts of the true height, so
that B09 and B10 over high clouds are bright as they should be).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from sen2core.atmosphere.lut import RadiativeTransferLUT
from sen2core.kernels.angles import interpolate_angles
from sen2core.kernels.lut import AtmosphericTerms, relative_azimuth
from sen2core.synthetic.scene import interp_rows_cols, pixel_coords

__all__ = [
    "AEROSOL_SCALE_HEIGHT_KM",
    "NODE_STEP_M",
    "TERM_NAMES",
    "VAPOUR_SCALE_HEIGHT_KM",
    "LutRanges",
    "TermGrid",
    "angles_at",
    "term_grid",
]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

TERM_NAMES = ("path", "t_down", "t_up", "t_down_dir", "t_up_dir", "spherical_albedo", "gas")
"""Fields of :class:`~sen2core.kernels.lut.AtmosphericTerms`, in order."""
NODE_STEP_M = 300.0
"""Spacing of the nodes where the LUT is evaluated."""
AEROSOL_SCALE_HEIGHT_KM = 2.0
"""AOT above height z is ``AOT(0) exp(-z / H)``."""
VAPOUR_SCALE_HEIGHT_KM = 2.0
"""Water vapour above height z is ``W(0) exp(-z / H)``."""
_DZ_KM = 0.1


@dataclass(frozen=True)
class LutRanges:
    """Axis ranges of a LUT; inputs are clipped to them so that the truth is what was used."""

    sza: tuple[float, float]
    vza: tuple[float, float]
    aot: tuple[float, float]
    elevation: tuple[float, float]
    water_vapour: tuple[float, float]
    ozone: tuple[float, float]

    @classmethod
    def of(cls, lut: RadiativeTransferLUT) -> LutRanges:
        """Ranges of ``lut``."""
        g = lut.grid
        return cls(*((min(v), max(v)) for v in (g.sza, g.vza, g.aot, g.elevation, g.water_vapour, g.ozone)))


def angles_at(zenith_grid: F64, azimuth_grid: F64, y_m: F64, x_m: F64, step_m: float = 5000.0) -> tuple[F64, F64]:
    """Angles of a 5 km grid interpolated at points (outer product of ``y_m`` x ``x_m``,
    metres south and east of the tile's upper-left corner), as a reader does."""
    return interpolate_angles(zenith_grid, azimuth_grid, np.asarray(y_m) / step_m, np.asarray(x_m) / step_m)


@dataclass
class TermGrid:
    """One band's atmospheric terms at the nodes, and how to get them at pixels."""

    band: str
    values: F32
    """Terms at the nodes, shape (7, rows, cols) in :data:`TERM_NAMES` order."""
    dz: F32 | None
    """Derivative of the terms with elevation (per km), or None on flat ground."""
    z_nodes: F32 | None
    """Node elevations (km) the derivative refers to."""
    step_m: float = NODE_STEP_M

    def at(self, row0: int, row1: int, ncols: int, pixel_m: float, z_km: F32 | None = None) -> AtmosphericTerms:
        """Terms at the centres of pixels ``row0..row1`` x ``0..ncols`` of a ``pixel_m`` grid.

        ``z_km`` (same shape) is the pixel elevation, used when the grid has a
        derivative.
        """
        gy = pixel_coords(row0, row1, pixel_m, self.step_m, 0.5)
        gx = pixel_coords(0, ncols, pixel_m, self.step_m, 0.5)
        arrays = [interp_rows_cols(self.values[k], gy, gx) for k in range(len(TERM_NAMES))]
        if self.dz is not None and self.z_nodes is not None and z_km is not None:
            dz = np.asarray(z_km, dtype=np.float32) - interp_rows_cols(self.z_nodes, gy, gx)
            arrays = [a + interp_rows_cols(self.dz[k], gy, gx) * dz for k, a in enumerate(arrays)]
        # float32 is ample for the terms (relative precision 6e-8); the forward model
        # computes in float64 as it combines them with the reflectances.
        return AtmosphericTerms(*(cast(F64, a) for a in arrays))


def _stack(t: AtmosphericTerms) -> F64:
    return np.stack([np.asarray(getattr(t, name), dtype=np.float64) for name in TERM_NAMES])


def term_grid(
    lut: RadiativeTransferLUT,
    spacecraft: str,
    band: str,
    aerosol: str,
    *,
    sza: F64,
    saa: F64,
    vza: F64,
    vaa: F64,
    aot: F64,
    wv: F64,
    z_km: F64,
    ozone: float,
    relief: bool,
) -> TermGrid:
    """Evaluate one band's terms at the nodes.

    All node inputs have the node grid's shape and are already inside the LUT's
    ranges; ``aot`` and ``wv`` are the columns above the node's elevation ``z_km``.
    """
    raa = relative_azimuth(saa, vaa)
    t = lut.terms(spacecraft, band, aerosol, sza, vza, raa, aot, z_km, wv, ozone)
    values = _stack(t).astype(np.float32)
    if not relief:
        return TermGrid(band=band, values=values, dz=None, z_nodes=None)
    stacks = []
    for sign in (-1.0, 1.0):
        dz = sign * _DZ_KM
        z = z_km + dz
        a = aot * np.exp(-dz / AEROSOL_SCALE_HEIGHT_KM)
        w = wv * np.exp(-dz / VAPOUR_SCALE_HEIGHT_KM)
        stacks.append(_stack(lut.terms(spacecraft, band, aerosol, sza, vza, raa, a, z, w, ozone)))
    deriv = ((stacks[1] - stacks[0]) / (2 * _DZ_KM)).astype(np.float32)
    return TermGrid(band=band, values=values, dz=deriv, z_nodes=np.asarray(z_km, dtype=np.float32))


def terms_above(
    lut: RadiativeTransferLUT,
    ranges: LutRanges,
    spacecraft: str,
    band: str,
    aerosol: str,
    *,
    height_km: F64,
    ground_km: F64,
    sza: F64,
    saa: F64,
    vza: F64,
    vaa: F64,
    aot_ground: F64,
    wv_ground: F64,
    ozone: float,
) -> AtmosphericTerms:
    """Terms of the atmosphere above reflecting layers at ``height_km`` (cloud tops).

    AOT and water vapour are the ground columns reduced to what lies above the layer;
    the LUT's elevation axis is used up to its top (3.5 km).
    """
    above = np.maximum(height_km - ground_km, 0.0)
    aot = np.clip(aot_ground * np.exp(-above / AEROSOL_SCALE_HEIGHT_KM), *ranges.aot)
    wv = np.clip(wv_ground * np.exp(-above / VAPOUR_SCALE_HEIGHT_KM), *ranges.water_vapour)
    z = np.clip(height_km, *ranges.elevation)
    return lut.terms(spacecraft, band, aerosol, sza, vza, relative_azimuth(saa, vaa), aot, z, wv, ozone)

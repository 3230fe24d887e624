"""Axes of the radiative-transfer LUT, designed from the physics to keep 6S runs few.

* Path reflectance needs the full geometry. Sun zenith nodes are dense below 37
  degrees, where a high sun puts the scene near the aerosol backscatter peak and
  the path reflectance bends. The MSI views at most 12 degrees
  off nadir: three view zeniths and three relative azimuths (interpolated in
  cos(raa), where the azimuthal dependence is a low-order Fourier series) suffice.
* Transmittances depend on one angle at a time and spherical albedo on none, so
  they come from the nadir runs; the upward transmittance uses the same T(theta).
* Gas absorption is separated from scattering: scattering runs have no gas, and
  6S's two-way gas transmittance equals a one-way transmittance at the combined
  air mass 1/cos(sza) + 1/cos(vza), which ground-level runs give in 10 ms. As in
  6S, the Rayleigh path sees the dry gases only and the aerosol path half of the
  water vapour column, hence the water vapour node at 0.
* Elevation (pressure) changes mostly Rayleigh: it is an axis of the nadir runs
  only and enters the path reflectance as an additive change.
* S2A and S2B responses differ little: S2B's terms are S2A's times the ratio of
  nadir, sea-level runs of both.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LUTGrid:
    """Node values of every LUT axis."""

    name: str
    """Grid name (``full`` for the shipped LUT, ``dev`` for quick builds)."""
    sza: tuple[float, ...]
    """Solar zenith nodes, degrees; interpolated in air mass 1/cos."""
    vza: tuple[float, ...]
    """View zenith nodes, degrees."""
    raa: tuple[float, ...]
    """Relative azimuth nodes, degrees (0 = sensor on the sun's side); interpolated in cos."""
    aot: tuple[float, ...]
    """AOT at 550 nm above the target."""
    elevation: tuple[float, ...]
    """Target elevation nodes, km."""
    airmass: tuple[float, ...]
    """Two-way air mass nodes of the gas transmittance."""
    water_vapour: tuple[float, ...]
    """Water vapour nodes, g/cm2 (= cm of precipitable water): 6S's input, the column of its sea-level
    atmosphere; a raised target has the share above it (:mod:`sen2core.atmosphere.profile`)."""
    ozone: tuple[float, ...]
    """Ozone column nodes, cm-atm."""
    aerosols: tuple[str, ...] = ("continental", "maritime")
    """6S aerosol models."""


FULL = LUTGrid(
    name="full",
    sza=(0.0, 8.0, 16.0, 24.0, 30.0, 37.0, 47.0, 55.0, 62.0, 68.0, 74.0),
    vza=(0.0, 6.0, 12.0),
    raa=(0.0, 90.0, 180.0),
    aot=(0.0, 0.06, 0.14, 0.25, 0.4, 0.6, 0.9, 1.3),
    elevation=(0.0, 1.5, 3.5),
    airmass=(2.0, 2.25, 2.55, 2.9, 3.3, 3.8, 4.4, 5.0),
    water_vapour=(0.0, 0.05, 0.3, 0.6, 1.0, 1.5, 2.0, 2.6, 3.3, 4.1, 5.0, 6.0),
    ozone=(0.2, 0.3, 0.4, 0.5),
)

DEV = LUTGrid(
    name="dev",
    sza=(0.0, 40.0, 70.0),
    vza=(0.0, 12.0),
    raa=(0.0, 90.0, 180.0),
    aot=(0.0, 0.2, 0.8),
    elevation=(0.0, 2.5),
    airmass=(2.0, 3.0, 5.0),
    water_vapour=(0.0, 0.05, 1.0, 2.0, 6.0),
    ozone=(0.25, 0.45),
)

GRIDS: dict[str, LUTGrid] = {"full": FULL, "dev": DEV}

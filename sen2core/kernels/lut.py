"""Value types of the 6S radiative-transfer LUT and the models the kernels evaluate with them.

Lambertian surface with uniform surroundings::

    rho_toa = rho_path + Tg * T_down * T_up * rho / (1 - S * rho)

where ``Tg`` is the two-way gaseous transmittance, ``T_down``/``T_up`` the total
(direct + diffuse) scattering transmittances, ``S`` the spherical albedo and
``rho_path`` the atmospheric path reflectance including gas absorption the way
6S couples them: the Rayleigh part attenuated by the dry gases, the aerosol part
by the dry gases and half the water vapour column (aerosols mixed with vapour in
the boundary layer). Direct transmittances are ``exp(-tau / mu)``; the diffuse
part is the rest.

Water vapour is the column above the ground everywhere in this module's interface.
A LUT's water-vapour axis is 6S's input, the column of 6S's sea-level atmosphere,
of which a raised target has only the part above it; each lookup converts at every
elevation node ``z`` (the column divided by the share of the profile above ``z``,
:func:`sen2core.atmosphere.profile.fraction_above`) and interpolates between the
nodes at the same column above the ground, where the transmittance changes only
through pressure.

Angles are in degrees; see :func:`relative_azimuth` for the azimuth convention.
Queries outside a table's nodes are clamped to its edges.
The tables are built and loaded by :mod:`sen2core.atmosphere.lut`, which sits
above the kernels and hands them these values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sen2core.kernels.interp import corners, gather, locate

Array = NDArray[np.float64]

#: Step of :meth:`GeometryTable.dense` along AOT and water vapour (the products' 0.001 quantisation).
DENSE_STEP = 1e-3


@dataclass(frozen=True)
class AtmosphericTerms:
    """Atmospheric terms of one band at given conditions (arrays broadcast together)."""

    path: Array
    """Atmospheric path reflectance seen at the sensor (scattering with gas absorption)."""
    t_down: Array
    """Total scattering transmittance sun to ground."""
    t_up: Array
    """Total scattering transmittance ground to sensor."""
    t_down_dir: Array
    """Direct part of ``t_down``."""
    t_up_dir: Array
    """Direct part of ``t_up``."""
    spherical_albedo: Array
    """Spherical albedo of the atmosphere."""
    gas: Array
    """Two-way gaseous transmittance of the surface signal."""


def linear_weights(nodes: Array, x: ArrayLike) -> Array:
    """Weights of every node for linear interpolation at ``x`` (shape ``(len(nodes),) + shape(x)``)."""
    i, f = locate(nodes, x)
    w = np.zeros((len(nodes),) + np.shape(i))
    np.put_along_axis(w, i[None, ...], (1.0 - f)[None, ...], axis=0)
    if len(nodes) > 1:
        np.put_along_axis(w, (i + 1)[None, ...], f[None, ...], axis=0)
    return w


def gas_at_node(
    lookup: Callable[[int, Array], Array], j: int, column: Array, h2o_fraction: Array, w_max: float
) -> Array:
    """Gas transmittance at elevation node ``j`` and a column above the ground.

    ``lookup(j, w)`` reads the table at 6S's input ``w``. Above a raised node the table
    ends at a small column (6 cm of 6S's input is 1.1 cm above 3.5 km); beyond that end
    the node follows the node below it at the same column, times the ratio of the two
    at the end: the ratio is the effect of the lower pressure, which changes slowly
    with the column, and the transmittance stays continuous.
    """
    t = lookup(j, column / h2o_fraction[j])
    u_end = w_max * float(h2o_fraction[j])
    beyond = column > u_end
    if j == 0 or not np.any(beyond):
        return t
    end = np.asarray(u_end)
    below_end = gas_at_node(lookup, j - 1, end, h2o_fraction, w_max)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(below_end > 0, lookup(j, np.asarray(w_max)) / below_end, 1.0)
    return np.where(beyond, gas_at_node(lookup, j - 1, column, h2o_fraction, w_max) * ratio, t)


def gas_above_ground(
    gas: Array, z_nodes: Array, w_nodes: Array, h2o_fraction: Array, elevation_km: ArrayLike, column: ArrayLike
) -> Array:
    """Gas transmittance ``gas[elevation, 6S water vapour]`` at a column above the ground.

    At each elevation node the column is converted to 6S's input there (:func:`gas_at_node`);
    the nodes are then combined linearly in elevation at that same column above the ground.
    """
    wz = linear_weights(z_nodes, elevation_km)
    u = np.asarray(column, dtype=np.float64)

    def lookup(j: int, w: Array) -> Array:
        return gather(gas[j], corners((w_nodes,), (w,)))

    out: Array = np.zeros(())
    for j in range(len(z_nodes)):
        if np.any(wz[j]):
            out = out + wz[j] * gas_at_node(lookup, j, u, h2o_fraction, float(w_nodes[-1]))
    return out


def relative_azimuth(sun_azimuth: ArrayLike, view_azimuth: ArrayLike) -> Array:
    """Relative azimuth folded to [0, 180] degrees, the LUT's azimuth axis.

    ``|view azimuth - sun azimuth|`` folded to [0, 180]: 0 means the sensor is on the
    sun's side (backscattering), with both azimuths measured from the pixel toward the
    sun and the sensor, as in the Sentinel-2 metadata.
    """
    d = np.asarray(view_azimuth, dtype=np.float64) - np.asarray(sun_azimuth, dtype=np.float64)
    return np.abs((d + 180.0) % 360.0 - 180.0)


def toa_reflectance(surface: ArrayLike, t: AtmosphericTerms) -> Array:
    """Forward model: TOA reflectance of a Lambertian ``surface`` reflectance."""
    rho = np.asarray(surface, dtype=np.float64)
    return t.path + t.gas * t.t_down * t.t_up * rho / (1.0 - t.spherical_albedo * rho)


def surface_reflectance(toa: ArrayLike, t: AtmosphericTerms) -> Array:
    """Inverse model: Lambertian surface reflectance from TOA reflectance."""
    y = (np.asarray(toa, dtype=np.float64) - t.path) / (t.gas * t.t_down * t.t_up)
    return y / (1.0 + t.spherical_albedo * y)


def combine_terms(
    scat: dict[str, Array], g_full: Array, g_half: Array, g_dry: Array, m_s: ArrayLike, m_v: ArrayLike
) -> AtmosphericTerms:
    """Atmospheric terms from scattering terms and gas transmittances, the way 6S couples them.

    Parameters
    ----------
    scat
        Scattering terms without gas: ``path``, ``rayleigh``, ``t_down``, ``t_up``, ``s``, ``tau``.
    g_full, g_half, g_dry
        Two-way gas transmittance with the full, half and no water-vapour column.
    m_s, m_v
        Air masses (1/cos zenith) of the sun and view paths.

    Returns
    -------
    AtmosphericTerms
        Arrays broadcast over all inputs.
    """
    m_s, m_v = np.asarray(m_s, dtype=np.float64), np.asarray(m_v, dtype=np.float64)
    path = scat["rayleigh"] * g_dry + (scat["path"] - scat["rayleigh"]) * g_half
    t_down_dir = np.minimum(np.exp(-scat["tau"] * m_s), scat["t_down"])
    t_up_dir = np.minimum(np.exp(-scat["tau"] * m_v), scat["t_up"])
    arrays = (path, scat["t_down"], scat["t_up"], t_down_dir, t_up_dir, scat["s"], g_full)
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    return AtmosphericTerms(*(np.broadcast_to(a, shape) for a in arrays))


@dataclass(frozen=True)
class GeometryTable:
    """Terms of one band at one geometry over the per-pixel axes (see ``geometry_table``)."""

    aot: Array
    """AOT nodes."""
    elevation: Array
    """Elevation nodes, km."""
    water_vapour: Array
    """Water vapour nodes of ``gas``: 6S's input (sea-level column), cm."""
    h2o_fraction: Array
    """Share of 6S's water-vapour profile above each elevation node."""
    airmass_sun: float
    """1/cos(sza)."""
    airmass_view: float
    """1/cos(vza)."""
    path: Array
    """Scattering path reflectance [aot, elevation]."""
    rayleigh: Array
    """Rayleigh path reflectance [elevation]."""
    t_down: Array
    """[aot, elevation]."""
    t_up: Array
    """[aot, elevation]."""
    s: Array
    """Spherical albedo [aot, elevation]."""
    tau: Array
    """Optical depth [aot, elevation]."""
    gas: Array
    """Gas transmittance [elevation, water vapour (6S's input)]."""

    def _gas(self, elevation_km: ArrayLike, column: ArrayLike) -> Array:
        return gas_above_ground(self.gas, self.elevation, self.water_vapour, self.h2o_fraction, elevation_km, column)

    def at(self, aot: ArrayLike, elevation_km: ArrayLike = 0.0, water_vapour: ArrayLike = 2.0) -> AtmosphericTerms:
        """Per-pixel terms by bilinear gathers along (AOT, elevation) and (elevation, water vapour).

        ``water_vapour`` is the column above the ground (cm).
        """
        wv = np.asarray(water_vapour, dtype=np.float64)
        # Locate each query once; every table on the same axes then only gathers.
        c_az = corners((self.aot, self.elevation), (aot, elevation_km))
        scat = {k: gather(getattr(self, k), c_az) for k in ("path", "t_down", "t_up", "s", "tau")}
        scat["rayleigh"] = gather(self.rayleigh, corners((self.elevation,), (elevation_km,)))
        return combine_terms(
            scat,
            self._gas(elevation_km, wv),
            self._gas(elevation_km, 0.5 * wv),
            self._gas(elevation_km, 0.0),
            self.airmass_sun,
            self.airmass_view,
        )

    def dense(self, aot_step: float = DENSE_STEP, wv_step: float = DENSE_STEP) -> DenseTable:
        """This table resampled every ``aot_step`` in AOT and ``wv_step`` cm in water vapour.

        The AOT and water-vapour maps are stored as integers of 0.001 (``AOT_QUANTIFICATION``,
        ``WVP_QUANTIFICATION``), so a table at that step holds every value a product can record;
        per-pixel evaluation becomes a rounding and a gather, ten times cheaper than locating
        every pixel among the LUT nodes, and the BOA then matches the stored AOT and WVP exactly.
        The dense table's water-vapour axis is the column above the ground.
        """
        a = np.arange(0.0, self.aot[-1] + 0.5 * aot_step, aot_step)
        w = np.arange(0.0, self.water_vapour[-1] + 0.5 * wv_step, wv_step)
        z = self.elevation
        c_az = corners((self.aot, z), (a[:, None], z[None, :]))
        scat = {k: gather(getattr(self, k), c_az) for k in ("path", "t_down", "t_up", "s", "tau")}
        rayleigh = np.broadcast_to(self.rayleigh[None, :], scat["path"].shape)
        g_full = self._gas(z[:, None], w[None, :])
        g_half = self._gas(z[:, None], 0.5 * w[None, :])
        g_dry = self._gas(z, np.zeros_like(z))
        t_down_dir = np.minimum(np.exp(-scat["tau"] * self.airmass_sun), scat["t_down"])
        t_up_dir = np.minimum(np.exp(-scat["tau"] * self.airmass_view), scat["t_up"])
        stacked = np.stack(
            [scat["path"] - rayleigh, rayleigh, scat["t_down"], scat["t_up"], t_down_dir, t_up_dir, scat["s"]]
        )
        return DenseTable(aot_step, wv_step, z, np.ascontiguousarray(stacked), np.stack([g_full, g_half]), g_dry)


@dataclass(frozen=True)
class DenseTable:
    """A :class:`GeometryTable` at fixed steps of AOT and water vapour (see :meth:`GeometryTable.dense`)."""

    aot_step: float
    wv_step: float
    elevation: Array
    """Elevation nodes, km."""
    scat: Array
    """[aerosol path, Rayleigh path, t_down, t_up, t_down_dir, t_up_dir, s] x [aot, elevation]."""
    gas: Array
    """[full, half water vapour] x [elevation, water vapour column above the ground]."""
    gas_dry: Array
    """Gas transmittance without water vapour [elevation]."""
    _flat: dict[float, tuple[Array, Array, Array]] = field(default_factory=dict, compare=False, repr=False)

    def _at_elevation(self, z: float) -> tuple[Array, Array, Array]:
        # One surface elevation for a whole block (no DEM): collapse the elevation axis once.
        if z not in self._flat:
            i, f = locate(self.elevation, z)
            i0, f0 = int(i), float(f)
            i1 = min(i0 + 1, len(self.elevation) - 1)
            self._flat[z] = (
                np.ascontiguousarray(self.scat[:, :, i0] * (1 - f0) + self.scat[:, :, i1] * f0),
                np.ascontiguousarray(self.gas[:, i0, :] * (1 - f0) + self.gas[:, i1, :] * f0),
                np.asarray(self.gas_dry[i0] * (1 - f0) + self.gas_dry[i1] * f0),
            )
        return self._flat[z]

    def _index(self, x: ArrayLike, step: float, n: int) -> NDArray[np.intp]:
        # In place on one float64 temporary: this runs for every pixel of every band.
        q = np.asarray(np.multiply(x, 1.0 / step, dtype=np.float64))
        np.rint(q, out=q)
        np.copyto(q, 0.0, where=np.isnan(q))
        np.clip(q, 0, n - 1, out=q)  # infinities land on the table's ends
        return q.astype(np.intp)

    def at(self, aot: ArrayLike, elevation_km: ArrayLike = 0.0, water_vapour: ArrayLike = 2.0) -> AtmosphericTerms:
        """Per-pixel terms: AOT and water vapour rounded to the table's steps, elevation interpolated."""
        ia = self._index(aot, self.aot_step, self.scat.shape[1])
        iw = self._index(water_vapour, self.wv_step, self.gas.shape[2])
        z = np.asarray(elevation_km)
        if z.ndim == 0 or (z.size and float(z.min()) == float(z.max())):
            scat, gas, dry = self._at_elevation(float(z.flat[0]) if z.size else 0.0)
            # np.take: the same values as fancy indexing, about twice as fast on a 1-D table.
            v = [np.take(scat[k], ia) for k in range(scat.shape[0])]
            g_full, g_half, g_dry = np.take(gas[0], iw), np.take(gas[1], iw), dry
        else:
            z = z.astype(np.float64)
            iz, fz = locate(self.elevation, z)
            iz1 = np.minimum(iz + 1, len(self.elevation) - 1)
            v = [self.scat[k][ia, iz] * (1 - fz) + self.scat[k][ia, iz1] * fz for k in range(self.scat.shape[0])]
            g = [self.gas[k][iz, iw] * (1 - fz) + self.gas[k][iz1, iw] * fz for k in range(2)]
            g_full, g_half = g
            g_dry = self.gas_dry[iz] * (1 - fz) + self.gas_dry[iz1] * fz
        path = v[1] * g_dry + v[0] * g_half
        arrays = (path, v[2], v[3], v[4], v[5], v[6], g_full)
        shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
        return AtmosphericTerms(*(np.broadcast_to(a, shape) for a in arrays))

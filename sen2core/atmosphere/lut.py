"""Evaluate the 6S radiative-transfer LUT: atmospheric terms, forward and inverse models.

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
The LUT's water-vapour axis is 6S's input, the column of 6S's sea-level atmosphere,
of which a raised target has only the part above it; each lookup converts at every
elevation node ``z`` (:func:`sen2core.atmosphere.profile.sixs_input`: the column
divided by the share of the profile above ``z``) and interpolates between the nodes
at the same column above the ground, where the transmittance changes only through
pressure.

Angles are in degrees. The relative azimuth is ``|view azimuth - sun azimuth|``
folded to [0, 180]: 0 means the sensor is on the sun's side (backscattering),
with both azimuths measured from the pixel toward the sun and the sensor, as in
the Sentinel-2 metadata. Queries outside the grid are clamped to its edges.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sen2core.atmosphere.grid import LUTGrid
from sen2core.atmosphere.profile import fraction_above
from sen2core.errors import LUTError
from sen2core.kernels.interp import corners, gather, lagrange_weights, locate, multilinear

Array = NDArray[np.float64]

#: File name of the LUT shipped with the package.
DEFAULT_LUT_NAME = "sen2core_6s_lut.npz"
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


def _linear_weights(nodes: Array, x: ArrayLike) -> Array:
    """Weights of every node for linear interpolation at ``x`` (shape ``(len(nodes),) + shape(x)``)."""
    i, f = locate(nodes, x)
    w = np.zeros((len(nodes),) + np.shape(i))
    np.put_along_axis(w, i[None, ...], (1.0 - f)[None, ...], axis=0)
    if len(nodes) > 1:
        np.put_along_axis(w, (i + 1)[None, ...], f[None, ...], axis=0)
    return w


def _at_node(lookup: Callable[[int, Array], Array], j: int, column: Array, h2o_fraction: Array, w_max: float) -> Array:
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
    below_end = _at_node(lookup, j - 1, end, h2o_fraction, w_max)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(below_end > 0, lookup(j, np.asarray(w_max)) / below_end, 1.0)
    return np.where(beyond, _at_node(lookup, j - 1, column, h2o_fraction, w_max) * ratio, t)


def _gas_above_ground(
    gas: Array, z_nodes: Array, w_nodes: Array, h2o_fraction: Array, elevation_km: ArrayLike, column: ArrayLike
) -> Array:
    """Gas transmittance ``gas[elevation, 6S water vapour]`` at a column above the ground.

    At each elevation node the column is converted to 6S's input there (:func:`_at_node`);
    the nodes are then combined linearly in elevation at that same column above the ground.
    """
    wz = _linear_weights(z_nodes, elevation_km)
    u = np.asarray(column, dtype=np.float64)

    def lookup(j: int, w: Array) -> Array:
        return gather(gas[j], corners((w_nodes,), (w,)))

    out: Array = np.zeros(())
    for j in range(len(z_nodes)):
        if np.any(wz[j]):
            out = out + wz[j] * _at_node(lookup, j, u, h2o_fraction, float(w_nodes[-1]))
    return out


def relative_azimuth(sun_azimuth: ArrayLike, view_azimuth: ArrayLike) -> Array:
    """Relative azimuth folded to [0, 180] degrees."""
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


def _airmass(deg: ArrayLike) -> Array:
    return 1.0 / np.cos(np.radians(np.asarray(deg, dtype=np.float64)))


def _combine(
    sc: dict[str, Array], g_full: Array, g_half: Array, g_dry: Array, m_s: ArrayLike, m_v: ArrayLike
) -> AtmosphericTerms:
    path = sc["rayleigh"] * g_dry + (sc["path"] - sc["rayleigh"]) * g_half
    t_down_dir = np.minimum(np.exp(-sc["tau"] * m_s), sc["t_down"])
    t_up_dir = np.minimum(np.exp(-sc["tau"] * m_v), sc["t_up"])
    arrays = (path, sc["t_down"], sc["t_up"], t_down_dir, t_up_dir, sc["s"], g_full)
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
        return _gas_above_ground(self.gas, self.elevation, self.water_vapour, self.h2o_fraction, elevation_km, column)

    def at(self, aot: ArrayLike, elevation_km: ArrayLike = 0.0, water_vapour: ArrayLike = 2.0) -> AtmosphericTerms:
        """Per-pixel terms by bilinear gathers along (AOT, elevation) and (elevation, water vapour).

        ``water_vapour`` is the column above the ground (cm).
        """
        wv = np.asarray(water_vapour, dtype=np.float64)
        # Locate each query once; every table on the same axes then only gathers.
        c_az = corners((self.aot, self.elevation), (aot, elevation_km))
        sc = {k: gather(getattr(self, k), c_az) for k in ("path", "t_down", "t_up", "s", "tau")}
        sc["rayleigh"] = gather(self.rayleigh, corners((self.elevation,), (elevation_km,)))
        return _combine(
            sc,
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
        sc = {k: gather(getattr(self, k), c_az) for k in ("path", "t_down", "t_up", "s", "tau")}
        rayleigh = np.broadcast_to(self.rayleigh[None, :], sc["path"].shape)
        g_full = self._gas(z[:, None], w[None, :])
        g_half = self._gas(z[:, None], 0.5 * w[None, :])
        g_dry = self._gas(z, np.zeros_like(z))
        t_down_dir = np.minimum(np.exp(-sc["tau"] * self.airmass_sun), sc["t_down"])
        t_up_dir = np.minimum(np.exp(-sc["tau"] * self.airmass_view), sc["t_up"])
        scat = np.stack([sc["path"] - rayleigh, rayleigh, sc["t_down"], sc["t_up"], t_down_dir, t_up_dir, sc["s"]])
        return DenseTable(aot_step, wv_step, z, np.ascontiguousarray(scat), np.stack([g_full, g_half]), g_dry)


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


class RadiativeTransferLUT:
    """A LUT built by ``sen2core lut build``; see the module docstring for the model."""

    _TABLES = ("path0", "dpath", "t", "s", "tau", "gas")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path.with_suffix(".json")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
            with np.load(self.path) as z:
                self.tables = {k: np.asarray(z[k], dtype=np.float64) for k in self._TABLES}
        except (OSError, KeyError, ValueError) as exc:
            raise LUTError(f"{self.path}: not a readable sen2core LUT ({exc})") from exc
        g = self.meta["grid"]
        self.grid = LUTGrid(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in g.items()})
        self.spacecraft: tuple[str, ...] = tuple(self.meta["spacecraft"])
        self.bands: tuple[str, ...] = tuple(self.meta["bands"])
        gr = self.grid
        self._n_sza = _airmass(gr.sza)
        self._n_vza = np.asarray(gr.vza, dtype=np.float64)
        self._n_raa = -np.cos(np.radians(np.asarray(gr.raa, dtype=np.float64)))
        self._n_aot = np.asarray(gr.aot, dtype=np.float64)
        self._n_z = np.asarray(gr.elevation, dtype=np.float64)
        self._n_m = np.asarray(gr.airmass, dtype=np.float64)
        self._n_wv = np.asarray(gr.water_vapour, dtype=np.float64)
        self._n_o3 = np.asarray(gr.ozone, dtype=np.float64)
        self._h2o = fraction_above(self._n_z)

    @property
    def id(self) -> str:
        """Identifier recorded in every product made with this LUT."""
        return str(self.meta["id"])

    def _index(self, spacecraft: str, band: str, aerosol: str) -> tuple[int, int, int]:
        try:
            return (self.spacecraft.index(spacecraft), self.bands.index(band), self.grid.aerosols.index(aerosol))
        except ValueError as exc:
            raise LUTError(
                f"LUT {self.id} has no entry for spacecraft={spacecraft!r}, band={band!r}, aerosol={aerosol!r}"
            ) from exc

    def terms(
        self,
        spacecraft: str,
        band: str,
        aerosol: str,
        sza: ArrayLike,
        vza: ArrayLike,
        raa: ArrayLike,
        aot: ArrayLike,
        elevation_km: ArrayLike = 0.0,
        water_vapour: ArrayLike = 2.0,
        ozone: ArrayLike = 0.33,
    ) -> AtmosphericTerms:
        """Atmospheric terms of ``band`` at the given conditions.

        Parameters
        ----------
        spacecraft, band, aerosol
            ``S2A``/``S2B``, band name (``B01`` .. ``B12``, ``B8A``), ``continental``/``maritime``.
        sza, vza, raa
            Sun zenith, view zenith, relative azimuth (degrees).
        aot
            Aerosol optical thickness at 550 nm above the surface.
        elevation_km
            Surface elevation (km above sea level).
        water_vapour
            Water vapour column above the surface (g/cm2, i.e. cm), converted to 6S's
            sea-level-referenced input at each elevation node (see the module docstring).
        ozone
            Ozone column (cm-atm; 0.33 = 330 DU).

        Returns
        -------
        AtmosphericTerms
            Arrays broadcast over all inputs.
        """
        isc, ib, ia = self._index(spacecraft, band, aerosol)
        m_s, m_v = _airmass(sza), _airmass(vza)
        z = np.asarray(elevation_km, dtype=np.float64)
        sc = self._scattering(isc, ib, ia, m_s, m_v, vza, raa, aot, z)
        g_full, g_half, g_dry = self._gas(isc, ib, z, m_s + m_v, water_vapour, ozone)
        return _combine(sc, g_full, g_half, g_dry, m_s, m_v)

    def _scattering(
        self, isc: int, ib: int, ia: int, m_s: Array, m_v: Array, vza: ArrayLike, raa: ArrayLike, aot: ArrayLike,
        z: ArrayLike,
    ) -> dict[str, Array]:  # fmt: skip
        tb = self.tables
        cr = -np.cos(np.radians(np.asarray(raa, dtype=np.float64)))
        p0, dp = tb["path0"][isc, ib, ia], tb["dpath"][isc, ib, ia]
        # Over the MSI's narrow view cone the path reflectance is a smooth, low-order function of
        # view zenith and of cos(relative azimuth): interpolate those two axes with the polynomial
        # through their three nodes, the others linearly.
        w_v = lagrange_weights(self._n_vza, vza)
        w_r = lagrange_weights(self._n_raa, cr)
        w_s = _linear_weights(self._n_sza, m_s)
        aot_axis = (self._n_aot,)

        def path_at(aot_q: ArrayLike) -> Array:
            total: Array = np.zeros(())
            for i in range(len(self._n_sza)):
                if not np.any(w_s[i]):
                    continue
                col: Array = np.zeros(())
                for j, wj in enumerate(w_v):
                    for k, wk in enumerate(w_r):
                        col = col + wj * wk * multilinear(p0[i, j, k, :], aot_axis, (aot_q,))
                total = total + w_s[i] * col
            return total

        elev = (self._n_z, self._n_sza, self._n_aot)
        # Higher ground has fewer molecules above it: the change of path reflectance with
        # elevation is tabulated at nadir and follows the Rayleigh path's angular shape elsewhere.
        rayleigh0 = path_at(0.0)
        rayleigh_nadir = np.tensordot(p0[:, 0, 0, 0], w_s, axes=(0, 0))
        shape = rayleigh0 / rayleigh_nadir

        def dpath_at(aot_q: ArrayLike) -> Array:
            total: Array = np.zeros(())
            for n in range(len(self._n_sza)):
                if np.any(w_s[n]):
                    total = total + w_s[n] * multilinear(dp[:, n, :], (self._n_z, self._n_aot), (z, aot_q))
            return total

        path = path_at(aot) + shape * dpath_at(aot)
        # AOT 0 is the pure Rayleigh path, which 6S attenuates by the dry gases only.
        rayleigh = rayleigh0 + shape * dpath_at(0.0)
        t_tab = tb["t"][isc, ib, ia]
        return {
            "path": path,
            "rayleigh": rayleigh,
            "t_down": multilinear(t_tab, elev, (z, m_s, aot)),
            "t_up": multilinear(t_tab, elev, (z, m_v, aot)),
            "s": multilinear(tb["s"][isc, ib, ia], (self._n_z, self._n_aot), (z, aot)),
            "tau": multilinear(tb["tau"][isc, ib, ia], (self._n_z, self._n_aot), (z, aot)),
        }

    def _gas(
        self, isc: int, ib: int, z: ArrayLike, m: ArrayLike, water_vapour: ArrayLike, ozone: ArrayLike
    ) -> tuple[Array, Array, Array]:
        """Full, half and no water vapour; ``water_vapour`` is the column above the ground."""
        axes = (self._n_m, self._n_wv, self._n_o3)
        u = np.asarray(water_vapour, dtype=np.float64)
        g_tab = self.tables["gas"][isc, ib]
        wz = _linear_weights(self._n_z, z)
        w_max = float(self._n_wv[-1])

        def lookup(j: int, w: Array) -> Array:
            return multilinear(g_tab[j], axes, (m, w, ozone))

        out: list[Array] = [np.zeros(()), np.zeros(()), np.zeros(())]
        for j in range(len(self._n_z)):
            if not np.any(wz[j]):
                continue
            for k, share in enumerate((1.0, 0.5, 0.0)):
                out[k] = out[k] + wz[j] * _at_node(lookup, j, share * u, self._h2o, w_max)
        shape = np.broadcast_shapes(np.shape(z), np.shape(m), u.shape, np.shape(ozone))
        full, half, dry = (np.broadcast_to(g, shape) for g in out)
        return full, half, dry

    def _gas_nodes(self, isc: int, ib: int, m: float, ozone: float) -> Array:
        """Gas transmittance [elevation node, 6S water-vapour node] at one air mass and ozone."""
        axes = (self._n_z, self._n_m, self._n_wv, self._n_o3)
        z, w = self._n_z[:, None], self._n_wv[None, :]
        return multilinear(self.tables["gas"][isc, ib], axes, (z, m, w, ozone))

    def scattering(
        self, spacecraft: str, band: str, aerosol: str, sza: ArrayLike, vza: ArrayLike, raa: ArrayLike,
        aot: ArrayLike, elevation_km: ArrayLike = 0.0,
    ) -> dict[str, Array]:  # fmt: skip
        """Scattering terms without gas: ``path``, ``rayleigh``, ``t_down``, ``t_up``, ``s``, ``tau``."""
        isc, ib, ia = self._index(spacecraft, band, aerosol)
        z = np.asarray(elevation_km, dtype=np.float64)
        return self._scattering(isc, ib, ia, _airmass(sza), _airmass(vza), vza, raa, aot, z)

    def gas_transmittance(
        self, spacecraft: str, band: str, elevation_km: ArrayLike, airmass: ArrayLike, water_vapour: ArrayLike,
        ozone: ArrayLike,
    ) -> Array:  # fmt: skip
        """Gaseous transmittance along a path of the given (two-way) air mass; ``water_vapour`` above the ground."""
        isc, ib, _ = self._index(spacecraft, band, self.grid.aerosols[0])
        return self._gas(isc, ib, elevation_km, airmass, water_vapour, ozone)[0]

    def geometry_table(
        self,
        spacecraft: str,
        band: str,
        aerosol: str,
        sza: float,
        vza: float,
        raa: float,
        ozone: float = 0.33,
    ) -> GeometryTable:
        """Terms of ``band`` at one geometry, tabulated over AOT, elevation and water vapour.

        Sun and view angles vary slowly across a scene, so a processing chunk takes
        one geometry (its mean) and evaluates per pixel only along the axes that do
        vary per pixel. Multilinear interpolation is separable, so
        ``geometry_table(...).at(aot, z, wv)`` equals ``terms(...)`` at that geometry.
        """
        isc, ib, ia = self._index(spacecraft, band, aerosol)
        m_s, m_v = float(_airmass(sza)), float(_airmass(vza))
        aot_n, z_n, wv_n = self._n_aot, self._n_z, self._n_wv
        sc = self._scattering(isc, ib, ia, np.asarray(m_s), np.asarray(m_v), vza, raa, aot_n[:, None], z_n[None, :])
        g_nodes = self._gas_nodes(isc, ib, m_s + m_v, ozone)
        return GeometryTable(
            aot=aot_n, elevation=z_n, water_vapour=wv_n, h2o_fraction=self._h2o, airmass_sun=m_s, airmass_view=m_v,
            path=sc["path"], rayleigh=sc["rayleigh"][0, :], t_down=sc["t_down"], t_up=sc["t_up"],
            s=sc["s"], tau=sc["tau"], gas=g_nodes,
        )  # fmt: skip

    def info(self) -> dict[str, Any]:
        """Axes, ranges, id and provenance, JSON-serialisable."""
        g = self.grid
        axes = {
            "sza_deg": g.sza, "vza_deg": g.vza, "raa_deg": g.raa, "aot550": g.aot,
            "elevation_km": g.elevation, "airmass": g.airmass, "water_vapour_cm": g.water_vapour,
            "ozone_cm_atm": g.ozone,
        }  # fmt: skip
        return {
            "id": self.id,
            "path": str(self.path),
            "spacecraft": list(self.spacecraft),
            "bands": list(self.bands),
            "aerosol_models": list(g.aerosols),
            "axes": {k: list(v) for k, v in axes.items()},
            "ranges": {k: [min(v), max(v)] for k, v in axes.items()},
            "size_bytes": self.path.stat().st_size,
            **{
                k: self.meta[k]
                for k in ("built_with", "srf", "n_6s_runs", "command", "build_seconds", "built_at")
                if k in self.meta
            },
        }


def default_lut_path() -> Path:
    """Path of the LUT shipped as package data."""
    return Path(str(resources.files("sen2core") / "data" / "lut" / DEFAULT_LUT_NAME))


@lru_cache(maxsize=4)
def load_lut(path: str | Path | None = None) -> RadiativeTransferLUT:
    """Load (and cache) a LUT; the packaged one by default."""
    p = Path(path) if path is not None else default_lut_path()
    if not p.exists():
        raise LUTError(f"{p}: LUT file not found (build one with `sen2core lut build`)")
    return RadiativeTransferLUT(p)

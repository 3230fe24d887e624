"""Load and evaluate the 6S radiative-transfer LUT built by ``sen2core lut build``.

:class:`RadiativeTransferLUT` reads the tables and evaluates them at any conditions
(:meth:`~RadiativeTransferLUT.terms`) or at one geometry over the per-pixel axes
(:meth:`~RadiativeTransferLUT.geometry_table`). The values it returns, the surface model
they stand for and the conventions of their axes (water vapour above the ground, relative
azimuth) are defined in :mod:`sen2core.kernels.lut`, below the kernels that use them.

Along the LUT's water-vapour axis, 6S's input (the column of 6S's sea-level atmosphere),
each lookup converts at every elevation node ``z`` (:func:`sen2core.atmosphere.profile.sixs_input`:
the column divided by the share of the profile above ``z``). Queries outside the grid are
clamped to its edges.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sen2core.atmosphere.grid import LUTGrid
from sen2core.atmosphere.profile import fraction_above
from sen2core.errors import LUTError
from sen2core.kernels.interp import lagrange_weights, multilinear
from sen2core.kernels.lut import AtmosphericTerms, GeometryTable, combine_terms, gas_at_node, linear_weights

Array = NDArray[np.float64]

#: File name of the LUT shipped with the package.
DEFAULT_LUT_NAME = "sen2core_6s_lut.npz"


def _airmass(deg: ArrayLike) -> Array:
    return 1.0 / np.cos(np.radians(np.asarray(deg, dtype=np.float64)))


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
        # JSON gives lists where the grid holds tuples; the values are checked by LUTGrid's fields.
        fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in g.items()}
        self.grid = LUTGrid(**fields)
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
        scat = self._scattering(isc, ib, ia, m_s, m_v, vza, raa, aot, z)
        g_full, g_half, g_dry = self._gas(isc, ib, z, m_s + m_v, water_vapour, ozone)
        return combine_terms(scat, g_full, g_half, g_dry, m_s, m_v)

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
        w_s = linear_weights(self._n_sza, m_s)
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
        wz = linear_weights(self._n_z, z)
        w_max = float(self._n_wv[-1])

        def lookup(j: int, w: Array) -> Array:
            return multilinear(g_tab[j], axes, (m, w, ozone))

        out: list[Array] = [np.zeros(()), np.zeros(()), np.zeros(())]
        for j in range(len(self._n_z)):
            if not np.any(wz[j]):
                continue
            for k, share in enumerate((1.0, 0.5, 0.0)):
                out[k] = out[k] + wz[j] * gas_at_node(lookup, j, share * u, self._h2o, w_max)
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
        scat = self._scattering(isc, ib, ia, np.asarray(m_s), np.asarray(m_v), vza, raa, aot_n[:, None], z_n[None, :])
        g_nodes = self._gas_nodes(isc, ib, m_s + m_v, ozone)
        return GeometryTable(
            aot=aot_n, elevation=z_n, water_vapour=wv_n, h2o_fraction=self._h2o, airmass_sun=m_s, airmass_view=m_v,
            path=scat["path"], rayleigh=scat["rayleigh"][0, :], t_down=scat["t_down"], t_up=scat["t_up"],
            s=scat["s"], tau=scat["tau"], gas=g_nodes,
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

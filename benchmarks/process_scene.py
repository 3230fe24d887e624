"""Benchmark: process one synthetic Level-1C scene with 1 and 2 Dask workers, side by side.

Prints seconds per stage, total wall time, peak RSS of the whole process tree (all
Dask worker processes included) and the speedup of 2 workers over 1. The scene is
generated once and cached.

    python benchmarks/process_scene.py --size 1830 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(cmd: list[str]) -> tuple[float, int, str]:
    """Run ``cmd``; return wall seconds, peak tree RSS and stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ps = psutil.Process(proc.pid)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], tree_rss(ps))
            except psutil.Error:
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    done.set()
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return time.perf_counter() - t0, peak[0], out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1830, help="scene edge in 10 m pixels (multiple of 6)")
    ap.add_argument("--resolution", default="20", choices=["10", "20", "60"])
    ap.add_argument("--repeat", type=int, default=3, help="runs per configuration (median reported)")
    ap.add_argument("--cache", type=Path, default=Path("benchmark-data"))
    args = ap.parse_args()

    sen2core = [sys.executable, "-m", "sen2core.cli"]
    scene_dir = args.cache / f"synth-{args.size}"
    safes = sorted(scene_dir.glob("*.SAFE"))
    if not safes:
        print(f"generating a {args.size} px synthetic scene in {scene_dir} ...", flush=True)
        _, _, out = run([*sen2core, "synth", str(scene_dir), "--size", str(args.size), "--seed", "1",
                         "--cloud-cover", "20", "--tile", "32TQM"])  # fmt: skip
        safes = [Path(out.strip().splitlines()[-1])]
    safe = safes[0]
    print(f"scene: {safe.name}, {args.size} px at 10 m, output resolution {args.resolution}")
    results: dict[int, list[tuple[float, int, dict[str, float]]]] = {}
    for workers in (1, 2):
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as out_dir:
                wall, peak, out = run([*sen2core, "process", str(safe), "-o", out_dir, "--resolution", args.resolution,
                                       "--workers", str(workers), "--json"])  # fmt: skip
                results.setdefault(workers, []).append((wall, peak, json.loads(out)["seconds"]))
    for workers, runs in results.items():
        walls = [r[0] for r in runs]
        stages = {k: statistics.median(r[2][k] for r in runs) for k in runs[0][2]}
        print(f"{workers} worker(s): median wall {statistics.median(walls):.1f} s over {len(runs)} runs, "
              f"peak RSS {max(r[1] for r in runs) / 2**30:.2f} GiB")  # fmt: skip
        print("   stages (median s): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    w1 = statistics.median(r[0] for r in results[1])
    w2 = statistics.median(r[0] for r in results[2])
    print(f"speedup 2 workers over 1: {w1 / w2:.2f}x")


if __name__ == "__main__":
    main()

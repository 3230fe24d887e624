"""Benchmark: one product processed by tiles (``sen2core.tiled``) versus as one graph, side by side.

Both runs use the same scene, chunking and ``LocalCluster`` (worker processes, one
thread each), alternately, ``--repeat`` times. Prints the wall seconds (median),
the seconds per stage, peak resident memory of the process tree, and the ratio
tiles / product. The tiled run computes its tiles one after the other, each on the
whole cluster, as the per-tile flow does when the tiles outnumber the workers.

    python benchmarks/tiles_vs_product.py /work/bench-data/synth-1830/*.SAFE --chunk-m 6000 --tile-blocks 2
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil
from distributed import Client, LocalCluster
from process_scene import tree_rss

from sen2core.pipeline import ProcessingConfig, process_product
from sen2core.tiled import process_tiled


class _Peak:
    def __init__(self) -> None:
        self.peak = 0
        self.done = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss(me))
            time.sleep(0.5)

    def stop(self) -> int:
        self.done.set()
        return self.peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("safe", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=10, choices=[10, 20, 60])
    ap.add_argument("--chunk-m", type=float, default=6000.0)
    ap.add_argument("--tile-blocks", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--scratch", type=Path, default=None, help="where outputs are written (default: a temp dir)")
    args = ap.parse_args()

    config = ProcessingConfig(resolution=args.resolution, chunk_m=args.chunk_m, overwrite=True)
    times: dict[str, list[float]] = {"product": [], "tiles": []}
    peaks: dict[str, int] = {"product": 0, "tiles": 0}
    stages: dict[str, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory(dir=args.scratch) as out,
        LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                     silence_logs=logging.ERROR) as cluster,
        Client(cluster),
    ):  # fmt: skip
        for i in range(args.repeat):
            for mode in ("product", "tiles"):
                peak = _Peak()
                t0 = time.perf_counter()
                if mode == "product":
                    result = process_product(args.safe, Path(out) / mode, config)
                else:
                    result = process_tiled(args.safe, Path(out) / mode, config, tile_blocks=args.tile_blocks)
                times[mode].append(time.perf_counter() - t0)
                peaks[mode] = max(peaks[mode], peak.stop())
                stages[mode] = result.seconds
                print(f"run {i + 1} {mode}: {times[mode][-1]:.1f} s", flush=True)
    print(f"\nscene {args.safe.name}, --resolution {args.resolution}, chunk {args.chunk_m:g} m, "
          f"tiles of {args.tile_blocks}x{args.tile_blocks} blocks, {args.workers} workers, "
          f"{args.repeat} run(s)")  # fmt: skip
    for mode in ("product", "tiles"):
        med = statistics.median(times[mode])
        per_stage = ", ".join(f"{k} {v:.1f}" for k, v in stages[mode].items())
        print(f"{mode:8s} median {med:7.1f} s  peak RSS {peaks[mode] / 2**30:5.2f} GiB  stages: {per_stage}")
    print(f"ratio tiles / product: {statistics.median(times['tiles']) / statistics.median(times['product']):.2f}")


if __name__ == "__main__":
    main()

"""Profile one processing run in process: where the workers' time and the memory go.

Runs :func:`sen2core.pipeline.process_product` on a ``LocalCluster`` (worker processes,
one thread each) and prints

- the wall time and the seconds per stage;
- the workers' compute (and transfer) seconds summed by task prefix, from the
  scheduler's task stream, largest first: a fused task is named after its last function;
- the peak resident memory of the process tree per stage, and the workers' peak with
  the part Dask manages (results held for later tasks) at that moment. Managed memory
  close to the peak means held intermediates; a large difference means memory outside
  Dask's results (GDAL caches, temporaries inside tasks).

    .venv/bin/python benchmarks/profile_run.py benchmark-data/synth-10980/*.SAFE --workers 2
"""

from __future__ import annotations

import argparse
import collections
import logging
import re
import tempfile
import threading
import time
from pathlib import Path

import psutil
from distributed import Client, LocalCluster, get_task_stream
from process_scene import tree_rss

from sen2core.parallel import tune_malloc
from sen2core.pipeline import ProcessingConfig, process_product


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("safe", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=10, choices=[10, 20, 60])
    ap.add_argument("--scratch", type=Path, default=Path("benchmark-data"), help="where the output is written")
    ap.add_argument("--top", type=int, default=30, help="task prefixes listed")
    ap.add_argument(
        "--malloc",
        choices=["trim", "keep", "off"],
        default="trim",
        help="sen2core.parallel.tune_malloc on the workers: trim after each task, keep, or off",
    )
    args = ap.parse_args()

    me = psutil.Process()
    stage = ["start"]
    tree_peak: dict[str, int] = collections.defaultdict(int)
    worker_peak: dict[str, tuple[int, int]] = collections.defaultdict(lambda: (0, 0))
    done = threading.Event()
    t0 = time.perf_counter()

    def sample_tree() -> None:
        while not done.is_set():
            tree_peak[stage[0]] = max(tree_peak[stage[0]], tree_rss(me))
            time.sleep(0.5)

    threading.Thread(target=sample_tree, daemon=True).start()
    with (
        LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                     silence_logs=logging.ERROR) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        if args.malloc != "off":
            client.register_plugin(tune_malloc(trim_after_task=args.malloc == "trim"))

        def sample_workers() -> None:
            while not done.is_set():
                workers = client.scheduler_info(n_workers=-1)["workers"].values()
                rss = sum(w["metrics"]["memory"] for w in workers)
                managed = sum(w["metrics"].get("managed_bytes", 0) for w in workers)
                if rss > worker_peak[stage[0]][0]:
                    worker_peak[stage[0]] = (rss, managed)
                time.sleep(1.0)

        def progress(name: str) -> None:
            stage[0] = name
            print(f"[{time.perf_counter() - t0:7.1f} s] {name}", flush=True)

        threading.Thread(target=sample_workers, daemon=True).start()
        args.scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.scratch) as out, get_task_stream(client) as stream:
            start = time.perf_counter()
            result = process_product(str(args.safe), out, ProcessingConfig(resolution=args.resolution),
                                     progress=progress)  # fmt: skip
            wall = time.perf_counter() - start
        done.set()  # before the cluster closes: the samplers ask it for figures

    by_prefix: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for record in stream.data:
        key = record["key"][0] if isinstance(record["key"], tuple) else record["key"]
        prefix = re.sub(r"-[0-9a-f]{32}$|-[0-9a-f-]{36}$", "", str(key))
        for span in record["startstops"]:
            entry = by_prefix[(prefix, span["action"])]
            entry[0] += 1
            entry[1] += span["stop"] - span["start"]
    print(f"wall {wall:.1f} s; stages: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    print("worker seconds by task prefix (count, action):")
    for (prefix, action), (count, seconds) in sorted(by_prefix.items(), key=lambda kv: -kv[1][1])[: args.top]:
        print(f"{seconds:9.1f} s {int(count):7d} {action:9s} {prefix}")
    gib = 2**30
    print("peak RSS of the process tree by stage: " + ", ".join(f"{k} {v / gib:.2f} GiB" for k, v in tree_peak.items()))
    print("workers' peak RSS by stage (managed by Dask at that moment): " + ", ".join(
        f"{k} {rss / gib:.2f} ({managed / gib:.2f}) GiB" for k, (rss, managed) in worker_peak.items()))  # fmt: skip


if __name__ == "__main__":
    main()

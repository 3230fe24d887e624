"""Benchmark: the ways to run one product through the Prefect flow, side by side, and the scheduler's load.

Modes (each a ``sen2core flow product ... --workers N`` process against one Prefect
server that this script starts on 127.0.0.1, run alternately, ``--repeat`` times):

``baseline``
    The one-task product of an earlier version (``--baseline-src``: a checkout of it,
    e.g. ``git worktree add ../baseline 4c62afa``), for "today's" cost.
``one-task``
    This version, one task per product (``--task-per-product``).
``stages``
    This version's default: one task per stage.
``tiles``
    One task per stage and tile (``--tile-blocks``; ``--tiles-at-once`` in flight).

Prints per mode the median wall seconds of the whole command (cluster start included,
the same for every mode), the peak resident memory of its process tree and the ratio
to ``baseline`` (else ``one-task``). Then, unless ``--no-scheduler``, the scheduler's
load of one product run by :func:`sen2core.pipeline.process_product` (the stages) on a
separate ``dask scheduler`` process with ``--workers`` single-threaded workers: Dask
tasks sent and run, graphs sent, and the scheduler's CPU seconds, from which the
products per hour one scheduler can drive follow.

    python benchmarks/tiles_vs_product.py benchmark-data/synth-1830/*.SAFE --chunk-m 6000 --tile-blocks 2 \\
        --baseline-src ../baseline --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from process_scene import run  # noqa: E402

MODES = ("baseline", "one-task", "stages", "tiles")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(home: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = dict(os.environ, PREFECT_HOME=home, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                             str(port), "--analytics-off"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    import urllib.request

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit("the Prefect server did not start")


def _flow_command(mode: str, args: argparse.Namespace, out: str) -> list[str]:
    # -P: the working directory is not put on the path, so that PYTHONPATH (the baseline) decides.
    cmd = [sys.executable, "-P", "-m", "sen2core.cli", "flow", "product", str(args.safe), "-o", out,
           "--workers", str(args.workers), "--chunk-m", str(args.chunk_m), "--json"]  # fmt: skip
    if args.resolution:
        cmd += ["--resolution", str(args.resolution)]
    if mode == "one-task":
        cmd.append("--task-per-product")
    if mode == "tiles":
        cmd += ["--tile-blocks", str(args.tile_blocks)]
        if args.tiles_at_once:
            cmd += ["--tiles-at-once", str(args.tiles_at_once)]
    return cmd


def scheduler_load(args: argparse.Namespace, out: str) -> dict[str, Any]:
    """Tasks, graphs and scheduler CPU seconds of one product run by the stages on a separate scheduler."""
    from distributed import Client
    from distributed.diagnostics.plugin import SchedulerPlugin

    from sen2core.parallel import tune_malloc
    from sen2core.pipeline import ProcessingConfig, process_product

    class Count(SchedulerPlugin):  # type: ignore[misc]
        name = "benchmark-count"

        def __init__(self) -> None:
            self.tasks = 0
            self.graphs = 0

        def update_graph(self, scheduler: Any, **kwargs: Any) -> None:
            self.tasks += len(kwargs.get("tasks") or ())
            self.graphs += 1

    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--dashboard-address", "127.0.0.1:0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
    address = f"tcp://127.0.0.1:{port}"
    procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers",
                                   str(args.workers), "--nthreads", "1", "--dashboard-address", "127.0.0.1:0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(args.workers, timeout=120)
            client.register_plugin(tune_malloc())
            client.register_plugin(Count())
            from distributed import get_task_stream

            scheduler = psutil.Process(procs[0].pid)
            cpu0 = sum(scheduler.cpu_times()[:2])
            t0 = time.perf_counter()
            config = ProcessingConfig(resolution=args.resolution, chunk_m=args.chunk_m, overwrite=True)
            with get_task_stream(client=client) as stream:
                process_product(args.safe, out, config)
            wall = time.perf_counter() - t0
            cpu = sum(scheduler.cpu_times()[:2]) - cpu0
            sent, graphs = client.run_on_scheduler(
                lambda dask_scheduler: (dask_scheduler.plugins["benchmark-count"].tasks,
                                        dask_scheduler.plugins["benchmark-count"].graphs))  # fmt: skip
            ran = len(stream.data)
            from collections import Counter

            from dask.utils import key_split

            prefixes = Counter(key_split(r["key"]) for r in stream.data).most_common(12)
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)
    return {
        "wall": wall,
        "scheduler_cpu": cpu,
        "tasks_sent": sent,
        "tasks_run": ran,
        "graphs": graphs,
        "prefixes": prefixes,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("safe", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=10, choices=[10, 20, 60])
    ap.add_argument("--chunk-m", type=float, default=18300.0)
    ap.add_argument("--tile-blocks", type=int, default=2)
    ap.add_argument("--tiles-at-once", type=int, default=None, help="tile tasks in flight (default: all)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--baseline-src", type=Path, default=None, help="checkout of the earlier version")
    ap.add_argument("--no-scheduler", action="store_true", help="skip the scheduler-load run")
    ap.add_argument("--scratch", type=Path, default=None, help="where outputs are written (default: a temp dir)")
    args = ap.parse_args()
    modes = [m for m in args.modes if m != "baseline" or args.baseline_src]

    times: dict[str, list[float]] = {m: [] for m in modes}
    peaks: dict[str, int] = dict.fromkeys(modes, 0)
    product_s: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        server, api = _start_server(os.path.join(tmp, "prefect-home"))
        try:
            for i in range(args.repeat):
                for mode in modes:
                    env = {"PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
                    if mode == "baseline":
                        env["PYTHONPATH"] = str(args.baseline_src.resolve())
                    out = os.path.join(tmp, f"{mode}-{i}")
                    saved = {k: os.environ.get(k) for k in env}
                    os.environ.update(env)
                    try:
                        wall, peak, stdout = run(_flow_command(mode, args, out))
                    finally:
                        for k, v in saved.items():
                            if v is None:
                                os.environ.pop(k, None)
                            else:
                                os.environ[k] = v
                    outcome = json.loads(stdout)["outcomes"][0]
                    if outcome["status"] != "done":
                        raise SystemExit(f"{mode}: {outcome}")
                    times[mode].append(wall)
                    peaks[mode] = max(peaks[mode], peak)
                    product_s[mode].append(float(outcome.get("seconds") or 0.0))
                    print(f"run {i + 1} {mode}: {wall:.1f} s (product {product_s[mode][-1]:.1f} s), "
                          f"peak {peak / 2**30:.2f} GiB", flush=True)  # fmt: skip
        finally:
            server.terminate()
            server.wait(30)
        load = None if args.no_scheduler else scheduler_load(args, os.path.join(tmp, "scheduler"))

    print(f"\nscene {args.safe.name}, --resolution {args.resolution}, chunk {args.chunk_m:g} m, tiles of "
          f"{args.tile_blocks}x{args.tile_blocks} blocks ({args.tiles_at_once or 'all'} at once), "
          f"{args.workers} workers, {args.repeat} run(s)")  # fmt: skip
    ref = "baseline" if "baseline" in modes else "one-task"
    for mode in modes:
        med = statistics.median(times[mode])
        ratio = f"{med / statistics.median(times[ref]):.2f}" if ref in times else "-"
        print(f"{mode:9s} median {med:7.1f} s  peak RSS {peaks[mode] / 2**30:5.2f} GiB  ratio to {ref} {ratio}  "
              f"(runs: {', '.join(f'{t:.1f}' for t in times[mode])})")  # fmt: skip
    if load is not None:
        per_hour = 3600.0 / load["scheduler_cpu"] if load["scheduler_cpu"] > 0 else float("inf")
        print(
            f"scheduler, one product by stages: {load['tasks_sent']:.0f} tasks sent in {load['graphs']:.0f} "
            f"graphs, {load['tasks_run']:.0f} run, scheduler CPU {load['scheduler_cpu']:.1f} s of "
            f"{load['wall']:.1f} s wall: one scheduler drives at most {per_hour:.0f} such products an hour"
        )
        print("tasks run by prefix: " + ", ".join(f"{k} {n}" for k, n in load["prefixes"]))


if __name__ == "__main__":
    main()

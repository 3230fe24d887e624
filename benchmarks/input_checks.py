"""Benchmark: what verifying ``manifest.safe`` checksums and reading the L1C quality masks cost.

On one synthetic scene (default 1830 px, generated into a temporary folder) it runs
``sen2core process`` three ways, in-process, one after the other:

- ``default``: checksums verified, quality and cloud masks read;
- ``no-verify``: ``--no-verify`` (masks read);
- ``no-masks``: ``--no-verify`` on a copy without ``QI_DATA/MSK_*.jp2`` (neither check);

and prints the wall time of each and of its decode and packaging stages, the time of the
checksum pass (``input_checks`` of the summary), and the sha3-256 throughput of this
machine on 1 and 2 threads, from which the cost on a full tile is estimated. Run from the
repository root on a quiet machine::

    .venv/bin/python benchmarks/input_checks.py               # 1830 px, 1 run each
    .venv/bin/python benchmarks/input_checks.py --repeat 3    # medians of 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sen2core.pipeline import ProcessingConfig, process_product
from sen2core.synthetic import SynthConfig, synthesize


def sha3_throughput(threads: int, mib: int = 256) -> float:
    """MB/s of hashlib.sha3_256 over ``mib`` MiB per thread, ``threads`` threads at once (4 MiB updates)."""
    block = os.urandom(4 << 20)

    def one(_: int) -> None:
        h = hashlib.sha3_256()
        for _ in range(mib // 4):
            h.update(block)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(threads)))
    return threads * mib * 1.048576 / (time.perf_counter() - start)


def run_once(product: Path, out: Path, verify: bool) -> dict[str, Any]:
    start = time.perf_counter()
    result = process_product(product, out, ProcessingConfig(verify_checksums=verify, overwrite=True))
    wall = time.perf_counter() - start
    summary = json.loads((Path(result.output_dir) / "L2A_SUMMARY.json").read_text())
    return {
        "wall": wall,
        "decode": result.seconds.get("decode", 0.0),
        "packaging": result.seconds.get("packaging", 0.0),
        "checksums": summary["input_checksums"].get("seconds", 0.0),
        "bytes": summary["input_checksums"].get("bytes", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1830)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sen2core-input-checks-") as tmp:
        root = Path(tmp)
        product = synthesize(SynthConfig(size=args.size, seed=1, tile="32TQM", date="2023-07-15", cloud_cover=20.0),
                             root / "l1c").product  # fmt: skip
        bare = root / "bare" / product.name
        shutil.copytree(product, bare)
        for mask in bare.rglob("QI_DATA/MSK_*.jp2"):
            mask.unlink()
        runs: dict[str, list[dict[str, Any]]] = {"default": [], "no-verify": [], "no-masks": []}
        for _ in range(args.repeat):
            runs["default"].append(run_once(product, root / "out", True))
            runs["no-verify"].append(run_once(product, root / "out", False))
            runs["no-masks"].append(run_once(bare, root / "out", False))
        med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
        for name, m in med.items():
            print(
                f"{name:10s} wall {m['wall']:6.1f} s  decode {m['decode']:5.1f} s  "
                f"packaging {m['packaging']:5.1f} s  checksums {m['checksums']:.2f} s ({m['bytes'] / 1e6:.1f} MB)"
            )
        d = med["default"]
        print(f"checksums: {100 * d['checksums'] / d['wall']:.2f} % of the default run")
        print(
            f"masks: {med['no-verify']['wall'] - med['no-masks']['wall']:+.1f} s wall "
            f"({100 * (med['no-verify']['wall'] - med['no-masks']['wall']) / med['no-masks']['wall']:+.1f} %)"
        )
    for threads in (1, 2):
        print(f"sha3-256: {sha3_throughput(threads):.0f} MB/s on {threads} thread(s)")


if __name__ == "__main__":
    main()

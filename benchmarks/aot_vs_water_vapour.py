"""Accuracy: retrieved AOT and water vapour of synthetic scenes across water-vapour columns.

Generates one synthetic Level-1C per column (same seed, AOT, surface and clouds) with
``sen2core synth``, processes it at 20 m and prints the retrieved scene-mean AOT and
water vapour against the truth (the README's "AOT vs column" table). With
``--elevation`` the scenes stand on a raised flat ground (the Alpine-like case), given to
the processing as its constant elevation.

    python benchmarks/aot_vs_water_vapour.py --columns 0.5 1 2 3 4.5 --aot 0.2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from sen2core.correction import CorrectionConfig
from sen2core.pipeline import ProcessingConfig, process_product


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--columns", type=float, nargs="+", default=[0.5, 1.0, 2.0, 3.0, 4.5])
    ap.add_argument("--aot", type=float, default=0.2)
    ap.add_argument("--elevation", type=float, default=0.0)
    ap.add_argument("--size", type=int, default=732)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--cloud-cover", type=float, default=10.0)
    args = ap.parse_args()
    print("| truth WV (cm) | retrieved WV | truth AOT | retrieved AOT | AOT error |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for wv in args.columns:
            work = Path(tmp) / f"wv{wv:g}"
            out = subprocess.run(
                [sys.executable, "-m", "sen2core.cli", "synth", str(work / "l1c"), "--size", str(args.size),
                 "--seed", str(args.seed), "--aot", str(args.aot), "--wv", str(wv), "--cloud-cover",
                 str(args.cloud_cover), "--elevation", str(args.elevation)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            safe = Path(out.strip().splitlines()[-1])
            truth_dir = safe.with_name(safe.name[: -len(".SAFE")] + ".truth")
            truth = json.loads((truth_dir / "truth.json").read_text())["atmosphere"]
            # No DEM: the ground elevation is given as Sen2Cor's GIPP Altitude would give it.
            cfg = ProcessingConfig(resolution=20, correction=CorrectionConfig(elevation_km=args.elevation))
            atm = process_product(safe, work / "l2a", cfg).atmosphere
            a_true, w_true = truth["aot550_mean"], truth["water_vapour_mean_cm"]
            a, w = atm["GRANULE_MEAN_AOT"], atm["GRANULE_MEAN_WV"]
            print(f"| {w_true:.3f} | {w:.3f} | {a_true:.3f} | {a:.3f} | {a - a_true:+.3f} |", flush=True)


if __name__ == "__main__":
    main()

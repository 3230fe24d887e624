"""Atmospheric correction accuracy on synthetic scenes with known truth (issue #5 figures).

Each scene is generated with a known AOT550 and water-vapour field through the 6S LUT,
then processed end to end. Checked: scene-mean AOT within 0.03 or 15 % of truth (DDV),
water vapour within 10 % (APDA), and BOA RMSE over clear land at most 0.01 for
B02-B8A and 0.015 for B11-B12.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sen2core.pipeline import ProcessingConfig, process_product

SR_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
TOLERANCE = {"B02": 0.01, "B03": 0.01, "B04": 0.01, "B05": 0.01, "B06": 0.01, "B07": 0.01, "B8A": 0.01,
             "B11": 0.015, "B12": 0.015}  # fmt: skip


def _read(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(band)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed,aot,wv,cloud", [(31, 0.1, 1.0, 10), (34, 0.5, 0.8, 15)])
def test_aot_wv_and_boa_match_the_truth(tmp_path: Path, seed: int, aot: float, wv: float, cloud: float) -> None:
    out = subprocess.run([sys.executable, "-m", "sen2core.cli", "synth", str(tmp_path / "l1c"), "--size", "732",
                          "--seed", str(seed), "--aot", str(aot), "--wv", str(wv), "--cloud-cover", str(cloud)],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    safe = Path(out.strip().splitlines()[-1])
    truth_dir = safe.with_name(safe.name[: -len(".SAFE")] + ".truth")
    truth = json.loads((truth_dir / "truth.json").read_text())["atmosphere"]
    res = process_product(safe, tmp_path / "l2a", ProcessingConfig(resolution=20))
    atm = res.atmosphere
    aot_true, wv_true = truth["aot550_mean"], truth["water_vapour_mean_cm"]
    assert atm["AOT_RETRIEVAL_METHOD"] == "SEN2COR_DDV"
    assert abs(atm["GRANULE_MEAN_AOT"] - aot_true) <= max(0.03, 0.15 * aot_true), (atm["GRANULE_MEAN_AOT"], aot_true)
    assert abs(atm["GRANULE_MEAN_WV"] - wv_true) <= 0.10 * wv_true, (atm["GRANULE_MEAN_WV"], wv_true)

    out_dir = Path(res.output_dir)
    scl = _read(out_dir / "SCL_20m.tif")
    clear = (
        np.isin(_read(truth_dir / "SCL_20m.tif"), (4, 5)) & np.isin(scl, (4, 5))
        & (_read(truth_dir / "CLD_20m.tif") == 0) & (_read(truth_dir / "SUN_20m.tif") == 1)
        & (_read(truth_dir / "CIR_20m.tif") == 0)
    )  # fmt: skip
    assert clear.mean() > 0.3
    rmse = {}
    for band in TOLERANCE:
        boa = (_read(out_dir / f"{band}_20m.tif").astype(np.float64) - 1000.0) / 10000.0
        sr = _read(truth_dir / "SR_20m.tif", SR_BANDS.index(band) + 1).astype(np.float64)
        rmse[band] = float(np.sqrt(np.mean((boa[clear] - sr[clear]) ** 2)))
    print(f"AOT {atm['GRANULE_MEAN_AOT']:.3f} (truth {aot_true}), WV {atm['GRANULE_MEAN_WV']:.3f} (truth {wv_true}); "
          "BOA RMSE " + ", ".join(f"{b} {v:.4f}" for b, v in rmse.items()))  # fmt: skip
    for band, tol in TOLERANCE.items():
        assert rmse[band] <= tol, (band, rmse[band])

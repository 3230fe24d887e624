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

from sen2core.correction import CorrectionConfig
from sen2core.pipeline import ProcessingConfig, process_product

pytestmark = pytest.mark.slow

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


def _synth_and_process(tmp: Path, wv: float, aot: float = 0.2, elevation: float = 0.0) -> tuple[dict, dict]:
    """Retrieval summary and atmosphere truth of a 732 px synthetic scene (seed 31, 10 % clouds)."""
    cmd = [sys.executable, "-m", "sen2core.cli", "synth", str(tmp / "l1c"), "--size", "732", "--seed", "31",
           "--aot", str(aot), "--wv", str(wv), "--cloud-cover", "10", "--elevation", str(elevation)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    safe = Path(out.strip().splitlines()[-1])
    truth = json.loads((safe.with_name(safe.name[: -len(".SAFE")] + ".truth") / "truth.json").read_text())
    cfg = ProcessingConfig(resolution=20, correction=CorrectionConfig(elevation_km=elevation))
    return process_product(safe, tmp / "l2a", cfg).atmosphere, truth["atmosphere"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_aot_error_does_not_grow_with_the_water_vapour_column(tmp_path: Path) -> None:
    """Issue #15 item 2: AOT error within 0.01 of the 1 cm scene's across 0.5-4.5 cm.

    With the DDV step at a fixed 1 cm the errors were -0.023, -0.015, -0.002 and +0.019
    at 0.5, 1, 2 and 4.5 cm (truth 0.2); with each DDV pixel's own column, -0.015 to -0.016.
    """
    errors = {}
    for wv in (0.5, 1.0, 2.0, 4.5):
        atm, truth = _synth_and_process(tmp_path / f"wv{wv:g}", wv)
        assert atm["AOT_RETRIEVAL_METHOD"] == "SEN2COR_DDV"
        errors[wv] = atm["GRANULE_MEAN_AOT"] - truth["aot550_mean"]
        assert abs(atm["GRANULE_MEAN_WV"] - truth["water_vapour_mean_cm"]) <= 0.05 * truth["water_vapour_mean_cm"]
    print("AOT error by column: " + ", ".join(f"{w} cm {e:+.3f}" for w, e in errors.items()))
    for wv, err in errors.items():
        assert abs(err - errors[1.0]) <= 0.01, (wv, err, errors[1.0])


@pytest.mark.timeout(300)
def test_raised_ground_retrieves_the_column_above_it(tmp_path: Path) -> None:
    """A synthetic scene on a 2 km ground (its truth: the column above the ground, made
    through the LUT's conversion to 6S's input) retrieves that column within 10 %."""
    atm, truth = _synth_and_process(tmp_path, 1.6, elevation=2.0)
    wv_true = truth["water_vapour_mean_cm"]
    print(f"2 km ground: WV {atm['GRANULE_MEAN_WV']:.3f} (truth {wv_true:.3f}), "
          f"AOT {atm['GRANULE_MEAN_AOT']:.3f} (truth {truth['aot550_mean']:.3f})")  # fmt: skip
    assert abs(atm["GRANULE_MEAN_WV"] - wv_true) <= 0.10 * wv_true
    assert abs(atm["GRANULE_MEAN_AOT"] - truth["aot550_mean"]) <= max(0.03, 0.15 * truth["aot550_mean"])

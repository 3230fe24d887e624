#!/usr/bin/env python
"""Fit the calibrated cloud probability of the scene classification on synthetic truth.

Writes synthetic Level-1C scenes with known truth (``sen2core.synthetic``; training
seeds 1000 and up, never the seeds of the accuracy tests), computes the features of
:func:`sen2core.kernels.scene_class.cloud_features` at 20 m, labels each pixel cloud
when the truth class is 8, 9 or 10 (cloud or thin cirrus), and fits a logistic
regression (iteratively reweighted least squares, small ridge). Half of the scenes
fit, the other half check calibration (reliability table, Brier score, log-loss,
F1 at p >= 0.5); then all scenes fit the coefficients that are printed, ready to be
pasted into ``CLOUD_PROBABILITY_MODEL``.

Scenes have physical clouds (``cloud_model="physical"``), and four of them low thick water clouds in
humid air, which show little in B10.

Usage::

    python scripts/fit_cloud_probability.py WORKDIR [--size 900] [--per-scene 30000]

Deterministic: the same arguments give the same coefficients. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from sen2core.config import SceneClassificationConfig
from sen2core.io.read.opening import open_product
from sen2core.kernels import scene_class
from sen2core.synthetic import SynthConfig, synthesize

SURFACE = Path(__file__).resolve().parent.parent / "tests" / "data" / "synthetic" / "l2a-T29RKH-subset"

# (seed, tile, date, cloud %, cirrus %, snow %, water vapour cm, real desert surface)
TRAINING_SCENES: list[tuple[int, str, str, float, float, float, float, bool]] = [
    (1001, "36NXF", "2023-06-01", 20.0, 10.0, 0.0, 3.0, False),
    (1002, "31TCJ", "2023-07-15", 50.0, 0.0, 0.0, 2.0, False),
    (1003, "32TMS", "2023-03-15", 30.0, 15.0, 25.0, 0.8, False),
    (1004, "33UUP", "2023-02-20", 70.0, 5.0, 10.0, 0.6, False),
    (1005, "31TCJ", "2023-10-20", 10.0, 30.0, 0.0, 1.5, False),
    (1006, "29RKH", "2020-02-19", 25.0, 10.0, 0.0, 0.5, True),
    (1007, "36NXF", "2023-06-01", 80.0, 0.0, 0.0, 4.0, False),
    (1008, "32TMS", "2023-12-10", 15.0, 0.0, 40.0, 0.4, False),
    (1009, "29RKH", "2020-02-19", 5.0, 25.0, 0.0, 1.0, True),
    (1010, "33UUP", "2023-09-01", 40.0, 20.0, 0.0, 2.5, False),
    (1011, "31TCJ", "2023-07-15", 0.0, 0.0, 15.0, 2.0, False),
    (1012, "29RKH", "2020-02-19", 45.0, 0.0, 0.0, 0.3, True),
]

# Low, thick water clouds in humid air: B10 sees little of them (the water vapour above their
# tops absorbs at 1375 nm), so that the fit does not learn "no B10 signal, no cloud".
# (seed, tile, date, cloud %, water vapour cm, lowest and highest cloud top km)
LOW_CLOUD_SCENES: list[tuple[int, str, str, float, float, float, float]] = [
    (1013, "36NXF", "2023-06-01", 40.0, 4.0, 0.5, 2.0),
    (1014, "31TCJ", "2023-07-15", 30.0, 3.0, 0.5, 1.5),
    (1015, "33UUP", "2023-09-01", 50.0, 2.5, 0.8, 2.5),
    (1016, "36NXF", "2023-03-20", 25.0, 4.5, 0.5, 1.2),
]


def make_scene(
    workdir: Path,
    spec: tuple[int, str, str, float, float, float, float, bool],
    size: int,
    heights_km: tuple[float, float] = (1.0, 10.0),
) -> Path:
    """Synthesize one training scene (once, physical clouds) and return its output folder."""
    seed, tile, date, cloud, cirrus, snow, wv, desert = spec
    out = workdir / f"scene-{seed}"
    if not any(out.glob("*.truth")):
        synthesize(
            SynthConfig(
                size=min(size, 600) if desert else size,
                tile=tile,
                date=date,
                cloud_cover=cloud,
                cirrus=cirrus,
                snow=snow,
                wv=wv,
                seed=seed,
                cloud_heights=heights_km,
                cloud_model="physical",
                surface=str(SURFACE) if desert else None,
            ),
            out,
            overwrite=True,
        )
    return out


def scene_samples(out: Path, per_scene: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, k) and labels (n,) of a random subset of a scene's valid pixels."""
    safe = next(out.glob("*.SAFE"))
    truth_dir = next(out.glob("*.truth"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        product = open_product(safe)
    bands = {b: product.toa(b, 20).compute() for b in scene_class.REQUIRED_BANDS}
    config = SceneClassificationConfig()
    leakage = scene_class.leakage_from_histogram(scene_class.leakage_histogram(bands), config)
    cm, cmc, _ = scene_class.classify_pixels(bands, config, b10_leakage=leakage)
    clean = {k: np.nan_to_num(v, nan=0.0).astype(np.float32) for k, v in bands.items()}
    features = scene_class.cloud_features(clean, cm, cmc, leakage)
    with rasterio.open(truth_dir / "SCL_20m.tif") as ds:
        truth = ds.read(1)
    valid = (truth != 0) & (cm != 0)
    idx = np.flatnonzero(valid.ravel())
    idx = rng.choice(idx, size=min(per_scene, idx.size), replace=False)
    x = features.reshape(features.shape[0], -1)[:, idx].T
    y = np.isin(truth.ravel()[idx], (8, 9, 10)).astype(np.float64)
    return x, y


def fit_logistic(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, iterations: int = 50) -> tuple[float, np.ndarray]:
    """Logistic regression by IRLS on standardised features; coefficients on raw features."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    z = np.column_stack([np.ones(len(x)), (x - mean) / std])
    w = np.zeros(z.shape[1])
    penalty = ridge * len(x) * np.eye(z.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -50, 50)))
        weight = np.clip(p * (1 - p), 1e-9, None)
        step = np.linalg.solve(z.T @ (z * weight[:, None]) + penalty, z.T @ (y - p) - penalty @ w)
        w += step
        if np.abs(step).max() < 1e-8:
            break
    coefficients = w[1:] / std
    intercept = w[0] - float(np.sum(w[1:] * mean / std))
    return float(intercept), coefficients


def predict(intercept: float, coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(intercept + x @ coefficients, -50, 50)))


def calibration_report(p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Brier score, log-loss, F1 at 0.5 and a 10-bin reliability table."""
    eps = 1e-7
    predicted = p >= 0.5
    tp = float(np.sum(predicted & (y == 1)))
    f1 = 2 * tp / max(float(predicted.sum() + y.sum()), 1.0)
    bins = np.minimum((p * 10).astype(int), 9)
    table = [
        (
            b / 10,
            (b + 1) / 10,
            int((bins == b).sum()),
            float(p[bins == b].mean()) if (bins == b).any() else 0.0,
            float(y[bins == b].mean()) if (bins == b).any() else 0.0,
        )
        for b in range(10)
    ]
    return {
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))),
        "f1_at_0.5": f1,
        "reliability": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--size", type=int, default=900, help="scene edge in 10 m pixels")
    parser.add_argument("--per-scene", type=int, default=30000, help="pixels sampled per scene")
    args = parser.parse_args()
    rng = np.random.default_rng(20260801)
    samples = []
    specs = [(spec, (1.0, 10.0)) for spec in TRAINING_SCENES] + [
        ((seed, tile, date, cloud, 0.0, 0.0, wv, False), (lo, hi))
        for seed, tile, date, cloud, wv, lo, hi in LOW_CLOUD_SCENES
    ]
    for spec, heights in specs:
        out = make_scene(args.workdir, spec, args.size, heights)
        samples.append(scene_samples(out, args.per_scene, rng))
        print(f"scene {spec[0]}: {samples[-1][0].shape[0]} pixels, cloud fraction {samples[-1][1].mean():.3f}")
    train = [s for i, s in enumerate(samples) if i % 2 == 0]
    check = [s for i, s in enumerate(samples) if i % 2 == 1]
    b0, b = fit_logistic(np.concatenate([s[0] for s in train]), np.concatenate([s[1] for s in train]))
    xc, yc = np.concatenate([s[0] for s in check]), np.concatenate([s[1] for s in check])
    report = calibration_report(predict(b0, b, xc), yc)
    cmc_only = calibration_report(np.clip(xc[:, 0], 0, 1), yc)
    print(
        f"held-out scenes: Brier {report['brier']:.4f} (Sen2Cor CMC as a probability: {cmc_only['brier']:.4f}), "
        f"log-loss {report['log_loss']:.4f}, F1 at 0.5 {report['f1_at_0.5']:.4f} "
        f"(CMC >= 0.5: {cmc_only['f1_at_0.5']:.4f})"
    )
    print("reliability (p range, pixels, mean p, observed cloud fraction):")
    for lo, hi, n, mp, obs in report["reliability"]:
        print(f"  {lo:.1f}-{hi:.1f} {n:7d} {mp:.3f} {obs:.3f}")
    x_all = np.concatenate([s[0] for s in samples])
    y_all = np.concatenate([s[1] for s in samples])
    b0, b = fit_logistic(x_all, y_all)
    print("\nCLOUD_PROBABILITY_MODEL = CloudProbabilityModel(")
    print(f"    intercept={b0:.6g},")
    print(f"    coefficients=({', '.join(f'{c:.6g}' for c in b)}),")
    print(f"    # features: {', '.join(scene_class.FEATURES)}")
    print(
        f'    provenance="scripts/fit_cloud_probability.py, {len(specs)} synthetic scenes '
        f"(seeds {specs[0][0][0]}-{specs[-1][0][0]}), {len(y_all)} pixels; held-out Brier "
        f'{report["brier"]:.4f}",'
    )
    print(")")


if __name__ == "__main__":
    main()

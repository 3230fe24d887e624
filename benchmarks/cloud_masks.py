"""Benchmark: cloud and shadow masks on physical synthetic clouds, sen2core beside a peer masker.

Writes seven synthetic Level-1C scenes with ``cloud_model="physical"`` (seeds 11-17, 6 km,
sun zenith 25-61 degrees, cloud cover 0-60 %, cirrus, snow, a real-desert surface, a clear
scene; none used by the probability fit or the tests), classifies them at 20 m with
sen2core's default, Sen2Cor 2.8's rules and variants of the cloud-edge settings (the table
the default ``cloud_edge_growth_m`` was chosen from), and runs the peer masker
`ukis-csmask <https://github.com/dlr-eoc/ukis-csmask>`_ (Apache-2.0, a CNN for clouds and
cloud shadows from blue, green, red, NIR, SWIR 1.6 and 2.2 um L1C reflectance) on the same
top-of-atmosphere bands (B02 B03 B04 B8A B11 B12), resampled to the 30 m its model prefers.
Prints one table: cloud F1 (edges counted), cloud precision and recall, recall on the edge
band (``EDG_20m``), shadow F1, recall and precision (shadows of clouds outside the image not
scored), the Brier score of sen2core's calibrated probability (for Sen2Cor's rules: of its
confidence ``MSK_CLDPRB``), and the seconds each took.

The peer is optional (``pip install -e '.[peer]'``); without it its row is skipped.

    python benchmarks/cloud_masks.py WORKDIR
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

# The source tree this script sits in, before any installed sen2core.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sen2core.config import SceneClassificationConfig  # noqa: E402
from sen2core.io.read.opening import open_product  # noqa: E402
from sen2core.kernels import scene_class  # noqa: E402
from sen2core.scl import classify  # noqa: E402
from sen2core.synthetic import SynthConfig, synthesize  # noqa: E402
from sen2core.synthetic.truth import castable_shadows, read_truth  # noqa: E402

DESERT = Path(__file__).resolve().parents[1] / "tests" / "data" / "synthetic" / "l2a-T29RKH-subset"
# seed, tile, date, cloud %, cirrus %, snow %, water vapour (cm), real desert surface
SCENES = [
    (11, "31TCJ", "2023-07-15", 30.0, 10.0, 10.0, 2.0, False),
    (12, "33UUP", "2023-03-01", 50.0, 0.0, 0.0, 1.0, False),
    (13, "36NXF", "2023-06-01", 25.0, 10.0, 0.0, 4.0, False),
    (14, "32TMS", "2023-03-15", 25.0, 0.0, 25.0, 0.8, False),
    (15, "29RKH", "2020-02-19", 20.0, 0.0, 0.0, 0.6, True),
    (16, "31TCJ", "2023-09-25", 60.0, 0.0, 0.0, 2.5, False),
    (17, "36NXF", "2023-03-20", 0.0, 0.0, 0.0, 4.0, False),
]
SEN2COR = "Sen2Cor 2.8 rules"
CONFIGS = {
    "sen2core default": SceneClassificationConfig(),
    SEN2COR: SceneClassificationConfig.sen2cor(),
    "edge growth 0 m": SceneClassificationConfig(cloud_edge_growth_m=0.0),
    "edge growth 20 m": SceneClassificationConfig(cloud_edge_growth_m=20.0),
    "edge growth 60 m": SceneClassificationConfig(cloud_edge_growth_m=60.0),
    "growth 0, buffer 20 m": SceneClassificationConfig(cloud_edge_growth_m=0.0, cloud_buffer_m=20.0),
    "growth 0, buffer 40 m": SceneClassificationConfig(cloud_edge_growth_m=0.0, cloud_buffer_m=40.0),
    "no relative shadows": SceneClassificationConfig(relative_shadow=False),
}
PEER_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")


def peer_masks(toa: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """ukis-csmask cloud and shadow masks (None when it is not installed)."""
    try:
        from ukis_csmask.mask import CSmask
    except ImportError:
        return None
    img = np.stack([np.nan_to_num(toa[b], nan=0.0) for b in PEER_BANDS], axis=-1).astype(np.float32)
    shape = img.shape[:2]
    # Its model works at about 30 m (measured here: cloud F1 0.15 fed 20 m, 0.42 fed 30 m on two
    # scenes): bilinear to 30 m, its classes back to 20 m by nearest neighbour.
    img30 = np.ascontiguousarray(ndimage.zoom(img, (2 / 3, 2 / 3, 1), order=1), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = CSmask(
            img=img30,
            band_order=["blue", "green", "red", "nir", "swir16", "swir22"],
            product_level="l1c",
            nodata_value=0,
            intra_op_num_threads=2,
        )
    csm30 = np.asarray(m.csm)[..., 0]
    csm = ndimage.zoom(csm30, (shape[0] / csm30.shape[0], shape[1] / csm30.shape[1]), order=0)[: shape[0], : shape[1]]
    return csm == 1, csm == 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for seed, tile, date, cloud, cirrus, snow, wv, desert in SCENES:
        out = args.workdir / f"scene-{seed}"
        if not any(out.glob("*.truth")):
            synthesize(
                SynthConfig(
                    size=600,
                    tile=tile,
                    date=date,
                    cloud_cover=cloud,
                    cirrus=cirrus,
                    snow=snow,
                    wv=wv,
                    seed=seed,
                    cloud_model="physical",
                    surface=str(DESERT) if desert else None,
                ),
                out,
                overwrite=True,
            )
        truth_dir = next(out.glob("*.truth"))
        truth = read_truth(truth_dir, "SCL_20m")
        edge = read_truth(truth_dir, "EDG_20m") == 1
        scored = (truth != 0) & ~((truth == 3) & ~castable_shadows(truth_dir, truth))
        product = open_product(next(out.glob("*.SAFE")))
        bands = {b: product.toa(b, 20) for b in (*scene_class.REQUIRED_BANDS, "B09")}
        sz, sa = product.sun_angles(20)
        vz, va = product.view_angles("B8A", 20)
        preds: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        for name, cfg in CONFIGS.items():
            t0 = time.perf_counter()
            res = classify(bands, sz, sa, vz, va, 20.0, cfg)
            # Sen2Cor's rules come with Sen2Cor's confidence (MSK_CLDPRB) as their probability.
            prob = res.cloud_probability if name == SEN2COR else res.calibrated_cloud_probability
            scl, p = res.scl.compute(scheduler="synchronous"), prob.compute(scheduler="synchronous")
            if name == SEN2COR:
                p = p.astype(np.float32) / 100.0
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
            preds[name] = (np.isin(scl, (8, 9, 10)), scl == 3, p)
        t0 = time.perf_counter()
        peer = peer_masks({b: np.asarray(bands[b]) for b in PEER_BANDS})
        if peer is not None:
            seconds["ukis-csmask 1.0 (CNN)"] = seconds.get("ukis-csmask 1.0 (CNN)", 0.0) + time.perf_counter() - t0
            preds["ukis-csmask 1.0 (CNN)"] = (peer[0], peer[1], None)
        t_cloud, t_shadow = np.isin(truth, (8, 9, 10)), truth == 3
        for name, (cloud_m, shadow_m, p) in preds.items():
            v = truth != 0
            counts = np.array(
                [
                    (t_cloud & cloud_m & v).sum(),
                    (~t_cloud & cloud_m & v).sum(),
                    (t_cloud & ~cloud_m & v).sum(),
                    (cloud_m & edge).sum(),
                    edge.sum(),
                    (t_shadow & shadow_m & scored).sum(),
                    (~t_shadow & shadow_m & scored).sum(),
                    (t_shadow & ~shadow_m & scored).sum(),
                    np.nansum((np.nan_to_num(p[v]) - t_cloud[v]) ** 2) if p is not None else 0.0,
                    v.sum(),
                ],
                dtype=np.float64,
            )
            rows[name] = rows.get(name, np.zeros(10)) + counts
    print(f"\n{len(SCENES)} physical synthetic scenes (6 km, 20 m), pooled; cloud = classes 8, 9, 10")
    head = ("cloud F1", "precision", "recall", "edge recall", "shadow F1", "recall", "precision", "Brier", "s")
    print(f"{'':24}" + "".join(f"{h:>12}" for h in head))
    for name, c in rows.items():
        tp, fp, fn, eh, en, stp, sfp, sfn, sq, n = c
        vals = (
            2 * tp / (2 * tp + fp + fn),
            tp / max(tp + fp, 1),
            tp / max(tp + fn, 1),
            eh / max(en, 1),
            2 * stp / max(2 * stp + sfp + sfn, 1),
            stp / max(stp + sfn, 1),
            stp / max(stp + sfp, 1),
        )
        brier = f"{sq / n:12.4f}" if name in CONFIGS else f"{'-':>12}"
        print(f"{name:24}" + "".join(f"{x:12.4f}" for x in vals) + brier + f"{seconds[name]:12.1f}")


if __name__ == "__main__":
    main()

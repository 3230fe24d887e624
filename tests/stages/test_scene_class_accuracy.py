"""Accuracy of the scene classification against known truth.

Synthetic Level-1C scenes from :mod:`sen2core.synthetic` (6S-based forward model,
physical endmember spectra; seeds 1-8, none used to fit the calibrated probability,
which used 1001-1016) are read back through :func:`sen2core.io.read.product.open_product`
and classified chunked, at 20 m, with the default configuration and no cloud buffer.
Scores are pooled over the scenes and the confusion matrix is printed.

Cloud shadows cast by clouds outside a synthetic image (it is 9 km wide; shadows of
10 km high clouds at a 60 degree sun fall 20 km away) cannot be found by any
geometric method; they are left out of the shadow score (a full 110 km tile has them
only along its edges). Everything else counts.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import rasterio
from scipy import ndimage

from sen2core.config import SceneClassificationConfig
from sen2core.io.read.opening import open_product
from sen2core.kernels import scene_class
from sen2core.scl import classify

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[1] / "data"
DESERT = DATA / "synthetic" / "l2a-T29RKH-subset"
T19UDP = DATA / "l1c-T19UDP-20170729-900m"
NAMES = ("nodata", "sat", "dark", "shadow", "veg", "notveg", "water", "unclas", "cloudM", "cloudH", "cirrus", "snow")

# seed, tile, date, cloud %, cirrus %, snow %, water vapour (cm), size (10 m px), real desert surface
SCENES: list[tuple[int, str, str, float, float, float, float, int, bool]] = [
    (1, "31TCJ", "2023-07-15", 30.0, 10.0, 10.0, 2.0, 900, False),  # sun zenith ~25
    (2, "33UUP", "2023-03-01", 60.0, 5.0, 0.0, 1.0, 900, False),  # ~60
    (3, "36NXF", "2023-06-01", 15.0, 20.0, 0.0, 3.5, 900, False),  # tropics, cirrus
    (4, "32TMS", "2023-03-15", 25.0, 0.0, 25.0, 0.8, 900, False),  # snow
    (5, "29RKH", "2020-02-19", 20.0, 0.0, 0.0, 0.6, 600, True),  # bright desert with clouds
    (6, "31TCJ", "2023-09-25", 80.0, 0.0, 0.0, 2.5, 900, False),  # overcast, ~47
    (7, "36NXF", "2023-03-20", 0.0, 0.0, 0.0, 4.0, 900, False),  # clear, sun zenith ~23
]
DESERT_CLEAR = (8, "29RKH", "2020-02-19", 0.0, 0.0, 0.0, 0.4, 600, True)


def synthesize_scene(root: Path, spec: tuple[int, str, str, float, float, float, float, int, bool]) -> Path:
    from sen2core.synthetic import SynthConfig, synthesize

    seed, tile, date, cloud, cirrus, snow, wv, size, desert = spec
    out = root / f"scene-{seed}"
    synthesize(
        SynthConfig(
            size=size,
            tile=tile,
            date=date,
            cloud_cover=cloud,
            cirrus=cirrus,
            snow=snow,
            wv=wv,
            seed=seed,
            surface=str(DESERT) if desert else None,
        ),
        out,
    )
    return out


def classify_scene(out: Path, config: SceneClassificationConfig) -> dict[str, Any]:
    safe = next(out.glob("*.SAFE"))
    truth_dir = next(out.glob("*.truth"))
    product = open_product(safe)
    bands = {b: product.toa(b, 20) for b in (*scene_class.REQUIRED_BANDS, "B09")}
    sz, sa = product.sun_angles(20)
    vz, va = product.view_angles("B8A", 20)
    result = classify(bands, sz, sa, vz, va, 20.0, config)
    with dask.config.set(scheduler="synchronous"):
        scl, probability, sun_zenith = dask.compute(result.scl, result.calibrated_cloud_probability, sz.mean())
    with rasterio.open(truth_dir / "SCL_20m.tif") as ds:
        truth = ds.read(1)
    return {
        "scl": scl,
        "truth": truth,
        "probability": probability,
        "sun_zenith": float(sun_zenith),
        "castable": castable_shadows(truth_dir, truth),
    }


def castable_shadows(truth_dir: Path, truth: np.ndarray) -> np.ndarray:
    """Where clouds visible in the image cast their shadows (from the truth's cloud objects)."""
    meta = json.loads((truth_dir / "truth.json").read_text(encoding="utf-8"))
    with rasterio.open(truth_dir / "CTH_20m.tif") as ds:
        height = ds.read(1)
    cloud = np.isin(truth, (8, 9))
    out = np.zeros(truth.shape, dtype=bool)
    for obj in meta["clouds"]["objects"]:
        rows, cols = np.nonzero(cloud & (np.abs(height - obj["height_m"]) < 1.0))
        r = np.rint(rows + obj["shadow_offset_south_m"] / 20.0).astype(int)
        c = np.rint(cols + obj["shadow_offset_east_m"] / 20.0).astype(int)
        inside = (r >= 0) & (r < truth.shape[0]) & (c >= 0) & (c < truth.shape[1])
        out[r[inside], c[inside]] = True
    # Cloud edges are soft (about 80 m): allow their shadows the same margin.
    return np.asarray(ndimage.binary_dilation(out, iterations=3))


def confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    m = np.zeros((12, 12), dtype=np.int64)
    np.add.at(m, (truth.ravel(), predicted.ravel()), 1)
    return m


def format_confusion(m: np.ndarray) -> str:
    rows = [i for i in range(12) if m[i].any()]
    cols = [j for j in range(12) if m[:, j].any()]
    lines = ["truth \\ predicted " + " ".join(f"{NAMES[j]:>8}" for j in cols)]
    lines += [f"{NAMES[i]:>17} " + " ".join(f"{m[i, j]:8d}" for j in cols) for i in rows]
    return "\n".join(lines)


def f1(m: np.ndarray, classes: tuple[int, ...]) -> float:
    valid = np.arange(12) != 0
    inside = np.isin(np.arange(12), classes)
    tp = m[np.ix_(inside, inside)].sum()
    fp = m[np.ix_(valid & ~inside, inside)].sum()
    fn = m[np.ix_(inside, ~inside)].sum()
    return float(2 * tp / (2 * tp + fp + fn))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("accuracy")
    config = SceneClassificationConfig(cloud_buffer_m=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # metadata fallbacks of the reader are not under test here
        yield [classify_scene(synthesize_scene(root, spec), config) for spec in SCENES]


def test_synthetic_scene_accuracy(results: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    total = np.zeros((12, 12), dtype=np.int64)
    for r in results:
        truth = r["truth"]
        # Shadows of clouds outside the image: not scored (see the module docstring).
        keep = ~((truth == scene_class.SCL.CLOUD_SHADOWS) & ~r["castable"])
        total += confusion(np.where(keep, truth, 0), np.where(keep, r["scl"], 0))
    scores = {
        "cloud (8, 9, 10)": f1(total, (8, 9, 10)),
        "cloud shadow": f1(total, (3,)),
        "water": f1(total, (6,)),
        "snow": f1(total, (11,)),
    }
    clear_land = total[np.ix_([4, 5], np.arange(12))]
    vegetation_accuracy = float((clear_land[0, 4] + clear_land[1].sum() - clear_land[1, 4]) / clear_land.sum())
    sun = [r["sun_zenith"] for r in results]
    with capsys.disabled():
        print(
            f"\nscene classification vs synthetic truth, {len(results)} scenes, sun zenith "
            f"{min(sun):.0f}-{max(sun):.0f} deg, pooled confusion (20 m pixels):"
        )
        print(format_confusion(total))
        print(
            "F1: "
            + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
            + f"; vegetation vs not vegetated on clear land: accuracy {vegetation_accuracy:.3f}"
        )
    assert min(sun) <= 30.0 and max(sun) >= 55.0
    assert scores["cloud (8, 9, 10)"] >= 0.95
    assert scores["cloud shadow"] >= 0.75
    # 0.934 (0.956 before the LUT took water vapour as the column above cloud tops too).
    assert scores["water"] >= 0.92
    assert scores["snow"] >= 0.9
    assert vegetation_accuracy >= 0.9


def test_calibrated_probability(results: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    p = np.concatenate([r["probability"][r["truth"] != 0] for r in results])
    y = np.concatenate([np.isin(r["truth"][r["truth"] != 0], (8, 9, 10)) for r in results])
    brier = float(np.mean((p - y) ** 2))
    bins = np.minimum((p * 5).astype(int), 4)
    table = [
        (b / 5, int((bins == b).sum()), float(p[bins == b].mean()), float(y[bins == b].mean()))
        for b in range(5)
        if (bins == b).any()
    ]
    with capsys.disabled():
        print(
            f"\ncalibrated cloud probability on held-out scenes: Brier {brier:.4f}; reliability "
            + ", ".join(
                f"[{lo:.1f}, {lo + 0.2:.1f}): n={n} mean p {mp:.2f} observed {obs:.2f}" for lo, n, mp, obs in table
            )
        )
    assert brier < 0.05
    # Calibrated: in the bins that hold most pixels, predicted and observed agree.
    for _, n, mp, obs in table:
        if n > 0.05 * len(p):
            assert abs(mp - obs) < 0.1


def test_bright_desert_without_clouds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The surface of a real Sen2Cor L2A over the Moroccan desert under very dry air
    # (0.4 cm of water vapour): the bright ground shows through in B10, and Sen2Cor's
    # thin-cirrus test on raw B10 fires everywhere.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = synthesize_scene(tmp_path, DESERT_CLEAR)
        ours = classify_scene(out, SceneClassificationConfig())
        sen2cor = classify_scene(out, SceneClassificationConfig.sen2cor())
    clear = np.isin(ours["truth"], (4, 5, 6, 11))
    assert clear.mean() > 0.99
    false_cloud = float(np.isin(ours["scl"], (8, 9, 10))[clear].mean())
    sen2cor_false = float(np.isin(sen2cor["scl"], (8, 9, 10))[clear].mean())
    with capsys.disabled():
        print(
            f"\nbright desert, no clouds: {100 * false_cloud:.2f} % of clear pixels labelled cloud "
            f"(Sen2Cor 2.8 rules: {100 * sen2cor_false:.2f} %)"
        )
    assert false_cloud < 0.01


def test_real_l1c_t19udp(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no SAFE metadata: documented fallbacks
        product = open_product(T19UDP)
    res = 900.0
    bands = {b: product.toa(b, res) for b in (*scene_class.REQUIRED_BANDS, "B09")}
    sz, sa = product.sun_angles(res)
    vz, va = product.view_angles("B8A", res)
    result = classify(bands, sz, sa, vz, va, res, SceneClassificationConfig())
    with dask.config.set(scheduler="synchronous"):
        scl, pct = dask.compute(result.scl, result.percentages())
    with capsys.disabled():
        print(
            "\nT19UDP 2017-07-29 (real L1C, 900 m): "
            + ", ".join(f"{k} {v:.2f}" for k, v in pct.items() if k.endswith("PERCENTAGE"))
        )
    assert scl.shape == (122, 122)
    assert 30.0 < pct["NODATA_PIXEL_PERCENTAGE"] < 45.0  # the western part is outside the swath
    assert pct["WATER_PERCENTAGE"] > 10.0  # the St. Lawrence estuary
    assert pct["VEGETATION_PERCENTAGE"] > 10.0
    assert 0.0 < pct["CLOUDY_PIXEL_PERCENTAGE"] < 60.0
    assert sum(pct[name] for name in scene_class.PERCENTAGE_NAMES.values()) == pytest.approx(100.0)

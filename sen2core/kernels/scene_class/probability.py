"""Calibrated cloud probability: a logistic model over physical features of each pixel."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from sen2core.kernels.scene_class.common import F32, F64, normalized_difference, prepare_bands
from sen2core.kernels.scene_class.leakage import cirrus_signal
from sen2core.kernels.scene_class.legend import SCL


@dataclass(frozen=True)
class CloudProbabilityModel:
    """Logistic model of the probability that a pixel is cloud (thick or thin, or cirrus).

    ``p = 1 / (1 + exp(-(intercept + sum(coef_i * feature_i))))`` with the features of
    :func:`cloud_features`. The coefficients are fitted once, by
    ``scripts/fit_cloud_probability.py``, on synthetic scenes with known truth, and
    stored here as constants; ``provenance`` says how.
    """

    intercept: float
    coefficients: tuple[float, ...]
    provenance: str


CIRRUS_KNOTS: tuple[float, ...] = (0.004, 0.006, 0.008, 0.010, 0.012, 0.014, 0.018, 0.024)
"""Knots (B10 reflectance) of the piecewise-linear basis of the cirrus signal: the
model learns how the probability rises with thin cirrus instead of assuming a threshold."""


FEATURES: tuple[str, ...] = (
    "cmc",
    "cirrus",
    "blue",
    "hot",
    "ndsi",
    "ndvi",
    "swir_ratio",
    "redness",
    "sen2cor_cloud",
    "sen2cor_cirrus",
    *(f"cirrus_above_{k:g}" for k in CIRRUS_KNOTS),
)
"""Names of the features of :func:`cloud_features`, in order."""


def _features(bands: Mapping[str, F32], cm: ArrayLike, cmc: F32, b10_leakage: float) -> Iterator[F32]:
    """The features of :func:`cloud_features`, one array at a time (float32)."""
    b2, b3, b4, b8a, b10, b11 = (bands[k] for k in ("B02", "B03", "B04", "B8A", "B10", "B11"))
    c = cirrus_signal(b10, b11, b10_leakage)
    cm_ = np.asarray(cm)
    yield np.asarray(cmc, dtype=np.float32)
    yield np.clip(c, 0.0, 0.05)
    yield b2
    yield b2 - np.float32(0.5) * b4
    yield normalized_difference(b3, b11)
    yield normalized_difference(b8a, b4)
    yield np.clip(b11 / np.maximum(np.maximum(b8a, b4), np.float32(0.01)), 0.0, 3.0)
    yield normalized_difference(b4, b2)
    yield np.isin(cm_, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY)).astype(np.float32)
    yield (cm_ == SCL.THIN_CIRRUS).astype(np.float32)
    for k in CIRRUS_KNOTS:
        yield np.clip((c - np.float32(k)) / np.float32(0.002), 0.0, 1.0)


def cloud_features(bands: Mapping[str, F32], cm: ArrayLike, cmc: F32, b10_leakage: float = 0.0) -> F64:
    """Physical features of the calibrated cloud probability, stacked on the first axis.

    - ``cmc``: Sen2Cor's cloud confidence;
    - ``cirrus``: the 1375 nm signal less the ground's leakage (:func:`cirrus_signal`),
      clipped to [0, 0.05] (high cloud; the ground is hidden by water vapour);
    - ``blue``: B2, clouds are bright in the blue where most land is dark;
    - ``hot``: haze-optimised transform ``B2 - 0.5 B4``: haze raises blue more than red;
    - ``ndsi``: (B3 - B11) / (B3 + B11);
    - ``ndvi``: (B8A - B4) / (B8A + B4);
    - ``swir_ratio``: B11 / max(B8A, B4, 0.01) clipped to [0, 3]: soils and sand have
      more SWIR than NIR, water clouds less;
    - ``redness``: (B4 - B2) / (B4 + B2): clouds are white or bluish at the top of the
      atmosphere, sand and soil red;
    - ``sen2cor_cloud``, ``sen2cor_cirrus``: 1 where Sen2Cor's steps 1-7 (``cm``) give
      cloud (8, 9) or thin cirrus (10);
    - ``cirrus_above_k``: ``clip((cirrus - k) / 0.002, 0, 1)`` for each of
      :data:`CIRRUS_KNOTS`.
    """
    return np.stack([f.astype(np.float64) for f in _features(bands, cm, cmc, b10_leakage)])


CLOUD_PROBABILITY_MODEL = CloudProbabilityModel(
    intercept=-2.15918,
    coefficients=(
        5.51307,
        66.1518,
        0.191828,
        0.771897,
        -2.31812,
        -0.479442,
        -1.6394,
        0.66683,
        2.06481,
        1.89402,
        1.45197,
        -0.764703,
        1.44777,
        0.988655,
        -1.17612,
        -0.294995,
        -0.628693,
        -0.315656,
    ),
    provenance=(
        "scripts/fit_cloud_probability.py --size 600, 16 synthetic scenes of sen2core.synthetic with physical "
        "clouds (seeds 1001-1016, 6 km, sun zenith 25-65 deg, cloud 0-80 %, cirrus, snow, real-desert surface, "
        "water vapour 0.3-4.5 cm; 1013-1016: low thick water clouds, tops 0.5-2.5 km, in humid air, little B10 "
        "signal), 480000 pixels, truth cloud = classes 8, 9, 10 (cover fraction >= 0.2). Fitted on 8 scenes, the "
        "other 8 held out: Brier 0.073 (Sen2Cor CMC as a probability: 0.175), log-loss 0.279, F1 at p >= 0.5 "
        "0.913; then refitted on all 16. The previous fit (simple clouds, no low humid clouds) gave thick low "
        "clouds with B10 < 0.005 a median probability of 0.04."
    ),
)


def calibrated_cloud_probability(
    bands: Mapping[str, ArrayLike],
    cm: ArrayLike,
    cmc: ArrayLike,
    b10_leakage: float = 0.0,
    model: CloudProbabilityModel = CLOUD_PROBABILITY_MODEL,
) -> F32:
    """Calibrated, continuous probability of cloud (0..1) from :func:`cloud_features`.

    ``cm`` and ``cmc`` are the outputs of :func:`classify_pixels`. Pixel by pixel
    (reach 0). Pixels without data get the value of zero reflectance; mask them with
    the valid-data mask.
    """
    b, _ = prepare_bands(bands)
    z = np.full(np.shape(cmc), np.float32(model.intercept), dtype=np.float32)
    for coefficient, feature in zip(
        model.coefficients, _features(b, cm, np.asarray(cmc, dtype=np.float32), b10_leakage), strict=True
    ):
        z += np.float32(coefficient) * feature
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))), dtype=np.float32)

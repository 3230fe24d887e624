"""Scene classification (SCL) kernels: Sen2Cor 2.8's rules, step by step, and a few fixes.

Pure numpy (and scipy.ndimage): top-of-atmosphere reflectance arrays in (float32,
NaN = no data, all on one grid: 20 m or 60 m), arrays out; no I/O, no dask. The
steps follow SEN2COR_REFERENCE.md A3 and are named in comments (``step 1.1``,
``R5``...). Thresholds come from :class:`~sen2core.config.SceneClassificationConfig`.

The classification is split into stages at the points where a neighbourhood
operation reaches far, so that a chunked caller (:mod:`sen2core.scl`) can give each
stage exactly the overlap it needs; each stage documents its *reach* in pixels.
:func:`scene_classification` chains the stages on whole arrays and is the reference
the chunked result is tested against.

0. :func:`leakage_histogram` -- a scene-wide histogram: how much bright ground leaks
   into B10 through dry air (:func:`leakage_from_histogram`);
1. :func:`classify_pixels` -- steps 0 to 7 (reach: snow-ring dilations), and
   :func:`calibrated_cloud_probability` (reach 0);
2. :func:`shadow_inputs` -- radiometric shadow tests and the cloud mask to project (reach 2);
3. :func:`project_cloud_shadow` -- Sen2Cor's geometric projection over the cloud heights
   on the shadow grid (reach :func:`shadow_reach`), :func:`match_cloud_shadow` -- the
   cloud heights matched with dark pixels on the matching grid (reach
   :func:`match_zone_reach`), and terrain cast shadows;
4. :func:`scene_statistics` -- sums for the scene-wide thresholds of R7/R8 (only with a
   land-cover map);
5. :func:`finalize` -- cloud shadows, recovery steps R1-R9, post-processing and the
   improvements (cloud buffer, thin-cloud and bright-surface fixes).

Improvements over Sen2Cor 2.8 (each a switch of the configuration; all off in
:meth:`~sen2core.config.SceneClassificationConfig.sen2cor`): B10 corrected for ground
leakage (bright deserts under dry air are not cirrus), bright red surfaces with SWIR
above NIR and no high-cloud signal are not cloud, a calibrated cloud probability whose
verdict catches thin cloud, cloud heights matched with shadows plus a shadow test that
keeps shadowed sand and snow and tells shadows from water by geometry, per-pixel view
parallax, cloud heights up to 12 km, grey shadows found by their darkness relative to the
local sunlit ground inside the projected zone (:func:`relative_shadow`), cloud masks grown
into their dim edges (:func:`grow_cloud_edges`), and an optional cloud buffer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from sen2core.config import SceneClassificationConfig
from sen2core.errors import InputProductError
from sen2core.kernels import morphology
from sen2core.kernels import shadow as shadow_kernels
from sen2core.kernels.radiometry import block_mean

__all__ = [
    "CIRRUS_KNOTS",
    "CLOUD_PROBABILITY_MODEL",
    "CloudProbabilityModel",
    "FEATURES",
    "LEAKAGE_BINS",
    "LOW",
    "NC",
    "N_STATISTICS",
    "OPTIONAL_BANDS",
    "PERCENTAGE_NAMES",
    "REQUIRED_BANDS",
    "SCL",
    "SceneClassificationArrays",
    "SceneStatistics",
    "background_window_px",
    "calibrated_cloud_probability",
    "cirrus_signal",
    "class_counts",
    "class_percentages",
    "classify_pixels",
    "cloud_edge_growth_px",
    "cloud_features",
    "coarse_sun",
    "finalize",
    "finalize_reach",
    "grow_cloud_edges",
    "hpc_blob_mask",
    "hpc_blob_reach",
    "leakage_from_histogram",
    "leakage_histogram",
    "match_cloud_shadow",
    "match_counts",
    "match_grid_factor",
    "match_zone_reach",
    "probability_to_uint8",
    "project_cloud_shadow",
    "ramp",
    "relative_shadow",
    "scene_classification",
    "scene_statistics",
    "shadow_displacement_field",
    "shadow_grid_factor",
    "shadow_inputs",
    "shadow_reach",
    "snow_condition_mean",
    "statistics_from_sums",
    "sun_components",
    "terrain_shadow_reach",
]

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
U8 = NDArray[np.uint8]
BoolArray = NDArray[np.bool_]


class SCL(IntEnum):
    """Scene classification codes (ESA naming; 2.8 called class 2 DARK_FEATURES)."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA_PIXELS = 2
    CLOUD_SHADOWS = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW_ICE = 11


NC = 100
"""Internal code of a pixel no rule has classified yet (Sen2Cor's initial value)."""
LOW = int(SCL.UNCLASSIFIED)
"""Step 7 gives low-probability clouds the UNCLASSIFIED code, as Sen2Cor does."""

REQUIRED_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B05", "B8A", "B10", "B11", "B12")
"""Bands the classification needs, on the classification grid."""
OPTIONAL_BANDS: tuple[str, ...] = ("B09",)
"""Bands used when present (B09 for the land recovery R7)."""

_CLOUDY = (int(SCL.CLOUD_MEDIUM_PROBABILITY), int(SCL.CLOUD_HIGH_PROBABILITY), int(SCL.THIN_CIRRUS))
_UNCLASSIFIED = (LOW, NC)
# CCI land cover codes used by R7-R9 and CCI water-body / snow-condition codes.
_LC_WATER = 210
_LC_URBAN = 190
_LC_BARE = (200, 201, 202)
_WB_WATER = 2
_SNC_WATER = 254

PERCENTAGE_NAMES: Mapping[int, str] = {
    1: "SATURATED_DEFECTIVE_PIXEL_PERCENTAGE",
    2: "DARK_FEATURES_PERCENTAGE",
    3: "CLOUD_SHADOW_PERCENTAGE",
    4: "VEGETATION_PERCENTAGE",
    5: "NOT_VEGETATED_PERCENTAGE",
    6: "WATER_PERCENTAGE",
    7: "UNCLASSIFIED_PERCENTAGE",
    8: "MEDIUM_PROBA_CLOUDS_PERCENTAGE",
    9: "HIGH_PROBA_CLOUDS_PERCENTAGE",
    10: "THIN_CIRRUS_PERCENTAGE",
    11: "SNOW_ICE_PERCENTAGE",
}
"""Sen2Cor's ``Image_Content_QI`` name of the percentage of each class."""


# ----------------------------------------------------------------------------- helpers


def ramp(x: ArrayLike, a: float, b: float) -> F32:
    """Sen2Cor's ``ramp``: 0 below ``a``, 1 above ``b``, linear in between."""
    v = np.asarray(x, dtype=np.float32)
    return np.asarray((np.clip(v, a, b) - np.float32(a)) / np.float32(b - a), dtype=np.float32)


def _ratio(a: F32, b: F32) -> F32:
    """``a / b`` for reflectances: a large number where ``b <= 0 < a``, 0 where both are <= 0."""
    out = np.where(a > 0, np.float32(1e6), np.float32(0.0)).astype(np.float32)
    np.divide(a, b, out=out, where=b > 0)
    return out


def _normalized_difference(a: F32, b: F32) -> F32:
    s = a + b
    out = np.zeros(a.shape, dtype=np.float32)
    np.divide(a - b, s, out=out, where=s > 0)
    return out


def _bands(bands: Mapping[str, ArrayLike]) -> tuple[dict[str, F32], BoolArray]:
    """Bands as float32 with NaN replaced by 0, and the valid-data mask."""
    missing = [b for b in REQUIRED_BANDS if b not in bands]
    if missing:
        raise InputProductError("scene classification", f"missing band(s) {', '.join(missing)}")
    shape = np.shape(bands["B02"])
    out: dict[str, F32] = {}
    valid = np.ones(shape, dtype=bool)
    for name in (*REQUIRED_BANDS, *OPTIONAL_BANDS):
        if name not in bands:
            continue
        v = np.asarray(bands[name], dtype=np.float32)
        if v.shape != shape:
            raise InputProductError(
                "scene classification", f"band {name} is {v.shape}, B02 is {shape}: bands must share one grid"
            )
        finite = np.isfinite(v)
        if name in REQUIRED_BANDS:
            valid &= finite
        out[name] = np.where(finite, v, np.float32(0.0)).astype(np.float32)
    return out, valid


def probability_to_uint8(p: ArrayLike) -> U8:
    """Sen2Cor's encoding of a confidence in [0, 1]: ``uint8(p * 100 + 0.5)`` (percent)."""
    x = np.clip(np.nan_to_num(np.asarray(p, dtype=np.float32), nan=0.0), 0.0, 1.0)
    return np.asarray(x * np.float32(100.0) + np.float32(0.5), dtype=np.float32).astype(np.uint8)


def shadow_grid_factor(resolution_m: float, config: SceneClassificationConfig) -> int:
    """Integer ratio between the shadow projection grid and the classification grid (>= 1)."""
    return max(1, int(round(config.shadow_grid_m / resolution_m)))


# ------------------------------------------------------------------ B10 surface leakage

LEAKAGE_BINS = 400
"""Bins of the B10/B11 histogram of :func:`leakage_histogram` (0 to 0.2, steps of 0.0005)."""
_LEAKAGE_MAX = 0.2


def cirrus_signal(b10: ArrayLike, b11: ArrayLike, leakage: float) -> F32:
    """B10 minus what the ground leaks into it: ``B10 - leakage * B11``.

    The 1375 nm band is blind to the ground only when the air holds enough water
    vapour. Over dry air a bright surface shows in B10 in proportion to its SWIR
    reflectance (B11 is the nearest window band): thin-cirrus tests on raw B10 then
    take bright deserts for cirrus (the real T29RKH product Sen2Cor made shows it).
    """
    return np.asarray(
        np.asarray(b10, dtype=np.float32) - np.float32(leakage) * np.asarray(b11, dtype=np.float32), dtype=np.float32
    )


def leakage_histogram(bands: Mapping[str, ArrayLike]) -> NDArray[np.int64]:
    """Histogram of B10/B11 over bright land pixels (B11 >= 0.15, not snow-like: NDSI < 0.2).

    Counts add up over chunks (reach 0); :func:`leakage_from_histogram` turns the
    scene's histogram into the leakage coefficient.
    """
    b, valid = _bands(bands)
    b10, b11 = b["B10"], b["B11"]
    use = valid & (b11 >= 0.15) & (_normalized_difference(b["B03"], b11) < 0.2)
    ratio = np.asarray(b10[use] / b11[use], dtype=np.float64)
    # Clip the index, not the ratio: in float32 a ratio clipped just below the top rounds up to it.
    index = np.clip((ratio / _LEAKAGE_MAX * LEAKAGE_BINS).astype(np.int64), 0, LEAKAGE_BINS - 1)
    return np.bincount(index, minlength=LEAKAGE_BINS).astype(np.int64)


def leakage_from_histogram(histogram: ArrayLike, config: SceneClassificationConfig) -> float:
    """The scene's B10 leakage coefficient: a low quantile of B10/B11 on bright land.

    Cirrus only adds to B10, so the lower tail of the ratio is the ground's own
    leakage. Without ``cirrus_leakage_min_pixels`` bright pixels, 0 (no correction).
    """
    h = np.asarray(histogram, dtype=np.int64)
    total = int(h.sum())
    if not config.cirrus_leakage_correction or total < config.cirrus_leakage_min_pixels:
        return 0.0
    k = int(np.searchsorted(np.cumsum(h), config.cirrus_leakage_quantile * total))
    return float(k * _LEAKAGE_MAX / LEAKAGE_BINS)


# ------------------------------------------------------------------ calibrated probability


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
    yield _normalized_difference(b3, b11)
    yield _normalized_difference(b8a, b4)
    yield np.clip(b11 / np.maximum(np.maximum(b8a, b4), np.float32(0.01)), 0.0, 3.0)
    yield _normalized_difference(b4, b2)
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
    b, _ = _bands(bands)
    z = np.full(np.shape(cmc), np.float32(model.intercept), dtype=np.float32)
    for coefficient, feature in zip(
        model.coefficients, _features(b, cm, np.asarray(cmc, dtype=np.float32), b10_leakage), strict=True
    ):
        z += np.float32(coefficient) * feature
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0))), dtype=np.float32)


# ------------------------------------------------------------------------- stage 1


def classify_pixels(
    bands: Mapping[str, ArrayLike],
    config: SceneClassificationConfig,
    *,
    dem: ArrayLike | None = None,
    quality_mask: ArrayLike | None = None,
    snow_possible: bool | None = None,
    snow_condition: ArrayLike | None = None,
    snow_condition_mean: float | None = None,
    b10_leakage: float = 0.0,
) -> tuple[U8, F32, F32]:
    """Steps 0 to 7 of A3: no data, saturation, cloud confidence, snow, soils, water, clouds, cirrus.

    Parameters
    ----------
    bands
        TOA reflectance per band (``REQUIRED_BANDS``), NaN = no data.
    config
        Thresholds.
    dem
        Elevation (m) on the same grid, or None: thin cirrus is then not limited to
        low ground.
    quality_mask
        True where the L1C quality masks flag the pixel as defective (used when
        ``config.handle_l1c_quality_mask``).
    snow_possible
        False when a snow climatology says the tile never has snow: the snow chain is
        skipped. None (no climatology) or True: it runs.
    snow_condition, snow_condition_mean
        ESA-CCI snow-condition map (percent, 254 = water) and the mean of its non-water
        pixels over the scene: where that mean is below 10 %, snow found on CCI water
        is taken for cloud.
    b10_leakage
        The scene's B10 leakage coefficient (:func:`leakage_from_histogram`): the cirrus
        tests use :func:`cirrus_signal` instead of raw B10.

    Returns
    -------
    (cm, cmc, cms)
        Class map with internal codes (``NC`` = not yet classified, 7 = low-probability
        cloud), cloud confidence and snow confidence (float32, 0..1).

    Notes
    -----
    Reach: ``config.snow_ring_iterations`` pixels (the snow ring of step 2.5).
    """
    b, valid = _bands(bands)
    b2, b3, b4, b5, b8a, b10, b11, b12 = (b[k] for k in REQUIRED_BANDS)
    shape = b2.shape
    cm = np.full(shape, NC, dtype=np.uint8)

    # Step 0: any band without data -> NO_DATA; every later rule skips these pixels.
    cm[~valid] = SCL.NO_DATA
    # Saturated or defective: DN 65535 in any band, or the L1C quality masks.
    saturated = np.zeros(shape, dtype=bool)
    for name in REQUIRED_BANDS:
        saturated |= b[name] >= config.saturated_reflectance
    if quality_mask is not None and config.handle_l1c_quality_mask:
        saturated |= np.asarray(quality_mask, dtype=bool)
    cm[valid & saturated] = SCL.SATURATED_OR_DEFECTIVE
    free = cm == NC

    # Step 1.1: brightness on B4 gives the first cloud confidence.
    cmc = ramp(b4, config.t1_b04, config.t2_b04) ** 2
    # Dark features: dark in the red but with some NIR (shadowed land, dark soils).
    dark = free & (b4 < config.dark_b04_max) & (b8a > config.dark_b8a_min) & (b8a < config.dark_b8a_max)
    cm[dark] = SCL.DARK_AREA_PIXELS
    cmc[dark] = 0.0
    free = cm == NC

    # Step 1.2: NDSI cloud filter -- SWIR much brighter than green is soil, not cloud.
    ndsi = _normalized_difference(b3, b11)
    cmc *= ramp(ndsi, config.t1_ndsi_cld, config.t2_ndsi_cld)

    # Step 2: snow chain (skipped when a climatology excludes snow).
    cms = np.zeros(shape, dtype=np.float32)
    if snow_possible is not False:
        # 2.1: snow confidence from NDSI, none where the brightness test saw nothing.
        cms = ramp(ndsi, config.t1_ndsi_snw, config.t2_ndsi_snw)
        cms[cmc == 0] = 0.0
        # 2.1bis: snow is spectrally flat from 705 to 865 nm.
        cms[_ratio(b5, b8a) < config.snow_b05_b8a_min] = 0.0
        # 2.2 - 2.4: snow is bright in the NIR and the blue, and bluer than red.
        cms *= ramp(b8a, config.t1_b8a, config.t2_b8a)
        cms *= ramp(b2, config.t1_b02, config.t2_b02)
        cms *= ramp(_ratio(b2, b4), config.t1_r_b02_b04, config.t2_r_b02_b04)
        cms[~free] = 0.0
        # 2.5: snow class; around snow, low B12 means snow edges rather than cloud.
        snow = free & (cms > config.t1_snow)
        ring = morphology.dilate(snow, config.snow_ring_iterations) & ~snow
        cmc[ring & (b12 < config.t1_b12)] = 0.0
        cmc[snow] = 0.0
        cm[snow] = SCL.SNOW_ICE
        if snow_condition is not None and snow_condition_mean is not None and snow_condition_mean < 10.0:
            # Post of step 2: in a scene the climatology calls snow-free, "snow" on
            # CCI water is ice cloud.
            on_water = snow & (np.asarray(snow_condition) == _SNC_WATER)
            cm[on_water] = SCL.CLOUD_MEDIUM_PROBABILITY
            cms[on_water] = 0.0
        free = cm == NC

    # Step 3: NDVI -- vegetation, and less cloud confidence for green pixels.
    # (Conditions on the ramp, "r == 1" and "0 < r < 1", are written on the index
    # itself: the float32 ramp of the upper threshold may miss 1 by rounding.)
    ndvi = _normalized_difference(b8a, b4)
    r = ramp(ndvi, config.t1_ndvi, config.t2_ndvi)
    veg = free & (ndvi >= config.t2_ndvi) & (b2 < config.vegetation_b02_max)
    cm[veg] = SCL.VEGETATION
    cmc[veg] = 0.0
    partial = free & (ndvi > config.t1_ndvi) & (ndvi < config.t2_ndvi)
    cmc[partial] *= 1.0 - r[partial]
    free = cm == NC

    # Step 4 (B8A/B3 senescing vegetation) is disabled in Sen2Cor 2.8: not applied.

    # Step 5.1: soils, R = B2/B11 -- soils are darker in the blue than in the SWIR.
    r_b2_b11 = _ratio(b2, b11)
    b02_ft = np.clip(config.t11_b02 * r_b2_b11 + config.t12_b02, config.soil_b02_min, config.soil_b02_max)
    soil = free & (b2 < b02_ft) & (r_b2_b11 < config.t11_r_b02_b11)
    cm[soil] = SCL.NOT_VEGETATED
    cmc[soil] = 0.0
    partial = free & (r_b2_b11 > config.t11_r_b02_b11) & (r_b2_b11 < config.t12_r_b02_b11) & (b2 < b02_ft)
    cmc[partial] *= ramp(r_b2_b11[partial], config.t11_r_b02_b11, config.t12_r_b02_b11)
    free = cm == NC

    # Step 5.2: water -- dark in the SWIR, NIR below red, not bright in the blue.
    b12_ft = np.clip(config.t21_b12 * r_b2_b11 + config.t22_b12, config.water_b12_min, config.water_b12_max)
    water_like = free & (b12 < b12_ft) & (b8a < b4) & (b2 < config.water_b02_max)
    water = water_like & (r_b2_b11 > config.t22_r_b02_b11)
    partial = water_like & (r_b2_b11 >= config.t21_r_b02_b11) & (r_b2_b11 < config.t22_r_b02_b11)
    cmc[partial] *= 1.0 - (r_b2_b11[partial] - config.t21_r_b02_b11) / (config.t22_r_b02_b11 - config.t21_r_b02_b11)
    water |= free & ((b2 - b4) > config.water_b02_b04_diff) & (b8a < b4) & (b2 < config.water_b02_max)
    cm[water] = SCL.WATER
    cmc[water] = 0.0
    free = cm == NC

    # Step 6: rocks and sand, R8 = B8A/B11 -- more SWIR than NIR, darker blue than SWIR.
    r8 = _ratio(b8a, b11)
    b02_ft = np.clip(config.rock_b02_slope * r8 + config.rock_b02_intercept, config.rock_b02_min, config.rock_b02_max)
    rock = free & (b2 < b02_ft) & (r8 < config.t1_r_b8a_b11) & (b2 < config.rock_b02_b11_factor * b11)
    cm[rock] = SCL.NOT_VEGETATED
    cmc[rock] = 0.0
    free = cm == NC
    partial = free & (r8 > config.t1_r_b8a_b11) & (r8 < config.t2_r_b8a_b11)
    cmc[partial] *= ramp(r8[partial], config.t1_r_b8a_b11, config.t2_r_b8a_b11)

    # Step 6bis: B4/B11 -- red far above SWIR is not a water cloud.
    r_b4_b11 = _ratio(b4, b11)
    r = ramp(r_b4_b11, config.t1_r_b04_b11, config.t2_r_b04_b11)
    cmc[free & (r_b4_b11 >= config.t2_r_b04_b11)] = 0.0
    partial = free & (r_b4_b11 > config.t1_r_b04_b11) & (r_b4_b11 < config.t2_r_b04_b11)
    cmc[partial] *= 1.0 - r[partial]

    # Step 7: cloud classes from the confidence.
    cm[free & (cmc > config.t_cloud_lp) & (cmc < config.t_cloud_mp)] = LOW
    cm[free & (cmc >= config.t_cloud_mp) & (cmc < config.t_cloud_hp)] = SCL.CLOUD_MEDIUM_PROBABILITY
    cm[free & (cmc >= config.t_cloud_hp)] = SCL.CLOUD_HIGH_PROBABILITY
    # Thin cirrus on B10 (overrides the class of any pixel with data); high ground
    # shows in B10 through the thin dry air above it, hence the DEM limit.
    classified = valid & (cm != SCL.SATURATED_OR_DEFECTIVE)
    b10 = cirrus_signal(b10, b11, b10_leakage)
    thin = (
        classified
        & (b10 > config.t1_b10)
        & (b10 < config.t2_b10)
        & (b2 < config.cirrus_b02_max)
        & (cmc < config.t_cloud_mp)
    )
    if dem is not None:
        thin &= np.asarray(dem, dtype=np.float64) < config.cirrus_dem_max_m
    cm[thin] = SCL.THIN_CIRRUS
    # Thick cirrus: strong B10 signal without a high cloud confidence.
    cm[classified & (b10 >= config.t2_b10) & (cmc < config.t_cloud_hp)] = SCL.CLOUD_MEDIUM_PROBABILITY

    cmc[~valid] = 0.0
    cms[~valid] = 0.0
    return cm, cmc.astype(np.float32), cms.astype(np.float32)


# ------------------------------------------------------------------------- stage 2


def shadow_inputs(
    bands: Mapping[str, ArrayLike],
    cm: ArrayLike,
    cmc: ArrayLike,
    config: SceneClassificationConfig,
) -> tuple[F32, BoolArray, BoolArray]:
    """Radiometric shadow tests and the cloud mask to project (Sen2Cor L2A_CSHD, and sen2core's).

    ``csd1`` (Sen2Cor): distance of the spectrum (B2, B3, B4, B8A, B11, B12) to a
    reference shadow spectrum. ``1 - median3(mean |dist|)`` where that exceeds
    ``1 - T_B02_B12``; 1 where ``median3`` of the fraction of bands darker than the
    reference is 1 (dark in every band); 0 on water (B2/B11 above
    ``shadow_water_ratio``), thin cirrus and no data. Cloud mask: 4-connected dilation
    of ``median3(CMC) > shadow_cloud_cmc``.

    ``dark`` (sen2core): darker than the reference in B8A, B11 and B12, outside the
    cloud mask. Without the direct sun a surface keeps only the diffuse sky light,
    a few percent of the irradiance beyond 800 nm, so every shadowed surface (snow and
    sand included) is dark there, and few sunlit ones are: water, which the
    geometric zone tells apart.

    Reach: 2 pixels.
    """
    b, valid = _bands(bands)
    cm_ = np.asarray(cm)
    stack = np.stack([b[k] for k in ("B02", "B03", "B04", "B8A", "B11", "B12")])
    dist = stack - np.asarray(config.shadow_reference, dtype=np.float32)[:, None, None]
    msd_dark = morphology.median3(np.mean(dist < 0, axis=0).astype(np.float32))
    msd = 1.0 - morphology.median3(np.mean(np.abs(dist), axis=0).astype(np.float32))
    csd1 = np.where(msd < 1.0 - config.t_b02_b12, np.float32(0.0), msd).astype(np.float32)
    csd1[msd_dark == 1.0] = 1.0
    csd1[_ratio(b["B02"], b["B11"]) > config.shadow_water_ratio] = 0.0
    csd1[cm_ == SCL.THIN_CIRRUS] = 0.0
    csd1[~valid] = 0.0
    cloud = morphology.dilate(morphology.median3(np.asarray(cmc, dtype=np.float32)) > config.shadow_cloud_cmc) & valid
    ref = config.shadow_reference
    dark = valid & ~cloud & (b["B8A"] < ref[3]) & (b["B11"] < ref[4]) & (b["B12"] < ref[5])
    return csd1, cloud, dark


# ------------------------------------------------------------------------- stage 3


def shadow_displacement_field(
    sun_zenith: ArrayLike,
    sun_azimuth: ArrayLike,
    view_zenith: ArrayLike | None,
    view_azimuth: ArrayLike | None,
    config: SceneClassificationConfig,
) -> tuple[F32, F32]:
    """Per-pixel cloud-to-shadow displacement (m per m of cloud height), rows then columns.

    Uses the view parallax when ``config.view_parallax`` and view angles are given.
    Components, unlike angles, can be averaged to a coarser grid (view azimuths jump
    by 180 degrees between detectors). Pixel by pixel (reach 0).
    """
    use_view = config.view_parallax and view_zenith is not None and view_azimuth is not None
    drow, dcol = shadow_kernels.shadow_displacement(
        np.nan_to_num(np.asarray(sun_zenith, dtype=np.float64)),
        np.nan_to_num(np.asarray(sun_azimuth, dtype=np.float64)),
        np.nan_to_num(np.asarray(view_zenith, dtype=np.float64)) if use_view else None,
        np.nan_to_num(np.asarray(view_azimuth, dtype=np.float64)) if use_view else None,
        max_sun_zenith=config.shadow_max_sun_zenith_deg,
    )
    return drow.astype(np.float32), dcol.astype(np.float32)


def project_cloud_shadow(
    cloud: ArrayLike,
    drow: ArrayLike,
    dcol: ArrayLike,
    pixel_m: float,
    config: SceneClassificationConfig,
) -> BoolArray:
    """Geometric cloud-shadow zone: the cloud mask swept over the cloud heights.

    Runs on the shadow grid (``config.shadow_grid_m``) with the displacement of
    :func:`shadow_displacement_field` averaged to that grid. Reach: :func:`shadow_reach`.
    """
    return shadow_kernels.project_mask(
        cloud,
        drow,
        dcol,
        config.cloud_height_min_m,
        config.cloud_height_max_m,
        pixel_m,
        max_displacement=_max_displacement(config),
    )


def _max_displacement(config: SceneClassificationConfig) -> float:
    view = config.shadow_max_view_zenith_deg if config.view_parallax else 0.0
    return math.tan(math.radians(config.shadow_max_sun_zenith_deg)) + math.tan(math.radians(view))


def shadow_reach(pixel_m: float, config: SceneClassificationConfig, max_sun_zenith_deg: float | None = None) -> int:
    """Reach (pixels of a grid of ``pixel_m``) of :func:`project_cloud_shadow`.

    ``max_sun_zenith_deg``: an upper bound of the sun zenith over the image, when
    known, that is below the configured clip: it shortens the reach.
    """
    clip = config.shadow_max_sun_zenith_deg
    bound = clip if max_sun_zenith_deg is None else min(clip, max_sun_zenith_deg)
    return shadow_kernels.projection_reach(
        config.cloud_height_max_m,
        pixel_m,
        max_sun_zenith=bound,
        max_view_zenith=config.shadow_max_view_zenith_deg if config.view_parallax else 0.0,
    )


def terrain_shadow_reach(pixel_m: float, config: SceneClassificationConfig) -> int:
    """Reach (pixels) of the terrain cast-shadow ray march."""
    return int(math.ceil(config.terrain_shadow_max_distance_m / pixel_m))


def match_grid_factor(resolution_m: float, config: SceneClassificationConfig) -> int:
    """Integer ratio between the height-matching grid and the classification grid (>= 1)."""
    return max(1, int(round(config.shadow_match_grid_m / resolution_m)))


def match_counts(
    cloud: ArrayLike, dark: ArrayLike, drow: ArrayLike, dcol: ArrayLike, factor: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], F32, F32]:
    """Per cell of the matching grid: cloud, dark and all pixel counts, and the mean displacement.

    Partial edge cells count what they hold. Pixel by pixel within cells (reach 0).
    """
    return (
        morphology.block_sum(cloud, factor),
        morphology.block_sum(dark, factor),
        morphology.block_sum(np.ones(np.shape(cloud), dtype=bool), factor),
        block_mean(np.asarray(drow, dtype=np.float32), factor),
        block_mean(np.asarray(dcol, dtype=np.float32), factor),
    )


def match_cloud_shadow(
    cloud_count: ArrayLike,
    dark_count: ArrayLike,
    pixel_count: ArrayLike,
    drow: ArrayLike,
    dcol: ArrayLike,
    pixel_m: float,
    config: SceneClassificationConfig,
) -> BoolArray:
    """Shadow zone with matched cloud heights on the matching grid (reach: :func:`match_zone_reach`)."""
    return shadow_kernels.match_shadow_zone(
        cloud_count,
        dark_count,
        pixel_count,
        drow,
        dcol,
        pixel_m,
        min_height_m=config.cloud_height_min_m,
        max_height_m=config.cloud_height_max_m,
        max_displacement=_max_displacement(config),
        window=config.shadow_match_window_px,
        min_score=config.shadow_match_min_score,
        plateau=config.shadow_match_plateau,
        min_observed=config.shadow_match_min_observed,
        dilation=config.shadow_match_dilation_px,
    )


def match_zone_reach(pixel_m: float, config: SceneClassificationConfig, max_sun_zenith_deg: float | None = None) -> int:
    """Reach (cells of the matching grid) of :func:`match_cloud_shadow`."""
    clip = config.shadow_max_sun_zenith_deg
    bound = clip if max_sun_zenith_deg is None else min(clip, max_sun_zenith_deg)
    view = config.shadow_max_view_zenith_deg if config.view_parallax else 0.0
    displacement = math.tan(math.radians(bound)) + math.tan(math.radians(view))
    return shadow_kernels.match_reach(
        config.cloud_height_max_m,
        pixel_m,
        max_displacement=displacement,
        window=config.shadow_match_window_px,
        dilation=config.shadow_match_dilation_px,
    )


# ------------------------------------------------------------------------- stage 4


@dataclass(frozen=True)
class SceneStatistics:
    """Scene-wide quantities for the land-cover recovery steps R7 and R8."""

    r7_enabled: bool
    """Land covers enough of the scene for R7."""
    r7_b10_threshold: float
    """R7: medium/high cloud below this B10 may be bright land."""
    r7_b9_b8a_threshold: float
    """R7: ... if also B9/B8A is below this (land mean + one standard deviation)."""
    r8_land_threshold: float
    """R8: B10 above this on clear land is thin cirrus."""
    r8_water_threshold: float
    """R8: B10 above this on water is thin cirrus."""


N_STATISTICS = 21
"""Length of the vector of :func:`scene_statistics`."""


def hpc_blob_mask(cm: ArrayLike, resolution_m: float, config: SceneClassificationConfig) -> BoolArray:
    """High-probability cloud inside blobs at least ``hpc_blob_m`` wide (R7 statistics).

    Erosion by a square of ``hpc_blob_m``: what remains lies at least half that
    distance inside a cloud. Reach: :func:`hpc_blob_reach`.
    """
    hpc = np.asarray(cm) == SCL.CLOUD_HIGH_PROBABILITY
    size = max(1, int(round(config.hpc_blob_m / resolution_m)))
    return np.asarray(morphology.erode_square(hpc, size) & hpc, dtype=bool)


def hpc_blob_reach(resolution_m: float, config: SceneClassificationConfig) -> int:
    """Reach (pixels) of :func:`hpc_blob_mask`."""
    return max(1, int(round(config.hpc_blob_m / resolution_m))) // 2


def scene_statistics(
    bands: Mapping[str, ArrayLike],
    cm: ArrayLike,
    hpc_blob: ArrayLike,
    land_cover: ArrayLike,
) -> F64:
    """Sums over a (chunk of a) scene for :func:`statistics_from_sums` (R7, R8).

    Returns 21 float64 sums: counts of valid, land and high-probability-cloud (HPC)
    pixels; then (count, sum, sum of squares) of B10 on clear land, on HPC, on HPC
    blobs (:func:`hpc_blob_mask`), on bare soil; of B9/B8A on clear land; and of B10
    on water. Pixel by pixel (reach 0): chunk sums add up to the scene's.
    """
    b, valid = _bands(bands)
    cm_ = np.asarray(cm)
    lc = np.asarray(land_cover)
    land = valid & (lc != _LC_WATER) & (lc != 0)
    clear_land = land & np.isin(cm_, (SCL.VEGETATION, SCL.NOT_VEGETATED))
    hpc = valid & (cm_ == SCL.CLOUD_HIGH_PROBABILITY)
    soil = land & (cm_ == SCL.NOT_VEGETATED)
    water = valid & (cm_ == SCL.WATER)
    b10 = b["B10"].astype(np.float64)
    if "B09" in b:
        ratio = _ratio(b["B09"], b["B8A"]).astype(np.float64)
        ratio_mask = clear_land
    else:
        ratio, ratio_mask = b10, np.zeros_like(clear_land)
    sums = [float(valid.sum()), float(land.sum()), float(hpc.sum())]
    for values, m in (
        (b10, clear_land),
        (b10, hpc),
        (b10, valid & np.asarray(hpc_blob, dtype=bool)),
        (b10, soil),
        (ratio, ratio_mask),
        (b10, water),
    ):
        x = values[m]
        sums += [float(x.size), float(x.sum()), float((x * x).sum())]
    return np.asarray(sums, dtype=np.float64)


def _mean_std(n: float, s: float, s2: float) -> tuple[float, float]:
    if n <= 0:
        return math.nan, math.nan
    mean = s / n
    return mean, math.sqrt(max(s2 / n - mean * mean, 0.0))


def statistics_from_sums(sums: ArrayLike, resolution_m: float, config: SceneClassificationConfig) -> SceneStatistics:
    """Thresholds of R7 and R8 from the sums of :func:`scene_statistics`."""
    v = np.asarray(sums, dtype=np.float64)
    n_valid, n_land, n_hpc = v[0], v[1], v[2]
    land_mean, _ = _mean_std(*v[3:6])
    hpc_mean, hpc_std = _mean_std(*v[6:9])
    blob_mean, blob_std = _mean_std(*v[9:12])
    soil_mean, soil_std = _mean_std(*v[12:15])
    ratio_mean, ratio_std = _mean_std(*v[15:18])
    water_mean, water_std = _mean_std(*v[18:21])
    pixel_km2 = (resolution_m / 1000.0) ** 2
    r7 = (
        n_valid > 0
        and n_land >= config.land_min_fraction * n_valid
        and n_land * pixel_km2 >= config.land_min_area_km2
        and math.isfinite(land_mean)
        and math.isfinite(ratio_mean)
    )
    hpc_fraction = n_hpc / n_valid if n_valid > 0 else 0.0
    if hpc_fraction > config.hpc_high_fraction and math.isfinite(hpc_mean):
        t_b10 = max(config.r7_b10_floor, min(land_mean, hpc_mean - 2.0 * hpc_std))
    elif hpc_fraction < config.hpc_low_fraction or not math.isfinite(blob_mean):
        t_b10 = land_mean
    else:
        t_b10 = max(config.r7_b10_floor, min(land_mean, blob_mean - 2.0 * blob_std))
    land_t = (
        max(soil_mean + config.r8_soil_sigma * soil_std, config.r8_land_floor) if math.isfinite(soil_mean) else math.inf
    )
    water_t = (
        max(water_mean + config.r8_water_sigma * water_std, config.r8_water_floor)
        if math.isfinite(water_mean)
        else math.inf
    )
    return SceneStatistics(
        r7_enabled=bool(r7),
        r7_b10_threshold=float(t_b10) if math.isfinite(t_b10) else -math.inf,
        r7_b9_b8a_threshold=float(ratio_mean + ratio_std) if math.isfinite(ratio_mean) else -math.inf,
        r8_land_threshold=float(land_t),
        r8_water_threshold=float(water_t),
    )


# ------------------------------------------------------------------------- stage 5


def finalize_reach(resolution_m: float, config: SceneClassificationConfig, *, land_cover: bool = False) -> int:
    """Reach (pixels) of :func:`finalize`: the sum of its successive neighbourhood steps."""
    half = background_window_px(resolution_m, config) // 2
    # Shadow smoothing and the relative shadow test's background, side by side.
    reach = max(morphology.gaussian_reach(config.shadow_sigma_px), half if config.relative_shadow else 0)
    reach += 1  # hillshade and slope (DEM), R5 snow dilation
    reach += 1
    if land_cover:
        reach += _r9_max_px(resolution_m, config) + 2  # R9 blobs and their ring
    reach += config.median_filter // 2
    growth = cloud_edge_growth_px(resolution_m, config)
    if growth:
        reach += growth + half  # edge growth and its background
    reach += int(math.ceil(config.cloud_buffer_m / resolution_m))
    return reach


def _r9_max_px(resolution_m: float, config: SceneClassificationConfig) -> int:
    return max(1, int(config.r9_max_blob_m // resolution_m))


def _recover_bright_blobs(cm: U8, candidate: BoolArray, resolution_m: float, config: SceneClassificationConfig) -> None:
    """R9 blob test, in place: cloud blobs on urban/bare land with a mostly clear ring."""
    labels, n = ndimage.label(candidate, structure=morphology.CROSS)
    if n == 0:
        return
    index = np.arange(1, n + 1)
    rows, cols = np.indices(cm.shape)
    height = ndimage.maximum(rows, labels, index) - ndimage.minimum(rows, labels, index) + 1
    width = ndimage.maximum(cols, labels, index) - ndimage.minimum(cols, labels, index) + 1
    small = (np.asarray(height) <= _r9_max_px(resolution_m, config)) & (
        np.asarray(width) <= _r9_max_px(resolution_m, config)
    )
    # Ring pixels: 4-neighbours of a blob outside it. A ring pixel may border several
    # blobs; count it once per blob.
    padded = np.pad(labels, 1)
    cloudy = np.isin(cm, _CLOUDY)
    keys: list[NDArray[np.int64]] = []
    flags: list[NDArray[np.bool_]] = []
    flat = np.arange(labels.size).reshape(labels.shape)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[1 + dr : 1 + dr + labels.shape[0], 1 + dc : 1 + dc + labels.shape[1]]
        ring = (neighbour > 0) & (labels == 0)
        keys.append(neighbour[ring].astype(np.int64) * labels.size + flat[ring])
        flags.append(cloudy[ring])
    key = np.concatenate(keys)
    flag = np.concatenate(flags)
    key, first = np.unique(key, return_index=True)
    flag = flag[first]
    owner = key // labels.size
    ring_n = np.bincount(owner, minlength=n + 1)[1:]
    ring_cloudy = np.bincount(owner, weights=flag.astype(np.float64), minlength=n + 1)[1:]
    fraction = np.divide(ring_cloudy, ring_n, out=np.ones(n), where=ring_n > 0)
    keep = small & (fraction <= config.r9_ring_cloud_max)
    recover = np.concatenate([[False], keep])[labels]
    cm[recover] = SCL.NOT_VEGETATED


def background_window_px(resolution_m: float, config: SceneClassificationConfig) -> int:
    """Odd edge (pixels) of the local background window, ``config.background_window_m`` on this grid."""
    return 2 * int(round(config.background_window_m / resolution_m / 2.0)) + 1


def cloud_edge_growth_px(resolution_m: float, config: SceneClassificationConfig) -> int:
    """Steps (pixels) of the cloud edge growth, ``config.cloud_edge_growth_m`` on this grid."""
    return int(round(config.cloud_edge_growth_m / resolution_m))


def relative_shadow(
    b: Mapping[str, F32],
    valid: BoolArray,
    cloud: BoolArray,
    zone: BoolArray,
    resolution_m: float,
    config: SceneClassificationConfig,
) -> BoolArray:
    """Cloud shadow by darkness relative to the local sunlit background, inside the geometric zone.

    A shadow keeps the sky light and what the cloud transmits, so it is grey, not black:
    an absolute threshold (Sen2Cor's reference spectrum) finds only the darkest. In the
    zone where the clouds, projected along the sun and view directions over the cloud
    heights, can cast shadow (``zone``), a pixel is shadow when B8A and B11 are below
    ``relative_shadow_darkness`` times their mean over the valid pixels outside the cloud
    mask (shadows in the window lower it a little, which keeps the test strict) of
    the :func:`background_window_px` window around it. NIR and SWIR are used because the sky
    light there is weakest. Water (B8A below B4) is dark against land without any shadow and
    is left out; so are pixels without any non-cloud pixel in their window. Reach:
    ``background_window_px // 2``.
    """
    sunlit = valid & ~cloud
    size = background_window_px(resolution_m, config)
    k = np.float64(config.relative_shadow_darkness)
    dark = valid & zone & ~cloud & (b["B8A"] >= b["B04"])
    for name in ("B8A", "B11"):
        mean, _ = morphology.masked_box_mean(b[name], sunlit, size)
        with np.errstate(invalid="ignore"):
            dark &= b[name].astype(np.float64) < k * mean
    return np.asarray(dark, dtype=bool)


def grow_cloud_edges(
    cm: U8, b: Mapping[str, F32], valid: BoolArray, resolution_m: float, config: SceneClassificationConfig
) -> None:
    """Grow the cloud classes 8/9 into their dim edges, in place (grown pixels become 8).

    A cloud's edge is thin and broken: its pixels are a little brighter than the ground
    around, not bright. Up to :func:`cloud_edge_growth_px` times, a clear, dark or
    unclassified pixel next to cloud becomes cloud when its B2 exceeds the mean B2 of the
    clear pixels of its :func:`background_window_px` window by ``cloud_edge_min_brightening``
    and it is not redder than a cloud (B2 >= B4: soils and sand are red, a cloud's top of
    atmosphere white to bluish). The background is taken once, from the classes before
    growing. Reach: ``cloud_edge_growth_px + background_window_px // 2``.
    """
    clear = valid & np.isin(cm, (SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, SCL.DARK_AREA_PIXELS))
    background, _ = morphology.masked_box_mean(b["B02"], clear, background_window_px(resolution_m, config))
    with np.errstate(invalid="ignore"):
        brighter = (b["B02"].astype(np.float64) - background) > config.cloud_edge_min_brightening
    candidate = (
        valid
        & brighter
        & (b["B02"] >= b["B04"])
        & np.isin(cm, (SCL.DARK_AREA_PIXELS, SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.UNCLASSIFIED))
    )
    cloud = np.isin(cm, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY))
    grown = cloud
    for _ in range(cloud_edge_growth_px(resolution_m, config)):
        grown = grown | (morphology.dilate(grown) & candidate)
    cm[grown & ~cloud] = SCL.CLOUD_MEDIUM_PROBABILITY


def finalize(
    bands: Mapping[str, ArrayLike],
    cm: ArrayLike,
    csd1: ArrayLike,
    cloud: ArrayLike,
    projected: ArrayLike,
    resolution_m: float,
    config: SceneClassificationConfig,
    *,
    dark: ArrayLike | None = None,
    matched: ArrayLike | None = None,
    probability: ArrayLike | None = None,
    sun_zenith: ArrayLike | None = None,
    sun_azimuth: ArrayLike | None = None,
    dem: ArrayLike | None = None,
    cast: ArrayLike | None = None,
    water_bodies: ArrayLike | None = None,
    land_cover: ArrayLike | None = None,
    statistics: SceneStatistics | None = None,
    b10_leakage: float = 0.0,
) -> tuple[U8, BoolArray]:
    """Cloud shadows, recovery steps R1-R9, post-processing and the improvements.

    Parameters
    ----------
    bands
        TOA reflectance per band.
    cm
        Class map of :func:`classify_pixels`.
    csd1, cloud
        Outputs of :func:`shadow_inputs`.
    projected
        Geometric shadow zone (:func:`project_cloud_shadow`) on this grid.
    dark, matched
        sen2core's shadow test (:func:`shadow_inputs`) and the zone of matched cloud
        heights (:func:`match_cloud_shadow`) on this grid; pixels in both are cloud
        shadow too. None: Sen2Cor's test only.
    resolution_m
        Pixel size (m).
    config
        Thresholds and switches.
    probability
        Calibrated cloud probability (:func:`calibrated_cloud_probability`), needed by
        the thin-cloud fix.
    sun_zenith, sun_azimuth, dem
        With a DEM (m): hillshade and slope for the DEM cleaning R4 (needs the sun angles).
    cast
        Terrain cast shadow on this grid (from the DEM), or None.
    water_bodies, land_cover
        ESA-CCI water bodies (2 = water) and land cover maps on this grid, or None.
    statistics
        Scene-wide thresholds for R7/R8 (:func:`statistics_from_sums`); with
        ``land_cover`` only.
    b10_leakage
        The scene's B10 leakage coefficient, for the bright-surface fix.

    Returns
    -------
    (scl, buffered)
        The SCL (uint8 codes 0-11) and the mask of pixels the cloud buffer turned
        into cloud.

    Notes
    -----
    Reach: :func:`finalize_reach`.
    """
    b, valid = _bands(bands)
    b2, b3, b4, b8a, b10, b11 = (b[k] for k in ("B02", "B03", "B04", "B8A", "B10", "B11"))
    cm = np.array(cm, dtype=np.uint8, copy=True)
    wb = None if water_bodies is None else np.asarray(water_bodies)
    lc = None if land_cover is None else np.asarray(land_cover)
    z = None if dem is None else np.asarray(dem, dtype=np.float64)

    # SHD: geometric x radiometric shadow. The projected zone minus the clouds
    # themselves, smoothed (Sen2Cor: Gaussian, sigma 3 px), times the radiometric test.
    csd2 = np.clip(np.asarray(projected, dtype=np.float32), 0.0, 1.0) - np.asarray(cloud, dtype=np.float32)
    csd2 = np.clip(csd2, 0.0, 1.0)
    if config.shadow_sigma_px > 0:
        csd2 = ndimage.gaussian_filter(csd2, config.shadow_sigma_px, mode="nearest", truncate=4.0)
    csd2[~valid] = 0.0
    shadow = np.asarray(csd1, dtype=np.float32) * csd2 > config.shadow_threshold
    if dark is not None and matched is not None:
        # sen2core: dark in the NIR and SWIR where a matched cloud casts its shadow.
        shadow |= np.asarray(dark, dtype=bool) & np.asarray(matched, dtype=bool)
    if config.relative_shadow:
        shadow |= relative_shadow(
            b, valid, np.asarray(cloud, dtype=bool), np.asarray(projected, dtype=bool), resolution_m, config
        )
    shadow &= np.isin(cm, (SCL.DARK_AREA_PIXELS, SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.WATER, LOW, NC))
    cm[shadow] = SCL.CLOUD_SHADOWS

    # R1: dark-vegetation recovery -- green in NIR/red or NIR/green.
    ndvi = _normalized_difference(b8a, b4)
    green = (ndvi > config.t2_ndvi) | (_ratio(b8a, b3) > config.t2_r_b8a_b03)
    cm[green & np.isin(cm, (SCL.DARK_AREA_PIXELS, LOW, NC))] = SCL.VEGETATION

    # R2: water recovery -- blue far above SWIR and NIR below red.
    watery = (_ratio(b2, b11) > config.t22_r_b02_b11) & (b8a < b4)
    cm[watery & (cm == SCL.DARK_AREA_PIXELS)] = SCL.WATER
    cm[watery & np.isin(cm, _UNCLASSIFIED) & (b8a < config.recovery_unclassified_b8a_max)] = SCL.WATER

    # R3: CCI water bodies.
    if wb is not None:
        cm[(wb == _WB_WATER) & np.isin(cm, (SCL.DARK_AREA_PIXELS, SCL.CLOUD_SHADOWS, LOW, NC))] = SCL.WATER

    # R4: DEM cleaning -- water on steep shaded slopes, and shadows that the terrain casts.
    if z is not None:
        if sun_zenith is None or sun_azimuth is None:
            raise ValueError("finalize: a DEM needs the sun angles")
        shade, slope = shadow_kernels.hillshade(z, sun_zenith, sun_azimuth, resolution_m)
        cm[(cm == SCL.WATER) & (shade < config.hillshade_water_max) & (slope > config.slope_water_min_deg)] = (
            SCL.DARK_AREA_PIXELS
        )
        cm[(cm == SCL.CLOUD_SHADOWS) & (shade > 0) & (shade < config.hillshade_shadow_max)] = SCL.DARK_AREA_PIXELS
        not_cci_water = np.ones(cm.shape, dtype=bool) if wb is None else wb != _WB_WATER
        shaded_snow = (
            (shade < config.hillshade_snow_max)
            & not_cci_water
            & ((b2 - b4) > config.water_b02_b04_diff)
            & (b8a < b4)
            & (b2 > config.water_b02_max)
        )
        cm[shaded_snow & np.isin(cm, (LOW, NC, SCL.CLOUD_MEDIUM_PROBABILITY))] = SCL.DARK_AREA_PIXELS
        if cast is not None:
            # Sen2Cor >= 2.10 (PB 04.00): terrain cast shadows are class 2.
            cm[np.asarray(cast, dtype=bool) & np.isin(cm, (SCL.DARK_AREA_PIXELS, SCL.CLOUD_SHADOWS, LOW, NC))] = (
                SCL.DARK_AREA_PIXELS
            )

    # R5: snow recovery next to snow.
    near_snow = morphology.dilate(cm == SCL.SNOW_ICE)
    cm[near_snow & (b11 < b3) & np.isin(cm, _UNCLASSIFIED)] = SCL.SNOW_ICE

    # R6: soil recovery among dark pixels.
    cm[(cm == SCL.DARK_AREA_PIXELS) & (_ratio(b2, b11) < config.recovery_soil_ratio)] = SCL.NOT_VEGETATED

    if lc is not None:
        land = (lc != _LC_WATER) & (lc != 0)
        if statistics is not None:
            # R7: land recovery -- "clouds" with little B10 signal and a land-like
            # water-vapour ratio B9/B8A are bright ground.
            if statistics.r7_enabled and "B09" in b:
                low_cloud = (
                    np.isin(cm, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY))
                    & (b10 < statistics.r7_b10_threshold)
                    & (_ratio(b["B09"], b8a) < statistics.r7_b9_b8a_threshold)
                    & land
                )
                cm[low_cloud] = SCL.NOT_VEGETATED
            # R8: cirrus recovery -- B10 above what clear land or water shows.
            cirrus = (
                land & np.isin(cm, (SCL.VEGETATION, SCL.NOT_VEGETATED)) & (b10 > statistics.r8_land_threshold)
            ) | ((cm == SCL.WATER) & (b10 > statistics.r8_water_threshold))
            if z is not None:
                cirrus &= z < config.cirrus_dem_max_m
            cm[cirrus] = SCL.THIN_CIRRUS
        # R9: urban and bare land -- unclassified is bare; isolated cloud blobs too.
        urban_bare = (lc == _LC_URBAN) | np.isin(lc, _LC_BARE)
        cm[urban_bare & np.isin(cm, _UNCLASSIFIED)] = SCL.NOT_VEGETATED
        _recover_bright_blobs(cm, urban_bare & (cm == SCL.CLOUD_MEDIUM_PROBABILITY), resolution_m, config)

    # Post: what no rule classified is UNCLASSIFIED; optional median filter.
    cm[cm == NC] = SCL.UNCLASSIFIED
    if config.median_filter > 1:
        cm = np.asarray(morphology.median_filter(cm, config.median_filter), dtype=np.uint8)
    cm[~valid] = SCL.NO_DATA

    # Beyond Sen2Cor.
    if config.bright_surface_fix:
        # Bright ground taken for cloud: a white cloud is at least as bright in the
        # blue as in the red at the top of the atmosphere (Rayleigh scattering adds
        # blue), and water and ice clouds absorb at 1.6 um (B11 below B8A). Sand, rock
        # and roofs are red and brighter in B11 than in B8A; without a B10 signal
        # nothing high lies above them.
        redness = _normalized_difference(b4, b2)
        high = cirrus_signal(b10, b11, b10_leakage)
        ground = (redness > config.bright_surface_min_redness) & (b11 > b8a) & (high < config.t1_b10)
        cm[ground & np.isin(cm, (SCL.CLOUD_MEDIUM_PROBABILITY, SCL.CLOUD_HIGH_PROBABILITY))] = SCL.NOT_VEGETATED
    if config.thin_cloud_fix and probability is not None:
        # Thin cloud that Sen2Cor's brightness test misses: the calibrated
        # probability sees it.
        p = np.nan_to_num(np.asarray(probability, dtype=np.float32), nan=0.0)
        thin = (p >= config.thin_cloud_probability) & np.isin(
            cm, (SCL.DARK_AREA_PIXELS, SCL.VEGETATION, SCL.NOT_VEGETATED, SCL.UNCLASSIFIED)
        )
        cm[thin] = SCL.CLOUD_MEDIUM_PROBABILITY
    if cloud_edge_growth_px(resolution_m, config):
        grow_cloud_edges(cm, b, valid, resolution_m, config)
    buffered = np.zeros(cm.shape, dtype=bool)
    if config.cloud_buffer_m > 0:
        grown = morphology.buffer_mask(np.isin(cm, config.cloud_buffer_classes), config.cloud_buffer_m / resolution_m)
        buffered = grown & valid & ~np.isin(cm, (SCL.NO_DATA, SCL.SATURATED_OR_DEFECTIVE, *_CLOUDY))
        cm[buffered] = SCL.CLOUD_MEDIUM_PROBABILITY
    return cm, buffered


# ------------------------------------------------------------------------- percentages


def class_counts(
    scl: ArrayLike, water_bodies: ArrayLike | None = None, buffered: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Pixel counts per class: a (3, 12) int64 table that adds up over chunks.

    Row 0: all pixels; row 1: pixels on CCI water bodies (zeros without the map);
    row 2: pixels the cloud buffer added (zeros without a buffer).
    """
    s = np.asarray(scl).ravel()
    out = np.zeros((3, 12), dtype=np.int64)
    out[0] = np.bincount(s, minlength=12)[:12]
    if water_bodies is not None:
        out[1] = np.bincount(s[np.asarray(water_bodies).ravel() == _WB_WATER], minlength=12)[:12]
    if buffered is not None:
        out[2] = np.bincount(s[np.asarray(buffered, dtype=bool).ravel()], minlength=12)[:12]
    return out


def class_percentages(counts: ArrayLike) -> dict[str, float]:
    """Sen2Cor's ``Image_Content_QI`` percentages from :func:`class_counts` totals.

    Class percentages are over pixels with data; ``NODATA_PIXEL_PERCENTAGE`` over all
    pixels. ``CLOUDY_PIXEL_PERCENTAGE`` = medium + high probability + thin cirrus.
    ``CLOUDY_PIXEL_OVER_LAND_PERCENTAGE``: cloudy pixels not on known water, over
    pixels with data that are not known water (SCL WATER, or CCI water bodies when
    given). ``CLOUD_BUFFER_PERCENTAGE`` (sen2core): pixels the buffer turned into cloud.
    """
    c = np.asarray(counts, dtype=np.int64)
    total = int(c[0].sum())
    valid = total - int(c[0, 0])
    pct: dict[str, float] = {"NODATA_PIXEL_PERCENTAGE": float(100.0 * c[0, 0] / total) if total else 0.0}

    def share(n: float, d: float) -> float:
        return float(100.0 * n / d) if d > 0 else 0.0

    for code, name in PERCENTAGE_NAMES.items():
        pct[name] = share(c[0, code], valid)
    cloudy = [int(SCL.CLOUD_MEDIUM_PROBABILITY), int(SCL.CLOUD_HIGH_PROBABILITY), int(SCL.THIN_CIRRUS)]
    pct["CLOUDY_PIXEL_PERCENTAGE"] = share(c[0, cloudy].sum(), valid)
    on_water_valid = int(c[1, 1:].sum())
    known_water = int(c[0, SCL.WATER]) + on_water_valid - int(c[1, SCL.WATER])
    land = valid - known_water
    pct["CLOUDY_PIXEL_OVER_LAND_PERCENTAGE"] = share(c[0, cloudy].sum() - c[1, cloudy].sum(), land)
    pct["CLOUD_BUFFER_PERCENTAGE"] = share(c[2].sum(), valid)
    return pct


# ------------------------------------------------------------------------- whole image


@dataclass(frozen=True)
class SceneClassificationArrays:
    """Scene classification of a whole image (numpy)."""

    scl: U8
    """Class codes 0-11."""
    cloud_probability: U8
    """``MSK_CLDPRB``: Sen2Cor's cloud confidence in percent."""
    snow_probability: U8
    """``MSK_SNWPRB``: Sen2Cor's snow confidence in percent."""
    calibrated_cloud_probability: F32
    """Calibrated probability of cloud, 0..1 (NaN without data)."""
    buffered: BoolArray
    """Pixels the cloud buffer turned into cloud."""


def sun_components(sun_zenith: ArrayLike, sun_azimuth: ArrayLike) -> tuple[F32, F32, F32]:
    """Sun zenith and the sine and cosine of the sun azimuth (float32, NaN as 0), for :func:`coarse_sun`."""
    sa = np.radians(np.nan_to_num(np.asarray(sun_azimuth, dtype=np.float64)))
    return (
        np.nan_to_num(np.asarray(sun_zenith, dtype=np.float32)),
        np.sin(sa).astype(np.float32),
        np.cos(sa).astype(np.float32),
    )


def coarse_sun(sun_zenith: ArrayLike, sin_az: ArrayLike, cos_az: ArrayLike, factor: int) -> tuple[F64, F64]:
    """Sun zenith and azimuth (degrees) on a ``factor`` times coarser grid.

    Azimuths are averaged as directions (through their sine and cosine).
    """
    sz = block_mean(np.asarray(sun_zenith, dtype=np.float32), factor).astype(np.float64)
    s = block_mean(np.asarray(sin_az, dtype=np.float32), factor).astype(np.float64)
    c = block_mean(np.asarray(cos_az, dtype=np.float32), factor).astype(np.float64)
    return sz, np.degrees(np.arctan2(s, c)) % 360.0


def snow_condition_mean(snow_condition: ArrayLike) -> float:
    """Mean of the non-water, valid pixels of a CCI snow-condition map (percent)."""
    snc = np.asarray(snow_condition, dtype=np.float64)
    ok = (snc <= 100) & np.isfinite(snc)
    return float(snc[ok].mean()) if ok.any() else math.nan


def scene_classification(
    bands: Mapping[str, ArrayLike],
    sun_zenith: ArrayLike,
    sun_azimuth: ArrayLike,
    view_zenith: ArrayLike | None,
    view_azimuth: ArrayLike | None,
    resolution_m: float,
    config: SceneClassificationConfig,
    *,
    dem: ArrayLike | None = None,
    quality_mask: ArrayLike | None = None,
    water_bodies: ArrayLike | None = None,
    land_cover: ArrayLike | None = None,
    snow_condition: ArrayLike | None = None,
    snow_possible: bool | None = None,
) -> SceneClassificationArrays:
    """The whole classification on whole arrays: every stage in order.

    Same parameters as :func:`sen2core.scl.classify`, as numpy arrays on one grid.
    This is the reference for the chunked computation: both call the same stage
    functions, so they agree exactly.
    """
    _, valid = _bands(bands)
    snc_mean = snow_condition_mean(snow_condition) if snow_condition is not None else None
    leakage = leakage_from_histogram(leakage_histogram(bands), config)
    cm, cmc, cms = classify_pixels(
        bands,
        config,
        dem=dem,
        quality_mask=quality_mask,
        snow_possible=snow_possible,
        snow_condition=snow_condition,
        snow_condition_mean=snc_mean,
        b10_leakage=leakage,
    )
    probability = calibrated_cloud_probability(bands, cm, cmc, leakage)
    csd1, cloud, dark = shadow_inputs(bands, cm, cmc, config)
    k = shadow_grid_factor(resolution_m, config)
    drow, dcol = shadow_displacement_field(sun_zenith, sun_azimuth, view_zenith, view_azimuth, config)
    projected_c = project_cloud_shadow(
        morphology.block_any(cloud, k), block_mean(drow, k), block_mean(dcol, k), resolution_m * k, config
    )
    projected = morphology.upsample_blocks(projected_c, k, cm.shape)
    matched = None
    if config.shadow_height_matching:
        m = match_grid_factor(resolution_m, config)
        zone_m = match_cloud_shadow(*match_counts(cloud, dark, drow, dcol, m), resolution_m * m, config)
        matched = morphology.upsample_blocks(zone_m, m, cm.shape)
    cast = None
    if dem is not None:
        sz, sin_az, cos_az = sun_components(sun_zenith, sun_azimuth)
        sz_c, sa_c = coarse_sun(sz, sin_az, cos_az, k)
        cast_c = shadow_kernels.cast_shadow(
            block_mean(np.asarray(dem, dtype=np.float32), k),
            sz_c,
            sa_c,
            resolution_m * k,
            config.terrain_shadow_max_distance_m,
        )
        cast = morphology.upsample_blocks(cast_c, k, cm.shape)
    statistics = None
    if land_cover is not None:
        sums = scene_statistics(bands, cm, hpc_blob_mask(cm, resolution_m, config), land_cover)
        statistics = statistics_from_sums(sums, resolution_m, config)
    scl, buffered = finalize(
        bands,
        cm,
        csd1,
        cloud,
        projected,
        resolution_m,
        config,
        dark=dark,
        matched=matched,
        probability=probability,
        sun_zenith=sun_zenith,
        sun_azimuth=sun_azimuth,
        dem=dem,
        cast=cast,
        water_bodies=water_bodies,
        land_cover=land_cover,
        statistics=statistics,
        b10_leakage=leakage,
    )
    return SceneClassificationArrays(
        scl=scl,
        cloud_probability=probability_to_uint8(cmc),
        snow_probability=probability_to_uint8(cms),
        calibrated_cloud_probability=np.where(valid, probability, np.float32(np.nan)).astype(np.float32),
        buffered=buffered,
    )

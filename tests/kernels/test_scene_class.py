"""Scene classification kernels, rule by rule, on small hand-made scenes.

The spectra below are typical top-of-atmosphere reflectances (B02 B03 B04 B05 B8A B10
B11 B12) of real surfaces at a mid-latitude summer sun, chosen from their physics,
not from the thresholds:

- B10 (1375 nm) sits in a water-vapour band that hides the ground: ~0 for every
  surface at low altitude, a few percent for clouds above the moist layer;
- Rayleigh path reflectance adds ~0.05 in B02, ~0.03 in B03, ~0.015 in B04 and little
  beyond, so dark targets have B02 > B03 > B04 at the top of the atmosphere.
"""

from __future__ import annotations

import numpy as np
import pytest

from sen2core.config import SceneClassificationConfig
from sen2core.errors import InputProductError
from sen2core.kernels import morphology, scene_class, shadow
from sen2core.kernels.scene_class import SCL

SPECTRA: dict[str, tuple[float, ...]] = {
    # Chlorophyll absorbs blue and red, leaf structure scatters NIR, leaf water absorbs SWIR.
    "vegetation": (0.07, 0.09, 0.05, 0.12, 0.35, 0.001, 0.18, 0.08),
    # Clear deep water: Rayleigh path in the blue, absorbing from the red on.
    "water": (0.09, 0.07, 0.04, 0.03, 0.015, 0.0005, 0.005, 0.003),
    # Thick water cloud: white in the visible and NIR, droplets absorb at 1.6 and 2.2 um,
    # the top sits above most water vapour so 1375 nm comes back.
    "cloud": (0.55, 0.53, 0.52, 0.52, 0.50, 0.05, 0.35, 0.22),
    # Fresh snow: whiter than cloud in the visible, ice absorbs strongly in the SWIR.
    "snow": (0.78, 0.76, 0.74, 0.72, 0.66, 0.002, 0.05, 0.04),
    # Bright desert sand: iron oxides make reflectance rise from blue to SWIR.
    "sand": (0.22, 0.28, 0.35, 0.38, 0.42, 0.002, 0.55, 0.45),
    # Dark soil / burnt ground: dark, slowly rising reflectance.
    "dark_soil": (0.07, 0.06, 0.06, 0.08, 0.10, 0.0005, 0.15, 0.12),
    # Vegetation in a cloud shadow: only diffuse sky light (~30 % in the blue, ~12 % in
    # the NIR, less in the SWIR) plus the path.
    "shadowed_vegetation": (0.065, 0.045, 0.025, 0.04, 0.055, 0.0005, 0.02, 0.01),
    # Sand in a cloud shadow: the diffuse sky light (~30 % of the irradiance in the blue,
    # ~12 % in the NIR, ~4 % in the SWIR) on a bright surface, plus the path.
    "shadowed_sand": (0.104, 0.081, 0.071, 0.067, 0.050, 0.001, 0.024, 0.014),
    # Vegetation under thin cirrus: +0.02-0.03 everywhere, and a B10 signal from the ice.
    "cirrus_over_vegetation": (0.10, 0.12, 0.08, 0.15, 0.37, 0.02, 0.20, 0.10),
    # Semi-transparent water cloud over vegetation.
    "thin_cloud": (0.20, 0.19, 0.17, 0.22, 0.38, 0.004, 0.24, 0.14),
}

SEN2COR = SceneClassificationConfig.sen2cor()


def scene(layout: np.ndarray, legend: dict[int, str]) -> dict[str, np.ndarray]:
    """Band arrays from an integer layout and a legend code -> spectrum name."""
    out = {b: np.zeros(layout.shape, dtype=np.float32) for b in scene_class.REQUIRED_BANDS}
    for code, name in legend.items():
        for band, value in zip(scene_class.REQUIRED_BANDS, SPECTRA[name], strict=True):
            out[band][layout == code] = value
    return out


def uniform(name: str, shape: tuple[int, int] = (6, 6)) -> dict[str, np.ndarray]:
    return scene(np.zeros(shape, dtype=int), {0: name})


def classify(
    bands: dict[str, np.ndarray], config: SceneClassificationConfig = SEN2COR, **kw: object
) -> scene_class.SceneClassificationArrays:
    shape = bands["B02"].shape
    sz, sa = np.full(shape, 40.0), np.full(shape, 150.0)
    return scene_class.scene_classification(bands, sz, sa, None, None, 20.0, config, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("surface", "expected"),
    [
        ("vegetation", SCL.VEGETATION),
        ("water", SCL.WATER),
        ("cloud", SCL.CLOUD_HIGH_PROBABILITY),
        ("snow", SCL.SNOW_ICE),
        ("sand", SCL.NOT_VEGETATED),
        ("cirrus_over_vegetation", SCL.THIN_CIRRUS),
    ],
)
def test_typical_surfaces(surface: str, expected: SCL) -> None:
    result = classify(uniform(surface))
    assert (result.scl == expected).all(), np.unique(result.scl)


def test_confidences_follow_the_classes() -> None:
    cloud = classify(uniform("cloud"))
    assert (cloud.cloud_probability >= 80).all() and (cloud.snow_probability == 0).all()
    snow = classify(uniform("snow"))
    assert (snow.snow_probability > 12).all() and (snow.cloud_probability == 0).all()
    veg = classify(uniform("vegetation"))
    assert (veg.cloud_probability == 0).all() and (veg.snow_probability == 0).all()


def test_step0_no_data_and_saturation() -> None:
    bands = uniform("vegetation")
    bands["B11"][0, 0] = np.nan  # one band missing is enough
    bands["B04"][1, 1] = (65535 - 1000) / 10000  # saturated DN 65535, PB >= 04.00
    quality = np.zeros((6, 6), dtype=bool)
    quality[2, 2] = True
    scl = classify(bands, quality_mask=quality).scl
    assert scl[0, 0] == SCL.NO_DATA
    assert scl[1, 1] == SCL.SATURATED_OR_DEFECTIVE
    assert scl[2, 2] == SCL.SATURATED_OR_DEFECTIVE
    assert (scl[3:] == SCL.VEGETATION).all()
    off = SEN2COR.replace(handle_l1c_quality_mask=False)
    assert classify(bands, off, quality_mask=quality).scl[2, 2] == SCL.VEGETATION


def test_step1_brightness_and_dark_features() -> None:
    cm, cmc, _ = scene_class.classify_pixels(uniform("dark_soil"), SEN2COR)
    # B4 0.06 is at T1_B04: no cloud confidence; dark in red with some NIR: dark feature.
    assert (cm == SCL.DARK_AREA_PIXELS).all() and (cmc == 0).all()
    # Brightness ramp, squared: B4 halfway between T1 and T2 gives 0.25.
    half = SEN2COR.t1_b04 + 0.5 * (SEN2COR.t2_b04 - SEN2COR.t1_b04)
    assert scene_class.ramp(np.float32(half), SEN2COR.t1_b04, SEN2COR.t2_b04) ** 2 == pytest.approx(0.25, abs=1e-6)


def test_step1_2_ndsi_filter_clears_soil() -> None:
    # Sand: B11 much brighter than B3 (NDSI -0.33 < T1_NDSI_CLD): no cloud confidence left.
    _, cmc, _ = scene_class.classify_pixels(uniform("sand"), SEN2COR)
    assert (cmc == 0).all()


def test_step2_snow_chain_and_climatology() -> None:
    snow = uniform("snow")
    assert (classify(snow, snow_possible=False).scl != SCL.SNOW_ICE).all()
    # Snow in shadow is dark in the NIR: the B8A ramp removes the snow confidence.
    dim = uniform("snow")
    dim["B8A"][:] = 0.12
    _, _, cms = scene_class.classify_pixels(dim, SEN2COR)
    assert (cms == 0).all()


def test_step2_5_snow_ring_clears_cloud_confidence() -> None:
    layout = np.zeros((9, 9), dtype=int)
    layout[3:6, 3:6] = 1
    bands = scene(layout, {0: "thin_cloud", 1: "snow"})
    cm, cmc, _ = scene_class.classify_pixels(bands, SEN2COR)
    ring = morphology.dilate(layout == 1, 3) & (layout == 0)
    assert (cm[layout == 1] == SCL.SNOW_ICE).all()
    assert (cmc[ring] == 0).all()  # B12 0.14 < T1_B12 next to snow
    assert (cmc[~morphology.dilate(layout == 1, 3)] > 0).all()


def test_step3_ndvi_lowers_cloud_confidence_of_green_haze() -> None:
    _, cmc, _ = scene_class.classify_pixels(uniform("thin_cloud"), SEN2COR)
    b = SPECTRA["thin_cloud"]
    ndvi = (b[4] - b[2]) / (b[4] + b[2])
    assert SEN2COR.t1_ndvi < ndvi < SEN2COR.t2_ndvi
    brightness = scene_class.ramp(np.float32(b[2]), SEN2COR.t1_b04, SEN2COR.t2_b04) ** 2
    r = (ndvi - SEN2COR.t1_ndvi) / (SEN2COR.t2_ndvi - SEN2COR.t1_ndvi)
    assert cmc[0, 0] <= brightness * (1 - r) + 1e-6


def test_step5_water_by_blue_minus_red() -> None:
    # Turbid water with sediments: brighter in the red, still NIR < red and B2 - B4 > 0.034.
    bands = uniform("water")
    bands["B04"][:] = 0.05
    bands["B11"][:] = 0.03  # B2/B11 = 3: the ratio test alone would not say water
    assert (scene_class.classify_pixels(bands, SEN2COR)[0] == SCL.WATER).all()


def test_step7_cloud_probability_classes() -> None:
    medium = uniform("cloud")
    for band, value in zip(scene_class.REQUIRED_BANDS, (0.20, 0.19, 0.17, 0.18, 0.20, 0.003, 0.15, 0.10), strict=True):
        medium[band][:] = value  # a grey, optically thin cloud over bare ground
    cm, cmc, _ = scene_class.classify_pixels(medium, SEN2COR)
    assert SEN2COR.t_cloud_mp <= cmc[0, 0] < SEN2COR.t_cloud_hp
    assert (cm == SCL.CLOUD_MEDIUM_PROBABILITY).all()
    faint = medium.copy()
    faint["B04"] = np.full((6, 6), 0.10, dtype=np.float32)
    cm, cmc, _ = scene_class.classify_pixels(faint, SEN2COR)
    assert 0 < cmc[0, 0] < SEN2COR.t_cloud_mp and (cm == scene_class.LOW).all()


def test_step7_cirrus() -> None:
    thick = uniform("cirrus_over_vegetation")
    thick["B10"][:] = 0.06
    assert (scene_class.classify_pixels(thick, SEN2COR)[0] == SCL.CLOUD_MEDIUM_PROBABILITY).all()
    # With a DEM, high ground (B10 sees it through the dry air) is not thin cirrus.
    bands = uniform("cirrus_over_vegetation")
    dem = np.full((6, 6), 2500.0)
    assert (scene_class.classify_pixels(bands, SEN2COR, dem=dem)[0] == SCL.VEGETATION).all()


def test_recoveries() -> None:
    layout = np.arange(4).repeat(9).reshape(6, 6)
    bands = scene(layout, {0: "vegetation", 1: "vegetation", 2: "vegetation", 3: "vegetation"})
    # R1: dense dark forest, dark in red and NIR (dark feature) but NDVI 0.6.
    for band, value in zip(scene_class.REQUIRED_BANDS, (0.05, 0.05, 0.03, 0.06, 0.12, 0.0, 0.06, 0.03), strict=True):
        bands[band][layout == 0] = value
    # R2: shallow turbid water, NIR above 0.04 (a dark feature first), B2/B11 = 5.
    for band, value in zip(scene_class.REQUIRED_BANDS, (0.10, 0.09, 0.09, 0.07, 0.06, 0.0, 0.02, 0.01), strict=True):
        bands[band][layout == 1] = value
    # R6: dark moist soil: dark feature first, then B2/B11 < 0.65.
    for band, value in zip(scene_class.REQUIRED_BANDS, SPECTRA["dark_soil"], strict=True):
        bands[band][layout == 2] = value
    cm = scene_class.classify_pixels(bands, SEN2COR)[0]
    assert (cm[layout < 3] == SCL.DARK_AREA_PIXELS).all()
    scl = classify(bands).scl
    assert (scl[layout == 0] == SCL.VEGETATION).all()
    assert (scl[layout == 1] == SCL.WATER).all()
    assert (scl[layout == 2] == SCL.NOT_VEGETATED).all()


def test_r5_snow_recovery() -> None:
    layout = np.zeros((7, 9), dtype=int)
    layout[:, :3] = 1
    bands = scene(layout, {0: "vegetation", 1: "snow"})
    # Patchy snow over soil at the edge of a snow field: bright and flat in the
    # visible-NIR, NDSI 0.36 (snow confidence below T1_SNOW), ice still darkens B11.
    patchy = (0.30, 0.30, 0.29, 0.28, 0.30, 0.0, 0.14, 0.12)
    for band, value in zip(scene_class.REQUIRED_BANDS, patchy, strict=True):
        bands[band][:, 3] = value
        bands[band][:, 8] = value
    scl = classify(bands).scl
    # Next to snow: the snow ring clears its cloud confidence, then R5 recovers it.
    assert (scl[:, 3] == SCL.SNOW_ICE).all()
    # Far from snow the same pixel is bright and white: cloud for Sen2Cor's rules.
    assert (scl[:, 8] == SCL.CLOUD_HIGH_PROBABILITY).all()


def shadow_scene(
    sun_zenith: float,
    sun_azimuth: float,
    height_m: float,
    *,
    offset_sign: float = 1.0,
    ground: str = "vegetation",
    shade: str = "shadowed_vegetation",
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Ground with a square cloud and the shadow where a cloud at ``height_m`` casts it."""
    n, res = 160, 20.0
    layout = np.zeros((n, n), dtype=int)
    layout[70:90, 70:90] = 1
    drow, dcol = shadow.shadow_displacement(sun_zenith, sun_azimuth)
    dr = int(round(offset_sign * float(drow) * height_m / res))
    dc = int(round(offset_sign * float(dcol) * height_m / res))
    mask = np.zeros((n, n), dtype=bool)
    assert 0 <= 70 + dr and 90 + dr <= n and 0 <= 70 + dc and 90 + dc <= n
    mask[70 + dr : 90 + dr, 70 + dc : 90 + dc] = True
    mask &= layout == 0
    layout[mask] = 2
    return scene(layout, {0: ground, 1: "cloud", 2: shade}), layout, mask


def test_cloud_shadow_projection() -> None:
    bands, layout, shade = shadow_scene(50.0, 150.0, 1000.0)
    n = layout.shape[0]
    result = scene_class.scene_classification(
        bands, np.full((n, n), 50.0), np.full((n, n), 150.0), None, None, 20.0, SEN2COR
    )
    found = result.scl == SCL.CLOUD_SHADOWS
    assert found[shade].mean() > 0.95
    assert not found[layout == 0].any()
    # The same dark patch on the sunny side of the cloud is not a cloud shadow.
    bands, layout, shade = shadow_scene(50.0, 150.0, 1000.0, offset_sign=-1.0)
    result = scene_class.scene_classification(
        bands, np.full((n, n), 50.0), np.full((n, n), 150.0), None, None, 20.0, SEN2COR
    )
    assert not (result.scl[shade] == SCL.CLOUD_SHADOWS).any()


def test_matched_shadow_finds_what_sen2cor_misses() -> None:
    # Shadow on bright sand: not dark in the visible, so Sen2Cor's six-band test fails;
    # dark in the NIR and SWIR where a matched cloud casts it, so sen2core finds it.
    bands, layout, mask = shadow_scene(45.0, 150.0, 1200.0, ground="sand", shade="shadowed_sand")
    n = layout.shape[0]
    angles = (np.full((n, n), 45.0), np.full((n, n), 150.0), None, None)
    sen2cor = scene_class.scene_classification(bands, *angles, 20.0, SEN2COR)
    ours = scene_class.scene_classification(bands, *angles, 20.0, SceneClassificationConfig())
    assert (sen2cor.scl[mask] == SCL.CLOUD_SHADOWS).mean() < 0.05
    assert (ours.scl[mask] == SCL.CLOUD_SHADOWS).mean() > 0.95
    assert not (ours.scl[layout == 0] == SCL.CLOUD_SHADOWS).any()


def test_matched_zone_leaves_distant_water_alone() -> None:
    # A lake on the sunny side of the cloud is as dark as the shadow in the NIR and SWIR;
    # the geometric zone of the matched cloud height does not reach it.
    bands, layout, mask = shadow_scene(45.0, 150.0, 1200.0)
    lake = np.zeros_like(mask)
    lake[100:140, 100:140] = True
    for band, value in zip(scene_class.REQUIRED_BANDS, SPECTRA["water"], strict=True):
        bands[band][lake] = value
    n = layout.shape[0]
    ours = scene_class.scene_classification(
        bands, np.full((n, n), 45.0), np.full((n, n), 150.0), None, None, 20.0, SceneClassificationConfig()
    )
    assert (ours.scl[lake] == SCL.WATER).all()
    assert (ours.scl[mask] == SCL.CLOUD_SHADOWS).mean() > 0.95


def test_box_sum_is_exact() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 1000, size=(23, 17))
    out = shadow.box_sum(a, 5)
    padded = np.pad(a, 2)
    brute = np.array([[padded[i : i + 5, j : j + 5].sum() for j in range(17)] for i in range(23)])
    np.testing.assert_array_equal(out, brute)


def test_b10_leakage_of_bright_ground() -> None:
    # Dry air: bright sand leaks 5 % of its SWIR brightness into B10 (0.0275 here).
    bands = uniform("sand", (60, 60))
    bands["B10"][:] = 0.05 * bands["B11"]
    leakage = scene_class.leakage_from_histogram(scene_class.leakage_histogram(bands), SceneClassificationConfig())
    assert leakage == pytest.approx(0.05, abs=0.001)
    assert (classify(bands).scl == SCL.THIN_CIRRUS).all()  # Sen2Cor's raw-B10 test
    # Real cirrus over part of it still shows: +0.02 in B10, a little in the visible.
    bands["B10"][:20] += 0.02
    for band in ("B02", "B03", "B04"):
        bands[band][:20] += 0.02
    scl = classify(bands, SceneClassificationConfig()).scl
    assert (scl[25:] == SCL.NOT_VEGETATED).all()
    assert np.isin(scl[:18], (SCL.THIN_CIRRUS, SCL.CLOUD_MEDIUM_PROBABILITY)).all()


def test_calibrated_probability() -> None:
    layout = np.zeros((20, 20), dtype=int)
    layout[:, 10:] = 1
    bands = scene(layout, {0: "vegetation", 1: "cloud"})
    cm, cmc, _ = scene_class.classify_pixels(bands, SEN2COR)
    p = scene_class.calibrated_cloud_probability(bands, cm, cmc)
    assert p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()
    # Clear vegetation 0.07 since the fit on physical clouds, whose truth counts faint edges
    # (cover from 0.2) as cloud (0.0005 before).
    assert (p[layout == 0] < 0.1).all() and (p[layout == 1] > 0.95).all()
    assert len(scene_class.CLOUD_PROBABILITY_MODEL.coefficients) == len(scene_class.FEATURES)


def test_shadow_displacement_geometry() -> None:
    # Sun in the south-east at 45 degrees: the shadow of a cloud 1 m up falls 1 m to the north-west.
    drow, dcol = shadow.shadow_displacement(45.0, 135.0)
    assert (float(drow), float(dcol)) == pytest.approx((-np.sqrt(0.5), -np.sqrt(0.5)))
    # The satellite in the east at 10 degrees: the cloud appears displaced westwards,
    # so its shadow is tan(10 deg) further east of where the cloud is seen.
    drow_v, dcol_v = shadow.shadow_displacement(45.0, 135.0, 10.0, 90.0)
    assert float(dcol_v - dcol) == pytest.approx(np.tan(np.radians(10.0)))
    assert float(drow_v - drow) == pytest.approx(0.0, abs=1e-12)


def test_project_mask_covers_the_height_range() -> None:
    mask = np.zeros((80, 80), dtype=bool)
    mask[40, 40] = True
    drow, dcol = np.zeros((80, 80)), np.full((80, 80), 1.0)  # 1 m east per m of height
    out = shadow.project_mask(mask, drow, dcol, 200.0, 600.0, 20.0, max_displacement=1.0)
    cols = np.nonzero(out[40])[0]
    assert cols.min() == 50 and cols.max() == 70 and out.sum() == 21


def test_terrain_dem_steps() -> None:
    n = 60
    bands = uniform("vegetation", (n, n))
    for band, value in zip(scene_class.REQUIRED_BANDS, SPECTRA["shadowed_vegetation"], strict=True):
        bands[band][:, :30] = value
    # A north-south ridge east of the dark strip, the sun low in the south-east.
    cols = np.arange(n, dtype=np.float64)
    dem = np.tile(np.where(cols < 35, 0.0, (cols - 35) * 150.0), (n, 1))
    dem[:, 45:] = dem[:, 44:45]
    sz, sa = np.full((n, n), 75.0), np.full((n, n), 100.0)
    result = scene_class.scene_classification(bands, sz, sa, None, None, 20.0, SEN2COR, dem=dem)
    # The dark strip west of the ridge lies in its cast shadow: DARK_AREA (cast shadow).
    assert (result.scl[:, 20:30] == SCL.DARK_AREA_PIXELS).all()
    no_dem = scene_class.scene_classification(bands, sz, sa, None, None, 20.0, SEN2COR)
    assert (no_dem.scl[:, 20:30] == SCL.DARK_AREA_PIXELS).all()  # still dark, but not from the DEM
    # Water on a steep shaded slope is a dark area (R4).
    water = uniform("water", (n, n))
    slope = np.tile(cols * 20.0, (n, 1))  # 45 degrees, facing west, the sun in the east
    shaded = scene_class.scene_classification(
        water, np.full((n, n), 60.0), np.full((n, n), 100.0), None, None, 20.0, SEN2COR, dem=slope
    )
    assert (shaded.scl[5:-5, 5:-5] == SCL.DARK_AREA_PIXELS).all()


def test_auxiliary_maps() -> None:
    n = 40
    layout = np.zeros((n, n), dtype=int)
    layout[:, 20:] = 1
    bands = scene(layout, {0: "vegetation", 1: "dark_soil"})
    bands["B11"][layout == 1] = 0.05  # B2/B11 1.4: R6 leaves it dark
    water_bodies = np.where(layout == 1, 2, 1).astype(np.uint8)
    assert (classify(bands).scl[layout == 1] == SCL.DARK_AREA_PIXELS).all()
    assert (classify(bands, water_bodies=water_bodies).scl[layout == 1] == SCL.WATER).all()  # R3


def test_land_cover_recoveries() -> None:
    n = 60
    layout = np.zeros((n, n), dtype=int)
    layout[10:14, 10:14] = 2  # a small bright roof taken for cloud
    layout[30:58, 2:58] = 1  # a large real cloud
    bands = scene(layout, {0: "sand", 1: "cloud", 2: "sand"})
    # Grey concrete: flat spectrum, B4 0.19 gives a medium cloud confidence.
    for band, value in zip(scene_class.REQUIRED_BANDS, (0.20, 0.20, 0.19, 0.20, 0.22, 0.0, 0.19, 0.17), strict=True):
        bands[band][layout == 2] = value
    land_cover = np.full((n, n), 200, dtype=np.uint16)  # bare land
    land_cover[10:14, 10:14] = 190  # urban
    config = SEN2COR.replace(r9_max_blob_m=200.0)
    scl = classify(bands, config, land_cover=land_cover).scl
    assert (scl[10:14, 10:14] == SCL.NOT_VEGETATED).all()  # R7 (no B09) skipped; R9 blob with a clear ring
    assert (scl[32:56, 4:56] == SCL.CLOUD_HIGH_PROBABILITY).all()
    assert (classify(bands, config).scl[10:14, 10:14] == SCL.CLOUD_MEDIUM_PROBABILITY).all()


def test_statistics_from_sums() -> None:
    layout = np.zeros((30, 30), dtype=int)
    layout[:10] = 1
    bands = scene(layout, {0: "sand", 1: "water"})
    cm = scene_class.classify_pixels(bands, SEN2COR)[0]
    land_cover = np.where(layout == 1, 210, 200).astype(np.uint16)
    sums = scene_class.scene_statistics(bands, cm, np.zeros((30, 30), bool), land_cover)
    assert sums.shape == (scene_class.N_STATISTICS,)
    stats = scene_class.statistics_from_sums(sums, 20.0, SEN2COR)
    assert stats.r8_land_threshold == pytest.approx(max(0.002, SEN2COR.r8_land_floor))
    assert stats.r8_water_threshold == pytest.approx(max(0.0005, SEN2COR.r8_water_floor))
    assert not stats.r7_enabled  # 0.4 km2 of land is far below 121 km2


def test_median_filter_and_buffer() -> None:
    layout = np.zeros((30, 30), dtype=int)
    layout[10:20, 10:20] = 1
    layout[3, 3] = 1  # an isolated cloudy pixel
    bands = scene(layout, {0: "vegetation", 1: "cloud"})
    filtered = classify(bands, SEN2COR.replace(median_filter=3)).scl
    assert filtered[3, 3] == SCL.VEGETATION
    buffered = classify(bands, SEN2COR.replace(cloud_buffer_m=40.0))
    grown = morphology.buffer_mask(layout == 1, 2.0)
    assert (
        buffered.scl[grown] == np.where(layout == 1, SCL.CLOUD_HIGH_PROBABILITY, SCL.CLOUD_MEDIUM_PROBABILITY)[grown]
    ).all()
    assert (buffered.buffered == (grown & (layout == 0))).all()
    assert (buffered.scl[~grown] == SCL.VEGETATION).all()


def test_bright_surface_fix() -> None:
    # Very bright salt-crusted sand: B2 above every soil/rock B2 line, so Sen2Cor keeps
    # its high brightness confidence; it is red and brighter in B11 than in B8A.
    bands = uniform("sand")
    for band, value in zip(scene_class.REQUIRED_BANDS, (0.36, 0.42, 0.48, 0.50, 0.52, 0.004, 0.60, 0.50), strict=True):
        bands[band][:] = value
    assert np.isin(classify(bands).scl, scene_class.CLOUDY_CODES).all()
    fixed = SEN2COR.replace(bright_surface_fix=True)
    assert (classify(bands, fixed).scl == SCL.NOT_VEGETATED).all()
    # A white cloud stays a cloud.
    assert (classify(uniform("cloud"), fixed).scl == SCL.CLOUD_HIGH_PROBABILITY).all()


def test_60m_scl_as_sen2cor() -> None:
    scl = np.full((9, 9), SCL.VEGETATION, dtype=np.uint8)
    scl[4, 4] = SCL.WATER  # a lone pixel at a block centre disappears in the median
    scl[0:3, 0:3] = SCL.CLOUD_HIGH_PROBABILITY
    out = morphology.downsample_classes(scl)
    assert out.shape == (3, 3)
    assert out[0, 0] == SCL.CLOUD_HIGH_PROBABILITY and out[1, 1] == SCL.VEGETATION
    assert morphology.downsample_classes(np.zeros((10, 10), np.uint8)).shape == (4, 4)


def test_percentages() -> None:
    scl = np.array([[0, 0, 4, 4, 4], [8, 9, 10, 6, 6], [3, 11, 5, 7, 2]], dtype=np.uint8)
    water_bodies = np.zeros_like(scl)
    water_bodies[1, 0] = 2  # a cloud over a lake
    pct = scene_class.class_percentages(scene_class.class_counts(scl, water_bodies))
    assert pct["NODATA_PIXEL_PERCENTAGE"] == pytest.approx(100 * 2 / 15)
    assert pct["VEGETATION_PERCENTAGE"] == pytest.approx(100 * 3 / 13)
    assert pct["CLOUDY_PIXEL_PERCENTAGE"] == pytest.approx(100 * 3 / 13)
    # Land: 13 valid - 2 SCL water - 1 CCI water = 10 pixels, 2 cloudy ones.
    assert pct["CLOUDY_PIXEL_OVER_LAND_PERCENTAGE"] == pytest.approx(20.0)
    assert pct["CLOUD_SHADOW_PERCENTAGE"] == pytest.approx(100 / 13)
    assert pct["SNOW_ICE_PERCENTAGE"] == pytest.approx(100 / 13)
    assert sum(v for k, v in pct.items() if k in scene_class.PERCENTAGE_NAMES.values()) == pytest.approx(100.0)


def test_probability_encoding() -> None:
    assert scene_class.probability_to_uint8(np.array([0.0, 0.004, 0.005, 0.5, 1.0, np.nan])).tolist() == [
        0,
        0,
        1,
        50,
        100,
        0,
    ]


def test_missing_band_is_an_input_error() -> None:
    bands = uniform("vegetation")
    del bands["B10"]
    with pytest.raises(InputProductError, match="B10"):
        scene_class.classify_pixels(bands, SEN2COR)


def test_leakage_histogram_has_a_fixed_length_whatever_the_ratios() -> None:
    """B10/B11 at or above the top of the histogram (float32) lands in the last bin, not a new one:
    chunks of one scene must give histograms of one length to be added up."""
    from sen2core.kernels import scene_class

    n = 50
    b11 = np.full(n, 0.3, dtype=np.float32)
    bands = {b: np.full(n, 0.3, dtype=np.float32) for b in scene_class.REQUIRED_BANDS}
    bands |= {"B03": np.full(n, 0.2, dtype=np.float32), "B11": b11,
              "B10": (b11 * np.linspace(0.0, 0.5, n)).astype(np.float32)}  # fmt: skip
    hist = scene_class.leakage_histogram(bands)
    assert hist.shape == (scene_class.LEAKAGE_BINS,) and hist.sum() == n and hist[-1] > 0


def test_legend_is_the_one_table_of_codes_names_and_colours() -> None:
    """Every SCL code, its names, Sen2Cor text, colour and percentage come from one table, and
    the modules that filter on codes (the atmospheric correction, the DDV search) use it."""
    from sen2core import correction
    from sen2core.kernels import aot
    from sen2core.kernels.scene_class.legend import PERCENTAGE_NAMES, SCL_BY_VALUE, SCL_CLASSES

    assert [c.value for c in SCL_CLASSES] == list(range(12)) == [int(code) for code in SCL]
    assert [c.name for c in SCL_CLASSES] == [code.name.lower() for code in SCL]
    assert SCL_BY_VALUE[4].sen2cor_text == "SC_VEGETATION" and SCL_BY_VALUE[4].color_hint == "00A000"
    assert SCL_BY_VALUE[9].rgb == (255, 255, 255) and SCL_BY_VALUE[3].color_hint == "643200"
    assert SCL_BY_VALUE[0].percentage_name is None
    assert {c.value: c.percentage_name for c in SCL_CLASSES if c.percentage_name} == dict(PERCENTAGE_NAMES)
    assert len({c.rgb for c in SCL_CLASSES}) == 12
    codes = (correction.NODATA, correction.SHADOW, correction.VEGETATION, correction.NOT_VEGETATED, correction.WATER,
             correction.CLOUD_MEDIUM, correction.CLOUD_HIGH, correction.THIN_CIRRUS, correction.SNOW)  # fmt: skip
    assert codes == (0, 3, 4, 5, 6, 8, 9, 10, 11)
    assert not hasattr(correction, "SATURATED") and not hasattr(aot, "VEGETATION")


def test_kernels_read_the_configuration_through_their_protocol() -> None:
    """The kernels sit below sen2core.config (issue #17): they import nothing from it and read only the
    settings their protocol names, each a field of SceneClassificationConfig with the same type."""
    import ast
    import dataclasses
    import re
    from pathlib import Path

    from sen2core.kernels.scene_class.parameters import ClassificationParameters

    members = {
        n: v.fget.__annotations__["return"]
        for n, v in vars(ClassificationParameters).items()
        if isinstance(v, property) and v.fget is not None
    }
    fields = {f.name: f.type for f in dataclasses.fields(SceneClassificationConfig)}
    assert len(members) > 100 and all(fields[n] == t for n, t in members.items())
    root = Path(scene_class.__file__).parent
    read: set[str] = set()
    for path in root.parent.rglob("*.py"):
        text = path.read_text()
        modules = [n.module for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) and n.module]
        assert not [m for m in modules if m.startswith("sen2core.config")], path
        read |= set(re.findall(r"\bconfig\.([a-z_0-9]+)", text)) if path.parent == root else set()
    assert read == set(members)

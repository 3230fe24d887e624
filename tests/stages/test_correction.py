"""Atmospheric correction on dask arrays against a scene with known truth.

The scene is made here with the same forward model the correction inverts
(6S LUT + adjacency background), so the test isolates the retrieval logic:
DDV aerosol, APDA vapour, the negative-reflectance check and the inversion.
"""

from __future__ import annotations

import dataclasses

import dask
import dask.array as da
import numpy as np
import pytest

from sen2core.atmosphere.lut import load_lut
from sen2core.correction import AtmosphericCorrection, CorrectionConfig, Scene
from sen2core.kernels import adjacency, rt
from sen2core.kernels.lut import relative_azimuth

BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
# Typical spectra (surface reflectance): a dense conifer forest (red = 0.5 x B12, the DDV
# premise, so that the test isolates the retrieval), dry bare soil, clear water.
FOREST = dict(zip(BANDS, (0.012, 0.015, 0.035, 0.0225, 0.06, 0.18, 0.24, 0.27, 0.28, 0.27, 0.12, 0.045), strict=False))
SOIL = dict(zip(BANDS, (0.07, 0.09, 0.13, 0.17, 0.20, 0.22, 0.24, 0.26, 0.27, 0.27, 0.34, 0.28), strict=False))
WATER = dict(zip(BANDS, (0.05, 0.05, 0.04, 0.02, 0.012, 0.006, 0.005, 0.004, 0.004, 0.003, 0.002, 0.001), strict=False))
N, RES = 240, 20.0
SZA, SAA, VZA, VAA = 41.0, 155.0, 6.0, 105.0


def _scene(true_aot: float, true_wv: float, soil_only: bool = False):
    rng = np.random.default_rng(int(true_aot * 1000 + true_wv * 10))
    y, x = np.mgrid[0:N, 0:N]
    cover = np.where((x // 40 + y // 40) % 3 == 0, 5, 4)  # checkerboard of soil and forest
    cover[:, -30:] = 6  # a lake strip
    if soil_only:
        cover[cover == 4] = 5
    aot = true_aot * (1.0 + 0.15 * np.sin(x / 70.0) * np.cos(y / 90.0))
    wv = true_wv * (1.0 + 0.1 * np.cos(x / 60.0))
    elev = 0.2 + 0.3 * y / N
    lut = load_lut()
    raa = float(relative_azimuth(SAA, VAA))
    size = adjacency.window_pixels(1.0, RES)
    toa, surf = {}, {}
    for b in BANDS:
        lib = {4: FOREST, 5: SOIL, 6: WATER}
        rho = np.choose(np.searchsorted([4, 5, 6], cover), [lib[4][b], lib[5][b], lib[6][b]]).astype(float)
        rho = rho * (1.0 + 0.05 * rng.standard_normal(rho.shape))
        surf[b] = rho
        t = lut.terms("S2A", b, "continental", SZA, VZA, raa, aot, elev, wv, 0.331)
        e = rt.irradiance_factor(t, np.cos(np.radians(SZA)))
        toa[b] = rt.toa_from_surface(rho, adjacency.box_mean(rho, size), t, e)
    chunks = (120, 120)

    def arr(a):
        return da.from_array(np.asarray(a, dtype=np.float32), chunks=chunks)

    full = lambda v: arr(np.full((N, N), v))  # noqa: E731
    scene = Scene(
        toa={b: arr(v) for b, v in toa.items()}, sun_zenith=full(SZA), sun_azimuth=full(SAA),
        view_zenith={b: full(VZA) for b in BANDS}, view_azimuth={b: full(VAA) for b in BANDS},
        elevation_km=arr(elev), resolution_m=RES, spacecraft="S2A",
    )  # fmt: skip
    return scene, da.from_array(cover.astype(np.uint8), chunks=chunks), surf, aot, wv, cover


@pytest.mark.slow
@pytest.mark.parametrize("true_aot,true_wv", [(0.08, 0.8), (0.3, 2.0), (0.5, 3.5)])
def test_retrieval_and_boa_against_truth(true_aot: float, true_wv: float) -> None:
    scene, scl, surf, aot, wv, cover = _scene(true_aot, true_wv)
    ac = AtmosphericCorrection(CorrectionConfig())
    with dask.config.set(scheduler="threads"):
        atm = ac.retrieve(scene, scl)
        boa = dict(zip(BANDS, dask.compute(*ac.correct(scene, atm, scl, BANDS).values()), strict=False))
        aot_map, wv_map = dask.compute(atm.aot, atm.water_vapour)
    s = atm.summary
    print(s)
    assert s["AOT_RETRIEVAL_METHOD"] == "SEN2COR_DDV"
    assert abs(s["GRANULE_MEAN_AOT"] - aot.mean()) <= max(0.03, 0.15 * aot.mean())
    land = cover != 6
    assert abs(np.nanmean(wv_map[land]) - wv[land].mean()) <= 0.1 * wv[land].mean()
    assert abs(s["GRANULE_MEAN_WV"] - wv[land].mean()) <= 0.1 * wv[land].mean()
    rmse = {b: float(np.sqrt(np.mean((boa[b][land] - surf[b][land]) ** 2))) for b in BANDS}
    print("BOA RMSE over land: " + ", ".join(f"{b} {v:.4f}" for b, v in rmse.items()))
    # The limits: B02-B8A 0.01, B11-B12 0.015. B01 and B09 (aerosol and vapour
    # bands) carry the retrieval errors and get a looser 0.02.
    for b, v in rmse.items():
        limit = 0.015 if b in ("B11", "B12") else 0.02 if b in ("B01", "B09") else 0.01
        assert v <= limit, (b, v)


@pytest.mark.slow
def test_aot_does_not_depend_on_the_water_vapour_column() -> None:
    """The DDV AOT uses each pixel's own (APDA) column, not a fixed 1 cm (issue #15 item 2).

    Same scene at AOT 0.2 and 0.5 to 4.5 cm of water vapour. With the fixed column the
    error grew from -0.002 (0.5 cm) to +0.010 (4.5 cm); with the pixels' own column it
    stays within 0.0002 of the 1 cm scene's. Limit: 0.005.
    """
    errors = {}
    for wv in (0.5, 1.0, 2.0, 4.5):
        scene, scl, _, aot, _, _ = _scene(0.2, wv)
        with dask.config.set(scheduler="threads"):
            atm = AtmosphericCorrection(CorrectionConfig()).retrieve(scene, scl)
        assert atm.summary["AOT_RETRIEVAL_METHOD"] == "SEN2COR_DDV"
        errors[wv] = atm.summary["GRANULE_MEAN_AOT"] - float(aot.mean())
    print("AOT error by column: " + ", ".join(f"{w} cm {e:+.4f}" for w, e in errors.items()))
    for wv, err in errors.items():
        assert abs(err - errors[1.0]) <= 0.005, (wv, err, errors[1.0])


def test_no_vegetation_falls_back_to_default_aot() -> None:
    scene, scl, *_ = _scene(0.3, 2.0, soil_only=True)
    cfg = CorrectionConfig()
    with dask.config.set(scheduler="threads"):
        atm = AtmosphericCorrection(cfg).retrieve(scene, scl)
        aot_map = atm.aot.compute()
    assert atm.summary["AOT_RETRIEVAL_METHOD"] == "DEFAULT"
    assert np.allclose(aot_map, cfg.default_aot)


def test_config_rejects_unknown_aerosol() -> None:
    from sen2core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="aerosol"):
        CorrectionConfig(aerosol="desert")


@pytest.mark.slow
def test_cams_prior_weight_blends_the_forecast_into_the_ddv_map() -> None:
    """``cams_prior_weight`` w: the AOT map is (1 - w) DDV + w CAMS where DDV succeeds (issue #15 item 3).

    w = 0 (the default) leaves the DDV map bit for bit; the figures printed (map RMSE against the
    truth for a CAMS forecast right on the scene mean and one 0.05 too high) are the README's.
    """
    from sen2core.io.read.auxdata import AuxiliaryData

    scene, scl, _, truth, _, cover = _scene(0.3, 2.0)
    land = cover != 6

    def run(weight: float, cams: float | None) -> tuple[np.ndarray, dict]:
        aux = None if cams is None else AuxiliaryData(bounds=(0.0, 0.0, N * RES, N * RES), aot550=((cams,) * 2,) * 2)
        with dask.config.set(scheduler="threads"):
            atm = AtmosphericCorrection(CorrectionConfig(cams_prior_weight=weight)).retrieve(
                dataclasses.replace(scene, aux=aux), scl
            )
            return atm.aot.compute(), atm.summary

    ddv, s0 = run(0.0, None)
    same, s_same = run(0.0, 0.5)
    np.testing.assert_array_equal(same, ddv)
    assert s_same["AOT_SOURCE"] == "DDV" and "AOT_CAMS_WEIGHT" not in s_same
    rmse = {}
    for label, cams in (("right", float(truth.mean())), ("+0.05", float(truth.mean()) + 0.05)):
        for w in (0.25, 0.5, 1.0):
            blended, s = run(w, cams)
            assert s["AOT_SOURCE"] == "DDV+CAMS" and s["AOT_CAMS_WEIGHT"] == w
            assert s["GRANULE_MEAN_AOT"] == pytest.approx((1 - w) * s0["GRANULE_MEAN_AOT"] + w * cams, abs=1e-4)
            # Quantised to 0.001 as stored, before and after the blend.
            np.testing.assert_allclose(blended, (1 - w) * ddv + w * cams, atol=1.1e-3)
            rmse[label, w] = float(np.sqrt(np.mean((blended - truth)[land] ** 2)))
    rmse["ddv", 0.0] = float(np.sqrt(np.mean((ddv - truth)[land] ** 2)))
    print("AOT map RMSE: " + ", ".join(f"CAMS {k[0]} w={k[1]}: {v:.4f}" for k, v in rmse.items()))
    # A forecast 0.05 off is worse than DDV here: the weight trades DDV's detail for CAMS's bias.
    assert rmse["+0.05", 1.0] > rmse["ddv", 0.0]

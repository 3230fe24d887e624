"""CAMS and ECMWF auxiliary data of the L1C (``sen2core.io.read.auxdata``) and their use in the correction.

The real files are the ``AUX_DATA`` of two T31TCJ products (baseline 05.10, January and
March 2024, ``tests/data/aux``); the end-to-end checks use synthetic products whose
generator writes the files with the truth's atmosphere (``--aux-data``).
"""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
import rasterio
from conftest import read_rasters
from rasterio.warp import transform as warp_transform

from sen2core.atmosphere.lut import load_lut
from sen2core.correction import AtmosphericCorrection, CorrectionConfig, Scene, correction_config_from_gipp
from sen2core.errors import AuxDataError, SettingRangeError
from sen2core.io.read.auxdata import (
    CAMS_FILE,
    CAMS_PARAMETERS,
    DU_KG_M2,
    ECMWF_FILE,
    ECMWF_PARAMETERS,
    AuxiliaryData,
    auxiliary_on_tile,
    read_cams,
    read_ecmwf,
    read_product_auxiliary,
    write_grib,
)
from sen2core.io.read.opening import open_l1c
from sen2core.kernels import adjacency, rt
from sen2core.kernels.lut import relative_azimuth
from sen2core.kernels.pressure import pressure_elevation_km, surface_pressure_hpa
from sen2core.pipeline import ProcessingConfig, process_product
from sen2core.stages import ProductPlan, plan_product
from sen2core.synthetic import SynthConfig, synthesize

DATA = Path(__file__).parents[1] / "data"
AUX = DATA / "aux"
PRODUCTS = ("S2A-T31TCJ", "S2B-T31TCJ")
# T31TCJ (EPSG:32631): upper-left corner 300000, 4900020; 109.8 km a side (MTD_TL.xml).
T31TCJ_BOUNDS = (300000.0, 4790220.0, 409800.0, 4900020.0)
SR_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


def _files(product: str) -> dict[str, bytes]:
    return {name: (AUX / product / name).read_bytes() for name in (CAMS_FILE, ECMWF_FILE)}


# ----------------------------------------------------------------------------- real files


@pytest.mark.parametrize("product", PRODUCTS)
def test_real_cams_file_holds_plausible_aerosol_depths(product: str) -> None:
    cams = read_cams(_files(product)[CAMS_FILE])
    assert set(cams.fields) == set(CAMS_PARAMETERS)
    assert cams.fields["aod550"].shape == (9, 9)
    for name, values in cams.fields.items():
        assert ((values >= 0.0) & (values <= 2.0)).all(), name
    # Aerosol depth falls with wavelength at every grid point (Angstrom exponent > 0).
    spectral = [cams.fields[n] for n in ("aod469", "aod550", "aod670", "aod865", "aod1240")]
    for shorter, longer in zip(spectral, spectral[1:], strict=False):
        assert (shorter > longer).all()
    # The five species read are part of the total (CAMS has nitrate and ammonium besides).
    species = sum(cams.fields[n] for n in ("sea_salt", "dust", "organic_matter", "black_carbon", "sulphate"))
    assert (species <= cams.fields["aod550"] + 1e-4).all()
    assert (species >= 0.3 * cams.fields["aod550"]).all()


@pytest.mark.parametrize("product", PRODUCTS)
def test_real_ecmwf_file_holds_plausible_vapour_pressure_and_ozone(product: str) -> None:
    ecmwf = read_ecmwf(_files(product)[ECMWF_FILE])
    assert set(ecmwf.fields) == set(ECMWF_PARAMETERS)
    tcwv_cm = ecmwf.fields["tcwv"] / 10.0  # kg m-2 = mm
    msl_hpa = ecmwf.fields["msl"] / 100.0  # Pa
    ozone_du = ecmwf.fields["tco3"] / DU_KG_M2  # kg m-2
    assert ((tcwv_cm > 0.0) & (tcwv_cm < 7.0)).all()
    assert ((msl_hpa > 950.0) & (msl_hpa < 1050.0)).all()
    assert ((ozone_du > 200.0) & (ozone_du < 500.0)).all()


def test_units_of_the_real_files() -> None:
    # Sen2Cor's own check value: 300 DU = 6.428e-3 kg m-2.
    assert 6.428e-3 / DU_KG_M2 == pytest.approx(300.0, abs=0.2)
    january, march = (auxiliary_on_tile(_files(p), 32631, T31TCJ_BOUNDS) for p in PRODUCTS)
    assert january is not None and march is not None
    mean = january.mean
    # January 2024 over Toulouse: clean (AOD 0.019), dry (0.3 cm), high pressure (1028 hPa), 308 DU.
    assert mean(january.aot550) == pytest.approx(0.0189, abs=0.0005)
    assert mean(january.water_vapour_cm) == pytest.approx(0.31, abs=0.02)
    assert mean(january.msl_pressure_hpa) == pytest.approx(1028.1, abs=0.3)
    assert mean(january.ozone_du) == pytest.approx(308.0, abs=3.0)
    # March: more aerosol, mostly sea salt and sulphate; more vapour; the spring ozone maximum.
    assert mean(march.aot550) == pytest.approx(0.097, abs=0.002)
    assert march.species_aod["sea_salt"] > 10 * march.species_aod["dust"]
    assert mean(march.water_vapour_cm) == pytest.approx(1.08, abs=0.05)
    assert mean(march.ozone_du) == pytest.approx(460.0, abs=5.0)
    assert january.spectral_aod[550] == pytest.approx(mean(january.aot550), abs=2e-4)


@pytest.mark.parametrize("product", PRODUCTS)
def test_fields_on_the_tile_interpolate_the_grid(product: str) -> None:
    files = _files(product)
    cams = read_cams(files[CAMS_FILE])
    aux = auxiliary_on_tile(files, 32631, T31TCJ_BOUNDS, nodes=12)
    assert aux is not None and np.shape(aux.aot550) == (12, 12)
    grid = np.asarray(aux.aot550)
    values = cams.fields["aod550"]
    assert values.min() - 1e-9 <= grid.min() and grid.max() <= values.max() + 1e-9
    # At a grid point the interpolation returns the point's value.
    lon = np.asarray([cams.lon0 + 3 * cams.dlon])
    lat = np.asarray([cams.lat0 + 4 * cams.dlat])
    assert cams.at("aod550", lon, lat)[0] == pytest.approx(values[4, 3], rel=1e-12)
    # Node (0, 0) is the tile's upper-left corner, which ESA makes the grid's first point (0.496 E, 44.226 N).
    (lon0,), (lat0,) = warp_transform("EPSG:32631", "EPSG:4326", [T31TCJ_BOUNDS[0]], [T31TCJ_BOUNDS[3]])
    assert (lon0, lat0) == pytest.approx((cams.lon0, cams.lat0), abs=1e-4)
    assert grid[0, 0] == pytest.approx(cams.at("aod550", np.asarray([lon0]), np.asarray([lat0]))[0], rel=1e-9)
    assert grid[0, 0] == pytest.approx(values[0, 0], rel=1e-3)
    # The grid's last points reach beyond the tile (about 1.89 E, 43.26 N at the lower-right corner).
    (lon1,), (lat1,) = warp_transform("EPSG:32631", "EPSG:4326", [T31TCJ_BOUNDS[2]], [T31TCJ_BOUNDS[1]])
    assert lon1 < cams.lon0 + 8 * cams.dlon and lat1 > cams.lat0 + 8 * cams.dlat


# ----------------------------------------------------------------------------- writing and errors


def test_written_grib2_reads_back_as_the_grib1_fields(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    aod = rng.uniform(0.05, 0.6, (5, 6))
    tcwv = rng.uniform(2.0, 40.0, (5, 6))
    write_grib(tmp_path / CAMS_FILE, [(CAMS_PARAMETERS["aod550"], aod), (CAMS_PARAMETERS["dust"], aod / 4)],
               lon0=-5.0, lat0=31.0, dlon=0.25, dlat=0.2, reference_time="2020-02-19T00:00:00Z")  # fmt: skip
    write_grib(tmp_path / ECMWF_FILE, [(ECMWF_PARAMETERS["tcwv"], tcwv)], lon0=-5.0, lat0=31.0, dlon=0.25,
               dlat=0.2, reference_time="2020-02-19T00:00:00Z")  # fmt: skip
    cams = read_cams((tmp_path / CAMS_FILE).read_bytes())
    assert set(cams.fields) == {"aod550", "dust"}
    np.testing.assert_allclose(cams.fields["aod550"], aod, atol=1e-6)
    assert (cams.lon0, cams.lat0, cams.dlon, cams.dlat) == pytest.approx((-5.0, 31.0, 0.25, -0.2))
    ecmwf = read_ecmwf((tmp_path / ECMWF_FILE).read_bytes())
    assert set(ecmwf.fields) == {"tcwv"}
    np.testing.assert_allclose(ecmwf.fields["tcwv"], tcwv, atol=1e-5)
    with rasterio.open(tmp_path / CAMS_FILE) as ds:
        assert ds.tags(1)["GRIB_DISCIPLINE"] == "192"
        assert ds.tags(1)["GRIB_PDS_TEMPLATE_NUMBERS"].split()[:2] == ["210", "207"]


def test_bad_auxiliary_files_name_the_product_and_the_file(tmp_path: Path) -> None:
    with pytest.raises(AuxDataError, match=r"S2X_TEST: AUX_CAMSFO: not a readable GRIB file"):
        auxiliary_on_tile({CAMS_FILE: b"not grib at all" * 10}, 32631, T31TCJ_BOUNDS, what="S2X_TEST")
    # An ECMWF file given as the CAMS one has no total AOD.
    with pytest.raises(AuxDataError, match=r"S2X_TEST: AUX_CAMSFO: no aod550 field \(GRIB table/parameter 210/207\)"):
        auxiliary_on_tile({CAMS_FILE: _files(PRODUCTS[0])[ECMWF_FILE]}, 32631, T31TCJ_BOUNDS, what="S2X_TEST")
    assert auxiliary_on_tile({}, 32631, T31TCJ_BOUNDS) is None


# ----------------------------------------------------------------------------- pressure and settings


def test_surface_pressure_and_its_lut_elevation() -> None:
    # Standard atmosphere: 795.0 hPa at 2 km; 1013.25 hPa at sea level gives back the ground's elevation.
    assert float(surface_pressure_hpa(1013.25, 2.0)) == pytest.approx(795.0, abs=0.2)
    np.testing.assert_allclose(pressure_elevation_km([0.0, 0.7, 2.5], 1013.25), [0.0, 0.7, 2.5], atol=1e-12)
    # A low of 990 hPa at 1 km is the standard pressure about 200 m higher (8.3 m per hPa at sea level).
    z = float(pressure_elevation_km(1.0, 990.0))
    assert z == pytest.approx(1.0 + 23.25 * 0.0083, abs=0.02)
    assert float(surface_pressure_hpa(1013.25, z)) == pytest.approx(float(surface_pressure_hpa(990.0, 1.0)), rel=1e-9)


def test_ozone_zero_means_the_ecmwf_column() -> None:
    assert CorrectionConfig(ozone_cm_atm=0.0).ozone_cm_atm == 0.0
    with pytest.raises(SettingRangeError, match=r"ozone_cm_atm must be in \[0.2, 0.5\]"):
        CorrectionConfig(ozone_cm_atm=0.1)
    # Sen2Cor's GIPPs say 0 (automatic): the ECMWF column then.
    cfg, _ = correction_config_from_gipp(DATA / "gipp" / "sen2cor_L2A_GIPP_DEM_OFF.xml")
    assert cfg.ozone_cm_atm == 0.0


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def desert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bright desert without dark vegetation or cloud, AOT 0.4, with CAMS and ECMWF files."""
    root = tmp_path_factory.mktemp("desert")
    config = SynthConfig(size=366, seed=2, tile="29RKH", date="2020-02-19", cloud_cover=0.0, aot=0.4,
                         surface=str(DATA / "synthetic" / "l2a-T29RKH-subset"), aux_data=True)  # fmt: skip
    return synthesize(config, root).product


def _read(path: Path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(band)


def _boa_rmse(out: Path, truth: Path, bands: tuple[str, ...]) -> dict[str, float]:
    clear = np.isin(_read(truth / "SCL_20m.tif"), (4, 5))
    rmse = {}
    for b in bands:
        boa = (_read(out / f"{b}_20m.tif").astype(np.float64) - 1000.0) / 10000.0
        sr = _read(truth / "SR_20m.tif", SR_BANDS.index(b) + 1)
        rmse[b] = float(np.sqrt(np.mean((boa[clear] - sr[clear]) ** 2)))
    return rmse


def test_generator_writes_the_truth_into_the_auxiliary_files(desert: Path) -> None:
    truth = json.loads((desert.with_name(desert.name[: -len(".SAFE")] + ".truth") / "truth.json").read_text())
    aux = read_product_auxiliary(open_l1c(desert))
    assert aux is not None and len(aux.files) == 2
    assert aux.mean(aux.aot550) == pytest.approx(truth["atmosphere"]["aot550_mean"], abs=0.01)
    assert aux.mean(aux.water_vapour_cm) == pytest.approx(truth["atmosphere"]["water_vapour_mean_cm"], rel=0.02)
    assert aux.mean(aux.msl_pressure_hpa) == pytest.approx(1013.25, abs=1e-3)
    assert aux.mean(aux.ozone_du) == pytest.approx(330.0, abs=0.01)
    # Continental aerosol: sulphate and organic matter, an Angstrom exponent of 1.3.
    assert aux.species_aod["sulphate"] > aux.species_aod["sea_salt"]
    assert aux.spectral_aod[865] / aux.spectral_aod[550] == pytest.approx((865 / 550) ** -1.3, rel=1e-3)
    manifest = (desert / "manifest.safe").read_text()
    assert 'ID="CAMS_Tile1_Data"' in manifest and "AUX_DATA/AUX_ECMWFT" in manifest


def test_the_plan_carries_the_fields_to_workers(desert: Path, tmp_path: Path) -> None:
    plan = plan_product(desert, tmp_path, ProcessingConfig(resolution=20))
    assert isinstance(plan, ProductPlan) and plan.aux is not None
    # Read once when planned; a stage on another process gets them with the pickled plan.
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan and again.aux == plan.aux and hash(again.aux) == hash(plan.aux)
    assert plan_product(desert, tmp_path / "sc", ProcessingConfig(resolution=20, sc_only=True)).aux is None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_desert_without_dark_vegetation_takes_its_aot_from_cams(desert: Path, tmp_path: Path) -> None:
    truth_dir = desert.with_name(desert.name[: -len(".SAFE")] + ".truth")
    aot_true = json.loads((truth_dir / "truth.json").read_text())["atmosphere"]["aot550_mean"]
    res = process_product(desert, tmp_path / "cams", ProcessingConfig(resolution=20))
    atm = res.atmosphere
    assert atm["AOT_RETRIEVAL_METHOD"] == "CAMS" and atm["DDV_PIXEL_PERCENTAGE"] == 0.0
    assert abs(atm["GRANULE_MEAN_AOT"] - aot_true) <= 0.05, (atm["GRANULE_MEAN_AOT"], aot_true)
    out = Path(res.output_dir)
    aot = _read(out / "AOT_20m.tif") / 1000.0
    assert np.abs(aot - _read(truth_dir / "AOT_20m.tif")).max() <= 0.01
    rmse = _boa_rmse(out, truth_dir, ("B04", "B05", "B06", "B07", "B8A"))
    assert max(rmse.values()) <= 0.003, rmse
    assert {k: atm[k] for k in ("AOT_SOURCE", "WV_SOURCE", "WV_FILL_SOURCE", "OZONE_SOURCE", "PRESSURE_SOURCE",
                                "ELEVATION_SOURCE")} == {  # fmt: skip
        "AOT_SOURCE": "CAMS", "WV_SOURCE": "APDA", "WV_FILL_SOURCE": "ECMWF", "OZONE_SOURCE": "CONFIG",
        "PRESSURE_SOURCE": "ECMWF", "ELEVATION_SOURCE": "CONFIG"}  # fmt: skip
    summary = json.loads((out / "L2A_SUMMARY.json").read_text())
    assert summary["atmosphere"]["AOT_SOURCE"] == "CAMS"
    recorded = summary["auxiliary_data"]
    assert [Path(f).name for f in recorded["files"]] == ["AUX_CAMSFO", "AUX_ECMWFT"]
    assert recorded["cams_aot550"] == pytest.approx(aot_true, abs=0.01)
    assert recorded["ecmwf_msl_pressure_hpa"] == 1013.25 and recorded["ecmwf_ozone_du"] == 330.0
    item = json.loads((out / f"{res.l2a_id}.json").read_text())
    assert item["properties"]["s2:aot_retrieval_method"] == "CAMS"
    assert item["properties"]["s2:pressure_source"] == "ECMWF"

    # The same product without its AUX_DATA: today's default AOT and a BOA error ten times larger.
    bare = tmp_path / "bare" / desert.name
    shutil.copytree(desert, bare)
    for folder in bare.rglob("AUX_DATA"):
        shutil.rmtree(folder)
    res0 = process_product(bare, tmp_path / "default", ProcessingConfig(resolution=20))
    assert res0.atmosphere["AOT_RETRIEVAL_METHOD"] == "DEFAULT"
    assert json.loads((Path(res0.output_dir) / "L2A_SUMMARY.json").read_text())["auxiliary_data"] is None
    assert res0.atmosphere["GRANULE_MEAN_AOT"] == pytest.approx(0.201)
    assert {k: res0.atmosphere[k] for k in ("AOT_SOURCE", "WV_FILL_SOURCE", "PRESSURE_SOURCE")} == {
        "AOT_SOURCE": "DEFAULT", "WV_FILL_SOURCE": "LAND_MEAN", "PRESSURE_SOURCE": "STANDARD"}  # fmt: skip
    rmse0 = _boa_rmse(Path(res0.output_dir), truth_dir, ("B04", "B05", "B06", "B07", "B8A"))
    assert min(rmse0.values()) >= 0.01, rmse0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ecmwf_ozone_and_tiles_make_the_same_product(desert: Path, tmp_path: Path) -> None:
    config = ProcessingConfig(chunk_m=1800.0, correction=CorrectionConfig(ozone_cm_atm=0.0))
    tiled = process_product(desert, tmp_path / "tiles", config, tile_blocks=2)
    whole = process_product(desert, tmp_path / "whole", config)
    assert whole.atmosphere["OZONE_SOURCE"] == "ECMWF" and whole.atmosphere["OZONE_VALUE"] == 330.0
    assert whole.atmosphere["AOT_RETRIEVAL_METHOD"] == "CAMS"
    a, b = read_rasters(Path(tiled.output_dir)), read_rasters(Path(whole.output_dir))
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name}: {np.count_nonzero(a[name] != b[name])} pixels differ"
    assert tiled.atmosphere == whole.atmosphere


# ----------------------------------------------------------------------------- the correction's use, on arrays

# Surface spectra (B01 ... B12 without B10): bright soil and clear water, as in tests/stages/test_correction.py.
_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
_SOIL = (0.07, 0.09, 0.13, 0.17, 0.20, 0.22, 0.24, 0.26, 0.27, 0.27, 0.34, 0.28)
_WATER = (0.05, 0.05, 0.04, 0.02, 0.012, 0.006, 0.005, 0.004, 0.004, 0.003, 0.002, 0.001)
_N = 120


def _soil_and_lake(aot: float, wv: float, aux: AuxiliaryData | None, model: str = "continental"
                   ) -> tuple[Scene, da.Array]:  # fmt: skip
    """Bright soil (no dark vegetation) with a lake in the right third, 20 m pixels, flat at sea level."""
    cover = np.full((_N, _N), 5, dtype=np.uint8)
    cover[:, 80:] = 6
    lut = load_lut()
    sza, vza, raa = 41.0, 6.0, float(relative_azimuth(155.0, 105.0))
    toa = {}
    for i, b in enumerate(_BANDS):
        rho = np.where(cover == 6, _WATER[i], _SOIL[i])
        t = lut.terms("S2A", b, model, sza, vza, raa, aot, 0.0, wv, 0.331)
        e = rt.irradiance_factor(t, np.cos(np.radians(sza)))
        toa[b] = rt.toa_from_surface(rho, adjacency.box_mean(rho, adjacency.window_pixels(1.0, 20.0)), t, e)

    def arr(a: Any) -> da.Array:
        return da.from_array(np.broadcast_to(np.asarray(a, dtype=np.float32), (_N, _N)), chunks=(60, 60))

    scene = Scene(toa={b: arr(v) for b, v in toa.items()}, sun_zenith=arr(sza), sun_azimuth=arr(155.0),
                  view_zenith={b: arr(vza) for b in _BANDS}, view_azimuth={b: arr(105.0) for b in _BANDS},
                  elevation_km=arr(0.0), resolution_m=20.0, spacecraft="S2A", aux=aux)  # fmt: skip
    return scene, da.from_array(cover, chunks=(60, 60))


def _aux(aot: Any = None, wv: Any = None) -> AuxiliaryData:
    return AuxiliaryData(bounds=(0.0, 0.0, 2400.0, 2400.0), aot550=aot, water_vapour_cm=wv)


def _ramp(left: float, right: float, n: int = 4) -> tuple[tuple[float, ...], ...]:
    """A field rising from ``left`` to ``right`` across the columns of ``n`` x ``n`` nodes."""
    return tuple(tuple(float(v) for v in np.linspace(left, right, n)) for _ in range(n))


def test_cams_map_replaces_the_default_where_ddv_fails() -> None:
    cams = _ramp(0.3, 0.5)
    with dask.config.set(scheduler="threads"):
        scene, scl = _soil_and_lake(0.4, 1.5, _aux(aot=cams))
        atm = AtmosphericCorrection(CorrectionConfig()).retrieve(scene, scl)
        aot = atm.aot.compute()
        bare = AtmosphericCorrection(CorrectionConfig()).retrieve(replace(scene, aux=None), scl)
    assert atm.summary["AOT_RETRIEVAL_METHOD"] == "CAMS" and atm.summary["GRANULE_MEAN_AOT"] == pytest.approx(0.4)
    # Bilinear between the nodes: pixel centres at (j + 0.5) / 120 of the way across, quantised to 0.001.
    expected = 0.3 + 0.2 * (np.arange(_N) + 0.5) / _N
    np.testing.assert_allclose(aot[0], expected, atol=5e-4 + 1e-6)
    assert bare.summary["AOT_RETRIEVAL_METHOD"] == "DEFAULT" and bare.summary["AOT_SOURCE"] == "DEFAULT"


def test_water_vapour_over_water_follows_the_ecmwf_field_at_the_land_level() -> None:
    ecmwf = _ramp(1.0, 2.0)
    with dask.config.set(scheduler="threads"):
        scene, scl = _soil_and_lake(0.2, 1.5, _aux(wv=ecmwf))
        atm = AtmosphericCorrection(CorrectionConfig()).retrieve(scene, scl)
        wv = atm.water_vapour.compute()
        bare = AtmosphericCorrection(CorrectionConfig()).retrieve(replace(scene, aux=None), scl)
        wv0 = bare.water_vapour.compute()
    land_mean = atm.summary["GRANULE_MEAN_WV"]
    assert land_mean == pytest.approx(bare.summary["GRANULE_MEAN_WV"]) and land_mean == pytest.approx(1.5, abs=0.1)
    assert atm.summary["WV_FILL_SOURCE"] == "ECMWF" and bare.summary["WV_FILL_SOURCE"] == "LAND_MEAN"
    # Over the lake (clear of its shore and the edge): the ECMWF ramp scaled to the land mean (ECMWF mean 1.5).
    cols = np.arange(84, 118)
    expected = land_mean * (1.0 + (cols + 0.5) / _N) / 1.5
    np.testing.assert_allclose(wv[60, 84:118], expected, atol=2e-3)
    np.testing.assert_allclose(wv0[60, 84:118], land_mean, atol=1e-3)
    # No APDA pixel at all (B09 missing everywhere): the ECMWF mean instead of the 1 cm default.
    toa = {**scene.toa, "B09": da.full((_N, _N), np.nan, dtype=np.float32, chunks=(60, 60))}
    with dask.config.set(scheduler="threads"):
        none = AtmosphericCorrection(CorrectionConfig()).retrieve(replace(scene, toa=toa), scl)
        none0 = AtmosphericCorrection(CorrectionConfig()).retrieve(replace(scene, toa=toa, aux=None), scl)
    assert (none.summary["WV_SOURCE"], none.summary["GRANULE_MEAN_WV"]) == ("ECMWF", pytest.approx(1.5))
    assert (none0.summary["WV_SOURCE"], none0.summary["GRANULE_MEAN_WV"]) == ("DEFAULT", 1.0)


def test_ozone_setting_zero_takes_the_ecmwf_column() -> None:
    aux = AuxiliaryData(bounds=(0.0, 0.0, 1.0, 1.0), ozone_du=((452.0, 468.0), (452.0, 468.0)))
    scene, _ = _soil_and_lake(0.2, 1.5, aux)
    auto = AtmosphericCorrection(CorrectionConfig(ozone_cm_atm=0.0))
    assert auto.ozone(scene) == (0.46, "ECMWF")
    assert auto.ozone(replace(scene, aux=None)) == (0.331, "DEFAULT")
    assert AtmosphericCorrection(CorrectionConfig(ozone_cm_atm=0.3)).ozone(scene) == (0.3, "CONFIG")
    # Outside the LUT's ozone axis: clipped to it.
    high = AuxiliaryData(bounds=(0.0, 0.0, 1.0, 1.0), ozone_du=((560.0,),))
    assert auto.ozone(replace(scene, aux=high)) == (0.5, "ECMWF")


@pytest.mark.parametrize("model,species", [
    ("maritime", (("sea_salt", 0.21), ("dust", 0.01), ("organic_matter", 0.02), ("sulphate", 0.06))),
    ("continental", (("sea_salt", 0.02), ("dust", 0.04), ("organic_matter", 0.12), ("sulphate", 0.2))),
])  # fmt: skip
def test_auto_aerosol_without_ddv_follows_the_cams_species(model: str, species: tuple[tuple[str, float], ...]) -> None:
    aux = AuxiliaryData(bounds=(0.0, 0.0, 1.0, 1.0), aot550=((0.4, 0.4), (0.4, 0.4)), species=species)
    scene, scl = _soil_and_lake(0.4, 1.5, aux, model)
    with dask.config.set(scheduler="threads"):
        ac = AtmosphericCorrection(CorrectionConfig(aerosol="auto"))
        atm = ac.retrieve(scene, scl)
        red = ac.correct(scene, atm, scl, ("B04",))["B04"].compute()
        fixed = AtmosphericCorrection(CorrectionConfig(aerosol=model)).retrieve(scene, scl)
    assert (atm.summary["AEROSOL_TYPE"], atm.summary["AEROSOL_TYPE_SOURCE"]) == (model, "CAMS")
    assert (fixed.summary["AEROSOL_TYPE"], fixed.summary["AEROSOL_TYPE_SOURCE"]) == (model, "CONFIG")
    # The soil's red reflectance comes back (0.17) with the right model, within the lake's adjacency.
    assert np.median(red[:, :60]) == pytest.approx(0.17, abs=0.003)

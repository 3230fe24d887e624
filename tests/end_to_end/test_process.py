"""``sen2core process`` end to end on synthetic Level-1C scenes with known truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from sen2core.pipeline import ProcessingConfig, process_product

pytestmark = pytest.mark.slow


def synth(folder: Path, *args: str) -> Path:
    out = subprocess.run([sys.executable, "-m", "sen2core.cli", "synth", str(folder), *args],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return Path(out.strip().splitlines()[-1])


def truth_of(safe: Path) -> Path:
    return safe.with_name(safe.name[: -len(".SAFE")] + ".truth")


@pytest.mark.parametrize("wv,seed", [(0.8, 11), (2.0, 12), (3.8, 13)])
def test_process_retrieves_water_vapour(tmp_path: Path, wv: float, seed: int) -> None:
    """APDA on synthetic scenes: scene-mean water vapour within 10 % of truth."""
    safe = synth(tmp_path / "l1c", "--size", "732", "--seed", str(seed), "--aot", "0.2", "--wv", str(wv),
                 "--cloud-cover", "15")  # fmt: skip
    res = process_product(safe, tmp_path / "l2a", ProcessingConfig(resolution=20))
    truth = json.loads((truth_of(safe) / "truth.json").read_text())["atmosphere"]
    atm = res.atmosphere
    print(f"WV {atm['GRANULE_MEAN_WV']:.3f} (truth {truth['water_vapour_mean_cm']}), "
          f"AOT {atm['GRANULE_MEAN_AOT']:.3f} (truth {truth['aot550_mean']}), "
          f"{atm['AOT_RETRIEVAL_METHOD']}")  # fmt: skip
    assert atm["WV_RETRIEVAL_METHOD"] == "APDA" and atm["AOT_RETRIEVAL_METHOD"] == "SEN2COR_DDV"
    assert abs(atm["GRANULE_MEAN_WV"] - truth["water_vapour_mean_cm"]) <= 0.10 * truth["water_vapour_mean_cm"]


def test_desert_without_vegetation_falls_back_to_default_aot(tmp_path: Path) -> None:
    """No dark dense vegetation on a real desert surface: the configured AOT, recorded as DEFAULT."""
    desert = Path(__file__).parents[1] / "data" / "synthetic" / "l2a-T29RKH-subset"
    safe = synth(tmp_path / "l1c", "--size", "366", "--seed", "4", "--cloud-cover", "0", "--surface", str(desert),
                 "--wv", "0.6")  # fmt: skip
    res = process_product(safe, tmp_path / "l2a", ProcessingConfig(resolution=20))
    assert res.atmosphere["AOT_RETRIEVAL_METHOD"] == "DEFAULT"
    with rasterio.open(Path(res.output_dir) / "AOT_20m.tif") as ds:
        aot = ds.read(1)
    assert np.all((aot == 0) | (aot == round(1000 * res.atmosphere["GRANULE_MEAN_AOT"])))


def test_outputs_are_valid_cogs_and_rerun_is_a_no_op(tmp_path: Path) -> None:
    safe = synth(tmp_path / "l1c", "--size", "366", "--seed", "5", "--cloud-cover", "20")
    first = process_product(safe, tmp_path / "l2a")
    out = Path(first.output_dir)
    assert first.status == "done"
    tifs = sorted(out.glob("*.tif"))
    assert {p.name for p in tifs} == {
        f"{b}.tif" for b in ("B01_60m", "B02_10m", "B03_10m", "B04_10m", "B05_20m", "B06_20m", "B07_20m", "B08_10m",
                             "B8A_20m", "B09_60m", "B11_20m", "B12_20m", "SCL_20m", "AOT_10m", "WVP_10m", "TCI_10m",
                             "MSK_CLDPRB_20m", "MSK_SNWPRB_20m", "CLD_PROB_CALIBRATED_20m")
    }  # fmt: skip
    for p in tifs:
        valid, errors, _ = cog_validate(str(p), quiet=True)
        assert valid, (p.name, errors)
    # Negative BOA per band, counted while writing, equals what the files hold.
    negative = first.atmosphere["NEGATIVE_BOA_PERCENTAGE"]
    assert set(negative) == {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"}
    for band, name in (("B02", "B02_10m.tif"), ("B12", "B12_20m.tif")):
        with rasterio.open(out / name) as ds:
            dn = ds.read(1)
        assert negative[band] == pytest.approx(100.0 * np.count_nonzero((dn > 0) & (dn < 1000)) / np.count_nonzero(dn),
                                               abs=1e-3)  # fmt: skip
    assert not list(out.rglob("*.negstats")) and not list(out.rglob("*.lock"))
    with rasterio.open(out / "B02_10m.tif") as ds:
        assert ds.res == (10.0, 10.0) and ds.nodata == 0 and ds.scales[0] == pytest.approx(1e-4)
        assert ds.offsets[0] == pytest.approx(-0.1)
    with rasterio.open(out / "B05_20m.tif") as ds:
        assert ds.res == (20.0, 20.0)
    with rasterio.open(out / "B01_60m.tif") as ds:
        assert ds.res == (60.0, 60.0)
    assert not list(out.parent.glob(".*tmp*")), "temporary build folders left behind"
    # The STAC item, written last, is the product's "done" marker.
    item = out / f"{out.name}.json"
    stamp = item.stat().st_mtime_ns
    again = process_product(safe, tmp_path / "l2a")
    assert again.status == "skipped" and item.stat().st_mtime_ns == stamp
    forced = process_product(safe, tmp_path / "l2a", ProcessingConfig(overwrite=True))
    assert forced.status == "done" and item.stat().st_mtime_ns != stamp


def test_sc_only_writes_masks_and_percentages(tmp_path: Path) -> None:
    safe = synth(tmp_path / "l1c", "--size", "366", "--seed", "8", "--cloud-cover", "30")
    res = subprocess.run([sys.executable, "-m", "sen2core.cli", "process", str(safe), "-o", str(tmp_path / "l2a"),
                          "--sc-only", "--json"], check=True, capture_output=True, text=True)  # fmt: skip
    summary = json.loads(res.stdout)
    names = set(summary["files"])
    assert {"SCL_20m.tif", "MSK_CLDPRB_20m.tif", "MSK_SNWPRB_20m.tif", "L2A_SUMMARY.json"} <= names
    assert not any(n.startswith("B") for n in names)
    with rasterio.open(Path(summary["output_dir"]) / "CLD_PROB_CALIBRATED_20m.tif") as ds:
        prob = ds.read(1)
    # A percentage map with a spread of values, not a 0/1 mask.
    assert prob.max() <= 100 and len(np.unique(prob)) > 10
    pct = summary["class_percentages"]
    for key in ("CLOUDY_PIXEL_PERCENTAGE", "CLOUDY_PIXEL_OVER_LAND_PERCENTAGE", "CLOUD_SHADOW_PERCENTAGE",
                "SNOW_ICE_PERCENTAGE", "NODATA_PIXEL_PERCENTAGE"):  # fmt: skip
        assert 0.0 <= pct[key] <= 100.0


def test_terrain_correction_evens_out_sunlit_and_shaded_slopes(tmp_path: Path) -> None:
    """With the DEM, the same surface on sunlit and shaded slopes is corrected to within
    10 % of each other; without it, the shaded side stays much darker."""
    from sen2core.kernels import terrain

    # A low winter sun, so that slopes change the illumination a lot.
    safe = synth(tmp_path / "l1c", "--size", "732", "--seed", "21", "--dem", "--cloud-cover", "0", "--aot", "0.15",
                 "--date", "2023-12-10")  # fmt: skip
    truth = truth_of(safe)
    dem_path = truth / "DEM_20m.tif"
    with rasterio.open(dem_path) as ds:
        dem, res = ds.read(1).astype(np.float64), ds.res[0]
    with rasterio.open(truth / "SUN_20m.tif") as ds:
        sunlit_truth = ds.read(1)
    meta = json.loads((truth / "truth.json").read_text())["geometry"]
    sza, saa = meta["mean_sun_zenith"], meta["mean_sun_azimuth"]
    slope, aspect = terrain.slope_aspect(dem, res)
    cos_i = terrain.cos_incidence(slope, aspect, sza, saa)
    ratios = {}
    for label, dem_arg in (("with", str(dem_path)), ("without", None)):
        res_ = process_product(safe, tmp_path / f"l2a-{label}", ProcessingConfig(resolution=20, dem=dem_arg))
        out = Path(res_.output_dir)
        with rasterio.open(out / "B8A_20m.tif") as ds:
            boa = (ds.read(1).astype(np.float64) - 1000.0) / 10000.0
        with rasterio.open(out / "SCL_20m.tif") as ds:
            clear = np.isin(ds.read(1), (4, 5))
        with rasterio.open(truth / "SR_20m.tif") as ds:
            sr = ds.read(9)  # B8A
        ok = clear & (sunlit_truth > 0.5) & (sr > 0.05)
        lo, hi = np.percentile(cos_i[ok], [10, 90])
        lit, shaded = ok & (cos_i >= hi), ok & (cos_i <= lo) & (cos_i > 0.1)
        assert lit.sum() > 200 and shaded.sum() > 200, (lit.sum(), shaded.sum())
        ratios[label] = (float(np.median(boa[lit] / sr[lit])), float(np.median(boa[shaded] / sr[shaded])))
    print(f"cos(i) sunlit >= {hi:.2f}, shaded <= {lo:.2f}; BOA/truth (sunlit, shaded):", ratios)
    lit_w, shade_w = ratios["with"]
    assert abs(lit_w - shade_w) <= 0.10 * max(lit_w, shade_w)
    lit_n, shade_n = ratios["without"]
    assert shade_n < 0.9 * lit_n  # the check can fail: without terrain correction it does


def test_gipp_sets_the_correction_and_progress_is_logged(tmp_path: Path) -> None:
    """Sen2Cor's L2A_GIPP.xml (``--GIP_L2A``): aerosol type and visibility reach the run."""
    from sen2core.kernels.aot import visibility_to_aot

    gipp = Path(__file__).parents[1] / "data" / "gipp" / "sen2cor_L2A_GIPP_DEM_OFF.xml"
    text = gipp.read_text()
    text = text.replace("<Aerosol_Type>RURAL</Aerosol_Type>", "<Aerosol_Type>MARITIME</Aerosol_Type>")
    text = text.replace("<Visibility>40.0</Visibility>", "<Visibility>20.0</Visibility>")
    assert "MARITIME" in text and "<Visibility>20.0" in text
    custom = tmp_path / "L2A_GIPP.xml"
    custom.write_text(text)
    desert = Path(__file__).parents[1] / "data" / "synthetic" / "l2a-T29RKH-subset"
    safe = synth(tmp_path / "l1c", "--size", "366", "--seed", "4", "--cloud-cover", "0", "--surface", str(desert))
    res = subprocess.run([sys.executable, "-m", "sen2core.cli", "process", str(safe), "-o", str(tmp_path / "l2a"),
                          "--resolution", "20", "--GIP_L2A", str(custom), "--json"],
                         check=True, capture_output=True, text=True)  # fmt: skip
    summary = json.loads(res.stdout)
    atm = summary["atmosphere"]
    assert atm["AEROSOL_TYPE"] == "maritime" and atm["AOT_RETRIEVAL_METHOD"] == "DEFAULT"
    assert atm["GRANULE_MEAN_AOT"] == pytest.approx(round(visibility_to_aot(20.0), 3))
    # Not a terminal: one plain line per stage on stderr.
    for stage in ("plan", "decode", "screening", "atmosphere", "correction-20m", "packaging"):
        assert f"] {stage}" in res.stderr
    assert (tmp_path / "l2a" / "collection.json").is_file()


def test_a_done_product_is_skipped_before_any_cluster_starts(
    cloudy_l1c: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` run twice: the second `sen2core process --workers 2` starts no Dask cluster to skip."""
    import distributed
    from click.testing import CliRunner

    from sen2core.cli import main

    out = tmp_path / "l2a"
    first = process_product(cloudy_l1c, out, ProcessingConfig(resolution=60, sc_only=True))
    assert first.status == "done"

    def no_cluster(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Dask cluster was started for a product that is already done")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    result = CliRunner().invoke(main, ["process", str(cloudy_l1c), "-o", str(out), "--workers", "2"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"{first.l2a_id} already done: {first.output_dir}" in result.stdout


@pytest.mark.parametrize(
    ("spacecraft", "product_id", "code", "named"),
    [
        ("Sentinel-2B", "S2B_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244", "S2B", None),
        ("Sentinel-2A", "S2A_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244", "S2A", None),
        ("Sentinel-2C", "S2C_MSIL1C_20250120T105341_N0511_R051_T31TCJ_20250120T125244", "S2A", "'Sentinel-2C'"),
        (None, "S2C_MSIL1C_20250120T105341_N0511_R051_T31TCJ_20250120T125244", "S2A",
         "'S2C_MSIL1C_20250120T105341_N0511_R051_T31TCJ_20250120T125244'"),
    ],
)  # fmt: skip
def test_a_spacecraft_without_responses_is_named_whole_in_the_warning(
    caplog: pytest.LogCaptureFixture, spacecraft: str | None, product_id: str, code: str, named: str | None
) -> None:
    """The warning names the whole spacecraft (it once named only its last letter, ``'C'``)."""
    from types import SimpleNamespace
    from typing import cast

    from sen2core.io.read.product import Product
    from sen2core.run import spacecraft_code

    product = cast(Product, SimpleNamespace(spacecraft=spacecraft, product_id=product_id, href="in/MTD_MSIL1C.xml"))
    with caplog.at_level("WARNING", logger="sen2core.run"):
        assert spacecraft_code(product) == code
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if named is None:
        assert warnings == []
    else:
        assert warnings == [f"in/MTD_MSIL1C.xml: spacecraft {named} has no spectral responses in the LUT; using S2A's"]

"""Synthetic Level-1C scenes: physics against the truth, structure, interoperability, determinism.

Every product here is small (192 or 366 px at 10 m) and takes a second or two to make.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from scipy import ndimage

from sen2core.atmosphere.lut import load_lut
from sen2core.atmosphere.srf import BANDS
from sen2core.cli import main
from sen2core.io.read.opening import open_product
from sen2core.io.read.product import Product
from sen2core.kernels.lut import relative_azimuth
from sen2core.kernels.rt import irradiance_factor, surface_from_toa
from sen2core.synthetic import SynthConfig, SynthResult, synthesize

SURFACE_SUBSET = Path(__file__).parents[1] / "data" / "synthetic" / "l2a-T29RKH-subset"
TEN_M = ("B02", "B03", "B04", "B08")

# Small scenes used by several tests, made once per module.
SCENES: dict[str, dict[str, Any]] = {
    "base": {"size": 366, "seed": 3, "cloud_cover": 10.0, "baseline": "05.09"},
    "old": {"size": 366, "seed": 3, "cloud_cover": 10.0, "baseline": "02.09"},
    # Low clouds, so that their shadows fall inside a 3.7 km tile.
    "shadow": {"size": 366, "seed": 3, "cloud_cover": 12.0, "cloud_heights": (1.0, 2.5)},
    "relief": {
        "size": 366,
        "seed": 4,
        "cloud_cover": 0.0,
        "dem": True,
        "elevation": 0.4,
        "tile": "32TLS",
        "date": "2022-08-10",
    },
    "edge": {
        "size": 192,
        "seed": 11,
        "cloud_cover": 15.0,
        "cirrus": 20.0,
        "snow": 5.0,
        "dem": True,
        "nodata_edge": True,
        "saturated": 4,
        "spacecraft": "S2B",
        "baseline": "04.00",
        "tile": "T19UDP",
    },
    "surface": {
        "size": 366,
        "seed": 2,
        "cloud_cover": 5.0,
        "surface": str(SURFACE_SUBSET),
        "tile": "29RKH",
        "date": "2020-02-19",
    },
}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], SynthResult]:
    made: dict[str, SynthResult] = {}

    def get(name: str) -> SynthResult:
        if name not in made:
            made[name] = synthesize(SynthConfig(**SCENES[name]), tmp_path_factory.mktemp(name))
        return made[name]

    return get


def _open(path: Path) -> Product:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return open_product(path)


def _read(path: Path, band: int | None = None) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(band) if band else ds.read()


def _truth(r: SynthResult) -> dict[str, Any]:
    return json.loads((r.truth / "truth.json").read_text())


def _clear20(r: SynthResult) -> np.ndarray:
    """20 m pixels whose four 10 m pixels are ground, unshadowed, cloud- and cirrus-free."""
    scl10 = _read(r.truth / "SCL_10m.tif", 1)
    n = scl10.shape[0] // 2
    ground = np.isin(scl10, [4, 5, 6, 11]).reshape(n, 2, n, 2).all(axis=(1, 3))
    return (
        ground
        & (_read(r.truth / "SUN_20m.tif", 1) == 1)
        & (_read(r.truth / "CLD_20m.tif", 1) == 0)
        & (_read(r.truth / "CIR_20m.tif", 1) == 0)
    )


def _block(a: np.ndarray, f: int) -> np.ndarray:
    return a.reshape(a.shape[0] // f, f, a.shape[1] // f, f).mean(axis=(1, 3))


def _up(a: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def _invert(r: SynthResult, band: str, *, relief: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Invert the written DNs of a band with the truth AOT, water vapour, background and the
    LUT, at the band's native resolution; return (retrieved, truth, clear mask)."""
    p = _open(r.product)
    t = _truth(r)
    res = p.band_resolution(band)
    toa = p.toa(band).compute().astype(np.float64)
    sza, saa = (a.compute().astype(np.float64) for a in p.sun_angles(res))
    vza, vaa = (a.compute().astype(np.float64) for a in p.view_angles(band, res))
    i = BANDS.index(band)
    sr20 = _read(r.truth / "SR_20m.tif").astype(np.float64)
    bg20 = ndimage.uniform_filter(sr20[i], size=t["adjacency_window_px_20m"], mode="reflect")
    aot20 = _read(r.truth / "AOT_20m.tif", 1).astype(np.float64)
    wv20 = _read(r.truth / "WVP_20m.tif", 1).astype(np.float64)
    dem20 = _read(r.truth / "DEM_20m.tif", 1).astype(np.float64) / 1000.0 if relief else None
    clear = _clear20(r)
    if res == 10:
        truth = _read(r.truth / "SR_10m.tif", TEN_M.index(band) + 1).astype(np.float64)
        aot, wv, bg, mask = _up(aot20), _up(wv20), _up(bg20), _up(clear)
        z = None if dem20 is None else _up(dem20)
    elif res == 20:
        truth, aot, wv, bg, mask, z = sr20[i], aot20, wv20, bg20, clear, dem20
    else:
        truth, aot, wv, bg = _block(sr20[i], 3), _block(aot20, 3), _block(wv20, 3), _block(bg20, 3)
        mask = clear.reshape(clear.shape[0] // 3, 3, clear.shape[1] // 3, 3).all(axis=(1, 3))
        z = None if dem20 is None else _block(dem20, 3)
    opts = t["options"]
    terms = load_lut().terms(
        opts["spacecraft"],
        band,
        opts["aerosol"],
        sza,
        vza,
        relative_azimuth(saa, vaa),
        aot,
        0.0 if z is None else z,
        wv,
        opts["ozone"],
    )
    cos_sza = np.cos(np.radians(sza))
    if dem20 is None:
        e = irradiance_factor(terms, cos_sza)
    else:
        cos_i, sky = _illumination(dem20, r, res)
        e = irradiance_factor(terms, cos_sza, cos_i, 1.0, sky)
        mask = mask & (cos_i > 0.2)
    return surface_from_toa(toa, bg, terms, e), truth, mask


def _illumination(dem20_km: np.ndarray, r: SynthResult, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Local incidence cosine and sky-view factor from the truth DEM (20 m facets)."""
    p = _open(r.product)
    sza, saa = (np.radians(a.compute().astype(np.float64)) for a in p.sun_angles(20))
    dz_row, dz_col = np.gradient(dem20_km * 1000.0, 20.0)
    zx, zn = dz_col, -dz_row
    norm = np.sqrt(1 + zx**2 + zn**2)
    cos_i = (-zx * np.sin(sza) * np.sin(saa) - zn * np.sin(sza) * np.cos(saa) + np.cos(sza)) / norm
    sky = 0.5 * (1 + 1 / norm)
    if res == 10:
        return _up(cos_i), _up(sky)
    if res == 20:
        return cos_i, sky
    raise ValueError("60 m bands mix 20 m facets")


# ---------------------------------------------------------------------------- physics


@pytest.mark.parametrize("band", [b for b in BANDS if b != "B10"])
def test_clear_sky_toa_inverts_to_the_surface(scene: Callable[[str], SynthResult], band: str) -> None:
    """Clear-sky TOA inverted with the known AOT/WV/background and the LUT returns the
    surface to 1e-3 (the DN quantisation of 1e-4 included). B10 is left out: its gas
    transmittance of a few 1e-3 makes one DN worth 0.03 of surface reflectance."""
    rho, truth, mask = _invert(scene("base"), band)
    assert mask.sum() > 100
    err = np.abs(rho - truth)[mask]
    assert err.max() < 1e-3, (band, err.max())


@pytest.mark.slow
@pytest.mark.parametrize("band", ["B02", "B04", "B8A", "B12"])
def test_relief_changes_illumination_and_pressure(scene: Callable[[str], SynthResult], band: str) -> None:
    r = scene("relief")
    dem = _read(r.truth / "DEM_20m.tif", 1)
    assert dem.max() - dem.min() > 200.0
    rho, truth, mask = _invert(r, band, relief=True)
    err = np.abs(rho - truth)[mask]
    assert err.max() < 1e-3, (band, err.max())
    # Ignoring the relief is visibly wrong.
    flat, _, _ = _invert_flat_at_sea_level(r, band)
    assert np.abs(flat - truth)[mask].max() > 5e-3


def _invert_flat_at_sea_level(r: SynthResult, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _invert(r, band, relief=False)


@pytest.mark.slow
def test_shadows_fall_away_from_the_sun_at_the_height_distance(scene: Callable[[str], SynthResult]) -> None:
    r = scene("shadow")
    t = _truth(r)
    p = _open(r.product)
    cth = _read(r.truth / "CTH_20m.tif", 1)
    cld = _read(r.truth / "CLD_20m.tif", 1)
    sun = _read(r.truth / "SUN_20m.tif", 1)
    n = cth.shape[0]
    checked = 0
    for obj in t["clouds"]["objects"]:
        h = obj["height_m"]
        mask = (cth == np.float32(h)) & (cld >= 0.5)
        if mask.sum() < 20:
            continue
        rows, cols = np.nonzero(mask)
        # Geometry at the cloud, as a reader sees it: sun, and the mean line of sight of
        # the bands (the cloud appears displaced away from the sensor by h tan(vza)).
        cy, cx = round(rows.mean()), round(cols.mean())
        sza, saa = (math.radians(float(a[cy, cx].compute())) for a in p.sun_angles(20))
        los = np.zeros(2)
        for b in BANDS:
            vza, vaa = (math.radians(float(a[cy, cx].compute())) for a in p.view_angles(b, 20))
            los += math.tan(vza) * np.array([math.sin(vaa), -math.cos(vaa)]) / len(BANDS)
        east = h * (los[0] - math.tan(sza) * math.sin(saa))
        south = h * (los[1] + math.tan(sza) * math.cos(saa))
        # The offset is h tan(sza) away from the sun, plus the parallax (within a pixel:
        # the truth lists it at the cloud's exact centroid).
        assert math.hypot(obj["shadow_offset_east_m"] - east, obj["shadow_offset_south_m"] - south) < 20.0
        assert math.hypot(east, south) > 0.7 * h * math.tan(sza)
        de, ds = obj["shadow_offset_east_m"], obj["shadow_offset_south_m"]
        # Away from the sun: against the sun's horizontal direction (east, -south).
        assert de * math.sin(saa) - ds * math.cos(saa) < 0
        sr, sc = rows + round(ds / 20), cols + round(de / 20)
        inside = (sr >= 0) & (sr < n) & (sc >= 0) & (sc < n)
        if inside.mean() < 0.8:
            continue
        shaded = (sun[sr[inside], sc[inside]] < 0.5) | (cld[sr[inside], sc[inside]] >= 0.5)
        toward_sun = (rows - round(ds / 20), cols - round(de / 20))
        ok = (toward_sun[0] >= 0) & (toward_sun[0] < n) & (toward_sun[1] >= 0) & (toward_sun[1] < n)
        wrong = sun[toward_sun[0][ok], toward_sun[1][ok]] < 0.5
        assert shaded.mean() > 0.9, (obj, shaded.mean())
        assert wrong.mean() < 0.5 * shaded.mean()
        checked += 1
    assert checked >= 1
    # Shadowed ground is darker than the same cover in the sun (direct irradiance lost).
    toa4 = p.toa("B8A").compute()
    scl20 = _read(r.truth / "SCL_20m.tif", 1)
    shadow = scl20 == 3
    assert shadow.sum() > 20
    assert np.nanmean(toa4[shadow]) < 0.6 * np.nanmean(toa4[np.isin(scl20, [4, 5]) & (sun == 1)])


def test_spectra_and_atmosphere_are_physical(scene: Callable[[str], SynthResult]) -> None:
    r = scene("base")
    sr = _read(r.truth / "SR_20m.tif")
    scl = _read(r.truth / "SCL_20m.tif", 1)
    scl10 = _read(r.truth / "SCL_10m.tif", 1)
    b = {name: sr[i] for i, name in enumerate(BANDS)}

    def pure(code: int) -> np.ndarray:
        """20 m pixels made of four 10 m pixels of one class (mixed pixels are mixtures)."""
        return (scl10 == code).reshape(183, 2, 183, 2).all(axis=(1, 3))

    veg, soil, water = pure(4), pure(5), pure(6)
    assert min(veg.sum(), soil.sum(), water.sum()) > 50
    # Vegetation: red edge, high NIR; water: dark NIR and SWIR.
    assert np.median(b["B8A"][veg] / b["B04"][veg]) > 4
    assert np.all(b["B06"][veg] > b["B05"][veg])
    assert np.median((b["B8A"][veg] - b["B04"][veg]) / (b["B8A"][veg] + b["B04"][veg])) > 0.5
    assert np.median(b["B8A"][soil] / b["B04"][soil]) < 2.5
    assert b["B8A"][water].max() < 0.05 and b["B11"][water].max() < 0.02
    p = _open(r.product)
    clear = _clear20(r)
    toa = {name: p.toa(name, 60).compute() for name in ("B8A", "B09", "B10")}
    clear60 = clear.reshape(61, 3, 61, 3).all(axis=(1, 3))
    # B10 sees almost nothing through the water vapour; B09 is absorbed relative to B8A.
    assert np.nanmax(toa["B10"][clear60]) < 0.005
    land60 = clear60 & (_block(np.isin(scl, [4, 5]).astype(float), 3) == 1)
    assert np.nanmedian(toa["B09"][land60] / toa["B8A"][land60]) < 0.6
    # Opaque clouds are bright and high clouds bright in B10 too.
    cth = _read(r.truth / "CTH_20m.tif", 1)
    thick = _block((scl == 9).astype(float), 3) == 1
    if thick.any():
        assert np.nanmin(p.toa("B02", 60).compute()[thick]) > 0.25
        high = thick & (_block(cth, 3) > 6000)
        if high.any():
            assert np.nanmin(toa["B10"][high]) > 0.05


@pytest.mark.slow
def test_cirrus_snow_nodata_and_saturation(scene: Callable[[str], SynthResult]) -> None:
    r = scene("edge")
    t = _truth(r)
    p = _open(r.product)
    scl10 = _read(r.truth / "SCL_10m.tif", 1)
    scl20 = _read(r.truth / "SCL_20m.tif", 1)
    cir = _read(r.truth / "CIR_20m.tif", 1)
    assert 0.05 < (scl10 == 0).mean() < 0.6
    with rasterio.open(p.band_href("B04")) as ds:
        dn = ds.read(1)
    nodata = scl10 == 0
    assert np.all(dn[nodata] == 0) and np.all(dn[~nodata] > 0)
    assert np.isnan(p.toa("B04").compute()[nodata]).all()
    for row, col in t["saturated_pixels_10m"]:
        if scl10[row, col] != 0:
            assert dn[row, col] == 65535 and scl10[row, col] == 1
    # Thin cirrus: B10 reflectance 0.01-0.04 added; classified 10 where it is not covered.
    cirrus = scl20 == 10
    assert cirrus.sum() > 20
    assert 0.01 <= cir[cirrus].min() and cir.max() <= 0.04 + 1e-6
    b10 = p.toa("B10", 20).compute()
    assert np.nanmin(b10[cirrus]) > 0.009
    # Snow: bright visible, dark SWIR.
    sr = _read(r.truth / "SR_20m.tif")
    snow = scl20 == 11
    if snow.any():
        ndsi = (sr[2] - sr[11]) / (sr[2] + sr[11])
        assert np.median(sr[2][snow]) > 0.6 and np.median(ndsi[snow]) > 0.8
    # The footprint is cut by the swath edge.
    mtd = (r.product / "MTD_MSIL1C.xml").read_text()
    points = re.search(r"<EXT_POS_LIST>([^<]+)<", mtd).group(1).split()  # type: ignore[union-attr]
    assert len(points) // 2 != 5 or (scl10 == 0).mean() < 0.01


@pytest.mark.slow
def test_surface_from_a_real_level2a_product(scene: Callable[[str], SynthResult]) -> None:
    r = scene("surface")
    sr = _read(r.truth / "SR_20m.tif")
    scl = _read(r.truth / "SCL_20m.tif", 1)
    assert set(np.unique(scl)) <= {3, 5, 8, 9, 10}
    # The 200 m source band, averaged from the truth, matches where the source is clear.
    with rasterio.open(SURFACE_SUBSET / "B11.tif") as ds:
        src = ds.read(1).astype(np.float64) / 10000.0
    with rasterio.open(SURFACE_SUBSET / "SCL.tif") as ds:
        src_scl = ds.read(1)
    n = sr.shape[1] // 10
    mine = _block(sr[BANDS.index("B11")][: n * 10, : n * 10], 10)
    # Clear source pixels away from filled ones (the bilinear resampling mixes neighbours).
    ok = ndimage.binary_erosion(src_scl[:n, :n] == 5, iterations=1, border_value=1)
    assert ok.sum() > 20
    assert np.abs(mine - src[:n, :n])[ok].mean() < 0.01
    rho, truth, mask = _invert(r, "B04")
    assert np.abs(rho - truth)[mask].max() < 1e-3


# ---------------------------------------------------------------------------- structure, interoperability


@pytest.mark.slow
def test_both_baselines_encode_and_decode(scene: Callable[[str], SynthResult]) -> None:
    new, old = scene("base"), scene("old")
    for band in ("B02", "B8A", "B09"):
        p_new, p_old = _open(new.product), _open(old.product)
        with rasterio.open(p_new.band_href(band)) as a, rasterio.open(p_old.band_href(band)) as b:
            dn_new, dn_old = a.read(1).astype(int), b.read(1).astype(int)
        assert np.array_equal(dn_new - dn_old, np.full(dn_new.shape, 1000))
        np.testing.assert_array_equal(p_new.toa(band).compute(), p_old.toa(band).compute())
        assert p_new.radiometry.add_offset[band] == -1000 and p_old.radiometry.add_offset[band] == 0
    mtd_old = (old.product / "MTD_MSIL1C.xml").read_text()
    mtd_new = (new.product / "MTD_MSIL1C.xml").read_text()
    assert "Radiometric_Offset_List" not in mtd_old and "PRODUCT_DOI" not in mtd_old
    assert mtd_new.count("<RADIO_ADD_OFFSET") == 13 and "<PROCESSING_BASELINE>05.09<" in mtd_new
    assert 'checksumName="MD5"' in (old.product / "manifest.safe").read_text()
    assert 'checksumName="SHA3-256"' in (new.product / "manifest.safe").read_text()
    assert "_N0209_" in old.product_id and "_N0509_" in new.product_id


@pytest.mark.parametrize(("res", "bands"), [("10m", 4), ("20m", 6), ("60m", 3)])
def test_gdal_sentinel2_driver_opens_the_product(scene: Callable[[str], SynthResult], res: str, bands: int) -> None:
    r = scene("base")
    t = _truth(r)
    epsg = t["tile"]["epsg"]
    n = 366 * 10 // int(res[:-1])
    with rasterio.open(f"SENTINEL2_L1C:{r.product}/MTD_MSIL1C.xml:{res}:EPSG_{epsg}") as ds:
        assert (ds.count, ds.width, ds.height) == (bands, n, n)
        assert ds.crs.to_epsg() == epsg
        step = int(res[:-1])
        assert tuple(ds.transform)[:6] == (step, 0.0, t["tile"]["ulx"], 0.0, -step, t["tile"]["uly"])
        assert ds.tags()["PROCESSING_BASELINE"] == "05.09"
        assert ds.tags(1)["RADIO_ADD_OFFSET"] == "-1000"
        data = ds.read(1)
        band = ds.tags(1)["BANDNAME"]
    band = band if band == "B8A" else f"B{int(band[1:]):02d}"
    with rasterio.open(_open(r.product).band_href(band)) as direct:
        np.testing.assert_array_equal(data, direct.read(1))


def test_reader_and_info_agree_with_the_parameters(scene: Callable[[str], SynthResult]) -> None:
    r = scene("edge")
    t = _truth(r)
    opts = t["options"]
    p = _open(r.product)
    assert p.warnings == ()
    assert (p.level, p.tile_id, p.epsg, p.processing_baseline) == ("L1C", "19UDP", 32619, "04.00")
    assert p.spacecraft == "Sentinel-2B"
    assert p.bands == BANDS
    assert p.sensing_time.isoformat().replace("+00:00", "Z") == t["acquisition"]["sensing_time"]  # type: ignore[union-attr]
    assert p.radiometry.u == pytest.approx(t["radiometry"]["u"], abs=1e-12)
    gb = p.geobox(20)
    assert gb.shape == (96, 96) and (gb.transform.c, gb.transform.f) == (399960.0, 5400000.0)
    assert p.mean_sun_angles().zenith == pytest.approx(t["geometry"]["mean_sun_zenith"], abs=1e-9)  # type: ignore[union-attr]
    result = CliRunner().invoke(main, ["info", str(r.product), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["tile_id"] == "19UDP" and info["processing_baseline"] == "04.00"
    assert info["radio_add_offset"]["B12"] == -1000
    assert info["view_angle_grid_bands"] == list(BANDS) and info["sun_angle_grid"] is True
    for band, (zen, _) in t["geometry"]["mean_view"].items():
        assert info["mean_view_zenith"][band] == pytest.approx(zen, abs=1e-9)
        assert 0.0 <= zen <= 11.5
    assert opts["seed"] == 11 and t["lut_id"] == load_lut().id


def test_safe_layout_manifest_and_truth_files(scene: Callable[[str], SynthResult]) -> None:
    r = scene("base")
    safe = r.product
    assert not list(safe.rglob("*.aux.xml"))
    names = sorted(p.relative_to(safe).as_posix() for p in safe.rglob("*") if p.is_file())
    granule = next(n.split("/")[1] for n in names if n.startswith("GRANULE/"))
    prefix = re.match(r"S2A_MSIL1C_(\d{8}T\d{6})_N0509_R\d{3}_T(\w{5})_", r.product_id)
    assert prefix is not None
    stem = f"GRANULE/{granule}/IMG_DATA/T{prefix.group(2)}_{prefix.group(1)}"
    assert {f"{stem}_{b}.jp2" for b in (*BANDS, "TCI")} <= set(names)
    assert {"MTD_MSIL1C.xml", "manifest.safe", f"GRANULE/{granule}/MTD_TL.xml"} <= set(names)
    with rasterio.open(safe / f"{stem}_B8A.jp2") as ds:
        assert ds.driver == "JP2OpenJPEG" and (ds.width, ds.res) == (183, (20.0, 20.0))
    with rasterio.open(safe / f"{stem}_TCI.jp2") as ds:
        assert (ds.count, ds.dtypes[0]) == (3, "uint8")
    # manifest.safe lists every other file with its size and SHA3-256.
    root = ET.parse(safe / "manifest.safe").getroot()
    listed = {}
    for bs in root.iter("byteStream"):
        href = bs.find("fileLocation").get("href")  # type: ignore[union-attr]
        listed[href[2:]] = (int(bs.get("size")), bs.find("checksum").text)  # type: ignore[arg-type, union-attr]
    assert set(listed) == set(names) - {"manifest.safe"}
    for rel, (size, digest) in listed.items():
        assert (safe / rel).stat().st_size == size
        assert hashlib.sha3_256((safe / rel).read_bytes()).hexdigest().upper() == digest
    # The truth sits beside the SAFE, on the tile grid, with every parameter.
    assert r.truth.parent == safe.parent and not (safe / "truth.json").exists()
    t = _truth(r)
    for key in ("options", "lut_id", "class_codes", "adjacency_km", "acquisition", "clouds", "atmosphere"):
        assert key in t
    assert t["adjacency_km"] == 1.0 and t["class_codes"]["3"] == "CLOUD_SHADOWS"
    for name, res in (("SR_10m", 10), ("SCL_20m", 20), ("AOT_20m", 20), ("CTH_20m", 20)):
        with rasterio.open(r.truth / f"{name}.tif") as ds:
            assert ds.crs.to_epsg() == t["tile"]["epsg"] and ds.res == (res, res)
            assert (ds.transform.c, ds.transform.f) == (t["tile"]["ulx"], t["tile"]["uly"])
    aot = _read(r.truth / "AOT_20m.tif", 1)
    assert abs(float(aot.mean()) - 0.15) < 0.03
    mtd = (safe / "MTD_MSIL1C.xml").read_text()
    assert f"<Cloud_Coverage_Assessment>{round(r.cloudy_percent, 6)!r}<" in mtd


@pytest.mark.slow
def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    cfg = SynthConfig(**SCENES["edge"])
    a = synthesize(cfg, tmp_path / "a")
    b = synthesize(cfg, tmp_path / "b")
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 25
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    c = synthesize(SynthConfig(**{**SCENES["edge"], "seed": 12}), tmp_path / "c")
    assert (
        c.product_id != a.product_id
        or (c.product / "MTD_MSIL1C.xml").read_bytes() != (a.product / "MTD_MSIL1C.xml").read_bytes()
    )
    assert b.product_id == a.product_id


def test_cli_prints_the_product_path_last(tmp_path: Path) -> None:
    args = ["synth", str(tmp_path), "--size", "192", "--seed", "5", "--cloud-cover", "0"]
    args += ["--tile", "T34UCF", "--baseline", "02.09"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "time taken:" in result.output
    product = Path(lines[-1])
    assert product.is_dir() and product.name.endswith(".SAFE") and "_T34UCF_" in product.name
    assert Path(str(product)[: -len(".SAFE")] + ".truth", "truth.json").exists()
    # The same command again: the product exists, so it is refused without --overwrite.
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    bad = CliRunner().invoke(main, ["synth", str(tmp_path), "--size", "100"])
    assert bad.exit_code == 1 and "sen2core: error:" in bad.output and "multiple of 6" in bad.output

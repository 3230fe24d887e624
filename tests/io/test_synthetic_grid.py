"""Synthetic scenes: MGRS tile grid, options, acquisition (no rasters written)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sen2core.errors import ConfigurationError
from sen2core.synthetic import SynthConfig, acquisition, tile_grid

METADATA = Path(__file__).parents[1] / "data" / "metadata"

# Tile corners of real products (MTD_TL.xml Geoposition / tileInfo.json tileGeometry).
REAL_TILES = {
    "T01CCV": (300000, 2000020, 32701), "T01KAB": (99960, 8200000, 32701), "T01LAC": (99960, 8300020, 32701),
    "T01VCG": (300000, 6700020, 32601), "T01WCP": (300000, 7400040, 32601), "T01WCS": (300000, 7700040, 32601),
    "T07HFE": (600000, 6500020, 32707), "T10SDG": (399960, 4200000, 32610), "T11SLT": (300000, 3800040, 32611),
    "T19UDP": (399960, 5400000, 32619), "T22HBD": (199980, 5900020, 32722), "T29RKH": (199980, 2800020, 32629),
    "T33XWJ": (499980, 8900040, 32633), "T34LBP": (199980, 8900020, 32734), "T34UCF": (300000, 6100020, 32634),
    "T34VEL": (499980, 6600000, 32634), "T34VFJ": (600000, 6400020, 32634), "T46RER": (499980, 3100020, 32646),
    "T60CWS": (499980, 1200040, 32760),
}  # fmt: skip


@pytest.mark.parametrize("tile", sorted(REAL_TILES))
def test_tile_grid_matches_real_tiles(tile: str) -> None:
    g = tile_grid(tile)
    assert (g.ulx, g.uly, g.epsg) == REAL_TILES[tile]


def test_tile_grid_matches_every_tile_metadata_fixture() -> None:
    """Every MTD_TL.xml of the committed fixtures whose tile id is in its TILE_ID."""
    checked = 0
    for path in sorted(METADATA.rglob("*.xml")):
        text = path.read_text(encoding="utf-8", errors="replace")
        tid = re.search(r"<TILE_ID[^>]*>[^<]*_T(\d\d[A-Z]{3})_", text)
        ulx = re.search(r"<ULX>(\d+)</ULX>", text)
        uly = re.search(r"<ULY>(\d+)</ULY>", text)
        code = re.search(r"EPSG:(\d+)", text)
        # The stactools "T34LBQ" edge cases are copies of T34LBP's metadata (their
        # tileInfo.json says grid square BP); GDAL's hand-made compact-naming product
        # (granule "FOO") has an invented corner.
        if not (tid and ulx and uly and code) or "T34LBQ" in str(path) or "/FOO/" in str(path):
            continue
        g = tile_grid(tid.group(1))
        assert (g.ulx, g.uly, g.epsg) == (int(ulx.group(1)), int(uly.group(1)), int(code.group(1))), path
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("bad", ["", "T34", "T61UCF", "T34ICF", "T34UCI", "T34UIF", "T34AAA", "T19UAH", "34UCFX"])
def test_tile_grid_rejects_invalid_ids(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        tile_grid(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 100}, "multiple of 6"),
        ({"size": 10986}, "multiple of 6"),
        ({"baseline": "5.09"}, "--baseline"),
        ({"baseline": "02.01"}, "--baseline"),
        ({"spacecraft": "S2C"}, "--spacecraft"),
        ({"cloud_cover": 120.0}, "--cloud-cover"),
        ({"aot": -0.1}, "--aot"),
        ({"date": "2014-01-01"}, "before the launch"),
        ({"date": "yesterday"}, "--date"),
        ({"aerosol": "desert"}, "--aerosol"),
    ],
)
def test_config_rejects_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SynthConfig(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spacecraft", "start", "tile", "absolute", "relative"),
    [
        ("S2A", "2021-09-08T04:27:01.024Z", "46RER", 32448, 133),
        ("S2A", "2020-02-19T11:21:11.024Z", "29RKH", 24344, 37),
        ("S2B", "2023-08-23T09:55:59.024Z", "34UCF", 33753, 122),
        ("S2B", "2019-12-28T21:05:19.024Z", "01CCV", 14683, 71),
        ("S2A", "2019-02-12T19:26:51.024Z", "07HFE", 19029, 13),
    ],
)
def test_acquisition_orbits_and_names_match_real_products(
    spacecraft: str, start: str, tile: str, absolute: int, relative: int
) -> None:
    a = acquisition(SynthConfig(spacecraft=spacecraft, date=start, tile=tile, size=366, baseline="05.09"))
    assert (a.absolute_orbit, a.relative_orbit) == (absolute, relative)
    stamp = start[:19].replace("-", "").replace(":", "")
    assert a.product_id.startswith(f"{spacecraft}_MSIL1C_{stamp}_N0509_R{relative:03d}_T{tile}_")
    assert a.granule_dir.startswith(f"L1C_T{tile}_A{absolute:06d}_")
    assert a.image_prefix == f"T{tile}_{stamp}"
    assert a.tile_id.startswith(f"{spacecraft}_OPER_MSI_L1C_TL_{spacecraft[1:]}PS_")
    assert a.sensing_time > a.datatake_start


def test_acquisition_plain_date_is_a_morning_overpass() -> None:
    a = acquisition(SynthConfig(date="2023-07-15", tile="31TCJ", size=366))
    # 10:30 mean solar time at about 0.6 deg E is about 10:28 UTC.
    assert a.sensing_time.date().isoformat() == "2023-07-15"
    assert 10.2 < a.sensing_time.hour + a.sensing_time.minute / 60 < 10.7
    assert acquisition(SynthConfig(date="2023-07-15", tile="31TCJ", size=366)) == a


def test_detector_grids_look_like_real_ones() -> None:
    """A full tile's viewing grids: 23 x 23 nodes, NaN outside each detector's footprint,
    neighbouring detectors sharing a column of nodes, zenith 0-11 deg, odd and even
    detectors looking along track in opposite directions."""
    import numpy as np

    from sen2core.kernels.angles import utm_to_lonlat
    from sen2core.synthetic import geometry as geo

    g = tile_grid("T31TCJ")
    n = geo.angle_grid_shape(109800.0)
    assert n == 23
    xs, ys = geo.node_coordinates(g.ulx, g.uly, n)
    lon, lat = utm_to_lonlat(xs, ys, g.zone, g.south)
    zen, az = geo.sun_grid(lon, lat, "2023-07-15T10:30:00")
    assert 25 < zen.min() < zen.max() < 35 and 100 < az.mean() < 160
    heading = geo.ground_track_heading(float(lat.mean()))
    assert 190 < heading < 200
    swath = geo.Swath(heading, g.ulx + 54900.0, g.uly - 54900.0, 0.0)
    grids = swath.detector_grids("B04", xs, ys)
    assert len(grids) >= 5
    covered = sum(np.isfinite(z).astype(int) for z, _ in grids.values())
    assert covered.min() >= 1 and covered.max() == 2
    for zen_d, az_d in grids.values():
        valid = np.isfinite(zen_d)
        assert 0 < valid.sum() < n * n and np.isnan(az_d[~valid]).all()
        assert 0.0 <= np.nanmin(zen_d) and np.nanmax(zen_d) < 11.5
    # Where an odd and an even detector both see a node, their azimuths differ.
    dets = sorted(grids)
    for a, b in zip(dets, dets[1:], strict=False):
        both = np.isfinite(grids[a][0]) & np.isfinite(grids[b][0])
        assert both.any()
        assert np.all(np.abs(grids[a][1][both] - grids[b][1][both]) > 1.0)
    # The merged grid a reader builds is complete.
    mz, ma = geo.merged_grid(grids)
    assert np.isfinite(mz).all() and np.isfinite(ma).all()
    # Values are written with six significant digits and read back unchanged.
    v = float(grids[dets[0]][0][np.isfinite(grids[dets[0]][0])][0])
    assert float(f"{v:.6g}") == v


def test_surface_and_snow_are_exclusive() -> None:
    surface = Path(__file__).parents[1] / "data" / "synthetic" / "l2a-T29RKH-subset"
    with pytest.raises(ConfigurationError, match="--snow"):
        SynthConfig(snow=5.0, surface=str(surface))
    with pytest.raises(ConfigurationError, match="--surface"):
        SynthConfig(surface=str(surface / "missing"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"aot": 0.0}, "--aot 0.0: must be in (0.0, 2.0]"),
        ({"wv": 8.5}, "--wv 8.5: must be in (0.0, 8.0]"),
        ({"ozone": float("nan")}, "--ozone nan: must be in (0.1, 0.7]"),
        ({"cirrus": -1.0}, "--cirrus -1.0: must be a percentage from 0 to 100"),
        ({"snow": 101.0}, "--snow 101.0: must be a percentage from 0 to 100"),
        ({"cloud_cover": 120.0}, "--cloud-cover 120.0: must be a percentage from 0 to 100"),
        ({"cloud_cover": 96.0}, "--cloud-cover 96.0: at most 95 (clouds need some sky)"),
        ({"elevation": 4.0}, "--elevation 4.0: must be 0 to 3.5 km"),
        ({"seed": -1}, "--seed -1: must be a non-negative integer"),
        ({"seed": 1.5}, "--seed 1.5: must be a non-negative integer"),
        ({"saturated": 10001}, "--saturated 10001: must be 0 to 10000 pixels"),
        ({"defective": -1}, "--defective -1: must be 0 to 10000 pixels"),
        ({"lost_packets": "3"}, "--lost-packets 3: must be 0 to 10000 pixels"),
        ({"adjacency_km": 0.05}, "adjacency_km 0.05: must be 0.1 to 5 km"),
        ({"cloud_model": "fluffy"}, "--cloud-model 'fluffy': expected one of simple, physical"),
        ({"spacecraft": "S2C"}, "--spacecraft 'S2C': expected one of S2A, S2B"),
        ({"aerosol": "desert"}, "--aerosol 'desert': expected one of continental, maritime"),
        ({"cloud_heights": (5.0, 2.0)}, "--cloud-heights 5.0 2.0: need 0.2 <= min <= max <= 15 km"),
        ({"defective": 3, "baseline": "03.01"},
         "--defective and --lost-packets need quality masks: processing baseline 04.00 or later, not 03.01"),
    ],
)  # fmt: skip
def test_each_option_check_names_the_option_and_its_range(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        SynthConfig(**options)  # type: ignore[arg-type]
    assert str(raised.value) == message

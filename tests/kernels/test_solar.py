"""Solar position (NOAA algorithm) and the Earth-Sun distance correction U."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from sen2core.kernels.angles import utm_to_lonlat
from sen2core.solar import (
    earth_sun_distance,
    julian_day,
    reflectance_conversion_factor,
    solar_position,
)

DATA = Path(__file__).parents[1] / "data" / "metadata"


def test_julian_day_epochs() -> None:
    assert julian_day(dt.datetime(2000, 1, 1, 12, tzinfo=dt.UTC)) == 2451545.0
    assert julian_day("2000-01-01T12:00:00Z") == 2451545.0
    assert julian_day(np.datetime64("1970-01-01T00:00:00")) == 2440587.5
    # Naive datetimes are UTC.
    assert julian_day(dt.datetime(2000, 1, 1, 12)) == 2451545.0


def test_spa_reference_value() -> None:
    # Reda & Andreas (2004), NREL SPA report, example: 2003-10-17 12:30:30 local (UTC-7),
    # Golden, Colorado. Topocentric zenith 50.11162, azimuth 194.34024 (with refraction).
    zen, az = solar_position("2003-10-17T19:30:30Z", 39.742476, -105.1786, refraction=True)
    assert float(zen) == pytest.approx(50.11162, abs=0.01)
    assert float(az) == pytest.approx(194.34024, abs=0.01)


def test_azimuth_convention_and_broadcasting() -> None:
    t = "2021-03-20T12:00:00Z"  # near equinox, solar noon at Greenwich
    zen, az = solar_position(t, np.array([[45.0, -45.0]]), np.array([[0.0], [-60.0]]))
    assert zen.shape == az.shape == (2, 2)
    # 12 UTC at Greenwich is 7.5 min before solar noon (equation of time): the sun is
    # within a few degrees of due south at 45N, of due north at 45S, 45 deg from zenith.
    assert zen[0, 0] == pytest.approx(45.0, abs=0.5) and az[0, 0] == pytest.approx(180.0, abs=4.0)
    assert zen[0, 1] == pytest.approx(45.0, abs=0.5) and min(az[0, 1], 360 - az[0, 1]) < 4.0
    # 60 W at 12 UTC is early morning: sun low in the east.
    assert 60.0 < zen[1, 0] < 90.0 and 60.0 < az[1, 0] < 120.0
    assert np.all((az >= 0) & (az < 360))


def test_refraction_only_lifts_the_sun() -> None:
    z0, _ = solar_position("2022-06-21T06:00:00Z", 48.0, 2.0)
    z1, _ = solar_position("2022-06-21T06:00:00Z", 48.0, 2.0, refraction=True)
    assert 0.0 < float(z0 - z1) < 0.1


def _sun_grid(tile_xml: Path) -> tuple[dt.datetime, int, float, float, np.ndarray, np.ndarray]:
    root = ET.parse(tile_xml).getroot()
    for el in root.iter():
        el.tag = el.tag.rsplit("}", 1)[-1]
    time = dt.datetime.fromisoformat(next(root.iter("SENSING_TIME")).text)
    epsg = int(next(root.iter("HORIZONTAL_CS_CODE")).text.split(":")[1])
    pos = next(p for p in root.iter("Geoposition") if p.get("resolution") == "10")
    grid = next(root.iter("Sun_Angles_Grid"))
    zen = np.array([v.text.split() for v in grid.find("Zenith").iter("VALUES")], dtype=float)
    az = np.array([v.text.split() for v in grid.find("Azimuth").iter("VALUES")], dtype=float)
    return time, epsg, float(pos.find("ULX").text), float(pos.find("ULY").text), zen, az


@pytest.mark.parametrize(
    "tile_xml",
    [
        "stactools-sentinel2/S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE/"
        "GRANULE/L1C_T46RER_A032448_20210908T043714/MTD_TL.xml",
        "stactools-sentinel2/S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE/"
        "GRANULE/L1C_T01LAC_A026481_20200717T221944/MTD_TL.xml",  # antimeridian, southern
        "stactools-sentinel2/S2B_MSIL2A_20220413T150759_N0400_R025_T33XWJ_20220414T082126.SAFE/"
        "GRANULE/L2A_T33XWJ_A026649_20220413T150756/MTD_TL.xml",  # Svalbard, sun zenith 76 deg
        "stactools-sentinel2/S2A_OPER_MSI_L2A_DS_2APS_20230105T201055_S20230105T163809/metadata.xml",  # Antarctica
    ],
)
def test_matches_sentinel2_sun_grids(tile_xml: str) -> None:
    # ESA's 5 km grid values are the reference: every node within 0.1 deg in zenith and
    # 0.35 deg in azimuth (ESA computes per-line sensing times; we use the tile's one).
    time, epsg, ulx, uly, zen_ref, az_ref = _sun_grid(DATA / tile_xml)
    rows, cols = np.indices(zen_ref.shape)
    lon, lat = utm_to_lonlat(ulx + cols * 5000.0, uly - rows * 5000.0, epsg % 100, south=epsg > 32700)
    zen, az = solar_position(time, lat, lon)
    assert np.abs(zen - zen_ref).max() < 0.1
    assert np.abs((az - az_ref + 180.0) % 360.0 - 180.0).max() < 0.35


@pytest.mark.parametrize(
    ("time", "u"),
    [
        ("2023-06-25T23:47:55Z", 0.96817485048713),
        ("2021-01-22T13:42:49Z", 1.03305092950356),
        ("2021-09-08T04:40:48Z", 0.983841990384341),
        ("2022-04-13T15:08:07Z", 0.99707551771009),
        ("2022-04-01T09:03:19Z", 1.00413041106276),
    ],
)
def test_u_matches_metadata(time: str, u: float) -> None:
    # U values from the MTD_MSIL*.xml of the fixtures with these sensing times.
    assert reflectance_conversion_factor(time) == pytest.approx(u, abs=5e-4)


def test_earth_sun_distance_extremes() -> None:
    assert earth_sun_distance("2024-01-03T00:00:00Z") == pytest.approx(0.9833, abs=2e-4)  # perihelion
    assert earth_sun_distance("2024-07-05T00:00:00Z") == pytest.approx(1.0167, abs=2e-4)  # aphelion

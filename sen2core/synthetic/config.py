"""Options of a synthetic scene and the acquisition they imply (times, orbits, names).

Everything a product's names and metadata carry is derived from the options and the
seed, never from the wall clock, so that the same options write the same bytes.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sen2core.errors import ConfigurationError
from sen2core.kernels.angles import utm_to_lonlat
from sen2core.synthetic.mgrs import TILE_SIZE_M, TileGrid, tile_grid

__all__ = ["AEROSOLS", "CLOUD_MODELS", "SPACECRAFT", "Acquisition", "SynthConfig", "acquisition"]

SPACECRAFT = ("S2A", "S2B")
"""Spacecraft the LUT has spectral responses for."""
AEROSOLS = ("continental", "maritime")
"""Aerosol models of the LUT."""
CLOUD_MODELS = ("simple", "physical")
"""Cloud models of the generator (:attr:`SynthConfig.cloud_model`)."""

_BASELINE_RE = re.compile(r"^(\d{2})\.(\d{2})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Launch dates: absolute orbit 1 of each spacecraft.
_LAUNCH = {"S2A": _dt.datetime(2015, 6, 23, tzinfo=_dt.UTC),
           "S2B": _dt.datetime(2017, 3, 7, tzinfo=_dt.UTC)}  # fmt: skip
# One real datatake per spacecraft anchors the orbit count (from the metadata fixtures:
# S2A A026481 on 2020-07-17T22:19:41, S2B A033753 on 2023-08-23T09:55:59).
_ORBIT_ANCHOR = {
    "S2A": (_dt.datetime(2020, 7, 17, 22, 19, 41, tzinfo=_dt.UTC), 26481),
    "S2B": (_dt.datetime(2023, 8, 23, 9, 55, 59, tzinfo=_dt.UTC), 33753),
}
# Relative orbit = ((absolute + k) mod 143) + 1, k checked on those products and T29RKH.
_RELATIVE_ORBIT_SHIFT = {"S2A": 2, "S2B": -27}
_ORBITS_PER_CYCLE = 143
_CYCLE_DAYS = 10.0
# Mean local solar time of the descending node.
_LOCAL_OVERPASS_H = 10.5


@dataclass(frozen=True)
class _Choice:
    """An option that takes one of a few words."""

    name: str
    flag: str
    options: tuple[str, ...]

    def check(self, value: object) -> None:
        if value not in self.options:
            raise ConfigurationError(f"{self.flag} {value!r}: expected one of {', '.join(self.options)}")


@dataclass(frozen=True)
class _Bound:
    """A numeric option within ``[low, high]`` (``(low, high]`` if ``low_open``); ``says`` is the message's
    statement of the range."""

    name: str
    flag: str
    low: float
    high: float
    says: str
    low_open: bool = False
    integer: bool = False

    def check(self, value: float) -> None:
        kind_ok = isinstance(value, int) if self.integer else math.isfinite(value)
        if not (kind_ok and (value > self.low if self.low_open else value >= self.low) and value <= self.high):
            raise ConfigurationError(f"{self.flag} {value}: {self.says}")


_CHOICES = (
    _Choice("spacecraft", "--spacecraft", SPACECRAFT),
    _Choice("cloud_model", "--cloud-model", CLOUD_MODELS),
    _Choice("aerosol", "--aerosol", AEROSOLS),
)
_PERCENT = "must be a percentage from 0 to 100"
_PIXELS = "must be 0 to 10000 pixels"
_BOUNDS = (
    _Bound("aot", "--aot", 0.0, 2.0, "must be in (0.0, 2.0]", low_open=True),
    _Bound("wv", "--wv", 0.0, 8.0, "must be in (0.0, 8.0]", low_open=True),
    _Bound("ozone", "--ozone", 0.1, 0.7, "must be in (0.1, 0.7]", low_open=True),
    _Bound("cloud_cover", "--cloud-cover", 0.0, 100.0, _PERCENT),
    _Bound("cirrus", "--cirrus", 0.0, 100.0, _PERCENT),
    _Bound("snow", "--snow", 0.0, 100.0, _PERCENT),
    _Bound("cloud_cover", "--cloud-cover", 0.0, 95.0, "at most 95 (clouds need some sky)"),
    _Bound("elevation", "--elevation", 0.0, 3.5, "must be 0 to 3.5 km"),
    _Bound("seed", "--seed", 0, math.inf, "must be a non-negative integer", integer=True),
    _Bound("saturated", "--saturated", 0, 10000, _PIXELS, integer=True),
    _Bound("defective", "--defective", 0, 10000, _PIXELS, integer=True),
    _Bound("lost_packets", "--lost-packets", 0, 10000, _PIXELS, integer=True),
    _Bound("adjacency_km", "adjacency_km", 0.1, 5.0, "must be 0.1 to 5 km"),
)


@dataclass(frozen=True)
class SynthConfig:
    """Options of :func:`sen2core.synthetic.synthesize` (the ``sen2core synth`` options)."""

    size: int = 10980
    """Tile edge in 10 m pixels; a multiple of 6 from 60 to 10980 (the upper-left part of the tile)."""
    tile: str = "31TCJ"
    """MGRS tile id (its real UTM zone and corner)."""
    date: str = "2023-07-15"
    """Acquisition date (``YYYY-MM-DD``: local overpass at 10:30 solar time), or the datatake start as
    an ISO 8601 UTC datetime (the time in product names)."""
    spacecraft: str = "S2A"
    """``S2A`` or ``S2B``."""
    baseline: str = "05.09"
    """Processing baseline ``NN.NN``, 02.04 to 05.99; from 04.00 DN carry ``RADIO_ADD_OFFSET`` -1000."""
    aot: float = 0.15
    """Tile mean aerosol optical thickness at 550 nm."""
    wv: float = 2.0
    """Tile mean water vapour column (cm)."""
    aerosol: str = "continental"
    """Aerosol model of the LUT."""
    ozone: float = 0.33
    """Ozone column (cm-atm)."""
    cloud_cover: float = 10.0
    """Opaque cloud cover (% of the tile)."""
    cloud_heights: tuple[float, float] = (1.0, 10.0)
    """Range of opaque cloud-top heights (km above sea level), drawn uniformly per cloud."""
    cloud_model: str = "simple"
    """``simple``: clouds of uniform optical thickness with a narrow (about 80 m) edge, labelled cloud
    from a cover fraction of 0.5, and black shadows (direct sun blocked, no light through the cloud).
    ``physical``: soft fractal edges whose optical thickness thins with the cover fraction, water or
    ice clouds by their top height, shadows lit by the light the cloud transmits and by the sky it
    leaves, with a penumbra; cloud labelled from a cover fraction of 0.2 with the edge band in the
    truth (:mod:`sen2core.synthetic.scene`)."""
    cirrus: float = 0.0
    """Thin cirrus cover (% of the tile with cirrus B10 reflectance >= 0.01)."""
    snow: float = 0.0
    """Snow cover (% of the tile); synthetic surfaces only."""
    dem: bool = False
    """Add synthetic relief (illumination and pressure change with the terrain)."""
    elevation: float = 0.0
    """Base ground elevation (km); the relief rises from it."""
    aux_data: bool = False
    """Write ``AUX_DATA/AUX_CAMSFO`` and ``AUX_ECMWFT`` (GRIB) with the truth's AOT, water vapour, ozone and
    the standard sea-level pressure, as real products carry since baseline 04.00."""
    surface: str | None = None
    """Real Level-2A product folder whose BOA reflectance becomes the surface."""
    seed: int = 0
    """Random seed: the same options and seed give the same bytes."""
    nodata_edge: bool = False
    """Put the tile at the swath edge, with a no-data wedge outside the swath."""
    saturated: int = 0
    """Number of saturated pixels (DN 65535 in every band, flagged in layer 8 of the quality masks)."""
    defective: int = 0
    """Number of defective pixels: normal DN, flagged in layer 5 of every band's quality mask
    (baseline 04.00 and later)."""
    lost_packets: int = 0
    """Number of pixels of lost MSI packets: normal DN, flagged in layer 3 of every band's quality
    mask (baseline 04.00 and later): only the mask tells they carry no signal."""
    adjacency_km: float = 1.0
    """Edge of the box over which the surface is averaged for the adjacency background."""
    lut: str | None = None
    """LUT file (default: the packaged LUT)."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Free-form provenance copied to ``truth.json`` (keep it free of paths and times, or the
    bytes of the truth depend on them)."""

    def __post_init__(self) -> None:
        self.validate()

    @property
    def offset(self) -> int:
        """``RADIO_ADD_OFFSET`` of the baseline (0 before 04.00, -1000 from 04.00)."""
        return -1000 if self.baseline_value >= 4.0 else 0

    @property
    def baseline_value(self) -> float:
        """Processing baseline as a number (5.09)."""
        return float(self.baseline)

    @property
    def grid(self) -> TileGrid:
        """The tile's place in its UTM zone."""
        return tile_grid(self.tile)

    def validate(self) -> None:
        """Check every option: those in :data:`_CHOICES` and :data:`_BOUNDS`, then the options that depend
        on each other or on files.

        Raises
        ------
        ConfigurationError
            With a message naming the option and the accepted values.
        """
        if not isinstance(self.size, int) or self.size % 6 or not 60 <= self.size <= TILE_SIZE_M // 10:
            raise ConfigurationError(
                f"--size {self.size}: must be a multiple of 6 (10 m -> 20 m -> 60 m) from 60 to 10980"
            )
        tile_grid(self.tile)
        for choice in _CHOICES:
            choice.check(getattr(self, choice.name))
        m = _BASELINE_RE.match(self.baseline)
        if m is None or not 2.04 <= float(self.baseline) < 6.0:
            raise ConfigurationError(
                f"--baseline {self.baseline!r}: expected NN.NN from 02.04 (compact SAFE naming) to 05.99, "
                "e.g. 02.09 (no offset) or 05.09 (RADIO_ADD_OFFSET -1000)"
            )
        for bound in _BOUNDS:
            bound.check(getattr(self, bound.name))
        lo_h, hi_h = self.cloud_heights
        if not (0.2 <= lo_h <= hi_h <= 15.0):
            raise ConfigurationError(f"--cloud-heights {lo_h} {hi_h}: need 0.2 <= min <= max <= 15 km")
        if self.snow and self.surface:
            raise ConfigurationError("--snow applies to synthetic surfaces only, not with --surface")
        if (self.defective or self.lost_packets) and self.baseline_value < 4.0:
            raise ConfigurationError("--defective and --lost-packets need quality masks: processing baseline 04.00 "
                                     f"or later, not {self.baseline}")  # fmt: skip
        if self.surface is not None and not Path(self.surface).is_dir():
            raise ConfigurationError(f"--surface {self.surface}: not a directory")
        when = _parse_date(self.date)
        if when is not None and when < _LAUNCH[self.spacecraft]:
            raise ConfigurationError(
                f"--date {self.date}: before the launch of {self.spacecraft} ({_LAUNCH[self.spacecraft]:%Y-%m-%d})"
            )

    def as_dict(self) -> dict[str, Any]:
        """Options as a JSON-serialisable mapping."""
        d = asdict(self)
        d.pop("extra")
        d["cloud_heights"] = list(self.cloud_heights)
        return d


def _parse_date(text: str) -> _dt.datetime | None:
    """UTC datetime of a ``--date`` holding a time; midnight UTC for a plain date."""
    try:
        if _DATE_RE.match(text):
            return _dt.datetime.fromisoformat(text + "T00:00:00+00:00")
        t = _dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"--date {text!r}: expected YYYY-MM-DD or an ISO 8601 UTC datetime") from exc
    return t.replace(tzinfo=_dt.UTC) if t.tzinfo is None else t.astimezone(_dt.UTC)


@dataclass(frozen=True)
class Acquisition:
    """Times, orbits and names of the synthetic product."""

    sensing_time: _dt.datetime
    """Tile sensing time (``MTD_TL`` ``SENSING_TIME``), UTC."""
    datatake_start: _dt.datetime
    """Datatake sensing start (in the product name and band file names), UTC, whole milliseconds."""
    datastrip_start: _dt.datetime
    """Datastrip sensing start, UTC."""
    generation_time: _dt.datetime
    """Product generation time, UTC, whole seconds."""
    absolute_orbit: int
    """Absolute orbit number."""
    relative_orbit: int
    """Relative orbit number (1-143)."""
    centre_lon: float
    """Longitude of the tile centre (deg)."""
    centre_lat: float
    """Latitude of the tile centre (deg)."""
    product_id: str
    """``S2A_MSIL1C_..._Txxxxx_...`` without ``.SAFE``."""
    granule_dir: str
    """``L1C_Txxxxx_Annnnnn_...``."""
    datastrip_dir: str
    """``DS_<centre>_<generation>_S<start>``."""
    tile_id: str
    """``TILE_ID`` of ``MTD_TL.xml``."""
    datastrip_id: str
    """``DATASTRIP_ID``."""
    datatake_id: str
    """``datatakeIdentifier``."""
    image_prefix: str
    """Band file prefix ``Txxxxx_<datatake start>``."""


def _stamp(t: _dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


def acquisition(config: SynthConfig) -> Acquisition:
    """Derive times, orbits and names from the options and the seed.

    A plain ``--date`` is taken as the local date of a 10:30 mean-solar-time overpass at
    the tile centre (so the UTC date can differ near the antimeridian), give or take a
    few minutes drawn from the seed. A datetime is the datatake start; the tile is
    sensed 20 s to 10 min later.
    """
    g = config.grid
    half = TILE_SIZE_M / 2.0
    lon, lat = utm_to_lonlat(g.ulx + half, g.uly - half, g.zone, g.south)
    lon_c, lat_c = float(lon), float(lat)
    rng = np.random.default_rng([config.seed, 0xA0])
    when = _parse_date(config.date)
    assert when is not None
    # The datatake starts when the satellite enters the sensing segment, up to ten
    # minutes before it reaches this tile.
    lead = _dt.timedelta(seconds=int(rng.integers(20, 600)), milliseconds=int(rng.integers(0, 1000)))
    if _DATE_RE.match(config.date):
        hours = _LOCAL_OVERPASS_H - lon_c / 15.0 + float(rng.uniform(-0.05, 0.05))
        sensing = when + _dt.timedelta(seconds=round(hours * 3600.0, 3))
        sensing = sensing.replace(microsecond=(sensing.microsecond // 1000) * 1000)
        datatake = sensing - lead
    else:
        datatake = when.replace(microsecond=(when.microsecond // 1000) * 1000)
        sensing = datatake + lead
    datastrip = datatake - _dt.timedelta(seconds=int(rng.integers(2, 9)))
    generation = datatake + _dt.timedelta(minutes=int(rng.integers(60, 180)), seconds=int(rng.integers(0, 60)))
    generation = generation.replace(microsecond=0)

    anchor_time, anchor_orbit = _ORBIT_ANCHOR[config.spacecraft]
    orbit_days = _CYCLE_DAYS / _ORBITS_PER_CYCLE
    absolute = anchor_orbit + math.floor((datatake - anchor_time).total_seconds() / 86400.0 / orbit_days + 0.5)
    if absolute < 1:
        raise ConfigurationError(f"--date {config.date}: before the first orbit of {config.spacecraft}")
    relative = (absolute + _RELATIVE_ORBIT_SHIFT[config.spacecraft]) % _ORBITS_PER_CYCLE + 1

    spacecraft = config.spacecraft
    bl = config.baseline
    n_bl = bl.replace(".", "")
    centre = f"{spacecraft[1:]}PS" if config.baseline_value >= 4.0 else "SGS_"
    gen, dt_start, ds_start = _stamp(generation), _stamp(datatake), _stamp(datastrip)
    tile = g.tile_id
    return Acquisition(
        sensing_time=sensing,
        datatake_start=datatake,
        datastrip_start=datastrip,
        generation_time=generation,
        absolute_orbit=absolute,
        relative_orbit=relative,
        centre_lon=lon_c,
        centre_lat=lat_c,
        product_id=f"{spacecraft}_MSIL1C_{dt_start}_N{n_bl}_R{relative:03d}_T{tile}_{gen}",
        granule_dir=f"L1C_T{tile}_A{absolute:06d}_{ds_start}",
        datastrip_dir=f"DS_{centre}_{gen}_S{ds_start}",
        tile_id=f"{spacecraft}_OPER_MSI_L1C_TL_{centre}_{gen}_A{absolute:06d}_T{tile}_N{bl}",
        datastrip_id=f"{spacecraft}_OPER_MSI_L1C_DS_{centre}_{gen}_S{ds_start}_N{bl}",
        datatake_id=f"G{spacecraft}_{dt_start}_{absolute:06d}_N{bl}",
        image_prefix=f"T{tile}_{dt_start}",
    )

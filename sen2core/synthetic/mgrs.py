"""Sentinel-2 tile grid: MGRS tile id to UTM CRS and upper-left corner.

A Sentinel-2 tile is named after a Military Grid Reference System 100 km square
(``T34UCF``: UTM zone 34, latitude band U, column letter C, row letter F) and covers
109.8 km x 109.8 km from that square's north-west corner, overlapping its eastern and
southern neighbours by 9.8 km.

The square is found with the standard MGRS lettering (AA scheme): column letters
cycle through three sets of eight (``A-H``, ``J-R``, ``S-Z``) with the zone number;
row letters ``A-V`` (no I, O) repeat every 2000 km of northing and start five letters
later in even zones; the latitude band picks the 2000 km cycle.

ESA's tile corners are not exactly the square's corner: the tiling grid was defined in
geographic coordinates and its corners rounded outwards to the 60 m pixel lattice
anchored at easting 0 and at the equator. So ``ULX = floor(W / 60) * 60`` (for example
399960 for the square edge 400000) and ``ULY`` is the square's northern edge rounded up
(north) to a multiple of 60 m from the equator (6100020 for 6100000, 8300020 for 8300000
in a southern zone whose equator is at northing 10 000 000). This reproduces the
corners of every real tile in the project's fixtures (T01CCV, T01KAB, T01LAC, T01VCG,
T01WCP, T01WCS, T07HFE, T10SDG, T11SLT, T19UDP, T22HBD, T29RKH, T33XWJ, T34LBP, T34UCF,
T34VEL, T34VFJ, T46RER, T60CWS, T01CDL).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sen2core.errors import ConfigurationError

__all__ = ["TILE_SIZE_M", "TileGrid", "tile_grid"]

TILE_SIZE_M = 109800
"""Edge of a Sentinel-2 tile in metres (10980 px at 10 m)."""

_TILE_RE = re.compile(r"^T?(\d{1,2})([C-HJ-NP-X])([A-HJ-NP-Z])([A-HJ-NP-V])$")
_COLUMN_SETS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"
_PIXEL_LATTICE_M = 60
_FALSE_NORTHING_SOUTH = 10_000_000

# Lowest northing (m) of each latitude band along the zone's central meridian, including
# the false northing in the southern hemisphere (NGA/GeoTrans MGRS band table).
_BAND_MIN_NORTHING = {
    "C": 1_100_000, "D": 2_000_000, "E": 2_800_000, "F": 3_700_000, "G": 4_600_000,
    "H": 5_500_000, "J": 6_400_000, "K": 7_300_000, "L": 8_200_000, "M": 9_100_000,
    "N": 0, "P": 800_000, "Q": 1_700_000, "R": 2_600_000, "S": 3_500_000,
    "T": 4_400_000, "U": 5_300_000, "V": 6_200_000, "W": 7_000_000, "X": 7_900_000,
}  # fmt: skip


@dataclass(frozen=True)
class TileGrid:
    """Where a Sentinel-2 tile sits in its UTM zone."""

    tile_id: str
    """MGRS tile id without the ``T`` prefix, e.g. ``"34UCF"``."""
    zone: int
    """UTM zone, 1 to 60."""
    south: bool
    """True for a southern-hemisphere zone (EPSG 327xx)."""
    ulx: int
    """Easting of the upper-left corner (m)."""
    uly: int
    """Northing of the upper-left corner (m)."""

    @property
    def epsg(self) -> int:
        """EPSG code of the WGS 84 / UTM zone."""
        return (32700 if self.south else 32600) + self.zone

    @property
    def latitude_band(self) -> str:
        """MGRS latitude band letter."""
        return self.tile_id[2]

    @property
    def crs_name(self) -> str:
        """CRS name as ESA writes it in ``HORIZONTAL_CS_NAME`` (``WGS84 / UTM zone 34N``)."""
        return f"WGS84 / UTM zone {self.zone:02d}{'S' if self.south else 'N'}"


def tile_grid(tile: str) -> TileGrid:
    """Resolve an MGRS tile id to its UTM zone and upper-left corner.

    Parameters
    ----------
    tile
        Tile id with or without the ``T`` prefix (``"T19UDP"``, ``"19UDP"``),
        case-insensitive.

    Returns
    -------
    TileGrid

    Raises
    ------
    ConfigurationError
        If ``tile`` is not a valid MGRS 100 km square in a UTM zone (polar UPS tiles,
        bands A, B, Y and Z, have no Sentinel-2 tiles).
    """
    m = _TILE_RE.match(tile.strip().upper())
    if m is None:
        raise ConfigurationError(
            f"invalid tile id {tile!r}: expected an MGRS tile like T34UCF (zone 1-60, latitude band C-X, "
            "two 100 km square letters without I and O)"
        )
    zone = int(m.group(1))
    band, col, row = m.group(2), m.group(3), m.group(4)
    if not 1 <= zone <= 60:
        raise ConfigurationError(f"invalid tile id {tile!r}: UTM zone must be 1-60")
    columns = _COLUMN_SETS[(zone - 1) % 3]
    if col not in columns:
        raise ConfigurationError(
            f"invalid tile id {tile!r}: column letter {col} is not used in zone {zone} (letters {columns})"
        )
    west = (columns.index(col) + 1) * 100_000
    row_index = (_ROW_LETTERS.index(row) - (5 if zone % 2 == 0 else 0)) % len(_ROW_LETTERS)
    south_edge = row_index * 100_000
    min_northing = _BAND_MIN_NORTHING[band]
    # Lift the square into the 2000 km row cycle of the band. The cycle starts one square
    # below the band's lowest northing: squares straddling the band's southern edge carry
    # its letter (T01CDL, whose southern edge is 1000 km, is a real tile of band C).
    while south_edge < min_northing - 100_000:
        south_edge += 2_000_000
    # A band is about 890 km tall (X: 1330 km), so only ten or so row letters occur in it.
    if south_edge - min_northing >= (1_400_000 if band == "X" else 1_000_000):
        raise ConfigurationError(f"invalid tile id {tile!r}: row letter {row} does not occur in band {band}")
    south = band < "N"
    north_edge = south_edge + 100_000
    equator = _FALSE_NORTHING_SOUTH if south else 0
    lattice = _PIXEL_LATTICE_M
    ulx = math.floor(west / lattice) * lattice
    uly = equator + math.ceil((north_edge - equator) / lattice) * lattice
    return TileGrid(tile_id=f"{zone:02d}{band}{col}{row}", zone=zone, south=south, ulx=ulx, uly=uly)

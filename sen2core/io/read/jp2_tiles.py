"""Tiles of a JPEG 2000 file that decode to the same pixels, found from the coded bytes alone.

An L1C quality mask (``MSK_QUALIT_Bxx.jp2``) is eight 0/1 layers at the band's full size:
decoding one costs as much as decoding a band (7 s for a 10 m mask of a full tile, one
thread), yet almost all its tiles are empty and coded identically (98 of the 121 tiles of
a real baseline 05.10 ``MSK_QUALIT_B02``). Two tiles decode to the same pixels when their
coded bytes are the same *and* the codestream lays out the same geometry inside them
(wavelet parities, code-block and precinct boundaries, which follow the tile's position
in the image); :func:`repeated_tiles` checks both, so a reader may decode one tile of a
group and copy it to the others, and get exactly what decoding each would give.

Only the main header and the tile-part headers are parsed (ITU-T T.800 markers ``SIZ``,
``COD``, ``COC``, ``SOT``); a file this module cannot vouch for (packed packet headers in
the main header, coding style changed inside a tile, anything it does not recognise)
gets ``None``, and is decoded tile by tile as before.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

__all__ = ["RepeatedTiles", "repeated_tiles"]

_SOC, _SOT, _SOD, _EOC = 0xFF4F, 0xFF90, 0xFF93, 0xFFD9
_SIZ, _COD, _COC, _PPM = 0xFF51, 0xFF52, 0xFF53, 0xFF60
#: Precinct exponent when ``COD`` gives none (precincts of 2**15: the whole resolution).
_MAX_PRECINCT = 15


@dataclass(frozen=True)
class RepeatedTiles:
    """Which tiles of a JPEG 2000 file decode to the same pixels as an earlier tile.

    Tiles are numbered in raster order (``row * tiles_across + col``), as in the codestream.
    """

    shape: tuple[int, int]
    """Image size ``(rows, cols)``."""
    tile: tuple[int, int]
    """Nominal tile size ``(rows, cols)``; the last row and column of tiles may be smaller."""
    first: tuple[int, ...]
    """For each tile, the first tile with the same coded bytes and geometry (itself if none earlier)."""

    @property
    def tiles_across(self) -> int:
        return -(-self.shape[1] // self.tile[1])

    def representative(self, row: int, col: int) -> int:
        """The first tile decoding to the same pixels as the tile holding pixel ``(row, col)``."""
        return self.first[(row // self.tile[0]) * self.tiles_across + col // self.tile[1]]

    def repeated(self, tile: int) -> bool:
        """Whether another tile decodes to the same pixels as ``tile``."""
        return self.first.count(self.first[tile]) > 1

    @property
    def distinct(self) -> int:
        """Tiles that must be decoded at least once."""
        return len(set(self.first))


@dataclass(frozen=True)
class _Coding:
    """What the geometry inside a tile-component depends on (``COD``/``COC``)."""

    levels: int
    cblk: tuple[int, int]
    """Code-block exponents (width, height)."""
    precincts: tuple[tuple[int, int], ...]
    """Precinct exponents (width, height) per resolution, lowest first."""


def repeated_tiles(data: bytes) -> RepeatedTiles | None:
    """Group the tiles of a JPEG 2000 file (JP2 boxes or a raw codestream) that decode alike.

    Returns None when the file is not a codestream this module can vouch for: packed
    packet headers in the main header (``PPM``: the tile bytes then do not hold their
    packet headers), a coding style set inside a tile-part header, image or tile offsets
    other than 0, a tile missing, or bytes it cannot parse.
    """
    try:
        return _repeated(_codestream(data))
    except (struct.error, IndexError, ValueError, KeyError):
        return None


def _codestream(data: bytes) -> bytes:
    """The contiguous codestream of a JP2 file (its ``jp2c`` box), or the data if it is one."""
    if data[:2] == b"\xff\x4f":
        return data
    pos = 0
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        head = 8
        if length == 1:
            length, head = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif length == 0:
            length = len(data) - pos
        if kind == b"jp2c":
            return data[pos + head : pos + length]
        if length < head:
            break
        pos += length
    raise ValueError("no codestream")


def _repeated(cs: bytes) -> RepeatedTiles | None:
    if struct.unpack(">H", cs[:2])[0] != _SOC:
        return None
    pos = 2
    siz: tuple[int, ...] | None = None
    steps: list[tuple[int, int]] = []
    cod: bytes | None = None
    coc: dict[int, bytes] = {}
    while True:
        (marker,) = struct.unpack(">H", cs[pos : pos + 2])
        if marker == _SOT:
            break
        (length,) = struct.unpack(">H", cs[pos + 2 : pos + 4])
        body = cs[pos + 4 : pos + 2 + length]
        if marker == _PPM:
            return None
        if marker == _SIZ:
            siz = struct.unpack(">H8IH", body[:36])
            steps = [(body[36 + 3 * c + 1], body[36 + 3 * c + 2]) for c in range(siz[9])]
        elif marker == _COD:
            cod = body
        elif marker == _COC:
            wide = siz is not None and siz[9] >= 257
            comp = struct.unpack(">H", body[:2])[0] if wide else body[0]
            coc[comp] = body[2 if wide else 1 :]  # Scoc, then SPcoc
        pos += 2 + length
    if siz is None or cod is None:
        return None
    _, width, height, x_off, y_off, tile_w, tile_h, tx_off, ty_off, comps = siz
    if x_off or y_off or tx_off or ty_off or tile_w <= 0 or tile_h <= 0:
        return None
    # COD: Scod, SGcod (4 bytes), then SPcod; a COC of a component replaces its SPcod.
    codings = [_coding(coc[c][1:], coc[c][0]) if c in coc else _coding(cod[5:], cod[0]) for c in range(comps)]
    across, down = -(-width // tile_w), -(-height // tile_h)
    parts: dict[int, list[bytes]] = {}
    while pos < len(cs):
        (marker,) = struct.unpack(">H", cs[pos : pos + 2])
        if marker == _EOC:
            break
        if marker != _SOT:
            return None
        index, length = struct.unpack(">HI", cs[pos + 4 : pos + 10])
        end = len(cs) - 2 if length == 0 else pos + length
        if end > len(cs):
            return None  # truncated: left to the decoder to report
        if _sets_coding(cs, pos + 12, end):
            return None
        parts.setdefault(index, []).append(cs[pos + 10 : end])  # TPsot, TNsot and the tile-part
        pos = end
    if sorted(parts) != list(range(across * down)):
        return None
    seen: dict[tuple[object, ...], int] = {}
    first = []
    for index in range(across * down):
        row, col = divmod(index, across)
        box = (col * tile_w, row * tile_h, min((col + 1) * tile_w, width), min((row + 1) * tile_h, height))
        digest = hashlib.sha256(b"".join(struct.pack(">I", len(p)) + p for p in parts[index])).digest()
        key = (digest, *(_geometry(box, step, coding) for step, coding in zip(steps, codings, strict=True)))
        first.append(seen.setdefault(key, index))
    return RepeatedTiles((height, width), (tile_h, tile_w), tuple(first))


def _coding(style_params: bytes, style: int) -> _Coding:
    """Decomposition levels, code-block and precinct exponents from the ``SPcod``/``SPcoc`` fields.

    ``style_params`` starts at the levels byte; ``style`` is ``Scod``/``Scoc`` (bit 0: precincts given).
    """
    levels, xcb, ycb = style_params[0], style_params[1] + 2, style_params[2] + 2
    if style & 1:
        packed = style_params[5 : 5 + levels + 1]
        if len(packed) != levels + 1:
            raise ValueError("short precinct list")
        precincts = tuple((p & 0x0F, p >> 4) for p in packed)
    else:
        precincts = ((_MAX_PRECINCT, _MAX_PRECINCT),) * (levels + 1)
    return _Coding(levels, (xcb, ycb), precincts)


def _sets_coding(cs: bytes, pos: int, end: int) -> bool:
    """Whether a tile-part header (from after ``SOT`` to ``SOD``) holds ``COD`` or ``COC``."""
    while pos < end:
        (marker,) = struct.unpack(">H", cs[pos : pos + 2])
        if marker == _SOD:
            return False
        if marker in (_COD, _COC):
            return True
        pos += 2 + struct.unpack(">H", cs[pos + 2 : pos + 4])[0]
    raise ValueError("tile-part without SOD")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _inner_boundary(start: int, end: int, exponent: int) -> int | None:
    """Offset from ``start`` of the first multiple of ``2**exponent`` strictly inside ``(start, end)``."""
    offset = -start % (1 << exponent)
    return offset if 0 < offset < end - start else None


def _geometry(box: tuple[int, int, int, int], step: tuple[int, int], coding: _Coding) -> tuple[object, ...]:
    """Everything of a tile-component's layout that depends on where the tile lies, up to a shift.

    Per resolution: its size, the parity of its origin (which samples the inverse wavelet
    takes as low-pass) and where precinct boundaries cut it; per sub-band: its size and
    where code-block and precinct boundaries cut it (ITU-T T.800 B.5-B.7). Two tiles with
    equal coded bytes and equal geometry decode to equal pixels.
    """
    x0, y0 = _ceil_div(box[0], step[0]), _ceil_div(box[1], step[1])
    x1, y1 = _ceil_div(box[2], step[0]), _ceil_div(box[3], step[1])
    out: list[object] = []
    levels = coding.levels
    for r in range(levels + 1):
        scale = 1 << (levels - r)
        rx0, ry0, rx1, ry1 = (_ceil_div(v, scale) for v in (x0, y0, x1, y1))
        ppx, ppy = coding.precincts[r]
        out.append((rx1 - rx0, ry1 - ry0, rx0 % 2, ry0 % 2,
                    _inner_boundary(rx0, rx1, ppx), _inner_boundary(ry0, ry1, ppy)))  # fmt: skip
        # Sub-bands of this resolution: LL at r = 0, HL, LH and HH above, at decomposition nb.
        nb = levels if r == 0 else levels - r + 1
        bands = ((0, 0),) if r == 0 else ((1, 0), (0, 1), (1, 1))
        shrink = 0 if r == 0 else 1
        cbx, cby = min(coding.cblk[0], ppx - shrink), min(coding.cblk[1], ppy - shrink)
        for xo, yo in bands:
            half = (1 << (nb - 1)) if nb > 0 else 0
            bx0, bx1 = (_ceil_div(v - half * xo, 1 << nb) for v in (x0, x1))
            by0, by1 = (_ceil_div(v - half * yo, 1 << nb) for v in (y0, y1))
            out.append((bx1 - bx0, by1 - by0,
                        _inner_boundary(bx0, bx1, max(cbx, 0)), _inner_boundary(by0, by1, max(cby, 0)),
                        _inner_boundary(bx0, bx1, max(ppx - shrink, 0)),
                        _inner_boundary(by0, by1, max(ppy - shrink, 0))))  # fmt: skip
    return tuple(out)

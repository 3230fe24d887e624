"""Quality masks decoded once per group of tiles coded alike: the same pixels as tile by tile."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.transform import Affine

from sen2core.io.read.bands import read_layers
from sen2core.io.read.jp2_tiles import repeated_tiles

QI = (Path(__file__).parents[1] / "data" / "l1c-T31TCJ-N0510"
      / "S2A_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244.SAFE" / "GRANULE"
      / "L1C_T31TCJ_A044807_20240120T105433" / "QI_DATA")  # fmt: skip


def _read(path: Path, window: tuple[int, int, int, int], **kw: object) -> np.ndarray:
    return read_layers(str(path), (1, 2, 3, 4, 5, 6, 7, 8), *window, product="P", what="quality mask",
                       display=path.name, gdal_options={}, **kw)  # type: ignore[arg-type]  # fmt: skip


def _mask(path: Path, shape: tuple[int, int], tile: int, flags: dict[tuple[int, int], int], **options: str) -> None:
    """An 8-layer 0/1 lossless JPEG 2000 mask with ``flags[(row, col)] = layer``."""
    data = np.zeros((8, *shape), dtype=np.uint8)
    for (r, c), layer in flags.items():
        data[layer - 1, r, c] = 1
    profile = {"driver": "GTiff", "width": shape[1], "height": shape[0], "count": 8, "dtype": "uint8",
               "crs": "EPSG:32631", "transform": Affine(10.0, 0.0, 300000.0, 0.0, -10.0, 5000040.0)}  # fmt: skip
    scratch = path.with_suffix(".tif")
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(scratch, "w", **profile) as ds:
            ds.write(data)
        rasterio.shutil.copy(scratch, path, driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES", YCC="NO",
                             BLOCKXSIZE=str(tile), BLOCKYSIZE=str(tile), **options)  # fmt: skip
    scratch.unlink()
    with rasterio.open(path) as ds:
        assert ds.block_shapes[0] == (tile, tile)


def test_real_masks_group_their_empty_tiles() -> None:
    b02 = repeated_tiles((QI / "MSK_QUALIT_B02.jp2").read_bytes())
    assert b02 is not None
    # 11 x 11 tiles of 1024 px: the empty interior tiles, the empty right and bottom edge
    # tiles, the corner, and the few tiles with flags of this product.
    assert (b02.shape, b02.tile, len(b02.first), b02.distinct) == ((10980, 10980), (1024, 1024), 121, 6)
    assert b02.representative(5000, 5000) == b02.representative(9000, 1000) == 0
    # The right-edge tiles (740 px wide) are not copies of the interior ones.
    assert b02.representative(0, 10500) == 10 and b02.representative(5000, 10500) == 10


def test_a_real_mask_reads_the_same_by_groups() -> None:
    path = QI / "MSK_QUALIT_B10.jp2"  # 1830 px, 8 x 8 tiles of 256 px, 4 pixels flagged in layer 7
    repeats = repeated_tiles(path.read_bytes())
    assert repeats is not None and (len(repeats.first), repeats.distinct) == (64, 6)
    for window in ((0, 1830, 0, 1830), (500, 1400, 600, 1000)):
        by_tile, by_group = _read(path, window), _read(path, window, repeats=repeats)
        assert np.array_equal(by_tile, by_group)
    assert by_tile.sum(axis=(1, 2)).tolist() == [0, 0, 0, 0, 0, 0, 3, 0]  # the copies are not all of zeros


def test_flags_in_tiles_coded_alike_come_back_where_they_were(tmp_path: Path) -> None:
    path = tmp_path / "mask.jp2"
    # 5 x 5 tiles of 64 px; one pattern at the same place in tiles (0, 1) and (2, 3), another in the corner tile.
    flags = {(10, 64 + 7): 5, (20, 64 + 30): 8, (128 + 10, 192 + 7): 5, (128 + 20, 192 + 30): 8, (290, 300): 3}
    _mask(path, (300, 320), 64, flags)
    repeats = repeated_tiles(path.read_bytes())
    assert repeats is not None
    assert repeats.representative(140, 200) == repeats.representative(10, 70) == 1  # tile (2, 3) is tile (0, 1)
    assert repeats.representative(100, 100) == 0 and repeats.representative(290, 300) == 24
    for window in ((0, 300, 0, 320), (15, 250, 5, 317)):
        by_group = _read(path, window, repeats=repeats)
        assert np.array_equal(by_group, _read(path, window))
    layers = np.argwhere(_read(path, (0, 300, 0, 320), repeats=repeats) == 1)
    assert sorted((int(r), int(c)) for _, r, c in layers) == sorted(flags)


def test_tiles_coded_alike_at_other_wavelet_phases_are_not_grouped(tmp_path: Path) -> None:
    path = tmp_path / "mask.jp2"
    # Tiles of 48 px under 5 decomposition levels: a tile starting at 48 splits its samples
    # between low and high pass otherwise than one at 0 or 96, so equal bytes are not enough.
    _mask(path, (192, 192), 48, {}, RESOLUTIONS="5")
    repeats = repeated_tiles(path.read_bytes())
    assert repeats is not None and repeats.tile == (48, 48)
    assert repeats.representative(0, 48) != repeats.representative(0, 0)
    assert repeats.representative(0, 96) != repeats.representative(0, 48)
    assert np.array_equal(_read(path, (0, 192, 0, 192), repeats=repeats), _read(path, (0, 192, 0, 192)))


def test_precincts_declared_in_the_file_are_honoured(tmp_path: Path) -> None:
    path = tmp_path / "mask.jp2"
    flags = {(3, 3): 8, (64 + 3, 64 + 3): 8, (130, 140): 5}
    _mask(
        path,
        (192, 256),
        64,
        flags,
        RESOLUTIONS="3",
        PRECINCTS="{32,32},{16,16}",
        CODEBLOCK_WIDTH="16",
        CODEBLOCK_HEIGHT="16",
    )
    repeats = repeated_tiles(path.read_bytes())
    assert repeats is not None and repeats.representative(67, 67) == 0
    assert np.array_equal(_read(path, (0, 192, 0, 256), repeats=repeats), _read(path, (0, 192, 0, 256)))


def test_codestreams_it_cannot_vouch_for_are_left_to_the_decoder() -> None:
    data = (QI / "MSK_QUALIT_B09.jp2").read_bytes()
    start = data.index(b"\xff\x4f\xff\x51")
    (siz_length,) = struct.unpack(">H", data[start + 4 : start + 6])
    cut = start + 4 + siz_length
    # Packed packet headers in the main header (PPM): the tiles' bytes no longer hold all they decode from.
    with_ppm = data[:cut] + b"\xff\x60\x00\x03\x00" + data[cut:]
    assert repeated_tiles(with_ppm) is None
    assert repeated_tiles(data[:cut]) is None  # cut before the first tile
    assert repeated_tiles(b"not a JPEG 2000 file") is None
    # A raw codestream (no JP2 boxes) is read as the boxed one.
    raw = repeated_tiles(data[start:])
    assert raw is not None and raw == repeated_tiles(data)


@pytest.mark.parametrize("wrong", ["shape", "tile"])
def test_groups_of_another_file_are_ignored(tmp_path: Path, wrong: str) -> None:
    path = tmp_path / "mask.jp2"
    _mask(path, (128, 128), 64, {(5, 5): 8})
    repeats = repeated_tiles(path.read_bytes())
    assert repeats is not None
    other = tmp_path / "other.jp2"
    if wrong == "shape":
        _mask(other, (128, 192), 64, {(5, 5): 8, (5, 69): 8, (5, 133): 8})
    else:
        _mask(other, (128, 128), 32, {(5, 5): 8})
    # Groups stated for one file and applied to another (a replaced file) must not copy tiles.
    assert np.array_equal(_read(other, (0, 128, 0, 128), repeats=repeats), _read(other, (0, 128, 0, 128)))

"""Bands kept in files by the decode stage: read back exactly, and no scratch left behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from sen2core import stages as stages_module
from sen2core.errors import BandReadError, OutputError
from sen2core.io.read import bands as io_lazy
from sen2core.io.read.bands import BandSource, decode_to_files, dn_array, read_header
from sen2core.pipeline import INPUT_BANDS, ProcessingConfig, process_product

# 1.8 km chunks: 3 x 3 chunk blocks on the 3.66 km scene, the last ones narrower.
CHUNK_M = 1800.0


def _hidden(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_dir()]


@pytest.mark.slow
def test_bands_are_decoded_once_into_files_and_leave_no_scratch(cloudy_l1c: Path, tmp_path: Path) -> None:
    seen: dict[str, list[str]] = {}

    def progress(stage: str) -> None:
        # While the classification runs, the digital numbers are band files beside the output.
        if stage == "screening":
            seen["bands"] = sorted(p.name for p in (tmp_path / "out").rglob(".bands/*"))

    result = process_product(cloudy_l1c, tmp_path / "out", ProcessingConfig(chunk_m=CHUNK_M), progress=progress)
    assert result.status == "done"
    # Beside each band, the record of its quality mask; and the decode stage's checksum and quality records
    # (no QUALITY.npy: the product has no saturated or defective pixel).
    assert seen["bands"] == sorted([*(f"{b}.npy" for b in (*INPUT_BANDS, "B08")),
                                    *(f"{b}.quality.npz" for b in (*INPUT_BANDS, "B08")),
                                    "integrity.record", "l1c_quality.record"])  # fmt: skip
    assert _hidden(tmp_path / "out") == []


@pytest.mark.slow
def test_a_failed_run_removes_its_kept_inputs(
    cloudy_l1c: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        kept = list((tmp_path / "out").rglob("*.npy"))
        assert kept, "the inputs were not kept in files"
        raise OutputError("disk full")

    monkeypatch.setattr(stages_module, "store_delayed", fail)
    with pytest.raises(OutputError, match="disk full"):
        process_product(cloudy_l1c, tmp_path / "out", ProcessingConfig(chunk_m=CHUNK_M))
    assert list((tmp_path / "out").rglob("*.npy")) == []
    assert _hidden(tmp_path / "out") == []
    # No empty {tile}/{yyyy}/{mm}/{dd} folders left either: they would look like a product on its way.
    assert list((tmp_path / "out").rglob("*")) == []


def test_only_runs_with_10m_outputs_correct_the_10m_bands() -> None:
    assert ProcessingConfig().corrects_10m and ProcessingConfig(resolution=10).corrects_10m
    assert not ProcessingConfig(resolution=20).corrects_10m
    assert not ProcessingConfig(sc_only=True).corrects_10m
    assert ProcessingConfig(resolution=60).working_resolution == 60 and ProcessingConfig().working_resolution == 20


def _jp2(path: Path, data: np.ndarray, tile: int) -> Path:
    profile = dict(
        driver="JP2OpenJPEG",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype="uint16",
        crs="EPSG:32632",
        transform=Affine(10, 0, 600000, 0, -10, 5000000),
        QUALITY="100",
        REVERSIBLE="YES",
        BLOCKXSIZE=str(tile),
        BLOCKYSIZE=str(tile),
        RESOLUTIONS="1",
    )
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
    return path


def test_bands_decoded_by_strips_of_tiles_read_back_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = (np.arange(200 * 150, dtype=np.uint32).reshape(200, 150) * 7 % 60000).astype(np.uint16) + 1
    path = str(_jp2(tmp_path / "B04.jp2", values, tile=64))
    ident = dict(product="S2X_TEST", band="B04", display="S2X_TEST/B04.jp2", gdal_options={})
    header = read_header(path, **ident)
    assert header.block_rows == 64
    source = BandSource(path, **ident, shape=header.shape, block_rows=header.block_rows)
    # By default a strip is 1024 rows of whole tiles: here the whole raster.
    assert source.strips() == [(0, 200)]
    monkeypatch.setattr(io_lazy, "STRIP_MIN_ROWS", 100)
    assert source.strips() == [(0, 128), (128, 200)]
    chunks = ((70, 70, 60), (50, 50, 50))  # not aligned with the tiles
    kept = decode_to_files({"B04": source}, {"B04": chunks}, tmp_path / "kept")["B04"]
    assert (tmp_path / "kept" / "B04.npy").is_file()
    assert kept.chunks == chunks and kept.dtype == np.uint16
    windowed = dn_array(path, chunks=chunks, **ident)
    np.testing.assert_array_equal(kept.compute(), values)
    np.testing.assert_array_equal(windowed.compute(), values)
    (tmp_path / "kept" / "B04.npy").unlink()
    with pytest.raises(OutputError, match=r"B04\.npy: cannot read kept rows 0:70, cols 0:50"):
        kept.blocks[0, 0].compute()


def test_a_corrupt_band_fails_while_it_is_decoded(tmp_path: Path) -> None:
    values = np.ones((100, 100), dtype=np.uint16)
    path = _jp2(tmp_path / "B04.jp2", values, tile=50)
    ident = dict(product="S2X_TEST", band="B04", display="S2X_TEST/B04.jp2", gdal_options={})
    header = read_header(str(path), **ident)
    path.write_bytes(path.read_bytes()[:400])  # header kept, code-streams cut
    source = BandSource(str(path), **ident, shape=header.shape, block_rows=header.block_rows)
    with pytest.raises(BandReadError, match=r"S2X_TEST: band B04: cannot decode rows 0:100"):
        decode_to_files({"B04": source}, {"B04": ((100,), (100,))}, tmp_path / "kept")

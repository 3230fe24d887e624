"""Inputs kept in files (``ProcessingConfig.keep_inputs``): the same product, no scratch left behind."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio

from sen2core import lazy
from sen2core import pipeline as pipeline_module
from sen2core.errors import ConfigurationError, OutputError
from sen2core.io.lazy import keep_in_files
from sen2core.pipeline import INPUT_BANDS, ProcessingConfig, process_product
from sen2core.synthetic import SynthConfig, synthesize

# 1.8 km chunks: 3 x 3 chunk blocks on the 3.66 km scene, the last ones narrower.
CHUNK_M = 1800.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("keep-l1c")
    return synthesize(SynthConfig(size=366, seed=11, tile="32TQM", date="2023-07-15", cloud_cover=20.0), root).product


def _rasters(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted(folder.rglob("*.tif")):
        with rasterio.open(p) as ds:
            out[p.name] = ds.read()
    return out


def _hidden(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_dir()]


def test_inputs_in_files_make_the_same_product_and_leave_no_scratch(scene: Path, tmp_path: Path) -> None:
    seen: dict[str, list[str]] = {}

    def progress(stage: str) -> None:
        # While the classification runs, the digital numbers are block files beside the output.
        if stage == "scene classification":
            seen["bands"] = sorted(p.name for folder in _hidden(tmp_path / "files") for p in folder.iterdir())
            seen["blocks"] = sorted(str(p.relative_to(p.parents[1])) for p in (tmp_path / "files").rglob("*.npy"))

    in_files = process_product(scene, tmp_path / "files", ProcessingConfig(chunk_m=CHUNK_M), progress=progress)
    in_memory = process_product(scene, tmp_path / "memory", ProcessingConfig(chunk_m=CHUNK_M, keep_inputs="memory"))
    assert in_files.status == in_memory.status == "done"
    assert seen["bands"] == sorted(INPUT_BANDS)
    # B02 at 10 m: 366 px in 180 px chunks, so blocks start at rows and columns 0, 180 and 360.
    assert [b for b in seen["blocks"] if b.startswith("B02/")] == [
        f"B02/{r}-{c}.npy" for r in (0, 180, 360) for c in (0, 180, 360)
    ]
    files, memory = _rasters(Path(in_files.output_dir)), _rasters(Path(in_memory.output_dir))
    assert sorted(files) == sorted(memory) and len(files) == 19
    for name, data in files.items():
        np.testing.assert_array_equal(data, memory[name], err_msg=name)
    assert _hidden(tmp_path / "files") == [] and _hidden(tmp_path / "memory") == []


def test_a_failed_run_removes_its_kept_inputs(scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        kept = list((tmp_path / "out").rglob("*.npy"))
        assert kept, "the inputs were not kept in files"
        raise OutputError("disk full")

    monkeypatch.setattr(pipeline_module, "write_product", fail)
    with pytest.raises(OutputError, match="disk full"):
        process_product(scene, tmp_path / "out", ProcessingConfig(chunk_m=CHUNK_M))
    assert list((tmp_path / "out").rglob("*.npy")) == []
    assert _hidden(tmp_path / "out") == []


def test_only_runs_that_read_the_bands_again_keep_them(scene: Path, tmp_path: Path) -> None:
    assert ProcessingConfig().rereads_inputs and ProcessingConfig(resolution=10).rereads_inputs
    assert not ProcessingConfig(resolution=20).rereads_inputs
    assert not ProcessingConfig(sc_only=True).rereads_inputs
    with pytest.raises(ConfigurationError, match="keep_inputs must be one of files, memory, not 'disk'"):
        ProcessingConfig(keep_inputs="disk")


def test_kept_blocks_read_back_exactly(tmp_path: Path) -> None:
    values = np.arange(7 * 11, dtype=np.uint16).reshape(7, 11) * 13
    source = da.from_array(values, chunks=((3, 4), (5, 5, 1)))
    kept = keep_in_files({"B04": source}, tmp_path)["B04"]
    assert kept.chunks == source.chunks and kept.dtype == np.uint16
    np.testing.assert_array_equal(kept.compute(), values)
    # The files hold the data: the graph no longer contains the source.
    assert not any(k[0] == source.name for k in kept.__dask_graph__() if isinstance(k, tuple))
    assert {p.name for p in (tmp_path / "B04").iterdir()} == {f"{r}-{c}.npy" for r in (0, 3) for c in (0, 5, 10)}
    (tmp_path / "B04" / "3-5.npy").unlink()
    with pytest.raises(OutputError, match=r"B04/3-5\.npy: kept input block missing"):
        kept.compute()


def test_inside_a_window_nothing_is_computed_ahead(tmp_path: Path) -> None:
    source = da.ones((4, 4), chunks=2, dtype=np.uint16)
    with lazy.window(rows=(0, 1), cols=(0, 1), known={}):
        kept = lazy.keep({"B04": source}, tmp_path)
    assert kept["B04"] is source
    assert list(tmp_path.iterdir()) == []

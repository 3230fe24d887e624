"""Staged raster writing: stores computed group by group, each group encoded while the next is computed."""

from __future__ import annotations

from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from sen2core.errors import OutputError
from sen2core.io.read.metadata import GeoBox
from sen2core.io.write import raster as write
from sen2core.io.write.raster import RasterSpec, cog_tasks


def _outputs() -> dict[str, tuple[da.Array, RasterSpec]]:
    """Two 10 m rasters and one 20 m raster of one 12 km square (larger than a COG block: overviews)."""
    out = {}
    for name, res, seed in (("A_10m.tif", 10, 1), ("B_20m.tif", 20, 2), ("C_10m.tif", 10, 3)):
        n = 12000 // res
        values = np.random.default_rng(seed).integers(1, 10000, (n, n), dtype=np.uint16)
        geobox = GeoBox(32632, Affine(res, 0, 600000, 0, -res, 5000040), (n, n))
        out[name] = (da.from_array(values, chunks=n // 2), RasterSpec(geobox, "uint16", nodata=0))
    return out


def _by_resolution(spec: RasterSpec) -> bool:
    return spec.geobox.resolution < 15


def test_each_group_is_encoded_while_the_next_is_computed(tmp_path: Path) -> None:
    outputs = _outputs()
    tasks = cog_tasks(outputs, tmp_path, group=_by_resolution)
    # Stored and encoded: the first group (10 m). Stored, still to encode: the last (20 m).
    assert sorted(p.name for p in tmp_path.glob("*.tif")) == ["A_10m.tif", "B_20m.tif.part.tif", "C_10m.tif"]
    paths = dask.compute(*tasks)
    assert [Path(p).name for p in paths] == list(outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(outputs)  # no staged file or lock left
    for name, (arr, _) in outputs.items():
        assert cog_validate(str(tmp_path / name), quiet=True)[0], name
        with rasterio.open(tmp_path / name) as ds:
            np.testing.assert_array_equal(ds.read(1), arr.compute())
            assert ds.overviews(1), name


def test_one_group_is_encoded_by_the_returned_tasks(tmp_path: Path) -> None:
    tasks = cog_tasks(_outputs(), tmp_path)
    staged = sorted(p.name for p in tmp_path.glob("*.tif"))
    assert staged == [f"{n}.part.tif" for n in ("A_10m.tif", "B_20m.tif", "C_10m.tif")]
    assert len(dask.compute(*tasks)) == 3


def test_an_encoding_failure_in_an_early_group_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(tmp: str, final: str, spec: RasterSpec) -> str:
        raise OutputError(f"{final}: COG encoding failed: disk full")

    monkeypatch.setattr(write, "_to_cog", broken)
    with pytest.raises(OutputError, match=r"[AC]_10m.tif: COG encoding failed"):
        cog_tasks(_outputs(), tmp_path, group=_by_resolution)


def test_the_encodings_of_a_batch_start_largest_first(tmp_path: Path) -> None:
    """One thread encodes a file: a 10 m file that started last ran alone at the end of the packaging,
    the other cores idle. The encodings now carry Dask priorities by staged size, largest first, none
    above the default of the stores computed with them."""
    tasks = cog_tasks(_outputs(), tmp_path)  # staged now, encoded by the tasks
    priorities = {}
    for layer in tasks[0].__dask_graph__().layers.values():
        for task in layer.values():
            if getattr(getattr(task, "func", None), "__name__", "") == "_settle":
                priorities[Path(task.args[2]).name] = layer.annotations["priority"]
    sizes = {name: (tmp_path / f"{name}.part.tif").stat().st_size for name in priorities}
    assert sorted(priorities) == ["A_10m.tif", "B_20m.tif", "C_10m.tif"]
    # By priority, highest first: the sizes do not grow (the two 10 m files are the same size).
    by_priority = sorted(priorities, key=lambda n: -priorities[n])
    assert sorted(priorities.values()) == [-2, -1, 0]
    assert [sizes[n] for n in by_priority] == sorted(sizes.values(), reverse=True), (sizes, priorities)
    assert len(dask.compute(*tasks)) == 3

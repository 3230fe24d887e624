"""Processing by tiles (``sen2core.tiled``): the same product as one graph per product, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import read_rasters
from rio_cogeo.cogeo import cog_validate

from sen2core import lazy
from sen2core.errors import ConfigurationError, OutputError
from sen2core.io.write import collect_negative_fractions
from sen2core.pipeline import ProcessingConfig, process_product
from sen2core.tiled import (
    SCREENING_SUMS,
    Step,
    TilePlan,
    add_parts,
    next_step,
    package,
    plan_tiles,
    prepare_outputs,
    prepare_stage,
    process_tiled,
    stage_stored,
    tile_stage,
    tile_sum,
    write_tile,
)

# 1.8 km chunks split the 3.66 km scene into 3 x 3 chunk blocks (the last ones 60 m wide);
# tiles of 2 x 2 blocks make 4 tiles of unequal sizes.
CHUNK_M = 1800.0


def test_tiles_make_the_same_product_as_one_graph(cloudy_l1c: Path, tmp_path: Path) -> None:
    config = ProcessingConfig(chunk_m=CHUNK_M)
    rounds: list[str] = []
    tiled = process_tiled(cloudy_l1c, tmp_path / "tiles", config, tile_blocks=2, progress=rounds.append)
    whole = process_product(cloudy_l1c, tmp_path / "whole", config)
    assert tiled.status == whole.status == "done"
    # Classification first, then the correction's sums in the order they depend on each other.
    assert rounds == ["sum b10_leakage", "stage classification", "sum ddv", "sum negative_check",
                      "sum water_vapour_land", "write tiles", "package"]  # fmt: skip
    assert "b10_leakage" in SCREENING_SUMS and "ddv" not in SCREENING_SUMS

    a, b = read_rasters(Path(tiled.output_dir)), read_rasters(Path(whole.output_dir))
    assert sorted(a) == sorted(b) and len(a) == 19
    for name in a:
        assert a[name].shape == b[name].shape, name
        assert np.array_equal(a[name], b[name]), f"{name}: {np.count_nonzero(a[name] != b[name])} pixels differ"
        valid, errors, _ = cog_validate(str(next(Path(tiled.output_dir).rglob(name))), quiet=True)
        assert valid, (name, errors)
    # The scene-wide figures come from the tiles' sums: the same as the whole product's.
    assert tiled.class_percentages == pytest.approx(whole.class_percentages)
    for key in ("GRANULE_MEAN_AOT", "GRANULE_MEAN_WV", "AOT_RETRIEVAL_METHOD", "DDV_PIXEL_PERCENTAGE", "AOT_SCALING"):
        assert tiled.atmosphere[key] == whole.atmosphere[key], key
    summary = json.loads((Path(tiled.output_dir) / "L2A_SUMMARY.json").read_text())
    assert summary["processing_tiles"] == 4
    assert summary["atmosphere"]["NEGATIVE_BOA_PERCENTAGE"] == pytest.approx(
        json.loads((Path(whole.output_dir) / "L2A_SUMMARY.json").read_text())["atmosphere"]["NEGATIVE_BOA_PERCENTAGE"])
    assert not list(Path(tiled.output_dir).parent.glob(".*tmp*")), "staging folder left behind"
    # Done is done, whichever way it was made.
    assert process_tiled(cloudy_l1c, tmp_path / "tiles", config).status == "skipped"


def test_plan_splits_the_chunk_grid_and_refuses_unaligned_chunks(cloudy_l1c: Path, tmp_path: Path) -> None:
    plan = plan_tiles(cloudy_l1c, tmp_path, ProcessingConfig(chunk_m=CHUNK_M), tile_blocks=2)
    assert isinstance(plan, TilePlan)
    assert plan.grid == (3, 3) and plan.first_step == Step("sum", "b10_leakage")
    assert [(t.rows, t.cols) for t in plan.tiles] == [((0, 2), (0, 2)), ((0, 2), (2, 3)), ((2, 3), (0, 2)),
                                                      ((2, 3), (2, 3))]  # fmt: skip
    left, bottom, right, top = plan.tiles[0].bounds
    assert (right - left, top - bottom) == (3600.0, 3600.0)
    assert Path(plan.staging).is_dir() and Path(plan.staging).name.startswith(".")
    with pytest.raises(ConfigurationError, match="multiples of 300"):
        plan_tiles(cloudy_l1c, tmp_path / "other", ProcessingConfig(chunk_m=1830.0))


def test_a_missing_tile_is_never_published(cloudy_l1c: Path, tmp_path: Path) -> None:
    config = ProcessingConfig(chunk_m=CHUNK_M, resolution=60, sc_only=True)
    plan = plan_tiles(cloudy_l1c, tmp_path, config, tile_blocks=2)
    assert isinstance(plan, TilePlan)
    known: dict[str, tuple[float, ...]] = {}
    step = plan.first_step
    while step is not None:
        if step.kind == "stage":
            prepare_stage(plan, known, step.name)
            for t in plan.tiles:
                tile_stage(plan, t, known)
            known = stage_stored(known, step.name)
        else:
            reduced, total = add_parts([tile_sum(plan, t, known) for t in plan.tiles], plan)
            known[reduced] = total
        step = next_step(plan, known)
    prepare_outputs(plan, known)
    for t in plan.tiles[:-1]:
        write_tile(plan, t, known)
    with pytest.raises(OutputError, match="not written"):
        package(plan, known)
    assert not any(p.name.endswith(".json") for p in tmp_path.rglob("*")), "a product was published"


def test_parts_must_agree_and_window_sums_are_partial(tmp_path: Path) -> None:
    import dask.array as da

    x = da.ones((4, 6), chunks=(2, 2))
    whole = np.asarray(lazy.block_sum(lambda b: np.array([b.sum()]), x, name="n").compute())
    assert whole.tolist() == [24.0]
    with lazy.window((0, 1), (1, 3), {}), pytest.raises(lazy.PendingSum) as pending:
        lazy.block_sum(lambda b: np.array([b.sum()]), x, name="n")
    assert pending.value.name == "n" and pending.value.part.tolist() == [8.0]
    with lazy.window((0, 1), (1, 3), {"n": [24.0]}):
        assert lazy.block_sum(lambda b: np.array([b.sum()]), x, name="n").tolist() == [24.0]
        assert lazy.persist(x)[0] is x


def test_a_rewritten_window_is_counted_once(tmp_path: Path) -> None:
    stats = tmp_path / "B02_10m.tif.part.tif.negstats"
    # A retried tile writes its window again: the later count replaces the earlier one.
    stats.write_text("0 0 5 100\n0 100 1 100\n0 0 5 100\n", encoding="ascii")
    assert collect_negative_fractions(tmp_path) == {"B02_10m.tif": 3.0}


def test_tiles_write_the_safe_layout_too(cloudy_l1c: Path, tmp_path: Path) -> None:
    config = ProcessingConfig(chunk_m=CHUNK_M, resolution=60, format="safe")
    tiled = process_tiled(cloudy_l1c, tmp_path / "tiles", config, tile_blocks=2)
    whole = process_product(cloudy_l1c, tmp_path / "whole", config)
    a, b = Path(tiled.output_dir), Path(whole.output_dir)
    assert a.suffix == ".SAFE" and (a / "MTD_MSIL2A.xml").is_file()
    jp2 = sorted(p.relative_to(a) for p in a.rglob("*.jp2"))
    assert jp2 == sorted(p.relative_to(b) for p in b.rglob("*.jp2")) and len(jp2) >= 14
    for rel in jp2:
        with rasterio.open(a / rel) as x, rasterio.open(b / rel) as y:
            assert np.array_equal(x.read(), y.read()), rel
    assert not [p for p in a.rglob("*") if p.name.startswith(".") or p.name.endswith((".part.tif", ".npy"))]


def test_a_spent_time_budget_stops_the_run_between_stages(cloudy_l1c: Path, tmp_path: Path) -> None:
    from sen2core.errors import ProcessingTimeout

    # Orchestrators' timeouts may not interrupt a worker thread: the library checks the budget itself.
    with pytest.raises(ProcessingTimeout, match="time budget of 1e-09 s") as raised:
        process_product(cloudy_l1c, tmp_path, ProcessingConfig(resolution=60), time_budget_s=1e-9)
    assert isinstance(raised.value, TimeoutError)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "a timed-out run left files"

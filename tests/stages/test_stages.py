"""The processing plan (``sen2core.stages``): stages run apart, or split into tiles, make the same product."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import rasterio
from conftest import read_rasters
from rio_cogeo.cogeo import cog_validate

from sen2core import correction, lazy, scl, stages
from sen2core.errors import ConfigurationError, OutputError
from sen2core.io.write.raster import collect_negative_fractions
from sen2core.kernels import scene_class
from sen2core.pipeline import ProcessingConfig, process_product
from sen2core.run import BANDS_10M, WORKING_BANDS
from sen2core.stages import (
    ProductPlan,
    add_parts,
    next_step,
    next_sum,
    package,
    plan_product,
    run_stage,
    sum_parts,
)

# 1.8 km chunks split the 3.66 km scene into 3 x 3 chunk blocks (the last ones 60 m wide);
# tiles of 2 x 2 blocks make 4 tiles of unequal sizes.
CHUNK_M = 1800.0


@pytest.mark.slow
def test_tiles_make_the_same_product_as_one_graph(cloudy_l1c: Path, tmp_path: Path) -> None:
    config = ProcessingConfig(chunk_m=CHUNK_M)
    seen: list[str] = []
    tiled = process_product(cloudy_l1c, tmp_path / "tiles", config, progress=seen.append, tile_blocks=2)
    whole = process_product(cloudy_l1c, tmp_path / "whole", config)
    assert tiled.status == whole.status == "done"
    assert seen == ["plan", "decode", "screening", "atmosphere", "correction-10m", "correction-20m", "packaging"]
    assert list(whole.seconds) == ["plan", "decode", "screening", "atmosphere", "correction-10m", "correction-20m",
                                   "packaging"]  # fmt: skip

    a, b = read_rasters(Path(tiled.output_dir)), read_rasters(Path(whole.output_dir))
    assert sorted(a) == sorted(b) and len(a) == 19
    for name in a:
        assert a[name].shape == b[name].shape, name
        assert np.array_equal(a[name], b[name]), f"{name}: {np.count_nonzero(a[name] != b[name])} pixels differ"
        valid, errors, _ = cog_validate(str(next(Path(tiled.output_dir).rglob(name))), quiet=True)
        assert valid, (name, errors)
    # The scene-wide figures come from the tiles' sums: the same as the whole product's.
    assert tiled.class_percentages == whole.class_percentages
    for key in ("GRANULE_MEAN_AOT", "GRANULE_MEAN_WV", "AOT_RETRIEVAL_METHOD", "DDV_PIXEL_PERCENTAGE", "AOT_SCALING"):
        assert tiled.atmosphere[key] == whole.atmosphere[key], key
    summary = json.loads((Path(tiled.output_dir) / "L2A_SUMMARY.json").read_text())
    assert summary["processing_tiles"] == 4
    assert summary["atmosphere"]["NEGATIVE_BOA_PERCENTAGE"] == pytest.approx(
        json.loads((Path(whole.output_dir) / "L2A_SUMMARY.json").read_text())["atmosphere"]["NEGATIVE_BOA_PERCENTAGE"]
    )
    for root in (tmp_path / "tiles", tmp_path / "whole"):
        assert not [p for p in root.rglob(".*") if p.name != ".collection.json.lock"], "work folder left behind"
    # Done is done, whichever way it was made.
    assert process_product(cloudy_l1c, tmp_path / "tiles", config, tile_blocks=2).status == "skipped"


def test_plan_states_the_stages_tiles_and_work_folder(cloudy_l1c: Path, tmp_path: Path) -> None:
    plan = plan_product(cloudy_l1c, tmp_path, ProcessingConfig(chunk_m=CHUNK_M), tile_blocks=2)
    assert isinstance(plan, ProductPlan)
    assert plan.grid == (3, 3) and plan.groups == (10, 20)
    # The same stages as the whole product's, split into tiles.
    assert plan.stages() == ("decode", "screening", "atmosphere", "correction-10m", "correction-20m", "packaging")
    assert [stages.has_rounds(plan, s) for s in plan.stages()] == [False, True, True, True, False, False]
    assert [(t.rows, t.cols) for t in plan.tiles] == [((0, 2), (0, 2)), ((0, 2), (2, 3)), ((2, 3), (0, 2)),
                                                      ((2, 3), (2, 3))]  # fmt: skip
    left, bottom, right, top = plan.tiles[0].bounds
    assert (right - left, top - bottom) == (3600.0, 3600.0)
    assert Path(plan.work).is_dir() and Path(plan.work).name.startswith(".")
    assert stages.stage_names(ProcessingConfig(sc_only=True)) == ("decode", "screening", "correction-20m", "packaging")
    assert stages.stage_names(ProcessingConfig(resolution=60)) == ("decode", "screening", "atmosphere",
                                                                   "correction-60m", "packaging")  # fmt: skip
    stages.discard(plan)
    assert not Path(plan.work).exists()
    with pytest.raises(ConfigurationError, match="multiples of 300"):
        plan_product(cloudy_l1c, tmp_path / "other", ProcessingConfig(chunk_m=1830.0), tile_blocks=2)


@pytest.mark.slow
def test_scene_wide_sums_are_values_passed_between_rounds(cloudy_l1c: Path, tmp_path: Path) -> None:
    plan = plan_product(cloudy_l1c, tmp_path, ProcessingConfig(chunk_m=CHUNK_M), tile_blocks=2)
    assert isinstance(plan, ProductPlan)
    stages.decode(plan)
    known: dict[str, tuple[float, ...]] = {}
    order = []
    for stage in ("screening", "atmosphere"):
        with pytest.raises(ConfigurationError, match=f"needs {next_sum(plan, stage, known)} first"):
            run_stage(plan, stage, known, plan.tiles[0])
        while (step := next_step(plan, stage, known)) is not None:
            order.append(f"{step.kind} {step.name}")
            if step.kind == "store":
                with pytest.raises(ConfigurationError, match="must be stored before"):
                    sum_parts(plan, stage, known, plan.tiles[0])
                done = [stages.store_part(plan, stage, step.name, known, t) for t in plan.tiles]
                # A sum that reads only the stored blocks comes with them: it takes no round of its own.
                with_parts = [d.parts for d in done if d.parts is not None]
                if step.name in stages.SUM_WITH_STORE:
                    assert len(with_parts) == len(plan.tiles)
                    assert {p.name for p in with_parts} == {stages.SUM_WITH_STORE[step.name]}
                    reduced, total = add_parts(plan, with_parts)
                    order.append(f"sum {reduced}")
                    known[reduced] = total
                else:
                    assert not with_parts
                known = stages.stored(known, step.name)
                continue
            parts = [sum_parts(plan, stage, known, t) for t in plan.tiles]
            assert sum(len(p.parts) for p in parts if p is not None) == 9  # every block once
            reduced, total = add_parts(plan, parts)
            assert reduced == step.name
            # The reduce tasks add the sums up over the whole product: the same total, to the bit.
            over_whole, next_round = stages.add_sums(plan, stage, known)
            assert over_whole[reduced] == total
            assert next_round == next_step(plan, stage, {**known, reduced: total})
            known[reduced] = total
            with pytest.raises(OutputError, match=r"1 block part\(s\) missing, e.g. block \(2, 2\)"):
                add_parts(plan, parts[:-1])
            with pytest.raises(OutputError, match="every tile must give its parts"):
                add_parts(plan, [*parts[:-1], None])
        for t in plan.tiles:
            run_stage(plan, stage, known, t)
    # The classification's sum, then the correction's in the order they depend on each other.
    # The intermediates that wide neighbourhoods read are stored before the sums that read them.
    assert order == ["sum b10_leakage", "store pixels", "store shadows", "store ddv", "sum ddv", "sum negative_check",
                     "store wv_raw", "sum water_vapour_land"]  # fmt: skip
    # Over the whole product a stage computes the same totals itself.
    whole = plan_product(cloudy_l1c, tmp_path / "whole", ProcessingConfig(chunk_m=CHUNK_M))
    assert isinstance(whole, ProductPlan)
    stages.decode(whole)
    totals = dict(run_stage(whole, "screening", {}).totals)
    totals.update(run_stage(whole, "atmosphere", totals).totals)
    assert totals == {k: v for k, v in known.items() if not k.startswith(stages.STORED)}
    stages.discard(plan)
    stages.discard(whole)


def test_block_sums_add_up_the_same_whole_or_by_windows() -> None:
    x = da.arange(24.0, chunks=6).reshape(4, 6).rechunk((2, 2)) / 7.0
    sums = lazy.block_sums(lambda b: np.array([b.sum(), b.size]), x, name="n")
    (whole,) = np.asarray(sums.total().compute())[None]
    parts = {**sums.parts((0, 2), (0, 1)), **sums.parts((0, 2), (1, 3))}
    assert np.array_equal(lazy.add_block_parts(parts, sums.grid), whole)
    assert whole[1] == 24.0
    with pytest.raises(ValueError, match="1 block part"):
        lazy.add_block_parts({k: v for k, v in parts.items() if k != (1, 2)}, sums.grid)


@pytest.mark.slow
def test_a_missing_tile_is_never_published(cloudy_l1c: Path, tmp_path: Path) -> None:
    config = ProcessingConfig(chunk_m=CHUNK_M, resolution=60, sc_only=True)
    plan = plan_product(cloudy_l1c, tmp_path, config, tile_blocks=2)
    assert isinstance(plan, ProductPlan)
    stages.decode(plan)
    known: dict[str, tuple[float, ...]] = {}
    while (step := next_step(plan, "screening", known)) is not None:
        if step.kind == "sum":
            known[step.name] = add_parts(plan, [sum_parts(plan, "screening", known, t) for t in plan.tiles])[1]
            continue
        for t in plan.tiles[:-1]:
            stages.store_part(plan, "screening", step.name, known, t)
        # An intermediate that a tile did not store is never read as if it had been.
        with pytest.raises(OutputError, match=f"round screening-{step.name} has 1 chunk block"):
            run_stage(plan, "screening", stages.stored(known, step.name), plan.tiles[0])
        stages.store_part(plan, "screening", step.name, known, plan.tiles[-1])
        known = stages.stored(known, step.name)
    for t in plan.tiles[:-1]:
        run_stage(plan, "screening", known, t)
    with pytest.raises(OutputError, match="stage screening has 1 chunk block"):
        run_stage(plan, "correction-60m", known, plan.tiles[0])
    run_stage(plan, "screening", known, plan.tiles[-1])
    for t in plan.tiles[:-1]:
        run_stage(plan, "correction-60m", known, t)
    with pytest.raises(OutputError, match="stage correction-60m has 1 chunk block"):
        package(plan, known)
    assert not any(p.name.endswith(".json") for p in tmp_path.rglob("*")), "a product was published"
    stages.discard(plan)


@pytest.mark.slow
def test_later_stages_neither_decode_nor_classify_and_a_retried_stage_reruns_alone(
    cloudy_l1c: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ProcessingConfig(chunk_m=CHUNK_M)
    plan = plan_product(cloudy_l1c, tmp_path / "staged", config)
    assert isinstance(plan, ProductPlan)
    stages.decode(plan)
    known = dict(run_stage(plan, "screening", {}).totals)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded or classified again")

    monkeypatch.setattr("sen2core.io.read.bands.read_window", forbidden)
    monkeypatch.setattr(stages, "classify", forbidden)
    known.update(run_stage(plan, "atmosphere", known).totals)
    run_stage(plan, "atmosphere", known)  # a retry: the same files again
    for stage in ("correction-10m", "correction-20m", "correction-20m"):
        known.update(run_stage(plan, stage, known).totals)
    staged = package(plan, known)
    monkeypatch.undo()
    whole = process_product(cloudy_l1c, tmp_path / "whole", config)
    a, b = read_rasters(Path(staged.output_dir)), read_rasters(Path(whole.output_dir))
    assert sorted(a) == sorted(b) and len(a) == 19
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert staged.atmosphere == whole.atmosphere and staged.class_percentages == whole.class_percentages


def test_a_plans_inputs_are_built_once_per_process(cloudy_l1c: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Every stage and tile task parsed the metadata and built the kept bands' graphs again (about
    4 s of the per-tile flow's 38 on the 1830 px scene); a task's copy of the plan now finds them."""
    import pickle

    plan = plan_product(cloudy_l1c, tmp_path, ProcessingConfig(chunk_m=CHUNK_M), tile_blocks=2)
    assert isinstance(plan, ProductPlan)
    stages.decode(plan)
    built: list[str] = []
    build = stages._build_inputs

    def counted(p: ProductPlan) -> Any:
        built.append(p.l2a_id)
        return build(p)

    monkeypatch.setattr(stages, "_build_inputs", counted)
    first = stages._inputs(plan)
    assert stages._inputs(pickle.loads(pickle.dumps(plan))) is first and len(built) == 1
    other = plan_product(cloudy_l1c, tmp_path / "other", ProcessingConfig(chunk_m=CHUNK_M), tile_blocks=2)
    assert isinstance(other, ProductPlan)
    stages.decode(other)
    assert stages._inputs(other) is not first and len(built) == 2, "another plan builds its own"
    twenty = ProcessingConfig(chunk_m=CHUNK_M, resolution=20)
    assert stages._inputs(replace(plan, config=twenty)) is not first, "another configuration too"
    assert stages._inputs(plan) is first and len(built) == 3


@pytest.mark.slow
def test_a_tile_computes_only_its_own_blocks_of_the_wide_neighbourhoods(
    cloudy_l1c: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shadow zones (screening) and the adjacency background's first passes (correction) read
    wide neighbourhoods: stored in a round of their own, a tile then reads its neighbours' from the
    files and computes its own blocks only (it computed every block of the scene before). So does
    the water vapour's APDA, whose bilinear refinement reads one 60 m cell of the neighbouring
    blocks: stored on its 60 m cells (it was stored refined, and each tile inverted its neighbours'
    blocks too, 2.25 times its own on this scene). The shadow zones' coarse inputs (the per-pixel
    cloud-to-shadow displacement averaged to the shadow grid) are stored with the pixel layers: a
    tile's shadow round computed its neighbours' displacements (and angles) again."""
    plan = plan_product(cloudy_l1c, tmp_path, ProcessingConfig(chunk_m=CHUNK_M), tile_blocks=2)
    assert isinstance(plan, ProductPlan)
    stages.decode(plan)
    calls = {"shadow zone": 0, "first pass": 0, "apda": 0, "displacement": 0}
    # The kernels as scl calls them (patched in scl's namespace below).
    project, boa, apda = scene_class.project_cloud_shadow, correction._boa_block, correction._wv_block
    displacement = scene_class.shadow_displacement_field

    def counted_displacement(sz: Any, *args: Any, **kwargs: Any) -> Any:
        calls["displacement"] += np.size(sz) > 0
        return displacement(sz, *args, **kwargs)

    def counted_project(*args: Any, **kwargs: Any) -> Any:
        calls["shadow zone"] += 1
        return project(*args, **kwargs)

    def counted_boa(toa: Any, bg: Any, *args: Any, **kwargs: Any) -> Any:
        # The first pass has no background yet; dask calls it on empty blocks to learn its output type.
        calls["first pass"] += bg is None and np.size(toa) > 0
        return boa(toa, bg, *args, **kwargs)

    def counted_apda(toa8a: Any, *args: Any, **kwargs: Any) -> Any:
        calls["apda"] += np.size(toa8a) > 0
        return apda(toa8a, *args, **kwargs)

    monkeypatch.setattr(scl, "project_cloud_shadow", counted_project)
    monkeypatch.setattr(scl, "shadow_displacement_field", counted_displacement)
    monkeypatch.setattr(correction, "_wv_block", counted_apda)
    monkeypatch.setattr(correction, "_boa_block", counted_boa)
    seen: dict[tuple[str, int], dict[str, int]] = {}

    def counting(what: str, tile: stages.Tile, run: Any, *args: Any) -> Any:
        before = dict(calls)
        out = run(plan, *args, tile)
        seen[(what, tile.index)] = {k: calls[k] - before[k] for k in calls}
        return out

    known: dict[str, tuple[float, ...]] = {}
    for stage in plan.stages()[1:-1]:
        while (step := next_step(plan, stage, known)) is not None:
            if step.kind == "sum":
                known[step.name] = add_parts(plan, [sum_parts(plan, stage, known, t) for t in plan.tiles])[1]
                continue
            done = [counting(step.name, t, stages.store_part, stage, step.name, known) for t in plan.tiles]
            if parts := stages.parts_with(done):
                reduced, total = add_parts(plan, parts)
                known[reduced] = total
            known = stages.stored(known, step.name)
        for t in plan.tiles:
            counting(stage, t, run_stage, stage, known)
    first_files = len(list(Path(plan.work, ".correction").glob("first_*.npy")))
    assert first_files == len(WORKING_BANDS) + len(BANDS_10M)  # every band corrected, on its grid
    for t in plan.tiles:
        assert seen[("shadows", t.index)]["shadow zone"] == t.blocks
        assert seen[("pixels", t.index)]["displacement"] == t.blocks
        assert seen[("shadows", t.index)]["displacement"] == seen[("screening", t.index)]["displacement"] == 0
        assert seen[("screening", t.index)]["shadow zone"] == 0
        assert seen[("background", t.index)]["first pass"] == first_files * t.blocks
        assert seen[("correction-10m", t.index)]["first pass"] == seen[("correction-20m", t.index)]["first pass"] == 0
        assert seen[("wv_raw", t.index)]["apda"] == t.blocks
        assert seen[("atmosphere", t.index)]["apda"] == seen[("background", t.index)]["apda"] == 0
    assert package(plan, known).status == "done"


def test_a_rewritten_window_is_counted_once(tmp_path: Path) -> None:
    stats = tmp_path / "B02_10m.tif.part.tif.negstats"
    # A retried tile writes its window again: the later count replaces the earlier one.
    stats.write_text("0 0 5 100\n0 100 1 100\n0 0 5 100\n", encoding="ascii")
    assert collect_negative_fractions(tmp_path) == {"B02_10m.tif": 3.0}


@pytest.mark.slow
def test_tiles_write_the_safe_layout_too(cloudy_l1c: Path, tmp_path: Path) -> None:
    config = ProcessingConfig(chunk_m=CHUNK_M, resolution=60, format="safe")
    tiled = process_product(cloudy_l1c, tmp_path / "tiles", config, tile_blocks=2)
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

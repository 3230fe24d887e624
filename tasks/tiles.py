"""Per-tile tasks: one product as tiling, per-tile statistics and correction, and packaging.

The Prefect side of :mod:`sen2core.tiled` (read its docstring for what a round is).
:func:`process_tiled_product` runs in the flow and submits, for one product:

``tiling`` -> ``screen-statistics`` (mapped over tiles: B10 leakage) -> ``reduce-statistics``
-> ``stage-classification`` -> ``screen-tile`` (mapped: each tile classifies its window and
stores it) -> ``classification-stored`` -> ``correct-statistics`` (mapped, one round per
correction sum: DDV aerosol, negative check, water-vapour land mean) -> ``reduce-statistics``
... -> ``stage-outputs`` -> ``correct-tile`` (mapped: each tile corrects and writes its
windows) -> ``package``.

Every task takes references (the plan: hrefs, options, tile windows, and the sums
known so far) and runs its dask work on the task runner's cluster, like
:func:`tasks.product.process_l1c`. Retries follow the same rule: transient errors
only. A tile task is idempotent (it rewrites its own windows), so a retry is safe.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from sen2core import tiled
from sen2core.pipeline import L2AResult
from sen2core.tiled import Step, Tile, TilePart, TilePlan, TileWritten
from tasks.logs import forward_logs
from tasks.models import L1CRef, ProcessingOptions, ProductOutcome
from tasks.product import PRODUCT_TAG, on_task_runner_cluster, outcome_from_result, to_config
from tasks.retry import retry_product

log = logging.getLogger(__name__)

__all__ = ["process_tiled_product"]

Known = Mapping[str, Sequence[float]]
_RETRY: dict[str, Any] = dict(
    retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_jitter_factor=0.5,
    retry_condition_fn=retry_product, cache_policy=NO_CACHE,
)  # fmt: skip


@task(name="tiling", task_run_name="tiling-{ref.product_id}", **_RETRY)
def plan_product(ref: L1CRef, output_root: str, options: ProcessingOptions, overwrite: bool) -> TilePlan | L2AResult:
    """Split the product into processing tiles (or return its result if it is already done)."""
    with forward_logs():
        config = to_config(options, overwrite, ref.granule)
        return tiled.plan_tiles(ref.href, output_root, config, options.tile_blocks or 2)


@task(name="tile-statistics", task_run_name="{name}-tile{tile.index}", tags=[PRODUCT_TAG], **_RETRY)
def tile_statistics(plan: TilePlan, tile: Tile, known: Known, name: str) -> TilePart | None:
    """This tile's part of the scene-wide sum ``name`` (the first one not in ``known``)."""
    with forward_logs(), on_task_runner_cluster():
        return tiled.tile_sum(plan, tile, known)


@task(name="reduce-statistics", task_run_name="reduce-{name}", **_RETRY)
def reduce_statistics(
    plan: TilePlan, parts: list[TilePart | None], known: Known, name: str
) -> tuple[dict[str, Any], Step | None]:
    """Add the tiles' parts of ``name``; return the known sums and the next round (None: write)."""
    reduced, total = tiled.add_parts(parts, plan)
    if reduced != name:
        raise RuntimeError(f"{plan.l2a_id}: tiles reduced {reduced}, expected {name}")
    out = {**known, reduced: total}
    with forward_logs():
        following = tiled.next_step(plan, out)
    log.info("%s: %s reduced over %d tiles", plan.l2a_id, reduced, len(parts))
    return out, following


@task(name="stage-intermediate", task_run_name="stage-{name}", **_RETRY)
def stage_intermediate(plan: TilePlan, known: Known, name: str) -> list[str]:
    """Pre-allocate the files of intermediate ``name`` (the scene classification) the tiles store."""
    with forward_logs():
        return tiled.prepare_stage(plan, known, name)


@task(name="screen-tile", task_run_name="screen-tile{tile.index}", tags=[PRODUCT_TAG], **_RETRY)
def screen_tile(plan: TilePlan, tile: Tile, known: Known) -> TileWritten:
    """Classify one tile (cloud screening) and store its window of the classification layers."""
    with forward_logs(), on_task_runner_cluster():
        return tiled.tile_stage(plan, tile, known)


@task(name="intermediate-stored", task_run_name="{name}-stored", **_RETRY)
def intermediate_stored(plan: TilePlan, known: Known, name: str) -> tuple[dict[str, Any], Step | None]:
    """Every tile stored intermediate ``name``: return the known state and the next round."""
    out = tiled.stage_stored(known, name)
    with forward_logs():
        return out, tiled.next_step(plan, out)


@task(name="stage-outputs", task_run_name="stage-{plan.l2a_id}", **_RETRY)
def stage_outputs(plan: TilePlan, known: Known) -> list[str]:
    """Pre-allocate the staged rasters the tiles write into."""
    with forward_logs():
        return tiled.prepare_outputs(plan, known)


@task(name="correct-tile", task_run_name="correct-tile{tile.index}", tags=[PRODUCT_TAG], **_RETRY)
def correct_tile(plan: TilePlan, tile: Tile, known: Known) -> TileWritten:
    """Classify and correct one tile and write its windows of every output."""
    with forward_logs(), on_task_runner_cluster():
        return tiled.write_tile(plan, tile, known)


@task(name="package", task_run_name="package-{plan.l2a_id}", **_RETRY)
def package_product(plan: TilePlan, known: Known, seconds: dict[str, float]) -> L2AResult:
    """Encode the staged rasters, write metadata and STAC item, publish the product folder."""
    with forward_logs(), on_task_runner_cluster():
        return tiled.package(plan, known, seconds)


class _Laps:
    """Seconds per stage of the flow's view of one product."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + now - self.last, 2)
        self.last = now


def process_tiled_product(
    ref: L1CRef, output_root: str, options: ProcessingOptions, overwrite: bool, timeout_minutes: float
) -> ProductOutcome:
    """Process one product by tiles on the flow's task runner; return its outcome (raises if a task failed).

    Must run inside a flow. Each task gets the product's timeout. A product that fails
    leaves nothing behind: its staging folder is removed and the next run starts over.
    """
    opts: dict[str, Any] = {"timeout_seconds": max(1.0, timeout_minutes * 60.0)}
    start = time.perf_counter()
    laps = _Laps()
    plan = plan_product.with_options(**opts).submit(ref, output_root, options, overwrite).result()
    if isinstance(plan, L2AResult):
        return outcome_from_result(ref, plan, None)
    laps("tiling")
    try:
        result = _rounds(plan, opts, laps)
    except BaseException:
        shutil.rmtree(plan.staging, ignore_errors=True)
        raise
    total = time.perf_counter() - start
    log.info("%s: done by %d tiles in %.1f s -> %s", result.l2a_id, len(plan.tiles), total, result.output_dir)
    return outcome_from_result(ref, result, total)


def _one_by_one(tile_task: Any, plan: TilePlan, *args: Any) -> list[Any]:
    """Run ``tile_task(plan, tile, *args)`` for every tile, one tile after the other; return the results.

    Each tile's dask work already spreads over the whole cluster. Tiles at once sent the
    scheduler graphs that share keys (the neighbouring chunks a tile's margins need) fused
    into different tasks: the scheduler warned of two ``run_spec`` for one key, then failed
    a transition, lost its workers and cancelled the tile tasks (a flaky test, once a hang).
    """
    return [tile_task.submit(plan, tile, *args).result() for tile in plan.tiles]


def _rounds(plan: TilePlan, opts: dict[str, Any], laps: _Laps) -> L2AResult:
    known: dict[str, Any] = {}
    step = plan.first_step
    while step is not None:
        name = step.name
        if step.kind == "stage":
            stage_intermediate.with_options(**opts).submit(plan, known, name).result()
            _one_by_one(screen_tile.with_options(**opts), plan, known)
            known, step = intermediate_stored.with_options(**opts).submit(plan, known, name).result()
            laps("screen tiles")
            continue
        screening = name in tiled.SCREENING_SUMS
        stats = tile_statistics.with_options(name="screen-statistics" if screening else "correct-statistics", **opts)
        parts = _one_by_one(stats, plan, known, name)
        known, step = reduce_statistics.with_options(**opts).submit(plan, parts, known, name).result()
        laps("screening statistics" if screening else "correction statistics")
    stage_outputs.with_options(**opts).submit(plan, known).result()
    _one_by_one(correct_tile.with_options(**opts), plan, known)
    laps("correct tiles")
    result = package_product.with_options(**opts).submit(plan, known, laps.seconds).result()
    laps("package")
    return L2AResult(**{**result.__dict__, "seconds": dict(laps.seconds)})

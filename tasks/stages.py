"""Stage tasks: one product as the Prefect task runs of its plan (:mod:`sen2core.stages`).

For every product the flow shows ``tiling`` (the plan and the decoded bands) →
``screening`` → ``atmosphere`` → ``correction`` (one run per resolution group:
``correction-10m``, ``correction-20m``) → ``packaging``; the flow's ``publish``
task then adds the product to the collection. Each task takes references (the
plan: hrefs, options, the work folder) and the small results of the tasks before
it, and runs its dask work on the task runner's cluster. A stage that fails with a
transient error is retried alone: it rewrites only its own files.

:func:`submit_product` submits the whole chain at once; each task waits for the one
before it (its result is a parameter), so products overlap on the cluster without
the flow waiting on any of them. With ``tile_blocks``, :func:`process_by_tiles`
runs the same stages split into processing tiles: ``{stage}-reduce`` adds up the
scene-wide sums the stage needs next (over the whole product, on the cluster); where an
intermediate must be stored first (the classification's layers, the DDV layers, the raw
water vapour, the correction's first passes), each tile stores its window
(``{stage}-{name}-tile{n}``) and the next reduce follows; then the stage runs per tile. The
tiles of each such round run side by side, at most ``options.tiles_at_once`` in flight (all by
default); the rounds follow one another. Once every tile has stored the 10 m correction group,
an ``encoding-10m`` task encodes its files while the 20 m group's tiles run.

Every task of a product checks, as it starts, that the product's time budget (counted
from its plan) has not run out: the budget bounds the product, not each task.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait

from sen2core import stages
from sen2core.errors import ProcessingTimeout
from sen2core.run import L2AResult
from sen2core.stages import ProductPlan, StageDone, Step, SumParts, Tile
from sen2core.stopwatch import Stopwatch
from tasks.logs import forward_logs
from tasks.models import L1CRef, ProcessingOptions, ProductOutcome
from tasks.product import on_task_runner_cluster, outcome_from_result, to_config
from tasks.retry import STAGE_RETRIES

log = logging.getLogger(__name__)

__all__ = ["ProductRun", "collect_product", "process_by_tiles", "submit_product"]


def _within_budget(plan: ProductPlan, budget_s: float, what: str) -> None:
    """Refuse to start ``what`` once the product's time budget, counted from its plan, has run out.

    Every task of a product gets the whole budget as its Prefect timeout (they are all
    submitted at once, before any has started), so that timeout alone let a product of
    many short tasks run far past its budget; this check, at the start of every task and
    retry after the tiling, bounds the product as a whole. The error is permanent (a
    :class:`~sen2core.errors.ProcessingTimeout`): it is not retried.
    """
    late = time.time() - (plan.planned_at + budget_s)
    if late > 0:
        raise ProcessingTimeout(f"{plan.product_id}: the product's time budget of {budget_s:g} s ran out "
                                f"{late:.1f} s before {what} could start")  # fmt: skip


def _known(after: Sequence[StageDone | None]) -> dict[str, tuple[float, ...]]:
    known: dict[str, tuple[float, ...]] = {}
    for done in after:
        if done is not None:
            known.update(done.totals)
    return known


@task(name="tiling", task_run_name="tiling-{ref.product_id}", cache_policy=NO_CACHE, **STAGE_RETRIES)
def tiling(ref: L1CRef, output_root: str, options: ProcessingOptions, overwrite: bool) -> ProductPlan | L2AResult:
    """Plan the product and decode its bands into its work folder (or return its result if it is done)."""
    watch = Stopwatch()
    config = to_config(options, overwrite, ref.granule)
    with forward_logs(), on_task_runner_cluster():
        plan = stages.plan_product(ref.href, output_root, config, options.tile_blocks)
        if isinstance(plan, L2AResult):
            return plan
        try:
            stages.decode(plan)
        except BaseException:
            stages.discard(plan)
            raise
    log.info("%s: planned and decoded in %.1f s", plan.l2a_id, watch.elapsed())
    return plan


@task(name="stage", task_run_name="{stage}-{plan.l2a_id}", cache_policy=NO_CACHE, **STAGE_RETRIES)
def run_stage(
    plan: ProductPlan | L2AResult, stage: str, after: list[StageDone | None], budget_s: float, tile: Tile | None = None
) -> StageDone | None:
    """Run ``stage`` of the plan (over ``tile`` only, if given) within the product's ``budget_s``; nothing for a
    product already done."""
    if isinstance(plan, L2AResult):
        return None
    _within_budget(plan, budget_s, stage if tile is None else f"{stage} of tile {tile.index}")
    watch = Stopwatch()
    with forward_logs(), on_task_runner_cluster():
        done = stages.run_stage(plan, stage, _known(after), tile)
    return replace(done, seconds=round(watch.elapsed(), 2))


@task(
    name="packaging",
    task_run_name="packaging-{plan.l2a_id}",
    cache_policy=NO_CACHE,
    **STAGE_RETRIES,
)
def packaging(plan: ProductPlan | L2AResult, after: list[StageDone | None], ref: L1CRef,
              budget_s: float) -> ProductOutcome:  # fmt: skip
    """Encode what is left, write metadata and the STAC item last, publish the product folder.

    The outcome's seconds run from the plan (the tiling task's start) to the product's publication.
    """
    if isinstance(plan, L2AResult):
        return outcome_from_result(ref, plan, None)
    _within_budget(plan, budget_s, "packaging")
    seconds = {d.stage + ("" if d.tile is None else f"-tile{d.tile}"): d.seconds for d in after if d is not None}
    with forward_logs(), on_task_runner_cluster():
        result = stages.package(plan, _known(after), seconds)
    total = time.time() - plan.planned_at
    log.info("%s: done in %.1f s -> %s", result.l2a_id, total, result.output_dir)
    return outcome_from_result(ref, result, total)


@task(
    name="store",
    task_run_name="{stage}-{name}-tile{tile.index}",
    cache_policy=NO_CACHE,
    **STAGE_RETRIES,
)
def tile_store(plan: ProductPlan, stage: str, name: str, known: dict[str, tuple[float, ...]], tile: Tile,
               budget_s: float) -> StageDone:  # fmt: skip
    """Store tile ``tile``'s window of the intermediate ``name`` that the stage's neighbourhoods read."""
    _within_budget(plan, budget_s, f"storing {name} of tile {tile.index}")
    with forward_logs(), on_task_runner_cluster():
        return stages.store_part(plan, stage, name, known, tile)


@task(name="reduce", task_run_name="{stage}-reduce-{plan.l2a_id}", cache_policy=NO_CACHE, **STAGE_RETRIES)
def reduce_sums(plan: ProductPlan, stage: str, parts: list[SumParts | None], known: dict[str, tuple[float, ...]],
                budget_s: float, stored_name: str | None = None,
                ) -> tuple[dict[str, tuple[float, ...]], Step | None]:  # fmt: skip
    """Add the parts of a sum that came with the tiles' stores (and record that every tile stored
    ``stored_name``), then the sums the stage needs before its next store, over the whole product;
    return the known values and the stage's next round (an intermediate to store; None: the stage can run)."""
    _within_budget(plan, budget_s, f"the next round of {stage}")
    out = dict(known)
    if parts:
        name, total = stages.add_parts(plan, parts)
        out[name] = total
    if stored_name is not None:
        out = stages.stored(out, stored_name)
    with forward_logs(), on_task_runner_cluster():
        return stages.add_sums(plan, stage, out)


@task(
    name="encoding",
    task_run_name="encoding-{group}m-{plan.l2a_id}",
    cache_policy=NO_CACHE,
    **STAGE_RETRIES,
)
def encoding(plan: ProductPlan, group: int, known: dict[str, tuple[float, ...]], budget_s: float) -> StageDone:
    """Encode the files of correction group ``group`` once every tile has stored it (beside the next group's tiles)."""
    _within_budget(plan, budget_s, f"encoding the {group} m files")
    watch = Stopwatch()
    with forward_logs(), on_task_runner_cluster():
        done = stages.encode_group(plan, group, known)
    return replace(done, seconds=round(watch.elapsed(), 2))


@dataclass
class ProductRun:
    """The futures of one product's task runs, in order (the tiling first, the packaging last)."""

    ref: L1CRef
    futures: list[Any]

    @property
    def last(self) -> Any:
        """The packaging task's future: its result is the product's outcome."""
        return self.futures[-1]


def _product_task(kind: Any, budget_s: float, tags: Sequence[str]) -> Any:
    """Task ``kind`` as a product's task: the product's budget as its timeout, the product's tags."""
    return kind.with_options(timeout_seconds=budget_s, tags=list(tags))


def _stage_task(stage: str, budget_s: float, tags: Sequence[str]) -> Any:
    kind = stage.split("-")[0] if stage.startswith("correction") else stage
    return _product_task(run_stage, budget_s, tags).with_options(name=kind)


def submit_product(ref: L1CRef, output_root: str, options: ProcessingOptions, overwrite: bool,
                   timeout_minutes: float, tags: Sequence[str] = ()) -> ProductRun:  # fmt: skip
    """Submit the task chain of one product at once; the flow waits on :attr:`ProductRun.last`.

    ``timeout_minutes`` bounds the whole chain, counted from its plan: each task's Prefect
    timeout is the whole budget (a backstop for one task that hangs), and every task after
    the tiling refuses to start once the budget has run out. ``tags``: the tasks' tags
    (:func:`tasks.product.product_tags`).
    """
    budget = max(1.0, timeout_minutes * 60.0)
    config = to_config(options, overwrite, ref.granule)
    plan = _product_task(tiling, budget, tags).submit(ref, output_root, options, overwrite)
    futures = [plan]
    done: list[Any] = []
    for stage in stages.stage_names(config)[1:-1]:  # decode is part of the tiling task
        done.append(_stage_task(stage, budget, tags).submit(plan, stage, list(done), budget))
        futures.append(done[-1])
    final = _product_task(packaging, budget, tags)
    # Prefect resolves the plan's future to its value when the task runs; its stubs type only the value.
    futures.append(final.submit(plan, list(done), ref, budget))  # type: ignore[call-overload]
    return ProductRun(ref, futures)


def _error(value: Any) -> BaseException | None:
    return value if isinstance(value, BaseException) else None


def collect_product(run: ProductRun) -> ProductOutcome:
    """The outcome of a finished chain; a failed chain names the first failed stage and leaves no work folder."""
    outcome: ProductOutcome | None = None
    failure: str | None = None
    for future in run.futures:
        try:
            value = future.result(raise_on_failure=False)
        except Exception as exc:  # noqa: BLE001 - the Dask future itself failed: worker lost, cancelled
            value = exc
        error = _error(value)
        if error is not None and failure is None:
            failure = f"{type(error).__name__}: {error}"
        elif isinstance(value, ProductOutcome):
            outcome = value
    if failure is None and outcome is not None:
        return outcome
    _discard(run)
    return ProductOutcome(l1c_href=run.ref.href, product_id=run.ref.product_id, status="failed",
                          error=failure or "no outcome", tile=run.ref.tile,
                          sensing_time=run.ref.sensing_time)  # fmt: skip


def _discard(run: ProductRun) -> None:
    try:
        plan = run.futures[0].result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - no plan, no work folder
        return
    if isinstance(plan, ProductPlan):
        stages.discard(plan)


def _gather(futures: list[Any], product_id: str, deadline: float, budget_s: float, what: str) -> list[Any]:
    """The results of a round's tasks, once every one has finished (the first failure raised then):
    a failed product's work folder is removed only when no tile of it is still writing.

    The wait ends at ``deadline`` (``time.time()`` seconds; at least a second from now), when
    the product's time budget ``budget_s`` runs out: a task the cluster lost (its workers
    gone) never finishes, and an unbounded wait hung the flow.

    Raises
    ------
    ProcessingTimeout
        Some tasks had not finished when the budget ran out.
    """
    _, not_done = wait(futures, timeout=max(1.0, deadline - time.time()))
    if not_done:
        raise ProcessingTimeout(f"{product_id}: the product's time budget of {budget_s:g} s ran out waiting "
                                f"for {what} ({len(not_done)} of {len(futures)} task(s) unfinished)")  # fmt: skip
    return [f.result() for f in futures]


def _map_tiles(submit: Callable[..., Any], tiles: Sequence[Tile], at_once: int, product_id: str,
               deadline: float, budget_s: float, what: str) -> list[Any]:  # fmt: skip
    """The results of ``submit(tile=tile)`` for every tile, in tile order, with at most ``at_once`` tasks in flight.

    A tile is submitted as soon as another finishes (a sliding window, not waves: a slow
    tile holds back no other), so the cluster stays busy while only ``at_once`` tiles'
    graphs and blocks are in memory at a time. After a failure no more tiles start; the
    ones in flight are waited for (a failed product's work folder is removed only when no
    tile of it is still writing), then the first failure is raised.

    Raises
    ------
    ProcessingTimeout
        The product's time budget ran out (``deadline``, ``time.time()`` seconds) before the
        round finished.
    """
    finished: queue.Queue[Any] = queue.Queue()
    waiting = deque(tiles)
    futures: list[Any] = []
    in_flight = 0
    failed = False
    while in_flight or (waiting and not failed):
        while waiting and not failed and in_flight < at_once:
            future = submit(tile=waiting.popleft())
            future.add_done_callback(finished.put)
            futures.append(future)
            in_flight += 1
        try:
            done = finished.get(timeout=max(1.0, deadline - time.time()))
        except queue.Empty:
            raise ProcessingTimeout(f"{product_id}: the product's time budget of {budget_s:g} s ran out waiting "
                                    f"for {what} ({in_flight} of {len(tiles)} tile task(s) unfinished, "
                                    f"{len(waiting)} not started)") from None  # fmt: skip
        in_flight -= 1
        try:
            failed = failed or _error(done.result(raise_on_failure=False)) is not None
        except Exception:  # noqa: BLE001 - the Dask future itself failed (worker lost, cancelled): raised below
            failed = True
    return [f.result() for f in futures]


def _submit_stage_tile(stage_task: Any, plan: ProductPlan, stage: str, known: dict[str, tuple[float, ...]],
                       budget_s: float, tile: Tile) -> Any:  # fmt: skip
    return stage_task.with_options(task_run_name=f"{stage}-tile{tile.index}-{plan.l2a_id}").submit(
        plan, stage, [StageDone(stage, totals=known)], budget_s, tile
    )


def process_by_tiles(ref: L1CRef, output_root: str, options: ProcessingOptions, overwrite: bool,
                     timeout_minutes: float, tags: Sequence[str] = ()) -> ProductOutcome:  # fmt: skip
    """Process one product by processing tiles on the flow's task runner (must run inside a flow).

    The tiles of a round (an intermediate to store, the stage itself) run side by side,
    mapped over the cluster, at most ``options.tiles_at_once`` in flight
    (:func:`_map_tiles`); the flow waits for the whole round, and one ``reduce`` task adds up
    the sums that came with it and those the stage needs next, then names the next round.
    The tiles' graphs share keys (the neighbouring blocks a tile's margins need): computed
    unfused, each key has the same definition in every tile's graph, so the scheduler shares
    it instead of refusing the second one. ``timeout_minutes`` bounds the whole product, counted from its plan. A
    failed product leaves nothing behind. ``tags``: the tags of its tasks but the reduces
    (:func:`tasks.product.product_tags`).
    """
    budget = max(1.0, timeout_minutes * 60.0)
    watch = Stopwatch()
    (plan,) = _gather([_product_task(tiling, budget, tags).submit(ref, output_root, options, overwrite)],
                      ref.product_id, time.time() + budget, budget, "tiling")  # fmt: skip
    if isinstance(plan, L2AResult):
        return outcome_from_result(ref, plan, None)
    deadline = plan.planned_at + budget

    def gather(futures: list[Any], what: str) -> list[Any]:
        return _gather(futures, plan.product_id, deadline, budget, what)

    at_once = options.tiles_at_once or len(plan.tiles)

    def map_tiles(submit: Callable[..., Any], what: str) -> list[Any]:
        return _map_tiles(submit, plan.tiles, at_once, plan.product_id, deadline, budget, what)

    encodings: list[Any] = []
    try:
        known: dict[str, tuple[float, ...]] = {}
        after: list[StageDone | None] = []
        reduce = reduce_sums.with_options(timeout_seconds=budget)
        store = _product_task(tile_store, budget, tags)
        for stage in plan.stages()[1:-1]:
            kind = _stage_task(stage, budget, tags)
            step = None
            if stages.has_rounds(plan, stage):
                ((known, step),) = gather([reduce.submit(plan, stage, [], known, budget)], stage)
            while step is not None:
                what = f"{step.kind} {step.name} of {stage}"
                # The sum that reads the stored blocks comes with them (stages.SUM_WITH_STORE).
                parts = stages.parts_with(
                    map_tiles(partial(store.submit, plan, stage, step.name, known, budget_s=budget), what)
                )
                futures = [reduce.submit(plan, stage, parts, known, budget, step.name)]
                ((known, step),) = gather(futures, f"the reduce of {what}")
            after += map_tiles(partial(_submit_stage_tile, kind, plan, stage, known, budget), f"the tiles of {stage}")
            group = stages.correction_group(stage)
            if group is not None and group != plan.groups[-1]:
                # This group's files are encoded while the next group's tiles run (not waited for
                # until packaging), as the whole-product stages do.
                encodings.append(_product_task(encoding, budget, tags).submit(plan, group, known, budget))
        after += gather(encodings, "the encoding of the files stored before")
        after.insert(0, StageDone("sums", totals=known))
        outcome: ProductOutcome
        (outcome,) = gather([_product_task(packaging, budget, tags).submit(plan, after, ref, budget)], "packaging")
    except BaseException:
        # An encoding still running writes into the work folder: removed only once it has ended.
        wait(encodings, timeout=max(1.0, deadline - time.time()))
        stages.discard(plan)
        raise
    log.info("%s: done by %d tiles in %.1f s", plan.l2a_id, len(plan.tiles), watch.elapsed())
    return outcome.model_copy(update={"seconds": round(watch.elapsed(), 2)})

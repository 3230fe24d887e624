"""What every flow does once it knows its products: skip those done, process, publish, report, end.

Daily ingest, backfill and the one-product flow differ only in *what they enqueue*;
from the list of references on, they share :func:`run_products`:

1. **skip-done** (one task, run in the flow's own process before anything goes to the
   Dask cluster): products already done are skipped, unless ``overwrite``. When nothing
   is left to process, publishing and the report run in the flow's process too, so a
   rerun over finished products starts no cluster;
2. **process** (for each product the chain of its stage tasks, :mod:`tasks.stages`:
   tiling → screening → atmosphere → correction → packaging), at most
   ``max_concurrency`` products at a time: the flow submits a new product only when
   one has finished (a bounded submission window), because a stage task secedes from
   its Dask worker thread while its kernels run, and Dask would otherwise start every
   queued product at once and multiply the memory in use. A bad product fails alone
   (the stage that failed is ``Failed``, with the reason) and the others go on;
3. **publish** (one task): the STAC collection at the output root is updated with
   every finished product's item;
4. **report** (one task): table and markdown artifacts, quicklooks, report on disk.

Final state of a flow run (documented in ``docs/orchestration.md``):

- ``Completed`` when no product failed (also when nothing was found, or everything
  was already done); the return value is the :class:`~tasks.models.RunSummary`;
- ``Failed`` when at least one product failed or publishing failed, *after* the
  other products were processed, published and reported: the flow raises
  :class:`RunFailed`, whose message names the failed products and whose
  ``summary`` attribute holds the whole summary;
- ``Failed`` earlier if discovery fails after its retries (nothing was processed);
- ``Crashed`` / ``Cancelled`` as Prefect defines them (infrastructure lost, operator cancelled).
"""

from __future__ import annotations

import datetime as dt
import queue
import time
from collections import deque
from typing import Any

from prefect import get_run_logger

from tasks.models import L1CRef, ProcessingOptions, ProductOutcome, RunSummary, TimeWindow
from tasks.product import process_l1c, product_tags, skip_done
from tasks.publish import publish_products
from tasks.report import ProgressArtifact, report_run
from tasks.stages import ProductRun, collect_product, process_by_tiles
from tasks.stages import submit_product as submit_stages

__all__ = ["RunFailed", "process_bounded", "run_products", "submit_product"]


class RunFailed(RuntimeError):
    """At least one product (or the collection update) failed; everything else was processed and reported."""

    def __init__(self, summary: RunSummary, problems: list[str]) -> None:
        self.summary = summary
        self.problems = problems
        """One line per problem: ``{product id}: {error}``, then any publishing error."""
        super().__init__(f"{summary.headline()}; " + "; ".join(problems))

    def __reduce__(self) -> tuple[type, tuple[RunSummary, list[str]]]:
        # Prefect may pickle the exception as the failed state's data.
        return (type(self), (self.summary, self.problems))


def _failed(ref: L1CRef, error: BaseException | str) -> ProductOutcome:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return ProductOutcome(l1c_href=ref.href, product_id=ref.product_id, status="failed", error=text, tile=ref.tile,
                          sensing_time=ref.sensing_time)  # fmt: skip


def _collect(ref: L1CRef, handle: Any) -> ProductOutcome:
    """The outcome of a finished product (a stage chain or one task), whatever its final state."""
    if isinstance(handle, ProductRun):
        return collect_product(handle)
    try:
        value = handle.result(raise_on_failure=False)
    except Exception as exc:  # noqa: BLE001 - the Dask future itself failed: worker lost, cancelled
        return _failed(ref, exc)
    if isinstance(value, ProductOutcome):
        return value
    if isinstance(value, BaseException):
        return _failed(ref, value)
    return _failed(ref, f"unexpected task result {value!r}")


def submit_product(ref: L1CRef, output_root: str, options: ProcessingOptions | None, overwrite: bool,
                   timeout_minutes: float) -> Any:  # fmt: skip
    """Submit the work of one product; return its handle (a :class:`~tasks.stages.ProductRun`, or one future).

    The one place that knows what processing a product means: the chain of its stage
    tasks (default), or one task (``options.task_per_stage=False``). The tasks carry the
    product tag only when the server has a limit on it (:func:`tasks.product.product_tags`).
    """
    options = options or ProcessingOptions()
    tags = product_tags()
    if options.task_per_stage:
        return submit_stages(ref, output_root, options, overwrite, timeout_minutes, tags)
    budget = max(1.0, timeout_minutes * 60.0)
    return process_l1c.with_options(timeout_seconds=budget, tags=tags).submit(
        ref, output_root, options, overwrite, budget
    )


#: Seconds between checks of the products in flight (the wait for the next finished one is bounded).
POLL_S = 30.0
#: Grace after a product's own timeout before the flow gives up waiting on it.
GRACE_S = 300.0


def process_bounded(
    refs: list[L1CRef],
    output_root: str,
    options: ProcessingOptions | None,
    overwrite: bool,
    max_concurrency: int,
    product_timeout_minutes: float,
    progress: ProgressArtifact | None = None,
) -> list[ProductOutcome]:
    """Process ``refs`` with at most ``max_concurrency`` products in flight; outcomes in input order.

    With ``options.tile_blocks``, products are processed one after the other, each by
    tiles (:func:`tasks.stages.process_by_tiles`): the tiles fill the cluster. A product
    whose last task has not finished ``GRACE_S`` after its timeout is reported failed
    (a lost future never finishes), so the flow never waits without a bound.
    """
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
    logger = get_run_logger()
    if options is not None and options.tile_blocks:
        return [_tiled(ref, output_root, options, overwrite, product_timeout_minutes, progress) for ref in refs]
    finished: queue.Queue[Any] = queue.Queue()
    pending = deque(enumerate(refs))
    inflight: dict[Any, tuple[int, L1CRef, Any, float]] = {}
    outcomes: dict[int, ProductOutcome] = {}
    budget = product_timeout_minutes * 60.0
    while pending or inflight:
        while pending and len(inflight) < max_concurrency:
            index, ref = pending.popleft()
            handle = submit_product(ref, output_root, options, overwrite, product_timeout_minutes)
            last = handle.last if isinstance(handle, ProductRun) else handle
            # The budget bounds the product, however many tasks it is split into (tasks.stages); its last task
            # may start just before the budget ends and then run for its own timeout, the budget again.
            inflight[last.task_run_id] = (index, ref, handle, time.monotonic() + 2 * budget + GRACE_S)
            last.add_done_callback(finished.put)
        try:
            key = finished.get(timeout=POLL_S).task_run_id
        except queue.Empty:
            late = [k for k, v in inflight.items() if time.monotonic() > v[3]]
            if not late:
                continue
            key = late[0]
            index, ref, handle, _ = inflight.pop(key)
            outcome = outcomes[index] = _failed(ref, f"no result {2 * budget + GRACE_S:.0f} s after submission: "
                                                     "the task or its Dask future was lost")  # fmt: skip
        else:
            if key not in inflight:
                continue
            index, ref, handle, _ = inflight.pop(key)
            outcome = outcomes[index] = _collect(ref, handle)
        if outcome.status == "failed":
            logger.error("%s failed: %s", ref.product_id, outcome.error)
        else:
            logger.info("%s: %s (%d of %d)", ref.product_id, outcome.status, len(outcomes), len(refs))
        if progress is not None:
            progress.advance()
    return [outcomes[i] for i in range(len(refs))]


def _tiled(ref: L1CRef, output_root: str, options: ProcessingOptions, overwrite: bool, timeout_minutes: float,
           progress: ProgressArtifact | None) -> ProductOutcome:  # fmt: skip
    logger = get_run_logger()
    try:
        outcome = process_by_tiles(ref, output_root, options, overwrite, timeout_minutes, product_tags())
    except Exception as exc:  # noqa: BLE001 - a bad product fails alone and is reported
        outcome = _failed(ref, exc)
        logger.error("%s failed: %s", ref.product_id, outcome.error)
    else:
        logger.info("%s: %s by tiles", ref.product_id, outcome.status)
    if progress is not None:
        progress.advance()
    return outcome


def run_products(
    flow: str,
    refs: list[L1CRef],
    output_root: str,
    options: ProcessingOptions | None = None,
    overwrite: bool = False,
    max_concurrency: int = 2,
    product_timeout_minutes: float = 60.0,
    window: TimeWindow | None = None,
) -> RunSummary:
    """Skip what is done, process, publish and report ``refs``; raise :class:`RunFailed` at the end if anything failed.

    Must run inside a flow (it submits tasks to the flow's task runner).
    """
    logger = get_run_logger()
    # Called, not submitted: it runs here, and the task runner starts its cluster only at the first submission.
    selection = skip_done(refs, output_root, options, overwrite)
    progress = ProgressArtifact(len(selection.todo), f"{flow}: {len(selection.todo)} product(s) to process")
    processed = process_bounded(selection.todo, output_root, options, overwrite, max_concurrency,
                                product_timeout_minutes, progress)  # fmt: skip
    # In discovery order; the granules of an old multi-granule product share its href and stay together.
    order = {r.href: i for i, r in reversed(list(enumerate(refs)))}
    outcomes = sorted([*selection.skipped, *processed], key=lambda o: order.get(o.l1c_href, len(refs)))

    problems: list[str] = []
    # Every product was found done: this process has just read them, so it publishes and reports them
    # itself and the run starts no cluster. Otherwise the cluster, which wrote them, does.
    here = not selection.todo and bool(selection.skipped)
    published = publish_products(output_root, outcomes, return_state=True) if here else (
        publish_products.submit(output_root, outcomes))  # fmt: skip
    collection = published.result(raise_on_failure=False)
    if isinstance(collection, BaseException):
        problems.append(f"STAC collection not updated: {type(collection).__name__}: {collection}")
        logger.error(problems[-1])
        collection = None
    summary = RunSummary(flow=flow, output_root=output_root, window=window, discovered=len(refs), outcomes=outcomes,
                         collection=collection)  # fmt: skip
    summary = report_run(summary) if here else report_run.submit(summary).result()
    logger.info("%s (report %s)", summary.headline(), summary.report)
    if summary.failed or problems:
        raise RunFailed(summary, [f"{o.product_id}: {o.error}" for o in summary.failed] + problems)
    return summary


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A plain aware UTC ``datetime`` (Prefect's runtime gives pendulum objects)."""
    moment = dt.datetime.fromisoformat(moment.isoformat())
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)

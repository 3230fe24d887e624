"""Per-product tasks: skipping what is already done, and processing (one L1C href in, one small row out).

By default the flows process a product as the chain of its stage tasks
(:mod:`tasks.stages`). :func:`process_l1c` is the other unit: one task per product, a
thin wrapper around :func:`sen2core.pipeline.process_product` that runs the same
stages inside one task run (``ProcessingOptions.task_per_stage=False``: fewer task
runs for the Prefect server when products are many). Both take an
:class:`~tasks.models.L1CRef` and give a :class:`~tasks.models.ProductOutcome`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from sen2core.correction import CorrectionConfig
from sen2core.package import is_done
from sen2core.pipeline import L2AResult, ProcessingConfig, output_dir, process_product
from sen2core.stopwatch import Stopwatch
from tasks.logs import forward_logs
from tasks.models import L1CRef, ProcessingOptions, ProductOutcome
from tasks.retry import PRODUCT_RETRIES

log = logging.getLogger(__name__)

__all__ = ["PRODUCT_TAG", "Selection", "outcome_from_result", "process_l1c", "product_tags", "skip_done", "to_config"]

#: Tag of the product tasks once a limit is set on it: ``prefect concurrency-limit create sen2core-product N``
#: caps the product tasks running at once across all flow runs (on top of each flow's own ``max_concurrency``).
PRODUCT_TAG = "sen2core-product"


def product_tags() -> list[str]:
    """The tags of one product's tasks: ``[PRODUCT_TAG]`` if the run's Prefect server has a concurrency limit on it.

    A tagged task asks the server for a slot of every limit on its tags as it starts, limit or
    not. Prefect's server on SQLite answers that request 503 when another write commits at the
    same moment (the end of the task before, its logs and events), and the client retries two
    seconds later: a stage of the staged flow started 1.8 to 2.5 s late, up to three times per
    product (1830 px scene, 2 workers). Without a limit the tag bounds nothing, so the tasks go
    without it. Read as each product is submitted: a limit created during a backfill applies from
    the next product on. When the server cannot be read, the tasks keep the tag (the engine then
    applies whatever limit there is).
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_concurrency_limit_by_tag(PRODUCT_TAG)
    except ObjectNotFound:
        return []
    except Exception as exc:  # noqa: BLE001 - any failure to read: tagged, as if a limit existed
        log.debug("concurrency limit on %s not read (%s): product tasks tagged", PRODUCT_TAG, exc)
    return [PRODUCT_TAG]


def to_config(options: ProcessingOptions, overwrite: bool = False, granule: str | None = None) -> ProcessingConfig:
    """The library configuration for ``options`` (and the granule of an old multi-granule product)."""
    return ProcessingConfig(granule=granule,
        resolution=options.resolution, sc_only=options.sc_only, dem=options.dem, overwrite=overwrite,
        correction=CorrectionConfig(aerosol=options.aerosol, cirrus_correction=options.cirrus),
        format=options.output_format, chunk_m=options.chunk_m, verify_checksums=options.verify_checksums,
    )  # fmt: skip


def _number(mapping: dict[str, Any], key: str) -> float | None:
    value = mapping.get(key)
    return None if value is None else float(value)


def outcome_from_result(ref: L1CRef, result: L2AResult, seconds: float | None) -> ProductOutcome:
    """One report row from the library's result."""
    return ProductOutcome(
        l1c_href=ref.href, product_id=result.l1c_id or ref.product_id, status="skipped" if result.status == "skipped"
        else "done", l2a_id=result.l2a_id, output_dir=result.output_dir,
        cloud_cover=_number(result.class_percentages, "CLOUDY_PIXEL_PERCENTAGE"),
        aot=_number(result.atmosphere, "GRANULE_MEAN_AOT"), water_vapour=_number(result.atmosphere, "GRANULE_MEAN_WV"),
        seconds=None if seconds is None else round(seconds, 2), tile=ref.tile, sensing_time=ref.sensing_time,
    )  # fmt: skip


@contextmanager
def on_task_runner_cluster() -> Iterator[Any]:
    """Send the dask (and joblib) work of the block to the cluster this task runs on.

    On a Dask worker (a ``DaskTaskRunner`` task) the block runs with the worker's own
    client (``distributed.get_client``), which stays open as long as the worker: the
    library's ``dask.compute``/``da.store`` calls run on the cluster and secede from the
    worker thread while they wait (no deadlock however few threads the cluster has), and
    joblib sections use the dask backend. Elsewhere (another task runner, a plain call)
    the block runs on dask's local threads.

    No temporary client is opened (``prefect_dask.get_dask_client`` opens one per task):
    a temporary client becomes the process's default client, which every task thread of
    the worker then uses, and while it closes its scheduler is None. Per-tile tasks, several
    per worker, failed that way ("'NoneType' object has no attribute 'address'").
    """
    from distributed import get_client, get_worker

    try:
        get_worker()
    except ValueError:
        yield None
        return
    import joblib  # type: ignore[import-untyped]

    client = get_client()
    with joblib.parallel_config(backend="dask"):
        yield client


@task(
    name="process-l1c",
    task_run_name="l2a-{ref.product_id}",
    timeout_seconds=3600,
    cache_policy=NO_CACHE,
    **PRODUCT_RETRIES,
)
def process_l1c(
    ref: L1CRef,
    output_root: str,
    options: ProcessingOptions | None = None,
    overwrite: bool = False,
    time_budget_s: float | None = None,
) -> ProductOutcome:
    """Process one Level-1C product into ``output_root``; its dask work runs on the task runner's cluster.

    Parameters
    ----------
    ref
        The product (its ``href`` is what the library opens).
    output_root
        Root of the output tree.
    options
        Processing options (defaults: :class:`~tasks.models.ProcessingOptions`).
    overwrite
        Reprocess a product that is already done.
    time_budget_s
        The task's timeout, also checked by the library as each stage starts (a Prefect
        timeout in a worker thread may be lost).

    Returns
    -------
    ProductOutcome
        ``done``, or ``skipped`` if the product was already done.

    Raises
    ------
    sen2core.errors.InputProductError
        A bad product: the task fails at once, without retries.
    sen2core.errors.TransientIOError
        Retried (3 times, exponential backoff from 30 s, with jitter), like other
        I/O errors, HTTP 5xx and a lost Dask worker; a timeout is not retried.
    """
    config = to_config(options or ProcessingOptions(), overwrite, ref.granule)
    watch = Stopwatch()
    with forward_logs(), on_task_runner_cluster():
        result = process_product(ref.href, output_root, config, time_budget_s=time_budget_s)
    seconds = watch.elapsed()
    log.info("%s: %s in %.1f s -> %s", result.l2a_id, result.status, seconds, result.output_dir)
    return outcome_from_result(ref, result, seconds if result.status == "done" else None)


class Selection(BaseModel):
    """Products split by :func:`skip_done`: those to process and those already done."""

    todo: list[L1CRef] = Field(default_factory=list)
    skipped: list[ProductOutcome] = Field(default_factory=list)


@task(name="skip-done", cache_policy=NO_CACHE)
def skip_done(
    refs: list[L1CRef], output_root: str, options: ProcessingOptions | None = None, overwrite: bool = False
) -> Selection:
    """Split ``refs`` into products to process and products already done (skipped unless ``overwrite``).

    An old multi-granule product (before December 2016) becomes one reference per granule
    (``L1CRef.granule``), each processed, skipped and reported as a product of its own.

    One task for the whole list, so that a rerun over thousands of finished products
    costs one metadata read each instead of one task run each. The flows call it in
    their own process, before any task goes to the Dask cluster, so that a run with
    nothing left to do starts no cluster. "Done" is decided by
    :func:`sen2core.package.is_done` on :func:`sen2core.pipeline.output_dir`, like
    the library itself decides it. A product that cannot be opened is left to
    process, where it fails (or is retried, for a transient error) and is reported.
    """
    from sen2core.io.read.model import granule_tiles
    from sen2core.io.read.opening import open_l1c
    from sen2core.pipeline import l2a_id

    fmt = (options or ProcessingOptions()).output_format
    selection = Selection()
    with forward_logs():
        for whole in refs:
            try:
                with warnings.catch_warnings():
                    # Metadata fallbacks are reported when the product is processed.
                    warnings.simplefilter("ignore")
                    product = open_l1c(whole.href, tile=whole.granule)
                    tiles = granule_tiles(product) if whole.granule is None else ()
                    parts = [(whole, product)] if len(tiles) < 2 else [
                        (whole.model_copy(update={"granule": t, "tile": t}), open_l1c(whole.href, tile=t))
                        for t in tiles
                    ]  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - skipping only saves work; processing reports the error
                log.info("%s: cannot tell whether it is done (%s); left to process", whole.product_id, exc)
                selection.todo.append(whole)
                continue
            if len(parts) > 1:
                log.info("%s: %d granules (%s), processed one by one", whole.product_id, len(parts), ", ".join(tiles))
            for ref, granule in parts:
                folder = output_dir(granule, output_root, fmt)
                if not overwrite and is_done(folder):
                    selection.skipped.append(ProductOutcome(
                        l1c_href=ref.href, product_id=granule.product_id, status="skipped", l2a_id=l2a_id(granule),
                        output_dir=str(folder), tile=ref.tile, sensing_time=ref.sensing_time,
                    ))  # fmt: skip
                else:
                    selection.todo.append(ref)
        log.info("%d to process, %d already done", len(selection.todo), len(selection.skipped))
    return selection

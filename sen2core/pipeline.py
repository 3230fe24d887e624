"""Process one Level-1C product into a Level-2A product: the library's unit of work.

``process_product(l1c_href, output_root, config) -> L2AResult`` runs the product's
plan (:mod:`sen2core.stages`) in this process: its stages one after the other, each
one dask graph over the whole product (or, with ``tile_blocks``, one per processing
tile), on dask's local threads or the cluster of the active ``distributed`` client.
The Prefect flows run the same plan, one task per stage.

The product is built in a hidden sibling folder and renamed into place once complete;
the file written last (the STAC item, or ``MTD_MSIL2A.xml`` of a SAFE) marks it done,
so a crash never leaves something that looks finished, and a rerun of a finished
product is a no-op (unless overwrite).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sen2core.errors import ConfigurationError, ProcessingTimeout
from sen2core.io.remote import is_remote, join
from sen2core.io.stac.cog_product import SUMMARY_NAME, item_name
from sen2core.io.stac.collection import update_collection
from sen2core.io.write.upload import output_objects, published, read_json, upload_product
from sen2core.run import (
    BANDS_10M,
    BANDS_20M,
    BANDS_60M,
    INPUT_BANDS,
    WORKING_BANDS,
    L2AResult,
    ProcessingConfig,
    l2a_id,
    output_dir,
    spacecraft_code,
)
from sen2core.stages import (
    ProductPlan,
    Totals,
    add_parts,
    add_sums,
    decode,
    discard,
    open_product,
    package,
    parts_with,
    plan_product,
    run_stage,
    store_part,
    stored,
)
from sen2core.stopwatch import Stopwatch

log = logging.getLogger(__name__)

__all__ = [
    "BANDS_10M",
    "BANDS_20M",
    "BANDS_60M",
    "INPUT_BANDS",
    "WORKING_BANDS",
    "L2AResult",
    "ProcessingConfig",
    "l2a_id",
    "output_dir",
    "process_product",
    "run_plan",
    "spacecraft_code",
]


def _begin_stage(watch: Stopwatch, name: str, progress: Callable[[str], None] | None,
                 budget_s: float | None) -> None:  # fmt: skip
    """Check the time budget, report the stage and start its lap."""
    # Orchestrators' own timeouts may not interrupt a thread (Prefect's land at the thread's
    # next bytecode, and are lost if that is in a garbage-collector callback): the budget
    # is also checked here.
    if budget_s is not None and watch.elapsed() > budget_s:
        raise ProcessingTimeout(f"processing exceeded its time budget of {budget_s:g} s "
                                f"(stopped before stage {name!r})")  # fmt: skip
    if progress:
        progress(name)
    log.info("stage %s", name)
    watch.restart_lap()


def _run_stage(plan: ProductPlan, stage: str, known: dict[str, tuple[float, ...]]) -> None:
    if not plan.tiles:
        known.update(run_stage(plan, stage, known).totals)
        return
    # By tiles: the stage's rounds first (scene-wide sums added up over the whole product,
    # intermediates stored by every tile), then the stage itself, tile by tile.
    totals, step = add_sums(plan, stage, known)
    known.update(totals)
    while step is not None:
        parts = parts_with([store_part(plan, stage, step.name, known, tile) for tile in plan.tiles])
        if parts:  # the sum that reads the stored blocks came with them
            reduced, total = add_parts(plan, parts)
            known[reduced] = total
        known.update(stored(known, step.name))
        log.debug("%s: %s stored over %d tiles", plan.l2a_id, step.name, len(plan.tiles))
        totals, step = add_sums(plan, stage, known)
        known.update(totals)
    for tile in plan.tiles:
        run_stage(plan, stage, known, tile)


def run_plan(
    plan: ProductPlan,
    progress: Callable[[str], None] | None = None,
    time_budget_s: float | None = None,
    known: Totals | None = None,
    started: float | None = None,
) -> L2AResult:
    """Run every stage of ``plan`` in this process; its work folder is removed whatever happens.

    ``time_budget_s`` counts from ``started`` (a :func:`time.perf_counter` value; default now).

    Raises
    ------
    ProcessingTimeout
        ``time_budget_s`` ran out before a stage (nothing is published).
    """
    watch = Stopwatch(started)
    totals = dict(known or {})
    try:
        for stage in plan.stages():
            _begin_stage(watch, stage, progress, time_budget_s)
            if stage == "packaging":
                result = package(plan, totals, watch.laps)
                watch.lap(stage)
                return L2AResult(**{**result.__dict__, "seconds": dict(watch.laps)})
            if stage == "decode":
                decode(plan)
            else:
                _run_stage(plan, stage, totals)
            watch.lap(stage)
    finally:
        discard(plan)
    raise AssertionError("a plan ends with packaging")


def process_product(
    l1c_href: str | os.PathLike[str],
    output_root: str | os.PathLike[str],
    config: ProcessingConfig | None = None,
    progress: Callable[[str], None] | None = None,
    time_budget_s: float | None = None,
    tile_blocks: int | None = None,
) -> L2AResult:
    """Process one Level-1C product to Level-2A under ``output_root``.

    A COG product's item is added to ``{output_root}/collection.json`` (its ``collection``,
    ``parent`` and ``root`` link), also when the product was already done.

    Parameters
    ----------
    l1c_href
        SAFE folder, ``.SAFE.zip``, ``MTD_MSIL1C.xml`` or AWS tile folder.
    output_root
        Root of the output tree (``{root}/{tile}/{yyyy}/{mm}/{dd}/{l2a_id}/``): a local
        folder, or ``s3://bucket/prefix`` (COG layout only; see :func:`_process_to_remote`).
    config
        Processing options (default: :class:`ProcessingConfig`'s).
    progress
        Called with each stage's name as it starts (``plan``, then :meth:`ProductPlan.stages`).
    time_budget_s
        Stop with :class:`~sen2core.errors.ProcessingTimeout` when a stage would start after
        this many seconds (nothing is published).
    tile_blocks
        Run each stage by processing tiles of this many chunk blocks a side (the same product).

    Returns
    -------
    L2AResult

    Raises
    ------
    InputProductError
        The input is not a usable Level-1C product.
    ProcessingTimeout
        ``time_budget_s`` ran out.
    """
    if is_remote(os.fspath(output_root)):
        return _process_to_remote(l1c_href, os.fspath(output_root), config or ProcessingConfig(), progress,
                                  time_budget_s, tile_blocks)  # fmt: skip
    watch = Stopwatch()
    if progress:
        progress("plan")
    config = config or ProcessingConfig()
    plan = plan_product(l1c_href, output_root, config, tile_blocks)
    if isinstance(plan, L2AResult):
        _join_collection(output_root, plan, config)
        return plan
    planned = watch.lap("plan")
    result = run_plan(plan, progress, time_budget_s, started=watch.start)
    _join_collection(output_root, result, config)
    return L2AResult(**{**result.__dict__, "seconds": {"plan": planned, **result.seconds}})


def _join_collection(output_root: str | os.PathLike[str], result: L2AResult, config: ProcessingConfig) -> None:
    """Add a COG product's item to the collection at the output root, which the item links to as its root."""
    if config.format != "cog" or result.status not in ("done", "skipped"):
        return
    root = os.fspath(output_root)
    if is_remote(root):
        update_collection(root, [join(result.output_dir, item_name(result.output_dir))])
    else:
        update_collection(root, [Path(result.output_dir) / item_name(result.output_dir)])


def _process_to_remote(l1c_href: str | os.PathLike[str], output_root: str, config: ProcessingConfig,
                       progress: Callable[[str], None] | None, time_budget_s: float | None,
                       tile_blocks: int | None) -> L2AResult:  # fmt: skip
    """:func:`process_product` to object storage: built in a local temporary folder, then uploaded, item last,
    and added to the collection at ``output_root``.

    A product whose item is already in the bucket is skipped (its figures read from its
    ``L2A_SUMMARY.json``) unless ``config.overwrite``.

    Raises
    ------
    ConfigurationError
        The SAFE layout was asked for (it is written to local folders only), or the root
        is not ``s3://``.
    """
    if config.format != "cog":
        raise ConfigurationError(f"{output_root}: the SAFE layout is written to a local folder only; "
                                 "object storage takes the COG + STAC layout (--format cog)")  # fmt: skip
    output_objects(output_root)  # an http(s) root fails here, before any work
    product = open_product(l1c_href, config)
    final = join(output_root, output_dir(product, "", config.format).as_posix())
    if not config.overwrite and published(final):
        summary = read_json(join(final, SUMMARY_NAME)) or {}
        skipped = L2AResult(product.product_id, l2a_id(product), final, "skipped",
                            summary.get("class_percentages", {}), summary.get("atmosphere", {}), {}, ())  # fmt: skip
        _join_collection(output_root, skipped, config)
        return skipped
    # Built where a local run builds (a temporary folder, removed whatever happens), then uploaded.
    with tempfile.TemporaryDirectory(prefix="sen2core-upload-") as local:
        result = process_product(l1c_href, local, replace(config, overwrite=True), progress, time_budget_s,
                                 tile_blocks)  # fmt: skip
        upload_product(Path(result.output_dir), final)
    result = replace(result, output_dir=final)
    _join_collection(output_root, result, config)
    return result

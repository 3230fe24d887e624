"""Dask: kernels on the task runner's cluster, no deadlock on one thread, an existing multi-process cluster."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dask.utils import key_split
from distributed import Client, get_task_stream

from flows.backfill import backfill
from flows.process_product import process_product_flow
from tasks.models import ProcessingOptions, Source

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
def test_kernels_run_on_the_existing_cluster_given_by_address(
    prefect_api: str, dask_scheduler_address: str, flow_products: dict[str, Path], tmp_path: Path
) -> None:
    """The product task and its kernels' dask tasks all execute on the cluster at ``dask_address``:
    the scheduler's task stream records both (no second cluster, no local thread pool)."""
    with Client(dask_scheduler_address, set_as_default=False) as observer:
        workers = set(observer.scheduler_info()["workers"])
        with get_task_stream(client=observer) as stream:
            summary = process_product_flow(str(flow_products["2023-07-16"]), str(tmp_path / "l2a"),
                                           options=ProcessingOptions(resolution=20),
                                           dask_address=dask_scheduler_address)  # fmt: skip
        records = stream.data
    assert [o.status for o in summary.outcomes] == ["done"]
    prefixes = {key_split(r["key"]) for r in records}
    assert {r["worker"] for r in records} <= workers
    # The Prefect tasks themselves ran on the cluster (prefect-dask names them after the task function), all
    # but skip_done, which runs in the flow's process before any cluster is needed ...
    tasks = {"tiling", "run_stage", "packaging", "publish_products", "report_run"}
    assert tasks <= prefixes, sorted(prefixes)
    # ... and so did the product's kernels: angle grids, radiometry, classification, correction, writing.
    kernels = [r for r in records if key_split(r["key"]) not in tasks]
    assert len(kernels) > 100, len(kernels)
    assert any(p.startswith("sen2core-") for p in prefixes), sorted(prefixes)  # the library's named layers
    assert "store-map" in prefixes, sorted(prefixes)  # da.store into the output files


@pytest.mark.timeout(120)
def test_no_deadlock_with_one_worker_thread(
    prefect_api: str, flow_products: dict[str, Path], in_process_runner: Callable[..., Any], tmp_path: Path
) -> None:
    """``LocalCluster(n_workers=1, threads_per_worker=1)``, two products at once: each product task holds
    the only thread until its nested computations secede; a blocking wait would hang here."""
    catalog_free = tmp_path / "inbox"
    catalog_free.mkdir()
    for day in ("2023-07-14", "2023-07-15"):
        (catalog_free / flow_products[day].name).symlink_to(flow_products[day])
    flow = backfill.with_options(task_runner=in_process_runner(workers=1, threads=1))
    summary = flow(source=Source(kind="inbox", href=str(catalog_free)), output_root=str(tmp_path / "l2a"),
                   start=dt.date(2023, 7, 14), end=dt.date(2023, 7, 15), max_concurrency=2,
                   options=ProcessingOptions(sc_only=True))  # fmt: skip
    assert [o.status for o in summary.outcomes] == ["done", "done"]

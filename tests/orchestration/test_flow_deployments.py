"""Deployments from ``deployments/prefect.yaml`` on a real Prefect server, a process worker, runs through the API."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

ROOT = Path(__file__).resolve().parents[2]
POOL = "sen2core-process"

# Prefect's task timeout injects an exception into the worker thread at its next bytecode, which
# may be inside a garbage-collector callback (then reported as "unraisable"), and the servers'
# background threads close connections at GC times that vary from run to run. Neither changes
# the outcomes asserted here, which are read back from the flow states and the API.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def prefect_cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def deployed(prefect_api: str, flow_products: dict[str, Path], tmp_path_factory: pytest.TempPathFactory,
             ) -> Iterator[dict[str, Path]]:  # fmt: skip
    """The three deployments created by ``prefect deploy`` from ``deployments/``, and a running process worker."""
    from conftest import stop_process_group

    work = tmp_path_factory.mktemp("deployed")
    inbox, out = work / "inbox", work / "l2a"
    inbox.mkdir()
    for day in ("2023-07-14", "2023-07-15"):
        (inbox / flow_products[day].name).symlink_to(flow_products[day])
    env = dict(os.environ, SEN2CORE_INBOX=str(inbox), SEN2CORE_OUTPUT=str(out), PREFECT_WORKER_QUERY_SECONDS="1")
    prefect_cli("work-pool", "create", POOL, "--type", "process", env=env)
    prefect_cli("--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml", env=env)
    log = open(work / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--limit", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield {"inbox": inbox, "out": out, "worker_log": work / "worker.log"}
    finally:
        stop_process_group(worker)
        log.close()


def test_deployments_are_created_as_configured(deployed: dict[str, Path]) -> None:
    with get_client(sync_client=True) as client:
        daily = client.read_deployment_by_name("sen2core-daily-ingest/daily-ingest")
        backfill = client.read_deployment_by_name("sen2core-backfill/backfill")
        one = client.read_deployment_by_name("sen2core-process-product/one-product")
    assert [s.schedule.cron for s in daily.schedules] == ["0 6 * * *"]  # type: ignore[union-attr]
    assert daily.global_concurrency_limit is not None and daily.global_concurrency_limit.limit == 1
    assert daily.parameters["source"] == {"kind": "inbox", "href": str(deployed["inbox"])}
    assert backfill.schedules == [] and one.schedules == []
    assert {d.work_pool_name for d in (daily, backfill, one)} == {POOL}
    # Typed parameters: the UI builds its forms from these schemas.
    assert {"start", "end", "overwrite", "max_concurrency", "tiles", "source"} <= set(
        backfill.parameter_openapi_schema["properties"])  # fmt: skip


def test_a_run_triggered_through_the_api_completes_and_its_artifacts_can_be_read(
    deployed: dict[str, Path], dask_scheduler_address: str, flow_products: dict[str, Path],
    read_artifacts: Callable[[Any], list[Any]],
) -> None:  # fmt: skip
    run = run_deployment("sen2core-process-product/one-product", timeout=240, parameters={
        "l1c_href": str(flow_products["2023-07-14"]), "options": {"resolution": 20},
        "dask_address": dask_scheduler_address})  # fmt: skip
    assert run.state is not None and run.state.is_completed(), (run.state, deployed["worker_log"].read_text()[-3000:])
    artifacts = {a.type: a for a in read_artifacts(run.state)}
    assert {"table", "markdown"} <= set(artifacts)
    rows = artifacts["table"].data if isinstance(artifacts["table"].data, list) else json.loads(artifacts["table"].data)
    assert [r["status"] for r in rows] == ["done"]
    assert rows[0]["output"].startswith(str(deployed["out"]))


def test_daily_ingest_window_is_the_day_before_the_scheduled_start(
    deployed: dict[str, Path], dask_scheduler_address: str, read_artifacts: Callable[[Any], list[Any]]
) -> None:
    # A run scheduled for 2023-07-16 06:00 UTC covers [07-15 06:00, 07-16 06:00): of the inbox's two products
    # (sensed 07-14 and 07-15, mid-morning) only the second is in it, although the run starts years later.
    run = run_deployment(
        "sen2core-daily-ingest/daily-ingest", timeout=240, scheduled_time=dt.datetime(2023, 7, 16, 6, tzinfo=dt.UTC),
        parameters={"options": {"resolution": 20}, "dask_address": dask_scheduler_address},
    )  # fmt: skip
    assert run.state is not None and run.state.is_completed(), (run.state, deployed["worker_log"].read_text()[-3000:])
    table = next(a for a in read_artifacts(run.state) if a.type == "table")
    rows = table.data if isinstance(table.data, list) else json.loads(table.data)
    assert [(r["product"][11:19], r["status"]) for r in rows] == [("20230715", "done")]

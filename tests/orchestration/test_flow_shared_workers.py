"""Long-lived Dask workers serving runs of different Prefect servers, one after the other.

An operator's ``dask worker`` processes outlive flow runs. Prefect keeps process-wide
services in each worker (the events client that records task runs, the concurrency-slot
client), created at the first task with the API of that task's run. Without care, every
later run's tasks report to the first run's server: their task runs are missing from their
own server, or they fail with ``ConcurrencySlotAcquisitionError`` when that server is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

#: The task runs of one sc-only product, by the first word of their names: the run's skip-done, publish and
#: report, and the product's stages.
TASKS = ["skip", "tiling", "screening", "correction", "packaging", "publish", "report"]


def sen2core(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sen2core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def task_runs(api_url: str, flow_run_id: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """The task runs of ``flow_run_id`` read from the server at ``api_url``, once ``expected`` are in a final
    state (task runs are recorded from the events the workers send, a little after the run ends)."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    deadline = time.monotonic() + timeout
    with SyncPrefectClient(api_url) as client:
        while True:
            runs = list(client.read_task_runs(flow_run_filter=flow_filter))
            final = [r for r in runs if r.state is not None and r.state.is_final()]
            if len(final) >= expected or time.monotonic() > deadline:
                return runs
            time.sleep(1.0)


def test_each_run_on_shared_workers_reports_to_its_own_server(flow_products: dict[str, Path], tmp_path: Path) -> None:
    from conftest import dask_cluster, start_prefect_server, stop_process_group

    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    (tmp_path / "dask").mkdir()
    # The operator's workers know no Prefect server: each run tells them its own.
    workers_env = dict(base, PREFECT_HOME=str(tmp_path / "home-workers"))
    product = str(flow_products["2023-07-14"])
    run_options = ["--sc-only", "--resolution", "60", "--json"]
    with dask_cluster(tmp_path / "dask", workers_env, workers=1) as address:
        # 1. A run in ephemeral mode: its temporary server is gone when the command returns.
        first = sen2core("flow", "product", product, "-o", str(tmp_path / "l2a-1"), "--dask-address", address,
                         *run_options, env=dict(base, PREFECT_HOME=str(tmp_path / "home-1")))  # fmt: skip
        assert first.returncode == 0, first.stderr[-3000:]

        # 2. A run against a real server, on the same workers, with the product tag limited there
        #    (as docs/orchestration.md recommends across runs).
        (tmp_path / "home-2").mkdir()
        server, api_url = start_prefect_server(tmp_path / "home-2")
        try:
            from prefect.client.orchestration import SyncPrefectClient

            with SyncPrefectClient(api_url) as client:
                client.create_concurrency_limit(tag="sen2core-product", concurrency_limit=2)
            second = sen2core("flow", "product", product, "-o", str(tmp_path / "l2a-2"), "--dask-address", address,
                              *run_options, env=dict(base, PREFECT_HOME=str(tmp_path / "home-2"),
                                                     PREFECT_API_URL=api_url))  # fmt: skip
            assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-5000:]
            assert [o["status"] for o in json.loads(second.stdout)["outcomes"]] == ["done"]

            with SyncPrefectClient(api_url) as client:
                flow_runs = list(client.read_flow_runs())
            assert len(flow_runs) == 1 and flow_runs[0].state is not None and flow_runs[0].state.is_completed()
            runs = task_runs(api_url, str(flow_runs[0].id), expected=len(TASKS))
            names = sorted((r.name, r.state_name) for r in runs)
            assert sorted(r.name.split("-")[0] for r in runs) == sorted(TASKS), names
            assert {r.state_name for r in runs} == {"Completed"}, names
            # With a limit on the product tag, the product's tasks carry it (tasks.product.product_tags).
            product = [r for r in runs if r.name.split("-")[0] in ("tiling", "screening", "correction", "packaging")]
            assert product and all(r.tags == ["sen2core-product"] for r in product), [(r.name, r.tags) for r in runs]
            # The product's concurrency slot was taken and given back on this server.
            with SyncPrefectClient(api_url) as client:
                limit = client.read_concurrency_limit_by_tag("sen2core-product")
            assert list(limit.active_slots) == [], limit
        finally:
            stop_process_group(server)

"""A flow run whose Dask scheduler dies (issue 16, item 9): a real ``dask scheduler`` and ``dask worker``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import pytest
from conftest import free_port, stop_process_group

from flows.process_product import process_product_flow
from flows.runner import DaskSchedulerLost

pytestmark = pytest.mark.slow


@pytest.fixture()
def doomed_scheduler(prefect_api: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``dask scheduler`` (and one ``dask worker``) of this test's own, which the test may kill."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = str(Path(sys.executable).with_name("dask"))
    env = dict(os.environ)  # with the session's PREFECT_API_URL
    logs = [open(tmp_path / name, "wb") for name in ("scheduler.log", "worker.log")]  # noqa: SIM115 - closed below
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--dashboard-address", "127.0.0.1:0"], env=env, stdout=logs[0],
                              stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp_path)]  # fmt: skip
    try:
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                       "--dashboard-address", "127.0.0.1:0", "--local-directory", str(tmp_path)],
                                      env=env, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True,
                                      cwd=tmp_path))  # fmt: skip
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=90)
        yield address, procs[0]
    finally:
        for proc in reversed(procs):
            stop_process_group(proc)
        for log in logs:
            log.close()


@pytest.mark.timeout(300)
def test_a_lost_scheduler_is_named_in_the_flow_run_failure(
    doomed_scheduler: tuple[str, subprocess.Popen[bytes]],
    flow_products: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler is killed right after the product is submitted. The run used to end with
    ``FutureCancelledError: publish_products-... cancelled for reason: unknown``; now with
    DaskSchedulerLost naming the scheduler's address, and no product is half published."""
    import flows.common

    address, scheduler = doomed_scheduler
    submit = flows.common.submit_product

    def submit_then_lose_the_scheduler(*args: Any, **kwargs: Any) -> Any:
        future = submit(*args, **kwargs)
        os.killpg(scheduler.pid, signal.SIGKILL)
        return future

    monkeypatch.setattr(flows.common, "submit_product", submit_then_lose_the_scheduler)
    out = tmp_path / "l2a"
    # The run's client gives up reconnecting after this long (30 s by default).
    with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
        state = process_product_flow(str(flow_products["2023-07-14"]), str(out), dask_address=address,
                                     return_state=True)  # fmt: skip
    assert state.is_failed(), state
    assert f"DaskSchedulerLost: the Dask scheduler at {address} was lost and the run stopped" in str(state.message)
    error = state.result(raise_on_failure=False)
    assert isinstance(error, DaskSchedulerLost) and error.address == address
    assert "cancelled" in error.detail  # distributed's own words kept after the explanation
    assert not [p for p in out.rglob("*.json") if p.name != "collection.json"]  # no STAC item: nothing done

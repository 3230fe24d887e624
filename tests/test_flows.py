"""Prefect: the one-product flow on a DaskTaskRunner, against a temporary Prefect server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness
from prefect_dask import DaskTaskRunner

from flows.process_product import process_product_flow


@pytest.fixture(scope="module")
def prefect_server():  # type: ignore[no-untyped-def]
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_process_product_flow_on_a_dask_task_runner(prefect_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run([sys.executable, "-m", "sen2core.cli", "synth", str(tmp_path / "l1c"), "--size", "366",
                          "--seed", "2", "--cloud-cover", "10"], check=True, capture_output=True, text=True)  # fmt: skip
    safe = out.stdout.strip().splitlines()[-1]
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False,
                                            "dashboard_address": ":0"})  # fmt: skip
    flow = process_product_flow.with_options(task_runner=runner)
    first = flow(safe, str(tmp_path / "l2a"), resolution=20)
    assert first["status"] == "done" and (Path(first["output_dir"]) / "L2A_SUMMARY.json").is_file()
    again = flow(safe, str(tmp_path / "l2a"), resolution=20)
    assert again["status"] == "skipped"

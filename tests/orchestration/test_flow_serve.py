"""``python deployments/serve.py`` on a real Prefect server: its own deployments, never those of ``prefect deploy``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
POOL = "sen2core-process"
#: The deployments of deployments/prefect.yaml, by full name.
PREFECT_YAML = ["sen2core-daily-ingest/daily-ingest", "sen2core-backfill/backfill",
                "sen2core-process-product/one-product"]  # fmt: skip
#: Those of serve.py.
SERVED = ["sen2core-daily-ingest/daily-ingest-served", "sen2core-backfill/backfill-served",
          "sen2core-process-product/one-product-served"]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(420),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def deployments(api_url: str) -> dict[str, Any]:
    """Every deployment of the server at ``api_url``, by full name (``flow/deployment``)."""
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(api_url) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        return {f"{flows[d.flow_id]}/{d.name}": d for d in client.read_deployments()}


def test_serve_registers_its_own_deployments_and_leaves_those_of_prefect_deploy_alone(
    flow_products: dict[str, Path], tmp_path: Path
) -> None:
    from conftest import start_prefect_server, stop_process_group
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    inbox, out = tmp_path / "inbox", tmp_path / "l2a"
    inbox.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    server, api_url = start_prefect_server(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=api_url, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               SEN2CORE_INBOX=str(inbox), SEN2CORE_OUTPUT=str(out))  # fmt: skip
    serve_cmd = [sys.executable, "deployments/serve.py"]
    try:
        # 1. On a server without them, serve.py registers its three deployments, with module entrypoints
        #    (as prefect.yaml's), and runs what is triggered.
        with open(tmp_path / "serve-1.log", "wb") as log:
            served = subprocess.Popen(serve_cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while set(deployments(api_url)) != set(SERVED):
                assert served.poll() is None, (tmp_path / "serve-1.log").read_text()[-3000:]
                assert time.monotonic() < deadline, sorted(deployments(api_url))
                time.sleep(1.0)
            found = deployments(api_url)
            assert {n: found[n].entrypoint for n in SERVED} == {
                SERVED[0]: "flows.daily_ingest.daily_ingest", SERVED[1]: "flows.backfill.backfill",
                SERVED[2]: "flows.process_product.process_product_flow"}  # fmt: skip
            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                run = run_deployment(SERVED[2], timeout=240, parameters={
                    "l1c_href": str(flow_products["2023-07-15"]), "options": {"sc_only": True, "resolution": 60},
                    "dask_address": None})  # fmt: skip
            assert run.state is not None and run.state.is_completed(), (
                run.state, (tmp_path / "serve-1.log").read_text()[-3000:])  # fmt: skip
        finally:
            stop_process_group(served)

        # 2. With the deployments of `prefect deploy` on the server, serve.py changes nothing and says why.
        for args in (["work-pool", "create", POOL, "--type", "process"],
                     ["--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"]):  # fmt: skip
            done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=180)  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
        before = {n: d.model_dump(include={"id", "entrypoint", "path", "pull_steps", "work_pool_name", "updated"})
                  for n, d in deployments(api_url).items()}  # fmt: skip
        assert set(before) == set(PREFECT_YAML) | set(SERVED)
        assert before[PREFECT_YAML[0]]["entrypoint"] == "flows.daily_ingest.daily_ingest"
        refused = subprocess.run(serve_cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1, refused.stdout[-2000:] + refused.stderr[-3000:]
        assert "Traceback" not in refused.stderr, refused.stderr[-3000:]
        message = refused.stderr.strip().splitlines()
        assert len(message) == 1 and message[0].startswith("deployments/serve.py: error: "), refused.stderr[-3000:]
        assert all(name in message[0] for name in PREFECT_YAML), message
        after = {n: d.model_dump(include={"id", "entrypoint", "path", "pull_steps", "work_pool_name", "updated"})
                 for n, d in deployments(api_url).items()}  # fmt: skip
        assert after == before
        # What `prefect deploy` recorded (the runs' working directory) is still there.
        assert after[PREFECT_YAML[2]]["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ], after[PREFECT_YAML[2]]
    finally:
        stop_process_group(server)

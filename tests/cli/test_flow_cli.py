"""``sen2core flow ...``: the flows from the command line, in Prefect's ephemeral mode (no server)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


def sen2core(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sen2core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flow_product_runs_without_a_prefect_server(flow_products: dict[str, Path], tmp_path: Path) -> None:
    # No PREFECT_API_URL: the command starts Prefect's temporary server itself (and stops it). No Prefect
    # setting at all, as a new user runs it.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DASK_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"))
    out = tmp_path / "l2a"
    done = sen2core("flow", "product", str(flow_products["2023-07-15"]), "-o", str(out), "--resolution", "20",
                    "--workers", "2", "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert [o["status"] for o in summary["outcomes"]] == ["done"]
    assert (out / "collection.json").is_file() and Path(summary["report"]).is_file()
    # What a new user read as failures, although nothing failed: Prefect's timeout warning on the product task,
    # the temporary server's telemetry error, Dask's INFO lines and its nannies killing workers at teardown.
    noise = [line for line in done.stderr.splitlines()
             if re.search(r"WARNING|ERROR|Traceback|telemetry|worker thread|killing|[ [(]distributed\.[a-z.]+[:\] ]",
                       line)]  # fmt: skip
    assert noise == [], "\n".join(noise[:20])


#: ``sen2core`` where starting a ``distributed.LocalCluster`` is recorded in the file ``$CLUSTER_LOG`` and
#: fails the run (prefect-dask looks the class up on the module when it starts a cluster).
COUNTED_CLUSTERS = """
import os, distributed
from sen2core.cli import main
class Counted(distributed.LocalCluster):
    def __init__(self, *args, **kwargs):
        with open(os.environ["CLUSTER_LOG"], "a") as log:
            log.write("LocalCluster\\n")
        raise RuntimeError("a Dask cluster was started")
distributed.LocalCluster = Counted
main()
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flow_product_starts_no_cluster_for_a_product_already_done(
    prefect_api: str, flow_products: dict[str, Path], tmp_path: Path
) -> None:
    """``sen2core flow product`` on a product already done skips it before any Dask cluster starts
    (it used to start its 2 workers, then skip: 26 s for nothing)."""
    from sen2core.pipeline import ProcessingConfig, process_product

    href = str(flow_products["2023-07-15"])
    first = process_product(href, tmp_path / "l2a", ProcessingConfig(resolution=60, sc_only=True))
    assert first.status == "done"
    clusters = tmp_path / "clusters.log"
    done = subprocess.run([sys.executable, "-c", COUNTED_CLUSTERS, "flow", "product", href, "-o", str(tmp_path / "l2a"),
                           "--sc-only", "--resolution", "60", "--workers", "2", "--json"],
                          env=dict(os.environ, CLUSTER_LOG=str(clusters)), capture_output=True, text=True,
                          timeout=240)  # fmt: skip
    assert not clusters.exists(), clusters.read_text()
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    (outcome,) = summary["outcomes"]
    assert (outcome["status"], outcome["output_dir"]) == ("skipped", first.output_dir)
    # Reported all the same, from the flow's own process.
    assert Path(summary["report"]).is_file()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flow_backfill_exits_1_and_lists_the_failed_product(
    prefect_api: str, flow_products: dict[str, Path], tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / flow_products["corrupt"].name).symlink_to(flow_products["corrupt"])
    # With PREFECT_API_URL set (the session's server), runs go to that server.
    done = sen2core("flow", "backfill", "--inbox", str(inbox), "--start", "2023-07-15", "--end", "2023-07-15",
                    "-o", str(tmp_path / "l2a"), "--workers", "1", env=dict(os.environ))  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    assert "0 done, 0 skipped, 1 failed" in done.stdout
    assert flow_products["corrupt"].name.removesuffix(".SAFE.zip") in done.stderr


@pytest.mark.slow
def test_tile_options_reach_the_flow(flow_products: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from click.testing import CliRunner

    cli = importlib.import_module("sen2core.cli.flow")  # the package exports the group under the same name

    seen: dict[str, object] = {}
    monkeypatch.setattr(cli, "_run", lambda flow_obj, workers, as_json, **parameters: seen.update(parameters))
    href = str(flow_products["2023-07-15"])
    result = CliRunner().invoke(cli.flow, ["product", href, "--tile-blocks", "2", "--chunk-m", "1800",
                                           "--tiles-at-once", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    options = seen["options"]
    assert (options.tile_blocks, options.chunk_m, options.tiles_at_once) == (2, 1800.0, 3)  # type: ignore[attr-defined]
    assert CliRunner().invoke(cli.flow, ["product", href, "--tile-blocks", "0"]).exit_code == 2
    assert CliRunner().invoke(cli.flow, ["product", href, "--tile-blocks", "2", "--tiles-at-once", "0"]).exit_code == 2


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["environment", "option"])
def test_a_temporary_server_that_does_not_answer_in_time_ends_with_one_line(
    flow_products: dict[str, Path], tmp_path: Path, how: str
) -> None:
    # Prefect's own setting (PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS) or the option, forced to 1 s: the
    # server takes several seconds to start even on a quiet machine.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"))
    args = ["flow", "product", str(flow_products["2023-07-15"]), "-o", str(tmp_path / "l2a"), "--workers", "1"]
    if how == "environment":
        env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "1"
    else:
        args += ["--server-startup-timeout", "1"]
    done = sen2core(*args, env=env)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "sen2core: error: the temporary Prefect server did not answer within 1 s; wait longer with "
        "--server-startup-timeout SECONDS (or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS), or set "
        "PREFECT_API_URL to a running server"
    ], done.stderr[-3000:]
    assert not (tmp_path / "l2a").exists()  # nothing ran


def test_the_temporary_server_gets_two_minutes_unless_told_otherwise() -> None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    from sen2core.cli.flow import DEFAULT_STARTUP_TIMEOUT_S, startup_timeout

    assert DEFAULT_STARTUP_TIMEOUT_S == 120
    assert startup_timeout(None) == 120  # Prefect's default is 20 s
    assert startup_timeout(7) == 7
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 300}):
        assert startup_timeout(None) == 300  # a longer wait set in a Prefect profile is kept

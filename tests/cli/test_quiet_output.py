"""What a new user reads: no routine noise from Dask or Prefect in the default output (all of it with --debug)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

#: A stage line of `sen2core process` when stderr is not a terminal.
STAGE = re.compile(r"^\[\s*\d+\.\d s\] [a-z0-9 -]+$")


def sen2core(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DASK_"))}
    return subprocess.run([sys.executable, "-m", "sen2core.cli", *args], env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_process_on_workers_prints_only_its_stages_by_default(cloudy_l1c: Path, tmp_path: Path) -> None:
    args = ["process", str(cloudy_l1c), "--resolution", "60", "--sc-only", "--workers", "2"]
    done = sen2core(*args, "-o", str(tmp_path / "quiet"))
    assert done.returncode == 0, done.stderr[-3000:]
    noise = [line for line in done.stderr.splitlines() if not STAGE.match(line)]
    assert noise == [], "\n".join(noise[:20])  # about 60 lines of distributed INFO before
    assert " written: " in done.stdout

    debug = sen2core("--debug", *args, "-o", str(tmp_path / "debug"))
    assert debug.returncode == 0, debug.stderr[-3000:]
    assert re.search(r" INFO distributed\.scheduler: ", debug.stderr), debug.stderr[-3000:]


def record(name: str, level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, None)


def test_routine_dask_records_are_left_out_of_the_console() -> None:
    from sen2core.cli import QuietDependencies

    quiet = QuietDependencies()
    assert not quiet.filter(record("distributed.scheduler", logging.INFO, "Register worker addr: tcp://..."))
    assert not quiet.filter(record("distributed.nanny", logging.INFO, "Closing Nanny at 'tcp://...'"))
    # The nanny stopping its worker process at the end of a run (seen at every teardown on a busy machine):
    assert not quiet.filter(record("distributed.nanny", logging.WARNING,
                                   "Worker process still alive after 4.0 seconds, killing"))  # fmt: skip
    # Real problems stay.
    assert quiet.filter(record("distributed.nanny", logging.WARNING, "Restarting worker"))
    assert quiet.filter(record("distributed.worker.memory", logging.WARNING, "Unmanaged memory use is high"))
    assert quiet.filter(record("sen2core.pipeline", logging.WARNING, "DEM_Directory ignored"))
    assert quiet.filter(record("prefect.flow_runs", logging.INFO, "Beginning flow run"))


def test_prefects_thread_timeout_warning_is_a_debug_message() -> None:
    from flows.worker_setup import ThreadTimeoutWarningFilter

    message = ("Timeout of %s seconds configured for this task, but the task is running in a worker thread. "
               "Timeouts in worker threads cannot interrupt blocking operations ...")  # fmt: skip
    logger = logging.getLogger("prefect.task_runs")
    saved = logger.level
    try:
        logger.setLevel(logging.INFO)  # Prefect's default level
        warning = record("prefect.task_runs", logging.WARNING, message)
        assert not ThreadTimeoutWarningFilter().filter(warning)
        logger.setLevel(logging.DEBUG)  # PREFECT_LOGGING_LEVEL=DEBUG
        assert ThreadTimeoutWarningFilter().filter(warning) and warning.levelno == logging.DEBUG
        other = record("prefect.task_runs", logging.WARNING, "Task run failed")
        logger.setLevel(logging.INFO)
        assert ThreadTimeoutWarningFilter().filter(other) and other.levelno == logging.WARNING
    finally:
        logger.setLevel(saved)

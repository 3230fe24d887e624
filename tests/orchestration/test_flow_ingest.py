"""Daily ingest over an inbox: three good products, one corrupt; published, reported, then skipped."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.common import RunFailed
from flows.daily_ingest import daily_ingest, ingest_window
from tasks.models import ProcessingOptions, Source

# Prefect's task timeout injects an exception into the worker thread at its next bytecode, which
# may be inside a garbage-collector callback (then reported as "unraisable"), and the servers'
# background threads close connections at GC times that vary from run to run. Neither changes
# the outcomes asserted here, which are read back from the flow states and the API.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture(scope="module")
def inbox(flow_products: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inbox of links to the session's products (3 good, 1 corrupt) and a file that is no product."""
    folder = tmp_path_factory.mktemp("inbox")
    for path in flow_products.values():
        os.symlink(path, folder / path.name)
    (folder / "README.txt").write_text("not a product")
    return folder


def test_daily_ingest_publishes_good_products_and_reports_the_corrupt_one(
    prefect_api: str, inbox: Path, in_process_runner: Callable[..., Any], read_artifacts: Callable[[Any], list[Any]],
    tmp_path: Path,
) -> None:  # fmt: skip
    out = tmp_path / "l2a"
    flow = daily_ingest.with_options(task_runner=in_process_runner())
    params: dict[str, Any] = dict(
        source=Source(kind="inbox", href=str(inbox)), output_root=str(out), tiles=["T32TQM"],
        lookback_hours=72, reference_time=dt.datetime(2023, 7, 17, tzinfo=dt.UTC),
        options=ProcessingOptions(resolution=20), max_concurrency=2,
    )  # fmt: skip
    state = flow(**params, return_state=True)

    # Documented final state: Failed (one product failed), after the others were published and reported.
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RunFailed)
    summary = error.summary
    assert summary.discovered == 4
    assert sorted(o.status for o in summary.outcomes) == ["done", "done", "done", "failed"]
    (bad,) = summary.failed
    assert bad.product_id.startswith("S2B_MSIL1C_20230715") and "zip" in (bad.error or "")
    assert bad.product_id in str(error)
    collection = json.loads((out / "collection.json").read_text())
    items = [ln["href"] for ln in collection["links"] if ln["rel"] == "item"]
    assert len(items) == 3 and all((out / href).is_file() for href in items)

    artifacts = {a.type: a for a in read_artifacts(state)}
    assert {"table", "markdown", "progress"} <= set(artifacts)
    rows = artifacts["table"].data if isinstance(artifacts["table"].data, list) else json.loads(artifacts["table"].data)
    assert sorted(r["status"] for r in rows) == ["done", "done", "done", "failed"]
    assert {"product", "status", "cloud %", "AOT", "WV (cm)", "seconds", "output"} <= set(rows[0])
    markdown = str(artifacts["markdown"].data)
    assert "data:image/png;base64," in markdown and "## Failed" in markdown
    assert summary.report and Path(summary.report).is_file()

    # Again: the three finished products are skipped (their item is there), the corrupt one fails again.
    again = flow(**params, return_state=True)
    assert again.is_failed()
    statuses = sorted(o.status for o in again.result(raise_on_failure=False).summary.outcomes)
    assert statuses == ["failed", "skipped", "skipped", "skipped"]


def test_ingest_window_follows_the_scheduled_start_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Inside a run, Prefect's runtime gives the run's scheduled start (here: a run scheduled for 06:00).
    from prefect.runtime import flow_run

    monkeypatch.setattr(flow_run, "scheduled_start_time", dt.datetime(2024, 3, 2, 6, tzinfo=dt.UTC), raising=False)
    window = ingest_window(None, 24)
    assert (window.start, window.end) == (dt.datetime(2024, 3, 1, 6, tzinfo=dt.UTC),
                                          dt.datetime(2024, 3, 2, 6, tzinfo=dt.UTC))  # fmt: skip
    explicit = ingest_window(dt.datetime(2024, 1, 1), 48)
    assert explicit.end == dt.datetime(2024, 1, 1, tzinfo=dt.UTC) and explicit.start.day == 30
    assert dt.datetime(2024, 3, 2, 6, tzinfo=dt.UTC) not in window  # half-open


def test_ingest_of_an_empty_window_completes(
    prefect_api: str, inbox: Path, in_process_runner: Callable[..., Any], tmp_path: Path
) -> None:
    empty = tmp_path / "empty-inbox"
    shutil.copytree(inbox, empty, symlinks=True)
    summary = daily_ingest.with_options(task_runner=in_process_runner())(
        source=Source(kind="inbox", href=str(empty)), output_root=str(tmp_path / "l2a"),
        reference_time=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
    )  # fmt: skip
    assert summary.discovered == 0 and summary.outcomes == []

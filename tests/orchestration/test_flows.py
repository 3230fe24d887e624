"""Prefect: the one-product flow on a DaskTaskRunner, against the session's Prefect server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flows.common import RunFailed
from flows.process_product import process_product_flow
from tasks.models import ProcessingOptions

# Prefect's task timeout injects an exception into the worker thread at its next bytecode, which
# may be inside a garbage-collector callback (then reported as "unraisable"), and the servers'
# background threads close connections at GC times that vary from run to run. Neither changes
# the outcomes asserted here, which are read back from the flow states and the API.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def test_process_product_flow_on_a_dask_task_runner(
    prefect_api: str, flow_products: dict[str, Path], in_process_runner: Callable[..., Any],
    read_artifacts: Callable[[Any], list[Any]], read_logs: Callable[[Any], list[str]], tmp_path: Path,
) -> None:  # fmt: skip
    flow = process_product_flow.with_options(task_runner=in_process_runner())
    out = tmp_path / "l2a"
    state = flow(str(flow_products["2023-07-15"]), str(out), options=ProcessingOptions(resolution=20),
                 return_state=True)  # fmt: skip
    assert state.is_completed(), state.message
    summary = state.result()
    (outcome,) = summary.outcomes
    assert outcome.status == "done" and outcome.l2a_id and outcome.output_dir
    assert Path(outcome.output_dir).parent.parts[-4:] == ("32TQM", "2023", "07", "15")
    assert outcome.cloud_cover is not None and outcome.aot is not None and outcome.water_vapour is not None
    assert outcome.seconds and outcome.seconds > 0
    # Published: the collection at the output root links the product's STAC item.
    collection = json.loads((out / "collection.json").read_text())
    assert [ln["href"] for ln in collection["links"] if ln["rel"] == "item"] == [
        f"./32TQM/2023/07/15/{outcome.l2a_id}/{outcome.l2a_id}.json"
    ]
    kinds = {a.type for a in read_artifacts(state)}
    assert {"table", "markdown"} <= kinds
    # The library's own log records reach the run's logs in the API (and so the UI).
    assert any(m.startswith("sen2core.stages: ") for m in read_logs(state))
    # The flow graph shows the product's stages, each a task run, in order.
    runs = _task_runs(state, lambda rs: any(r.name.startswith("report") for r in rs))
    stages = [r.name.split("-S2")[0] for r in sorted(runs, key=lambda r: r.start_time or r.expected_start_time)
              if "-S2" in r.name]  # fmt: skip
    assert stages == ["tiling", "screening", "atmosphere", "correction-20m", "packaging"], sorted(r.name for r in runs)
    # No limit on the product tag on this server: the tasks go untagged, so none asks the server for a
    # concurrency slot as it starts (on SQLite such a request was answered 503 and retried 2 s later).
    assert not [(r.name, r.tags) for r in runs if r.tags]
    assert any(r.name.startswith("publish") for r in runs), sorted(r.name for r in runs)

    again = flow(str(flow_products["2023-07-15"]), str(out), options=ProcessingOptions(resolution=20))
    assert [o.status for o in again.outcomes] == ["skipped"]


def test_a_bad_product_fails_the_run_with_its_reason(
    prefect_api: str, flow_products: dict[str, Path], in_process_runner: Callable[..., Any], tmp_path: Path
) -> None:
    flow = process_product_flow.with_options(task_runner=in_process_runner())
    state = flow(str(flow_products["corrupt"]), str(tmp_path / "l2a"), return_state=True)
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RunFailed)
    (outcome,) = error.summary.failed
    assert "InputProductError" in (outcome.error or "") and "zip" in (outcome.error or "")
    with pytest.raises(RunFailed, match="1 failed"):
        flow(str(flow_products["corrupt"]), str(tmp_path / "l2a"))


def test_product_timeout_fails_without_retry(
    prefect_api: str, flow_products: dict[str, Path], in_process_runner: Callable[..., Any], tmp_path: Path
) -> None:
    flow = process_product_flow.with_options(task_runner=in_process_runner())
    # 0.3 s (1 s, the smallest budget): the product needs several seconds; a timeout is not transient, so no
    # retry (no 30 s backoff).
    state = flow(str(flow_products["2023-07-14"]), str(tmp_path / "l2a"), options=ProcessingOptions(resolution=20),
                 product_timeout_minutes=0.005, return_state=True)  # fmt: skip
    assert state.is_failed()
    (outcome,) = state.result(raise_on_failure=False).summary.failed
    assert "Timeout" in (outcome.error or ""), outcome.error


def test_product_budget_bounds_its_chain_of_stage_tasks(
    prefect_api: str, flow_products: dict[str, Path], in_process_runner: Callable[..., Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Each stage task alone stays well inside the 3 s budget, the chain does not: the product fails
    with a timeout at the first task that starts after its budget (it used to end Completed, each
    task having the whole budget for itself)."""
    from sen2core import stages

    real = stages.run_stage

    def slow_stage(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "run_stage", slow_stage)  # the in-process runner's tasks run in this process
    flow = process_product_flow.with_options(task_runner=in_process_runner())
    # resolution 20: screening, atmosphere and correction-20m, 3 s of sleep before packaging can start.
    state = flow(str(flow_products["2023-07-14"]), str(tmp_path / "l2a"), options=ProcessingOptions(resolution=20),
                 product_timeout_minutes=3.0 / 60.0, return_state=True)  # fmt: skip
    assert state.is_failed()
    (outcome,) = state.result(raise_on_failure=False).summary.failed
    assert "ProcessingTimeout" in (outcome.error or "") and "time budget of 3 s" in (outcome.error or ""), outcome.error
    assert not list((tmp_path / "l2a").rglob("*.tif")), "a product out of time leaves no work folder behind"


def test_per_tile_tasks_make_the_same_product(
    prefect_api: str,
    flow_products: dict[str, Path],
    in_process_runner: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import numpy as np
    import rasterio

    flow = process_product_flow.with_options(task_runner=in_process_runner())
    href = str(flow_products["2023-07-16"])
    # 1.8 km chunks: 3 x 3 blocks; tiles of 2 x 2 blocks: 4 tiles, at most 3 in flight. At 10 m: both
    # correction groups, the 10 m files encoded while the 20 m tiles run.
    tiles = ProcessingOptions(resolution=10, chunk_m=1800.0, tile_blocks=2, tiles_at_once=3)
    with caplog.at_level("WARNING", logger="distributed.scheduler"):
        state = flow(href, str(tmp_path / "tiles"), options=tiles, return_state=True)
    assert state.is_completed(), state.message
    # Tiles in flight at once share the keys of their margins: each key must have one definition
    # in every tile's graph (the screening's tiles bound their bands to the stored shadow zones
    # through keys named after a random token, and dask warned of keys with two definitions).
    assert not [r.getMessage()[:120] for r in caplog.records if "Detected different `run_spec`" in r.getMessage()]
    (outcome,) = state.result().outcomes
    assert outcome.status == "done" and outcome.aot is not None and outcome.cloud_cover is not None
    whole = flow(href, str(tmp_path / "whole"), options=ProcessingOptions(resolution=10, chunk_m=1800.0))
    (reference,) = whole.outcomes
    assert (outcome.aot, outcome.water_vapour, outcome.cloud_cover) == (reference.aot, reference.water_vapour,
                                                                        reference.cloud_cover)  # fmt: skip
    names = sorted(p.name for p in Path(outcome.output_dir).glob("*.tif"))
    assert names == sorted(p.name for p in Path(reference.output_dir).glob("*.tif")) and len(names) == 19, names
    for name in names:
        with rasterio.open(Path(outcome.output_dir) / name) as a, rasterio.open(Path(reference.output_dir) / name) as b:
            assert np.array_equal(a.read(), b.read()), name
    # The flow graph shows the same stages, split over the tiles, with the scene-wide sums between.
    runs = _task_runs(state, lambda rs: sum(r.name.startswith("correction-20m-tile") and r.state is not None
                                            and r.state.is_completed() for r in rs) == 4)  # fmt: skip
    names = [r.name for r in runs]
    for stage in ("screening", "atmosphere", "correction-10m", "correction-20m"):
        assert sum(n.startswith(f"{stage}-tile") for n in names) == 4, (stage, sorted(names))
    assert sum(n.startswith("encoding-10m-") for n in names) == 1, sorted(names)
    # The scene-wide sums (B10 leakage, the negative check, the WV land mean) are added up by the reduce tasks,
    # over the whole product; the DDV sums come with the stores of what they read.
    assert not [n for n in names if "-sums-" in n], sorted(names)
    # Intermediates stored before the sums and neighbourhoods that read them.
    for prefix in ("screening-pixels", "screening-shadows", "atmosphere-ddv", "atmosphere-wv_raw",
                   "correction-10m-background"):  # fmt: skip
        assert sum(n.startswith(f"{prefix}-tile") for n in names) == 4, sorted(names)
    for prefix in ("tiling-", "screening-reduce", "atmosphere-reduce", "correction-10m-reduce", "packaging-",
                   "skip-done", "publish"):  # fmt: skip
        assert any(n.startswith(prefix) for n in names), (prefix, sorted(names))
    again = flow(href, str(tmp_path / "tiles"), options=tiles)
    assert [o.status for o in again.outcomes] == ["skipped"]


def _task_runs(state: Any, ready: Callable[[list[Any]], bool], timeout: float = 60.0) -> list[Any]:
    """The task runs of a finished flow run, once the API has them all (they arrive as events)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from sen2core.cli.flow import _drain_prefect_workers

    _drain_prefect_workers()
    deadline = time.monotonic() + timeout
    flow_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    while True:
        with get_client(sync_client=True) as client:
            runs = list(client.read_task_runs(flow_run_filter=flow_filter))
        if ready(runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def test_a_tile_round_whose_task_never_finishes_fails_when_the_budget_runs_out() -> None:
    """The per-tile rounds waited on their tasks with no bound: when the cluster lost a tile's task
    (its workers gone after a failed round), the flow hung for good. Now every wait of a per-tile
    product ends when what is left of the product's budget has passed."""
    import time

    import tasks.stages as tile_tasks
    from sen2core.errors import ProcessingTimeout
    from tasks.models import L1CRef

    class LostFuture:
        _final_state = None

        def add_done_callback(self, fn: Callable[[Any], None]) -> None:
            pass  # a task the cluster lost: it never finishes

    ref = L1CRef.from_href("/nowhere/S2A_MSIL1C_20230714T093650_N0509_R064_T32TQM_20230714T121000.SAFE")
    start = time.monotonic()
    with pytest.raises(ProcessingTimeout, match=r"S2A_MSIL1C_20230714.*budget of 2 s ran out waiting for "
                                                r"the tiles of screening \(1 of 2 task\(s\) unfinished\)"):  # fmt: skip
        tile_tasks._gather(
            [LostFuture(), _Finished()], ref.product_id, time.time() + 2.0, 2.0, "the tiles of screening"
        )
    assert time.monotonic() - start < 10.0


def test_a_tile_whose_task_never_finishes_fails_the_round_when_the_budget_runs_out() -> None:
    """The same bound for the tiles of a round, submitted a few at a time (``_map_tiles``)."""
    import time

    import tasks.stages as tile_tasks
    from sen2core.errors import ProcessingTimeout

    class LostFuture:
        def add_done_callback(self, fn: Callable[[Any], None]) -> None:
            pass  # a task the cluster lost: it never finishes

    tiles = ["tile0", "tile1", "tile2"]
    start = time.monotonic()
    expected = r"P1: .*budget of 2 s ran out waiting for the tiles of screening "
    expected += r"\(1 of 3 tile task\(s\) unfinished, 0 not"
    with pytest.raises(ProcessingTimeout, match=expected):
        tile_tasks._map_tiles(lambda tile: _Finished() if tile != "tile1" else LostFuture(), tiles, 2,  # type: ignore[arg-type]
                              "P1", time.time() + 2.0, 2.0, "the tiles of screening")  # fmt: skip
    assert time.monotonic() - start < 10.0


class _Later:
    """A task that finishes ``seconds`` after it is submitted, with ``value`` (an exception: it failed)."""

    def __init__(self, value: Any, seconds: float, log: list[tuple[str, Any]]) -> None:
        import threading

        self.value, self.log = value, log
        self.done = threading.Event()
        self.callbacks: list[Callable[[Any], None]] = []
        threading.Timer(seconds, self._finish).start()

    def _finish(self) -> None:
        self.log.append(("end", self.value))
        self.done.set()
        for fn in self.callbacks:
            fn(self)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self.callbacks.append(fn)
        if self.done.is_set():
            fn(self)

    def result(self, raise_on_failure: bool = True) -> Any:
        if isinstance(self.value, BaseException) and raise_on_failure:
            raise self.value
        return self.value


def test_the_tiles_of_a_round_run_a_few_at_a_time_and_stop_starting_after_a_failure() -> None:
    """Every tile of a round in flight at once held every tile's graph and blocks in the workers'
    memory (the per-tile peak was above one graph's); now a tile starts when another has finished."""
    import time

    import tasks.stages as tile_tasks

    log: list[tuple[str, Any]] = []

    def submit(tile: int) -> _Later:
        log.append(("start", tile))
        # Tile 0 is slow: the window slides past it (waves would hold tiles 2-4 back until it ends).
        return _Later(tile * 10, 0.6 if tile == 0 else 0.05, log)

    results = tile_tasks._map_tiles(submit, [0, 1, 2, 3, 4], 2, "P1", time.time() + 30, 30.0, "the tiles")  # type: ignore[arg-type]
    assert results == [0, 10, 20, 30, 40], "results in tile order"
    in_flight = peak = 0
    for event, _ in log:
        in_flight += 1 if event == "start" else -1
        peak = max(peak, in_flight)
    assert peak == 2, log
    assert log.index(("start", 4)) < log.index(("end", 0)), f"tiles 1-4 ran beside the slow tile 0: {log}"

    log.clear()

    def failing(tile: int) -> _Later:
        log.append(("start", tile))
        return _Later(RuntimeError(f"tile {tile} failed") if tile == 1 else tile, 0.05 if tile == 1 else 0.3, log)

    with pytest.raises(RuntimeError, match="tile 1 failed"):
        tile_tasks._map_tiles(failing, [0, 1, 2, 3, 4], 2, "P1", time.time() + 30, 30.0, "the tiles")  # type: ignore[arg-type]
    started = [t for e, t in log if e == "start"]
    assert started == [0, 1], f"no tile starts after a failure: {log}"
    assert ("end", 0) in log, "the tile in flight was waited for before the failure was raised"


class _Finished:
    """A task that has finished (what prefect's ``wait`` reads of it)."""

    _final_state = object()

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def result(self, raise_on_failure: bool = True) -> int:
        return 1


def test_a_product_whose_future_never_finishes_fails_after_a_bound(
    prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flow waited on ``finished.get()`` with no timeout: a lost future (its done callback never
    called) hung the run. Now the wait is bounded by the product's timeouts plus a grace period."""
    import itertools

    from prefect import flow

    import flows.common as common
    from tasks.models import L1CRef

    ids = itertools.count()

    class LostFuture:
        def __init__(self) -> None:
            self.task_run_id = next(ids)

        def add_done_callback(self, fn: Callable[[Any], None]) -> None:
            pass  # a future the cluster lost: it never finishes

    monkeypatch.setattr(common, "submit_product", lambda *args, **kwargs: LostFuture())
    monkeypatch.setattr(common, "POLL_S", 0.2)
    monkeypatch.setattr(common, "GRACE_S", 0.5)

    @flow
    def bounded() -> list[Any]:
        refs = [L1CRef.from_href(f"/nowhere/S2A_MSIL1C_2023071{i}T093650_N0509_R064_T32TQM_2023071{i}T121000.SAFE")
                for i in (4, 5)]  # fmt: skip
        return common.process_bounded(refs, "/nowhere", ProcessingOptions(), False, 2, 0.001)

    outcomes = bounded()
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert all("no result" in (o.error or "") and "lost" in (o.error or "") for o in outcomes)

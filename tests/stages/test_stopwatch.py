"""The one stopwatch (sen2core.stopwatch), driven by a fake clock so that every figure is exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from sen2core import stopwatch
from sen2core.stopwatch import Stopwatch


class FakeClock:
    """A perf_counter that moves only when told to."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(stopwatch.time, "perf_counter", fake)
    return fake


def test_laps_and_elapsed(clock: FakeClock) -> None:
    watch = Stopwatch()
    clock.now += 1.234
    assert watch.lap("decode") == 1.23
    clock.now += 2.0
    assert watch.lap("atmosphere") == 2.0
    assert watch.laps == {"decode": 1.23, "atmosphere": 2.0}
    assert list(watch.laps) == ["decode", "atmosphere"]  # the order taken
    assert watch.elapsed() == pytest.approx(3.234, abs=1e-12)


def test_restart_lap_leaves_out_the_time_before(clock: FakeClock) -> None:
    watch = Stopwatch()
    clock.now += 5.0  # e.g. a progress callback: not part of the next lap
    watch.restart_lap()
    clock.now += 0.5
    assert watch.lap("screening") == 0.5
    assert watch.elapsed() == pytest.approx(5.5, abs=1e-12)


def test_start_counts_elapsed_from_an_earlier_time_but_not_the_first_lap(clock: FakeClock) -> None:
    watch = Stopwatch(start=clock.now - 10.0)
    assert watch.start == clock.now - 10.0
    assert watch.elapsed() == pytest.approx(10.0, abs=1e-12)
    clock.now += 1.0
    assert watch.lap("decode") == 1.0  # laps count from construction


def test_a_lap_taken_again_replaces_its_seconds_and_digits_round(clock: FakeClock) -> None:
    watch = Stopwatch()
    clock.now += 1.0
    watch.lap("x")
    clock.now += 0.123456
    assert watch.lap("x", digits=4) == 0.1235
    assert watch.laps == {"x": 0.1235}


def test_lut_build_adds_its_wall_time_to_the_saved_total(
    clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sen2core lut build`` saves the running total of its wall time (resumed builds add up), on the stopwatch."""
    from sen2core.atmosphere import build
    from sen2core.atmosphere.grid import LUTGrid

    saved: list[str] = []

    def run_jobs(jobs, srfs, workdir, workers, tick):  # type: ignore[no-untyped-def]
        clock.now += 10.0
        tick(1, 3)  # within 30 s of the start: not saved
        clock.now += 25.0
        tick(2, 3)  # 35 s: saved
        saved.append((workdir / "elapsed_seconds.txt").read_text())
        clock.now += 5.0
        tick(3, 3)  # the last: saved
        saved.append((workdir / "elapsed_seconds.txt").read_text())
        return {}

    monkeypatch.setattr(build, "jobs_for", lambda grid: [])
    monkeypatch.setattr(build, "run_jobs", run_jobs)
    monkeypatch.setattr(build, "assemble", lambda grid, results: {})
    monkeypatch.setattr(build, "write_lut", lambda path, grid, tables, prov: f"lut-{prov['build_seconds']}")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "elapsed_seconds.txt").write_text("100.0")  # an earlier, interrupted call
    grid = LUTGrid.__new__(LUTGrid)  # the stand-ins above never read it
    ident, elapsed = build.build(grid, tmp_path / "lut.npz", workdir)
    assert saved == ["135.0", "140.0"]
    assert (workdir / "elapsed_seconds.txt").read_text() == "140.0"
    assert elapsed == pytest.approx(40.0, abs=1e-9)
    assert ident == "lut-140.0"

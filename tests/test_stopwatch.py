"""The one stopwatch (sen2core.stopwatch), driven by a fake clock so that every figure is exact."""

from __future__ import annotations

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

"""One stopwatch for the whole code base: seconds since a start, and seconds per named lap.

The processing run records the seconds of each stage of its plan as laps (the run summary's
``seconds``), checks its time budget against :meth:`Stopwatch.elapsed`, and the command line,
the Prefect tasks and the scene generator report elapsed seconds with the same class.
Wall-clock time is :func:`time.perf_counter`: monotonic, so a clock change cannot make a lap
negative. This module imports nothing of sen2core, so every layer may use it.
"""

from __future__ import annotations

import time

__all__ = ["Stopwatch"]


class Stopwatch:
    """Seconds since ``start`` and per lap.

    Parameters
    ----------
    start
        A :func:`time.perf_counter` value to count from (default: now), for a watch that
        continues one started earlier (the time budget of a run counts from its planning).

    Attributes
    ----------
    start
        The :func:`time.perf_counter` value counted from.
    laps
        Seconds of each lap by name, rounded as :meth:`lap` records them, in the order taken.
    """

    def __init__(self, start: float | None = None) -> None:
        now = time.perf_counter()
        self.start: float = now if start is None else start
        self.laps: dict[str, float] = {}
        self._lap_start = now

    def elapsed(self) -> float:
        """Seconds since :attr:`start`."""
        return time.perf_counter() - self.start

    def restart_lap(self) -> None:
        """Start the current lap now: time spent since the last lap is not counted in the next."""
        self._lap_start = time.perf_counter()

    def lap(self, name: str, digits: int = 2) -> float:
        """End the current lap: record its seconds under ``name`` (rounded to ``digits``) and start the next.

        Returns
        -------
        float
            The lap's seconds, as recorded. Taking a lap of the same name again replaces it.
        """
        now = time.perf_counter()
        seconds = round(now - self._lap_start, digits)
        self.laps[name] = seconds
        self._lap_start = now
        return seconds

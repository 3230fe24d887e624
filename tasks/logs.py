"""Send the library's log records to the Prefect UI, from wherever the task runs.

Prefect's own mechanism (``PREFECT_LOGGING_EXTRA_LOGGERS=sen2core``) needs the
variable in the environment of every process that runs a task, including the
workers of an existing Dask cluster that Prefect did not start, and it leaves the
logger at WARNING. Instead, each task body runs inside :func:`forward_logs`: for
the duration of the task, records of the ``sen2core`` and ``tasks`` loggers
emitted *by the task's own thread* go to the task run's logger, which sends them to
the Prefect API with the task run's id. Records from other threads (Dask chunk
functions, other products' tasks in the same worker process) are left alone, so
concurrent products never mix their logs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prefect.logging import get_run_logger

__all__ = ["FORWARDED_LOGGERS", "forward_logs"]

#: Loggers whose records reach the Prefect UI.
FORWARDED_LOGGERS = ("sen2core", "tasks")

# Several tasks may run in one worker process: the first to enter lowers a logger's
# level, the last to leave restores it.
_levels_lock = threading.Lock()
_lowered: dict[str, tuple[int, int]] = {}  # logger name -> (tasks inside, level to restore)


class _RunLogForwarder(logging.Handler):
    def __init__(self, target: logging.LoggerAdapter[Any] | logging.Logger, thread_id: int) -> None:
        super().__init__(logging.INFO)
        self.target, self.thread_id = target, thread_id

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread_id:
            return
        try:
            self.target.log(record.levelno, "%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)
        except Exception:  # noqa: BLE001 - logging must never break processing
            self.handleError(record)


@contextmanager
def forward_logs(loggers: Sequence[str] = FORWARDED_LOGGERS, level: int = logging.INFO) -> Iterator[None]:
    """Forward ``loggers`` (INFO and up) emitted in this thread to the current Prefect run logger.

    Outside a Prefect run (plain function calls, ``task.fn()``) this does nothing.
    """
    try:
        target = get_run_logger()
    except Exception:  # noqa: BLE001 - MissingContextError: not inside a flow or task run
        yield
        return
    handler = _RunLogForwarder(target, threading.get_ident())
    with _levels_lock:
        for name in loggers:
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            if name in _lowered:
                inside, previous = _lowered[name]
                _lowered[name] = (inside + 1, previous)
            elif logger.getEffectiveLevel() > level:
                # Stage messages are INFO; lower the threshold while tasks run (restored below).
                _lowered[name] = (1, logger.level)
                logger.setLevel(level)
    try:
        yield
    finally:
        with _levels_lock:
            for name in loggers:
                logger = logging.getLogger(name)
                logger.removeHandler(handler)
                if name in _lowered:
                    inside, previous = _lowered[name]
                    if inside == 1:
                        del _lowered[name]
                        logger.setLevel(previous)
                    else:
                        _lowered[name] = (inside - 1, previous)

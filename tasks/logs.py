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

It also keeps credentials out of what a task leaves behind (:mod:`sen2core.redact`):
from the first task on, every log record of the process is masked when it is created,
and an exception leaving the block is replaced by a masked copy of the same type (its
message becomes the task run's state message, stored by Prefect).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prefect.logging import get_run_logger

from sen2core.redact import install_log_redaction, redact_exception

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

    Outside a Prefect run (plain function calls, ``task.fn()``) nothing is forwarded. In and
    outside a run, log records are masked from now on and an exception leaving the block has
    its credentials masked (:func:`sen2core.redact.redact_exception`).
    """
    install_log_redaction()
    try:
        target = get_run_logger()
    except Exception:  # noqa: BLE001 - MissingContextError: not inside a flow or task run
        target = None
    with _masked_errors():
        if target is None:
            yield
        else:
            with _forwarding(target, loggers, level):
                yield


@contextmanager
def _masked_errors() -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        masked = redact_exception(exc)
        if masked is exc:
            raise
        # The original stays out of the traceback Prefect logs (and its message out of the state).
        raise masked from None


@contextmanager
def _forwarding(target: Any, loggers: Sequence[str], level: int) -> Iterator[None]:
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

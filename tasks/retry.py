"""Which failures are worth a retry: transient I/O, HTTP 5xx and lost Dask workers, never a bad product.

Prefect calls a task's ``retry_condition_fn`` with the failed state; these helpers
look at the exception inside it. The library keeps permanent errors
(:class:`~sen2core.errors.InputProductError` and the rest of
:class:`~sen2core.errors.Sen2CoreError`) apart from
:class:`~sen2core.errors.TransientIOError`, so the decision is made on types, not
on messages.

The retry settings of every task live here too (:data:`PRODUCT_RETRIES`,
:data:`STAGE_RETRIES`, :data:`SERVICE_RETRIES`), so that the task modules spell them
out nowhere else.
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from sen2core.errors import Sen2CoreError, TransientIOError

__all__ = ["PRODUCT_RETRIES", "SERVICE_RETRIES", "STAGE_RETRIES", "cluster_lost", "is_transient", "retry_discovery",
           "retry_product"]  # fmt: skip


def _worker_lost(exc: BaseException) -> bool:
    """The cluster lost the computation: a worker died (killed, out of memory, connection closed), or
    the scheduler cancelled a future the task was waiting for (as it does for the keys it held when it
    loses its workers or fails a transition)."""
    try:
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover - distributed is a dependency
        return False
    return isinstance(exc, KilledWorker | CommClosedError | FutureCancelledError)


def cluster_lost(exc: BaseException) -> bool:
    """True if ``exc`` says the Dask cluster lost the computation (a worker died, a connection closed,
    the scheduler cancelled or dropped a future), whatever the cause."""
    return _worker_lost(exc)


def _http_status(exc: BaseException) -> int | None:
    """HTTP status carried by the error of an HTTP client (pystac-client, requests, httpx), if any."""
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int):
                return value
    return None


def is_transient(exc: BaseException, *, retry_timeouts: bool = True) -> bool:
    """True if ``exc`` may go away on a retry.

    Parameters
    ----------
    exc
        The exception a task raised.
    retry_timeouts
        Whether a ``TimeoutError`` counts as transient. A network timeout does;
        a product task that ran out of its time budget does not (it would only
        time out again), so the product task passes False.

    Returns
    -------
    bool
        True for :class:`~sen2core.errors.TransientIOError`, operating-system and
        network errors outside the library (``OSError``: disks, NFS, sockets,
        ``requests`` connection errors), HTTP 5xx and 429 answers, and a lost Dask
        worker; False for every other library error (a bad product, a bad
        configuration) and anything else.
    """
    if isinstance(exc, TimeoutError):
        return retry_timeouts
    if isinstance(exc, TransientIOError):
        return True
    if isinstance(exc, Sen2CoreError):
        return False
    if _worker_lost(exc):
        return True
    status = _http_status(exc)
    if status is not None:
        return status >= 500 or status == 429
    return isinstance(exc, OSError)


def _state_exception(state: Any) -> BaseException | None:
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - the state's own exception, whatever it is
        return exc
    return None


def retry_product(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` of product tasks: transient errors only, not timeouts."""
    exc = _state_exception(state)
    return exc is not None and is_transient(exc, retry_timeouts=False)


def retry_discovery(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` of discovery and publishing tasks: transient errors, network timeouts included."""
    exc = _state_exception(state)
    return exc is not None and is_transient(exc, retry_timeouts=True)


#: ``@task`` options of the one-task product (:func:`tasks.product.process_l1c`): transient errors only,
#: 3 retries with exponential backoff from 30 s and jitter (a product is long: give the cause time to pass).
PRODUCT_RETRIES: dict[str, Any] = dict(
    retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=30), retry_jitter_factor=0.5,
    retry_condition_fn=retry_product,
)  # fmt: skip
#: ``@task`` options of the stage and tile tasks (:mod:`tasks.stages`): transient errors only, 2 retries
#: with backoff from 10 s (a stage is shorter than a product and reruns only itself).
STAGE_RETRIES: dict[str, Any] = dict(
    retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=10), retry_jitter_factor=0.5,
    retry_condition_fn=retry_product,
)  # fmt: skip
#: ``@task`` options of the tasks that talk to services (discovery, publishing): transient errors and
#: network timeouts, 3 retries with backoff from 5 s.
SERVICE_RETRIES: dict[str, Any] = dict(
    retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=5), retry_jitter_factor=0.5,
    retry_condition_fn=retry_discovery,
)  # fmt: skip

"""What the flows set up in every Dask worker process that runs their tasks.

The runner (:class:`flows.runner.Sen2CoreTaskRunner`) registers :class:`FlowWorkerSetup` on
every cluster it uses, created for the run or existing. It does two things in each worker:

* **Each task talks to its own run's Prefect API.** Long-lived workers serve runs of
  different Prefect servers one after the other (a local ``sen2core flow`` run with its
  temporary server, then deployment runs of the team's server). Prefect keeps
  process-wide services in a worker: the events client (task runs are recorded from the
  events it sends) and the concurrency-slot clients (tag limits such as
  ``sen2core-product``). Each is created at the first task that needs it, bound to that
  task's API, and reused by every later task of the process whatever its run's API:
  later runs' task runs went to the first server (or nowhere, once it had stopped) and
  their product tasks failed with ``ConcurrencySlotAcquisitionError``. After
  :func:`services_per_api_url`, there is one such service per API URL, the URL of the
  task's own settings (which Prefect sends with every task). Prefect's log sender is
  already one per API URL.
* **Prefect's warning about timeouts in worker threads becomes a debug message.** Prefect
  logs it on every task that has a timeout and runs in a thread, so on every product
  task; sen2core's product tasks also check their time budget in the library (see
  ``docs/orchestration.md``, "Retries, timeouts, concurrency"), so the warning only
  alarmed new users. It is still logged when the ``prefect.task_runs`` logger is enabled
  for DEBUG (``PREFECT_LOGGING_LEVEL=DEBUG`` in the workers' environment; ``sen2core
  --debug flow ...`` sets it for the clusters it creates).

Both are idempotent: registering the plugin again (every run does) changes nothing.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["FlowWorkerSetup", "ThreadTimeoutWarningFilter", "demote_thread_timeout_warning", "services_per_api_url"]

_lock = threading.Lock()
_keyed: set[type] = set()


def _key_by_api_url(service: type) -> None:
    """Make ``service.instance(...)`` return one instance per Prefect API URL (and per its own arguments).

    Prefect caches a service instance under its class and arguments. Each API URL gets its own
    subclass of ``service`` (created once, with the same name), so the cache key differs per
    URL and every instance is created, in the caller's context, with that URL's settings.
    """
    with _lock:
        if service in _keyed:
            return
        original = service.instance.__func__  # type: ignore[attr-defined]
        per_url: dict[str, type] = {}

        def instance(cls: type, *args: Any, **kwargs: Any) -> Any:
            if cls is service:
                from prefect.settings import PREFECT_API_URL

                url = str(PREFECT_API_URL.value() or "")
                with _lock:
                    cls = per_url.get(url) or per_url.setdefault(
                        url, type(service.__name__, (service,), {"__module__": service.__module__,
                                                                 "__qualname__": service.__qualname__}))  # fmt: skip
            return original(cls, *args, **kwargs)

        service.instance = classmethod(instance)  # type: ignore[attr-defined]
        _keyed.add(service)


def services_per_api_url() -> None:
    """Key Prefect's process-wide API services by the API URL of the calling task's settings.

    The events worker and the concurrency-slot services (v1, v2 and with leases) of Prefect 3.8;
    the log worker already is. A service that a later Prefect no longer has is skipped.
    """
    import importlib

    for module, names in (
        ("prefect.events.worker", ("EventsWorker",)),
        ("prefect.concurrency.services", ("ConcurrencySlotAcquisitionService",
                                          "ConcurrencySlotAcquisitionWithLeaseService")),
        ("prefect.concurrency.v1.services", ("ConcurrencySlotAcquisitionService",)),
    ):  # fmt: skip
        try:
            namespace = importlib.import_module(module)
        except ImportError:  # pragma: no cover - another Prefect version
            continue
        for name in names:
            service = getattr(namespace, name, None)
            if isinstance(service, type) and hasattr(service, "instance"):
                _key_by_api_url(service)


class ThreadTimeoutWarningFilter(logging.Filter):
    """Turns Prefect's "timeout ... running in a worker thread" warning into a DEBUG record.

    The record is dropped unless its logger is enabled for DEBUG.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or "running in a worker thread" not in str(record.msg):
            return True
        if not logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return True


def demote_thread_timeout_warning() -> None:
    """Install :class:`ThreadTimeoutWarningFilter` on Prefect's task-run logger (once)."""
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, ThreadTimeoutWarningFilter) for f in logger.filters):
        logger.addFilter(ThreadTimeoutWarningFilter())


class FlowWorkerSetup(WorkerPlugin):  # type: ignore[misc]
    """Dask worker plugin: :func:`services_per_api_url` and :func:`demote_thread_timeout_warning`."""

    name = "sen2core-flow-worker"

    def setup(self, worker: Any) -> None:
        services_per_api_url()
        demote_thread_timeout_warning()

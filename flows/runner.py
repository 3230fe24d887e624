"""The flows' task runner: prefect-dask's ``DaskTaskRunner``, with the cluster chosen when a run starts.

Which Dask cluster a flow run uses, first match wins:

1. the flow run's ``dask_address`` parameter (``tcp://host:8786``): an existing scheduler;
2. what the runner was built with in code (``address=``, ``cluster_class=``, ``cluster_kwargs=``);
3. the environment variable ``SEN2CORE_DASK_ADDRESS``: an existing scheduler;
4. the environment variable ``SEN2CORE_DASK_CLUSTER``: a YAML file naming a cluster class and its
   arguments (``deployments/dask/slurm.yaml`` for dask-jobqueue, ``deployments/dask/kubernetes.yaml``
   for dask-kubernetes), created for the run and closed after it;
5. otherwise a ``LocalCluster`` sized to the machine (:func:`local_cluster_kwargs`).

The choice is made at the first task submission of a run, in the process running
the flow, so deployments set it per run (parameter) or per work pool (environment
in the job variables) without code changes.

When the scheduler goes away during a run, distributed cancels every future of the
run's client, the last one with the reason ``unknown``; the flows end instead with
:class:`DaskSchedulerLost`, which names the scheduler's address
(:func:`scheduler_loss_named`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from prefect.context import FlowRunContext
from prefect.utilities.importtools import from_qualified_name
from prefect_dask.task_runners import DaskTaskRunner

from flows.worker_setup import FlowWorkerSetup
from sen2core.parallel import dashboard_address, tune_malloc, worker_environment
from sen2core.redact import redact_worker_logs
from tasks.retry import cluster_lost

__all__ = ["ADDRESS_ENV", "ADDRESS_PARAMETER", "CLUSTER_ENV", "DaskSchedulerLost", "Sen2CoreTaskRunner",
           "load_cluster_spec", "local_cluster_kwargs", "lost_scheduler", "scheduler_loss_named"]  # fmt: skip

ADDRESS_PARAMETER = "dask_address"
ADDRESS_ENV = "SEN2CORE_DASK_ADDRESS"
CLUSTER_ENV = "SEN2CORE_DASK_CLUSTER"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def local_cluster_kwargs() -> dict[str, Any]:
    """``LocalCluster`` arguments for this machine: one single-threaded worker process per core.

    Processes rather than threads because GDAL decoding and the Python parts of the
    kernels then run in parallel without the GIL; one thread each because the
    flows bound how many products run at once and a product task secedes from its
    thread while its kernels run, so the threads stay free for the kernels' chunks.
    Memory is split evenly between the workers (``memory_limit="auto"``). The
    dashboard takes a free port on 127.0.0.1 (logged by the runner; another address with
    ``SEN2CORE_DASK_DASHBOARD``, see :func:`sen2core.parallel.dashboard_address`).
    """
    return {"n_workers": _cores(), "threads_per_worker": 1, "processes": True, "memory_limit": "auto",
            "dashboard_address": dashboard_address()}  # fmt: skip


def load_cluster_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a cluster spec: ``cluster_class`` (qualified name), ``cluster_kwargs`` and ``adapt_kwargs``.

    Raises
    ------
    ValueError
        The file is not a mapping with a ``cluster_class``.
    """
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster_class"), str):
        raise ValueError(f"{path}: a Dask cluster spec needs a 'cluster_class' (e.g. dask_jobqueue.SLURMCluster)")
    unknown = set(spec) - {"cluster_class", "cluster_kwargs", "adapt_kwargs"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return {"cluster_class": spec["cluster_class"], "cluster_kwargs": dict(spec.get("cluster_kwargs") or {}),
            "adapt_kwargs": dict(spec.get("adapt_kwargs") or {})}  # fmt: skip


def _is_local_cluster(cls: Any) -> bool:
    from distributed import LocalCluster

    return cls is None or (isinstance(cls, type) and issubclass(cls, LocalCluster))


class Sen2CoreTaskRunner(DaskTaskRunner):
    """A ``DaskTaskRunner`` that picks its cluster when the flow run starts (see the module's docstring)."""

    @property
    def client(self) -> Any:
        """The run's Dask client, created at first use after the cluster has been chosen.

        Every worker gets :class:`flows.worker_setup.FlowWorkerSetup` (each task reports to its
        own run's Prefect API, which long-lived workers of an existing cluster need most). The
        workers of a cluster the runner creates also get :func:`sen2core.parallel.tune_malloc`
        and :func:`sen2core.redact.redact_worker_logs`, and those it spawns here (a ``LocalCluster``)
        :func:`sen2core.parallel.worker_environment`; those of an existing cluster are left as
        their operator set them up.
        """
        if self._client is None:
            self._choose_cluster()
            creates = self.address is None and self._cluster is None
            if creates and _is_local_cluster(self.resolved_cluster_class or self.cluster_class):
                # Dask's default dashboard faces every interface; ours only the loopback unless asked.
                requested = self.cluster_kwargs.get("dashboard_address")
                self.cluster_kwargs = {**self.cluster_kwargs, "dashboard_address": dashboard_address(requested)}
            with worker_environment():  # the worker processes this one spawns (a LocalCluster's), no other
                client = super().client
            client.register_plugin(FlowWorkerSetup())
            if creates:
                client.register_plugin(tune_malloc())
                client.register_plugin(redact_worker_logs())
            return client
        return super().client

    def _explicit(self) -> bool:
        return bool(self.address or self._cluster is not None or self.cluster_class or self.cluster_kwargs)

    def _choose_cluster(self) -> None:
        ctx = FlowRunContext.get()
        address = ctx.parameters.get(ADDRESS_PARAMETER) if ctx is not None and ctx.parameters else None
        if address:
            self._use_address(str(address))
        elif self._explicit():
            return
        elif os.environ.get(ADDRESS_ENV):
            self._use_address(os.environ[ADDRESS_ENV])
        elif os.environ.get(CLUSTER_ENV):
            spec = load_cluster_spec(os.environ[CLUSTER_ENV])
            self.cluster_class = spec["cluster_class"]
            self.resolved_cluster_class = from_qualified_name(spec["cluster_class"])
            self.cluster_kwargs = spec["cluster_kwargs"]
            self.adapt_kwargs = spec["adapt_kwargs"]
        else:
            self.cluster_kwargs = local_cluster_kwargs()

    def _use_address(self, address: str) -> None:
        self.address = address
        self._cluster = None
        self.cluster_class = self.resolved_cluster_class = None
        self.cluster_kwargs, self.adapt_kwargs = {}, {}


class DaskSchedulerLost(RuntimeError):
    """The flow run's Dask scheduler went away (killed, its machine lost, the network cut) and the run stopped.

    Products finished before are complete and published in their folders (each is committed
    on its own); the STAC collection may miss them until the next run, which also processes
    what was left.
    """

    def __init__(self, address: str, detail: str) -> None:
        self.address = address
        self.detail = detail
        super().__init__(f"the Dask scheduler at {address} was lost and the run stopped (a rerun finishes the "
                         f"products left; those already written are complete): {detail}")  # fmt: skip

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Prefect may pickle the exception as the failed state's data.
        return (type(self), (self.address, self.detail))


def lost_scheduler(exc: BaseException) -> str | None:
    """The address of the flow run's Dask scheduler if ``exc`` comes from losing it, else None.

    ``exc`` must be a cancellation or a closed connection (:func:`tasks.retry.cluster_lost`), and
    the run's client must have lost its scheduler: it is no longer ``running`` (it reconnects,
    or it gave up and closed), or the cancellation's reason says so.
    """
    if not cluster_lost(exc):
        return None
    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None)
    client = getattr(runner, "_client", None)
    if client is None:
        return None
    if client.status == "running" and getattr(exc, "reason", None) != "scheduler-connection-lost":
        return None
    scheduler = getattr(client, "scheduler", None)
    address = getattr(scheduler, "address", None) or getattr(runner, "address", None)
    return str(address) if address else "an unknown address"


@contextmanager
def scheduler_loss_named() -> Iterator[None]:
    """Turn the cancellations that follow the loss of the run's Dask scheduler into :class:`DaskSchedulerLost`.

    Without it a run ended with ``FutureCancelledError: publish_products-... cancelled for
    reason: unknown``, which says neither what was lost nor where. Use it around the body
    of a flow.
    """
    try:
        yield
    except Exception as exc:
        address = lost_scheduler(exc)
        if address is None:
            raise
        raise DaskSchedulerLost(address, f"{type(exc).__name__}: {exc}") from exc

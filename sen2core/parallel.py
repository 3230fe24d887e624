"""Independent per-band or per-file work in parallel, on the Dask cluster when there is one.

Called from the client while a Dask client is active, the work goes to the cluster through
joblib's dask backend, so that it shares the workers with the dask graphs; elsewhere,
including inside a Dask task (where waiting on the cluster would hold a worker thread),
it runs on threads. The functions used here release the GIL (GDAL, hashlib, numpy).
"""

from __future__ import annotations

import ctypes
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import joblib  # type: ignore[import-untyped]  # joblib ships neither annotations nor stubs

T = TypeVar("T")


def backend() -> str:
    """``dask`` on a Dask client outside any worker, else ``threading``."""
    try:
        from distributed import get_client, get_worker
    except ImportError:
        return "threading"
    try:
        get_worker()
        return "threading"
    except ValueError:
        pass
    try:
        get_client()
    except ValueError:
        return "threading"
    return "dask"


def map_parallel(func: Callable[..., T], items: Iterable[Sequence[Any]], n_jobs: int | None = None) -> list[T]:
    """``[func(*item) for item in items]``, in parallel (see the module docstring); order kept."""
    jobs = n_jobs or os.cpu_count() or 1
    with joblib.parallel_config(backend=backend(), n_jobs=jobs):
        return list(joblib.Parallel(return_as="list")(joblib.delayed(func)(*item) for item in items))


#: Environment variable that sets the threads of one GDAL codec call (a count or ``ALL_CPUS``).
CODEC_THREADS_ENV = "SEN2CORE_CODEC_THREADS"


def codec_threads() -> str:
    """Threads for one GDAL codec call made here and now (``GDAL_NUM_THREADS``, the COG's ``NUM_THREADS``).

    GDAL's JPEG 2000 decoder and its COG and JPEG 2000 encoders default to every core of the
    machine. Inside a Dask worker that oversubscribes the node: *n* workers on *n* cores run
    *n* x *n* codec threads, and a worker of an HPC job sees the whole node, not its
    allocation. So, as Dask does for OpenMP and BLAS libraries, a call inside a Dask worker
    uses the worker's threads (its share of the cores), and workers x threads is the whole
    core budget of a run. Outside a worker (threads in-process) GDAL's default stays. The
    environment variable :data:`CODEC_THREADS_ENV` overrides both.
    """
    value = os.environ.get(CODEC_THREADS_ENV, "").strip()
    if value:
        return value
    try:
        from distributed import get_worker

        return str(max(1, int(get_worker().state.nthreads)))
    except (ImportError, ValueError, AttributeError):
        return "ALL_CPUS"


#: Allocations from this size up get their own memory map (glibc's ``M_MMAP_THRESHOLD``).
MMAP_THRESHOLD_BYTES = 64 * 2**20
#: At most one ``malloc_trim`` per worker in this many seconds: each trim makes the next tasks
#: fault their temporaries' pages in again.
TRIM_INTERVAL_S = 3.0
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


#: At most this many glibc malloc arenas in a worker process that sen2core starts (``MALLOC_ARENA_MAX``).
#: glibc gives up to 8 per core, one per thread that allocates while another holds an arena: a
#: worker's task thread, each product task that secedes from it, its event loop and GDAL's codec
#: threads. With the mmap threshold raised (:func:`set_malloc_thresholds`) every arena keeps its
#: own freed chunk-sized temporaries, so a worker's resident memory grew with the threads it had
#: run: per-tile products (a task thread per tile in flight) peaked 0.1 GiB higher on a 1830 px
#: scene (two workers), with no gain in speed.
WORKER_MALLOC_ARENAS = 2


@contextmanager
def worker_environment() -> Iterator[None]:
    """Start the Dask worker processes created in this block with :data:`WORKER_MALLOC_ARENAS` arenas.

    glibc reads ``MALLOC_ARENA_MAX`` when the process starts, so it is set through Dask's
    ``distributed.nanny.pre-spawn-environ`` (which a ``Nanny`` reads when it is created) for the
    block only (nor does it stay in this process's environment). A value the operator set in
    that configuration or in the environment is kept.
    """
    import dask

    key = "distributed.nanny.pre-spawn-environ"
    environ = dict(dask.config.get(key, default={}) or {})
    if "MALLOC_ARENA_MAX" in environ or "MALLOC_ARENA_MAX" in os.environ:
        yield
        return
    try:
        with dask.config.set({key: {**environ, "MALLOC_ARENA_MAX": str(WORKER_MALLOC_ARENAS)}}):
            yield
    finally:
        # A Nanny puts its pre-spawn variables in this process's environment too: not beyond the block.
        os.environ.pop("MALLOC_ARENA_MAX", None)


def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


def set_malloc_thresholds(libc: Any = None) -> bool:
    """Serve allocations below :data:`MMAP_THRESHOLD_BYTES` from the heap in this process (see :func:`tune_malloc`).

    Returns False where the C library is not glibc (nothing is changed).
    """
    libc = libc if libc is not None else _libc()
    if libc is None:
        return False
    libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    # Free memory at the top of the heap is returned from this size up (distributed sets 64 kB).
    libc.mallopt(_M_TRIM_THRESHOLD, MMAP_THRESHOLD_BYTES)
    return True


def tune_malloc(trim_after_task: bool = True) -> Any:
    """A Dask worker plugin that lets chunk-sized temporaries reuse freed memory (glibc only; a no-op elsewhere).

    By default glibc gives every allocation above 128 kB (adjusted up to 32 MB at most, and
    not at all once ``MALLOC_TRIM_THRESHOLD_`` is set, as distributed does for its workers)
    its own memory map, returned to the system when freed. A kernel allocates dozens of
    chunk-sized arrays, so each is a fresh map that the system zeroes page by page on first
    touch: on this project's 2-core machine that was about 40 % of a full tile's processing
    time. With the plugin, allocations up to :data:`MMAP_THRESHOLD_BYTES` come from the heap
    and reuse freed memory; with ``trim_after_task`` the memory a task freed is returned to
    the system when it ends (``malloc_trim``, at most every :data:`TRIM_INTERVAL_S`
    seconds), so a worker does not keep the largest temporaries it ever had.

    Register it on a client (``client.register_plugin(tune_malloc())``); the command line
    and the flows do it for the clusters they use.
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class MallocTuning(WorkerPlugin):  # type: ignore[misc]
        name = "sen2core-malloc"

        def __init__(self, trim: bool) -> None:
            self.trim = trim
            self._libc: Any = None
            self._last = -math.inf

        def setup(self, worker: Any) -> None:
            self._libc = _libc()
            if self._libc is not None:
                set_malloc_thresholds(self._libc)

        def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
            if not self.trim or self._libc is None or start != "executing":
                return
            now = time.monotonic()
            if now - self._last >= TRIM_INTERVAL_S:
                self._last = now
                self._libc.malloc_trim(0)

    return MallocTuning(trim_after_task)


#: Environment variable naming where the dashboards of the Dask clusters sen2core creates listen.
DASHBOARD_ENV = "SEN2CORE_DASK_DASHBOARD"
#: Default: the loopback interface, a free port. The dashboard shows task names and can
#: profile and stop workers, and it has no authentication: it must not face the network
#: unless asked to (``distributed.LocalCluster`` binds every interface for ``":0"``).
LOOPBACK_DASHBOARD = "127.0.0.1:0"


def dashboard_address(requested: str | None = None) -> str:
    """Where the dashboard of a Dask cluster created by sen2core listens.

    Parameters
    ----------
    requested
        The user's choice (``host:port``; ``":8787"`` means every interface), if any.

    Returns
    -------
    str
        ``requested``, else the environment variable ``SEN2CORE_DASK_DASHBOARD``, else
        ``127.0.0.1:0`` (loopback only, a free port).
    """
    return requested or os.environ.get(DASHBOARD_ENV) or LOOPBACK_DASHBOARD


def local_cluster(n_workers: int, dashboard: str | None = None, **kwargs: Any) -> Any:
    """A ``distributed.LocalCluster`` of ``n_workers`` single-threaded worker processes.

    Its scheduler and workers listen on 127.0.0.1 (LocalCluster's default) and so does
    its dashboard unless ``dashboard`` (or ``SEN2CORE_DASK_DASHBOARD``) says otherwise
    (:func:`dashboard_address`). ``kwargs`` go to ``LocalCluster``.
    """
    import logging

    from distributed import LocalCluster

    options: dict[str, Any] = {"n_workers": n_workers, "threads_per_worker": 1, "processes": True,
                               "silence_logs": logging.ERROR, **kwargs}  # fmt: skip
    options["dashboard_address"] = dashboard_address(dashboard or options.get("dashboard_address"))
    with worker_environment():
        return LocalCluster(**options)


__all__ = [
    "CODEC_THREADS_ENV",
    "DASHBOARD_ENV",
    "LOOPBACK_DASHBOARD",
    "MMAP_THRESHOLD_BYTES",
    "WORKER_MALLOC_ARENAS",
    "backend",
    "codec_threads",
    "dashboard_address",
    "local_cluster",
    "map_parallel",
    "set_malloc_thresholds",
    "tune_malloc",
    "worker_environment",
]

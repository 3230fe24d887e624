"""Independent per-band or per-file work in parallel, on the Dask cluster when there is one.

Called from the client while a Dask client is active, the work goes to the cluster through
joblib's dask backend, so that it shares the workers with the dask graphs; elsewhere,
including inside a Dask task (where waiting on the cluster would hold a worker thread),
it runs on threads. The functions used here release the GIL (GDAL, hashlib, numpy).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import joblib

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


__all__ = ["backend", "map_parallel"]

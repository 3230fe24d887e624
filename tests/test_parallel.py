"""Per-band work through joblib: threads by default, the Dask cluster when a client is active."""

from __future__ import annotations

import logging
import threading

import pytest

from sen2core.parallel import backend, map_parallel


def _where(x: int) -> tuple[int, str]:
    try:
        from distributed import get_worker

        return x * x, f"worker:{get_worker().address}"
    except ValueError:
        return x * x, f"thread:{threading.get_ident()}"


def test_threads_without_a_dask_client() -> None:
    assert backend() == "threading"
    out = map_parallel(_where, [(i,) for i in range(6)], n_jobs=2)
    assert [v for v, _ in out] == [i * i for i in range(6)]
    assert all(w.startswith("thread:") for _, w in out)


@pytest.mark.timeout(120)
def test_dask_workers_when_a_client_is_active() -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0",
                     silence_logs=logging.ERROR) as cluster,
        Client(cluster),
    ):  # fmt: skip
        assert backend() == "dask"
        out = map_parallel(_where, [(i,) for i in range(6)], n_jobs=2)
    assert [v for v, _ in out] == [i * i for i in range(6)]
    assert all(w.startswith("worker:") for _, w in out)

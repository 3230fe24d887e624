"""Per-band work through joblib: threads by default, the Dask cluster when a client is active."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

import pytest

from sen2core import parallel
from sen2core.parallel import backend, map_parallel, set_malloc_thresholds, tune_malloc


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


class _RecordingLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int] | tuple[str, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


@pytest.mark.parametrize("trim", [True, False])
def test_malloc_plugin_sets_thresholds_and_trims_after_each_task(monkeypatch: pytest.MonkeyPatch, trim: bool) -> None:
    libc = _RecordingLibc()
    monkeypatch.setattr(parallel, "_libc", lambda: libc)
    plugin = tune_malloc(trim_after_task=trim)
    plugin.setup(worker=None)
    # glibc's M_MMAP_THRESHOLD (-3) and M_TRIM_THRESHOLD (-1), both 64 MiB.
    assert libc.calls == [("mallopt", -3, 64 * 2**20), ("mallopt", -1, 64 * 2**20)]
    libc.calls.clear()
    clock = [1000.0]
    monkeypatch.setattr(parallel.time, "monotonic", lambda: clock[0])
    plugin.transition("load-1", "ready", "executing")
    plugin.transition("load-1", "executing", "memory")  # the first task's end: trimmed
    clock[0] += 1.0
    plugin.transition("load-2", "executing", "error")  # 1 s later: not yet
    plugin.transition("load-1", "memory", "released")
    clock[0] += parallel.TRIM_INTERVAL_S
    plugin.transition("load-3", "executing", "memory")  # trimmed again
    assert libc.calls == ([("malloc_trim", 0)] * 2 if trim else [])


def test_without_glibc_nothing_is_tuned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "_libc", lambda: None)
    assert set_malloc_thresholds() is False
    plugin = tune_malloc()
    plugin.setup(worker=None)
    plugin.transition("k", "executing", "memory")  # no C library to call: nothing happens


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_malloc_plugin_runs_on_worker_processes() -> None:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                     silence_logs=logging.ERROR) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        client.register_plugin(tune_malloc())
        assert client.submit(sum, [1, 2, 3]).result() == 6

        def tuned(dask_worker: Any) -> bool:
            plugin = dask_worker.plugins["sen2core-malloc"]
            return plugin._libc is not None and plugin.trim

        assert list(client.run(tuned).values()) == [parallel._libc() is not None]


def _malloc_arenas(threads: int = 6) -> int:
    """glibc's malloc arenas in this process after ``threads`` threads allocated at once (``malloc_info``)."""
    import ctypes
    import tempfile
    import threading

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.fopen.restype = ctypes.c_void_p
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    barrier = threading.Barrier(threads)
    kept: list[int] = []

    def allocate() -> None:
        barrier.wait()  # all alive at once: a thread's arena is not handed on to the next
        kept.append(libc.malloc(1 << 20))
        barrier.wait()

    workers = [threading.Thread(target=allocate) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for pointer in kept:
        libc.free(pointer)
    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        stream = libc.fopen(f.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        with open(f.name, encoding="utf-8") as xml:
            return xml.read().count("<heap nr=")


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.skipif(parallel._libc() is None, reason="glibc only")
def test_workers_started_by_sen2core_keep_few_malloc_arenas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each thread of a worker that allocated got its own glibc arena (up to 8 per core), each
    holding its freed temporaries: per-tile products peaked 0.1 GiB higher on two workers."""
    from distributed import Client, LocalCluster

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    with parallel.local_cluster(1, silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        (ours,) = client.run(_malloc_arenas).values()
    assert "MALLOC_ARENA_MAX" not in os.environ, "the setting stays with the workers"
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0",
                     silence_logs=logging.ERROR) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        (plain,) = client.run(_malloc_arenas).values()
    assert ours <= parallel.WORKER_MALLOC_ARENAS < plain, (ours, plain)


def test_an_operators_arena_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask

    key = "distributed.nanny.pre-spawn-environ"
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    with parallel.worker_environment():
        assert dask.config.get(key)["MALLOC_ARENA_MAX"] == str(parallel.WORKER_MALLOC_ARENAS)
        assert dask.config.get(key)["MALLOC_TRIM_THRESHOLD_"] == 65536, "Dask's own settings stay"
    assert "MALLOC_ARENA_MAX" not in dask.config.get(key), "set for the block only"
    with dask.config.set({f"{key}.MALLOC_ARENA_MAX": "4"}), parallel.worker_environment():
        assert dask.config.get(key)["MALLOC_ARENA_MAX"] == "4"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    with parallel.worker_environment():
        assert "MALLOC_ARENA_MAX" not in dask.config.get(key), "the environment's value is inherited"


def _write_threads() -> tuple[str, str | None]:
    """The codec threads here and GDAL's ``GDAL_NUM_THREADS`` inside the writers' environment."""
    import rasterio.env

    from sen2core.io.write.raster import _write_env

    with _write_env():
        return parallel.codec_threads(), rasterio.env.getenv().get("GDAL_NUM_THREADS")


def test_codecs_use_every_core_outside_a_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(parallel.CODEC_THREADS_ENV, raising=False)
    assert _write_threads() == ("ALL_CPUS", "ALL_CPUS")
    monkeypatch.setenv(parallel.CODEC_THREADS_ENV, "3")
    assert _write_threads() == ("3", "3")


@pytest.mark.timeout(120)
def test_codecs_in_a_worker_use_the_workers_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import Client, LocalCluster

    monkeypatch.delenv(parallel.CODEC_THREADS_ENV, raising=False)
    with (
        LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=":0",
                     silence_logs=logging.ERROR) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        assert client.submit(_write_threads, pure=False).result() == ("3", "3")
        monkeypatch.setenv(parallel.CODEC_THREADS_ENV, "ALL_CPUS")  # the override wins in workers too
        assert client.submit(_write_threads, pure=False).result() == ("ALL_CPUS", "ALL_CPUS")

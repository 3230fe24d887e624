"""The per-product task: one Level-1C href in, a small summary out."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect_dask import get_dask_client

from sen2core.errors import TransientIOError
from sen2core.pipeline import ProcessingConfig, process_product


def _is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures that may go away (storage, network); a bad product fails once."""
    try:
        state.result()
    except TransientIOError:
        return True
    except Exception:
        return False
    return False


@task(
    name="process-l1c",
    task_run_name="l2a-{l1c_href}",
    retries=3,
    retry_delay_seconds=[10, 60, 300],
    retry_condition_fn=_is_transient,
    cache_policy=NO_CACHE,
    tags=["sen2core-product"],
)
def process_l1c(
    l1c_href: str,
    output_root: str,
    resolution: int | None = None,
    sc_only: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Process one product; its dask work runs on the task runner's cluster.

    ``get_dask_client`` connects to the scheduler of the ``DaskTaskRunner``; the
    library's ``dask.compute``/``persist`` calls then go there and secede from the
    worker thread while they wait, so nested work cannot deadlock the worker.
    """
    config = ProcessingConfig(resolution=resolution, sc_only=sc_only, overwrite=overwrite)
    with get_dask_client():
        result = process_product(l1c_href, output_root, config)
    return result.to_dict()

"""Flow ``sen2core-backfill``: every product of a date range, with bounded concurrency.

The range is whole UTC days, ``start`` and ``end`` included. Products already done
are skipped unless ``overwrite``. At most ``max_concurrency`` products run at once
in this flow run (a bounded submission window, see :mod:`flows.common`); to cap
products across all runs as well, set a tag concurrency limit on ``sen2core-product``
(``prefect concurrency-limit create sen2core-product 4``; the product tasks carry the tag
while such a limit exists, :func:`tasks.product.product_tags`). A progress artifact
shows how far the run is.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger

from flows.common import run_products
from flows.runner import Sen2CoreTaskRunner, scheduler_loss_named
from sen2core.redact import install_log_redaction, redact_url
from tasks.discover import discover_products
from tasks.models import ProcessingOptions, RunSummary, Source, TimeWindow

__all__ = ["backfill"]


@flow(name="sen2core-backfill", task_runner=Sen2CoreTaskRunner(), log_prints=True)  # type: ignore[arg-type]
def backfill(
    source: Source,
    output_root: str,
    start: dt.date,
    end: dt.date,
    tiles: list[str] | None = None,
    max_cloud_cover: float | None = None,
    overwrite: bool = False,
    max_concurrency: int = 2,
    options: ProcessingOptions | None = None,
    product_timeout_minutes: float = 60.0,
    dask_address: str | None = None,
) -> RunSummary:
    """Process every product sensed from ``start`` to ``end`` (UTC days, both included) on ``tiles``.

    Parameters
    ----------
    source
        Inbox directory, static STAC catalog or STAC API.
    output_root
        Root of the output tree and of the STAC collection.
    start, end
        First and last sensing day (UTC).
    tiles
        MGRS tiles to keep; None keeps every tile.
    max_cloud_cover
        Skip products whose source reports more cloud (%); STAC sources only.
    overwrite
        Reprocess products that are already done.
    max_concurrency
        Products processed at once by this run.
    options
        Processing options.
    product_timeout_minutes
        A product task fails (without retry) when it runs longer.
    dask_address
        Address of an existing Dask scheduler; default: see :mod:`flows.runner`.

    Returns
    -------
    RunSummary
        The run ends ``Failed`` (raising :class:`flows.common.RunFailed`) if a product failed, or
        with :class:`flows.runner.DaskSchedulerLost` if its Dask scheduler went away.
    """
    install_log_redaction()  # this process's log records are masked (flows may run outside the CLI)
    window = TimeWindow.from_dates(start, end)
    get_run_logger().info("backfill of %s, sensing days %s to %s (overwrite=%s)", redact_url(source.href), start, end,
                          overwrite)  # fmt: skip
    with scheduler_loss_named():
        refs = discover_products.submit(source, window, tiles, max_cloud_cover).result()
        return run_products("backfill", refs, output_root, options, overwrite=overwrite,
                            max_concurrency=max_concurrency, product_timeout_minutes=product_timeout_minutes,
                            window=window)  # fmt: skip

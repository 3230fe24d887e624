"""Flow ``sen2core-daily-ingest``: the products sensed in the day before the run's scheduled start.

Window semantics: the ``lookback_hours`` (default 24) **ending at the flow run's
scheduled start time**, half-open ``[T - lookback, T)`` on the sensing time, in UTC.
``T`` is the time the run was scheduled for, not the time it happens to start: a
run that waited for a busy worker, or a late run caught up after an outage, still
covers its own day, and consecutive daily runs tile the time line without gaps or
overlaps. For a run triggered by hand, ``T`` is when it was triggered (Prefect's
scheduled start time of an ad-hoc run), unless ``reference_time`` is given, which
takes precedence (re-running a past day). A ``lookback_hours`` above 24 makes
consecutive windows overlap, which catches products published late; products
already done are skipped, so the overlap costs only discovery.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.common import as_utc, run_products
from flows.runner import Sen2CoreTaskRunner, scheduler_loss_named
from sen2core.redact import install_log_redaction, redact_url
from tasks.discover import discover_products
from tasks.models import ProcessingOptions, RunSummary, Source, TimeWindow

__all__ = ["daily_ingest", "ingest_window"]


def ingest_window(reference_time: dt.datetime | None = None, lookback_hours: float = 24.0) -> TimeWindow:
    """``[T - lookback_hours, T)`` with ``T`` = ``reference_time`` or the flow run's scheduled start time.

    Outside a flow run, Prefect's runtime gives the current time.
    """
    if lookback_hours <= 0:
        raise ValueError(f"lookback_hours must be positive, not {lookback_hours}")
    end = as_utc(reference_time if reference_time is not None else flow_run.scheduled_start_time)
    return TimeWindow(start=end - dt.timedelta(hours=lookback_hours), end=end)


@flow(name="sen2core-daily-ingest", task_runner=Sen2CoreTaskRunner(), log_prints=True)  # type: ignore[arg-type]
def daily_ingest(
    source: Source,
    output_root: str,
    tiles: list[str] | None = None,
    max_cloud_cover: float | None = None,
    lookback_hours: float = 24.0,
    reference_time: dt.datetime | None = None,
    options: ProcessingOptions | None = None,
    max_concurrency: int = 2,
    product_timeout_minutes: float = 60.0,
    dask_address: str | None = None,
) -> RunSummary:
    """Discover the products of the window (see the module docstring), process the new ones, publish, report.

    Parameters
    ----------
    source
        Inbox directory, static STAC catalog or STAC API.
    output_root
        Root of the output tree and of the STAC collection.
    tiles
        MGRS tiles to keep (``["32TQM", "T33UUP"]``); None keeps every tile.
    max_cloud_cover
        Skip products whose source reports more cloud (%); STAC sources only.
    lookback_hours
        Length of the window ending at the scheduled start time.
    reference_time
        End of the window instead of the scheduled start time (re-running a past day).
    options
        Processing options.
    max_concurrency
        Products processed at once by this run.
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
    window = ingest_window(reference_time, lookback_hours)
    get_run_logger().info("daily ingest of %s, sensing window %s", redact_url(source.href), window)
    with scheduler_loss_named():
        refs = discover_products.submit(source, window, tiles, max_cloud_cover).result()
        return run_products("daily-ingest", refs, output_root, options, overwrite=False,
                            max_concurrency=max_concurrency, product_timeout_minutes=product_timeout_minutes,
                            window=window)  # fmt: skip

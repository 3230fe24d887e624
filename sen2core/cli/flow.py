"""``sen2core flow ingest|backfill|product``: run the Prefect flows locally, no server needed.

Without ``PREFECT_API_URL``, the command starts Prefect's temporary local server
once, in this process, and exports its address before the Dask cluster starts, so
that every Dask worker process reports to that one server instead of starting its
own (which costs about 10 s per worker). It waits up to
:data:`DEFAULT_STARTUP_TIMEOUT_S` for it (Prefect's own default, 20 s, is too short on
a busy machine), and the server sends no usage analytics (an offline machine logged a
telemetry error). With ``PREFECT_API_URL`` set, runs go to that server and show in
its UI.

Prefect is imported only when a command runs: the library itself never imports it.
Exit status: 0 when the run ends ``Completed``, 1 when it ends ``Failed`` (a product
or the collection update failed: the failures are listed on stderr).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

__all__ = ["DEFAULT_STARTUP_TIMEOUT_S", "STARTUP_TIMEOUT_ENV", "flow", "startup_timeout"]

#: Seconds to wait for the temporary Prefect server unless told otherwise. Prefect's default is
#: 20 s; on a busy 2-core machine the server took 26-57 s to answer.
DEFAULT_STARTUP_TIMEOUT_S = 120
#: Prefect's own setting of that wait, honoured when set.
STARTUP_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


def _drain_prefect_workers() -> None:
    """Send the logs and events still queued before the temporary server stops.

    Otherwise Prefect keeps retrying against the stopped server for more than a minute.
    """
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        try:
            logs = APILogWorker.instance().drain()
            if inspect.isawaitable(logs):
                await logs
        except RuntimeError:  # the log worker never started
            pass
        events = EventsWorker.drain_all()
        if inspect.isawaitable(events):
            await events

    run_coro_as_sync(drain())


def startup_timeout(option: int | None = None) -> int:
    """Seconds to wait for the temporary Prefect server.

    ``option`` (``--server-startup-timeout``, which also reads :data:`STARTUP_TIMEOUT_ENV`) when
    given, else the larger of :data:`DEFAULT_STARTUP_TIMEOUT_S` and Prefect's setting (from a
    profile, for example).
    """
    if option is not None:
        return option
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    return max(DEFAULT_STARTUP_TIMEOUT_S, int(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()))


def _start_temporary_server(timeout: int) -> Any:
    """Start Prefect's temporary server; :class:`~sen2core.errors.ServiceError` if it does not answer in time."""
    from prefect.server.api.server import SubprocessASGIServer

    from sen2core.errors import ServiceError

    server = SubprocessASGIServer()
    # A throw-away server has no use for usage analytics; offline, its telemetry job logged an
    # ERROR with a traceback on every run. A user's explicit setting (environment or profile) wins.
    quiet = "PREFECT_SERVER_ANALYTICS_ENABLED" not in os.environ
    if quiet:
        os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"  # read by the server process only
    try:
        server.start(timeout=timeout)
    except RuntimeError as exc:
        server.stop()
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if first.startswith("Timed out"):
            raise ServiceError(
                f"the temporary Prefect server did not answer within {timeout} s; wait longer with "
                f"--server-startup-timeout SECONDS (or {STARTUP_TIMEOUT_ENV}), or set PREFECT_API_URL to a running "
                "server") from None  # fmt: skip
        raise ServiceError(f"the temporary Prefect server did not start: {first}") from None
    finally:
        if quiet:
            os.environ.pop("PREFECT_SERVER_ANALYTICS_ENABLED", None)
    return server


@contextmanager
def _prefect_api(timeout: int | None = None) -> Iterator[None]:
    """A Prefect API for the run: ``PREFECT_API_URL`` if set, else one temporary local server.

    Raises
    ------
    sen2core.errors.ServiceError
        The temporary server did not answer within :func:`startup_timeout` seconds.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    click.echo("starting a temporary local Prefect server (set PREFECT_API_URL to use a running one)", err=True)
    server = _start_temporary_server(startup_timeout(timeout))
    previous = os.environ.get("PREFECT_API_URL")
    # Exported (not only set in Prefect's settings) so that Dask worker processes inherit it.
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            try:
                yield
            finally:
                _drain_prefect_workers()
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        server.stop()


def _options(resolution: str | None, sc_only: bool, aerosol: str, cirrus: bool, dem: str | None,
             output_format: str, tile_blocks: int | None = None, chunk_m: float = 18300.0,
             task_per_product: bool = False, no_verify: bool = False,
             tiles_at_once: int | None = None) -> Any:  # fmt: skip
    from tasks.models import ProcessingOptions

    return ProcessingOptions(resolution=int(resolution) if resolution else None, sc_only=sc_only,  # type: ignore[arg-type]
                             aerosol=aerosol, cirrus=cirrus, dem=dem, output_format=output_format,  # type: ignore[arg-type]
                             tile_blocks=tile_blocks, tiles_at_once=tiles_at_once, chunk_m=chunk_m,
                             task_per_stage=not task_per_product, verify_checksums=not no_verify)  # fmt: skip


def _source(inbox: str | None, stac_catalog: str | None, stac_api: str | None, collections: tuple[str, ...],
            stac_secret: str | None = None) -> Any:  # fmt: skip
    from sen2core.redact import split_url_credentials
    from tasks.discover import STAC_TOKEN_ENV
    from tasks.models import Source

    given = [(k, v) for k, v in (("inbox", inbox), ("stac-catalog", stac_catalog), ("stac-api", stac_api)) if v]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --inbox, --stac-catalog, --stac-api")
    kind, href = given[0]
    if kind != "stac-api" and "://" not in href:
        href = os.path.abspath(href)  # the flow may run elsewhere than the current directory
    if kind == "stac-api":
        # A flow parameter is stored and shown by Prefect, and logged: credentials leave the URL and
        # reach discovery through the environment, which this process's Dask workers inherit.
        href, found = split_url_credentials(href)
        if found:
            if stac_secret or os.environ.get(STAC_TOKEN_ENV):
                raise click.UsageError(f"STAC API credentials given twice: in the --stac-api URL and in "
                                       f"{'--stac-secret' if stac_secret else STAC_TOKEN_ENV}")  # fmt: skip
            os.environ[STAC_TOKEN_ENV] = json.dumps(found)
            click.echo(f"sen2core: credentials taken out of the --stac-api URL and passed in {STAC_TOKEN_ENV} (not "
                       "stored with the flow run; set the variable or use --stac-secret to keep them off the "
                       "command line)", err=True)  # fmt: skip
    extra: dict[str, Any] = {"collections": list(collections)} if collections else {}
    if stac_secret:
        extra["secret_block"] = stac_secret
    return Source(kind=kind, href=href, **extra)  # type: ignore[arg-type]


def _run(flow_obj: Any, workers: int | None, as_json: bool, *, server_startup_timeout: int | None = None,
         **parameters: Any) -> None:  # fmt: skip
    """Run ``flow_obj`` with ``parameters``; print its summary; exit 1 if it failed."""
    from flows.common import RunFailed
    from flows.runner import Sen2CoreTaskRunner, local_cluster_kwargs

    if workers is not None:
        flow_obj = flow_obj.with_options(task_runner=Sen2CoreTaskRunner(
            cluster_kwargs={**local_cluster_kwargs(), "n_workers": workers}))  # fmt: skip
    with _prefect_api(server_startup_timeout):
        state = flow_obj(**parameters, return_state=True)
        value = state.result(raise_on_failure=False)
    summary = value.summary if isinstance(value, RunFailed) else value
    if hasattr(summary, "model_dump"):
        if as_json:
            click.echo(json.dumps(summary.model_dump(mode="json"), indent=1))
        else:
            for o in summary.outcomes:
                click.echo(f"{o.status:8} {o.product_id} {o.output_dir or ''}")
            click.echo(summary.headline() + (f"; report: {summary.report}" if summary.report else ""))
    if not state.is_completed():
        from sen2core.redact import redact_text

        click.echo(redact_text(f"sen2core: flow run {state.name}: {state.message or value}"), err=True)
        for problem in getattr(value, "problems", []):
            click.echo(f"  {redact_text(problem)}", err=True)
        sys.exit(1)


def _processing_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every flow command."""
    decorators = [
        click.option("--output-dir", "-o", "output_root", type=click.Path(file_okay=False), default="l2a",
                     show_default=True, help="Output root (product tree, STAC collection, run reports)."),
        click.option("--resolution", type=click.Choice(["10", "20", "60"]), default=None,
                     help="Output resolution; default: every band at its native resolution."),
        click.option("--sc-only", is_flag=True, help="Scene classification only."),
        click.option("--aerosol", type=click.Choice(["continental", "maritime", "auto"]), default="continental",
                     show_default=True),
        click.option("--cirrus/--no-cirrus", default=False, show_default=True, help="Cirrus correction with B10."),
        click.option("--dem", type=click.Path(exists=True, dir_okay=False), default=None, help="DEM raster."),
        click.option("--format", "output_format", type=click.Choice(["cog", "safe"]), default="cog",
                     show_default=True, help="Output layout."),
        click.option("--tile-blocks", type=click.IntRange(min=1), default=None,
                     help="Split each product's stages into tiles of N x N chunks: one task per tile and stage."),
        click.option("--tiles-at-once", type=click.IntRange(min=1), default=None,
                     help="With --tile-blocks: tile tasks of a round in flight at most, to bound memory "
                          "(default: all of them)."),
        click.option("--task-per-product", is_flag=True,
                     help="One task per product instead of one per stage (fewer task runs for the server)."),
        click.option("--no-verify", is_flag=True,
                     help="Do not check input files against manifest.safe's checksums (trusted archives)."),
        click.option("--chunk-m", type=float, default=18300.0, show_default=True,
                     help="Chunk edge in metres (by tiles: a multiple of 300)."),
        click.option("--timeout-minutes", type=float, default=60.0, show_default=True,
                     help="A product fails (without retry) when it runs longer."),
        click.option("--workers", type=int, default=None,
                     help="Local Dask worker processes (default: one per core)."),
        click.option("--dask-address", default=None,
                     help="Existing Dask scheduler (tcp://host:8786); also SEN2CORE_DASK_ADDRESS."),
        click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON."),
        click.option("--server-startup-timeout", type=click.IntRange(min=1), default=None,
                     envvar=STARTUP_TIMEOUT_ENV, show_envvar=True,
                     help=f"Seconds to wait for the temporary Prefect server (without PREFECT_API_URL) "
                          f"[default: {DEFAULT_STARTUP_TIMEOUT_S}]."),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def _discovery_options(f: Callable[..., Any]) -> Callable[..., Any]:
    decorators = [
        click.option("--inbox", type=click.Path(exists=True, file_okay=False), default=None,
                     help="Directory of *.SAFE folders and *.SAFE.zip archives."),
        click.option("--stac-catalog", default=None, help="Static STAC catalog or collection JSON (path or URL)."),
        click.option("--stac-api", default=None, help="STAC API root URL (credentials: SEN2CORE_STAC_API_TOKEN or "
                     "--stac-secret; any in the URL are moved there)."),
        click.option("--stac-secret", default=None, help="Prefect Secret block with the STAC API's credentials."),
        click.option("--collection", "collections", multiple=True, help="STAC API collection (repeatable; "
                     "default sentinel-2-l1c)."),
        click.option("--tile", "tiles", multiple=True, help="MGRS tile to keep (repeatable; default: all)."),
        click.option("--max-cloud-cover", type=float, default=None, help="Cloud cover limit (%), STAC sources."),
        click.option("--max-concurrency", type=int, default=2, show_default=True, help="Products at once."),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


def _processing(kw: dict[str, Any]) -> dict[str, Any]:
    """Flow parameters from the shared options (removes them from ``kw``), and the server's start-up timeout."""
    options = _options(kw.pop("resolution"), kw.pop("sc_only"), kw.pop("aerosol"), kw.pop("cirrus"), kw.pop("dem"),
                       kw.pop("output_format"), kw.pop("tile_blocks"), kw.pop("chunk_m"),
                       kw.pop("task_per_product"), kw.pop("no_verify"), kw.pop("tiles_at_once"))  # fmt: skip
    return {"output_root": os.path.abspath(kw.pop("output_root")), "options": options,
            "product_timeout_minutes": kw.pop("timeout_minutes"), "dask_address": kw.pop("dask_address"),
            "server_startup_timeout": kw.pop("server_startup_timeout")}  # fmt: skip


@click.group("flow")
def flow() -> None:
    """Run the Prefect flows locally (daily ingest, backfill, one product)."""


@flow.command("product")
@click.argument("l1c_href", type=click.Path(exists=True))
@click.option("--overwrite", is_flag=True, help="Reprocess the product even if it is already done.")
@_processing_options
def product_command(l1c_href: str, overwrite: bool, workers: int | None, as_json: bool, **kw: Any) -> None:
    """Process one Level-1C product (SAFE folder, .SAFE.zip or MTD_MSIL1C.xml) with the one-product flow."""
    from flows.process_product import process_product_flow

    _run(process_product_flow, workers, as_json, l1c_href=os.path.abspath(l1c_href), overwrite=overwrite,
         **_processing(kw))  # fmt: skip


@flow.command("ingest")
@_discovery_options
@click.option(
    "--lookback-hours", type=float, default=24.0, show_default=True, help="Window length, ending at the reference time."
)
@click.option(
    "--reference-time",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]),
    default=None,
    help="End of the window, UTC (default: now, the run's scheduled start).",
)
@_processing_options
def ingest_command(
    inbox: str | None, stac_catalog: str | None, stac_api: str | None, stac_secret: str | None,
    collections: tuple[str, ...], tiles: tuple[str, ...], max_cloud_cover: float | None, max_concurrency: int,
    lookback_hours: float,
    reference_time: dt.datetime | None, workers: int | None, as_json: bool, **kw: Any,
) -> None:  # fmt: skip
    """Daily ingest: the products sensed in the LOOKBACK_HOURS before the reference time."""
    from flows.daily_ingest import daily_ingest

    ref = reference_time.replace(tzinfo=dt.UTC) if reference_time else None
    _run(daily_ingest, workers, as_json, source=_source(inbox, stac_catalog, stac_api, collections, stac_secret),
         tiles=list(tiles) or None, max_cloud_cover=max_cloud_cover, lookback_hours=lookback_hours,
         reference_time=ref, max_concurrency=max_concurrency, **_processing(kw))  # fmt: skip


@flow.command("backfill")
@_discovery_options
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First sensing day (UTC).")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last sensing day (UTC), included.")
@click.option("--overwrite", is_flag=True, help="Reprocess products that are already done.")
@_processing_options
def backfill_command(
    inbox: str | None, stac_catalog: str | None, stac_api: str | None, stac_secret: str | None,
    collections: tuple[str, ...], tiles: tuple[str, ...], max_cloud_cover: float | None, max_concurrency: int,
    start: dt.datetime,
    end: dt.datetime, overwrite: bool, workers: int | None, as_json: bool, **kw: Any,
) -> None:  # fmt: skip
    """Backfill: every product sensed from START to END (UTC days, both included)."""
    from flows.backfill import backfill

    _run(backfill, workers, as_json, source=_source(inbox, stac_catalog, stac_api, collections, stac_secret),
         start=start.date(), end=end.date(), tiles=list(tiles) or None, max_cloud_cover=max_cloud_cover,
         overwrite=overwrite, max_concurrency=max_concurrency, **_processing(kw))  # fmt: skip

"""Command-line interface: ``sen2core``.

Errors of the library are reported as one line on stderr with a non-zero exit
code; ``--debug`` shows the full traceback instead.

Log records are shown from WARNING up, without what new users read as failures
although nothing failed (:class:`QuietDependencies`); ``--debug`` shows every record
from DEBUG up, and sets ``PREFECT_LOGGING_LEVEL=DEBUG`` (unless set) for the flows.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from sen2core import __version__
from sen2core.errors import Sen2CoreError
from sen2core.redact import install_log_redaction, redact_text


class QuietDependencies(logging.Filter):
    """Leaves out the records of Dask's ``distributed`` that are routine, not problems.

    * Below WARNING (``distributed``, and its ``bokeh`` and ``tornado``): a local cluster
      logs about 60 INFO lines per run (scheduler, nannies, connections), which reach the
      console because the command's handler is the root logger's.
    * ``Worker process still alive after ... seconds, killing``: a nanny stopping its
      worker process at the end of a run, when the worker does not exit within its
      grace period (common on a busy machine). Nothing is lost: the run is over.
    """

    _NOISY = ("distributed", "bokeh", "tornado")

    def filter(self, record: logging.LogRecord) -> bool:
        root = record.name.partition(".")[0]
        if root not in self._NOISY:
            return True
        if record.levelno < logging.WARNING:
            return False
        return not (record.name == "distributed.nanny" and "still alive after" in str(record.msg))


def configure_logging(debug: bool) -> None:
    """Console logging of a command: WARNING and up without routine noise, or everything with ``debug``."""
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if debug:
        # Prefect reads it when a flow command imports it, and Dask workers started by the command inherit it.
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "DEBUG")
        return
    for handler in root.handlers:
        if handler not in before and not any(isinstance(f, QuietDependencies) for f in handler.filters):
            handler.addFilter(QuietDependencies())


class _Sen2CoreGroup(click.Group):
    """Click group that turns library errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Sen2CoreError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(redact_text(f"sen2core: error: {exc}"), err=True)
            sys.exit(1)
        except (OSError, ValueError) as exc:
            # Anything that escaped the library's own checks still gets one line.
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(redact_text(f"sen2core: error: {type(exc).__name__}: {exc}"), err=True)
            sys.exit(1)


@click.group(cls=_Sen2CoreGroup)
@click.version_option(__version__, prog_name="sen2core")
@click.option("--debug", is_flag=True, help="Show full tracebacks and debug logs.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """sen2core: Sentinel-2 Level-1C to Level-2A processor."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    # Credentials (in STAC URLs, signed hrefs) are masked in every log line of the process.
    install_log_redaction()
    configure_logging(debug)


from sen2core.cli.lut import lut  # noqa: E402  (commands register on the group)

main.add_command(lut)
from sen2core.cli.info import info  # noqa: E402

main.add_command(info)
from sen2core.cli.process import process  # noqa: E402

main.add_command(process)
from sen2core.cli.synth import synth  # noqa: E402

main.add_command(synth)
from sen2core.cli.flow import flow  # noqa: E402  (imports Prefect only when a flow command runs)

main.add_command(flow)

"""``sen2core process``: Level-1C to Level-2A."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from sen2core.stopwatch import Stopwatch

if TYPE_CHECKING:
    from sen2core.pipeline import ProcessingConfig

STAGES = ("plan", "decode", "screening", "atmosphere", "correction", "packaging")


class _Progress:
    """Stages as a progress bar on a terminal, one plain line per stage otherwise (logs, CI)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.watch = Stopwatch()

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total} stages"), TimeElapsedColumn(),
                                console=self.console, transient=False)  # fmt: skip
            self.bar.start()
            self.task = self.bar.add_task("plan", total=len(STAGES))
        return self

    def stage(self, name: str) -> None:
        """Called by the pipeline as each stage starts."""
        kind = "correction" if name.startswith("correction") else name
        done = STAGES.index(kind) if kind in STAGES else 0
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, description=name, completed=done)
        else:
            self.console.print(f"[{self.watch.elapsed():7.1f} s] {name}", highlight=False, markup=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None and self.task is not None:
            if exc[0] is None:
                self.bar.update(self.task, description="done", completed=len(STAGES))
            self.bar.stop()


def _already_done(product: str, output_root: str, cfg: ProcessingConfig) -> bool:
    """Whether ``product``'s Level-2A output is already complete under ``output_root`` (its metadata only is read)."""
    from sen2core.io.read.opening import open_l1c
    from sen2core.io.remote import is_remote, join
    from sen2core.io.write.upload import published
    from sen2core.package import is_done
    from sen2core.pipeline import output_dir

    l1c = open_l1c(product, tile=cfg.granule, chunk_m=cfg.chunk_m)
    if is_remote(output_root):
        return cfg.format == "cog" and published(join(output_root, output_dir(l1c, "", cfg.format).as_posix()))
    return is_done(output_dir(l1c, output_root, cfg.format))


def _location(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A local path that exists, or an ``s3://`` / ``http(s)://`` href (checked when it is opened)."""
    from sen2core.io.remote import is_remote

    if is_remote(value):
        return value
    if param.name == "product" and not Path(value).exists():
        raise click.BadParameter(f"{value!r} does not exist (a local path, or an s3:// or https:// href)")
    if param.name == "output_dir" and Path(value).is_file():
        raise click.BadParameter(f"{value!r} is a file, not a folder")
    return value


@click.command("process")
@click.argument("product", callback=_location)
@click.option(
    "--output-dir",
    "-o",
    default="l2a",
    callback=_location,
    show_default=True,
    help="Root of the output tree ({tile}/{yyyy}/{mm}/{dd}/{l2a_id}/): a folder, or s3://bucket/prefix (COG layout).",
)
@click.option(
    "--resolution",
    type=click.Choice(["10", "20", "60"]),
    default=None,
    help="Output resolution; default: every band at its native resolution (Sen2Cor's default run).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cog", "safe"]),
    default="cog",
    show_default=True,
    help="Output layout: COG + STAC, or Sen2Cor's L2A SAFE with JPEG 2000.",
)
@click.option("--sc-only", "--sc_only", "sc_only", is_flag=True, help="Scene classification only.")
@click.option(
    "--dem",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="DEM raster (any CRS) for terrain correction.",
)
@click.option(
    "--gipp",
    "--GIP_L2A",
    "gipp",
    type=click.Path(exists=True, dir_okay=False),
    multiple=True,
    help="Sen2Cor configuration: the user L2A_GIPP.xml and/or L2A_CAL_SC_GIPP.xml (repeatable).",
)
@click.option(
    "--aerosol",
    type=click.Choice(["continental", "maritime", "auto"]),
    default=None,
    help="Aerosol model (Sen2Cor RURAL = continental) [default: the GIPP's, else continental].",
)
@click.option("--cirrus/--no-cirrus", default=None, help="Cirrus correction with B10 [default: the GIPP's, else off].")
@click.option(
    "--legacy-encoding",
    is_flag=True,
    help="BOA DN = rho*10000 as before processing baseline 04.00 (default: rho*10000 + 1000).",
)
@click.option("--overwrite", is_flag=True, help="Reprocess even if the product is already done.")
@click.option(
    "--no-verify",
    "no_verify",
    is_flag=True,
    help="Do not check the files read against the checksums of manifest.safe (for trusted archives).",
)
@click.option(
    "--tile-blocks",
    type=click.IntRange(min=1),
    default=None,
    help="Run each stage by processing tiles of N x N chunk blocks (the same product; for graphs too large "
    "for the cluster's memory).",
)
@click.option("--workers", type=int, default=None, help="Dask worker processes (default: threads in-process).")
@click.option(
    "--dashboard-address",
    default=None,
    envvar="SEN2CORE_DASK_DASHBOARD",
    help="With --workers: where the Dask dashboard listens [default: 127.0.0.1:0, loopback only].",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def process(product: str, output_dir: str, resolution: str | None, fmt: str, sc_only: bool, dem: str | None,
            gipp: tuple[str, ...], aerosol: str | None, cirrus: bool | None, legacy_encoding: bool, overwrite: bool,
            no_verify: bool, tile_blocks: int | None, workers: int | None, dashboard_address: str | None,
            as_json: bool) -> None:  # fmt: skip
    """Process a Level-1C PRODUCT (SAFE folder, .SAFE.zip, MTD_MSIL1C.xml or AWS tile folder; local, s3:// or
    https://) to Level-2A."""
    import dataclasses

    from sen2core.config import USER_GIPP_ROOT, SceneClassificationConfig
    from sen2core.correction import CorrectionConfig, correction_config_from_gipp
    from sen2core.io.read.gipp import read_gipp, scene_classification_from_gipp
    from sen2core.io.xmlutil import local_name
    from sen2core.parallel import local_cluster, set_malloc_thresholds, tune_malloc
    from sen2core.pipeline import ProcessingConfig, process_product
    from sen2core.redact import redact_worker_logs

    correction, classification = CorrectionConfig(), SceneClassificationConfig()
    if gipp:
        classification = scene_classification_from_gipp(*gipp)
        for path in gipp:
            if local_name(read_gipp(path).tag) == USER_GIPP_ROOT:
                correction, extra = correction_config_from_gipp(path, correction)
                if "DEM_Directory" in extra and not dem:
                    logging.getLogger("sen2core").warning(
                        "%s: DEM_Directory %s ignored (sen2core takes one DEM raster: --dem PATH)", path,
                        extra["DEM_Directory"],
                    )  # fmt: skip
    if aerosol is not None:
        correction = dataclasses.replace(correction, aerosol=aerosol)
    if cirrus is not None:
        correction = dataclasses.replace(correction, cirrus_correction=cirrus)
    cfg = ProcessingConfig(
        resolution=int(resolution) if resolution else None, sc_only=sc_only, dem=dem, overwrite=overwrite,
        correction=correction, classification=classification, format=fmt, legacy_encoding=legacy_encoding,
        verify_checksums=not no_verify,
    )  # fmt: skip
    if workers and not overwrite and _already_done(product, output_dir, cfg):
        # Starting N worker processes costs seconds (26 s for `make demo` on a busy machine) to do nothing.
        workers = None
    console = Console(stderr=True)
    with _Progress(console) as progress:
        if workers:
            from distributed import Client

            with local_cluster(workers, dashboard_address) as cl, Client(cl) as client:
                client.register_plugin(tune_malloc())
                client.register_plugin(redact_worker_logs())
                result = process_product(product, output_dir, cfg, progress.stage, tile_blocks=tile_blocks)
        else:
            set_malloc_thresholds()
            result = process_product(product, output_dir, cfg, progress.stage, tile_blocks=tile_blocks)
    if as_json:
        from sen2core.io.jsonutil import strict_json_dumps

        click.echo(strict_json_dumps(result.to_dict(), indent=1))
    else:
        verb = "already done" if result.status == "skipped" else "written"
        print(f"{result.l2a_id} {verb}: {result.output_dir}", file=sys.stdout)

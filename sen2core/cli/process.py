"""``sen2core process``: Level-1C to Level-2A."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from rich.console import Console


@click.command("process")
@click.argument("product", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("l2a"),
    show_default=True,
    help="Root of the output tree ({tile}/{yyyy}/{mm}/{dd}/{l2a_id}/).",
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
    "--aerosol",
    type=click.Choice(["continental", "maritime", "auto"]),
    default="continental",
    show_default=True,
    help="Aerosol model (Sen2Cor RURAL = continental).",
)
@click.option("--cirrus/--no-cirrus", default=False, show_default=True, help="Cirrus correction with B10.")
@click.option(
    "--legacy-encoding",
    is_flag=True,
    help="BOA DN = rho*10000 as before processing baseline 04.00 (default: rho*10000 + 1000).",
)
@click.option("--overwrite", is_flag=True, help="Reprocess even if the product is already done.")
@click.option("--workers", type=int, default=None, help="Dask worker processes (default: threads in-process).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def process(product: Path, output_dir: Path, resolution: str | None, fmt: str, sc_only: bool, dem: str | None,
            aerosol: str, cirrus: bool, legacy_encoding: bool, overwrite: bool, workers: int | None,
            as_json: bool) -> None:  # fmt: skip
    """Process a Level-1C PRODUCT (SAFE folder, .SAFE.zip or MTD_MSIL1C.xml) to Level-2A."""
    from sen2core.correction import CorrectionConfig
    from sen2core.pipeline import ProcessingConfig, process_product

    cfg = ProcessingConfig(
        resolution=int(resolution) if resolution else None, sc_only=sc_only, dem=dem, overwrite=overwrite,
        correction=CorrectionConfig(aerosol=aerosol, cirrus_correction=cirrus), format=fmt,
        legacy_encoding=legacy_encoding,
    )  # fmt: skip
    console = Console(stderr=True)

    def progress(stage: str) -> None:
        console.print(f"[bold]{stage}[/bold]" if console.is_terminal else stage, highlight=False)

    if workers:
        from distributed import Client, LocalCluster

        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                         silence_logs=logging.ERROR) as cl,
            Client(cl),
        ):  # fmt: skip
            result = process_product(product, output_dir, cfg, progress)
    else:
        result = process_product(product, output_dir, cfg, progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1, default=float))
    else:
        verb = "already done" if result.status == "skipped" else "written"
        print(f"{result.l2a_id} {verb}: {result.output_dir}", file=sys.stdout)

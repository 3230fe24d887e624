"""``sen2core synth OUTPUT_DIR [options]``: a synthetic Level-1C product with known truth.

Progress goes to stderr (a rich bar on a terminal, plain lines otherwise); a summary
and the time taken follow, and the product path is printed last on stdout so that
scripts can take it with ``tail -n 1``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from sen2core.synthetic import SynthConfig, synthesize
from sen2core.synthetic.config import AEROSOLS, CLOUD_MODELS, SPACECRAFT

__all__ = ["synth"]

_STAGES = {"scene": "Scene strips", "encode": "JPEG 2000 encoding"}


@click.command("synth")
@click.argument("output_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--size",
    type=int,
    default=10980,
    show_default=True,
    help="Tile edge in 10 m pixels: a multiple of 6 up to 10980 (e.g. 1830, 366).",
)
@click.option("--tile", default="31TCJ", show_default=True, help="MGRS tile id (its real UTM zone and corner).")
@click.option(
    "--date",
    default="2023-07-15",
    show_default=True,
    help="YYYY-MM-DD (10:30 local solar time) or the UTC datatake start (ISO 8601).",
)
@click.option("--spacecraft", type=click.Choice(SPACECRAFT), default="S2A", show_default=True)
@click.option(
    "--baseline",
    default="05.09",
    show_default=True,
    help="Processing baseline NN.NN: 02.xx/03.xx without offset, 04.00+ with RADIO_ADD_OFFSET -1000.",
)
@click.option("--aot", type=float, default=0.15, show_default=True, help="Mean AOT at 550 nm.")
@click.option("--wv", type=float, default=2.0, show_default=True, help="Mean water vapour (cm).")
@click.option("--aerosol", type=click.Choice(AEROSOLS), default="continental", show_default=True)
@click.option("--ozone", type=float, default=0.33, show_default=True, help="Ozone column (cm-atm).")
@click.option("--cloud-cover", type=float, default=10.0, show_default=True, help="Opaque cloud cover (%).")
@click.option(
    "--cloud-heights",
    type=(float, float),
    default=(1.0, 10.0),
    show_default=True,
    help="Range of cloud-top heights (km), one height drawn per cloud.",
)
@click.option(
    "--cloud-model",
    type=click.Choice(CLOUD_MODELS),
    default="simple",
    show_default=True,
    help="simple: sharp edges, black shadows; physical: soft fractal edges, grey shadows, water/ice clouds.",
)
@click.option("--cirrus", type=float, default=0.0, show_default=True, help="Thin cirrus cover (%).")
@click.option("--snow", type=float, default=0.0, show_default=True, help="Snow cover (%), synthetic surface only.")
@click.option("--dem/--no-dem", default=False, show_default=True, help="Synthetic relief (illumination, pressure).")
@click.option("--elevation", type=float, default=0.0, show_default=True, help="Base ground elevation (km).")
@click.option(
    "--aux-data/--no-aux-data",
    default=False,
    show_default=True,
    help="Write the CAMS and ECMWF GRIB files (AUX_DATA) with the truth's atmosphere.",
)
@click.option(
    "--surface",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Real Level-2A product folder (B01.tif ... SCL.tif) giving the surface reflectance.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same seed, same bytes).")
@click.option("--nodata-edge", is_flag=True, help="Place the tile at the swath edge (no-data wedge).")
@click.option("--saturated", type=int, default=0, show_default=True, help="Number of saturated pixels.")
@click.option(
    "--defective",
    type=int,
    default=0,
    show_default=True,
    help="Pixels flagged defective in every band's quality mask (baseline >= 04.00).",
)
@click.option(
    "--lost-packets",
    type=int,
    default=0,
    show_default=True,
    help="Pixels flagged as lost MSI packets in every band's quality mask (baseline >= 04.00).",
)
@click.option(
    "--lut",
    "lut_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="LUT file (default: the packaged LUT).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing product of the same name.")
def synth(
    output_dir: Path,
    size: int,
    tile: str,
    date: str,
    spacecraft: str,
    baseline: str,
    aot: float,
    wv: float,
    aerosol: str,
    ozone: float,
    cloud_cover: float,
    cloud_heights: tuple[float, float],
    cloud_model: str,
    cirrus: float,
    snow: float,
    dem: bool,
    elevation: float,
    aux_data: bool,
    surface: str | None,
    seed: int,
    nodata_edge: bool,
    saturated: int,
    defective: int,
    lost_packets: int,
    lut_path: str | None,
    overwrite: bool,
) -> None:
    """Write a synthetic Sentinel-2 Level-1C SAFE and its truth into OUTPUT_DIR."""
    config = SynthConfig(
        size=size,
        tile=tile,
        date=date,
        spacecraft=spacecraft,
        baseline=baseline,
        aot=aot,
        wv=wv,
        aerosol=aerosol,
        ozone=ozone,
        cloud_cover=cloud_cover,
        cloud_heights=cloud_heights,
        cloud_model=cloud_model,
        cirrus=cirrus,
        snow=snow,
        dem=dem,
        elevation=elevation,
        aux_data=aux_data,
        surface=surface,
        seed=seed,
        nodata_edge=nodata_edge,
        saturated=saturated,
        lut=lut_path,
        defective=defective,
        lost_packets=lost_packets,
    )
    console = Console(stderr=True)
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as bar:

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(_STAGES.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)
            if not console.is_terminal:
                # Plain, greppable lines for logs.
                print(f"{_STAGES.get(stage, stage)} {done}/{total}", file=sys.stderr, flush=True)

        result = synthesize(config, output_dir, overwrite=overwrite, progress=progress)
    shares = ", ".join(f"{k}: {v:.1f}%" for k, v in result.class_percent.items() if v > 0)
    click.echo(f"truth: {result.truth}", err=True)
    click.echo(f"classes (20 m): {shares}; cloudy pixel percentage {result.cloudy_percent:.2f}", err=True)
    click.echo(f"time taken: {result.seconds:.1f} s", err=True)
    click.echo(str(result.product))

"""``sen2core lut``: build and describe the radiative-transfer LUT."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from sen2core.atmosphere.lut import default_lut_path, load_lut


@click.group()
def lut() -> None:
    """Build or describe the 6S radiative-transfer look-up table."""


@lut.command("build")
@click.option(
    "--grid",
    "grid_name",
    type=click.Choice(["full", "dev"]),
    default="full",
    show_default=True,
    help="Node set: 'full' is the shipped LUT (~1 h on 2 cores), 'dev' a coarse one for quick checks.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output .npz (default: the packaged LUT).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lut-build"),
    show_default=True,
    help="Checkpoint folder: rerun the same command to resume.",
)
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True, help="Parallel 6S runs.")
@click.option(
    "--srf",
    "srf_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="ESA spectral response table as CSV (default: super-Gaussian responses).",
)
def build_cmd(grid_name: str, output: Path | None, workdir: Path, workers: int, srf_csv: Path | None) -> None:
    """Run 6S over the LUT grid (resumable) and write the LUT."""
    from sen2core.atmosphere.build import build
    from sen2core.atmosphere.grid import GRIDS

    out = output or default_lut_path()
    command = "sen2core lut build " + " ".join(shlex.quote(a) for a in sys.argv[3:])
    console = Console(stderr=True)
    with Progress(TextColumn("6S runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, disable=not console.is_terminal) as bar:  # fmt: skip
        task = bar.add_task("runs", total=None)
        last = [-1]

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if not console.is_terminal and (done - last[0] >= max(total // 100, 1) or done == total):
                # Plain, greppable lines for logs of background builds.
                print(f"6S runs {done}/{total}", file=sys.stderr, flush=True)
                last[0] = done

        ident, seconds = build(GRIDS[grid_name], out, workdir, workers, srf_csv, command, progress)
    click.echo(f"LUT {ident} written to {out} ({seconds:.0f} s in this call)")


@lut.command("info")
@click.option(
    "--lut",
    "lut_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="LUT file (default: the packaged LUT).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_cmd(lut_path: Path | None, as_json: bool) -> None:
    """Print the LUT's axes, ranges, id and provenance."""
    info = load_lut(lut_path).info()
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    table = Table(title=f"LUT {info['id']}", show_header=False)
    for key, value in info.items():
        if key == "axes":
            for axis, nodes in value.items():
                table.add_row(f"axis {axis}", ", ".join(f"{v:g}" for v in nodes))
        elif key != "ranges":
            table.add_row(key, str(value))
    Console().print(table)

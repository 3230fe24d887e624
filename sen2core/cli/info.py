"""``sen2core info PRODUCT [--json]``: what a product is, as sen2core reads it.

The JSON keys are documented in ``docs/info-json.md``; they are snake_case and stable.
Values are the ones the processor will use: metadata values where present, otherwise
the documented fallback (listed under ``warnings``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import warnings as _warnings
from typing import Any

import click

from sen2core.errors import MetadataWarning
from sen2core.io.read.metadata import BAND_IDS
from sen2core.io.read.opening import open_product
from sen2core.io.read.product import Product

__all__ = ["check_bands", "info", "product_summary"]


def _num(value: float | int | None) -> float | int | None:
    """JSON-safe number: NaN and infinities become null."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _iso(value: _dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(_dt.UTC).isoformat().replace("+00:00", "Z")


def product_summary(product: Product) -> dict[str, Any]:
    """The ``sen2core info --json`` object of a product.

    Parameters
    ----------
    product
        An opened product.

    Returns
    -------
    dict
        JSON-serialisable mapping with the keys of ``docs/info-json.md``.
    """
    rad = product.radiometry
    bands = BAND_IDS
    grids: dict[str, Any] = {}
    if product.epsg is not None:
        for res in product.resolutions:
            gb = product.geobox(res)
            grids[str(res)] = {
                "width": gb.width,
                "height": gb.height,
                "bounds": list(gb.bounds),
                "transform": [float(v) for v in tuple(gb.transform)[:6]],
            }
    sun = product.mean_sun_angles()
    view_zen: dict[str, float | int | None] = {}
    view_az: dict[str, float | int | None] = {}
    if product.tile_metadata is not None or product.epsg is not None:
        for b in bands:
            m = product.mean_view_angles(b)
            if m is not None:
                view_zen[b] = _num(m.zenith)
                view_az[b] = _num(m.azimuth)
    tm = product.tile_metadata
    is_l1c = product.level == "L1C"
    offsets = {b: _num(rad.add_offset[b]) for b in bands if b in rad.add_offset}
    return {
        "product_id": product.product_id,
        "level": product.level,
        "product_type": product.product_type,
        "layout": product.layout,
        "href": product.href,
        "spacecraft": product.spacecraft,
        "sensing_time": _iso(product.sensing_time),
        "processing_baseline": product.processing_baseline,
        "tile_id": product.tile_id,
        "epsg": product.epsg,
        "grids": grids,
        "quantification_value": _num(rad.quantification_value) if is_l1c else None,
        "boa_quantification_value": None if is_l1c else _num(rad.quantification_value),
        "aot_quantification_value": None if is_l1c else _num(rad.aot_quantification_value),
        "wvp_quantification_value": None if is_l1c else _num(rad.wvp_quantification_value),
        "radio_add_offset": offsets if is_l1c else None,
        "boa_add_offset": None if is_l1c else offsets,
        "u": _num(rad.u),
        "solar_irradiance": {b: _num(rad.solar_irradiance[b]) for b in bands if b in rad.solar_irradiance},
        "mean_sun_zenith": _num(sun.zenith) if sun else None,
        "mean_sun_azimuth": _num(sun.azimuth) if sun else None,
        "mean_view_zenith": view_zen,
        "mean_view_azimuth": view_az,
        "sun_angle_grid": tm is not None and tm.sun_grid is not None,
        "view_angle_grid_bands": [b for b in bands if tm is not None and b in tm.view_grids],
        "bands": list(product.bands),
        "band_resolution": {b: product.band_resolution(b) for b in bands},
        "warnings": list(product.warnings),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _print_human(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    head = Table(title=f"{summary['product_id']} ({summary['level']})", show_header=False, box=None)
    head.add_column("key", style="bold")
    head.add_column("value", overflow="fold")
    for key in (
        "layout",
        "href",
        "product_type",
        "spacecraft",
        "sensing_time",
        "processing_baseline",
        "tile_id",
        "epsg",
        "quantification_value",
        "boa_quantification_value",
        "aot_quantification_value",
        "wvp_quantification_value",
        "u",
        "mean_sun_zenith",
        "mean_sun_azimuth",
        "sun_angle_grid",
    ):
        if summary[key] is not None:
            head.add_row(key, _fmt(summary[key]))
    console.print(head)

    if summary["grids"]:
        grid_table = Table(title="Pixel grids")
        for col in ("resolution (m)", "width", "height", "left", "bottom", "right", "top"):
            grid_table.add_column(col, justify="right")
        for res, g in summary["grids"].items():
            grid_table.add_row(res, str(g["width"]), str(g["height"]), *(f"{v:.1f}" for v in g["bounds"]))
        console.print(grid_table)

    offsets = summary["radio_add_offset"] if summary["radio_add_offset"] is not None else summary["boa_add_offset"]
    offset_label = "RADIO_ADD_OFFSET" if summary["radio_add_offset"] is not None else "BOA_ADD_OFFSET"
    band_table = Table(title=f"Bands (offset: {offset_label}; E0: W m-2 um-1; mean view angles: deg)")
    for col in ("band", "present", "res (m)", "offset", "E0", "view zen", "view az"):
        band_table.add_column(col, justify="right")
    for b in summary["band_resolution"]:
        band_table.add_row(
            b,
            "yes" if b in summary["bands"] else "no",
            _fmt(summary["band_resolution"].get(b)),
            _fmt(offsets.get(b)),
            _fmt(summary["solar_irradiance"].get(b)),
            _fmt(summary["mean_view_zenith"].get(b)),
            _fmt(summary["mean_view_azimuth"].get(b)),
        )
    console.print(band_table)
    if summary["warnings"]:
        console.print("[bold yellow]Warnings[/]")
        for w in summary["warnings"]:
            console.print(f"  - {w}", markup=False)


def check_bands(product: Product) -> None:
    """Open and fully decode every band raster the product should have.

    Streams chunk by chunk (memory stays at a few chunks), so it costs one full read
    of the product.

    Raises
    ------
    BandReadError
        For the first band that is missing, cannot be opened or cannot be decoded.
    """
    expected = BAND_IDS if product.level == "L1C" else tuple(b for b in BAND_IDS if b != "B10")
    for band in expected:
        product.read_dn(band).max().compute()


@click.command("info")
@click.argument("product", type=str)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (keys in docs/info-json.md).")
@click.option("--tile", default=None, help="MGRS tile to use in an old multi-granule product.")
@click.option("--check", is_flag=True, help="Also open and decode every band raster (reads all pixels).")
def info(product: str, as_json: bool, tile: str | None, check: bool) -> None:
    """Show what PRODUCT is: level, baseline, grids, radiometry, angles, bands, warnings.

    PRODUCT is a SAFE directory, a .SAFE.zip archive, an MTD_MSIL1C.xml / MTD_MSIL2A.xml
    file, or an AWS tile folder with tileInfo.json.
    """
    with _warnings.catch_warnings():
        # The warnings are part of the output below; do not print them twice on stderr.
        _warnings.simplefilter("ignore", MetadataWarning)
        opened = open_product(product, tile=tile)
        summary = product_summary(opened)
    if check:
        check_bands(opened)
    if as_json:
        click.echo(json.dumps(summary, indent=2, allow_nan=False))
    else:
        _print_human(summary)

"""Quicklook PNG of a Level-2A product: true colour beside the scene classification, with a legend.

Both panels are read decimated from the COGs' internal overviews, so a full tile costs
a few hundred kilopixels of reading, not 120 megapixels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from rasterio.enums import Resampling

from sen2core.errors import OutputError
from sen2core.io.failures import gdal_message, write_failure
from sen2core.kernels.scene_class.legend import SCL_BY_VALUE

WIDTH = 1000
"""Default width of the quicklook in pixels."""
_MARGIN = 10
_TITLE = 24
_LEGEND = 220
_SWATCH = 14
_ROW = 20
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
_EMPTY = (210, 210, 210)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _font(size: int) -> Font:
    # Pillow >= 10.1 ships a scalable default font when built with FreeType; older or
    # FreeType-less builds give the fixed bitmap font, which is still legible.
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - depends on the Pillow build
        return ImageFont.load_default()


def _fit(shape: tuple[int, int], box: int) -> tuple[int, int]:
    """(rows, cols) of an image of ``shape`` scaled to fit a ``box`` x ``box`` square."""
    rows, cols = shape
    scale = box / max(rows, cols)
    return max(1, round(rows * scale)), max(1, round(cols * scale))


def read_decimated(path: str | os.PathLike[str], box: int, resampling: Resampling) -> NDArray[np.uint8]:
    """Read all bands of ``path`` at about ``box`` pixels on the long side (overviews do the work).

    Returns ``(bands, rows, cols)``.

    Raises
    ------
    OutputError
        The raster cannot be read.
    """
    failure: OutputError | None = None
    try:
        with rasterio.open(path) as ds:
            rows, cols = _fit((ds.height, ds.width), box)
            data = ds.read(out_shape=(ds.count, rows, cols), resampling=resampling)
    except rasterio.errors.RasterioError as exc:
        failure = OutputError(f"{path}: cannot read for the quicklook ({gdal_message(exc)})")
    if failure is not None:
        raise failure  # outside the except block: no unpicklable GDAL chain (see sen2core.errors)
    return np.asarray(data)


def _scl_colours(path: str | os.PathLike[str]) -> dict[int, tuple[int, int, int]]:
    colours = {v: c.rgb for v, c in SCL_BY_VALUE.items()}
    try:
        with rasterio.open(path) as ds:
            # The product's own colour table wins (what a GIS will show), the legend fills gaps.
            colours.update({int(k): tuple(v[:3]) for k, v in ds.colormap(1).items() if int(k) in SCL_BY_VALUE})  # type: ignore[misc]
    except ValueError:
        pass  # no colour table in the file
    return colours


def _panel_from_tci(tci: NDArray[np.uint8]) -> Image.Image:
    rgb = np.moveaxis(tci[:3], 0, -1)
    return Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")


def _panel_from_scl(scl: NDArray[np.uint8], colours: Mapping[int, tuple[int, int, int]]) -> Image.Image:
    lut = np.zeros((256, 3), dtype=np.uint8)
    for value, rgb in colours.items():
        lut[value] = rgb
    return Image.fromarray(lut[scl], mode="RGB")


def write_quicklook(
    out: str | os.PathLike[str],
    tci: str | os.PathLike[str] | None,
    scl: str | os.PathLike[str] | None,
    width: int = WIDTH,
    title: str | None = None,
) -> Path:
    """Write a PNG: true colour (left), SCL in Sen2Cor colours (right) and the legend of the classes present.

    Parameters
    ----------
    out
        PNG path.
    tci
        True-colour COG (3 bands uint8), or None (scene classification only run: grey panel).
    scl
        Scene classification COG, or None (grey panel, no legend).
    width
        Width of the PNG in pixels (the height follows from the panels).
    title
        Text under the panels (the product id, typically).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    OutputError
        A raster cannot be read or the PNG cannot be written.
    """
    panel = max(32, (width - 4 * _MARGIN - _LEGEND) // 2)
    footer = _ROW if title else 0
    height = _MARGIN + _TITLE + panel + footer + _MARGIN
    img = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    font, small = _font(15), _font(13)
    top = _MARGIN + _TITLE
    x_tci, x_scl, x_legend = _MARGIN, 2 * _MARGIN + panel, 3 * _MARGIN + 2 * panel

    def paste(image: Image.Image | None, x: int, label: str) -> None:
        draw.text((x, _MARGIN), label, fill=_TEXT, font=font)
        if image is None:
            draw.rectangle((x, top, x + panel - 1, top + panel - 1), fill=_EMPTY)
            draw.text((x + 8, top + 8), "not produced", fill=_TEXT, font=small)
            return
        img.paste(image, (x + (panel - image.width) // 2, top + (panel - image.height) // 2))

    paste(None if tci is None else _panel_from_tci(read_decimated(tci, panel, Resampling.average)), x_tci,
          "True colour (TCI)")  # fmt: skip
    present: list[tuple[int, float]] = []
    colours: dict[int, tuple[int, int, int]] = {}
    scl_img = None
    if scl is not None:
        # Nearest on the SCL's mode overviews: class codes must not be averaged.
        codes = read_decimated(scl, panel, Resampling.nearest)[0]
        colours = _scl_colours(scl)
        scl_img = _panel_from_scl(codes, colours)
        values, counts = np.unique(codes, return_counts=True)
        present = [(int(v), 100.0 * c / codes.size) for v, c in zip(values, counts, strict=True)]
    paste(scl_img, x_scl, "Scene classification (SCL)")

    y = top
    for value, pct in present:
        cls = SCL_BY_VALUE.get(value)
        rgb = colours.get(value, (0, 0, 0))
        draw.rectangle((x_legend, y + 2, x_legend + _SWATCH, y + 2 + _SWATCH), fill=rgb, outline=(90, 90, 90))
        name = cls.description if cls else f"class {value}"
        draw.text((x_legend + _SWATCH + 6, y), f"{value} {name}  {pct:.1f} %", fill=_TEXT, font=small)
        y += _ROW
        if y > top + panel - _ROW:
            break
    if title:
        draw.text((_MARGIN, top + panel + 4), title, fill=_TEXT, font=small)
    out = Path(out)
    try:
        img.save(out, format="PNG", optimize=True)
    except OSError as exc:
        raise write_failure(exc, out, "cannot write the quicklook") from exc
    return out


__all__ = ["WIDTH", "read_decimated", "write_quicklook"]

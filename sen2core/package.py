"""Packaging: the rasters and metadata of one Level-2A product, written atomically in one layout.

The pipeline hands over every raster the run can produce as lazy dask arrays under
a *logical name* (``B02_10m``, ``SCL_20m``, ``AOT_60m``, ``TCI_10m`` ...; see
:func:`logical_name`). A layout chooses which of them to write and where:

``cog``
    Cloud-native: one COG per raster at the finest resolution the run made of it,
    ``{logical}.tif``, plus metadata; the STAC item (written last) marks it done.
``safe``
    Sen2Cor's L2A SAFE (JPEG 2000 in ``IMG_DATA/R10m|R20m|R60m``, ``QI_DATA``,
    ``MTD_MSIL2A.xml`` last).

Everything is built in a hidden sibling folder and renamed into place once
complete, so a crash never leaves anything that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da

from sen2core.errors import ConfigurationError
from sen2core.io.product import Product
from sen2core.io.write import RasterSpec, cog_tasks

FORMATS = ("cog", "safe")
#: Metadata summary of the run (JSON), written before the STAC item.
SUMMARY_NAME = "L2A_SUMMARY.json"
RESOLUTIONS = (10, 20, 60)


def logical_name(kind: str, res: int) -> str:
    """``{kind}_{res}m``: ``kind`` is a band (``B8A``) or a layer (``SCL``, ``AOT``, ``MSK_CLDPRB``, ``TCI``)."""
    return f"{kind}_{res}m"


def split_name(name: str) -> tuple[str, int]:
    """Inverse of :func:`logical_name`."""
    kind, _, res = name.rpartition("_")
    return kind, int(res.rstrip("m"))


@dataclass(frozen=True)
class ProductRasters:
    """Everything one run can write: lazy rasters by logical name, plus what packaging needs to know."""

    product: Product
    """The Level-1C product (metadata source)."""
    l2a_id: str
    rasters: Mapping[str, tuple[da.Array, RasterSpec]]
    """Logical name -> (lazy array, raster description)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """Run metadata: ids, LUT id, class percentages, atmosphere summary, configuration, seconds per stage."""
    resolution: int | None = None
    """Run resolution (None = all, as Sen2Cor's default run)."""


def finest(rasters: Mapping[str, Any]) -> dict[str, str]:
    """For each kind, the logical name at the finest resolution present."""
    best: dict[str, tuple[int, str]] = {}
    for name in rasters:
        kind, res = split_name(name)
        if kind not in best or res < best[kind][0]:
            best[kind] = (res, name)
    return {kind: name for kind, (_, name) in best.items()}


#: Native resolution of each MSI band (B10 is never an output, as in Sen2Cor).
NATIVE_RESOLUTION = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20, "B09": 60,
    "B11": 20, "B12": 20,
}  # fmt: skip


def cog_selection(rasters: Mapping[str, Any], resolution: int | None = None) -> dict[str, str]:
    """COG layout: file name -> logical name, each kind once.

    With a run resolution, everything at that resolution; otherwise each band at its
    native resolution (when the run made it) and every other layer at its finest.
    """
    chosen = {}
    for kind, name in finest(rasters).items():
        if resolution is not None:
            name = logical_name(kind, resolution)
        elif logical_name(kind, NATIVE_RESOLUTION.get(kind, 0)) in rasters:
            name = logical_name(kind, NATIVE_RESOLUTION[kind])
        if name in rasters:
            chosen[f"{name}.tif"] = name
    return dict(sorted(chosen.items()))


def is_done(folder: str | os.PathLike[str]) -> bool:
    """A product is done when the file its layout writes last exists (a crash never leaves it)."""
    folder = Path(folder)
    if folder.suffix == ".SAFE":
        return (folder / "MTD_MSIL2A.xml").is_file()
    return (folder / SUMMARY_NAME).is_file()


def temporary_sibling(final: Path) -> Path:
    """A fresh hidden folder next to ``final`` (same filesystem, so the final rename is atomic)."""
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    return tmp


def publish_folder(tmp: Path, final: Path) -> None:
    """Replace ``final`` by the finished ``tmp`` (a previous product there is removed first)."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def write_cog(product: ProductRasters, folder: Path) -> list[str]:
    """Write the COG layout into ``folder`` (an empty temporary folder); return the file names."""
    selection = cog_selection(product.rasters, product.resolution)
    outputs = {fname: product.rasters[name] for fname, name in selection.items()}
    dask.compute(*cog_tasks(outputs, folder))
    (folder / SUMMARY_NAME).write_text(json.dumps(product.summary, indent=1, default=float))
    return sorted(p.name for p in folder.iterdir())


def write_product(product: ProductRasters, final: Path, fmt: str = "cog") -> list[str]:
    """Write ``product`` in layout ``fmt`` to ``final`` atomically; return the file names (relative).

    Raises
    ------
    ConfigurationError
        Unknown format.
    """
    if fmt not in FORMATS:
        raise ConfigurationError(f"output format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    tmp = temporary_sibling(final)
    try:
        if fmt == "cog":
            files = write_cog(product, tmp)
        else:
            from sen2core.io.safe_l2a import write_safe

            files = write_safe(product, tmp)
        publish_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


__all__ = ["FORMATS", "ProductRasters", "cog_selection", "is_done", "logical_name", "split_name", "write_product"]

"""The rasters of one Level-2A run as the writers receive them, under their logical names.

The pipeline hands over every raster the run can produce as lazy dask arrays under a
*logical name* (``B02_10m``, ``SCL_20m``, ``AOT_60m``, ``TCI_10m`` ...; see
:func:`logical_name`). Each layout (:mod:`sen2core.io.stac.cog_product`,
:mod:`sen2core.io.write.safe`) chooses which of them to write and where.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da

from sen2core.io.read.product import Product
from sen2core.io.write.raster import RasterSpec, collect_negative_fractions

__all__ = [
    "NATIVE_RESOLUTION",
    "ProductRasters",
    "finest",
    "logical_name",
    "record_negative_fractions",
    "split_name",
    "store_group",
]


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


def record_negative_fractions(product: ProductRasters, kinds: Mapping[str, str], folder: Path) -> None:
    """Put the per-band percentage of negative BOA (counted while writing) into the run summary."""
    found = collect_negative_fractions(folder)
    if found and isinstance(product.summary.get("atmosphere"), dict):
        per_band = {kinds[name]: pct for name, pct in found.items() if name in kinds}
        product.summary["atmosphere"]["NEGATIVE_BOA_PERCENTAGE"] = dict(sorted(per_band.items()))


def store_group(spec: RasterSpec) -> bool:
    """Which store an output is computed in: the 10 m rasters apart from the others.

    The 10 m rasters are corrected from the 10 m inputs; the others come from the working
    grid (the 60 m ones aggregate the 20 m results, so they share that correction and stay
    with it). Two stores hold about half as much in flight as one.
    """
    return bool(spec.geobox.resolution < 15)

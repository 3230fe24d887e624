"""Reading Level-1C and Level-2A products: metadata first, pixels lazily.

The public entry points are :func:`open_product` and :func:`open_l1c`; the
:class:`Product` they return holds the parsed metadata and builds lazy band arrays.
"""

from __future__ import annotations

from sen2core.io.read.metadata import (
    BAND_IDS,
    AngleGrid,
    GeoBox,
    ManifestMetadata,
    MeanAngles,
    Radiometry,
    ResolutionGrid,
    TileInfo,
    TileMetadata,
    UserProductMetadata,
)
from sen2core.io.read.model import ANGLE_FALLBACK_WARNING, DEFAULT_CHUNK_M, BandFile, ProductModel
from sen2core.io.read.opening import open_l1c, open_product
from sen2core.io.read.product import Product

__all__ = [
    "ANGLE_FALLBACK_WARNING",
    "BAND_IDS",
    "DEFAULT_CHUNK_M",
    "AngleGrid",
    "BandFile",
    "GeoBox",
    "ManifestMetadata",
    "MeanAngles",
    "Product",
    "ProductModel",
    "Radiometry",
    "ResolutionGrid",
    "TileInfo",
    "TileMetadata",
    "UserProductMetadata",
    "open_l1c",
    "open_product",
]

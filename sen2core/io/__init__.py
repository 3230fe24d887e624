"""Input/output: metadata parsers, product opening and lazy band reading.

This package is the only part of sen2core that touches files, XML, rasterio or GDAL.
"""

from __future__ import annotations

from sen2core.io.metadata import (
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
from sen2core.io.product import ANGLE_FALLBACK_WARNING, DEFAULT_CHUNK_M, BandFile, Product, open_l1c, open_product

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
    "Radiometry",
    "ResolutionGrid",
    "TileInfo",
    "TileMetadata",
    "UserProductMetadata",
    "open_l1c",
    "open_product",
]

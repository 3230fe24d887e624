"""Parser for the AWS ``tileInfo.json`` of ``sentinel-s2-l1c`` / ``sentinel-s2-l2a`` tile folders."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sen2core.errors import MetadataError
from sen2core.io.read.metadata import TileInfo
from sen2core.io.read.mtd_tile import parse_epsg
from sen2core.io.xmlutil import parse_time

__all__ = ["parse_tile_info"]


def _crs_epsg(geom: Any) -> int | None:
    if not isinstance(geom, Mapping):
        return None
    crs = geom.get("crs")
    if isinstance(crs, Mapping):
        props = crs.get("properties")
        if isinstance(props, Mapping):
            return parse_epsg(str(props.get("name", "")))
    return None


def _bounds(geom: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(geom, Mapping):
        return None
    try:
        ring = geom["coordinates"][0]
        xs = [float(p[0]) for p in ring]
        ys = [float(p[1]) for p in ring]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if not xs:
        return None
    return (min(xs), min(ys), max(xs), max(ys))


def parse_tile_info(data: bytes, *, product: str, name: str = "tileInfo.json") -> TileInfo:
    """Parse ``tileInfo.json``.

    Parameters
    ----------
    data
        File content.
    product
        Product reference for messages.
    name
        File name for messages.

    Returns
    -------
    TileInfo

    Raises
    ------
    MetadataError
        If the file is not a JSON object.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MetadataError(product, f"{name}: malformed or truncated JSON ({exc})") from exc
    if not isinstance(doc, Mapping):
        raise MetadataError(product, f"{name}: expected a JSON object")

    def text(key: str) -> str | None:
        value = doc.get(key)
        return str(value) if value not in (None, "") else None

    zone = doc.get("utmZone")
    datastrip = doc.get("datastrip")
    origin = None
    tile_origin = doc.get("tileOrigin")
    if isinstance(tile_origin, Mapping):
        try:
            coords = tile_origin["coordinates"]
            origin = (float(coords[0]), float(coords[1]))
        except (KeyError, IndexError, TypeError, ValueError):
            origin = None
    coverage = doc.get("dataCoveragePercentage")
    return TileInfo(
        source=name,
        path=text("path"),
        timestamp=parse_time(text("timestamp"), product=product, what=f"{name} timestamp"),
        utm_zone=int(zone) if isinstance(zone, (int, float, str)) and str(zone).isdigit() else None,
        latitude_band=text("latitudeBand"),
        grid_square=text("gridSquare"),
        datastrip_id=str(datastrip.get("id")) if isinstance(datastrip, Mapping) and datastrip.get("id") else None,
        product_name=text("productName"),
        epsg=_crs_epsg(doc.get("tileGeometry")) or _crs_epsg(tile_origin),
        origin=origin,
        bounds=_bounds(doc.get("tileGeometry")),
        data_coverage_percentage=float(coverage) if isinstance(coverage, (int, float)) else None,
    )

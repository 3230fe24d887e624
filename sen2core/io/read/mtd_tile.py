"""Parser for the tile metadata ``MTD_TL.xml`` (also AWS ``metadata.xml``).

Reads the geocoding per resolution (``Tile_Geocoding``), the 5 km sun angle grid,
the per-band per-detector viewing incidence angle grids and the mean angles. Grids
that are empty, ragged, or have a non-positive step (seen in products of tiles with
no data) are dropped with a warning.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element

import numpy as np

from sen2core.errors import MetadataError
from sen2core.io.read.metadata import (
    AngleGrid,
    Level,
    MeanAngles,
    ResolutionGrid,
    TileMetadata,
    band_from_index,
)
from sen2core.io.xmlutil import find_text, parse_float, parse_time, parse_xml

__all__ = ["parse_epsg", "parse_tile"]

_ROOTS: dict[str, Level] = {"Level-1C_Tile_ID": "L1C", "Level-2A_Tile_ID": "L2A"}
_EPSG_RE = re.compile(r"EPSG\S*?(\d{4,5})\s*$", re.IGNORECASE)


def parse_epsg(text: str | None) -> int | None:
    """EPSG code from ``"EPSG:32634"`` or ``"urn:ogc:def:crs:EPSG:8.8.1:32619"``; None if absent."""
    if not text:
        return None
    m = _EPSG_RE.search(text.strip())
    return int(m.group(1)) if m else None


def _values(el: Element | None) -> np.ndarray | None:
    """A ``Values_List`` as a 2-D float array, or None if empty or ragged."""
    if el is None:
        return None
    rows = [(v.text or "").split() for v in el.iter("VALUES")]
    rows = [r for r in rows if r]
    if not rows or len({len(r) for r in rows}) != 1:
        return None
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        return None


def _angle_grid(el: Element, *, product: str, what: str, warnings: list[str]) -> AngleGrid | None:
    zen_el = el.find("Zenith")
    az_el = el.find("Azimuth")
    if zen_el is None or az_el is None:
        warnings.append(f"{what}: no Zenith/Azimuth element; grid ignored")
        return None
    zen = _values(zen_el.find("Values_List"))
    az = _values(az_el.find("Values_List"))
    if zen is None or az is None or zen.shape != az.shape:
        warnings.append(f"{what}: empty or malformed Values_List; grid ignored")
        return None
    row_step = parse_float(find_text(zen_el, "ROW_STEP"), product=product, what=f"{what} ROW_STEP")
    col_step = parse_float(find_text(zen_el, "COL_STEP"), product=product, what=f"{what} COL_STEP")
    if not row_step or not col_step or row_step <= 0 or col_step <= 0:
        warnings.append(f"{what}: grid step is missing or not positive; grid ignored")
        return None
    if not np.isfinite(zen).any():
        warnings.append(f"{what}: all values are NaN; grid ignored")
        return None
    return AngleGrid(zenith=zen, azimuth=az, row_step=row_step, col_step=col_step)


def _mean(el: Element | None, *, product: str, what: str) -> MeanAngles | None:
    if el is None:
        return None
    zen = parse_float(find_text(el, "ZENITH_ANGLE"), product=product, what=f"{what} ZENITH_ANGLE")
    az = parse_float(find_text(el, "AZIMUTH_ANGLE"), product=product, what=f"{what} AZIMUTH_ANGLE")
    if zen is None or az is None:
        return None
    return MeanAngles(zenith=zen, azimuth=az)


def _geocoding(
    geo: Element | None, *, product: str, name: str, warnings: list[str]
) -> tuple[int | None, str | None, dict[int, ResolutionGrid]]:
    grids: dict[int, ResolutionGrid] = {}
    if geo is None:
        warnings.append(f"{name}: no Tile_Geocoding element")
        return None, None, grids
    epsg = parse_epsg(find_text(geo, "HORIZONTAL_CS_CODE"))
    if epsg is None:
        warnings.append(f"{name}: no usable HORIZONTAL_CS_CODE")
    sizes: dict[int, tuple[int, int]] = {}
    for size in geo.iter("Size"):
        res = parse_float(size.get("resolution"), product=product, what="Size/@resolution")
        nrows = parse_float(find_text(size, "NROWS"), product=product, what="NROWS")
        ncols = parse_float(find_text(size, "NCOLS"), product=product, what="NCOLS")
        if res is not None and nrows is not None and ncols is not None:
            sizes[int(res)] = (int(nrows), int(ncols))
    for pos in geo.iter("Geoposition"):
        res_f = parse_float(pos.get("resolution"), product=product, what="Geoposition/@resolution")
        if res_f is None or int(res_f) not in sizes:
            continue
        res = int(res_f)
        vals = [parse_float(find_text(pos, k), product=product, what=k) for k in ("ULX", "ULY", "XDIM", "YDIM")]
        ulx, uly, xdim, ydim = vals
        if ulx is None or uly is None:
            continue
        nrows, ncols = sizes[res]
        grids[res] = ResolutionGrid(
            resolution=res,
            nrows=nrows,
            ncols=ncols,
            ulx=ulx,
            uly=uly,
            xdim=xdim if xdim is not None else float(res),
            ydim=ydim if ydim is not None else -float(res),
        )
    if not grids:
        warnings.append(f"{name}: Tile_Geocoding has no complete Size/Geoposition pair")
    return epsg, find_text(geo, "HORIZONTAL_CS_NAME"), grids


def parse_tile(data: bytes, *, product: str, name: str = "MTD_TL.xml") -> TileMetadata:
    """Parse ``MTD_TL.xml``.

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
    TileMetadata
        Missing optional parts (angles, mean angles, geocoding) are None / empty and
        listed in ``warnings``.

    Raises
    ------
    MetadataError
        If the XML is unsafe, malformed or truncated, or not Sentinel-2 tile metadata.
    """
    root = parse_xml(data, product=product, name=name)
    level = _ROOTS.get(root.tag)
    if level is None:
        raise MetadataError(product, f"{name}: not Sentinel-2 tile metadata (root element <{root.tag}>)")
    warnings: list[str] = []
    gi = root.find("General_Info")
    sensing = parse_time(find_text(gi, "SENSING_TIME"), product=product, what=f"{name} SENSING_TIME")
    if sensing is None:
        warnings.append(f"{name}: no SENSING_TIME")
    geo_info = root.find("Geometric_Info")
    epsg, cs_name, grids = _geocoding(
        geo_info.find("Tile_Geocoding") if geo_info is not None else None,
        product=product,
        name=name,
        warnings=warnings,
    )

    angles = geo_info.find("Tile_Angles") if geo_info is not None else None
    sun_grid: AngleGrid | None = None
    mean_sun: MeanAngles | None = None
    view: dict[str, list[tuple[int, AngleGrid]]] = {}
    mean_view: dict[str, MeanAngles] = {}
    if angles is None:
        warnings.append(f"{name}: no Tile_Angles element")
    else:
        sun_el = angles.find("Sun_Angles_Grid")
        if sun_el is not None:
            sun_grid = _angle_grid(sun_el, product=product, what=f"{name} Sun_Angles_Grid", warnings=warnings)
        else:
            warnings.append(f"{name}: no Sun_Angles_Grid")
        mean_sun = _mean(angles.find("Mean_Sun_Angle"), product=product, what="Mean_Sun_Angle")
        for vg in angles.iter("Viewing_Incidence_Angles_Grids"):
            try:
                band = band_from_index(vg.get("bandId", ""))
                detector = int(vg.get("detectorId", ""))
            except ValueError:
                warnings.append(f"{name}: Viewing_Incidence_Angles_Grids with bad bandId/detectorId ignored")
                continue
            grid = _angle_grid(
                vg,
                product=product,
                what=f"{name} viewing grid {band} detector {detector}",
                warnings=warnings,
            )
            if grid is not None:
                view.setdefault(band, []).append((detector, grid))
        for mv in angles.iter("Mean_Viewing_Incidence_Angle"):
            try:
                band = band_from_index(mv.get("bandId", ""))
            except ValueError:
                continue
            m = _mean(mv, product=product, what=f"Mean_Viewing_Incidence_Angle {band}")
            if m is not None:
                mean_view[band] = m
    if mean_sun is None:
        warnings.append(f"{name}: no Mean_Sun_Angle")
    elif not mean_sun.finite:
        warnings.append(f"{name}: Mean_Sun_Angle is NaN")

    return TileMetadata(
        source=name,
        level=level,
        tile_id=find_text(gi, "TILE_ID"),
        datastrip_id=find_text(gi, "DATASTRIP_ID"),
        l1c_tile_id=find_text(gi, "L1C_TILE_ID"),
        sensing_time=sensing,
        epsg=epsg,
        cs_name=cs_name,
        grids=grids,
        sun_grid=sun_grid,
        view_grids={b: tuple(sorted(v, key=lambda t: t[0])) for b, v in view.items()},
        mean_sun=mean_sun,
        mean_view=mean_view,
        warnings=tuple(warnings),
    )

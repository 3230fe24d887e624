"""Level-2A bands as physical values: STAC items loaded with odc-stac, then scaled as the items say.

odc-stac returns the stored digital numbers (``uint16``; BOA ``DN = rho * 10000 + 1000``).
:func:`load` applies each asset's ``raster:bands`` ``scale`` and ``offset`` and turns its
``nodata`` into NaN, so that the reflectance comes out as reflectance. odc-stac is an
optional dependency (``pip install sen2core[stac]``); it is imported when :func:`load` runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pystac

from sen2core.errors import ConfigurationError, InputProductError

__all__ = ["load", "raster_scaling"]


def raster_scaling(items: Sequence[pystac.Item], band: str) -> tuple[float, float, float | None]:
    """``(scale, offset, nodata)`` of asset ``band`` in ``raster:bands`` (scale 1, offset 0 when absent).

    Raises
    ------
    InputProductError
        If the items do not have that asset, or disagree on its scaling.
    """
    found: set[tuple[float, float, float | None]] = set()
    for item in items:
        asset = item.assets.get(band)
        if asset is None:
            raise InputProductError(item.id, f"no asset {band!r} (assets: {', '.join(sorted(item.assets))})")
        rb = (asset.extra_fields.get("raster:bands") or [{}])[0]
        nodata = rb.get("nodata")
        found.add((float(rb.get("scale", 1.0)), float(rb.get("offset", 0.0)),
                   None if nodata is None else float(nodata)))  # fmt: skip
    if len(found) != 1:
        raise InputProductError(band, f"the items scale asset {band} in different ways: {sorted(found, key=str)}")
    return found.pop()


def load(items: pystac.Item | str | os.PathLike[str] | Iterable[pystac.Item | str | os.PathLike[str]],
         bands: Sequence[str], *, dtype: str = "float32", **odc_kwargs: Any) -> Any:  # fmt: skip
    """Load bands of sen2core STAC items as an :class:`xarray.Dataset` of physical values.

    Parameters
    ----------
    items
        STAC items (pystac, or paths / URLs of item JSON files).
    bands
        Asset keys (``"B04"``, ``"SCL"``, ``"AOT"``...).
    dtype
        Floating type of the scaled values.
    **odc_kwargs
        Passed to :func:`odc.stac.load` (``resolution``, ``crs``, ``bbox``, ``chunks``...).

    Returns
    -------
    xarray.Dataset
        One variable per band, ``value = DN * scale + offset`` and NaN where the DN is the
        asset's ``nodata`` (BOA reflectance, AOT, WVP in cm; class codes stay as they are,
        with NaN for no data).

    Raises
    ------
    ConfigurationError
        If odc-stac is not installed, or ``dtype`` is not a floating type.
    InputProductError
        If an item lacks a band, or the items scale it differently.
    """
    try:
        import odc.stac
    except ImportError as exc:
        raise ConfigurationError("sen2core.load needs odc-stac: pip install 'sen2core[stac]'") from exc
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ConfigurationError(f"dtype must be a floating type, not {dtype!r}")
    if isinstance(items, (pystac.Item, str, os.PathLike)):
        items = [items]
    loaded = [i if isinstance(i, pystac.Item) else pystac.Item.from_file(os.fspath(i)) for i in items]
    if not loaded:
        raise ConfigurationError("no STAC item to load")
    ds = odc.stac.load(loaded, bands=list(bands), **odc_kwargs)
    for band in bands:
        scale, offset, nodata = raster_scaling(loaded, band)
        raw = ds[band]
        values = raw.astype(dtype)
        if nodata is not None:
            values = values.where(raw != nodata)
        values = values * np.asarray(scale, dtype=dtype) + np.asarray(offset, dtype=dtype)
        values.attrs = {k: v for k, v in raw.attrs.items() if k != "nodata"}
        values.attrs.update(nodata=np.nan, scale=scale, offset=offset)
        ds[band] = values
    return ds

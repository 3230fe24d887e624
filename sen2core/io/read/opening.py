"""Opening Sentinel-2 products: the entry points :func:`open_product` and :func:`open_l1c`.

:func:`open_product` accepts a SAFE directory, a ``.SAFE.zip`` archive (read in place
through ``/vsizip/``, never extracted), the path of ``MTD_MSIL1C.xml`` /
``MTD_MSIL2A.xml``, or an AWS tile folder (``tileInfo.json`` plus ``B01.jp2``...,
optionally ``metadata.xml`` and ``product_metadata.xml``), local or remote. It reads
metadata only; pixels are read lazily, window by window, when a dask array is computed.

Missing optional metadata never makes opening fail: a documented fallback is used and
a warning is recorded in :attr:`~sen2core.io.read.product.Product.warnings` and emitted
as :class:`~sen2core.errors.MetadataWarning`.
"""

from __future__ import annotations

import logging
import os
import warnings as _warnings
from pathlib import Path

from sen2core.errors import InputProductError, MetadataWarning, RemoteAccessError
from sen2core.io.read.layouts import open_location, open_remote
from sen2core.io.read.model import DEFAULT_CHUNK_M
from sen2core.io.read.product import Product
from sen2core.io.remote import RemoteSettings, is_remote

__all__ = ["open_l1c", "open_product"]

log = logging.getLogger(__name__)


def open_l1c(href: str | os.PathLike[str], *, tile: str | None = None, chunk_m: float = DEFAULT_CHUNK_M) -> Product:
    """Open a product that must be Level-1C.

    Parameters
    ----------
    href, tile, chunk_m
        See :func:`open_product`.

    Returns
    -------
    Product

    Raises
    ------
    InputProductError
        If the product is Level-2A (or any error of :func:`open_product`).
    """
    product = open_product(href, tile=tile, chunk_m=chunk_m)
    if product.level != "L1C":
        raise InputProductError(product.href, f"{product.product_id} is a Level-2A product; sen2core needs Level-1C")
    return product


def open_product(href: str | os.PathLike[str], *, tile: str | None = None, chunk_m: float = DEFAULT_CHUNK_M) -> Product:
    """Open a Sentinel-2 L1C or L2A product; read its metadata, not its pixels.

    Parameters
    ----------
    href
        A SAFE directory, a ``.SAFE.zip`` archive, the path of ``MTD_MSIL1C.xml`` /
        ``MTD_MSIL2A.xml``, or an AWS tile folder (or its ``tileInfo.json``); local, or
        an ``s3://`` / ``http(s)://`` href read in place (see :mod:`sen2core.io.remote`).
    tile
        MGRS tile to use when an old multi-granule product holds several (``"32TQM"``).
    chunk_m
        Default chunk edge in metres of the lazy arrays (18 300 m: 1830 px at 10 m).

    Returns
    -------
    Product

    Raises
    ------
    InputProductError
        If ``href`` does not exist or is not a Sentinel-2 product.
    RemoteAccessError
        A remote href, or a file its metadata names, is missing (404) or forbidden (403).
    TransientIOError
        A remote server kept failing (5xx, timeouts) after the retries.
    MetadataError
        If required metadata is missing, malformed, truncated or unsafe.

    Warns
    -----
    MetadataWarning
        Once per fallback used for missing optional metadata (also in ``warnings``).
    """
    if chunk_m <= 0:
        raise ValueError(f"chunk_m must be positive, got {chunk_m!r}")
    display = os.fspath(href)
    if is_remote(display):
        try:
            product = open_remote(display, tile=tile, chunk_m=chunk_m, settings=RemoteSettings.from_env())
        except FileNotFoundError as exc:
            # A file the metadata names but the server does not have.
            raise RemoteAccessError(str(exc), "HTTP 404: no such object", status=404) from None
    else:
        path = Path(display).expanduser()
        if not path.exists():
            raise InputProductError(display, "no such file or directory")
        try:
            product = open_location(path, display, tile=tile, chunk_m=chunk_m)
        except OSError as exc:
            raise InputProductError(display, f"cannot read product files ({exc})") from exc
    for message in product.warnings:
        _warnings.warn(f"{product.product_id}: {message}", MetadataWarning, stacklevel=2)
    log.debug("opened %s (%s, %s) from %s", product.product_id, product.level, product.layout, display)
    return product

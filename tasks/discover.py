"""Discovery: which Level-1C products a run should process.

Three sources, one result (a sorted list of :class:`~tasks.models.L1CRef`):

``inbox``
    A directory of ``*.SAFE`` folders and ``*.SAFE.zip`` archives (not recursive).
    Tile and sensing time come from the compact product name; other names are
    opened (metadata only) to learn them. An inbox carries no cheap cloud cover, so
    ``max_cloud_cover`` does not filter inbox products.
``stac-catalog``
    A static STAC catalog or collection (pystac), walked recursively.
``stac-api``
    A STAC API (pystac-client): the search sends collections, the time window and,
    when the API supports the query extension, the cloud-cover limit; tiles are
    filtered on the returned items because APIs name the tile differently
    (``s2:mgrs_tile``, ``mgrs:*``, ``grid:code``).

Every filter is also applied on the client side, so the result does not depend on
what an API chose to honour. Windows are half-open ``[start, end)`` on the sensing
time.

Credentials of a STAC API never travel in its URL (a flow parameter, stored and
shown by Prefect): :func:`stac_auth` reads them from the Prefect Secret block the
source names, or from ``SEN2CORE_STAC_API_TOKEN``, and they are sent as headers and
query parameters of every request. Whatever the task logs or raises is masked
(:mod:`sen2core.redact`).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from prefect import task
from prefect.cache_policies import NO_CACHE

from sen2core.errors import ConfigurationError, InputProductError
from sen2core.redact import redact_url, register_secret
from tasks.logs import forward_logs
from tasks.models import (
    DEFAULT_ASSET_KEYS,
    L1CRef,
    Source,
    TimeWindow,
    normalise_tile,
    parse_l1c_name,
    product_id_from_href,
)
from tasks.retry import SERVICE_RETRIES

log = logging.getLogger(__name__)

__all__ = [
    "STAC_TOKEN_ENV",
    "StacAuth",
    "discover_inbox",
    "discover_products",
    "discover_stac_api",
    "discover_stac_catalog",
    "filter_refs",
    "ref_from_item",
    "stac_auth",
]

_TILE_IN_ID = re.compile(r"_T(\d{2}[A-Z]{3})_")
_PRODUCT_SUFFIXES = (".safe", ".safe.zip", ".zip")


def _tile_set(tiles: Sequence[str] | None) -> set[str] | None:
    return {normalise_tile(t) for t in tiles} if tiles else None


def filter_refs(
    refs: Iterable[L1CRef],
    window: TimeWindow | None = None,
    tiles: Sequence[str] | None = None,
    max_cloud_cover: float | None = None,
) -> list[L1CRef]:
    """Keep the references inside the window, on the tiles and under the cloud limit; sorted, deduplicated.

    A reference whose time or tile is unknown is dropped when that filter is set (it
    cannot be placed), and kept otherwise. Unknown cloud cover passes the cloud filter.
    Duplicates (same product id, e.g. ``X.SAFE`` and ``X.SAFE.zip``) keep the first.
    """
    wanted = _tile_set(tiles)
    kept: dict[str, L1CRef] = {}
    for ref in refs:
        if window is not None and (ref.sensing_time is None or ref.sensing_time not in window):
            continue
        if wanted is not None and (ref.tile is None or ref.tile not in wanted):
            continue
        if max_cloud_cover is not None and ref.cloud_cover is not None and ref.cloud_cover > max_cloud_cover:
            continue
        if ref.product_id in kept:
            log.warning("%s: found twice (%s and %s); processing the first", ref.product_id,
                        kept[ref.product_id].href, ref.href)  # fmt: skip
            continue
        kept[ref.product_id] = ref
    return sorted(kept.values(), key=lambda r: (r.sensing_time is None, r.sensing_time, r.tile or "", r.product_id))


# ------------------------------------------------------------------------- inbox


def _inbox_ref(path: Path) -> L1CRef | None:
    ref = L1CRef.from_href(str(path))
    if ref.tile is not None:
        return ref
    # Not a compact name (old multi-tile products, renamed files): read the metadata to place it.
    from sen2core.io.read.opening import open_l1c

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            product = open_l1c(path)
    except InputProductError as exc:
        log.warning("inbox: %s is neither named nor readable as a Level-1C product, ignored: %s", path.name, exc)
        return None
    return ref.model_copy(update={"product_id": product.product_id, "tile": product.tile_id,
                                  "sensing_time": product.sensing_time})  # fmt: skip


def discover_inbox(
    inbox: str | Path, window: TimeWindow | None = None, tiles: Sequence[str] | None = None
) -> list[L1CRef]:
    """Level-1C products in an inbox directory (``*.SAFE`` folders and ``*.SAFE.zip`` archives).

    Raises
    ------
    FileNotFoundError
        The inbox does not exist.
    """
    root = Path(inbox)
    if not root.is_dir():
        raise FileNotFoundError(f"inbox {root} is not a directory")
    refs = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not path.name.lower().endswith(_PRODUCT_SUFFIXES):
            continue
        ref = _inbox_ref(path)
        if ref is not None:
            refs.append(ref)
    return filter_refs(refs, window, tiles)


# -------------------------------------------------------------------------- STAC

STAC_TOKEN_ENV = "SEN2CORE_STAC_API_TOKEN"
"""Environment variable with a STAC API's credentials: a token (sent as ``Authorization: Bearer``),
or JSON ``{"headers": {...}, "parameters": {...}, "username": ..., "password": ..., "token": ...}``."""


@dataclass(frozen=True)
class StacAuth:
    """Credentials sent with every request to a STAC API."""

    headers: dict[str, str] = field(default_factory=dict, repr=False)
    parameters: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, value: Any, where: str) -> StacAuth:
        """From a token or a JSON object (text or mapping); every secret in it is registered for masking.

        Raises
        ------
        ConfigurationError
            The value is neither (the message names ``where``, never the value).
        """
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ConfigurationError(f"{where}: STAC API credentials are not valid JSON") from None
            else:
                register_secret(text)
                return cls(headers={"Authorization": f"Bearer {text}"})
        if not isinstance(value, Mapping):
            raise ConfigurationError(f"{where}: STAC API credentials must be a token or a JSON object")
        unknown = set(value) - {"headers", "parameters", "username", "password", "token"}
        if unknown:
            raise ConfigurationError(f"{where}: unknown keys in the STAC API credentials: {sorted(unknown)}")
        headers = {str(k): str(v) for k, v in (value.get("headers") or {}).items()}
        parameters = {str(k): str(v) for k, v in (value.get("parameters") or {}).items()}
        if value.get("token"):
            headers.setdefault("Authorization", f"Bearer {value['token']}")
        if value.get("username") is not None:
            pair = f"{value['username']}:{value.get('password') or ''}"
            basic = base64.b64encode(pair.encode()).decode("ascii")
            register_secret(basic)
            headers.setdefault("Authorization", f"Basic {basic}")
        for secret in (*headers.values(), *parameters.values(), value.get("token"), value.get("password")):
            if secret:
                register_secret(str(secret))
                register_secret(str(secret).split(" ", 1)[-1])  # "Bearer X": X alone too
        return cls(headers=headers, parameters=parameters)


def stac_auth(source: Source) -> StacAuth | None:
    """The credentials of ``source``'s STAC API: its Prefect Secret block, else ``SEN2CORE_STAC_API_TOKEN``.

    Raises
    ------
    ConfigurationError
        The credentials are malformed.
    ValueError
        The Secret block does not exist (Prefect's error).
    """
    if source.secret_block:
        from prefect.blocks.system import Secret

        # Secret.load is sync-compatible: called from a sync function it returns the block, not a coroutine.
        secret = cast("Secret[str]", Secret.load(source.secret_block))
        return StacAuth.parse(secret.get(), f"Prefect Secret block {source.secret_block!r}")
    value = os.environ.get(STAC_TOKEN_ENV)
    return StacAuth.parse(value, STAC_TOKEN_ENV) if value else None


def _item_tile(item: Any) -> str | None:
    props = item.properties
    if props.get("s2:mgrs_tile"):
        return normalise_tile(str(props["s2:mgrs_tile"]))
    if all(k in props for k in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square")):
        zone, band, square = props["mgrs:utm_zone"], props["mgrs:latitude_band"], props["mgrs:grid_square"]
        return normalise_tile(f"{int(zone):02d}{band}{square}")
    code = str(props.get("grid:code", ""))
    if code.upper().startswith("MGRS-"):
        return normalise_tile(code[5:])
    for text in (str(props.get("s2:product_uri", "")), item.id):
        m = _TILE_IN_ID.search(text + "_")
        if m:
            return m.group(1)
    return None


def _item_href(item: Any, asset_keys: Sequence[str]) -> str | None:
    for key in asset_keys:
        if key in item.assets:
            return str(item.assets[key].get_absolute_href() or item.assets[key].href)
    # No known key: an asset whose target is recognisably a product.
    for asset in item.assets.values():
        href = str(asset.get_absolute_href() or asset.href)
        low = href.rstrip("/").lower()
        if low.endswith((".safe", ".safe.zip")) or low.endswith("mtd_msil1c.xml"):
            return href
    return None


def ref_from_item(item: Any, asset_keys: Sequence[str]) -> L1CRef | None:
    """A reference from a STAC item of a Level-1C product, or None if no asset holds the product."""
    href = _item_href(item, asset_keys)
    if href is None:
        log.warning("STAC item %s has none of the assets %s; ignored", item.id, ", ".join(asset_keys))
        return None
    uri = item.properties.get("s2:product_uri")
    product_id = product_id_from_href(str(uri)) if uri else item.id
    sensing = item.datetime or item.common_metadata.start_datetime
    if sensing is None:
        parsed = parse_l1c_name(product_id)
        sensing = parsed[1] if parsed else None
    cloud = item.properties.get("eo:cloud_cover")
    return L1CRef(href=href, product_id=product_id, tile=_item_tile(item), sensing_time=sensing,
                  cloud_cover=None if cloud is None else float(cloud), origin=item.get_self_href())  # fmt: skip


def _refs(items: Iterable[Any], asset_keys: Sequence[str]) -> Iterator[L1CRef]:
    for item in items:
        ref = ref_from_item(item, asset_keys)
        if ref is not None:
            yield ref


def discover_stac_catalog(
    href: str,
    window: TimeWindow | None = None,
    tiles: Sequence[str] | None = None,
    max_cloud_cover: float | None = None,
    asset_keys: Sequence[str] = DEFAULT_ASSET_KEYS,
) -> list[L1CRef]:
    """Level-1C products of a static STAC catalog or collection (every item below it)."""
    import pystac

    catalog = pystac.read_file(href)
    if not isinstance(catalog, pystac.Catalog):
        raise ValueError(f"{href} is a STAC {type(catalog).__name__}, not a catalog or collection")
    return filter_refs(_refs(catalog.get_items(recursive=True), asset_keys), window, tiles, max_cloud_cover)


def discover_stac_api(
    url: str,
    window: TimeWindow,
    tiles: Sequence[str] | None = None,
    max_cloud_cover: float | None = None,
    collections: Sequence[str] = ("sentinel-2-l1c",),
    asset_keys: Sequence[str] = DEFAULT_ASSET_KEYS,
    auth: StacAuth | None = None,
) -> list[L1CRef]:
    """Level-1C products found by a STAC API item search over ``window``.

    ``auth``: headers and query parameters sent with every request (also those that follow
    the API's links, which a URL's own credentials would not reach).
    """
    from pystac_client import Client
    from pystac_client.conformance import ConformanceClasses

    auth = auth or StacAuth()
    client = Client.open(url, headers=auth.headers or None, parameters=auth.parameters or None)
    query = None
    if max_cloud_cover is not None and client.conforms_to(ConformanceClasses.QUERY):
        query = {"eo:cloud_cover": {"lte": max_cloud_cover}}
    # STAC datetime intervals are closed; the half-open end is enforced by filter_refs.
    search = client.search(collections=list(collections), datetime=[window.start, window.end], query=query)
    return filter_refs(_refs(search.items(), asset_keys), window, tiles, max_cloud_cover)


@task(
    name="discover",
    cache_policy=NO_CACHE,
    tags=["sen2core-discovery"],
    **SERVICE_RETRIES,
)
def discover_products(
    source: Source,
    window: TimeWindow | None = None,
    tiles: list[str] | None = None,
    max_cloud_cover: float | None = None,
) -> list[L1CRef]:
    """Discover the Level-1C products of ``source`` in ``window`` on ``tiles`` (all when None).

    Retried with backoff on transient errors (network, HTTP 5xx); a STAC API search
    needs a window. Credentials (:func:`stac_auth`) are masked in what the task logs and raises.
    """
    with forward_logs():
        if source.kind == "inbox":
            refs = discover_inbox(source.href, window, tiles)
        elif source.kind == "stac-catalog":
            refs = discover_stac_catalog(source.href, window, tiles, max_cloud_cover, source.asset_keys)
        else:
            if window is None:
                raise ValueError("a STAC API search needs a time window")
            refs = discover_stac_api(source.href, window, tiles, max_cloud_cover, source.collections,
                                     source.asset_keys, stac_auth(source))  # fmt: skip
        where = f" in {window}" if window else ""
        log.info("%s %s: %d product(s)%s", source.kind, redact_url(source.href), len(refs), where)
    return refs

"""The output collection ``collection.json``: one per output root, grown by every finished COG product.

:func:`update_collection` maintains ``collection.json`` at the output root; it is a
publishing step run after a product is in place, safe with concurrent callers in
several processes (an ``fcntl`` lock) and atomic for readers (``os.replace``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import posixpath
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pystac

from sen2core.errors import OutputError, RemoteAccessError
from sen2core.io.jsonutil import atomic_write_json, strict_json_dumps
from sen2core.io.remote import is_remote
from sen2core.io.stac.item import COLLECTION_ID
from sen2core.io.write.upload import output_objects

COLLECTION_NAME = "collection.json"
"""File name of the collection at the output root."""
_LOCK_NAME = ".collection.json.lock"


# ----------------------------------------------------------------------------- collection


_OPEN_INTERVAL: list[list[dt.datetime | None]] = [[None, None]]


def _new_collection() -> dict[str, Any]:
    coll = pystac.Collection(
        id=COLLECTION_ID,
        title="Sentinel-2 Level-2A (sen2core)",
        description=(
            "Sentinel-2 MSI bottom-of-atmosphere reflectance, scene classification, aerosol optical "
            "thickness and water vapour, processed from Level-1C by sen2core (Sen2Cor-compatible "
            "Level-2A algorithms) as Cloud-Optimised GeoTIFFs."
        ),  # fmt: skip
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]), pystac.TemporalExtent(_OPEN_INTERVAL)
        ),  # fmt: skip
        license="other",
        providers=[
            pystac.Provider(
                "ESA",
                roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR],
                url="https://sentinel.esa.int/web/sentinel/missions/sentinel-2",
            ),
            pystac.Provider("sen2core", roles=[pystac.ProviderRole.PROCESSOR]),
        ],  # fmt: skip
        keywords=["sentinel", "copernicus", "esa", "msi", "level-2a", "reflectance", "sen2core"],
    )
    d = coll.to_dict(include_self_link=False, transform_hrefs=False)
    d["links"] = [
        {"rel": "root", "href": f"./{COLLECTION_NAME}", "type": pystac.MediaType.JSON},
        {"rel": "license", "href": "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice",
         "title": "Legal notice on the use of Copernicus Sentinel Data and Service Information"},
    ]  # fmt: skip
    d["summaries"] = {"constellation": ["sentinel-2"], "instruments": ["msi"]}
    return d


def _item_interval(item: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    props = item.get("properties", {})
    start = props.get("start_datetime") or props.get("datetime")
    end = props.get("end_datetime") or props.get("datetime")
    if not start or not end:
        raise OutputError(f"{item.get('id')}: item without datetime")
    return pystac.utils.str_to_datetime(start), pystac.utils.str_to_datetime(end)


def _merge_item(coll: dict[str, Any], item: Mapping[str, Any], href: str) -> None:
    bbox = [float(v) for v in item["bbox"]]
    if len(bbox) == 6:  # 3-D bbox: keep the horizontal part
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    start, end = _item_interval(item)
    links = coll.get("links", [])
    # Until the first item the extent is a placeholder (whole globe, open interval): replace it.
    if any(ln.get("rel") == "item" for ln in links):
        old = coll["extent"]["spatial"]["bbox"][0]
        bbox = [min(old[0], bbox[0]), min(old[1], bbox[1]), max(old[2], bbox[2]), max(old[3], bbox[3])]
        old_start, old_end = (pystac.utils.str_to_datetime(v) for v in coll["extent"]["temporal"]["interval"][0])
        start, end = min(start, old_start), max(end, old_end)
    coll["extent"] = {
        "spatial": {"bbox": [bbox]},
        "temporal": {"interval": [[pystac.utils.datetime_to_str(start), pystac.utils.datetime_to_str(end)]]},
    }
    summaries = coll.setdefault("summaries", {})
    props = item.get("properties", {})
    for key in ("platform", "gsd"):
        if props.get(key) is not None:
            summaries[key] = sorted(set(summaries.get(key, [])) | {props[key]})
    # One link per item id: a reprocessed product replaces its old link.
    same = {href, item.get("id")}
    links = [ln for ln in links if ln.get("rel") != "item" or not ({ln.get("href"), ln.get("title")} & same)]
    links.append({"rel": "item", "href": href, "type": pystac.MediaType.GEOJSON, "title": item.get("id")})
    items = sorted((ln for ln in links if ln.get("rel") == "item"), key=lambda ln: ln["href"])
    coll["links"] = [ln for ln in links if ln.get("rel") != "item"] + items


#: Attempts of a conditional collection write before giving up (each loses only to another writer's success).
COLLECTION_WRITE_ATTEMPTS = 20


def _update_remote_collection(root: str, item_hrefs: Sequence[str]) -> str:
    """:func:`update_collection` on object storage: read with its ETag, merge, write only if unchanged.

    The write is conditional (``If-Match`` the ETag read, ``If-None-Match: *`` when there was
    no collection): when another writer updated it in between, the write is refused (412)
    and the merge is done again on the new content, so no writer loses another's items.
    """
    objects, key = output_objects(root)
    items = []
    for href in item_hrefs:
        item_objects, item_key = output_objects(href)
        got = item_objects.get_with_etag(item_key)
        if got is None:
            raise OutputError(f"{href}: no STAC item there")
        try:
            items.append((json.loads(got[0]), item_key))
        except ValueError as exc:
            raise OutputError(f"{href}: cannot read the STAC item: {exc}") from exc
    coll_key = f"{key}/{COLLECTION_NAME}" if key else COLLECTION_NAME
    href = objects.href(coll_key)
    for attempt in range(COLLECTION_WRITE_ATTEMPTS):
        got = objects.get_with_etag(coll_key)
        try:
            coll = json.loads(got[0]) if got is not None else _new_collection()
        except ValueError as exc:
            raise OutputError(f"{href}: existing collection is not valid JSON: {exc}") from exc
        for item, item_key in items:
            rel = posixpath.relpath(item_key, key or ".")
            _merge_item(coll, item, rel if rel.startswith("../") else f"./{rel}")
        body = strict_json_dumps(coll, indent=1, ensure_ascii=False).encode("utf-8")
        try:
            objects.put(coll_key, body, content_type="application/json",
                        if_match=got[1] if got is not None else None, if_none_match=got is None)  # fmt: skip
            return href
        except RemoteAccessError as exc:
            if exc.status not in (409, 412):
                raise OutputError(f"{href}: cannot write the collection: {exc}") from None
            # Another writer got there first: read its version and merge again.
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise OutputError(f"{href}: collection still changed by other writers after {COLLECTION_WRITE_ATTEMPTS} attempts")


def update_collection(output_root: str | Path, item_paths: Sequence[str | Path]) -> Path | str:
    """Create or update ``collection.json`` at ``output_root`` with the items at ``item_paths``.

    The extent grows to cover the items and each gets one relative ``item`` link. Callers
    in several processes may run at once: an exclusive ``fcntl`` lock on a lock file
    beside the collection serialises the read-modify-write, and the new collection
    replaces the old in one ``os.replace`` (readers see the old or the new file whole).
    On object storage (``s3://`` root and item hrefs) the write is conditional on the
    ETag read instead, and redone on a fresh read when another writer came first.

    Parameters
    ----------
    output_root
        Root of the output tree (created if missing).
    item_paths
        STAC item JSON files (normally under ``output_root``).

    Returns
    -------
    Path or str
        The collection file (its href on object storage).

    Raises
    ------
    OutputError
        An item cannot be read, or the collection cannot be written.
    """
    if is_remote(os.fspath(output_root)):
        return _update_remote_collection(os.fspath(output_root), [os.fspath(p) for p in item_paths])
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for p in item_paths:
        p = Path(p)
        try:
            items.append((json.loads(p.read_text(encoding="utf-8")), p))
        except (OSError, ValueError) as exc:
            raise OutputError(f"{p}: cannot read the STAC item: {exc}") from exc
    path = root / COLLECTION_NAME
    with open(root / _LOCK_NAME, "a+") as lock:
        # Blocking exclusive lock: held only for a small read-merge-write. Released when the
        # file is closed, also if this process dies (the kernel drops flock locks).
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if path.is_file():
                try:
                    coll = json.loads(path.read_text(encoding="utf-8"))
                except ValueError as exc:
                    raise OutputError(f"{path}: existing collection is not valid JSON: {exc}") from exc
            else:
                coll = _new_collection()
            for item, p in items:
                rel = os.path.relpath(p.resolve(), root.resolve()).replace(os.sep, "/")
                _merge_item(coll, item, rel if rel.startswith("../") else f"./{rel}")
            atomic_write_json(path, coll)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return path


__all__ = ["COLLECTION_NAME", "COLLECTION_WRITE_ATTEMPTS", "update_collection"]

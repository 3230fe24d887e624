"""Level-2A products published to S3-compatible object storage, with the on-disk contract.

A product is built and checked in a local folder as for a local output, then uploaded:
every file first, the STAC item ``{l2a_id}.json`` last. The item is the "done" marker,
so a run killed or failing during the upload leaves objects that nothing takes for a
product, and the next run replaces them. Reprocessing a done product (``overwrite``)
deletes its item before the first upload, so that the old item never describes a mix
of old and new files.

Only ``s3://`` outputs are written: HTTP servers take no writes, and the SAFE layout
(a folder of JPEG 2000 files renamed into place) stays local.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from pathlib import Path
from typing import Any

from sen2core.errors import ConfigurationError, OutputError, RemoteAccessError
from sen2core.io.remote import RemoteSettings, S3Objects, is_remote, join, objects_for

__all__ = ["output_objects", "published", "read_json", "upload_product"]

log = logging.getLogger(__name__)

_TYPES = {
    ".tif": "image/tiff; application=geotiff; profile=cloud-optimized",
    ".json": "application/json",
    ".png": "image/png",
    ".xml": "application/xml",
    ".sha256": "text/plain",
}


def output_objects(href: str, settings: RemoteSettings | None = None) -> tuple[S3Objects, str]:
    """The bucket and key of a remote output href.

    Raises
    ------
    ConfigurationError
        If ``href`` is not ``s3://bucket[/prefix]`` (HTTP servers are read-only here).
    """
    if not is_remote(href) or not href.lower().startswith("s3://"):
        raise ConfigurationError(f"{href}: remote outputs go to object storage (s3://bucket/prefix); "
                                 "http(s):// is read-only")  # fmt: skip
    objects, key = objects_for(href, settings)
    assert isinstance(objects, S3Objects)
    return objects, key.strip("/")


def _item_key(key: str) -> str:
    return f"{key}/{key.rsplit('/', 1)[-1]}.json"


def published(href: str, settings: RemoteSettings | None = None) -> bool:
    """Whether the product folder at ``href`` is done: its STAC item ``{folder name}.json`` exists."""
    objects, key = output_objects(href, settings)
    return objects.head(_item_key(key)) is not None


def read_json(href: str, settings: RemoteSettings | None = None) -> Any:
    """A (small) JSON object, or None if there is none."""
    objects, key = output_objects(href, settings)
    got = objects.get_with_etag(key)
    return None if got is None else json.loads(got[0])


def upload_product(folder: Path, href: str, settings: RemoteSettings | None = None) -> list[str]:
    """Upload the finished product ``folder`` to ``href``; the STAC item last. Returns the keys written.

    Raises
    ------
    OutputError
        A file could not be uploaded (nothing marks the product done then).
    """
    objects, key = output_objects(href, settings)
    item_file = folder / f"{key.rsplit('/', 1)[-1]}.json"
    if not item_file.is_file():
        raise OutputError(f"{folder}: no STAC item {item_file.name}: the product is not finished")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p != item_file)
    written: list[str] = []
    try:
        # An old item goes first: until the new one is written, the product is not done.
        objects.delete(_item_key(key))
        for path in [*files, item_file]:
            rel = path.relative_to(folder).as_posix()
            kind = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
            with open(path, "rb") as f:
                objects.put(join(key, rel), f, content_type=kind)
            written.append(join(key, rel))
    except (RemoteAccessError, OSError) as exc:
        failure = OutputError(f"{href}: upload failed after {len(written)} of {len(files) + 1} files, "
                              f"the STAC item not written: {exc}")  # fmt: skip
    else:
        log.info("%s: %d files uploaded, STAC item last", href, len(written))
        return written
    raise failure

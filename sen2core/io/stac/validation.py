"""Offline validation of STAC items and collections against the JSON schemas shipped with sen2core.

The core schemas come from pystac's bundled copy, the extension schemas from
``sen2core/data/stac-schemas`` (``<name>/<version>/schema.json`` for
``https://stac-extensions.github.io/<name>/<version>/schema.json``); a reference to any
other schema is an error, never a download.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pystac
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from pystac.validation.local_validator import get_local_schema_cache
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable

from sen2core.errors import OutputError
from sen2core.io.stac.extension import EXTENSION_BASE


class STACValidationError(OutputError, ValueError):
    """A STAC document does not validate against its (offline) JSON schemas."""


# ----------------------------------------------------------------------------- validation


@functools.cache
def _extension_schemas() -> dict[str, dict[str, Any]]:
    """Canonical URI -> schema of every extension schema shipped as package data."""
    root = resources.files("sen2core").joinpath("data", "stac-schemas")
    out = {}
    for name in root.iterdir():
        if not name.is_dir():
            continue
        for version in name.iterdir():
            schema = version.joinpath("schema.json")
            if schema.is_file():
                out[f"{EXTENSION_BASE}/{name.name}/{version.name}/schema.json"] = json.loads(schema.read_text("utf-8"))
    return out


def _offline(uri: str) -> Resource[Any]:
    # Any reference not shipped locally is an error, never a download.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


@functools.cache
def _registry() -> Registry[Any]:
    schemas = {**get_local_schema_cache(), **_extension_schemas()}
    resources_ = []
    for uri, schema in schemas.items():
        resource = Resource.from_contents(schema)
        resources_ += [(uri, resource), (uri + "#", resource)]
    return Registry(retrieve=_offline).with_resources(resources_)  # type: ignore[call-arg]


def _core_schema_uri(kind: str, version: str) -> str:
    spec = "item-spec" if kind == "item" else f"{kind}-spec"
    return f"https://schemas.stacspec.org/v{version}/{spec}/json-schema/{kind}.json"


def _load(obj: pystac.STACObject | Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    if isinstance(obj, pystac.STACObject):
        return obj.to_dict(include_self_link=False, transform_hrefs=False)
    if isinstance(obj, Mapping):
        return dict(obj)
    try:
        loaded = json.loads(Path(obj).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise STACValidationError(f"{obj}: cannot read STAC JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise STACValidationError(f"{obj}: not a JSON object")
    return loaded


def _validate(doc: Mapping[str, Any], kind: str) -> list[str]:
    expected = {"item": "Feature", "collection": "Collection"}[kind]
    name = doc.get("id", "?")
    if doc.get("type") != expected:
        raise STACValidationError(f"{name}: type is {doc.get('type')!r}, expected {expected!r}")
    version = str(doc.get("stac_version"))
    uris = [_core_schema_uri(kind, version)] + list(doc.get("stac_extensions") or [])
    registry = _registry()
    problems: list[str] = []
    for uri in uris:
        try:
            schema = registry.contents(uri)
        except NoSuchResource:
            problems.append(f"{uri}: schema not available offline")
            continue
        validator = Draft7Validator(schema, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)
        try:
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        except Unresolvable as exc:
            problems.append(f"{uri}: reference not available offline: {exc}")
            continue
        for err in errors[:10]:
            where = "/".join(str(p) for p in err.absolute_path) or "(root)"
            problems.append(f"{uri}: {where}: {err.message[:300]}")
    if problems:
        raise STACValidationError(f"{name}: invalid STAC {kind}:\n  " + "\n  ".join(problems))
    return uris


def validate_item(item_or_path: pystac.Item | Mapping[str, Any] | str | os.PathLike[str]) -> list[str]:
    """Validate a STAC item against the core schema and each of its extensions, offline.

    Parameters
    ----------
    item_or_path
        A pystac item, its JSON as a mapping, or the path of its JSON file.

    Returns
    -------
    list of str
        The schema URIs checked.

    Raises
    ------
    STACValidationError
        The item is invalid, or uses a schema that is not available offline.
    """
    return _validate(_load(item_or_path), "item")


def validate_collection(
    collection_or_path: pystac.Collection | Mapping[str, Any] | str | os.PathLike[str],
) -> list[str]:
    """Validate a STAC collection offline (see :func:`validate_item`)."""
    return _validate(_load(collection_or_path), "collection")


__all__ = ["STACValidationError", "validate_collection", "validate_item"]

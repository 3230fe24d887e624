"""Safe XML parsing and small typed accessors shared by the metadata parsers.

Every metadata file is parsed with :mod:`defusedxml`: entity declarations (the
"billion laughs" expansion) and external entities or DTDs are refused, so no entity
is ever resolved. Namespaces are stripped after parsing because the Sentinel-2 PSD
changed namespace URIs between versions (psd-12, psd-13, psd-14) while the element
names stayed the same.
"""

from __future__ import annotations

import datetime as _dt
import math
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree

from sen2core.errors import MetadataError

__all__ = [
    "find_text",
    "finite_or_none",
    "local_name",
    "parse_float",
    "parse_time",
    "parse_xml",
    "safe_fromstring",
]


def local_name(tag: object) -> str:
    """Element name without its ``{namespace}`` prefix (empty for comments)."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def safe_fromstring(data: bytes) -> Element:
    """Parse XML bytes with entity declarations and external references refused (namespaces kept).

    The one place sen2core calls an XML parser: :func:`parse_xml` (product metadata) and
    :func:`sen2core.io.read.gipp.read_gipp` (configuration files) wrap its errors in
    their own exception.

    Raises
    ------
    defusedxml.DefusedXmlException
        The document declares entities or references external resources.
    xml.etree.ElementTree.ParseError
        The document is empty, truncated or malformed.
    """
    root: Element = defusedxml.ElementTree.fromstring(
        data, forbid_dtd=False, forbid_entities=True, forbid_external=True
    )
    return root


def parse_xml(data: bytes, *, product: str, name: str) -> Element:
    """Parse XML bytes safely and strip namespaces.

    Parameters
    ----------
    data
        The file content.
    product
        The product reference, used in error messages.
    name
        The file name inside the product, used in error messages.

    Returns
    -------
    xml.etree.ElementTree.Element
        Root element with namespace-free tags (attributes keep their names).

    Raises
    ------
    MetadataError
        If the XML is empty, truncated or malformed, or declares entities or
        external references.
    """
    try:
        root = safe_fromstring(data)
    except defusedxml.DefusedXmlException as exc:
        raise MetadataError(
            product,
            f"{name}: unsafe XML refused ({type(exc).__name__}: entity declarations and "
            "external references are not allowed in Sentinel-2 metadata)",
        ) from exc
    except ParseError as exc:
        raise MetadataError(product, f"{name}: malformed or truncated XML ({exc})") from exc
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{"):
            el.tag = local_name(el.tag)
    return root


def find_text(parent: Element | None, path: str) -> str | None:
    """Stripped text of the first element at ``path`` (ElementTree syntax), or None if absent or empty."""
    if parent is None:
        return None
    el = parent.find(path)
    if el is None or el.text is None:
        return None
    text = el.text.strip()
    return text or None


def parse_float(text: str | None, *, product: str, what: str) -> float | None:
    """Parse a decimal number (``NaN`` allowed); None stays None.

    Raises
    ------
    MetadataError
        If the text is not a number.
    """
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise MetadataError(product, f"{what}: {text!r} is not a number") from None


def finite_or_none(value: float | None) -> float | None:
    """The value if it is a finite float, else None (NaN in metadata means "unknown")."""
    if value is None or not math.isfinite(value):
        return None
    return value


def parse_time(text: str | None, *, product: str, what: str) -> _dt.datetime | None:
    """Parse an ISO 8601 UTC timestamp as written in Sentinel-2 metadata.

    Accepts ``2023-08-23T10:05:35.271949Z``, ``2017-08-25T08:50:10Z`` and naive forms
    (taken as UTC). Returns an aware UTC datetime, or None if ``text`` is None.

    Raises
    ------
    MetadataError
        If the text is not a timestamp.
    """
    if text is None:
        return None
    try:
        value = _dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise MetadataError(product, f"{what}: {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return value.astimezone(_dt.UTC)

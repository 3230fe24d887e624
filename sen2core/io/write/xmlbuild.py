"""Building the XML files sen2core writes: elements, number and time formats, serialisation.

Shared by the Level-2A metadata (:mod:`sen2core.io.write.mtd_l2a`), the SAFE manifest
(:mod:`sen2core.io.write.safe`) and the synthetic Level-1C products
(:mod:`sen2core.synthetic.safe_writer`), so that every file is formatted the same way.
Parsing (with :mod:`defusedxml`) is :mod:`sen2core.io.xmlutil`'s.
"""

from __future__ import annotations

import datetime as dt
import math
import xml.etree.ElementTree as ET
from typing import Any

__all__ = ["XML_DECLARATION", "XSI", "grid_value", "iso_ms", "iso_us", "sub", "xml_bytes"]

#: Namespace of ``xsi:schemaLocation``.
XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: First line of every file, as ESA's products write it.
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'


def _utc(t: dt.datetime) -> dt.datetime:
    # A naive time is taken as UTC (not local time): every time in a product is UTC.
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def iso_ms(t: dt.datetime) -> str:
    """UTC time with milliseconds: ``2017-07-29T15:45:21.026Z``."""
    t = _utc(t)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def iso_us(t: dt.datetime) -> str:
    """UTC time with microseconds: ``2017-07-29T15:45:21.026461Z``."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def grid_value(v: float) -> str:
    """Angle grid value: six significant digits, ``NaN`` for NaN (as ``MTD_TL.xml`` writes them)."""
    return "NaN" if not math.isfinite(v) else f"{v:.6g}"


def sub(parent: ET.Element, tag: str, text: Any = None, **attrib: str) -> ET.Element:
    """Append a child element ``tag`` with ``attrib``, and ``str(text)`` unless ``text`` is None."""
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = str(text)
    return el


def xml_bytes(root: ET.Element, comment: str | None = None) -> bytes:
    """The document of ``root``, indented by two spaces, UTF-8, with an optional comment after the declaration.

    GDAL's SENTINEL2 driver identifies a metadata file by its root element within the
    first kilobyte: keep ``comment`` short.
    """
    ET.indent(root, space="  ")
    head = XML_DECLARATION + (f"<!-- {comment} -->\n" if comment else "")
    return (head + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")

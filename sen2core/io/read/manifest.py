"""Parser for ``manifest.safe`` (SAFE XFDU manifest).

Used for what the user-product metadata does not say: the product level when the
``MTD_*.xml`` file is missing (for a clear message), and the declared byte size of
each file, which exposes truncated band files before GDAL fails deep in a decode, and
its checksum (verified by :mod:`sen2core.io.read.integrity`).
"""

from __future__ import annotations

from sen2core.io.read.metadata import Level, ManifestMetadata
from sen2core.io.xmlutil import find_text, parse_time, parse_xml

__all__ = ["parse_manifest"]


def parse_manifest(data: bytes, *, product: str, name: str = "manifest.safe") -> ManifestMetadata:
    """Parse ``manifest.safe``.

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
    ManifestMetadata

    Raises
    ------
    MetadataError
        If the XML is unsafe, malformed or truncated.
    """
    root = parse_xml(data, product=product, name=name)
    level: Level | None = None
    version = (root.get("version") or "").lower()
    unit_types = " ".join(cu.get("unitType", "") for cu in root.iter("contentUnit"))
    for text in (unit_types, version):
        t = text.lower()
        if "level-1c" in t or "l1c" in t:
            level = "L1C"
            break
        if "level-2a" in t or "l2a" in t:
            level = "L2A"
            break

    spacecraft = None
    platform = next(root.iter("platform"), None)
    if platform is not None:
        family = find_text(platform, "familyName")
        number = find_text(platform, "number")
        if family and number:
            spacecraft = f"{family.title()}-{number}"
    period = next(root.iter("acquisitionPeriod"), None)
    start = parse_time(find_text(period, "startTime"), product=product, what=f"{name} startTime")

    sizes: dict[str, int | None] = {}
    checksums: dict[str, tuple[str, str]] = {}
    for bs in root.iter("byteStream"):
        loc = bs.find("fileLocation")
        href = loc.get("href") if loc is not None else None
        if not href:
            continue
        rel = href[2:] if href.startswith("./") else href
        size_attr = bs.get("size")
        sizes[rel] = int(size_attr) if size_attr and size_attr.isdigit() else None
        check = bs.find("checksum")
        digest = (check.text or "").strip().lower() if check is not None else ""
        if check is not None and digest:
            checksums[rel] = ((check.get("checksumName") or "").strip().upper(), digest)
    return ManifestMetadata(source=name, level=level, spacecraft=spacecraft, start_time=start, file_sizes=sizes,
                            checksums=checksums)  # fmt: skip

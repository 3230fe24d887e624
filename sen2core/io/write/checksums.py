"""SHA-256 checksums of product files and the ``sha256sum``-compatible manifest.

The manifest (``checksums.sha256``) lists every file of a product folder except
itself and the STAC item, one ``<hex>  <relative name>`` line each, so that
``sha256sum -c checksums.sha256`` run inside the folder verifies the product. The
same digests go into the item's ``file:checksum`` fields (as sha2-256 multihashes).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sen2core.errors import OutputError
from sen2core.io.failures import write_failure
from sen2core.parallel import map_parallel

MANIFEST_NAME = "checksums.sha256"
"""File name of the manifest inside a product folder."""

_BLOCK = 4 << 20
#: Multihash prefix of a sha2-256 digest: code 0x12, length 0x20 (32 bytes).
MULTIHASH_SHA256 = "1220"


@dataclass(frozen=True)
class FileDigest:
    """SHA-256 and size of one file."""

    sha256: str
    """Hexadecimal digest (64 lower-case characters)."""
    size: int
    """Size in bytes."""

    @property
    def multihash(self) -> str:
        """The digest as a hex-encoded multihash (``1220`` + digest), as the STAC file extension wants."""
        return MULTIHASH_SHA256 + self.sha256


def digest_file(path: str | os.PathLike[str]) -> FileDigest:
    """SHA-256 and size of ``path``, read in blocks (hashlib releases the GIL: threads parallelise).

    Raises
    ------
    OutputError
        The file cannot be read.
    """
    h = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb", buffering=0) as f:
            while block := f.read(_BLOCK):
                h.update(block)
                size += len(block)
    except OSError as exc:
        raise OutputError(f"{path}: cannot checksum: {exc}") from exc
    return FileDigest(h.hexdigest(), size)


def digest_files(folder: str | os.PathLike[str], names: Iterable[str], workers: int = 2) -> dict[str, FileDigest]:
    """Digests of ``folder/name`` for each name (relative POSIX names), computed on ``workers`` threads."""
    folder = Path(folder)
    names = sorted(names)
    digests = map_parallel(digest_file, [(folder / n,) for n in names], n_jobs=max(1, workers))
    return dict(zip(names, digests, strict=True))


def _check_name(name: str) -> None:
    # sha256sum escapes names with a backslash or newline; ours never have them, so refuse
    # rather than write a manifest that ``sha256sum -c`` would misread.
    if "\n" in name or "\\" in name or name.startswith("/") or not name:
        raise OutputError(f"cannot list {name!r} in a checksum manifest")


def write_manifest(folder: str | os.PathLike[str], digests: Mapping[str, FileDigest],
                   name: str = MANIFEST_NAME) -> Path:  # fmt: skip
    """Write ``folder/name`` listing ``digests`` (sorted by file name); return its path."""
    lines = []
    for fname in sorted(digests):
        _check_name(fname)
        lines.append(f"{digests[fname].sha256}  {fname}\n")
    path = Path(folder) / name
    try:
        path.write_text("".join(lines), encoding="utf-8")
    except OSError as exc:
        raise write_failure(exc, path, "cannot write the checksum manifest") from exc
    return path


def read_manifest(path: str | os.PathLike[str]) -> dict[str, str]:
    """File name -> hex digest from a ``sha256sum`` manifest (text or binary mode lines).

    Raises
    ------
    OutputError
        The manifest cannot be read or has a malformed line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot read the checksum manifest: {exc}") from exc
    out = {}
    for n, line in enumerate(text.splitlines(), start=1):
        digest, sep, fname = line.partition(" ")
        if not sep or len(digest) != 64 or fname[:1] not in (" ", "*"):
            raise OutputError(f"{path}:{n}: not a sha256sum line: {line!r}")
        out[fname[1:]] = digest.lower()
    return out


def verify_manifest(folder: str | os.PathLike[str], name: str = MANIFEST_NAME) -> list[str]:
    """Check every file listed in ``folder/name``; return the problems (empty when all match)."""
    folder = Path(folder)
    problems = []
    for fname, expected in read_manifest(folder / name).items():
        path = folder / fname
        if not path.is_file():
            problems.append(f"{fname}: missing")
        elif digest_file(path).sha256 != expected:
            problems.append(f"{fname}: checksum mismatch")
    return problems


__all__ = [
    "MANIFEST_NAME",
    "FileDigest",
    "digest_file",
    "digest_files",
    "read_manifest",
    "verify_manifest",
    "write_manifest",
]

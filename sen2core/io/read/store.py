"""Read-only access to the files of a product: a directory or a zip archive read in place.

A store maps POSIX paths relative to the product root (``GRANULE/.../MTD_TL.xml``) to
bytes (for XML and JSON, read with Python) and to GDAL paths (for rasters). A zip
archive is never extracted: small metadata files are read with :mod:`zipfile` and
rasters are opened by GDAL through ``/vsizip/``.

Every member path is resolved before use, and one that leads outside the product
root (``..`` in a metadata entry such as ``IMAGE_FILE``, or a symbolic link to a file
elsewhere) is refused with :class:`~sen2core.errors.InputProductError`: otherwise a
crafted product could make sen2core read, and publish, any raster the process can see.

Metadata reads are capped at :data:`METADATA_MAX_BYTES`: the largest real file (an
``MTD_TL.xml`` with its angle grids) is well under 1 MiB, and a small archive can
inflate to gigabytes (a 1.8 MB ``.SAFE.zip`` whose ``MTD_MSIL1C.xml`` inflates to
1 GiB cost 2.4 GB of memory). The size the zip directory or the file system declares
is checked first, and the read itself stops one byte past the cap, in case it lies.
"""

from __future__ import annotations

import os
import posixpath
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

from sen2core.errors import InputProductError, MetadataError, Sen2CoreError
from sen2core.io.failures import describe_bytes
from sen2core.io.remote import RemoteObjects

__all__ = ["METADATA_MAX_BYTES", "DirStore", "ProductStore", "RemoteStore", "ZipStore"]

#: Largest metadata file read (bytes, uncompressed).
METADATA_MAX_BYTES = 64 * 2**20


def _too_large(product: object, rel: str, size: str) -> MetadataError:
    return MetadataError(product, f"{rel}: {size}; metadata files larger than "
                                  f"{describe_bytes(METADATA_MAX_BYTES)} are refused")  # fmt: skip


def _read_capped(f: IO[bytes], product: object, rel: str) -> bytes:
    data = f.read(METADATA_MAX_BYTES + 1)
    if len(data) > METADATA_MAX_BYTES:
        raise _too_large(product, rel, f"more than {describe_bytes(METADATA_MAX_BYTES)} read")
    return data


class ProductStore(Protocol):
    """What the product reader needs from a storage layout."""

    @property
    def display(self) -> str:
        """Human-readable location of the product root (for messages)."""
        ...

    def exists(self, rel: str) -> bool:
        """True if the file exists."""
        ...

    def read_bytes(self, rel: str) -> bytes:
        """Content of a (small) file; ``FileNotFoundError`` if absent, MetadataError if larger than
        :data:`METADATA_MAX_BYTES`."""
        ...

    def size(self, rel: str) -> int | None:
        """Size in bytes, or None if absent."""
        ...

    def listdir(self, rel: str = "") -> list[str]:
        """Names of the entries directly under a directory (files and directories)."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """Sorted relative paths of files matching a glob pattern (``*`` stays within one level)."""
        ...

    def gdal_path(self, rel: str) -> str:
        """Path GDAL opens (a filesystem path or a ``/vsizip/`` path)."""
        ...

    def tail(self, rel: str, n: int) -> bytes:
        """The last ``n`` bytes of a file (fewer if it is shorter); ``FileNotFoundError`` if absent."""
        ...

    def link_target(self, rel: str) -> str | None:
        """Where a member that is a symbolic link leads (inside the product), or None."""
        ...

    def blocks(self, rel: str, size: int) -> Iterator[bytes]:
        """The content of a file of any size, ``size`` bytes at a time; ``FileNotFoundError`` if absent."""
        ...


def _clean(rel: str) -> str:
    rel = rel.replace("\\", "/")
    while rel.startswith("./"):
        rel = rel[2:]
    return rel.lstrip("/")


def _outside(display: str, rel: str, target: str) -> InputProductError:
    return InputProductError(display, f"{rel} leads to {target}, outside the product (a symbolic link or '..' in "
                                      "the path): refused")  # fmt: skip


class DirStore:
    """Files under a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    @property
    def display(self) -> str:
        return str(self.root)

    def _path(self, rel: str) -> Path:
        """The member's real path (symbolic links followed).

        Raises
        ------
        InputProductError
            If it is outside the product root.
        """
        real = (self.root / _clean(rel)).resolve()
        if real != self.root and not real.is_relative_to(self.root):
            raise _outside(self.display, rel, str(real))
        return real

    def exists(self, rel: str) -> bool:
        return self._path(rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        path = self._path(rel)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > METADATA_MAX_BYTES:
                raise _too_large(self.display, _clean(rel), describe_bytes(size))
            return _read_capped(f, self.display, _clean(rel))

    def size(self, rel: str) -> int | None:
        p = self._path(rel)
        return p.stat().st_size if p.is_file() else None

    def listdir(self, rel: str = "") -> list[str]:
        p = self._path(rel) if rel else self.root
        try:
            return sorted(os.listdir(p))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def glob(self, pattern: str) -> list[str]:
        # Matches are checked when they are used (a link leaving the product is refused then).
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.glob(_clean(pattern)) if p.is_file())

    def gdal_path(self, rel: str) -> str:
        return str(self._path(rel))

    def tail(self, rel: str, n: int) -> bytes:
        with self._path(rel).open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read()

    def link_target(self, rel: str) -> str | None:
        real = self._path(rel)
        if real == (self.root / _clean(rel)):
            return None
        return real.relative_to(self.root).as_posix()

    def blocks(self, rel: str, size: int) -> Iterator[bytes]:
        with open(self._path(rel), "rb", buffering=0) as f:
            while block := f.read(size):
                yield block


def _glob_regex(pattern: str) -> re.Pattern[str]:
    # fnmatch's "*" crosses "/"; a SAFE glob must not, so only "*" and "?" are special
    # and neither matches a separator.
    out = []
    for ch in _clean(pattern):
        out.append("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch))
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


class ZipStore:
    """Files under a prefix of a zip archive, read in place (a local file, or a remote object by range)."""

    def __init__(self, archive: Path | str, prefix: str, names: frozenset[str],
                 opener: Callable[[], IO[bytes]] | None = None, vsi: str | None = None) -> None:  # fmt: skip
        self.archive: Path | str = archive.resolve() if isinstance(archive, Path) else archive
        self.prefix = prefix
        self._names = names
        self._opener = opener
        self._vsi = vsi if vsi is not None else f"/vsizip/{Path(self.archive).as_posix()}"
        self._files = frozenset(n[len(prefix) :] for n in names if n.startswith(prefix) and not n.endswith("/"))

    def _open(self) -> IO[bytes]:
        return self._opener() if self._opener is not None else open(self.archive, "rb")

    @contextmanager
    def _zip(self) -> Iterator[zipfile.ZipFile]:
        with self._open() as f, zipfile.ZipFile(f) as zf:
            yield zf

    @classmethod
    def open(cls, archive: Path | str, opener: Callable[[], IO[bytes]] | None = None,
             vsi: str | None = None) -> tuple[ZipStore, list[str]]:  # fmt: skip
        """Open an archive; return a store with an empty prefix and all member names.

        ``archive`` is a local path, or the href of a remote archive read through ``opener``
        (a seekable file) and opened by GDAL as ``vsi`` (``/vsizip//vsis3/...``).

        Raises
        ------
        InputProductError
            If the file is not a readable zip archive.
        """
        store = cls(archive, "", frozenset(), opener, vsi)
        try:
            with store._zip() as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            if isinstance(exc, Sen2CoreError):
                raise  # a remote archive that is missing, forbidden or unreachable: said as such
            raise InputProductError(archive, f"not a readable zip archive ({exc})") from exc
        return cls(archive, "", frozenset(names), opener, vsi), names

    def with_prefix(self, prefix: str) -> ZipStore:
        """The same archive seen from a sub-directory (``"X.SAFE/"``)."""
        return ZipStore(self.archive, prefix, self._names, self._opener, self._vsi)

    @property
    def display(self) -> str:
        return f"{self.archive}!/{self.prefix}" if self.prefix else str(self.archive)

    def _member(self, rel: str) -> str:
        """The member path below the prefix, normalised.

        Raises
        ------
        InputProductError
            If ``..`` takes it out of the product's folder in the archive.
        """
        clean = _clean(rel)
        norm = posixpath.normpath(clean) if clean else clean
        if norm == ".." or norm.startswith("../"):
            raise _outside(self.display, rel, f"{self.archive}!/{posixpath.normpath(self.prefix + clean)}")
        return norm

    def exists(self, rel: str) -> bool:
        return self._member(rel) in self._files

    def read_bytes(self, rel: str) -> bytes:
        rel = self._member(rel)
        if rel not in self._files:
            raise FileNotFoundError(f"{self.display}/{rel}")
        member = self.prefix + rel
        try:
            with self._zip() as zf:
                info = zf.getinfo(member)
                if info.file_size > METADATA_MAX_BYTES:
                    raise _too_large(self.archive, member, f"{describe_bytes(info.file_size)} uncompressed")
                with zf.open(info) as f:
                    return _read_capped(f, self.archive, member)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
            # A bad CRC, a truncated or undecodable member, an unknown compression method.
            raise MetadataError(self.archive, f"{member}: cannot be read from the archive ({exc})") from exc

    def size(self, rel: str) -> int | None:
        rel = self._member(rel)
        if rel not in self._files:
            return None
        with self._zip() as zf:
            return zf.getinfo(self.prefix + rel).file_size

    def listdir(self, rel: str = "") -> list[str]:
        base = _clean(rel)
        base = f"{base}/" if base else ""
        out = set()
        for f in self._files:
            if f.startswith(base):
                out.add(f[len(base) :].split("/", 1)[0])
        return sorted(out)

    def glob(self, pattern: str) -> list[str]:
        rx = _glob_regex(pattern)
        return sorted(f for f in self._files if rx.match(f))

    def gdal_path(self, rel: str) -> str:
        return f"{self._vsi}/{self.prefix}{self._member(rel)}"

    def tail(self, rel: str, n: int) -> bytes:
        rel = self._member(rel)
        if rel not in self._files:
            raise FileNotFoundError(f"{self.display}/{rel}")
        with self._zip() as zf, zf.open(self.prefix + rel) as f:
            size = zf.getinfo(self.prefix + rel).file_size
            f.seek(max(0, size - n))
            return f.read()

    def link_target(self, rel: str) -> str | None:
        # Members are read as stored: GDAL's /vsizip/ and zipfile follow no links.
        return None

    def blocks(self, rel: str, size: int) -> Iterator[bytes]:
        rel = self._member(rel)
        if rel not in self._files:
            raise FileNotFoundError(f"{self.display}/{rel}")
        with self._zip() as zf, zf.open(self.prefix + rel) as f:
            while block := f.read(size):
                yield block


#: Files looked for at the root of a remote folder that cannot be listed (HTTP): the
#: product metadata of each layout.
_HTTP_ROOT_FILES = ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml", "manifest.safe", "tileInfo.json")
#: Files of an AWS tile folder besides ``tileInfo.json``.
_HTTP_AWS_FILES = ("metadata.xml", "product_metadata.xml") + tuple(
    f"B{b}.jp2" for b in ("01", "02", "03", "04", "05", "06", "07", "08", "8A", "09", "10", "11", "12")
)


class RemoteStore:
    """Files under a remote folder (``s3://bucket/prefix``, ``https://host/path``), read in place.

    Object storage is listed once (one ``ListObjectsV2`` per 1000 files); an HTTP server
    cannot be listed, so the files are learnt from what the product names: the metadata
    files of each layout are probed with ``HEAD`` requests, and ``manifest.safe``, when
    there is one, lists the others. Metadata is read by range requests, capped at
    :data:`METADATA_MAX_BYTES` + 1 bytes; rasters are opened by GDAL at :meth:`gdal_path`.
    """

    def __init__(self, objects: RemoteObjects, prefix: str) -> None:
        self.objects = objects
        self.prefix = prefix.strip("/")
        listed = objects.list(self.prefix)
        self.listable = listed is not None
        self._sizes: dict[str, int | None] = dict(listed or {})
        self._checked: set[str] = set()
        if not self.listable:
            for name in _HTTP_ROOT_FILES:
                self.exists(name)
            if self._sizes.get("tileInfo.json") is not None:
                for name in _HTTP_AWS_FILES:
                    self.exists(name)
            if self._sizes.get("manifest.safe") is not None:
                self._learn_manifest()

    def _learn_manifest(self) -> None:
        # Imported here: the manifest parser is a metadata module, not a storage one.
        from sen2core.io.read.manifest import parse_manifest

        try:
            listed = parse_manifest(self.read_bytes("manifest.safe"), product=self.display).file_sizes
        except MetadataError:
            return  # the layout adapter reports a bad manifest when it reads it
        for rel, size in listed.items():
            self._sizes.setdefault(_clean(rel), size)

    @property
    def display(self) -> str:
        return self.objects.href(self.prefix)

    def _key(self, rel: str) -> str:
        clean = posixpath.normpath(_clean(rel)) if _clean(rel) else ""
        if clean == ".." or clean.startswith("../"):
            raise _outside(self.display, rel, self.objects.href(posixpath.normpath(f"{self.prefix}/{clean}")))
        return f"{self.prefix}/{clean}" if self.prefix else clean

    def _rel(self, rel: str) -> str:
        clean = _clean(rel)
        return posixpath.normpath(clean) if clean else clean

    @property
    def empty(self) -> bool:
        """True if nothing was found under the folder."""
        return not any(v is not None for v in self._sizes.values())

    def exists(self, rel: str) -> bool:
        return self.size(rel) is not None

    def size(self, rel: str) -> int | None:
        key, r = self._key(rel), self._rel(rel)
        if not self.listable and r not in self._checked:
            # Sizes from manifest.safe are what it declares: the server's is asked once.
            self._sizes[r] = self.objects.head(key)
            self._checked.add(r)
        return self._sizes.get(r)

    def read_bytes(self, rel: str) -> bytes:
        key = self._key(rel)
        size = self.size(rel)
        if size is None:
            raise FileNotFoundError(self.objects.href(key))
        if size > METADATA_MAX_BYTES:
            raise _too_large(self.display, self._rel(rel), describe_bytes(size))
        data = self.objects.get(key, 0, METADATA_MAX_BYTES)
        if len(data) > METADATA_MAX_BYTES:
            raise _too_large(self.display, self._rel(rel), f"more than {describe_bytes(METADATA_MAX_BYTES)} read")
        return data

    def listdir(self, rel: str = "") -> list[str]:
        base = self._rel(rel)
        base = f"{base}/" if base else ""
        return sorted({k[len(base):].split("/", 1)[0] for k, v in self._sizes.items()
                       if v is not None and k.startswith(base)})  # fmt: skip

    def glob(self, pattern: str) -> list[str]:
        rx = _glob_regex(pattern)
        return sorted(k for k, v in self._sizes.items() if v is not None and rx.match(k))

    def gdal_path(self, rel: str) -> str:
        return self.objects.vsi(self._key(rel))

    def tail(self, rel: str, n: int) -> bytes:
        if not self.exists(rel):
            raise FileNotFoundError(self.objects.href(self._key(rel)))
        return self.objects.tail(self._key(rel), n)

    def link_target(self, rel: str) -> str | None:
        # Object storage and HTTP have no symbolic links.
        return None

    def blocks(self, rel: str, size: int) -> Iterator[bytes]:
        total = self.size(rel)
        if total is None:
            raise FileNotFoundError(self.objects.href(self._key(rel)))
        for start in range(0, total, size):
            yield self.objects.get(self._key(rel), start, min(start + size, total) - 1)

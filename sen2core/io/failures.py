"""What went wrong in an I/O call: GDAL's own words, a full disk, a transient condition; space checks.

GDAL reports one failure as a chain of exceptions (``RasterioIOError("Read failed. See
previous exception for details.")`` caused by ``CPLE_AppDefinedError`` caused by ...).
The outer message says nothing and the inner ones cannot travel from a Dask worker
(see :mod:`sen2core.errors`), so the readers and writers raise library errors whose text
is :func:`gdal_message`, classified with :func:`is_disk_full` and :func:`is_transient_os`.

Files that are written through a memory map or in place (kept band files, staged
rasters) are allocated with :func:`allocate` first: a sparse file on a full disk
fails only when a page is written back, as a ``SIGBUS`` that kills the process.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator

from sen2core.errors import DiskFullError, OutputError

__all__ = [
    "DISK_FULL_ERRNOS",
    "TRANSIENT_ERRNOS",
    "allocate",
    "describe_bytes",
    "free_bytes",
    "gdal_message",
    "is_disk_full",
    "is_transient_http",
    "is_transient_os",
    "require_free",
    "write_failure",
]

#: ``errno`` values of a full file system or an exhausted quota.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

#: ``errno`` values that a retry a little later may not meet again: network file systems and
#: sockets (a stale NFS handle, a timeout, a reset connection), busy or interrupted calls.
#: Not ``EIO``: on a local disk it is a hardware fault, which retries only hide.
TRANSIENT_ERRNOS = frozenset({
    errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET,
    errno.ECONNABORTED, errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN,
})  # fmt: skip

# GDAL (and libtiff through it) reports system errors as text, not as errno.
_DISK_FULL_TEXTS = tuple(os.strerror(e) for e in sorted(DISK_FULL_ERRNOS))
_TRANSIENT_TEXTS = tuple(os.strerror(e) for e in sorted(TRANSIENT_ERRNOS))
# rasterio's outer message when the real one is in the chain.
_GENERIC = "see previous exception for details"
_MAX_MESSAGE = 400


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then its causes and contexts, outermost first, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]


def _text(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def gdal_message(exc: BaseException) -> str:
    """GDAL's account of a failure, in one line: the outermost specific message and the root cause.

    ``Read failed. See previous exception for details.`` becomes, for a truncated JPEG 2000
    tile, ``B04.jp2, band 1: IReadBlock failed at X offset 0, Y offset 0: opj_get_decoded_tile()
    failed; Stream too short``.
    """
    texts: list[str] = []
    for e in _chain(exc):
        t = _text(e)
        if t and _GENERIC not in t.lower() and not any(t in seen for seen in texts):
            texts.append(t)
    if not texts:
        return _text(exc) or type(exc).__name__
    message = texts[0] if len(texts) == 1 else f"{texts[0]}; {texts[-1]}"
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _matches(exc: BaseException, errnos: frozenset[int], texts: tuple[str, ...]) -> bool:
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in errnos:
            return True
        t = str(e).lower()
        if any(x.lower() in t for x in texts):
            return True
    return False


def is_disk_full(exc: BaseException) -> bool:
    """True if ``exc`` (or anything in its chain) says that the disk or the quota is full."""
    return _matches(exc, DISK_FULL_ERRNOS, _DISK_FULL_TEXTS)


def is_transient_os(exc: BaseException) -> bool:
    """True if ``exc`` (or anything in its chain) is a system error of :data:`TRANSIENT_ERRNOS`."""
    return _matches(exc, TRANSIENT_ERRNOS, _TRANSIENT_TEXTS)


#: GDAL's words (``/vsicurl/``, ``/vsis3/``) for a remote read that failed on a condition a later
#: retry may not meet: a 429 or 5xx answer (after GDAL's own ``GDAL_HTTP_MAX_RETRY`` retries) or
#: a timeout. A 403 or 404 is not among them.
_TRANSIENT_HTTP_RE = re.compile(r"HTTP response code: (429|5\d\d)\b|Timeout was reached|Operation timed out|"
                                r"Connection reset by peer", re.IGNORECASE)  # fmt: skip


def is_transient_http(exc: BaseException) -> bool:
    """True if GDAL's message for ``exc`` tells of a transient remote failure (429, 5xx, timeout)."""
    return bool(_TRANSIENT_HTTP_RE.search(gdal_message(exc)))


def free_bytes(path: str | os.PathLike[str]) -> int | None:
    """Bytes free for this user on the file system of ``path`` (its nearest existing parent); None if unknown."""
    p = os.path.abspath(os.fspath(path))
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def describe_bytes(n: int | float | None) -> str:
    """``1.6 GiB``, ``512.0 MiB``, ``12.0 KiB``, ``300 B``; ``an unknown amount`` for None."""
    if n is None:
        return "an unknown amount"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def require_free(folder: str | os.PathLike[str], needed: int, what: str) -> None:
    """Fail now, before anything is written, if ``folder``'s file system has less than ``needed`` bytes free.

    Raises
    ------
    DiskFullError
        Naming ``folder``, ``what`` needs the space, how much it needs and how much is free.
    """
    free = free_bytes(folder)
    if free is not None and free < needed:
        raise DiskFullError(folder, f"not enough free space: {what} need {describe_bytes(needed)}, "
                                    f"{describe_bytes(free)} free")  # fmt: skip


def allocate(path: str | os.PathLike[str], size: int, folder: str | os.PathLike[str], what: str) -> None:
    """Reserve the first ``size`` bytes of the existing file ``path`` on disk (no sparse holes left).

    A file written through a memory map (or in place) must own its blocks: a write into a
    hole of a file on a full disk is a ``SIGBUS`` (memory map) or a failure deep inside
    GDAL, where allocating fails now with one clear error. File systems without
    ``fallocate`` are handled by the C library (it writes the blocks instead).

    Raises
    ------
    DiskFullError
        The file system has no room for ``size`` bytes.
    OSError
        Any other failure to open or allocate the file.
    """
    failure: DiskFullError | None = None
    fd = os.open(path, os.O_RDWR)
    try:
        if size > 0:
            os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in DISK_FULL_ERRNOS:
            raise
        failure = DiskFullError(folder, f"no space left for {what}: {describe_bytes(size)} needed, "
                                        f"{describe_bytes(free_bytes(folder))} free")  # fmt: skip
    finally:
        os.close(fd)
    if failure is not None:
        raise failure  # outside the except block: no chain (see sen2core.errors)


def write_failure(exc: BaseException, path: str | os.PathLike[str], what: str, needed: int | None = None
                  ) -> OutputError:  # fmt: skip
    """The library error for a failed write of ``path``.

    :class:`DiskFullError` if the disk is full (naming the folder, the file, the space
    ``needed`` when known and the space free), else ``OutputError("{path}: {what} ({GDAL's
    message})")``. Raise it outside the ``except`` block that caught ``exc`` (see
    :mod:`sen2core.errors`).
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    free = free_bytes(folder)
    # libtiff reports some failures of a full disk only as "IO error writing tag data" (the
    # "No space left on device" goes to stderr): a file system left with less than the write
    # needed (1 MiB when unknown) is full too.
    if is_disk_full(exc) or (free is not None and free < (needed or 2**20)):
        need = f"{describe_bytes(needed)} needed, " if needed else ""
        return DiskFullError(folder, f"no space left on the device for {os.path.basename(path)} "
                                     f"({need}{describe_bytes(free)} free)")  # fmt: skip
    return OutputError(f"{path}: {what} ({gdal_message(exc)})")

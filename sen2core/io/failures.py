"""What went wrong in an I/O call: GDAL's own words, a transient condition.

GDAL reports one failure as a chain of exceptions (``RasterioIOError("Read failed. See
previous exception for details.")`` caused by ``CPLE_AppDefinedError`` caused by ...).
The outer message says nothing and the inner ones cannot travel from a Dask worker
(see :mod:`sen2core.errors`), so the readers and writers raise library errors whose text
is :func:`gdal_message`, classified with :func:`is_transient_os`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

__all__ = ["TRANSIENT_ERRNOS", "gdal_message", "is_transient_os"]

#: ``errno`` values that a retry a little later may not meet again: network file systems and
#: sockets (a stale NFS handle, a timeout, a reset connection), busy or interrupted calls.
#: Not ``EIO``: on a local disk it is a hardware fault, which retries only hide.
TRANSIENT_ERRNOS = frozenset({
    errno.EAGAIN, errno.EBUSY, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET,
    errno.ECONNABORTED, errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN,
})  # fmt: skip

# GDAL (and libtiff through it) reports system errors as text, not as errno.
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


def is_transient_os(exc: BaseException) -> bool:
    """True if ``exc`` (or anything in its chain) is a system error of :data:`TRANSIENT_ERRNOS`."""
    return _matches(exc, TRANSIENT_ERRNOS, _TRANSIENT_TEXTS)

"""Verifying the files of a Level-1C product against the checksums of its ``manifest.safe``.

ESA lists a checksum for every file of a SAFE product (``byteStream/checksum``:
``SHA3-256`` from processing baseline 03.00, ``MD5`` before). A bit flipped inside a
JPEG 2000 band often still decodes, into wrong pixels: only the checksum tells.
:func:`verify_checksums` streams each file the processing reads through its digest, on
threads (hashlib releases the GIL on large updates), before anything is decoded, and
raises :class:`~sen2core.errors.ChecksumError` naming the product, the file and both
digests at the first mismatch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sen2core.errors import BandReadError, ChecksumError, TransientIOError
from sen2core.io.failures import is_transient_os
from sen2core.io.read.store import ProductStore
from sen2core.parallel import map_parallel
from sen2core.stopwatch import Stopwatch

__all__ = ["ALGORITHMS", "Verification", "verify_checksums"]

#: Checksum names of ``manifest.safe`` that can be verified, and their hash constructors.
ALGORITHMS: dict[str, Callable[[], Any]] = {"SHA3-256": hashlib.sha3_256, "MD5": hashlib.md5}

_BLOCK = 4 << 20


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_checksums` checked (recorded in the run summary)."""

    files: int
    """Files whose digest matched the manifest's."""
    bytes: int
    """Bytes read to check them."""
    seconds: float
    """Wall time of the check."""
    algorithms: tuple[str, ...]
    """Checksum names met (``SHA3-256``, ``MD5``)."""
    unchecked: tuple[str, ...]
    """Files read by the processing that the manifest lists without a checksum it can verify
    (or does not list, or no manifest at all)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view."""
        out = asdict(self)
        out["seconds"] = round(self.seconds, 3)
        out["algorithms"], out["unchecked"] = list(self.algorithms), list(self.unchecked)
        return out


def _digest(store: ProductStore, product: str, rel: str, algorithm: str) -> tuple[str, int]:
    """Hex digest and size of one member, read in blocks (runs on a thread)."""
    h = ALGORITHMS[algorithm]()
    size = 0
    failure: Exception | None = None
    try:
        for block in store.blocks(rel, _BLOCK):
            h.update(block)
            size += len(block)
    except FileNotFoundError:
        failure = BandReadError(product, f"{rel}: listed in manifest.safe but not found")
    except OSError as exc:
        message = f"{rel}: cannot be read to verify its checksum ({exc})"
        failure = TransientIOError(f"{product}: {message}") if is_transient_os(exc) else BandReadError(product, message)
    if failure is not None:
        raise failure  # outside the except block: no chain (see sen2core.errors)
    return h.hexdigest(), size


def verify_checksums(store: ProductStore, product: str, checksums: Mapping[str, tuple[str, str]],
                     files: Sequence[str], *, workers: int = 2) -> Verification:  # fmt: skip
    """Check ``files`` (paths relative to the product root) against the manifest's checksums.

    Parameters
    ----------
    store
        The product's files.
    product
        Product reference for messages.
    checksums
        ``manifest.safe``'s relative path to ``(algorithm, hex digest)``
        (:attr:`~sen2core.io.read.metadata.ManifestMetadata.checksums`).
    files
        The files to check, each at most once.
    workers
        Threads hashing files at once.

    Returns
    -------
    Verification

    Raises
    ------
    ChecksumError
        A file's digest differs from the manifest's (the message names the file and
        both digests); the first in ``files`` order when several do.
    BandReadError
        A file listed cannot be read or is missing.
    TransientIOError
        A read failed on a system error worth a retry.
    """
    watch = Stopwatch()
    todo = [(rel, *checksums[rel]) for rel in dict.fromkeys(files)
            if rel in checksums and checksums[rel][0] in ALGORITHMS]  # fmt: skip
    unchecked = tuple(rel for rel in dict.fromkeys(files) if rel not in {t[0] for t in todo})
    results = map_parallel(_digest, [(store, product, rel, algorithm) for rel, algorithm, _ in todo],
                           n_jobs=max(1, workers))  # fmt: skip
    for (rel, algorithm, expected), (actual, _) in zip(todo, results, strict=True):
        if actual != expected:
            raise ChecksumError(product, f"{rel}: {algorithm} checksum mismatch: manifest.safe lists {expected}, "
                                         f"the file gives {actual} (damaged or not the product's file)")  # fmt: skip
    return Verification(
        files=len(todo), bytes=sum(size for _, size in results), seconds=watch.elapsed(),
        algorithms=tuple(sorted({a for _, a, _ in todo})), unchecked=unchecked,
    )  # fmt: skip

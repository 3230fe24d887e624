"""Packaging: one Level-2A product written atomically in the layout the run chose.

The layouts themselves live in :mod:`sen2core.io.write`: :mod:`~sen2core.io.stac.cog_product`
(cloud-native, the STAC item written last marks it done) and
:mod:`~sen2core.io.write.safe` (Sen2Cor's L2A SAFE, ``MTD_MSIL2A.xml`` last). This
module chooses one and makes the result appear atomically.

Everything is built in a hidden sibling folder (``.{name}.tmp-{host}-{pid}-{hex}``)
and renamed into place once complete, so a crash never leaves anything that looks
finished; the temporary folders of dead processes are removed by the next run.
Adding the product to the output collection (:func:`sen2core.io.stac.collection.update_collection`)
is a publishing step after the rename, not part of writing.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

from sen2core.errors import ConfigurationError, OutputError
from sen2core.io.stac.cog_product import cog_outputs, item_name, write_cog
from sen2core.io.write.raster import jp2_stage_spec
from sen2core.io.write.rasters import ProductRasters
from sen2core.io.write.safe import safe_outputs, write_safe

log = logging.getLogger(__name__)

FORMATS = ("cog", "safe")


def is_done(folder: str | os.PathLike[str]) -> bool:
    """A product is done when the file its layout writes last exists (a crash never leaves it).

    SAFE folders (``*.SAFE``): ``MTD_MSIL2A.xml``; COG folders: the STAC item ``{folder name}.json``.
    """
    folder = Path(folder)
    if folder.suffix == ".SAFE":
        return (folder / "MTD_MSIL2A.xml").is_file()
    return (folder / item_name(folder)).is_file()


# ----------------------------------------------------------------------------- atomic folders

_HOST = re.sub(r"[^A-Za-z0-9]+", "", socket.gethostname())[:32] or "host"


def temporary_sibling(final: Path) -> Path:
    """A fresh hidden folder next to ``final`` (same filesystem, so the final rename is atomic).

    Its name records host and process id (``.{name}.tmp-{host}-{pid}-{hex}``) so that a
    later run can tell a dead writer's leftovers from a live writer's work.
    """
    tmp = final.parent / f".{final.name}.tmp-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    return tmp


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def remove_stale_siblings(final: Path) -> list[Path]:
    """Remove the temporary and retired folders of ``final`` left by dead processes on this host.

    Folders of live processes, of other hosts (a shared filesystem) and of the
    unnamed older scheme (no pid) are left alone. Returns the folders removed.
    """
    removed: list[Path] = []
    pattern = re.compile(rf"^\.{re.escape(final.name)}\.(?:tmp|old)-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[0-9a-f]+$")
    if not final.parent.is_dir():
        return removed
    for p in final.parent.iterdir():
        m = pattern.match(p.name)
        if m and m["host"] == _HOST and int(m["pid"]) != os.getpid() and not _pid_alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
            log.info("removed %s, left by a dead process", p)
    return removed


def _fsync_tree(folder: Path) -> None:
    # The rename publishes the product: make its content durable first, so that a power
    # cut after the rename cannot leave a complete-looking product with lost data.
    for p in sorted(folder.rglob("*"), reverse=True):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_folder(tmp: Path, final: Path, overwrite: bool = True) -> bool:
    """Rename the finished ``tmp`` to ``final``; return False if another writer got there first.

    A previous product at ``final`` is first renamed aside (one atomic step), then the
    new one takes its place and the old one is deleted: at no moment does a half
    product sit at ``final``. Without ``overwrite``, a complete product that appeared
    at ``final`` meanwhile (a concurrent run) is kept and ``tmp`` is discarded.
    """
    _fsync_tree(tmp)
    retired = None
    if final.exists():
        if not overwrite and is_done(final):
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        retired = final.parent / f".{final.name}.old-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.replace(final, retired)
    try:
        os.replace(tmp, final)
    except OSError as exc:
        # Lost a race: another writer renamed its product in between.
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not is_done(final):
            raise OutputError(f"{final}: cannot publish the product: {exc}") from exc
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    finally:
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    _fsync_dir(final.parent)
    return True


def layout_outputs(product: ProductRasters, fmt: str) -> tuple[dict[str, tuple[Any, Any]], Any]:
    """The rasters of layout ``fmt`` (relative file name -> (lazy array, spec)) and their staged files' spec."""
    if fmt == "cog":
        return cog_outputs(product), lambda spec: spec
    return safe_outputs(product), jp2_stage_spec


def write_product(
    product: ProductRasters,
    final: Path,
    fmt: str = "cog",
    staged: Path | None = None,
    collection_href: str | None = None,
) -> list[str]:
    """Write ``product`` in layout ``fmt`` to ``final`` atomically; return the file names (relative).

    The product is built in a temporary sibling folder and renamed to ``final`` once
    complete (replacing a previous product there). Temporary folders that dead
    processes left beside ``final`` are removed first. ``staged``: that temporary
    folder, already holding the staged rasters of :func:`layout_outputs` (a run by
    processing tiles); it is finished and published. ``collection_href``: the collection
    the COG product's item belongs to, relative to the item.

    Raises
    ------
    ConfigurationError
        Unknown format.
    OutputError
        A file cannot be written or the product cannot be put in place.
    """
    if fmt not in FORMATS:
        raise ConfigurationError(f"output format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    final = Path(final)
    if staged is None:
        remove_stale_siblings(final)
    tmp = temporary_sibling(final) if staged is None else Path(staged)
    try:
        if fmt == "cog":
            files = write_cog(product, tmp, item_name(final), store=staged is None, collection_href=collection_href)
        else:
            files = write_safe(product, tmp, store=staged is None)
        publish_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


__all__ = [
    "FORMATS",
    "is_done",
    "layout_outputs",
    "publish_folder",
    "remove_stale_siblings",
    "temporary_sibling",
    "write_product",
]

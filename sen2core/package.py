"""Packaging: the rasters and metadata of one Level-2A product, written atomically in one layout.

The pipeline hands over every raster the run can produce as lazy dask arrays under
a *logical name* (``B02_10m``, ``SCL_20m``, ``AOT_60m``, ``TCI_10m`` ...; see
:func:`logical_name`). A layout chooses which of them to write and where:

``cog``
    Cloud-native: one COG per raster at its native (or the run's) resolution,
    ``{logical}.tif``, then a quicklook ``{id}_QL.png``, the metadata
    (``L2A_SUMMARY.json``, ``MTD_MSIL2A.xml``), the checksum manifest
    ``checksums.sha256`` and, last, the STAC item ``{id}.json``, which marks it done.
``safe``
    Sen2Cor's L2A SAFE (JPEG 2000 in ``IMG_DATA/R10m|R20m|R60m``, ``QI_DATA``,
    ``MTD_MSIL2A.xml`` last).

Everything is built in a hidden sibling folder (``.{name}.tmp-{host}-{pid}-{hex}``)
and renamed into place once complete, so a crash never leaves anything that looks
finished; the temporary folders of dead processes are removed by the next run.
Adding the product to the output collection (:func:`sen2core.io.stac.update_collection`)
is a publishing step after the rename, not part of writing.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import dask.array as da

from sen2core.errors import ConfigurationError, OutputError
from sen2core.io import stac
from sen2core.io.checksums import MANIFEST_NAME, digest_files, write_manifest
from sen2core.io.failures import write_failure
from sen2core.io.jsonutil import strict_json_dumps
from sen2core.io.product import Product
from sen2core.io.quicklook import write_quicklook
from sen2core.io.write import RasterSpec, cog_tasks, collect_negative_fractions
from sen2core.kernels import encode
from sen2core.kernels.scene_class.legend import SCL_CLASSES

log = logging.getLogger(__name__)

FORMATS = ("cog", "safe")
#: Metadata summary of the run (JSON), written before the checksums and the STAC item.
SUMMARY_NAME = "L2A_SUMMARY.json"
#: ``MTD_MSIL2A.xml`` content of the COG layout (same builder as the SAFE layout).
MTD_NAME = "MTD_MSIL2A.xml"
RESOLUTIONS = (10, 20, 60)


def logical_name(kind: str, res: int) -> str:
    """``{kind}_{res}m``: ``kind`` is a band (``B8A``) or a layer (``SCL``, ``AOT``, ``MSK_CLDPRB``, ``TCI``)."""
    return f"{kind}_{res}m"


def split_name(name: str) -> tuple[str, int]:
    """Inverse of :func:`logical_name`."""
    kind, _, res = name.rpartition("_")
    return kind, int(res.rstrip("m"))


@dataclass(frozen=True)
class ProductRasters:
    """Everything one run can write: lazy rasters by logical name, plus what packaging needs to know."""

    product: Product
    """The Level-1C product (metadata source)."""
    l2a_id: str
    rasters: Mapping[str, tuple[da.Array, RasterSpec]]
    """Logical name -> (lazy array, raster description)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """Run metadata: ids, LUT id, class percentages, atmosphere summary, configuration, seconds per stage."""
    resolution: int | None = None
    """Run resolution (None = all, as Sen2Cor's default run)."""


def finest(rasters: Mapping[str, Any]) -> dict[str, str]:
    """For each kind, the logical name at the finest resolution present."""
    best: dict[str, tuple[int, str]] = {}
    for name in rasters:
        kind, res = split_name(name)
        if kind not in best or res < best[kind][0]:
            best[kind] = (res, name)
    return {kind: name for kind, (_, name) in best.items()}


#: Native resolution of each MSI band (B10 is never an output, as in Sen2Cor).
NATIVE_RESOLUTION = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20, "B09": 60,
    "B11": 20, "B12": 20,
}  # fmt: skip


def cog_selection(rasters: Mapping[str, Any], resolution: int | None = None) -> dict[str, str]:
    """COG layout: file name -> logical name, each kind once.

    A 20 or 60 m run writes everything at that resolution; otherwise (default or 10 m,
    which like Sen2Cor makes all three) each band at its native resolution and every
    other layer at its finest.
    """
    chosen = {}
    for kind, name in finest(rasters).items():
        if resolution in (20, 60):
            name = logical_name(kind, resolution)
        elif logical_name(kind, NATIVE_RESOLUTION.get(kind, 0)) in rasters:
            name = logical_name(kind, NATIVE_RESOLUTION[kind])
        if name in rasters:
            chosen[f"{name}.tif"] = name
    return dict(sorted(chosen.items()))


def item_name(folder: str | os.PathLike[str]) -> str:
    """File name of the STAC item of a COG product folder: ``{folder name}.json``."""
    return f"{Path(folder).name}.json"


def quicklook_name(l2a_id: str) -> str:
    """File name of the quicklook PNG: ``{l2a_id}_QL.png``."""
    return f"{l2a_id}_QL.png"


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


# ----------------------------------------------------------------------------- COG layout


def product_metadata(product: ProductRasters, bands: list[str]) -> dict[str, Any]:
    """``MTD_MSIL2A.xml``-style quality figures of a run, as JSON (the ``product_metadata`` of the summary).

    Parameters
    ----------
    product
        The run.
    bands
        Reflectance bands written (for ``BOA_ADD_OFFSET_VALUES_LIST``).
    """
    summary = product.summary
    percentages: Mapping[str, Any] = summary.get("class_percentages") or {}
    atmosphere: Mapping[str, Any] = summary.get("atmosphere") or {}
    l1c = product.product
    offset = 0 if summary.get("legacy_encoding") else encode.BOA_ADD_OFFSET
    qi: dict[str, Any] = {k: v for k, v in percentages.items()}
    # Sen2Cor writes these three as 0.0: it has no estimate of them.
    qi.update(RADIATIVE_TRANSFER_ACCURACY=0.0, WATER_VAPOUR_RETRIEVAL_ACCURACY=0.0, AOT_RETRIEVAL_ACCURACY=0.0)
    for key in ("AOT_RETRIEVAL_METHOD", "GRANULE_MEAN_AOT", "WV_RETRIEVAL_METHOD", "GRANULE_MEAN_WV", "OZONE_SOURCE",
                "OZONE_VALUE"):  # fmt: skip
        if atmosphere.get(key) is not None:
            qi[key] = atmosphere[key]
    return {
        "Product_Info": {
            "PRODUCT_URI": product.l2a_id, "PROCESSING_LEVEL": "Level-2A", "PRODUCT_TYPE": "S2MSI2A",
            "SPACECRAFT_NAME": l1c.spacecraft, "SENSING_TIME": None if l1c.sensing_time is None
            else l1c.sensing_time.isoformat(), "TILE_ID": l1c.tile_id, "L1C_PRODUCT_URI": l1c.product_id,
            "L1C_PROCESSING_BASELINE": l1c.processing_baseline,
        },
        "Product_Image_Characteristics": {
            "QUANTIFICATION_VALUES_LIST": {
                "BOA_QUANTIFICATION_VALUE": encode.BOA_QUANTIFICATION,
                "AOT_QUANTIFICATION_VALUE": encode.AOT_QUANTIFICATION,
                "WVP_QUANTIFICATION_VALUE": encode.WVP_QUANTIFICATION,
            },
            "BOA_ADD_OFFSET_VALUES_LIST": {b: offset for b in bands},
            "Scene_Classification_List": [
                {"SCENE_CLASSIFICATION_INDEX": c.value, "SCENE_CLASSIFICATION_TEXT": c.sen2cor_text}
                for c in SCL_CLASSES
            ],
        },
        "Auxiliary_Data_Info": {"LUT_List": [summary["lut_id"]] if summary.get("lut_id") else []},
        "Quality_Indicators_Info": {
            "Cloud_Coverage_Assessment": percentages.get("CLOUDY_PIXEL_PERCENTAGE"),
            "Image_Content_QI": qi,
        },
    }  # fmt: skip


def _write_mtd_xml(product: ProductRasters, folder: Path, selection: Mapping[str, str]) -> bool:
    """``MTD_MSIL2A.xml`` through the SAFE layout's builder (always written: True)."""
    # Imported here, not at the top: io.mtd_l2a imports this module (issue #17 moves both apart).
    # An ImportError is a broken installation and must surface, not drop the file silently.
    from sen2core.io.mtd_l2a import product_metadata_xml, safe_naming

    # IMAGE_FILE entries name the COGs of this folder (without extension), as the SAFE names its JP2s.
    images = [Path(f).stem for f in selection]
    xml = product_metadata_xml(product, safe_naming(product), images, dt.datetime.now(dt.UTC))
    try:
        (folder / MTD_NAME).write_bytes(xml)
    except OSError as exc:
        raise write_failure(exc, folder / MTD_NAME, "cannot write") from exc
    return True


def record_negative_fractions(product: ProductRasters, kinds: Mapping[str, str], folder: Path) -> None:
    """Put the per-band percentage of negative BOA (counted while writing) into the run summary."""
    found = collect_negative_fractions(folder)
    if found and isinstance(product.summary.get("atmosphere"), dict):
        per_band = {kinds[name]: pct for name, pct in found.items() if name in kinds}
        product.summary["atmosphere"]["NEGATIVE_BOA_PERCENTAGE"] = dict(sorted(per_band.items()))


def store_group(spec: RasterSpec) -> bool:
    """Which store an output is computed in: the 10 m rasters apart from the others.

    The 10 m rasters are corrected from the 10 m inputs; the others come from the working
    grid (the 60 m ones aggregate the 20 m results, so they share that correction and stay
    with it). Two stores hold about half as much in flight as one.
    """
    return bool(spec.geobox.resolution < 15)


def cog_outputs(product: ProductRasters) -> dict[str, tuple[Any, Any]]:
    """The rasters of the COG layout: file name -> (lazy array, spec)."""
    selection = cog_selection(product.rasters, product.resolution)
    if not selection:
        raise OutputError(f"{product.l2a_id}: no raster to write")
    return {fname: product.rasters[name] for fname, name in selection.items()}


def write_cog(
    product: ProductRasters,
    folder: Path,
    item_file: str | None = None,
    store: bool = True,
    collection_href: str | None = None,
) -> list[str]:
    """Write the COG layout into ``folder`` (an empty temporary folder); return the file names.

    With ``store=False`` the rasters are already in their staged files in ``folder``
    (written window by window: :func:`sen2core.io.write.store_blocks`); they are
    encoded and the rest of the product is written.

    Order: rasters, quicklook, metadata (``L2A_SUMMARY.json``, ``MTD_MSIL2A.xml``),
    checksum manifest, and the STAC item (``item_file``, default ``{l2a_id}.json``) last.
    ``collection_href``: the output collection, relative to the item (see
    :func:`sen2core.io.stac.build_item`).

    Raises
    ------
    OutputError
        A file cannot be written, or the STAC item would be invalid.
    """
    selection = cog_selection(product.rasters, product.resolution)
    outputs = cog_outputs(product)
    dask.compute(*cog_tasks(outputs, folder, group=store_group, store=store))
    kinds = {fname: split_name(name)[0] for fname, name in selection.items()}
    record_negative_fractions(product, kinds, folder)
    by_kind = {kind: fname for fname, kind in kinds.items()}

    ql = quicklook_name(product.l2a_id)
    write_quicklook(folder / ql, folder / by_kind["TCI"] if "TCI" in by_kind else None,
                    folder / by_kind["SCL"] if "SCL" in by_kind else None, title=product.l2a_id)  # fmt: skip

    bands = [k for k in sorted(by_kind) if k in NATIVE_RESOLUTION]
    summary = dict(product.summary, product_metadata=product_metadata(product, bands))
    try:
        (folder / SUMMARY_NAME).write_text(strict_json_dumps(summary, indent=1), encoding="utf-8")
    except OSError as exc:
        raise write_failure(exc, folder / SUMMARY_NAME, "cannot write") from exc
    files = [
        stac.FileAsset("thumbnail", ql, "Quicklook: true colour and scene classification", "image/png",
                       ("thumbnail", "overview")),
        stac.FileAsset("summary", SUMMARY_NAME, "Run summary and product metadata (JSON)", "application/json",
                       ("metadata",)),
    ]  # fmt: skip
    if _write_mtd_xml(product, folder, selection):
        files.append(stac.FileAsset("product_metadata", MTD_NAME, "Level-2A product metadata (MTD_MSIL2A.xml)",
                                    "application/xml", ("metadata",)))  # fmt: skip

    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    digests = digest_files(folder, names)
    write_manifest(folder, digests)
    digests.update(digest_files(folder, [MANIFEST_NAME]))
    files.append(stac.FileAsset("checksums", MANIFEST_NAME, "SHA-256 checksums of the product files (sha256sum -c)",
                                "text/plain", ("metadata",)))  # fmt: skip

    rasters = [stac.RasterAsset(fname, kinds[fname], product.rasters[name][1]) for fname, name in selection.items()]
    item = stac.build_item(
        product.product, product.l2a_id, product.summary, rasters, files, digests, collection_href=collection_href
    )
    # Validated before it is written: an invalid item must not mark the product done.
    stac.validate_item(item)
    item_file = item_file or f"{product.l2a_id}.json"
    stac.write_item(item, folder / item_file)
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def layout_outputs(product: ProductRasters, fmt: str) -> tuple[dict[str, tuple[Any, Any]], Any]:
    """The rasters of layout ``fmt`` (relative file name -> (lazy array, spec)) and their staged files' spec."""
    if fmt == "cog":
        return cog_outputs(product), lambda spec: spec
    from sen2core.io.safe_l2a import safe_outputs
    from sen2core.io.write import jp2_stage_spec

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
            from sen2core.io.safe_l2a import write_safe

            files = write_safe(product, tmp, store=staged is None)
        publish_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


__all__ = [
    "FORMATS",
    "MTD_NAME",
    "SUMMARY_NAME",
    "ProductRasters",
    "cog_selection",
    "is_done",
    "item_name",
    "layout_outputs",
    "logical_name",
    "product_metadata",
    "publish_folder",
    "quicklook_name",
    "remove_stale_siblings",
    "split_name",
    "write_product",
]

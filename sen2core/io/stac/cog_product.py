"""The cloud-native layout of a Level-2A product: COGs, quicklook, metadata, checksums, STAC item.

One COG per raster at its native (or the run's) resolution, ``{logical}.tif``, then a
quicklook ``{id}_QL.png``, the metadata (``L2A_SUMMARY.json``, ``MTD_MSIL2A.xml``), the
checksum manifest ``checksums.sha256`` and, last, the STAC item ``{id}.json``, which
marks the product done. This is the one writer that builds the STAC item, so it sits
above :mod:`sen2core.io.stac.item` (which only describes what the encoders wrote).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dask.base import compute

from sen2core.errors import OutputError
from sen2core.io.failures import write_failure
from sen2core.io.jsonutil import strict_json_dumps
from sen2core.io.stac import item as stac
from sen2core.io.stac.validation import validate_item
from sen2core.io.write.checksums import MANIFEST_NAME, digest_files, write_manifest
from sen2core.io.write.mtd_l2a import product_metadata_xml, safe_naming
from sen2core.io.write.quicklook import write_quicklook
from sen2core.io.write.raster import cog_tasks
from sen2core.io.write.rasters import (
    NATIVE_RESOLUTION,
    ProductRasters,
    finest,
    logical_name,
    record_negative_fractions,
    split_name,
    store_group,
)
from sen2core.kernels import encode
from sen2core.kernels.scene_class.legend import SCL_CLASSES

__all__ = [
    "MTD_NAME",
    "SUMMARY_NAME",
    "cog_outputs",
    "cog_selection",
    "item_name",
    "product_metadata",
    "quicklook_name",
    "write_cog",
]

#: Metadata summary of the run (JSON), written before the checksums and the STAC item.
SUMMARY_NAME = "L2A_SUMMARY.json"
#: ``MTD_MSIL2A.xml`` content of the COG layout (same builder as the SAFE layout).
MTD_NAME = "MTD_MSIL2A.xml"


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


def _write_mtd_xml(product: ProductRasters, folder: Path, selection: Mapping[str, str]) -> None:
    """``MTD_MSIL2A.xml`` through the SAFE layout's builder."""
    # IMAGE_FILE entries name the COGs of this folder (without extension), as the SAFE names its JP2s.
    images = [Path(f).stem for f in selection]
    xml = product_metadata_xml(product, safe_naming(product), images, dt.datetime.now(dt.UTC))
    try:
        (folder / MTD_NAME).write_bytes(xml)
    except OSError as exc:
        raise write_failure(exc, folder / MTD_NAME, "cannot write") from exc


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
    (written window by window: :func:`sen2core.io.write.raster.store_blocks`); they are
    encoded and the rest of the product is written.

    Order: rasters, quicklook, metadata (``L2A_SUMMARY.json``, ``MTD_MSIL2A.xml``),
    checksum manifest, and the STAC item (``item_file``, default ``{l2a_id}.json``) last.
    ``collection_href``: the output collection, relative to the item (see
    :func:`sen2core.io.stac.item.build_item`).

    Raises
    ------
    OutputError
        A file cannot be written, or the STAC item would be invalid.
    """
    selection = cog_selection(product.rasters, product.resolution)
    outputs = cog_outputs(product)
    compute(*cog_tasks(outputs, folder, group=store_group, store=store))
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
    _write_mtd_xml(product, folder, selection)
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
    validate_item(item)
    item_file = item_file or f"{product.l2a_id}.json"
    stac.write_item(item, folder / item_file)
    return sorted(p.name for p in folder.iterdir() if p.is_file())

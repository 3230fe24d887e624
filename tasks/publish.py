"""Publishing: add the run's finished products to the STAC collection at the output root.

Each product commits itself (its STAC item is written last, inside its folder); the
collection at the root is the shared index, updated once per run by one task, so
concurrent products never write the same file. Already-done (skipped) products are
published again: the update is idempotent, and a collection that missed an item (a
crash between a product's commit and the collection update) is repaired by the next
run that meets it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.logs import forward_logs
from tasks.models import ProductOutcome
from tasks.retry import SERVICE_RETRIES

log = logging.getLogger(__name__)

__all__ = ["find_stac_item", "publish_products"]


def find_stac_item(folder: str | Path) -> Path | None:
    """The STAC item a product folder holds (the JSON document of type ``Feature``), or None.

    Recognised by content rather than by file name, so that the packaging layer
    stays free to name it.
    """
    root = Path(folder)
    if not root.is_dir():
        return None
    for path in sorted(root.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("type") == "Feature" and "stac_version" in doc:
            return path
    return None


def item_paths(outcomes: Iterable[ProductOutcome]) -> list[Path]:
    """STAC items of the done and skipped products that have one."""
    found = []
    for outcome in outcomes:
        if outcome.status != "failed" and outcome.output_dir:
            item = find_stac_item(outcome.output_dir)
            if item is not None:
                found.append(item)
    return found


@task(
    name="publish",
    cache_policy=NO_CACHE,
    **SERVICE_RETRIES,
)
def publish_products(output_root: str, outcomes: list[ProductOutcome]) -> str | None:
    """Update the STAC collection at ``output_root`` with the items of the finished products.

    Returns
    -------
    str or None
        The collection file, or None when no product of the run has a STAC item
        (nothing finished, or a layout without STAC items).
    """
    with forward_logs():
        items = item_paths(outcomes)
        if not items:
            log.info("no STAC item to publish")
            return None
        from sen2core.io.stac.collection import update_collection

        collection = update_collection(output_root, items)
        log.info("published %d item(s) in %s", len(items), collection)
        return str(collection)

"""Backfill over a date range from a static STAC catalog, with overwrite off and on."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pystac
import pytest

from flows.backfill import backfill
from tasks.models import ProcessingOptions, Source, parse_l1c_name

# Prefect's task timeout injects an exception into the worker thread at its next bytecode, which
# may be inside a garbage-collector callback (then reported as "unraisable"), and the servers'
# background threads close connections at GC times that vary from run to run. Neither changes
# the outcomes asserted here, which are read back from the flow states and the API.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


def l1c_item(safe: Path, cloud_cover: float) -> pystac.Item:
    """A STAC item of a Level-1C product whose ``safe`` asset is the SAFE folder."""
    product_id = safe.name.removesuffix(".SAFE")
    parsed = parse_l1c_name(product_id)
    assert parsed is not None
    tile, sensing = parsed
    geometry = {"type": "Polygon", "coordinates": [[[11.0, 45.0], [11.1, 45.0], [11.1, 45.1], [11.0, 45.1],
                                                    [11.0, 45.0]]]}  # fmt: skip
    item = pystac.Item(product_id, geometry, [11.0, 45.0, 11.1, 45.1], sensing,
                       {"eo:cloud_cover": cloud_cover, "s2:mgrs_tile": tile})  # fmt: skip
    item.add_asset("safe", pystac.Asset(str(safe), media_type="application/octet-stream", roles=["data"]))
    return item


@pytest.fixture(scope="module")
def catalog(flow_products: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A static catalog of the three good products; the one of 2023-07-16 reports 80 % cloud."""
    root = tmp_path_factory.mktemp("stac-l1c")
    cat = pystac.Catalog("l1c", "Synthetic Level-1C products")
    for day, cloud in (("2023-07-14", 5.0), ("2023-07-15", 10.0), ("2023-07-16", 80.0)):
        cat.add_item(l1c_item(flow_products[day], cloud))
    cat.normalize_hrefs(str(root))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def test_backfill_from_a_static_catalog_skips_done_products_unless_overwrite(
    prefect_api: str, catalog: Path, in_process_runner: Callable[..., Any], read_artifacts: Callable[[Any], list[Any]],
    tmp_path: Path,
) -> None:  # fmt: skip
    out = tmp_path / "l2a"
    flow = backfill.with_options(task_runner=in_process_runner())
    params: dict[str, Any] = dict(
        source=Source(kind="stac-catalog", href=str(catalog)), output_root=str(out), start=dt.date(2023, 7, 15),
        end=dt.date(2023, 7, 16), tiles=["32TQM"], max_concurrency=1, options=ProcessingOptions(resolution=20),
    )  # fmt: skip
    first = flow(**params, return_state=True)
    assert first.is_completed()
    summary = first.result()
    # 07-14 is outside the range; 07-15 and 07-16 are in it.
    assert [(o.sensing_time.day if o.sensing_time else None, o.status) for o in summary.outcomes] == [
        (15, "done"),
        (16, "done"),
    ]
    assert {"progress", "table", "markdown"} <= {a.type for a in read_artifacts(first)}
    written = {o.product_id: Path(o.output_dir or "").stat().st_mtime_ns for o in summary.outcomes}

    skipped = flow(**params)
    assert [o.status for o in skipped.outcomes] == ["skipped", "skipped"]

    redone = flow(**{**params, "overwrite": True, "max_cloud_cover": 50.0})
    # The cloud filter drops 07-16 (80 %); 07-15 is processed again and replaced.
    assert [o.status for o in redone.outcomes] == ["done"]
    (again,) = redone.outcomes
    assert Path(again.output_dir or "").stat().st_mtime_ns > written[again.product_id]
    collection = json.loads((out / "collection.json").read_text())
    assert len([ln for ln in collection["links"] if ln["rel"] == "item"]) == 2

"""Flow: process one Level-1C product (manual runs from the UI, or the unit other flows map)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect_dask import DaskTaskRunner

from tasks.product import process_l1c


@flow(name="sen2core-process-product", task_runner=DaskTaskRunner(), log_prints=True)
def process_product_flow(
    l1c_href: str,
    output_root: str = "l2a",
    resolution: int | None = None,
    sc_only: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Process ``l1c_href`` (SAFE folder, .SAFE.zip or MTD_MSIL1C.xml) into ``output_root``.

    The task runs on a Dask cluster (a local one sized to the machine by default) and the
    product's dask-parallel kernels run on that same cluster.
    """
    summary = process_l1c.submit(l1c_href, output_root, resolution, sc_only, overwrite).result()
    print(f"{summary['l2a_id']}: {summary['status']} -> {summary['output_dir']}")
    return summary

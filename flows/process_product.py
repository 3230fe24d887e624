"""Flow ``sen2core-process-product``: one Level-1C product (manual runs from the UI, operator reruns)."""

from __future__ import annotations

from prefect import flow

from flows.common import run_products
from flows.runner import Sen2CoreTaskRunner, scheduler_loss_named
from sen2core.redact import install_log_redaction
from tasks.models import L1CRef, ProcessingOptions, RunSummary

__all__ = ["process_product_flow"]


@flow(name="sen2core-process-product", task_runner=Sen2CoreTaskRunner(), log_prints=True)  # type: ignore[arg-type]
def process_product_flow(
    l1c_href: str,
    output_root: str = "l2a",
    options: ProcessingOptions | None = None,
    overwrite: bool = False,
    product_timeout_minutes: float = 60.0,
    dask_address: str | None = None,
) -> RunSummary:
    """Process one Level-1C product into ``output_root``, publish it and report.

    Parameters
    ----------
    l1c_href
        SAFE folder, ``.SAFE.zip`` or ``MTD_MSIL1C.xml``, readable by the Dask workers.
    output_root
        Root of the output tree and of the STAC collection.
    options
        Processing options (resolution, scene classification only, aerosol model,
        cirrus, DEM, output format).
    overwrite
        Reprocess the product even if it is already done.
    product_timeout_minutes
        The product task fails (without retry) when it runs longer.
    dask_address
        Address of an existing Dask scheduler (``tcp://host:8786``); default: see
        :mod:`flows.runner`.

    Returns
    -------
    RunSummary
        One outcome. The run ends ``Failed`` (raising :class:`flows.common.RunFailed`)
        if the product failed, or with :class:`flows.runner.DaskSchedulerLost` if its Dask
        scheduler went away.
    """
    install_log_redaction()  # this process's log records are masked (flows may run outside the CLI)
    with scheduler_loss_named():
        return run_products("process-product", [L1CRef.from_href(l1c_href)], output_root, options, overwrite,
                            max_concurrency=1, product_timeout_minutes=product_timeout_minutes)  # fmt: skip

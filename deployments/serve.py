"""Serve the three sen2core deployments from one process: no work pool, no worker.

The alternative to ``prefect.yaml`` + ``prefect deploy`` + ``prefect worker start`` for a
single machine: this process registers the deployments, runs the daily schedule and
executes triggered runs until it is stopped (Ctrl-C).

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    export SEN2CORE_INBOX=/data/l1c-inbox SEN2CORE_OUTPUT=/data/l2a
    python deployments/serve.py

Same schedules and parameters as ``deployments/prefect.yaml``.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

from flows.backfill import backfill
from flows.daily_ingest import daily_ingest
from flows.process_product import process_product_flow


def main() -> None:
    """Register the deployments and serve them until interrupted."""
    source = {"kind": "inbox", "href": os.environ["SEN2CORE_INBOX"]}
    output_root = os.environ["SEN2CORE_OUTPUT"]
    serve(
        daily_ingest.to_deployment(
            name="daily-ingest", cron="0 6 * * *",
            parameters={"source": source, "output_root": output_root, "lookback_hours": 24, "max_concurrency": 2},
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
            tags=["sen2core", "ingest"],
        ),
        backfill.to_deployment(
            name="backfill", parameters={"source": source, "output_root": output_root, "max_concurrency": 2},
            tags=["sen2core", "backfill"],
        ),
        process_product_flow.to_deployment(
            name="one-product", parameters={"output_root": output_root}, tags=["sen2core", "manual"]
        ),
    )  # fmt: skip


if __name__ == "__main__":
    main()

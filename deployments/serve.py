"""Serve the three sen2core deployments from one process: no work pool, no worker.

The alternative to ``prefect.yaml`` + ``prefect deploy`` + ``prefect worker start`` for a
single machine: this process registers the deployments, runs the daily schedule and
executes triggered runs until it is stopped (Ctrl-C).

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    export SEN2CORE_INBOX=/data/l1c-inbox SEN2CORE_OUTPUT=/data/l2a
    python deployments/serve.py

Same flows, schedules and parameters as ``deployments/prefect.yaml``, under names of their
own (``daily-ingest-served``, ``backfill-served``, ``one-product-served``), so the two ways
never overwrite each other's deployments. Entrypoints are module paths, as in
``prefect.yaml`` (the functions Prefect sends to Dask workers are then pickled by reference
to importable modules).

If the server already has the deployments of ``prefect.yaml``, this script stops with one
line and changes nothing: its daily schedule would run the ingest a second time. Start a
worker for them instead (``prefect worker start --pool sen2core-process``), or delete them
first (``prefect deployment delete sen2core-daily-ingest/daily-ingest`` ...).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]
from prefect import serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from prefect.types.entrypoint import EntrypointType

from flows.backfill import backfill
from flows.daily_ingest import daily_ingest
from flows.process_product import process_product_flow

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
#: Appended to the names of ``prefect.yaml``'s deployments for those served here.
SUFFIX = "-served"
FLOWS: dict[str, Any] = {
    "flows.daily_ingest.daily_ingest": daily_ingest,
    "flows.backfill.backfill": backfill,
    "flows.process_product.process_product_flow": process_product_flow,
}


def prefect_yaml_deployments(path: Path = PREFECT_YAML) -> list[str]:
    """Full names (``flow/deployment``) of the deployments that ``prefect deploy`` creates from ``path``."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [f"{FLOWS[d['entrypoint']].name}/{d['name']}" for d in config["deployments"]]


def existing(names: list[str]) -> list[str]:
    """Those of ``names`` that the Prefect server has."""
    found = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            found.append(name)
    return found


def main() -> None:
    """Register the deployments and serve them until interrupted; exit 1 beside ``prefect.yaml``'s."""
    clash = existing(prefect_yaml_deployments())
    if clash:
        print(f"deployments/serve.py: error: the Prefect server at {PREFECT_API_URL.value()} already has the "
              f"deployments of deployments/prefect.yaml ({', '.join(clash)}), run by the work pool's worker; serving "
              "beside them would run the daily ingest twice. Start their worker (prefect worker start --pool "
              "sen2core-process) or delete them first (prefect deployment delete NAME).", file=sys.stderr)  # fmt: skip
        sys.exit(1)
    source = {"kind": "inbox", "href": os.environ["SEN2CORE_INBOX"]}
    output_root = os.environ["SEN2CORE_OUTPUT"]
    module = EntrypointType.MODULE_PATH
    serve(
        daily_ingest.to_deployment(
            name=f"daily-ingest{SUFFIX}", cron="0 6 * * *", entrypoint_type=module,
            parameters={"source": source, "output_root": output_root, "lookback_hours": 24, "max_concurrency": 2},
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE),
            tags=["sen2core", "ingest"],
        ),
        backfill.to_deployment(
            name=f"backfill{SUFFIX}", entrypoint_type=module,
            parameters={"source": source, "output_root": output_root, "max_concurrency": 2},
            tags=["sen2core", "backfill"],
        ),
        process_product_flow.to_deployment(
            name=f"one-product{SUFFIX}", entrypoint_type=module, parameters={"output_root": output_root},
            tags=["sen2core", "manual"],
        ),
    )  # fmt: skip


if __name__ == "__main__":
    main()

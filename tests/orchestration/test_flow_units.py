"""Orchestration pieces without a flow run: discovery sources, retry rules, cluster choice, CLI wiring."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flows.runner import ADDRESS_ENV, CLUSTER_ENV, Sen2CoreTaskRunner, load_cluster_spec, local_cluster_kwargs
from sen2core.errors import InputProductError, MetadataError, TransientIOError
from tasks.discover import discover_inbox, discover_stac_api, filter_refs
from tasks.models import L1CRef, TimeWindow, normalise_tile
from tasks.retry import is_transient

ROOT = Path(__file__).resolve().parents[2]
JULY = TimeWindow.from_dates(dt.date(2023, 7, 1), dt.date(2023, 7, 31))


# ------------------------------------------------------------------ discovery


def test_inbox_discovery_reads_names_and_filters(flow_products: dict[str, Path], tmp_path: Path) -> None:
    for path in flow_products.values():
        (tmp_path / path.name).symlink_to(path)
    (tmp_path / "notes.txt").write_text("x")
    refs = discover_inbox(tmp_path, JULY)
    assert [r.sensing_time.day for r in refs if r.sensing_time] == [14, 15, 15, 16]  # sorted by time
    assert {r.tile for r in refs} == {"32TQM"}
    assert discover_inbox(tmp_path, TimeWindow.from_dates(dt.date(2023, 7, 16), dt.date(2023, 7, 16)))[0].href.endswith(
        flow_products["2023-07-16"].name)  # fmt: skip
    assert discover_inbox(tmp_path, JULY, tiles=["31TCJ"]) == []
    with pytest.raises(FileNotFoundError):
        discover_inbox(tmp_path / "missing")


def test_filter_refs_deduplicates_and_applies_cloud_limit() -> None:
    a = L1CRef.from_href("/in/S2A_MSIL1C_20230715T093555_N0509_R064_T32TQM_20230715T113706.SAFE")
    zipped = L1CRef.from_href("/in/S2A_MSIL1C_20230715T093555_N0509_R064_T32TQM_20230715T113706.SAFE.zip")
    cloudy = a.model_copy(update={"product_id": "other", "cloud_cover": 90.0})
    assert filter_refs([a, zipped, cloudy], max_cloud_cover=50) == [a]
    assert normalise_tile("t2tqm") == "02TQM"
    with pytest.raises(ValueError):
        normalise_tile("TILE")


class _FakeStacApi(BaseHTTPRequestHandler):
    """A minimal STAC API: landing page with item-search and query conformance, and ``/search``."""

    items: list[dict[str, Any]] = []
    searches: list[dict[str, Any]] = []

    def _send(self, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._send({
            "type": "Catalog", "id": "fake", "stac_version": "1.0.0", "description": "fake STAC API",
            "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                           "https://api.stacspec.org/v1.0.0/item-search#query"],
            "links": [{"rel": "self", "href": base + "/"}, {"rel": "root", "href": base + "/"},
                      {"rel": "search", "href": base + "/search", "method": "POST",
                       "type": "application/geo+json"}],
        })  # fmt: skip

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).searches.append(body)
        self._send({"type": "FeatureCollection", "features": type(self).items, "links": []})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def stac_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeStacApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _api_item(product_id: str, when: str, cloud: float, grid: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature", "stac_version": "1.0.0", "id": product_id, "bbox": [11, 45, 12, 46],
        "geometry": {"type": "Polygon", "coordinates": [[[11, 45], [12, 45], [12, 46], [11, 46], [11, 45]]]},
        "properties": {"datetime": when, "eo:cloud_cover": cloud, **grid},
        "assets": {"product_metadata": {"href": f"/data/{product_id}.SAFE/MTD_MSIL1C.xml"},
                   "thumbnail": {"href": f"/data/{product_id}.jpg"}},
        "links": [],
    }  # fmt: skip


def test_stac_api_discovery_sends_the_window_and_filters_tiles_and_cloud(stac_api: str) -> None:
    _FakeStacApi.searches = []
    _FakeStacApi.items = [
        _api_item("S2A_MSIL1C_20230715T093555_N0509_R064_T32TQM_20230715T113706", "2023-07-15T09:35:55Z", 12.0,
                  {"mgrs:utm_zone": 32, "mgrs:latitude_band": "T", "mgrs:grid_square": "QM"}),
        _api_item("S2B_MSIL1C_20230715T101559_N0509_R122_T33UUP_20230715T120234", "2023-07-15T10:15:59Z", 5.0,
                  {"grid:code": "MGRS-33UUP"}),
        _api_item("S2B_MSIL1C_20230716T101559_N0509_R122_T32TQM_20230716T120234", "2023-07-16T10:15:59Z", 70.0,
                  {"s2:mgrs_tile": "32TQM"}),
    ]  # fmt: skip
    window = TimeWindow.from_dates(dt.date(2023, 7, 15), dt.date(2023, 7, 16))
    refs = discover_stac_api(stac_api, window, tiles=["32TQM"], max_cloud_cover=50.0)
    assert [r.product_id for r in refs] == ["S2A_MSIL1C_20230715T093555_N0509_R064_T32TQM_20230715T113706"]
    assert refs[0].href.endswith(".SAFE/MTD_MSIL1C.xml") and refs[0].cloud_cover == 12.0
    (search,) = _FakeStacApi.searches
    assert search["collections"] == ["sentinel-2-l1c"]
    assert search["datetime"].startswith("2023-07-15T00:00:00") and "2023-07-17T00:00:00" in search["datetime"]
    assert search["query"] == {"eo:cloud_cover": {"lte": 50.0}}
    assert [r.tile for r in discover_stac_api(stac_api, window)] == ["32TQM", "33UUP", "32TQM"]


# ---------------------------------------------------------------- retry rules


class _HTTPError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TransientIOError("storage busy"), True),
        (ConnectionResetError("reset"), True),
        (_HTTPError(503), True),
        (_HTTPError(429), True),
        (_HTTPError(404), False),
        (InputProductError("x.SAFE", "not a product"), False),
        (MetadataError("x.SAFE", "truncated MTD_MSIL1C.xml"), False),
        (ValueError("bad option"), False),
    ],
)
def test_only_transient_errors_are_retried(exc: BaseException, expected: bool) -> None:
    assert is_transient(exc) is expected


def test_worker_loss_is_transient_and_product_timeouts_are_not() -> None:
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError
    from prefect.task_engine import TaskRunTimeoutError

    assert is_transient(KilledWorker("key", "tcp://w:1", 3))
    assert is_transient(FutureCancelledError("sum-0865", reason="unknown"))
    assert is_transient(TaskRunTimeoutError("late"), retry_timeouts=False) is False
    assert is_transient(TimeoutError("read timed out"), retry_timeouts=True) is True


# ------------------------------------------------------------- cluster choice


def test_cluster_choice_parameter_then_code_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    default = Sen2CoreTaskRunner()
    default._choose_cluster()
    assert default.cluster_kwargs == local_cluster_kwargs() and default.address is None
    assert local_cluster_kwargs()["threads_per_worker"] == 1

    monkeypatch.setenv(ADDRESS_ENV, "tcp://10.0.0.1:8786")
    from_env = Sen2CoreTaskRunner()
    from_env._choose_cluster()
    assert from_env.address == "tcp://10.0.0.1:8786"
    coded = Sen2CoreTaskRunner(cluster_kwargs={"n_workers": 1})
    coded._choose_cluster()
    assert coded.address is None and coded.cluster_kwargs == {"n_workers": 1}

    monkeypatch.delenv(ADDRESS_ENV)
    spec = tmp_path / "cluster.yaml"
    spec.write_text("cluster_class: distributed.LocalCluster\ncluster_kwargs: {n_workers: 3}\n"
                    "adapt_kwargs: {maximum: 4}\n")  # fmt: skip
    monkeypatch.setenv(CLUSTER_ENV, str(spec))
    from_spec = Sen2CoreTaskRunner()
    from_spec._choose_cluster()
    assert (from_spec.cluster_kwargs, from_spec.adapt_kwargs) == ({"n_workers": 3}, {"maximum": 4})


@pytest.mark.parametrize("name", ["slurm.yaml", "kubernetes.yaml"])
def test_documented_cluster_specs_are_valid(name: str) -> None:
    spec = load_cluster_spec(ROOT / "deployments" / "dask" / name)
    assert spec["cluster_class"] in ("dask_jobqueue.SLURMCluster", "dask_kubernetes.operator.KubeCluster")
    assert spec["cluster_kwargs"] and spec["adapt_kwargs"]


# ------------------------------------------------------------------------ CLI


def test_library_and_cli_do_not_import_prefect() -> None:
    code = "import sys, sen2core.cli, sen2core.pipeline; print(any(m.split('.')[0] == 'prefect' for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_flow_cli_rejects_two_sources(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sen2core.cli import main

    result = CliRunner().invoke(main, ["flow", "backfill", "--inbox", str(tmp_path), "--stac-api", "http://x/",
                                       "--start", "2023-07-01", "--end", "2023-07-02"])  # fmt: skip
    assert result.exit_code == 2 and "exactly one of" in result.output

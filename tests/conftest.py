"""Shared test fixtures: paths to the committed test data and a SAFE skeleton builder.

Test data (``tests/data``, provenance in ``tests/data/SOURCES.md``) holds real
Sentinel-2 metadata files and the 900 m AWS sample. Band rasters of SAFE products are
never committed: :class:`SafeBuilder` writes tiny JPEG 2000 files with rasterio into a
temporary directory, next to copies of the real metadata.
"""

from __future__ import annotations

import re
import shutil
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sen2core.errors import MetadataWarning
from sen2core.io.read.metadata import BAND_IDS, NOMINAL_RESOLUTION
from sen2core.io.read.opening import open_product
from sen2core.io.read.product import Product

DATA = Path(__file__).parent / "data"
METADATA = DATA / "metadata"
AWS_900M = DATA / "l1c-T19UDP-20170729-900m"

# The L1C SAFE used as a template for synthetic products (PB 05.09, offsets -1000).
_TEMPLATE = (
    METADATA
    / "gdal-autotest-sentinel2/fake_l1c_processing_baseline_5_09"
    / ("S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234.SAFE")
)
_TEMPLATE_GRANULE = "GRANULE/L1C_T34UCF_A033753_20230823T095553"
# Real angle grids (with NaN outside detector footprints) spliced into the template.
_ANGLES_SOURCE = (
    METADATA
    / "stactools-sentinel2"
    / ("S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE")
    / "GRANULE/L1C_T46RER_A032448_20210908T043714/MTD_TL.xml"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/data/golden/ from this run instead of comparing against it",
    )


def metadata_product_paths() -> list[Path]:
    """Every product of the metadata fixtures, as the path ``open_product`` takes."""
    roots: list[Path] = []
    for mtd in sorted(METADATA.rglob("*")):
        if not mtd.is_file():
            continue
        is_root = re.match(r"MTD_MSIL(1C|2A)\.xml$", mtd.name, re.IGNORECASE) or mtd.name == "tileInfo.json"
        if is_root and mtd.parent not in roots:
            roots.append(mtd.parent)
    return roots


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "metadata_product" in metafunc.fixturenames:
        paths = metadata_product_paths()
        metafunc.parametrize(
            "metadata_product", paths, ids=[p.relative_to(METADATA).as_posix().split("/")[1][:60] for p in paths]
        )


def open_recording(href: Any, **kwargs: Any) -> Product:
    """Open a product, checking that each recorded warning was emitted as MetadataWarning
    and that nothing else warned."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        product = open_product(href, **kwargs)
    emitted = [str(w.message) for w in caught if issubclass(w.category, MetadataWarning)]
    assert emitted == [f"{product.product_id}: {m}" for m in product.warnings]
    others = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, MetadataWarning)]
    assert not others, others
    return product


@pytest.fixture(scope="session")
def open_s2() -> Callable[..., Product]:
    """``open_product`` that records and checks its MetadataWarnings (filterwarnings=error safe)."""
    return open_recording


def synthetic_dn(band: str, shape: tuple[int, int]) -> np.ndarray:
    """Deterministic DN pattern of a synthetic band: a gradient, with a no-data (0) left strip."""
    rows, cols = np.indices(shape)
    k = BAND_IDS.index(band)
    dn = (1000 + (rows * 7 + cols * 3 + k * 100) % 9000).astype(np.uint16)
    dn[:, : shape[1] // 20 + 1] = 0
    return dn


@pytest.fixture(scope="session")
def band_pattern() -> Callable[[str, tuple[int, int]], np.ndarray]:
    """The DN pattern :class:`SafeBuilder` writes for a band."""
    return synthetic_dn


@pytest.fixture(scope="session")
def expected_toa() -> Callable[[str, tuple[int, int], float], np.ndarray]:
    """Reference TOA reflectance of a synthetic band: (DN + offset) / 10000, NaN where DN is 0."""

    def compute(band: str, shape: tuple[int, int], offset: float) -> np.ndarray:
        dn = synthetic_dn(band, shape).astype(np.float32)
        out = (dn + np.float32(offset)) / np.float32(10000)
        out[dn == 0] = np.nan
        return out

    return compute


def write_band(path: Path, data: np.ndarray, *, ulx: float, uly: float, res: float, epsg: int = 32634) -> None:
    """Write a lossless single-band uint16 JPEG 2000 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype="uint16",
        crs=f"EPSG:{epsg}",
        transform=from_origin(ulx, uly, res, res),
        QUALITY=100,
        REVERSIBLE="YES",
    ) as ds:
        ds.write(data, 1)


class SafeBuilder:
    """Builds Level-1C SAFE skeletons from the committed real metadata, with tiny bands."""

    def l1c(
        self,
        dest: Path,
        *,
        size10: int = 366,
        baseline: str = "05.09",
        offsets: bool = True,
        angles: bool = True,
        bands: Sequence[str] = BAND_IDS,
        manifest: bool = False,
        name: str = "S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234.SAFE",
    ) -> Path:
        """Write a SAFE directory under ``dest`` and return its path.

        ``size10`` is the 10 m size in pixels (a multiple of 6); the 20 m and 60 m
        grids follow. ``offsets=False`` removes ``Radiometric_Offset_List`` (as before
        PB 04.00); ``angles=False`` keeps the template's empty ``Tile_Angles``.
        """
        if size10 % 6:
            raise ValueError("size10 must be a multiple of 6")
        safe = dest / name
        safe.mkdir(parents=True)
        mtd = (_TEMPLATE / "MTD_MSIL1C.xml").read_text(encoding="utf-8")
        mtd = mtd.replace("<PROCESSING_BASELINE>05.09<", f"<PROCESSING_BASELINE>{baseline}<")
        if not offsets:
            mtd = re.sub(r"<Radiometric_Offset_List>.*?</Radiometric_Offset_List>", "", mtd, flags=re.DOTALL)
        (safe / "MTD_MSIL1C.xml").write_text(mtd, encoding="utf-8")

        tl = (_TEMPLATE / _TEMPLATE_GRANULE / "MTD_TL.xml").read_text(encoding="utf-8")
        sizes = {"10980": size10, "5490": size10 // 2, "1830": size10 // 6}
        for old, new in sizes.items():
            tl = tl.replace(f"<NROWS>{old}</NROWS>", f"<NROWS>{new}</NROWS>")
            tl = tl.replace(f"<NCOLS>{old}</NCOLS>", f"<NCOLS>{new}</NCOLS>")
        if angles:
            src = _ANGLES_SOURCE.read_text(encoding="utf-8")
            block = re.search(r"<Tile_Angles.*?</Tile_Angles>", src, flags=re.DOTALL)
            assert block is not None
            tl = re.sub(r"<Tile_Angles.*?</Tile_Angles>", lambda _: block.group(0), tl, flags=re.DOTALL)
        granule = safe / _TEMPLATE_GRANULE
        granule.mkdir(parents=True)
        (granule / "MTD_TL.xml").write_text(tl, encoding="utf-8")

        files: dict[str, int] = {}
        for band in bands:
            res = NOMINAL_RESOLUTION[band]
            n = size10 * 10 // res
            rel = f"{_TEMPLATE_GRANULE}/IMG_DATA/T34UCF_20230823T095559_{band}.jp2"
            write_band(safe / rel, synthetic_dn(band, (n, n)), ulx=300000.0, uly=6100020.0, res=float(res))
            files[rel] = (safe / rel).stat().st_size
        if manifest:
            locations = "\n".join(
                f'<dataObject ID="{i}"><byteStream mimeType="application/octet-stream" size="{size}">'
                f'<fileLocation href="./{rel}" locatorType="URL"/></byteStream></dataObject>'
                for i, (rel, size) in enumerate(files.items())
            )
            (safe / "manifest.safe").write_text(
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                '<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" '
                'version="esa/safe/sentinel/1.1/sentinel-2/msi/archive_l1c_user_product">'
                f"<dataObjectSection>{locations}</dataObjectSection></xfdu:XFDU>\n",
                encoding="utf-8",
            )
        return safe

    @staticmethod
    def zip(safe: Path, archive: Path) -> Path:
        """Zip a SAFE directory as ``X.SAFE/...`` members (the layout ESA distributes)."""
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(safe.rglob("*")):
                if f.is_file():
                    zf.write(f, f"{safe.name}/{f.relative_to(safe).as_posix()}")
        return archive


@pytest.fixture(scope="session")
def safe_builder() -> SafeBuilder:
    """Factory of synthetic SAFE products."""
    return SafeBuilder()


@pytest.fixture(scope="session")
def l1c_safe(tmp_path_factory: pytest.TempPathFactory, safe_builder: SafeBuilder) -> Path:
    """A read-only synthetic L1C SAFE: 366 px at 10 m, PB 05.09, real angle grids. Do not modify."""
    return safe_builder.l1c(tmp_path_factory.mktemp("l1c"))


@pytest.fixture()
def aws_900m(tmp_path: Path) -> Iterator[Path]:
    """A writable copy of the 900 m AWS tile folder."""
    dest = tmp_path / AWS_900M.name
    shutil.copytree(AWS_900M, dest)
    yield dest


# ------------------------------------------------ orchestration (tests/orchestration/test_flow*.py)
# One Prefect server and one set of synthetic products per session, shared by the
# flow tests; started only when a test asks for them, and always stopped.


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process_group(proc: Any, timeout: float = 20.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session=True``), then SIGKILL."""
    import os
    import signal
    import subprocess

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)


def start_prefect_server(home: Path, log_path: Path | None = None, timeout: float = 120.0) -> tuple[Any, str]:
    """Start ``prefect server start`` (SQLite in ``home``) on 127.0.0.1 and a free port; wait until healthy.

    Returns the process (its own session: stop it with :func:`stop_process_group`) and the API URL.
    """
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_API_URL=url)
    log_path = log_path or home / "server.log"
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--analytics-off"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return server, url
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_process_group(server)
            raise RuntimeError(f"Prefect server did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (``prefect server start``, SQLite) on 127.0.0.1 and a free port, with a
    temporary ``PREFECT_HOME``; this process and its children use it. Yields the API URL."""
    import os

    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    home = tmp_path_factory.mktemp("prefect-home")
    server, url = start_prefect_server(home)
    saved = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    try:
        # Exported too, for subprocesses (Dask workers, `prefect` commands, Prefect workers).
        os.environ.update(PREFECT_API_URL=url, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        with temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: home}):
            yield url
            _drain_prefect_logs()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_process_group(server)


def _drain_prefect_logs() -> None:
    """Send queued logs and events before the server stops (no retries against a stopped server)."""
    from sen2core.cli.flow import _drain_prefect_workers

    _drain_prefect_workers()


@pytest.fixture(scope="session")
def cloudy_l1c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only input of the chunked-processing tests: a 366 px synthetic L1C on 32TQM with 25 % clouds."""
    from sen2core.synthetic import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("cloudy-l1c")
    return synthesize(SynthConfig(size=366, seed=7, tile="32TQM", date="2023-07-15", cloud_cover=25.0), root).product


def read_rasters(folder: Path) -> dict[str, np.ndarray]:
    """Every GeoTIFF under ``folder`` (recursively), read whole, by file name."""
    out = {}
    for p in sorted(folder.rglob("*.tif")):
        with rasterio.open(p) as ds:
            out[p.name] = ds.read()
    return out


@pytest.fixture(scope="session")
def flow_products(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Read-only inputs of the flow tests: three small synthetic L1C products on 32TQM, sensed on
    2023-07-14, -15 and -16 (keys ``"2023-07-14"`` ...), and ``"corrupt"``, a ``.SAFE.zip`` of junk
    with a valid product name (sensed 2023-07-15)."""
    from sen2core.synthetic import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("flow-l1c")
    products: dict[str, Path] = {}
    for seed, day in enumerate(("2023-07-14", "2023-07-15", "2023-07-16"), start=11):
        result = synthesize(SynthConfig(size=366, seed=seed, tile="32TQM", date=day, cloud_cover=10.0), root)
        shutil.rmtree(result.truth, ignore_errors=True)
        products[day] = result.product
    corrupt = root / "S2B_MSIL1C_20230715T101559_N0509_R122_T32TQM_20230715T120234.SAFE.zip"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    products["corrupt"] = corrupt
    return products


@contextmanager
def dask_cluster(work: Path, env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """A real multi-process Dask cluster on 127.0.0.1: ``dask scheduler`` plus ``workers`` ``dask worker``
    processes (one thread each), started with ``env``, logs in ``work``. Yields the scheduler address;
    everything is stopped at the end."""
    import subprocess
    import sys

    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = [str(Path(sys.executable).with_name("dask"))]  # the venv's `dask` command
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(work / "scheduler.log", "wb") as log:  # the child keeps its own descriptor
            procs.append(subprocess.Popen(
                [*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address",
                 "127.0.0.1:0"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=work,
            ))  # fmt: skip
        for i in range(workers):
            with open(work / f"worker-{i}.log", "wb") as log:
                procs.append(subprocess.Popen(
                    [*dask_cli, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                     "--dashboard-address", "127.0.0.1:0", "--name", f"w{i}", "--local-directory", str(work)],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=work,
                ))  # fmt: skip
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=90)
        yield address
    finally:
        for proc in reversed(procs):
            stop_process_group(proc)


@pytest.fixture(scope="session")
def dask_scheduler_address(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real multi-process Dask cluster on 127.0.0.1 (:func:`dask_cluster`, two workers) whose processes
    know the session's Prefect server. Yields the scheduler address."""
    import os

    # With the session's PREFECT_API_URL and PREFECT_HOME.
    with dask_cluster(tmp_path_factory.mktemp("dask-cluster"), dict(os.environ)) as address:
        yield address


@pytest.fixture(scope="session")
def in_process_runner() -> Callable[..., Any]:
    """Factory of task runners on an in-process ``LocalCluster`` (threads: fast to start, same Dask
    scheduler semantics as worker processes for the tasks and their nested computations)."""

    def make(workers: int = 1, threads: int = 2) -> Any:
        from flows.runner import Sen2CoreTaskRunner

        return Sen2CoreTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": threads,
                                                  "processes": False, "dashboard_address": ":0"})  # fmt: skip

    return make


def flow_run_artifacts(state: Any) -> list[Any]:
    """The artifacts of the flow run that ended in ``state``, read back from the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return list(client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))))  # fmt: skip


@pytest.fixture(scope="session")
def read_artifacts() -> Callable[[Any], list[Any]]:
    """``read_artifacts(state)``: the artifacts of the flow run that ended in ``state``."""
    return flow_run_artifacts


@pytest.fixture(scope="session")
def read_logs() -> Callable[[Any], list[str]]:
    """``read_logs(state)``: the messages logged to the API by the flow run that ended in ``state``
    (and its task runs), after the queued logs were sent."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    def read(state: Any) -> list[str]:
        _drain_prefect_logs()
        flow_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        with get_client(sync_client=True) as client:
            return [log.message for log in client.read_logs(log_filter=flow_filter)]

    return read

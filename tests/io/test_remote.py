"""Remote input and output against real servers on 127.0.0.1: moto's S3 server, an HTTP server with ranges.

One small synthetic Level-1C product (60 px at 10 m) is put on the S3 server as a SAFE
folder, a ``.SAFE.zip`` and an AWS tile folder, and served over HTTP the same ways. A local
run of the same product is the reference: remote runs must write the same pixels.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
from remote_servers import (
    RangeHTTPServer,
    aws_tile_folder,
    bucket_keys,
    moto_server,
    s3_client,
    s3_env,
    upload_tree,
)

from sen2core.errors import ConfigurationError, OutputError, RemoteAccessError
from sen2core.io.read.opening import open_product
from sen2core.io.remote import RemoteSettings, S3Objects
from sen2core.io.stac.collection import COLLECTION_NAME, update_collection
from sen2core.io.write.upload import published, upload_product
from sen2core.pipeline import ProcessingConfig, process_product
from sen2core.synthetic import SynthConfig, synthesize

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::sen2core.errors.MetadataWarning"),
]

L1C_BUCKET = "l1c-archive"
L2A_BUCKET = "l2a-output"
CONFIG = ProcessingConfig(resolution=20)


@pytest.fixture(scope="module")
def l1c(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The product as SAFE folder, ``.SAFE.zip`` and AWS tile folder, under one served root."""
    root = tmp_path_factory.mktemp("remote-l1c")
    safe = synthesize(SynthConfig(size=60, seed=21, tile="32TQM", date="2023-07-15", cloud_cover=10.0),
                      root / "safe").product  # fmt: skip
    archive = root / "zip" / f"{safe.name}.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(safe.rglob("*")):
            zf.write(p, p.relative_to(safe.parent).as_posix())
    aws = aws_tile_folder(safe, root / "tiles/32/T/QM/2023/7/15/0")
    return {"root": root, "safe": safe, "zip": archive, "aws": aws}


@pytest.fixture(scope="module")
def s3(l1c: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """moto's S3 server (its own process) holding the product in the three layouts; its environment set."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as endpoint, pytest.MonkeyPatch.context() as mp:
        env = s3_env(endpoint)
        for k, v in env.items():
            mp.setenv(k, v)
        client = s3_client(endpoint)
        client.create_bucket(Bucket=L1C_BUCKET)
        client.create_bucket(Bucket=L2A_BUCKET)
        safe = upload_tree(client, l1c["safe"], L1C_BUCKET, f"safe/{l1c['safe'].name}")
        client.upload_file(str(l1c["zip"]), L1C_BUCKET, f"zip/{l1c['zip'].name}")
        aws = upload_tree(client, l1c["aws"], L1C_BUCKET, "tiles/32/T/QM/2023/7/15/0")
        yield {"client": client, "env": env, "safe": safe, "zip": f"s3://{L1C_BUCKET}/zip/{l1c['zip'].name}",
               "aws": aws}  # fmt: skip


@pytest.fixture(scope="module")
def reference_run(l1c: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The product folder of a local run of the product."""
    return Path(process_product(l1c["safe"], tmp_path_factory.mktemp("reference"), CONFIG).output_dir)


@pytest.fixture(scope="module")
def reference(reference_run: Path) -> dict[str, np.ndarray]:
    """Every raster of the local run, by file name."""
    return _rasters(reference_run)


def _rasters(folder: Path) -> dict[str, np.ndarray]:
    import rasterio

    out = {}
    for p in sorted(folder.glob("*.tif")):
        with rasterio.open(p) as ds:
            out[p.name] = ds.read()
    return out


def _download(client: Any, bucket: str, prefix: str, dest: Path) -> Path:
    for key in bucket_keys(client, bucket, prefix):
        target = dest / key[len(prefix) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    return dest


def _same_rasters(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(expected) and len(expected) >= 15
    for name, data in expected.items():
        np.testing.assert_array_equal(got[name], data, err_msg=name)


def _local_size(safe: Path, band: str) -> int:
    (path,) = safe.glob(f"GRANULE/*/IMG_DATA/*_{band}.jp2")
    return path.stat().st_size


def _local_dn(safe: Path, band: str) -> np.ndarray:
    return np.asarray(open_product(safe).read_dn(band).compute())


# ----------------------------------------------------------------------------- input


@pytest.mark.parametrize("layout", ["safe", "zip", "aws"])
def test_s3_product_is_read_in_place_in_each_layout(s3: dict[str, Any], l1c: dict[str, Path], layout: str) -> None:
    product = open_product(s3[layout])
    assert product.layout == {"safe": "SAFE", "zip": "SAFE.zip", "aws": "AWS"}[layout]
    assert product.product_id == l1c["safe"].name.removesuffix(".SAFE")
    assert len(product.bands) == 13 and product.tile_id == "32TQM"
    assert product.band_href("B04").startswith(("/vsis3/", "/vsizip//vsis3/"))
    # GDAL gets the endpoint and addressing, never the credentials.
    assert product.gdal_options["AWS_S3_ENDPOINT"] == s3["env"]["AWS_S3_ENDPOINT"]
    assert "AWS_SECRET_ACCESS_KEY" not in product.gdal_options
    # The store pickles (an S3 client does not: a copy makes its own) and reads by range.
    store = pickle.loads(pickle.dumps(product.store))
    assert store.size(product.band_files["B04"].path) == _local_size(l1c["safe"], "B04")
    assert store.tail(product.band_files["B04"].path, 2) == b"\xff\xd9"  # a complete JPEG 2000 codestream
    for band in ("B04", "B11"):
        np.testing.assert_array_equal(product.read_dn(band).compute(), _local_dn(l1c["safe"], band))


@pytest.mark.parametrize("layout", ["safe", "zip", "aws"])
def test_http_product_is_read_by_range_requests_only(l1c: dict[str, Path], layout: str) -> None:
    with RangeHTTPServer(l1c["root"]) as server:
        href = f"{server.url}/{l1c[layout].relative_to(l1c['root']).as_posix()}"
        product = open_product(href)
        assert product.layout == {"safe": "SAFE", "zip": "SAFE.zip", "aws": "AWS"}[layout]
        assert len(product.bands) == 13
        dn = product.read_dn("B04").compute()
    np.testing.assert_array_equal(dn, _local_dn(l1c["safe"], "B04"))
    gets = [r for r in server.requests if r[0] == "GET"]
    assert gets and all(rng for _, _, rng in gets), [r for r in gets if not r[2]]


def test_503_twice_is_retried_for_metadata_and_rasters(l1c: dict[str, Path]) -> None:
    with RangeHTTPServer(l1c["root"]) as server:
        base = f"/{l1c['safe'].relative_to(l1c['root']).as_posix()}"
        (tile_xml,) = (p.relative_to(l1c["safe"]).as_posix() for p in l1c["safe"].glob("GRANULE/*/MTD_TL.xml"))
        (b04,) = (p.relative_to(l1c["safe"]).as_posix() for p in l1c["safe"].glob("GRANULE/*/IMG_DATA/*_B04.jp2"))
        # Metadata, read by sen2core: 503 twice.
        server.fail = {f"{base}/{tile_xml}": 2}
        product = open_product(f"{server.url}{base}")
        # A raster, read by GDAL (not opened yet): 503 twice.
        server.fail = {f"{base}/{b04}": 2}
        dn = product.read_dn("B04").compute()
    # Both files failed twice, then were read: the product is complete and its pixels right.
    assert server.failed == [f"{base}/{tile_xml}"] * 2 + [f"{base}/{b04}"] * 2
    assert product.tile_metadata is not None and product.has_sun_grid
    np.testing.assert_array_equal(dn, _local_dn(l1c["safe"], "B04"))


def test_a_server_that_keeps_failing_is_a_transient_error(l1c: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from sen2core.errors import TransientIOError

    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "2")
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.01")
    with RangeHTTPServer(l1c["root"]) as server:
        base = f"/{l1c['aws'].relative_to(l1c['root']).as_posix()}"
        server.fail = {f"{base}/tileInfo.json": 10}
        with pytest.raises(TransientIOError, match=r"tileInfo\.json: HTTP 503 .*after 3 attempts"):
            open_product(f"{server.url}{base}/tileInfo.json")
    assert server.failed.count(f"{base}/tileInfo.json") == 3


def test_a_raster_the_server_keeps_refusing_is_a_transient_error(l1c: dict[str, Path],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from sen2core.errors import TransientIOError

    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "1")
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.01")
    with RangeHTTPServer(l1c["root"]) as server:
        base = f"/{l1c['safe'].relative_to(l1c['root']).as_posix()}"
        product = open_product(f"{server.url}{base}")
        (b04,) = (p.relative_to(l1c["safe"]).as_posix() for p in l1c["safe"].glob("GRANULE/*/IMG_DATA/*_B04.jp2"))
        server.fail = {f"{base}/{b04}": 100}
        # GDAL retried, then gave up: worth a retry later (the flows retry TransientIOError), not a bad product.
        with pytest.raises(TransientIOError, match=r"B04\.jp2 \(HTTP response code: 503\)"):
            product.read_dn("B04").compute()
    assert server.failed.count(f"{base}/{b04}") == 2


def test_404_is_one_clear_error_naming_the_href_and_nothing_is_published(s3: dict[str, Any],
                                                                         l1c: dict[str, Path]) -> None:  # fmt: skip
    missing = f"s3://{L1C_BUCKET}/safe/S2A_MSIL1C_20230716T093710_N0509_R064_T32TQM_20230716T123636.SAFE"
    with pytest.raises(RemoteAccessError, match="404") as err:
        process_product(missing, f"s3://{L2A_BUCKET}/missing", CONFIG)
    assert err.value.product == missing and err.value.status == 404
    assert bucket_keys(s3["client"], L2A_BUCKET, "missing") == []
    with RangeHTTPServer(l1c["root"]) as server:
        href = f"{server.url}/zip/nothing.SAFE.zip"
        with pytest.raises(RemoteAccessError, match="404") as err:
            open_product(href)
    assert err.value.product == href


def test_403_is_one_clear_error_naming_the_href(l1c: dict[str, Path]) -> None:
    with RangeHTTPServer(l1c["root"]) as server:
        base = f"/{l1c['aws'].relative_to(l1c['root']).as_posix()}"
        server.forbid = {f"{base}/tileInfo.json"}
        href = f"{server.url}{base}/tileInfo.json"
        with pytest.raises(RemoteAccessError, match="HTTP 403 Forbidden") as err:
            open_product(href)
    assert err.value.product == href and err.value.status == 403
    # Not retried: one request.
    assert [r[1] for r in server.requests].count(f"{base}/tileInfo.json") == 1


# ----------------------------------------------------------------------------- output


def test_process_s3_to_s3_matches_a_local_run_and_a_rerun_is_a_no_op(
    s3: dict[str, Any], reference: dict[str, np.ndarray], tmp_path: Path
) -> None:
    client = s3["client"]
    result = process_product(s3["aws"], f"s3://{L2A_BUCKET}/run", CONFIG)
    assert result.status == "done"
    prefix = result.output_dir.removeprefix(f"s3://{L2A_BUCKET}/")
    assert prefix.startswith("run/32TQM/2023/07/15/")
    name = prefix.rsplit("/", 1)[1]
    keys = bucket_keys(client, L2A_BUCKET, prefix)
    assert f"{prefix}/{name}.json" in keys and f"{prefix}/checksums.sha256" in keys
    # The STAC item was written last.
    stamps = {k: client.head_object(Bucket=L2A_BUCKET, Key=k)["LastModified"] for k in keys}
    assert stamps[f"{prefix}/{name}.json"] == max(stamps.values())
    _same_rasters(_rasters(_download(client, L2A_BUCKET, prefix, tmp_path / "got")), reference)

    update_collection(f"s3://{L2A_BUCKET}/run", [f"{result.output_dir}/{name}.json"])
    coll = json.loads(client.get_object(Bucket=L2A_BUCKET, Key=f"run/{COLLECTION_NAME}")["Body"].read())
    assert [ln["href"] for ln in coll["links"] if ln["rel"] == "item"] == [f"./{prefix[len('run/') :]}/{name}.json"]

    etag = client.head_object(Bucket=L2A_BUCKET, Key=f"{prefix}/{name}.json")["ETag"]
    again = process_product(s3["safe"], f"s3://{L2A_BUCKET}/run", CONFIG)
    assert again.status == "skipped" and again.output_dir == result.output_dir
    # Its figures come from the product's summary in the bucket.
    assert again.atmosphere["GRANULE_MEAN_AOT"] == pytest.approx(result.atmosphere["GRANULE_MEAN_AOT"], abs=1e-6)
    assert again.class_percentages == pytest.approx(result.class_percentages, abs=1e-6)
    assert client.head_object(Bucket=L2A_BUCKET, Key=f"{prefix}/{name}.json")["ETag"] == etag
    assert bucket_keys(client, L2A_BUCKET, prefix) == keys


def test_process_http_to_local_matches_a_local_run(l1c: dict[str, Path], reference: dict[str, np.ndarray],
                                                   tmp_path: Path) -> None:  # fmt: skip
    with RangeHTTPServer(l1c["root"]) as server:
        result = process_product(f"{server.url}/zip/{l1c['zip'].name}", tmp_path / "l2a", CONFIG)
    assert result.status == "done"
    _same_rasters(_rasters(Path(result.output_dir)), reference)
    assert all(rng for method, _, rng in server.requests if method == "GET")


def test_the_safe_layout_and_http_outputs_are_refused(s3: dict[str, Any], l1c: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError, match="SAFE layout is written to a local folder only"):
        process_product(s3["safe"], f"s3://{L2A_BUCKET}/safe", ProcessingConfig(format="safe"))
    with pytest.raises(ConfigurationError, match="http"):
        process_product(s3["safe"], "https://example.invalid/l2a", CONFIG)
    assert bucket_keys(s3["client"], L2A_BUCKET, "safe") == []


def test_a_failed_upload_leaves_no_stac_item(s3: dict[str, Any], reference_run: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    real_put = S3Objects.put
    calls: list[str] = []

    def failing_put(self: S3Objects, key: str, *args: Any, **kwargs: Any) -> str:
        calls.append(key)
        if len(calls) == 5:
            raise RemoteAccessError(self.href(key), "HTTP 500 InternalError (injected)", status=500)
        return real_put(self, key, *args, **kwargs)

    href = f"s3://{L2A_BUCKET}/failed/{reference_run.name}"
    monkeypatch.setattr(S3Objects, "put", failing_put)
    with pytest.raises(OutputError, match="upload failed after 4 of .* files, the STAC item not written"):
        upload_product(reference_run, href)
    keys = bucket_keys(s3["client"], L2A_BUCKET, "failed")
    assert len(keys) == 4 and f"failed/{reference_run.name}/{reference_run.name}.json" not in keys
    assert not published(href)
    monkeypatch.setattr(S3Objects, "put", real_put)
    written = upload_product(reference_run, href)
    assert written[-1] == f"failed/{reference_run.name}/{reference_run.name}.json" and published(href)
    assert len(written) == len([p for p in reference_run.iterdir() if p.is_file()])
    # Replacing a done product: its old item goes first, so a failed replacement is not "done"
    # with a mix of old and new files.
    calls.clear()
    monkeypatch.setattr(S3Objects, "put", failing_put)
    with pytest.raises(OutputError, match="upload failed after 4 of"):
        upload_product(reference_run, href)
    assert not published(href)


def test_a_killed_run_leaves_no_stac_item(s3: dict[str, Any], tmp_path: Path) -> None:
    out = f"s3://{L2A_BUCKET}/killed"
    cmd = [sys.executable, "-m", "sen2core", "process", s3["safe"], "-o", out, "--resolution", "20"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "run.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                cwd=Path(__file__).parents[2])  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "correction" not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Killed while computing: nothing in the bucket, so nothing that looks done (an upload
    # interrupted half-way leaves no item either: test_a_failed_upload_leaves_no_stac_item).
    assert bucket_keys(s3["client"], L2A_BUCKET, "killed") == []


def test_concurrent_collection_updates_lose_no_item(s3: dict[str, Any]) -> None:
    client = s3["client"]
    hrefs = []
    for i in range(5):
        item = {"type": "Feature", "stac_version": "1.1.0", "id": f"item-{i}", "bbox": [10.0 + i, 45.0, 10.5 + i, 45.5],
                "geometry": None, "links": [], "assets": {},
                "properties": {"datetime": f"2023-07-{10 + i:02d}T10:00:00Z"}}  # fmt: skip
        key = f"concurrent/t/{i}/item-{i}.json"
        client.put_object(Bucket=L2A_BUCKET, Key=key, Body=json.dumps(item).encode())
        hrefs.append(f"s3://{L2A_BUCKET}/{key}")
    start = threading.Barrier(len(hrefs))
    errors: list[BaseException] = []

    def add(href: str) -> None:
        start.wait()
        try:
            update_collection(f"s3://{L2A_BUCKET}/concurrent", [href])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(h,)) for h in hrefs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    coll = json.loads(client.get_object(Bucket=L2A_BUCKET, Key=f"concurrent/{COLLECTION_NAME}")["Body"].read())
    links = sorted(ln["href"] for ln in coll["links"] if ln["rel"] == "item")
    assert links == sorted(f"./t/{i}/item-{i}.json" for i in range(5))
    assert coll["extent"]["spatial"]["bbox"] == [[10.0, 45.0, 14.5, 45.5]]


def test_settings_follow_the_environment() -> None:
    s = RemoteSettings.from_env({"AWS_S3_ENDPOINT": "minio:9000", "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
                                 "AWS_REQUEST_PAYER": "requester", "GDAL_HTTP_MAX_RETRY": "6",
                                 "GDAL_HTTP_RETRY_DELAY": "0.5", "AWS_SECRET_ACCESS_KEY": "secret"})  # fmt: skip
    opts = s.gdal_options()
    assert opts["AWS_S3_ENDPOINT"] == "minio:9000" and opts["AWS_HTTPS"] == "NO"
    assert opts["AWS_VIRTUAL_HOSTING"] == "FALSE" and opts["AWS_REQUEST_PAYER"] == "requester"
    assert opts["GDAL_HTTP_MAX_RETRY"] == "6" and opts["GDAL_HTTP_RETRY_DELAY"] == "0.5"
    assert "secret" not in json.dumps(opts)
    assert [s.wait(i) for i in range(3)] == [0.5, 1.0, 2.0]
    default = RemoteSettings.from_env({})
    assert default.https and default.virtual_hosting and default.request_payer is None and default.max_retry == 4


# ----------------------------------------------------------------------------- flows


def _l1c_item(href: str, product_id: str, sensing: dt.datetime) -> pystac.Item:
    geometry = {"type": "Polygon", "coordinates": [[[11.0, 45.0], [11.1, 45.0], [11.1, 45.1], [11.0, 45.1],
                                                    [11.0, 45.0]]]}  # fmt: skip
    item = pystac.Item(product_id, geometry, [11.0, 45.0, 11.1, 45.1], sensing,
                       {"eo:cloud_cover": 10.0, "s2:mgrs_tile": "32TQM"})  # fmt: skip
    item.add_asset("safe", pystac.Asset(href, media_type="application/octet-stream", roles=["data"]))
    return item


def test_ingest_flow_over_a_static_catalog_of_s3_hrefs(
    prefect_api: str, s3: dict[str, Any], l1c: dict[str, Path], in_process_runner: Callable[..., Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    from flows.daily_ingest import daily_ingest
    from tasks.models import ProcessingOptions, Source

    product_id = l1c["safe"].name.removesuffix(".SAFE")
    cat = pystac.Catalog("l1c-s3", "Level-1C products on object storage")
    cat.add_item(_l1c_item(s3["safe"], product_id, dt.datetime(2023, 7, 15, 10, tzinfo=dt.UTC)))
    cat.normalize_hrefs(str(tmp_path / "catalog"))
    cat.save(pystac.CatalogType.SELF_CONTAINED)
    out = tmp_path / "l2a"
    state = daily_ingest.with_options(task_runner=in_process_runner())(
        source=Source(kind="stac-catalog", href=str(tmp_path / "catalog" / "catalog.json")), output_root=str(out),
        tiles=["T32TQM"], lookback_hours=72, reference_time=dt.datetime(2023, 7, 17, tzinfo=dt.UTC),
        options=ProcessingOptions(resolution=20), max_concurrency=1, return_state=True,
    )  # fmt: skip
    assert state.is_completed(), state
    summary = state.result()
    assert [(o.product_id, o.status) for o in summary.outcomes] == [(product_id, "done")]
    folder = Path(summary.outcomes[0].output_dir or "")
    assert (folder / f"{folder.name}.json").is_file() and (out / COLLECTION_NAME).is_file()
    shutil.rmtree(out)


def test_missing_credentials_are_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_S3_ENDPOINT", "127.0.0.1:9")
    with pytest.raises(RemoteAccessError, match="no AWS credentials.*AWS_NO_SIGN_REQUEST=YES") as err:
        open_product("s3://some-bucket/products/x.SAFE")
    assert err.value.product == "s3://some-bucket/products/x.SAFE"

"""Real servers for the remote input/output tests, started on 127.0.0.1 and stopped after.

* :func:`moto_server`: moto's S3-compatible server in its own process (``python -m moto.server``).
* :class:`RangeHTTPServer`: files of a folder over HTTP with ``Range`` support (Python's
  ``http.server`` ignores ranges), a log of the requests, and failures on demand (503 a
  given number of times per path, then the file).
* :func:`aws_tile_folder`: the AWS tile layout (``tileInfo.json``, ``B01.jp2``...) of a SAFE.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """moto's S3 server in a child process; yields its ``host:port``; stopped at the end."""
    port = _free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"moto server did not start: {tail}") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def s3_client(endpoint: str) -> Any:
    """A boto3 client of the test server (credentials from the environment the tests set)."""
    return boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")


def upload_tree(client: Any, folder: Path, bucket: str, prefix: str) -> str:
    """Every file under ``folder`` to ``s3://bucket/prefix/...``; returns that href."""
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}"


def bucket_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    """All keys of a bucket under ``prefix``."""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(keys)


def aws_tile_folder(safe: Path, dest: Path) -> Path:
    """The AWS tile layout of a single-granule SAFE: ``tileInfo.json``, ``metadata.xml`` (the
    granule's ``MTD_TL.xml``), ``product_metadata.xml`` (``MTD_MSIL1C.xml``) and ``Bxx.jp2``."""
    dest.mkdir(parents=True)
    (granule,) = (safe / "GRANULE").iterdir()
    for jp2 in (granule / "IMG_DATA").glob("*_B*.jp2"):
        shutil.copy(jp2, dest / f"{jp2.stem.rsplit('_', 1)[1]}.jp2")
    shutil.copy(granule / "MTD_TL.xml", dest / "metadata.xml")
    shutil.copy(safe / "MTD_MSIL1C.xml", dest / "product_metadata.xml")
    name = safe.name.removesuffix(".SAFE")
    m = re.search(r"_T(\d\d)([A-Z])([A-Z]{2})_", name)
    assert m, name
    zone, band, square = int(m.group(1)), m.group(2), m.group(3)
    sensing = re.search(r"_(\d{8}T\d{6})_", name).group(1)  # type: ignore[union-attr]
    ts = f"{sensing[:4]}-{sensing[4:6]}-{sensing[6:8]}T{sensing[9:11]}:{sensing[11:13]}:{sensing[13:15]}.000Z"
    info = {
        "path": f"tiles/{zone}/{band}/{square}/{sensing[:4]}/{int(sensing[4:6])}/{int(sensing[6:8])}/0",
        "timestamp": ts, "utmZone": zone, "latitudeBand": band, "gridSquare": square,
        "productName": name,
        "datastrip": {"id": f"{name[:3]}_OPER_MSI_L1C_DS_TEST_{sensing}_S{sensing}_N05.09"},
    }  # fmt: skip
    (dest / "tileInfo.json").write_text(json.dumps(info), encoding="utf-8")
    return dest


class RangeHTTPServer:
    """Files of ``root`` served on 127.0.0.1 with ``Range`` support, in a thread.

    ``requests`` records ``(method, path, Range header)``; ``fail[path] = n`` answers the next
    ``n`` requests of ``path`` with 503; a path in ``forbid`` is answered 403.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.requests: list[tuple[str, str, str | None]] = []
        self.fail: dict[str, int] = {}
        self.failed: list[str] = []
        self.forbid: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self, body: bool) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append((self.command, path, self.headers.get("Range")))
                    if server.fail.get(path, 0) > 0:
                        server.fail[path] -= 1
                        server.failed.append(path)
                        self.send_response(503, "Service Unavailable")
                        self.send_header("Content-Length", "0")
                        self.send_header("Retry-After", "0")
                        self.end_headers()
                        return
                if path in server.forbid:
                    self.send_response(403, "Forbidden")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = (server.root / path.lstrip("/")).resolve()
                if not target.is_relative_to(server.root) or not target.is_file():
                    self.send_response(404, "Not Found")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = target.stat().st_size
                start, end, status = 0, size - 1, 200
                rng = self.headers.get("Range")
                m = _RANGE_RE.match(rng.strip()) if rng else None
                if m and (m.group(1) or m.group(2)):
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    else:
                        start = max(0, size - int(m.group(2)))
                    status = 206
                    if start >= size:
                        self.send_response(416, "Range Not Satisfiable")
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                self.send_response(status)
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if body:
                    with open(target, "rb") as f:
                        f.seek(start)
                        self.wfile.write(f.read(end - start + 1))

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._serve(True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> RangeHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


def s3_env(endpoint: str) -> dict[str, str]:
    """The environment of a client of the test S3 server (dummy credentials, fast retries)."""
    return {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
        "AWS_S3_ENDPOINT": endpoint, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
        "GDAL_HTTP_RETRY_DELAY": "0.05", "GDAL_HTTP_MAX_RETRY": "3",
    }  # fmt: skip


def environ_with(extra: dict[str, str]) -> dict[str, str]:
    """``os.environ`` and ``extra``."""
    return {**os.environ, **extra}

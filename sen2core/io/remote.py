"""Objects on S3-compatible storage and HTTP servers: settings, reads by range, listings, conditional writes.

Products are read in place: rasters by GDAL through ``/vsis3/`` and ``/vsicurl/`` (block
by block, HTTP range requests), metadata files here, also by range (the first
:data:`~sen2core.io.read.store.METADATA_MAX_BYTES` + 1 bytes, so that an oversized file is
refused without being downloaded). Both sides follow one :class:`RemoteSettings`, read
from the usual environment variables: the endpoint, addressing style, requester-pays and
retry policy that GDAL uses are the ones used here.

Credentials are never copied into settings or GDAL options (those travel in Dask graphs
and appear in logs): GDAL and botocore each read ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` (or ``~/.aws``) from the process that
makes the request.

Transient failures (HTTP 429 and 5xx, timeouts, reset connections) are retried with
exponential backoff (``GDAL_HTTP_MAX_RETRY`` times, first wait ``GDAL_HTTP_RETRY_DELAY``
seconds, doubling), then raised as :class:`~sen2core.errors.TransientIOError`. A 403 or
404 is not retried: it is one :class:`~sen2core.errors.RemoteAccessError` naming the href.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sen2core.errors import RemoteAccessError, TransientIOError

__all__ = [
    "RETRY_STATUS",
    "HttpObjects",
    "RangeFile",
    "RangeOpener",
    "RemoteObjects",
    "RemoteSettings",
    "S3Objects",
    "is_remote",
    "join",
    "objects_for",
    "split_href",
]

log = logging.getLogger(__name__)

#: HTTP statuses worth a retry (GDAL's default ``GDAL_HTTP_RETRY_CODES`` too).
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

_SCHEMES = ("s3://", "http://", "https://")

T = TypeVar("T")


def is_remote(href: object) -> bool:
    """True for an ``s3://``, ``http://`` or ``https://`` href."""
    return isinstance(href, str) and href.lower().startswith(_SCHEMES)


def join(base: str, *parts: str) -> str:
    """``base`` and relative ``parts`` joined with single slashes (URLs are not file system paths)."""
    out = base.rstrip("/")
    for p in parts:
        p = p.strip("/")
        if p:
            out = f"{out}/{p}"
    return out


def split_href(href: str) -> tuple[str, str]:
    """``(root, key)`` of a remote href: ``("s3://bucket", "a/b")`` or ``("https://host", "a/b")``.

    Raises
    ------
    RemoteAccessError
        If the href has no bucket or host.
    """
    parsed = urllib.parse.urlsplit(href)
    if not parsed.netloc:
        raise RemoteAccessError(href, "no bucket or host in the href")
    return f"{parsed.scheme.lower()}://{parsed.netloc}", parsed.path.lstrip("/")


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    return value.strip().upper() in ("YES", "ON", "TRUE", "1")


def _number(env: Mapping[str, str], name: str, default: float, cast: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return cast(str(default))
    try:
        return cast(raw)
    except ValueError as exc:
        from sen2core.errors import ConfigurationError

        raise ConfigurationError(f"{name}={raw!r}: not a number") from exc


@dataclass(frozen=True)
class RemoteSettings:
    """How remote objects are reached: S3 endpoint and addressing, requester-pays, retries, timeout.

    Build it with :meth:`from_env`; :meth:`gdal_options` gives the same settings to GDAL.
    """

    endpoint: str | None = None
    """S3 endpoint ``host[:port]`` (``AWS_S3_ENDPOINT``); None: AWS."""
    https: bool = True
    """Reach the S3 endpoint over HTTPS (``AWS_HTTPS``; ``NO`` for a local server)."""
    virtual_hosting: bool = True
    """Bucket in the host name (``AWS_VIRTUAL_HOSTING``); False: in the path, as most S3-compatible servers want."""
    region: str | None = None
    """``AWS_REGION`` or ``AWS_DEFAULT_REGION``."""
    request_payer: str | None = None
    """``requester`` for requester-pays buckets (``AWS_REQUEST_PAYER``), as Earth Search's ``sentinel-s2-l1c``."""
    no_sign_request: bool = False
    """Anonymous requests to public buckets (``AWS_NO_SIGN_REQUEST``)."""
    max_retry: int = 4
    """Retries of a transient failure (``GDAL_HTTP_MAX_RETRY``)."""
    retry_delay: float = 1.0
    """First wait in seconds before a retry, doubled at each further one (``GDAL_HTTP_RETRY_DELAY``)."""
    timeout: float = 60.0
    """Seconds without an answer before a request is abandoned and retried (``GDAL_HTTP_TIMEOUT``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RemoteSettings:
        """Settings from the environment (``os.environ`` by default).

        Raises
        ------
        ConfigurationError
            A retry count, delay or timeout that is not a number.
        """
        env = os.environ if env is None else env
        return cls(
            endpoint=env.get("AWS_S3_ENDPOINT") or None,
            https=_flag(env, "AWS_HTTPS", True),
            virtual_hosting=_flag(env, "AWS_VIRTUAL_HOSTING", True),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            request_payer=env.get("AWS_REQUEST_PAYER") or None,
            no_sign_request=_flag(env, "AWS_NO_SIGN_REQUEST", False),
            max_retry=max(0, _number(env, "GDAL_HTTP_MAX_RETRY", 4, int)),
            retry_delay=max(0.0, _number(env, "GDAL_HTTP_RETRY_DELAY", 1.0, float)),
            timeout=max(1.0, _number(env, "GDAL_HTTP_TIMEOUT", 60.0, float)),
        )

    def gdal_options(self) -> dict[str, str]:
        """GDAL configuration options for reads through ``/vsis3/`` and ``/vsicurl/`` (no credentials)."""
        opts = {
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
            "GDAL_HTTP_MAX_RETRY": str(self.max_retry),
            "GDAL_HTTP_RETRY_DELAY": f"{self.retry_delay:g}",
            "GDAL_HTTP_RETRY_CODES": ",".join(str(s) for s in sorted(RETRY_STATUS)),
            "GDAL_HTTP_TIMEOUT": f"{self.timeout:g}",
            "AWS_HTTPS": "YES" if self.https else "NO",
            "AWS_VIRTUAL_HOSTING": "TRUE" if self.virtual_hosting else "FALSE",
        }
        if self.endpoint:
            opts["AWS_S3_ENDPOINT"] = self.endpoint
        if self.region:
            opts["AWS_REGION"] = self.region
        if self.request_payer:
            opts["AWS_REQUEST_PAYER"] = self.request_payer
        if self.no_sign_request:
            opts["AWS_NO_SIGN_REQUEST"] = "YES"
        return opts

    def wait(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): exponential backoff."""
        return float(self.retry_delay * 2**attempt)


class RemoteObjects:
    """Objects under one root (``s3://bucket`` or ``https://host``), addressed by key.

    Subclasses implement the requests; every method retries transient failures.
    """

    root: str
    settings: RemoteSettings

    def href(self, key: str) -> str:
        """The object's href."""
        return join(self.root, key)

    def vsi(self, key: str) -> str:
        """The GDAL path of the object."""
        raise NotImplementedError

    def head(self, key: str) -> int | None:
        """Size in bytes, or None if there is no such object (404)."""
        raise NotImplementedError

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``start`` to ``end`` (inclusive; None: to the end) of an object, by a range request.

        Raises
        ------
        RemoteAccessError
            404 or 403.
        TransientIOError
            The server kept failing.
        """
        raise NotImplementedError

    def tail(self, key: str, n: int) -> bytes:
        """The last ``n`` bytes of an object (a suffix range request)."""
        raise NotImplementedError

    def list(self, prefix: str) -> dict[str, int] | None:
        """Keys below ``prefix`` (relative to it) and their sizes; None if the server cannot list."""
        raise NotImplementedError

    def _retrying(self, what: str, call: Callable[[], T], transient: Callable[[BaseException], str | None]) -> T:
        """``call()``, retried with backoff while ``transient`` names the failure."""
        attempt = 0
        while True:
            try:
                return call()
            except Exception as exc:
                problem = transient(exc)
                if problem is None:
                    raise
                if attempt >= self.settings.max_retry:
                    failure = TransientIOError(f"{what}: {problem} (after {attempt + 1} attempts)")
                    break
                delay = self.settings.wait(attempt)
                log.info("%s: %s; retry %d of %d in %.2f s", what, problem, attempt + 1, self.settings.max_retry,
                         delay)  # fmt: skip
                time.sleep(delay)
                attempt += 1
        raise failure  # outside the except block: no chain to carry to a Dask client


# ----------------------------------------------------------------------------- HTTP


class HttpObjects(RemoteObjects):
    """Files on an HTTP(S) server with range requests (``/vsicurl/`` for GDAL). HTTP cannot list."""

    def __init__(self, root: str, settings: RemoteSettings) -> None:
        self.root = root.rstrip("/")
        self.settings = settings

    def vsi(self, key: str) -> str:
        return f"/vsicurl/{self.href(key)}"

    def _transient(self, exc: BaseException) -> str | None:
        if isinstance(exc, urllib.error.HTTPError):
            return f"HTTP {exc.code} {exc.reason}" if exc.code in RETRY_STATUS else None
        if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, (OSError, socket.timeout)):
            return f"{exc.reason}"
        if isinstance(exc, (TimeoutError, ConnectionError, socket.timeout)):
            return f"{type(exc).__name__}: {exc}"
        return None

    def _request(self, key: str, method: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        href = self.href(key)
        req = urllib.request.Request(href, method=method, headers=dict(headers))

        def call() -> tuple[int, Mapping[str, str], bytes]:
            with urllib.request.urlopen(req, timeout=self.settings.timeout) as resp:
                return resp.status, resp.headers, resp.read() if method == "GET" else b""

        try:
            return self._retrying(href, call, self._transient)
        except urllib.error.HTTPError as exc:
            code, reason = exc.code, exc.reason
        except urllib.error.URLError as exc:
            problem = f"cannot reach the server ({exc.reason})"
            raise RemoteAccessError(href, problem) from None
        raise RemoteAccessError(href, f"HTTP {code} {reason}", status=code)

    def head(self, key: str) -> int | None:
        try:
            _, headers, _ = self._request(key, "HEAD", {})
        except RemoteAccessError as exc:
            if exc.status == 404:
                return None
            raise
        length = headers.get("Content-Length")
        return int(length) if length is not None else None

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        rng = f"bytes={start}-{'' if end is None else end}"
        status, _, data = self._request(key, "GET", {"Range": rng})
        if status == 200 and (start or end is not None):
            # A server without range support sends the whole object: keep the part asked for.
            data = data[start : None if end is None else end + 1]
        return data

    def tail(self, key: str, n: int) -> bytes:
        status, _, data = self._request(key, "GET", {"Range": f"bytes=-{n}"})
        return data[-n:] if status == 200 else data

    def list(self, prefix: str) -> dict[str, int] | None:
        return None


# ----------------------------------------------------------------------------- S3


class S3Objects(RemoteObjects):
    """Objects of one S3 bucket (``/vsis3/`` for GDAL), through botocore."""

    def __init__(self, bucket: str, settings: RemoteSettings) -> None:
        self.bucket = bucket
        self.root = f"s3://{bucket}"
        self.settings = settings
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # A botocore client does not pickle; a copy on a Dask worker makes its own.
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> Any:
        """The botocore S3 client (made on first use)."""
        if self._client is None:
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config

            s = self.settings
            config = Config(
                # Retries are ours (the same backoff as GDAL's); botocore gives up at once.
                retries={"total_max_attempts": 1},
                connect_timeout=s.timeout, read_timeout=s.timeout,
                s3={"addressing_style": "virtual" if s.virtual_hosting else "path"},
                signature_version=UNSIGNED if s.no_sign_request else None,
            )  # fmt: skip
            endpoint = f"{'https' if s.https else 'http'}://{s.endpoint}" if s.endpoint else None
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint, region_name=s.region or "us-east-1", config=config
            )
        return self._client

    def vsi(self, key: str) -> str:
        return f"/vsis3/{self.bucket}/{key}"

    def _payer(self) -> dict[str, str]:
        return {"RequestPayer": self.settings.request_payer} if self.settings.request_payer else {}

    @staticmethod
    def status(exc: BaseException) -> int | None:
        """HTTP status of a botocore error, if it has one."""
        response = getattr(exc, "response", None)
        if isinstance(response, dict):
            code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return int(code) if code is not None else None
        return None

    def _transient(self, exc: BaseException) -> str | None:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        status = self.status(exc)
        if status is not None:
            return f"HTTP {status} {_code(exc)}" if status in RETRY_STATUS else None
        if isinstance(exc, (BotoConnectionError, HTTPClientError, TimeoutError, ConnectionError)):
            return f"{type(exc).__name__}: {exc}"
        return None

    def call(self, key: str, op: str, **kwargs: Any) -> Any:
        """One S3 operation on ``key`` with retries; 403/404 (and other client errors) as RemoteAccessError."""
        href = self.href(key)

        def run() -> Any:
            return getattr(self.client, op)(**kwargs)

        try:
            return self._retrying(href, run, self._transient)
        except RemoteAccessError:
            raise
        except Exception as exc:
            from botocore.exceptions import NoCredentialsError

            status = self.status(exc)
            if isinstance(exc, NoCredentialsError):
                problem = ("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ~/.aws), "
                           "or AWS_NO_SIGN_REQUEST=YES for a public bucket")  # fmt: skip
            elif status is None:
                raise
            else:
                problem = f"HTTP {status} {_code(exc)}"
        raise RemoteAccessError(href, problem, status=status)

    def head(self, key: str) -> int | None:
        try:
            r = self.call(key, "head_object", Bucket=self.bucket, Key=key, **self._payer())
        except RemoteAccessError as exc:
            if exc.status == 404:
                return None
            raise
        return int(r["ContentLength"])

    def get(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        rng = f"bytes={start}-{'' if end is None else end}"
        r = self.call(key, "get_object", Bucket=self.bucket, Key=key, Range=rng, **self._payer())
        return bytes(r["Body"].read())

    def tail(self, key: str, n: int) -> bytes:
        r = self.call(key, "get_object", Bucket=self.bucket, Key=key, Range=f"bytes=-{n}", **self._payer())
        return bytes(r["Body"].read())

    def list(self, prefix: str) -> dict[str, int] | None:
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        out: dict[str, int] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, **self._payer()}
            if token:
                kwargs["ContinuationToken"] = token
            r = self.call(prefix, "list_objects_v2", **kwargs)
            for obj in r.get("Contents", []):
                out[obj["Key"][len(prefix) :]] = int(obj["Size"])
            if not r.get("IsTruncated"):
                return out
            token = r.get("NextContinuationToken")

    # ----------------------------------------------------------------- writes

    def put(
        self,
        key: str,
        body: bytes | io.BufferedIOBase,
        *,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Write an object (whole); return its ETag.

        ``if_match``: only if the object's ETag is still this one; ``if_none_match``: only if
        there is no such object. A failed condition is a :class:`RemoteAccessError` with
        status 412 (not retried: the caller reads again and merges).
        """
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body, **self._payer()}
        if content_type:
            kwargs["ContentType"] = content_type
        if if_match:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        return str(self.call(key, "put_object", **kwargs)["ETag"])

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """Whole content and ETag of a (small) object, or None if there is none."""
        try:
            r = self.call(key, "get_object", Bucket=self.bucket, Key=key, **self._payer())
        except RemoteAccessError as exc:
            if exc.status == 404:
                return None
            raise
        return bytes(r["Body"].read()), str(r["ETag"])

    def delete(self, key: str) -> None:
        """Remove an object (nothing happens if there is none)."""
        self.call(key, "delete_object", Bucket=self.bucket, Key=key, **self._payer())


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return str(err.get("Code") or err.get("Message") or "")
    return ""


def objects_for(href: str, settings: RemoteSettings | None = None) -> tuple[RemoteObjects, str]:
    """The objects holding ``href`` and its key among them.

    Raises
    ------
    RemoteAccessError
        An href without bucket or host, or of another scheme.
    """
    settings = settings or RemoteSettings.from_env()
    root, key = split_href(href)
    if root.startswith("s3://"):
        return S3Objects(root[len("s3://") :], settings), key
    if root.startswith(("http://", "https://")):
        return HttpObjects(root, settings), key
    raise RemoteAccessError(href, "unsupported scheme: expected s3://, http:// or https://")


class RangeFile(io.RawIOBase):
    """A remote object as a read-only seekable file, read by range requests (for :mod:`zipfile`).

    Wrap it in :class:`io.BufferedReader` so that small reads share one request.
    """

    def __init__(self, objects: RemoteObjects, key: str, size: int) -> None:
        super().__init__()
        self.objects, self.key, self.size = objects, key, size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.pos)
        if n <= 0:
            return 0
        data = self.objects.get(self.key, self.pos, self.pos + n - 1)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


@dataclass(frozen=True)
class RangeOpener:
    """Opens a remote object as a buffered :class:`RangeFile` (picklable, unlike a closure: products travel to
    Dask workers)."""

    objects: RemoteObjects
    key: str
    size: int
    buffer_size: int = 256 * 2**10
    """Bytes per request: zipfile's many small reads of the central directory share one."""

    def __call__(self) -> io.BufferedReader:
        return io.BufferedReader(RangeFile(self.objects, self.key, self.size), buffer_size=self.buffer_size)

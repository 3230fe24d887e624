"""Keep credentials out of everything sen2core logs, reports or stores.

A STAC API URL may carry credentials (``https://user:token@host/v1?api_key=token``), and
so may signed asset hrefs (``...?X-Amz-Signature=...``). Logged or stored as they are,
they end up on terminals, in the Prefect database, in report files and in artifacts.
This module finds and masks them:

- :func:`redact_url`: the user-info of a URL and its credential-like query parameters
  (names containing token, key, password, secret, signature, credential, auth, session;
  ``sig``; every ``X-Amz-*`` and ``X-Goog-*``) become ``***``;
- :func:`redact_text`: the same for every URL and ``name=value`` pair inside free text,
  ``Authorization`` header values, and every value registered with
  :func:`register_secret` (credentials sen2core itself was given);
- :func:`redact_exception`: an exception whose message holds credentials, rebuilt with a
  masked message (same type, so retry decisions do not change);
- :func:`install_log_redaction`: every log record of the process is masked when it is
  created, whatever logger or handler (Prefect's API handler included) later gets it;
- :func:`split_url_credentials`: a URL without its credentials, and the credentials, so
  that they can travel another way (environment, secret store) than the URL.

Nothing here runs at import time: the orchestration calls :func:`install_log_redaction`
(command line, flows, every task), and the library stays free of global side effects.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "install_log_redaction",
    "is_credential_name",
    "redact_exception",
    "redact_text",
    "redact_url",
    "redact_worker_logs",
    "register_secret",
    "split_url_credentials",
]

MASK = "***"
"""What a credential is replaced with."""

_WORDS = ("token", "key", "password", "passwd", "pwd", "secret", "signature", "credential", "auth", "session")
_EXACT = frozenset({"sig", "pass", "code"})
_PREFIXES = ("x-amz-", "x-goog-")
#: Registered values shorter than this are not masked in free text (they would mask ordinary words).
MIN_SECRET_LENGTH = 6

_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
_PAIR = re.compile(r"(?P<name>[A-Za-z0-9_.\-]+)=(?P<value>[^&\s'\"<>#;,)\]}]+)")
_AUTH_HEADER = re.compile(r"(?i)(?P<head>\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)(?P<value>[^'\"\n,}]+)")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_installed = False


def is_credential_name(name: str) -> bool:
    """True if a query parameter or field of this name holds a credential."""
    low = name.lower()
    return low in _EXACT or low.startswith(_PREFIXES) or any(w in low for w in _WORDS)


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and its URL-encoded form) wherever :func:`redact_text` sees it, from now on.

    Values shorter than :data:`MIN_SECRET_LENGTH` characters are ignored.
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        _secrets.update({value, quote(value, safe=""), quote(value)})


def _mask_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(is_credential_name(k) for k, _ in pairs):
        return query
    return urlencode([(k, MASK if is_credential_name(k) else v) for k, v in pairs], safe="*")


def redact_url(url: str) -> str:
    """``url`` with its user-info and credential-like query parameters replaced by ``***``.

    Anything that is not a URL is returned with only :func:`redact_text`'s pair masking.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return _mask_pairs(url)
    if not parts.scheme or not parts.netloc:
        return _mask_pairs(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, _mask_query(parts.query), _mask_query(parts.fragment)))


def _mask_pairs(text: str) -> str:
    return _PAIR.sub(lambda m: f"{m['name']}={MASK}" if is_credential_name(m["name"]) else m[0], text)


def redact_text(text: str) -> str:
    """``text`` with the credentials in it masked (see the module docstring)."""
    if not text:
        return text
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL.sub(lambda m: redact_url(m[0]), text)
    text = _mask_pairs(text)
    return _AUTH_HEADER.sub(lambda m: f"{m['head']}{MASK}", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, tuple):
        return tuple(_redact_value(v) for v in value)
    return value


def redact_exception(exc: BaseException) -> BaseException:
    """``exc`` itself if its message holds no credential; else a copy of the same type with a masked message.

    The copy keeps the type and the attributes (``status_code``, ``errno``...) that retry
    decisions read, with every string attribute masked too (so that an error rebuilt from
    its attributes when unpickled stays masked). When the type cannot be copied that way,
    a plain exception of the nearest builtin kind (``OSError``, ``TimeoutError``,
    ``ValueError``, ``RuntimeError``) carries the masked message.
    """
    text = str(exc)
    clean = redact_text(text)
    if clean == text:
        return exc
    try:
        new = copy.copy(exc)
        new.args = tuple(_redact_value(a) for a in exc.args)
        for name, value in list(vars(new).items()):
            if isinstance(value, (str, tuple)):
                setattr(new, name, _redact_value(value))
        if isinstance(new, OSError):
            for name in ("filename", "filename2", "strerror"):
                if isinstance(getattr(new, name, None), str):
                    setattr(new, name, redact_text(getattr(new, name)))
        if redact_text(str(new)) == str(new):
            new.__traceback__ = exc.__traceback__
            return new
    except Exception:  # noqa: BLE001, S110 - fall back to a plain exception below
        pass
    kind: type[BaseException] = RuntimeError
    for base in (TimeoutError, OSError, ValueError):
        if isinstance(exc, base):
            kind = base
            break
    return kind(f"{type(exc).__name__}: {clean}")


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
        return
    clean = redact_text(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        masked = redact_text(text)
        if masked != text:
            # Formatters use exc_text when it is set instead of formatting the exception again.
            record.exc_text = masked


def install_log_redaction() -> None:
    """Mask credentials in every log record created in this process from now on (idempotent).

    A log record factory is used rather than a handler filter: records reach many handlers
    (console, Prefect's API handler, files) through many loggers, and a filter on one
    logger does not see the records its children propagate.
    """
    global _installed
    with _secrets_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def redact_worker_logs() -> Any:
    """A Dask worker plugin that calls :func:`install_log_redaction` in every worker process.

    Tasks install it themselves when they start; the plugin covers what a worker logs
    before or outside them. Register it on a client (``client.register_plugin(...)``);
    the command line and the flows' runner do it for the clusters they create.
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class LogRedaction(WorkerPlugin):  # type: ignore[misc]
        name = "sen2core-log-redaction"

        def setup(self, worker: Any) -> None:
            install_log_redaction()

    return LogRedaction()


def split_url_credentials(url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without user-info and credential-like query parameters, and what was removed.

    Returns
    -------
    tuple
        The clean URL, and a mapping with ``username`` / ``password`` (from the user-info;
        a lone user-info is taken as a token) and ``parameters`` (the removed query
        parameters), holding only what the URL had. Every value is registered
        (:func:`register_secret`).
    """
    parts = urlsplit(url)
    found: dict[str, Any] = {}
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, sep, password = userinfo.partition(":")
        if sep:
            found["username"], found["password"] = unquote(user), unquote(password)
        else:
            found["token"] = unquote(user)
    kept, removed = [], {}
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if is_credential_name(k):
            removed[k] = v
        else:
            kept.append((k, v))
    if removed:
        found["parameters"] = removed
    for value in _secret_values(found):
        register_secret(value)
    clean = urlunsplit((parts.scheme, netloc, parts.path, urlencode(kept), parts.fragment))
    return clean, found


def _secret_values(found: dict[str, Any]) -> Iterable[str]:
    for key in ("password", "token"):
        if found.get(key):
            yield str(found[key])
    yield from (str(v) for v in (found.get("parameters") or {}).values())

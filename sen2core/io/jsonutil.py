"""Strict JSON for everything sen2core writes (run summaries, STAC documents, ``--json`` output).

Python's :mod:`json` writes ``NaN`` and ``Infinity`` by default. Those are not JSON
(RFC 8259): strict parsers (JavaScript's ``JSON.parse``, Go, jq, STAC validators) refuse
the whole document. sen2core's summaries hold numbers that may be undefined for a
scene (a mean over no pixel), so a non-finite float is written as ``null``: the value
is unknown, and the rest of the document stays readable.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sen2core.io.failures import write_failure

__all__ = ["atomic_write_json", "finite_or_none", "strict_json_dumps"]


def finite_or_none(obj: Any) -> Any:
    """A copy of ``obj`` in plain JSON types: numpy scalars and arrays converted, NaN and infinities as None.

    Mappings become dicts (keys as given), tuples, lists and arrays become lists.
    """
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Mapping):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite_or_none(obj.tolist())
    return obj


def strict_json_dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that always produces valid JSON: non-finite floats become ``null``.

    Parameters
    ----------
    obj
        What to serialise (numpy scalars and arrays are accepted).
    **kwargs
        Passed to :func:`json.dumps` (``indent``, ``sort_keys`` ...); ``allow_nan`` is
        always False, so anything non-finite left over raises ``ValueError``.

    Returns
    -------
    str
    """
    kwargs["allow_nan"] = False
    return json.dumps(finite_or_none(obj), **kwargs)


def atomic_write_json(path: Path, content: Mapping[str, Any]) -> None:
    """Write JSON through a temporary file in the same folder, flushed to disk, then ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(strict_json_dumps(content, indent=1, ensure_ascii=False))
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_failure(exc, path, "cannot write") from exc

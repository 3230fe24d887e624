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
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["finite_or_none", "strict_json_dumps"]


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

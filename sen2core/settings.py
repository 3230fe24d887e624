"""Valid ranges of the processor's settings, declared in tables and checked in one place.

Each configuration class (:class:`~sen2core.config.SceneClassificationConfig`,
:class:`~sen2core.correction.CorrectionConfig`) has a table mapping every numeric
setting to a :class:`Range`; its ``__post_init__`` calls :func:`check_ranges` once, so
a value is checked however the configuration was built (defaults, ``replace``, a
Sen2Cor GIPP, a TOML or JSON file). Readers of files catch the
:class:`~sen2core.errors.SettingRangeError` and add the file and the file's own name
for the setting (:meth:`~sen2core.errors.SettingRangeError.located`).

Why: an out-of-range value does not fail, it silently makes a bad product (a negative
adjacency range gave 39 % negative reflectance, an infinite elevation wrote ``Infinity``
into the run summary). The ranges are what the science and the radiative-transfer
table support; they are documented in ``docs/settings.md``, which
:func:`markdown_table` generates (a test keeps the two equal).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sen2core.errors import SettingRangeError

__all__ = ["Range", "check_ranges", "markdown_table"]


@dataclass(frozen=True)
class Range:
    """A closed or half-open interval of valid values, with its unit and why it is so."""

    low: float
    high: float
    unit: str = ""
    """Unit shown with the range (``km``, ``m``, ``cm-atm``, ``reflectance`` ...)."""
    why: str = ""
    """What bounds it (the LUT's axis, a chunk overlap ...), for the documentation."""
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    """Whole numbers only."""

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        v = float(value)
        if not math.isfinite(v) or (self.integer and not v.is_integer()):
            return False
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below

    def __str__(self) -> str:
        text = f"{'(' if self.low_open else '['}{_g(self.low)}, {_g(self.high)}{')' if self.high_open else ']'}"
        if self.integer:
            text = f"integer in {text}"
        return f"{text} {self.unit}".rstrip()


def _g(x: float) -> str:
    return f"{x:g}"


def _values(value: Any) -> Iterable[Any]:
    # Tuples (band spectra, threshold lists) are checked element by element.
    return value if isinstance(value, tuple) else (value,)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def check_ranges(obj: Any, table: Mapping[str, Range], scope: str) -> None:
    """Check every setting of ``obj`` named in ``table`` (dotted names reach nested settings).

    Parameters
    ----------
    obj
        A configuration object.
    table
        Setting name -> valid range.
    scope
        What the settings configure (``scene classification``), for messages.

    Raises
    ------
    SettingRangeError
        At the first value outside its range (NaN and infinities are never valid).
    """
    for name, valid in table.items():
        value = _get(obj, name)
        for v in _values(value):
            if v not in valid:
                raise SettingRangeError(scope, name, value, str(valid))


def markdown_table(scope: str, table: Mapping[str, Range], defaults: Any,
                   labels: Mapping[str, str] | None = None) -> str:  # fmt: skip
    """A markdown table of ``table``: setting, its name in Sen2Cor's files (``labels``, markdown), default,
    valid range, what bounds it."""
    labels = labels or {}
    lines = [f"| {scope} setting | in Sen2Cor's GIPP | default | valid range | bound by |", "|---|---|---|---|---|"]
    for name, valid in table.items():
        default = _get(defaults, name)
        shown = ", ".join(_g(v) for v in default) if isinstance(default, tuple) else _g(default)
        lines.append(f"| `{name}` | {labels.get(name, '')} | {shown} | {valid} | {valid.why} |")
    return "\n".join(lines) + "\n"

"""Valid values of the processor's settings, declared in tables and checked in one place.

Each configuration class (:class:`~sen2core.config.SceneClassificationConfig`,
:class:`~sen2core.correction.CorrectionConfig`, :class:`~sen2core.run.ProcessingConfig`)
has two tables: one mapping every numeric setting to a :class:`Range`, and one of
:data:`Rule` s on a setting's form or between settings (:class:`Ordered`, :class:`Increasing`,
:class:`AllAbove`, :class:`OddSize`, :class:`Length`, :class:`OneOf`). Its ``__post_init__`` calls
:func:`check_settings` once, so a value is checked however the configuration was built
(defaults, ``replace``, a Sen2Cor GIPP, a TOML or JSON file). Readers of files catch the
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sen2core.errors import ConfigurationError, SettingRangeError

__all__ = [
    "AllAbove",
    "Increasing",
    "Length",
    "OddSize",
    "OneOf",
    "Ordered",
    "Range",
    "Rule",
    "check_ranges",
    "check_settings",
    "markdown_table",
    "rules_markdown",
]


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
    also: tuple[float, ...] = ()
    """Values valid outside the interval, each with a meaning of its own (an ozone column of 0
    asks for the product's); ``why`` says which."""

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        v = float(value)
        if v in self.also:
            return True
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


@dataclass(frozen=True)
class Ordered:
    """Settings that must increase in the order given: a ramp's start below its end (``strict``), or
    thresholds that may be equal (not ``strict``)."""

    names: tuple[str, ...]
    strict: bool = True

    def problem(self, obj: Any) -> str | None:
        """What is wrong with ``obj``'s settings, or None."""
        values = [_get(obj, name) for name in self.names]
        if _increasing(values, self.strict):
            return None
        if len(self.names) == 2 and self.strict:
            (a, b), (va, vb) = self.names, values
            return f"{a} ({va}) must be below {b} ({vb})"
        return "need " + f" {'<' if self.strict else '<='} ".join(self.names)

    def describe(self) -> str:
        """The rule in markdown, for the documentation."""
        return f" {'<' if self.strict else '<='} ".join(f"`{name}`" for name in self.names)


@dataclass(frozen=True)
class Increasing:
    """A ``(low, high)`` setting whose low end must be below its high end."""

    name: str

    def problem(self, obj: Any) -> str | None:
        """What is wrong with ``obj``'s settings, or None."""
        values = tuple(_get(obj, self.name))
        if _increasing(values, strict=True):
            return None
        return f"{self.name} must be (low, high) with low below high, got {values}"

    def describe(self) -> str:
        """The rule in markdown, for the documentation."""
        return f"`{self.name}` is (low, high) with low < high"


def _increasing(values: Sequence[Any], strict: bool) -> bool:
    return all(a < b if strict else a <= b for a, b in zip(values, values[1:], strict=False))


@dataclass(frozen=True)
class AllAbove:
    """A list setting (``name``) that must hold at least one value, each above the setting ``floor``."""

    name: str
    floor: str

    def problem(self, obj: Any) -> str | None:
        """What is wrong with ``obj``'s settings, or None."""
        values, floor = _get(obj, self.name), _get(obj, self.floor)
        if values and all(v > floor for v in values):
            return None
        return f"{self.name} needs thresholds above {self.floor} ({floor}), got {values}"

    def describe(self) -> str:
        """The rule in markdown, for the documentation."""
        return f"`{self.name}` has at least one value, each > `{self.floor}`"


@dataclass(frozen=True)
class OddSize:
    """A window size that must be odd (a centred window), or 0 for off where ``zero_is_off``."""

    name: str
    zero_is_off: bool = False

    def problem(self, obj: Any) -> str | None:
        """What is wrong with ``obj``'s settings, or None."""
        value = _get(obj, self.name)
        if value % 2 == 1 or (self.zero_is_off and value == 0):
            return None
        return f"{self.name} must be {'0 or an odd size' if self.zero_is_off else 'odd'}, got {value}"

    def describe(self) -> str:
        """The rule in markdown, for the documentation."""
        return f"`{self.name}` is {'0 (off) or odd' if self.zero_is_off else 'odd'}"


@dataclass(frozen=True)
class Length:
    """A list setting with exactly ``count`` values (``what`` says which, for the message)."""

    name: str
    count: int
    what: str

    def problem(self, obj: Any) -> str | None:
        """What is wrong with ``obj``'s settings, or None."""
        if len(_get(obj, self.name)) == self.count:
            return None
        return f"{self.name} needs {self.count} values ({self.what})"

    def describe(self) -> str:
        """The rule in markdown, for the documentation."""
        return f"`{self.name}` has {self.count} values ({self.what})"


@dataclass(frozen=True)
class OneOf:
    """A setting that is one of ``options`` (or None, where ``optional``)."""

    name: str
    options: tuple[object, ...]
    optional: bool = False

    def problem(self, obj: Any) -> str | None:
        """What is wrong with ``obj``'s settings, or None."""
        value = _get(obj, self.name)
        if value in self.options or (self.optional and value is None):
            return None
        return f"{self.name} must be {_either(self.options)}, not {value!r}"

    def describe(self) -> str:
        """The rule in markdown, for the documentation."""
        return f"`{self.name}` is {_either([f'`{o}`' for o in self.options])}"


Rule = Ordered | Increasing | AllAbove | OddSize | Length | OneOf
"""A condition on a setting's form or between settings, beyond each one's :class:`Range`."""


def _either(options: Sequence[object]) -> str:
    words = [str(o) for o in options]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def check_settings(obj: Any, ranges: Mapping[str, Range], rules: Sequence[Rule], scope: str) -> None:
    """Check ``obj`` against its tables: every setting in its range, then every rule, in table order.

    Parameters
    ----------
    obj
        A configuration object.
    ranges
        Setting name -> valid range (dotted names reach nested settings).
    rules
        Conditions on a setting's form or between settings (each setting being in range).
    scope
        What the settings configure (``scene classification``), for messages.

    Raises
    ------
    SettingRangeError
        At the first value outside its range.
    ConfigurationError
        At the first rule that does not hold; the message names the scope and the settings.
    """
    check_ranges(obj, ranges, scope)
    for rule in rules:
        problem = rule.problem(obj)
        if problem is not None:
            raise ConfigurationError(f"{scope}: {problem}")


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


def rules_markdown(rules: Sequence[Rule]) -> str:
    """A markdown list of ``rules``, in the order they are checked."""
    return "".join(f"- {rule.describe()}\n" for rule in rules)

"""attrs validators for the trainer's config: every number has a checked range.

Each message names the key and says what was expected, e.g. ``epochs must be an integer >= 1,
got 0``; the config reader appends where the key stands (``@ run.toml.epochs``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import attrs

Validator = Callable[[Any, attrs.Attribute, Any], None]

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
"""The forms of ``device``; whether it exists is checked when a run starts."""


def _fail(attribute: attrs.Attribute, expected: str, value: Any) -> None:
    raise ValueError(f"{attribute.name} must be {expected}, got {value!r}")


def integer(low: int, high: int | None = None) -> Validator:
    """An int (never a bool) in ``low .. high``."""
    expected = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if type(value) is not int or value < low or (high is not None and value > high):
            _fail(attribute, expected, value)

    return check


def number(low: float, *, open_low: bool = False, high: float | None = None, open_high: bool = False) -> Validator:
    """A finite int or float (never a bool) in the interval from `low` to `high`."""
    left, right = "(" if open_low else "[", ")" if open_high else "]"
    expected = (
        f"a finite number {'>' if open_low else '>='} {low:g}"
        if high is None
        else f"a number in {left}{low:g}, {high:g}{right}"
    )

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > low if open_low else value >= low)
        if high is not None:
            ok = ok and (value < high if open_high else value <= high)
        if not ok:
            _fail(attribute, expected, value)

    return check


def positive_integers(instance: Any, attribute: attrs.Attribute, value: tuple[Any, ...]) -> None:
    """A tuple of ints >= 1."""
    for i, item in enumerate(value):
        if type(item) is not int or item < 1:
            raise ValueError(f"{attribute.name}[{i}] must be an integer >= 1, got {item!r}")


def distinct(instance: Any, attribute: attrs.Attribute, value: tuple[Any, ...]) -> None:
    if not value or len(set(value)) != len(value):
        raise ValueError(f"{attribute.name} must be a non-empty list of distinct values, got {list(value)!r}")


def run_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    """A plain directory name: no separators, not ``.`` or ``..``, not empty, no NUL."""
    if (
        not isinstance(value, str)
        or value in ("", ".", "..")
        or any(c in value for c in "/\\\0")
        or value != value.strip()
    ):
        raise ValueError(
            f"{attribute.name} must be a plain directory name (no '/' or '\\', not '.', '..' or empty, "
            f"no surrounding spaces), got {value!r}"
        )


def device(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or DEVICE_PATTERN.fullmatch(value) is None:
        raise ValueError(
            f"{attribute.name} must be one of auto, cpu, cuda, cuda:N, mps, got {value!r}"
        )


def one_of(*options: str) -> Validator:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            _fail(attribute, f"one of {', '.join(map(repr, options))}", value)

    return check

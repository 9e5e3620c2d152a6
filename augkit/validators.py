"""attrs validators, public for plugin authors: an augmentation's parameters, and the numbers,
choices and names of a config (the trainer's, the tables config).

Each message names what it checks and says what was expected. Config validators
(`integer`, `number`, `one_of`, ...) start with the key, e.g. ``epochs must be an integer >=
1, got 0``, so that the config reader appends where the key stands (``@ run.toml.epochs``);
augmentation validators start with the augmentation's ``name``
(``dropout: rate must be a number in [0, 1], got 2``).

Examples:
    >>> import attrs
    >>> from augkit import validators
    >>> @attrs.frozen
    ... class Options:
    ...     steps: int = attrs.field(default=1, validator=validators.integer(1))
    ...     mode: str = attrs.field(default="fast", validator=validators.one_of("fast", "exact"))
    >>> Options(steps=0)
    Traceback (most recent call last):
    ...
    ValueError: steps must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from typing import Any

import attrs

from augkit.errors import UnknownNameError
from augkit.random import GRANULARITIES

__all__ = [
    "DEVICE_PATTERN",
    "Validator",
    "device",
    "distinct",
    "feature_names",
    "granularity",
    "integer",
    "name_list",
    "number",
    "one_of",
    "optional_probability",
    "optional_tuple",
    "positive_integers",
    "probability",
    "registered",
    "run_name",
]

# -- config values: messages start with the key ----------------------------------------------
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


def registered(what: str, names: Collection[str]) -> Validator:
    """One of `names` (e.g. the keys of a table of registered things, read when checked); otherwise
    `UnknownNameError` naming the key and the closest name, as the plugin registry does:
    ``unknown data source 'movielens'; did you mean 'movielens-100k'?``."""

    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in names:
            error = UnknownNameError(what, value, names)
            error.where = attribute.name
            raise error

    return check


def one_of(*options: str) -> Validator:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            _fail(attribute, f"one of {', '.join(map(repr, options))}", value)

    return check


# -- augmentation parameters: messages start with the augmentation's name --------------------
def probability(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """A number in [0, 1].

    Examples:
        An attrs validator for the parameters of an augmentation (its ``name`` starts the
        message):

        >>> import attrs
        >>> from augkit import validators
        >>> @attrs.frozen
        ... class Jitter:
        ...     name = "jitter"
        ...     rate: float = attrs.field(default=0.1, validator=validators.probability)
        >>> Jitter(rate=1.5)
        Traceback (most recent call last):
        ...
        ValueError: jitter: rate must be a number in [0, 1], got 1.5
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{instance.name}: {attribute.name} must be a number in [0, 1], got {value!r}")


def optional_probability(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    """None, or a number in [0, 1]."""
    if value is not None:
        probability(instance, attribute, value)


def granularity(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    """"example" or "batch" (`augkit.random.GRANULARITIES`)."""
    if value not in GRANULARITIES:
        raise ValueError(
            f"{instance.name}: granularity must be one of {', '.join(GRANULARITIES)}, got {value!r}"
        )


def feature_names(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...] | None) -> None:
    """None (all features) or a non-empty tuple of distinct names; never a string."""
    if value is None:
        return
    names = name_list(instance.name, attribute.name, value)
    if not names or not all(isinstance(v, str) for v in names) or len(set(names)) != len(names):
        raise ValueError(
            f"{instance.name}: {attribute.name} must be None or distinct feature names, got {value!r}"
        )


def name_list(owner: str, parameter: str, value: Any) -> tuple[Any, ...]:
    """`value`, a list or tuple (of feature names), as a tuple.

    Anything else raises ValueError naming `owner` and `parameter`: a string especially, which
    would iterate as its letters, and sets, whose order varies between processes.

    Examples:
        >>> from augkit.validators import name_list
        >>> name_list("mask", "features", ["genre", "tags"])
        ('genre', 'tags')
        >>> name_list("mask", "features", "genre")
        Traceback (most recent call last):
        ...
        ValueError: mask: features must be a list of feature names, got the string 'genre'; write ['genre']
    """
    if isinstance(value, str):
        raise ValueError(
            f"{owner}: {parameter} must be a list of feature names, got the string {value!r}; "
            f"write [{value!r}]"
        )
    if not isinstance(value, (list, tuple)):
        raise ValueError(
            f"{owner}: {parameter} must be a list of feature names, got {type(value).__name__} "
            f"{value!r}"
        )
    return tuple(value)


def optional_tuple(value: Any) -> Any:
    """Converter: lists (from TOML/JSON) become tuples; anything else (None, a string, a
    number) stays as it is, for `feature_names` to accept or reject by name."""
    return tuple(value) if isinstance(value, list) else value

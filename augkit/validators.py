"""attrs validators shared by augmentation parameters; messages name the parameter."""

from __future__ import annotations

from typing import Any

import attrs

from augkit.random import GRANULARITIES

__all__ = [
    "feature_names",
    "granularity",
    "name_list",
    "optional_probability",
    "optional_tuple",
    "probability",
]


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

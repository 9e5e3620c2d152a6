"""attrs validators shared by augmentation parameters; messages name the parameter."""

from __future__ import annotations

from typing import Any

import attrs

from augkit.random import GRANULARITIES


def probability(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    """A number in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{instance.name}: {attribute.name} must be a number in [0, 1], got {value!r}")


def optional_probability(instance: Any, attribute: attrs.Attribute, value: float | None) -> None:
    """None, or a number in [0, 1]."""
    if value is not None:
        probability(instance, attribute, value)


def granularity(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in GRANULARITIES:
        raise ValueError(
            f"{instance.name}: granularity must be one of {', '.join(GRANULARITIES)}, got {value!r}"
        )


def feature_names(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...] | None) -> None:
    """None (all features) or a non-empty tuple of distinct names."""
    if value is None:
        return
    if not value or len(set(value)) != len(value) or not all(isinstance(v, str) for v in value):
        raise ValueError(
            f"{instance.name}: {attribute.name} must be None or distinct feature names, got {value!r}"
        )


def optional_tuple(value: Any) -> tuple[str, ...] | None:
    """Converter: lists (from TOML/JSON) become tuples; None stays None."""
    return None if value is None else tuple(value)

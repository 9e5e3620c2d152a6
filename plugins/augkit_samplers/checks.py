"""Argument checks shared by the samplers and frequency estimators; messages name the
object (its registry name) and the parameter at fault."""

from __future__ import annotations

from typing import Any

import attrs
import torch


def positive_int(who: str, parameter: str, value: object) -> int:
    """`value` if it is an int >= 1 (bool excluded), else a ValueError naming `parameter`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{who}: {parameter} must be a positive int, got {value!r}")
    return value


def boolean(who: str, parameter: str, value: object) -> bool:
    """`value` if it is a bool, else a ValueError naming `parameter`."""
    if not isinstance(value, bool):
        raise ValueError(f"{who}: {parameter} must be True or False, got {value!r}")
    return value


def attrs_positive_int(instance: Any, attribute: attrs.Attribute, value: object) -> None:
    """attrs validator form of `positive_int` (the instance's class carries ``name``)."""
    positive_int(instance.name, attribute.name, value)


def attrs_boolean(instance: Any, attribute: attrs.Attribute, value: object) -> None:
    """attrs validator form of `boolean`."""
    boolean(instance.name, attribute.name, value)


def ids(
    who: str, value: object, *, state_device: torch.device, num_ids: int | None, check_range: bool
) -> torch.Tensor:
    """`value` as a ``LongTensor`` of ids on `state_device`.

    Raises TypeError for a non-integer tensor and ValueError for a tensor on another device.
    With `check_range`, also a ValueError naming the id and its position for an id outside
    ``0 .. num_ids-1`` (``0 ..`` when `num_ids` is None); that check reads one bool back from
    the device (a host sync on accelerators).
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{who}: ids must be a torch.Tensor of item ids, got {type(value).__name__}")
    if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
        raise TypeError(f"{who}: ids must be an integer tensor (torch.long), got dtype {value.dtype}")
    if value.device != state_device:
        raise ValueError(
            f"{who}: ids are on {value.device} but the estimator's state is on {state_device}; "
            "move one of them with .to(...)"
        )
    value = value.long()
    if not check_range:
        return value
    bad = value < 0 if num_ids is None else (value < 0) | (value >= num_ids)
    if bool(bad.any()):
        position = tuple(int(i) for i in bad.nonzero()[0])
        expected = "0 or more" if num_ids is None else f"0..{num_ids - 1}"
        raise ValueError(
            f"{who}: id {int(value[position])} at position {position} is out of range; expected {expected}"
        )
    return value

"""Checks of loss options and input tensors; every message names the loss and the argument.

Tensor checks read metadata only (shape, dtype, device), so they never wait on the device,
with one exception that costs no wait: `finite` reads the values of a ``log_q`` held on the
CPU. On an accelerator reading them would wait for the device at every call, so there the
values are not inspected (the reference trainer checks its estimators' values itself, see
`augkit.train.contracts.check_log_prob`); embeddings must be finite by contract.
"""

from __future__ import annotations

import math

import torch

from augkit.errors import BatchValidationError, ConfigError

REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


def temperature(who: str, value: object) -> float:
    """`value` as a float, if it is a finite number > 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (math.isfinite(value) and value > 0)
    ):
        raise ConfigError(f"{who}: temperature must be a finite number > 0, got {value!r}")
    return float(value)


def flag(who: str, name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{who}: {name} must be True or False, got {value!r}")
    return value


def choice(who: str, name: str, value: object, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices`, else a ConfigError naming the loss and parameter."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{who}: {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def reduction(who: str, value: object) -> str:
    if value not in REDUCTIONS:
        raise ConfigError(f"{who}: reduction must be one of {', '.join(REDUCTIONS)}, got {value!r}")
    return value  # type: ignore[return-value]


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)}, dtype {value.dtype}, device {value.device}"
    return type(value).__name__


def _matrix(who: str, name: str, value: object, min_rows: int) -> torch.Tensor:
    if (
        not isinstance(value, torch.Tensor)
        or value.dim() != 2
        or not value.is_floating_point()
        or value.shape[0] < min_rows
        or value.shape[1] < 1
    ):
        raise BatchValidationError(
            f"{who}: {name} must be a floating-point tensor [n, d] with n >= {min_rows} "
            f"and d >= 1, got {_describe(value)}"
        )
    return value


def embeddings(who: str, first: str, a: object, second: str, b: object, *, min_rows: int = 1) -> None:
    """`a` and `b`: floating-point tensors of one shape ``[n, d]`` (n >= `min_rows`, d >= 1),
    one dtype, one device."""
    a, b = _matrix(who, first, a, min_rows), _matrix(who, second, b, min_rows)
    if a.shape != b.shape:
        raise BatchValidationError(
            f"{who}: {first} and {second} must have the same shape [n, d], "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.dtype != b.dtype or a.device != b.device:
        raise BatchValidationError(
            f"{who}: {first} and {second} must share dtype and device, got "
            f"{a.dtype} on {a.device} and {b.dtype} on {b.device}"
        )


def matrix(who: str, name: str, value: object, *, min_rows: int = 1) -> None:
    """`value`: a floating-point tensor ``[n, d]`` with n >= `min_rows` and d >= 1."""
    _matrix(who, name, value, min_rows)


def per_row(who: str, name: str, value: object, rows: torch.Tensor, *, integer: bool) -> None:
    """`value`: a 1-D tensor with one entry per row of `rows`, on its device; integer (not
    bool) ids when `integer`, else floating point."""
    n = rows.shape[0]
    kind = "an integer" if integer else "a floating-point"
    ok = (
        isinstance(value, torch.Tensor)
        and value.shape == (n,)
        and value.device == rows.device
        and (
            (not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool)
            if integer
            else value.is_floating_point()
        )
    )
    if not ok:
        raise BatchValidationError(
            f"{who}: {name} must be {kind} tensor [{n}] on {rows.device}, got {_describe(value)}"
        )


def finite(who: str, name: str, value: torch.Tensor) -> None:
    """`value` (1-D) holds only finite numbers, when it is on the CPU (see the module
    docstring); else a `BatchValidationError` naming the first bad position and its value:
    a ``log_q`` of ``-inf`` (an item of probability 0) or NaN would make the loss NaN."""
    if value.device.type != "cpu":
        return
    bad = torch.nonzero(~torch.isfinite(value))
    if bad.numel():
        position = int(bad[0, 0])
        raise BatchValidationError(
            f"{who}: {name}[{position}] is {float(value[position])}; {name} must be finite "
            f"(the log-probability of each item, e.g. smoothed so that an unseen item has one); "
            f"{bad.shape[0]} of its {value.shape[0]} values are not"
        )

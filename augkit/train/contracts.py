"""Plugin calls of a training step under contract: an exception or an off-contract return of
an augmentation, loss or sampler becomes a `PluginCallError` naming the registered name, its
distribution and version, and the step."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from augkit.errors import PluginCallError
from augkit.registry import Registration, get_registry
from augkit.train.config import TrainConfig


def origins(config: TrainConfig) -> dict[str, Registration]:
    """The registrations behind the run's losses and sampler, by loss term."""
    registry, main = get_registry(), config.main
    wanted = {"main": ("loss", main.loss), "ssl": ("loss", config.ssl.loss), "spread_out": ("loss", main.regularizer),
              "frequency": ("sampler", main.logq), "negatives": ("sampler", main.negative_sampler())}
    return {term: registry.get(kind, c.name) for term, (kind, c) in wanted.items() if c is not None}


def augmentations(config: Mapping[str, Any]) -> list[Registration]:
    """The registrations of every augmentation an augmentation config names."""
    registry, found, pending = get_registry(), [], [config]
    while pending:
        node = pending.pop()
        name = node.get("name")
        if name not in ("two_views", "sequential"):
            found.append(registry.get("augmentation", name))
        for value in node.get("params", {}).values():
            pending += [c for c in (value if isinstance(value, list) else [value]) if isinstance(c, dict) and "name" in c]
    return found


def culprit(candidates: list[Registration], error: BaseException) -> str:
    """The registration whose code raised `error` (its innermost frame in a candidate's
    package, or a name in the message), else every candidate."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    for module in reversed(frames):
        for registration in candidates:
            if registration.package and module.partition(".")[0] == registration.package and registration.package != "augkit":
                return registration.describe()
    named = [r for r in candidates if f"{r.name!r}" in str(error)]
    return " or ".join(r.describe() for r in (named or candidates))


def under_contract(who: Callable[[BaseException], str], step: int, call: Callable[[], Any]) -> Any:
    """``call()``; any exception becomes a `PluginCallError` naming `who` and the step."""
    try:
        return call()
    except KeyboardInterrupt:
        raise
    except Exception as error:
        raise PluginCallError(f"step {step}: {who(error)} failed: {type(error).__name__}: {error}") from error


def check_scalar(value: Any, who: str, step: int, device: torch.device) -> torch.Tensor:
    if not (isinstance(value, torch.Tensor) and value.ndim == 0 and value.is_floating_point() and value.device == device):
        got = f"a tensor of shape {list(value.shape)}, {value.dtype} on {value.device}" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
        raise PluginCallError(f"step {step}: {who} returned {got}; expected a 0-dim floating tensor on {device}")
    return value


VALUES_CHECKED_STEPS = 10
"""`check_log_prob` reads the values of a log-probability on an accelerator at the steps below
this only: reading them waits for the device. On the CPU it reads them at every step."""


def check_log_prob(value: Any, who: str, step: int, items: torch.Tensor) -> torch.Tensor:
    """`value`, the ``log_prob(items)`` of estimator or sampler `who`: floats of the shape and
    device of `items`, and finite (checked as `VALUES_CHECKED_STEPS` says): a ``-inf`` (an item
    of probability 0) or NaN would make the loss NaN. A `PluginCallError` otherwise, naming
    `who`, the step, and the first non-finite position with its item and value."""
    ok = isinstance(value, torch.Tensor) and value.shape == items.shape and value.is_floating_point()
    if not ok or value.device != items.device:
        got = f"a tensor of shape {list(value.shape)}, {value.dtype} on {value.device}" if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"
        raise PluginCallError(f"step {step}: {who} log_prob returned {got}; expected floats of shape {list(items.shape)} on {items.device}")
    if value.device.type == "cpu" or step < VALUES_CHECKED_STEPS:
        bad = torch.nonzero(~torch.isfinite(value))
        if bad.numel():
            position = int(bad[0, 0])
            raise PluginCallError(
                f"step {step}: {who} log_prob returned {float(value[position])} at position {position} "
                f"(item id {int(items[position])}); a log-probability must be finite, "
                f"{bad.shape[0]} of the {value.numel()} are not"
            )
    return value

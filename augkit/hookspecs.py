"""The pluggy hook specifications of augkit (project name ``"augkit"``).

A plugin is a module with `hookimpl`-decorated functions, declared in its distribution's
``[project.entry-points.augkit]`` table. Each hook receives a ``register(name, factory)``
callable; ``factory(**params)`` must build the object, and raise TypeError/ValueError on bad
parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("augkit")
hookimpl = pluggy.HookimplMarker("augkit")

Register = Callable[[str, Callable[..., Any]], None]


@hookspec
def augkit_register_augmentations(register: Register) -> None:
    """Register augmentation factories: ``register("mask", MaskFeatures)``.

    A factory returns an `augkit.Augmentation` or `augkit.PairAugmentation`.
    """


@hookspec
def augkit_register_losses(register: Register) -> None:
    """Register loss factories; a factory returns a `torch.nn.Module`."""


@hookspec
def augkit_register_samplers(register: Register) -> None:
    """Register sampler and frequency-estimator factories."""

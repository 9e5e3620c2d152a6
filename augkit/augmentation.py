"""Base classes of augmentations and their config dicts.

Following kornia, an augmentation draws its random parameters (`generate_parameters`) apart
from applying them (`apply`): parameters are tensors on the batch's device, and applying is
deterministic. Calling the augmentation does both.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Generic, TypeVar

import attrs
import torch

from augkit.batch import FeatureBatch
from augkit.random import check_generator

CONFIG_VERSION = 1
"""Version of the ``{"version", "name", "params"}`` config dicts this augkit writes and reads."""

Params = TypeVar("Params")


class _Configurable:
    name: ClassVar[str]
    """The registry name the config dict uses."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments (by their ``__init__`` names) as plain TOML/JSON-able values;
        None (a default) is left out."""
        return {
            field.alias: list(value) if isinstance(value, tuple) else value
            for field in attrs.fields(type(self))  # type: ignore[arg-type]
            if field.init and (value := getattr(self, field.name)) is not None
        }

    def to_config(self) -> dict[str, Any]:
        """``{"version", "name", "params"}``; `augkit.compose.from_config` inverts it."""
        return {"version": CONFIG_VERSION, "name": self.name, "params": self.params()}


class Augmentation(_Configurable, Generic[Params], abc.ABC):
    """One view in, one view out: ``aug(batch, *, generator) -> FeatureBatch``."""

    granularity: str
    """"example" (a pattern per example) or "batch" (one pattern for the batch)."""
    changes_values: ClassVar[bool] = False
    """True for augmentations that write new value tensors (noise, swaps); False promises
    that only ``present``/``kept`` change and the views share the input's value tensors."""

    @abc.abstractmethod
    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> Params:
        """Draw the random parameters for `batch` (tensors on the batch's device)."""

    @abc.abstractmethod
    def apply(self, batch: FeatureBatch, params: Params) -> FeatureBatch:
        """Apply drawn parameters; deterministic and never mutates `batch`."""

    def __call__(self, batch: FeatureBatch, *, generator: torch.Generator) -> FeatureBatch:
        check_generator(generator, type(self).__name__)
        return self.apply(batch, self.generate_parameters(batch, generator=generator))


class PairAugmentation(_Configurable, Generic[Params], abc.ABC):
    """One batch in, two views out: ``aug(batch, *, generator) -> (view1, view2)``."""

    granularity: str
    """"example" (a pattern per example) or "batch" (one pattern for the batch)."""
    changes_values: ClassVar[bool] = False
    """As for `Augmentation`."""

    @abc.abstractmethod
    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> Params:
        """Draw the random parameters of both views."""

    @abc.abstractmethod
    def apply(self, batch: FeatureBatch, params: Params) -> tuple[FeatureBatch, FeatureBatch]:
        """Apply drawn parameters; deterministic and never mutates `batch`."""

    def __call__(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> tuple[FeatureBatch, FeatureBatch]:
        check_generator(generator, type(self).__name__)
        return self.apply(batch, self.generate_parameters(batch, generator=generator))

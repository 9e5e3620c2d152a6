"""A well-behaved third-party plugin: one augmentation and one loss."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from augkit import Augmentation, FeatureBatch, hookimpl


@attrs.frozen(kw_only=True)
class Identity(Augmentation[None]):
    """Returns the batch unchanged; ``strength`` exists to test parameter checking."""

    name: ClassVar[str] = "fake_identity"
    strength: float = 1.0
    granularity: str = "batch"

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> None:
        return None

    def apply(self, batch: FeatureBatch, params: None) -> FeatureBatch:
        return batch


@hookimpl
def augkit_register_augmentations(register):
    register("fake_identity", Identity)


@hookimpl
def augkit_register_losses(register):
    register("fake_loss", torch.nn.MSELoss)

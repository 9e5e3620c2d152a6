"""Shuffled epochs over interaction rows: the batches of the main retrieval task."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import ClassVar

import attrs
import torch

from augkit.random import check_generator
from augkit_samplers import checks, devices


@attrs.frozen
class InteractionSampler:
    """One shuffled epoch of ``LongTensor`` row indices into ``0 .. num_interactions-1`` per
    `batches` call, on `device`.

    Every row appears exactly once per epoch, in batches of ``batch_size``; the last batch is
    smaller unless ``drop_last`` drops it. ``len(sampler)`` is the number of batches per epoch.
    """

    name: ClassVar[str] = "interactions"
    num_interactions: int = attrs.field(validator=checks.attrs_positive_int)
    batch_size: int = attrs.field(validator=checks.attrs_positive_int)
    drop_last: bool = attrs.field(default=False, kw_only=True, validator=checks.attrs_boolean)
    device: torch.device = attrs.field(
        default="cpu", kw_only=True, converter=functools.partial(devices.device, "interactions")
    )

    def __attrs_post_init__(self) -> None:
        if self.drop_last and self.batch_size > self.num_interactions:
            raise ValueError(
                f"interactions: drop_last=True with batch_size={self.batch_size} > "
                f"num_interactions={self.num_interactions} would give empty epochs"
            )

    def __len__(self) -> int:
        full, rest = divmod(self.num_interactions, self.batch_size)
        return full + int(rest > 0 and not self.drop_last)

    def batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """The batches of one epoch, in an order drawn from `generator`."""
        check_generator(generator, self.name)
        permutation = torch.randperm(self.num_interactions, generator=generator, device=generator.device)
        if self.drop_last:
            permutation = permutation[: len(self) * self.batch_size]
        return iter(devices.move(permutation, self.device).split(self.batch_size))

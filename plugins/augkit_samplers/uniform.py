"""Uniform item batches: the item distribution of the self-supervised task."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import ClassVar

import attrs
import torch

from augkit.random import check_generator, distinct
from augkit_samplers import checks, devices


@attrs.frozen
class UniformItemSampler:
    """An endless stream of ``LongTensor[batch_size]`` item ids, uniform over
    ``0 .. num_items-1``, on `device`.

    ``replacement=False`` (default): ids within a batch are distinct. The stream walks through
    random permutations of the corpus, ``num_items // batch_size`` batches each; the remaining
    ``num_items % batch_size`` ids of a permutation are skipped, so every id has the same
    probability in every batch and, when ``batch_size`` divides ``num_items``, every id appears
    exactly once per ``num_items // batch_size`` batches. Needs ``batch_size <= num_items``.
    A permutation's first batch is a draw of distinct ids (`augkit.random.distinct`) and the
    rest of it a permutation of the other ids, made only when the stream goes on: the first
    batch of a stream (all the trainer takes of a stream each step) costs the batch, not the
    corpus.

    ``replacement=True``: every id is an independent uniform draw (duplicates possible).

    Draws happen on the generator's device and move to `device`; a generator on `device`
    avoids the copy.

    Examples:
        >>> import torch
        >>> from augkit_samplers import UniformItemSampler
        >>> batches = UniformItemSampler(num_items=6, batch_size=3).batches(torch.Generator().manual_seed(0))
        >>> first, second = next(batches), next(batches)
        >>> first.shape, torch.cat([first, second]).sort().values  # two batches: one permutation
        (torch.Size([3]), tensor([0, 1, 2, 3, 4, 5]))
    """

    name: ClassVar[str] = "uniform_items"
    num_items: int = attrs.field(validator=checks.attrs_positive_int)
    batch_size: int = attrs.field(validator=checks.attrs_positive_int)
    replacement: bool = attrs.field(default=False, kw_only=True, validator=checks.attrs_boolean)
    device: torch.device = attrs.field(
        default="cpu", kw_only=True, converter=functools.partial(devices.device, "uniform_items")
    )

    def __attrs_post_init__(self) -> None:
        if not self.replacement and self.batch_size > self.num_items:
            raise ValueError(
                f"uniform_items: batch_size={self.batch_size} exceeds num_items={self.num_items}; "
                "distinct ids per batch need batch_size <= num_items (or pass replacement=True)"
            )

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """``FloatTensor`` of the shape of `ids`: the per-draw log-probability of each id,
        ``-log(num_items)`` (the negative-sampler contract: the trainer's mixture logQ)."""
        return torch.full(ids.shape, -math.log(self.num_items), device=ids.device)

    def batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """Endless batches drawn from `generator` (the same seed gives the same stream)."""
        check_generator(generator, self.name)
        return self._with_replacement(generator) if self.replacement else self._permutations(generator)

    def _with_replacement(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        while True:
            draws = torch.randint(
                self.num_items, (self.batch_size,), generator=generator, device=generator.device
            )
            yield devices.move(draws, self.device)

    def _permutations(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        rest = (self.num_items // self.batch_size - 1) * self.batch_size
        while True:
            first = distinct(self.num_items, self.batch_size, generator=generator)
            yield devices.move(first, self.device)
            if rest:
                taken = torch.zeros(self.num_items, dtype=torch.uint8, device=first.device).index_fill_(0, first, 1)
                others = taken.argsort(stable=True)[: self.num_items - self.batch_size]
                order = torch.randperm(len(others), generator=generator, device=generator.device)
                yield from devices.move(others[order][:rest], self.device).split(self.batch_size)

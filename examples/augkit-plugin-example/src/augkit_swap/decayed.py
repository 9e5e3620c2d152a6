"""Item frequencies from exponentially decayed counts, a logQ estimator that follows trends."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class DecayedCountFrequency(nn.Module):
    """``log P(id)`` from counts that decay by ``decay`` every step, so that recent steps weigh
    most: ``count <- decay * count + (occurrences in this step)``, and
    ``log P(id) = log((count[id] + smoothing) / (sum(count) + smoothing * num_items))``,
    the per-draw probability (``per = "draw"``).

    A logQ estimator for augkit's trainer (``main.logq = { name = "decayed_count", params = {
    decay = 0.99 } }``): built with ``num_items``, updated online with each step's items
    (``online = True``). Ids are ``0 .. num_items-1``; out-of-range ids raise. State (buffers,
    in ``state_dict``, so a resumed run continues it): ``counts`` (``FloatTensor[num_items]``).
    """

    name: ClassVar[str] = "decayed_count"
    online: ClassVar[bool] = True
    per: ClassVar[str] = "draw"
    counts: torch.Tensor

    def __init__(self, num_items: int, decay: float = 0.99, smoothing: float = 1.0) -> None:
        super().__init__()
        if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1:
            raise ValueError(f"{self.name}: num_items must be an int >= 1, got {num_items!r}")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
            raise ValueError(f"{self.name}: decay must be a number in (0, 1], got {decay!r}")
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not smoothing > 0:
            raise ValueError(f"{self.name}: smoothing must be a number > 0, got {smoothing!r}")
        self.num_items, self.decay, self.smoothing = num_items, float(decay), float(smoothing)
        self.register_buffer("counts", torch.zeros(num_items, dtype=torch.float32))

    def update(self, ids: torch.Tensor) -> None:
        """One step: decay every count, then count each id of `ids` (any shape; repeats count)."""
        ids = self._checked(ids).reshape(-1)
        self.counts.mul_(self.decay).index_add_(0, ids, torch.ones_like(ids, dtype=self.counts.dtype))

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """``FloatTensor`` of the shape of `ids`: the smoothed per-draw log-probability of each id."""
        numerator = self.counts[self._checked(ids)] + self.smoothing
        return numerator.log() - (self.counts.sum() + self.smoothing * self.num_items).log()

    def _checked(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype != torch.long:
            raise TypeError(f"{self.name}: ids must be a LongTensor, got {ids.dtype}")
        if ids.numel() and not bool(((ids >= 0) & (ids < self.num_items)).all()):
            raise ValueError(f"{self.name}: ids must be in 0..{self.num_items - 1}")
        return ids.to(self.counts.device)

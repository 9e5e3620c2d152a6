"""Item log-probabilities from exact training counts, with additive smoothing."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from augkit_samplers import checks


class CountFrequency(nn.Module):
    """``log P(id) = log((count[id] + smoothing) / (total + smoothing * num_items))``.

    Counts come from `fit` (the training counts at once) or accumulate with `update`. Ids are
    ``0 .. num_items-1``; ``smoothing > 0`` gives unseen ids a finite log-probability. State
    (buffers, saved by ``state_dict``): ``counts`` (``LongTensor[num_items]``) and ``total``
    (``LongTensor[]``). Methods run on the device of the buffers (move with ``.to``); with
    ``check_ids=True`` (default) they reject out-of-range ids, which reads one bool back from
    the device per call; ``check_ids=False`` skips that sync for ids already validated (say,
    by `augkit.FeatureBatch.from_tensors`), and an out-of-range id then fails in indexing
    (IndexError on CPU, a device-side assert on CUDA).

    Examples:
        >>> import torch
        >>> from augkit_samplers import CountFrequency
        >>> frequency = CountFrequency(num_items=3).fit(torch.tensor([3, 1, 0]))
        >>> frequency.log_prob(torch.tensor([0, 1, 2])).exp()  # (count + 1) / (4 + 3)
        tensor([0.5714, 0.2857, 0.1429])
        >>> frequency.update(torch.tensor([2, 2, 2]))
        >>> frequency.log_prob(torch.tensor([0, 1, 2])).exp()  # (count + 1) / (7 + 3)
        tensor([0.4000, 0.2000, 0.4000])
    """

    name: ClassVar[str] = "count"
    online: ClassVar[bool] = False
    """The estimator lifecycle: fitted once on the training counts (`fit`), not per step."""
    per: ClassVar[str] = "draw"
    """The scale of `log_prob`: per draw (the probability that one sampled item is the id)."""
    counts: torch.Tensor
    total: torch.Tensor

    def __init__(
        self,
        num_items: int,
        smoothing: float = 1.0,
        *,
        check_ids: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.num_items = checks.positive_int(self.name, "num_items", num_items)
        if (
            isinstance(smoothing, bool)
            or not isinstance(smoothing, (int, float))
            or not 0 < smoothing < math.inf
        ):
            raise ValueError(f"{self.name}: smoothing must be a finite number > 0, got {smoothing!r}")
        self.smoothing = float(smoothing)
        self.check_ids = checks.boolean(self.name, "check_ids", check_ids)
        self.register_buffer("counts", torch.zeros(num_items, dtype=torch.long, device=device))
        self.register_buffer("total", torch.zeros((), dtype=torch.long, device=device))

    def fit(self, counts: torch.Tensor | np.ndarray) -> CountFrequency:
        """Replace the state with `counts`: non-negative integers, one per id (``[num_items]``)."""
        counts = torch.as_tensor(counts)
        if counts.dtype == torch.bool or counts.is_floating_point() or counts.is_complex():
            raise TypeError(f"{self.name}: counts must be an integer tensor, got dtype {counts.dtype}")
        if counts.shape != (self.num_items,):
            raise ValueError(
                f"{self.name}: counts must have shape [{self.num_items}] (one per id), "
                f"got {list(counts.shape)}"
            )
        counts = counts.to(self.counts.device, torch.long)
        negative = counts < 0
        if bool(negative.any()):
            first = int(negative.nonzero()[0, 0])
            raise ValueError(f"{self.name}: counts must be >= 0, got {int(counts[first])} for id {first}")
        self.counts.copy_(counts)
        self.total.copy_(counts.sum())
        return self

    def update(self, ids: torch.Tensor) -> None:
        """Count every id of `ids` (any shape; repeats count repeatedly)."""
        ids = self._ids(ids).reshape(-1)
        self.counts.index_put_((ids,), torch.ones_like(ids), accumulate=True)
        self.total += ids.numel()

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """``FloatTensor`` of the shape of `ids`: the smoothed log-probability of each id."""
        numerator = self.counts[self._ids(ids)].float() + self.smoothing
        denominator = self.total.float() + self.smoothing * self.num_items
        return numerator.log() - denominator.log()

    def extra_repr(self) -> str:
        return f"num_items={self.num_items}, smoothing={self.smoothing}, check_ids={self.check_ids}"

    def _ids(self, ids: torch.Tensor) -> torch.Tensor:
        return checks.ids(
            self.name,
            ids,
            state_device=self.counts.device,
            num_ids=self.num_items,
            check_range=self.check_ids,
        )

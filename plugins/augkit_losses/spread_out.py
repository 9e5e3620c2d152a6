"""The spread-out regulariser of Zhang et al. (ICCV 2017): the SO baseline on item embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from augkit import distributed
from augkit_losses import _checks, _ops


class SpreadOutLoss(nn.Module):
    """Push a batch of embeddings to spread over the unit sphere like uniform random points.

    Zhang, Yu, Kumar and Chang, "Learning Spread-out Local Feature Descriptors" (ICCV 2017),
    global orthogonal regularisation. For ``x``, ``FloatTensor[n, d]`` with n >= 2,
    L2-normalised here, and P the set of non-matching pairs (i, j), i != j::

        M1 = mean_{(i, j) in P} <x_i, x_j>
        M2 = mean_{(i, j) in P} <x_i, x_j>^2
        L  = M1^2 + max(0, M2 - 1/d)

    Uniform points on the sphere have M1 = 0 and M2 = 1/d. Without ``item_ids`` every pair
    i != j is non-matching; with ``item_ids`` (``LongTensor[n]``) pairs of the same item are
    left out too (a batch drawn from interactions repeats popular items). A batch with no
    non-matching pair gives 0. Returns a scalar in the input's dtype; the caller weights it.

    ``gather`` (in a torch.distributed process group): P is the set of pairs of the batch
    concatenated over ranks; each rank sums its rows' pairs, the sums are gathered with
    gradients, and every rank returns the same global L (so DDP's gradient average is the
    gradient of L on the concatenated batch). ``sizes`` as for ``batch_softmax``.
    """

    name: ClassVar[str] = "spread_out"

    def __init__(self, gather: bool = False) -> None:
        super().__init__()
        self.gather = _checks.flag(self.name, "gather", gather)

    def forward(
        self, x: torch.Tensor, item_ids: torch.Tensor | None = None, sizes: Sequence[int] | None = None
    ) -> torch.Tensor:
        _checks.matrix(self.name, "x", x, min_rows=1 if self.gather else 2)
        if item_ids is not None:
            _checks.per_row(self.name, "item_ids", item_ids, x, integer=True)
        gathered = self.gather and distributed.is_distributed()
        start = distributed.offset(sizes, x.shape[0]) if gathered else 0
        unit = F.normalize(x, dim=1)
        columns = distributed.all_gather(unit, sizes) if gathered else unit
        inner = unit @ columns.T
        own = torch.arange(x.shape[0], device=x.device)
        pairs = torch.ones_like(inner, dtype=torch.bool)
        pairs[own, own + start] = False
        if item_ids is not None:
            all_ids = distributed.all_gather(item_ids, sizes) if gathered else None
            pairs = pairs & ~_ops.duplicates(item_ids, all_ids, start)
        inner = inner.masked_fill(~pairs, 0.0)
        sums = torch.stack([inner.sum(), inner.square().sum(), pairs.sum().to(inner.dtype)])
        if gathered:
            sums = distributed.all_gather(sums.unsqueeze(0)).sum(dim=0)
        count = sums[2].clamp_min(1)
        first, second = sums[0] / count, sums[1] / count
        return first.square() + F.relu(second - 1.0 / x.shape[1])

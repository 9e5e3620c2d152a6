"""The spread-out regulariser of Zhang et al. (ICCV 2017): the SO baseline on item embeddings."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

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
    """

    name: ClassVar[str] = "spread_out"

    def forward(self, x: torch.Tensor, item_ids: torch.Tensor | None = None) -> torch.Tensor:
        _checks.matrix(self.name, "x", x, min_rows=2)
        if item_ids is not None:
            _checks.per_row(self.name, "item_ids", item_ids, x, integer=True)
        unit = F.normalize(x, dim=1)
        inner = unit @ unit.T
        pairs = ~torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        if item_ids is not None:
            pairs = pairs & ~_ops.duplicates(item_ids)
        count = pairs.sum().clamp_min(1).to(inner.dtype)
        inner = inner.masked_fill(~pairs, 0.0)
        first = inner.sum() / count
        second = inner.square().sum() / count
        return first.square() + F.relu(second - 1.0 / x.shape[1])

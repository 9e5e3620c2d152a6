"""Tensor helpers shared by the losses: duplicate-pair masks and reductions."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from augkit import distributed


def duplicates(item_ids: torch.Tensor, candidate_ids: torch.Tensor | None = None, start: int = 0) -> torch.Tensor:
    """``BoolTensor[n, m]``: True at (i, j) where ``item_ids[i] == candidate_ids[j]`` and j is
    not row i's own column ``start + i``. `candidate_ids` defaults to `item_ids` (square, own
    column on the diagonal); with gathered candidates, `start` is this rank's offset."""
    candidates = item_ids if candidate_ids is None else candidate_ids
    same = item_ids.unsqueeze(1) == candidates.unsqueeze(0)
    rows = torch.arange(item_ids.shape[0], device=item_ids.device)
    same[rows, rows + start] = False
    return same


def reduce(
    per_example: torch.Tensor, reduction: str, *, gathered: bool = False, sizes: Sequence[int] | None = None
) -> torch.Tensor:
    """``"mean"`` / ``"sum"`` give a scalar; ``"none"`` returns `per_example` ``[n]``.

    `gathered` (a loss scored against every rank's candidates): the scalar is this rank's
    share scaled by the world size (`augkit.distributed.global_mean`), so that DDP's gradient
    average is the gradient of the mean (or sum) over every rank's examples; `sizes` are the
    ranks' example counts when they differ."""
    if reduction == "mean":
        return distributed.global_mean(per_example, sizes) if gathered else per_example.mean()
    if reduction == "sum":
        return per_example.sum() * (distributed.world_size() if gathered else 1)
    return per_example

"""Tensor helpers shared by the losses: duplicate-pair masks and reductions."""

from __future__ import annotations

import torch


def duplicates(item_ids: torch.Tensor) -> torch.Tensor:
    """``BoolTensor[n, n]``: True at (i, j), i != j, where ``item_ids[i] == item_ids[j]``."""
    same = item_ids.unsqueeze(1) == item_ids.unsqueeze(0)
    return same.fill_diagonal_(False)


def reduce(per_example: torch.Tensor, reduction: str) -> torch.Tensor:
    """``"mean"`` / ``"sum"`` give a scalar; ``"none"`` returns `per_example` ``[n]``."""
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    return per_example

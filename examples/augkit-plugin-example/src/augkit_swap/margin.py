"""An in-batch softmax with an additive margin on the positive (AM-softmax), a main loss."""

from __future__ import annotations

from typing import ClassVar

import torch
from augkit import distributed
from torch import nn


class MarginSoftmaxLoss(nn.Module):
    """Softmax cross-entropy over in-batch negatives whose positive logit is lowered by a margin.

    For n (query, item) pairs, query i against item j::

        logits[i, j] = (<q_i, c_j> - margin [i == j]) / temperature - log_q[j]

    The margin asks the positive to beat every negative by `margin` in score, which spreads the
    item embeddings (Wang et al., "Additive Margin Softmax", 2018). ``query``, ``item``:
    ``FloatTensor[n, d]``; ``item_ids`` (``LongTensor[n]``): a column holding another copy of row
    i's positive is masked (an accidental hit); ``log_q`` (``FloatTensor[n]``) is subtracted in
    training mode; ``negatives`` / ``negative_ids`` / ``negative_log_q`` are extra columns, never
    labels. It is built by augkit's trainer as a main loss (``main.loss = { name =
    "margin_softmax", params = { margin = 0.1 } }``) with ``temperature``, ``logq_correction``
    and ``gather``; it scores this process's batch only, so ``gather=True`` in a process group
    is refused when called.
    """

    name: ClassVar[str] = "margin_softmax"

    def __init__(
        self, margin: float = 0.1, *, temperature: float = 0.05, logq_correction: str = "standard", gather: bool = False
    ) -> None:
        super().__init__()
        for key, value, low in (("margin", margin, 0.0), ("temperature", temperature, None)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (value < 0 if low == 0.0 else value <= 0):
                raise ValueError(f"{self.name}: {key} must be a number {'>= 0' if low == 0.0 else '> 0'}, got {value!r}")
        if logq_correction != "standard":
            raise ValueError(f"{self.name}: logq_correction must be 'standard', got {logq_correction!r}")
        self.margin, self.temperature, self.gather = float(margin), float(temperature), bool(gather)

    def forward(
        self,
        query: torch.Tensor,
        item: torch.Tensor,
        item_ids: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
        *,
        negatives: torch.Tensor | None = None,
        negative_ids: torch.Tensor | None = None,
        negative_log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean loss over the n queries, a 0-dim tensor in the inputs' dtype."""
        if self.gather and distributed.is_distributed():
            raise ValueError(f"{self.name}: scores one process's batch; set main.gather = false")
        n = query.shape[0]
        candidates = item if negatives is None else torch.cat([item, negatives])
        scores = query @ candidates.T
        positive = torch.zeros_like(scores, dtype=torch.bool)
        positive[torch.arange(n, device=scores.device), torch.arange(n, device=scores.device)] = True
        logits = (scores - self.margin * positive) / self.temperature
        if log_q is not None and self.training:
            column_log_q = log_q if negative_log_q is None else torch.cat([log_q, negative_log_q])
            logits = logits - column_log_q.to(logits.dtype)
        if item_ids is not None:
            column_ids = item_ids if negative_ids is None else torch.cat([item_ids, negative_ids])
            hits = (item_ids.unsqueeze(1) == column_ids.unsqueeze(0)) & ~positive
            logits = logits.masked_fill(hits, float("-inf"))
        return nn.functional.cross_entropy(logits, torch.arange(n, device=logits.device))

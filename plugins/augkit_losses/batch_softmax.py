"""In-batch softmax with logQ correction: the main retrieval loss of a two-tower model."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from augkit_losses import _checks, _ops
from augkit_losses.temperature import Temperature


class BatchSoftmaxLoss(nn.Module):
    """Softmax cross-entropy over in-batch negatives, labels on the diagonal.

    For n (query, item) pairs, query i is scored against every item j of the batch::

        logits[i, j] = <q_i, c_j> / tau - log_q[j]    (log_q only in training mode)
        loss_i = -log_softmax(logits[i])[i]

    - ``query``, ``item``: ``FloatTensor[n, d]``, one dtype and device. The towers normally
      L2-normalise them; this loss uses them as given (inner products).
    - ``item_ids`` (optional): ``LongTensor[n]``, the id of each in-batch item. With
      ``remove_accidental_hits`` (default), column j != i with ``item_ids[j] == item_ids[i]``
      is masked to -inf in row i: another copy of the positive item is not a negative.
    - ``log_q`` (optional): ``FloatTensor[n]``, finite log-probability that item j is sampled
      into a batch. Subtracting it (Yi et al., RecSys 2019, "Sampling-Bias-Corrected Neural
      Modeling") lowers popular items' logits, undoing the popularity bias of in-batch
      negatives. It is a training correction: in eval mode (``module.eval()``) it is ignored.

    ``temperature`` tau (default 0.05) is fixed, or learned when ``learn_temperature``
    (stored as log tau; see `Temperature`). ``reduction``: ``"mean"`` (default) or ``"sum"``
    give a scalar, ``"none"`` the ``[n]`` per-query losses.
    """

    name: ClassVar[str] = "batch_softmax"

    def __init__(
        self,
        temperature: float = 0.05,
        learn_temperature: bool = False,
        remove_accidental_hits: bool = True,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.temperature = Temperature(temperature, learnable=learn_temperature, who=self.name)
        self.remove_accidental_hits = _checks.flag(
            self.name, "remove_accidental_hits", remove_accidental_hits
        )
        self.reduction = _checks.reduction(self.name, reduction)

    def forward(
        self,
        query: torch.Tensor,
        item: torch.Tensor,
        item_ids: torch.Tensor | None = None,
        log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss (scalar, or ``[n]`` with ``reduction="none"``), in the inputs' dtype."""
        _checks.embeddings(self.name, "query", query, "item", item)
        if item_ids is not None:
            _checks.per_row(self.name, "item_ids", item_ids, query, integer=True)
        if log_q is not None:
            _checks.per_row(self.name, "log_q", log_q, query, integer=False)
        logits = self.temperature(query @ item.T)
        if log_q is not None and self.training:
            logits = logits - log_q.to(logits.dtype).unsqueeze(0)
        if item_ids is not None and self.remove_accidental_hits:
            logits = logits.masked_fill(_ops.duplicates(item_ids), float("-inf"))
        labels = torch.arange(logits.shape[0], device=logits.device)
        return _ops.reduce(F.cross_entropy(logits, labels, reduction="none"), self.reduction)

    def extra_repr(self) -> str:
        return f"remove_accidental_hits={self.remove_accidental_hits}, reduction={self.reduction!r}"

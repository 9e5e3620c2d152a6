"""InfoNCE between two augmented views: the self-supervised loss of Yao et al. (CIKM 2021)."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from augkit_losses import _checks, _ops


class InfoNCELoss(nn.Module):
    """Contrastive loss between two views of the same n items, positives on the diagonal.

    ``z1``, ``z2``: ``FloatTensor[n, d]`` (one dtype and device), row i of each is a view of
    item i. Both are L2-normalised here, so scores are cosine similarities::

        logits[i, j] = cos(z1_i, z2_j) / tau
        loss_i = -log_softmax(logits[i])[i]

    ``symmetric`` averages this with the loss of the other direction (``z2`` against ``z1``,
    i.e. ``logits.T``). Optional ``item_ids`` (``LongTensor[n]``) masks pairs i != j of the
    same item to -inf: a second copy of an item sampled into the batch is not a negative.

    ``temperature`` tau defaults to 0.1, the SSL softmax temperature around which Yao et al.
    (CIKM 2021, Sec. 3.1 and 5) tune their SSL task, and augkit's trainer default
    (``ssl.temperature``). ``reduction``: ``"mean"`` (default), ``"sum"`` or ``"none"``
    (``[n]`` per-item losses).
    """

    name: ClassVar[str] = "info_nce"

    def __init__(self, temperature: float = 0.1, symmetric: bool = False, reduction: str = "mean") -> None:
        super().__init__()
        self.temperature = _checks.temperature(self.name, temperature)
        self.symmetric = _checks.flag(self.name, "symmetric", symmetric)
        self.reduction = _checks.reduction(self.name, reduction)

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, item_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The loss (scalar, or ``[n]`` with ``reduction="none"``), in the inputs' dtype."""
        _checks.embeddings(self.name, "z1", z1, "z2", z2)
        if item_ids is not None:
            _checks.per_row(self.name, "item_ids", item_ids, z1, integer=True)
        logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / self.temperature
        if item_ids is not None:
            logits = logits.masked_fill(_ops.duplicates(item_ids), float("-inf"))
        labels = torch.arange(logits.shape[0], device=logits.device)
        per_item = F.cross_entropy(logits, labels, reduction="none")
        if self.symmetric:
            per_item = 0.5 * (per_item + F.cross_entropy(logits.T, labels, reduction="none"))
        return _ops.reduce(per_item, self.reduction)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, symmetric={self.symmetric}, reduction={self.reduction!r}"

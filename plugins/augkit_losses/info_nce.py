"""InfoNCE between two augmented views: the self-supervised loss of Yao et al. (CIKM 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from augkit import distributed
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

    ``gather`` (in a torch.distributed process group): each rank's ``z1`` rows are scored
    against the ``z2`` rows of every rank (and, when ``symmetric``, its ``z2`` against every
    ``z1``), gradients included, with ``item_ids`` gathered for the duplicate mask; the scalar
    is this rank's share of the global mean times the world size, as for ``batch_softmax``.

    Examples:
        Two views that agree score lower than views paired with the wrong items:

        >>> import torch
        >>> from augkit_losses import InfoNCELoss
        >>> loss = InfoNCELoss(temperature=1.0)
        >>> z = torch.eye(3)
        >>> loss(z, z), loss(z, z.roll(1, dims=0))
        (tensor(0.5514), tensor(1.5514))
    """

    name: ClassVar[str] = "info_nce"

    def __init__(
        self, temperature: float = 0.1, symmetric: bool = False, reduction: str = "mean", gather: bool = False
    ) -> None:
        super().__init__()
        self.gather = _checks.flag(self.name, "gather", gather)
        self.temperature = _checks.temperature(self.name, temperature)
        self.symmetric = _checks.flag(self.name, "symmetric", symmetric)
        self.reduction = _checks.reduction(self.name, reduction)

    def forward(
        self,
        z1: torch.Tensor,
        z2: torch.Tensor,
        item_ids: torch.Tensor | None = None,
        sizes: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The loss (scalar, or ``[n]`` with ``reduction="none"``), in the inputs' dtype."""
        _checks.embeddings(self.name, "z1", z1, "z2", z2)
        if item_ids is not None:
            _checks.per_row(self.name, "item_ids", item_ids, z1, integer=True)
        gathered = self.gather and distributed.is_distributed()
        start = distributed.offset(sizes, z1.shape[0]) if gathered else 0
        u1, u2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        all_ids = distributed.all_gather(item_ids, sizes) if gathered and item_ids is not None else None
        labels = torch.arange(start, start + z1.shape[0], device=z1.device)

        def direction(rows: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
            candidates = distributed.all_gather(columns, sizes) if gathered else columns
            logits = rows @ candidates.T / self.temperature
            if item_ids is not None:
                logits = logits.masked_fill(_ops.duplicates(item_ids, all_ids, start), float("-inf"))
            return F.cross_entropy(logits, labels, reduction="none")

        per_item = direction(u1, u2)
        if self.symmetric:
            per_item = 0.5 * (per_item + direction(u2, u1))
        return _ops.reduce(per_item, self.reduction, gathered=gathered, sizes=sizes)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, symmetric={self.symmetric}, reduction={self.reduction!r}, "
            f"gather={self.gather}"
        )

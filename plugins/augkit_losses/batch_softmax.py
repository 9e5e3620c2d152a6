"""In-batch softmax with logQ correction: the main retrieval loss of a two-tower model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from augkit import distributed
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

    ``gather`` (in a torch.distributed process group): each rank's queries are scored against
    the items of every rank (`augkit.distributed.all_gather`, gradients included); ``item_ids``
    and ``log_q`` are gathered too, so accidental hits are removed across ranks, and the label
    of local query i is its item's row in the gathered batch. The scalar is this rank's share
    of the global mean times the world size, so that DDP's gradient average equals one process
    on the concatenated batch. ``sizes`` (every rank's n, when they differ) goes to the
    gather. Without a process group ``gather`` changes nothing.
    """

    name: ClassVar[str] = "batch_softmax"

    def __init__(
        self,
        temperature: float = 0.05,
        learn_temperature: bool = False,
        remove_accidental_hits: bool = True,
        reduction: str = "mean",
        gather: bool = False,
    ) -> None:
        super().__init__()
        self.gather = _checks.flag(self.name, "gather", gather)
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
        sizes: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The loss (scalar, or ``[n]`` with ``reduction="none"``), in the inputs' dtype."""
        _checks.embeddings(self.name, "query", query, "item", item)
        if item_ids is not None:
            _checks.per_row(self.name, "item_ids", item_ids, query, integer=True)
        if log_q is not None:
            _checks.per_row(self.name, "log_q", log_q, query, integer=False)
        gathered = self.gather and distributed.is_distributed()
        start = distributed.offset(sizes, query.shape[0]) if gathered else 0
        candidates = distributed.all_gather(item, sizes) if gathered else item
        logits = self.temperature(query @ candidates.T)
        if log_q is not None and self.training:
            all_log_q = distributed.all_gather(log_q, sizes) if gathered else log_q
            logits = logits - all_log_q.to(logits.dtype).unsqueeze(0)
        if item_ids is not None and self.remove_accidental_hits:
            all_ids = distributed.all_gather(item_ids, sizes) if gathered else None
            logits = logits.masked_fill(_ops.duplicates(item_ids, all_ids, start), float("-inf"))
        labels = torch.arange(start, start + logits.shape[0], device=logits.device)
        per_query = F.cross_entropy(logits, labels, reduction="none")
        return _ops.reduce(per_query, self.reduction, gathered=gathered, sizes=sizes)

    def extra_repr(self) -> str:
        return (
            f"remove_accidental_hits={self.remove_accidental_hits}, reduction={self.reduction!r}, gather={self.gather}"
        )

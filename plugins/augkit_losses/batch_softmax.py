"""In-batch softmax with logQ correction: the main retrieval loss of a two-tower model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from augkit import distributed
from augkit.errors import BatchValidationError
from augkit_losses import _checks, _ops
from augkit_losses.temperature import Temperature

LOGQ_CORRECTIONS: tuple[str, ...] = ("standard", "corrected")


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
      into a batch (a ``-inf`` or NaN on the CPU is a `BatchValidationError` naming its
      position; on an accelerator the values are not read, which would wait for the device). Subtracting it (Yi et al., RecSys 2019, "Sampling-Bias-Corrected Neural
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

    ``logq_correction`` (only with ``log_q``, in training mode):

    - ``"standard"`` (default): every column is corrected, the positive too, as above (Yi et
      al. 2019; TFRS).
    - ``"corrected"`` (Khrylchenko et al., RecSys 2025, "Correcting the LogQ Correction"): the
      positive column of row i keeps its plain logit ``<q_i, c_i> / tau``; only the negatives
      are corrected. The positive is in the softmax's denominator with probability 1, it is
      not a Monte Carlo sample, so it takes no importance weight. The full-softmax gradient
      is ``-(1 - P_i) grad s_ii + sum_{j != i} P_j grad s_ij``; this loss's is the same with
      ``P`` the softmax of the corrected logits, whose negatives' part is the
      self-normalised importance-sampling estimate. The paper writes the same gradient as a
      sample weight ``sg(1 - P_i)`` (the probability of misclassification) times
      ``logsumexp_{j != i}(logits[i, j]) - s_ii / tau``; the value used here is the cross
      entropy ``-log P_i``, whose gradient is identical (tested) and which stays finite and
      >= 0 (a row without negatives has loss 0). For ``P_i`` to be calibrated, ``log_q``
      should be the log of the expected number of times item j is among a batch's
      candidates (`StreamingFrequency` with ``count="occurrences"``, or a per-draw
      log-probability plus ``log(batch_size)``); with ``"standard"`` any constant shift of
      ``log_q`` cancels.

    Extra negatives (mixed negative sampling, Yang et al., WWW 2020 companion):
    ``negatives`` ``FloatTensor[m, d]`` (for instance item-tower embeddings of items drawn
    uniformly from the corpus) are appended as columns after the in-batch candidates; they are
    never labels. ``negative_ids`` (``LongTensor[m]``, optional): with ``item_ids`` and
    ``remove_accidental_hits``, an extra negative equal to row i's positive item is masked in
    row i (an accidental hit). ``negative_log_q`` (``FloatTensor[m]``) is subtracted from
    their logits like ``log_q``, and must be given exactly when ``log_q`` is: both should come
    from the mixture's distribution (``augkit_samplers.mixture_log_q``), so that every column
    is corrected on one scale. Extra negatives are not gathered across ranks: every rank's
    queries are scored against the negatives it passes (pass the same draw on every rank to
    score all queries against it; DDP then averages its gradients like one process).

    Examples:
        Three queries, each scoring 1 with its own item and 0 with the others, at
        ``temperature=1``: each loss is ``log(1 + 2/e)``. Items 1 and 2 have one id, so they
        are not each other's negatives:

        >>> import torch
        >>> from augkit_losses import BatchSoftmaxLoss
        >>> query = item = torch.eye(3)
        >>> BatchSoftmaxLoss(temperature=1.0, reduction="none")(query, item)
        tensor([0.5514, 0.5514, 0.5514])
        >>> BatchSoftmaxLoss(temperature=1.0, reduction="none")(query, item, item_ids=torch.tensor([7, 9, 9]))
        tensor([0.5514, 0.3133, 0.3133])
    """

    name: ClassVar[str] = "batch_softmax"

    def __init__(
        self,
        temperature: float = 0.05,
        learn_temperature: bool = False,
        remove_accidental_hits: bool = True,
        reduction: str = "mean",
        gather: bool = False,
        logq_correction: str = "standard",
    ) -> None:
        super().__init__()
        self.gather = _checks.flag(self.name, "gather", gather)
        self.logq_correction = _checks.choice(self.name, "logq_correction", logq_correction, LOGQ_CORRECTIONS)
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
        *,
        negatives: torch.Tensor | None = None,
        negative_ids: torch.Tensor | None = None,
        negative_log_q: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss (scalar, or ``[n]`` with ``reduction="none"``), in the inputs' dtype."""
        _checks.embeddings(self.name, "query", query, "item", item)
        if item_ids is not None:
            _checks.per_row(self.name, "item_ids", item_ids, query, integer=True)
        if log_q is not None:
            _checks.per_row(self.name, "log_q", log_q, query, integer=False)
            if self.training:
                _checks.finite(self.name, "log_q", log_q)
        self._check_negatives(query, log_q, negatives, negative_ids, negative_log_q)
        gathered = self.gather and distributed.is_distributed()
        start = distributed.offset(sizes, query.shape[0]) if gathered else 0
        candidates = distributed.all_gather(item, sizes) if gathered else item
        if negatives is not None:
            candidates = torch.cat([candidates, negatives])
        logits = self.temperature(query @ candidates.T)
        labels = torch.arange(start, start + logits.shape[0], device=logits.device)
        if log_q is not None and self.training:
            all_log_q = distributed.all_gather(log_q, sizes) if gathered else log_q
            if negative_log_q is not None:
                all_log_q = torch.cat([all_log_q, negative_log_q])
            shift = all_log_q.to(logits.dtype).unsqueeze(0).expand_as(logits)
            if self.logq_correction == "corrected":
                own = torch.zeros_like(logits, dtype=torch.bool)
                own[torch.arange(logits.shape[0], device=logits.device), labels] = True
                shift = shift.masked_fill(own, 0.0)
            logits = logits - shift
        if item_ids is not None and self.remove_accidental_hits:
            all_ids = distributed.all_gather(item_ids, sizes) if gathered else item_ids
            hits = _ops.duplicates(item_ids, all_ids, start)
            if negatives is not None:
                extra = (
                    item_ids.unsqueeze(1) == negative_ids.unsqueeze(0)
                    if negative_ids is not None
                    else hits.new_zeros(hits.shape[0], negatives.shape[0])
                )
                hits = torch.cat([hits, extra], 1)
            logits = logits.masked_fill(hits, float("-inf"))
        per_query = F.cross_entropy(logits, labels, reduction="none")
        return _ops.reduce(per_query, self.reduction, gathered=gathered, sizes=sizes)

    def _check_negatives(
        self,
        query: torch.Tensor,
        log_q: torch.Tensor | None,
        negatives: torch.Tensor | None,
        negative_ids: torch.Tensor | None,
        negative_log_q: torch.Tensor | None,
    ) -> None:
        if negatives is None:
            for name, value in (("negative_ids", negative_ids), ("negative_log_q", negative_log_q)):
                if value is not None:
                    raise BatchValidationError(f"{self.name}: {name} needs negatives")
            return
        _checks.matrix(self.name, "negatives", negatives)
        if (
            negatives.shape[1] != query.shape[1]
            or negatives.dtype != query.dtype
            or negatives.device != query.device
        ):
            raise BatchValidationError(
                f"{self.name}: negatives must be [m, {query.shape[1]}] {query.dtype} on {query.device} "
                f"like query, got {tuple(negatives.shape)} {negatives.dtype} on {negatives.device}"
            )
        if negative_ids is not None:
            _checks.per_row(self.name, "negative_ids", negative_ids, negatives, integer=True)
        if negative_log_q is not None:
            _checks.per_row(self.name, "negative_log_q", negative_log_q, negatives, integer=False)
            if self.training:
                _checks.finite(self.name, "negative_log_q", negative_log_q)
        if (log_q is None) != (negative_log_q is None):
            raise BatchValidationError(
                f"{self.name}: with negatives, log_q and negative_log_q go together (both from "
                "the mixture's distribution, see augkit_samplers.mixture_log_q), got "
                f"log_q {'given' if log_q is not None else 'None'} and negative_log_q "
                f"{'given' if negative_log_q is not None else 'None'}"
            )

    def extra_repr(self) -> str:
        return (
            f"remove_accidental_hits={self.remove_accidental_hits}, reduction={self.reduction!r}, gather={self.gather}, "
            f"logq_correction={self.logq_correction!r}"
        )

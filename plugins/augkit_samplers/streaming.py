"""Streaming item-frequency estimate (Yi et al., RecSys 2019, Algorithm 2)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from augkit_samplers import checks

COUNTS: tuple[str, ...] = ("distinct", "occurrences")


class StreamingFrequency(nn.Module):
    """Per-step probability that a batch contains an id, estimated online from the gaps between
    the steps at which its hash slot is seen (Yi et al., "Sampling-bias-corrected neural
    modeling for large corpus item recommendations", RecSys 2019, Algorithm 2).

    State (buffers, saved by ``state_dict``), indexed by slot ``h = id mod hash_size``:

    * ``last_seen`` (``LongTensor[hash_size]``, the paper's A): the step at which the slot
      was last seen; 0 before its first sighting.
    * ``gap`` (``FloatTensor[hash_size]``, the paper's B): the estimated number of steps
      between sightings; 0 marks a slot never seen.
    * ``step`` (``LongTensor[]``): the number of `update` calls (one batch = one step).

    `update` at step t sets, for every slot h of the batch's ids,
    ``gap[h] <- (1 - learning_rate) * gap[h] + learning_rate * (t - last_seen[h])`` and
    ``last_seen[h] <- t``. `log_prob` is ``-log(gap[h])``: an estimate of the log-probability
    that a batch contains the id.

    * Slot hash: identity mod ``hash_size``. Encoded ids ``0 .. n-1`` with
      ``n <= hash_size`` never collide; otherwise the ids congruent mod ``hash_size`` share one
      slot, and so one estimate: that of their union.
    * Repeats within a batch (the same id, or ids sharing a slot) update their slot once, with
      one value, so the scattered writes are deterministic. (Algorithm 2 run one id at a time
      would see a gap of 0 for a repeat and drive the estimate above the per-step probability.)
      The estimate therefore saturates at 1 for ids in nearly every batch.
    * Initial values: the first sighting at step t sets ``gap[h] = t`` (the wait for a first
      occurrence has the same mean, 1/p, as the gap between occurrences) instead of averaging
      with an arbitrary prior. A slot not yet seen after t steps reads as ``gap = t + 1``
      (seen less often than once in t steps). So ``gap >= 1`` and ``log_prob <= 0`` always;
      before any update every id reads log-probability 0, a constant that cancels in a
      logQ-corrected softmax.

    ``count`` chooses what one step records:

    * ``"distinct"`` (default, as above): each slot of the batch once; ``log_prob`` estimates
      the log-probability that a batch *contains* the id (saturating at 0).
    * ``"occurrences"``: every occurrence counts, as in the paper's Algorithm 1 run over the
      batch's ids: a slot seen c times in a step takes ``c`` updates whose gaps are ``t -
      last_seen[h]`` then ``0`` (``c - 1`` times), applied in closed form and deterministically,
      ``gap <- (1-a)^c * gap + a (1-a)^(c-1) * (t - last_seen)``. The first sighting sets
      ``gap = (t - last_seen) / c``. ``gap`` then estimates the steps per occurrence and
      ``log_prob = -log(gap)`` the log of the *expected number of occurrences per step* (``B
      q`` for a batch of B draws with per-draw probability q; it can exceed 0 for an item
      drawn more than once per batch on average). This is the scale `mixture_log_q` (with
      ``per="batch"``) and the ``"corrected"`` logQ of `augkit_losses.BatchSoftmaxLoss` want.
      The exponential average over gaps is biased for large ``learning_rate``: on a stationary
      stream it converges to about ``(1 - a/2)``-weighted gaps; small ``learning_rate``
      reduces that (tests check a tolerance).

    Methods run on the device of the buffers (move with ``.to``). With ``check_ids=True``
    (default) negative ids (augkit's missing/padding marker) raise instead of wrapping into a
    slot, which reads one bool back from the device per call; ``check_ids=False`` skips that
    sync for ids known to be non-negative.

    Examples:
        Item 0 is in every batch, item 1 in every other, item 2 in the second and fourth:

        >>> import torch
        >>> from augkit_samplers import StreamingFrequency
        >>> frequency = StreamingFrequency(num_items=3, learning_rate=0.5)
        >>> for ids in ([0, 1], [0, 2], [0, 1], [0, 2]):
        ...     frequency.update(torch.tensor(ids))
        >>> frequency.log_prob(torch.tensor([0, 1, 2])).exp()  # per-step probability of each
        tensor([1.0000, 0.6667, 0.5000])
    """

    name: ClassVar[str] = "streaming"
    online: ClassVar[bool] = True
    """The estimator lifecycle: learns from every step's items through `update`."""
    per: ClassVar[str] = "batch"
    """The scale of `log_prob`: per batch (a batch contains the id, or its expected occurrences)."""
    last_seen: torch.Tensor
    gap: torch.Tensor
    step: torch.Tensor

    def __init__(
        self,
        hash_size: int | None = None,
        learning_rate: float = 0.05,
        *,
        num_items: int | None = None,
        count: str = "distinct",
        check_ids: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        """``hash_size`` unset: the smallest power of two that holds ``num_items`` ids without
        collisions (2**20 when both are unset)."""
        super().__init__()
        if hash_size is None:
            items = 2**20 if num_items is None else checks.positive_int(self.name, "num_items", num_items)
            hash_size = 1 << max(items - 1, 1).bit_length()
        self.hash_size = checks.positive_int(self.name, "hash_size", hash_size)
        if (
            isinstance(learning_rate, bool)
            or not isinstance(learning_rate, (int, float))
            or not 0 < learning_rate <= 1
        ):
            raise ValueError(f"{self.name}: learning_rate must be a number in (0, 1], got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        if count not in COUNTS:
            raise ValueError(f"{self.name}: count must be one of {', '.join(COUNTS)}, got {count!r}")
        self.count = count
        self.check_ids = checks.boolean(self.name, "check_ids", check_ids)
        self.register_buffer("last_seen", torch.zeros(hash_size, dtype=torch.long, device=device))
        self.register_buffer("gap", torch.zeros(hash_size, dtype=torch.float32, device=device))
        self.register_buffer("step", torch.zeros((), dtype=torch.long, device=device))

    def slots(self, ids: torch.Tensor) -> torch.Tensor:
        """``LongTensor`` of the shape of `ids`: the hash slot of each id."""
        return self._ids(ids).remainder(self.hash_size)

    def update(self, ids: torch.Tensor) -> None:
        """Advance one step and record that the ids of `ids` (any shape, may be empty) occurred."""
        slots = self.slots(ids).reshape(-1)
        if self.count == "occurrences":
            self._update_occurrences(slots)
            return
        self.step += 1
        # Read every old value before writing: all writes to one slot then carry one value.
        elapsed = (self.step - self.last_seen[slots]).to(self.gap.dtype)
        old = self.gap[slots]
        new = torch.where(old > 0, torch.lerp(old, elapsed, self.learning_rate), elapsed)
        self.gap.index_put_((slots,), new)
        self.last_seen.index_put_((slots,), self.step.expand_as(slots))

    def _update_occurrences(self, slots: torch.Tensor) -> None:
        """One step in which slot h occurs ``c[h]`` times: Algorithm 1's c sequential updates
        (gaps ``t - last_seen`` then ``c - 1`` zeros), in closed form. Every position of a slot
        writes the same value, so the scattered writes are deterministic; the counts come from
        a sort and two searches, without reading anything back from the device."""
        self.step += 1
        ordered = slots.sort().values
        times = (
            torch.searchsorted(ordered, slots, right=True) - torch.searchsorted(ordered, slots)
        ).to(self.gap.dtype)
        elapsed = (self.step - self.last_seen[slots]).to(self.gap.dtype)
        old = self.gap[slots]
        a = self.learning_rate
        later = (1 - a) ** (times - 1)  # the weight left after the first update, (1-a)^(c-1)
        averaged = later * ((1 - a) * old + a * elapsed)
        new = torch.where(old > 0, averaged, elapsed / times)
        # Algorithm 1 can reach a gap of 0 (learning_rate 1 and a repeat); 0 marks "never seen".
        new = new.clamp_min(torch.finfo(new.dtype).tiny)
        self.gap.index_put_((slots,), new)
        self.last_seen.index_put_((slots,), self.step.expand_as(slots))

    def log_prob(self, ids: torch.Tensor) -> torch.Tensor:
        """``FloatTensor`` of the shape of `ids`: the estimated log-probability (<= 0) that a
        batch contains each id (``count="distinct"``), or the log of its expected number of
        occurrences per step (``count="occurrences"``)."""
        gap = self.gap[self.slots(ids)]
        unseen = (self.step + 1).to(gap.dtype)
        return -torch.where(gap > 0, gap, unseen).log()

    def extra_repr(self) -> str:
        return (
            f"hash_size={self.hash_size}, learning_rate={self.learning_rate}, count={self.count!r}, "
            f"check_ids={self.check_ids}"
        )

    def _ids(self, ids: torch.Tensor) -> torch.Tensor:
        return checks.ids(
            self.name, ids, state_device=self.gap.device, num_ids=None, check_range=self.check_ids
        )

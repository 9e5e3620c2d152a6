"""The log q the main loss subtracts from each candidate column, from the run's estimator and
negative sampler, whichever plugins they are."""

from __future__ import annotations

import math

import torch

SCALES = ("draw", "batch")
"""What a frequency estimator's ``log_prob`` estimates (its ``per``): the probability that
one draw of the batch is the item, or (per batch) that the batch contains it / its expected
occurrences in one batch."""


def candidates_log_q(
    log_q: torch.Tensor,
    *,
    per: str,
    batch_size: int,
    corrected: bool = False,
    num_negatives: int = 0,
    negatives_log_prob: torch.Tensor | None = None,
) -> torch.Tensor:
    """The estimator's `log_q` (floats, any shape) turned into the log of the item's expected
    count among a step's candidates where that matters; same shape and dtype.

    * With extra negatives (mixed negative sampling, Yang et al. 2020): the ``batch_size``
      in-batch draws and the ``num_negatives`` draws of the negative sampler, whose per-draw
      log-probability of each item is `negatives_log_prob`, add up by linearity:
      ``log(B q + n p)`` (``q`` per draw; a per-batch estimate is already ``B q``).
    * The corrected logQ (`corrected`, Khrylchenko et al. 2025) with a per-draw estimate:
      ``log(B q)``, since there a constant shift does not cancel.
    * Otherwise `log_q` as it is (a constant shift cancels in the softmax).
    """
    if per not in SCALES:
        raise ValueError(f"a frequency estimator's per must be one of {', '.join(SCALES)}, got {per!r}")
    in_batch = log_q + math.log(batch_size) if per == "draw" else log_q
    if num_negatives:
        if negatives_log_prob is None:
            raise ValueError("candidates_log_q: num_negatives > 0 needs negatives_log_prob")
        return torch.logaddexp(in_batch, negatives_log_prob + math.log(num_negatives))
    return in_batch if corrected else log_q

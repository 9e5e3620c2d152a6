"""The candidate distribution of mixed negative sampling (Yang et al., WWW 2020 companion,
"Mixed Negative Sampling for Learning Two-tower Neural Networks in Recommendations")."""

from __future__ import annotations

import math

import torch

from augkit_samplers import checks

PER: tuple[str, ...] = ("draw", "batch")


def mixture_log_q(
    batch_log_q: torch.Tensor,
    *,
    batch_size: int,
    num_uniform: int,
    num_items: int,
    per: str = "draw",
) -> torch.Tensor:
    """Log of the expected number of times each item is among the candidates of one step of
    mixed negative sampling: the ``batch_size`` in-batch items plus ``num_uniform`` items drawn
    uniformly from the ``num_items`` of the corpus.

    ``batch_log_q`` (floating tensor, any shape): for ``per="draw"`` (default) the
    log-probability that one in-batch draw is the item (``CountFrequency.log_prob``); for
    ``per="batch"`` the log of its expected number of occurrences in a batch
    (``StreamingFrequency(count="occurrences").log_prob``). Returns a tensor of its shape and
    dtype:

    * ``per="draw"``: ``log(batch_size * q + num_uniform / num_items)``
    * ``per="batch"``: ``log(exp(batch_log_q) + num_uniform / num_items)``

    Derivation. The candidates are ``B`` in-batch draws, item j with probability ``q_j`` each,
    and ``B'`` uniform draws (probability ``1/N`` each, with or without replacement: a
    permutation's slice also puts ``B'/N`` in expectation). The expected count of j among the
    candidates is ``E[n_j] = B q_j + B'/N``, by linearity, whatever the overlap between the two
    parts. Equivalently the ``B + B'`` candidates are draws from the mixture
    ``(B q_j + B'/N) / (B + B')``, and ``E[n_j]`` is ``B + B'`` times its probability, so
    subtracting this log from every column's logit is the mixture's logQ correction, up to the
    constant ``log(B + B')`` that cancels in the softmax. It is also the importance weight that
    makes ``sum over candidate columns c of exp(s_c) / E[n_c]`` an unbiased estimate of
    ``sum_j exp(s_j)`` over the corpus, which the ``"corrected"`` logQ of
    `augkit_losses.BatchSoftmaxLoss` relies on. For a rare item it is also, to first order,
    the probability that the item is among the candidates, ``1 - (1 - q_j)^B (1 - 1/N)^B'``.

    Use one call for the in-batch items (``log_q``) and one for the uniform ones
    (``negative_log_q``) of `BatchSoftmaxLoss`: both columns then carry the mixture's
    correction. Pure and vectorised (``logaddexp``), on the device of ``batch_log_q``.
    """
    who = "mixture_log_q"
    if not isinstance(batch_log_q, torch.Tensor) or not batch_log_q.is_floating_point():
        raise TypeError(f"{who}: batch_log_q must be a floating-point tensor, got {type(batch_log_q).__name__}")
    checks.positive_int(who, "batch_size", batch_size)
    checks.positive_int(who, "num_items", num_items)
    if isinstance(num_uniform, bool) or not isinstance(num_uniform, int) or num_uniform < 0:
        raise ValueError(f"{who}: num_uniform must be an int >= 0, got {num_uniform!r}")
    if per not in PER:
        raise ValueError(f"{who}: per must be one of {', '.join(PER)}, got {per!r}")
    in_batch = batch_log_q + math.log(batch_size) if per == "draw" else batch_log_q
    if num_uniform == 0:
        return in_batch
    return torch.logaddexp(in_batch, torch.full_like(in_batch, math.log(num_uniform / num_items)))

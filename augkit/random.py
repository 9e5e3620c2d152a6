"""Random draws for augmentations: always from an explicit `torch.Generator`.

Draws happen on the generator's device and move to the batch's device. A generator on the
batch's device avoids the copy; a CPU generator gives the same views on every device.
"""

from __future__ import annotations

from typing import Literal

import math

import numpy as np
import torch

__all__ = ["check_generator", "distinct", "generator_for", "randint", "uniform"]

Granularity = Literal["example", "batch"]
GRANULARITIES: tuple[str, ...] = ("example", "batch")


def check_generator(generator: object, who: str) -> torch.Generator:
    """Return `generator` if it is a `torch.Generator`, else raise a TypeError naming `who`.

    Examples:
        >>> from augkit.random import check_generator
        >>> check_generator(0, "my_augmentation")
        Traceback (most recent call last):
        ...
        TypeError: my_augmentation: generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), got int
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{who}: generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
            f"got {type(generator).__name__}"
        )
    return generator


def generator_for(seed: int, *stream: int) -> torch.Generator:
    """A CPU generator seeded from ``(seed, *stream)``, e.g. ``(seed, step)`` or
    ``(seed, worker_id)``: the same key gives the same draws, and different keys of the same
    length give statistically independent streams (through `numpy.random.SeedSequence`, not
    ``seed + i``). Keys that differ only by trailing zeros, such as ``(1,)`` and ``(1, 0)``,
    give the same stream: use a fixed number of parts per purpose, as the trainer does with
    ``(seed, tag, step)``.

    Examples:
        >>> import torch
        >>> from augkit.random import generator_for
        >>> step_7 = torch.rand(3, generator=generator_for(0, 7))
        >>> torch.equal(step_7, torch.rand(3, generator=generator_for(0, 7)))
        True
        >>> torch.equal(step_7, torch.rand(3, generator=generator_for(0, 8)))
        False
    """
    state = np.random.SeedSequence([seed, *stream]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def uniform(
    batch_size: int,
    shape: tuple[int, ...],
    *,
    granularity: Granularity,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """``FloatTensor[batch_size, *shape]`` of U[0, 1) draws on `device`.

    With ``granularity="batch"`` one draw of `shape` is shared by every example (an expanded
    view, not a copy).

    Examples:
        >>> import torch
        >>> from augkit.random import uniform
        >>> draws = uniform(
        ...     4, (2,), granularity="batch", generator=torch.Generator().manual_seed(0), device=torch.device("cpu")
        ... )
        >>> draws.shape, bool((draws == draws[0]).all())
        (torch.Size([4, 2]), True)
    """
    rows = 1 if granularity == "batch" else batch_size
    draws = torch.rand((rows, *shape), generator=generator, device=generator.device)
    return _to(draws, device).expand(batch_size, *shape)


def randint(
    high: int,
    batch_size: int,
    *,
    granularity: Granularity,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """``LongTensor[batch_size]`` uniform on ``0 .. high-1`` (one shared draw for "batch")."""
    rows = 1 if granularity == "batch" else batch_size
    draws = torch.randint(high, (rows,), generator=generator, device=generator.device)
    return _to(draws, device).expand(batch_size)


DISTINCT_FAILURE = 2.0**-60
"""The bound on the probability that `distinct`'s draw by rejection leaves a repeat."""


def distinct(high: int, size: int, *, generator: torch.Generator) -> torch.Tensor:
    """``LongTensor[size]`` of distinct ids uniform on ``0 .. high-1`` (a uniform sample
    without replacement, in a uniformly random order), drawn on the generator's device;
    ``1 <= size <= high``. The same generator state gives the same draw.

    Its cost grows with `size`, not with `high`, and nothing is read back from the device.
    Where `high` is large next to `size`, it draws ``m = max(2 * size, size + 64)`` candidates
    with replacement and keeps the first `size` distinct ones in draw order (a stable sort
    finds each id's first occurrence): drawing without replacement by rejection, in a fixed
    shape. It would leave a repeat only if the ``m`` draws held fewer than `size` distinct
    ids, that is ``k = m - size + 1`` or more draws repeating an earlier one. Each draw repeats
    with probability at most ``(m - 1) / high``, so that count is at most binomial and, by the
    Chernoff bound, exceeds ``k - 1`` with probability at most ``(e m (m - 1) / (high k))^k``.
    The candidates are used only where that bound is below `DISTINCT_FAILURE` (2**-60, about
    1e-18: nothing in 1e9 runs of 1e9 steps); elsewhere, where `high` is below about 10 m
    (6020 for a `size` of 512), a random permutation of ``0 .. high-1`` is cut to `size`.

    Examples:
        >>> import torch
        >>> from augkit.random import distinct
        >>> ids = distinct(10**9, 512, generator=torch.Generator().manual_seed(0))
        >>> ids.shape, len(ids.unique()), bool((ids >= 0).all() and (ids < 10**9).all())
        (torch.Size([512]), 512, True)
    """
    if not 1 <= size <= high:
        raise ValueError(f"distinct: size must be in 1..high={high}, got {size}")
    m = max(2 * size, size + 64)
    k = m - size + 1
    if k * math.log(math.e * m * (m - 1) / (high * k)) > math.log(DISTINCT_FAILURE):
        return torch.randperm(high, generator=generator, device=generator.device)[:size]
    candidates = torch.randint(high, (m,), generator=generator, device=generator.device)
    ordered, order = candidates.sort(stable=True)
    first = torch.ones(m, dtype=torch.bool, device=candidates.device)
    first[1:] = ordered[1:] != ordered[:-1]
    repeat = torch.empty_like(first).scatter_(0, order, ~first)  # in draw order
    return candidates[repeat.to(torch.uint8).argsort(stable=True)[:size]]


def _to(draws: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move draws to `device`; asynchronously only where that is safe (not into host memory,
    which the caller could read before an asynchronous copy lands)."""
    return draws.to(device, non_blocking=torch.device(device).type != "cpu")

"""Train/validation/test splits: per-user temporal (or seeded random), with cold items held out."""

from __future__ import annotations

import attrs
import torch

from augkit.data.dataset import InteractionLog, RecDataset

_TRAIN, _VALID, _TEST = 0, 1, 2
"""The windows of a user's events, oldest first."""


@attrs.frozen(eq=False, kw_only=True)
class Split:
    """A partition of a data set's events into ``train``, ``valid`` and ``test`` (each in the
    log's order).

    ``cold_items`` (``BoolTensor[N]``): the held-out items, none of whose events is in train.
    ``valid_cold_items`` (``BoolTensor[N]``, a subset of ``cold_items``): those whose events all
    went to ``valid``; the events of every other cold item are all in ``test``.
    """

    train: InteractionLog
    valid: InteractionLog
    test: InteractionLog
    cold_items: torch.Tensor
    valid_cold_items: torch.Tensor


def split_interactions(
    dataset: RecDataset,
    *,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.0,
    cold_fraction: float = 0.05,
    generator: torch.Generator,
) -> Split:
    """Split each user's events in time, and hold out every event of a few cold items.

    Each user's n events are ordered by timestamp when the log has them (ties keep the log's
    order), else in a random order drawn from `generator`. The last ``floor(n * test_fraction)``
    form the user's test window; of the ``m`` others, the last ``floor(m * valid_fraction)``
    form the validation window and the rest the training window. Users with few events keep
    them all for training.

    ``round(num_items * cold_fraction)`` random items are cold: of those,
    ``round(num_cold * valid_fraction / (valid_fraction + test_fraction))`` (0 when
    `valid_fraction` is 0) send all their events to ``valid``, the others all theirs to
    ``test``, wherever the events fall in time. Every other event goes to its window. So test
    cold items appear in neither train nor valid, and no cold item appears in train.

    Random draws, in this order: the event order (only without timestamps), then the cold
    items. With ``valid_fraction=0`` the split is the train/test split of earlier versions for
    the same generator, with an empty ``valid``.

    Raises ValueError unless each fraction is in [0, 1) and ``test_fraction + valid_fraction``
    is below 1.
    """
    _check_fractions(test_fraction, valid_fraction, cold_fraction)
    log = dataset.interactions
    window = _windows(log, dataset.num_users, test_fraction, valid_fraction, generator)
    num_cold = int(round(dataset.num_items * cold_fraction))
    cold_order = torch.randperm(dataset.num_items, generator=generator)[:num_cold]
    num_valid_cold = 0
    if valid_fraction > 0:
        num_valid_cold = int(round(num_cold * valid_fraction / (valid_fraction + test_fraction)))
    cold_items = torch.zeros(dataset.num_items, dtype=torch.bool)
    cold_items[cold_order] = True
    valid_cold_items = torch.zeros(dataset.num_items, dtype=torch.bool)
    valid_cold_items[cold_order[:num_valid_cold]] = True
    to_valid = valid_cold_items[log.items]
    to_test = (cold_items & ~valid_cold_items)[log.items]
    is_valid = to_valid | ((window == _VALID) & ~to_test)
    is_test = to_test | ((window == _TEST) & ~to_valid)
    return Split(
        train=log.select(~is_valid & ~is_test),
        valid=log.select(is_valid),
        test=log.select(is_test),
        cold_items=cold_items,
        valid_cold_items=valid_cold_items,
    )


def _check_fractions(test_fraction: float, valid_fraction: float, cold_fraction: float) -> None:
    given = {"test_fraction": test_fraction, "valid_fraction": valid_fraction, "cold_fraction": cold_fraction}
    outside = {name: value for name, value in given.items() if not 0.0 <= value < 1.0}
    if outside:
        got = ", ".join(f"{name}={value!r}" for name, value in outside.items())
        raise ValueError(f"split fractions must be in [0, 1), got {got}")
    if test_fraction + valid_fraction >= 1.0:
        raise ValueError(
            f"test_fraction + valid_fraction must be below 1, got "
            f"{test_fraction!r} + {valid_fraction!r}"
        )


def _windows(
    log: InteractionLog,
    num_users: int,
    test_fraction: float,
    valid_fraction: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """``LongTensor[M]``: the window (`_TRAIN`, `_VALID` or `_TEST`) of each event, from its
    position in its user's order (by time, else a random order drawn from `generator`)."""
    size = len(log)
    if log.timestamps is not None:
        order_key = log.timestamps
    else:
        order_key = torch.randperm(size, generator=generator)
    # Sort by user, then time (or random key), then position: stable lexicographic order.
    order = torch.argsort(order_key, stable=True)
    order = order[torch.argsort(log.users[order], stable=True)]
    users_sorted = log.users[order]
    per_user = torch.bincount(users_sorted, minlength=num_users)
    starts = torch.cumsum(per_user, 0) - per_user
    position = torch.arange(size) - starts[users_sorted]
    n_test = torch.floor(per_user.double() * test_fraction).long()
    remaining = per_user - n_test
    n_valid = torch.floor(remaining.double() * valid_fraction).long()
    sorted_window = torch.full((size,), _TRAIN, dtype=torch.long)
    sorted_window[position >= (remaining - n_valid)[users_sorted]] = _VALID
    sorted_window[position >= remaining[users_sorted]] = _TEST
    window = torch.empty(size, dtype=torch.long)
    window[order] = sorted_window
    return window

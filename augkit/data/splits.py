"""Train/test splits: per-user temporal (or seeded random), with cold items held out."""

from __future__ import annotations

import attrs
import torch

from augkit.data.dataset import InteractionLog, RecDataset


@attrs.frozen(eq=False)
class Split:
    """``train`` and ``test`` events; ``cold_items`` (``BoolTensor[N]``) never appear in train."""

    train: InteractionLog
    test: InteractionLog
    cold_items: torch.Tensor


def split_interactions(
    dataset: RecDataset,
    *,
    test_fraction: float = 0.2,
    cold_fraction: float = 0.05,
    generator: torch.Generator,
) -> Split:
    """Hold out the last `test_fraction` of each user's events (by timestamp when the log has
    them, else in a random order drawn from `generator`), and every event of a random
    `cold_fraction` of the items.

    A user with n events gives ``floor(n * test_fraction)`` of them to test, so users with few
    events keep them all for training. Ties in time keep the log's order.
    """
    if not 0.0 <= test_fraction < 1.0 or not 0.0 <= cold_fraction < 1.0:
        raise ValueError(
            f"test_fraction and cold_fraction must be in [0, 1), got {test_fraction}, {cold_fraction}"
        )
    log = dataset.interactions
    size = len(log)
    if log.timestamps is not None:
        order_key = log.timestamps
    else:
        order_key = torch.randperm(size, generator=generator)
    # Sort by user, then time (or random key), then position: stable lexicographic order.
    order = torch.argsort(order_key, stable=True)
    order = order[torch.argsort(log.users[order], stable=True)]
    users_sorted = log.users[order]
    per_user = torch.bincount(users_sorted, minlength=dataset.num_users)
    starts = torch.cumsum(per_user, 0) - per_user
    position = torch.arange(size) - starts[users_sorted]
    n_test = torch.floor(per_user.double() * test_fraction).long()
    is_test_sorted = position >= (per_user - n_test)[users_sorted]
    is_test = torch.empty(size, dtype=torch.bool)
    is_test[order] = is_test_sorted

    num_cold = int(round(dataset.num_items * cold_fraction))
    cold_items = torch.zeros(dataset.num_items, dtype=torch.bool)
    cold_items[torch.randperm(dataset.num_items, generator=generator)[:num_cold]] = True
    on_cold = cold_items[log.items]
    return Split(
        train=log.select(~is_test & ~on_cold),
        test=log.select(is_test | on_cold),
        cold_items=cold_items,
    )

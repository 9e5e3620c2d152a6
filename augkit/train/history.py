"""Query features for the trainer: the user's table plus a bag of their last training items."""

from __future__ import annotations

import torch

from augkit.batch import FeatureBatch
from augkit.data.dataset import InteractionLog
from augkit.schema import MISSING, FeatureSchema, MultiCategorical

HISTORY_FEATURE = "history"


def with_history(
    users: FeatureBatch, train: InteractionLog, *, num_items: int, history_len: int
) -> FeatureBatch:
    """`users` plus a ``history`` bag (`MultiCategorical` over item ids, ``max_len =
    history_len``) holding each user's last `history_len` training items, latest last.

    Events are ordered by timestamp when the log has them, else by log order. With
    ``history_len == 0`` the users come back unchanged.
    """
    if history_len == 0:
        return users
    if HISTORY_FEATURE in users.schema:
        raise ValueError(f"the user table already has a feature named {HISTORY_FEATURE!r}")
    num_users = users.batch_size
    order = torch.arange(len(train))
    if train.timestamps is not None:
        order = torch.argsort(train.timestamps, stable=True)
    order = order[torch.argsort(train.users[order], stable=True)]
    user_sorted, item_sorted = train.users[order], train.items[order]
    per_user = torch.bincount(user_sorted, minlength=num_users)
    ends = torch.cumsum(per_user, 0)
    from_end = ends[user_sorted] - torch.arange(len(train)) - 1  # 0 for the latest event
    recent = from_end < history_len
    slot = history_len - 1 - from_end[recent]
    history = torch.full((num_users, history_len), MISSING, dtype=torch.long)
    history[user_sorted[recent], slot] = item_sorted[recent]
    spec = MultiCategorical(name=HISTORY_FEATURE, num_values=num_items, max_len=history_len)
    kept = history != MISSING
    return FeatureBatch(
        FeatureSchema([*users.schema.features, spec]),
        {**users.values, HISTORY_FEATURE: torch.where(kept, history, spec.padding_id)},
        torch.cat([users.present, kept.any(dim=1, keepdim=True)], dim=1),
        {**users.kept, HISTORY_FEATURE: kept},
    )

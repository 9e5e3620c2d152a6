"""Full-corpus evaluation of a trained run, sliced by item popularity (head, tail, cold)."""

from __future__ import annotations

from typing import Any

import torch

from augkit.batch import FeatureBatch
from augkit.metrics import Interactions, evaluate, popularity_deciles, popularity_slices, top_popular
from augkit.towers import Tower
from augkit.train.run import RunParts

DECILE_PREFIX = "decile_"


@torch.no_grad()
def embed(tower: Tower, batch: FeatureBatch, chunk: int = 8192) -> torch.Tensor:
    """``FloatTensor[B, d]``: `tower` in eval mode over `batch`, `chunk` rows at a time."""
    was_training = tower.training
    tower.eval()
    rows = torch.arange(batch.batch_size)
    out = torch.cat([tower(batch.select(part)) for part in rows.split(chunk)])
    tower.train(was_training)
    return out


def evaluate_run(parts: RunParts) -> dict[str, Any]:
    """``{"model": ..., "top_popular": ...}`` metrics (`RetrievalMetrics.as_dict`) over the
    test users, their training items excluded. Slices: head (top ``eval.head_fraction`` of items
    by training count), tail, cold (never in training) and ``decile_0`` .. ``decile_9``."""
    config, split = parts.config, parts.split
    num_items = parts.dataset.num_items
    test_users = torch.unique(split.test.users)
    query_of_user = torch.full((parts.dataset.num_users,), -1, dtype=torch.long)
    query_of_user[test_users] = torch.arange(len(test_users))
    test = Interactions.from_pairs(
        query_of_user[split.test.users], split.test.items, len(test_users), num_items
    )
    in_test = query_of_user[split.train.users] >= 0
    exclude = Interactions.from_pairs(
        query_of_user[split.train.users[in_test]], split.train.items[in_test], len(test_users), num_items
    )
    slices = dict(popularity_slices(parts.train_counts, config.eval.head_fraction))
    deciles = popularity_deciles(parts.train_counts)
    slices.update({f"{DECILE_PREFIX}{d}": deciles == d for d in range(10)})
    ks = config.eval.ks
    query_emb = embed(parts.model["query"], parts.queries.select(test_users))
    item_emb = embed(parts.model["item"], parts.dataset.items)
    model = evaluate(query_emb, item_emb, test, exclude, ks=ks, slices=slices)
    popular = top_popular(parts.train_counts, test, exclude, ks=ks, slices=slices)
    return {"model": model.as_dict(), "top_popular": popular.as_dict()}

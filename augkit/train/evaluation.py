"""Full-corpus evaluation of a trained run on its validation or test log, sliced by item
popularity (head, tail, cold)."""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import nn

from augkit import distributed
from augkit.batch import FeatureBatch
from augkit.data.splits import Split
from augkit.errors import UnknownNameError
from augkit.metrics import (
    Interactions,
    RetrievalMetrics,
    metrics_from_ranks,
    popularity_deciles,
    popularity_slices,
    rank_across_processes,
    top_popular,
)
from augkit.towers import Tower
from augkit.train.run import ITEM_ID_FEATURE, RunParts

DECILE_PREFIX = "decile_"
HOLDOUTS = ("valid", "test")
"""The held-out logs of a `Split` that a run can be evaluated on."""


@attrs.frozen(eq=False)
class Holdout:
    """The queries of one evaluation (`build_holdout` makes it on the CPU; see `to`).

    ``users``: ``LongTensor[Q]``, the evaluated users in increasing id order (query q is user
    ``users[q]``). ``target``: their held-out items (`Interactions` over Q queries). ``known``:
    the items each had before (training, plus validation when evaluating on test), left out
    of the ranking. ``slices``: ``{name: BoolTensor[N]}`` item masks from the training counts.
    """

    users: torch.Tensor
    target: Interactions
    known: Interactions
    slices: dict[str, torch.Tensor]

    def to(self, device: torch.device | str) -> Holdout:
        """The same holdout with `target`, `known` and `slices` on `device` (``users`` stays
        where it is)."""
        slices = {name: mask.to(device) for name, mask in self.slices.items()}
        return Holdout(self.users, self.target.to(device), self.known.to(device), slices)


@torch.no_grad()
def embed(tower: Tower, batch: FeatureBatch, chunk: int = 8192) -> torch.Tensor:
    """``FloatTensor[B, d]`` on the tower's device: `tower` in eval mode over `batch`, `chunk`
    rows at a time (each chunk moved to the tower's device, wherever `batch` lives)."""
    device = _device(tower)
    was_training = tower.training
    tower.eval()
    rows = torch.arange(batch.batch_size, device=batch.device)
    out = torch.cat([tower(batch.select(part).to(device)) for part in rows.split(chunk)])
    tower.train(was_training)
    return out


def embed_sharded(tower: Tower, batch: FeatureBatch, chunk: int = 8192) -> torch.Tensor:
    """`embed` with the rows split over the processes of a process group: each process embeds
    its contiguous part and the parts are gathered, so every process holds all of `batch`'s
    embeddings, in order, for a share of the work. Without a group, `embed` itself."""
    if not distributed.is_distributed():
        return embed(tower, batch, chunk)
    mine, sizes = distributed.shard(torch.arange(batch.batch_size, device=batch.device))
    return distributed.all_gather(embed(tower, batch.select(mine), chunk), sizes)


def item_slices(train_counts: torch.Tensor, head_fraction: float) -> dict[str, torch.Tensor]:
    """``{"head", "tail", "cold", "decile_0" .. "decile_9"}`` item masks (``BoolTensor[N]``)
    from ``LongTensor[N]`` training counts; cold items are those never in training."""
    slices = dict(popularity_slices(train_counts, head_fraction))
    deciles = popularity_deciles(train_counts)
    slices.update({f"{DECILE_PREFIX}{d}": deciles == d for d in range(10)})
    return slices


def build_holdout(
    parts: RunParts,
    *,
    on: str = "test",
    max_users: int | None = None,
    generator: torch.Generator | None = None,
) -> Holdout:
    """The users with events in ``parts.split.valid`` (``on="valid"``) or ``parts.split.test``
    (``on="test"``), their held-out items, and what they are known to have interacted with
    before: training items for validation, training and validation items for test.

    With `max_users`, at most that many of those users, drawn uniformly without replacement
    from `generator` (required then; the same generator state picks the same users).
    """
    if on not in HOLDOUTS:
        raise UnknownNameError("held-out log", on, HOLDOUTS)
    split, num_users, num_items = parts.split, parts.dataset.num_users, parts.dataset.num_items
    target = getattr(split, on)
    users = _choose_users(torch.unique(target.users), max_users, generator)
    query_of_user = torch.full((num_users,), -1, dtype=torch.long)
    query_of_user[users] = torch.arange(len(users))
    known_users, known_items = _known_before(split, on)
    return Holdout(
        users=users,
        target=_pairs(query_of_user, target.users, target.items, len(users), num_items),
        known=_pairs(query_of_user, known_users, known_items, len(users), num_items),
        slices=item_slices(parts.train_counts, parts.config.eval.head_fraction),
    )


def served_items(parts: RunParts) -> FeatureBatch:
    """The item corpus as evaluation embeds it: with ``eval.unseen_ids = "default"``, the
    ``item_id`` of every item never seen in training is missing, so it reads as the default
    embedding, as a new item's would when served (its other features are kept); with
    ``"trained"``, the corpus as it is."""
    items = parts.dataset.items
    if parts.config.eval.unseen_ids == "trained" or ITEM_ID_FEATURE not in items.schema:
        return items
    mask = torch.zeros_like(items.present)
    mask[:, items.schema.index(ITEM_ID_FEATURE)] = parts.train_counts.to(items.device) == 0
    return items.mask_features(mask)


def evaluate_model(parts: RunParts, holdout: Holdout) -> RetrievalMetrics:
    """Full-corpus metrics of ``parts.model`` on `holdout` at ``config.eval.ks``, computed on
    the towers' device; in a process group, the embeddings and the ranking are shared out
    over the processes (`embed_sharded`, `rank_across_processes`)."""
    holdout = holdout.to(_device(parts.model["item"]))
    query_emb = embed_sharded(parts.model["query"], parts.queries.select(holdout.users))
    item_emb = embed_sharded(parts.model["item"], served_items(parts))
    ranks = rank_across_processes(query_emb, item_emb, holdout.target, holdout.known)
    return metrics_from_ranks(
        ranks, holdout.target, num_items=item_emb.shape[0], ks=parts.config.eval.ks, slices=holdout.slices
    )


def evaluate_run(
    parts: RunParts,
    *,
    on: str = "test",
    max_users: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """``{"model": ..., "top_popular": ...}`` metrics (`RetrievalMetrics.as_dict`) on the
    validation or test log (`build_holdout`), on the towers' device. Slices: head (top
    ``eval.head_fraction`` of items by training count), tail, cold (never in training) and
    ``decile_0`` .. ``decile_9``."""
    device = _device(parts.model["item"])
    holdout = build_holdout(parts, on=on, max_users=max_users, generator=generator).to(device)
    model = evaluate_model(parts, holdout)
    counts = parts.train_counts.to(device)
    ks, slices = parts.config.eval.ks, holdout.slices
    popular = top_popular(counts, holdout.target, holdout.known, ks=ks, slices=slices)
    return {"model": model.as_dict(), "top_popular": popular.as_dict()}


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _choose_users(
    users: torch.Tensor, max_users: int | None, generator: torch.Generator | None
) -> torch.Tensor:
    """`users` (increasing ``LongTensor[U]``), or `max_users` of them drawn from `generator`,
    still increasing."""
    if max_users is None:
        return users
    if isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < 1:
        raise ValueError(f"max_users must be a positive int or None, got {max_users!r}")
    if generator is None:
        raise ValueError("max_users needs a generator to draw the users from")
    if max_users >= len(users):
        return users
    chosen = torch.randperm(len(users), generator=generator)[:max_users]
    return users[torch.sort(chosen).values]


def _known_before(split: Split, on: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(users, items) ``LongTensor[K]`` each: the events before the `on` log."""
    if on == "valid":
        return split.train.users, split.train.items
    before = (split.train, split.valid)
    return torch.cat([log.users for log in before]), torch.cat([log.items for log in before])


def _pairs(
    query_of_user: torch.Tensor, users: torch.Tensor, items: torch.Tensor, num_queries: int, num_items: int
) -> Interactions:
    """The (query, item) pairs of the events whose user is a query (``query_of_user >= 0``)."""
    queries = query_of_user[users]
    inside = queries >= 0
    return Interactions.from_pairs(queries[inside], items[inside], num_queries, num_items)

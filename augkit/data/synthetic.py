"""The embedded default data: a seeded synthetic catalogue with a power-law click skew.

Latent niches (4 in each of 16 topics) generate both the item features and the users' tastes,
so the features say which users an item suits, for a tail item as for a head item, while its
id, rarely clicked, barely trains. Popularity follows a power law independent of the niche, so
the tail is large, as in real logs. Small enough to train on 2 CPU cores in about 30 s.
"""

from __future__ import annotations

import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.data.dataset import InteractionLog, RecDataset
from augkit.schema import Categorical, FeatureSchema, MultiCategorical


def make_synthetic(
    *,
    seed: int = 0,
    num_items: int = 3000,
    num_users: int = 2000,
    num_topics: int = 16,
    niches_per_topic: int = 4,
    mean_events: int = 30,
    popularity_exponent: float = 1.0,
    exact: bool | None = None,
) -> RecDataset:
    """Build the synthetic data set from `seed` (numpy ``default_rng``; same seed, same data).

    Each item belongs to one of ``num_topics × niches_per_topic`` niches. Items: ``item_id``;
    ``category`` (4 per topic, the quarter of its topic the niche falls in, 15% noise);
    ``brand`` (300 values, 60% one of its niche's two brands, else any); ``tags`` (multi-valued,
    1–6 per item, 80% from its niche's 3 tags, else any of ``3 × niches``); ``price`` (10
    buckets, noise). Users: ``user_id``, ``segment`` (the favourite topic, 30% noise), ``age``
    (8 buckets, noise). A user's taste is a Dirichlet(0.3) over topics times a Dirichlet(0.5)
    over each topic's niches; each user clicks ~`mean_events` distinct items with probability ∝
    popularity × taste(niche), popularity ∝ rank^-`popularity_exponent`.

    `exact` (default: when users × items ≤ `EXACT_LIMIT`) draws each user's distinct items
    without replacement by Gumbel top-k over the dense ``[users, items]`` weights; otherwise
    (corpora of millions) each event draws a niche with probability ∝ taste × the niche's
    total popularity, then an item of that niche ∝ popularity: the same distribution per
    draw, with replacement, repeated items of a user merged, in O(events) memory.
    """
    rng = np.random.default_rng(seed)
    num_niches = num_topics * niches_per_topic
    niche = rng.integers(num_niches, size=num_items)
    topic = niche // niches_per_topic

    category = topic * 4 + (niche % niches_per_topic) * 4 // niches_per_topic
    noisy = rng.random(num_items) < 0.15
    category[noisy] = rng.integers(num_topics * 4, size=int(noisy.sum()))
    num_brands = 300
    brand = np.where(
        rng.random(num_items) < 0.6,
        (niche * 2 + rng.integers(2, size=num_items)) % num_brands,
        rng.integers(num_brands, size=num_items),
    )
    price = rng.integers(10, size=num_items)

    tags_per_niche, max_tags = 3, 6
    num_tags = num_niches * tags_per_niche
    lengths = rng.integers(1, max_tags + 1, size=num_items)
    own = niche[:, None] * tags_per_niche + rng.integers(tags_per_niche, size=(num_items, max_tags))
    tags = np.where(rng.random((num_items, max_tags)) < 0.8, own, rng.integers(num_tags, size=(num_items, max_tags)))
    tags = _dedupe_rows(np.where(np.arange(max_tags) < lengths[:, None], tags, -1))

    topic_taste = rng.dirichlet(np.full(num_topics, 0.3), size=num_users)
    niche_taste = rng.dirichlet(np.full(niches_per_topic, 0.5), size=(num_users, num_topics))
    taste = (topic_taste[:, :, None] * niche_taste).reshape(num_users, num_niches)
    favourite = topic_taste.argmax(axis=1)
    segment = np.where(rng.random(num_users) < 0.7, favourite, rng.integers(num_topics, size=num_users))
    age = rng.integers(8, size=num_users)

    rank = rng.permutation(num_items) + 1
    popularity = rank.astype(np.float64) ** -popularity_exponent
    events = np.clip(rng.poisson(mean_events, size=num_users), 5, num_items // 2)
    exact = num_users * num_items <= EXACT_LIMIT if exact is None else exact
    sample = _clicks_exact if exact else _clicks_by_niche
    users, items = sample(rng, popularity, niche, taste, events)
    timestamps = rng.permutation(len(items))  # a random interleaving of the users' sessions
    order = np.lexsort((timestamps, users))
    timestamps[order] = np.sort(timestamps)  # each user's events in increasing time

    item_schema = FeatureSchema(
        [
            Categorical(name="item_id", num_values=num_items),
            Categorical(name="category", num_values=num_topics * 4),
            Categorical(name="brand", num_values=num_brands),
            MultiCategorical(name="tags", num_values=num_tags, max_len=max_tags),
            Categorical(name="price", num_values=10),
        ]
    )
    user_schema = FeatureSchema(
        [
            Categorical(name="user_id", num_values=num_users),
            Categorical(name="segment", num_values=num_topics),
            Categorical(name="age", num_values=8),
        ]
    )
    item_batch = FeatureBatch.from_tensors(
        item_schema,
        {"item_id": np.arange(num_items), "category": category, "brand": brand, "tags": tags, "price": price},
    )
    user_batch = FeatureBatch.from_tensors(
        user_schema, {"user_id": np.arange(num_users), "segment": segment, "age": age}
    )
    log = InteractionLog(
        torch.as_tensor(users, dtype=torch.long),
        torch.as_tensor(items, dtype=torch.long),
        torch.as_tensor(timestamps, dtype=torch.long),
    )
    return RecDataset(f"synthetic(seed={seed})", item_batch, user_batch, log)


EXACT_LIMIT = 50_000_000
"""`make_synthetic` draws clicks exactly (dense Gumbel top-k) up to this many user × item pairs."""


def _clicks_exact(
    rng: np.random.Generator, popularity: np.ndarray, niche: np.ndarray, taste: np.ndarray, events: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel top-k: each user u draws `events[u]` distinct items with probability ∝
    popularity × taste[u, niche]; (users, items) in user order."""
    weights = popularity[None, :] * taste[:, niche]  # [U, N]
    keys = np.log(weights) + rng.gumbel(size=weights.shape)
    top = np.argsort(-keys, axis=1)[:, : events.max()]
    take = np.arange(events.max())[None, :] < events[:, None]
    users = np.broadcast_to(np.arange(taste.shape[0])[:, None], top.shape)[take]
    return users, top[take]


def _clicks_by_niche(
    rng: np.random.Generator, popularity: np.ndarray, niche: np.ndarray, taste: np.ndarray, events: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The distribution of `_clicks_exact` per draw in O(events): a niche ∝ taste × the
    niche's total popularity, then an item of the niche ∝ popularity; a user's repeats merged."""
    num_users, num_niches = taste.shape
    by_niche = np.argsort(niche, kind="stable")
    cumulative = np.cumsum(popularity[by_niche])
    totals = np.bincount(niche, weights=popularity, minlength=num_niches)
    starts = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    users = np.repeat(np.arange(num_users), events)
    # every user's cumulative niche distribution shifted by its index, so one search finds each
    # event's niche: user u's draw lies in [u, u + 1)
    shares = np.cumsum(taste * totals[None, :], axis=1)
    shifted = (shares / shares[:, -1:] + np.arange(num_users)[:, None]).ravel()
    draw = users + rng.random(users.size)
    chosen = (np.searchsorted(shifted, draw, side="right") - users * num_niches).clip(0, num_niches - 1)
    offset = starts[chosen] + rng.random(users.size) * totals[chosen]
    items = by_niche[np.searchsorted(cumulative, offset, side="right").clip(max=niche.size - 1)]
    pairs = np.unique(np.stack([users, items], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _dedupe_rows(ids: np.ndarray) -> np.ndarray:
    """Replace repeated ids within a row by -1 (padding), keeping first occurrences."""
    order = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, order, axis=1)
    repeat = np.zeros_like(ids, dtype=bool)
    repeat[:, 1:] = (sorted_ids[:, 1:] == sorted_ids[:, :-1]) & (sorted_ids[:, 1:] >= 0)
    out = ids.copy()
    np.put_along_axis(out, order, np.where(repeat, -1, sorted_ids), axis=1)
    return out

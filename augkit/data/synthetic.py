"""The embedded default data: a seeded synthetic catalogue with a power-law click skew.

Latent topics drive both the item features (so features carry signal and correlate with each
other) and the users' tastes (so features predict clicks). Item popularity follows a power law
independent of topic, so the tail is large, as in real logs. Small enough to train on 2 CPU
cores in about a minute.
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
    mean_events: int = 30,
    popularity_exponent: float = 1.0,
    exact: bool | None = None,
) -> RecDataset:
    """Build the synthetic data set from `seed` (numpy ``default_rng``; same seed, same data).

    Items: ``item_id``, ``category`` (60 values, 4 per topic, noisy), ``brand`` (300 values,
    weakly tied to topic), ``tags`` (multi-valued, 200 values, 1–6 per item, mostly from the
    item's topic), ``price`` (10 buckets, independent of topic). Users: ``user_id``,
    ``segment`` (the user's favourite topic, 30% noise), ``age`` (8 buckets, noise). Each user
    clicks ~`mean_events` distinct items with probability ∝ popularity × taste(topic).

    `exact` (default: when users × items ≤ `EXACT_LIMIT`) draws each user's distinct items
    without replacement by Gumbel top-k over the dense ``[users, items]`` weights; otherwise
    (corpora of millions) each event draws a topic with probability ∝ taste × the topic's
    total popularity, then an item of that topic ∝ popularity: the same distribution per
    draw, with replacement, repeated items of a user merged, in O(events) memory.
    """
    rng = np.random.default_rng(seed)
    topic = rng.integers(num_topics, size=num_items)

    category = topic * 4 + rng.integers(4, size=num_items)
    noisy = rng.random(num_items) < 0.15
    category[noisy] = rng.integers(num_topics * 4, size=int(noisy.sum()))
    brand = np.where(
        rng.random(num_items) < 0.5,
        (topic * 300 // num_topics + rng.integers(300 // num_topics, size=num_items)) % 300,
        rng.integers(300, size=num_items),
    )
    price = rng.integers(10, size=num_items)

    tags_per_topic, num_tags, max_tags = 12, 200, 6
    lengths = rng.integers(1, max_tags + 1, size=num_items)
    own = (topic[:, None] * tags_per_topic + rng.integers(tags_per_topic, size=(num_items, max_tags))) % num_tags
    tags = np.where(rng.random((num_items, max_tags)) < 0.8, own, rng.integers(num_tags, size=(num_items, max_tags)))
    tags = _dedupe_rows(np.where(np.arange(max_tags) < lengths[:, None], tags, -1))

    taste = rng.dirichlet(np.full(num_topics, 0.3), size=num_users)
    favourite = taste.argmax(axis=1)
    segment = np.where(rng.random(num_users) < 0.7, favourite, rng.integers(num_topics, size=num_users))
    age = rng.integers(8, size=num_users)

    rank = rng.permutation(num_items) + 1
    popularity = rank.astype(np.float64) ** -popularity_exponent
    events = np.clip(rng.poisson(mean_events, size=num_users), 5, num_items // 2)
    exact = num_users * num_items <= EXACT_LIMIT if exact is None else exact
    sample = _clicks_exact if exact else _clicks_by_topic
    users, items = sample(rng, popularity, topic, taste, events)
    timestamps = rng.permutation(len(items))  # a random interleaving of the users' sessions
    order = np.lexsort((timestamps, users))
    timestamps[order] = np.sort(timestamps)  # each user's events in increasing time

    item_schema = FeatureSchema(
        [
            Categorical(name="item_id", num_values=num_items),
            Categorical(name="category", num_values=num_topics * 4),
            Categorical(name="brand", num_values=300),
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
    rng: np.random.Generator, popularity: np.ndarray, topic: np.ndarray, taste: np.ndarray, events: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel top-k: each user u draws `events[u]` distinct items with probability ∝
    popularity × taste[u, topic]; (users, items) in user order."""
    weights = popularity[None, :] * taste[:, topic]  # [U, N]
    keys = np.log(weights) + rng.gumbel(size=weights.shape)
    top = np.argsort(-keys, axis=1)[:, : events.max()]
    take = np.arange(events.max())[None, :] < events[:, None]
    users = np.broadcast_to(np.arange(taste.shape[0])[:, None], top.shape)[take]
    return users, top[take]


def _clicks_by_topic(
    rng: np.random.Generator, popularity: np.ndarray, topic: np.ndarray, taste: np.ndarray, events: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The distribution of `_clicks_exact` per draw in O(events): a topic ∝ taste × the
    topic's total popularity, then an item of the topic ∝ popularity; a user's repeats merged."""
    num_users, num_topics = taste.shape
    by_topic = np.argsort(topic, kind="stable")
    cumulative = np.cumsum(popularity[by_topic])
    totals = np.bincount(topic, weights=popularity, minlength=num_topics)
    starts = np.concatenate([[0.0], np.cumsum(totals)[:-1]])
    users = np.repeat(np.arange(num_users), events)
    # every user's cumulative topic distribution shifted by its index, so one search finds each
    # event's topic: user u's draw lies in [u, u + 1)
    shares = np.cumsum(taste * totals[None, :], axis=1)
    shifted = (shares / shares[:, -1:] + np.arange(num_users)[:, None]).ravel()
    draw = users + rng.random(users.size)
    chosen = (np.searchsorted(shifted, draw, side="right") - users * num_topics).clip(0, num_topics - 1)
    offset = starts[chosen] + rng.random(users.size) * totals[chosen]
    items = by_topic[np.searchsorted(cumulative, offset, side="right").clip(max=topic.size - 1)]
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

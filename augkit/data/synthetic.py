"""The embedded default data: a seeded synthetic catalogue with a power-law click skew.

Latent niches (4 in each of 16 topics) generate both the item features and the users' tastes,
so the features say which users an item suits, for a tail item as for a head item, while its
id, rarely clicked, barely trains. Popularity follows a power law independent of the niche, so
the tail is large, as in real logs. The default size (`SyntheticConfig`: 3,000 items, 2,000 users, about 30 clicks each) trains on
2 CPU cores in about 30 s; ``[data.synthetic]`` in a trainer config sets another size, up to
millions of items and tens of millions of clicks.
"""

from __future__ import annotations

import itertools

import attrs
import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.data.dataset import InteractionLog, RecDataset
from augkit.schema import Categorical, FeatureSchema, MultiCategorical
from augkit.validators import integer


@attrs.frozen(kw_only=True)
class SyntheticConfig:
    """The size and seed of the embedded synthetic data, the ``[data.synthetic]`` table of a
    trainer config (`make_synthetic` with these; the defaults are the embedded data set)."""

    items: int = attrs.field(default=3000, validator=integer(10))
    """Items in the catalogue."""
    users: int = attrs.field(default=2000, validator=integer(1))
    events_per_user: int = attrs.field(default=30, validator=integer(1))
    """The mean number of distinct items a user clicks (Poisson, at least 5, at most half the
    catalogue)."""
    seed: int = attrs.field(default=0, validator=integer(0))

    def __attrs_post_init__(self) -> None:
        if self.events_per_user > self.items // 2:
            raise ValueError(
                f"events_per_user must be at most half the items ({self.items // 2}), got {self.events_per_user}: "
                "a user clicks distinct items"
            )

    def make(self) -> RecDataset:
        """`make_synthetic` at this size and seed."""
        return make_synthetic(
            seed=self.seed, num_items=self.items, num_users=self.users, mean_events=self.events_per_user
        )


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
    order = np.argsort(users * len(items) + timestamps)  # by user, then time (the keys are distinct)
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
    """The distribution of `_clicks_exact` in O(events) memory: each draw picks a niche ∝
    taste × the niche's total popularity, then an item of the niche ∝ popularity, so one draw
    is an item ∝ popularity × taste; a user's clicks are the first `events[u]` distinct items
    of their draws (the draws without replacement that Gumbel top-k makes). Users are drawn
    `BLOCK_EVENTS` clicks at a time, so the work buffers stay that size."""
    draw = _NicheDraw(popularity, niche, taste)
    bounds = np.searchsorted(np.cumsum(events), np.arange(BLOCK_EVENTS, events.sum(), BLOCK_EVENTS), side="right")
    bounds = [0, *np.unique(bounds).tolist(), events.size]
    blocks = [
        _block_clicks(rng, draw, start, events[start:stop], niche.size) for start, stop in itertools.pairwise(bounds)
    ]
    return np.concatenate([users for users, _ in blocks]), np.concatenate([items for _, items in blocks])


BLOCK_EVENTS = 1 << 22
"""Clicks drawn per block of users at scale (`_clicks_by_niche`)."""
MAX_ROUNDS = 16
"""Rounds of draws that top each user up to their count of distinct clicks: a user still
short after them (whose remaining items are all very unlikely) keeps fewer clicks."""


def _block_clicks(
    rng: np.random.Generator, draw: _NicheDraw, start: int, events: np.ndarray, num_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """The clicks (users, items) of users ``start .. start + len(events) - 1``: each user's
    first `events[u - start]` distinct draws, drawn in rounds until each has its count (or
    `MAX_ROUNDS`)."""
    finished_users, finished_items = [], []
    users = items = np.empty(0, dtype=np.int64)  # the kept clicks of the users still short
    short, need = np.arange(events.size), events
    for attempt in range(MAX_ROUNDS):
        # more draws than missing items, for the repeats each round merges, and twice as many
        # more each round (the users left short are those whose draws repeat most)
        new_users = np.repeat(short, need[short] + need[short] * 2**attempt // 4 + 1)
        users, items = _first_distinct(
            np.concatenate([users, new_users]),
            np.concatenate([items, draw(rng, new_users + start)]),
            events,
            num_items,
        )
        need = events - np.bincount(users, minlength=events.size)
        full = need[users] == 0
        finished_users.append(users[full])
        finished_items.append(items[full])
        users, items = users[~full], items[~full]
        short = short[need[short] > 0]
        if short.size == 0:
            break
    return np.concatenate([*finished_users, users]) + start, np.concatenate([*finished_items, items])


class _NicheDraw:
    """Draws of items ∝ popularity × taste[user, niche(item)], a niche by `searchsorted` over
    each user's cumulative niche weights, then an item of it by `_guided_search` over the
    cumulative popularity: O(users × niches + items) memory."""

    def __init__(self, popularity: np.ndarray, niche: np.ndarray, taste: np.ndarray) -> None:
        num_users, num_niches = taste.shape
        self.by_niche = np.argsort(niche, kind="stable")
        self.cumulative = np.cumsum(popularity[self.by_niche])
        self.guide = _guide(self.cumulative)
        self.totals = np.bincount(niche, weights=popularity, minlength=num_niches)
        self.starts = np.concatenate([[0.0], np.cumsum(self.totals)[:-1]])
        # every user's cumulative niche distribution shifted by its index, so one search finds
        # each draw's niche: user u's draw lies in [u, u + 1)
        shares = np.cumsum(taste * self.totals[None, :], axis=1)
        shares /= shares[:, -1:]
        shares += np.arange(num_users)[:, None]
        self.shifted = shares.ravel()
        self.num_niches = num_niches

    def __call__(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        """One item per entry of `users` (``int64[E]``), independently."""
        point = users + rng.random(users.size)
        chosen = np.searchsorted(self.shifted, point, side="right") - users * self.num_niches
        chosen = chosen.clip(0, self.num_niches - 1)
        offset = self.starts[chosen] + rng.random(users.size) * self.totals[chosen]
        found = _guided_search(self.cumulative, self.guide, offset)
        return self.by_niche[found.clip(max=self.by_niche.size - 1)]


def _guide(cumulative: np.ndarray) -> np.ndarray:
    """``int64[K + 1]``: ``searchsorted(cumulative, b × total / K, side="right")`` for K equal
    steps of the total (K = len(cumulative)), the starts that `_guided_search` narrows from."""
    steps = cumulative.size
    return np.searchsorted(cumulative, np.arange(steps + 1) * (cumulative[-1] / steps), side="right")


def _guided_search(cumulative: np.ndarray, guide: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``searchsorted(cumulative, values, side="right")`` for non-negative `values`: each
    value's step of the guide table bounds its answer (one step more on either side, against
    rounding), and a vectorised bisection finishes only the values whose bounds differ. Random
    values search a few cache lines each, not the whole array (several times faster at 1e6)."""
    steps = guide.size - 1
    step = (values * (steps / cumulative[-1])).astype(np.int64)
    low = guide[(step - 1).clip(0, steps)]
    high = guide[(step + 2).clip(0, steps)]
    open_ = np.flatnonzero(low < high)
    lo, hi, target = low[open_], high[open_], values[open_]
    while lo.size:
        middle = (lo + hi) // 2
        right = cumulative[middle.clip(max=cumulative.size - 1)] <= target
        lo = np.where(right, middle + 1, lo)
        hi = np.where(right, hi, middle)
        low[open_] = lo
        unsettled = lo < hi
        open_, lo, hi, target = open_[unsettled], lo[unsettled], hi[unsettled], target[unsettled]
    return low


def _first_distinct(
    users: np.ndarray, items: np.ndarray, events: np.ndarray, num_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Of draws (`users`, `items`, ``int64[E]`` in draw order), each user's first `events[u]`
    distinct items, in user order then draw order."""
    _, first = np.unique(users * num_items + items, return_index=True)  # first occurrences
    first.sort()
    users, items = users[first], items[first]
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    counts = np.bincount(users, minlength=events.size)
    rank = np.arange(users.size) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rank < events[users]
    return users[keep], items[keep]


def _dedupe_rows(ids: np.ndarray) -> np.ndarray:
    """Replace repeated ids within a row by -1 (padding), keeping first occurrences."""
    order = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, order, axis=1)
    repeat = np.zeros_like(ids, dtype=bool)
    repeat[:, 1:] = (sorted_ids[:, 1:] == sorted_ids[:, :-1]) & (sorted_ids[:, 1:] >= 0)
    out = ids.copy()
    np.put_along_axis(out, order, np.where(repeat, -1, sorted_ids), axis=1)
    return out

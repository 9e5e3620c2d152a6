"""The embedded synthetic data: exact clicks for small sizes, the per-topic sampler at scale."""

from __future__ import annotations

import numpy as np
import torch

from augkit.data.synthetic import make_synthetic


def test_the_default_size_draws_exactly_and_is_seeded():
    default, exact = make_synthetic(seed=0), make_synthetic(seed=0, exact=True)
    assert torch.equal(default.interactions.items, exact.interactions.items)
    assert not torch.equal(default.interactions.items, make_synthetic(seed=1).interactions.items)


def test_the_scalable_sampler_follows_the_exact_distribution():
    exact, fast = make_synthetic(seed=0, exact=True), make_synthetic(seed=0, exact=False)
    counts = [np.bincount(d.interactions.items.numpy(), minlength=d.num_items) for d in (exact, fast)]
    assert np.corrcoef(*counts)[0, 1] > 0.95
    pairs = torch.stack([fast.interactions.users, fast.interactions.items], 1)
    assert torch.unique(pairs, dim=0).shape[0] == pairs.shape[0]  # a user's repeats are merged
    # clicks follow the users' tastes as much as the exact draws do: the share of clicks in the
    # user's segment's topic, well above uniform (1/16)
    def in_segment(data):
        segment = data.users.values["segment"][data.interactions.users]
        return float((segment == data.items.values["category"][data.interactions.items] // 4).double().mean())

    assert in_segment(fast) > 2 / 16 and abs(in_segment(fast) - in_segment(exact)) < 0.03
    assert torch.equal(make_synthetic(seed=0, exact=False).interactions.items, fast.interactions.items)


def test_features_carry_the_users_tastes_for_tail_items_too():
    data = make_synthetic(seed=0)
    users, items = data.interactions.users, data.interactions.items
    counts = torch.bincount(items, minlength=data.num_items)
    assert float((counts <= 5).double().mean()) > 0.2  # a long tail
    tail = counts[items] <= 5
    segment = data.users.values["segment"][users]
    topic = data.items.values["category"][items] // 4
    same = (segment == topic).double()
    # a tail click is in the user's segment's topic as often as a head click, far above 1/16
    assert float(same[tail].mean()) > 3 / 16
    assert abs(float(same[tail].mean()) - float(same[~tail].mean())) < 0.1
    # and an item's tags name its niche: items sharing a first tag share a category ~30x as often as
    # two random items (1/64)
    tags = data.items.values["tags"][:, 0]
    category = data.items.values["category"]
    pairs = tags[:, None] == tags[None, :]
    pairs.fill_diagonal_(False)
    agree = (category[:, None] == category[None, :])[pairs].double().mean()
    assert float(agree) > 0.3

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

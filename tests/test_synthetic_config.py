"""``[data.synthetic]``: the synthetic source's size and seed from the config, checked when the
config is read, recorded in the data fingerprint; the scalable sampler gives every user their
count of distinct clicks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augkit.data.fingerprint import data_changes
from augkit.data.sources import fingerprint_data, load_source
from augkit.data.synthetic import EXACT_LIMIT, _guide, _guided_search, make_synthetic
from augkit.errors import ConfigError
from augkit.train import apply_overrides, config_from_dict, dump_config
from augkit.train.config import TrainConfig


def synthetic(**table):
    return config_from_dict({"data": {"synthetic": table}}).data


def test_the_defaults_are_the_embedded_data_set():
    assert torch.equal(load_source(synthetic()).interactions.items, make_synthetic(seed=0).interactions.items)
    assert "[data.synthetic]\nitems = 3000\nusers = 2000\nevents_per_user = 30\nseed = 0\n" in dump_config(TrainConfig())


def test_the_sizes_and_seed_come_from_the_config():
    data = load_source(synthetic(items=500, users=120, events_per_user=8, seed=4))
    assert (data.num_items, data.num_users) == (500, 120)
    counts = torch.bincount(data.interactions.users, minlength=120).double()
    assert 6 < float(counts.mean()) < 10 and int(counts.min()) >= 5  # Poisson(8), at least 5
    again = load_source(apply_overrides(TrainConfig(), [
        "data.synthetic.items=500", "data.synthetic.users=120", "data.synthetic.events_per_user=8", "data.synthetic.seed=4",
    ]).data)
    assert torch.equal(again.interactions.items, data.interactions.items)


def test_the_fingerprint_records_the_sizes():
    default, larger = fingerprint_data(synthetic()), fingerprint_data(synthetic(items=5000))
    assert default["generator"]["num_items"] == 3000 and default["generator"]["mean_events"] == 30
    assert data_changes(default, larger) == ["the generator parameter 'num_items' changed (3000 -> 5000)"]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"items": 5}, r"items must be an integer >= 10, got 5 @ run.toml.data.synthetic.items"),
        ({"users": 0}, r"users must be an integer >= 1, got 0 @ run.toml.data.synthetic.users"),
        ({"events_per_user": 0}, r"events_per_user must be an integer >= 1, got 0"),
        ({"items": 20, "events_per_user": 11}, r"events_per_user must be at most half the items \(10\), got 11"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1 @ run.toml.data.synthetic.seed"),
        ({"items": 1e6}, r"expected an integer, got 1000000.0 \(a float\) @ run.toml.data.synthetic.items"),
        ({"item": 10}, r"unknown key 'item'; did you mean 'items'\?"),
    ],
)
def test_bad_sizes_are_named(table, expected):
    with pytest.raises(ConfigError, match=expected):
        config_from_dict({"data": {"synthetic": table}}, source="run.toml")


def test_the_old_seed_key_names_its_replacement():
    with pytest.raises(ConfigError, match=r"data.synthetic_seed was replaced: write data.synthetic.seed"):
        config_from_dict({"data": {"synthetic_seed": 2}})
    with pytest.raises(ConfigError, match=r"data.synthetic.seed"):
        apply_overrides(TrainConfig(), ["data.synthetic_seed=2"])
    # the value every earlier run directory's config.toml holds still reads, as the default
    assert config_from_dict({"data": {"synthetic_seed": 0}}).data.synthetic.seed == 0


def test_at_scale_every_user_gets_their_count_of_distinct_clicks():
    data = make_synthetic(seed=1, num_items=200_000, num_users=5_000, mean_events=40)
    assert data.num_items * data.num_users > EXACT_LIMIT  # the scalable sampler
    pairs = data.interactions.users * data.num_items + data.interactions.items
    assert torch.unique(pairs).numel() == pairs.numel()
    counts = torch.bincount(data.interactions.users, minlength=data.num_users)
    expected = np.clip(np.random.default_rng(1).poisson(40, 5_000), 5, 100_000)  # not the generator's draws,
    assert abs(float(counts.double().mean()) - expected.mean()) < 1  # but their law: full counts, none merged away
    assert torch.equal(torch.sort(data.interactions.timestamps).values, torch.arange(pairs.numel()))


def test_the_guided_search_is_searchsorted():
    generator = np.random.default_rng(0)
    for size, exponent in ((1, 1.0), (50, 1.0), (10_000, 2.0)):
        cumulative = np.cumsum((generator.permutation(size) + 1.0) ** -exponent)
        values = np.concatenate([generator.random(5_000) * cumulative[-1], cumulative, [0.0]])
        found = _guided_search(cumulative, _guide(cumulative), values)
        assert np.array_equal(found, np.searchsorted(cumulative, values, side="right"))

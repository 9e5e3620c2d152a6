"""`split_interactions`: an exact train/valid/test partition, per-user windows in time, cold
items on one side only, and the earlier train/test split when ``valid_fraction=0``."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augkit.batch import FeatureBatch
from augkit.data.dataset import InteractionLog, RecDataset
from augkit.data.splits import Split, split_interactions
from augkit.schema import Categorical, FeatureSchema

Event = tuple[int, int, int | None]


def _table(name: str, size: int) -> FeatureBatch:
    schema = FeatureSchema([Categorical(name=name, num_values=size)])
    return FeatureBatch.from_tensors(schema, {name: torch.arange(size)})


def _dataset(num_users: int, num_items: int, users, items, stamps) -> RecDataset:
    log = InteractionLog(
        torch.tensor(users, dtype=torch.long),
        torch.tensor(items, dtype=torch.long),
        None if stamps is None else torch.tensor(stamps, dtype=torch.long),
    )
    return RecDataset("toy", _table("item_id", num_items), _table("user_id", num_users), log)


@st.composite
def datasets(draw) -> RecDataset:
    """Up to 60 events over a few users and items; timestamps (with ties) or none."""
    num_users, num_items = draw(st.integers(1, 6)), draw(st.integers(1, 15))
    size = draw(st.integers(0, 60))
    ids = st.lists(st.integers(0, num_users - 1), min_size=size, max_size=size)
    users = draw(ids)
    items = draw(st.lists(st.integers(0, num_items - 1), min_size=size, max_size=size))
    stamps = draw(st.none() | st.lists(st.integers(0, 8), min_size=size, max_size=size))
    return _dataset(num_users, num_items, users, items, stamps)


fractions = st.tuples(st.floats(0.0, 0.9), st.floats(0.0, 0.9)).filter(lambda f: f[0] + f[1] < 1.0)
cold_fractions = st.sampled_from([0.0, 0.1, 0.3, 0.6])


def _events(log: InteractionLog) -> list[Event]:
    stamps = [None] * len(log) if log.timestamps is None else log.timestamps.tolist()
    return list(zip(log.users.tolist(), log.items.tolist(), stamps))


def _split(dataset: RecDataset, test: float, valid: float, cold: float, seed: int = 0) -> Split:
    return split_interactions(
        dataset,
        test_fraction=test,
        valid_fraction=valid,
        cold_fraction=cold,
        generator=torch.Generator().manual_seed(seed),
    )


def _split_before_validation(dataset: RecDataset, test_fraction: float, cold_fraction: float, seed: int):
    """The train/test split of augkit before validation existed (copied from that version)."""
    generator = torch.Generator().manual_seed(seed)
    log = dataset.interactions
    size = len(log)
    if log.timestamps is not None:
        order_key = log.timestamps
    else:
        order_key = torch.randperm(size, generator=generator)
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
    return log.select(~is_test & ~on_cold), log.select(is_test | on_cold), cold_items


def _assert_same_log(a: InteractionLog, b: InteractionLog) -> None:
    assert torch.equal(a.users, b.users) and torch.equal(a.items, b.items)
    assert (a.timestamps is None) == (b.timestamps is None)
    if a.timestamps is not None:
        assert torch.equal(a.timestamps, b.timestamps)


@settings(max_examples=150)
@given(datasets(), fractions, cold_fractions, st.integers(0, 3))
def test_the_three_parts_partition_the_log(dataset, fraction, cold, seed):
    split = _split(dataset, *fraction, cold, seed)
    parts = Counter(_events(split.train)) + Counter(_events(split.valid)) + Counter(_events(split.test))
    assert parts == Counter(_events(dataset.interactions))


@settings(max_examples=150)
@given(datasets(), fractions, st.integers(0, 3))
def test_each_user_keeps_the_floor_counts_in_time_order(dataset, fraction, seed):
    test_fraction, valid_fraction = fraction
    split = _split(dataset, test_fraction, valid_fraction, 0.0, seed)
    per_user = torch.bincount(dataset.interactions.users, minlength=dataset.num_users)
    for user, n in enumerate(per_user.tolist()):
        n_test = math.floor(n * test_fraction)
        n_valid = math.floor((n - n_test) * valid_fraction)
        parts = [part.select(part.users == user) for part in (split.train, split.valid, split.test)]
        assert [len(part) for part in parts] == [n - n_test - n_valid, n_valid, n_test]
        if dataset.interactions.timestamps is not None:
            stamps = [part.timestamps.tolist() for part in parts if len(part)]
            for earlier, later in zip(stamps, stamps[1:]):
                assert max(earlier) <= min(later)


@settings(max_examples=150)
@given(datasets(), fractions, cold_fractions, st.integers(0, 3))
def test_cold_items_move_whole_to_one_side(dataset, fraction, cold, seed):
    """Each cold item takes all its events to valid or test; every other event stays in the
    window it has without cold items (the cold draw comes after the window draw)."""
    test_fraction, valid_fraction = fraction
    split = _split(dataset, test_fraction, valid_fraction, cold, seed)
    windows = _split(dataset, test_fraction, valid_fraction, 0.0, seed)
    valid_cold = split.valid_cold_items
    test_cold = split.cold_items & ~valid_cold
    assert not bool((valid_cold & ~split.cold_items).any())
    num_cold = int(split.cold_items.sum())
    assert num_cold == round(dataset.num_items * cold)
    if valid_fraction:
        assert int(valid_cold.sum()) == round(num_cold * valid_fraction / (valid_fraction + test_fraction))
    else:
        assert not bool(valid_cold.any())
    assert not bool(split.cold_items[split.train.items].any())
    assert not bool(test_cold[split.valid.items].any())
    assert not bool(valid_cold[split.test.items].any())
    log = dataset.interactions
    for part, window, side in (
        (split.train, windows.train, None),
        (split.valid, windows.valid, valid_cold),
        (split.test, windows.test, test_cold),
    ):
        warm = Counter(_events(window.select(~split.cold_items[window.items])))
        moved = Counter() if side is None else Counter(_events(log.select(side[log.items])))
        assert Counter(_events(part)) == warm + moved


@settings(max_examples=150)
@given(datasets(), st.floats(0.0, 0.9), cold_fractions, st.integers(0, 3))
def test_without_validation_the_split_is_the_earlier_one(dataset, test_fraction, cold, seed):
    split = _split(dataset, test_fraction, 0.0, cold, seed)
    train, test, cold_items = _split_before_validation(dataset, test_fraction, cold, seed)
    _assert_same_log(split.train, train)
    _assert_same_log(split.test, test)
    assert torch.equal(split.cold_items, cold_items)
    assert len(split.valid) == 0 and not bool(split.valid_cold_items.any())


def _untimed(num_users: int = 5, events: int = 80) -> RecDataset:
    users = [k % num_users for k in range(events)]
    items = [(7 * k) % 23 for k in range(events)]
    return _dataset(num_users, 23, users, items, None)


def test_same_seed_same_split_and_other_seed_differs():
    dataset = _untimed()
    first, again, other = (_split(dataset, 0.2, 0.2, 0.2, seed) for seed in (0, 0, 1))
    for name in ("train", "valid", "test"):
        _assert_same_log(getattr(first, name), getattr(again, name))
    assert torch.equal(first.cold_items, again.cold_items)
    assert torch.equal(first.valid_cold_items, again.valid_cold_items)
    assert _events(first.valid) != _events(other.valid) or _events(first.test) != _events(other.test)


def test_an_empty_validation_log_keeps_its_columns():
    timed = _dataset(2, 3, [0, 0, 1], [0, 1, 2], [3, 1, 2])
    assert _split(timed, 0.2, 0.0, 0.0).valid.timestamps.shape == (0,)
    assert _split(_untimed(), 0.2, 0.0, 0.0).valid.timestamps is None


@pytest.mark.parametrize(
    ("fractions", "named"),
    [
        ((1.0, 0.0, 0.0), "test_fraction=1.0"),
        ((0.2, -0.1, 0.0), "valid_fraction=-0.1"),
        ((0.2, 0.1, 1.5), "cold_fraction=1.5"),
        ((0.2, float("nan"), 0.0), "valid_fraction=nan"),
        ((0.6, 0.4, 0.0), "test_fraction + valid_fraction"),
    ],
)
def test_fractions_are_checked_by_name(fractions, named):
    with pytest.raises(ValueError, match=named.replace("+", r"\+")):
        _split(_untimed(), *fractions)

"""Evaluation on the validation or the test log: what is excluded, seeded user subsets, and the
earlier test metrics when there is no validation."""

from __future__ import annotations

import attrs
import pytest
import torch

from augkit.data.splits import split_interactions
from augkit.data.synthetic import make_synthetic
from augkit.errors import UnknownNameError
from augkit.metrics import Interactions, evaluate, popularity_deciles, popularity_slices, top_popular
from augkit.train import build_run, config_from_dict
from augkit.train.evaluation import build_holdout, embed, evaluate_run
from augkit.train.history import with_history

SMALL = {
    "ssl": {"alpha": 0.0},
    "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
    "eval": {"unseen_ids": "trained"},  # the earlier evaluation embedded every item by its own id
}


def _parts(valid_fraction: float):
    """An untrained run on a small synthetic set, split with `valid_fraction`."""
    config = config_from_dict(SMALL)
    dataset = make_synthetic(seed=2, num_items=300, num_users=150, mean_events=15)
    split = split_interactions(
        dataset,
        test_fraction=0.2,
        valid_fraction=valid_fraction,
        cold_fraction=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    queries = with_history(
        dataset.users, split.train, num_items=dataset.num_items, history_len=config.data.history_len
    )
    counts = torch.bincount(split.train.items, minlength=dataset.num_items)
    return attrs.evolve(build_run(config, dataset), split=split, queries=queries, train_counts=counts)


@pytest.fixture(scope="module")
def with_valid():
    return _parts(0.25)


@pytest.fixture(scope="module")
def without_valid():
    return _parts(0.0)


def _evaluate_run_before_validation(parts) -> dict:
    """`evaluate_run` of augkit before validation existed (copied from that version)."""
    split, num_items = parts.split, parts.dataset.num_items
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
    slices = dict(popularity_slices(parts.train_counts, parts.config.eval.head_fraction))
    deciles = popularity_deciles(parts.train_counts)
    slices.update({f"decile_{d}": deciles == d for d in range(10)})
    ks = parts.config.eval.ks
    with torch.no_grad():
        parts.model.eval()
        query_emb = parts.model["query"](parts.queries.select(test_users))
        item_emb = parts.model["item"](parts.dataset.items)
        parts.model.train()
    model = evaluate(query_emb, item_emb, test, exclude, ks=ks, slices=slices)
    popular = top_popular(parts.train_counts, test, exclude, ks=ks, slices=slices)
    return {"model": model.as_dict(), "top_popular": popular.as_dict()}


def _pair_set(interactions: Interactions, users: torch.Tensor) -> set[tuple[int, int]]:
    queries = users[interactions.query_index()]
    return set(zip(queries.tolist(), interactions.items.tolist()))


def _log_pairs(logs, users: torch.Tensor) -> set[tuple[int, int]]:
    wanted = set(users.tolist())
    return {(u, i) for log in logs for u, i in zip(log.users.tolist(), log.items.tolist()) if u in wanted}


def test_without_validation_test_metrics_are_the_earlier_ones(without_valid):
    assert evaluate_run(without_valid) == _evaluate_run_before_validation(without_valid)


def test_validation_excludes_training_items(with_valid):
    split = with_valid.split
    holdout = build_holdout(with_valid, on="valid")
    assert torch.equal(holdout.users, torch.unique(split.valid.users))
    assert _pair_set(holdout.target, holdout.users) == _log_pairs([split.valid], holdout.users)
    assert _pair_set(holdout.known, holdout.users) == _log_pairs([split.train], holdout.users)


def test_test_excludes_training_and_validation_items(with_valid):
    split = with_valid.split
    holdout = build_holdout(with_valid, on="test")
    assert torch.equal(holdout.users, torch.unique(split.test.users))
    assert _pair_set(holdout.target, holdout.users) == _log_pairs([split.test], holdout.users)
    known = _pair_set(holdout.known, holdout.users)
    assert known == _log_pairs([split.train, split.valid], holdout.users)
    assert known - _log_pairs([split.train], holdout.users), "no validation item to exclude"


def test_cold_slice_is_the_items_never_in_training(with_valid):
    holdout = build_holdout(with_valid, on="valid")
    assert torch.equal(holdout.slices["cold"], with_valid.train_counts == 0)
    cold_events = int(holdout.slices["cold"][with_valid.split.valid.items].sum())
    assert cold_events > 0
    assert evaluate_run(with_valid, on="valid")["model"]["cold"]["n_interactions"] == cold_events


def test_a_user_subset_is_seeded_and_reproducible(with_valid):
    every = torch.unique(with_valid.split.valid.users)

    def users(seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return build_holdout(with_valid, on="valid", max_users=40, generator=generator).users

    first = users(0)
    assert len(first) == 40 and bool((first.diff() > 0).all()) and bool(torch.isin(first, every).all())
    assert torch.equal(first, users(0))
    assert not torch.equal(first, users(1))
    generator = torch.Generator().manual_seed(0)
    everyone = build_holdout(with_valid, on="valid", max_users=10**6, generator=generator)
    assert torch.equal(everyone.users, every)
    runs = [
        evaluate_run(with_valid, on="valid", max_users=40, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0]["model"]["all"]["n"] == 40


@pytest.mark.parametrize(
    ("max_users", "generator", "message"),
    [
        (5, None, "needs a generator"),
        (0, torch.Generator(), "positive int"),
        (True, torch.Generator(), "positive int"),
    ],
)
def test_a_user_subset_needs_a_size_and_a_generator(with_valid, max_users, generator, message):
    with pytest.raises(ValueError, match=message):
        build_holdout(with_valid, on="valid", max_users=max_users, generator=generator)


def test_an_unknown_log_is_named(with_valid):
    with pytest.raises(UnknownNameError, match="'tset'"):
        evaluate_run(with_valid, on="tset")


def test_an_empty_validation_log_gives_no_queries(without_valid):
    metrics = evaluate_run(without_valid, on="valid")
    assert metrics["model"]["all"]["n"] == 0 and metrics["model"]["all"]["recall@10"] is None


def test_embed_in_chunks_matches_one_pass(with_valid):
    tower, items = with_valid.model["item"], with_valid.dataset.items
    torch.testing.assert_close(embed(tower, items, chunk=37), embed(tower, items))


def test_unseen_items_read_as_the_default_embedding_by_default(without_valid):
    from augkit.train.evaluation import served_items

    parts = attrs.evolve(without_valid, config=config_from_dict({**SMALL, "eval": {}}))
    items = parts.dataset.items
    served = served_items(parts)
    column = items.schema.index("item_id")
    unseen = parts.train_counts == 0
    assert unseen.any() and torch.equal(served.present[:, column], items.present[:, column] & ~unseen)
    others = [i for i in range(len(items.schema)) if i != column]
    assert torch.equal(served.present[:, others], items.present[:, others])
    assert served_items(without_valid) is items  # unseen_ids = "trained"
    tower = parts.model["item"]
    default_id = embed(tower, served.select(torch.nonzero(unseen).flatten()[:1]))
    masked = items.select(torch.nonzero(unseen).flatten()[:1])
    masked = masked.mask_features(torch.nn.functional.one_hot(torch.tensor([column]), len(items.schema)).bool())
    torch.testing.assert_close(default_id, embed(tower, masked))

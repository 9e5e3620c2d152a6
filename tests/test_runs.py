"""`augkit.load_run`: a trained run answers in raw keys (recommend, similar items, embeddings),
embeds new items from their features, and names what is wrong with a run or a key."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
import torch

import augkit
from augkit.data.keys import KeyIndex, UnknownKeyError
from augkit.data.sources import load_with_keys
from augkit.errors import CheckpointError, ConfigError, RunDirectoryError, UnknownNameError
from augkit.serving import RunError, UnknownValueError, load_run
from augkit.serving.topk import chunked_top_k

DATASETS = Path(os.environ.get("AUGKIT_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
ML_100K = DATASETS / "ml-100k"

TINY = {
    "name": "tiny", "epochs": 1, "progress": False, "log_every": 0,
    "model": {"embedding_dim": 8, "hidden": [16], "output_dim": 8},
    "main": {"batch_size": 1024}, "ssl": {"batch_size": 128}, "eval": {"max_users": 200},
}


def train_tiny(directory: Path, **changes) -> Path:
    """A one-epoch run of a tiny model on the synthetic data, in `directory`/runs/tiny."""
    from augkit.train import config_from_dict, run_training

    config = config_from_dict({**TINY, "output_dir": str(directory / "runs"), **changes})
    run_training(config)
    return config.run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def run(run_dir):
    return load_run(run_dir)


def brute_force(queries: torch.Tensor, items: torch.Tensor, k: int, exclude=None):
    scores = queries @ items.T
    if exclude is not None:
        scores[exclude] = -torch.inf
    return scores.topk(k, dim=1)


def test_load_run_is_exported_and_uses_best(run, run_dir):
    assert augkit.load_run is load_run
    assert run.checkpoint == run_dir / "best.pt"
    assert run.dataset.num_items == 3000 and not run.model.training


def test_recommend_returns_raw_keys_and_excludes_training_items(run):
    users = [0, 42, 1999]
    result = run.recommend(users, k=10)
    assert result.queries == (0, 42, 1999)
    assert [len(row) for row in result.items] == [10, 10, 10] and result.scores.shape == (3, 10)
    assert bool((result.scores[:, :-1] >= result.scores[:, 1:]).all())
    seen = run.seen_items(users)
    train = run.split.train
    for q, user in enumerate(users):
        assert set(seen[q]) == set(train.items[train.users == user].tolist())
        assert not set(result.items[q]) & set(seen[q])
    # the same as scoring every item and masking the training items
    vectors = run.query_embeddings(users).vectors
    mask = torch.zeros(3, run.dataset.num_items, dtype=torch.bool)
    for q in range(3):
        mask[q, list(seen[q])] = True
    expected = brute_force(vectors, run.item_embeddings().vectors, 10, mask)
    assert [list(row) for row in result.items] == expected.indices.tolist()
    torch.testing.assert_close(result.scores, expected.values)
    assert result.titles is None
    rows = result.rows()
    assert len(rows) == 30 and rows[0] == {"query": 0, "rank": 1, "item": result.items[0][0], "score": pytest.approx(float(result.scores[0, 0]))}


def test_recommend_without_exclusion_and_single_key(run):
    result = run.recommend(7, k=5, exclude_seen=False)
    expected = brute_force(run.query_embeddings([7]).vectors, run.item_embeddings().vectors, 5)
    assert result.queries == (7,) and list(result.items[0]) == expected.indices[0].tolist()
    assert run.recommend("7", k=5, exclude_seen=False).items == result.items  # text spelling of an int key


def test_unknown_keys_and_bad_k_are_named(run):
    with pytest.raises(UnknownKeyError, match=r"unknown user key 5000: the users of data set 'synthetic\(seed=0\)' have keys 0, 1"):
        run.recommend([1, 5000])
    with pytest.raises(UnknownKeyError, match="unknown item key 'x'.*the keys are integers"):
        run.similar_items("x")
    with pytest.raises(RunError, match=r"k must be an int in 1..3000"):
        run.recommend(1, k=3001)


def test_embeddings_are_keyed_and_match_the_towers(run):
    from augkit.train.evaluation import embed

    items = run.item_embeddings()
    assert items.keys == tuple(range(3000)) and items.vectors.shape == (3000, 8)
    counts = torch.bincount(run.split.train.items, minlength=3000)
    seen, cold = int(torch.nonzero(counts > 0)[0]), int(torch.nonzero(counts == 0)[0])
    torch.testing.assert_close(items.vector(seen), embed(run.item_tower, run.dataset.items)[seen])
    # an item never seen in training reads as the default embedding, as in the run's evaluation
    masked = run.dataset.items.select(torch.tensor([cold])).mask_features(torch.tensor([[True, False, False, False, False]]))
    torch.testing.assert_close(items.vector(cold), embed(run.item_tower, masked)[0])
    queries = run.query_embeddings([3, 1])
    assert queries.keys == (3, 1)
    torch.testing.assert_close(queries.vectors, embed(run.query_tower, run.queries.select(torch.tensor([3, 1]))))
    assert set(queries.as_dict()) == {3, 1}


def test_similar_items_leave_the_item_out(run):
    result = run.similar_items([5, 6], k=4)
    vectors = run.item_embeddings().vectors
    mask = torch.zeros(2, 3000, dtype=torch.bool)
    mask[0, 5] = mask[1, 6] = True
    expected = brute_force(vectors[[5, 6]], vectors, 4, mask)
    assert [list(row) for row in result.items] == expected.indices.tolist()
    assert 5 not in result.items[0] and 6 not in result.items[1]


def test_embed_items_from_features(run):
    corpus = run.dataset.items
    assert int((run.split.train.items == 12).sum()) > 0  # item 12 is seen in training: its id is its own
    known = {
        "item_id": [12], "category": [int(corpus.values["category"][12])], "brand": [int(corpus.values["brand"][12])],
        "tags": [[t for t, k in zip(corpus.values["tags"][12].tolist(), corpus.kept["tags"][12].tolist(), strict=True) if k]],
        "price": [int(corpus.values["price"][12])],
    }
    torch.testing.assert_close(run.embed_items(known)[0], run.item_embeddings().vectors[12])
    # a new item: its id unseen (none, or a key the run lacks) reads as the default embedding
    new = {**known, "item_id": [None]}
    default = run.embed_items(new)
    torch.testing.assert_close(run.embed_items({**known, "item_id": [123456]}), default)
    batch = corpus.select(torch.tensor([12])).mask_features(torch.tensor([[True, False, False, False, False]]))
    torch.testing.assert_close(run.embed_items(batch), default)
    rows = [{"category": 3, "tags": [1, 2]}, {"brand": 7}]
    assert run.embed_items(rows).shape == (2, 8)
    with pytest.raises(UnknownValueError, match=r"feature 'category', row 0: value 999 is not in its vocabulary"):
        run.embed_items({"category": [999]})
    assert run.embed_items({"category": [999]}, unknown="missing").shape == (1, 8)
    with pytest.raises(UnknownNameError, match="did you mean 'tags'"):
        run.embed_items({"tag": [[1]]})


def test_chunked_top_k_matches_topk_with_exclusions():
    generator = torch.Generator().manual_seed(0)
    queries, items = torch.randn(37, 5, generator=generator), torch.randn(101, 5, generator=generator)
    rows = torch.tensor([0, 0, 3, 36, 36])
    cols = torch.tensor([4, 99, 0, 50, 100])
    mask = torch.zeros(37, 101, dtype=torch.bool)
    mask[rows, cols] = True
    expected = brute_force(queries, items, 7, mask)
    scores, ids = chunked_top_k(queries, items, 7, exclude=(rows, cols), query_chunk=8, item_chunk=10)
    assert torch.equal(ids, expected.indices)
    torch.testing.assert_close(scores, expected.values)
    # exclusions that leave fewer than k items: the empty ranks are -1 / -inf
    everything = torch.arange(101)
    scores, ids = chunked_top_k(queries[:1], items, 3, exclude=(torch.zeros(99, dtype=torch.long), everything[:99]))
    assert ids[0].tolist()[:2] == sorted([99, 100], key=lambda i: -float(queries[0] @ items[i]))
    assert ids[0, 2] == -1 and torch.isneginf(scores[0, 2])


def test_key_index_lookup_forms():
    ints = KeyIndex("user", "d", [1, 2, 42])
    assert ints.index([42, "42", " 2 "]).tolist() == [2, 2, 1]
    texts = KeyIndex("item", "d", ["a", "42", "é"])
    assert texts.index([42, "42", "e\u0301"]).tolist() == [1, 1, 2]
    assert ints.key_of(torch.tensor([0, -1])) == (1, None)
    assert "7" not in ints and 1 in ints


def test_run_directory_faults_are_named(tmp_path, run_dir):
    from augkit.train.checkpoint import load_checkpoint, save_checkpoint

    with pytest.raises(RunDirectoryError, match="does not exist or is not a directory"):
        load_run(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"has no checkpoint: expected best.pt or checkpoint.pt"):
        load_run(tmp_path / "empty")
    # a checkpoint whose weights do not fit the towers its config builds
    state = load_checkpoint(run_dir / "best.pt")
    state["config"] = state["config"].replace("output_dim = 8", "output_dim = 16")
    assert tomllib.loads(state["config"])["model"]["output_dim"] == 16
    (tmp_path / "other").mkdir()
    save_checkpoint(tmp_path / "other" / "best.pt", state)
    with pytest.raises(RunError, match=r"does not fit the towers its config builds on data set 'synthetic\(seed=0\)'"):
        load_run(tmp_path / "other")
    # a run whose data is not where its config says (a relative path from another directory)
    state = load_checkpoint(run_dir / "best.pt")
    state["config"] = state["config"].replace('source = "synthetic"', 'source = "movielens-100k"').replace(
        'path = ""', 'path = "no/such/ml-100k"'
    )
    (tmp_path / "moved").mkdir()
    save_checkpoint(tmp_path / "moved" / "best.pt", state)
    with pytest.raises(ConfigError, match=r"run '.*moved': cannot load its data \(MovieLens-100K path 'no/such/ml-100k'"):
        load_run(tmp_path / "moved")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"checkpoint .*damaged.best\.pt"):
        load_run(damaged)


def test_checkpoint_argument_loads_the_last_step(run_dir):
    last = load_run(run_dir, checkpoint=run_dir / "checkpoint.pt")
    assert last.checkpoint.name == "checkpoint.pt" and last.step >= 1


@pytest.mark.skipif(not ML_100K.is_dir(), reason=f"MovieLens-100K not found at {ML_100K} (set AUGKIT_DATASETS)")
def test_movielens_keys_are_movie_and_user_ids_with_titles():
    from augkit.train import config_from_dict

    config = config_from_dict({"data": {"source": "movielens-100k", "path": str(ML_100K)}})
    dataset, keys = load_with_keys(config.data)
    assert keys.items.keys[:3] == (1, 2, 3) and len(keys.items) == dataset.num_items == 1682
    assert keys.users.index([42]).tolist() == [41]
    assert keys.titles[0] == "Toy Story (1995)"
    assert "Action" in keys.item_vocabularies["genres"]

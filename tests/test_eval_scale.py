"""Evaluation at catalogue scale: the chunked ranking's blocks and its sign path give the ranks
of a brute-force count, validation on a seeded user subset is reproducible and equals the full
validation when it holds every user, and a run reports its time by phase and the users it
validated on."""

from __future__ import annotations

import json

import pytest
import torch

from augkit import metrics
from augkit.metrics import Interactions, evaluate, rank_test_items
from augkit.train import config_from_dict, run_training
from augkit.train.evaluation import build_holdout, evaluate_model
from augkit.train.run import build_run


def brute_ranks(query_emb, item_emb, test, exclude):
    """(above, tied) of every test interaction from the dense score matrix."""
    scores = query_emb @ item_emb.T
    out = []
    for q in range(test.num_queries):
        excluded = set(exclude.items[exclude.indptr[q] : exclude.indptr[q + 1]].tolist())
        for i in test.items[test.indptr[q] : test.indptr[q + 1]].tolist():
            others = [j for j in range(item_emb.shape[0]) if j != i and j not in excluded]
            row = scores[q, others]
            out.append([int((row > scores[q, i]).sum()), int((row == scores[q, i]).sum())])
    return out


def problem(seed, queries, items, per_query, *, levels=3):
    """Integer-valued embeddings (exact scores, many ties) and random test and excluded items."""
    generator = torch.Generator().manual_seed(seed)
    query_emb = torch.randint(-levels, levels + 1, (queries, 4), generator=generator).float()
    item_emb = torch.randint(-levels, levels + 1, (items, 4), generator=generator).float()
    ids = torch.arange(queries).repeat_interleave(per_query)
    test = Interactions.from_pairs(ids, torch.randint(items, ids.shape, generator=generator), queries, items)
    exclude = Interactions.from_pairs(ids, torch.randint(items, ids.shape, generator=generator), queries, items)
    return query_emb, item_emb, test, exclude


@pytest.mark.parametrize("per_query", [1, 3])  # one test item a query (no row copy) and several
@pytest.mark.parametrize("block", [1, 5, 1 << 18])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_blocked_ranks_equal_a_brute_force_count(monkeypatch, per_query, block, dtype):
    monkeypatch.setattr(metrics, "CACHE_SCORES", block)
    query_emb, item_emb, test, exclude = problem(per_query, 37, 53, per_query)
    expected = brute_ranks(query_emb, item_emb, test, exclude)
    ranks = rank_test_items(query_emb.to(dtype), item_emb.to(dtype), test, exclude, query_chunk=7, item_chunk=11)
    assert ranks.tolist() == expected


def test_a_nan_score_falls_back_to_the_comparisons():
    # 1e30 * 1e30 overflows float32: inf - inf in one product is NaN, which is neither above
    # nor tied, as the comparisons count it
    query_emb = torch.tensor([[1e30, 1e30], [1.0, 0.0]])
    item_emb = torch.tensor([[1e30, -1e30], [1.0, 0.0], [2.0, 0.0], [0.5, 0.0]])
    test = Interactions.from_pairs(torch.tensor([0, 1]), torch.tensor([1, 1]), 2, 4)
    ranks = rank_test_items(query_emb, item_emb, test, None)
    assert ranks.tolist() == [[1, 0], [2, 0]]  # query 0: item 2 above, item 0 NaN, item 3 below


def test_chunked_recall_equals_the_full_score_matrix_at_ten_thousand_items():
    generator = torch.Generator().manual_seed(0)
    item_emb = torch.nn.functional.normalize(torch.randn(10_000, 16, generator=generator), dim=1)
    targets = torch.randint(10_000, (300,), generator=generator)
    query_emb = torch.nn.functional.normalize(item_emb[targets] + 0.5 * torch.randn(300, 16, generator=generator), dim=1)
    test = Interactions.from_pairs(torch.arange(300), targets, 300, 10_000)
    result = evaluate(query_emb, item_emb, test, None, ks=(10, 100), query_chunk=128, item_chunk=4096)
    scores = query_emb @ item_emb.T
    top = scores.topk(100, dim=1).indices
    for k in (10, 100):
        assert result.recall(k) == pytest.approx(float((top[:, :k] == targets[:, None]).any(1).double().mean()))


# -- validation on a user subset -------------------------------------------------------------
SMALL = {
    "progress": False, "epochs": 1, "checkpoint_every": 0, "log_every": 0,
    "data": {"synthetic": {"items": 400, "users": 300, "events_per_user": 12}},
    "main": {"batch_size": 256}, "ssl": {"batch_size": 64},
    "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
}


@pytest.fixture(scope="module")
def parts():
    return build_run(config_from_dict(SMALL))


def test_a_validation_subset_is_reproducible_and_all_users_equal_the_full_validation(parts):
    def holdout(max_users, seed):
        return build_holdout(parts, on="valid", max_users=max_users, generator=torch.Generator().manual_seed(seed))

    everyone = build_holdout(parts, on="valid")
    assert torch.equal(holdout(50, 3).users, holdout(50, 3).users)
    assert not torch.equal(holdout(50, 3).users, holdout(50, 4).users)
    assert len(holdout(50, 3).users) == 50
    full = evaluate_model(parts, everyone).as_dict()
    assert evaluate_model(parts, holdout(len(everyone.users), 3)).as_dict() == full
    assert evaluate_model(parts, holdout(10**6, 3)).as_dict() == full
    assert full["all"]["n"] == len(everyone.users)


def test_a_run_reports_its_time_by_phase_and_the_users_it_validated_on(tmp_path):
    config = config_from_dict({**SMALL, "epochs": 2, "output_dir": str(tmp_path), "eval": {"max_users": 40}})
    report = run_training(config)
    timing = report["timing"]
    assert set(timing) == {"training_seconds", "data_seconds", "validation_seconds", "test_seconds"}
    assert all(value > 0 for value in timing.values())
    assert timing["training_seconds"] == report["training"]["seconds"] < sum(timing.values())
    assert report["validation"]["users"]["evaluated"] == 40 < report["validation"]["users"]["of"]
    assert report["validation"]["model"]["all"]["n"] == 40
    assert json.loads((config.run_dir / "metrics.json").read_text())["timing"] == timing
    text = (config.run_dir / "report.md").read_text()
    assert "validation split (40 of its" in text and "building the run (data, split, towers)" in text

    # a resumed run with one more epoch adds its data building and validation to the first's
    more = run_training(config_from_dict({**SMALL, "epochs": 3, "output_dir": str(tmp_path), "eval": {"max_users": 40}}),
                        on_existing="resume")
    assert more["timing"]["data_seconds"] > timing["data_seconds"]
    assert more["timing"]["validation_seconds"] > timing["validation_seconds"]
    assert more["training"]["seconds"] > timing["training_seconds"]

"""Ties in the metrics against trec_eval (``pytrec_eval``, in the ``test`` extra).

trec_eval breaks score ties by document id, so the comparison is made where that cannot
matter: scores without ties must agree exactly, and with ties augkit's expectation must equal
the mean of trec_eval over *every* ordering of the tied items (each ordering is made explicit
with distinct score offsets, so trec_eval's own tie-break never applies).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augkit.metrics import Interactions, evaluate, top_popular

pytrec_eval = pytest.importorskip("pytrec_eval")

SETTINGS = settings(max_examples=20, deadline=None)


def trec_means(scores: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], ks) -> dict[str, float]:
    """Mean over queries of trec_eval's recall_k and ndcg_cut_k."""
    measures = {f"recall.{','.join(map(str, ks))}", f"ndcg_cut.{','.join(map(str, ks))}"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(scores)
    out = {}
    for k in ks:
        for ours, theirs in ((f"recall@{k}", f"recall_{k}"), (f"ndcg@{k}", f"ndcg_cut_{k}")):
            out[ours] = sum(row[theirs] for row in per_query.values()) / len(per_query)
    return out


def candidates(scores: list[float], excluded: set[int]) -> dict[int, float]:
    return {j: s for j, s in enumerate(scores) if j not in excluded}


def problem(num_items: int, tests: list[list[int]], excluded: list[list[int]]):
    num_queries = len(tests)
    rows = [q for q in range(num_queries) for _ in tests[q]]
    items = [i for q in range(num_queries) for i in tests[q]]
    test = Interactions.from_pairs(torch.tensor(rows, dtype=torch.long), torch.tensor(items, dtype=torch.long), num_queries, num_items)
    rows = [q for q in range(num_queries) for _ in excluded[q]]
    items = [i for q in range(num_queries) for i in excluded[q]]
    exclude = Interactions.from_pairs(torch.tensor(rows, dtype=torch.long), torch.tensor(items, dtype=torch.long), num_queries, num_items)
    return test, exclude


@st.composite
def cases(draw, max_items: int, levels: int):
    """Per-query item scores in ``0 .. levels`` (ties likely when levels is small), test items
    (at least one, not excluded) and exclusions."""
    num_items = draw(st.integers(2, max_items))
    num_queries = draw(st.integers(1, 3))
    scores, tests, excluded = [], [], []
    for _ in range(num_queries):
        scores.append(draw(st.lists(st.integers(0, levels), min_size=num_items, max_size=num_items)))
        role = draw(st.lists(st.sampled_from("tte."), min_size=num_items, max_size=num_items))
        tested = [j for j, r in enumerate(role) if r == "t"] or [0]
        tests.append(tested)
        excluded.append([j for j, r in enumerate(role) if r == "e" and j not in tested])
    return num_items, scores, tests, excluded


def augkit_metrics(num_items, scores, tests, excluded, ks):
    test, exclude = problem(num_items, tests, excluded)
    query_emb = torch.eye(len(scores), dtype=torch.float64)
    item_emb = torch.tensor(scores, dtype=torch.float64).T.contiguous()  # score(q, j) = scores[q][j]
    result = evaluate(query_emb, item_emb, test, exclude, ks=ks)
    return {key: value for key, value in result.as_dict()["all"].items() if "@" in key}


@SETTINGS
@given(case=cases(max_items=30, levels=10**6), ks=st.sets(st.integers(1, 12), min_size=1, max_size=3))
def test_without_ties_metrics_equal_trec_eval(case, ks):
    num_items, scores, tests, excluded = case
    ks = sorted(ks)
    distinct = [[s * num_items + j for j, s in enumerate(row)] for row in scores]  # no ties
    ours = augkit_metrics(num_items, distinct, tests, excluded, ks)
    run = {f"q{q}": {f"d{j}": float(s) for j, s in candidates(distinct[q], set(excluded[q])).items()} for q in range(len(distinct))}
    qrels = {f"q{q}": {f"d{i}": 1 for i in tests[q]} for q in range(len(tests))}
    theirs = trec_means(run, qrels, ks)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-4), key  # trec_eval prints 4 decimals


def orderings_mean(scores, tests, excluded, ks) -> dict[str, float]:
    """trec_eval averaged over every tie-breaking of every query: each ordering of the
    candidates that is consistent with the scores is one trec_eval query, and its metrics are
    weighted so that every query counts once (the mean over its orderings)."""
    per_query = []
    for q, row in enumerate(scores):
        pool = candidates(row, set(excluded[q]))
        orders = list(itertools.permutations(sorted(pool)))
        run, qrels = {}, {}
        for n, order in enumerate(orders):
            position = {j: p for p, j in enumerate(order)}
            # Distinct offsets below 1 keep the integer score order and fix this tie order.
            run[f"o{n}"] = {f"d{j}": pool[j] - position[j] / (len(order) + 1) for j in pool}
            qrels[f"o{n}"] = {f"d{i}": 1 for i in tests[q]}
        per_query.append(trec_means(run, qrels, ks))
    return {key: sum(row[key] for row in per_query) / len(per_query) for key in per_query[0]}


@SETTINGS
@given(case=cases(max_items=6, levels=2), ks=st.sets(st.integers(1, 7), min_size=1, max_size=3))
def test_with_ties_metrics_are_trec_eval_averaged_over_all_tie_orderings(case, ks):
    num_items, scores, tests, excluded = case
    ks = sorted(ks)
    ours = augkit_metrics(num_items, scores, tests, excluded, ks)
    theirs = orderings_mean(scores, tests, excluded, ks)
    for key, value in theirs.items():
        # Each trec_eval value is rounded to 4 decimals before averaging.
        assert ours[key] == pytest.approx(value, abs=1e-4), key


def test_top_popular_matches_trec_eval_averaged_over_tie_orderings():
    """TopPopular on counts with ties (every query scores item j as counts[j])."""
    counts = [3, 1, 3, 0, 1, 3]
    tests = [[0, 3], [1], [4, 5]]
    excluded = [[2], [0, 5], []]
    ks = (1, 2, 4)
    test, exclude = problem(6, tests, excluded)
    result = top_popular(torch.tensor(counts), test, exclude, ks=ks).as_dict()["all"]
    theirs = orderings_mean([counts] * 3, tests, excluded, ks)
    for key, value in theirs.items():
        assert result[key] == pytest.approx(value, abs=1e-4), key
    # The pessimistic reading gives no hit at K=1 at all. The expectation: query 0's item 0
    # ties item 5 (rank 0 or 1), recall (1/2) / 2; query 1 none; query 2's item 5 ties items
    # 0 and 2 (rank 0, 1 or 2), recall (1/3) / 2.
    assert result["recall@1"] == pytest.approx((0.5 / 2 + 0.0 + (1 / 3) / 2) / 3, abs=1e-15)


def test_constant_scores_earn_a_random_ranking():
    """All scores equal: Recall@K is K / (candidates), NDCG the mean discount."""
    n, k = 50, 10
    test = Interactions.from_pairs(torch.tensor([0]), torch.tensor([7]), 1, n)
    result = evaluate(torch.ones(1, 2), torch.ones(n, 2), test, None, ks=(k,))
    assert result.recall(k) == pytest.approx(k / n, abs=1e-15)
    assert result.ndcg(k) == pytest.approx(sum(1 / math.log2(r + 2) for r in range(k)) / n, abs=1e-15)

"""Full-corpus retrieval metrics against a brute-force reference, chunking, memory, errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augkit.errors import BatchValidationError, ConfigError, UnknownNameError
from augkit.metrics import (
    Interactions,
    RetrievalMetrics,
    SliceMetrics,
    evaluate,
    metrics_from_ranks,
    popularity_deciles,
    popularity_slices,
    rank_test_items,
    top_popular,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SETTINGS = settings(max_examples=25, deadline=None)


# -- random problems and the brute-force reference ------------------------------------------
def random_pairs(num_queries: int, num_items: int, density: float, generator: torch.Generator):
    """(query_ids, item_ids) of a random Bernoulli(density) pair set, in random order."""
    chosen = torch.rand(num_queries, num_items, generator=generator) < density
    queries, items = chosen.nonzero(as_tuple=True)
    order = torch.randperm(queries.numel(), generator=generator)
    return queries[order], items[order]


def random_problem(seed: int, num_queries: int, num_items: int, dim: int, *, levels: int = 2):
    """Integer-valued embeddings in ``-levels .. levels`` (exact dot products, many ties),
    test pairs and overlapping exclusion pairs."""
    generator = torch.Generator().manual_seed(seed)
    query_emb = torch.randint(-levels, levels + 1, (num_queries, dim), generator=generator).double()
    item_emb = torch.randint(-levels, levels + 1, (num_items, dim), generator=generator).double()
    test, exclude = (
        Interactions.from_pairs(
            *random_pairs(num_queries, num_items, 0.3, generator), num_queries, num_items
        )
        for _ in range(2)
    )
    return query_emb, item_emb, test, exclude


def rows_of(pairs: Interactions) -> list[list[int]]:
    indptr, items = pairs.indptr.tolist(), pairs.items.tolist()
    return [items[indptr[q] : indptr[q + 1]] for q in range(pairs.num_queries)]


def brute_ranks(query_emb, item_emb, test, exclude) -> list[list[int]]:
    """``[above, tied]`` per test interaction: candidates scoring strictly more, and exactly
    as much (explicit loops)."""
    scores = (query_emb.double() @ item_emb.double().T).tolist()
    excluded = rows_of(exclude) if exclude is not None else [[] for _ in range(test.num_queries)]
    ranks = []
    for q, items in enumerate(rows_of(test)):
        for i in items:
            others = [
                scores[q][j] for j in range(item_emb.shape[0]) if j != i and j not in excluded[q]
            ]
            ranks.append(
                [sum(1 for s in others if s > scores[q][i]), sum(1 for s in others if s == scores[q][i])]
            )
    return ranks


def brute_metrics(ranks: list[list[int]], test: Interactions, ks, slices: dict[str, list[bool]]):
    """{slice: {"recall@k", "ndcg@k", "n"}} by explicit loops over queries; a test item with
    ``above`` g and ``tied`` t contributes the mean over its equally likely ranks g .. g + t."""
    rank_of, position = {}, 0
    for q, items in enumerate(rows_of(test)):
        for i in items:
            above, tied = ranks[position]
            rank_of[q, i] = range(above, above + tied + 1)
            position += 1
    out = {}
    for name, member in slices.items():
        per_query = []
        for q, items in enumerate(rows_of(test)):
            mine = [i for i in items if member[i]]
            if not mine:
                continue
            row = {}
            for k in ks:
                hits = sum(sum(r < k for r in rank_of[q, i]) / len(rank_of[q, i]) for i in mine)
                row[f"recall@{k}"] = hits / len(mine)
                dcg = sum(
                    sum(1 / math.log2(r + 2) for r in rank_of[q, i] if r < k) / len(rank_of[q, i])
                    for i in mine
                )
                ideal = sum(1 / math.log2(r + 2) for r in range(min(k, len(mine))))
                row[f"ndcg@{k}"] = dcg / ideal
            per_query.append(row)
        keys = per_query[0] if per_query else {}
        out[name] = {key: sum(row[key] for row in per_query) / len(per_query) for key in keys}
        out[name]["n"] = len(per_query)
    return out


def assert_metrics_match(result: RetrievalMetrics, expected: dict) -> None:
    got = result.as_dict()
    assert list(got) == list(expected)
    for name, row in expected.items():
        assert got[name]["n"] == row["n"], name
        for key, value in row.items():
            if key != "n":
                assert got[name][key] == pytest.approx(value, abs=1e-12), (name, key)


# -- correctness ----------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    num_queries=st.integers(1, 7),
    num_items=st.integers(1, 25),
    dim=st.integers(1, 4),
    query_chunk=st.integers(1, 12),
    item_chunk=st.integers(1, 30),
)
def test_ranks_match_brute_force(device, dtype, seed, num_queries, num_items, dim, query_chunk,
                                 item_chunk):
    query_emb, item_emb, test, exclude = random_problem(seed, num_queries, num_items, dim)
    expected = brute_ranks(query_emb, item_emb, test, exclude)
    chunks = {"query_chunk": query_chunk, "item_chunk": item_chunk}
    query_emb, item_emb = query_emb.to(device, dtype), item_emb.to(device, dtype)
    ranks = rank_test_items(query_emb, item_emb, test, exclude, **chunks)
    assert ranks.device.type == device
    assert ranks.tolist() == expected


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    num_queries=st.integers(1, 8),
    num_items=st.integers(2, 30),
    ks=st.lists(st.integers(1, 35), min_size=1, max_size=4, unique=True),
)
def test_metrics_match_brute_force(seed, num_queries, num_items, ks):
    query_emb, item_emb, test, exclude = random_problem(seed, num_queries, num_items, 3, levels=1)
    generator = torch.Generator().manual_seed(seed + 1)
    counts = torch.randint(0, 4, (num_items,), generator=generator)
    slices = popularity_slices(counts)
    slices["odd"] = torch.arange(num_items) % 2 == 1
    chunks = {"query_chunk": 3, "item_chunk": 7}
    result = evaluate(query_emb, item_emb, test, exclude, ks=ks, slices=slices, **chunks)
    expected = brute_metrics(
        brute_ranks(query_emb, item_emb, test, exclude),
        test,
        ks,
        {"all": [True] * num_items, **{name: mask.tolist() for name, mask in slices.items()}},
    )
    assert_metrics_match(result, expected)


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    query_chunk=st.integers(1, 40),
    item_chunk=st.integers(1, 70),
)
def test_chunk_sizes_do_not_change_results(seed, query_chunk, item_chunk):
    """Gaussian float32 embeddings: chunking changes the matmul shapes, never the metrics."""
    generator = torch.Generator().manual_seed(seed)
    query_emb = torch.nn.functional.normalize(torch.randn(12, 8, generator=generator), dim=1)
    item_emb = torch.nn.functional.normalize(torch.randn(60, 8, generator=generator), dim=1)
    test = Interactions.from_pairs(*random_pairs(12, 60, 0.05, generator), 12, 60)
    exclude = Interactions.from_pairs(*random_pairs(12, 60, 0.2, generator), 12, 60)
    one_chunk = {"query_chunk": 10**6, "item_chunk": 10**6}
    whole = evaluate(query_emb, item_emb, test, exclude, ks=(1, 5, 20), **one_chunk)
    chunks = {"query_chunk": query_chunk, "item_chunk": item_chunk}
    chunked = evaluate(query_emb, item_emb, test, exclude, ks=(1, 5, 20), **chunks)
    assert chunked == whole


def test_hand_computed_example():
    """Scores [5, 4, 3, 2, 1] for one query; test {0, 4}; item 1 excluded."""
    item_emb = torch.tensor([[5.0], [4.0], [3.0], [2.0], [1.0]])
    test = Interactions.from_pairs(torch.tensor([0, 0]), torch.tensor([4, 0]), 1, 5)
    exclude = Interactions.from_pairs(torch.tensor([0]), torch.tensor([1]), 1, 5)
    query_emb = torch.ones(1, 1)
    assert rank_test_items(query_emb, item_emb, test, exclude).tolist() == [[0, 0], [3, 0]]
    result = evaluate(query_emb, item_emb, test, exclude, ks=(1, 4))
    assert result.recall(1) == 0.5 and result.ndcg(1) == 1.0
    assert result.recall(4) == 1.0
    assert result.ndcg(4) == pytest.approx((1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3)))
    assert result.as_dict()["all"]["n"] == 1 and result.as_dict()["all"]["n_interactions"] == 2
    # Without the exclusion, item 1 competes and pushes item 4 to rank 4.
    assert rank_test_items(query_emb, item_emb, test, None).tolist() == [[0, 0], [4, 0]]


def test_test_item_in_exclusion_set_is_still_ranked():
    item_emb = torch.tensor([[3.0], [2.0], [1.0]])
    test = Interactions.from_pairs(torch.tensor([0, 0]), torch.tensor([0, 2]), 1, 3)
    exclude = Interactions.from_pairs(torch.tensor([0]), torch.tensor([0]), 1, 3)
    # Item 0 is ranked (first) but no longer competes with item 2.
    assert rank_test_items(torch.ones(1, 1), item_emb, test, exclude).tolist() == [[0, 0], [1, 0]]


def test_ties_take_the_expected_rank():
    """Constant scores: every other non-excluded item ties; the metrics are what a random
    ranking earns on average (formerly pessimistic: 0.0, now the expectation under random
    tie-breaking, the definition the module documents)."""
    test = Interactions.from_pairs(torch.tensor([0, 1]), torch.tensor([2, 0]), 2, 6)
    exclude = Interactions.from_pairs(torch.tensor([0, 0]), torch.tensor([0, 5]), 2, 6)
    ranks = rank_test_items(torch.ones(2, 3), torch.ones(6, 3), test, exclude)
    assert ranks.tolist() == [[0, 3], [0, 5]]
    result = evaluate(torch.ones(2, 3), torch.ones(6, 3), test, exclude, ks=(3,))
    # Query 0: rank uniform on 0..3, P(rank < 3) = 3/4; query 1: uniform on 0..5, 3/6.
    assert result.recall(3) == pytest.approx((3 / 4 + 3 / 6) / 2, abs=1e-15)
    discounts = [1 / math.log2(r + 2) for r in range(3)]
    assert result.ndcg(3) == pytest.approx((sum(discounts) / 4 + sum(discounts) / 6) / 2, abs=1e-15)


def test_exact_ranks_without_ties_are_accepted():
    """A ``LongTensor[nnz]`` of exact ranks reads as ``(rank, 0 tied)``."""
    query_emb, item_emb, test, exclude = random_problem(5, 6, 20, 3)
    ranks = rank_test_items(query_emb, item_emb, test, exclude)
    optimistic = metrics_from_ranks(ranks[:, 0], test, num_items=20, ks=(3, 10))
    no_ties = torch.stack([ranks[:, 0], torch.zeros_like(ranks[:, 0])], 1)
    assert optimistic == metrics_from_ranks(no_ties, test, num_items=20, ks=(3, 10))
    with pytest.raises(BatchValidationError, match="LongTensor"):
        metrics_from_ranks(ranks[:, :1], test, num_items=20, ks=(3,))


def test_empty_slice_reports_nan_and_strict_json():
    test = Interactions.from_pairs(torch.tensor([0]), torch.tensor([1]), 2, 3)
    nothing = {"none": torch.zeros(3, dtype=torch.bool)}
    result = evaluate(torch.ones(2, 1), torch.ones(3, 1), test, None, ks=(2,), slices=nothing)
    assert math.isnan(result.recall(2, "none")) and math.isnan(result.ndcg(2, "none"))
    row = result.as_dict()["none"]
    assert row == {"recall@2": None, "ndcg@2": None, "n": 0, "n_interactions": 0}
    json.dumps(result.as_dict(), allow_nan=False)
    assert result.as_dict()["all"]["n"] == 1  # query 1 has no test item and is not counted


def test_metrics_from_ranks_reuses_ranks():
    query_emb, item_emb, test, exclude = random_problem(3, 6, 20, 3)
    ranks = rank_test_items(query_emb, item_emb, test, exclude)
    for ks in [(1,), (5, 10)]:
        direct = evaluate(query_emb, item_emb, test, exclude, ks=ks)
        assert metrics_from_ranks(ranks, test, num_items=20, ks=ks) == direct


# -- TopPopular -------------------------------------------------------------------------------
def test_top_popular_hand_computed():
    counts = torch.tensor([5, 4, 3, 2, 1])
    test = Interactions.from_pairs(torch.tensor([0, 0, 1]), torch.tensor([0, 4, 3]), 2, 5)
    exclude = Interactions.from_pairs(torch.tensor([0, 1]), torch.tensor([1, 0]), 2, 5)
    result = top_popular(counts, test, exclude, ks=(1, 4))
    # Query 0: ranks 0 and 3 (as in test_hand_computed_example); query 1: item 3 has rank 2.
    assert result.recall(1) == pytest.approx((0.5 + 0.0) / 2)
    assert result.recall(4) == pytest.approx((1.0 + 1.0) / 2)
    assert result.ndcg(4) == pytest.approx(
        ((1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3)) + 1 / math.log2(4)) / 2
    )


@SETTINGS
@given(seed=st.integers(0, 2**31), k=st.integers(1, 12))
def test_top_popular_matches_brute_force(seed, k):
    generator = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 6, (15,), generator=generator)
    test = Interactions.from_pairs(*random_pairs(4, 15, 0.3, generator), 4, 15)
    exclude = Interactions.from_pairs(*random_pairs(4, 15, 0.3, generator), 4, 15)
    slices = popularity_slices(counts)
    result = top_popular(counts, test, exclude, ks=(k,), slices=slices, item_chunk=4)
    constant_query = torch.ones(4, 1)
    expected = brute_metrics(
        brute_ranks(constant_query, counts[:, None].double(), test, exclude),
        test,
        (k,),
        {"all": [True] * 15, **{name: mask.tolist() for name, mask in slices.items()}},
    )
    assert_metrics_match(result, expected)


# -- popularity slices ----------------------------------------------------------------------
@SETTINGS
@given(counts=st.lists(st.integers(0, 6), min_size=1, max_size=60), percent=st.integers(0, 100))
def test_popularity_slices_partition_items_by_count(counts, percent):
    counts = torch.tensor(counts)
    slices = popularity_slices(counts, head_fraction=percent / 100)
    head, tail, cold = slices["head"], slices["tail"], slices["cold"]
    assert torch.equal(head.long() + tail.long() + cold.long(), torch.ones_like(counts))
    assert torch.equal(cold, counts == 0)
    warm = int((counts > 0).sum())
    assert int(head.sum()) == -(-percent * warm // 100)  # ceil, in exact integer arithmetic
    if head.any() and tail.any():
        assert counts[head].min() >= counts[tail].max()


@SETTINGS
@given(counts=st.lists(st.integers(0, 6), min_size=1, max_size=80))
def test_popularity_deciles(counts):
    counts = torch.tensor(counts)
    deciles = popularity_deciles(counts)
    assert deciles.dtype == torch.long
    assert torch.equal(deciles == -1, counts == 0)
    warm = int((counts > 0).sum())
    sizes = torch.bincount(deciles[deciles >= 0], minlength=10)
    assert int(sizes.sum()) == warm and int(sizes.max()) - int(sizes.min()) <= 1
    more_popular = counts[:, None] > counts[None, :]
    assert not (more_popular & (deciles[:, None] > deciles[None, :]) & (counts[None, :] > 0)).any()
    assert torch.equal(popularity_slices(counts)["head"], (deciles >= 0) & (deciles < 2))


def test_popularity_slices_ties_go_to_the_lower_id():
    slices = popularity_slices(torch.tensor([2, 2, 2, 2, 2, 0, 9, 2, 2, 2]), head_fraction=0.2)
    assert slices["head"].nonzero().flatten().tolist() == [0, 6]


# -- memory bound -----------------------------------------------------------------------------
def _peak_rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


@pytest.mark.parametrize("device", DEVICES)
def test_memory_stays_far_below_a_dense_score_matrix(device):
    if device == "cpu" and not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak-RSS reset needs Linux /proc/self/clear_refs")
    num_queries, num_items, dim = 2000, 200_000, 32
    generator = torch.Generator().manual_seed(0)
    query_emb = torch.randn(num_queries, dim, generator=generator).to(device)
    item_emb = torch.randn(num_items, dim, generator=generator).to(device)
    test = Interactions.from_pairs(
        torch.arange(num_queries),
        torch.randint(0, num_items, (num_queries,), generator=generator),
        num_queries,
        num_items,
    )
    exclude = Interactions.from_pairs(
        torch.arange(num_queries).repeat_interleave(5),
        torch.randint(0, num_items, (5 * num_queries,), generator=generator),
        num_queries,
        num_items,
    )
    dense_bytes = num_queries * num_items * 4
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        _reset_peak_rss()
        before = _peak_rss_bytes()
    result = evaluate(query_emb, item_emb, test, exclude, query_chunk=256, item_chunk=8192)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _peak_rss_bytes() - before
    assert peak < dense_bytes / 10, f"peak {peak / 2**20:.0f} MiB"
    assert result.as_dict()["all"]["n"] == num_queries


# -- errors -----------------------------------------------------------------------------------
def small_test() -> Interactions:
    return Interactions.from_pairs(torch.tensor([0, 1]), torch.tensor([1, 2]), 2, 4)


NAN_ROW_2 = torch.ones(4, 3).index_fill(0, torch.tensor([2]), math.nan)


@pytest.mark.parametrize(
    ("query_emb", "item_emb", "message"),
    [
        (torch.ones(2), torch.ones(4, 3), "query_emb must be a 2-D floating tensor"),
        (torch.ones(2, 3, dtype=torch.long), torch.ones(4, 3), "query_emb must be a 2-D floating"),
        (torch.ones(2, 3), torch.ones(4, 5), "share the dtype and the embedding size d"),
        (torch.ones(2, 3), torch.ones(4, 3, dtype=torch.float64), "share the dtype"),
        (torch.ones(3, 3), torch.ones(4, 3), "test has 2 queries but query_emb has 3 rows"),
        (torch.ones(2, 3), torch.ones(2, 3), r"test\.items\[1\] = 2 \(query 1\) is out of range"),
        (torch.ones(2, 3), NAN_ROW_2, r"item_emb\[2\] has a non-finite value"),
    ],
)
def test_embedding_and_interaction_errors(query_emb, item_emb, message):
    with pytest.raises(BatchValidationError, match=message):
        evaluate(query_emb, item_emb, small_test(), None)


def test_declared_item_count_must_fit_the_corpus():
    test = Interactions.from_pairs(torch.tensor([0]), torch.tensor([1]), 2, 4)
    with pytest.raises(BatchValidationError, match="num_items=4 items but item_emb has 3 rows"):
        evaluate(torch.ones(2, 3), torch.ones(3, 3), test, None)


def test_exclusion_errors_name_the_argument():
    three_queries = Interactions.from_pairs(torch.tensor([2]), torch.tensor([0]), 3, 4)
    with pytest.raises(BatchValidationError, match="exclude has 3 queries but query_emb has 2"):
        evaluate(torch.ones(2, 3), torch.ones(4, 3), small_test(), three_queries)
    with pytest.raises(BatchValidationError, match="exclude must be an Interactions, got list"):
        evaluate(torch.ones(2, 3), torch.ones(4, 3), small_test(), [])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ks": ()}, ConfigError, "ks must be distinct positive ints"),
        ({"ks": (10, 10)}, ConfigError, "ks must be distinct positive ints"),
        ({"ks": (0,)}, ConfigError, "ks must be distinct positive ints"),
        ({"query_chunk": 0}, ConfigError, "query_chunk must be a positive int, got 0"),
        ({"item_chunk": 2.5}, ConfigError, "item_chunk must be a positive int, got 2.5"),
        ({"slices": {"all": torch.ones(4, dtype=torch.bool)}}, ConfigError, "other than 'all'"),
        ({"slices": {"head": torch.ones(3, dtype=torch.bool)}}, BatchValidationError,
         r"slice 'head' must be a BoolTensor\[4\] over items, got torch.bool \(3,\)"),
        ({"slices": {"head": torch.ones(4)}}, BatchValidationError,
         r"slice 'head' must be a BoolTensor\[4\] over items, got torch.float32"),
    ],
)
def test_parameter_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        evaluate(torch.ones(2, 3), torch.ones(4, 3), small_test(), None, **kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.tensor([0, 5, 1]), torch.tensor([0, 1, 2]), 3),
         r"query_ids\[1\] = 5 is out of range; expected 0 \.\. 2 \(num_queries=3\)"),
        ((torch.tensor([0, 1]), torch.tensor([0, -1]), 3), r"item_ids\[1\] = -1 is out of range"),
        ((torch.tensor([0, 1]), torch.tensor([0, 7]), 3, 5),
         r"item_ids\[1\] = 7 is out of range; expected 0 \.\. 4 \(num_items=5\)"),
        ((torch.tensor([0, 1]), torch.tensor([0]), 3), "must match in length"),
        ((torch.tensor([0.0]), torch.tensor([0]), 3), "query_ids must be a 1-D integer tensor"),
        ((torch.tensor([0]), torch.tensor([[0]]), 3), r"item_ids must be .* torch.int64 \(1, 1\)"),
        ((torch.tensor([0]), torch.tensor([0]), -1), "num_queries must be an int >= 0, got -1"),
    ],
)
def test_from_pairs_errors(args, message):
    with pytest.raises(BatchValidationError, match=message):
        Interactions.from_pairs(*args)


@pytest.mark.parametrize(
    ("indptr", "items", "message"),
    [
        ([0, 2, 1, 3], [0, 1, 2], r"non-decreasing; indptr\[2\] = 1 < indptr\[1\] = 2"),
        ([0, 2], [0, 1, 2], r"run from 0 to len\(items\)=3"),
        ([0, 2, 2], [1, 1], r"strictly increasing .* items\[1\] = 1 follows 1 in query 0"),
        ([0, 2, 3], [0, 9, 1], r"items\[1\] = 9 is out of range; expected an item id in 0 \.\. 4"),
    ],
)
def test_interactions_constructor_errors(indptr, items, message):
    with pytest.raises(BatchValidationError, match=message):
        Interactions(torch.tensor(indptr), torch.tensor(items), 5)


def test_interactions_dtype_error():
    message = r"Interactions\.items must be a 1-D int64 tensor, got torch\.int32"
    with pytest.raises(BatchValidationError, match=message):
        Interactions(torch.tensor([0, 1]), torch.tensor([0], dtype=torch.int32), 5)


def test_from_pairs_sorts_and_deduplicates():
    pairs = Interactions.from_pairs(torch.tensor([2, 0, 2, 0, 2]), torch.tensor([5, 3, 1, 3, 5]), 4)
    assert pairs.indptr.tolist() == [0, 1, 1, 3, 3]
    assert pairs.items.tolist() == [3, 1, 5]
    assert pairs.num_items == 6 and pairs.nnz == 3
    assert pairs.query_index().tolist() == [0, 2, 2]


def test_counts_and_lookup_errors():
    with pytest.raises(BatchValidationError, match=r"train_counts\[1\] = -2 is negative"):
        popularity_slices(torch.tensor([1, -2]))
    with pytest.raises(BatchValidationError, match="train_counts must be a 1-D integer tensor"):
        popularity_deciles(torch.tensor([1.0]))
    with pytest.raises(ConfigError, match="head_fraction must be a number in"):
        popularity_slices(torch.tensor([1]), head_fraction=1.5)
    one = SliceMetrics(num_queries=1, num_interactions=1, recall=[1.0], ndcg=[1.0])
    result = RetrievalMetrics((10,), {"all": one})
    with pytest.raises(UnknownNameError, match="unknown metrics slice 'tial'.*Known: all"):
        result.recall(10, "tial")
    with pytest.raises(UnknownNameError, match="unknown k '20'"):
        result.ndcg(20)
    with pytest.raises(ConfigError, match="one recall and one ndcg per k"):
        RetrievalMetrics((10, 20), {"all": one})

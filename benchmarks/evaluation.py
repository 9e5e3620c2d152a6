"""Case 4: full-corpus Recall@K, augkit's chunked `evaluate` against the naive full score
matrix, in time and peak memory (`benchmarks.memory`).

The naive evaluation is written as public recommender code does it: one ``Q x N`` score
matrix, the training items set to -inf, ``topk`` of the largest K, a hit when the test
item is among them. Where that matrix does not fit in memory (1e4 x 1e6 float32 is 40 GB)
only the chunked evaluation runs; the naive one's memory there is the size of its score
matrix (a lower bound) and its time is extrapolated linearly in N from the largest size
where both ran. Both report the same Recall@K up to ties, which random float embeddings do
not have; the difference is checked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from augkit.metrics import evaluate
from benchmarks import memory
from benchmarks.data import RetrievalProblem, retrieval_problem
from benchmarks.profiles import TARGET_EVAL, Profile
from benchmarks.report import CaseResult, Series, Target, mebibytes, profile_evidence, ratio, seconds
from benchmarks.timing import time_side_by_side

KS = (10, 50, 100)
QUERY_CHUNK = 1024
ITEM_CHUNK = 65536
CHUNK_BUFFERS = 4
"""The memory target: at most this many ``query_chunk x item_chunk`` score buffers at once
(`augkit.metrics.rank_test_items` documents about three)."""
AGREEMENT = 1e-9


def naive_recall(problem: RetrievalProblem, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """Recall@K from the full ``Q x N`` score matrix and ``topk``."""
    scores = problem.query_emb @ problem.item_emb.T
    rows = torch.arange(scores.shape[0])[:, None].expand_as(problem.excluded_items)
    scores[rows, problem.excluded_items] = -torch.inf
    top = scores.topk(max(ks), dim=1).indices
    hits = top == problem.test_items[:, None]
    return {k: float(hits[:, :k].any(dim=1).double().mean()) for k in ks}


def chunked_recall(problem: RetrievalProblem, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """Recall@K from `augkit.metrics.evaluate` with its default chunks."""
    metrics = evaluate(
        problem.query_emb,
        problem.item_emb,
        problem.test,
        problem.exclude,
        ks=ks,
        query_chunk=QUERY_CHUNK,
        item_chunk=ITEM_CHUNK,
    )
    return {k: metrics.recall(k) for k in ks}


def chunk_budget(queries: int, items: int) -> int:
    """Bytes of `CHUNK_BUFFERS` float32 score buffers of the chunk shape at this size."""
    return CHUNK_BUFFERS * min(QUERY_CHUNK, queries) * min(ITEM_CHUNK, items) * 4


def _measure(
    candidates: dict[str, Callable[[], dict[int, float]]], repeats: int
) -> tuple[dict[str, dict[int, float]], dict[str, int | None], dict[str, Any], dict[str, float]]:
    """Each candidate's recall and peak memory from one call (which is also its warm-up),
    then `repeats` interleaved timed calls: (recall, peak bytes, timings, medians)."""
    recall, peaks = {}, {}
    for name, fn in candidates.items():
        recall[name], peaks[name] = memory.peak_rss(fn)
    timings = time_side_by_side(candidates, repeats=repeats, warmup=0, min_sample_s=0.0)
    median = {name: t.median for name, t in timings.items()}
    return recall, peaks, {name: t.as_dict() for name, t in timings.items()}, median


def run(profile: Profile, log: Callable[[str], None]) -> CaseResult:
    """Measure case 4 at the sizes of `profile`."""
    generator = torch.Generator().manual_seed(4)
    queries, items = profile.eval_side_by_side
    log(f"evaluation: {queries} queries x {items} items, naive and chunked")
    problem = retrieval_problem(queries, items, generator)
    last_chunked = functools.partial(chunked_recall, problem)
    recall, peaks, timings, median = _measure(
        {"chunked": last_chunked, "naive": functools.partial(naive_recall, problem)}, profile.eval_repeats
    )
    difference = max(abs(recall["naive"][k] - recall["chunked"][k]) for k in KS)
    records = [
        {
            "queries": queries,
            "items": items,
            "timings": timings,
            "peak_rss_bytes": peaks,
            "chunk_budget_bytes": chunk_budget(queries, items),
            "naive_score_matrix_bytes": queries * items * 4,
            "recall": recall,
            "max_recall_difference": difference,
            "naive_extrapolated": False,
        }
    ]
    naive_per_score = median["naive"] / (queries * items)
    rows = [_row(queries, items, median["chunked"], peaks["chunked"], median["naive"], peaks["naive"], "")]
    series_t, series_m = {items: median["chunked"]}, {items: peaks["chunked"]}
    for large_q, large_n in profile.eval_chunked_only:
        log(f"evaluation: {large_q} queries x {large_n} items, chunked only")
        problem = retrieval_problem(large_q, large_n, generator)
        last_chunked = functools.partial(chunked_recall, problem)
        recall, peaks, timings, median = _measure({"chunked": last_chunked}, profile.eval_large_repeats)
        naive_bytes = large_q * large_n * 4
        naive_s = naive_per_score * large_q * large_n
        records.append(
            {
                "queries": large_q,
                "items": large_n,
                "timings": timings,
                "peak_rss_bytes": {**peaks, "naive": naive_bytes},
                "chunk_budget_bytes": chunk_budget(large_q, large_n),
                "naive_score_matrix_bytes": naive_bytes,
                "recall": recall,
                "naive_extrapolated": True,
                "naive_extrapolated_median_s": naive_s,
            }
        )
        rows.append(_row(large_q, large_n, median["chunked"], peaks["chunked"], naive_s, naive_bytes, "*"))
        if large_q == queries:
            series_t[large_n], series_m[large_n] = median["chunked"], peaks["chunked"]

    final = records[-1]
    at = f"{final['queries']}x{final['items']}"
    indicative = (final["queries"], final["items"]) != TARGET_EVAL
    evidence = profile_evidence(last_chunked, 1)
    bounded = [
        r["peak_rss_bytes"]["chunked"] / r["chunk_budget_bytes"]
        for r in records
        if r["peak_rss_bytes"]["chunked"] is not None
    ]
    targets = [
        Target(
            name="evaluation_memory_bounded_by_chunk",
            goal=f"chunked peak memory <= {CHUNK_BUFFERS} query_chunk x item_chunk float32 buffers "
            f"({QUERY_CHUNK} x {ITEM_CHUNK}) at every size, not Q x N",
            value=max(bounded) if bounded else float("nan"),
            threshold=1.0,
            higher_is_better=False,
            measured_at=at,
            indicative=indicative,
        ).with_evidence(evidence),
        Target(
            name="evaluation_agrees_with_naive",
            goal=f"chunked and naive Recall@{'/'.join(map(str, KS))} equal (|difference| <= {AGREEMENT:g})",
            value=difference,
            threshold=AGREEMENT,
            higher_is_better=False,
            measured_at=f"{queries}x{items}",
            indicative=False,
        ),
    ]
    return CaseResult(
        name="evaluation",
        title=f"4. Evaluation: full-corpus Recall@{'/'.join(map(str, KS))}, dim 64, chunked vs naive",
        headers=(
            "Q x N",
            "chunked",
            "peak",
            "naive",
            "naive peak",
            "naive / chunked",
            "naive / chunked peak",
        ),
        rows=rows,
        records=records,
        targets=targets,
        notes=[
            f"peak memory: {memory.METHOD}; see benchmarks/memory.py for why not tracemalloc",
            (
                f"chunks: query_chunk={QUERY_CHUNK}, item_chunk={ITEM_CHUNK}; budget = {CHUNK_BUFFERS} such "
                "float32 buffers"
            ),
            (
                "* naive not run (its Q x N score matrix does not fit in memory): its peak is the size of "
                "that matrix alone and its time is extrapolated linearly in Q x N from the first row"
            ),
            "each candidate's first call measures its peak memory and recall and is its warm-up",
        ],
        series=[
            Series.of("evaluation chunked time", "N", series_t),
            Series.of(
                "evaluation chunked peak memory", "N", {n: m or 0 for n, m in series_m.items()}, unit="bytes"
            ),
        ],
    )


def _row(
    queries: int,
    items: int,
    chunked_s: float,
    chunked_b: int | None,
    naive_s: float,
    naive_b: int | None,
    mark: str,
) -> tuple[str, ...]:
    def size(value: int | None) -> str:
        return "n/a" if value is None else mebibytes(value)

    peak_ratio = naive_b / chunked_b if naive_b and chunked_b else float("nan")
    return (
        f"{queries}x{items}",
        seconds(chunked_s),
        size(chunked_b),
        seconds(naive_s) + mark,
        size(naive_b) + mark,
        ratio(naive_s / chunked_s),
        ratio(peak_ratio),
    )

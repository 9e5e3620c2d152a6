"""Case 5: serving top-K by ANN, `augkit export --index faiss` against exact full-corpus search.

The items are unit vectors around 1,000 random topic centres (trained item towers cluster by
topic; uniform random vectors would make every ANN index look worse than it is on real
embeddings), the queries are drawn the same way. The index is what ``augkit export`` builds at
that corpus size with its defaults (`augkit.serving.faiss_index.build_faiss_index`,
``index_type="auto"``: flat up to `augkit.serving.FLAT_MAX_ITEMS` items, IVF above), calibrated
on one half of the queries; Recall@K against exact search (`augkit.serving.topk.chunked_top_k`)
and the latency of one query are measured on the other half.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from augkit.serving.faiss_index import ANN_K, ann_report, build_faiss_index
from augkit.serving.topk import chunked_top_k
from benchmarks.profiles import Profile
from benchmarks.report import CaseResult, Target, ratio, seconds

SIZES = {"tiny": (2_000, 100), "quick": (200_000, 400), "full": (1_000_000, 1_000)}
"""(items, queries) per profile."""
TARGET_ITEMS = 1_000_000
DIM = 64
TOPICS = 1_000
SPREAD = 0.5
"""The norm of the noise around a (unit) centre: Gaussian with ``SPREAD / sqrt(DIM)`` per dimension."""
RECALL_TARGET = 0.95
"""The issue's bar: ANN Recall@50 at least 0.95 of exact search."""


def clustered(count: int, centres: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`count` unit vectors, each a random centre plus Gaussian noise of norm about `SPREAD`."""
    topic = torch.randint(len(centres), (count,), generator=generator)
    noise = torch.randn(count, centres.shape[1], generator=generator) * (SPREAD / centres.shape[1] ** 0.5)
    return torch.nn.functional.normalize(centres[topic] + noise, dim=1)


def run(profile: Profile, log: Callable[[str], None]) -> CaseResult:
    """Measure case 5 at the size of `profile`."""
    num_items, num_queries = SIZES.get(profile.name, SIZES["full"])
    title = f"Serving: FAISS (augkit export defaults) vs exact top-{max(ANN_K)}, dim {DIM}"
    try:
        import faiss  # noqa: F401
    except ImportError:
        return CaseResult(
            name="ann", title=title, headers=("items",), rows=[], records=[{"skipped": "faiss-cpu is not installed"}],
            notes=["skipped: pip install 'augkit[serve]' for faiss-cpu"],
        )
    generator = torch.Generator().manual_seed(5)
    centres = torch.nn.functional.normalize(torch.randn(TOPICS, DIM, generator=generator), dim=1)
    log(f"ann: {num_items} items, {num_queries} queries")
    items = clustered(num_items, centres, generator)
    queries = clustered(num_queries, centres, generator)
    half = num_queries // 2
    calibration, held_out = queries[:half], queries[half:]
    kmax = max(ANN_K)
    _, exact = chunked_top_k(calibration, items, kmax)
    start = time.perf_counter()
    index, settings = build_faiss_index(
        items.numpy(), calibration=calibration.numpy(), exact=exact.numpy(), k=kmax, seed=0
    )
    build_s = time.perf_counter() - start
    log(f"ann: built {settings['type']} in {build_s:.1f} s; measuring")
    report = ann_report(index, items, held_out, latency_queries=min(200, len(held_out)))
    latency = report["latency_ms"]
    speedup = latency["exact_one_query"] / latency["ann_one_query"]
    knobs = ", ".join(f"{k}={settings[k]}" for k in ("nlist", "nprobe", "ef_search") if k in settings)
    record = {
        "items": num_items, "queries": len(held_out), "dim": DIM, "index": settings, "build_s": build_s, **report,
    }
    at = f"{num_items} items"
    indicative = num_items != TARGET_ITEMS
    targets = [
        Target(
            name="ann_recall_at_50",
            goal=f"FAISS Recall@50 against exact search >= {RECALL_TARGET} with augkit export's defaults",
            value=report["recall@50"],
            threshold=RECALL_TARGET,
            higher_is_better=True,
            measured_at=at,
            indicative=indicative,
        ),
        Target(
            name="ann_faster_than_exact",
            goal="one FAISS query faster than one exact full-corpus query (ratio exact / FAISS >= 1)",
            value=speedup,
            threshold=1.0,
            higher_is_better=True,
            measured_at=at,
            indicative=indicative,
        ),
    ]
    row = (
        f"{num_items}",
        f"{settings['type']}{f' ({knobs})' if knobs else ''}",
        seconds(build_s),
        f"{report['recall@10']:.4f}",
        f"{report['recall@50']:.4f}",
        f"{report['same_top10']:.3f}",
        seconds(latency["exact_one_query"] / 1000),
        seconds(latency["ann_one_query"] / 1000),
        ratio(speedup),
    )
    return CaseResult(
        name="ann",
        title=title,
        headers=("items", "index", "build", "recall@10", "recall@50", "same top-10", "exact query", "FAISS query", "exact / FAISS"),
        rows=[row],
        records=[record],
        targets=targets,
        notes=[
            f"items and queries: unit vectors around {TOPICS} random topic centres (noise of norm ~{SPREAD})",
            "index settings calibrated on half the queries; recall and latency measured on the other half",
            f"latency: median of one query at a time, k={kmax}, torch threads {latency['threads']}",
        ],
    )

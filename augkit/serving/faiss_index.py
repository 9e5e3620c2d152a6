"""A FAISS inner-product index over the item embeddings, calibrated against exact search.

`build_faiss_index` builds a flat (exact), IVF or HNSW index and raises IVF's ``nprobe`` or
HNSW's ``efSearch`` until its recall against exact search on calibration queries reaches
`ANN_TARGET_RECALL`; `ann_report` measures recall and latency on other queries against
`chunked_top_k`. faiss (``faiss-cpu``, the ``serve`` extra) is imported only when an index is
asked for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from augkit.errors import UnknownNameError
from augkit.random import generator_for
from augkit.serving.errors import RunError
from augkit.serving.topk import chunked_top_k

FLAT_MAX_ITEMS = 100_000
"""``index_type="auto"``: an exact ``IndexFlatIP`` up to this many items, an IVF index above."""
INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
ANN_TARGET_RECALL = 0.97
"""IVF ``nprobe`` and HNSW ``efSearch`` are raised until Recall@K against exact search on the
calibration queries reaches this, and `ANN_TARGET_SAME_TOP10` of them get the exact top-10 (or
the search is exhaustive)."""
ANN_TARGET_SAME_TOP10 = 0.95
ANN_K = (10, 50)
"""The K of the ANN report; calibration uses the largest."""
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
IVF_TRAIN_PER_LIST = 64
"""IVF k-means trains on at most this many sampled items per list."""
IVF_MIN_PER_LIST = 39
"""IVF lists are capped so that each has at least this many items to train on (FAISS's own
minimum for k-means)."""
STREAM_INDEX = 101
"""The generator stream (`augkit.random.generator_for`) of the index's random draws."""


def load_faiss() -> Any:
    """The ``faiss`` module, or a `RunError` saying how to install it."""
    try:
        import faiss  # optional heavy dependency (the serve extra), needed only for an index
    except ImportError:
        raise RunError(
            "the FAISS index needs faiss-cpu: pip install 'augkit[serve]' (or pip install faiss-cpu)"
        ) from None
    return faiss


def choose_index_type(num_items: int, index_type: str = "auto") -> str:
    """``flat`` (exact) up to `FLAT_MAX_ITEMS` items, else ``ivf``, for ``index_type="auto"``."""
    if index_type not in INDEX_TYPES:
        raise UnknownNameError("FAISS index type", index_type, INDEX_TYPES)
    if index_type != "auto":
        return index_type
    return "flat" if num_items <= FLAT_MAX_ITEMS else "ivf"


def _recall(approximate: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of |ANN top-k ∩ exact top-k| / k."""
    hits = (approximate[:, :k, None] == exact[:, None, :k]).any(axis=2).sum(axis=1)
    return float(hits.mean() / k)


def _same_top(approximate: np.ndarray, exact: np.ndarray, k: int) -> float:
    """The share of queries whose top-k is the exact top-k, as sets."""
    k = min(k, exact.shape[1])
    return float((np.sort(approximate[:, :k], axis=1) == np.sort(exact[:, :k], axis=1)).all(axis=1).mean())


def build_faiss_index(
    vectors: np.ndarray,
    *,
    index_type: str = "auto",
    calibration: np.ndarray | None = None,
    exact: np.ndarray | None = None,
    k: int = max(ANN_K),
    target: float = ANN_TARGET_RECALL,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """A FAISS inner-product index over ``vectors [N, d]`` (float32) and its settings.

    * ``flat``: ``IndexFlatIP``, exact.
    * ``ivf``: ``IndexIVFFlat`` with ``nlist = round(4 sqrt(N))`` lists (at most N / 39),
      k-means trained on at most `IVF_TRAIN_PER_LIST` items per list drawn with a
      `torch.Generator` seeded by `seed` (and FAISS's clustering seed set to `seed`).
    * ``hnsw``: ``IndexHNSWFlat`` with ``M = 32``, ``efConstruction = 80``.

    For ``ivf`` and ``hnsw``, ``nprobe`` / ``efSearch`` doubles until Recall@`k` against
    `exact` (``[Q, k]`` exact top ids of the `calibration` queries) reaches `target` and
    `ANN_TARGET_SAME_TOP10` of the queries get the exact top-10, or the search is exhaustive.
    Returns ``(index, {"type", "nlist", "nprobe", "ef_search", ...})``.
    """
    faiss = load_faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    num_items, dim = vectors.shape
    kind = choose_index_type(num_items, index_type)
    settings: dict[str, Any] = {"type": kind, "metric": "inner_product", "items": num_items, "dim": dim}
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, settings
    if kind == "ivf":
        nlist = max(1, min(num_items // IVF_MIN_PER_LIST, round(4 * math.sqrt(num_items))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        generator = generator_for(seed, STREAM_INDEX)
        sample = torch.randperm(num_items, generator=generator)[: IVF_TRAIN_PER_LIST * nlist].sort().values
        index.train(vectors[sample.numpy()])
        index.add(vectors)
        settings.update(nlist=nlist, train_size=int(sample.numel()), seed=seed)
        knob, limit = "nprobe", nlist
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.add(vectors)
        settings.update(M=HNSW_M, ef_construction=HNSW_EF_CONSTRUCTION)
        knob, limit = "ef_search", max(num_items, k)
    value = 1 if knob == "nprobe" else max(16, k)
    while True:
        if knob == "nprobe":
            index.nprobe = value
        else:
            index.hnsw.efSearch = value
        if calibration is None or exact is None or value >= limit:
            break
        _, found = index.search(np.ascontiguousarray(calibration, dtype=np.float32), exact.shape[1])
        if _recall(found, exact, exact.shape[1]) >= target and _same_top(found, exact, 10) >= ANN_TARGET_SAME_TOP10:
            break
        value = min(limit, value * 2)
    settings[knob] = value
    settings["calibration"] = {
        "target_recall": target, "k": k, "queries": 0 if calibration is None else len(calibration),
    }
    return index, settings


def calibration_split(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded half of ``range(size)`` to calibrate an index on, and the other half to report
    its recall on (both all of it when `size` < 2)."""
    if size < 2:
        every = torch.arange(size)
        return every, every
    order = torch.randperm(size, generator=generator_for(seed, STREAM_INDEX, 1))
    half = size // 2
    return order[:half].sort().values, order[half:].sort().values


def _median_ms(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def ann_report(
    index: Any,
    items: torch.Tensor,
    queries: torch.Tensor,
    *,
    ks: Sequence[int] = ANN_K,
    latency_queries: int = 200,
) -> dict[str, Any]:
    """ANN quality and speed of FAISS `index` over `items` (``[N, d]``) on `queries`
    (``[Q, d]``): Recall@K of the index's top-K against exact full-corpus top-K, the share of
    queries whose top-10 is the exact top-10 (as sets), and the median latency of one query
    (ms) for the index and for exact search (`chunked_top_k`), one query at a time."""
    ks = [k for k in ks if k <= items.shape[0]]
    kmax = max(ks)
    queries_np = np.ascontiguousarray(queries.cpu().numpy(), dtype=np.float32)
    _, exact = chunked_top_k(queries, items, kmax)
    exact_np = exact.cpu().numpy()
    _, found = index.search(queries_np, kmax)
    report: dict[str, Any] = {"queries": len(queries_np)}
    for k in ks:
        report[f"recall@{k}"] = _recall(found, exact_np, k)
    report["same_top10"] = _same_top(found, exact_np, 10)
    sample = queries_np[: max(1, min(latency_queries, len(queries_np)))]
    rows = iter(range(10**9))

    def one_ann() -> None:
        i = next(rows) % len(sample)
        index.search(sample[i : i + 1], kmax)

    def one_exact() -> None:
        i = next(rows) % len(sample)
        chunked_top_k(queries[i : i + 1], items, kmax)

    report["latency_ms"] = {
        "ann_one_query": _median_ms(one_ann, len(sample)),
        "exact_one_query": _median_ms(one_exact, len(sample)),
        "k": kmax,
        "threads": torch.get_num_threads(),
    }
    return report

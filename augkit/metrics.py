"""Full-corpus retrieval metrics: Recall@K and NDCG@K, sliced by item popularity.

Definitions
-----------
Every query ``q`` is scored against all ``N`` items: ``s(q, j) = query_emb[q] · item_emb[j]``
(the embeddings are expected to be normalised already). ``X(q)`` is the query's exclusion set
(its training items), ``T(q)`` its test items.

* **Rank** of a test interaction ``(q, i)``: its 0-based position when ``q``'s candidates
  (every item ``j != i`` not in ``X(q)``) are sorted by descending score, exact ties broken
  **uniformly at random**. With ``g`` candidates scoring strictly more than ``i`` and ``t``
  scoring exactly as much, the rank is ``g + U`` with ``U`` uniform on ``0 .. t``. Metrics are
  the *expectation* over that tie-breaking, computed in closed form, so they are
  deterministic: constant scores earn what a random ranking earns, no more, no less (the
  usual reading of trec_eval's averages, without its tie-break by document id). Other test
  items of ``q`` compete like any candidate. A test item that is also in ``X(q)`` is still
  ranked; only its role as a competitor is removed. `rank_test_items` returns ``(g, t)``.
* **Hit@K**: ``rank < K``; its expectation is ``clamp((K - g) / (t + 1), 0, 1)``.
* For a slice ``S`` (a set of items; ``"all"`` is every item), ``T_S(q) = T(q) ∩ S``. Only
  queries with ``T_S(q)`` non-empty count; metrics are means over those queries (``n``).
  Ranks are always taken against the full corpus, not against the slice.
* **Recall@K** ``= E[#{i in T_S(q): rank < K}] / |T_S(q)|`` (the standard definition; the
  ``min(K, |T_S(q)|)`` denominator of some papers is not used).
* **NDCG@K** ``= E[DCG] / IDCG`` with ``DCG = sum over hits of 1 / log2(rank + 2)`` and
  ``IDCG = sum_{r < min(K, |T_S(q)|)} 1 / log2(r + 2)``. For one test item,
  ``E[1 / log2(rank + 2) if rank < K] = (C[min(g + t + 1, K)] - C[min(g, K)]) / (t + 1)``
  where ``C[r] = sum_{r' < r} 1 / log2(r' + 2)`` (prefix sums of the discount). By linearity
  of expectation only each test item's own rank distribution matters, even when test
  items of one query tie with each other.

Exact ranks without ties (``t = 0``) give the classic metrics; the expectation equals the
mean of the metrics over every ordering of the tied items (tests check this against
trec_eval, via ``pytrec_eval``, averaged over all orderings).

A slice with no test interaction has ``n = 0`` and NaN metrics (``None`` in `as_dict`).

Scores come from matrix products in the embeddings' dtype, positives included, so that
reduced-precision matmul modes (TF32, bf16) affect positives and competitors alike. Ties
are exact equality of the computed scores.

Memory is bounded by ``query_chunk x item_chunk`` scores: test interactions are processed
``query_chunk`` at a time and the corpus streamed ``item_chunk`` items at a time; exclusions
are applied per chunk from the exclusion CSR, never as a dense ``Q x N`` mask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import attrs
import torch

from augkit import distributed
from augkit.errors import BatchValidationError, ConfigError, UnknownNameError

DEFAULT_KS: tuple[int, ...] = (10, 50, 100)
ALL = "all"
"""The slice of every item; always reported, and reserved as a slice name."""


# -- interactions (CSR) ------------------------------------------------------------------
def _describe(value: Any) -> str:
    """dtype and shape of a tensor, else the type name (for error messages)."""
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} {tuple(value.shape)}"
    return type(value).__name__


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_tensor(value: Any, dtype: torch.dtype, shape: tuple[int, ...]) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == dtype and value.shape == shape


def _is_integer_tensor(value: Any) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and not (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool)
    )


def _long_vector(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, torch.Tensor) or value.dtype != torch.int64 or value.dim() != 1:
        raise BatchValidationError(
            f"Interactions.{attribute.name} must be a 1-D int64 tensor, got {_describe(value)}"
        )


def _non_negative_int(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not _is_int(value, 0):
        raise BatchValidationError(
            f"Interactions.{attribute.name} must be an int >= 0, got {value!r}"
        )


def _first(mask: torch.Tensor) -> int:
    """Index of the first True of a 1-D bool tensor (error paths only: syncs)."""
    return int(mask.nonzero()[0, 0])


@attrs.frozen(eq=False)
class Interactions:
    """A set of (query, item) pairs as CSR: the items of query ``q`` are
    ``items[indptr[q]:indptr[q + 1]]``, strictly increasing (so distinct).

    ``indptr``: ``LongTensor[Q + 1]`` from 0 to ``nnz``; ``items``: ``LongTensor[nnz]`` with
    ids in ``0 .. num_items - 1``. Construction validates everything (and syncs on an
    accelerator); build from pairs with `from_pairs`.
    """

    indptr: torch.Tensor = attrs.field(validator=_long_vector)
    items: torch.Tensor = attrs.field(validator=_long_vector)
    num_items: int = attrs.field(validator=_non_negative_int)

    def __attrs_post_init__(self) -> None:
        indptr, items = self.indptr, self.items
        if indptr.device != items.device:
            raise BatchValidationError(
                f"Interactions: indptr is on {indptr.device} but items on {items.device}"
            )
        nnz = items.numel()
        if indptr.numel() == 0 or int(indptr[0]) != 0 or int(indptr[-1]) != nnz:
            raise BatchValidationError(
                f"Interactions.indptr must run from 0 to len(items)={nnz}, "
                f"got {indptr[:1].tolist()} .. {indptr[-1:].tolist()}"
            )
        steps = indptr.diff()
        if bool((steps < 0).any()):
            q = _first(steps < 0)
            raise BatchValidationError(
                f"Interactions.indptr must be non-decreasing; "
                f"indptr[{q + 1}] = {int(indptr[q + 1])} < indptr[{q}] = {int(indptr[q])}"
            )
        out = (items < 0) | (items >= self.num_items)
        if bool(out.any()):
            k = _first(out)
            raise BatchValidationError(
                f"Interactions.items[{k}] = {int(items[k])} is out of range; expected an item id "
                f"in 0 .. {self.num_items - 1} (num_items={self.num_items})"
            )
        row_starts = torch.zeros(nnz, dtype=torch.bool, device=items.device)
        row_starts[indptr[:-1][steps > 0]] = True
        unordered = (items.diff() <= 0) & ~row_starts[1:]
        if bool(unordered.any()):
            k = _first(unordered) + 1
            raise BatchValidationError(
                f"Interactions.items must be strictly increasing within each query (distinct, "
                f"sorted); items[{k}] = {int(items[k])} follows {int(items[k - 1])} "
                f"in query {int(self.query_index()[k])}"
            )

    @classmethod
    def from_pairs(
        cls,
        query_ids: torch.Tensor,
        item_ids: torch.Tensor,
        num_queries: int,
        num_items: int | None = None,
    ) -> Interactions:
        """Pairs ``(query_ids[k], item_ids[k])`` (integer ``[nnz]`` each) as CSR; duplicate
        pairs collapse into one. Query ids must lie in ``0 .. num_queries - 1`` and item ids
        in ``0 .. num_items - 1`` (default ``num_items``: the largest id + 1).
        """
        who = "Interactions.from_pairs"
        for name, ids in (("query_ids", query_ids), ("item_ids", item_ids)):
            if not _is_integer_tensor(ids) or ids.dim() != 1:
                raise BatchValidationError(
                    f"{who}: {name} must be a 1-D integer tensor, got {_describe(ids)}"
                )
        if query_ids.shape != item_ids.shape or query_ids.device != item_ids.device:
            raise BatchValidationError(
                f"{who}: query_ids {tuple(query_ids.shape)} on {query_ids.device} and item_ids "
                f"{tuple(item_ids.shape)} on {item_ids.device} must match in length and device"
            )
        queries, items = query_ids.long(), item_ids.long()
        if num_items is None:
            num_items = int(items.max()) + 1 if items.numel() else 0
        for name, ids, size_name, size in (
            ("query_ids", queries, "num_queries", num_queries),
            ("item_ids", items, "num_items", num_items),
        ):
            if not _is_int(size, 0):
                raise BatchValidationError(f"{who}: {size_name} must be an int >= 0, got {size!r}")
            out = (ids < 0) | (ids >= size)
            if bool(out.any()):
                k = _first(out)
                raise BatchValidationError(
                    f"{who}: {name}[{k}] = {int(ids[k])} is out of range; "
                    f"expected 0 .. {size - 1} ({size_name}={size})"
                )
        order = torch.argsort(items, stable=True)
        order = order[torch.argsort(queries[order], stable=True)]
        queries, items = queries[order], items[order]
        keep = torch.ones_like(items, dtype=torch.bool)
        keep[1:] = (queries.diff() != 0) | (items.diff() != 0)
        queries, items = queries[keep], items[keep]
        counts = torch.bincount(queries, minlength=num_queries)
        indptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        return cls(indptr, items, num_items)

    @property
    def num_queries(self) -> int:
        return self.indptr.numel() - 1

    @property
    def nnz(self) -> int:
        return self.items.numel()

    @property
    def device(self) -> torch.device:
        return self.items.device

    def query_index(self) -> torch.Tensor:
        """``LongTensor[nnz]``: the query of each entry of ``items``."""
        counts = self.indptr.diff()
        queries = torch.arange(self.num_queries, device=self.device)
        return torch.repeat_interleave(queries, counts, output_size=self.nnz)

    def queries(self, start: int, stop: int) -> Interactions:
        """The pairs of queries ``start .. stop - 1``, renumbered from 0."""
        begin, end = int(self.indptr[start]), int(self.indptr[stop])
        return Interactions(self.indptr[start : stop + 1] - begin, self.items[begin:end], self.num_items)

    def to(self, device: torch.device | str) -> Interactions:
        """The same pairs on `device` (self when already there)."""
        if torch.device(device) == self.device:
            return self
        return Interactions(self.indptr.to(device), self.items.to(device), self.num_items)


# -- results -------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class SliceMetrics:
    """Metrics of one slice: ``recall[j]`` and ``ndcg[j]`` are for ``ks[j]`` of the parent
    `RetrievalMetrics`; ``num_queries`` is the ``n`` they average over."""

    num_queries: int
    num_interactions: int
    recall: tuple[float, ...] = attrs.field(converter=tuple)
    ndcg: tuple[float, ...] = attrs.field(converter=tuple)


def _check_ks(ks: tuple[int, ...]) -> None:
    if not ks or not all(_is_int(k, 1) for k in ks) or len(set(ks)) != len(ks):
        raise ConfigError(f"ks must be distinct positive ints, got {ks!r}")


@attrs.frozen
class RetrievalMetrics:
    """Recall@K and NDCG@K for each K in `ks`, per slice (``"all"`` first)."""

    ks: tuple[int, ...] = attrs.field(
        converter=tuple, validator=lambda _self, _attribute, ks: _check_ks(ks)
    )
    slices: Mapping[str, SliceMetrics] = attrs.field(converter=lambda m: MappingProxyType(dict(m)))

    def __attrs_post_init__(self) -> None:
        for name, metrics in self.slices.items():
            if len(metrics.recall) != len(self.ks) or len(metrics.ndcg) != len(self.ks):
                raise ConfigError(
                    f"slice {name!r}: expected one recall and one ndcg per k in {self.ks}"
                )

    def recall(self, k: int, slice_name: str = ALL) -> float:
        """Recall@k of one slice (NaN when the slice has no test interaction)."""
        return self._slice(slice_name).recall[self._k_index(k)]

    def ndcg(self, k: int, slice_name: str = ALL) -> float:
        """NDCG@k of one slice (NaN when the slice has no test interaction)."""
        return self._slice(slice_name).ndcg[self._k_index(k)]

    def as_dict(self) -> dict[str, dict[str, float | int | None]]:
        """``{slice: {"recall@K": ..., "ndcg@K": ..., "n": queries, "n_interactions": ...}}``;
        NaN becomes None, so the result is strict JSON."""
        out: dict[str, dict[str, float | int | None]] = {}
        for name, metrics in self.slices.items():
            row: dict[str, float | int | None] = {}
            for k, recall, ndcg in zip(self.ks, metrics.recall, metrics.ndcg):
                row[f"recall@{k}"] = None if math.isnan(recall) else recall
                row[f"ndcg@{k}"] = None if math.isnan(ndcg) else ndcg
            row["n"] = metrics.num_queries
            row["n_interactions"] = metrics.num_interactions
            out[name] = row
        return out

    def _slice(self, name: str) -> SliceMetrics:
        if name not in self.slices:
            raise UnknownNameError("metrics slice", name, self.slices)
        return self.slices[name]

    def _k_index(self, k: int) -> int:
        if k not in self.ks:
            raise UnknownNameError("k", str(k), map(str, self.ks))
        return self.ks.index(k)


# -- ranking -------------------------------------------------------------------------------
def _check_chunk(name: str, value: int) -> None:
    if not _is_int(value, 1):
        raise ConfigError(f"{name} must be a positive int, got {value!r}")


def _check_embeddings(query_emb: torch.Tensor, item_emb: torch.Tensor) -> None:
    for name, emb in (("query_emb", query_emb), ("item_emb", item_emb)):
        if not isinstance(emb, torch.Tensor) or emb.dim() != 2 or not emb.is_floating_point():
            raise BatchValidationError(
                f"{name} must be a 2-D floating tensor [rows, d], got {_describe(emb)}"
            )
    if query_emb.shape[1] != item_emb.shape[1] or query_emb.dtype != item_emb.dtype:
        raise BatchValidationError(
            f"query_emb {query_emb.dtype} {tuple(query_emb.shape)} and item_emb {item_emb.dtype} "
            f"{tuple(item_emb.shape)} must share the dtype and the embedding size d"
        )
    if query_emb.device != item_emb.device:
        raise BatchValidationError(
            f"query_emb is on {query_emb.device} but item_emb on {item_emb.device}"
        )
    for name, emb in (("query_emb", query_emb), ("item_emb", item_emb)):
        finite = torch.isfinite(emb).all(dim=1)
        if not bool(finite.all()):
            raise BatchValidationError(
                f"{name}[{_first(~finite)}] has a non-finite value (NaN or inf)"
            )


def _require_interactions(name: str, pairs: Any) -> Interactions:
    if not isinstance(pairs, Interactions):
        raise BatchValidationError(f"{name} must be an Interactions, got {type(pairs).__name__}")
    return pairs


def _check_interactions(name: str, pairs: Any, num_queries: int, num_items: int) -> None:
    if _require_interactions(name, pairs).num_queries != num_queries:
        raise BatchValidationError(
            f"{name} has {pairs.num_queries} queries but query_emb has {num_queries} rows"
        )
    if pairs.num_items > num_items:
        beyond = pairs.items >= num_items
        if bool(beyond.any()):
            k = _first(beyond)
            raise BatchValidationError(
                f"{name}.items[{k}] = {int(pairs.items[k])} (query {int(pairs.query_index()[k])}) "
                f"is out of range for item_emb with {num_items} rows"
            )
        raise BatchValidationError(
            f"{name} is declared over num_items={pairs.num_items} items but item_emb has "
            f"{num_items} rows"
        )


def exclude_scores(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> None:
    """Leave pairs out of a chunk of scores: set ``scores[rows[p], cols[p]]`` to -inf in place
    for every pair with ``0 <= cols[p] < width`` (``scores`` is ``[R, width]``, ``rows`` and
    ``cols`` ``LongTensor[P]``, ``cols`` relative to the chunk's first column); pairs outside
    the chunk leave it unchanged (they add 0 at a clamped column). No host sync. The ranking
    here and exact top-k (`augkit.serving.topk`) exclude items through it."""
    width = scores.shape[1]
    inside = (cols >= 0) & (cols < width)
    penalty = torch.where(inside, -torch.inf, 0.0).to(scores.dtype)
    scores.index_put_((rows, cols.clamp(0, width - 1)), penalty, accumulate=True)


def _positive_scores(
    queries: torch.Tensor,
    item_emb: torch.Tensor,
    rows: torch.Tensor,
    positives: torch.Tensor,
    width: int,
) -> torch.Tensor:
    """``[P, 1]`` scores of ``(queries[rows[p]], positives[p])`` from matrix products of at
    most `width` columns, like the competitors' scores."""
    parts = []
    for j0 in range(0, positives.numel(), width):
        block = queries @ item_emb[positives[j0 : j0 + width]].T
        pair = torch.arange(block.shape[1], device=block.device)
        parts.append(block[rows[j0 : j0 + width], pair])
    return torch.cat(parts)[:, None]


def rank_test_items(
    query_emb: torch.Tensor,
    item_emb: torch.Tensor,
    test: Interactions,
    exclude: Interactions | None = None,
    *,
    query_chunk: int = 1024,
    item_chunk: int = 65536,
) -> torch.Tensor:
    """``LongTensor[test.nnz, 2]``: for every test interaction, in ``test.items`` order, the
    number of candidates scoring strictly more than the test item (column 0, ``g``) and
    exactly as much (column 1, ``t``), on the embeddings' device. Its rank under random
    tie-breaking is ``g + U``, ``U`` uniform on ``0 .. t`` (module docstring);
    `metrics_from_ranks` takes the expectation. ``g`` alone is the optimistic rank, ``g + t``
    the pessimistic one.

    `query_emb` is ``[Q, d]`` and `item_emb` ``[N, d]`` (same floating dtype and device);
    `test` and `exclude` have Q queries and item ids below N. At most `query_chunk` test
    interactions are ranked at a time against `item_chunk` items (about three
    ``query_chunk x item_chunk`` buffers).
    """
    _check_embeddings(query_emb, item_emb)
    _check_chunk("query_chunk", query_chunk)
    _check_chunk("item_chunk", item_chunk)
    num_queries, num_items = query_emb.shape[0], item_emb.shape[0]
    _check_interactions("test", test, num_queries, num_items)
    device = query_emb.device
    if exclude is None:
        empty_rows = torch.zeros(num_queries + 1, dtype=torch.long, device=device)
        exclude = Interactions(empty_rows, empty_rows[:0], 0)
    _check_interactions("exclude", exclude, num_queries, num_items)
    test, exclude = test.to(device), exclude.to(device)

    ranks = torch.zeros(test.nnz, 2, dtype=torch.long, device=device)
    test_query, exclude_query = test.query_index(), exclude.query_index()
    starts = list(range(0, test.nnz, query_chunk))
    ends = [min(start + query_chunk, test.nnz) for start in starts]
    # One host sync for the whole plan: each chunk's query range, exclusion range, and whether
    # its test interactions are its queries in order (one each: no copy of score rows needed).
    first = test_query[torch.tensor(starts, dtype=torch.long, device=device)]
    stop = test_query[torch.tensor(ends, dtype=torch.long, device=device) - 1] + 1
    chunk = torch.arange(test.nnz, device=device) // query_chunk
    offset = torch.arange(test.nnz, device=device) - chunk * query_chunk
    misaligned = torch.zeros_like(first).index_add_(0, chunk, (test_query - first[chunk] != offset).long())
    plan = torch.stack([first, stop, exclude.indptr[first], exclude.indptr[stop], misaligned], 1).tolist()
    block = _row_block(device, min(item_chunk, num_items))
    scores = query_emb.new_empty(0)
    for p0, p1, (q0, q1, e0, e1, shuffled) in zip(starts, ends, plan):
        queries = query_emb[q0:q1]
        rows = test_query[p0:p1] - q0
        positives = test.items[p0:p1]
        positive_scores = _positive_scores(queries, item_emb, rows, positives, item_chunk)
        excluded_rows, excluded_items = exclude_query[e0:e1] - q0, exclude.items[e0:e1]
        for i0 in range(0, num_items, item_chunk):
            scores = _scores_into(scores, queries, item_emb[i0 : i0 + item_chunk])
            exclude_scores(scores, excluded_rows, excluded_items - i0)
            for r0 in range(0, p1 - p0, block):
                r1 = min(r0 + block, p1 - p0)
                # each score row serves one test interaction when aligned, so it may be overwritten
                part = scores.index_select(0, rows[r0:r1]) if shuffled else scores[r0:r1]
                counts = _above_and_tied(part, positive_scores[r0:r1], positives[r0:r1] - i0)
                ranks[p0 + r0 : p0 + r1] += counts
    return ranks


CACHE_SCORES = 1 << 18
"""Scores per block of test interactions on a CPU (1 MiB of float32): a block stays in cache
through its comparisons."""
EXACT_SIGN_SUM = 1 << 24
"""Sums of ±1 in float32 are exact integers below this (`_above_and_tied`)."""


def _row_block(device: torch.device, width: int) -> int:
    """Test interactions compared at a time against a chunk `width` items wide: a cache's worth
    on a CPU, every one at once on an accelerator (where each launch costs more than memory)."""
    if device.type != "cpu":
        return 1 << 62
    return max(1, CACHE_SCORES // width)


def _above_and_tied(part: torch.Tensor, positive_scores: torch.Tensor, own_columns: torch.Tensor) -> torch.Tensor:
    """``LongTensor[R, 2]``: per row of the scores `part` ``[R, W]`` (overwritten), the
    columns scoring strictly more than the row's positive (``positive_scores`` ``[R, 1]``) and
    exactly as much, leaving out the positive's own column (`own_columns` ``[R]``, relative to
    the chunk; one outside it leaves the row whole).

    On a CPU, from the signs of the differences (two float sums, about three times faster than
    two boolean comparisons there): ``sum(sign) = above - below`` and ``sum(|sign|) = above +
    below``, exact integers for ``W < 2**24``; a NaN difference (a NaN score from an overflowing
    product, or an infinite score equal to the positive) falls back to the comparisons, as does an accelerator."""
    rows, width = part.shape
    pair = torch.arange(rows, device=part.device)
    if part.device.type == "cpu" and part.dtype in (torch.float32, torch.float64) and width < EXACT_SIGN_SUM:
        sign = torch.sub(part, positive_scores)
        exclude_scores(sign, pair, own_columns)
        if not bool(sign.sum(1).isnan().any()):  # sign() takes NaN to 0, which would read as tied
            difference = sign.sign_().sum(1)
            unequal = sign.abs_().sum(1)
            return torch.stack([(unequal + difference) / 2, width - unequal], 1).long()
    exclude_scores(part, pair, own_columns)
    # int32 counts (at most W each) are much faster than int64 on CPU.
    above = (part > positive_scores).sum(1, dtype=torch.int32)
    return torch.stack([above, (part == positive_scores).sum(1, dtype=torch.int32)], 1).long()


def _scores_into(buffer: torch.Tensor, queries: torch.Tensor, corpus: torch.Tensor) -> torch.Tensor:
    """``queries @ corpus.T`` written into `buffer` when it has that shape (fresh memory costs a
    page fault per 4 KiB on a CPU), else into a new tensor."""
    shape = (queries.shape[0], corpus.shape[0])
    if buffer.shape != shape:
        buffer = queries.new_empty(shape)
    return torch.mm(queries, corpus.T, out=buffer)


# -- aggregation ---------------------------------------------------------------------------
def _check_slices(
    slices: Mapping[str, torch.Tensor] | None, num_items: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """``"all"`` then the given item masks, on `device`."""
    out = {ALL: torch.ones(num_items, dtype=torch.bool, device=device)}
    for name, mask in (slices or {}).items():
        if not isinstance(name, str) or name == ALL:
            raise ConfigError(
                f"slice names must be strings other than {ALL!r} (always reported), got {name!r}"
            )
        if not _is_tensor(mask, torch.bool, (num_items,)):
            raise BatchValidationError(
                f"slice {name!r} must be a BoolTensor[{num_items}] over items, "
                f"got {_describe(mask)}"
            )
        out[name] = mask.to(device)
    return out


def _per_query_sum(values: torch.Tensor, indptr: torch.Tensor) -> torch.Tensor:
    """Sum of `values` ``[nnz]`` over each query's CSR segment, deterministically."""
    totals = torch.cat([values.new_zeros(1), values.cumsum(0)])
    return totals[indptr[1:]] - totals[indptr[:-1]]


def metrics_from_ranks(
    ranks: torch.Tensor,
    test: Interactions,
    *,
    num_items: int,
    ks: Sequence[int] = DEFAULT_KS,
    slices: Mapping[str, torch.Tensor] | None = None,
) -> RetrievalMetrics:
    """Recall@K and NDCG@K (module docstring) from `rank_test_items` output: the expectation
    under uniformly random tie-breaking.

    `ranks` is ``LongTensor[test.nnz, 2]`` (``g``, ``t``: candidates strictly above and tied,
    as `rank_test_items` returns) or ``LongTensor[test.nnz]`` of exact ranks (no ties, i.e.
    ``t = 0``); each slice a ``BoolTensor[num_items]`` item mask. The ``"all"`` slice is
    added first. One host sync, at the end.
    """
    ks = tuple(ks)
    _check_ks(ks)
    if _is_tensor(ranks, torch.long, (test.nnz,)):
        ranks = torch.stack([ranks, torch.zeros_like(ranks)], 1)
    if not _is_tensor(ranks, torch.long, (test.nnz, 2)):
        raise BatchValidationError(
            f"ranks must be a LongTensor[{test.nnz}, 2] (candidates above and tied, one row per "
            f"test interaction) or a LongTensor[{test.nnz}] of exact ranks, got {_describe(ranks)}"
        )
    if test.num_items > num_items:
        raise BatchValidationError(
            f"test is declared over num_items={test.num_items} items but num_items is {num_items}"
        )
    device = ranks.device
    masks = _check_slices(slices, num_items, device)
    test = test.to(device)
    above, tied = ranks[:, 0], ranks[:, 1]
    positions = torch.arange(max(ks), device=device, dtype=torch.float64)
    ideal = (1.0 / torch.log2(positions + 2.0)).cumsum(0)
    prefix = torch.cat([ideal.new_zeros(1), ideal])  # C[r]: the discounts of ranks 0 .. r - 1
    outcomes = (tied + 1).double()  # the test item's rank is uniform on above .. above + tied
    summary = []
    for mask in masks.values():
        member = mask[test.items]
        n_test = _per_query_sum(member.long(), test.indptr)
        counted = n_test > 0
        n_queries = counted.sum()
        for k in ks:
            hit = ((k - above).clamp(0).minimum(tied + 1).double() / outcomes).where(member, 0.0)
            gain = (prefix[(above + tied + 1).clamp(max=k)] - prefix[above.clamp(max=k)]) / outcomes
            recall = _per_query_sum(hit, test.indptr) / n_test.clamp(min=1)
            dcg = _per_query_sum(gain.where(member, 0.0), test.indptr)
            ndcg = dcg / ideal[n_test.clamp(1, k) - 1]
            summary += [
                torch.where(counted, recall, 0.0).sum() / n_queries,
                torch.where(counted, ndcg, 0.0).sum() / n_queries,
            ]
        summary += [n_queries, member.sum()]
    values = torch.stack([value.double() for value in summary]).tolist()
    width = 2 * len(ks) + 2
    results = {}
    for j, name in enumerate(masks):
        row = values[j * width : (j + 1) * width]
        results[name] = SliceMetrics(
            num_queries=int(row[-2]),
            num_interactions=int(row[-1]),
            recall=row[0:-2:2],
            ndcg=row[1:-2:2],
        )
    return RetrievalMetrics(ks, results)


# -- entry points --------------------------------------------------------------------------
def evaluate(
    query_emb: torch.Tensor,
    item_emb: torch.Tensor,
    test: Interactions,
    exclude: Interactions | None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    slices: Mapping[str, torch.Tensor] | None = None,
    query_chunk: int = 1024,
    item_chunk: int = 65536,
) -> RetrievalMetrics:
    """Full-corpus Recall@K and NDCG@K of dot-product retrieval, per slice.

    `query_emb` ``[Q, d]``, `item_emb` ``[N, d]``; `test` and `exclude` (usually the training
    interactions; None for none) over Q queries and N items; `slices` maps names to
    ``BoolTensor[N]`` item masks (see `popularity_slices`). Runs on the embeddings' device.
    """
    ks = tuple(ks)
    _check_ks(ks)
    ranks = rank_test_items(
        query_emb, item_emb, test, exclude, query_chunk=query_chunk, item_chunk=item_chunk
    )
    return metrics_from_ranks(ranks, test, num_items=item_emb.shape[0], ks=ks, slices=slices)


def rank_across_processes(
    query_emb: torch.Tensor,
    item_emb: torch.Tensor,
    test: Interactions,
    exclude: Interactions | None,
    **chunks: int,
) -> torch.Tensor:
    """`rank_test_items` with the queries sharded over a torch.distributed process group:
    each rank ranks a contiguous part of the queries and the ranks are gathered, so every
    process gets the same ``LongTensor[test.nnz, 2]`` one process would. Without a process
    group, `rank_test_items` itself. Every rank passes the full arguments."""
    if not distributed.is_distributed():
        return rank_test_items(query_emb, item_emb, test, exclude, **chunks)
    world, me = distributed.world_size(), distributed.rank()
    bounds = torch.linspace(0, query_emb.shape[0], world + 1).round().long().tolist()
    pairs = test.indptr[bounds].diff().tolist()
    q0, q1 = bounds[me], bounds[me + 1]
    local = rank_test_items(
        query_emb[q0:q1], item_emb, test.queries(q0, q1), None if exclude is None else exclude.queries(q0, q1), **chunks
    )
    return distributed.all_gather(local, pairs)


def top_popular(
    train_counts: torch.Tensor,
    test: Interactions,
    exclude: Interactions | None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    slices: Mapping[str, torch.Tensor] | None = None,
    query_chunk: int = 1024,
    item_chunk: int = 65536,
) -> RetrievalMetrics:
    """The TopPopular reference: every query scores item j as ``train_counts[j]``
    (``LongTensor[N]``), evaluated exactly like `evaluate` (float64 scores, so counts tie
    exactly). Runs on `train_counts`' device."""
    counts = _check_counts(train_counts).double()
    num_queries = _require_interactions("test", test).num_queries
    queries = torch.ones(num_queries, 1, dtype=torch.float64, device=counts.device)
    return evaluate(
        queries,
        counts[:, None],
        test,
        exclude,
        ks=ks,
        slices=slices,
        query_chunk=query_chunk,
        item_chunk=item_chunk,
    )


# -- popularity slices ---------------------------------------------------------------------
def _check_counts(train_counts: torch.Tensor) -> torch.Tensor:
    if not _is_integer_tensor(train_counts) or train_counts.dim() != 1:
        raise BatchValidationError(
            f"train_counts must be a 1-D integer tensor [N], got {_describe(train_counts)}"
        )
    negative = train_counts < 0
    if bool(negative.any()):
        j = _first(negative)
        raise BatchValidationError(f"train_counts[{j}] = {int(train_counts[j])} is negative")
    return train_counts


def _popularity_rank(train_counts: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Each item's position by training count, most popular first (ties: lower id first),
    and the number of warm items (count > 0), which hold ranks ``0 .. warm - 1``."""
    order = torch.argsort(_check_counts(train_counts), descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return rank, int((train_counts > 0).sum())


def popularity_slices(
    train_counts: torch.Tensor, head_fraction: float = 0.2
) -> dict[str, torch.Tensor]:
    """``{"head", "tail", "cold"}`` item masks (``BoolTensor[N]``) from ``LongTensor[N]`` counts.

    cold: count 0. head: the ``ceil(head_fraction * warm)`` warm items with the largest
    counts, ties to the lower id (for 0.2 exactly deciles 0 and 1 of `popularity_deciles`).
    tail: the other warm items.
    """
    if (
        isinstance(head_fraction, bool)
        or not isinstance(head_fraction, (int, float))
        or not 0.0 <= head_fraction <= 1.0
    ):
        raise ConfigError(f"head_fraction must be a number in [0, 1], got {head_fraction!r}")
    rank, warm = _popularity_rank(train_counts)
    # Fraction of the decimal text: 0.2 * 30 is exactly 6, not 6.000000000000001.
    head_size = math.ceil(Fraction(repr(float(head_fraction))) * warm)
    cold = train_counts == 0
    head = rank < head_size
    return {"head": head, "tail": ~head & ~cold, "cold": cold}


def popularity_deciles(train_counts: torch.Tensor) -> torch.Tensor:
    """``LongTensor[N]``: decile 0 (most popular) .. 9 of each warm item by training count
    (``10 * rank // warm``, rank as in `popularity_slices`), -1 for cold items."""
    rank, warm = _popularity_rank(train_counts)
    return torch.where(train_counts > 0, 10 * rank // max(warm, 1), -1)

"""Exact top-k by inner product over the whole corpus, in chunks.

Memory is bounded by ``query_chunk x item_chunk`` scores, not by queries x items; excluded
items are left out of each chunk with `augkit.metrics.exclude_scores`, as the evaluation
leaves out each user's training items.
"""

from __future__ import annotations

import torch

from augkit.metrics import exclude_scores

QUERY_CHUNK = 1024
ITEM_CHUNK = 65536


def chunked_top_k(
    queries: torch.Tensor,
    items: torch.Tensor,
    k: int,
    *,
    exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
    query_chunk: int = QUERY_CHUNK,
    item_chunk: int = ITEM_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-`k` by inner product of ``queries [Q, d]`` over ``items [N, d]``, both on one
    device: ``(scores [Q, k], ids [Q, k])``, best first. Scores ``query_chunk x item_chunk`` at a
    time, keeping a running top-`k` per query, so memory is bounded by the chunks, not Q x N.
    `exclude` = ``(rows, ids)`` pairs left out (rows increasing); empty ranks: id -1, -inf."""
    device = items.device
    num_queries, num_items = queries.shape[0], items.shape[0]
    k = min(k, num_items)
    out_scores = torch.empty(num_queries, k, dtype=items.dtype, device=device)
    out_ids = torch.empty(num_queries, k, dtype=torch.long, device=device)
    rows = cols = None
    if exclude is not None:
        rows, cols = (t.to(device) for t in exclude)
        bounds = torch.searchsorted(rows, torch.arange(0, num_queries + query_chunk, query_chunk, device=device))
        bounds = bounds.tolist()
    for c, q0 in enumerate(range(0, num_queries, query_chunk)):
        block = queries[q0 : q0 + query_chunk]
        best_s = torch.empty(block.shape[0], 0, dtype=items.dtype, device=device)
        best_i = torch.empty(block.shape[0], 0, dtype=torch.long, device=device)
        if rows is not None:
            r_block, c_block = rows[bounds[c] : bounds[c + 1]] - q0, cols[bounds[c] : bounds[c + 1]]
        for i0 in range(0, num_items, item_chunk):
            scores = block @ items[i0 : i0 + item_chunk].T
            if rows is not None:
                exclude_scores(scores, r_block, c_block - i0)
            ids = torch.arange(i0, i0 + scores.shape[1], device=device).expand_as(scores)
            merged_s, merged_i = torch.cat([best_s, scores], 1), torch.cat([best_i, ids], 1)
            top = merged_s.topk(min(k, merged_s.shape[1]), dim=1)
            best_s, best_i = top.values, merged_i.gather(1, top.indices)
        out_scores[q0 : q0 + block.shape[0]] = best_s
        out_ids[q0 : q0 + block.shape[0]] = torch.where(torch.isneginf(best_s), -1, best_i)
    return out_scores, out_ids

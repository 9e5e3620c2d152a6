"""What a trained run answers: `Embeddings` keyed by raw key and ranked `Recommendations`."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from augkit.data.keys import KeyIndex, UnknownKeyError


@attrs.frozen(eq=False)
class Embeddings:
    """``vectors[i]`` (``FloatTensor[n, d]``) is the embedding of raw key ``keys[i]``."""

    keys: tuple[Any, ...] = attrs.field(converter=tuple)
    vectors: torch.Tensor

    def __len__(self) -> int:
        return len(self.keys)

    def vector(self, key: Any) -> torch.Tensor:
        """``FloatTensor[d]``: the embedding of `key`."""
        index = KeyIndex("key", "these embeddings", self.keys).find(key)
        if index is None:
            raise UnknownKeyError("embedding", key, KeyIndex("embedding", "these embeddings", self.keys))
        return self.vectors[index]

    def as_dict(self) -> dict[Any, torch.Tensor]:
        """``{key: FloatTensor[d]}``."""
        return dict(zip(self.keys, self.vectors, strict=True))


@attrs.frozen(eq=False)
class Recommendations:
    """The top items of each query, best first.

    ``queries[q]`` is the key asked for (a user for `Run.recommend`, an item for
    `Run.similar_items`); ``items[q][r]`` the raw item key at rank ``r``, ``scores[q, r]`` its
    score (``FloatTensor[Q, k]``), ``titles[q][r]`` its title (``titles`` is ``None`` when the
    data set has no titles, an entry ``None`` for an item without one: a tables source's
    items have the ``title`` column of an item file). Where fewer than ``k`` items are left after the exclusions, the missing ranks hold
    ``None`` with score ``-inf``.
    """

    queries: tuple[Any, ...] = attrs.field(converter=tuple)
    items: tuple[tuple[Any, ...], ...] = attrs.field(converter=tuple)
    scores: torch.Tensor
    titles: tuple[tuple[str | None, ...], ...] | None = None

    def __len__(self) -> int:
        return len(self.queries)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per (query, rank): ``query``, ``rank`` (1 = best), ``item``, ``score`` and,
        with titles, ``title``; padding ranks left out."""
        out = []
        scores = self.scores.tolist()
        for q, query in enumerate(self.queries):
            for r, item in enumerate(self.items[q]):
                if item is None:
                    continue
                row = {"query": query, "rank": r + 1, "item": item, "score": scores[q][r]}
                if self.titles is not None:
                    row["title"] = self.titles[q][r]
                out.append(row)
        return out

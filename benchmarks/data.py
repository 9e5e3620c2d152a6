"""Synthetic, seeded inputs of the benchmark cases (never the data sets in shared/)."""

from __future__ import annotations

import attrs
import torch

from augkit import Categorical, Dense, FeatureBatch, FeatureSchema, MultiCategorical
from augkit.metrics import Interactions

EMBEDDING_DIM = 64
EXCLUDED_PER_QUERY = 10
QUERY_NOISE = 0.3
"""Per-dimension noise added to a query's test item: Recall@100 is about 0.5 at 1e5 items."""


def _noisy(base: torch.Tensor, num_values: int, flip: float, generator: torch.Generator) -> torch.Tensor:
    """``base % num_values``, replaced by a uniform id with probability `flip`."""
    uniform = torch.randint(num_values, base.shape, generator=generator)
    replaced = torch.rand(base.shape, generator=generator) < flip
    return torch.where(replaced, uniform, base % num_values)


def _skewed(size: int, num_values: int, generator: torch.Generator) -> torch.Tensor:
    """Ids ``0 .. num_values-1`` with small ids more frequent (density ~ 1/sqrt(id))."""
    return (torch.rand(size, generator=generator).square() * num_values).long()


def _bags(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``ids`` ``[B, L]`` with the slots at or beyond ``lengths[b]`` set to -1 (padding)."""
    slots = torch.arange(ids.shape[1])
    return torch.where(slots < lengths[:, None], ids, -1)


def augmentation_schema() -> FeatureSchema:
    """The case-1 schema: item id, 3 categorical, 3 bags of max_len 16, one dense of dim 32."""
    return FeatureSchema(
        [
            Categorical(name="item_id", num_values=100_000),
            Categorical(name="brand", num_values=1_000),
            Categorical(name="category", num_values=100),
            Categorical(name="price_bucket", num_values=20),
            MultiCategorical(name="tags", num_values=5_000, max_len=16),
            MultiCategorical(name="genres", num_values=50, max_len=16),
            MultiCategorical(name="keywords", num_values=20_000, max_len=16),
            Dense(name="embedding", dim=32),
        ]
    )


def augmentation_items(size: int, generator: torch.Generator) -> FeatureBatch:
    """`size` items of `augmentation_schema` with correlated features; bag lengths are uniform
    on 0..16, so about 6% of each bag feature is missing."""
    schema = augmentation_schema()
    brand = _skewed(size, 1_000, generator)
    category = _noisy(brand // 10, 100, 0.2, generator)
    width = (size, 16)

    def lengths() -> torch.Tensor:
        return torch.randint(17, (size,), generator=generator)

    tags = _noisy(
        category[:, None] * 50 + torch.randint(50, width, generator=generator), 5_000, 0.3, generator
    )
    genres = _noisy(category[:, None] // 2 + torch.randint(3, width, generator=generator), 50, 0.3, generator)
    values = {
        "item_id": torch.randint(100_000, (size,), generator=generator),
        "brand": brand,
        "category": category,
        "price_bucket": _noisy(category // 5, 20, 0.5, generator),
        "tags": _bags(tags, lengths()),
        "genres": _bags(genres, lengths()),
        "keywords": _bags(torch.randint(20_000, width, generator=generator), lengths()),
        "embedding": torch.randn(size, 32, generator=generator),
    }
    return FeatureBatch.from_tensors(schema, values)


SINGLE_VALUED = (
    ("brand", 10_000),
    ("maker", 1_000),
    ("category", 100),
    ("segment", 10),
    ("colour", 50),
    ("size", 20),
    ("store", 5_000),
    ("region", 200),
)
"""The 8 single-valued features of the mutual-information tables (name, vocabulary size)."""

BAG = MultiCategorical(name="tags", num_values=1_000, max_len=8)
"""The multi-valued feature of the multi-valued mutual-information case."""


def item_table(size: int, generator: torch.Generator, *, with_bag: bool = False) -> FeatureBatch:
    """`size` items of the 8 `SINGLE_VALUED` features (chains of noisy copies: brand ->
    maker -> category -> segment, colour -> size, store -> region), plus `BAG` (ids following
    the category, 0..8 values, so about 11% missing) when `with_bag`."""
    specs: list[Categorical | MultiCategorical] = [
        Categorical(name=name, num_values=v) for name, v in SINGLE_VALUED
    ]
    brand = _skewed(size, 10_000, generator)
    maker = _noisy(brand // 10, 1_000, 0.2, generator)
    category = _noisy(maker // 10, 100, 0.3, generator)
    colour = torch.randint(50, (size,), generator=generator)
    store = torch.randint(5_000, (size,), generator=generator)
    values: dict[str, torch.Tensor] = {
        "brand": brand,
        "maker": maker,
        "category": category,
        "segment": _noisy(category // 10, 10, 0.4, generator),
        "colour": colour,
        "size": _noisy(colour, 20, 0.3, generator),
        "store": store,
        "region": _noisy(store // 25, 200, 0.5, generator),
    }
    if with_bag:
        specs.append(BAG)
        width = (size, BAG.max_len)
        tags = _noisy(
            category[:, None] * 10 + torch.randint(10, width, generator=generator), 1_000, 0.3, generator
        )
        values[BAG.name] = _bags(tags, torch.randint(BAG.max_len + 1, (size,), generator=generator))
    return FeatureBatch.from_tensors(FeatureSchema(specs), values)


@attrs.frozen(eq=False)
class RetrievalProblem:
    """Normalised embeddings ``query_emb`` ``[Q, 64]`` and ``item_emb`` ``[N, 64]``; one test
    item per query (``test_items`` ``LongTensor[Q]``, a noisy copy of the query) and
    `EXCLUDED_PER_QUERY` training items per query (``excluded_items`` ``LongTensor[Q, E]``,
    never the test item), also as CSR `Interactions` ``test`` and ``exclude``."""

    query_emb: torch.Tensor
    item_emb: torch.Tensor
    test_items: torch.Tensor
    excluded_items: torch.Tensor
    test: Interactions
    exclude: Interactions


def retrieval_problem(queries: int, items: int, generator: torch.Generator) -> RetrievalProblem:
    """A seeded `RetrievalProblem` of `queries` x `items` (``items >= 2``)."""
    item_emb = torch.nn.functional.normalize(torch.randn(items, EMBEDDING_DIM, generator=generator), dim=1)
    test_items = torch.randint(items, (queries,), generator=generator)
    noise = QUERY_NOISE * torch.randn(queries, EMBEDDING_DIM, generator=generator)
    query_emb = torch.nn.functional.normalize(item_emb[test_items] + noise, dim=1)
    offsets = 1 + torch.randint(items - 1, (queries, EXCLUDED_PER_QUERY), generator=generator)
    excluded = (test_items[:, None] + offsets) % items
    query_ids = torch.arange(queries)
    return RetrievalProblem(
        query_emb=query_emb,
        item_emb=item_emb,
        test_items=test_items,
        excluded_items=excluded,
        test=Interactions.from_pairs(query_ids, test_items, queries, items),
        exclude=Interactions.from_pairs(
            query_ids.repeat_interleave(EXCLUDED_PER_QUERY), excluded.reshape(-1), queries, items
        ),
    )

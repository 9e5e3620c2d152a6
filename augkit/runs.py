"""A trained run as an object: recommend, embed, find similar items, embed new items from their
features, and export the towers, the item embeddings and a FAISS index for serving.

``load_run("runs/ml-100k")`` rebuilds the run's data, split and towers from the config saved in
its checkpoint (``best.pt`` when present, else ``checkpoint.pt``) and loads the weights. Every
key in and out is a raw key (table keys, MovieLens ids), never an internal index; a key the
run's data lacks is an `UnknownKeyError` naming it.

Scores are inner products of the towers' L2-normalised outputs (cosine similarities), computed
on the towers' device ``query_chunk x item_chunk`` at a time: memory is bounded by the chunk
sizes, not by users x items.
"""

from __future__ import annotations

import json
import math
import os
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from augkit.batch import FeatureBatch
from augkit.data.dataset import RecDataset
from augkit.data.keys import DataKeys, KeyIndex, UnknownKeyError
from augkit.data.sources import load_with_keys
from augkit.data.splits import Split
from augkit.errors import AugkitError, CheckpointError, ConfigError, RunDirectoryError, UnknownNameError
from augkit.random import generator_for
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, MultiCategorical
from augkit.towers import Tower

__all__ = [
    "ANN_TARGET_RECALL",
    "FLAT_MAX_ITEMS",
    "INDEX_TYPES",
    "Embeddings",
    "ExportReport",
    "Recommendations",
    "Run",
    "RunError",
    "UnknownKeyError",
    "UnknownValueError",
    "load_run",
]

QUERY_CHUNK = 1024
ITEM_CHUNK = 65536
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


class RunError(AugkitError, ValueError):
    """A trained run cannot answer a request: a bad ``k``, a run whose weights do not fit the
    model its config builds, an export directory that is in the way."""


class UnknownValueError(AugkitError, LookupError):
    """A feature value of a new item (`Run.embed_items`) that the run's vocabulary lacks."""


# -- results -----------------------------------------------------------------------------------
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
    score (``FloatTensor[Q, k]``), ``titles[q][r]`` its title (``None`` when the data set has no
    titles). Where fewer than ``k`` items are left after the exclusions, the missing ranks hold
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


# -- loading -----------------------------------------------------------------------------------
def _checkpoint_of(run_dir: Path, checkpoint: str | os.PathLike[str] | None) -> Path:
    from augkit.train.checkpoint import BEST_NAME, CHECKPOINT_NAME

    if checkpoint is not None:
        return Path(checkpoint)
    for name in (BEST_NAME, CHECKPOINT_NAME):
        if (run_dir / name).is_file():
            return run_dir / name
    raise CheckpointError(
        f"run directory {str(run_dir)!r} has no checkpoint: expected {BEST_NAME} or {CHECKPOINT_NAME} "
        "(written by `augkit train`)"
    )


def load_run(
    run_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
) -> Run:
    """The trained run in `run_dir` (a directory written by `augkit train`).

    The weights come from `checkpoint`, by default ``best.pt`` (the best validation epoch)
    when the run has one, else ``checkpoint.pt`` (the last step). The data, the split and the
    towers are rebuilt from the config saved in that checkpoint, deterministically from its
    seed; relative data paths resolve against the working directory, as in training.

    Errors: `RunDirectoryError` when `run_dir` is not a directory, `CheckpointError` when it
    has no checkpoint or the checkpoint is damaged, `RunError` when the weights do not fit the
    towers the config builds (a run of other data or another version), and the data loader's
    own errors naming the file at fault.
    """
    from augkit.train.checkpoint import load_checkpoint
    from augkit.train.config import config_from_dict
    from augkit.train.device import resolve_device
    from augkit.train.history import with_history
    from augkit.train.run import build_model, split_for

    target = resolve_device(str(device))  # a bad or absent device fails before any loading
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(
            f"run directory {str(run_dir)!r} does not exist or is not a directory; expected the "
            "<output_dir>/<name> folder `augkit train` wrote"
        )
    path = _checkpoint_of(run_dir, checkpoint)
    state = load_checkpoint(path, required=("model", "config"))
    if not isinstance(state["config"], str):
        raise CheckpointError(f"checkpoint {str(path)!r}: 'config' is not the run's config as TOML text")
    try:
        config = config_from_dict(tomllib.loads(state["config"]), source=f"{path} (config)")
    except tomllib.TOMLDecodeError as error:
        raise CheckpointError(f"checkpoint {str(path)!r}: its config is not valid TOML ({error})") from None
    except ConfigError as error:
        raise RunError(
            f"run {str(run_dir)!r} was written by an incompatible augkit: its config does not "
            f"load ({error})"
        ) from None
    try:
        dataset, keys = load_with_keys(config.data)
    except AugkitError as error:
        message = f"run {str(run_dir)!r}: cannot load its data ({error})"
        try:
            wrapped = type(error)(message)
        except TypeError:  # an error type with another signature (UnknownNameError)
            wrapped = RunError(message)
        raise wrapped from None
    split = split_for(config, dataset)
    queries = with_history(
        dataset.users, split.train, num_items=dataset.num_items, history_len=config.data.history_len
    )
    model = build_model(config, dataset.items, queries)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise RunError(
            f"checkpoint {str(path)!r} does not fit the towers its config builds on data set "
            f"{dataset.name!r} ({dataset.num_items} items, {dataset.num_users} users): was the data "
            f"changed since training? ({detail})"
        ) from None
    model.to(target).eval()
    step = state.get("step")
    return Run(
        run_dir=run_dir,
        checkpoint=path,
        step=step if isinstance(step, int) else None,
        config=config,
        dataset=dataset,
        split=split,
        queries=queries,
        model=model,
        keys=keys,
    )


def _as_keys(keys: Any) -> list[Any]:
    """A single key (int or text) or an iterable of keys, as a list."""
    if isinstance(keys, (str, bytes, int, np.integer)) or (isinstance(keys, torch.Tensor) and keys.ndim == 0):
        return [keys]
    return list(keys)


def _check_k(k: Any, num_items: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_items:
        raise RunError(f"k must be an int in 1..{num_items} (the run's items), got {k!r}")
    return k


# -- the run -----------------------------------------------------------------------------------
@attrs.define(eq=False)
class Run:
    """A trained run (see `load_run`): its config, data, split, towers and raw keys.

    ``queries`` are the query features of every user, as in training and evaluation: the user
    table plus ``history``, the user's last training items. "Seen" items are the user's
    training items; validation and test events stay held out, as in the run's evaluation.
    """

    run_dir: Path
    checkpoint: Path
    step: int | None
    config: Any
    dataset: RecDataset
    split: Split
    queries: FeatureBatch
    model: nn.ModuleDict
    keys: DataKeys
    _item_vectors: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _seen: tuple[torch.Tensor, torch.Tensor] | None = attrs.field(default=None, init=False, repr=False)
    _vocabularies: dict[str, KeyIndex] = attrs.field(factory=dict, init=False, repr=False)

    @property
    def query_tower(self) -> Tower:
        return self.model["query"]

    @property
    def item_tower(self) -> Tower:
        return self.model["item"]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # embeddings
    def served_items(self) -> FeatureBatch:
        """The item corpus as the run's evaluation embeds it: with ``eval.unseen_ids =
        "default"`` the ``item_id`` of every item never seen in training is missing (the
        default embedding, as for a new item); with ``"trained"`` the corpus as it is."""
        items = self.dataset.items
        if getattr(self.config.eval, "unseen_ids", "trained") == "trained" or "item_id" not in items.schema:
            return items
        counts = torch.bincount(self.split.train.items, minlength=self.dataset.num_items)
        mask = torch.zeros_like(items.present)
        mask[:, items.schema.index("item_id")] = counts.to(items.device) == 0
        return items.mask_features(mask)

    def _item_matrix(self) -> torch.Tensor:
        if self._item_vectors is None:
            from augkit.train.evaluation import embed

            self._item_vectors = embed(self.item_tower, self.served_items())
        return self._item_vectors

    def item_embeddings(self) -> Embeddings:
        """Every item's embedding (``[num_items, output_dim]``, on the towers' device), keyed by
        raw item key, in the order of ``keys.items``; items never seen in training embedded as
        the run's evaluation embeds them (`served_items`)."""
        return Embeddings(self.keys.items.keys, self._item_matrix())

    def _user_ids(self, user_keys: Any, where: str = "") -> torch.Tensor:
        return self.keys.users.index(_as_keys(user_keys), where=where)

    def _query_matrix(self, users: torch.Tensor) -> torch.Tensor:
        from augkit.train.evaluation import embed

        return embed(self.query_tower, self.queries.select(users))

    def query_embeddings(self, user_keys: Any) -> Embeddings:
        """The query tower's embedding of each user of `user_keys` (a key or an iterable of
        keys), from the user's features and training history."""
        users = self._user_ids(user_keys)
        return Embeddings(self.keys.users.key_of(users), self._query_matrix(users))

    # retrieval
    def search(
        self,
        vectors: torch.Tensor,
        k: int = 10,
        *,
        exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
        query_chunk: int = QUERY_CHUNK,
        item_chunk: int = ITEM_CHUNK,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-`k` items of query `vectors` (``FloatTensor[Q, d]``) over the whole corpus:
        ``(scores FloatTensor[Q, k], ids LongTensor[Q, k])``, internal ids, best first.

        ``exclude = (rows, items)`` (``LongTensor[P]`` each, rows increasing) leaves item
        ``items[p]`` out of the ranking of query ``rows[p]``; ranks left empty by exclusions
        hold id ``-1`` and score ``-inf``."""
        k = _check_k(k, self.dataset.num_items)
        return chunked_top_k(
            vectors.to(self.device),
            self._item_matrix(),
            k,
            exclude=exclude,
            query_chunk=query_chunk,
            item_chunk=item_chunk,
        )

    def _seen_csr(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._seen is None:
            from augkit.metrics import Interactions

            train = self.split.train
            pairs = Interactions.from_pairs(train.users, train.items, self.dataset.num_users, self.dataset.num_items)
            self._seen = (pairs.indptr, pairs.items)
        return self._seen

    def seen_items(self, user_keys: Any) -> list[tuple[Any, ...]]:
        """The raw keys of each user's training items (what ``exclude_seen`` leaves out)."""
        indptr, items = self._seen_csr()
        users = self._user_ids(user_keys)
        return [self.keys.items.key_of(items[indptr[u] : indptr[u + 1]]) for u in users.tolist()]

    def _exclusions(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, items) pairs: row q's training items, for the users `users` (queries in order)."""
        indptr, items = self._seen_csr()
        starts, counts = indptr[users], indptr[users + 1] - indptr[users]
        rows = torch.repeat_interleave(torch.arange(len(users)), counts)
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        cols = items[first + torch.arange(int(counts.sum()))]
        return rows, cols

    def _result(self, queries: Sequence[Any], scores: torch.Tensor, ids: torch.Tensor) -> Recommendations:
        ids = ids.cpu()
        item_keys = tuple(self.keys.items.key_of(row) for row in ids)
        titles = None
        if self.keys.titles is not None:
            names = self.keys.titles
            titles = tuple(tuple(None if i < 0 else names[i] for i in row.tolist()) for row in ids)
        return Recommendations(queries, item_keys, scores.cpu(), titles)

    def recommend(self, user_keys: Any, k: int = 10, *, exclude_seen: bool = True) -> Recommendations:
        """The top-`k` items of each user of `user_keys` (a key or an iterable of keys) over the
        full corpus, with scores; `exclude_seen` leaves out the user's training items."""
        users = self._user_ids(user_keys)
        exclude = self._exclusions(users) if exclude_seen else None
        scores, ids = self.search(self._query_matrix(users), k, exclude=exclude)
        return self._result(self.keys.users.key_of(users), scores, ids)

    def similar_items(self, item_keys: Any, k: int = 10) -> Recommendations:
        """The `k` items nearest each item of `item_keys` in the item tower's space (cosine),
        the item itself left out."""
        items = self.keys.items.index(_as_keys(item_keys))
        vectors = self._item_matrix()[items.to(self.device)]
        k = _check_k(k, self.dataset.num_items - 1) if self.dataset.num_items > 1 else _check_k(k, 0)
        scores, ids = self.search(vectors, k, exclude=(torch.arange(len(items)), items))
        return self._result(self.keys.items.key_of(items), scores, ids)

    # new items
    def _vocabulary(self, name: str) -> KeyIndex | None:
        if name not in self._vocabularies:
            values = self.keys.item_vocabularies.get(name)
            if values is None:
                return None
            self._vocabularies[name] = KeyIndex(f"value of feature {name!r}", self.dataset.name, values)
        return self._vocabularies[name]

    def encode_items(self, table: Any, *, unknown: str = "error") -> FeatureBatch:
        """New items' raw feature rows as a validated `FeatureBatch` over the item schema (what
        `embed_items` embeds); see `embed_items` for `table` and `unknown`."""
        if unknown not in ("error", "missing"):
            raise UnknownNameError("unknown-value policy", unknown, ("error", "missing"))
        columns = _columns(table)
        schema = self.dataset.items.schema
        for name in columns:
            if name not in schema:
                raise UnknownNameError("item feature", name, schema.names)
        sizes = {len(column) for column in columns.values()}
        if len(sizes) > 1:
            raise RunError(f"embed_items: the feature columns differ in length: { {n: len(c) for n, c in columns.items()} }")
        size = sizes.pop() if sizes else 0
        if size == 0:
            raise RunError("embed_items: the table has no rows")
        values = {spec.name: self._encode(spec, columns.get(spec.name), size, unknown) for spec in schema}
        return FeatureBatch.from_tensors(schema, values)

    def embed_items(self, table: Any, *, unknown: str = "error") -> torch.Tensor:
        """``FloatTensor[B, output_dim]``: the item tower's embedding of B new items given only
        their raw feature values (cold start from features).

        `table` is a mapping ``{feature: [value per item]}``, a sequence of ``{feature: value}``
        rows, or a `FeatureBatch` over the item schema. Values are raw, as in the data files:
        a categorical feature's value, a list of values for a multi-valued one, a number or a
        list of ``dim`` numbers for a dense one; ``None`` (or an absent feature) is missing and
        reads as the feature's default embedding. The item id is a raw item key: a key the
        run never saw, or none, reads as the default embedding, as an unseen item does in
        evaluation. A value that a feature's vocabulary lacks is an `UnknownValueError` naming
        it, or missing with ``unknown="missing"``. A column that is not an item feature is an
        `UnknownNameError` with the closest name.
        """
        from augkit.train.evaluation import embed

        batch = table if isinstance(table, FeatureBatch) else self.encode_items(table, unknown=unknown)
        return embed(self.item_tower, batch)

    def _encode(self, spec: Any, column: Sequence[Any] | None, size: int, unknown: str) -> np.ndarray:
        name = spec.name
        if isinstance(spec, Dense):
            out = np.zeros((size, spec.dim), dtype=np.float32)
            if column is None:
                return out
            for row, value in enumerate(column):
                if value is not None:
                    vector = np.atleast_1d(np.asarray(value, dtype=np.float32))
                    if vector.shape != (spec.dim,):
                        raise RunError(f"embed_items: feature {name!r}, row {row}: expected {spec.dim} number(s), got {value!r}")
                    out[row] = vector
            return out
        is_id = name == "item_id"
        vocabulary = self.keys.items if is_id else self._vocabulary(name)

        def one(row: int, value: Any) -> int:
            if value is None or (isinstance(value, str) and not value.strip()):
                return MISSING
            found = vocabulary.find(value) if vocabulary is not None else None
            if found is None and vocabulary is None and isinstance(value, (int, np.integer)):
                found = int(value) if 0 <= int(value) < spec.num_values else None
            if found is not None or is_id or unknown == "missing":
                return MISSING if found is None else found
            shown = vocabulary.keys[:8] if vocabulary is not None else ()
            raise UnknownValueError(
                f"embed_items: feature {name!r}, row {row}: value {value!r} is not in its vocabulary "
                f"({spec.num_values} values, e.g. {', '.join(map(repr, shown))}); pass "
                "unknown='missing' to read it as missing"
            )

        if isinstance(spec, Categorical):
            if column is None:
                return np.full(size, MISSING, dtype=np.int64)
            return np.array([one(r, v) for r, v in enumerate(column)], dtype=np.int64)
        out = np.full((size, spec.max_len), MISSING, dtype=np.int64)
        if column is None:
            return out
        for row, bag in enumerate(column):
            if bag is None:
                continue
            members = [bag] if isinstance(bag, (str, int, np.integer)) else list(bag)
            ids = sorted({i for i in (one(row, v) for v in members) if i != MISSING})
            if len(ids) > spec.max_len:
                raise RunError(
                    f"embed_items: feature {name!r}, row {row}: {len(ids)} values exceed its max_len {spec.max_len}"
                )
            out[row, : len(ids)] = ids
        return out

    # export
    def export(
        self,
        out: str | os.PathLike[str],
        *,
        format: str = "parquet",
        index: str | None = None,
        index_type: str = "auto",
        overwrite: bool = False,
    ) -> ExportReport:
        """Write the run for serving to directory `out` (see `ExportReport` for the files):
        item embeddings with their keys (``format="parquet"``: ``items.parquet``, needs pyarrow;
        ``"npy"``: ``item_embeddings.npy`` + ``item_keys.json``), the towers as `torch.export`
        programs with a manifest of their inputs, every user's query inputs, and with
        ``index="faiss"`` a FAISS index (``index_type``: one of `INDEX_TYPES`; ``auto`` is flat
        up to `FLAT_MAX_ITEMS` items, else IVF). `overwrite` replaces files of an earlier
        export; without it an `out` holding any is refused."""
        return export_run(self, Path(out), format=format, index=index, index_type=index_type, overwrite=overwrite)


def _columns(table: Any) -> dict[str, list[Any]]:
    """`table` (a mapping of columns, or a sequence of row mappings) as ``{name: column}``."""
    if isinstance(table, Mapping):
        out = {}
        for name, column in table.items():
            if isinstance(column, (str, bytes)) or not isinstance(column, Iterable):
                raise RunError(
                    f"embed_items: column {name!r} must be a list of values (one per item), got {column!r}"
                )
            out[str(name)] = list(column)
        return out
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # a pandas DataFrame
        return {str(name): list(table[name]) for name in table.columns}
    if isinstance(table, Iterable) and not isinstance(table, (str, bytes)):
        rows = list(table)
        if not all(isinstance(row, Mapping) for row in rows):
            raise RunError("embed_items: a table is a mapping of columns or a sequence of {feature: value} rows")
        names = list(dict.fromkeys(name for row in rows for name in row))
        return {str(name): [row.get(name) for row in rows] for name in names}
    raise RunError(f"embed_items: expected a mapping of columns, a sequence of rows or a FeatureBatch, got {type(table).__name__}")


# -- exact top-k -------------------------------------------------------------------------------
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
            if rows is not None and r_block.numel():
                inside = (c_block >= i0) & (c_block < i0 + scores.shape[1])
                scores[r_block[inside], c_block[inside] - i0] = -torch.inf
            ids = torch.arange(i0, i0 + scores.shape[1], device=device).expand_as(scores)
            merged_s, merged_i = torch.cat([best_s, scores], 1), torch.cat([best_i, ids], 1)
            top = merged_s.topk(min(k, merged_s.shape[1]), dim=1)
            best_s, best_i = top.values, merged_i.gather(1, top.indices)
        out_scores[q0 : q0 + block.shape[0]] = best_s
        out_ids[q0 : q0 + block.shape[0]] = torch.where(torch.isneginf(best_s), -1, best_i)
    return out_scores, out_ids


# -- torch.export ------------------------------------------------------------------------------
class FlatTower(nn.Module):
    """A `Tower` over plain tensors, for `torch.export`: ``forward(*inputs)`` takes, in order,
    each feature's value tensor (schema order), the ``present`` mask ``bool [B, k]``, then the
    ``kept`` mask ``bool [B, max_len]`` of each multi-valued feature (schema order); see
    `tower_inputs`."""

    def __init__(self, tower: Tower) -> None:
        super().__init__()
        self.tower = tower
        self.schema = tower.schema
        self.multi = tuple(tower.schema.multi_valued)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        names = self.schema.names
        values = dict(zip(names, inputs[: len(names)], strict=True))
        present = inputs[len(names)]
        kept = dict(zip(self.multi, inputs[len(names) + 1 :], strict=True))
        return self.tower(FeatureBatch(self.schema, values, present, kept))


def tower_inputs(schema: FeatureSchema) -> list[dict[str, Any]]:
    """The input signature of a `FlatTower` over `schema`: one entry per positional input with
    its ``name``, ``feature``, ``kind`` (``values``, ``present`` or ``kept``), ``dtype`` and
    ``shape`` (``"B"`` the batch size)."""
    out: list[dict[str, Any]] = []
    for spec in schema:
        if isinstance(spec, Dense):
            dtype, shape, note = "float32", ["B", spec.dim], "the vector; zeros where missing"
        elif isinstance(spec, MultiCategorical):
            dtype, shape = "int64", ["B", spec.max_len]
            note = f"ids 0..{spec.num_values - 1}, any id (e.g. 0) where not kept"
        else:
            dtype, shape, note = "int64", ["B"], f"id 0..{spec.num_values - 1}, any id (e.g. 0) where not present"
        out.append({"name": f"{spec.name}", "feature": spec.name, "kind": "values", "dtype": dtype, "shape": shape, "note": note})
    out.append({
        "name": "present", "feature": None, "kind": "present", "dtype": "bool", "shape": ["B", len(schema)],
        "note": "column j: feature j is present (False reads as its default embedding)",
    })
    for name in schema.multi_valued:
        spec = schema[name]
        out.append({
            "name": f"{name}.kept", "feature": name, "kind": "kept", "dtype": "bool", "shape": ["B", spec.max_len],
            "note": "False for padding; a bag with nothing kept reads as the default embedding",
        })
    return out


def flat_inputs(batch: FeatureBatch) -> list[torch.Tensor]:
    """The positional inputs of a `FlatTower` for `batch` (see `tower_inputs`)."""
    schema = batch.schema
    return [
        *(batch.values[name] for name in schema.names),
        batch.present,
        *(batch.kept[name] for name in schema.multi_valued),
    ]


def export_tower(tower: Tower, example: FeatureBatch, path: Path) -> list[dict[str, Any]]:
    """Export `tower` (in eval mode, on the CPU) with a dynamic batch size to `path` with
    `torch.export`; returns its input signature (`tower_inputs`). `example` needs 2+ rows."""
    flat = FlatTower(tower).eval()
    args = tuple(t.cpu() for t in flat_inputs(example))
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in args)
    with torch.no_grad():
        program = torch.export.export(flat, args, dynamic_shapes=(dynamic,))
    torch.export.save(program, str(path))
    return tower_inputs(tower.schema)


# -- FAISS -------------------------------------------------------------------------------------
def _faiss() -> Any:
    try:
        import faiss
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
      k-means trained on at
      most `IVF_TRAIN_PER_LIST` items per list drawn with a `torch.Generator` seeded by `seed`
      (and FAISS's clustering seed set to `seed`).
    * ``hnsw``: ``IndexHNSWFlat`` with ``M = 32``, ``efConstruction = 80``.

    For ``ivf`` and ``hnsw``, ``nprobe`` / ``efSearch`` doubles until Recall@`k` against
    `exact` (``[Q, k]`` exact top ids of the `calibration` queries) reaches `target` and
    `ANN_TARGET_SAME_TOP10` of the queries get the exact top-10, or the search is exhaustive. Returns ``(index, {"type", "nlist", "nprobe", "ef_search", ...})``.
    """
    faiss = _faiss()
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


# -- export ------------------------------------------------------------------------------------
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "export_report.json"
EXPORT_FILES = (
    "items.parquet", "item_embeddings.npy", "item_keys.json", "query_tower.pt2", "item_tower.pt2",
    "query_inputs.npz", "user_keys.json", "seen.npz", "items.faiss", MANIFEST_NAME, REPORT_NAME,
)
"""Every file an export may write."""
FORMATS = ("parquet", "npy")


@attrs.frozen(eq=False)
class ExportReport:
    """What `Run.export` wrote to ``directory`` and what it measured.

    Files: ``items.parquet`` (columns ``key``, ``title`` when the data has titles,
    ``embedding``: a list of ``output_dim`` float32) or ``item_embeddings.npy`` +
    ``item_keys.json``; ``query_tower.pt2`` and ``item_tower.pt2` (`torch.export` programs);
    ``query_inputs.npz`` (the query tower's inputs for every user, named as in the manifest)
    with ``user_keys.json`` (row u is user ``user_keys[u]``) and ``seen.npz`` (``indptr``,
    ``items``: each user's training items as CSR over item rows); ``items.faiss`` with
    ``index="faiss"``; ``manifest.json`` (inputs, outputs, files, index settings) and
    ``export_report.json`` (this report).

    ``report``: ``max_abs_diff`` (``{"query", "item"}``: the exported programs against the
    trained towers, on the test users and every item) and, with an index, ``index`` (its
    settings) and ``ann`` (`ann_report`): the index's settings are calibrated on a seeded half
    of the run's test users (`calibration_split`) and its recall reported on the other half.
    """

    directory: Path
    files: tuple[str, ...]
    report: dict[str, Any]


def _json_key(key: Any) -> Any:
    return key.item() if hasattr(key, "item") else key


def export_run(
    run: Run, out: Path, *, format: str = "parquet", index: str | None = None, index_type: str = "auto", overwrite: bool = False
) -> ExportReport:
    """`Run.export`."""
    if format not in FORMATS:
        raise UnknownNameError("export format", format, FORMATS)
    if index not in (None, "faiss"):
        raise UnknownNameError("index", index, ("faiss",))
    if index is not None:
        _faiss()
        choose_index_type(run.dataset.num_items, index_type)
    if format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RunError("--format parquet needs pyarrow: pip install 'augkit[serve]', or use --format npy") from None
    if out.exists() and not out.is_dir():
        raise RunError(f"export directory {str(out)!r} is a file")
    earlier = sorted(name for name in EXPORT_FILES if (out / name).exists())
    if earlier and not overwrite:
        raise RunError(
            f"export directory {str(out)!r} holds an earlier export ({', '.join(earlier)}); pass "
            "overwrite=True (--overwrite) to replace it"
        )
    out.mkdir(parents=True, exist_ok=True)
    for name in earlier:
        (out / name).unlink()

    written: list[str] = []
    item_vectors = run._item_matrix().detach().cpu()
    item_keys = [_json_key(key) for key in run.keys.items.keys]
    if format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        dim = item_vectors.shape[1]
        columns = {"key": pa.array(item_keys)}
        if run.keys.titles is not None:
            columns["title"] = pa.array(list(run.keys.titles))
        flat = pa.array(item_vectors.numpy().reshape(-1), type=pa.float32())
        columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, dim)
        pq.write_table(pa.table(columns), out / "items.parquet")
        written.append("items.parquet")
    else:
        np.save(out / "item_embeddings.npy", item_vectors.numpy())
        (out / "item_keys.json").write_text(json.dumps(item_keys), encoding="utf-8")
        written += ["item_embeddings.npy", "item_keys.json"]

    # towers
    cpu_model = run.model
    moved = run.device.type != "cpu"
    if moved:
        import copy

        cpu_model = copy.deepcopy(run.model).cpu()
    queries, items = run.queries, run.served_items()
    example_rows = torch.arange(min(2, queries.batch_size))
    signatures = {
        "query": export_tower(cpu_model["query"], queries.select(example_rows), out / "query_tower.pt2"),
        "item": export_tower(cpu_model["item"], items.select(torch.arange(min(2, items.batch_size))), out / "item_tower.pt2"),
    }
    written += ["query_tower.pt2", "item_tower.pt2"]
    inputs = flat_inputs(queries)
    arrays = {entry["name"]: tensor.cpu().numpy() for entry, tensor in zip(signatures["query"], inputs, strict=True)}
    np.savez(out / "query_inputs.npz", **arrays)
    (out / "user_keys.json").write_text(json.dumps([_json_key(k) for k in run.keys.users.keys]), encoding="utf-8")
    indptr, seen = run._seen_csr()
    np.savez(out / "seen.npz", indptr=indptr.numpy(), items=seen.numpy())
    written += ["query_inputs.npz", "user_keys.json", "seen.npz"]

    # check the programs against the towers
    from augkit.train.evaluation import embed

    test_users = torch.unique(run.split.test.users)
    if test_users.numel() == 0:
        test_users = torch.arange(min(1000, queries.batch_size))
    programs = {name: torch.export.load(str(out / f"{name}_tower.pt2")).module() for name in ("query", "item")}
    diffs = {}
    for name, batch in (("query", queries.select(test_users)), ("item", items)):
        expected = embed(cpu_model[name], batch)
        with torch.no_grad():
            got = torch.cat([programs[name](*flat_inputs(batch.select(part))) for part in torch.arange(batch.batch_size).split(8192)])
        diffs[name] = float((got - expected).abs().max())
    report: dict[str, Any] = {
        "run": str(run.run_dir),
        "checkpoint": str(run.checkpoint),
        "step": run.step,
        "items": run.dataset.num_items,
        "users": run.dataset.num_users,
        "test_users": int(test_users.numel()),
        "max_abs_diff": diffs,
    }

    index_settings = None
    if index == "faiss":
        faiss = _faiss()
        test_vectors = run._query_matrix(test_users).cpu()
        calibrate, held_out = calibration_split(len(test_users), run.config.seed)
        kmax = min(max(ANN_K), run.dataset.num_items)
        _, exact = chunked_top_k(test_vectors[calibrate], item_vectors, kmax)
        built, index_settings = build_faiss_index(
            item_vectors.numpy(),
            index_type=index_type,
            calibration=test_vectors[calibrate].numpy(),
            exact=exact.numpy(),
            k=kmax,
            seed=run.config.seed,
        )
        faiss.write_index(built, str(out / "items.faiss"))
        written.append("items.faiss")
        report["index"] = index_settings
        report["ann"] = ann_report(built, item_vectors, test_vectors[held_out])
        report["ann"]["users"] = "the test users not used to calibrate the index"

    manifest = {
        "format": 1,
        "run": str(run.run_dir),
        "data_set": run.dataset.name,
        "score": "inner product of the two towers' outputs (unit vectors: cosine similarity)",
        "towers": {
            name: {
                "file": f"{name}_tower.pt2",
                "load": f"torch.export.load('{name}_tower.pt2').module()(*inputs)",
                "inputs": signatures[name],
                "output": {"dtype": "float32", "shape": ["B", run.model[name].config.output_dim], "normalized": run.model[name].config.normalize},
            }
            for name in ("query", "item")
        },
        "items": {
            "file": "items.parquet" if format == "parquet" else "item_embeddings.npy",
            "keys": "the 'key' column" if format == "parquet" else "item_keys.json",
            "count": run.dataset.num_items,
            "row_order": "row i is the item of key i of the keys; the FAISS index ids are these rows",
        },
        "users": {
            "keys": "user_keys.json",
            "query_inputs": "query_inputs.npz: row u holds user_keys[u]'s query tower inputs",
            "seen": "seen.npz: items[indptr[u]:indptr[u+1]] are user u's training item rows",
            "count": run.dataset.num_users,
        },
        "index": None if index_settings is None else {"file": "items.faiss", **index_settings},
    }
    written += [MANIFEST_NAME, REPORT_NAME]
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return ExportReport(out, tuple(written), report)

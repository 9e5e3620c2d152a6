"""The ``examples`` source: training events streamed from Parquet (`augkit.data.examples`), the
items from item feature files, the held-out events in memory.

The ``[data.examples]`` table is the reader's `ExamplesConfig` (path, columns, shuffle buffer,
query features) plus the keys of `OWN_KEYS`:

* ``items``: the item feature files, each an ``[[data.examples.items]]`` table read as
  ``[[data.tables.items]]`` is (`augkit.data.tables.read_item_files`): their keys are the
  items, ids ``0..N-1``. An event whose item key is not among them is dropped from training and
  counted (never wrapped, never an error);
* ``key_type``: how item (and hashed user) keys compare, as ``[data.tables]``'s;
* ``users``: ``{ vocabulary = "users.parquet" }`` (from ``augkit data vocab``; an unknown user
  goes to its out-of-vocabulary row or the default embedding, as the vocabulary says) or
  ``{ hash_buckets = N }`` (`augkit.data.vocab.HashedKeys`);
* the held-out events: ``valid_after``, ``test_after`` (Unix seconds: the events of ``path`` at
  or after the cut are validation, or test, and not trained on) or ``valid_path``,
  ``test_path`` (examples datasets of their own, e.g. the ``after/`` of ``augkit data examples
  --cut``); test is required, validation optional;
* ``workers``: DataLoader worker processes reading the stream (0: the training process).

Every query feature holds item keys (such as ``history``, the user's earlier items) and is
encoded through the items' ids; a feature named ``history`` shares the item tower's ``item_id``
table, as the in-memory history does.

Each held-out event is one query (its user and query features) with its item as the target; the
items in its query features (the user's earlier items) are left out of its ranking. The training
count of each item comes from one pass over the training examples when the data is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.config_io import kind
from augkit.data.dataset import InteractionLog, RecDataset
from augkit.data.examples import ExampleBatch, ExampleFiles, ExamplesConfig, ExampleStream, KeyEncoder, open_examples
from augkit.data.examples.config import structure_examples
from augkit.data.examples.read import READ_ROWS, blocks, encode_block, read_range
from augkit.data.examples.rows import EncodedRows
from augkit.data.items import ItemTable
from augkit.data.splits import Split
from augkit.data.tables import read_item_files
from augkit.data.tables_config import (
    FeatureFile,
    KeyTypes,
    structure_item_files,
    structure_key_types,
    unstructure_item_files,
)
from augkit.data.vocab import HashedKeys, Vocabulary, load
from augkit.errors import ConfigError
from augkit.schema import Categorical, FeatureSchema, MultiCategorical
from augkit.validators import integer

OWN_KEYS = ("items", "key_type", "users", "valid_after", "test_after", "valid_path", "test_path", "workers")
"""The keys of ``[data.examples]`` that the trainer reads; the others are the reader's."""
USER_FEATURE = "user_id"
"""The query tower's user feature."""
NAME = "examples"


@attrs.frozen(kw_only=True)
class UserKeys:
    """How user keys become rows: a `vocabulary` file (``augkit data vocab``) or `hash_buckets`."""

    vocabulary: Path | None = None
    hash_buckets: int | None = attrs.field(default=None, validator=attrs.validators.optional(integer(1)))

    def __attrs_post_init__(self) -> None:
        if (self.vocabulary is None) == (self.hash_buckets is None):
            raise ValueError('give one of vocabulary = "path" (augkit data vocab) or hash_buckets = N')

    def encoder(self, key_type: str) -> Vocabulary | HashedKeys:
        """The user keys' encoder (`ConfigError` for a vocabulary file that does not load)."""
        if self.vocabulary is not None:
            return load(self.vocabulary)
        return HashedKeys(self.hash_buckets, key_type=key_type)


def _optional_path(value: Any) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a path, got {value!r} ({kind(value)})")
    return Path(value).expanduser()


@attrs.frozen(kw_only=True)
class ExamplesSource:
    """The ``[data.examples]`` table (see the module docstring)."""

    reader: ExamplesConfig
    items: tuple[FeatureFile, ...]
    users: UserKeys
    key_type: KeyTypes = attrs.field(factory=KeyTypes)
    valid_after: int | None = None
    test_after: int | None = None
    valid_path: Path | None = None
    test_path: Path | None = None
    workers: int = attrs.field(default=0, validator=integer(0))

    def __attrs_post_init__(self) -> None:
        if not self.items:
            raise ValueError("items: at least one [[data.examples.items]] file must name the items")
        for role in ("valid", "test"):
            if getattr(self, f"{role}_after") is not None and getattr(self, f"{role}_path") is not None:
                raise ValueError(f"{role}_after and {role}_path are both set; hold {role} events out one way")
        if self.test_after is None and self.test_path is None:
            raise ValueError("no test events: set test_after (a time cut of path) or test_path")
        if (self.valid_after is not None or self.test_after is not None) and self.reader.timestamp is None:
            raise ValueError("a time cut (valid_after, test_after) needs the timestamp column: set timestamp")
        if self.valid_after is not None and self.test_after is not None and self.valid_after > self.test_after:
            raise ValueError(f"valid_after ({self.valid_after}) is after test_after ({self.test_after})")

    @property
    def train_before(self) -> int | None:
        """Events of ``path`` at or after this time are held out (None: all train)."""
        cuts = [c for c in (self.valid_after, self.test_after) if c is not None]
        return min(cuts) if cuts else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data that `structure_source` reads back."""
        users = {"vocabulary": None if self.users.vocabulary is None else str(self.users.vocabulary),
                 "hash_buckets": self.users.hash_buckets}
        return {
            **self.reader.to_dict(),
            "items": unstructure_item_files(self.items),
            "key_type": attrs.asdict(self.key_type),
            "users": users,
            "valid_after": self.valid_after,
            "test_after": self.test_after,
            "valid_path": None if self.valid_path is None else str(self.valid_path),
            "test_path": None if self.test_path is None else str(self.test_path),
            "workers": self.workers,
        }


def structure_source(value: Any) -> ExamplesSource:
    """An `ExamplesSource` from plain data (relative paths kept): the ``[data.examples]`` table."""
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table, got {value!r} ({kind(value)})")
    own = {key: value[key] for key in OWN_KEYS if key in value}
    reader = structure_examples({key: v for key, v in value.items() if key not in OWN_KEYS})
    users = own.get("users")
    if not isinstance(users, Mapping):
        raise ValueError('users: expected a table { vocabulary = "path" } or { hash_buckets = N }')
    unknown = sorted(set(users) - {"vocabulary", "hash_buckets"})
    if unknown:
        raise ValueError(f"users: unknown key {unknown[0]!r} (vocabulary, hash_buckets)")
    for key in ("valid_after", "test_after", "workers"):
        if key in own and type(own[key]) is not int:
            raise TypeError(f"{key}: expected an integer, got {own[key]!r} ({kind(own[key])})")
    return ExamplesSource(
        reader=reader,
        items=structure_item_files(own.get("items", [])),
        users=UserKeys(vocabulary=_optional_path(users.get("vocabulary")), hash_buckets=users.get("hash_buckets")),
        key_type=structure_key_types(own.get("key_type", "str")),
        valid_after=own.get("valid_after"),
        test_after=own.get("test_after"),
        valid_path=_optional_path(own.get("valid_path")),
        test_path=_optional_path(own.get("test_path")),
        workers=own.get("workers", 0),
    )


# -- loading --------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class StreamedData:
    """The loaded ``examples`` source.

    ``files``: the training examples, opened; ``encoders``: the `KeyEncoder` of ``user``,
    ``item`` and each query feature; ``items``: the item table (``item_id`` first).
    ``queries`` (``FeatureBatch[Q]``, schema `query_schema`): the held-out events as queries,
    validation ones first; ``split``: ``valid`` and ``test`` hold (query, target item) with the
    query index as the user, ``train`` the (query, item) pairs of the items in each query's
    features, left out of its ranking. ``train_counts`` (``LongTensor[N]``): each item's
    training events. ``unknown_items``: training events whose item key is not an item;
    ``held_out``: events of ``path`` at or after the time cut.
    """

    source: ExamplesSource
    files: ExampleFiles
    encoders: dict[str, KeyEncoder]
    items: ItemTable
    titles: tuple[str | None, ...] | None
    query_schema: FeatureSchema
    queries: FeatureBatch
    split: Split
    train_counts: torch.Tensor
    unknown_items: int
    held_out: int
    warnings: tuple[str, ...]

    @property
    def dataset(self) -> RecDataset:
        """The items and the held-out queries (as users) with their events."""
        events = InteractionLog(
            torch.cat([self.split.valid.users, self.split.test.users]),
            torch.cat([self.split.valid.items, self.split.test.items]),
        )
        return RecDataset(NAME, self.items.corpus, self.queries, events, warnings=self.warnings)

    def stream(self, *, batch_size: int, seed: int, drop_last: bool) -> ExampleStream:
        """The training examples as an `ExampleStream` of this process's rank."""
        return ExampleStream(
            self.files, self.encoders, batch_size=batch_size, seed=seed,
            num_workers=self.source.workers, drop_last=drop_last,
        )

    def summary(self) -> dict[str, Any]:
        """What the loading pass counted (for the run's metrics.json)."""
        return {
            "train_rows": self.files.num_rows - self.held_out,
            "held_out_rows": self.held_out,
            "unknown_item_events": self.unknown_items,
            "valid_queries": len(self.split.valid),
            "test_queries": len(self.split.test),
        }


def load_examples(source: ExamplesSource) -> StreamedData:
    """Open the examples (their footers checked), read the item files, count the training items
    and read the held-out events, in one pass over ``path`` (and one over each held-out path);
    faults are `DataFileError`s or `ConfigError`s naming the file and column, before training."""
    items, titles, notes = read_item_files(source.items, source.key_type.item)
    item_keys = items.vocabularies["item_id"]
    item_encoder = _item_encoder(item_keys, source.key_type.item)
    encoders: dict[str, KeyEncoder] = {
        "user": source.users.encoder(source.key_type.user),
        "item": item_encoder,
        **{feature.name: item_encoder for feature in source.reader.features},
    }
    files = open_examples(source.reader)
    cut = source.train_before
    counts = np.zeros(len(item_keys), dtype=np.int64)
    unknown = held_out = 0
    after: list[EncodedRows] = []
    for rows in _all_rows(files, encoders):
        train = np.ones(len(rows), dtype=bool) if cut is None else rows.timestamps < cut
        known = rows.items >= 0
        counts += np.bincount(rows.items[train & known], minlength=len(item_keys))
        unknown += int((train & ~known).sum())
        held_out += int((~train).sum())
        if cut is not None and not train.all():
            after.append(rows.take(np.flatnonzero(~train)))
    valid = test = None
    if after:
        rows = EncodedRows.concat(after)
        if source.valid_after is not None:
            upper = np.inf if source.test_after is None else source.test_after
            valid = rows.take(np.flatnonzero(rows.timestamps < upper))
        if source.test_after is not None:
            test = rows.take(np.flatnonzero(rows.timestamps >= source.test_after))
    if source.valid_path is not None:
        valid = _read_all(attrs.evolve(source.reader, path=source.valid_path), encoders)
    if source.test_path is not None:
        test = _read_all(attrs.evolve(source.reader, path=source.test_path), encoders)
    schema = _query_schema(source.reader, encoders["user"], len(item_keys))
    queries, split = _held_out(source.reader, schema, valid, test, len(item_keys), counts)
    return StreamedData(
        source, files, encoders, items, titles, schema, queries, split, torch.from_numpy(counts),
        unknown, held_out, notes,
    )


def _item_encoder(keys: tuple[str, ...], key_type: str) -> Vocabulary:
    """Item keys to item ids ``0..N-1`` in the item table's order; an unknown key reads -1."""
    import pyarrow as pa  # optional: the examples source reads Parquet

    values = pa.array([int(k) for k in keys], pa.int64()) if key_type == "int" else pa.array(keys, pa.string())
    return Vocabulary(values, np.zeros(len(keys), dtype=np.int64), key_type=key_type, oov="missing")


def _all_rows(files: ExampleFiles, encoders: dict[str, KeyEncoder]) -> Iterator[EncodedRows]:
    """Every row of `files`, encoded, in file order, a block of `READ_ROWS` rows at a time."""
    order = np.arange(files.num_units)
    for block in blocks(read_range(files, order, 0, files.num_rows), READ_ROWS):
        yield encode_block(block, files, encoders)


def _read_all(config: ExamplesConfig, encoders: dict[str, KeyEncoder]) -> EncodedRows:
    files = open_examples(config)
    return EncodedRows.concat(list(_all_rows(files, encoders)))


def _query_schema(reader: ExamplesConfig, users: Any, num_items: int) -> FeatureSchema:
    """``user_id`` (the user encoder's rows), then each query feature over the item ids."""
    specs: list[Categorical | MultiCategorical] = [Categorical(name=USER_FEATURE, num_values=users.num_rows)]
    for feature in reader.features:
        if feature.type == "categorical":
            specs.append(Categorical(name=feature.name, num_values=num_items))
        else:
            specs.append(MultiCategorical(name=feature.name, num_values=num_items, max_len=feature.max_len))
    return FeatureSchema(specs)


def query_values(reader: ExamplesConfig, users: torch.Tensor, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The query tower's values of a batch: ``user_id`` and the query features."""
    return {USER_FEATURE: users, **{f.name: features[f.name] for f in reader.features}}


def query_batch(data: StreamedData, batch: ExampleBatch, rows: torch.Tensor) -> FeatureBatch:
    """The query batch of `batch`'s `rows` (``LongTensor[b]``)."""
    values = query_values(data.source.reader, batch.users[rows], {n: t[rows] for n, t in batch.features.items()})
    return FeatureBatch.from_tensors(data.query_schema, values)


def _held_out(
    reader: ExamplesConfig,
    schema: FeatureSchema,
    valid: EncodedRows | None,
    test: EncodedRows | None,
    num_items: int,
    counts: np.ndarray,
) -> tuple[FeatureBatch, Split]:
    """The held-out events with a known item as queries (validation first) and their split."""
    valid, test = (None if rows is None else rows.take(np.flatnonzero(rows.items >= 0)) for rows in (valid, test))
    if test is None or not len(test):
        raise ConfigError("the examples source holds out no test event with a known item: no test queries")
    valid_size = 0 if valid is None else len(valid)
    rows = test if not valid_size else EncodedRows.concat([valid, test])
    widths = {f.name: f.max_len for f in reader.features}
    features = {
        **{name: torch.from_numpy(ids) for name, ids in rows.scalars.items()},
        **{name: ragged.padded(widths[name]) for name, ragged in rows.lists.items()},
    }
    queries = FeatureBatch.from_tensors(schema, query_values(reader, torch.from_numpy(rows.users), features))
    targets = torch.from_numpy(rows.items)
    index = torch.arange(len(rows))
    seen_q, seen_i = [], []
    for tensor in features.values():
        ids = tensor.reshape(len(rows), -1)
        q = index[:, None].expand_as(ids)
        keep = (ids >= 0) & (ids != targets[:, None])
        seen_q.append(q[keep])
        seen_i.append(ids[keep])
    pairs = torch.unique(torch.cat([*seen_q, torch.zeros(0, dtype=torch.long)]) * num_items
                         + torch.cat([*seen_i, torch.zeros(0, dtype=torch.long)]))
    known = InteractionLog(pairs // num_items, pairs % num_items)
    is_valid = index < valid_size
    cold = torch.from_numpy(counts == 0)
    split = Split(
        train=known,
        valid=InteractionLog(index[is_valid], targets[is_valid]),
        test=InteractionLog(index[~is_valid], targets[~is_valid]),
        cold_items=cold,
        valid_cold_items=torch.zeros_like(cold),
    )
    return queries, split

"""Data sources by name: the ``data.source`` of a trainer config picks one from `SOURCES`.

A source is one `DataSource` registration: how to load its `RecDataset`, and how to load it
with its `DataKeys` (the raw user and item keys behind the dense ids, for serving):

* ``synthetic``: the embedded synthetic data (`make_synthetic` at the size and seed of
  ``[data.synthetic]``, `SyntheticConfig`); the keys are the ids themselves (ints ``0..n-1``),
  as are feature values.
* ``movielens-100k``: your copy of MovieLens-100K in ``data.path``; users and items are the
  MovieLens ids (ints, id + 1), with the titles of ``u.item`` and the feature vocabularies of
  `load_movielens_items`.
* ``examples``: training events streamed from Parquet, described by ``data.examples``
  (`augkit.data.streamed.ExamplesSource`); its data set is the item table and the held-out
  events as queries (`StreamedData.dataset`). Serving keys are not given yet.
* ``tables``: your own files, described by ``data.tables`` (`TablesConfig`); the keys and
  vocabularies that `read_tables` returns: strings, or ints where ``key_type`` is ``"int"``;
  the titles of an item file's ``title`` column, if one names it.

`fingerprint_data` gives the fingerprint of what a source reads (`augkit.data.fingerprint`):
each file's size, mtime and content hash, or the synthetic generator's parameters (its sizes
and seed included); a run records it to check later that it is served on the data it was trained on.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import attrs

from augkit.data.dataset import RecDataset
from augkit.data.examples import open_examples
from augkit.data.fingerprint import files_fingerprint
from augkit.data.keys import DataKeys, KeyIndex, identity_keys
from augkit.data.movielens import (
    AGE_BUCKETS,
    load_movielens_100k,
    load_movielens_items,
    load_movielens_titles,
)
from augkit.data.streamed import ExamplesSource, StreamedData, load_examples
from augkit.data.synthetic import SyntheticConfig, make_synthetic
from augkit.data.tables import LoadedTables, read_tables
from augkit.data.tables_config import TablesConfig
from augkit.errors import ConfigError, UnknownNameError


class DataOptions(Protocol):
    """What a source reads of the trainer's data section (`augkit.train.config.DataConfig`)."""

    source: str
    path: str
    synthetic: SyntheticConfig
    tables: TablesConfig | None
    examples: ExamplesSource | None


@attrs.frozen
class DataSource:
    """A registered source: `load` gives its data set, `load_with_keys` the data set and its
    `DataKeys`, `fingerprint` what it reads (``{"files": [...]}`` or ``{"generator": {...}}``,
    see `augkit.data.fingerprint`); each takes the data section of a config."""

    load: Callable[[DataOptions], RecDataset]
    load_with_keys: Callable[[DataOptions], tuple[RecDataset, DataKeys]]
    fingerprint: Callable[[DataOptions], dict[str, Any]]


def _synthetic(data: DataOptions) -> RecDataset:
    return data.synthetic.make()


def _synthetic_with_keys(data: DataOptions) -> tuple[RecDataset, DataKeys]:
    dataset = _synthetic(data)
    return dataset, identity_keys(dataset)


def _synthetic_fingerprint(data: DataOptions) -> dict[str, Any]:
    defaults = {name: p.default for name, p in inspect.signature(make_synthetic).parameters.items()}
    synthetic = data.synthetic
    sizes = {"num_items": synthetic.items, "num_users": synthetic.users, "mean_events": synthetic.events_per_user}
    return {"generator": {"function": "make_synthetic", **defaults, **sizes, "seed": synthetic.seed}}


def _movielens_dir(data: DataOptions) -> str:
    if not data.path:
        raise ConfigError("data.path must name the ml-100k directory for source 'movielens-100k'")
    return data.path


def _movielens(data: DataOptions) -> RecDataset:
    return load_movielens_100k(_movielens_dir(data))


def _movielens_with_keys(data: DataOptions) -> tuple[RecDataset, DataKeys]:
    directory = _movielens_dir(data)
    dataset = load_movielens_100k(directory)
    items = load_movielens_items(directory)
    return dataset, DataKeys(
        users=KeyIndex("user", dataset.name, range(1, dataset.num_users + 1)),
        items=KeyIndex("item", dataset.name, items.vocabularies["item_id"]),
        titles=load_movielens_titles(directory),
        item_vocabularies=items.vocabularies,
        user_vocabularies={"user_id": tuple(range(1, dataset.num_users + 1)), "age": AGE_BUCKETS},
    )


MOVIELENS_FILES = ("u.data", "u.item", "u.user", "u.occupation")
"""The files of ml-100k that the ``movielens-100k`` source reads (``u.occupation`` if present)."""


def _movielens_fingerprint(data: DataOptions) -> dict[str, Any]:
    directory = _movielens_dir(data)
    return {"files": files_fingerprint(os.path.join(directory, name) for name in MOVIELENS_FILES)}


def _tables_config(data: DataOptions) -> TablesConfig:
    if data.tables is None:
        raise ConfigError("data.tables must describe the files for source 'tables'")
    return data.tables


def _read_tables(data: DataOptions) -> LoadedTables:
    return read_tables(_tables_config(data))


def _tables(data: DataOptions) -> RecDataset:
    return _read_tables(data).dataset


def _tables_with_keys(data: DataOptions) -> tuple[RecDataset, DataKeys]:
    loaded = _read_tables(data)
    dataset = loaded.dataset
    key_type = data.tables.key_type

    def keys(entity: str, vocabulary: tuple[str, ...]) -> tuple[Any, ...]:
        # key_type = "int": the vocabulary holds each integer's decimal digits; give back ints
        return tuple(map(int, vocabulary)) if getattr(key_type, entity) == "int" else vocabulary

    return dataset, DataKeys(
        users=KeyIndex("user", dataset.name, keys("user", loaded.users.vocabularies["user_id"])),
        items=KeyIndex("item", dataset.name, keys("item", loaded.items.vocabularies["item_id"])),
        titles=loaded.titles,
        item_vocabularies=loaded.items.vocabularies,
        user_vocabularies=loaded.users.vocabularies,
    )


def _tables_fingerprint(data: DataOptions) -> dict[str, Any]:
    tables = _tables_config(data)
    return {"files": files_fingerprint([tables.interactions.path, *(f.path for f in (*tables.items, *tables.users))])}


def examples_config(data: DataOptions) -> ExamplesSource:
    """``data.examples``; a `ConfigError` when it is not set."""
    if data.examples is None:
        raise ConfigError("data.examples must describe the Parquet examples for source 'examples'")
    return data.examples


def load_streamed(data: DataOptions) -> StreamedData:
    """The ``examples`` source loaded (`augkit.data.streamed.load_examples`)."""
    return load_examples(examples_config(data))


def _examples(data: DataOptions) -> RecDataset:
    return load_streamed(data).dataset


def _examples_with_keys(data: DataOptions) -> tuple[RecDataset, DataKeys]:
    raise ConfigError("serving a run of the 'examples' source (its user and item keys) is not supported yet")


def _examples_fingerprint(data: DataOptions) -> dict[str, Any]:
    source = examples_config(data)
    files = [file.path for file in source.items]
    return {"files": files_fingerprint(files), "examples": open_examples(source.reader).digest()}


SOURCES: Mapping[str, DataSource] = MappingProxyType({
    "synthetic": DataSource(_synthetic, _synthetic_with_keys, _synthetic_fingerprint),
    "movielens-100k": DataSource(_movielens, _movielens_with_keys, _movielens_fingerprint),
    "tables": DataSource(_tables, _tables_with_keys, _tables_fingerprint),
    "examples": DataSource(_examples, _examples_with_keys, _examples_fingerprint),
})
"""Every data source by its ``data.source`` name."""


def get_source(name: str) -> DataSource:
    """The source registered as `name`; `UnknownNameError` with the closest name otherwise."""
    found = SOURCES.get(name)
    if found is None:
        raise UnknownNameError("data source", name, SOURCES)
    return found


def load_source(data: DataOptions) -> RecDataset:
    """The data set that ``data.source`` names, loaded with the options of `data`."""
    return get_source(data.source).load(data)


def load_with_keys(data: DataOptions) -> tuple[RecDataset, DataKeys]:
    """The data set that ``data.source`` names, as `load_source` loads it, and its `DataKeys`."""
    return get_source(data.source).load_with_keys(data)


def fingerprint_data(data: DataOptions) -> dict[str, Any]:
    """The fingerprint of what ``data.source`` reads with the options of `data`:
    ``{"source", "files"}`` (size, mtime, sha256 of each file) or ``{"source", "generator"}``;
    compare two with `augkit.data.fingerprint.data_changes`."""
    return {"source": data.source, "files": [], **get_source(data.source).fingerprint(data)}

"""Your own data as a `RecDataset`: an interaction log plus item and user feature files.

A config (a plain mapping, e.g. the ``[data.tables]`` table of a trainer TOML) names the files:

* ``interactions`` = ``{path, sep, header, encoding, user, item, timestamp}``: one event per
  record; ``user``/``item`` (required) and ``timestamp`` (optional, integers) are columns.
* ``items``, ``users`` (optional) = lists of feature files, each
  ``{path, sep, header, encoding, key, form, features}``: ``key`` is the item (user) column;
  ``features`` maps each feature name to ``{type, column, max_len, separator}``.
* ``name`` (optional): the data set's name (default ``"tables"``).

A column is a header name, or a 0-based index (the only choice when ``header = false``).
``sep`` defaults by extension (`SEPARATORS`); ``.parquet`` files (through pyarrow) take neither
``sep`` nor ``header``. Relative paths are resolved against `base_dir` (default: the working
directory). Every key is validated: unknown keys raise `UnknownNameError` with the closest match.
"""

from __future__ import annotations

import codecs
import csv
import keyword
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import attrs
import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.data.dataset import InteractionLog, RecDataset
from augkit.data.items import ItemTable, pad_bags
from augkit.errors import ConfigError, UnknownNameError, check_known_keys
from augkit.schema import MISSING, Categorical, FeatureSchema, MultiCategorical

SEPARATORS: Mapping[str, str] = MappingProxyType({".csv": ",", ".tsv": "\t", ".tab": "\t", ".dat": "\t"})
"""Default field separator of a text file, by extension."""
PARQUET = ".parquet"
FEATURE_TYPES: tuple[str, ...] = ("categorical", "multi_categorical")
FORMS: tuple[str, ...] = ("wide", "long")
"""``wide``: one record per key. ``long``: one record per (key, value); values gather in bags."""

Column = str | int
"""A column: its header name, or its 0-based index."""

_SOURCE_KEYS = ("path", "sep", "header", "encoding")


# -- configuration ---------------------------------------------------------------------------
def _fail(message: str) -> NoReturn:
    raise ConfigError(message)


def _column(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None and attribute.name == "timestamp":
        return
    named = isinstance(value, str) and value != ""
    indexed = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if not (named or indexed):
        _fail(f"{attribute.name} must be a column name or a 0-based column index, got {value!r}")


def _one_of(options: tuple[str, ...]) -> Callable[[Any, attrs.Attribute, Any], None]:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in options:
            _fail(f"{attribute.name} must be one of {', '.join(options)}, got {value!r}")

    return check


def _separator(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        _fail(f"{attribute.name} must be a non-empty string, got {value!r}")


@attrs.frozen(kw_only=True)
class Source:
    """A table file: CSV/TSV (read with `csv` as `encoding` text; `sep` one character, by
    extension when None; `header`: the first line names the columns) or Parquet (`sep` and
    `header` do not apply; cells are read as strings, timestamps as Unix seconds)."""

    path: Path = attrs.field(converter=Path)
    sep: str | None = attrs.field(default=None, validator=_separator)
    header: bool = attrs.field(default=True)
    encoding: str = attrs.field(default="utf-8")

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.header, bool):
            _fail(f"header must be true or false, got {self.header!r}")
        if not isinstance(self.encoding, str):
            _fail(f"encoding must be a codec name, got {self.encoding!r}")
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(f"encoding {self.encoding!r} is not a known codec") from None
        if self.is_parquet:
            if self.sep is not None or not self.header:
                _fail(f"{str(self.path)!r} is Parquet: 'sep' and 'header' do not apply")
        elif self.sep is not None and len(self.sep) != 1:
            _fail(f"sep must be a single character, got {self.sep!r}")
        elif self.sep is None and self.path.suffix.lower() not in SEPARATORS:
            _fail(
                f"cannot tell the separator of {str(self.path)!r} from its extension "
                f"{self.path.suffix!r}; set sep (known extensions: {', '.join([*SEPARATORS, PARQUET])})"
            )

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix.lower() == PARQUET

    @property
    def delimiter(self) -> str:
        """The field separator of a text file."""
        return self.sep if self.sep is not None else SEPARATORS[self.path.suffix.lower()]


def _check_columns(source: Source, columns: dict[str, Column | None]) -> None:
    """A named column needs a header."""
    if not source.header:
        for key, column in columns.items():
            if isinstance(column, str):
                _fail(f"{key} {column!r} is a name but header = false; give a 0-based column index")


@attrs.frozen(kw_only=True)
class FeatureColumn:
    """Feature `name` read from `column`: ``categorical`` (one value per key) or
    ``multi_categorical`` (a bag per key; `separator` splits a cell into values, required in
    wide form; `max_len`, at least the longest bag, fixes the width, default the longest bag)."""

    name: str
    type: str = attrs.field(validator=_one_of(FEATURE_TYPES))
    column: Column = attrs.field(validator=_column)
    max_len: int | None = None
    separator: str | None = attrs.field(default=None, validator=_separator)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier() or keyword.iskeyword(self.name):
            _fail(
                f"feature name {self.name!r} is not an identifier (letters, digits, underscores; no keyword)"
            )
        if self.type == "categorical":
            for key in ("max_len", "separator"):
                if getattr(self, key) is not None:
                    _fail(f"{key} applies to multi_categorical features only")
        elif self.max_len is not None and (
            isinstance(self.max_len, bool) or not isinstance(self.max_len, int) or self.max_len < 1
        ):
            _fail(f"max_len must be a positive int, got {self.max_len!r}")


@attrs.frozen(kw_only=True)
class FeatureFile:
    """Features of items (or users) keyed by column `key`, in `form` ``wide`` or ``long``."""

    source: Source
    key: Column = attrs.field(validator=_column)
    form: str = attrs.field(default="wide", validator=_one_of(FORMS))
    features: tuple[FeatureColumn, ...] = attrs.field(converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not self.features:
            _fail("features is empty; name at least one feature")
        _check_columns(
            self.source, {"key": self.key, **{f"features.{f.name}.column": f.column for f in self.features}}
        )
        for feature in self.features:
            if self.form == "wide" and feature.type == "multi_categorical" and feature.separator is None:
                _fail(
                    f"multi_categorical feature {feature.name!r} of a wide-form file needs a "
                    "separator (the values of one cell are split by it), or use form = 'long'"
                )


@attrs.frozen(kw_only=True)
class InteractionFile:
    """The interaction log: one (user, item[, timestamp]) event per record."""

    source: Source
    user: Column = attrs.field(validator=_column)
    item: Column = attrs.field(validator=_column)
    timestamp: Column | None = attrs.field(default=None, validator=_column)

    def __attrs_post_init__(self) -> None:
        _check_columns(self.source, {"user": self.user, "item": self.item, "timestamp": self.timestamp})


@attrs.frozen(kw_only=True)
class TablesConfig:
    """Everything `load_tables` reads; build it from a plain mapping with `from_dict`."""

    interactions: InteractionFile
    items: tuple[FeatureFile, ...] = attrs.field(default=(), converter=tuple)
    users: tuple[FeatureFile, ...] = attrs.field(default=(), converter=tuple)
    name: str = "tables"

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            _fail(f"name must be a non-empty string, got {self.name!r}")
        for entity, files in (("item", self.items), ("user", self.users)):
            owner: dict[str, Path] = {}
            for file in files:
                for feature in file.features:
                    if feature.name == f"{entity}_id":
                        _fail(f"feature name {feature.name!r} is reserved: augkit adds it from the ids")
                    if feature.name in owner:
                        _fail(
                            f"{entity} feature {feature.name!r} is defined twice, in "
                            f"{str(owner[feature.name])!r} and {str(file.source.path)!r}"
                        )
                    owner[feature.name] = file.source.path

    @classmethod
    def from_dict(
        cls, config: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None
    ) -> TablesConfig:
        """Validate a plain mapping (see the module docstring). Errors name the key at fault,
        e.g. ``items[0].features.genre``."""
        base = Path(base_dir) if base_dir is not None else None
        _within("the tables config", lambda: _mapping(config))
        check_known_keys("key of the tables config", config, ("interactions", "items", "users", "name"))
        if "interactions" not in config:
            _fail("the tables config lacks 'interactions' (the file of user-item events)")
        keys = ("user", "item", "timestamp")
        interactions = _within(
            "interactions",
            lambda: _build(
                "interactions", config["interactions"], base, keys, InteractionFile, required=keys[:2]
            ),
        )
        files = {
            entity: tuple(_feature_files(entity, config.get(entity, ()), base))
            for entity in ("items", "users")
        }
        return _within(
            "the tables config",
            lambda: cls(interactions=interactions, name=config.get("name", "tables"), **files),
        )


def _within(where: str, build: Callable[[], Any]) -> Any:
    """``build()``, with `where` (a config key) prefixed to its `ConfigError`."""
    try:
        return build()
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _mapping(value: Any) -> None:
    if not isinstance(value, Mapping):
        _fail(f"expected a table (mapping), got {type(value).__name__}")


def _require(entry: Mapping[str, Any], keys: Sequence[str]) -> None:
    missing = [key for key in keys if key not in entry]
    if missing:
        _fail(f"{', '.join(map(repr, missing))} {'is' if len(missing) == 1 else 'are'} required")


def _build(
    where: str,
    entry: Any,
    base: Path | None,
    keys: Sequence[str],
    cls: type,
    *,
    required: Sequence[str] = (),
    **given: Any,
) -> Any:
    """A `cls` of a `Source` (the source keys of `entry`) and `entry`'s other `keys`, some of
    them `given` already parsed; ``path`` and the `required` keys must be in `entry`."""
    _mapping(entry)
    check_known_keys(f"key of {where}", entry, (*_SOURCE_KEYS, *keys))
    _require(entry, ("path", *required))
    path = entry["path"]
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        _fail(f"path must be a file path, got {path!r}")
    path = Path(path).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    source = Source(path=path, **{k: entry[k] for k in _SOURCE_KEYS[1:] if k in entry})
    return cls(source=source, **{k: entry[k] for k in keys if k in entry}, **given)


def _feature_files(entity: str, entries: Any, base: Path | None) -> Iterable[FeatureFile]:
    if not isinstance(entries, (list, tuple)):
        _fail(f"{entity} must be a list of tables ([[{entity}]] in TOML), got {type(entries).__name__}")
    keys = ("key", "form", "features")
    for i, entry in enumerate(entries):
        where = f"{entity}[{i}]"

        def build(entry: Any = entry, where: str = where) -> FeatureFile:
            _mapping(entry)
            _require(entry, ("key", "features"))
            _within("features", lambda: _mapping(entry["features"]))
            features = [
                _within(
                    f"features.{name}", lambda n=name, s=spec: _feature_column(f"{where}.features.{n}", n, s)
                )
                for name, spec in entry["features"].items()
            ]
            return _build(
                where,
                {k: v for k, v in entry.items() if k != "features"},
                base,
                keys,
                FeatureFile,
                features=features,
            )

        yield _within(where, build)


def _feature_column(where: str, name: str, spec: Any) -> FeatureColumn:
    _mapping(spec)
    check_known_keys(f"key of {where}", spec, ("type", "column", "max_len", "separator"))
    _require(spec, ("type", "column"))
    if spec["type"] not in FEATURE_TYPES:
        raise UnknownNameError(f"type of {where}", spec["type"], FEATURE_TYPES)
    return FeatureColumn(name=name, **spec)


# -- reading ---------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class _Table:
    """Stripped string cells of the wanted columns of one file; `numbers` are the records' line
    (text) or row (Parquet) numbers, for messages."""

    file: Path
    unit: str
    numbers: np.ndarray
    cells: Mapping[Column, np.ndarray]

    def where(self, record: int | None, column: Column | None = None) -> str:
        """`file`, line and column of a record, for messages."""
        text = repr(str(self.file))
        if record is not None:
            text += f", {self.unit} {int(self.numbers[record])}"
        if column is not None:
            text += f", column {column!r}"
        return text


def _resolve(file: Path, names: Sequence[str] | None, width: int, column: Column) -> int:
    """Index of `column` among the file's columns."""
    if isinstance(column, int):
        if column >= width:
            _fail(f"{str(file)!r} has {width} columns; column index {column} is out of range (0-based)")
        return column
    assert names is not None  # a named column needs a header: checked by the config
    if column not in names:
        raise UnknownNameError(f"column of {str(file)!r}", column, names)
    if names.count(column) > 1:
        _fail(f"{str(file)!r}: column {column!r} appears twice in the header")
    return names.index(column)


def _read(source: Source, columns: Sequence[Column]) -> _Table:
    """The wanted `columns` of `source`; errors name the file and line."""
    if not source.path.is_file():
        _fail(f"table file {str(source.path)!r} does not exist")
    return _read_parquet(source, columns) if source.is_parquet else _read_text(source, columns)


def _read_text(source: Source, columns: Sequence[Column]) -> _Table:
    file = source.path
    records: list[tuple[int, list[str]]] = []
    try:
        with file.open(newline="", encoding=source.encoding) as handle:
            reader = csv.reader(handle, delimiter=source.delimiter)
            try:
                records = [(reader.line_num, row) for row in reader if row]
            except csv.Error as error:
                raise ConfigError(f"{str(file)!r}, line {reader.line_num}: {error}") from None
    except OSError as error:
        raise ConfigError(f"cannot read table file {str(file)!r}: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{str(file)!r} is not {source.encoding} text ({error}); set encoding") from None
    names = None
    if source.header:
        if not records:
            _fail(f"{str(file)!r} is empty; expected a header line")
        names = tuple(cell.strip() for cell in records.pop(0)[1])
    if not records:
        _fail(f"{str(file)!r} has no data {'after its header' if names else 'lines'}")
    numbers = np.fromiter((n for n, _ in records), dtype=np.int64, count=len(records))
    widths = np.fromiter((len(row) for _, row in records), dtype=np.int64, count=len(records))
    width = len(names) if names is not None else int(widths[0])
    bad = np.flatnonzero(widths != width)
    if bad.size:
        first = int(bad[0])
        expected = "the header has" if names is not None else f"line {int(numbers[0])} has"
        _fail(f"{str(file)!r}, line {int(numbers[first])}: {int(widths[first])} fields, {expected} {width}")
    table = np.array([row for _, row in records], dtype=str)
    cells = {c: np.char.strip(table[:, _resolve(file, names, width, c)]) for c in columns}
    return _Table(file, "line", numbers, cells)


def _read_parquet(source: Source, columns: Sequence[Column]) -> _Table:
    file = source.path
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            f"reading the Parquet file {str(file)!r} needs pyarrow: pip install pyarrow"
        ) from None
    try:
        names = tuple(pq.read_schema(file).names)
        indices = {c: _resolve(file, names, len(names), c) for c in columns}
        table = pq.read_table(file, columns=sorted({names[i] for i in indices.values()}))
    except (OSError, pa.ArrowException) as error:
        raise ConfigError(f"cannot read Parquet file {str(file)!r}: {error}") from None
    if table.num_rows == 0:
        _fail(f"{str(file)!r} has no rows")

    def strings(name: str) -> np.ndarray:
        column = table.column(name)
        if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
            column = pc.cast(pc.cast(column, pa.timestamp("s"), safe=False), pa.int64())
        values = pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)
        return np.char.strip(values.astype(str))

    cells = {c: strings(names[i]) for c, i in indices.items()}
    return _Table(file, "row", np.arange(1, table.num_rows + 1), cells)


def _int64(cells: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
    """int64 of the integer strings `cells`; else `ConfigError` ``"{where(i)}: ..."`` naming
    the first cell i that is not an int64."""
    try:
        return np.asarray(cells, dtype=str).astype(np.int64)
    except (ValueError, OverflowError):
        bad = next(i for i, cell in enumerate(cells.tolist()) if not _is_int64(cell))
    _fail(f"{where(bad)}: {str(cells[bad])!r} is not an integer")


def _is_int64(text: str) -> bool:
    try:
        return -(2**63) <= int(text) < 2**63
    except ValueError:
        return False


def _required(table: _Table, column: Column, what: str) -> np.ndarray:
    """The cells of `column`, none of them empty."""
    cells = table.cells[column]
    empty = np.flatnonzero(cells == "")
    if empty.size:
        _fail(f"{table.where(int(empty[0]), column)}: empty {what}, which is required")
    return cells


def _encode(values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Vocabulary of the distinct strings in `values` and each value's int64 id in it.

    The vocabulary is in numeric order when every value is an integer (so keys ``0..n-1`` keep
    their ids), else in string order.
    """
    unique, inverse = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    try:
        order = np.lexsort((unique, unique.astype(np.int64)))
    except (ValueError, OverflowError):
        return tuple(unique.tolist()), inverse.astype(np.int64).reshape(-1)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return tuple(unique[order].tolist()), rank[inverse.reshape(-1)].astype(np.int64)


def _split(cells: np.ndarray, separator: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(record, value) of every non-empty value; `separator` splits a cell into several."""
    if separator is None:
        records = np.flatnonzero(cells != "")
        return records, cells[records]
    counts = np.char.count(cells, separator) + 1
    values = np.char.strip(np.array(separator.join(cells.tolist()).split(separator), dtype=str))
    records = np.repeat(np.arange(cells.size), counts)
    filled = values != ""
    return records[filled], values[filled]


# -- assembling ------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class LoadedTables:
    """What `read_tables` read: the data set, and the raw value behind every id.

    ``items.vocabularies[name][id]`` (``users`` likewise) is the raw string behind ``id`` of
    feature ``name``; ``item_id``/``user_id`` map back to your keys. ``items.corpus`` is
    ``dataset.items`` and ``users.corpus`` is ``dataset.users``.
    """

    dataset: RecDataset
    items: ItemTable
    users: ItemTable


def load_tables(
    config: Mapping[str, Any] | TablesConfig, *, base_dir: str | os.PathLike[str] | None = None
) -> RecDataset:
    """The `RecDataset` of your own files (see the module docstring; `read_tables`)."""
    return read_tables(config, base_dir=base_dir).dataset


def read_tables(
    config: Mapping[str, Any] | TablesConfig, *, base_dir: str | os.PathLike[str] | None = None
) -> LoadedTables:
    """Read the files a tables config names into a `RecDataset`, keeping the vocabularies.

    * Raw user and item keys are strings, mapped to dense ids ``0..n-1``; the items are the
      union of the interaction items and the keys of the item files (users likewise), in
      numeric order when every key is an integer, else in string order. ``item_id`` and
      ``user_id`` are always the first feature.
    * Every event counts (implicit feedback); repeated events are kept.
    * A feature's vocabulary is its distinct non-empty values (ordered like the keys); an empty
      cell, or a key absent from the feature's file, leaves the feature missing (``-1``).
    * Wide form: one record per key. Long form: one record per (key, value); a categorical
      feature must have one value per key, a multi-valued one gathers its values in a bag (a
      set: repeated values count once).

    Bad files raise `ConfigError` (or `UnknownNameError` for a missing column) naming the file,
    line and column: missing file, wrong number of fields, empty key/user/item/timestamp,
    non-integer timestamp, a key twice in a wide-form file, conflicting single values, a bag
    longer than ``max_len``.
    """
    if not isinstance(config, TablesConfig):
        config = TablesConfig.from_dict(config, base_dir=base_dir)
    spec = config.interactions
    log = _read(spec.source, [c for c in (spec.user, spec.item, spec.timestamp) if c is not None])
    timestamps = None
    if spec.timestamp is not None:
        stamps = _required(log, spec.timestamp, "timestamp")
        timestamps = _int64(stamps, lambda i: log.where(i, spec.timestamp))
    items, item_log = _entity("item", _required(log, spec.item, "item id"), config.items)
    users, user_log = _entity("user", _required(log, spec.user, "user id"), config.users)
    interactions = InteractionLog(
        torch.from_numpy(user_log),
        torch.from_numpy(item_log),
        None if timestamps is None else torch.from_numpy(timestamps),
    )
    return LoadedTables(RecDataset(config.name, items.corpus, users.corpus, interactions), items, users)


def _entity(entity: str, logged: np.ndarray, configs: Sequence[FeatureFile]) -> tuple[ItemTable, np.ndarray]:
    """The feature table of the items (or users) and the ids of the `logged` keys."""
    files = [(file, _read(file.source, [file.key, *(f.column for f in file.features)])) for file in configs]
    keys = [_required(table, file.key, f"{entity} key") for file, table in files]
    vocabulary, ids = _encode(np.concatenate([logged, *keys]))
    size = len(vocabulary)
    bounds = np.cumsum([logged.size, *(k.size for k in keys)])
    specs: list[Categorical | MultiCategorical] = [Categorical(name=f"{entity}_id", num_values=size)]
    values = {f"{entity}_id": np.arange(size)}
    vocabularies: dict[str, tuple[str, ...]] = {f"{entity}_id": vocabulary}
    for (file, table), rows in zip(files, np.split(ids, bounds[:-1])[1:], strict=True):
        if file.form == "wide":
            _unique_keys(entity, file, table, rows)
        for feature in file.features:
            spec, values[feature.name], vocabularies[feature.name] = _feature(
                entity, table, feature, table.cells[file.key], rows, size
            )
            specs.append(spec)
    schema = FeatureSchema(specs)
    return ItemTable(schema, FeatureBatch.from_tensors(schema, values), vocabularies), ids[: logged.size]


def _unique_keys(entity: str, file: FeatureFile, table: _Table, rows: np.ndarray) -> None:
    order = np.argsort(rows, kind="stable")
    twice = np.flatnonzero(rows[order][1:] == rows[order][:-1])
    if twice.size:
        first, second = order[twice[0]], order[twice[0] + 1]
        _fail(
            f"{table.where(None, file.key)}: {entity} {str(table.cells[file.key][first])!r} is on "
            f"{table.unit}s {int(table.numbers[first])} and {int(table.numbers[second])} of a wide-form "
            "file (one record per key); use form = 'long' for one record per (key, value)"
        )


def _feature(
    entity: str, table: _Table, feature: FeatureColumn, keys: np.ndarray, rows: np.ndarray, size: int
) -> tuple[Categorical | MultiCategorical, np.ndarray, tuple[str, ...]]:
    """Spec, ``-1``-padded ids (``[size]`` or ``[size, max_len]``) and vocabulary of a feature;
    `keys` are the raw keys of the file's records, `rows` their ids."""
    cells = table.cells[feature.column]
    records, raw = _split(cells, feature.separator)
    if not raw.size:
        _fail(
            f"{table.where(None, feature.column)}: feature {feature.name!r} has no value in any {table.unit}"
        )
    vocabulary, ids = _encode(raw)
    owners = rows[records]
    if feature.type == "categorical":
        pairs = np.unique(np.stack([owners, ids], axis=1), axis=0)
        clash = np.flatnonzero(pairs[1:, 0] == pairs[:-1, 0])
        if clash.size:
            owner, first, second = pairs[clash[0], 0], pairs[clash[0], 1], pairs[clash[0] + 1, 1]
            lines = [int(table.numbers[records[(owners == owner) & (ids == v)][0]]) for v in (first, second)]
            _fail(
                f"{table.where(None, feature.column)}: {entity} "
                f"{str(keys[records[owners == owner][0]])!r} has two values "
                f"of categorical feature {feature.name!r}, {vocabulary[first]!r} ({table.unit} {lines[0]}) "
                f"and {vocabulary[second]!r} ({table.unit} {lines[1]}); make it multi_categorical"
            )
        out = np.full(size, MISSING, dtype=np.int64)
        out[owners] = ids
        return Categorical(name=feature.name, num_values=len(vocabulary)), out, vocabulary
    bags = pad_bags(owners, ids, size)
    width = bags.shape[1]
    if feature.max_len is not None:
        if width > feature.max_len:
            longest = int(np.argmax((bags != MISSING).sum(axis=1)))
            record = int(records[owners == longest][0])
            _fail(
                f"{table.where(record, feature.column)}: {entity} "
                f"{str(keys[record])!r} has {width} values of "
                f"{feature.name!r}, more than max_len={feature.max_len}"
            )
        bags = np.pad(bags, ((0, 0), (0, feature.max_len - width)), constant_values=MISSING)
    spec = MultiCategorical(name=feature.name, num_values=len(vocabulary), max_len=bags.shape[1])
    return spec, bags, vocabulary

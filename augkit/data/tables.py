"""Your own data as a `RecDataset`: an interaction log plus item and user feature files.

A config (a plain mapping, e.g. the ``[data.tables]`` table of a trainer TOML) names the files:

* ``interactions`` = ``{path, sep, header, encoding, user, item, timestamp}``: one event per
  record; ``user``/``item`` (required) and ``timestamp`` (optional: integer Unix seconds, or
  ISO-8601 times) are columns.
* ``items``, ``users`` (optional) = lists of feature files, each
  ``{path, sep, header, encoding, key, form, features}``: ``key`` is the item (user) column;
  ``features`` maps each feature name to ``{type, column, max_len, separator, pattern,
  lowercase}``; ``type`` is one of `FEATURE_TYPES`.
* ``key_type`` (optional): how keys compare, ``"str"`` (default) or ``"int"`` for every key, or
  ``{user = ..., item = ...}`` (`KeyTypes`).
* ``name`` (optional): the data set's name (default ``"tables"``).

A column is a header name, or a 0-based index (the only choice when ``header = false``).
``sep`` defaults by extension (`SEPARATORS`); ``.parquet`` files (through pyarrow) take neither
``sep`` nor ``header``. Relative paths are resolved against `base_dir` (default: the working
directory). Every key is validated: unknown keys raise `UnknownNameError` with the closest match.
"""

from __future__ import annotations

import codecs
import keyword
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

import attrs
import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.data.dataset import InteractionLog, RecDataset
from augkit.data.delimited import factorize, read_delimited, sorted_codes, split_cells
from augkit.data.items import ItemTable, pad_bags
from augkit.errors import ConfigError, UnknownNameError, check_known_keys
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, MultiCategorical

SEPARATORS: Mapping[str, str] = MappingProxyType({".csv": ",", ".tsv": "\t", ".tab": "\t", ".dat": "\t"})
"""Default field separator of a text file, by extension."""
PARQUET = ".parquet"
FEATURE_TYPES: tuple[str, ...] = ("categorical", "multi_categorical", "dense")
"""``categorical``: one value per key; ``multi_categorical``: a bag of values; ``dense``: one
number per key (a `Dense` feature of dim 1, float32)."""
KEY_TYPES: tuple[str, ...] = ("str", "int")
"""``str``: keys compare as text, NFC-normalised; ``int``: as integers (``01`` is ``1``)."""
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
    """A table file: CSV/TSV (read with `csv` as `encoding` text, a UTF-8 byte-order mark
    dropped; `sep` one character, by extension when None; `header`: the first line names the
    columns) or Parquet (`sep` and `header` do not apply; cells are read as strings, timestamps
    as Unix seconds, list columns as bags)."""

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
    r"""Feature `name` read from `column`: ``categorical`` (one value per key),
    ``multi_categorical`` (a bag per key; `separator` splits a cell into values, required in
    wide form unless the column is a Parquet list or `pattern` finds the values; `max_len`, at
    least the longest bag, fixes the width, default the longest bag) or ``dense`` (one finite
    number per key).

    `pattern`, a Python regular expression with at most one group, takes the values out of
    each cell (after `separator`): a categorical feature's value is the first match (its group,
    if it has one; no match: missing), a multi-valued feature's values are every match (as
    `re.findall`), matched on the NFC form of the cell; a group left out of a match, or an
    empty match, is no value. `lowercase`
    case-folds the values (``str.casefold``: ``Straße`` and ``strasse`` are one). So ``column = "title"`` gives
    ``year`` from ``pattern = '\((\d{4})\)\s*$'`` and ``title_words`` from
    ``pattern = '[^\W\d_]+'`` with ``lowercase = true`` (TOML literal strings)."""

    name: str
    type: str = attrs.field(validator=_one_of(FEATURE_TYPES))
    column: Column = attrs.field(validator=_column)
    max_len: int | None = None
    separator: str | None = attrs.field(default=None, validator=_separator)
    pattern: str | None = None
    lowercase: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier() or keyword.iskeyword(self.name):
            _fail(
                f"feature name {self.name!r} is not an identifier (letters, digits, underscores; no keyword)"
            )
        if self.type != "multi_categorical":
            for key in ("max_len", "separator"):
                if getattr(self, key) is not None:
                    _fail(f"{key} applies to multi_categorical features only")
        elif self.max_len is not None and (
            isinstance(self.max_len, bool) or not isinstance(self.max_len, int) or self.max_len < 1
        ):
            _fail(f"max_len must be a positive int, got {self.max_len!r}")
        if not isinstance(self.lowercase, bool):
            _fail(f"lowercase must be true or false, got {self.lowercase!r}")
        if self.type == "dense" and (self.pattern is not None or self.lowercase):
            _fail("pattern and lowercase apply to categorical and multi_categorical features only")
        if self.pattern is not None:
            if not isinstance(self.pattern, str) or not self.pattern:
                _fail(f"pattern must be a non-empty string (a Python regular expression), got {self.pattern!r}")
            try:
                groups = re.compile(self.pattern).groups
            except re.error as error:
                _fail(f"pattern '{self.pattern}' is not a regular expression: {error}")
            if groups > 1:
                _fail(f"pattern '{self.pattern}' has {groups} groups; give it at most one (the value)")

    def extract(self, records: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(record, value) after `pattern` and `lowercase`, from the (record, value) of the
        cells; each distinct value is matched once."""
        if self.pattern is None and not self.lowercase:
            return records, values
        uniques, codes = factorize(values)
        found = [self._values(value) for value in uniques]
        counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
        flat = np.array([v for vs in found for v in vs], dtype=object)  # every distinct value's finds, in order
        first = np.cumsum(counts) - counts  # where each distinct value's finds start in `flat`
        per_cell = counts[codes]
        ends = np.cumsum(per_cell)
        within = np.arange(int(ends[-1]) if ends.size else 0) - np.repeat(ends - per_cell, per_cell)
        return np.repeat(records, per_cell), flat[np.repeat(first[codes], per_cell) + within]

    def _values(self, cell: str) -> list[str]:
        cell = unicodedata.normalize("NFC", cell)  # a decomposed é is one letter to the pattern
        if self.pattern is None:
            found = [cell]
        elif self.type == "categorical":
            match = re.search(self.pattern, cell)
            found = [] if match is None else [match.group(1) if match.re.groups else match.group(0)]
        else:
            found = re.findall(self.pattern, cell)
        found = [v.strip() for v in found if v]  # a group left out of the match is None: no value
        return [v.casefold() for v in found if v] if self.lowercase else [v for v in found if v]


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
        if self.source.is_parquet:
            return  # a list column needs no separator: checked when read
        for feature in self.features:
            if (self.form == "wide" and feature.type == "multi_categorical" and feature.separator is None
                    and feature.pattern is None):
                _needs_separator(feature)


def _needs_separator(feature: FeatureColumn) -> NoReturn:
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
class KeyTypes:
    """How the user and the item keys compare, each one of `KEY_TYPES`: as NFC-normalised text
    (``str``, the default) or as integers (``int``: ``01`` and ``1`` are one key, a key that is
    not an integer is an error). Applies to the log's column and to every feature file's key."""

    user: str = attrs.field(default="str", validator=_one_of(KEY_TYPES))
    item: str = attrs.field(default="str", validator=_one_of(KEY_TYPES))

    @classmethod
    def from_value(cls, value: Any) -> KeyTypes:
        """``"str"``/``"int"`` for both, or a mapping ``{user, item}`` (each optional)."""
        if isinstance(value, str):
            if value not in KEY_TYPES:
                _fail(f"must be one of {', '.join(KEY_TYPES)} or a table {{user, item}}, got {value!r}")
            return cls(user=value, item=value)
        _mapping(value)
        check_known_keys("key of key_type", value, ("user", "item"))
        return cls(**value)


@attrs.frozen(kw_only=True)
class TablesConfig:
    """Everything `load_tables` reads; build it from a plain mapping with `from_dict`."""

    interactions: InteractionFile
    items: tuple[FeatureFile, ...] = attrs.field(default=(), converter=tuple)
    users: tuple[FeatureFile, ...] = attrs.field(default=(), converter=tuple)
    key_type: KeyTypes = attrs.field(factory=KeyTypes)
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
        check_known_keys(
            "key of the tables config", config, ("interactions", "items", "users", "key_type", "name")
        )
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
        key_type = _within("key_type", lambda: KeyTypes.from_value(config.get("key_type", "str")))
        return _within(
            "the tables config",
            lambda: cls(
                interactions=interactions, key_type=key_type, name=config.get("name", "tables"), **files
            ),
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
    check_known_keys(f"key of {where}", spec, ("type", "column", "max_len", "separator", "pattern", "lowercase"))
    _require(spec, ("type", "column"))
    if spec["type"] not in FEATURE_TYPES:
        raise UnknownNameError(f"type of {where}", spec["type"], FEATURE_TYPES)
    return FeatureColumn(name=name, **spec)


# -- reading ---------------------------------------------------------------------------------
@attrs.frozen(eq=False)
class _Bags:
    """A Parquet list column: value ``values[e]`` (a stripped, non-empty string) is in the bag
    of record ``records[e]``."""

    records: np.ndarray
    values: np.ndarray


@attrs.frozen(eq=False)
class _Table:
    """Stripped string cells (object arrays) of the wanted columns of one file, or `_Bags` for a
    Parquet list column; `numbers` are the records' line (text) or row (Parquet) numbers, for
    messages."""

    file: Path
    unit: str
    numbers: np.ndarray
    cells: Mapping[Column, np.ndarray | _Bags]

    def where(self, record: int | None, column: Column | None = None) -> str:
        """`file`, line and column of a record, for messages."""
        text = repr(str(self.file))
        if record is not None:
            text += f", {self.unit} {int(self.numbers[record])}"
        if column is not None:
            text += f", column {column!r}"
        return text

    def scalar(self, column: Column, what: str) -> np.ndarray:
        """The cells of `column`, which must hold one value per record."""
        cells = self.cells[column]
        if isinstance(cells, _Bags):
            _fail(
                f"{self.where(None, column)}: a Parquet list column holds several values per row; "
                f"{what} takes one (only a multi_categorical feature reads a list column)"
            )
        return cells


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
    if source.path.is_dir():
        _fail(f"table file {str(source.path)!r} is a directory; expected a file")
    if not source.path.is_file():
        _fail(f"table file {str(source.path)!r} does not exist")
    return _read_parquet(source, columns) if source.is_parquet else _read_text(source, columns)


def _read_text(source: Source, columns: Sequence[Column]) -> _Table:
    file = source.path
    read = read_delimited(
        file,
        delimiter=source.delimiter,
        encoding=source.encoding,
        header=source.header,
        select=lambda names, width: {c: _resolve(file, names, width, c) for c in columns},
    )
    if not len(read):
        _fail(f"{str(file)!r} has no data {'after its header' if source.header else 'lines'}")
    return _Table(file, "line", read.lines, read.cells)


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

    def strings(column: Any) -> np.ndarray:
        if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
            column = pc.cast(pc.cast(column, pa.timestamp("s"), safe=False), pa.int64())
        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        return pc.fill_null(text, "").to_numpy(zero_copy_only=False).astype(object)

    def cells(name: str) -> np.ndarray | _Bags:
        column = table.column(name)
        kind = column.type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
            return strings(column)
        lists = column.combine_chunks()
        records = pc.list_parent_indices(lists).to_numpy()
        values = strings(pc.list_flatten(lists))
        filled = values != ""
        return _Bags(records[filled].astype(np.int64), values[filled])

    read = {c: cells(names[i]) for c, i in indices.items()}
    return _Table(file, "row", np.arange(1, table.num_rows + 1), read)


# -- cells -----------------------------------------------------------------------------------
_INTEGER = re.compile(r"[+-]?[0-9]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def _as_int(text: str) -> int | None:
    """The integer `text` writes in decimal digits (with an optional sign), else None."""
    return int(text) if _INTEGER.fullmatch(text) else None


def _iso_seconds(text: str) -> int | None:
    """Unix seconds (floored) of an ISO-8601 date or time, naive ones taken as UTC; else None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _SECOND


def _required(table: _Table, column: Column, what: str) -> np.ndarray:
    """The cells of `column`, none of them empty."""
    cells = table.scalar(column, what)
    empty = np.flatnonzero(cells == "")
    if empty.size:
        _fail(f"{table.where(int(empty[0]), column)}: empty {what}, which is required")
    return cells


def _per_value(
    cells: np.ndarray, parse: Callable[[str], Any], bad: Callable[[int, str], NoReturn], dtype: Any
) -> np.ndarray:
    """``parse`` of every cell, called once per distinct cell; ``bad(record, cell)`` is called
    for the first record whose cell ``parse`` maps to None."""
    uniques, codes = factorize(cells)
    parsed = [parse(u) for u in uniques]
    if None in parsed:
        first = parsed.index(None)  # distinct values are in order of first occurrence
        bad(int(np.argmax(codes == first)), uniques[first])
    return np.asarray(parsed, dtype=dtype)[codes]


def _keys(table: _Table, column: Column, what: str, key_type: str) -> np.ndarray:
    """The non-empty keys of `column` as comparable strings: NFC-normalised text, or the decimal
    digits of their integer when `key_type` is ``int``."""
    cells = _required(table, column, what)

    def not_int(record: int, cell: str) -> NoReturn:
        _fail(
            f"{table.where(record, column)}: {what} {cell!r} is not an integer "
            f'(key_type.{what.split()[0]} = "int")'
        )

    parse = _int_key if key_type == "int" else _text_key
    return _per_value(cells, parse, not_int, object)


def _int_key(text: str) -> str | None:
    """The decimal digits of the integer `text` writes (``01`` -> ``1``), else None."""
    number = _as_int(text)
    return None if number is None else str(number)


def _text_key(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _timestamps(table: _Table, column: Column) -> np.ndarray:
    """int64 Unix seconds of a timestamp column: every cell an integer, or every cell an
    ISO-8601 date or time (naive times are UTC)."""
    cells = _required(table, column, "timestamp")
    try:
        return cells.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    first = f"the first timestamp ({cells[0]!r}, {table.unit} {int(table.numbers[0])})"

    def not_int(record: int, cell: str) -> NoReturn:
        _fail(
            f"{table.where(record, column)}: {cell!r} is not an integer; {first} is Unix seconds, "
            "so every one must be"
        )

    def not_iso(record: int, cell: str) -> NoReturn:
        if record == 0:
            _fail(
                f"{table.where(0, column)}: {cell!r} is neither an integer (Unix seconds) nor an "
                "ISO-8601 time such as 2023-11-15T09:30:00Z"
            )
        _fail(
            f"{table.where(record, column)}: {cell!r} is not an ISO-8601 time; {first} is, "
            "so every one must be"
        )

    if _is_int64(cells[0]):
        return _per_value(cells, lambda u: int(u) if _is_int64(u) else None, not_int, np.int64)
    return _per_value(cells, _iso_seconds, not_iso, np.int64)


def _is_int64(text: str) -> bool:
    try:
        return -(2**63) <= int(text) < 2**63
    except ValueError:
        return False


def _numbers(table: _Table, column: Column, records: np.ndarray) -> np.ndarray:
    """float32 of the numeric cells at `records` of `column`; each must be a finite float32."""
    cells = table.cells[column][records]

    def fail(i: int, what: str) -> NoReturn:
        _fail(f"{table.where(int(records[i]), column)}: {str(cells[i])!r} is not {what}")

    try:
        wide = cells.astype(np.float64)
    except ValueError:
        fail(next(i for i, cell in enumerate(cells.tolist()) if not _is_float(cell)), "a number")
    with np.errstate(over="ignore"):
        narrow = wide.astype(np.float32)
    infinite = np.flatnonzero(~np.isfinite(narrow))
    if infinite.size:
        fail(int(infinite[0]), "a finite number (that fits float32)")
    return narrow


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _encode(values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Vocabulary of the distinct strings in `values` and each value's int64 id in it.

    The vocabulary is in numeric order when every value is an integer (so keys ``0..n-1`` keep
    their ids), else in string order.
    """
    uniques, codes = factorize(values)
    numeric = all(_INTEGER.fullmatch(u) for u in uniques)
    vocabulary, ids = sorted_codes(uniques, codes, (lambda u: (int(u), u)) if numeric else None)
    return tuple(vocabulary), ids


def _split(table: _Table, feature: FeatureColumn, form: str) -> tuple[np.ndarray, np.ndarray]:
    """(record, value) of every non-empty value of a categorical or multi-valued feature; its
    `separator` splits a cell into several, a Parquet list column holds several."""
    cells = table.cells[feature.column]
    if isinstance(cells, _Bags):
        if feature.type != "multi_categorical":
            table.scalar(feature.column, f"{feature.type} feature {feature.name!r}")
        if feature.separator is not None:
            _fail(
                f"{table.where(None, feature.column)}: feature {feature.name!r} reads a Parquet list "
                "column, whose values are already split; drop its separator"
            )
        return feature.extract(cells.records, cells.values)
    if feature.separator is None:
        if form == "wide" and feature.type == "multi_categorical" and feature.pattern is None:
            _needs_separator(feature)
        records = np.flatnonzero(cells != "")
        return feature.extract(records, cells[records])
    return feature.extract(*split_cells(cells, feature.separator))


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

    @property
    def warnings(self) -> tuple[str, ...]:
        """The join report: ``dataset.warnings``."""
        return self.dataset.warnings


def load_tables(
    config: Mapping[str, Any] | TablesConfig, *, base_dir: str | os.PathLike[str] | None = None
) -> RecDataset:
    """The `RecDataset` of your own files (see the module docstring; `read_tables`)."""
    return read_tables(config, base_dir=base_dir).dataset


def read_tables(
    config: Mapping[str, Any] | TablesConfig, *, base_dir: str | os.PathLike[str] | None = None
) -> LoadedTables:
    """Read the files a tables config names into a `RecDataset`, keeping the vocabularies.

    * Raw user and item keys are strings, stripped and NFC-normalised (``key_type = "int"``:
      integers, so ``01`` is ``1``), mapped to dense ids ``0..n-1``; the items are the union of
      the interaction items and the keys of the item files (users likewise), in numeric order
      when every key is an integer, else in string order. ``item_id`` and ``user_id`` are
      always the first feature.
    * Every event counts (implicit feedback); repeated events are kept. Timestamps are integer
      Unix seconds, or ISO-8601 dates or times (naive ones are UTC) turned into Unix seconds.
    * A feature's vocabulary is its distinct non-empty values (ordered like the keys); an empty
      cell, or a key absent from the feature's file, leaves the feature missing (``-1``). A
      ``dense`` feature is one float32 per key.
    * Wide form: one record per key. Long form: one record per (key, value); a categorical or
      dense feature must have one value per key, a multi-valued one gathers its values in a bag
      (a set: repeated values count once). A Parquet list column is a bag per row.
    * The join of each feature file with the log is reported in ``dataset.warnings``: how many
      logged keys have no row in it, and how many of its keys are never logged.

    Bad files raise `ConfigError` (or `UnknownNameError` for a missing column) naming the file,
    line and column: missing file, wrong number of fields, unterminated quote, empty
    key/user/item/timestamp, a timestamp that is neither an integer nor ISO-8601 (or mixes the
    two), a key that is not an integer under ``key_type = "int"``, a non-numeric or non-finite
    dense value, a key twice in a wide-form file, conflicting single values, a bag longer than
    ``max_len``, a feature file none of whose keys is in the log.
    """
    if not isinstance(config, TablesConfig):
        config = TablesConfig.from_dict(config, base_dir=base_dir)
    spec = config.interactions
    log = _read(spec.source, [c for c in (spec.user, spec.item, spec.timestamp) if c is not None])
    timestamps = None if spec.timestamp is None else _timestamps(log, spec.timestamp)
    report: list[str] = []
    items, item_log = _entity(_Logged("item", log, spec.item, config.key_type.item), config.items, report)
    users, user_log = _entity(_Logged("user", log, spec.user, config.key_type.user), config.users, report)
    interactions = InteractionLog(
        torch.from_numpy(user_log),
        torch.from_numpy(item_log),
        None if timestamps is None else torch.from_numpy(timestamps),
    )
    dataset = RecDataset(config.name, items.corpus, users.corpus, interactions, warnings=report)
    return LoadedTables(dataset, items, users)


@attrs.frozen(eq=False)
class _Logged:
    """The `entity` keys of the log: `column` of `log`, compared as `key_type`."""

    entity: str
    log: _Table
    column: Column
    key_type: str

    def keys(self) -> np.ndarray:
        return _keys(self.log, self.column, f"{self.entity} id", self.key_type)


def _entity(
    logged: _Logged, configs: Sequence[FeatureFile], report: list[str]
) -> tuple[ItemTable, np.ndarray]:
    """The feature table of the items (or users) and the ids of the logged keys; appends the
    join report of each feature file to `report`."""
    entity = logged.entity
    log_keys = logged.keys()
    files = [(file, _read(file.source, [file.key, *(f.column for f in file.features)])) for file in configs]
    keys = [_keys(table, file.key, f"{entity} key", logged.key_type) for file, table in files]
    vocabulary, ids = _encode(np.concatenate([log_keys, *keys]))
    size = len(vocabulary)
    bounds = np.cumsum([log_keys.size, *(k.size for k in keys)])
    logged_ids = np.unique(ids[: log_keys.size])
    specs: list[Categorical | MultiCategorical | Dense] = [Categorical(name=f"{entity}_id", num_values=size)]
    values = {f"{entity}_id": np.arange(size)}
    present = {f"{entity}_id": np.ones(size, dtype=bool)}
    vocabularies: dict[str, tuple[str, ...]] = {f"{entity}_id": vocabulary}
    per_file = zip(files, keys, np.split(ids, bounds[:-1])[1:], strict=True)
    for i, ((file, table), file_keys, rows) in enumerate(per_file):
        where = f"{entity}s[{i}] {str(file.source.path)!r}"
        report.extend(_join(where, logged, log_keys, logged_ids, file, table, file_keys, rows))
        if file.form == "wide":
            _unique_keys(entity, file, table, rows)
        for feature in file.features:
            raw = table.cells[file.key]
            if feature.type == "dense":
                spec, values[feature.name], present[feature.name] = _dense(
                    entity, table, feature, raw, rows, size
                )
            else:
                spec, values[feature.name], vocabularies[feature.name] = _feature(
                    entity, table, feature, file.form, raw, rows, size
                )
                present[feature.name] = np.ones(size, dtype=bool)
            specs.append(spec)
    schema = FeatureSchema(specs)
    mask = torch.from_numpy(np.stack([present[name] for name in schema.names], axis=1))
    corpus = FeatureBatch.from_tensors(schema, values, present=mask)
    return ItemTable(schema, corpus, vocabularies), ids[: log_keys.size]


def _join(
    where: str,
    logged: _Logged,
    log_keys: np.ndarray,
    logged_ids: np.ndarray,
    file: FeatureFile,
    table: _Table,
    file_keys: np.ndarray,
    rows: np.ndarray,
) -> list[str]:
    """Warnings on the join of a feature file with the log; `ConfigError` when no key matches."""
    entity, own = logged.entity, np.unique(rows)
    matched = np.intersect1d(own, logged_ids, assume_unique=True).size
    if not matched:
        numeric = all(_INTEGER.fullmatch(k) for k in (*set(file_keys.tolist()), *set(log_keys.tolist())))
        hint = (
            f"the keys compare as text, so '01' and '1' differ: set key_type = \"int\" "
            f'(or key_type = {{ {entity} = "int" }}) to compare them as integers'
            if numeric and logged.key_type == "str"
            else f"check that key names the column of the {entity} keys the log refers to"
        )
        _fail(
            f"{where}, column {file.key!r}: none of its {own.size} {entity} keys is in the log "
            f"{str(logged.log.file)!r} (column {logged.column!r}): e.g. {str(table.cells[file.key][0])!r} "
            f"here, {str(logged.log.cells[logged.column][0])!r} in the log; {hint}"
        )
    warnings = []
    if matched < logged_ids.size:
        names = ", ".join(repr(f.name) for f in file.features)
        warnings.append(
            f"{where}: no row for {logged_ids.size - matched} of the {logged_ids.size} logged "
            f"{entity}s; they lack its feature{'s' if len(file.features) > 1 else ''} {names}"
        )
    if matched < own.size:
        warnings.append(
            f"{where}: no event for {own.size - matched} of its {own.size} {entity}s in the log "
            f"{str(logged.log.file)!r}; they are {entity}s without interactions"
        )
    return warnings


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
    entity: str,
    table: _Table,
    feature: FeatureColumn,
    form: str,
    keys: np.ndarray,
    rows: np.ndarray,
    size: int,
) -> tuple[Categorical | MultiCategorical, np.ndarray, tuple[str, ...]]:
    """Spec, ``-1``-padded ids (``[size]`` or ``[size, max_len]``) and vocabulary of a
    categorical or multi-valued feature; `keys` are the raw keys of the file's records, `rows`
    their ids."""
    records, raw = _split(table, feature, form)
    if not raw.size:
        _no_value(table, feature)
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


def _no_value(table: _Table, feature: FeatureColumn) -> NoReturn:
    found = "" if feature.pattern is None else (
        f" where its pattern '{feature.pattern}' finds one (a match must be non-empty: an empty match, as "
        "of '\\d*' before any digit, is no value)"
    )
    _fail(f"{table.where(None, feature.column)}: feature {feature.name!r} has no value in any {table.unit}{found}")


def _dense(
    entity: str, table: _Table, feature: FeatureColumn, keys: np.ndarray, rows: np.ndarray, size: int
) -> tuple[Dense, np.ndarray, np.ndarray]:
    """Spec, float32 ``[size, 1]`` values (0 where missing) and presence of a dense feature."""
    cells = table.scalar(feature.column, f"dense feature {feature.name!r}")
    records = np.flatnonzero(cells != "")
    if not records.size:
        _no_value(table, feature)
    numbers = _numbers(table, feature.column, records)
    owners = rows[records]
    order = np.lexsort((numbers, owners))
    owners, numbers, records = owners[order], numbers[order], records[order]
    clash = np.flatnonzero((owners[1:] == owners[:-1]) & (numbers[1:] != numbers[:-1]))
    if clash.size:
        first, second = sorted(int(records[j]) for j in (clash[0], clash[0] + 1))
        _fail(
            f"{table.where(None, feature.column)}: {entity} {str(keys[first])!r} has two values of dense "
            f"feature {feature.name!r}, {str(cells[first])!r} ({table.unit} {int(table.numbers[first])}) "
            f"and {str(cells[second])!r} ({table.unit} {int(table.numbers[second])}); keep one per key"
        )
    out = np.zeros((size, 1), dtype=np.float32)
    out[owners, 0] = numbers
    present = np.zeros(size, dtype=bool)
    present[owners] = True
    return Dense(name=feature.name, dim=1), out, present

"""Your own data as a `RecDataset`: an interaction log plus item and user feature files, named
by a `augkit.data.tables_config.TablesConfig` (the ``[data.tables]`` table of a trainer config),
read by the one table reader (`augkit.data.reader`) and encoded by the one encoder
(`augkit.data.encoding`), as ``augkit mi`` reads an item table.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import attrs
import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.data.dataset import InteractionLog, RecDataset
from augkit.data.encoding import INTEGER, encode, factorize, integer_twins, pad_bags
from augkit.data.items import ItemTable
from augkit.data.reader import Bags, Column, Source, Table, read_table, resolve, split_cells
from augkit.data.tables_config import FeatureColumn, FeatureFile, TablesConfig, needs_separator
from augkit.errors import ConfigError
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, MultiCategorical


def _fail(message: str) -> NoReturn:
    raise ConfigError(message)


def _read(source: Source, columns: Sequence[Column]) -> Table:
    """The wanted `columns` of `source`, at least one record; errors name the file and line."""
    table = read_table(source, lambda names, width: {c: resolve(source.path, names, width, c) for c in columns})
    if not len(table):
        empty = "no rows" if source.is_parquet else "no data after its header" if source.header else "no data lines"
        _fail(f"{str(source.path)!r} has {empty}")
    return table


# -- cells -----------------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def _as_int(text: str) -> int | None:
    """The integer `text` writes in decimal digits (with an optional sign), else None."""
    return int(text) if INTEGER.fullmatch(text) else None


def _iso_seconds(text: str) -> int | None:
    """Unix seconds (floored) of an ISO-8601 date or time, naive ones taken as UTC; else None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _SECOND


def _required(table: Table, column: Column, what: str) -> np.ndarray:
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


def _keys(table: Table, column: Column, what: str, key_type: str) -> np.ndarray:
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


def _timestamps(table: Table, column: Column) -> np.ndarray:
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


def _numbers(table: Table, column: Column, records: np.ndarray) -> np.ndarray:
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


def _split(table: Table, feature: FeatureColumn, form: str) -> tuple[np.ndarray, np.ndarray]:
    """(record, value) of every non-empty value of a categorical or multi-valued feature; its
    `separator` splits a cell into several, a Parquet list column holds several."""
    cells = table.cells[feature.column]
    if isinstance(cells, Bags):
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
            _fail(needs_separator(feature))
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
    titles: tuple[str | None, ...] | None = None
    """``titles[id]``: the display text of item ``id`` from the ``title`` column of an item file
    (``None`` where its cell is empty or the file has no row for it); ``None`` without a title
    column."""

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
      logged keys have no row in it, and how many of its keys are never logged. So are bags
      cut to ``max_len`` (``on_overflow = "truncate"``: each keeps its first values in file
      order), and a feature without ``max_len`` whose longest bag is more than `WIDE_PADDING`
      times the 99th percentile of its non-empty bags (every bag is padded to the longest).
    * An item file's ``title`` column gives each item a display text (`LoadedTables.titles`;
      in long form, the first non-empty cell of the item's records); it is not a feature.

    Bad files raise `ConfigError` (or `UnknownNameError` for a missing column) naming the file,
    line and column: missing file, wrong number of fields, unterminated quote, empty
    key/user/item/timestamp, a timestamp that is neither an integer nor ISO-8601 (or mixes the
    two), a key that is not an integer under ``key_type = "int"``, a non-numeric or non-finite
    dense value, a key twice in a wide-form file, conflicting single values, a bag longer than
    ``max_len`` (unless ``on_overflow = "truncate"``), a feature file none of whose keys is in
    the log.
    """
    if not isinstance(config, TablesConfig):
        config = TablesConfig.from_dict(config, base_dir=base_dir)
    elif base_dir is not None:
        config = config.resolved(Path(base_dir))
    spec = config.interactions
    log = _read(spec, [c for c in (spec.user, spec.item, spec.timestamp) if c is not None])
    timestamps = None if spec.timestamp is None else _timestamps(log, spec.timestamp)
    report: list[str] = []
    items, item_log, titles = _entity(_Logged("item", log, spec.item, config.key_type.item), config.items, report)
    users, user_log, _ = _entity(_Logged("user", log, spec.user, config.key_type.user), config.users, report)
    interactions = InteractionLog(
        torch.from_numpy(user_log),
        torch.from_numpy(item_log),
        None if timestamps is None else torch.from_numpy(timestamps),
    )
    dataset = RecDataset(config.name, items.corpus, users.corpus, interactions, warnings=report)
    return LoadedTables(dataset, items, users, titles)


def read_item_files(
    files: Sequence[FeatureFile], key_type: str = "str"
) -> tuple[ItemTable, tuple[str | None, ...] | None, tuple[str, ...]]:
    """The item table of item feature files alone, with no interaction log: the items are the
    keys of `files`, with ids and features as `read_tables` gives them (``item_id`` first), the
    titles (None without a title column) and the notes on bag widths. For sources whose events
    are not held in memory (the ``examples`` source), where the item files define the items."""
    if not files:
        _fail("no item file: at least one [[items]] table must name the file whose keys are the items")
    report: list[str] = []
    items, _, titles = _entity(None, files, report, entity="item", key_type=key_type)
    return items, titles, tuple(report)


@attrs.frozen(eq=False)
class _Logged:
    """The `entity` keys of the log: `column` of `log`, compared as `key_type`."""

    entity: str
    log: Table
    column: Column
    key_type: str

    def keys(self) -> np.ndarray:
        return _keys(self.log, self.column, f"{self.entity} id", self.key_type)


def _entity(
    logged: _Logged | None,
    configs: Sequence[FeatureFile],
    report: list[str],
    *,
    entity: str = "",
    key_type: str = "str",
) -> tuple[ItemTable, np.ndarray, tuple[str | None, ...] | None]:
    """The feature table of the items (or users), the ids of the logged keys and the titles
    (None without a title column); appends the join report of each feature file, and its
    notes on bag widths, to `report`. Without a log (`logged` None: `entity` and `key_type`
    say what the keys are), the keys of the files alone, and no join report."""
    if logged is not None:
        entity, key_type = logged.entity, logged.key_type
    log_keys = logged.keys() if logged is not None else np.empty(0, dtype=object)
    files = [
        (file, _read(file, [file.key, *([] if file.title is None else [file.title]), *(f.column for f in file.features)]))
        for file in configs
    ]
    keys = [_keys(table, file.key, f"{entity} key", key_type) for file, table in files]
    vocabulary, ids = encode(np.concatenate([log_keys, *keys]))
    if key_type == "str" and (twins := integer_twins(vocabulary)) is not None:
        source = f"the {entity} files" if logged is None else (
            f"column {logged.column!r} of {str(logged.log.file)!r}{f' and the {entity} files' if configs else ''}"
        )
        report.append(
            f"{entity} keys ({source}): "
            f"{twins[0]!r} and {twins[1]!r} spell the same integer but are different {entity}s, as the "
            f'keys compare as text; set key_type = "int" (or key_type = {{ {entity} = "int" }}) to '
            "read them as one"
        )
    size = len(vocabulary)
    bounds = np.cumsum([log_keys.size, *(k.size for k in keys)])
    logged_ids = np.unique(ids[: log_keys.size])
    specs: list[Categorical | MultiCategorical | Dense] = [Categorical(name=f"{entity}_id", num_values=size)]
    values = {f"{entity}_id": np.arange(size)}
    present = {f"{entity}_id": np.ones(size, dtype=bool)}
    vocabularies: dict[str, tuple[str, ...]] = {f"{entity}_id": vocabulary}
    titles = None
    per_file = zip(files, keys, np.split(ids, bounds[:-1])[1:], strict=True)
    for i, ((file, table), file_keys, rows) in enumerate(per_file):
        where = f"{entity}s[{i}] {str(file.path)!r}"
        if logged is not None:
            report.extend(_join(where, logged, log_keys, logged_ids, file, table, file_keys, rows))
        if file.form == "wide":
            _unique_keys(entity, file, table, rows)
        if file.title is not None:
            titles = _titles(table, file.title, rows, size)
        for feature in file.features:
            raw = table.cells[file.key]
            if feature.type == "dense":
                spec, values[feature.name], present[feature.name] = _dense(
                    entity, table, feature, raw, rows, size
                )
            else:
                spec, values[feature.name], vocabularies[feature.name] = _feature(
                    where, entity, table, feature, file.form, raw, rows, size, report
                )
                present[feature.name] = np.ones(size, dtype=bool)
            specs.append(spec)
    schema = FeatureSchema(specs)
    mask = torch.from_numpy(np.stack([present[name] for name in schema.names], axis=1))
    corpus = FeatureBatch.from_tensors(schema, values, present=mask)
    return ItemTable(schema, corpus, vocabularies), ids[: log_keys.size], titles


def _titles(table: Table, column: Column, rows: np.ndarray, size: int) -> tuple[str | None, ...]:
    """The title of each of `size` ids: the first non-empty cell of `column` among the records
    of the id (`rows`: the id of each record), else None."""
    cells = table.scalar(column, "title")
    filled = np.flatnonzero(cells != "")
    owners, first = np.unique(rows[filled], return_index=True)
    titles: list[str | None] = [None] * size
    for owner, record in zip(owners.tolist(), filled[first].tolist(), strict=True):
        titles[owner] = str(cells[record])
    return tuple(titles)


def _join(
    where: str,
    logged: _Logged,
    log_keys: np.ndarray,
    logged_ids: np.ndarray,
    file: FeatureFile,
    table: Table,
    file_keys: np.ndarray,
    rows: np.ndarray,
) -> list[str]:
    """Warnings on the join of a feature file with the log; `ConfigError` when no key matches."""
    entity, own = logged.entity, np.unique(rows)
    matched = np.intersect1d(own, logged_ids, assume_unique=True).size
    if not matched:
        numeric = all(INTEGER.fullmatch(k) for k in (*set(file_keys.tolist()), *set(log_keys.tolist())))
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


def _unique_keys(entity: str, file: FeatureFile, table: Table, rows: np.ndarray) -> None:
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
    where: str,
    entity: str,
    table: Table,
    feature: FeatureColumn,
    form: str,
    keys: np.ndarray,
    rows: np.ndarray,
    size: int,
    report: list[str],
) -> tuple[Categorical | MultiCategorical, np.ndarray, tuple[str, ...]]:
    """Spec, ``-1``-padded ids (``[size]`` or ``[size, max_len]``) and vocabulary of a
    categorical or multi-valued feature; `keys` are the raw keys of the file's records, `rows`
    their ids. A bag feature's notes on its width go to `report`, prefixed by `where`."""
    records, raw = _split(table, feature, form)
    if not raw.size:
        _no_value(table, feature)
    vocabulary, ids = encode(raw)
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
    owners, ids, records = _first_occurrences(owners, ids, records)
    sizes = np.bincount(owners, minlength=size)
    longest, limit = int(sizes.max(initial=0)), feature.max_len
    if limit is not None and longest > limit:
        if feature.on_overflow == "error":
            record = int(records[owners == int(np.argmax(sizes))][0])
            _fail(
                f"{table.where(record, feature.column)}: {entity} "
                f"{str(keys[record])!r} has {longest} values of "
                f"{feature.name!r}, more than max_len={limit} (on_overflow = \"truncate\" keeps the first {limit})"
            )
        order = np.argsort(owners, kind="stable")  # by bag, each in file order
        place = np.arange(owners.size) - (np.cumsum(sizes) - sizes)[owners[order]]
        kept = np.zeros(owners.size, dtype=bool)
        kept[order] = place < limit
        owners, ids = owners[kept], ids[kept]
        cut = int((sizes > limit).sum())
        report.append(
            f"{where}: feature {feature.name!r}: {cut} {'bag' if cut == 1 else 'bags'} truncated to "
            f"max_len={limit} values (on_overflow = \"truncate\": each keeps its first values in file order)"
        )
    bags = pad_bags(owners, ids, size)
    if limit is None:
        report.extend(_wide_padding(where, feature, sizes))
    else:
        bags = np.pad(bags, ((0, 0), (0, limit - bags.shape[1])), constant_values=MISSING)
    spec = MultiCategorical(name=feature.name, num_values=len(vocabulary), max_len=bags.shape[1])
    return spec, bags, vocabulary


def _first_occurrences(owners: np.ndarray, ids: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct (owner, id) pairs in order of first occurrence, each with its record."""
    _, first = np.unique(np.stack([owners, ids], axis=1), axis=0, return_index=True)
    first.sort()
    return owners[first], ids[first], records[first]


WIDE_PADDING = 2.0
"""A bag feature without ``max_len`` is padded to its longest bag; `read_tables` warns when that
width is more than this many times the 99th percentile of the feature's non-empty bags."""


def _wide_padding(where: str, feature: FeatureColumn, sizes: np.ndarray) -> list[str]:
    """A warning when the longest of the bag `sizes` is far above the 99th percentile."""
    filled = sizes[sizes > 0]
    if not filled.size:
        return []
    longest, typical = int(filled.max()), int(np.quantile(filled, 0.99, method="higher"))
    if longest <= WIDE_PADDING * typical:
        return []
    longer = int((filled > typical).sum())
    return [(
        f"{where}: feature {feature.name!r}: every bag is padded to the longest, {longest} values, while 99% "
        f"of the non-empty bags hold at most {typical}; max_len = {typical} with on_overflow = \"truncate\" "
        f"would store {typical} (and truncate {longer} {'bag' if longer == 1 else 'bags'})"
    )]


def _no_value(table: Table, feature: FeatureColumn) -> NoReturn:
    found = "" if feature.pattern is None else (
        f" where its pattern '{feature.pattern}' finds one (a match must be non-empty: an empty match, as "
        "of '\\d*' before any digit, is no value)"
    )
    _fail(f"{table.where(None, feature.column)}: feature {feature.name!r} has no value in any {table.unit}{found}")


def _dense(
    entity: str, table: Table, feature: FeatureColumn, keys: np.ndarray, rows: np.ndarray, size: int
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

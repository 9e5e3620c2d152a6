"""Item tables: an item corpus with the raw value behind every id, read from CSV/TSV or Parquet
files by the one table reader (`augkit.data.reader`) and encoder (`augkit.data.encoding`)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.data.encoding import encode, factorize, pad_bags
from augkit.data.reader import PARQUET, SEPARATORS, Bags, Source, Table, read_table, split_cells
from augkit.errors import BatchValidationError, ConfigError, UnknownNameError
from augkit.schema import Categorical, Dense, FeatureSchema, MultiCategorical


def _vocabularies(value: Mapping[str, Iterable[Any]]) -> Mapping[str, tuple[Any, ...]]:
    return MappingProxyType({name: tuple(values) for name, values in value.items()})


@attrs.frozen(eq=False)
class ItemTable:
    """An item corpus: row i of ``corpus`` is item i.

    ``vocabularies[name][id]`` is the raw value behind ``id`` of categorical or multi-valued
    feature ``name`` (one entry per id, ``num_values`` in all); dense features have none.
    """

    schema: FeatureSchema
    corpus: FeatureBatch
    vocabularies: Mapping[str, tuple[Any, ...]] = attrs.field(converter=_vocabularies)

    def __attrs_post_init__(self) -> None:
        if self.corpus.schema != self.schema:
            raise BatchValidationError("ItemTable: the corpus has another schema than the table")
        for spec in self.schema:
            if isinstance(spec, Dense):
                continue
            vocabulary = self.vocabularies.get(spec.name)
            if vocabulary is None or len(vocabulary) != spec.num_values:
                raise BatchValidationError(
                    f"ItemTable: feature {spec.name!r} has {spec.num_values} ids but a vocabulary "
                    f"of {'no' if vocabulary is None else len(vocabulary)} values"
                )
        extra = sorted(set(self.vocabularies) - set(self.schema.names))
        if extra:
            raise UnknownNameError("feature of the vocabularies", extra[0], self.schema.names)

    def __len__(self) -> int:
        return self.corpus.batch_size


def read_item_table(
    path: str | os.PathLike[str],
    *,
    multi_valued: Mapping[str, str] = MappingProxyType({}),
    drop: Iterable[str] = (),
    id_column: str | None = None,
    encoding: str = "utf-8",
) -> ItemTable:
    """Read an item table: a ``.csv`` (comma), ``.tsv``/``.tab``/``.dat`` (tab) file with a
    header, or a ``.parquet`` file (needs pyarrow).

    Each column not in `drop` becomes a categorical feature named after its header (which
    must be a Python identifier) with a vocabulary of its distinct values, encoded as every
    loader encodes (`augkit.data.encoding.encode`: numeric order when every value is an
    integer, else string order); cells are stripped and an empty cell is missing. Columns in
    `multi_valued` are split by the given separator into bags (sets: repeated values count
    once), as is a Parquet list column. `id_column` names a column of unique keys: each item's
    id is then its row number, and its vocabulary the keys in file order. Only the kept columns
    are held in memory; a UTF-8 byte-order mark is dropped. Errors name the file, line and
    column at fault.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in SEPARATORS and suffix != PARQUET:
        raise ConfigError(
            f"item table {str(file)!r}: unknown extension {file.suffix!r}; "
            f"expected one of {', '.join([*SEPARATORS, PARQUET])}"
        )
    drop = tuple(drop)
    for name, sep in multi_valued.items():
        if not isinstance(sep, str) or not sep:
            raise ConfigError(
                f"item table {str(file)!r}: separator of column {name!r} must be a non-empty "
                f"string, got {sep!r}"
            )

    def select(names: tuple[str, ...] | None, width: int) -> dict[str, int]:
        assert names is not None  # read with a header
        _check_header(file, names, multi_valued, drop, id_column)
        return {name: j for j, name in enumerate(names) if name not in drop}

    table = read_table(Source(path=file, encoding=encoding), select)
    if not len(table):
        raise ConfigError(f"item table {str(file)!r} has a header but no item rows")
    specs, values, vocabularies = [], {}, {}
    for name, cells in table.cells.items():
        bags = isinstance(cells, Bags) or name in multi_valued
        if name == id_column:
            vocabulary, ids = _keys(table, name)
        elif bags:
            vocabulary, ids = _bags(cells, multi_valued.get(name), len(table))
        else:
            vocabulary, ids = encode(cells)
        if not vocabulary:
            raise BatchValidationError(
                f"item table {str(file)!r}: column {name!r} has no value in any row; drop it"
            )
        if bags:
            specs.append(MultiCategorical(name=name, num_values=len(vocabulary), max_len=ids.shape[1]))
        else:
            specs.append(Categorical(name=name, num_values=len(vocabulary)))
        values[name], vocabularies[name] = ids, vocabulary
    if not specs:
        raise ConfigError(f"item table {str(file)!r}: every column is dropped")
    schema = FeatureSchema(specs)
    return ItemTable(schema, FeatureBatch.from_tensors(schema, values), vocabularies)


def _check_header(
    file: Path,
    header: tuple[str, ...],
    multi_valued: Mapping[str, str],
    drop: tuple[str, ...],
    id_column: str | None,
) -> None:
    """Column names are unique identifiers, and the named columns are in the header."""
    for name in header:
        if not name.isidentifier():
            raise ConfigError(
                f"item table {str(file)!r}, line 1: column name {name!r} is not an identifier "
                "(letters, digits, underscores); rename it"
            )
    if len(set(header)) != len(header):
        twice = next(name for name in header if header.count(name) > 1)
        raise ConfigError(f"item table {str(file)!r}, line 1: column {twice!r} appears twice")
    for what, names in (("multi-valued column", multi_valued), ("dropped column", drop)):
        for name in names:
            if name not in header:
                raise UnknownNameError(f"{what} of {str(file)!r}", name, header)
    if id_column is not None and (id_column not in header or id_column in drop or id_column in multi_valued):
        raise ConfigError(
            f"item table {str(file)!r}: id_column {id_column!r} must be a kept, single-valued "
            f"column of the header {list(header)}"
        )


def _keys(table: Table, name: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Row numbers as ids of a column of unique, non-empty keys."""
    keys = table.scalar(name, "id_column")
    empty = np.flatnonzero(keys == "")
    if empty.size:
        raise BatchValidationError(
            f"item table {str(table.file)!r}, {table.unit} {int(table.numbers[empty[0]])}: id column {name!r} is empty"
        )
    uniques, codes = factorize(keys)
    if len(uniques) < keys.size:
        rows = np.arange(keys.size)
        first = np.full(len(uniques), keys.size)
        np.minimum.at(first, codes, rows)
        again = int(np.flatnonzero(first[codes] != rows)[0])
        lines = table.numbers[[first[codes[again]], again]]
        raise BatchValidationError(
            f"item table {str(table.file)!r}: id column {name!r} repeats key {str(keys[again])!r} on {table.unit}s "
            f"{lines[0]} and {lines[1]}"
        )
    return tuple(keys.tolist()), np.arange(keys.size, dtype=np.int64)


def _bags(cells: np.ndarray | Bags, separator: str | None, size: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Vocabulary and padded bag ids of a Parquet list column, or of cells holding
    `separator`-joined values."""
    rows, values = (cells.records, cells.values) if isinstance(cells, Bags) else split_cells(cells, separator)
    vocabulary, ids = encode(values)
    return vocabulary, pad_bags(rows, ids, size)


NEAR_UNIQUE = 0.5
"""`categorical_warnings`: a categorical column is near-unique when at least this fraction of the
items have a value that no other item has."""
NUMERIC_LOOKING = 0.9
"""`categorical_warnings`: a categorical column whose distinct values are at least this fraction
numbers looks numeric."""


def categorical_warnings(table: ItemTable) -> list[str]:
    """Warnings, one line each, on single-valued categorical features that are probably not
    categories, in schema order:

    * near-unique: at least `NEAR_UNIQUE` of the items have a value of their own (one no other
      item has): it says little more than which item a row is, and its mutual information with
      any feature is close to that feature's own information;
    * numeric-looking: at least `NUMERIC_LOOKING` of its distinct string values parse as finite
      numbers: each number is a value of its own, unordered; a quantity is better a dense
      feature (``type = "dense"`` in a tables config). Values that are not strings (a loader
      chose their type, e.g. MovieLens years) are not checked.

    A feature named ``id`` or ``*_id`` is a key and exempt from both.
    """
    warnings = []
    for spec in table.schema:
        if not isinstance(spec, Categorical) or spec.name == "id" or spec.name.endswith("_id"):
            continue
        ids = table.corpus.values[spec.name][table.corpus.is_present(spec.name)]
        own = int((torch.bincount(ids, minlength=spec.num_values) == 1).sum())
        if own >= NEAR_UNIQUE * len(table):
            warnings.append(
                f"column {spec.name!r} is near-unique ({own} of the {len(table)} items have a value "
                "no other item has) but treated as categorical: if it is a key or free text, "
                "drop it (--drop)"
            )
        strings = [value for value in table.vocabularies[spec.name] if isinstance(value, str)]
        numeric = sum(map(_is_finite_number, strings))
        if strings and numeric >= NUMERIC_LOOKING * len(strings):
            warnings.append(
                f"column {spec.name!r} looks numeric ({numeric} of its {len(strings)} distinct values "
                "are numbers) but is treated as categorical, each number a value of its own: if it "
                'is a quantity, read it as a dense feature (type = "dense" in a tables config)'
            )
    return warnings


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False

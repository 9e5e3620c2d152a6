"""Item tables: an item corpus with the raw value behind every id, read from CSV/TSV files."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import numpy as np

from augkit.batch import FeatureBatch
from augkit.errors import BatchValidationError, ConfigError, UnknownNameError
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, MultiCategorical

SEPARATORS: Mapping[str, str] = MappingProxyType({".csv": ",", ".tsv": "\t", ".tab": "\t"})
"""Field separator of an item table file, by file extension."""


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


def pad_bags(rows: np.ndarray, ids: np.ndarray, num_rows: int) -> np.ndarray:
    """Bags as a padded int64 ``[num_rows, max_len]`` array (``MISSING`` as padding).

    ``(rows[e], ids[e])`` puts id ``ids[e]`` in the bag of row ``rows[e]``; a bag is a set
    (repeated ids count once) and keeps ids in ascending order. ``max_len`` is the largest bag
    (at least 1, so an all-empty column still has a slot).
    """
    pairs = np.unique(np.stack([rows, ids], axis=1).astype(np.int64), axis=0)
    rows, ids = pairs[:, 0], pairs[:, 1]
    sizes = np.bincount(rows, minlength=num_rows)
    starts = np.cumsum(sizes) - sizes
    slots = np.arange(rows.size) - starts[rows]
    out = np.full((num_rows, max(1, int(sizes.max(initial=0)))), MISSING, dtype=np.int64)
    out[rows, slots] = ids
    return out


def encode(values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Sorted vocabulary of the non-empty strings in `values` (``""`` is missing), and the int64
    ids of `values` in it (``MISSING`` where empty)."""
    values = np.asarray(values, dtype=str)
    filled = values != ""
    ids = np.full(values.shape, MISSING, dtype=np.int64)
    vocabulary, inverse = np.unique(values[filled], return_inverse=True)
    ids[filled] = inverse
    return tuple(vocabulary.tolist()), ids


def read_item_table(
    path: str | os.PathLike[str],
    *,
    multi_valued: Mapping[str, str] = MappingProxyType({}),
    drop: Iterable[str] = (),
    id_column: str | None = None,
    encoding: str = "utf-8",
) -> ItemTable:
    """Read an item table: a ``.csv`` (comma) or ``.tsv``/``.tab`` (tab) file with a header.

    Each column not in `drop` becomes a categorical feature named after its header (which
    must be a Python identifier) with a vocabulary of its distinct values, sorted as strings;
    cells are stripped and an empty cell is missing. Columns in `multi_valued` are split by the
    given separator into bags (sets: repeated values count once). `id_column` names a column
    of unique keys: each item's id is then its row number, and its vocabulary the keys in file
    order. Errors name the file, line and column at fault.
    """
    file = Path(path)
    separator = SEPARATORS.get(file.suffix.lower())
    if separator is None:
        raise ConfigError(
            f"item table {str(file)!r}: unknown extension {file.suffix!r}; "
            f"expected one of {', '.join(SEPARATORS)}"
        )
    header, rows = _read_rows(file, separator, encoding)
    drop = tuple(drop)
    for what, names in (("multi-valued column", multi_valued), ("dropped column", drop)):
        for name in names:
            if name not in header:
                raise UnknownNameError(f"{what} of {str(file)!r}", name, header)
    for name, sep in multi_valued.items():
        if not isinstance(sep, str) or not sep:
            raise ConfigError(
                f"item table {str(file)!r}: separator of column {name!r} must be a non-empty "
                f"string, got {sep!r}"
            )
    if id_column is not None and (id_column not in header or id_column in drop or id_column in multi_valued):
        raise ConfigError(
            f"item table {str(file)!r}: id_column {id_column!r} must be a kept, single-valued "
            f"column of the header {header}"
        )
    table = np.array(rows, dtype=str).reshape(len(rows), len(header))
    specs, values, vocabularies = [], {}, {}
    for j, name in enumerate(header):
        if name in drop:
            continue
        cells = table[:, j]
        if name == id_column:
            vocabulary, ids = _keys(file, name, cells)
        elif name in multi_valued:
            vocabulary, ids = _bags(cells, multi_valued[name])
        else:
            vocabulary, ids = encode(cells)
        if not vocabulary:
            raise BatchValidationError(
                f"item table {str(file)!r}: column {name!r} has no value in any row; drop it"
            )
        if name in multi_valued:
            specs.append(MultiCategorical(name=name, num_values=len(vocabulary), max_len=ids.shape[1]))
        else:
            specs.append(Categorical(name=name, num_values=len(vocabulary)))
        values[name], vocabularies[name] = ids, vocabulary
    if not specs:
        raise ConfigError(f"item table {str(file)!r}: every column is dropped")
    schema = FeatureSchema(specs)
    return ItemTable(schema, FeatureBatch.from_tensors(schema, values), vocabularies)


def _read_rows(file: Path, separator: str, encoding: str) -> tuple[list[str], list[list[str]]]:
    """Header (stripped, checked) and rows (stripped cells) of a delimited text file."""
    try:
        with file.open(newline="", encoding=encoding) as handle:
            lines = list(csv.reader(handle, delimiter=separator))
    except OSError as error:
        raise ConfigError(f"cannot read item table {str(file)!r}: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"item table {str(file)!r} is not {encoding} text ({error}); pass encoding=..."
        ) from None
    except csv.Error as error:
        raise ConfigError(f"item table {str(file)!r}: {error}") from None
    if not lines:
        raise ConfigError(f"item table {str(file)!r} is empty; expected a header line")
    header = [cell.strip() for cell in lines[0]]
    for name in header:
        if not name.isidentifier():
            raise ConfigError(
                f"item table {str(file)!r}, line 1: column name {name!r} is not an identifier "
                "(letters, digits, underscores); rename it"
            )
    if len(set(header)) != len(header):
        twice = next(name for name in header if header.count(name) > 1)
        raise ConfigError(f"item table {str(file)!r}, line 1: column {twice!r} appears twice")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if len(line) != len(header):
            raise ConfigError(
                f"item table {str(file)!r}, line {number}: {len(line)} fields, the header has {len(header)}"
            )
        rows.append([cell.strip() for cell in line])
    if not rows:
        raise ConfigError(f"item table {str(file)!r} has a header but no item rows")
    return header, rows


def _keys(file: Path, name: str, cells: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Row numbers as ids of a column of unique, non-empty keys."""
    keys = np.asarray(cells, dtype=str)
    empty = np.flatnonzero(keys == "")
    if empty.size:
        raise BatchValidationError(
            f"item table {str(file)!r}, line {int(empty[0]) + 2}: id column {name!r} is empty"
        )
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        duplicate = keys[first[counts > 1][0]]
        lines = np.flatnonzero(keys == duplicate)[:2] + 2
        raise BatchValidationError(
            f"item table {str(file)!r}: id column {name!r} repeats key {str(duplicate)!r} on lines "
            f"{lines[0]} and {lines[1]}"
        )
    return tuple(keys.tolist()), np.arange(keys.size, dtype=np.int64)


def _bags(cells: np.ndarray, separator: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Vocabulary and padded bag ids of cells holding `separator`-joined values."""
    tokens = [[t.strip() for t in cell.split(separator)] for cell in cells.tolist()]
    tokens = [[t for t in bag if t] for bag in tokens]
    rows = np.repeat(np.arange(len(tokens)), [len(bag) for bag in tokens])
    vocabulary, ids = encode(np.array([t for bag in tokens for t in bag], dtype=str))
    return vocabulary, pad_bags(rows, ids, len(tokens))

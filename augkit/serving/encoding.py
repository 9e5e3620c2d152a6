"""A request's raw input as internal ids: keys given one or many (`as_keys`), and new items'
raw feature rows as a `FeatureBatch` over the item schema (`ItemEncoder`).

Raw values are the ones of the data files: table keys, MovieLens ids, a feature's category
names; the run's `DataKeys` map them to ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.data.keys import DataKeys, KeyIndex
from augkit.errors import UnknownNameError
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema
from augkit.serving.errors import RunError, UnknownValueError

UNKNOWN_POLICIES = ("error", "missing")
"""What `ItemEncoder.encode` does with a value a vocabulary lacks: raise, or read it as missing."""


def as_keys(keys: Any) -> list[Any]:
    """A single key (int or text) or an iterable of keys, as a list."""
    if isinstance(keys, (str, bytes, int, np.integer)) or (isinstance(keys, torch.Tensor) and keys.ndim == 0):
        return [keys]
    return list(keys)


def table_columns(table: Any) -> dict[str, list[Any]]:
    """`table` (a mapping of columns, a pandas DataFrame, or a sequence of row mappings) as
    ``{name: column}``."""
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


@attrs.define(eq=False)
class ItemEncoder:
    """New items' raw feature values as ids of the item `schema`, through the run's `keys`:
    ``item_id`` through the item keys, every other categorical feature through its vocabulary
    in ``keys.item_vocabularies`` (or, without one, integer values taken as ids).
    `data_set` names the data in errors."""

    schema: FeatureSchema
    keys: DataKeys
    data_set: str
    _vocabularies: dict[str, KeyIndex] = attrs.field(factory=dict, init=False, repr=False)

    def encode(self, table: Any, *, unknown: str = "error") -> FeatureBatch:
        """A validated `FeatureBatch` over the item schema of the rows of `table` (see
        `Run.embed_items` for `table` and `unknown`)."""
        if unknown not in UNKNOWN_POLICIES:
            raise UnknownNameError("unknown-value policy", unknown, UNKNOWN_POLICIES)
        columns = table_columns(table)
        for name in columns:
            if name not in self.schema:
                raise UnknownNameError("item feature", name, self.schema.names)
        sizes = {len(column) for column in columns.values()}
        if len(sizes) > 1:
            raise RunError(f"embed_items: the feature columns differ in length: { {n: len(c) for n, c in columns.items()} }")
        size = sizes.pop() if sizes else 0
        if size == 0:
            raise RunError("embed_items: the table has no rows")
        values = {spec.name: self._column(spec, columns.get(spec.name), size, unknown) for spec in self.schema}
        return FeatureBatch.from_tensors(self.schema, values)

    def _vocabulary(self, name: str) -> KeyIndex | None:
        if name not in self._vocabularies:
            values = self.keys.item_vocabularies.get(name)
            if values is None:
                return None
            self._vocabularies[name] = KeyIndex(f"value of feature {name!r}", self.data_set, values)
        return self._vocabularies[name]

    def _column(self, spec: Any, column: Sequence[Any] | None, size: int, unknown: str) -> np.ndarray:
        """One feature's values for `size` items (``MISSING`` ids or zero vectors where absent)."""
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

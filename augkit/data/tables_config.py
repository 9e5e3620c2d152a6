"""The tables config: the files of your own data, as the ``[data.tables]`` table of a trainer
config or a plain mapping (`TablesConfig.from_dict`), read by `augkit.data.tables.read_tables`.

* ``interactions`` = ``{path, sep, header, encoding, user, item, timestamp}``: one event per
  record; ``user``/``item`` (required) and ``timestamp`` (optional: integer Unix seconds, or
  ISO-8601 times) are columns.
* ``items``, ``users`` (optional) = lists of feature files, each
  ``{path, sep, header, encoding, key, form, title, features}``: ``key`` is the item (user)
  column; ``title`` (item files only, at most one) a column shown beside each item's key by
  serving, never a feature; ``features`` maps each feature name to ``{type, column, max_len,
  on_overflow, separator, pattern, lowercase}``; ``type`` is one of `FEATURE_TYPES`.
* ``key_type`` (optional): how keys compare, ``"str"`` (default) or ``"int"`` for every key, or
  ``{user = ..., item = ...}`` (`KeyTypes`).
* ``name`` (optional): the data set's name (default ``"tables"``).

A column is a header name, or a 0-based index (the only choice when ``header = false``).
``sep`` defaults by extension (`augkit.data.reader.SEPARATORS`); ``.parquet`` files (through
pyarrow) take neither ``sep`` nor ``header``. Relative paths are resolved against `base_dir`
(default: the working directory).

The config is read as the rest of the trainer's config is (`augkit.config_io`): strict types,
unknown keys named with the closest valid key, and every fault ending with its key path, e.g.
``form must be one of 'wide', 'long', got 'tall' @ items[0].form``.
"""

from __future__ import annotations

import keyword
import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
from cattrs.errors import IterableValidationError, IterableValidationNote

from augkit.config_io import FAULTS, kind, strict, strict_converter, structure, structure_named, table_hook
from augkit.data.encoding import factorize
from augkit.data.reader import Column, Source
from augkit.validators import integer, one_of, registered

FEATURE_TYPES: tuple[str, ...] = ("categorical", "multi_categorical", "dense")
"""``categorical``: one value per key; ``multi_categorical``: a bag of values; ``dense``: one
number per key (a `Dense` feature of dim 1, float32)."""
KEY_TYPES: tuple[str, ...] = ("str", "int")
"""``str``: keys compare as text, NFC-normalised; ``int``: as integers (``01`` is ``1``)."""
FORMS: tuple[str, ...] = ("wide", "long")
"""``wide``: one record per key. ``long``: one record per (key, value); values gather in bags."""
OVERFLOWS: tuple[str, ...] = ("error", "truncate")
"""What a bag longer than its feature's ``max_len`` does: ``error`` (the default) stops the
read naming the key; ``truncate`` keeps the bag's first ``max_len`` distinct values in file
order (the order of the cell's values, or of a long-form file's records), and the read counts
the truncated bags in its warnings."""


def _column(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None and attribute.name in ("timestamp", "title"):
        return
    named = isinstance(value, str) and value != ""
    indexed = type(value) is int and value >= 0
    if not (named or indexed):
        raise ValueError(f"{attribute.name} must be a column name or a 0-based column index, got {value!r}")


def _optional_text(what: str) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            raise TypeError(f"{attribute.name} must be a non-empty string{what}, got {value!r}")
        if not value:
            raise ValueError(f"{attribute.name} must be a non-empty string{what}, got {value!r}")

    return check


def _named_columns_need_a_header(file: Source, columns: Mapping[str, Column | None]) -> None:
    named = [(key, column) for key, column in columns.items() if isinstance(column, str)]
    if named and not file.header:
        key, column = named[0]
        raise ValueError(f"{key} {column!r} is a name but header = false; give a 0-based column index")


@attrs.frozen(kw_only=True)
class FeatureColumn:
    r"""Feature `name` read from `column`: ``categorical`` (one value per key),
    ``multi_categorical`` (a bag per key; `separator` splits a cell into values, required in
    wide form unless the column is a Parquet list or `pattern` finds the values; `max_len`
    fixes the width, default the longest bag; a longer bag is an error, or with `on_overflow`
    ``"truncate"`` keeps its first `max_len` values, see `OVERFLOWS`) or ``dense`` (one finite
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
    type: str = attrs.field(validator=registered("feature type", FEATURE_TYPES))
    column: Column = attrs.field(validator=_column)
    max_len: int | None = attrs.field(default=None, validator=attrs.validators.optional(integer(1)))
    on_overflow: str = attrs.field(default="error", validator=one_of(*OVERFLOWS))
    separator: str | None = attrs.field(default=None, validator=_optional_text(""))
    pattern: str | None = attrs.field(default=None, validator=_optional_text(" (a Python regular expression)"))
    lowercase: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier() or keyword.iskeyword(self.name):
            raise ValueError(
                f"feature name {self.name!r} is not an identifier (letters, digits, underscores; no keyword)"
            )
        if self.type != "multi_categorical":
            for key in ("max_len", "separator"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} applies to multi_categorical features only")
            if self.on_overflow != "error":
                raise ValueError("on_overflow applies to multi_categorical features only")
        if self.on_overflow != "error" and self.max_len is None:
            raise ValueError(f"on_overflow = {self.on_overflow!r} needs max_len (the width a bag is cut to)")
        if self.type == "dense" and (self.pattern is not None or self.lowercase):
            raise ValueError("pattern and lowercase apply to categorical and multi_categorical features only")
        if self.pattern is not None:
            try:
                groups = re.compile(self.pattern).groups
            except re.error as error:
                raise ValueError(f"pattern '{self.pattern}' is not a regular expression: {error}") from None
            if groups > 1:
                raise ValueError(f"pattern '{self.pattern}' has {groups} groups; give it at most one (the value)")

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
class FeatureFile(Source):
    """Features of items (or users) in a table file, keyed by column `key`, in `form` ``wide``
    or ``long``. `title` (optional, item files only) names a column of display text, e.g. a
    movie's title: serving prints it beside the item's key (`augkit recommend`); it is never a
    feature."""

    key: Column = attrs.field(validator=_column)
    form: str = attrs.field(default="wide", validator=one_of(*FORMS))
    title: Column | None = attrs.field(default=None, validator=_column)
    features: tuple[FeatureColumn, ...] = attrs.field(converter=tuple)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if not self.features:
            raise ValueError("features is empty; name at least one feature")
        _named_columns_need_a_header(
            self, {"key": self.key, "title": self.title, **{f"features.{f.name}.column": f.column for f in self.features}}
        )
        if self.is_parquet:
            return  # a list column needs no separator: checked when read
        for feature in self.features:
            if (self.form == "wide" and feature.type == "multi_categorical" and feature.separator is None
                    and feature.pattern is None):
                raise ValueError(needs_separator(feature))


def needs_separator(feature: FeatureColumn) -> str:
    """The message for a multi-valued feature of a wide-form text file without a separator."""
    return (
        f"multi_categorical feature {feature.name!r} of a wide-form file needs a "
        "separator (the values of one cell are split by it), or use form = 'long'"
    )


@attrs.frozen(kw_only=True)
class InteractionFile(Source):
    """The interaction log, a table file: one (user, item[, timestamp]) event per record."""

    user: Column = attrs.field(validator=_column)
    item: Column = attrs.field(validator=_column)
    timestamp: Column | None = attrs.field(default=None, validator=_column)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        _named_columns_need_a_header(self, {"user": self.user, "item": self.item, "timestamp": self.timestamp})


@attrs.frozen(kw_only=True)
class KeyTypes:
    """How the user and the item keys compare, each one of `KEY_TYPES`: as NFC-normalised text
    (``str``, the default) or as integers (``int``: ``01`` and ``1`` are one key, a key that is
    not an integer is an error). Applies to the log's column and to every feature file's key.
    In a config, ``key_type = "int"`` sets both."""

    user: str = attrs.field(default="str", validator=one_of(*KEY_TYPES))
    item: str = attrs.field(default="str", validator=one_of(*KEY_TYPES))


@attrs.frozen(kw_only=True)
class TablesConfig:
    """Everything `augkit.data.tables.read_tables` reads (see the module docstring); build it
    from a plain mapping with `from_dict`."""

    interactions: InteractionFile
    items: tuple[FeatureFile, ...] = attrs.field(default=(), converter=tuple)
    users: tuple[FeatureFile, ...] = attrs.field(default=(), converter=tuple)
    key_type: KeyTypes = attrs.field(factory=KeyTypes)
    name: str = "tables"

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for entity, files in (("item", self.items), ("user", self.users)):
            owner: dict[str, Path] = {}
            for file in files:
                for feature in file.features:
                    if feature.name == f"{entity}_id":
                        raise ValueError(f"feature name {feature.name!r} is reserved: augkit adds it from the ids")
                    if feature.name in owner:
                        raise ValueError(
                            f"{entity} feature {feature.name!r} is defined twice, in "
                            f"{str(owner[feature.name])!r} and {str(file.path)!r}"
                        )
                    owner[feature.name] = file.path
        for file in self.users:
            if file.title is not None:
                raise ValueError(f"title applies to item files only; {str(file.path)!r} is a user file")
        titled = [file.path for file in self.items if file.title is not None]
        if len(titled) > 1:
            raise ValueError(
                f"title is given by {str(titled[0])!r} and {str(titled[1])!r}; name it in one item file"
            )

    @classmethod
    def from_dict(
        cls, config: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None
    ) -> TablesConfig:
        """Read a plain mapping (see the module docstring); relative paths are joined to
        `base_dir` when given. `ConfigError` names each fault's key path, e.g.
        ``... @ items[0].features.genre``."""
        tables = structure(_converter, config, cls)
        return tables if base_dir is None else tables.resolved(Path(base_dir))

    def resolved(self, base_dir: Path) -> TablesConfig:
        """This config with every relative file path joined to `base_dir`."""

        def under(file: Any) -> Any:
            return file if file.path.is_absolute() else attrs.evolve(file, path=base_dir / file.path)

        return attrs.evolve(
            self,
            interactions=under(self.interactions),
            items=tuple(map(under, self.items)),
            users=tuple(map(under, self.users)),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (TOML/JSON) that `from_dict` reads back to an equal config."""
        return _converter.unstructure(self)


# -- reading from plain data --------------------------------------------------------------------


def _features(value: Any, _: Any) -> tuple[FeatureColumn, ...]:
    """``features``: a table of feature name -> options."""
    return structure_named(value, FeatureColumn, _converter)


def _feature_files(value: Any, _: Any) -> tuple[FeatureFile, ...]:
    """``items`` or ``users``: a list of feature-file tables."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list of tables ([[...]] in TOML), got {value!r} ({kind(value)})")
    files, errors = [], []
    for i, entry in enumerate(value):
        try:
            files.append(_converter.structure(entry, FeatureFile))
        except FAULTS as error:  # collected, as cattrs collects a list's faults
            error.__notes__ = [*getattr(error, "__notes__", []), IterableValidationNote(f"file {i}", i, FeatureFile)]
            errors.append(error)
    if errors:
        raise IterableValidationError("While structuring feature files", errors, tuple[FeatureFile, ...])
    return tuple(files)


def _key_types(value: Any, _: Any) -> KeyTypes:
    """``key_type``: ``"str"``/``"int"`` for both, or a table ``{user, item}`` (each optional)."""
    if isinstance(value, str):
        if value not in KEY_TYPES:
            raise ValueError(f"must be one of {', '.join(map(repr, KEY_TYPES))} or a table {{user, item}}, got {value!r}")
        return KeyTypes(user=value, item=value)
    if not isinstance(value, Mapping):
        raise TypeError(
            f"expected one of {', '.join(map(repr, KEY_TYPES))} or a table {{user, item}}, got {value!r} ({kind(value)})"
        )
    return _key_types_table(value, KeyTypes)


def _unstructure_features(features: tuple[FeatureColumn, ...]) -> dict[str, Any]:
    return {f.name: {k: v for k, v in _converter.unstructure_attrs_asdict(f).items() if k != "name"} for f in features}


def _is_column(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


_converter = strict_converter()
_converter.register_structure_hook(
    Path,
    strict("a file path", lambda v: isinstance(v, (str, os.PathLike)) and str(v) != "", lambda v: Path(v).expanduser()),
)
_converter.register_unstructure_hook(Path, str)
_converter.register_structure_hook_func(
    lambda t: t == Column, strict("a column name or a 0-based column index", _is_column)
)
_converter.register_structure_hook_func(
    lambda t: t == Column | None,
    strict("a column name or a 0-based column index", lambda v: v is None or _is_column(v)),
)
_converter.register_structure_hook_func(lambda t: t == tuple[FeatureColumn, ...], _features)
_converter.register_unstructure_hook_func(lambda t: t == tuple[FeatureColumn, ...], _unstructure_features)
_converter.register_structure_hook_func(lambda t: t == tuple[FeatureFile, ...], _feature_files)
_key_types_table = table_hook(_converter, KeyTypes)
_converter.register_structure_hook(KeyTypes, _key_types)


def structure_tables(value: Any) -> TablesConfig:
    """A `TablesConfig` from plain data (relative paths kept); faults raise cattrs' errors, for
    a config reader to name their key paths (`augkit.config_io.messages`): the trainer's
    ``[data.tables]``."""
    return _converter.structure(value, TablesConfig)


def structure_item_files(value: Any) -> tuple[FeatureFile, ...]:
    """Feature files (``[[items]]`` tables) from plain data, read as ``[data.tables]`` reads
    its ``items``; faults raise cattrs' errors (see `structure_tables`)."""
    return _converter.structure(value, tuple[FeatureFile, ...])


def structure_key_types(value: Any) -> KeyTypes:
    """`KeyTypes` from ``"str"``, ``"int"`` or a table ``{user, item}``, as ``[data.tables]``
    reads its ``key_type``."""
    return _converter.structure(value, KeyTypes)


def unstructure_item_files(files: tuple[FeatureFile, ...]) -> list[dict[str, Any]]:
    """Plain data that `structure_item_files` reads back."""
    return _converter.unstructure(files, tuple[FeatureFile, ...])

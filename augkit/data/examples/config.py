"""The examples config: where the Parquet examples are and which column holds what, as the
``[data.examples]`` table of a trainer config or a plain mapping (`ExamplesConfig.from_dict`).

* ``path``: a directory (every file under it, each Parquet, a partitioned tree included;
  names starting with ``_`` or ``.`` are skipped), a glob (``"events/*.parquet"``, ``**`` for any
  depth) or one file.
* ``user``, ``item`` (default ``"user"``, ``"item"``): the key columns, strings or integers.
* ``timestamp``, ``weight`` (optional): an integer or timestamp column (read as Unix seconds),
  a numeric column (read as float32).
* ``features`` (optional): query features, ``{name = {column, type, max_len, on_overflow}}``;
  ``type`` ``categorical`` (one key per row) or ``multi_categorical`` (a list column, e.g.
  the user's recent item keys, padded to ``max_len``).
* ``shuffle_buffer`` (default 100 000): rows each reader shuffles at a time.

Read strictly, as the rest of the trainer's config (`augkit.config_io`): wrong types and unknown
keys are errors ending with their key path, e.g. ``max_len must be an integer >= 1, got 0 @
features.recent.max_len``.
"""

from __future__ import annotations

import keyword
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from augkit.config_io import strict, strict_converter, structure, structure_named
from augkit.validators import integer, one_of

FEATURE_TYPES: tuple[str, ...] = ("categorical", "multi_categorical")
"""``categorical``: one key per row (a string or integer column); ``multi_categorical``: a list
of keys per row (a list column of strings or integers)."""
OVERFLOWS: tuple[str, ...] = ("keep_last", "keep_first", "error")
"""What a list longer than its feature's ``max_len`` does: keep its last ``max_len`` values
(the default: the most recent, for a history in time order), its first ones, or stop the read
with a `augkit.errors.DataFileError` naming the file and row group."""
DEFAULT_SHUFFLE_BUFFER = 100_000
RESERVED: tuple[str, ...] = ("user", "item")
"""Names no query feature may take: they name the key columns' encoders."""


def _name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value):
        raise ValueError(f"feature name {value!r} is not an identifier (letters, digits, underscores; no keyword)")
    if value in RESERVED:
        raise ValueError(f"feature name {value!r} is reserved: {', '.join(map(repr, RESERVED))} name the key columns")


def _column(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is None and attribute.name in ("timestamp", "weight", "column"):
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a column name (a non-empty string), got {value!r}")


@attrs.frozen(kw_only=True)
class QueryFeature:
    """Query feature `name`, read from `column` (default: `name`): ``categorical`` (one key
    per row; a null is missing, id ``-1``) or ``multi_categorical`` (a list column; a null list
    is empty, null values are dropped, the order and repeats are kept; padded to `max_len`, a
    longer list cut as `on_overflow` says, see `OVERFLOWS`)."""

    name: str = attrs.field(validator=_name)
    type: str = attrs.field(validator=one_of(*FEATURE_TYPES))
    column: str | None = attrs.field(default=None, validator=_column)
    max_len: int | None = attrs.field(default=None, validator=attrs.validators.optional(integer(1)))
    on_overflow: str = attrs.field(default="keep_last", validator=one_of(*OVERFLOWS))

    def __attrs_post_init__(self) -> None:
        if self.type == "multi_categorical" and self.max_len is None:
            raise ValueError("max_len is required for a multi_categorical feature (the width of its padded list)")
        if self.type == "categorical" and (self.max_len is not None or self.on_overflow != "keep_last"):
            raise ValueError("max_len and on_overflow apply to multi_categorical features only")

    @property
    def source(self) -> str:
        """The column this feature reads."""
        return self.column if self.column is not None else self.name


@attrs.frozen(kw_only=True)
class ExamplesConfig:
    """Everything `augkit.data.examples.open_examples` reads (see the module docstring); build
    it from a plain mapping with `from_dict`."""

    path: Path = attrs.field(converter=Path)
    user: str = attrs.field(default="user", validator=_column)
    item: str = attrs.field(default="item", validator=_column)
    timestamp: str | None = attrs.field(default=None, validator=_column)
    weight: str | None = attrs.field(default=None, validator=_column)
    features: tuple[QueryFeature, ...] = attrs.field(default=(), converter=tuple)
    shuffle_buffer: int = attrs.field(default=DEFAULT_SHUFFLE_BUFFER, validator=integer(1))

    def __attrs_post_init__(self) -> None:
        owner: dict[str, str] = {}
        for role, column in self.roles().items():
            if column in owner:
                raise ValueError(f"column {column!r} is read twice, as {owner[column]} and as {role}")
            owner[column] = role

    def roles(self) -> dict[str, str]:
        """Each column read, by its role: ``user``, ``item``, ``timestamp``, ``weight`` and
        ``features.NAME``, in that order."""
        roles = {"user": self.user, "item": self.item}
        if self.timestamp is not None:
            roles["timestamp"] = self.timestamp
        if self.weight is not None:
            roles["weight"] = self.weight
        roles.update({f"features.{f.name}": f.source for f in self.features})
        return roles

    @property
    def is_glob(self) -> bool:
        """Whether `path` is a glob pattern (holds ``*``, ``?`` or ``[``)."""
        return any(char in str(self.path) for char in "*?[")

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None) -> ExamplesConfig:
        """Read a plain mapping (see the module docstring); a relative `path` is joined to
        `base_dir` when given. `ConfigError` names each fault's key path."""
        examples = structure(_converter, config, cls)
        if base_dir is None or examples.path.is_absolute():
            return examples
        return attrs.evolve(examples, path=Path(base_dir) / examples.path)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (TOML/JSON) that `from_dict` reads back to an equal config."""
        return _converter.unstructure(self)


def _features(value: Any, _: Any) -> tuple[QueryFeature, ...]:
    """``features``: a table of feature name -> options."""
    return structure_named(value, QueryFeature, _converter)


def _unstructure_features(features: tuple[QueryFeature, ...]) -> dict[str, Any]:
    return {
        f.name: {k: v for k, v in _converter.unstructure_attrs_asdict(f).items() if k != "name" and v is not None}
        for f in features
    }


_converter = strict_converter()
_converter.register_structure_hook(
    Path, strict("a path", lambda v: isinstance(v, (str, os.PathLike)) and str(v) != "", lambda v: Path(v).expanduser())
)
_converter.register_unstructure_hook(Path, str)
_converter.register_structure_hook_func(lambda t: t == tuple[QueryFeature, ...], _features)
_converter.register_unstructure_hook_func(lambda t: t == tuple[QueryFeature, ...], _unstructure_features)


def structure_examples(value: Any) -> ExamplesConfig:
    """An `ExamplesConfig` from plain data (a relative path kept); faults raise cattrs' errors,
    for a config reader to name their key paths (`augkit.config_io.messages`): the trainer's
    ``[data.examples]``."""
    return _converter.structure(value, ExamplesConfig)

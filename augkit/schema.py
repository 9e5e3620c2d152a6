"""Feature specs and the item (or query) schema.

Reserved ids — the one place they are defined
---------------------------------------------
For a categorical feature with ``num_values = V`` the real ids are ``0 .. V-1`` and:

* ``Categorical``: ``default_id = V`` (masked or missing). An embedding table needs
  ``V + 1`` rows (``spec.embedding_rows``).
* ``MultiCategorical``: ``padding_id = V`` (padding or dropped values) and
  ``default_id = V + 1`` (the whole bag masked or missing). An embedding table needs
  ``V + 2`` rows; pass ``padding_idx=spec.padding_id`` to ``nn.Embedding``/``nn.EmbeddingBag``.
* ``Dense``: a masked or missing vector reads as zeros.

User data marks a missing single value, and the padding of a bag, with ``-1``
(``MISSING``); `FeatureBatch` turns those into the reserved ids above.
"""

from __future__ import annotations

import keyword
import reprlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeAlias

import attrs

from augkit.config_io import check_depth
from augkit.errors import ConfigError, SchemaError, UnknownNameError, check_known_keys

__all__ = ["MISSING", "Categorical", "Dense", "FeatureSchema", "FeatureSpec", "MultiCategorical"]

MISSING = -1
"""The id that marks a missing value, or padding of a bag, in user data."""


def _check_name(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or not value or not value.isidentifier() or keyword.iskeyword(value):
        raise SchemaError(
            f"{type(instance).__name__}.name must be a non-empty identifier, got {value!r}"
        )


def _positive_int(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SchemaError(
            f"feature {getattr(instance, 'name', '?')!r}: {attribute.name} must be a positive int, "
            f"got {value!r}"
        )


@attrs.frozen(kw_only=True)
class Categorical:
    """A single-valued categorical feature with ids ``0 .. num_values-1``.

    Examples:
        >>> from augkit import Categorical
        >>> genre = Categorical(name="genre", num_values=3)
        >>> genre.default_id, genre.embedding_rows
        (3, 4)
    """

    name: str = attrs.field(validator=_check_name)
    num_values: int = attrs.field(validator=_positive_int)

    @property
    def default_id(self) -> int:
        """Id that stands for "masked or missing": ``num_values``."""
        return self.num_values

    @property
    def embedding_rows(self) -> int:
        """Rows an embedding table needs to hold every id, the default included."""
        return self.num_values + 1


@attrs.frozen(kw_only=True)
class MultiCategorical:
    """A multi-valued (bag) categorical feature: up to ``max_len`` ids ``0 .. num_values-1``.

    Examples:
        >>> from augkit import MultiCategorical
        >>> tags = MultiCategorical(name="tags", num_values=5, max_len=3)
        >>> tags.padding_id, tags.default_id, tags.embedding_rows
        (5, 6, 7)
    """

    name: str = attrs.field(validator=_check_name)
    num_values: int = attrs.field(validator=_positive_int)
    max_len: int = attrs.field(validator=_positive_int)

    @property
    def padding_id(self) -> int:
        """Id of padding and dropped values: ``num_values``."""
        return self.num_values

    @property
    def default_id(self) -> int:
        """Id that stands for "whole bag masked or missing": ``num_values + 1``."""
        return self.num_values + 1

    @property
    def embedding_rows(self) -> int:
        """Rows an embedding table needs: real ids, padding and default."""
        return self.num_values + 2


@attrs.frozen(kw_only=True)
class Dense:
    """A dense float feature of ``dim`` values per item.

    Examples:
        >>> from augkit import Dense
        >>> Dense(name="price", dim=1)
        Dense(name='price', dim=1)
    """

    name: str = attrs.field(validator=_check_name)
    dim: int = attrs.field(validator=_positive_int)


FeatureSpec: TypeAlias = Categorical | MultiCategorical | Dense
"""Any one feature spec."""
_SPEC_TYPES: dict[str, type] = {
    "categorical": Categorical,
    "multi_categorical": MultiCategorical,
    "dense": Dense,
}


def _features(value: Any) -> tuple:
    """Converter: any iterable of specs (a list, a tuple) as a tuple; a mapping, a string or a
    non-iterable is a `SchemaError` naming the argument."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        hint = "; build a schema from a dict with FeatureSchema.from_dict" if isinstance(value, Mapping) else ""
        raise SchemaError(
            "FeatureSchema(features): expected a list of Categorical, MultiCategorical or Dense "
            f"specs, got {type(value).__name__}{hint}"
        )
    return tuple(value)


def _check_features(instance: Any, attribute: attrs.Attribute, value: tuple) -> None:
    if not value:
        raise SchemaError("a FeatureSchema needs at least one feature")
    seen: set[str] = set()
    for spec in value:
        if not isinstance(spec, (Categorical, MultiCategorical, Dense)):
            raise SchemaError(
                f"FeatureSchema takes Categorical, MultiCategorical or Dense specs, got "
                f"{reprlib.repr(spec)} ({type(spec).__name__})"
            )
        if spec.name in seen:
            raise SchemaError(f"feature {spec.name!r} appears twice in the schema")
        seen.add(spec.name)


@attrs.frozen
class FeatureSchema:
    """An ordered tuple of name-unique feature specs.

    The order fixes the columns of `FeatureBatch.present` and of a mutual-information matrix.

    Examples:
        >>> from augkit import Categorical, FeatureSchema, MultiCategorical
        >>> schema = FeatureSchema(
        ...     [Categorical(name="genre", num_values=3), MultiCategorical(name="tags", num_values=5, max_len=3)]
        ... )
        >>> schema.names, schema.multi_valued, schema.index("tags")
        (('genre', 'tags'), ('tags',), 1)

        A schema round-trips through a plain dict (TOML/JSON):

        >>> schema.to_dict()["features"][0]
        {'type': 'categorical', 'name': 'genre', 'num_values': 3}
        >>> FeatureSchema.from_dict(schema.to_dict()) == schema
        True
    """

    features: tuple[FeatureSpec, ...] = attrs.field(converter=_features, validator=_check_features)
    _index: Mapping[str, int] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_index", {spec.name: i for i, spec in enumerate(self.features)})

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names, in schema order."""
        return tuple(spec.name for spec in self.features)

    @property
    def multi_valued(self) -> tuple[str, ...]:
        """Names of the `MultiCategorical` features, in schema order."""
        return tuple(s.name for s in self.features if isinstance(s, MultiCategorical))

    def __len__(self) -> int:
        return len(self.features)

    def __iter__(self) -> Iterator[FeatureSpec]:
        return iter(self.features)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __getitem__(self, name: str) -> FeatureSpec:
        return self.features[self.index(name)]

    def index(self, name: str) -> int:
        """Column of feature `name` in ``present``; `UnknownNameError` if absent."""
        try:
            return self._index[name]
        except KeyError:
            raise UnknownNameError("feature", name, self.names) from None

    def indices(self, names: tuple[str, ...] | None) -> tuple[int, ...]:
        """Columns of `names` (all features when None)."""
        if names is None:
            return tuple(range(len(self)))
        return tuple(self.index(n) for n in names)

    def to_dict(self) -> dict[str, Any]:
        """A plain, TOML/JSON-able description: ``{"features": [{"type", "name", ...}]}``."""
        kinds = {cls: kind for kind, cls in _SPEC_TYPES.items()}
        return {
            "features": [{"type": kinds[type(s)], **attrs.asdict(s)} for s in self.features]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        """Inverse of `to_dict`; errors name the feature entry at fault."""
        if not isinstance(data, Mapping) or set(data) != {"features"}:
            got = sorted(map(str, data)) if isinstance(data, Mapping) else type(data).__name__
            raise ConfigError(f"a schema dict has exactly one key 'features', got {got}")
        check_depth(data, "schema dict")
        entries = data["features"]
        if not isinstance(entries, (list, tuple)):
            raise ConfigError(
                f"schema 'features' must be a list of tables, got {type(entries).__name__}"
            )
        specs = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise ConfigError(f"schema entry {i} must be a table, got {entry!r}")
            entry = dict(entry)
            kind = entry.pop("type", None)
            if kind is None:
                raise ConfigError(
                    f"schema entry {i} ({entry.get('name', '?')!r}) lacks 'type'; "
                    f"expected one of {', '.join(_SPEC_TYPES)}"
                )
            if not isinstance(kind, str) or kind not in _SPEC_TYPES:
                raise UnknownNameError(f"feature type in schema entry {i}", kind, _SPEC_TYPES)
            spec_cls = _SPEC_TYPES[kind]
            fields = [f.name for f in attrs.fields(spec_cls)]
            missing = [f for f in fields if f not in entry]
            if missing:
                raise ConfigError(f"schema entry {i} ({kind}) lacks {', '.join(missing)}")
            check_known_keys(f"key of schema entry {i} ({kind})", entry, fields)
            specs.append(spec_cls(**entry))
        return cls(specs)

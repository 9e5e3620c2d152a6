"""Raw keys: the user's own user and item keys (table keys, MovieLens ids) behind the dense ids
``0..n-1`` of a `RecDataset`, the item titles where the loader has them, and the raw value
behind every id of each item feature.

Each data source gives its keys (`augkit.data.sources.load_with_keys`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import torch

from augkit.data.dataset import RecDataset
from augkit.errors import AugkitError
from augkit.schema import Dense

_SHOWN = 5
"""How many keys an `UnknownKeyError` shows."""


class UnknownKeyError(AugkitError, LookupError):
    """A user or item key that the run's data does not have. ``entity`` is ``"user"`` or
    ``"item"``, ``key`` the key asked for."""

    def __init__(self, entity: str, key: object, known: KeyIndex, *, where: str = "") -> None:
        first = ", ".join(repr(k) for k in known.keys[:_SHOWN])
        more = f", ... ({len(known)} in all)" if len(known) > _SHOWN else ""
        hint = ""
        if isinstance(key, str) and _integer(key.strip()) is None and known.keys and not isinstance(known.keys[0], str):
            hint = "; the keys are integers"
        super().__init__(
            f"unknown {entity} key {key!r}{f' in {where}' if where else ''}: the {entity}s of "
            f"data set {known.dataset!r} have keys {first}{more}{hint}"
        )
        self.entity = entity
        self.key = key


def _canonical(key: object) -> object:
    """The lookup form of a key: an int stays an int; text is stripped and NFC-normalised, and
    text that spells an integer (``"042"``) also answers to that integer."""
    if isinstance(key, bool):
        return key
    if isinstance(key, int):
        return key
    if hasattr(key, "item") and callable(key.item):  # numpy / torch scalars
        return _canonical(key.item())
    if isinstance(key, str):
        return unicodedata.normalize("NFC", key.strip())
    return key


def _integer(text: str) -> int | None:
    body = text[1:] if text[:1] in "+-" else text
    return int(text) if body.isdecimal() and body.isascii() else None


@attrs.frozen(eq=False)
class KeyIndex:
    """The raw keys of one entity: ``keys[i]`` is the key of dense id ``i``.

    Keys are ints (MovieLens, synthetic) or strings (tables). Lookup accepts either form: an
    integer key also answers to its decimal text (``"42"``), and a text key that spells an
    integer to that integer (``42`` finds ``"42"``; ``"042"`` finds ``"42"`` when the tables
    used ``key_type = "int"``).
    """

    entity: str
    dataset: str
    keys: tuple[Any, ...] = attrs.field(converter=tuple)
    _lookup: dict[Any, int] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        lookup: dict[Any, int] = {}
        for i, key in enumerate(self.keys):
            lookup.setdefault(_canonical(key), i)
        for i, key in enumerate(self.keys):  # integer spellings, after the exact keys
            if isinstance(key, str) and (number := _integer(key.strip())) is not None:
                lookup.setdefault(number, i)
        object.__setattr__(self, "_lookup", lookup)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return self.find(key) is not None

    def find(self, key: object) -> int | None:
        """The dense id of `key`, or None when the data lacks it."""
        canonical = _canonical(key)
        try:
            found = self._lookup.get(canonical)
        except TypeError:  # unhashable
            return None
        if found is None and isinstance(canonical, str) and (number := _integer(canonical)) is not None:
            found = self._lookup.get(number)
        if found is None and isinstance(canonical, int):
            found = self._lookup.get(str(canonical))
        return found

    def index(self, keys: Iterable[Any], *, where: str = "") -> torch.Tensor:
        """``LongTensor[n]``: the dense id of each key; `UnknownKeyError` for the first key the
        data lacks (`where` says where it came from, e.g. a file and line)."""
        out = []
        for key in keys:
            found = self.find(key)
            if found is None:
                raise UnknownKeyError(self.entity, key, self, where=where)
            out.append(found)
        return torch.tensor(out, dtype=torch.long)

    def key_of(self, ids: torch.Tensor | Sequence[int]) -> tuple[Any, ...]:
        """The raw key of each dense id (``None`` for ``-1``)."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return tuple(None if i < 0 else self.keys[i] for i in values)


def _vocabularies(value: Mapping[str, Iterable[Any]]) -> Mapping[str, tuple[Any, ...]]:
    return MappingProxyType({name: tuple(values) for name, values in value.items()})


@attrs.frozen(eq=False)
class DataKeys:
    """The raw side of a data set: user and item keys, item titles (``None`` when the loader
    has none; ``titles[i]`` is item i's, ``None`` for an item without one), and ``item_vocabularies[name][id]``, the raw value
    behind ``id`` of item feature ``name`` (``user_vocabularies`` likewise; dense features and
    features whose loader keeps no vocabulary have none)."""

    users: KeyIndex
    items: KeyIndex
    titles: tuple[str | None, ...] | None = None
    item_vocabularies: Mapping[str, tuple[Any, ...]] = attrs.field(factory=dict, converter=_vocabularies)
    user_vocabularies: Mapping[str, tuple[Any, ...]] = attrs.field(factory=dict, converter=_vocabularies)


def identity_keys(dataset: RecDataset) -> DataKeys:
    """Keys that are the dense ids themselves, and every categorical value its own id (the
    synthetic data, or any `RecDataset` built without raw keys)."""
    def vocabularies(schema: Any) -> dict[str, tuple[int, ...]]:
        return {spec.name: tuple(range(spec.num_values)) for spec in schema if not isinstance(spec, Dense)}

    return DataKeys(
        users=KeyIndex("user", dataset.name, range(dataset.num_users)),
        items=KeyIndex("item", dataset.name, range(dataset.num_items)),
        item_vocabularies=vocabularies(dataset.items.schema),
        user_vocabularies=vocabularies(dataset.users.schema),
    )

"""Strict reading of config tables (attrs classes) from TOML/JSON data, with key-path errors.

`strict_converter` structures plain data into attrs classes without coercion (``"false"`` is not
a bool, ``1.5`` not an int); unknown keys are errors that name the closest valid key.
`structure` turns every fault into one `ConfigError` whose lines end with where the fault
stands, ``message @ source.table.key`` (``epochs must be an integer >= 1, got 0 @
run.toml.epochs``). The trainer's config and the tables config are read with it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
import cattrs.gen
from cattrs.errors import IterableValidationError, IterableValidationNote

from augkit.errors import ConfigError, UnknownNameError

T = TypeVar("T")
Homes = Callable[[str], list[str]]
"""``homes(key)``: the tables (as ``[main]``) where an unknown `key` would be valid, for a hint."""


def kind(value: Any) -> str:
    """What `value` is, in TOML words: ``a boolean``, ``an integer``, ``a table``..."""
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}.get(
        type(value),
        "a table" if isinstance(value, Mapping) else "a list" if isinstance(value, list) else type(value).__name__,
    )


FAULTS = (ValueError, TypeError, LookupError, cattrs.BaseValidationError)
"""What structuring one entry raises for bad data: a validator's fault, a wrong type, a missing
or unknown key, or cattrs' collected faults."""


def structure_named(value: Any, cls: type[T], converter: cattrs.Converter) -> tuple[T, ...]:
    """A TOML table of name -> options (``features.genres = { ... }``) as `cls` instances, each
    structured by `converter` from its options with ``name`` set to its key; a ``name`` key in
    the options is refused. Every entry's fault is collected, as cattrs collects a list's."""
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table of feature name -> options, got {value!r} ({kind(value)})")
    entries, errors = [], []
    for name, options in value.items():
        try:
            if isinstance(options, Mapping) and "name" in options:
                raise ValueError("unknown key 'name' (a feature's name is its key in features)")
            entries.append(converter.structure({**options, "name": name} if isinstance(options, Mapping) else options, cls))
        except FAULTS as error:
            error.__notes__ = [*getattr(error, "__notes__", []), IterableValidationNote(f"feature {name}", name, cls)]
            errors.append(error)
    if errors:
        raise IterableValidationError("While structuring features", errors, tuple[cls, ...])
    return tuple(entries)


def strict(
    expected: str, accepts: Callable[[Any], bool], convert: Callable[[Any], Any] = lambda v: v
) -> Callable[[Any, Any], Any]:
    """A structure hook that accepts only values `accepts` holds for (`expected` says which, in
    the message) and returns ``convert(value)``."""

    def structure(value: Any, _: Any) -> Any:
        if not accepts(value):
            raise TypeError(f"expected {expected}, got {value!r} ({kind(value)})")
        return convert(value)

    return structure


def _int_tuple(value: Any, _: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"expected a list of integers, got {value!r} ({kind(value)})")
    for i, item in enumerate(value):
        if type(item) is not int:
            raise TypeError(f"expected a list of integers, item {i} is {item!r} ({kind(item)})")
    return tuple(value)


def strict_converter() -> cattrs.Converter:
    """A converter for config tables: bool, int, float (ints accepted), str, ``tuple[int, ...]``
    and ``dict[str, Any]`` (a table) accept only their own kind; an attrs class is a table with
    no extra keys. Register further hooks on it for your own field types."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(bool, strict("true or false", lambda v: isinstance(v, bool)))
    converter.register_structure_hook(int, strict("an integer", lambda v: type(v) is int))
    converter.register_structure_hook(
        float, strict("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), float)
    )
    converter.register_structure_hook(str, strict("a string", lambda v: isinstance(v, str)))
    converter.register_structure_hook_func(lambda t: t == tuple[int, ...], _int_tuple)
    converter.register_structure_hook_func(
        lambda t: t == dict[str, Any], strict("a table", lambda v: isinstance(v, Mapping), dict)
    )

    converter.register_structure_hook_factory(attrs.has, lambda cls: table_hook(converter, cls))
    return converter


def table_hook(converter: cattrs.Converter, cls: type) -> Callable[[Any, Any], Any]:
    """The structure hook of attrs class `cls` as a config table: anything but a mapping is a
    type error, not a crash; a key that is no field of `cls` is an error."""
    structure_fields = cattrs.gen.make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True)

    def hook(value: Any, type_: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a table, got {value!r} ({kind(value)})")
        return structure_fields(value, type_)

    return hook


def structure(converter: cattrs.Converter, data: Any, cls: type[T], *, source: str = "", homes: Homes | None = None) -> T:
    """``converter.structure(data, cls)``; every fault becomes one `ConfigError`, a ``message @
    path`` line per fault joined by ``; ``, the path starting at `source` (a file name, or ``""``)."""
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as error:
        raise ConfigError("; ".join(messages(error, source, homes=homes))) from None
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{error} @ {source}" if source else str(error)) from None


def _no_homes(key: str) -> list[str]:
    return []


def _unknown_keys(error: cattrs.ForbiddenExtraKeysError, homes: Homes) -> str:
    known = [f.name for f in attrs.fields(error.cl)]
    parts = []
    for key in sorted(error.extra_fields):
        elsewhere = homes(key)
        close = difflib.get_close_matches(key, known, n=1)
        if elsewhere:
            hint = f"; it belongs in {' or '.join(elsewhere)}"
        else:
            hint = f"; did you mean {close[0]!r}?" if close else ""
        parts.append(f"unknown key {key!r}{hint} (valid: {', '.join(known)})")
    return "; ".join(parts)


def messages(error: BaseException, path: str, *, homes: Homes | None = None) -> list[str]:
    """One ``message @ path`` line per leaf of a cattrs error tree; `homes` gives the hint for
    an unknown key."""
    homes = homes or _no_homes
    if isinstance(error, cattrs.ForbiddenExtraKeysError):
        text = _unknown_keys(error, homes)
        return [f"{text} @ {path}" if path else text]
    if isinstance(error, cattrs.ClassValidationError):
        noted, plain = error.group_exceptions()
        lines = [  # a missing key is said of the table that lacks it
            line
            for exc, note in noted
            for line in messages(exc, path if isinstance(exc, KeyError) else join(path, note.name), homes=homes)
        ]
        fields = attrs.fields_dict(error.cl)
        for exc in plain:  # a validator's message starts with the key it checks, or says where
            key = exc.where if isinstance(exc, UnknownNameError) else re.match(r"\w+", str(exc))
            key = key if isinstance(key, str) else key[0] if key else ""
            lines += messages(exc, join(path, key) if key in fields else path, homes=homes)
        return lines
    if isinstance(error, cattrs.IterableValidationError):
        noted, plain = error.group_exceptions()
        lines = [line for exc, note in noted for line in messages(exc, _item(path, note.index), homes=homes)]
        return lines + [line for exc in plain for line in messages(exc, path, homes=homes)]
    if isinstance(error, KeyError) and error.args:
        return [f"required key {error.args[0]!r} is missing" + (f" @ {path}" if path else "")]
    return [f"{error} @ {path}" if path else str(error)]


def _item(path: str, index: int | str) -> str:
    """The key path of a list's item (an int index) or a table's entry (a str key)."""
    return join(path, index) if isinstance(index, str) else f"{path}[{index}]"


def join(path: str, key: str) -> str:
    """The key path of `key` inside the table at `path`."""
    return f"{path}.{key}" if path else key


MAX_DEPTH = 64
"""How deep tables and lists may nest in a config, or a JSON file, that augkit reads: an
augmentation pipeline of ``two_views``/``sequential`` nested about 20 deep fits."""


def check_depth(data: Any, what: str, *, limit: int = MAX_DEPTH) -> None:
    """`ConfigError` naming `what` (a file, or a key path) when tables and lists in `data` nest
    deeper than `limit`. The walk holds its own stack, so no depth exhausts Python's."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, Mapping):
            children: Any = ((str(k), v) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            children = ((f"[{i}]", v) for i, v in enumerate(value))
        else:
            continue
        if len(path) >= limit:
            shown = "".join(k if k.startswith("[") else f".{k}" for k in path[:6]).lstrip(".")
            raise ConfigError(
                f"{what}: tables and lists nest more than {limit} deep (at {shown}...); augkit "
                f"reads configs and JSON files nested at most {limit} deep"
            )
        stack.extend((v, (*path, k)) for k, v in children if isinstance(v, (Mapping, list, tuple)))

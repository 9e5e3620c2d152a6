"""The interface between a column's raw keys and the ids a tower embeds: a `KeyEncoder` per
key column (user, item) and per query feature. A vocabulary or a hashing encoder
(`augkit.data.vocab`) is one; its out-of-vocabulary policy (a bucket, the default embedding)
is its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from augkit.errors import BatchValidationError, ConfigError
from augkit.schema import MISSING

if TYPE_CHECKING:
    import pyarrow as pa


@runtime_checkable
class KeyEncoder(Protocol):
    """Turns raw keys into ids."""

    def encode(self, values: pa.Array) -> np.ndarray:
        """The id of each of `values`, a pyarrow array of strings or integers with no null (a
        dictionary-encoded column arrives decoded): a 1-D int64 array of the same length, each
        id ``>= 0``, or ``-1`` (``MISSING``: the tower's default embedding)."""
        ...


def check_encoders(encoders: Mapping[str, object], names: tuple[str, ...]) -> dict[str, KeyEncoder]:
    """The encoder of each of `names` (``user``, ``item``, then the query features'); a
    `ConfigError` naming one that is missing, unknown or has no ``encode`` method."""
    missing = [name for name in names if name not in encoders]
    if missing:
        raise ConfigError(f"no encoder for {', '.join(map(repr, missing))}; give one for each of {', '.join(names)}")
    unknown = sorted(set(encoders) - set(names))
    if unknown:
        raise ConfigError(
            f"encoders for {', '.join(map(repr, unknown))}, which the examples config does not read "
            f"(it reads {', '.join(names)})"
        )
    for name in names:
        if not isinstance(encoders[name], KeyEncoder):
            raise ConfigError(
                f"the encoder for {name!r} ({type(encoders[name]).__name__}) has no encode(values) method"
            )
    return {name: encoders[name] for name in names}  # type: ignore[misc]


def encode(encoder: KeyEncoder, values: pa.Array, name: str) -> np.ndarray:
    """``encoder.encode(values)``, checked: a `BatchValidationError` naming `name` and the
    encoder when the ids are not 1-D int64 of the right length, or below ``MISSING``."""
    ids = encoder.encode(values)
    who = f"the encoder for {name!r} ({type(encoder).__name__})"
    if not isinstance(ids, np.ndarray) or ids.dtype != np.int64 or ids.shape != (len(values),):
        shape = getattr(ids, "shape", None)
        raise BatchValidationError(
            f"{who} returned {type(ids).__name__} of dtype {getattr(ids, 'dtype', None)} and shape {shape} "
            f"for {len(values)} keys; expected a 1-D int64 numpy array of {len(values)} ids"
        )
    if ids.size and int(ids.min()) < MISSING:
        raise BatchValidationError(f"{who} returned id {int(ids.min())}; ids are >= 0, or -1 for the default embedding")
    return ids

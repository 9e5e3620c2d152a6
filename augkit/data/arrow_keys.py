"""Keys as pyarrow arrays: their canonical form (`canonical_keys`) and a stable 64-bit hash of
that form (`fnv1a64`), shared by the vocabularies, the hashing of keys into rows and the user
partitions of ``augkit data examples``.

Canonical form, as the tables reader compares keys (`augkit.data.tables`): with ``key_type =
"str"`` a key is text, stripped of surrounding white space and NFC-normalised (an integer column
becomes its decimal text); with ``key_type = "int"`` a key is an int64 (text is parsed, so
``"01"`` is ``1``). A null or empty key is missing.

The hash is FNV-1a 64 (offset basis ``0xcbf29ce484222325``, prime ``0x100000001b3``) over the
UTF-8 bytes of a key's canonical text (an int key: its decimal digits), computed in numpy: the
same in every process, run and platform, unlike Python's ``hash``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from augkit.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

KEY_TYPES: tuple[str, ...] = ("str", "int")
"""``str``: keys compare as stripped, NFC-normalised text; ``int``: as int64 integers."""

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
HASH_NAME = "fnv1a64"
"""The name of the hash written beside hashed features and vocabularies."""


def arrow_type(key_type: str) -> pa.DataType:
    """The pyarrow type of canonical keys of `key_type`."""
    import pyarrow as pa  # optional: keys as arrays need pyarrow

    return pa.int64() if key_type == "int" else pa.string()


def canonical_keys(values: pa.Array | pa.ChunkedArray, key_type: str, *, what: str) -> pa.Array:
    """`values` (text or integers, dictionary-encoded or not) in canonical form (see the module
    docstring): a ``string`` or ``int64`` array, nulls kept (null also where text is empty).
    `ConfigError` naming `what` (a file and column) for another type, or text that is not an
    integer under ``key_type = "int"``."""
    import pyarrow as pa  # optional: keys as arrays need pyarrow
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.dictionary_decode(), kind.value_type
    integer = pa.types.is_integer(kind)
    if not (integer or pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ConfigError(f"{what}: keys must be text or integers, got type {kind}")
    if integer:
        return pc.cast(values, pa.int64()) if key_type == "int" else pc.cast(values, pa.string())
    text = pc.utf8_normalize(pc.utf8_trim_whitespace(pc.cast(values, pa.string())), form="NFC")
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    if key_type == "str":
        return text
    try:
        return pc.cast(text, pa.int64())
    except pa.ArrowInvalid as error:
        raise ConfigError(f'{what}: a key is not an integer (key_type = "int"): {error}') from None


def fnv1a64(keys: pa.Array) -> np.ndarray:
    """``uint64[n]``: FNV-1a 64 of the UTF-8 text of each canonical key (int keys: their decimal
    digits); a null key hashes as the empty text."""
    import pyarrow as pa  # optional: keys as arrays need pyarrow
    import pyarrow.compute as pc

    text = pc.fill_null(pc.cast(keys, pa.large_string()), "")
    _, offsets_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")  # longest first: byte j of the keys longer than j is a prefix
    starts, sorted_lengths = starts[order], lengths[order]
    hashes = np.full(len(text), FNV_OFFSET, dtype=np.uint64)
    longer = np.searchsorted(-sorted_lengths, -np.arange(int(lengths.max(initial=0))), side="left")
    for byte, count in enumerate(longer.tolist()):  # count: the keys longer than `byte` bytes
        hashes[:count] ^= data[starts[:count] + byte]
        hashes[:count] *= FNV_PRIME
    out = np.empty_like(hashes)
    out[order] = hashes
    return out


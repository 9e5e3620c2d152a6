"""Keys to embedding rows when the keys are not known up front: a `Vocabulary` built out of core
in one pass over a column, or `HashedKeys`, hashing into a fixed number of rows.

Both have one interface, which a reader of streamed examples takes:

* ``encode(values: pyarrow.Array) -> numpy.ndarray`` (int64, one id per value): a known key
  gets its row ``0 .. num_rows - 1``; a null or empty value is missing (``MISSING``, -1, the
  feature's default embedding); an unknown key never wraps and never raises: it goes to the
  out-of-vocabulary row or to missing, as `oov` says (hashing: to its hash bucket);
* ``num_rows``: the rows of the feature's embedding table (not counting the default row);
* ``oov``: ``"bucket"`` (a vocabulary's unknown keys share row 0), ``"missing"`` (they read as
  the default embedding) or ``"hashed"`` (`HashedKeys`: every key has a bucket).

Values are canonicalised as keys are (`augkit.data.arrow_keys.canonical_keys`), so a vocabulary
of ``key_type = "int"`` finds ``"007"`` as ``7``. A vocabulary's ids never change once given:
`Vocabulary.extend` appends new keys after the existing ids (the out-of-vocabulary row stays
row 0), for continuing a run on newer data. Files: a vocabulary is a Parquet file (columns
``key``, ``count``; its settings in the schema metadata), a hashing spec a JSON file; `load`
reads either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from augkit.atomic import write_text, writing
from augkit.data.arrow_keys import HASH_NAME, KEY_TYPES, arrow_type, canonical_keys, fnv1a64
from augkit.data.log_reader import log_files, read_log
from augkit.errors import ConfigError
from augkit.schema import MISSING
from augkit.validators import one_of

if TYPE_CHECKING:
    import pyarrow as pa

OOV_POLICIES: tuple[str, ...] = ("bucket", "missing")
"""A vocabulary's unknown keys: ``bucket``, row 0, shared by them all (known keys are rows
``1 ..``); ``missing``: the feature's default embedding, as a missing value (known keys are
rows ``0 ..``)."""
OOV_ROW = 0
"""The row of every unknown key of a vocabulary with ``oov = "bucket"``."""
METADATA_KEY = b"augkit.vocabulary"
"""The Parquet schema-metadata key holding a vocabulary's settings (JSON)."""


def _what(what: str) -> str:
    return what or "the values to encode"


@attrs.frozen(eq=False)
class Vocabulary:
    """Keys with fixed ids: ``keys[i]`` (canonical, distinct, no nulls) is row ``i + 1`` with
    ``oov = "bucket"`` (row 0 is every unknown key), row ``i`` with ``oov = "missing"``.
    ``counts[i]`` is how often key i was seen when built (0 for a key `extend` added without
    counts)."""

    keys: pa.Array
    counts: np.ndarray = attrs.field(converter=lambda c: np.asarray(c, dtype=np.int64))
    key_type: str = attrs.field(default="str", validator=one_of(*KEY_TYPES))
    oov: str = attrs.field(default="bucket", validator=one_of(*OOV_POLICIES))
    _hashes: np.ndarray = attrs.field(init=False, repr=False)
    _order: np.ndarray = attrs.field(init=False, repr=False)
    _twins: dict[Any, int] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        import pyarrow.compute as pc  # optional: vocabularies hold pyarrow arrays

        if self.keys.type != arrow_type(self.key_type):
            raise ConfigError(f"vocabulary keys of key_type {self.key_type!r} must be {arrow_type(self.key_type)}, got {self.keys.type}")
        if self.keys.null_count:
            raise ConfigError("a vocabulary key is null")
        if len(self.counts) != len(self.keys):
            raise ConfigError(f"a vocabulary has {len(self.keys)} keys but {len(self.counts)} counts")
        if pc.count_distinct(self.keys).as_py() != len(self.keys):
            raise ConfigError("a vocabulary holds a key twice")
        hashes = _hashes(self.keys)
        order = np.argsort(hashes, kind="stable")
        shared = hashes[order][1:] == hashes[order][:-1]
        twins = np.unique(np.concatenate([order[1:][shared], order[:-1][shared]]))
        object.__setattr__(self, "_hashes", hashes[order])
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_twins", dict(zip(self.keys.take(twins).to_pylist(), twins.tolist(), strict=True)))

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def first_row(self) -> int:
        """The row of ``keys[0]``: 1 with an out-of-vocabulary bucket, else 0."""
        return 1 if self.oov == "bucket" else 0

    @property
    def num_rows(self) -> int:
        """Rows of the embedding table: the keys, and the out-of-vocabulary row with ``bucket``."""
        return len(self.keys) + self.first_row

    def encode(self, values: pa.Array | pa.ChunkedArray, *, what: str = "") -> np.ndarray:
        """``int64[n]``: the row of each value (see the module docstring); `what` names the
        values (a file and column) in the `ConfigError` for values of a type keys cannot have."""
        import pyarrow.compute as pc  # optional: vocabularies hold pyarrow arrays

        keys = canonical_keys(values, self.key_type, what=_what(what))
        hashes = _hashes(keys)
        place = np.minimum(np.searchsorted(self._hashes, hashes), max(len(self._hashes) - 1, 0))
        index = self._order[place] if len(self._order) else np.zeros(len(keys), dtype=np.int64)
        found = self._hashes[place] == hashes if len(self._hashes) else np.zeros(len(keys), dtype=bool)
        if self.key_type == "str":  # equal hashes: the texts must be equal too
            candidates = np.flatnonzero(found)
            same = pc.equal(keys.take(candidates), self.keys.take(index[candidates]))
            found[candidates] = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
        if self._twins:
            for i, key in enumerate(keys.to_pylist()):
                if key in self._twins:
                    found[i], index[i] = True, self._twins[key]
        unknown = OOV_ROW if self.oov == "bucket" else MISSING
        out = np.where(found, index + self.first_row, unknown).astype(np.int64)
        out[keys.is_null().to_numpy(zero_copy_only=False)] = MISSING
        return out

    def known(self, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """``bool[n]``: whether each value's key is in the vocabulary (never for a null)."""
        return self.encode(values) >= self.first_row

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[Any]:
        """The key of each row (None for ``MISSING`` and the out-of-vocabulary row); a row out of
        range is a `ConfigError`."""
        rows = np.asarray(ids, dtype=np.int64)
        bad = np.flatnonzero((rows < MISSING) | (rows >= self.num_rows))
        if bad.size:
            raise ConfigError(f"row {int(rows[bad[0]])} is outside the vocabulary's {self.num_rows} rows")
        index = rows - self.first_row
        keys = self.keys.take(np.clip(index, 0, max(len(self.keys) - 1, 0))).to_pylist() if len(self.keys) else [None] * rows.size
        return [key if i >= 0 else None for key, i in zip(keys, index.tolist(), strict=True)]

    def extend(self, keys: Iterable[Any] | pa.Array, counts: Iterable[int] | None = None) -> Vocabulary:
        """A vocabulary with `keys` not already in this one appended, in their order (a key given
        twice counts once): every existing key keeps its row. `counts` go with `keys` (default 0)."""
        import pyarrow as pa  # optional: vocabularies hold pyarrow arrays

        given = keys if isinstance(keys, (pa.Array, pa.ChunkedArray)) else pa.array(list(keys))
        new = canonical_keys(given, self.key_type, what="the keys to add")
        numbers = np.zeros(len(new), dtype=np.int64) if counts is None else np.asarray(list(counts), dtype=np.int64)
        if numbers.size != len(new):
            raise ConfigError(f"extend got {len(new)} keys but {numbers.size} counts")
        candidates = np.flatnonzero(~self.known(new) & ~new.is_null().to_numpy(zero_copy_only=False))
        table = pa.table({"key": new.take(candidates), "at": candidates})
        first = table.group_by("key", use_threads=False).aggregate([("at", "min")])
        at = np.sort(first.column("at_min").to_numpy())
        if not at.size:
            return self
        return Vocabulary(
            pa.concat_arrays([self.keys, new.take(at)]),
            np.concatenate([self.counts, numbers[at]]),
            key_type=self.key_type,
            oov=self.oov,
        )

    def save(self, path: str | Path, **notes: Any) -> None:
        """Write the vocabulary as Parquet (atomically); `notes` (e.g. the column it was built
        from) go into its metadata beside ``key_type`` and ``oov``."""
        import pyarrow as pa  # optional: vocabularies hold pyarrow arrays
        import pyarrow.parquet as pq

        settings = {"kind": "vocabulary", "key_type": self.key_type, "oov": self.oov, **notes}
        table = pa.table({"key": self.keys, "count": self.counts}).replace_schema_metadata(
            {METADATA_KEY: json.dumps(settings).encode()}
        )
        with writing(path) as temporary:
            pq.write_table(table, temporary)


def _hashes(keys: pa.Array) -> np.ndarray:
    """``uint64[n]`` lookup hashes: an int key itself, a text key its FNV-1a 64 (nulls: any)."""
    import pyarrow as pa  # optional: vocabularies hold pyarrow arrays
    import pyarrow.compute as pc

    if pa.types.is_integer(keys.type):
        return pc.fill_null(keys, 0).to_numpy().view(np.uint64)
    return fnv1a64(keys)


@attrs.frozen
class HashedKeys:
    """Keys hashed into `num_rows` rows: row ``fnv1a64(key) % num_rows`` (`augkit.data.arrow_keys`:
    the same in every process, run and platform). Every key has a row (``oov = "hashed"``);
    distinct keys may share one."""

    num_rows: int = attrs.field()
    key_type: str = attrs.field(default="str", validator=one_of(*KEY_TYPES))
    hash: str = attrs.field(default=HASH_NAME, validator=one_of(HASH_NAME))
    oov: str = attrs.field(default="hashed", init=False)

    @num_rows.validator
    def _positive(self, attribute: attrs.Attribute, value: int) -> None:
        if type(value) is not int or value < 1:
            raise ConfigError(f"num_rows of hashed keys must be a positive integer, got {value!r}")

    def encode(self, values: pa.Array | pa.ChunkedArray, *, what: str = "") -> np.ndarray:
        """``int64[n]``: the bucket of each value, ``MISSING`` where null or empty."""
        keys = canonical_keys(values, self.key_type, what=_what(what))
        out = (fnv1a64(keys) % np.uint64(self.num_rows)).astype(np.int64)
        out[keys.is_null().to_numpy(zero_copy_only=False)] = MISSING
        return out

    def save(self, path: str | Path, **notes: Any) -> None:
        """Write the spec as JSON (atomically), with `notes` beside it."""
        spec = {"kind": "hashing", "hash": self.hash, "num_rows": self.num_rows, "key_type": self.key_type, **notes}
        write_text(path, json.dumps(spec, indent=2) + "\n")


def load(path: str | Path) -> Vocabulary | HashedKeys:
    """The vocabulary (``.parquet``) or hashing spec (``.json``) saved at `path`; `ConfigError`
    naming the file when it is missing, unreadable or not one of them."""
    import pyarrow as pa  # optional: vocabularies hold pyarrow arrays
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"vocabulary file {str(path)!r} does not exist")
    if path.suffix.lower() == ".json":
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
            if spec.get("kind") != "hashing":
                raise ValueError(f"kind is {spec.get('kind')!r}, not 'hashing'")
            return HashedKeys(spec["num_rows"], key_type=spec["key_type"], hash=spec["hash"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"{str(path)!r} is not a hashing spec written by augkit: {error}") from None
    try:
        table = pq.read_table(path)
        settings = json.loads((table.schema.metadata or {})[METADATA_KEY])
        return Vocabulary(
            table.column("key").combine_chunks(),
            table.column("count").to_numpy(),
            key_type=settings["key_type"],
            oov=settings["oov"],
        )
    except (OSError, pa.ArrowException, KeyError, ValueError, TypeError) as error:
        raise ConfigError(f"{str(path)!r} is not a vocabulary written by augkit: {error}") from None


# -- building out of core -----------------------------------------------------------------
@attrs.frozen
class KeyCounts:
    """One pass over a column: its distinct canonical `keys`, how often each occurs (`counts`),
    the values read (`values`) and how many of them were missing (`missing`)."""

    keys: pa.Array
    counts: np.ndarray
    values: int
    missing: int


MERGE_ROWS = 1 << 20
"""Partial counts are merged once they hold this many rows more than the last merge's result:
memory stays near the column's distinct keys and one batch."""


def count_keys(path: str | Path, column: str, *, key_type: str = "str") -> KeyCounts:
    """Count the keys of `column` over the log at `path` (`augkit.data.log_reader.log_files`),
    one record batch at a time; null and empty values are counted as missing."""
    import pyarrow as pa  # optional: vocabularies hold pyarrow arrays

    roles = {"key": column}
    merged = pa.table({"key": pa.array([], arrow_type(key_type)), "count": pa.array([], pa.int64())})
    partials: list[pa.Table] = []
    pending = values = missing = 0
    for chunk in read_log(log_files(path), roles):
        keys = canonical_keys(chunk.batch.column("key"), key_type, what=chunk.where("key", roles))
        values += len(keys)
        missing += keys.null_count
        counted = pa.table({"key": keys}).group_by("key", use_threads=False).aggregate([("key", "count")])
        partials.append(counted.rename_columns(["key", "count"]))
        pending += counted.num_rows
        if pending > merged.num_rows + MERGE_ROWS:
            merged, partials, pending = _merge([merged, *partials]), [], 0
    merged = _merge([merged, *partials])
    return KeyCounts(merged.column("key").combine_chunks(), merged.column("count").to_numpy(), values, missing)


def _merge(tables: list[pa.Table]) -> pa.Table:
    import pyarrow as pa  # optional: vocabularies hold pyarrow arrays

    summed = pa.concat_tables(tables).group_by("key", use_threads=False).aggregate([("count", "sum")])
    return summed.rename_columns(["key", "count"])


def by_frequency(counts: KeyCounts) -> tuple[pa.Array, np.ndarray]:
    """The keys (nulls dropped) by descending count, ties by ascending key, and their counts."""
    import pyarrow as pa  # optional: vocabularies hold pyarrow arrays
    import pyarrow.compute as pc

    table = pa.table({"key": counts.keys, "count": counts.counts}).filter(pc.is_valid(counts.keys))
    table = table.sort_by([("count", "descending"), ("key", "ascending")])
    return table.column("key").combine_chunks(), table.column("count").to_numpy()


@attrs.frozen
class VocabularyReport:
    """What a build kept: `size` keys of `distinct`, covering `covered` of the `values` read
    that were not `missing`."""

    size: int
    distinct: int
    values: int
    missing: int
    covered: int

    @property
    def coverage(self) -> float:
        """The share of non-missing values whose key is in the vocabulary (1.0 when none)."""
        present = self.values - self.missing
        return self.covered / present if present else 1.0


def build_vocabulary(
    counts: KeyCounts,
    *,
    key_type: str = "str",
    max_size: int | None = None,
    min_count: int = 1,
    oov: str = "bucket",
    extend: Vocabulary | None = None,
) -> tuple[Vocabulary, VocabularyReport]:
    """The keys seen at least `min_count` times, most frequent first (ties: ascending key), at
    most `max_size` of them; with `extend`, that vocabulary's keys keep their rows and the new
    keys follow, up to `max_size` in all. The report counts coverage over `counts`."""
    if max_size is not None and (type(max_size) is not int or max_size < 0):
        raise ConfigError(f"max_size must be a non-negative integer, got {max_size!r}")
    if type(min_count) is not int or min_count < 1:
        raise ConfigError(f"min_count must be a positive integer, got {min_count!r}")
    keys, numbers = by_frequency(counts)
    kept = numbers >= min_count
    keys, numbers = keys.filter(kept), numbers[kept]
    if extend is None:
        limit = len(keys) if max_size is None else max_size
        vocabulary = Vocabulary(keys.slice(0, limit), numbers[:limit], key_type=key_type, oov=oov)
    else:
        if extend.key_type != key_type:
            raise ConfigError(f"the vocabulary to extend has key_type {extend.key_type!r}, not {key_type!r}")
        if max_size is not None and len(extend) > max_size:
            raise ConfigError(f"the vocabulary to extend already holds {len(extend)} keys, more than max_size={max_size}")
        new = np.flatnonzero(~extend.known(keys))
        if max_size is not None:
            new = new[: max_size - len(extend)]
        vocabulary = extend.extend(keys.take(new), numbers[new])
    distinct = len(counts.keys) - counts.keys.null_count
    report = VocabularyReport(len(vocabulary), distinct, counts.values, counts.missing, _covered(vocabulary, counts))
    return vocabulary, report


def _covered(vocabulary: Vocabulary, counts: KeyCounts) -> int:
    """How many of the counted values have their key in `vocabulary`."""
    return int(counts.counts[vocabulary.known(counts.keys)].sum())


@attrs.frozen
class HashingReport:
    """The `distinct` keys seen and the `buckets` of `num_rows` they fill."""

    distinct: int
    buckets: int
    num_rows: int

    @property
    def keys_per_bucket(self) -> float:
        """Distinct keys per filled bucket (1.0: no collision)."""
        return self.distinct / self.buckets if self.buckets else 1.0

    @property
    def collision_rate(self) -> float:
        """The share of distinct keys that share their bucket with an earlier key:
        ``1 - buckets / distinct``."""
        return 1.0 - self.buckets / self.distinct if self.distinct else 0.0


def hashing_report(hashed: HashedKeys, counts: KeyCounts) -> HashingReport:
    """How the keys counted in `counts` fill the buckets of `hashed`."""
    rows = hashed.encode(counts.keys)
    rows = rows[rows != MISSING]
    return HashingReport(int(rows.size), int(np.unique(rows).size), hashed.num_rows)

"""From an interaction log of any size to an examples dataset (`augkit.data.event_columns`): each
event with the user's previous items by time, built out of core with pyarrow.

Two passes, memory bounded by `memory_limit` rather than by the log:

1. The log is read in record batches (`augkit.data.log_reader`) and every event is spilled to
   an Arrow file of its user's partition ``p = h % partitions`` and sub-partition ``s`` (``h``:
   `fnv1a64` of the user key; ``s`` from the high bits of ``h``, ranges of the hash in order),
   with its position in the log. The number of sub-partitions is chosen from the log's estimated
   size so that one holds about ``memory_limit / BYTES_PER_ROW`` events.
2. Each sub-partition in turn is loaded and sorted by (``h``, user, timestamp, position); a
   user's history window is then a slice of the sorted items, written in chunks to the
   partition's Parquet file. As sub-partitions split the hash into ranges in order, a file is
   sorted by (``h``, user, timestamp, position) whatever their number: the output does not
   depend on `memory_limit`.

One user's events must fit in memory: a sub-partition holds whole users.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from augkit.atomic import staged_directory
from augkit.data import event_columns as ec
from augkit.data.arrow_keys import KEY_TYPES, arrow_type, fnv1a64
from augkit.data.log_reader import Chunk, keys_of, log_files, read_log, seconds_of, weights_of
from augkit.data.reader import PARQUET
from augkit.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

BYTES_PER_ROW = 256
"""Working memory per event of a sub-partition while its histories are built (the columns, the
sort and the window bounds), an upper estimate measured on string keys."""
MAX_SPILL_FILES = 1000
"""At most this many spill files are open at once (one per sub-partition), below the usual limit
of 1024 open files per process."""
CHUNK_ROWS = 1 << 16
"""Events per chunk written (and per Parquet row group at most)."""
_SPILL = ".spill"
_HASH, _ROW = "_hash", "_row"


@attrs.frozen
class LogColumns:
    """The log's columns: `user`, `item`, `timestamp` (required) and `weight` (None: every
    event weighs 1)."""

    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    weight: str | None = None

    def roles(self) -> dict[str, str]:
        """Output column -> log column."""
        named = {ec.USER: self.user, ec.ITEM: self.item, ec.TIMESTAMP: self.timestamp}
        return named if self.weight is None else {**named, ec.WEIGHT: self.weight}


@attrs.frozen
class ExamplesReport:
    """What `build_examples` wrote: `rows[part]` events per part (``"all"``, or ``"train"`` and
    ``"after"`` with a cut) in `partitions` files each, from `events` events in `seconds`;
    `sub_partitions` per partition were built in turn."""

    out: Path
    events: int
    rows: dict[str, int]
    partitions: int
    sub_partitions: int
    seconds: float


def estimate_rows(files: Sequence[Path]) -> int:
    """The events in `files`: exact for Parquet (its metadata), from the first MiB's lines for text."""
    import pyarrow as pa  # optional: logs out of core need pyarrow
    import pyarrow.parquet as pq

    total = 0
    for file in files:
        if file.suffix.lower() == PARQUET:
            try:
                total += pq.ParquetFile(file).metadata.num_rows
            except (OSError, pa.ArrowException) as error:
                raise ConfigError(f"cannot read Parquet file {str(file)!r}: {error}") from None
        else:
            size = file.stat().st_size
            with file.open("rb") as handle:
                sample = handle.read(1 << 20)
            total += math.ceil(size * max(sample.count(b"\n"), 1) / max(len(sample), 1))
    return total


def _check_out(out: Path, overwrite: bool) -> None:
    if out.is_file():
        raise ConfigError(f"output {str(out)!r} is a file; expected a directory for the examples")
    if not out.exists():
        return
    if not overwrite:
        raise ConfigError(f"output directory {str(out)!r} exists; pass --overwrite to replace it")
    if any(out.iterdir()) and not (out / ec.MANIFEST).is_file():
        raise ConfigError(
            f"output directory {str(out)!r} is not an examples dataset (no {ec.MANIFEST}); "
            "not replacing it, choose another directory"
        )


def build_examples(
    log: str | Path,
    out: str | Path,
    *,
    columns: LogColumns = LogColumns(),
    history: int = 20,
    partitions: int = 8,
    cut: int | None = None,
    key_type: str = "str",
    memory_limit: int = 2 << 30,
    overwrite: bool = False,
) -> ExamplesReport:
    """Write the examples of the log at `log` (a file, directory or glob:
    `augkit.data.log_reader.log_files`) to the directory `out` (see the module docstring and
    `augkit.data.event_columns`): `history` previous items per event, `partitions` files; with
    `cut` (Unix seconds), events before it go to ``train/`` and the others to ``after/`` (their
    histories still hold every earlier event). The directory is written beside `out` and moved in
    place at the end, so a failure leaves `out` as it was; an existing `out` is refused unless
    `overwrite` (and then only an examples dataset, or an empty directory, is replaced).

    `ConfigError` (`UnknownNameError` for a missing column) names the file, column and row: a
    missing or unreadable file, a column of the wrong type, an empty key or timestamp, a weight
    that is not a finite number.
    """
    for name, value, least in (("history", history, 0), ("partitions", partitions, 1), ("memory_limit", memory_limit, 1)):
        if type(value) is not int or value < least:
            raise ConfigError(f"{name} must be an integer of at least {least}, got {value!r}")
    if key_type not in KEY_TYPES:
        raise ConfigError(f"key_type must be one of {', '.join(map(repr, KEY_TYPES))}, got {key_type!r}")
    started = time.perf_counter()
    out = Path(out)
    files = log_files(log)
    _check_out(out, overwrite)
    target_rows = max(1, memory_limit // BYTES_PER_ROW)
    subs = max(1, math.ceil(estimate_rows(files) / target_rows / partitions))
    if partitions * subs > MAX_SPILL_FILES:
        raise ConfigError(
            f"{partitions} partitions of {subs} sub-partitions each would spill to {partitions * subs} files, more than "
            f"{MAX_SPILL_FILES}; raise memory_limit (now {memory_limit:,} bytes) or lower partitions"
        )
    with staged_directory(out) as staged:
        spill = staged / _SPILL
        spill.mkdir()
        events = _spill(files, columns, key_type, spill, partitions, subs)
        parts = ("train", "after") if cut is not None else ("all",)
        rows = dict.fromkeys(parts, 0)
        for p in range(partitions):
            with ExitStack() as stack:
                writers = {part: stack.enter_context(_writer(staged, part, p, key_type, cut is not None)) for part in parts}
                for s in range(subs):
                    for chunk in _examples(spill / _spill_name(p, s), history):
                        for part, piece in _by_cut(chunk, cut):
                            if not piece.num_rows:
                                continue
                            writers[part].write_table(piece)
                            rows[part] += piece.num_rows
        spill.rmdir()
        manifest = {
            "format": ec.FORMAT,
            "columns": list(ec.COLUMNS),
            "key_type": key_type,
            "history": history,
            "partitions": partitions,
            "partition_by": f"fnv1a64({ec.USER}) % partitions",
            "cut": cut,
            "rows": rows,
            "sources": [str(f) for f in files],
            "log_columns": columns.roles(),
        }
        (staged / ec.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return ExamplesReport(out, events, rows, partitions, subs, time.perf_counter() - started)


def _spill_name(p: int, s: int) -> str:
    return f"{p:05d}-{s:05d}.arrow"


def _spill(files: Sequence[Path], columns: LogColumns, key_type: str, spill: Path, partitions: int, subs: int) -> int:
    """Pass 1: every event to the Arrow file of its (partition, sub-partition); the events read."""
    import pyarrow as pa  # optional: logs out of core need pyarrow

    roles = columns.roles()
    keys = arrow_type(key_type)
    schema = pa.schema([
        (ec.USER, keys), (ec.ITEM, keys), (ec.TIMESTAMP, pa.int64()), (ec.WEIGHT, pa.float32()),
        (_ROW, pa.int64()), (_HASH, pa.uint64()),
    ])
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    position = 0
    with ExitStack() as stack:
        writers = [
            stack.enter_context(pa.ipc.new_file(str(spill / _spill_name(p, s)), schema, options=options))
            for p in range(partitions) for s in range(subs)
        ]
        for chunk in read_log(files, roles):
            batch = _events(chunk, roles, key_type, position, schema)
            position += batch.num_rows
            hashes = batch.column(_HASH).to_numpy()
            bucket = (hashes % np.uint64(partitions)).astype(np.int64) * subs + _sub(hashes, subs)
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(len(writers) + 1))
            ordered = batch.take(order)
            for b in np.flatnonzero(np.diff(bounds)).tolist():
                writers[b].write_batch(ordered.slice(int(bounds[b]), int(bounds[b + 1] - bounds[b])))
    return position


def _sub(hashes: np.ndarray, subs: int) -> np.ndarray:
    """The sub-partition of each hash: ranges of its high 32 bits, in order."""
    return (((hashes >> np.uint64(32)) * np.uint64(subs)) >> np.uint64(32)).astype(np.int64)


def _events(chunk: Chunk, roles: dict[str, str], key_type: str, position: int, schema: pa.Schema) -> pa.RecordBatch:
    """A chunk of the log as canonical event columns, its log positions and user hashes."""
    import pyarrow as pa  # optional: logs out of core need pyarrow

    users = keys_of(chunk, ec.USER, roles, key_type)
    n = len(users)
    weights = weights_of(chunk, ec.WEIGHT, roles) if ec.WEIGHT in roles else np.ones(n, dtype=np.float32)
    return pa.RecordBatch.from_arrays(
        [
            users,
            keys_of(chunk, ec.ITEM, roles, key_type),
            pa.array(seconds_of(chunk, ec.TIMESTAMP, roles)),
            pa.array(weights),
            pa.array(np.arange(position, position + n, dtype=np.int64)),
            pa.array(fnv1a64(users)),
        ],
        schema=schema,
    )


def _writer(staged: Path, part: str, p: int, key_type: str, split: bool) -> Any:
    """The Parquet writer of partition `p` of `part` (a sub-directory when the output is split)."""
    import pyarrow as pa  # optional: logs out of core need pyarrow
    import pyarrow.parquet as pq

    folder = staged / part if split else staged
    folder.mkdir(exist_ok=True)
    keys = arrow_type(key_type)
    schema = pa.schema([
        (ec.USER, keys), (ec.ITEM, keys), (ec.TIMESTAMP, pa.int64()), (ec.WEIGHT, pa.float32()),
        (ec.HISTORY, pa.list_(keys)),
    ])
    return pq.ParquetWriter(folder / f"part-{p:05d}.parquet", schema)


def _examples(file: Path, history: int) -> Iterator[pa.Table]:
    """Pass 2 for one sub-partition: its events sorted by (hash, user, timestamp, position), each
    with its history, in chunks of `CHUNK_ROWS`; the spill file is removed once read."""
    import pyarrow as pa  # optional: logs out of core need pyarrow
    import pyarrow.compute as pc

    with pa.memory_map(str(file)) as source:
        events = pa.ipc.open_file(source).read_all()
    file.unlink()
    events = events.sort_by([(_HASH, "ascending"), (ec.USER, "ascending"), (ec.TIMESTAMP, "ascending"), (_ROW, "ascending")])
    events = events.combine_chunks()
    n = events.num_rows
    if not n:
        return
    users, items = events.column(ec.USER).chunk(0), events.column(ec.ITEM).chunk(0)
    times = events.column(ec.TIMESTAMP).to_numpy()
    index = np.arange(n)
    new_user = np.ones(n, dtype=bool)
    new_user[1:] = pc.not_equal(users.slice(1), users.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    new_time = new_user.copy()
    new_time[1:] |= times[1:] != times[:-1]
    user_start = np.maximum.accumulate(np.where(new_user, index, 0))
    end = np.maximum.accumulate(np.where(new_time, index, 0))  # the first event at the same time
    begin = np.maximum(user_start, end - history)
    del index, new_user, new_time, user_start
    kept = events.select([ec.USER, ec.ITEM, ec.TIMESTAMP, ec.WEIGHT])
    for lo in range(0, n, CHUNK_ROWS):
        hi = min(lo + CHUNK_ROWS, n)
        lengths = end[lo:hi] - begin[lo:hi]
        offsets = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        take = np.arange(offsets[-1], dtype=np.int64) + np.repeat(begin[lo:hi] - offsets[:-1], lengths)
        windows = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), items.take(take))
        yield kept.slice(lo, hi - lo).append_column(ec.HISTORY, windows)


def _by_cut(chunk: pa.Table, cut: int | None) -> Iterator[tuple[str, pa.Table]]:
    """The chunk's events by part: all, or those before `cut` (train) and the others (after)."""
    if cut is None:
        yield "all", chunk
        return
    before = chunk.column(ec.TIMESTAMP).to_numpy() < cut
    yield "train", chunk.filter(before)
    yield "after", chunk.filter(~before)

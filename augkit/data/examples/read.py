"""Read a reader's rows from the Parquet files and encode them, one shuffle block at a time.

Rows are read in Arrow record batches of at most `READ_ROWS` rows from one row group at a time,
so memory is the block being filled plus one record batch, whatever the row groups' size. A
damaged page, a null in a key, timestamp or weight column, a weight that is not finite and a
list longer than its feature's ``max_len`` (with ``on_overflow = "error"``) are
`DataFileError`s naming the file, the row group (and the row), raised when the block holding
them is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from augkit.data.examples.config import QueryFeature
from augkit.data.examples.encoder import KeyEncoder, encode
from augkit.data.examples.files import ExampleFiles
from augkit.data.examples.rows import EncodedRows, Ragged
from augkit.errors import DataFileError
from augkit.schema import MISSING

if TYPE_CHECKING:
    import pyarrow as pa

READ_ROWS = 65_536
"""The most rows of one Arrow record batch read from a file."""


@attrs.frozen
class Piece:
    """Rows ``row .. row + len(batch)`` of row group `group` of file `path`."""

    batch: pa.RecordBatch
    path: str
    group: int
    row: int


def read_range(files: ExampleFiles, order: np.ndarray, begin: int, end: int) -> Iterator[Piece]:
    """Rows ``begin .. end`` of the units laid end to end in `order`, the configured columns
    only, in pieces of at most `READ_ROWS` rows."""
    import pyarrow.parquet as pq  # optional: only Parquet examples need it

    columns = list(files.config.roles().values())
    rows = files.unit_rows[order]
    starts = np.cumsum(rows) - rows
    position = begin
    u = int(np.searchsorted(starts, begin, side="right")) - 1
    while position < end:
        unit = int(order[u])
        path, group = files.paths[files.unit_file[unit]], int(files.unit_group[unit])
        first, stop = position - int(starts[u]), min(end - int(starts[u]), int(rows[u]))
        offset = 0
        with pq.ParquetFile(path) as parquet:
            batches = parquet.iter_batches(batch_size=READ_ROWS, row_groups=[group], columns=columns)
            for batch in _checked(batches, path, group):
                low, offset = offset, offset + batch.num_rows
                if offset <= first:
                    continue
                take = max(first, low)
                yield Piece(batch.slice(take - low, min(stop, offset) - take), path, group, take)
                if offset >= stop:
                    break
        if offset < stop:
            raise DataFileError(
                f"{path!r}, row group {group}: {offset} rows where the footer said {int(rows[u])} when "
                "the examples were opened; the file changed since",
                file=path, row_group=group,
            )
        position = int(starts[u]) + stop
        u += 1


def _checked(batches: Iterator[pa.RecordBatch], path: str, group: int) -> Iterator[pa.RecordBatch]:
    """`batches`, a fault of the file while reading them (a damaged page) a `DataFileError`."""
    import pyarrow as pa  # optional: only Parquet examples need it

    try:
        yield from batches
    except (OSError, pa.ArrowException) as error:
        raise DataFileError(f"{path!r}, row group {group}: cannot be read: {error}", file=path, row_group=group) from None


def blocks(pieces: Iterator[Piece], size: int) -> Iterator[list[Piece]]:
    """The pieces regrouped into blocks of `size` rows (the last one shorter), a piece cut
    where a block ends."""
    block: list[Piece] = []
    need = size
    for piece in pieces:
        while piece.batch.num_rows:
            take = min(need, piece.batch.num_rows)
            block.append(attrs.evolve(piece, batch=piece.batch.slice(0, take)))
            piece = attrs.evolve(piece, batch=piece.batch.slice(take), row=piece.row + take)
            need -= take
            if not need:
                yield block
                block, need = [], size
    if block:
        yield block


@attrs.frozen(eq=False)
class _Where:
    """Where each row of a block came from, for messages."""

    pieces: list[Piece]
    starts: np.ndarray

    def __call__(self, row: int) -> tuple[str, str, int]:
        """The message prefix of block row `row`, its file and its row group."""
        i = int(np.searchsorted(self.starts, row, side="right")) - 1
        piece = self.pieces[i]
        inside = piece.row + row - int(self.starts[i])
        return f"{piece.path!r}, row group {piece.group}, row {inside}", piece.path, piece.group


def encode_block(pieces: list[Piece], files: ExampleFiles, encoders: Mapping[str, KeyEncoder]) -> EncodedRows:
    """The rows of `pieces` as ids (see the module docstring for the faults it names)."""
    import pyarrow as pa  # optional: only Parquet examples need it

    sizes = np.array([p.batch.num_rows for p in pieces], dtype=np.int64)
    where = _Where(pieces, np.cumsum(sizes) - sizes)
    table = pa.Table.from_batches([p.batch for p in pieces])
    config = files.config
    roles = config.roles()

    def column(role: str) -> pa.Array:
        name = roles[role]
        values = table.column(name).combine_chunks()
        if role in ("user", "item", "timestamp", "weight") and values.null_count:
            row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            prefix, path, group = where(row)
            raise DataFileError(
                f"{prefix}: null in column {name!r} ({role}); every row needs its {role}",
                file=path, column=name, row_group=group,
            )
        return values

    weights = None
    if config.weight is not None:
        weights = _numbers(column("weight"))
        bad = np.flatnonzero(~np.isfinite(weights))
        if bad.size:
            prefix, path, group = where(int(bad[0]))
            raise DataFileError(
                f"{prefix}: weight {weights[bad[0]]} in column {config.weight!r} is not a finite number",
                file=path, column=config.weight, row_group=group,
            )
    return EncodedRows(
        users=encode(encoders["user"], _plain(column("user")), "user"),
        items=encode(encoders["item"], _plain(column("item")), "item"),
        timestamps=None if config.timestamp is None else _seconds(column("timestamp")),
        weights=weights,
        scalars={
            f.name: _scalar(column(f"features.{f.name}"), encoders[f.name], f.name)
            for f in config.features if f.type == "categorical"
        },
        lists={
            f.name: _list(column(f"features.{f.name}"), encoders[f.name], f, where)
            for f in config.features if f.type == "multi_categorical"
        },
    )


def _plain(values: pa.Array) -> pa.Array:
    """`values` with a dictionary encoding decoded."""
    import pyarrow as pa  # optional: only Parquet examples need it

    return values.dictionary_decode() if pa.types.is_dictionary(values.type) else values


def _numbers(values: pa.Array) -> np.ndarray:
    import pyarrow as pa  # optional: only Parquet examples need it

    return values.cast(pa.float32()).to_numpy(zero_copy_only=False)


def _seconds(values: pa.Array) -> np.ndarray:
    """int64 Unix seconds of integer (taken as they are), timestamp or date values."""
    import pyarrow as pa  # optional: only Parquet examples need it
    import pyarrow.compute as pc

    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        values = pc.cast(values, pa.timestamp("s"), safe=False)
    return np.asarray(values.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _scalar(values: pa.Array, encoder: KeyEncoder, name: str) -> np.ndarray:
    """The ids of a categorical feature: ``MISSING`` where null."""
    if not values.null_count:
        return encode(encoder, _plain(values), name)
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    ids = np.full(len(values), MISSING, dtype=np.int64)
    ids[valid] = encode(encoder, _plain(values.drop_null()), name)
    return ids


def _list(values: Any, encoder: KeyEncoder, feature: QueryFeature, where: _Where) -> Ragged:
    """The ids of a multi_categorical feature: a null list is empty, null values are dropped,
    a list longer than ``max_len`` is cut (or refused) as its ``on_overflow`` says."""
    import pyarrow.compute as pc  # optional: only Parquet examples need it

    flat = pc.list_flatten(values)
    lengths = np.asarray(pc.list_value_length(values).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if flat.null_count:
        valid = flat.is_valid()
        parents = np.repeat(np.arange(len(values)), lengths)[valid.to_numpy(zero_copy_only=False)]
        flat, lengths = flat.filter(valid), np.bincount(parents, minlength=len(values)).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    ids = encode(encoder, _plain(flat), feature.name)
    width = feature.max_len
    assert width is not None  # a multi_categorical feature has one
    long = lengths > width
    if long.any():
        if feature.on_overflow == "error":
            row = int(np.flatnonzero(long)[0])
            prefix, path, group = where(row)
            raise DataFileError(
                f"{prefix}: column {feature.source!r} (features.{feature.name}) holds a list of "
                f"{int(lengths[row])} values, longer than max_len = {width} "
                '(on_overflow = "keep_last" or "keep_first" cuts it)',
                file=path, column=feature.source, row_group=group,
            )
        if feature.on_overflow == "keep_last":
            starts = np.where(long, starts + lengths - width, starts)
        lengths = np.minimum(lengths, width)
    return Ragged(ids, starts, lengths)

"""Logs of any size, out of core: the wanted columns of CSV/TSV and Parquet files read in record
batches through pyarrow, and the column conversions of an interaction log (keys, timestamps,
weights) with errors naming the file, column and row.

Unlike `augkit.data.reader`, which keeps a whole table as Python strings, this reader holds one
batch at a time (`BATCH_ROWS` rows of Parquet, `CSV_BLOCK_BYTES` of text). A log is a file, a
directory (its ``.parquet``/``.csv``/``.tsv``/``.tab`` files, recursively, in path order; names
starting with ``_`` or ``.`` are skipped) or a glob pattern. Text files are UTF-8 with a header;
their cells are read as text (so a key ``007`` keeps its zeros) and converted here. Rows are
numbered from 1 per file (the header is not a row).
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import numpy as np

from augkit.data.arrow_keys import canonical_keys
from augkit.data.reader import PARQUET, SEPARATORS, resolve
from augkit.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

BATCH_ROWS = 1 << 18
"""Rows per record batch read from a Parquet file."""
CSV_BLOCK_BYTES = 16 << 20
"""Bytes of text per record batch read from a CSV/TSV file."""
SUFFIXES: tuple[str, ...] = (PARQUET, *SEPARATORS)


def log_files(path: str | Path) -> list[Path]:
    """The files of the log at `path` (see the module docstring); `ConfigError` when there are
    none or `path` does not exist."""
    text = str(path)
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
    elif Path(text).is_dir():
        files = sorted(
            p for p in Path(text).rglob("*")
            if p.is_file() and p.suffix.lower() in SUFFIXES
            and not any(part.startswith(("_", ".")) for part in p.relative_to(text).parts)
        )
    elif Path(text).is_file():
        files = [Path(text)]
    else:
        raise ConfigError(f"log {text!r} does not exist")
    if not files:
        raise ConfigError(f"log {text!r} holds no {'/'.join(SUFFIXES)} file")
    for file in files:
        if file.suffix.lower() not in SUFFIXES:
            raise ConfigError(f"cannot tell the format of {str(file)!r}; expected one of {', '.join(SUFFIXES)}")
    return files


@attrs.frozen(eq=False)
class Chunk:
    """Rows ``first_row + 1 ..`` (1-based) of `file`: `batch` holds the wanted columns, each
    named by the caller's role for it (``"user"``...)."""

    file: Path
    first_row: int
    batch: pa.RecordBatch

    def where(self, role: str, columns: Mapping[str, str], index: int | None = None) -> str:
        """The file, column (and row of record `index` of the batch), for messages."""
        text = f"{str(self.file)!r}, column {columns[role]!r}"
        return text if index is None else f"{text}, row {self.first_row + index + 1}"


def read_log(files: Sequence[Path], columns: Mapping[str, str]) -> Iterator[Chunk]:
    """The `columns` (role -> column name) of every file in order, one `Chunk` at a time;
    `ConfigError` (`UnknownNameError` for a missing column) naming the file."""
    import pyarrow as pa  # optional: reading logs out of core needs pyarrow

    for file in files:
        try:
            batches = _parquet(file, columns) if file.suffix.lower() == PARQUET else _text(file, columns)
            row = 0
            for batch in batches:
                yield Chunk(file, row, batch)
                row += batch.num_rows
        except (OSError, pa.ArrowException) as error:
            raise ConfigError(f"cannot read {str(file)!r}: {error}") from None


def _parquet(file: Path, columns: Mapping[str, str]) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa  # optional: reading logs out of core needs pyarrow
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(file)
    names = tuple(reader.schema_arrow.names)
    wanted = {role: names[resolve(file, names, len(names), column)] for role, column in columns.items()}
    for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=sorted(set(wanted.values()))):
        yield pa.RecordBatch.from_arrays([batch.column(c) for c in wanted.values()], names=list(wanted))


def _text(file: Path, columns: Mapping[str, str]) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa  # optional: reading logs out of core needs pyarrow
    import pyarrow.csv as pcsv

    delimiter = SEPARATORS[file.suffix.lower()]
    with file.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle, delimiter=delimiter), None)
    if header is None:
        raise ConfigError(f"{str(file)!r} is empty; expected a header line")
    names = tuple(cell.strip() for cell in header)
    wanted = {role: header[resolve(file, names, len(names), column)] for role, column in columns.items()}
    reader = pcsv.open_csv(
        file,
        read_options=pcsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        parse_options=pcsv.ParseOptions(delimiter=delimiter),
        convert_options=pcsv.ConvertOptions(
            include_columns=sorted(set(wanted.values())),
            column_types={c: pa.string() for c in wanted.values()},
            strings_can_be_null=True,
        ),
    )
    for batch in reader:
        yield pa.RecordBatch.from_arrays([batch.column(c) for c in wanted.values()], names=list(wanted))


def keys_of(chunk: Chunk, role: str, columns: Mapping[str, str], key_type: str) -> pa.Array:
    """The canonical keys (`augkit.data.arrow_keys`) of column `role`, none missing."""
    keys = canonical_keys(chunk.batch.column(role), key_type, what=chunk.where(role, columns))
    _no_nulls(chunk, role, columns, keys, "key")
    return keys


def seconds_of(chunk: Chunk, role: str, columns: Mapping[str, str]) -> np.ndarray:
    """``int64[n]`` Unix seconds of a timestamp column: integers (seconds), Arrow timestamps or
    dates, or text holding integers or ISO-8601 times (naive ones are UTC)."""
    import pyarrow as pa  # optional: reading logs out of core needs pyarrow
    import pyarrow.compute as pc

    values, what = chunk.batch.column(role), chunk.where(role, columns)
    _no_nulls(chunk, role, columns, values, "timestamp")
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = pc.utf8_trim_whitespace(values)
        for target in (pa.int64(), pa.timestamp("s"), pa.timestamp("s", tz="UTC")):
            try:
                values = pc.cast(values, target)
                break
            except pa.ArrowInvalid:
                continue
        else:
            raise ConfigError(
                f"{what}: timestamps must be integers (Unix seconds) or ISO-8601 times such as "
                f"2023-11-15T09:30:00Z; e.g. {values[0].as_py()!r} is neither"
            )
        kind = values.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        values = pc.cast(pc.cast(values, pa.timestamp("s"), safe=False), pa.int64())
    elif not pa.types.is_integer(kind):
        raise ConfigError(f"{what}: timestamps must be integers, timestamps or dates, got type {kind}")
    return np.asarray(pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def weights_of(chunk: Chunk, role: str, columns: Mapping[str, str]) -> np.ndarray:
    """``float32[n]`` of a weight column: finite numbers (text is parsed)."""
    import pyarrow as pa  # optional: reading logs out of core needs pyarrow
    import pyarrow.compute as pc

    values, what = chunk.batch.column(role), chunk.where(role, columns)
    _no_nulls(chunk, role, columns, values, "weight")
    kind = values.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_string(kind)):
        raise ConfigError(f"{what}: weights must be numbers, got type {kind}")
    try:
        numbers = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid as error:
        raise ConfigError(f"{what}: a weight is not a number: {error}") from None
    with np.errstate(over="ignore"):
        narrow = numbers.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(narrow))
    if bad.size:
        raise ConfigError(f"{chunk.where(role, columns, int(bad[0]))}: weight {numbers[bad[0]]!r} is not a finite float32")
    return narrow


def _no_nulls(chunk: Chunk, role: str, columns: Mapping[str, str], values: pa.Array, what: str) -> None:
    if values.null_count:
        first = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise ConfigError(f"{chunk.where(role, columns, first)}: empty {what}, which is required")

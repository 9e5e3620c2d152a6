"""The one table reader: the wanted columns of a CSV/TSV file (the `csv` module, streamed) or
a Parquet file (pyarrow, optional), as stripped string cells with the line or row of each record.

CSV/TSV stays on the standard library's `csv` module rather than pyarrow's CSV reader: pyarrow
is an optional dependency, and the reader's errors name the line at fault (a record with
another number of fields, a quote never closed), which pyarrow's parser does not report.
Memory is proportional to the cells of the kept columns: records are read one at a time and only
the kept cells are stored, stripped, as Python strings in object arrays.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import encodings.aliases
import io
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, NoReturn, TypeVar

import attrs
import numpy as np

from augkit.errors import ConfigError, UnknownNameError

SEPARATORS: Mapping[str, str] = MappingProxyType({".csv": ",", ".tsv": "\t", ".tab": "\t", ".dat": "\t"})
"""Default field separator of a text file, by extension."""
PARQUET = ".parquet"

K = TypeVar("K", bound=Hashable)
Select = Callable[[tuple[str, ...] | None, int], Mapping[K, int]]
"""``select(names, width)``: the kept columns, each a caller's key -> 0-based column index;
`names` is the stripped header (None without one), `width` the number of fields per record."""

Column = str | int
"""A column: its header name, or its 0-based index."""


def _fail(message: str) -> NoReturn:
    raise ConfigError(message)


def _separator(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or len(value) != 1):
        raise ValueError(f"{attribute.name} must be a single character, got {value!r}")


def _codec(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    """A text encoding: a codec that turns bytes into text (not 'rot13', 'zlib' or 'base64',
    which turn bytes into bytes or text into text)."""
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a string such as 'utf-8', got {value!r}")
    try:
        info = codecs.lookup(value)
    except LookupError:
        close = difflib.get_close_matches(value.lower().replace("-", "_"), _ENCODING_NAMES, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"{attribute.name} {value!r} is not a known codec{hint}") from None
    if not info._is_text_encoding:
        raise ValueError(
            f"{attribute.name} {value!r} is not a text encoding (the {info.name} codec does not decode "
            "bytes to text); use a text encoding such as 'utf-8', 'latin-1' or 'cp1252'"
        )


_ENCODING_NAMES = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values()))
"""The standard library's encoding names and aliases, for close matches."""


@attrs.frozen(kw_only=True)
class Source:
    """A table file: CSV/TSV (read with `csv` as `encoding` text, a UTF-8 byte-order mark
    dropped; `sep` one character, by extension when None, see `SEPARATORS`; `header`: the first
    line names the columns) or Parquet (`sep` and `header` do not apply; cells are read as
    strings, timestamps as Unix seconds, list columns as `Bags`)."""

    path: Path = attrs.field(converter=Path)
    sep: str | None = attrs.field(default=None, validator=_separator)
    header: bool = True
    encoding: str = attrs.field(default="utf-8", validator=_codec)

    def __attrs_post_init__(self) -> None:
        if self.is_parquet:
            if self.sep is not None or not self.header:
                raise ValueError(f"{str(self.path)!r} is Parquet: 'sep' and 'header' do not apply")
        elif self.sep is None and self.path.suffix.lower() not in SEPARATORS:
            raise ValueError(
                f"cannot tell the separator of {str(self.path)!r} from its extension "
                f"{self.path.suffix!r}; set sep (known extensions: {', '.join([*SEPARATORS, PARQUET])})"
            )

    @property
    def is_parquet(self) -> bool:
        return self.path.suffix.lower() == PARQUET

    @property
    def delimiter(self) -> str:
        """The field separator of a text file."""
        return self.sep if self.sep is not None else SEPARATORS[self.path.suffix.lower()]


@attrs.frozen(eq=False)
class Bags:
    """A Parquet list column: value ``values[e]`` (a stripped, non-empty string) is in the bag
    of record ``records[e]``."""

    records: np.ndarray
    values: np.ndarray


@attrs.frozen(eq=False)
class Table:
    """The kept columns of one file.

    ``cells[key]`` is an object array of the stripped cells (``str``, ``""`` where empty or
    null) of that column, one per record, or `Bags` for a Parquet list column; ``numbers[r]`` is
    the line (text: where record ``r`` starts, 1-based) or row (Parquet) of record ``r``, for
    messages; `names` the header (None without one).
    """

    file: Path
    unit: str
    names: tuple[str, ...] | None
    numbers: np.ndarray
    cells: Mapping[Hashable, np.ndarray | Bags]

    def __len__(self) -> int:
        return self.numbers.size

    def where(self, record: int | None, column: Hashable | None = None) -> str:
        """`file`, line (row) and column of a record, for messages."""
        text = repr(str(self.file))
        if record is not None:
            text += f", {self.unit} {int(self.numbers[record])}"
        if column is not None:
            text += f", column {column!r}"
        return text

    def scalar(self, column: Hashable, what: str) -> np.ndarray:
        """The cells of `column`, which must hold one value per record."""
        cells = self.cells[column]
        if isinstance(cells, Bags):
            _fail(
                f"{self.where(None, column)}: a Parquet list column holds several values per row; "
                f"{what} takes one (only a multi_categorical feature reads a list column)"
            )
        return cells


def resolve(file: Path, names: Sequence[str] | None, width: int, column: Column) -> int:
    """Index of `column` (a header name or a 0-based index) among the file's columns."""
    if isinstance(column, int):
        if column >= width:
            _fail(f"{str(file)!r} has {width} columns; column index {column} is out of range (0-based)")
        return column
    if names is None:
        _fail(f"{str(file)!r}: column {column!r} is a name but the file has no header")
    if column not in names:
        raise UnknownNameError(f"column of {str(file)!r}", column, names)
    if names.count(column) > 1:
        _fail(f"{str(file)!r}: column {column!r} appears twice in the header")
    return names.index(column)


def read_table(source: Source, select: Select[K]) -> Table:
    """The columns `select` picks of `source`; `ConfigError` naming the file (and line) when it
    is missing, a directory, unreadable or malformed (see `read_delimited`)."""
    if source.path.is_dir():
        _fail(f"table file {str(source.path)!r} is a directory; expected a file")
    if not source.path.is_file():
        _fail(f"table file {str(source.path)!r} does not exist")
    if source.is_parquet:
        return read_parquet(source.path, select)
    return read_delimited(
        source.path, delimiter=source.delimiter, encoding=source.encoding, header=source.header, select=select
    )


def read_parquet(file: Path, select: Select[K]) -> Table:
    """The columns `select` picks of a Parquet file: scalars as stripped strings (null: ``""``;
    timestamps and dates as integer Unix seconds), list columns as `Bags`."""
    try:  # pyarrow is optional: only Parquet files need it
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            f"reading the Parquet file {str(file)!r} needs pyarrow: pip install pyarrow"
        ) from None
    try:
        names = tuple(pq.read_schema(file).names)
        indices = dict(select(names, len(names)))
        table = pq.read_table(file, columns=sorted({names[i] for i in indices.values()}))
    except (OSError, pa.ArrowException) as error:
        raise ConfigError(f"cannot read Parquet file {str(file)!r}: {error}") from None

    def strings(column: Any) -> np.ndarray:
        if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
            column = pc.cast(pc.cast(column, pa.timestamp("s"), safe=False), pa.int64())
        text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
        return pc.fill_null(text, "").to_numpy(zero_copy_only=False).astype(object)

    def cells(name: str) -> np.ndarray | Bags:
        column = table.column(name)
        kind = column.type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
            return strings(column)
        lists = column.combine_chunks()
        records = pc.list_parent_indices(lists).to_numpy()
        values = strings(pc.list_flatten(lists))
        filled = values != ""
        return Bags(records[filled].astype(np.int64), values[filled])

    read = {key: cells(names[i]) for key, i in indices.items()}
    return Table(file, "row", names, np.arange(1, table.num_rows + 1), read)


class _Lines:
    """The lines of a text file for `csv.reader`, keeping those of the record being read and
    telling whether the file has ended."""

    __slots__ = ("_handle", "ended", "record")

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        self.record: list[str] = []
        self.ended = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._handle.readline()
        if not line:
            self.ended = True
            raise StopIteration
        self.record.append(line)
        return line


def text_encoding(encoding: str) -> str:
    """The codec to open a file with: ``utf-8-sig`` for UTF-8, so a byte-order mark is dropped."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def read_delimited(file: Path, *, delimiter: str, encoding: str, header: bool, select: Select[K]) -> Table:
    """Stream `file` (`csv` quoting; blank lines skipped) and keep the columns `select` picks.

    Raises `ConfigError` naming the file and line: unreadable file, text not in `encoding`, a
    record with another number of fields than the header (or the first record), an unterminated
    quote (at the line where it opens), a header but an empty file.
    """
    limit = csv.field_size_limit(sys.maxsize)  # a long cell, wanted or not, is not an error
    try:
        with file.open(newline="", encoding=text_encoding(encoding)) as handle:
            return _stream(file, _Lines(handle), delimiter, header, select)
    except OSError as error:
        raise ConfigError(f"cannot read {str(file)!r}: {error}") from None
    except UnicodeError as error:  # UnicodeDecodeError, and a codec's own (UTF-16 without a byte-order mark)
        raise ConfigError(f"{str(file)!r} is not {encoding} text ({error}); set encoding") from None
    finally:
        csv.field_size_limit(limit)


def _stream(file: Path, lines: _Lines, delimiter: str, header: bool, select: Select[K]) -> Table:
    reader = csv.reader(lines, delimiter=delimiter)
    where = repr(str(file))
    names: tuple[str, ...] | None = None
    width = -1
    keys: list[K] = []
    indices: list[int] = []
    stores: list[list[str]] = []
    numbers: list[int] = []
    expected = ""
    while True:
        lines.record.clear()
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise ConfigError(f"{where}, line {reader.line_num}: {error}") from None
        if lines.ended:
            _check_terminated(where, lines.record, delimiter, row, reader.line_num)
        if not row:
            continue
        if width < 0:
            width = len(row)
            if header:
                names = tuple(cell.strip() for cell in row)
                expected = "the header has"
            else:
                expected = f"line {start} has"
            chosen = select(names, width)
            keys, indices = list(chosen), list(chosen.values())
            stores = [[] for _ in indices]
            if header:
                continue
        if len(row) != width:
            _fail(f"{where}, line {start}: {len(row)} fields, {expected} {width}")
        numbers.append(start)
        for store, index in zip(stores, indices, strict=True):
            store.append(row[index].strip())
    if header and names is None:
        _fail(f"{where} is empty; expected a header line")
    cells = {key: _objects(store) for key, store in zip(keys, stores, strict=True)}
    return Table(file, "line", names, np.asarray(numbers, dtype=np.int64), cells)


def _check_terminated(where: str, raw: list[str], delimiter: str, row: list[str], end: int) -> None:
    """Fail if the last record of a file (its `raw` lines, parsed as `row`) ends inside a quoted
    field, which then swallowed every line after its opening quote."""
    text = "".join(raw)
    if not text.endswith(("\n", "\r")):
        text += "\n"
    if len(list(csv.reader(io.StringIO(text + "x\n", newline=""), delimiter=delimiter))) > 1:
        return
    opens = end - (len(row[-1].splitlines()) - 1) if row else end
    _fail(
        f"{where}, line {opens}: a quoted field opens here and is never closed; "
        'expected a closing quote (write a quote inside a quoted field as "")'
    )


def _objects(values: Sequence[object]) -> np.ndarray:
    """A 1-D object array of `values` (never a 2-D array of sequences)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def split_cells(cells: np.ndarray, separator: str) -> tuple[np.ndarray, np.ndarray]:
    """(record, value) of every non-empty value of `cells`, each cell split by `separator` and
    its values stripped."""
    pieces = [cell.split(separator) for cell in cells.tolist()]
    counts = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    values = _objects([value.strip() for piece in pieces for value in piece])
    records = np.repeat(np.arange(len(pieces)), counts)
    filled = values != ""
    return records[filled], values[filled]

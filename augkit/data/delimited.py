"""One streaming reader of delimited text files (CSV/TSV), shared by the item-table and tables
loaders, and the per-distinct-value helpers that turn its cells into arrays.

Memory is proportional to the cells of the columns a caller keeps: rows are read one record at
a time and only the kept cells are stored, stripped, as Python strings in object arrays.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import IO, NoReturn, TypeVar

import attrs
import numpy as np

from augkit.errors import ConfigError

K = TypeVar("K", bound=Hashable)
Select = Callable[[tuple[str, ...] | None, int], Mapping[K, int]]
"""``select(names, width)``: the kept columns, each a caller's key -> 0-based column index;
`names` is the stripped header (None without one), `width` the number of fields per record."""


@attrs.frozen(eq=False)
class Columns:
    """The kept columns of a delimited file.

    ``cells[key]`` is an object array of the stripped cells (``str``) of that column, one per
    record; ``lines[r]`` is the line on which record ``r`` starts (1-based). A file without a
    header and without records has no ``cells``.
    """

    file: Path
    names: tuple[str, ...] | None
    lines: np.ndarray
    cells: Mapping[Hashable, np.ndarray]

    def __len__(self) -> int:
        return self.lines.size


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


def _fail(message: str) -> NoReturn:
    raise ConfigError(message)


def text_encoding(encoding: str) -> str:
    """The codec to open a file with: ``utf-8-sig`` for UTF-8, so a byte-order mark is dropped."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def read_delimited(file: Path, *, delimiter: str, encoding: str, header: bool, select: Select[K]) -> Columns:
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
    except UnicodeDecodeError as error:
        raise ConfigError(f"{str(file)!r} is not {encoding} text ({error}); set encoding") from None
    finally:
        csv.field_size_limit(limit)


def _stream(file: Path, lines: _Lines, delimiter: str, header: bool, select: Select[K]) -> Columns:
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
    return Columns(file, names, np.asarray(numbers, dtype=np.int64), cells)


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


def factorize(values: np.ndarray) -> tuple[list, np.ndarray]:
    """The distinct values of a 1-D array in order of first occurrence, and the int64 index of
    each value among them: work per distinct value instead of per cell."""
    index: dict = {}
    codes = np.fromiter(
        (index.setdefault(value, len(index)) for value in values.tolist()), dtype=np.int64, count=values.size
    )
    return list(index), codes


def sorted_codes(uniques: list, codes: np.ndarray, key: Callable | None = None) -> tuple[list, np.ndarray]:
    """`uniques` sorted (by `key`), and `codes` renumbered to index the sorted list."""
    by = (lambda i: uniques[i]) if key is None else (lambda i: key(uniques[i]))
    order = sorted(range(len(uniques)), key=by)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return [uniques[i] for i in order], rank[codes]


def split_cells(cells: np.ndarray, separator: str) -> tuple[np.ndarray, np.ndarray]:
    """(record, value) of every non-empty value of `cells`, each cell split by `separator` and
    its values stripped."""
    pieces = [cell.split(separator) for cell in cells.tolist()]
    counts = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    values = _objects([value.strip() for piece in pieces for value in piece])
    records = np.repeat(np.arange(len(pieces)), counts)
    filled = values != ""
    return records[filled], values[filled]

"""MovieLens-100K: items (``u.item``) as an `ItemTable`, per-item rating counts (``u.data``),
and the whole data set (items, users of ``u.user``, interactions of ``u.data``) as a
`RecDataset`.

The data set is never shipped with augkit: point these loaders at your copy of ``ml-100k``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from augkit.batch import FeatureBatch
from augkit.data.dataset import InteractionLog, RecDataset
from augkit.data.encoding import encode, pad_bags
from augkit.data.items import ItemTable
from augkit.errors import BatchValidationError, ConfigError
from augkit.schema import MISSING, Categorical, FeatureSchema, MultiCategorical

GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genre flags of ``u.item``, in file order (``u.genre``)."""

AGE_BUCKETS: tuple[str, ...] = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
"""The ``age`` ids of the users, as in MovieLens-1M: id i is the age range ``AGE_BUCKETS[i]``."""

_AGE_EDGES = np.array([18, 25, 35, 45, 50, 56])
_FIELDS = 5 + len(GENRES)
_USER_FIELDS = 5
_RATING_FIELDS = 4
_DATE = re.compile(r"\d{1,2}-[A-Za-z]{3}-(\d{4})")
_YEAR_SUFFIX = re.compile(r"\s*\(\d{4}\)\s*$")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def _file_in(path: str | os.PathLike[str], name: str) -> Path:
    """`path` itself, or `name` inside the directory `path`."""
    file = Path(path)
    if file.is_dir():
        file = file / name
    if not file.is_file():
        raise ConfigError(f"MovieLens file {str(file)!r} does not exist; expected {name} of ml-100k")
    return file


def load_movielens_items(path: str | os.PathLike[str]) -> ItemTable:
    """Items of MovieLens-100K from ``u.item`` (`path`: the file or the ``ml-100k`` directory).

    Features, row i = movie id i + 1:

    * ``item_id``: Categorical, movie id - 1 (vocabulary: the movie ids).
    * ``genres``: MultiCategorical over the 19 genre flags, "unknown" included (vocabulary:
      `GENRES`); a movie with no flag set has it missing.
    * ``year``: Categorical, year of the release date (vocabulary: the years as ints, sorted);
      missing where the date is empty.
    * ``title_words``: MultiCategorical, the distinct lower-cased words of the title without its
      "(1995)" year suffix (vocabulary: the words, sorted); ``max_len`` is the most distinct
      words of a title.

    Movie ids must be 1..N over the N lines. Errors name the file and line.
    """
    file = _file_in(path, "u.item")
    lines, table = _read_fields(file, "|", _FIELDS, "items")
    order = _id_order(file, lines, table[:, 0], "movie")
    table, lines = table[order], lines[order]
    size = len(table)

    flags = table[:, 5:]
    bad = (flags != "0") & (flags != "1")
    if bad.any():
        row, genre = np.argwhere(bad)[0]
        raise ConfigError(
            f"{str(file)!r}, line {lines[row]}: genre flag {GENRES[genre]!r} is "
            f"{str(flags[row, genre])!r}, expected 0 or 1"
        )
    genre_rows, genre_ids = np.nonzero(flags == "1")
    genres = pad_bags(genre_rows, genre_ids, size)

    year_vocabulary, years = _years(file, lines, table[:, 2])
    if not year_vocabulary:
        raise ConfigError(f"MovieLens file {str(file)!r}: no item has a release date")
    titles = [_YEAR_SUFFIX.sub("", title) for title in table[:, 1].tolist()]
    words = [_WORD.findall(title.lower()) for title in titles]
    word_rows = np.repeat(np.arange(size), [len(w) for w in words])
    word_vocabulary, word_ids = encode(np.array([w for ws in words for w in ws], dtype=str))
    if not word_vocabulary:
        raise ConfigError(f"MovieLens file {str(file)!r}: no title has a word")
    title_words = pad_bags(word_rows, word_ids, size)

    schema = FeatureSchema(
        [
            Categorical(name="item_id", num_values=size),
            MultiCategorical(name="genres", num_values=len(GENRES), max_len=genres.shape[1]),
            Categorical(name="year", num_values=len(year_vocabulary)),
            MultiCategorical(
                name="title_words", num_values=len(word_vocabulary), max_len=title_words.shape[1]
            ),
        ]
    )
    corpus = FeatureBatch.from_tensors(
        schema,
        {"item_id": np.arange(size), "genres": genres, "year": years, "title_words": title_words},
    )
    vocabularies = {
        "item_id": tuple(range(1, size + 1)),
        "genres": GENRES,
        "year": year_vocabulary,
        "title_words": word_vocabulary,
    }
    return ItemTable(schema, corpus, vocabularies)


def _read_fields(file: Path, separator: str, expected: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Line numbers (int64 ``[n]``) and fields (str ``[n, expected]``) of the non-blank lines of
    a latin-1 MovieLens file; a line with another field count is an error naming it."""
    try:
        text = file.read_text(encoding="latin-1")
    except OSError as error:
        raise ConfigError(f"cannot read MovieLens file {str(file)!r}: {error}") from None
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not numbered:
        raise ConfigError(f"MovieLens file {str(file)!r} holds no {what}")
    fields = [line.split(separator) for _, line in numbered]
    for (number, _), row in zip(numbered, fields, strict=True):
        if len(row) != expected:
            raise ConfigError(
                f"{str(file)!r}, line {number}: {len(row)} "
                f"{'tab' if separator == chr(9) else repr(separator)}-separated fields, expected {expected}"
            )
    lines = np.array([n for n, _ in numbered], dtype=np.int64)
    return lines, np.array(fields, dtype=str)


def _integers(file: Path, lines: np.ndarray, cells: np.ndarray, what: str) -> np.ndarray:
    """int64 values of `cells`, which must be non-negative decimal integers."""
    valid = np.char.isdecimal(cells) & (np.char.str_len(cells) <= 18)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise ConfigError(
            f"{str(file)!r}, line {lines[row]}: {what} {str(cells[row])!r} is not a "
            "non-negative integer (at most 18 digits)"
        )
    return cells.astype(np.int64)


def _id_order(file: Path, lines: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    """Row order by the `what` id of each row; ids must be the integers 1..N."""
    numbers = _integers(file, lines, ids, f"{what} id")
    out_of_range = (numbers < 1) | (numbers > numbers.size)
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range)[0])
        raise ConfigError(
            f"{str(file)!r}, line {lines[row]}: {what} id {int(numbers[row])} is outside "
            f"1..{numbers.size} (the file has {numbers.size} rows)"
        )
    return _unique_order(file, lines, numbers, f"{what} id")


def _unique_order(file: Path, lines: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    """The stable sort order of `values`; a value on two lines is an error naming both."""
    order = np.argsort(values, kind="stable")
    repeated = np.flatnonzero(values[order][1:] == values[order][:-1])
    if repeated.size:
        first, second = order[repeated[0]], order[repeated[0] + 1]
        value = values[first]
        shown = int(value) if values.dtype.kind == "i" else repr(str(value))
        raise ConfigError(
            f"{str(file)!r}: {what} {shown} appears on lines {lines[first]} and {lines[second]}"
        )
    return order


def _years(file: Path, lines: np.ndarray, dates: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """Sorted distinct release years, and each row's year id (``MISSING`` for an empty date)."""
    years = np.full(dates.shape, MISSING, dtype=np.int64)
    for row, date in enumerate(dates.tolist()):
        if not date:
            continue
        match = _DATE.fullmatch(date)
        if match is None:
            raise ConfigError(
                f"{str(file)!r}, line {lines[row]}: release date {date!r} is not like 01-Jan-1995"
            )
        years[row] = int(match.group(1))
    filled = years != MISSING
    vocabulary, inverse = np.unique(years[filled], return_inverse=True)
    years[filled] = inverse
    return tuple(int(y) for y in vocabulary), years


def load_movielens_rating_counts(path: str | os.PathLike[str], num_items: int) -> np.ndarray:
    """float64 ``[num_items]``: ratings per item (row i = movie id i + 1) in ``u.data``
    (`path`: the file or the ``ml-100k`` directory; tab-separated user, item, rating, time).
    Every line must hold the four fields, so a log cut inside its last line is a `ConfigError`
    naming the file and line, not a count for a truncated movie id."""
    file = _file_in(path, "u.data")
    lines, table = _read_fields(file, "\t", _RATING_FIELDS, "ratings")
    items = _integers(file, lines, table[:, 1], "movie id")
    bad = (items < 1) | (items > num_items)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BatchValidationError(
            f"{str(file)!r}, line {lines[row]}, rating {row + 1}: item {int(items[row])} is outside "
            f"the {num_items} movies 1..{num_items}"
        )
    return np.bincount(items - 1, minlength=num_items).astype(np.float64)


def load_movielens_100k(path: str | os.PathLike[str]) -> RecDataset:
    """MovieLens-100K as a `RecDataset` named ``"movielens-100k"`` (`path`: the ``ml-100k``
    directory).

    * items: `load_movielens_items` of ``u.item`` (``item_id``, ``genres``, ``year``,
      ``title_words``); row i is movie id i + 1.
    * users, from ``u.user`` (row u is user id u + 1; ids must be 1..U):
      ``user_id`` (user id - 1), ``age`` (7 buckets, `AGE_BUCKETS`), ``gender`` (the values
      of the file, sorted) and ``occupation`` (ids in the order of ``u.occupation`` when that
      file exists, else the values of ``u.user``, sorted). An empty cell is missing.
    * interactions, from ``u.data`` in file order: (user id - 1, movie id - 1, timestamp).
      Implicit feedback: every rating, low ones included, counts as an interaction.

    Errors name the file and line: a malformed line (`ConfigError`), a user or movie id of
    ``u.data`` that ``u.user`` or ``u.item`` lacks, an occupation ``u.occupation`` lacks
    (`BatchValidationError`).
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ConfigError(
            f"MovieLens-100K path {str(directory)!r} is not a directory; expected the ml-100k "
            "folder holding u.item, u.user and u.data"
        )
    items = load_movielens_items(directory).corpus
    users = _users(directory)
    interactions = _interactions(_file_in(directory, "u.data"), users.batch_size, items.batch_size)
    return RecDataset("movielens-100k", items, users, interactions)


def _users(directory: Path) -> FeatureBatch:
    """The user table of ``u.user``: user_id, age bucket, gender, occupation."""
    file = _file_in(directory, "u.user")
    lines, table = _read_fields(file, "|", _USER_FIELDS, "users")
    order = _id_order(file, lines, table[:, 0], "user")
    table, lines = table[order], lines[order]
    size = len(table)

    ages = table[:, 1]
    given = ages != ""
    age = np.full(size, MISSING, dtype=np.int64)
    age[given] = np.digitize(_integers(file, lines[given], ages[given], "age"), _AGE_EDGES)
    gender_vocabulary, gender = encode(table[:, 2])
    occupation = _occupations(directory, file, lines, table[:, 3])
    if not gender_vocabulary:
        raise ConfigError(f"MovieLens file {str(file)!r}: no user has a gender")
    schema = FeatureSchema(
        [
            Categorical(name="user_id", num_values=size),
            Categorical(name="age", num_values=len(AGE_BUCKETS)),
            Categorical(name="gender", num_values=len(gender_vocabulary)),
            Categorical(name="occupation", num_values=occupation[0]),
        ]
    )
    values = {"user_id": np.arange(size), "age": age, "gender": gender, "occupation": occupation[1]}
    return FeatureBatch.from_tensors(schema, values)


def _occupations(directory: Path, file: Path, lines: np.ndarray, cells: np.ndarray) -> tuple[int, np.ndarray]:
    """Vocabulary size and ids of the occupations `cells` of `file` (``MISSING`` where empty),
    in the order of ``u.occupation`` when the directory has one."""
    listing = directory / "u.occupation"
    if not listing.is_file():
        vocabulary, ids = encode(cells)
        if not vocabulary:
            raise ConfigError(f"MovieLens file {str(file)!r}: no user has an occupation")
        return len(vocabulary), ids
    names_lines, names = _read_fields(listing, "|", 1, "occupations")
    known = names[:, 0]
    order = _unique_order(listing, names_lines, known, "occupation")
    given = cells != ""
    slot = np.minimum(np.searchsorted(known[order], cells), known.size - 1)
    found = known[order][slot] == cells
    unknown = given & ~found
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise BatchValidationError(
            f"{str(file)!r}, line {lines[row]}: occupation {str(cells[row])!r} is not listed in "
            f"{str(listing)!r} ({', '.join(known.tolist())})"
        )
    return known.size, np.where(given, order[slot], MISSING).astype(np.int64)


def _interactions(file: Path, num_users: int, num_items: int) -> InteractionLog:
    """(user - 1, item - 1, timestamp) of every line of ``u.data``, in file order."""
    lines, table = _read_fields(file, "\t", _RATING_FIELDS, "ratings")
    columns = {
        what: _integers(file, lines, table[:, j], what)
        for j, what in enumerate(("user id", "movie id", "rating", "timestamp"))
    }
    for what, source, size in (("user", "u.user", num_users), ("movie", "u.item", num_items)):
        ids = columns[f"{what} id"]
        bad = (ids < 1) | (ids > size)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise BatchValidationError(
                f"{str(file)!r}, line {lines[row]}: {what} id {int(ids[row])} is not in {source} "
                f"(ids 1..{size})"
            )
    return InteractionLog(
        torch.from_numpy(columns["user id"] - 1),
        torch.from_numpy(columns["movie id"] - 1),
        torch.from_numpy(columns["timestamp"]),
    )


def load_movielens_titles(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The title of each movie of ``u.item`` (`path`: the file or the ``ml-100k`` directory),
    year suffix included as the file writes it: entry i is movie id i + 1, as in
    `load_movielens_items`. Errors name the file and line."""
    file = _file_in(path, "u.item")
    lines, table = _read_fields(file, "|", _FIELDS, "items")
    order = _id_order(file, lines, table[:, 0], "movie")
    return tuple(table[order, 1].tolist())

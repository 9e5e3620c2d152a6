"""MovieLens-100K items (``u.item``) as an `ItemTable`, and per-item rating counts (``u.data``).

The data set is never shipped with augkit: point these loaders at your copy of ``ml-100k``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from augkit.batch import FeatureBatch
from augkit.data.items import ItemTable, encode, pad_bags
from augkit.errors import BatchValidationError, ConfigError
from augkit.schema import MISSING, Categorical, FeatureSchema, MultiCategorical

GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genre flags of ``u.item``, in file order (``u.genre``)."""

_FIELDS = 5 + len(GENRES)
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
    try:
        text = file.read_text(encoding="latin-1")
    except OSError as error:
        raise ConfigError(f"cannot read MovieLens file {str(file)!r}: {error}") from None
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not numbered:
        raise ConfigError(f"MovieLens file {str(file)!r} holds no items")
    lines = np.array([n for n, _ in numbered])
    fields = [line.split("|") for _, line in numbered]
    for (number, _), row in zip(numbered, fields, strict=True):
        if len(row) != _FIELDS:
            raise ConfigError(
                f"{str(file)!r}, line {number}: {len(row)} '|'-separated fields, expected {_FIELDS}"
            )
    table = np.array(fields, dtype=str)
    order = _movie_order(file, lines, table[:, 0])
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


def _movie_order(file: Path, lines: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row order by movie id; ids must be the integers 1..N."""
    valid = np.char.isdigit(ids)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise ConfigError(
            f"{str(file)!r}, line {lines[row]}: movie id {str(ids[row])!r} is not a positive integer"
        )
    movies = ids.astype(np.int64)
    out_of_range = (movies < 1) | (movies > movies.size)
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range)[0])
        raise ConfigError(
            f"{str(file)!r}, line {lines[row]}: movie id {int(movies[row])} is outside 1..{movies.size} "
            f"(the file has {movies.size} items)"
        )
    order = np.argsort(movies, kind="stable")
    repeated = np.flatnonzero(movies[order][1:] == movies[order][:-1])
    if repeated.size:
        first, second = order[repeated[0]], order[repeated[0] + 1]
        raise ConfigError(
            f"{str(file)!r}: movie id {int(movies[first])} appears on lines {lines[first]} "
            f"and {lines[second]}"
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
    (`path`: the file or the ``ml-100k`` directory; tab-separated user, item, rating, time)."""
    file = _file_in(path, "u.data")
    try:
        items = np.loadtxt(file, dtype=np.int64, usecols=1, ndmin=1, delimiter="\t")
    except (OSError, ValueError) as error:
        raise ConfigError(f"MovieLens ratings {str(file)!r}: {error}") from None
    bad = (items < 1) | (items > num_items)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BatchValidationError(
            f"{str(file)!r}, rating {row + 1}: item {int(items[row])} is outside the {num_items} "
            f"movies 1..{num_items}"
        )
    return np.bincount(items - 1, minlength=num_items).astype(np.float64)

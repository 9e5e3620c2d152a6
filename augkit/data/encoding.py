"""The one encoder of a column's values to dense ids, shared by every loader (``augkit mi``'s
item tables, ``augkit train``'s tables, MovieLens), so one column gets the same ids everywhere.

A vocabulary holds the distinct non-empty values of a column, in numeric order when every value
is an integer (``"2" < "9" < "10"``, so keys ``0..n-1`` keep their ids), else in string order;
``""`` is missing (`augkit.schema.MISSING`).
"""

from __future__ import annotations

import re

import numpy as np

from augkit.schema import MISSING

INTEGER = re.compile(r"[+-]?[0-9]+")
"""A value that spells an integer in decimal digits, with an optional sign."""


def factorize(values: np.ndarray) -> tuple[list, np.ndarray]:
    """The distinct values of a 1-D array in order of first occurrence, and the int64 index of
    each value among them: work per distinct value instead of per cell."""
    index: dict = {}
    codes = np.fromiter(
        (index.setdefault(value, len(index)) for value in values.tolist()), dtype=np.int64, count=values.size
    )
    return list(index), codes


def encode(values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """The vocabulary of the non-empty strings in 1-D `values` (see the module docstring) and
    the int64 id of each value in it (``MISSING`` where empty)."""
    uniques, codes = factorize(np.asarray(values))
    numeric = all(INTEGER.fullmatch(u) for u in uniques if u != "")
    order = sorted(
        range(len(uniques)), key=(lambda i: (int(uniques[i] or 0), uniques[i])) if numeric else uniques.__getitem__
    )
    filled = [i for i in order if uniques[i] != ""]
    rank = np.full(len(uniques), MISSING, dtype=np.int64)
    rank[filled] = np.arange(len(filled))
    return tuple(uniques[i] for i in filled), rank[codes]


def integer_twins(vocabulary: tuple[str, ...]) -> tuple[str, str] | None:
    """The first two distinct values of `vocabulary` that spell the same integer (``"1"`` and
    ``"01"``, ``"+1"``), or None: keys compared as text keep them apart."""
    seen: dict[int, str] = {}
    for value in vocabulary:
        if INTEGER.fullmatch(value):
            first = seen.setdefault(int(value), value)
            if first != value:
                return first, value
    return None


def pad_bags(rows: np.ndarray, ids: np.ndarray, num_rows: int) -> np.ndarray:
    """Bags as a padded int64 ``[num_rows, max_len]`` array (``MISSING`` as padding).

    ``(rows[e], ids[e])`` puts id ``ids[e]`` in the bag of row ``rows[e]``; a bag is a set
    (repeated ids count once) and keeps ids in ascending order. ``max_len`` is the largest bag
    (at least 1, so an all-empty column still has a slot).
    """
    pairs = np.unique(np.stack([rows, ids], axis=1).astype(np.int64), axis=0)
    rows, ids = pairs[:, 0], pairs[:, 1]
    sizes = np.bincount(rows, minlength=num_rows)
    starts = np.cumsum(sizes) - sizes
    slots = np.arange(rows.size) - starts[rows]
    out = np.full((num_rows, max(1, int(sizes.max(initial=0)))), MISSING, dtype=np.int64)
    out[rows, slots] = ids
    return out

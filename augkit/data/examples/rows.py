"""Encoded examples in memory: numpy columns of ids, cheap to permute, slice and join, and padded
into tensors once per batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import numpy as np
import torch

from augkit.schema import MISSING


@attrs.frozen(eq=False)
class Ragged:
    """A list column: row r holds ``values[starts[r] : starts[r] + lengths[r]]`` (int64)."""

    values: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    def take(self, index: np.ndarray) -> Ragged:
        """Rows `index` (the values are shared, not copied)."""
        return Ragged(self.values, self.starts[index], self.lengths[index])

    @staticmethod
    def concat(parts: Sequence[Ragged]) -> Ragged:
        """The rows of `parts`, one after the other."""
        shifts = np.cumsum([0] + [p.values.size for p in parts[:-1]])
        return Ragged(
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.starts + shift for p, shift in zip(parts, shifts, strict=True)]),
            np.concatenate([p.lengths for p in parts]),
        )

    def padded(self, width: int) -> torch.Tensor:
        """``LongTensor[rows, width]``: each row's values, then ``MISSING``; every length must
        be at most `width`."""
        slots = np.arange(width)
        kept = slots < self.lengths[:, None]
        if not self.values.size:
            return torch.full(kept.shape, MISSING, dtype=torch.int64)
        index = np.where(kept, self.starts[:, None] + slots, 0)
        return torch.from_numpy(np.where(kept, self.values[index], MISSING))


@attrs.frozen(eq=False)
class EncodedRows:
    """Rows of examples as ids: ``users``/``items`` int64, ``timestamps`` int64 and
    ``weights`` float32 (None when the config names no such column), ``scalars[name]`` int64
    (``MISSING`` where null) for categorical features, ``lists[name]`` for multi_categorical
    ones; every column has one entry per row."""

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None
    weights: np.ndarray | None
    scalars: Mapping[str, np.ndarray]
    lists: Mapping[str, Ragged]

    def __len__(self) -> int:
        return self.users.size

    def take(self, index: np.ndarray) -> EncodedRows:
        """Rows `index`, in that order."""
        return EncodedRows(
            self.users[index],
            self.items[index],
            None if self.timestamps is None else self.timestamps[index],
            None if self.weights is None else self.weights[index],
            {name: column[index] for name, column in self.scalars.items()},
            {name: column.take(index) for name, column in self.lists.items()},
        )

    @staticmethod
    def concat(parts: Sequence[EncodedRows]) -> EncodedRows:
        """The rows of `parts`, one after the other."""
        if len(parts) == 1:
            return parts[0]
        first = parts[0]

        def joined(name: str) -> np.ndarray | None:
            return None if getattr(first, name) is None else np.concatenate([getattr(p, name) for p in parts])

        return EncodedRows(
            np.concatenate([p.users for p in parts]),
            np.concatenate([p.items for p in parts]),
            joined("timestamps"),
            joined("weights"),
            {name: np.concatenate([p.scalars[name] for p in parts]) for name in first.scalars},
            {name: Ragged.concat([p.lists[name] for p in parts]) for name in first.lists},
        )

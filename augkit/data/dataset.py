"""`RecDataset`: an item corpus, users and the interaction log between them."""

from __future__ import annotations

import attrs
import torch

from augkit.batch import FeatureBatch
from augkit.errors import BatchValidationError


@attrs.frozen(eq=False)
class InteractionLog:
    """M (user, item) events: ``users``/``items`` ``LongTensor[M]``, optional ``timestamps``."""

    users: torch.Tensor
    items: torch.Tensor
    timestamps: torch.Tensor | None = None

    def __attrs_post_init__(self) -> None:
        shapes = {"users": self.users.shape, "items": self.items.shape}
        if self.timestamps is not None:
            shapes["timestamps"] = self.timestamps.shape
        if len(set(shapes.values())) != 1 or self.users.ndim != 1:
            raise BatchValidationError(f"interaction columns must be 1-D of one length, got {shapes}")
        for name in ("users", "items"):
            if getattr(self, name).dtype != torch.int64:
                raise BatchValidationError(
                    f"interaction column {name!r} must be int64, got {getattr(self, name).dtype}"
                )

    def __len__(self) -> int:
        return self.users.shape[0]

    def select(self, index: torch.Tensor) -> InteractionLog:
        """The events at ``index`` (``LongTensor``) or where ``index`` (``BoolTensor[M]``) holds."""
        stamps = None if self.timestamps is None else self.timestamps[index]
        return InteractionLog(self.users[index], self.items[index], stamps)


@attrs.frozen(eq=False)
class RecDataset:
    """Row i of ``items`` is item id i, row u of ``users`` is user id u.

    ``warnings``: what the loader found worth a look but not wrong, one human-readable line
    each (e.g. the join report of `augkit.data.tables.read_tables`); empty by default.
    """

    name: str
    items: FeatureBatch
    users: FeatureBatch
    interactions: InteractionLog
    warnings: tuple[str, ...] = attrs.field(default=(), converter=tuple, kw_only=True)

    def __attrs_post_init__(self) -> None:
        for column, table in (("items", self.items), ("users", self.users)):
            ids = getattr(self.interactions, column)
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= table.batch_size):
                bad = int(ids[(ids < 0) | (ids >= table.batch_size)][0])
                raise BatchValidationError(
                    f"dataset {self.name!r}: interaction {column[:-1]} id {bad} is outside "
                    f"0..{table.batch_size - 1} ({table.batch_size} rows in the {column} table)"
                )

    @property
    def num_items(self) -> int:
        return self.items.batch_size

    @property
    def num_users(self) -> int:
        return self.users.batch_size

"""Small examples datasets for the streamed-examples tests, written with pyarrow into a folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from augkit.schema import MISSING


class DictEncoder:
    """A vocabulary in a dict: known keys get their id, unknown ones ``MISSING`` (the default
    embedding)."""

    def __init__(self, keys: Sequence[object]) -> None:
        self.ids = {key: i for i, key in enumerate(keys)}

    def encode(self, values: pa.Array) -> np.ndarray:
        return np.fromiter((self.ids.get(v, MISSING) for v in values.to_pylist()), dtype=np.int64, count=len(values))


def events(first: int, count: int) -> pa.Table:
    """Events ``first .. first + count``: event e is item e (so each event is told by its item),
    user ``u{e % 7}``, timestamp ``1000 + e``, weight ``1 + e % 3``, and a history list of the
    items ``e - (e % 5) .. e`` (empty when ``e % 5 == 0``)."""
    ids = np.arange(first, first + count, dtype=np.int64)
    return pa.table(
        {
            "user": pa.array([f"u{e % 7}" for e in ids.tolist()], type=pa.string()),
            "item": pa.array(ids),
            "ts": pa.array(1000 + ids),
            "weight": pa.array((1 + ids % 3).astype(np.float32)),
            "recent": pa.array([list(range(e - e % 5, e)) for e in ids.tolist()], type=pa.list_(pa.int64())),
        }
    )


def write_examples(folder: Path, sizes: Sequence[int], *, row_group_size: int = 16) -> int:
    """Files ``part-0.parquet``, ... in `folder` holding `sizes` events, numbered across files;
    returns the number of events."""
    folder.mkdir(parents=True, exist_ok=True)
    first = 0
    for i, size in enumerate(sizes):
        pq.write_table(events(first, size), folder / f"part-{i}.parquet", row_group_size=row_group_size)
        first += size
    return first


def encoders(num_events: int) -> dict[str, DictEncoder]:
    """Encoders for `events`: users ``u0..u6``, items (and the history's items) ``0..num_events-1``."""
    items = DictEncoder(range(num_events))
    return {"user": DictEncoder([f"u{u}" for u in range(7)]), "item": items, "recent": items}


CONFIG = {
    "timestamp": "ts",
    "weight": "weight",
    "features": {"recent": {"type": "multi_categorical", "max_len": 3}},
}
"""The examples config of `events`, without its path."""

"""A run's history: ``history.csv`` (a row per epoch), ``steps.csv`` (a row per `log_every`
steps, the mean of those steps) and, when the ``tensorboard`` extra is installed, TensorBoard
event files in ``tensorboard/``.

Rows are kept in the checkpoint too, so a resumed run rewrites the same files it would have
written uninterrupted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HISTORY_NAME = "history.csv"
STEPS_NAME = "steps.csv"
TENSORBOARD_DIR = "tensorboard"


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """`rows` as CSV with the union of their keys as columns (first-seen order); a missing value
    is an empty cell. Written to a temporary file, then renamed over `path`."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text.getvalue(), encoding="utf-8")
    tmp.replace(path)


class TensorBoard:
    """Scalars of the history rows as TensorBoard events, when ``torch.utils.tensorboard``
    (the ``tensorboard`` extra) can be imported; otherwise does nothing."""

    def __init__(self, run_dir: Path) -> None:
        self._dir = run_dir / TENSORBOARD_DIR
        self._writer: Any = None

    def add(self, row: Mapping[str, Any], *, step: int, prefix: str) -> None:
        """Every number of `row` at `step`, tagged ``<prefix>/<key>`` (``valid/...`` as is); the
        event files are created with the first row."""
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                return
            self._writer = SummaryWriter(log_dir=str(self._dir))
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                self._writer.add_scalar(key if key.startswith("valid/") else f"{prefix}/{key}", value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

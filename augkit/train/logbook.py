"""A run's history: ``history.csv`` (a row per epoch), ``steps.csv`` (a row per `log_every`
steps, the mean of those steps) and, when the ``tensorboard`` extra is installed, TensorBoard
event files in ``tensorboard/``, written by the loop's `Logbook` piece.

Rows are kept in the checkpoint too, so a resumed run rewrites the same files it would have
written uninterrupted.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from augkit import distributed
from augkit.train.callbacks import Callback, EpochEnd, LoopView
from augkit.train.step import TERMS

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
            try:  # optional: the tensorboard extra
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


class Logbook(Callback):
    """The history of a run: a row per epoch (its step, learning rate, training items per
    second, mean of each loss term and validation metrics) and a row per ``log_every`` steps
    (the mean of their losses), in the checkpoint, in TensorBoard after each epoch, and in
    ``history.csv`` and ``steps.csv`` when the session ends. Only the first process writes."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.writes = distributed.rank() == 0
        self.history: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.epoch_sums = torch.zeros(len(TERMS), dtype=torch.float64)
        self.window_sums = torch.zeros(len(TERMS), dtype=torch.float64)
        self._board = TensorBoard(run_dir) if self.writes else None
        self._shown = (0, 0)
        """Rows of `history` and `steps` already on the board."""

    def on_train_start(self, loop: LoopView) -> None:
        self._shown = (len(self.history), len(self.steps))  # a resumed run's rows are there already

    def on_step_end(self, loop: LoopView, terms: torch.Tensor) -> None:
        self.epoch_sums = self.epoch_sums.to(terms.device) + terms
        self.window_sums = self.window_sums.to(terms.device) + terms
        every = loop.config.log_every
        if every and loop.step % every == 0:
            loop.check_finite()
            self.steps.append({"step": loop.step, **_means(self.window_sums, every, loop.present)})
            self.window_sums = torch.zeros_like(self.window_sums)

    def on_epoch_end(self, loop: LoopView, end: EpochEnd) -> None:
        steps = loop.step - (end.epoch - 1) * loop.steps_per_epoch
        row: dict[str, Any] = {
            "epoch": end.epoch,
            "step": loop.step,
            "lr": loop.optimizer.param_groups[0]["lr"],
            "items_per_s": round(end.examples / max(end.seconds, 1e-9), 1),
            **_means(self.epoch_sums, steps, loop.present),
        }
        self.epoch_sums = torch.zeros_like(self.epoch_sums)
        if end.validation is not None:
            row.update(end.validation.flat)
        self.history.append(row)
        self._show()

    def on_train_end(self, loop: LoopView) -> None:
        self._show()
        if self.writes:
            write_csv(self.run_dir / HISTORY_NAME, self.history)
            if self.steps:
                write_csv(self.run_dir / STEPS_NAME, self.steps)

    def close(self) -> None:
        if self._board is not None:
            self._board.close()

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history, "steps": self.steps,
            "epoch_sums": self.epoch_sums.cpu(), "window_sums": self.window_sums.cpu(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history, self.steps = state["history"], state["steps"]
        self.epoch_sums = state["epoch_sums"].to(torch.float64)
        self.window_sums = state["window_sums"].to(torch.float64)

    def _show(self) -> None:
        if self._board is not None:
            for row in self.history[self._shown[0]:]:
                self._board.add(row, step=row["step"], prefix="epoch")
            for row in self.steps[self._shown[1]:]:
                self._board.add(row, step=row["step"], prefix="steps")
        self._shown = (len(self.history), len(self.steps))


def _means(sums: torch.Tensor, count: int, present: Mapping[str, bool]) -> dict[str, float]:
    """``{"loss/<term>": sum / count}`` of the terms `present` (reads `sums` on the host)."""
    return {f"loss/{name}": float(value) / max(count, 1) for name, value in zip(TERMS, sums.tolist()) if present[name]}

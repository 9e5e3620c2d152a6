"""The pieces of the training loop: what a piece is told, and what it may read of the loop.

`augkit.train.loop.Loop` trains and validates; everything else a run does while it trains is
a piece with one job, a `Callback`: the history files (`augkit.train.logbook.Logbook`), early
stopping (`augkit.train.early_stopping.EarlyStopping`), checkpoints
(`augkit.train.checkpointing.Checkpointing`) and the progress bar
(`augkit.train.progress.Progress`). The loop calls its pieces in their order at each hook.

A piece knows which process it runs on: only the first one writes files. A piece whose state
must survive an interruption returns it from `Callback.state_dict`; the loop saves it in the
checkpoint's loop state beside its own (each piece's keys, one flat dict) and hands it back to
`Callback.load_state_dict` on resume, so a resumed run ends as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs
import torch

from augkit.train.config import TrainConfig
from augkit.train.optimizers import FusedTablesOptimizer, SparseTablesOptimizer
from augkit.train.run import RunParts
from augkit.train.validation import Validation


class LoopView(Protocol):
    """What a piece may read of the loop that calls it."""

    parts: RunParts
    config: TrainConfig
    run_dir: Path
    optimizer: torch.optim.Optimizer | SparseTablesOptimizer | FusedTablesOptimizer
    """`augkit.train.backend.build_run_optimizer`'s: ``param_groups[0]["lr"]`` is dense Adam's rate."""
    step: int
    """Steps trained so far, over every session of the run."""
    steps_per_epoch: int
    total_steps: int
    present: Mapping[str, bool]
    """Which of `augkit.train.step.TERMS` this run has (``ssl``, ``spread_out`` may be off)."""
    best: dict[str, Any] | None
    """``{"epoch", "step", "monitor", "score", "metrics"}`` of the best validation, or None."""

    @property
    def finished(self) -> bool:
        """Every epoch trained, or a piece stopped the run."""
        ...

    def check_finite(self) -> None:
        """`augkit.errors.TrainingError` if a step so far had a loss that is not finite; a piece
        calls it before it reads losses on the host or writes a checkpoint."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The loop state of a checkpoint: the loop's own and every piece's."""
        ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Set the loop and its pieces from `state_dict`'s output (`ValueError` if its keys
        are not those this loop saves)."""
        ...


@attrs.frozen(eq=False)
class EpochEnd:
    """What the loop tells its pieces at the end of an epoch."""

    epoch: int
    """The epoch that ended, from 1, as in ``history.csv``."""
    seconds: float
    """Time spent on the epoch in this session (a resumed epoch counts its rest only)."""
    examples: int
    """Training examples of the epoch in this session."""
    validation: Validation | None
    """The validation after this epoch, or None in an epoch without one."""
    improved: bool
    """The validation beat the best one so far (the loop's `LoopView.best` is now this one)."""


class Callback:
    """A piece of the loop. Every hook does nothing unless a piece overrides it."""

    @property
    def stops_training(self) -> bool:
        """True to end the run at the next epoch (early stopping); the loop asks after each
        epoch."""
        return False

    def on_train_start(self, loop: LoopView) -> None:
        """Before the first step of this session (after a resume's restore)."""

    def on_step_end(self, loop: LoopView, terms: torch.Tensor) -> None:
        """After the optimiser's step; `terms` is ``FloatTensor[4]`` of the step's losses in
        the order of `augkit.train.step.TERMS`, float64, detached, on the run's device (reading
        it on the host waits for the device: call `LoopView.check_finite` first)."""

    def on_epoch_end(self, loop: LoopView, end: EpochEnd) -> None:
        """After an epoch's last step and its validation."""

    def on_train_end(self, loop: LoopView) -> None:
        """When the session ends without an error: every epoch trained, stopped early, or
        ``max_steps`` reached."""

    def close(self) -> None:
        """Release what the piece holds (files, a bar), also when training raised."""

    def state_dict(self) -> dict[str, Any]:
        """The piece's state for the checkpoint: tensors and plain containers, keys no other
        piece uses."""
        return {}

    def state_defaults(self) -> dict[str, Any]:
        """Values of the piece's keys for a checkpoint written before the piece existed (none:
        such a checkpoint cannot resume); a piece added later returns its fresh state here."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back the piece's keys of a checkpoint's loop state."""

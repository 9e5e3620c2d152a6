"""Early stopping: end a run whose validation has stopped improving."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from augkit.train.callbacks import Callback, EpochEnd, LoopView

log = logging.getLogger("augkit.train")


class EarlyStopping(Callback):
    """Stops the run after `patience` validations in a row that do not beat the best one
    (``eval.patience``; 0: never). A validation without a score (its slice is empty) does not
    beat it. A run stopped early stays stopped on resume."""

    def __init__(self, patience: int, monitor: str) -> None:
        self.patience, self.monitor = patience, monitor
        self.stale = 0
        """Validations since the best one."""
        self.stopped = False

    @property
    def stops_training(self) -> bool:
        return self.stopped

    def on_epoch_end(self, loop: LoopView, end: EpochEnd) -> None:
        if end.validation is None:
            return
        if end.improved:
            self.stale = 0
            return
        self.stale += 1
        if self.patience and self.stale >= self.patience:
            self.stopped = True

    def on_train_end(self, loop: LoopView) -> None:
        if self.stopped:
            log.info(
                "stopped early after epoch %d: %s did not improve for %d validations",
                loop.step // loop.steps_per_epoch, self.monitor, self.patience,
            )

    def state_dict(self) -> dict[str, Any]:
        return {"stale": self.stale, "stopped_early": self.stopped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stale, self.stopped = state["stale"], state["stopped_early"]

"""The progress bar of a run: steps, epoch and loss on standard error."""

from __future__ import annotations

import sys

import torch
from tqdm.auto import tqdm

from augkit import distributed
from augkit.train.callbacks import Callback, LoopView

EVERY = 10
"""Steps between updates of the bar (and at each epoch's end): each reads the loss on the host."""


class Progress(Callback):
    """A tqdm bar of the run's steps with ``progress = true``, shown by the first process on a
    terminal only (no bar lines in a log file), updated every `EVERY` steps."""

    def __init__(self) -> None:
        self._bar: tqdm | None = None

    def on_train_start(self, loop: LoopView) -> None:
        config = loop.config
        self._bar = tqdm(
            total=loop.total_steps, initial=loop.step,
            disable=not (config.progress and distributed.rank() == 0 and sys.stderr.isatty()),
            unit="step", desc=config.name,
        )

    def on_step_end(self, loop: LoopView, terms: torch.Tensor) -> None:
        if self._bar is None or not loop.config.progress:
            return
        if loop.step % EVERY == 0 or loop.step % loop.steps_per_epoch == 0:
            loop.check_finite()
            epoch = (loop.step - 1) // loop.steps_per_epoch + 1
            total = float(terms[0])  # TERMS[0]
            self._bar.set_postfix(epoch=f"{epoch}/{loop.config.epochs}", loss=f"{total:.3f}")
            self._bar.update(loop.step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

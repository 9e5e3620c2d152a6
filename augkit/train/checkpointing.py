"""Checkpoints of a training run: ``checkpoint.pt`` to resume from, ``best.pt`` to test.

``checkpoint.pt`` holds everything a resumed run needs to end as an uninterrupted one: the
step, the config (as TOML), the towers, the main loss (its learned temperature), the
optimiser (dense Adam's state, and the table optimizer's under a sparse ``optim.tables``,
`augkit.train.optimizers`; on the torchrec backend the fused optimizer's, each table's state
whole), the frequency estimate and the loop state (the loop's and each piece's, see
`augkit.train.callbacks`); both files record the run that wrote them (``"run"``: its id and
directory, `augkit.train.identity`). Files are written by
`augkit.train.checkpoint.save_checkpoint` (atomic, checksummed).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from augkit import distributed
from augkit.errors import AugkitError, CheckpointError, ConfigError
from augkit.train.backend import load_native, sync_native
from augkit.train.callbacks import Callback, EpochEnd, LoopView
from augkit.train.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    RUN_KEY,
    check_owner,
    load_checkpoint,
    no_checkpoint,
    save_checkpoint,
)
from augkit.train.config import TrainConfig, config_from_dict, config_to_dict, dump_config

RESUMABLE_KEYS = frozenset({"epochs", "progress", "device", "threads"})
"""Config keys a ``--resume`` may change: they do not change what a step computes."""
REQUIRED = ("step", "config", "model", "main_loss", "optimizer", "loop")
"""The keys of every ``checkpoint.pt`` (``frequency`` too, where the run has an estimate)."""


class Checkpointing(Callback):
    """Saves ``checkpoint.pt`` every ``checkpoint_every`` steps, at each epoch's end and at the
    run's last step, and ``best.pt`` (step, config, towers, best validation) at each validation
    that beats the best one; only the first process writes. No checkpoint holds a step whose
    losses were not finite. `restore` reads ``checkpoint.pt`` back for a resume. `run` is what
    every checkpoint records of the run (``{"id", "dir"}``; None for a run without an id)."""

    def __init__(self, run_dir: Path, run: Mapping[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.run = None if run is None else dict(run)
        self.writes = distributed.rank() == 0

    def on_step_end(self, loop: LoopView, terms: torch.Tensor) -> None:
        every = loop.config.checkpoint_every
        if every and loop.step % every == 0 and loop.step % loop.steps_per_epoch != 0:  # the epoch's end saves
            self.save(loop)

    def on_epoch_end(self, loop: LoopView, end: EpochEnd) -> None:
        sync_native(loop.parts)  # on every process: a collective on the torchrec backend
        if end.improved and self.writes:
            parts = loop.parts
            best = {
                "step": loop.step, "config": dump_config(parts.config), "model": parts.model.state_dict(), "best": loop.best,
            }
            if self.run is not None:
                best[RUN_KEY] = self.run
            save_checkpoint(self.run_dir / BEST_NAME, best)
        self.save(loop)

    def on_train_end(self, loop: LoopView) -> None:
        if loop.finished and loop.step > 0:
            self.save(loop)

    def save(self, loop: LoopView) -> None:
        """``checkpoint.pt`` of `loop` now (`augkit.errors.TrainingError` instead, if a step
        had a loss that is not finite). Called on every process: on the torchrec backend the
        weights and the tables' optimizer state are gathered whole from every process."""
        loop.check_finite()
        sync_native(loop.parts)
        state = _checkpoint(loop)
        if self.writes:
            if self.run is not None:
                state[RUN_KEY] = self.run
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, state)

    def restore(self, loop: LoopView) -> None:
        """Set `loop` (towers, losses, optimiser, frequency estimate, loop state) from
        ``checkpoint.pt``. `CheckpointError` if there is none, if it does not load, or if it
        does not fit the run, or was written by another run (where this one has an id);
        `ConfigError` naming every key where its config differs from the run's but
        `RESUMABLE_KEYS`."""
        path = self.run_dir / CHECKPOINT_NAME
        if not path.exists():
            raise no_checkpoint(self.run_dir)
        state = load_checkpoint(path, required=REQUIRED)
        if self.run is not None:
            check_owner(path, state, self.run_dir, self.run["id"])
        check_same_config(path, state["config"], loop.config)
        step = state["step"]
        if type(step) is not int or not 0 <= step <= loop.total_steps:
            epochs = loop.config.epochs
            raise CheckpointError(
                f"checkpoint {str(path)!r} is at step {step!r}, outside 0..{loop.total_steps} "
                f"({epochs} epoch{'' if epochs == 1 else 's'} of {loop.steps_per_epoch} steps); "
                "resume with at least as many epochs"
            )
        parts = loop.parts
        try:
            parts.model.load_state_dict(state["model"])
            load_native(parts)
            parts.main_loss.load_state_dict(state["main_loss"])
            loop.optimizer.load_state_dict(state["optimizer"])
            if parts.frequency is not None:
                parts.frequency.load_state_dict(state["frequency"])
        except (RuntimeError, KeyError, ValueError) as error:
            details = [line.strip() for line in str(error).strip().splitlines() if line.strip()][1:4]
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit this run's model: {'; '.join(details) or error}"
            ) from None
        try:
            loop.load_state_dict(state["loop"])
        except ValueError as error:
            raise CheckpointError(f"checkpoint {str(path)!r}: its loop state does not fit this augkit ({error})") from None


def _checkpoint(loop: LoopView) -> dict[str, Any]:
    parts = loop.parts
    state: dict[str, Any] = {
        "step": loop.step,
        "config": dump_config(parts.config),
        "model": parts.model.state_dict(),
        "main_loss": parts.main_loss.state_dict(),
        "optimizer": loop.optimizer.state_dict(),
        "loop": loop.state_dict(),
    }
    if parts.frequency is not None:
        state["frequency"] = parts.frequency.state_dict()
    return state


def check_same_config(path: Path, saved: str, current: TrainConfig) -> None:
    """`ConfigError` naming every key (but `RESUMABLE_KEYS`) where the config `saved` (TOML,
    from the checkpoint at `path`) differs from `current`."""
    try:
        before = config_to_dict(config_from_dict(tomllib.loads(saved), source=str(path)))
    except (tomllib.TOMLDecodeError, AugkitError) as error:
        raise CheckpointError(f"checkpoint {str(path)!r} holds a config this augkit cannot read: {error}") from None
    differing = [key for key in _diff(before, config_to_dict(current)) if key not in RESUMABLE_KEYS]
    if differing:
        written = path.parent / "config.toml"  # written when the run finished; a stopped run has none
        see = f"; see {str(written)!r}" if written.exists() else ""
        raise ConfigError(
            f"--resume: {str(path)!r} was written with another config; differing keys: {', '.join(differing)} "
            f"(only {', '.join(sorted(RESUMABLE_KEYS))} may change on resume{see}), "
            "or start afresh with --overwrite or another --name"
        )


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, Mapping) and isinstance(right, Mapping) and key != "augmentation" and key != "tables":
            keys += _diff(left, right, f"{prefix}{key}.")
        elif left != right:
            keys.append(f"{prefix}{key}")
    return keys

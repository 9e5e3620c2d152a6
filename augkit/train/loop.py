"""The reference training loop: ``L_main + alpha * L_self``, validation, early stopping,
history, checkpoints and resume.

Every step draws from generators seeded by ``(seed, step)`` and every epoch's order from
``(seed, epoch)``, and the loop's own state (history, best score, loss sums) is in the
checkpoint, so a run resumed from a checkpoint ends with the same parameters, history and
metrics as an uninterrupted run with the same seed (on CPU). The loop is a few small pieces
called from `_Loop.run`: a step, the epoch's end (validation, history, best checkpoint, early
stopping) and checkpointing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from tqdm.auto import tqdm

from augkit import distributed, threads
from augkit.errors import AugkitError, CheckpointError, ConfigError, RunDirectoryError, TrainingError
from augkit.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint, no_checkpoint, save_checkpoint
from augkit.train.config import TrainConfig, config_to_dict, dump_config
from augkit.train.device import place, resolve_device
from augkit.train.logbook import HISTORY_NAME, STEPS_NAME, TensorBoard, write_csv
from augkit.train.run import STREAM_EPOCH, STREAM_STEP, RunParts, build_run, generator_for
from augkit.train.rundir import hold
from augkit.train.step import TERMS, train_step

log = logging.getLogger("augkit.train")

STREAM_VALID = 5
RESUMABLE_KEYS = frozenset({"epochs", "progress", "device", "threads"})
"""Config keys a ``--resume`` may change: they do not change what a step computes."""


@attrs.frozen(eq=False)
class TrainResult:
    parts: RunParts
    steps: int
    seconds: float
    last_losses: dict[str, float]
    finished: bool
    history: list[dict[str, Any]] = attrs.Factory(list)
    """A row per epoch, as in ``history.csv``."""
    best: dict[str, Any] | None = None
    """``{"epoch", "step", "monitor", "score", "metrics"}`` of the best validation, or None."""
    stopped_early: bool = False


def _parameters(parts: RunParts) -> list[torch.nn.Parameter]:
    modules = [parts.model, parts.main_loss, parts.ssl_loss]
    seen: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        if module is not None:
            for parameter in module.parameters():
                seen.setdefault(id(parameter), parameter)
    return list(seen.values())


# -- the loop's own state --------------------------------------------------------------------
@attrs.define
class LoopState:
    """What the loop carries from step to step, saved in every checkpoint."""

    step: int = 0
    seconds: float = 0.0
    """Training time over every session of the run (evaluation included)."""
    history: list[dict[str, Any]] = attrs.Factory(list)
    steps: list[dict[str, Any]] = attrs.Factory(list)
    best: dict[str, Any] | None = None
    stale: int = 0
    """Validations since the best one."""
    stopped_early: bool = False
    last_losses: dict[str, float] = attrs.Factory(dict)
    epoch_sums: torch.Tensor = attrs.Factory(lambda: torch.zeros(len(TERMS), dtype=torch.float64))
    window_sums: torch.Tensor = attrs.Factory(lambda: torch.zeros(len(TERMS), dtype=torch.float64))

    def to_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self, recurse=False)
        out["epoch_sums"], out["window_sums"] = self.epoch_sums.cpu(), self.window_sums.cpu()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path) -> LoopState:
        try:
            return cls(**data)
        except TypeError as error:
            raise CheckpointError(f"checkpoint {str(path)!r}: its loop state does not fit this augkit ({error})") from None


def _terms(sums: torch.Tensor, count: int, present: Mapping[str, bool]) -> dict[str, float]:
    return {f"loss/{name}": float(value) / max(count, 1) for name, value in zip(TERMS, sums.tolist()) if present[name]}


# -- the loop -----------------------------------------------------------------------------------
class _Loop:
    def __init__(self, parts: RunParts, run_dir: Path, *, max_steps: int | None) -> None:
        self.parts, self.config, self.run_dir, self.max_steps = parts, parts.config, run_dir, max_steps
        self.device = parts.queries.device
        self.optimizer = torch.optim.Adam(
            _parameters(parts), lr=self.config.optim.lr, weight_decay=self.config.optim.weight_decay
        )
        self.rows = len(parts.split.train)
        self.steps_per_epoch = math.ceil(self.rows / self.config.main.batch_size)
        self.total_steps = self.steps_per_epoch * self.config.epochs
        self.validating = len(parts.split.valid) > 0
        self.present = {
            "total": True, "main": True, "ssl": parts.ssl_loss is not None, "spread_out": parts.spread_out is not None,
        }
        self.state = LoopState()
        self.holdout = None
        self.writes = distributed.rank() == 0
        """Only the first process writes files (checkpoints, history, TensorBoard)."""
        self.first_bad = torch.full((len(TERMS),), -1, dtype=torch.long, device=self.device)

    # checkpoints
    def _state(self) -> dict[str, Any]:
        parts = self.parts
        state: dict[str, Any] = {
            "step": self.state.step,
            "config": dump_config(parts.config),
            "model": parts.model.state_dict(),
            "main_loss": parts.main_loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loop": self.state.to_dict(),
        }
        if parts.frequency is not None:
            state["frequency"] = parts.frequency.state_dict()
        return state

    def save(self) -> None:
        self._check_finite()
        if self.writes:
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, self._state())

    def restore(self) -> None:
        path = self.run_dir / CHECKPOINT_NAME
        if not path.exists():
            raise no_checkpoint(self.run_dir)
        state = load_checkpoint(path, required=("step", "config", "model", "main_loss", "optimizer", "loop"))
        _check_same_config(path, state["config"], self.parts.config)
        step = state["step"]
        if type(step) is not int or not 0 <= step <= self.total_steps:
            raise CheckpointError(
                f"checkpoint {str(path)!r} is at step {step!r}, outside 0..{self.total_steps} "
                f"({_count(self.config.epochs, 'epoch')} of {self.steps_per_epoch} steps); resume with at least as many epochs"
            )
        try:
            self.parts.model.load_state_dict(state["model"])
            self.parts.main_loss.load_state_dict(state["main_loss"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.parts.frequency is not None:
                self.parts.frequency.load_state_dict(state["frequency"])
        except (RuntimeError, KeyError, ValueError) as error:
            details = [line.strip() for line in str(error).strip().splitlines() if line.strip()][1:4]
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit this run's model: {'; '.join(details) or error}"
            ) from None
        self.state = LoopState.from_dict(state["loop"], path)
        self.state.epoch_sums = self.state.epoch_sums.to(torch.float64)
        self.state.window_sums = self.state.window_sums.to(torch.float64)

    # divergence
    def _check_finite(self) -> None:
        """`TrainingError` for the first step whose loss terms were not all finite."""
        if bool((self.first_bad >= 0).any()):
            term = int(torch.argmax((self.first_bad >= 0).long()))
            bad = self.first_bad[self.first_bad >= 0]
            step = int(bad.min())
            terms = [TERMS[i] for i in range(len(TERMS)) if int(self.first_bad[i]) == step and TERMS[i] != "total"] or [TERMS[term]]
            kept = self.run_dir / CHECKPOINT_NAME
            keeps = f"the last good checkpoint {str(kept)!r} is kept" if kept.exists() else "no checkpoint was written"
            raise TrainingError(
                f"step {step}: the {' and '.join(terms)} loss{'es are' if len(terms) > 1 else ' is'} not finite; "
                f"training stopped and {keeps}. "
                "Try a lower optim.lr or a higher temperature"
            )

    # the parts of an epoch
    def step(self, rows: torch.Tensor) -> None:
        state = self.state
        losses = train_step(self.parts, rows, generator_for(self.config.seed, STREAM_STEP, state.step), step=state.step)
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.optimizer.step()
        terms = losses.stacked()
        self.first_bad = torch.where(~torch.isfinite(terms) & (self.first_bad < 0), state.step, self.first_bad)
        state.epoch_sums = state.epoch_sums.to(self.device) + terms
        state.window_sums = state.window_sums.to(self.device) + terms
        state.step += 1
        self.last = losses
        every = self.config.log_every
        if every and state.step % every == 0:
            self._check_finite()
            state.steps.append({"step": state.step, **_terms(state.window_sums, every, self.present)})
            state.window_sums = torch.zeros_like(state.window_sums)
        ends_epoch = state.step % self.steps_per_epoch == 0  # end_epoch's own save follows
        if self.config.checkpoint_every and state.step % self.config.checkpoint_every == 0 and not ends_epoch:
            self.save()

    def end_epoch(self, epoch: int, seconds: float, examples: int) -> None:
        """History row, validation, best checkpoint and early stopping after epoch `epoch`."""
        self._check_finite()
        state = self.state
        steps_done = state.step - epoch * self.steps_per_epoch
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": state.step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "items_per_s": round(examples / max(seconds, 1e-9), 1),
            **_terms(state.epoch_sums, steps_done, self.present),
        }
        state.epoch_sums = torch.zeros_like(state.epoch_sums)
        last = epoch + 1 == self.config.epochs
        every = self.config.eval.every
        if self.validating and (last or (every and (epoch + 1) % every == 0)):
            row.update(self.validate(epoch))
        state.history.append(row)

    def validate(self, epoch: int) -> dict[str, float]:
        from augkit.train.evaluation import build_holdout, evaluate_model

        config = self.config.eval
        log.info("epoch %d: validating ...", epoch + 1)
        started = time.perf_counter()
        if self.holdout is None:
            generator = generator_for(self.config.seed, STREAM_VALID, 0)
            self.holdout = build_holdout(self.parts, on="valid", max_users=config.max_users or None, generator=generator)
        metrics = evaluate_model(self.parts, self.holdout).as_dict()
        flat = {
            f"valid/{s}/{m}@{k}": metrics[s][f"{m}@{k}"]
            for s in ("all", "head", "tail", "cold")
            for m in ("recall", "ndcg")
            for k in config.ks
        }
        score = _score(metrics, config.monitor)
        state = self.state
        if score is not None and (state.best is None or score > state.best["score"]):
            state.best = {"epoch": epoch + 1, "step": state.step, "monitor": config.monitor, "score": score, "metrics": metrics}
            state.stale = 0
            if self.writes:
                save_checkpoint(self.run_dir / BEST_NAME, {"step": state.step, "config": dump_config(self.parts.config), "model": self.parts.model.state_dict(), "best": state.best})
        else:
            state.stale += 1
            if config.patience and state.stale >= config.patience:
                state.stopped_early = True
        log.info(
            "epoch %d: %s = %s (best %.4f at epoch %d) in %.1f s",
            epoch + 1, config.monitor, "n/a" if score is None else f"{score:.4f}",
            state.best["score"] if state.best else float("nan"), state.best["epoch"] if state.best else 0,
            time.perf_counter() - started,
        )
        return flat

    def run(self, bar: tqdm) -> None:
        config, state = self.config, self.state
        batch_size = config.main.batch_size
        board = TensorBoard(self.run_dir) if self.writes else None
        seen_history, seen_steps = len(state.history), len(state.steps)
        try:
            while state.step < self.total_steps and not state.stopped_early and not self._halted():
                epoch, offset = divmod(state.step, self.steps_per_epoch)
                order = torch.randperm(self.rows, generator=generator_for(config.seed, STREAM_EPOCH, epoch))
                order = order.to(self.device, non_blocking=True)
                started, first = time.perf_counter(), state.step
                for start in range(offset * batch_size, self.rows, batch_size):
                    if self._halted():
                        break
                    self.step(order[start : start + batch_size])
                    if config.progress and (state.step % 10 == 0 or state.step % self.steps_per_epoch == 0):
                        self._check_finite()
                        bar.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{float(self.last.total.detach()):.3f}")
                        bar.update(state.step - bar.n)
                seconds = time.perf_counter() - started
                state.seconds += seconds
                if state.step % self.steps_per_epoch == 0:
                    self.end_epoch(epoch, seconds, (state.step - first) * batch_size)
                    self.save()
                for row in state.history[seen_history:] if board else ():
                    board.add(row, step=row["step"], prefix="epoch")
                for row in state.steps[seen_steps:] if board else ():
                    board.add(row, step=row["step"], prefix="steps")
                seen_history, seen_steps = len(state.history), len(state.steps)
        finally:
            if board:
                board.close()
        self._check_finite()
        if state.step > 0 and hasattr(self, "last"):
            state.last_losses = {name: float(value) for name, value in zip(TERMS, self.last.stacked().tolist()) if self.present[name]}
        self.write_history()
        if state.stopped_early:
            log.info("stopped early after epoch %d: %s did not improve for %d validations", len(state.history), config.eval.monitor, config.eval.patience)

    def _halted(self) -> bool:
        return (self.max_steps is not None and self.state.step >= self.max_steps) or self.state.step >= self.total_steps

    def write_history(self) -> None:
        if not self.writes:
            return
        write_csv(self.run_dir / HISTORY_NAME, self.state.history)
        if self.state.steps:
            write_csv(self.run_dir / STEPS_NAME, self.state.steps)

    @property
    def finished(self) -> bool:
        return self.state.step >= self.total_steps or self.state.stopped_early


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _score(metrics: Mapping[str, Any], monitor: str) -> float | None:
    _, slice_, key = monitor.split("/")
    return metrics[slice_][key]


def _check_same_config(path: Path, saved: str, current: TrainConfig) -> None:
    """`ConfigError` naming every key (but `RESUMABLE_KEYS`) where `saved` differs from `current`."""
    import tomllib

    from augkit.train.config import config_from_dict

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


def summary(parts: RunParts, device: torch.device) -> str:
    """The start-up lines: data and split sizes, parameters, device and threads."""
    data, split = parts.dataset, parts.split
    counts = {name: sum(p.numel() for p in parts.model[name].parameters()) for name in ("query", "item")}
    lines = [
        f"data {data.name!r}: {data.num_users} users, {data.num_items} items, {len(data.interactions)} interactions",
        (f"split: {len(split.train)} train, {len(split.valid)} validation, {len(split.test)} test events; "
         f"{int(split.cold_items.sum())} cold items"),
        (f"towers: query {counts['query']:,} and item {counts['item']:,} parameters; "
         f"device {device}, {_count(torch.get_num_threads(), 'thread')}, precision {parts.config.precision}"),
    ]
    return "\n".join([*lines, *(f"warning: {w}" for w in data.warnings)])


def prepare(config: TrainConfig, parts: RunParts | None) -> RunParts:
    """Built parts (data validated first) on the config's device, with its thread count; in a
    process group (see `joined`), the towers in DDP."""
    parts = parts or build_run(config)
    device = resolve_device(parts.config.device)
    if parts.config.precision == "bf16-mixed" and device.type != "cuda":
        raise ConfigError(f"precision 'bf16-mixed' needs a CUDA device; the run is on {device}")
    torch.set_num_threads(parts.config.threads or threads.default_threads())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    parts = place(parts, device)
    if distributed.is_distributed():
        ddp = torch.nn.parallel.DistributedDataParallel(parts.towers, device_ids=[device] if device.type == "cuda" else None)
        parts = attrs.evolve(parts, towers=ddp)
    return parts


def joined(config: TrainConfig) -> contextlib.AbstractContextManager[None]:
    """Under torchrun, the process group for the block (nccl when the config's device is
    CUDA, gloo otherwise), left when the block ends cleanly (`augkit.distributed.process_group`)."""
    wanted = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return distributed.process_group(torch.device(wanted).type)


@contextlib.contextmanager
def run_directory(run_dir: Path, *, resume: bool, overwrite: bool) -> Iterator[Path]:
    """`augkit.train.rundir.hold` on the first process; the others wait until it holds it."""
    if distributed.rank() != 0:
        failure = distributed.broadcast_object(None)
        if failure is not None:
            raise RunDirectoryError(f"the first process could not hold the run directory: {failure}")
        yield run_dir
        return
    announced = False
    try:
        with hold(run_dir, resume=resume, overwrite=overwrite) as held:
            announced = distributed.broadcast_object(None) is None
            yield held
    except RunDirectoryError as error:
        if not announced:  # the others wait for word of the lock
            distributed.broadcast_object(str(error))
        raise


def run_loop(parts: RunParts, run_dir: Path, *, resume: bool, max_steps: int | None) -> TrainResult:
    """Train `parts` in the held `run_dir` (see `train`)."""
    loop = _Loop(parts, run_dir, max_steps=max_steps)
    log.info(summary(parts, loop.device))
    if resume:
        loop.restore()
    config = parts.config
    bar = tqdm(
        total=loop.total_steps, initial=loop.state.step,
        disable=not (config.progress and loop.writes and sys.stderr.isatty()),  # no bar lines in a log file
        unit="step", desc=config.name,
    )
    try:
        loop.run(bar)
    finally:
        bar.close()
    if loop.finished and loop.state.step > 0:
        loop.save()
    state = loop.state
    return TrainResult(
        parts, state.step, state.seconds, state.last_losses, loop.finished, state.history, state.best, state.stopped_early
    )


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    max_steps: int | None = None,
    parts: RunParts | None = None,
) -> TrainResult:
    """Train the two towers of `config` in ``<output_dir>/<name>/`` (checkpoint.pt, best.pt,
    history.csv, steps.csv), holding that directory's lock.

    The data and config are validated before the directory is touched. `resume` continues
    from the checkpoint (and may train more `epochs`); otherwise a directory with an earlier
    run's results is refused unless `overwrite`. `max_steps` stops early without a final
    checkpoint, as a killed run would (for tests and quick looks).
    """
    with joined(config):
        return _train(config, resume=resume, overwrite=overwrite, max_steps=max_steps, parts=parts)


def _train(config: TrainConfig, *, resume: bool, overwrite: bool, max_steps: int | None, parts: RunParts | None) -> TrainResult:
    parts = prepare(config, parts)
    with run_directory(parts.config.run_dir, resume=resume, overwrite=overwrite) as run_dir:
        return run_loop(parts, run_dir, resume=resume, max_steps=max_steps)

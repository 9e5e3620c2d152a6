"""The reference training loop: ``L_main + alpha * L_self``, validation, and the pieces that
keep a run's record (`augkit.train.callbacks`).

Every step draws from generators seeded by ``(seed, step)`` and every epoch's order from
``(seed, epoch)``, and the state of the loop and of its pieces (history, early stopping) is in
the checkpoint, so a run resumed from a checkpoint ends with the same parameters, history and
metrics as an uninterrupted run with the same seed (on CPU). `train` runs a `Loop` with its
pieces: `Logbook` (history files), `SSLChance` (the SSL loss against chance), `EarlyStopping`,
`Checkpointing` and `Progress`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch

from augkit import distributed, threads
from augkit.errors import ConfigError, RunDirectoryError, TrainingError
from augkit.torchrec.sharding import local_process_group
from augkit.train.backend import build_run_optimizer, check_backend, on_torchrec, sync_native
from augkit.train.callbacks import Callback, EpochEnd
from augkit.train.checkpoint import CHECKPOINT_NAME
from augkit.train.checkpointing import Checkpointing
from augkit.train.config import TrainConfig
from augkit.train.device import place, resolve_device
from augkit.train.early_stopping import EarlyStopping
from augkit.train.identity import identity_for, write_identity
from augkit.train.logbook import Logbook
from augkit.train.progress import Progress
from augkit.train.run import STREAM_EPOCH, STREAM_STEP, RunParts, build_run, generator_for
from augkit.train.rundir import OnExisting, check_on_existing, hold
from augkit.train.ssl_chance import SSLChance
from augkit.train.step import TERMS, StepLosses, step_losses, train_step
from augkit.train.streamed import StreamedEpochs
from augkit.train.validation import Validation, Validator

log = logging.getLogger("augkit.train")


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
    ssl_vs_chance: dict[str, Any] | None = None
    """`SSLChance.summary`: the SSL loss against ln B by epoch, and its warning."""
    timing: dict[str, float] = attrs.Factory(dict)
    """`Loop.timing`: building the run and validating, seconds over every session."""


class Loop:
    """Trains `parts` in the held `run_dir` for the config's epochs, validating every
    ``eval.every`` epochs and after the last, and tells `pieces`, in their order, of each step
    and epoch (`augkit.train.callbacks.Callback`). It reads losses on the host only when a
    piece asks (`check_finite`), so a step does not wait for the device."""

    def __init__(
        self, parts: RunParts, run_dir: Path, pieces: Sequence[Callback], *, max_steps: int | None = None
    ) -> None:
        self.parts, self.config, self.run_dir, self.pieces = parts, parts.config, run_dir, tuple(pieces)
        self.max_steps = max_steps
        self.device = parts.queries.device
        self.optimizer = build_run_optimizer(parts)
        self.streamed = None if parts.examples is None else StreamedEpochs(parts, self.device)
        """The training batches of a streamed source (`augkit.train.streamed`), else None."""
        self.rows = len(parts.split.train)
        self.steps_per_epoch = math.ceil(self.rows / self.config.main.batch_size)
        if self.streamed is not None:
            self.rows, self.steps_per_epoch = parts.examples.files.num_rows, len(self.streamed)
        self.total_steps = self.steps_per_epoch * self.config.epochs
        self.present = {
            "total": True, "main": True, "ssl": parts.ssl_loss is not None, "spread_out": parts.spread_out is not None,
        }
        self.validating = len(parts.split.valid) > 0
        self.validator = Validator(parts)
        # the loop's own state (see state_dict)
        self.step = 0
        self.seconds = 0.0
        """Time in the epochs' steps over every session of the run (the checkpoints written
        between steps included; building the run and validation are in `timing`)."""
        self.timing = {"data_seconds": 0.0, "validation_seconds": 0.0}
        """Seconds building the run (data, split, towers) and validating, over every session."""
        self.best: dict[str, Any] | None = None
        self.last_losses: dict[str, float] = {}
        self._last_terms: torch.Tensor | None = None
        self._first_bad = torch.full((len(TERMS),), -1, dtype=torch.long, device=self.device)

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps or any(piece.stops_training for piece in self.pieces)

    def run(self) -> None:
        """Train until `finished` or ``max_steps``."""
        for piece in self.pieces:
            piece.on_train_start(self)
        try:
            while not self.finished and not self._halted():
                self._epoch()
            self.check_finite()
            sync_native(self.parts)
            if self._last_terms is not None:
                last = zip(TERMS, self._last_terms.tolist())
                self.last_losses = {name: float(value) for name, value in last if self.present[name]}
            for piece in self.pieces:
                piece.on_train_end(self)
        finally:
            for piece in self.pieces:
                piece.close()

    def _epoch(self) -> None:
        if self.streamed is not None:
            self._streamed_epoch()
            return
        batch_size = self.config.main.batch_size
        epoch, offset = divmod(self.step, self.steps_per_epoch)
        order = torch.randperm(self.rows, generator=generator_for(self.config.seed, STREAM_EPOCH, epoch))
        order = order.to(self.device, non_blocking=True)
        started, first = time.perf_counter(), self.step
        for start in range(offset * batch_size, self.rows, batch_size):
            if self._halted():
                break
            self._step(order[start : start + batch_size])
        seconds = time.perf_counter() - started
        self.seconds += seconds
        if self.step % self.steps_per_epoch == 0:
            self._end_epoch(epoch + 1, seconds, (self.step - first) * batch_size)

    def _streamed_epoch(self) -> None:
        """`_epoch` over the streamed examples: a step per batch of the loader."""
        epoch, started, first = self.streamed.epoch, time.perf_counter(), self.step
        batches = self.streamed.batches()
        while not self._halted() and (batch := next(batches, False)) is not False:
            if batch is None:  # no event of the batch is trained on: the step makes no update
                self.step += 1
                continue
            generator = generator_for(self.config.seed, STREAM_STEP, self.step)
            self._apply(step_losses(
                self.parts, batch.queries, batch.items, batch.global_items, batch.sizes, generator, step=self.step
            ))
        batches.close()
        seconds = time.perf_counter() - started
        self.seconds += seconds
        if self.step % self.steps_per_epoch == 0:
            self.streamed.report_epoch(epoch + 1)
            self._end_epoch(epoch + 1, seconds, (self.step - first) * self.config.main.batch_size)

    def _step(self, rows: torch.Tensor) -> None:
        self._apply(train_step(self.parts, rows, generator_for(self.config.seed, STREAM_STEP, self.step), step=self.step))

    def _apply(self, losses: StepLosses) -> None:
        """Back-propagate a step's `losses`, update, and tell the pieces."""
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.optimizer.step()
        terms = losses.stacked()
        self._first_bad = torch.where(~torch.isfinite(terms) & (self._first_bad < 0), self.step, self._first_bad)
        self.step += 1
        self._last_terms = terms
        for piece in self.pieces:
            piece.on_step_end(self, terms)

    def _end_epoch(self, epoch: int, seconds: float, examples: int) -> None:
        self.check_finite()
        every = self.config.eval.every
        due = self.validating and (epoch == self.config.epochs or (every and epoch % every == 0))
        validation, improved = self._validate(epoch) if due else (None, False)
        end = EpochEnd(epoch=epoch, seconds=seconds, examples=examples, validation=validation, improved=improved)
        for piece in self.pieces:
            piece.on_epoch_end(self, end)

    def _validate(self, epoch: int) -> tuple[Validation, bool]:
        """The validation after `epoch`, and whether it beats the best one (then `best`)."""
        started = time.perf_counter()
        sync_native(self.parts)
        validation = self.validator(epoch)
        self.timing["validation_seconds"] += time.perf_counter() - started
        score, monitor = validation.score, self.config.eval.monitor
        improved = score is not None and (self.best is None or score > self.best["score"])
        if improved:
            self.best = {"epoch": epoch, "step": self.step, "monitor": monitor, "score": score, "metrics": validation.metrics}
        log.info(
            "epoch %d: %s = %s (best %.4f at epoch %d) in %.1f s",
            epoch, monitor, "n/a" if score is None else f"{score:.4f}",
            self.best["score"] if self.best else float("nan"), self.best["epoch"] if self.best else 0,
            time.perf_counter() - started,
        )
        return validation, improved

    def _halted(self) -> bool:
        return (self.max_steps is not None and self.step >= self.max_steps) or self.step >= self.total_steps

    def check_finite(self) -> None:
        """`TrainingError` for the first step whose loss terms were not all finite."""
        if bool((self._first_bad >= 0).any()):
            term = int(torch.argmax((self._first_bad >= 0).long()))
            bad = self._first_bad[self._first_bad >= 0]
            step = int(bad.min())
            terms = [TERMS[i] for i in range(len(TERMS)) if int(self._first_bad[i]) == step and TERMS[i] != "total"] or [TERMS[term]]
            kept = self.run_dir / CHECKPOINT_NAME
            keeps = f"the last good checkpoint {str(kept)!r} is kept" if kept.exists() else "no checkpoint was written"
            raise TrainingError(
                f"step {step}: the {' and '.join(terms)} loss{'es are' if len(terms) > 1 else ' is'} not finite; "
                f"training stopped and {keeps}. "
                "Try a lower optim.lr or a higher temperature"
            )

    def state_dict(self) -> dict[str, Any]:
        """The loop state of a checkpoint: ``step``, ``seconds``, ``timing``, ``best``,
        ``last_losses`` and every piece's keys."""
        state: dict[str, Any] = {
            "step": self.step, "seconds": self.seconds, "timing": dict(self.timing), "best": self.best,
            "last_losses": self.last_losses,
        }
        if self.streamed is not None:
            state["examples"] = self.streamed.state_dict()
        for piece in self.pieces:
            own = piece.state_dict()
            clash = set(own) & set(state)
            if clash:
                raise ValueError(f"{type(piece).__name__} saves {sorted(clash)}, keys of the loop or of another piece")
            state.update(own)
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back `state_dict`'s output; `ValueError` if its keys are not those it saves. A
        key a checkpoint of an earlier version lacks takes its piece's `Callback.state_defaults`."""
        defaults = {"timing": {"data_seconds": 0.0, "validation_seconds": 0.0}}  # checkpoints before timing
        state = {**defaults, **{k: v for piece in self.pieces for k, v in piece.state_defaults().items()}, **state}
        expected = set(self.state_dict())
        if set(state) != expected:
            missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f"missing {missing}, unexpected {unexpected}")
        self.step, self.seconds, self.timing = state["step"], state["seconds"], dict(state["timing"])
        self.best, self.last_losses = state["best"], state["last_losses"]
        if self.streamed is not None:
            self.streamed.load_state_dict(state["examples"])
        for piece in self.pieces:
            piece.load_state_dict(state)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def summary(parts: RunParts, device: torch.device) -> str:
    """The start-up lines: data and split sizes, parameters, device and threads; the SSL
    augmentation's splits when it reports them (``split_report(corpus)``, as ``cfm`` does)."""
    data, split = parts.dataset, parts.split
    counts = {name: sum(p.numel() for p in parts.model[name].parameters()) for name in ("query", "item")}
    lines = [
        f"data {data.name!r}: {data.num_users} users, {data.num_items} items, {len(data.interactions)} interactions",
        (f"split: {len(split.train)} train, {len(split.valid)} validation, {len(split.test)} test events; "
         f"{int(split.cold_items.sum())} cold items") if parts.examples is None else
        (f"streamed: {parts.examples.files.num_rows} example rows; {len(split.valid)} validation, {len(split.test)} "
         f"test events; {int(split.cold_items.sum())} items with no training event"),
        (f"towers: query {counts['query']:,} and item {counts['item']:,} parameters; "
         f"device {device}, {_count(torch.get_num_threads(), 'thread')}, precision {parts.config.precision}"),
    ]
    model = parts.config.model
    if model.backend == "torchrec":
        lines.append(f"tables: TorchRec, sharding {model.sharding} over {_count(distributed.world_size(), 'process')}, fused {parts.config.optim.tables}")
    pair = getattr(parts.augmentation, "pair", parts.augmentation)
    splits = pair.split_report(data.items) if hasattr(pair, "split_report") else ()
    return "\n".join([*lines, *(f"ssl splits: {line}" for line in splits), *(f"warning: {w}" for w in data.warnings)])


def prepare(config: TrainConfig, parts: RunParts | None = None) -> RunParts:
    """Built parts (data validated first) on the config's device, with its thread count; in a
    process group (see `joined`), the towers in DDP; on ``model.backend = "torchrec"``, the
    towers sharded (`augkit.train.backend.on_torchrec`; the group is needed even alone). A
    sparse ``optim.tables`` choice of the native towers in an NCCL process group, where DDP
    cannot reduce sparse gradients, and a TorchRec run that cannot run here
    (`augkit.train.backend.check_backend`) are `ConfigError` s before anything is built."""
    check_sparse_reduction(config)
    device = resolve_device(config.device)
    check_backend(config, device)
    parts = parts or build_run(config)
    if parts.config.precision == "bf16-mixed" and device.type != "cuda":
        raise ConfigError(f"precision 'bf16-mixed' needs a CUDA device; the run is on {device}")
    torch.set_num_threads(parts.config.threads or threads.default_threads())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    parts = place(parts, device)
    if parts.config.model.backend == "torchrec":
        parts = on_torchrec(parts, device)
    elif distributed.is_distributed():
        ddp = torch.nn.parallel.DistributedDataParallel(parts.towers, device_ids=[device] if device.type == "cuda" else None)
        parts = attrs.evolve(parts, towers=ddp)
    return parts


def check_sparse_reduction(config: TrainConfig) -> None:
    """`ConfigError` before anything is built where a sparse ``optim.tables`` choice of the
    native towers meets an NCCL process group: DDP reduces sparse gradients with gloo only."""
    tables = config.optim.tables
    if tables != "adam" and config.model.backend == "native" and distributed.is_distributed() and torch.distributed.get_backend() == "nccl":
        raise ConfigError(
            f"optim.tables = {tables!r}: the id tables' sparse gradients cannot be reduced over CUDA processes "
            '(NCCL); set optim.tables = "adam" (dense Adam on every parameter), use the TorchRec backend '
            "(model.backend) for tables sharded over GPUs, or train on CPU processes (gloo)"
        )


@contextlib.contextmanager
def joined(config: TrainConfig) -> Iterator[None]:
    """Under torchrun, the process group for the block (nccl when the config's device is
    CUDA, gloo otherwise), left when the block ends cleanly (`augkit.distributed.process_group`).
    Alone on ``model.backend = "torchrec"``, a group of this one process, which TorchRec's
    sharding needs (`augkit.torchrec.sharding.local_process_group`)."""
    wanted = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device_type = torch.device(wanted).type
    with distributed.process_group(device_type), contextlib.ExitStack() as alone:
        if config.model.backend == "torchrec":
            alone.enter_context(local_process_group(device_type))  # nothing under torchrun
        yield


@contextlib.contextmanager
def ready(config: TrainConfig) -> Iterator[tuple[RunParts, Any]]:
    """A run of `config` ready to step without the loop, on either backend: its process group
    joined (`joined`), its parts prepared (`prepare`) and its optimizer
    (`augkit.train.backend.build_run_optimizer`), for the block::

        with ready(config) as (parts, optimizer):
            losses = train_step(parts, rows, generator)
            optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            optimizer.step()
    """
    with joined(config):
        parts = prepare(config)
        yield parts, build_run_optimizer(parts)


@contextlib.contextmanager
def run_directory(run_dir: Path, *, on_existing: OnExisting = "refuse") -> Iterator[Path]:
    """`augkit.train.rundir.hold` on the first process; the others wait until it holds it."""
    if distributed.rank() != 0:
        failure = distributed.broadcast_object(None)
        if failure is not None:
            raise RunDirectoryError(f"the first process could not hold the run directory: {failure}")
        yield run_dir
        return
    announced = False
    try:
        with hold(run_dir, on_existing=on_existing) as held:
            announced = distributed.broadcast_object(None) is None
            yield held
    except RunDirectoryError as error:
        if not announced:  # the others wait for word of the lock
            distributed.broadcast_object(str(error))
        raise


def run_loop(
    parts: RunParts,
    run_dir: Path,
    *,
    on_existing: OnExisting = "refuse",
    max_steps: int | None = None,
    allow_changed_data: bool = False,
    data_seconds: float = 0.0,
) -> TrainResult:
    """Train `parts` in the held `run_dir` (see `train`); ``on_existing="resume"`` continues
    from its checkpoint, after checking that the data is the data the run trained on
    (`augkit.train.identity`; `allow_changed_data` lets it go on with changed data, recorded
    once the checkpoint is restored). A fresh run records its identity in the directory.
    `data_seconds`: this session's time building `parts`, added to the run's `Loop.timing`."""
    check_on_existing(on_existing)
    run = identity = warning = None
    if distributed.rank() == 0:  # the first process keeps the run directory and its records
        identity, warning = identity_for(
            parts.config, run_dir, resume=on_existing == "resume", allow_changed_data=allow_changed_data
        )
        if warning is not None:
            log.warning("warning: %s", warning)
        run = None if identity is None else identity.record(run_dir)
    logbook = Logbook(run_dir)
    early_stopping = EarlyStopping(parts.config.eval.patience, parts.config.eval.monitor)
    checkpointing = Checkpointing(run_dir, run)
    ssl_chance = SSLChance()
    loop = Loop(parts, run_dir, [logbook, ssl_chance, early_stopping, checkpointing, Progress()], max_steps=max_steps)
    log.info(summary(parts, loop.device))
    if on_existing == "resume":
        checkpointing.restore(loop)
        if identity is not None and warning is not None:  # changed data, allowed: recorded once the checkpoint fits
            write_identity(run_dir, identity)
    loop.timing["data_seconds"] += data_seconds
    loop.run()
    return TrainResult(
        parts, loop.step, loop.seconds, loop.last_losses, loop.finished, logbook.history, loop.best, early_stopping.stopped,
        ssl_chance.summary, dict(loop.timing),
    )


def train(
    config: TrainConfig,
    *,
    on_existing: OnExisting = "refuse",
    max_steps: int | None = None,
    parts: RunParts | None = None,
    allow_changed_data: bool = False,
) -> TrainResult:
    """Train the two towers of `config` in ``<output_dir>/<name>/`` (checkpoint.pt, best.pt,
    history.csv, steps.csv), holding that directory's lock.

    The data and config are validated before the directory is touched. `on_existing`: a
    directory with an earlier run's results is refused (``"refuse"``), continued from its
    checkpoint (``"resume"``, which may train more `epochs`) or replaced (``"overwrite"``).
    `max_steps` stops early without a final checkpoint, as a killed run would (for tests and
    quick looks). `allow_changed_data`: resume even if the data changed since the run began
    (`augkit.train.identity`).
    """
    with joined(config):
        return _train(config, on_existing=on_existing, max_steps=max_steps, parts=parts, allow_changed_data=allow_changed_data)


def _train(
    config: TrainConfig, *, on_existing: OnExisting, max_steps: int | None, parts: RunParts | None, allow_changed_data: bool
) -> TrainResult:
    check_on_existing(on_existing)
    started = time.perf_counter()
    parts = prepare(config, parts)
    data_seconds = time.perf_counter() - started
    with run_directory(parts.config.run_dir, on_existing=on_existing) as run_dir:
        return run_loop(
            parts, run_dir, on_existing=on_existing, max_steps=max_steps, allow_changed_data=allow_changed_data,
            data_seconds=data_seconds,
        )

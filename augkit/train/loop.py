"""The reference training loop: ``L_main + alpha * L_self``, checkpoints, resume, evaluation.

Every step draws from generators seeded by ``(seed, step)`` and every epoch's order from
``(seed, epoch)``, so a run resumed from a checkpoint ends with the same parameters and
metrics as an uninterrupted run with the same seed (on CPU).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import attrs
import torch
from tqdm.auto import tqdm

from augkit.errors import ConfigError
from augkit.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from augkit.train.config import TrainConfig, dump_config
from augkit.train.run import STREAM_EPOCH, STREAM_STEP, RunParts, build_run, generator_for


@attrs.frozen
class StepLosses:
    total: torch.Tensor
    main: torch.Tensor
    ssl: torch.Tensor | None
    spread_out: torch.Tensor | None


@attrs.frozen(eq=False)
class TrainResult:
    parts: RunParts
    steps: int
    seconds: float
    last_losses: dict[str, float]
    finished: bool


def train_step(parts: RunParts, rows: torch.Tensor, generator: torch.Generator) -> StepLosses:
    """Losses of one step on training rows `rows` (``LongTensor[b]`` into the train log)."""
    config, train = parts.config, parts.split.train
    users, items = train.users[rows], train.items[rows]
    query_batch = parts.queries.select(users)
    item_batch = parts.dataset.items.select(items)
    if parts.feature_dropout is not None:
        item_batch = parts.feature_dropout(item_batch, generator=generator)
    query = parts.model["query"](query_batch)
    item = parts.model["item"](item_batch)
    log_q = None
    if parts.frequency is not None:
        if config.main.logq == "streaming":
            parts.frequency.update(items)
        log_q = parts.frequency.log_prob(items)
    main = parts.main_loss(query, item, item_ids=items, log_q=log_q)
    total = main
    spread = ssl = None
    if parts.spread_out is not None:
        spread = parts.spread_out(item, item_ids=items)
        total = total + config.main.spread_out * spread
    if parts.ssl_loss is not None:
        ssl_items = _uniform_items(parts, generator)
        first, second = parts.augmentation(parts.dataset.items.select(ssl_items), generator=generator)
        z1, z2 = parts.model["item"](first), parts.model["item"](second)
        ssl = parts.ssl_loss(z1, z2, item_ids=ssl_items)
        total = total + config.ssl.alpha * ssl
    return StepLosses(total, main, ssl, spread)


def _uniform_items(parts: RunParts, generator: torch.Generator) -> torch.Tensor:
    """``LongTensor[ssl.batch_size]`` of distinct items drawn uniformly from the corpus."""
    num_items = parts.dataset.num_items
    size = min(parts.config.ssl.batch_size, num_items)
    return torch.randperm(num_items, generator=generator)[:size]


def _parameters(parts: RunParts) -> list[torch.nn.Parameter]:
    modules = [parts.model, parts.main_loss, parts.ssl_loss]
    seen: dict[int, torch.nn.Parameter] = {}
    for module in modules:
        if module is not None:
            for parameter in module.parameters():
                seen.setdefault(id(parameter), parameter)
    return list(seen.values())


def _state(parts: RunParts, optimizer: torch.optim.Optimizer, step: int) -> dict[str, Any]:
    state: dict[str, Any] = {
        "step": step,
        "config": dump_config(parts.config),
        "model": parts.model.state_dict(),
        "main_loss": parts.main_loss.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    if parts.frequency is not None:
        state["frequency"] = parts.frequency.state_dict()
    return state


def _restore(parts: RunParts, optimizer: torch.optim.Optimizer, path: Path) -> int:
    state = load_checkpoint(path)
    if state["config"] != dump_config(parts.config):
        raise ConfigError(
            f"{path} was written by a run with another config; resume with the same config "
            f"(see {path.parent / 'config.toml'}) or start afresh in another output directory"
        )
    parts.model.load_state_dict(state["model"])
    parts.main_loss.load_state_dict(state["main_loss"])
    optimizer.load_state_dict(state["optimizer"])
    if parts.frequency is not None:
        parts.frequency.load_state_dict(state["frequency"])
    return int(state["step"])


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    parts: RunParts | None = None,
) -> TrainResult:
    """Train the two towers of `config`, checkpointing to ``<run_dir>/checkpoint.pt``.

    `resume` continues from that checkpoint. `max_steps` stops early without a final
    checkpoint, as a killed run would (for tests and quick looks).
    """
    parts = parts or build_run(config)
    config = parts.config
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / CHECKPOINT_NAME
    optimizer = torch.optim.Adam(
        _parameters(parts), lr=config.optim.lr, weight_decay=config.optim.weight_decay
    )
    step = 0
    if resume:
        if not checkpoint.exists():
            raise ConfigError(f"--resume: no checkpoint at {checkpoint}")
        step = _restore(parts, optimizer, checkpoint)
    elif checkpoint.exists():
        checkpoint.unlink()  # a fresh run must not be resumed from an older one's state
    num_rows = len(parts.split.train)
    batch_size = config.main.batch_size
    steps_per_epoch = math.ceil(num_rows / batch_size)
    total_steps = steps_per_epoch * config.epochs
    last: dict[str, float] = {}
    for module in (parts.model, parts.main_loss):
        module.train()
    started = time.perf_counter()
    first_step = step
    bar = tqdm(
        total=total_steps, initial=step, disable=not config.progress, unit="step", desc=config.name
    )
    while step < total_steps and (max_steps is None or step < max_steps):
        epoch, offset = divmod(step, steps_per_epoch)
        order = torch.randperm(num_rows, generator=generator_for(config.seed, STREAM_EPOCH, epoch))
        for start in range(offset * batch_size, num_rows, batch_size):
            if step >= total_steps or (max_steps is not None and step >= max_steps):
                break
            rows = order[start : start + batch_size]
            losses = train_step(parts, rows, generator_for(config.seed, STREAM_STEP, step))
            optimizer.zero_grad(set_to_none=True)
            losses.total.backward()
            optimizer.step()
            step += 1
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save_checkpoint(checkpoint, _state(parts, optimizer, step))
            if config.progress and (step % 10 == 0 or step == total_steps):
                elapsed = time.perf_counter() - started
                bar.set_postfix(
                    loss=f"{float(losses.total.detach()):.3f}",
                    items_per_s=f"{(step - first_step) * batch_size / max(elapsed, 1e-9):.0f}",
                )
                bar.update(step - bar.n)
    bar.close()
    if step > first_step:
        last = {
            name: float(value.detach())
            for name, value in attrs.asdict(losses, recurse=False).items()
            if value is not None
        }
    finished = step >= total_steps
    if finished:
        save_checkpoint(checkpoint, _state(parts, optimizer, step))
    return TrainResult(parts, step, time.perf_counter() - started, last, finished)

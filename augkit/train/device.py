"""Where a run computes: resolve ``device`` and move a run's tensors and modules there."""

from __future__ import annotations

import attrs
import torch

from augkit import distributed
from augkit.data.dataset import InteractionLog
from augkit.errors import ConfigError
from augkit.train.run import RunParts
from augkit.validators import DEVICE_PATTERN


def resolve_device(name: str) -> torch.device:
    """``auto`` is ``cuda`` when CUDA is available, else ``cpu``; any other name must exist
    here, else a one-line `ConfigError` says why not. Under torchrun, ``cuda`` is this
    process's GPU, ``cuda:LOCAL_RANK``. A name outside auto, cpu, cuda, cuda:N, mps is a
    `ConfigError` too."""
    if not isinstance(name, str) or DEVICE_PATTERN.fullmatch(name) is None:
        raise ConfigError(f"device must be one of auto, cpu, cuda, cuda:N, mps, got {name!r}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None and distributed.is_distributed():
        device = torch.device("cuda", distributed.local_rank())  # one GPU per process
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a build without CUDA")
            raise ConfigError(f"device {name!r}: CUDA is not available here ({build}); choose the cpu device (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), 0-based")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS is not available here; choose the cpu device (or auto)")
    return device


def _log_on(log: InteractionLog, device: torch.device) -> InteractionLog:
    stamps = None if log.timestamps is None else log.timestamps.to(device)
    return InteractionLog(log.users.to(device), log.items.to(device), stamps)


def place(parts: RunParts, device: torch.device) -> RunParts:
    """`parts` with every tensor and module on `device` (modules are moved in place)."""
    for module in (parts.model, parts.main_loss, parts.ssl_loss, parts.spread_out, parts.frequency):
        if module is not None:
            module.to(device)
    dataset = attrs.evolve(
        parts.dataset,
        items=parts.dataset.items.to(device),
        users=parts.dataset.users.to(device),
        interactions=_log_on(parts.dataset.interactions, device),
    )
    split = attrs.evolve(
        parts.split,
        **{
            field.name: _log_on(value, device) if isinstance(value, InteractionLog) else value.to(device)
            for field in attrs.fields(type(parts.split))
            if isinstance(value := getattr(parts.split, field.name), (InteractionLog, torch.Tensor))
        },
    )
    return attrs.evolve(
        parts, dataset=dataset, split=split, queries=parts.queries.to(device), train_counts=parts.train_counts.to(device)
    )

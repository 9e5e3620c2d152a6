"""torch.distributed helpers: rank and world size with or without a process group, and an
all-gather that keeps gradients, for losses whose negatives come from every worker.

Nothing here is home-made communication: the gather is torch's functional collective
``all_gather_single_autograd``, whose backward sums each rank's gradient into the rows the
rank contributed (a reduce-scatter). With DDP averaging parameter gradients over ranks, a loss
that is each rank's share of the global mean (see `global_mean`) then trains exactly as one
process on the concatenated batch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

from augkit.errors import ConfigError


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_gather(tensor: torch.Tensor, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """Every rank's `tensor` concatenated along dim 0, in rank order, with gradients flowing
    back to each rank's rows. Without a process group (or with one process), `tensor` itself.

    Ranks must pass tensors of one dtype, device and trailing shape. Their first dims must be
    equal, unless `sizes` (every rank's first dim, the same list on every rank) says otherwise;
    then each is padded to the largest and the padding dropped after the gather, with no
    extra communication.
    """
    if not is_distributed():
        return tensor
    # optional: a private torch module, importable only where torch.distributed is built
    from torch.distributed._functional_collectives import all_gather_single_autograd, wait_tensor

    if sizes is None or len(set(sizes)) == 1:
        return wait_tensor(all_gather_single_autograd(tensor.contiguous(), 0, dist.group.WORLD))
    longest = max(sizes)
    padded = torch.nn.functional.pad(tensor, (0, 0) * (tensor.ndim - 1) + (0, longest - tensor.shape[0]))
    gathered = wait_tensor(all_gather_single_autograd(padded.contiguous(), 0, dist.group.WORLD))
    keep = torch.cat([torch.arange(r * longest, r * longest + n, device=tensor.device) for r, n in enumerate(sizes)])
    return gathered[keep]


def offset(sizes: Sequence[int] | None, local: int) -> int:
    """Index of this rank's first row in the gathered tensor (`sizes` as in `all_gather`)."""
    if not is_distributed():
        return 0
    return sum(sizes[: rank()]) if sizes is not None else rank() * local


def global_mean(per_row: torch.Tensor, sizes: Sequence[int] | None = None) -> torch.Tensor:
    """This rank's share of the mean over every rank's rows, scaled by the world size:
    ``world * sum(per_row) / total_rows``, so that DDP's average of gradients over ranks is
    the gradient of the global mean. One process: ``per_row.mean()``."""
    if not is_distributed():
        return per_row.mean()
    total = sum(sizes) if sizes is not None else per_row.shape[0] * world_size()
    return per_row.sum() * (world_size() / total)


def shard(rows: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """This rank's contiguous part of `rows` (the same on every rank), and every rank's part
    size: ``tensor_split`` into `world_size` parts, sizes differing by at most one."""
    world = world_size()
    if world == 1:
        return rows, [rows.shape[0]]
    parts = torch.tensor_split(rows, world)
    return parts[rank()], [p.shape[0] for p in parts]


def barrier() -> None:
    """Wait for every process (nothing to wait for without a process group)."""
    if is_distributed():
        dist.barrier()


def broadcast_object(value: object) -> object:
    """The first process's `value` on every process (`value` itself without a process group)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def join_from_environment(device_type: str) -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1 in the environment), with
    nccl for CUDA and gloo otherwise; nothing when already joined or started alone. True when
    this call joined (its caller then leaves, see `leave`)."""
    if environment_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return False
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} not set: launch the processes "
            "with torchrun (or augkit train --nproc N), or unset WORLD_SIZE to run alone"
        )
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return True


def environment_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset); anything but a positive integer is
    a `ConfigError`."""
    text = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"WORLD_SIZE must be a positive integer (set by torchrun), got {os.environ['WORLD_SIZE']!r}")
    return int(text)


LINGER_SECONDS = 0.1
"""How long `leave` holds off the interpreter's shutdown, the GIL released, after the last
collective (see `leave`)."""


def leave() -> None:
    """Leave the process group once the work is done: every process waits at a barrier, the
    group is destroyed, then this process sleeps `LINGER_SECONDS` with the GIL released.

    The sleep is for torch 2.13's gloo: a collective launched during backward (DDP's gradient
    all-reduce) keeps a Python object from the autograd engine's thread-local state, and the
    gloo worker thread that frees the finished work needs the GIL to release it. Were the
    interpreter shutting down by then, that thread would abort the whole process (SIGABRT,
    "terminate called without an active exception") after all its work succeeded; the sleep
    lets it take the GIL first. Nothing without a group."""
    if dist.is_available() and dist.is_initialized():
        barrier()
        dist.destroy_process_group()
        time.sleep(LINGER_SECONDS)


@contextlib.contextmanager
def process_group(device_type: str = "cpu") -> Iterator[None]:
    """The process group torchrun describes, joined for the block (`join_from_environment`)
    and left when the block ends without an exception (`leave`; after an exception the group
    is left to the process's exit, since a barrier would wait for processes that failed).
    Nothing when started alone or when a group is already joined: whoever joined it leaves it."""
    joined = join_from_environment(device_type)
    yield
    if joined:
        leave()


def local_rank() -> int:
    """This process's rank on its machine (torchrun's ``LOCAL_RANK``; 0 when alone)."""
    return int(os.environ.get("LOCAL_RANK", "0"))

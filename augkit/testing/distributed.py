"""Run a function on several local CPU processes in a gloo process group, for tests of code
that gathers across ranks (augkit's losses, or a plugin's own)::

    from augkit.testing.distributed import run_ranks

    def worker(rank, world, batch):          # a module-level function: it is pickled by name
        ...                                  # torch.distributed is initialised here
        return {"loss": loss.item()}

    results = run_ranks(worker, 2, batch)    # [rank 0's result, rank 1's result]
"""

from __future__ import annotations

import os
import pickle
import socket
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn: Callable[..., Any], args: Sequence[Any], queue: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world)
        try:
            # pickled here, so tensors travel as bytes, not as shared memory of an ended process
            queue.put((rank, "ok", pickle.dumps(fn(rank, world, *args))))
        finally:
            dist.destroy_process_group()
    except BaseException:  # report to the parent, which raises it
        queue.put((rank, "error", traceback.format_exc()))


def run_ranks(fn: Callable[..., Any], world: int, *args: Any, timeout: float = 120.0) -> list[Any]:
    """``fn(rank, world, *args)`` in `world` spawned processes joined in a gloo group on
    127.0.0.1; their return values (picklable) in rank order. A failing rank raises
    `RuntimeError` with its traceback."""
    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    port = _free_port()
    processes = [context.Process(target=_entry, args=(r, world, port, fn, args, queue)) for r in range(world)]
    for process in processes:
        process.start()
    results: dict[int, Any] = {}
    errors = []
    for _ in range(world):
        rank, status, value = queue.get()
        if status != "ok":
            errors.append(f"rank {rank}:\n{value}")
            break
        results[rank] = pickle.loads(value)
    for process in processes:
        process.join(timeout=timeout if not errors else 5)
        if process.is_alive():
            process.kill()
    if errors:
        raise RuntimeError("a rank failed:\n" + "\n".join(errors))
    return [results[r] for r in range(world)]

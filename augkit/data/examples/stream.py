"""`ExampleStream`: the examples as an `IterableDataset` of fixed-size batches of ids, shuffled in
a bounded buffer, sharded by rank and by DataLoader worker, each batch carrying the position
after it (the plan is in `augkit.data.examples.plan`).

The stream yields the rest of the epoch at its `position`. Iterating does not move the
position: whoever consumes the batches keeps the position of the last one it consumed
(`augkit.data.examples.ExampleLoader` does) and sets it on the stream before the next
iteration, which in DataLoader workers is a fresh copy of the stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from augkit import distributed
from augkit.data.examples.encoder import KeyEncoder, check_encoders
from augkit.data.examples.files import ExampleFiles
from augkit.data.examples.plan import (
    Sharding,
    batch_counts,
    batch_index,
    block_order,
    bounds,
    emitted_rows,
    progress,
    unit_order,
)
from augkit.data.examples.read import blocks, encode_block, read_range
from augkit.data.examples.rows import EncodedRows
from augkit.errors import CheckpointError, ConfigError, DataChangedError

STATE_FORMAT = 1
"""The format of `ExampleStream.state_dict`."""


@attrs.frozen
class Position:
    """Where a rank stands in the stream: `batches` batches of epoch `epoch` consumed."""

    epoch: int
    batches: int


@attrs.frozen(eq=False)
class ExampleBatch:
    """B examples as tensors.

    ``users``, ``items``: ``LongTensor[B]`` ids; ``timestamps`` ``LongTensor[B]`` (Unix
    seconds, or the column's integers) and ``weights`` ``FloatTensor[B]``, None when the config
    names no such column; ``features[name]``: ``LongTensor[B]`` for a categorical query feature
    (``-1`` where null), ``LongTensor[B, max_len]`` for a multi_categorical one (its values,
    then ``-1``), with ``lengths[name]`` ``LongTensor[B]``; `position`: the stream's position
    once this batch is consumed.
    """

    users: torch.Tensor
    items: torch.Tensor
    timestamps: torch.Tensor | None
    weights: torch.Tensor | None
    features: Mapping[str, torch.Tensor]
    lengths: Mapping[str, torch.Tensor]
    position: Position

    def __len__(self) -> int:
        return self.users.shape[0]

    def _map(self, move: Any) -> ExampleBatch:
        return attrs.evolve(
            self,
            users=move(self.users),
            items=move(self.items),
            timestamps=None if self.timestamps is None else move(self.timestamps),
            weights=None if self.weights is None else move(self.weights),
            features={name: move(t) for name, t in self.features.items()},
            lengths={name: move(t) for name, t in self.lengths.items()},
        )

    def to(self, device: torch.device | str) -> ExampleBatch:
        """The batch on `device`."""
        return self._map(lambda t: t.to(device, non_blocking=True))

    def pin_memory(self) -> ExampleBatch:
        """The batch in pinned memory (a DataLoader with ``pin_memory=True`` calls this)."""
        return self._map(torch.Tensor.pin_memory)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled with its tensors as numpy arrays (on the CPU): a batch from a DataLoader
        worker then reaches the main process through the worker's pipe in one write, instead
        of one shared-memory segment per tensor, which costs more than the batch itself when
        batches are small."""
        arrays = self._map(lambda t: t.numpy(force=True))
        return _from_arrays, tuple(getattr(arrays, field.name) for field in attrs.fields(ExampleBatch))


def _from_arrays(*fields: Any) -> ExampleBatch:
    """The batch `ExampleBatch.__reduce__` pickled."""
    return ExampleBatch(*fields)._map(torch.from_numpy)


class ExampleStream(IterableDataset):
    """The examples of `files` as batches of `batch_size` ids, read and encoded by `encoders`
    (one `KeyEncoder` for ``"user"``, ``"item"`` and each query feature's name).

    `num_workers`: the DataLoader workers that read it, each its own shard (0: one shard). A
    DataLoader over the stream must have ``batch_size=None`` and `num_workers` workers, or none:
    the main process then reads the shards round-robin and yields the same batches. `rank` and
    `world_size` default to the process group's (`augkit.distributed`). Each shard holds at
    most ``files.config.shuffle_buffer`` rows of its block at a time. ``drop_last``: every
    reader on every rank yields the same number of full batches (see
    `augkit.data.examples.plan`), else each row of an epoch comes exactly once.
    """

    def __init__(
        self,
        files: ExampleFiles,
        encoders: Mapping[str, KeyEncoder],
        *,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if type(batch_size) is not int or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if type(num_workers) is not int or num_workers < 0:
            raise ConfigError(f"num_workers must be an integer >= 0, got {num_workers!r}")
        self.files = files
        names = ("user", "item", *(f.name for f in files.config.features))
        self.encoders = check_encoders(encoders, names)
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.sharding = Sharding(
            rank=distributed.rank() if rank is None else rank,
            world_size=distributed.world_size() if world_size is None else world_size,
            shards=max(1, num_workers),
        )
        self.counts = batch_counts(files.num_rows, self.sharding, batch_size, drop_last)
        self.position = Position(0, 0)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return int(self.counts.sum())

    def start(self) -> Position:
        """Where the next iteration starts: `position`, or the next epoch's start once every
        batch of its epoch is consumed."""
        if self.position.batches >= len(self):
            return Position(self.position.epoch + 1, 0)
        return self.position

    # -- the position ------------------------------------------------------------------------
    def recipe(self) -> dict[str, Any]:
        """What, besides the position, fixes the batches: a position is only valid with it."""
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "shuffle_buffer": self.files.config.shuffle_buffer,
            "drop_last": self.drop_last,
            "world_size": self.sharding.world_size,
            "num_workers": self.num_workers,
        }

    def state_dict(self) -> dict[str, Any]:
        """The position and what it is valid for: plain data, the same on every rank whose
        ranks step together (``drop_last``)."""
        return {
            "format": STATE_FORMAT,
            "epoch": self.position.epoch,
            "batches": self.position.batches,
            "recipe": self.recipe(),
            "data": {"digest": self.files.digest(), "files": len(self.files.paths), "rows": self.files.num_rows},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Go to the position of `state` (from `state_dict`); a `CheckpointError` when it was
        saved with another recipe (naming what differs) or is out of range, a
        `DataChangedError` when it was saved on other examples."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise CheckpointError(f"not an examples stream position of format {STATE_FORMAT}: {state!r:.200}")
        saved, now = state["recipe"], self.recipe()
        changed = [f"{key} {saved.get(key)!r} then, {value!r} now" for key, value in now.items() if saved.get(key) != value]
        if changed:
            raise CheckpointError(f"the examples position was saved with another reading: {'; '.join(changed)}")
        data = state["data"]
        if data["digest"] != self.files.digest():
            raise DataChangedError(
                f"the examples at {str(self.files.config.path)!r} are not those the position was saved on "
                f"({data['files']} files and {data['rows']} rows then, {len(self.files.paths)} files and "
                f"{self.files.num_rows} rows now)"
            )
        position = Position(state["epoch"], state["batches"])
        if position.epoch < 0 or not 0 <= position.batches <= len(self):
            raise CheckpointError(f"examples position {position} is outside an epoch of {len(self)} batches")
        self.position = position

    # -- iteration ---------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ExampleBatch]:
        start = self.start()
        done, first = progress(self.counts, start.batches)
        shards = self.sharding.shards
        worker = get_worker_info()
        if worker is None:
            yield from _round_robin(
                [self._shard(start.epoch, (first + i) % shards, done) for i in range(shards)]
            )
            return
        if worker.num_workers != self.num_workers:
            raise ConfigError(
                f"the examples stream was built for {self.num_workers} DataLoader workers but runs in "
                f"{worker.num_workers}; build it with num_workers={worker.num_workers}"
            )
        shard = (first + worker.id) % shards  # the shard due next goes to worker 0, the first asked
        yield from self._shard(start.epoch, shard, done)

    def _shard(self, epoch: int, shard: int, done: np.ndarray) -> Iterator[ExampleBatch]:
        """Batches ``done[shard]..`` of `shard` in `epoch`."""
        size, buffer = self.batch_size, self.files.config.shuffle_buffer
        consumer = self.sharding.consumer(shard)
        cuts = bounds(self.files.num_rows, self.sharding.consumers)
        low, high = int(cuts[consumer]), int(cuts[consumer + 1])
        emitted = emitted_rows(self.files.num_rows, self.sharding, shard, size, self.drop_last)
        batch = int(done[shard])
        row = batch * size  # the next row to yield, counted in this shard's emitted order
        if row >= emitted:
            return
        first_block = row // buffer
        order = unit_order(self.seed, epoch, self.files.num_units)
        pieces = read_range(self.files, order, low + first_block * buffer, high)
        parts: list[EncodedRows] = []
        have, wanted = 0, min(size, emitted - row)
        for k, block in enumerate(blocks(pieces, buffer), start=first_block):
            rows = encode_block(block, self.files, self.encoders)
            del block  # the block's Arrow rows: only its ids are kept
            permutation = block_order(self.seed, epoch, consumer, k, len(rows))
            at = row - k * buffer
            while at < len(rows):
                take = permutation[at : at + wanted - have]
                parts.append(rows.take(take))
                at, row, have = at + take.size, row + take.size, have + take.size
                if have == wanted:
                    batch += 1
                    position = Position(epoch, batch_index(self.counts, shard, batch - 1) + 1)
                    yield self._batch(EncodedRows.concat(parts), position)
                    if row >= emitted:
                        return
                    parts, have, wanted = [], 0, min(size, emitted - row)
            del rows, permutation  # one block in memory while the next one is read

    def _batch(self, rows: EncodedRows, position: Position) -> ExampleBatch:
        widths = {f.name: f.max_len for f in self.files.config.features}
        return ExampleBatch(
            users=torch.from_numpy(rows.users),
            items=torch.from_numpy(rows.items),
            timestamps=None if rows.timestamps is None else torch.from_numpy(rows.timestamps),
            weights=None if rows.weights is None else torch.from_numpy(rows.weights),
            features={
                **{name: torch.from_numpy(ids) for name, ids in rows.scalars.items()},
                **{name: ragged.padded(widths[name]) for name, ragged in rows.lists.items()},
            },
            lengths={name: torch.from_numpy(ragged.lengths) for name, ragged in rows.lists.items()},
            position=position,
        )


def _round_robin(iterators: list[Iterator[ExampleBatch]]) -> Iterator[ExampleBatch]:
    """The items of `iterators` in turn, one from each, an exhausted one skipped: the order a
    DataLoader returns its workers' batches in."""
    queue = deque(iterators)
    while queue:
        iterator = queue.popleft()
        try:
            item = next(iterator)
        except StopIteration:
            continue
        queue.append(iterator)
        yield item

"""Which rows each reader gets, in which order: an epoch's plan as a pure function of the seed,
the epoch and the dataset's row groups, so that any batch of any epoch can be found again
without reading what came before it.

An epoch:

1. shuffles the *units* (the non-empty row groups of every file) by ``(seed, epoch)``;
2. lays their rows end to end and cuts them into ``consumers = world_size * shards`` contiguous
   ranges, sizes differing by at most one row; consumer ``rank * shards + shard`` reads range
   ``rank * shards + shard``, so each row goes to exactly one consumer;
3. cuts each range into *blocks* of `buffer` rows (the last one shorter) and permutes each
   block by ``(seed, epoch, consumer, block)``: the shuffle buffer;
4. cuts the permuted rows into batches of `batch_size`: the last batch of a range is shorter,
   or with ``drop_last`` every consumer yields ``(rows // consumers) // batch_size`` full
   batches and the rest of its range is dropped, so every consumer steps the same number of
   times;
5. interleaves the shards of a rank round-robin, shard 0 first, a shard whose batches are
   done skipped: the order in which a `torch.utils.data.DataLoader` returns the batches of its
   workers. A rank's position in an epoch is then one number, the batches it has consumed.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from augkit.errors import ConfigError
from augkit.random import generator_for

_UNIT_ORDER = 1
_BLOCK_ORDER = 2
"""Tags that keep the seeds of the unit order and of the blocks' permutations apart."""


@attrs.frozen(kw_only=True)
class Sharding:
    """Who reads: `shards` readers (DataLoader workers, or one) on each of `world_size` ranks;
    this process is rank `rank`."""

    rank: int
    world_size: int
    shards: int

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size or self.shards < 1:
            raise ConfigError(f"need 0 <= rank < world_size and shards >= 1, got {self}")

    @property
    def consumers(self) -> int:
        return self.world_size * self.shards

    def consumer(self, shard: int) -> int:
        """The global index of this rank's `shard`."""
        return self.rank * self.shards + shard


def unit_order(seed: int, epoch: int, num_units: int) -> np.ndarray:
    """The epoch's order of the units: a permutation of ``0..num_units-1`` (int64)."""
    return torch.randperm(num_units, generator=generator_for(seed, _UNIT_ORDER, epoch)).numpy()


def block_order(seed: int, epoch: int, consumer: int, block: int, size: int) -> np.ndarray:
    """The permutation of a block's `size` rows (int64)."""
    return torch.randperm(size, generator=generator_for(seed, _BLOCK_ORDER, epoch, consumer, block)).numpy()


def bounds(total: int, parts: int) -> np.ndarray:
    """``parts + 1`` cut points of ``0..total``: part p is ``[cuts[p], cuts[p + 1])``, sizes
    differing by at most one."""
    return np.arange(parts + 1, dtype=np.int64) * total // parts


def emitted_rows(total: int, sharding: Sharding, shard: int, batch_size: int, drop_last: bool) -> int:
    """How many rows of its range a shard of this rank yields per epoch."""
    cuts = bounds(total, sharding.consumers)
    consumer = sharding.consumer(shard)
    if drop_last:
        return (total // sharding.consumers) // batch_size * batch_size
    return int(cuts[consumer + 1] - cuts[consumer])


def batch_counts(total: int, sharding: Sharding, batch_size: int, drop_last: bool) -> np.ndarray:
    """Batches per epoch of each shard of this rank (int64)."""
    rows = [emitted_rows(total, sharding, s, batch_size, drop_last) for s in range(sharding.shards)]
    return -(-np.asarray(rows, dtype=np.int64) // batch_size)


def progress(counts: np.ndarray, consumed: int) -> tuple[np.ndarray, int]:
    """After the first `consumed` batches of the round-robin over shards with `counts`
    batches: how many each shard has yielded, and the shard whose batch comes next (0 when
    every batch is out)."""
    counts = np.asarray(counts, dtype=np.int64)
    low, high = 0, int(counts.max(initial=0))
    while low < high:  # the last full round: the largest j with sum(min(counts, j)) <= consumed
        middle = (low + high + 1) // 2
        if int(np.minimum(counts, middle).sum()) <= consumed:
            low = middle
        else:
            high = middle - 1
    done = np.minimum(counts, low)
    active = np.flatnonzero(counts > low)
    extra = consumed - int(done.sum())
    done[active[:extra]] += 1
    return done, int(active[extra]) if extra < active.size else 0


def batch_index(counts: np.ndarray, shard: int, batch: int) -> int:
    """Where batch `batch` of `shard` stands in the round-robin over shards with `counts`."""
    counts = np.asarray(counts, dtype=np.int64)
    return int(np.minimum(counts, batch).sum()) + int((counts[:shard] > batch).sum())

"""The streamed examples (`augkit.data.examples`): every event once per epoch over ranks and
workers, a bounded seeded shuffle, and an exact position: a reader stopped after any batch and
restored in a fresh object continues with the batches of the uninterrupted run, bit for bit."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("pyarrow")

from examples_data import CONFIG, encoders, write_examples

from augkit.data.examples import (
    ExampleBatch,
    ExampleLoader,
    ExamplesConfig,
    ExampleStream,
    Position,
    open_examples,
)
from augkit.data.examples.plan import batch_index, progress
from augkit.errors import CheckpointError, ConfigError, DataChangedError


def _stream(folder: Path, num_events: int, *, buffer: int = 40, **options: object) -> ExampleStream:
    files = open_examples(ExamplesConfig.from_dict({**CONFIG, "path": str(folder), "shuffle_buffer": buffer}))
    options = {"batch_size": 8, "seed": 3, "rank": 0, "world_size": 1, **options}
    return ExampleStream(files, encoders(num_events), **options)


def _tensors(batch: ExampleBatch) -> list[torch.Tensor]:
    return [batch.users, batch.items, batch.timestamps, batch.weights, batch.features["recent"], batch.lengths["recent"]]


def _same(a: list[ExampleBatch], b: list[ExampleBatch]) -> bool:
    return len(a) == len(b) and all(
        x.position == y.position and all(torch.equal(s, t) for s, t in zip(_tensors(x), _tensors(y), strict=True))
        for x, y in zip(a, b, strict=True)
    )


def _epochs(loader: ExampleLoader, epochs: int) -> list[ExampleBatch]:
    return [batch for _ in range(epochs) for batch in loader]


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, int]:
    folder = tmp_path / "events"
    return folder, write_examples(folder, [100, 37, 64], row_group_size=16)


def test_a_batch_holds_the_rows_encoded_and_padded(data: tuple[Path, int]) -> None:
    folder, n = data
    batch = next(iter(ExampleLoader(_stream(folder, n))))
    items = batch.items
    assert len(batch) == 8 and batch.users.dtype == batch.items.dtype == torch.int64
    assert torch.equal(batch.users, items % 7) and torch.equal(batch.timestamps, 1000 + items)
    assert batch.weights.dtype == torch.float32 and torch.equal(batch.weights, (1 + items % 3).float())
    lengths = torch.clamp(items % 5, max=3)  # event e's history has e % 5 items, cut to its last 3
    assert torch.equal(batch.lengths["recent"], lengths)
    for row, e in enumerate(items.tolist()):
        kept = list(range(e - e % 5, e))[-3:]
        assert batch.features["recent"][row].tolist() == kept + [-1] * (3 - len(kept))
    assert batch.position == Position(0, 1)


def test_a_batch_pickles_by_value(data: tuple[Path, int]) -> None:
    """Batches cross from DataLoader workers as numpy bytes, not as shared-memory tensors."""
    folder, n = data
    batch = next(iter(_stream(folder, n)))
    copy = pickle.loads(pickle.dumps(batch))
    assert _same([copy], [batch]) and copy.users.dtype == torch.int64 and copy.weights.dtype == torch.float32


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=3).filter(lambda s: sum(s) > 0),
    row_group=st.integers(1, 40),
    buffer=st.integers(1, 80),
    batch_size=st.integers(1, 20),
    world=st.integers(1, 3),
    shards=st.integers(0, 3),
    drop_last=st.booleans(),
)
def test_every_event_comes_once_per_epoch_over_ranks_and_workers(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int], row_group: int, buffer: int, batch_size: int, world: int, shards: int, drop_last: bool,
) -> None:
    folder = tmp_path_factory.mktemp("events")
    n = write_examples(folder, sizes, row_group_size=row_group)
    for epoch in range(2):
        seen = []
        lengths = []
        for rank in range(world):
            stream = _stream(folder, n, buffer=buffer, batch_size=batch_size, num_workers=shards, rank=rank,
                             world_size=world, drop_last=drop_last)
            stream.position = Position(epoch, 0)
            batches = list(stream)
            assert len(batches) == len(stream)
            assert [b.position for b in batches] == [Position(epoch, i + 1) for i in range(len(batches))]
            seen += [b.items for b in batches]
            lengths += [len(b) for b in batches]
        items = torch.cat(seen) if seen else torch.empty(0, dtype=torch.long)
        assert items.unique().numel() == items.numel()  # no event twice
        if drop_last:
            consumers = world * max(1, shards)
            assert set(lengths) <= {batch_size}
            assert items.numel() == (n // consumers) // batch_size * batch_size * consumers
        else:
            assert torch.equal(items.sort().values, torch.arange(n))  # every event once


def test_the_order_is_the_seed_s_and_shuffled(data: tuple[Path, int]) -> None:
    folder, n = data
    first = torch.cat([b.items for b in _stream(folder, n)])
    again = torch.cat([b.items for b in _stream(folder, n)])
    other = torch.cat([b.items for b in _stream(folder, n, seed=4)])
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert not torch.equal(first, torch.arange(n))
    stream = _stream(folder, n)
    stream.position = Position(1, 0)
    assert not torch.equal(first, torch.cat([b.items for b in stream]))  # each epoch its own order
    # a buffer of every row mixes the whole epoch: events from all three files in the first batch
    mixed = next(iter(_stream(folder, n, buffer=n, batch_size=32))).items
    assert len({int(torch.searchsorted(torch.tensor([100, 137]), e, right=True)) for e in mixed}) == 3


@pytest.mark.parametrize("shards", [0, 3])
@pytest.mark.parametrize("stop", [1, 12, 13, 19, 30])
def test_a_restored_stream_continues_bit_for_bit(data: tuple[Path, int], shards: int, stop: int) -> None:
    """Stop after `stop` batches (an epoch has 13 with 3 shards, 26 over two epochs), save,
    restore in a new stream: the rest is the uninterrupted run's, across the epoch's end."""
    folder, n = data
    whole = _epochs(ExampleLoader(_stream(folder, n, num_workers=shards)), 3)
    first = ExampleLoader(_stream(folder, n, num_workers=shards))
    head = list(itertools.islice(itertools.chain.from_iterable(first for _ in range(3)), stop))
    state = first.state_dict()
    resumed = ExampleLoader(_stream(folder, n, num_workers=shards))
    resumed.load_state_dict(state)
    rest = [batch for _ in range(3 - resumed.epoch) for batch in resumed]
    assert _same(head + rest, whole)


def test_two_ranks_restore_from_one_position(data: tuple[Path, int]) -> None:
    """With drop_last the ranks step together, so rank 0's saved position serves both."""
    folder, n = data
    options = {"world_size": 2, "drop_last": True, "num_workers": 2}
    for rank in range(2):
        whole = _epochs(ExampleLoader(_stream(folder, n, rank=rank, **options)), 2)
        assert len(whole) == 2 * len(_stream(folder, n, rank=1 - rank, **options))
        saver = ExampleLoader(_stream(folder, n, rank=0, **options))
        list(itertools.islice(iter(saver), 3))
        resumed = ExampleLoader(_stream(folder, n, rank=rank, **options))
        resumed.load_state_dict(saver.state_dict())
        assert _same(whole[:3] + _epochs(resumed, 2), whole)


@pytest.mark.parametrize("stop", [0, 4, 7, 12, 13, 20])
def test_dataloader_workers_give_the_same_batches_and_restore(tmp_path: Path, stop: int) -> None:
    """Worker processes (prefetching) yield what the main process reads alone, and a position
    saved while they ran ahead restores the rest exactly, across the epoch's end. 49 events
    over 3 workers: shards of 16, 16 and 17 rows, of 4, 4 and 5 batches."""
    n = write_examples(tmp_path, [30, 19], row_group_size=8)
    inline = _epochs(ExampleLoader(_stream(tmp_path, n, num_workers=3, batch_size=4, buffer=10)), 2)
    assert _stream(tmp_path, n, num_workers=3, batch_size=4).counts.tolist() == [4, 4, 5]
    loader = ExampleLoader(_stream(tmp_path, n, num_workers=3, batch_size=4, buffer=10), prefetch_factor=2)
    head = list(itertools.islice(itertools.chain(loader, loader), stop))
    resumed = ExampleLoader(_stream(tmp_path, n, num_workers=3, batch_size=4, buffer=10))
    resumed.load_state_dict(loader.state_dict())
    assert _same(head + [batch for _ in range(2 - resumed.epoch) for batch in resumed], inline)


def test_a_position_from_another_reading_or_other_data_is_refused(data: tuple[Path, int], tmp_path: Path) -> None:
    folder, n = data
    loader = ExampleLoader(_stream(folder, n))
    list(itertools.islice(iter(loader), 2))
    state = loader.state_dict()
    with pytest.raises(CheckpointError, match="batch_size 8 then, 16 now"):
        _stream(folder, n, batch_size=16).load_state_dict(state)
    with pytest.raises(CheckpointError, match="world_size 1 then, 2 now"):
        _stream(folder, n, world_size=2).load_state_dict(state)
    with pytest.raises(CheckpointError, match="format"):
        _stream(folder, n).load_state_dict({"epoch": 0})
    with pytest.raises(CheckpointError, match="outside an epoch"):
        _stream(folder, n).load_state_dict({**state, "batches": 10_000})
    write_examples(folder, [100, 37, 65], row_group_size=16)
    with pytest.raises(DataChangedError, match="3 files and 201 rows then, 3 files and 202 rows now"):
        _stream(folder, n + 1).load_state_dict(state)


def test_the_stream_and_the_dataloader_must_agree_on_workers(data: tuple[Path, int]) -> None:
    folder, n = data
    stream = _stream(folder, n, num_workers=2)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1)
    with pytest.raises(ConfigError, match="built for 2 DataLoader workers but runs in 1"):
        next(iter(loader))


def test_encoders_must_match_the_columns(data: tuple[Path, int]) -> None:
    folder, n = data
    files = open_examples(ExamplesConfig.from_dict({**CONFIG, "path": str(folder)}))
    given = encoders(n)
    with pytest.raises(ConfigError, match="no encoder for 'recent'"):
        ExampleStream(files, {k: v for k, v in given.items() if k != "recent"}, batch_size=4, seed=0)
    with pytest.raises(ConfigError, match="encoders for 'genre'"):
        ExampleStream(files, {**given, "genre": given["item"]}, batch_size=4, seed=0)
    with pytest.raises(ConfigError, match="'user' \\(int\\) has no encode"):
        ExampleStream(files, {**given, "user": 3}, batch_size=4, seed=0)


@settings(max_examples=200, deadline=None)
@given(counts=st.lists(st.integers(0, 6), min_size=1, max_size=5), data=st.data())
def test_progress_and_batch_index_follow_the_round_robin(counts: list[int], data: st.DataObject) -> None:
    order = [(s, j) for j in range(max(counts)) for s in range(len(counts)) if j < counts[s]]
    for index, (shard, j) in enumerate(order):
        assert batch_index(np.array(counts), shard, j) == index
    consumed = data.draw(st.integers(0, len(order)))
    done, next_shard = progress(np.array(counts), consumed)
    assert done.tolist() == [sum(1 for s, _ in order[:consumed] if s == shard) for shard in range(len(counts))]
    assert next_shard == (order[consumed][0] if consumed < len(order) else 0)

"""`ExampleLoader`: a DataLoader over an `ExampleStream` that keeps the stream's position.

Workers read ahead (``prefetch_factor`` batches each), so the position a checkpoint needs is
not where the workers are but where the consumer is: each batch carries the position after it,
and the loader keeps the last one it handed out. Iterating the loader yields the rest of the
current epoch; a new iteration starts from the kept position, in fresh workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader

from augkit.data.examples.stream import ExampleBatch, ExampleStream, Position


class ExampleLoader:
    """Batches of `stream` read by ``stream.num_workers`` worker processes (or in this process
    when it has none), each worker `prefetch_factor` batches ahead; `pin_memory` as
    DataLoader's, `multiprocessing_context` too (default: the platform's).

    ``for batch in loader`` yields the rest of the current epoch; `state_dict` is the position
    after the last batch yielded, which `load_state_dict` restores in a fresh process: the
    batches that follow are those the uninterrupted run would have yielded, bit for bit.
    """

    def __init__(
        self,
        stream: ExampleStream,
        *,
        prefetch_factor: int = 2,
        pin_memory: bool = False,
        multiprocessing_context: str | None = None,
    ) -> None:
        self.stream = stream
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.multiprocessing_context = multiprocessing_context

    @property
    def position(self) -> Position:
        """The position after the last batch yielded."""
        return self.stream.position

    @property
    def epoch(self) -> int:
        """The epoch the next batch comes from."""
        return self.stream.start().epoch

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return len(self.stream)

    def __iter__(self) -> Iterator[ExampleBatch]:
        workers = self.stream.num_workers
        loader = DataLoader(
            self.stream,
            batch_size=None,
            num_workers=workers,
            prefetch_factor=self.prefetch_factor if workers else None,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            multiprocessing_context=self.multiprocessing_context if workers else None,
        )
        for batch in loader:
            self.stream.position = batch.position
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """See `ExampleStream.state_dict`."""
        return self.stream.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """See `ExampleStream.load_state_dict`."""
        self.stream.load_state_dict(state)

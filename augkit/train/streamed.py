"""Training batches from streamed examples (the ``examples`` source, `augkit.data.streamed`):
the loop's steps read an `ExampleLoader` instead of rows of an in-memory log.

Each batch of ``main.batch_size`` events (per process; with ``drop_last`` under a process group,
so every process steps together) loses the events that are not trained on: those whose item
key is not an item (counted as ``unknown_item``) and those at or after the time cut (counted as
``held_out``). The rest are the step's queries (the event's user and query features) and items;
the SSL items are drawn over the item table as for the in-memory sources. The loader's position
and the epoch's counts are part of the loop's state, so a resumed run reads on exactly where
the checkpoint was written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import torch

from augkit import distributed
from augkit.batch import FeatureBatch
from augkit.data.examples import ExampleLoader
from augkit.data.streamed import query_batch
from augkit.train.run import RunParts

log = logging.getLogger("augkit.train")


@attrs.frozen(eq=False)
class StepBatch:
    """One step's data: this process's `queries` and `items` (``LongTensor[b]``), the global
    batch's items (``LongTensor[sum(sizes)]``) and every process's `sizes`."""

    queries: FeatureBatch
    items: torch.Tensor
    global_items: torch.Tensor
    sizes: list[int]


class StreamedEpochs:
    """The training examples of `parts` as epochs of `StepBatch`es, on `device`."""

    def __init__(self, parts: RunParts, device: torch.device) -> None:
        data = parts.examples
        if data is None:
            raise ValueError("StreamedEpochs needs the parts of an 'examples' source")
        config = parts.config
        self.data, self.device = data, device
        stream = data.stream(batch_size=config.main.batch_size, seed=config.seed, drop_last=distributed.is_distributed())
        self.loader = ExampleLoader(stream, pin_memory=device.type == "cuda")
        self.cut = data.source.train_before
        self.dropped = {"unknown_item": 0, "held_out": 0}
        """Events of the current epoch left out of training, so far."""

    def __len__(self) -> int:
        """Steps per epoch (batches of this process)."""
        return len(self.loader)

    @property
    def epoch(self) -> int:
        """The epoch of the next batch."""
        return self.loader.epoch

    def batches(self) -> Iterator[StepBatch | None]:
        """The rest of the current epoch, one step at a time: None for a batch of which no
        event is trained on (a step with no update)."""
        if self.loader.position.batches == 0 or self.loader.position.batches >= len(self.loader):
            self.dropped = {key: 0 for key in self.dropped}
        for batch in self.loader:
            known = batch.items >= 0
            before_cut = torch.ones_like(known) if self.cut is None else batch.timestamps < self.cut
            trained = known & before_cut
            self.dropped["held_out"] += int((~before_cut).sum())
            self.dropped["unknown_item"] += int((~known & before_cut).sum())
            rows = torch.nonzero(trained).flatten()
            items = batch.items[rows].to(self.device, non_blocking=True)
            sizes = [len(rows)]
            if distributed.is_distributed():
                counts = distributed.all_gather(torch.tensor([len(rows)], device=self.device))
                sizes = [int(n) for n in counts.tolist()]
            if not sum(sizes):
                yield None
                continue
            queries = query_batch(self.data, batch, rows).to(self.device)
            yield StepBatch(queries, items, distributed.all_gather(items, sizes), sizes)

    def report_epoch(self, epoch: int) -> None:
        """Log the events the finished `epoch` left out, when there were any."""
        if any(self.dropped.values()):
            log.warning(
                "epoch %d: %d events with an item key not in the item table and %d held-out events were not trained on",
                epoch, self.dropped["unknown_item"], self.dropped["held_out"],
            )

    def state_dict(self) -> dict[str, Any]:
        """The loader's position and the epoch's counts."""
        return {"position": self.loader.state_dict(), "dropped": dict(self.dropped)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Go back to `state_dict`'s position (see `ExampleLoader.load_state_dict`)."""
        self.loader.load_state_dict(state["position"])
        self.dropped = dict(state["dropped"])

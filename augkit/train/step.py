"""One training step: ``L_main + alpha * L_self`` on a global batch, this process's part of it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import attrs
import torch

from augkit import distributed
from augkit.augmentation import check_pair
from augkit.batch import FeatureBatch
from augkit.random import distinct
from augkit.train.contracts import (
    augmentations,
    check_log_prob,
    check_scalar,
    culprit,
    origins,
    under_contract,
)
from augkit.train.logq import candidates_log_q
from augkit.train.run import RunParts

TERMS = ("total", "main", "ssl", "spread_out")
"""The loss terms, in the order of `StepLosses` and of the loop's loss sums."""

@attrs.frozen
class StepLosses:
    total: torch.Tensor
    main: torch.Tensor
    ssl: torch.Tensor | None
    spread_out: torch.Tensor | None

    def stacked(self) -> torch.Tensor:
        """``FloatTensor[4]`` of `TERMS` (0 for an absent term), detached, in float64."""
        zero = torch.zeros((), device=self.total.device)
        return torch.stack([(t if t is not None else zero).detach().double() for t in attrs.astuple(self, recurse=False)])


def _autocast(parts: RunParts, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if parts.config.precision == "bf16-mixed":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(parts: RunParts, rows: torch.Tensor, generator: torch.Generator, *, step: int = 0) -> StepLosses:
    """Losses of one step on the global batch `rows` (``LongTensor[b]`` into the train log, on
    the run's device, the same on every process).

    In a process group each process takes its part of `rows` (`augkit.distributed.shard`)
    and of the SSL item batch; random draws are made on the global batch with the same
    generator everywhere, so the views equal one process's. Plugin calls are checked: an
    exception or an off-contract return is a `PluginCallError` naming the plugin's
    distribution and `step`."""
    train = parts.split.train
    local, sizes = distributed.shard(rows)
    query_batch = parts.queries.select(train.users[local])
    return step_losses(parts, query_batch, train.items[local], train.items[rows], sizes, generator, step=step)


def step_losses(
    parts: RunParts,
    query_batch: FeatureBatch,
    items: torch.Tensor,
    global_items: torch.Tensor,
    sizes: list[int],
    generator: torch.Generator,
    *,
    step: int = 0,
) -> StepLosses:
    """Losses of one step given this process's queries (`query_batch`, b rows) and their items
    (``LongTensor[b]``), the global batch's items (``LongTensor[sum(sizes)]``, the same on every
    process; this process's part is ``sizes[rank]`` rows at its offset): `train_step` after it
    has picked the rows, and the streamed step (`augkit.train.streamed`)."""
    config = parts.config
    device = parts.queries.device
    called = origins(config)
    gathering = distributed.is_distributed() and getattr(parts.main_loss, "gather", False)
    extra = {"sizes": sizes} if gathering else {}
    item_batch = parts.dataset.items.select(global_items)
    if parts.feature_dropout is not None:
        item_batch = parts.feature_dropout(item_batch, generator=generator)
    item_batch = _part(item_batch, sizes)
    views = ssl_items = ssl_sizes = None
    if parts.ssl_loss is not None:
        global_ssl = _uniform_items(parts, generator)
        batch = parts.dataset.items.select(global_ssl)
        views = under_contract(
            lambda e: "ssl.augmentation: " + culprit(augmentations(config.ssl.augmentation), e),
            step,
            lambda: check_pair(config.ssl.augmentation["name"], batch, parts.augmentation(batch, generator=generator)),
        )
        ssl_items, ssl_sizes = distributed.shard(global_ssl)
        views = (_part(views[0], ssl_sizes), _part(views[1], ssl_sizes))
    negative_items = negatives = None
    if parts.negatives is not None:
        drawer = called["negatives"].describe()
        negative_items = under_contract(lambda e: drawer, step, lambda: next(parts.negatives.batches(generator)))
        negative_items = negative_items.to(device, non_blocking=True)
        negatives = parts.dataset.items.select(negative_items)
    lookup = {"stride": _lookup_rows(sizes, ssl_sizes, negatives)} if config.model.backend == "torchrec" else {}
    with _autocast(parts, device):
        query, item, z1, z2, negative = parts.towers(query_batch, item_batch, views, negatives, **lookup)
    query, item = _for_loss(query), _for_loss(item)
    log_q = negative_log_q = None
    if parts.frequency is not None:
        sampler = called["frequency"].describe()
        if parts.frequency.online:
            under_contract(lambda e: sampler, step, lambda: parts.frequency.update(global_items))

        def log_prob(ids: torch.Tensor) -> torch.Tensor:
            value = check_log_prob(under_contract(lambda e: sampler, step, lambda: parts.frequency.log_prob(ids)), sampler, step, ids)
            mixed = None
            if negative_items is not None:
                drawer = called["negatives"].describe()
                mixed = check_log_prob(under_contract(lambda e: drawer, step, lambda: parts.negatives.log_prob(ids)), drawer, step, ids)
            return candidates_log_q(
                value, per=parts.frequency.per, batch_size=len(global_items), corrected=config.main.logq_correction == "corrected",
                num_negatives=0 if negative_items is None else len(negative_items), negatives_log_prob=mixed,
            )

        log_q = log_prob(items)
        negative_log_q = None if negative_items is None else log_prob(negative_items)
    if negative is not None:
        extra = {**extra, "negatives": _for_loss(negative), "negative_ids": negative_items, "negative_log_q": negative_log_q}

    def loss(term: str, call: Callable[[], Any]) -> torch.Tensor:
        who = called[term].describe()
        return check_scalar(under_contract(lambda e: who, step, call), who, step, device)

    main = loss("main", lambda: parts.main_loss(query, item, item_ids=items, log_q=log_q, **extra))
    total = main
    spread = ssl = None
    if parts.spread_out is not None:
        spread = loss("spread_out", lambda: parts.spread_out(item, item_ids=items, **extra))
        total = total + config.main.spread_out * spread
    if parts.ssl_loss is not None:
        ssl_extra = {"sizes": ssl_sizes} if gathering else {}
        ssl = loss("ssl", lambda: parts.ssl_loss(_for_loss(z1), _for_loss(z2), item_ids=ssl_items, **ssl_extra))
        total = total + config.ssl.alpha * ssl
    return StepLosses(total, main, ssl, spread)


def _part(batch: FeatureBatch, sizes: list[int]) -> FeatureBatch:
    """This process's rows of a global `batch` split into parts of `sizes` (all of it alone)."""
    if len(sizes) == 1:
        return batch
    start = sum(sizes[: distributed.rank()])
    return batch.select(torch.arange(start, start + sizes[distributed.rank()], device=batch.device))


def _lookup_rows(sizes: list[int], ssl_sizes: list[int] | None, negatives: FeatureBatch | None) -> int:
    """The rows per key of the torchrec backend's one lookup (`augkit.train.backend.TorchRecStep`):
    the most item-side rows of any process (its main items, its two views' parts and every
    negative; a process's queries are fewer), from the global sizes, so the same on every
    process, as row-wise sharded tables need."""
    views = ssl_sizes or [0] * len(sizes)
    return max(main + 2 * ssl for main, ssl in zip(sizes, views, strict=True)) + (0 if negatives is None else negatives.batch_size)


def _uniform_items(parts: RunParts, generator: torch.Generator) -> torch.Tensor:
    """``LongTensor[min(ssl.batch_size, num_items)]`` of distinct items drawn uniformly from the
    corpus (`augkit.random.distinct`: a cost of the SSL batch, not of the corpus)."""
    num_items = parts.dataset.num_items
    items = distinct(num_items, min(parts.config.ssl.batch_size, num_items), generator=generator)
    return items.to(parts.dataset.items.device, non_blocking=True)


def _for_loss(embeddings: torch.Tensor) -> torch.Tensor:
    """Tower outputs as the losses take them: at least float32 (bf16 autocast outputs are
    raised to float32; float32 and float64 towers keep their dtype)."""
    return embeddings.float() if embeddings.dtype in (torch.bfloat16, torch.float16) else embeddings

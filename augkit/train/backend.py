"""Where a run's id tables train (``model.backend``): in augkit's native towers, or on TorchRec.

* ``native``: the step's forward is `augkit.train.run.TowerStep` over ``parts.model`` (in DDP
  under torchrun); the towers train in place.
* ``torchrec``: ``parts.model`` (the native towers, built and seeded as for a native run) is
  copied into `augkit.torchrec.towers.TorchRecTowers` and sharded by
  `augkit.torchrec.sharding.shard` over the run's process group (one process alone:
  `augkit.train.loop.joined` starts a group of one), the tables in FBGEMM's fused
  ``optim.tables`` optimizer (``tables_lr``, ``weight_decay``) and the rest data-parallel.
  The step's forward is `TorchRecStep`: one lookup of the collection per step. ``parts.model``
  stays the run's native towers, which validation, the test, checkpoints, export and serving
  read: `sync_native` copies the trained weights into it (whole tables, a collective) before
  each of those, and `load_native` copies it back into the shards after a checkpoint is
  restored. Each process thus holds the native towers' whole tables beside its shards.

`build_run_optimizer` gives a prepared run's optimizer on either backend
(`augkit.train.loop.ready` holds a run ready to step, for code that steps it without the loop,
as benchmarks do). torchrec and fbgemm_gpu are imported only when a run uses them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import attrs
import torch
from torch import nn

from augkit.batch import FeatureBatch
from augkit.errors import ConfigError
from augkit.torchrec.sharding import full_state_dict, load_state, shard
from augkit.torchrec.towers import TorchRecTowers
from augkit.train.config import TrainConfig
from augkit.train.optimizers import (
    ROWWISE_EPS,
    FusedTablesOptimizer,
    SparseTablesOptimizer,
    build_fused_optimizer,
    build_optimizer,
)
from augkit.train.run import RunParts

INSTALL = "docs/install.md#torchrec (the README's TorchRec section)"
"""Where the ``torchrec`` extra's install recipe is."""


def check_backend(config: TrainConfig, device: torch.device) -> None:
    """`ConfigError` before anything is built where ``model.backend = "torchrec"`` cannot run:
    torchrec or fbgemm_gpu not installed (naming the recipe), a device other than CPU or CUDA,
    ``optim.tables = "sparse_adam"`` off CUDA (FBGEMM's Adam is a CUDA kernel; naming
    ``rowwise_adagrad``), ``optim.weight_decay`` on CPU (FBGEMM's CPU kernel decays only the
    rows read more than once in a step: measured on fbgemm-gpu-cpu 1.8.0), or CUDA with
    FBGEMM's CPU build. Nothing for the native backend."""
    if config.model.backend != "torchrec":
        return
    missing = [name for name in ("torchrec", "fbgemm_gpu") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f'model.backend = "torchrec" needs the torchrec extra, and {" and ".join(missing)} '
            f"{'is' if len(missing) == 1 else 'are'} not installed: install it with the recipe of {INSTALL}"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f'model.backend = "torchrec" runs on cpu or cuda, the run is on {device}')
    if config.optim.tables == "sparse_adam" and device.type != "cuda":
        raise ConfigError(
            f'optim.tables = "sparse_adam" with model.backend = "torchrec": FBGEMM\'s Adam kernel runs on CUDA only, '
            f'the run is on {device}; set optim.tables = "rowwise_adagrad"'
        )
    if config.optim.weight_decay and device.type == "cpu":
        raise ConfigError(
            f'optim.weight_decay = {config.optim.weight_decay} with model.backend = "torchrec" on cpu: FBGEMM\'s CPU row-wise '
            "Adagrad (fbgemm-gpu-cpu 1.8.0) adds the L2 term only to the rows read more than once in a step, so the tables "
            'would decay unevenly; set optim.weight_decay = 0, train on cuda, or use model.backend = "native"'
        )
    if device.type == "cuda":
        # optional: fbgemm_gpu is the `torchrec` extra's kernel library; its build says where it runs
        import fbgemm_gpu

        if getattr(fbgemm_gpu, "__variant__", "") == "cpu":
            raise ConfigError(
                f'model.backend = "torchrec" on {device}: the installed fbgemm_gpu is the CPU build (fbgemm-gpu-cpu); '
                f"install fbgemm-gpu (CUDA) as {INSTALL} says, or train on cpu"
            )


class TorchRecStep:
    """The training step's forward on the ``torchrec`` backend: ``(queries, items, views,
    negatives, stride=)`` -> ``(query, item, z1, z2, negative)`` embeddings, as `TowerStep`
    gives them, from one lookup of the sharded collection with ``stride`` rows per key (the
    same on every process, `augkit.train.step`). ``model`` is the run's native towers and
    ``sharded`` the ``DistributedModelParallel`` that trains; `pull` and `push` copy the
    weights between them (module docstring)."""

    def __init__(self, model: nn.ModuleDict, sharded: Any, native_names: Mapping[str, str]) -> None:
        self.model, self.sharded = model, sharded
        self._native_names = dict(native_names)  # native key -> key of the sharded model
        self._stale = False  # the native towers lag the shards (a step ran since `pull`)

    def __call__(
        self,
        queries: FeatureBatch,
        items: FeatureBatch,
        views: tuple[FeatureBatch, FeatureBatch] | None,
        negatives: FeatureBatch | None = None,
        *,
        stride: int,
    ) -> tuple[torch.Tensor | None, ...]:
        if torch.is_grad_enabled():
            self._stale = True
        return self.sharded(queries, items, views, negatives, stride=stride)

    def pull(self) -> None:
        """Copy the trained weights, tables whole, into the native towers, if a step ran since
        the last copy; a collective, called on every process (every process steps alike)."""
        if not self._stale:
            return
        state = full_state_dict(self.sharded)
        self.model.load_state_dict({native: state[ours] for native, ours in self._native_names.items()})
        self._stale = False

    def push(self) -> None:
        """Copy the native towers' weights into the shards (after a checkpoint is loaded into them)."""
        native = self.model.state_dict()
        load_state(self.sharded, {ours: native[theirs] for theirs, ours in self._native_names.items()})
        self._stale = False


def on_torchrec(parts: RunParts, device: torch.device) -> RunParts:
    """`parts` (on `device`) training on TorchRec: its native towers copied into
    `TorchRecTowers` (tables float32, FBGEMM's training precision; the rest in the towers'
    dtype), sharded by ``model.sharding`` under the process group with the fused
    ``optim.tables`` optimizer; ``towers`` is their `TorchRecStep`."""
    config = parts.config
    towers = TorchRecTowers.from_towers(parts.model)
    towers.tables.float()
    names = towers.native_names()
    sharded = shard(
        towers, optimizer=config.optim.tables, lr=config.optim.table_lr, weight_decay=config.optim.weight_decay,
        eps=ROWWISE_EPS, sharding=config.model.sharding, device=device,
    )
    return attrs.evolve(parts, towers=TorchRecStep(parts.model, sharded, names))


def sync_native(parts: RunParts) -> None:
    """Bring ``parts.model`` up to the trained weights (`TorchRecStep.pull`; native towers train
    in place: nothing to do). A collective on the torchrec backend: call it on every process."""
    if isinstance(parts.towers, TorchRecStep):
        parts.towers.pull()


def load_native(parts: RunParts) -> None:
    """After ``parts.model`` was loaded (a resume), train from it (`TorchRecStep.push`; native
    towers: nothing to do)."""
    if isinstance(parts.towers, TorchRecStep):
        parts.towers.push()


def build_run_optimizer(parts: RunParts) -> torch.optim.Optimizer | SparseTablesOptimizer | FusedTablesOptimizer:
    """The optimizer of a prepared run (`augkit.train.loop.prepare`): ``optim`` over the towers
    and the losses (`build_optimizer`), or on TorchRec dense Adam beside the fused tables
    (`build_fused_optimizer`)."""
    if isinstance(parts.towers, TorchRecStep):
        return build_fused_optimizer(parts.config.optim, parts.towers.sharded, [parts.main_loss, parts.ssl_loss])
    return build_optimizer(parts.config.optim, [parts.model, parts.main_loss, parts.ssl_loss])


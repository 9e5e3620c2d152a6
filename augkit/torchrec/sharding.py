"""Train `TorchRecTowers` with TorchRec: the tables sharded by TorchRec's planner over the
processes, updated by a fused FBGEMM optimizer in the backward pass; the rest data-parallel.

`shard` wraps the towers in ``DistributedModelParallel`` (DMP): the planner places each table
(``sharding="table_wise"``: whole tables on one process each; ``"row_wise"``: every table's
rows split over the processes; ``"auto"``: the planner's choice between the two), FBGEMM's
table-batched embedding kernels hold the shards and apply the table optimizer during the
backward pass, and the default embeddings, dense projections and MLPs are replicated under
DDP. Build your own optimizer over `dense_parameters` for those.

Gradients across processes: TorchRec divides the gradient its all-to-all sends back to a
table's owner by the number of processes, as DDP averages the dense gradients. With augkit's
losses built with ``gather=True`` (each process's loss is its share of the global mean times
the number of processes, `augkit.distributed.global_mean`), a step of N processes on their
parts of a global batch is then the step of one process on the whole batch, tables included.
In-batch negatives, logQ and the SSL views work as in augkit's own distributed training.

Table optimizers (`TABLE_OPTIMIZERS`), with ``lr`` and ``weight_decay``, each updating only
the rows a step reads:

* ``"rowwise_adagrad"``: FBGEMM's exact row-wise Adagrad, one accumulator per row (the mean of
  the row's squared gradient); weight decay is L2 (added to the gradient).
* ``"sparse_adam"``: FBGEMM's Adam with moments per element, updated for the rows read only
  (lazy, as ``torch.optim.SparseAdam``); weight decay is decoupled (as AdamW) on those rows.

DMP needs a process group even in one process: under torchrun join the group first
(`augkit.distributed.process_group`); alone, `local_process_group` starts one of one process.
CPU processes use gloo, CUDA ones nccl (one GPU per process, ``cuda:LOCAL_RANK``).

torchrec and fbgemm_gpu are optional dependencies (the ``torchrec`` extra), imported inside
the functions that need them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from augkit.errors import ConfigError, UnknownNameError
from augkit.torchrec.towers import TorchRecTowers

if TYPE_CHECKING:
    from torchrec.distributed.model_parallel import DistributedModelParallel

__all__ = [
    "SHARDINGS", "TABLE_OPTIMIZERS", "dense_parameters", "full_optimizer_state", "full_state_dict", "load_optimizer_state",
    "load_state", "local_process_group", "shard",
]

TABLE_OPTIMIZERS = ("rowwise_adagrad", "sparse_adam")
"""The fused table optimizers, by the names of augkit's ``optim.tables`` options."""

SHARDINGS = ("auto", "table_wise", "row_wise")
"""How `shard` places the tables: the planner's choice between table-wise and row-wise, or one
of the two for every table."""

TABLES = "tables."
"""The prefix of the tables' parameter names in `TorchRecTowers` and in its DMP."""


def _fused_params(optimizer: str, lr: float, weight_decay: float, eps: float) -> dict[str, Any]:
    # optional: fbgemm_gpu is the `torchrec` extra's kernel library
    from fbgemm_gpu.split_embedding_configs import EmbOptimType
    from fbgemm_gpu.tbe.config.optimizer_config import WeightDecayMode

    if optimizer not in TABLE_OPTIMIZERS:
        raise UnknownNameError("table optimizer", optimizer, TABLE_OPTIMIZERS)
    for name, value in (("lr", lr), ("weight_decay", weight_decay), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (name != "weight_decay" and value == 0):
            raise ConfigError(f"shard: {name} must be a {'non-negative' if name == 'weight_decay' else 'positive'} number, got {value!r}")
    adam = optimizer == "sparse_adam"
    decay = WeightDecayMode.NONE if weight_decay == 0 else WeightDecayMode.DECOUPLE if adam else WeightDecayMode.L2
    return {
        "optimizer": EmbOptimType.ADAM if adam else EmbOptimType.EXACT_ROWWISE_ADAGRAD,
        "learning_rate": float(lr),
        "eps": float(eps),
        "weight_decay": float(weight_decay),
        "weight_decay_mode": decay,
    }


def _sharder(fused_params: dict[str, Any]) -> Any:
    """TorchRec's sharder of an ``EmbeddingBagCollection`` with the fused optimizer, offering
    table-wise and row-wise on every device (TorchRec lists row-wise for CUDA only; its CPU
    kernels shard row-wise as well, which the tests check against one process)."""
    # optional: torchrec is the `torchrec` extra; loading it costs seconds
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.types import ShardingType

    class TableSharder(EmbeddingBagCollectionSharder):
        def sharding_types(self, compute_device_type: str) -> list[str]:
            return [ShardingType.TABLE_WISE.value, ShardingType.ROW_WISE.value]

    return TableSharder(fused_params=fused_params)


def shard(
    towers: TorchRecTowers,
    *,
    optimizer: str = "rowwise_adagrad",
    lr: float = 0.01,
    weight_decay: float = 0.0,
    eps: float = 1e-8,
    sharding: str | Mapping[str, str] = "auto",
    device: torch.device | str | None = None,
) -> DistributedModelParallel:
    """`towers` in a ``DistributedModelParallel`` with its tables sharded and fused (module
    docstring), their values copied from `towers`; every process must pass equal towers (build
    them from one seed). `towers` itself becomes part of the result (DMP replaces its
    collection in place): use the result from then on.

    ``sharding``: one of `SHARDINGS` for every table, or a mapping from table name
    (`augkit.torchrec.towers.table_key`) to ``"table_wise"`` / ``"row_wise"`` (tables not named
    are ``"auto"``). ``device``: where this process computes (``cuda:LOCAL_RANK`` for CUDA;
    the towers' device when None). Every process needs the same batch size per step for
    row-wise tables (`TorchRecTowers.forward`'s ``stride``).

    The result's forward is `TorchRecTowers.forward`; ``result.fused_optimizer`` is the tables'
    optimizer (its ``param_groups[0]["lr"]`` sets their learning rate before a step)."""
    # optional: torchrec is the `torchrec` extra; loading it costs seconds
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology
    from torchrec.distributed.planner.types import ParameterConstraints

    if not isinstance(towers, TorchRecTowers):
        raise ConfigError(f"shard takes TorchRecTowers, got {type(towers).__name__}")
    if not (dist.is_available() and dist.is_initialized()):
        raise ConfigError(
            "shard needs a process group (DistributedModelParallel does, even alone): under torchrun join it first "
            "(augkit.distributed.process_group()), in one process use augkit.torchrec.sharding.local_process_group()"
        )
    narrow = [f"{c.name} ({c.embedding_dim})" for c in towers.tables.embedding_bag_configs() if c.embedding_dim % 4]
    if narrow:
        raise ConfigError(f"shard: FBGEMM's kernels need table widths divisible by 4 (model.embedding_dim(s)); not {', '.join(narrow)}")
    device = towers.item.output.weight.device if device is None else torch.device(device)
    if optimizer == "sparse_adam" and device.type != "cuda":
        raise ConfigError(
            f"shard: FBGEMM's Adam kernel runs on CUDA only, the towers are on {device}; on CPU use optimizer='rowwise_adagrad'"
        )
    sharder = _sharder(_fused_params(optimizer, lr, weight_decay, eps))
    constraints = {
        name: ParameterConstraints(sharding_types=["table_wise", "row_wise"] if placement == "auto" else [placement], compute_kernels=["fused"])
        for name, placement in _placements(towers, sharding).items()
    }
    world = dist.get_world_size()
    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=world, local_world_size=world, compute_device=device.type), constraints=constraints
    )
    plan = planner.collective_plan(towers, [sharder], dist.GroupMember.WORLD)
    unsharded = {name: tensor for name, tensor in towers.state_dict().items() if name.startswith(TABLES)}
    model = DistributedModelParallel(towers, device=device, plan=plan, sharders=[sharder])
    load_state(model, unsharded)
    return model


def _placements(towers: TorchRecTowers, sharding: str | Mapping[str, str]) -> dict[str, str]:
    names = [config.name for config in towers.tables.embedding_bag_configs()]
    if isinstance(sharding, str):
        if sharding not in SHARDINGS:
            raise UnknownNameError("sharding", sharding, SHARDINGS)
        return dict.fromkeys(names, sharding)
    if not isinstance(sharding, Mapping):
        raise ConfigError(f"shard: sharding is one of {SHARDINGS} or a mapping of table name to one, got {sharding!r}")
    for name, placement in sharding.items():
        if name not in names:
            raise UnknownNameError("table in sharding", name, names)
        if placement not in SHARDINGS:
            raise UnknownNameError(f"sharding of table {name!r}", placement, SHARDINGS)
    return {name: sharding.get(name, "auto") for name in names}


def dense_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of a sharded (or unsharded) `TorchRecTowers` other than its tables: the
    default embeddings, dense projections and MLPs, for your optimizer (the tables have theirs,
    fused)."""
    return [parameter for name, parameter in model.named_parameters() if not name.startswith(TABLES)]


def _shards(value: Any) -> list[tuple[tuple[slice, ...], torch.Tensor]]:
    """``(where in the full tensor, local tensor)`` of each local shard of a sharded state-dict
    entry (a ``ShardedTensor``); the whole tensor for a plain one."""
    if isinstance(value, torch.Tensor) and not hasattr(value, "local_shards"):
        return [((slice(None),), value)]
    return [
        (tuple(slice(o, o + s) for o, s in zip(shard.metadata.shard_offsets, shard.metadata.shard_sizes, strict=True)), shard.tensor)
        for shard in value.local_shards()
    ]


def _whole(entries: Mapping[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """Every entry of a (sharded) state dict whole, on every process: a collective."""
    state = {}
    for name, value in entries.items():
        if isinstance(value, torch.Tensor) and not hasattr(value, "local_shards"):
            state[name] = value.detach().clone()
            continue
        full = torch.zeros(value.size(), dtype=value.dtype, device=device)
        for where, local in _shards(value):
            full[where] = local
        dist.all_reduce(full)  # the shards are disjoint: a sum puts each in its place
        state[name] = full
    return state


def _copy_shards(targets: Mapping[str, Any], state: Mapping[str, torch.Tensor], what: str) -> None:
    """Copy each whole tensor of `state` into this process's shards of the entry of `targets`
    of the same name; a name `targets` lacks is an error naming `what`."""
    unknown = sorted(set(state) - set(targets))
    if unknown:
        raise UnknownNameError(what, unknown[0], sorted(targets))
    with torch.no_grad():
        for name, full in state.items():
            for where, local in _shards(targets[name]):
                local.copy_(full[where])


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of a sharded `TorchRecTowers` with every table whole, on every process
    (a collective: call it on every process). Its keys are `TorchRecTowers.state_dict`'s, so
    ``towers.to_towers(full_state_dict(model))`` gives native towers."""
    return _whole(model.state_dict(), dense_parameters(model)[0].device)


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy `state` (keys of `TorchRecTowers.state_dict`, whole tables) into a sharded model:
    each process takes its shards of each table. Keys of `state` the model lacks are errors;
    entries the state lacks are left as they are."""
    _copy_shards(model.state_dict(), state, "state-dict key")


def _optimizer_entries(model: DistributedModelParallel) -> dict[str, Any]:
    """The fused optimizer's state tensors (views of FBGEMM's), keyed ``<table parameter>/<state
    name>``: ``tables.embedding_bags.item_item_id.weight/item_item_id.momentum1``."""
    state = model.fused_optimizer.state_dict()["state"]
    return {f"{parameter}/{name}": value for parameter, entries in state.items() for name, value in entries.items()}


def full_optimizer_state(model: DistributedModelParallel) -> dict[str, torch.Tensor]:
    """The state of the tables' fused optimizer with every tensor whole (row-wise Adagrad: one
    accumulator ``[rows]`` per table, ``momentum1``; Adam: ``momentum1`` and ``momentum2`` of
    the table's shape), on every process (a collective). Keys ``<table parameter>/<state
    name>``; `load_optimizer_state` takes it back under any sharding and number of processes."""
    return _whole(_optimizer_entries(model), dense_parameters(model)[0].device)


def load_optimizer_state(model: DistributedModelParallel, state: Mapping[str, torch.Tensor]) -> None:
    """Copy `full_optimizer_state`'s output into the fused optimizer of a sharded model: each
    process takes its shards. Every state tensor must be given (a missing or unknown one is an
    error naming it)."""
    targets = _optimizer_entries(model)
    missing = sorted(set(targets) - set(state))
    if missing:
        raise KeyError(f"the fused optimizer's state lacks {missing[0]!r}")
    _copy_shards(targets, state, "fused optimizer state")


@contextlib.contextmanager
def local_process_group(device_type: str = "cpu") -> Iterator[None]:
    """A process group of this one process for the block (gloo, or nccl for ``"cuda"``), for
    `shard` without torchrun; nothing when a group is already joined."""
    if dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()

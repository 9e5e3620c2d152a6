"""The run's optimizers, built from ``[optim]``: dense Adam, and a sparse optimizer for the
id embedding tables where ``optim.tables`` chooses one.

* ``tables = "adam"``: one `torch.optim.Adam` over every parameter (``lr``,
  ``weight_decay``): every row of every table moves at every step.
* ``tables = "sparse_adam"`` or ``"rowwise_adagrad"``: the tables (every ``nn.Embedding`` of
  the towers, built with ``sparse=True`` by `augkit.train.run.build_model`) produce sparse
  gradients and go to `torch.optim.SparseAdam` or `RowWiseAdagrad` at ``tables_lr``; every
  other parameter (default embeddings, dense projections, MLPs, a loss's parameters) keeps
  dense Adam at ``lr`` with ``weight_decay``. A step then costs the batch's rows, not the
  catalog's.
* ``model.backend = "torchrec"``: the tables' ``sparse_adam`` or ``rowwise_adagrad`` is
  FBGEMM's, fused into the backward pass of the sharded collection; `FusedTablesOptimizer`
  steps dense Adam beside it (`build_fused_optimizer`).

A table's rows *in the batch* at a step are those whose gradient is not zero: the ids present
and kept in the batch's features (a masked or padded position reads a row with weight 0 and
leaves it out). ``weight_decay`` is L2 added to those rows' gradients only (lazily: a row
decays at the steps it is in the batch). See docs/explanation/sparse-updates.md for how the
lazy moments differ from dense Adam's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from augkit.errors import ConfigError
from augkit.torchrec.sharding import dense_parameters, full_optimizer_state, load_optimizer_state
from augkit.train.config import OptimConfig

ROWWISE_EPS = 1e-8
"""`RowWiseAdagrad`'s term added to the root of the accumulator (FBGEMM's default)."""


class RowWiseAdagrad(torch.optim.Optimizer):
    """Row-wise Adagrad on sparse gradients of 2-d tables, as FBGEMM and TorchRec define it:
    one accumulator per row (state ``"accumulator"``, ``FloatTensor[rows]``, starting at 0)
    that adds the mean over the row's columns of its squared gradient; then
    ``row -= lr * grad_row / (sqrt(accumulator_row) + eps)``.

    Only the rows in a step's gradient change (their state too); duplicate indices of an
    uncoalesced gradient are summed first. Vectorised over the rows; a dense gradient is a
    `TypeError` (build the table with ``sparse=True``)."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, eps: float = ROWWISE_EPS) -> None:
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        """One update of every table that has a gradient."""
        for group in self.param_groups:
            for table in group["params"]:
                if table.grad is None:
                    continue
                if not table.grad.is_sparse or table.dim() != 2:
                    raise TypeError("RowWiseAdagrad updates 2-d tables with sparse gradients (nn.Embedding(sparse=True))")
                grad = table.grad.coalesce()
                rows, values = grad.indices()[0], grad.values()
                state = self.state[table]
                if not state:
                    state["accumulator"] = torch.zeros(table.shape[0], dtype=table.dtype, device=table.device)
                accumulator = state["accumulator"]
                accumulator.index_add_(0, rows, values.square().mean(dim=1))
                denominator = accumulator[rows].sqrt().add_(group["eps"]).unsqueeze(1)
                table.index_add_(0, rows, values * -group["lr"] / denominator)


def use_sparse_gradients(model: nn.Module) -> None:
    """Make every ``nn.Embedding`` of `model` produce sparse gradients (``sparse=True``); DDP
    reads the flag when it wraps the model, so this comes before."""
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            module.sparse = True


def batch_rows(table: torch.Tensor, weight_decay: float) -> torch.Tensor:
    """The sparse gradient of `table` reduced to its rows in the batch: coalesced (repeated
    ids summed), rows whose gradient is all zero left out, and ``weight_decay * row`` added to
    the rest (L2 on the batch's rows)."""
    grad = table.grad.coalesce()
    rows, values = grad.indices()[0], grad.values()
    touched = values.ne(0).any(dim=1)
    rows, values = rows[touched], values[touched]
    if weight_decay:
        values = values + weight_decay * table.detach()[rows]
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, grad.shape, is_coalesced=True, check_invariants=False)


class SparseTablesOptimizer:
    """Dense Adam for every parameter but the id tables, and a sparse optimizer for the tables,
    stepped together: the ``"sparse_adam"`` and ``"rowwise_adagrad"`` choices of
    ``optim.tables``. `param_groups` lists the dense Adam's groups first (the logbook reads
    ``param_groups[0]["lr"]``, the dense learning rate)."""

    def __init__(self, dense: torch.optim.Optimizer, tables: torch.optim.Optimizer, weight_decay: float) -> None:
        self.dense, self.tables, self.weight_decay = dense, tables, weight_decay

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.dense.param_groups, *self.tables.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none=set_to_none)
        self.tables.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """Step dense Adam, then the tables on their batch rows (`batch_rows`)."""
        self.dense.step()
        with torch.no_grad():
            for group in self.tables.param_groups:
                for table in group["params"]:
                    if table.grad is not None:
                        table.grad = batch_rows(table, self.weight_decay)
        self.tables.step()

    def state_dict(self) -> dict[str, Any]:
        """``{"dense": ..., "tables": ...}``, each its optimizer's state dict."""
        return {"dense": self.dense.state_dict(), "tables": self.tables.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back `state_dict`'s output (`KeyError` if a part is missing)."""
        self.dense.load_state_dict(state["dense"])
        self.tables.load_state_dict(state["tables"])


class FusedTablesOptimizer:
    """Dense Adam for every parameter but the id tables, beside the fused table optimizer of the
    ``torchrec`` backend (``model.fused_optimizer`` of a sharded model,
    `augkit.torchrec.sharding.shard`), which updates the tables in the backward pass: `step`
    steps dense Adam only. `param_groups` lists dense Adam's groups first, then the fused
    optimizer's.

    Its state dict holds the tables' optimizer state whole (row-wise Adagrad's accumulator per
    row), gathered from every process: saving and loading it are collectives, called on every
    process, and a state saved by N processes loads under any number and sharding."""

    def __init__(self, dense: torch.optim.Optimizer, sharded: Any) -> None:
        self.dense, self.sharded = dense, sharded

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.dense.param_groups, *self.sharded.fused_optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """Step dense Adam (the tables moved in the backward pass)."""
        self.dense.step()

    def state_dict(self) -> dict[str, Any]:
        """``{"dense": dense Adam's state dict, "tables": {"<table parameter>/<state name>":
        whole tensor}}`` (`augkit.torchrec.sharding.full_optimizer_state`); a collective."""
        return {"dense": self.dense.state_dict(), "tables": full_optimizer_state(self.sharded)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Take back `state_dict`'s output, each process its shards (`KeyError` if a part is missing)."""
        self.dense.load_state_dict(state["dense"])
        load_optimizer_state(self.sharded, state["tables"])


def build_fused_optimizer(config: OptimConfig, sharded: Any, others: Iterable[nn.Module | None]) -> FusedTablesOptimizer:
    """The optimizer of a run on the ``torchrec`` backend: dense Adam (``lr``, ``weight_decay``)
    over the sharded model's dense parameters (`augkit.torchrec.sharding.dense_parameters`) and
    those of `others` (the losses; None skipped), beside the model's fused table optimizer."""
    parameters = [*dense_parameters(sharded), *(p for module in others if module is not None for p in module.parameters())]
    unique = list({id(p): p for p in parameters}.values())
    return FusedTablesOptimizer(torch.optim.Adam(unique, lr=config.lr, weight_decay=config.weight_decay), sharded)


def build_optimizer(config: OptimConfig, modules: Iterable[nn.Module | None]) -> torch.optim.Optimizer | SparseTablesOptimizer:
    """The optimizer of the parameters of `modules` (None entries skipped, a shared parameter
    once) for ``[optim]`` `config`: `torch.optim.Adam` for ``tables = "adam"``, else a
    `SparseTablesOptimizer` whose table part takes every ``nn.Embedding`` weight, which must
    produce sparse gradients (`use_sparse_gradients`; a `ValueError` otherwise; a
    `ConfigError` where there is no table)."""
    modules = [module for module in modules if module is not None]
    parameters = list({id(p): p for module in modules for p in module.parameters()}.values())
    if config.tables == "adam":
        return torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    embeddings = [m for module in modules for m in module.modules() if isinstance(m, nn.Embedding)]
    dense_tables = sorted({f"{m.num_embeddings} x {m.embedding_dim}" for m in embeddings if not m.sparse})
    if dense_tables:
        raise ValueError(
            f"optim.tables = {config.tables!r} needs tables with sparse gradients; the tables {dense_tables} "
            "are not (build them with augkit.train.run.build_model or call use_sparse_gradients)"
        )
    tables = list({id(m.weight): m.weight for m in embeddings}.values())
    if not tables:
        raise ConfigError(f"optim.tables = {config.tables!r}: the towers have no id tables to update sparsely; use \"adam\"")
    in_tables = {id(t) for t in tables}
    dense = torch.optim.Adam([p for p in parameters if id(p) not in in_tables], lr=config.lr, weight_decay=config.weight_decay)
    if config.tables == "sparse_adam":
        table_optimizer: torch.optim.Optimizer = torch.optim.SparseAdam(tables, lr=config.table_lr)
    else:
        table_optimizer = RowWiseAdagrad(tables, lr=config.table_lr)
    return SparseTablesOptimizer(dense, table_optimizer, config.weight_decay)

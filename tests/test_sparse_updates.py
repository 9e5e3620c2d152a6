"""Sparse table updates (``optim.tables``): sparse gradients with plain SGD equal dense SGD,
SparseAdam and row-wise Adagrad equal their formulas on the batch's rows and leave the other
rows bit-identical, the trainer runs, resumes exactly and equals one process on two, and a
step draws nothing of the catalog's size."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from augkit.batch import FeatureBatch
from augkit.errors import ConfigError
from augkit.random import distinct
from augkit.schema import Categorical, FeatureSchema, MultiCategorical
from augkit.testing.distributed import run_ranks
from augkit.towers import Tower, TowerConfig, parameter_parts
from augkit.train import build_run, config_from_dict, train
from augkit.train.checkpoint import load_checkpoint
from augkit.train.loop import check_sparse_reduction
from augkit.train.optimizers import (
    ROWWISE_EPS,
    RowWiseAdagrad,
    SparseTablesOptimizer,
    batch_rows,
    build_optimizer,
    use_sparse_gradients,
)
from augkit.train.run import STREAM_EPOCH, generator_for, with_optimizer_state
from augkit.train.step import train_step

SPARSE = ("sparse_adam", "rowwise_adagrad")

ids_with_repeats = st.lists(st.integers(0, 11), min_size=1, max_size=40)


def pair_of_tables(rows: int = 12, dim: int = 4) -> tuple[nn.Embedding, nn.Embedding]:
    """Two equal float64 tables, the second with sparse gradients."""
    dense = nn.Embedding(rows, dim, dtype=torch.float64)
    with torch.no_grad():
        dense.weight.copy_(torch.randn(rows, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    sparse = nn.Embedding(rows, dim, sparse=True, dtype=torch.float64)
    with torch.no_grad():
        sparse.weight.copy_(dense.weight)
    return dense, sparse


def integer_gradient(n: int, dim: int, seed: int) -> torch.Tensor:
    """An upstream gradient of small integers: sums of them are exact in any order."""
    return torch.randint(-4, 5, (n, dim), generator=torch.Generator().manual_seed(seed)).double()


# -- sparse gradients and plain SGD ------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(ids_with_repeats, min_size=1, max_size=4))
def test_sparse_sgd_equals_dense_sgd_exactly_and_repeats_accumulate(batches):
    dense, sparse = pair_of_tables()
    sgd = torch.optim.SGD(dense.parameters(), lr=0.25), torch.optim.SGD(sparse.parameters(), lr=0.25)
    for step, ids in enumerate(batches):
        ids = torch.tensor(ids)
        upstream = integer_gradient(len(ids), 4, step)
        for table, optimizer in zip((dense, sparse), sgd):
            optimizer.zero_grad()
            table(ids).backward(upstream)
        sparse.weight.grad = batch_rows(sparse.weight, 0.0)
        expected = torch.zeros(12, 4, dtype=torch.float64).index_add_(0, ids, upstream)  # repeats add up
        assert torch.equal(sparse.weight.grad.to_dense(), expected)
        assert torch.equal(dense.weight.grad, expected)
        for optimizer in sgd:
            optimizer.step()
        assert torch.equal(dense.weight, sparse.weight)


def item_batch(schema: FeatureSchema, ids: torch.Tensor, present: torch.Tensor) -> FeatureBatch:
    """`ids` (some not present) and a bag of two tags each, padded to three."""
    bag = torch.stack([ids, (ids + 1) % 30, torch.full_like(ids, -1)], dim=1)
    return FeatureBatch.from_tensors(
        schema, {"item_id": ids, "tags": bag}, present=torch.stack([present, torch.ones_like(present)], dim=1)
    )


def test_a_tower_trained_with_sparse_gradients_and_sgd_equals_dense_sgd_exactly():
    """Distinct ids in every batch (the maths then fixes every sum's order); masked positions
    read row 0 with weight 0, which adds nothing."""
    schema = FeatureSchema([Categorical(name="item_id", num_values=30), MultiCategorical(name="tags", num_values=30, max_len=3)])
    towers = [Tower(schema, hidden=(8,), output_dim=4, embedding_dim=4, generator=torch.Generator().manual_seed(0)).double() for _ in range(2)]
    use_sparse_gradients(towers[1])
    optimizers = [torch.optim.SGD(t.parameters(), lr=0.5) for t in towers]
    present = torch.tensor([True, False, True, True])
    for step in range(5):
        ids = torch.tensor([3, 9, 20, 27]) + step  # distinct ids, and distinct tags in the bags
        for tower, optimizer in zip(towers, optimizers):
            optimizer.zero_grad()
            tower(item_batch(schema, ids % 30, present)).sum().backward()
            if tower is towers[1]:
                assert tower.input_layer.table("item_id").weight.grad.is_sparse
            optimizer.step()
    for (name, a), b in zip(towers[0].state_dict().items(), towers[1].state_dict().values()):
        assert torch.equal(a, b), name


# -- SparseAdam and row-wise Adagrad against their formulas -------------------------------------


def reference_sparse_adam(weight, grads, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
    """Adam on the rows with a non-zero gradient only; the bias correction counts the table's steps."""
    weight, m, v = weight.clone(), torch.zeros_like(weight), torch.zeros_like(weight)
    for step, grad in enumerate(grads, start=1):
        rows = grad.ne(0).any(dim=1)
        g = grad[rows] + weight_decay * weight[rows]
        m[rows] = betas[0] * m[rows] + (1 - betas[0]) * g
        v[rows] = betas[1] * v[rows] + (1 - betas[1]) * g * g
        size = lr * math.sqrt(1 - betas[1] ** step) / (1 - betas[0] ** step)
        weight[rows] -= size * m[rows] / (v[rows].sqrt() + eps)
    return weight


def reference_rowwise_adagrad(weight, grads, lr, weight_decay, eps=ROWWISE_EPS):
    """FBGEMM's row-wise Adagrad: one accumulator per row, the mean of the squared gradient."""
    weight, accumulator = weight.clone(), torch.zeros(weight.shape[0], dtype=weight.dtype)
    for grad in grads:
        rows = grad.ne(0).any(dim=1)
        g = grad[rows] + weight_decay * weight[rows]
        accumulator[rows] += (g * g).mean(dim=1)
        weight[rows] -= lr * g / (accumulator[rows].sqrt() + eps).unsqueeze(1)
    return weight


REFERENCES = {"sparse_adam": reference_sparse_adam, "rowwise_adagrad": reference_rowwise_adagrad}


@pytest.mark.parametrize("tables", SPARSE)
@settings(max_examples=25, deadline=None)
@given(batches=st.lists(ids_with_repeats, min_size=1, max_size=5), weight_decay=st.sampled_from([0.0, 0.1]))
def test_a_sparse_table_optimizer_equals_its_formula_on_the_batch_rows_and_keeps_the_others(tables, batches, weight_decay):
    dense, sparse = pair_of_tables()
    start = sparse.weight.detach().clone()
    config = config_from_dict({"optim": {"tables": tables, "tables_lr": 0.1, "weight_decay": weight_decay}})
    optimizer = build_optimizer(config.optim, [sparse, nn.Linear(1, 1)])  # a dense layer, as towers have
    grads = []
    for step, ids in enumerate(batches):
        ids = torch.tensor(ids)
        upstream = torch.randn(len(ids), 4, generator=torch.Generator().manual_seed(step), dtype=torch.float64)
        optimizer.zero_grad()
        sparse(ids).backward(upstream)
        grads.append(torch.zeros(12, 4, dtype=torch.float64).index_add_(0, ids, upstream))  # repeats accumulate
        optimizer.step()
    expected = REFERENCES[tables](start, grads, lr=0.1, weight_decay=weight_decay)
    touched = torch.stack(grads).ne(0).any(dim=2).any(dim=0)
    torch.testing.assert_close(sparse.weight.detach()[touched], expected[touched], rtol=1e-12, atol=1e-12)
    assert torch.equal(sparse.weight.detach()[~touched], start[~touched])  # untouched: bit-identical


def test_rowwise_adagrad_keeps_one_value_per_row_and_refuses_dense_gradients():
    _, sparse = pair_of_tables()
    optimizer = RowWiseAdagrad(sparse.parameters(), lr=0.1)
    sparse(torch.tensor([1, 1, 5])).sum().backward()
    optimizer.step()
    accumulator = optimizer.state[sparse.weight]["accumulator"]
    assert accumulator.shape == (12,) and accumulator.nonzero().flatten().tolist() == [1, 5]
    assert float(accumulator[1]) == 4.0 and float(accumulator[5]) == 1.0  # row 1: gradient 2 in every column
    dense = nn.Embedding(3, 2)
    dense(torch.tensor([0])).sum().backward()
    with pytest.raises(TypeError, match="sparse gradients"):
        RowWiseAdagrad(dense.parameters(), lr=0.1).step()


def test_the_tables_go_to_the_table_optimizer_and_everything_else_to_dense_adam():
    config = config_from_dict({"optim": {"tables": "rowwise_adagrad", "lr": 0.01, "tables_lr": 0.2, "weight_decay": 0.5}})
    schema = FeatureSchema([Categorical(name="item_id", num_values=30)])
    tower = Tower(schema, hidden=(8,), output_dim=4, embedding_dim=4)
    with pytest.raises(ValueError, match="needs tables with sparse gradients"):
        build_optimizer(config.optim, [tower])
    use_sparse_gradients(tower)
    optimizer = build_optimizer(config.optim, [tower, None])
    assert isinstance(optimizer, SparseTablesOptimizer)
    table = tower.input_layer.table("item_id").weight
    assert [p is table for p in optimizer.tables.param_groups[0]["params"]] == [True]
    assert all(p is not table for p in optimizer.dense.param_groups[0]["params"])
    assert len(optimizer.dense.param_groups[0]["params"]) == len(list(tower.parameters())) - 1
    assert optimizer.param_groups[0]["lr"] == 0.01 and optimizer.param_groups[0]["weight_decay"] == 0.5
    assert optimizer.tables.param_groups[0]["lr"] == 0.2
    assert isinstance(build_optimizer(config_from_dict({}).optim, [tower]), torch.optim.Adam)
    only_dense = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="no id tables"):
        build_optimizer(config.optim, [only_dense])


# -- the config, the memory check, NCCL ---------------------------------------------------------


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        ({"tables": "sparse"}, r"tables must be one of 'adam', 'sparse_adam', 'rowwise_adagrad', got 'sparse' @ config.optim.tables"),
        ({"tables": "sparse_adam", "tables_lr": 0}, r"tables_lr must be .*> 0, got 0.* @ config.optim.tables_lr"),
        ({"tables": "rowwise_adagrad", "tables_lr": "high"}, r"expected a number, got 'high'.* @ config.optim.tables_lr"),
        ({"tables_lr": 0.1}, r'tables_lr is set but tables = "adam".* @ config.optim.tables_lr'),
        ({"table": "adam"}, r"unknown key 'table'; did you mean 'tables'\?"),
    ],
)
def test_bad_table_optimizer_settings_are_named_errors(optim, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"optim": optim})


def test_tables_lr_defaults_to_lr():
    assert config_from_dict({"optim": {"tables": "sparse_adam", "lr": 0.02}}).optim.table_lr == 0.02
    assert config_from_dict({"optim": {"tables": "sparse_adam", "tables_lr": 0.5}}).optim.table_lr == 0.5


def test_the_memory_check_counts_each_choices_optimizer_state():
    schema = FeatureSchema([Categorical(name="item_id", num_values=1000)])
    parts = parameter_parts(schema, TowerConfig(hidden=(), output_dim=4, embedding_dim=8))
    table = next(part for part in parts if part.rows)
    assert table.rows == 1000 and table.count == 8000
    assert with_optimizer_state(table, "adam").count == 3 * 8000
    assert with_optimizer_state(table, "sparse_adam").count == 3 * 8000  # SparseAdam's moments are dense
    assert with_optimizer_state(table, "rowwise_adagrad").count == 8000 + 1000
    layer = next(part for part in parts if not part.rows)
    assert with_optimizer_state(layer, "rowwise_adagrad").count == 3 * layer.count


@pytest.mark.parametrize("tables", SPARSE)
def test_a_sparse_choice_in_an_nccl_group_is_refused_before_training(monkeypatch, tables):
    monkeypatch.setattr("augkit.distributed.is_distributed", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda group=None: "nccl")
    with pytest.raises(ConfigError, match=rf"optim.tables = '{tables}'.*NCCL.*optim.tables = \"adam\".*TorchRec"):
        check_sparse_reduction(config_from_dict({"optim": {"tables": tables}}))
    check_sparse_reduction(config_from_dict({}))  # dense Adam is fine


# -- the trainer ------------------------------------------------------------------------------


def small(tmp_path, name: str, tables: str, **changes) -> object:
    data = {
        "output_dir": str(tmp_path / "runs"), "name": name, "epochs": 1, "progress": False, "checkpoint_every": 20,
        "main": {"batch_size": 1024}, "ssl": {"batch_size": 128, "augmentation": {"name": "dropout", "params": {"rate": 0.3}}},
        "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
        "optim": {"tables": tables, "weight_decay": 1e-4, **({"tables_lr": 0.05} if tables == "rowwise_adagrad" else {})},
    }
    data.update(changes)
    return config_from_dict(data)


@pytest.mark.parametrize("tables", SPARSE)
def test_the_trainer_with_a_sparse_choice_resumes_exactly(tmp_path, tables):
    whole = train(small(tmp_path, "whole", tables))
    killed = small(tmp_path, "killed", tables)
    stopped = train(killed, max_steps=30)  # last checkpoint at step 20
    assert not stopped.finished
    saved = load_checkpoint(killed.run_dir / "checkpoint.pt")["optimizer"]
    assert set(saved) == {"dense", "tables"}
    other = "rowwise_adagrad" if tables == "sparse_adam" else "sparse_adam"
    with pytest.raises(ConfigError, match="differing keys: optim.tables"):
        train(small(tmp_path, "killed", other), on_existing="resume")
    resumed = train(killed, on_existing="resume")
    assert resumed.finished and resumed.steps == whole.steps
    for name, tensor in whole.parts.model.state_dict().items():
        assert torch.equal(tensor, resumed.parts.model.state_dict()[name]), name


def test_a_sparse_run_leaves_the_rows_of_items_it_never_saw_unchanged(tmp_path):
    """SSL off: the items of the first three batches and their users' histories are every row
    the steps read; the item table's other rows, row 0 of padded bags among them, stay as built."""
    config = small(tmp_path, "rows", "sparse_adam", ssl={"alpha": 0.0}, main={"batch_size": 256})
    parts = build_run(config)
    before = parts.model["item"].input_layer.table("item_id").weight.detach().clone()
    result = train(config, parts=parts, max_steps=3)
    order = torch.randperm(len(parts.split.train), generator=generator_for(config.seed, STREAM_EPOCH, 0))[: 3 * 256]
    users = parts.split.train.users[order]
    queries = parts.queries
    history = queries.values["history"][users]
    active = queries.kept["history"][users] & queries.present[users, queries.schema.index("history")].unsqueeze(1)
    seen = torch.zeros(len(before), dtype=torch.bool)
    seen[parts.split.train.items[order]] = True
    seen[history[active]] = True
    after = result.parts.model["item"].input_layer.table("item_id").weight.detach()
    assert not bool(seen.all())
    assert torch.equal(after[~seen], before[~seen]) and not torch.equal(after[seen], before[seen])


class _RandpermSizes:
    def __init__(self, original):
        self.original, self.sizes = original, []

    def __call__(self, n, *args, **kwargs):
        self.sizes.append(n)
        return self.original(n, *args, **kwargs)


@pytest.mark.parametrize("negatives", [None, {"name": "uniform_items", "params": {"batch_size": 64}}])
def test_a_step_draws_nothing_of_the_catalogs_size(tmp_path, monkeypatch, negatives):
    main = {"batch_size": 64} | ({"negatives": negatives} if negatives else {})
    config = small(tmp_path, "draws", "sparse_adam", main=main, ssl={"batch_size": 64, "augmentation": {"name": "dropout"}})
    parts = build_run(config)
    assert parts.dataset.num_items > 1300  # above distinct's threshold for 64 ids
    sizes = _RandpermSizes(torch.randperm)
    monkeypatch.setattr(torch, "randperm", sizes)
    train_step(parts, torch.arange(64), torch.Generator().manual_seed(0))
    assert all(n < parts.dataset.num_items for n in sizes.sizes), sizes.sizes


# -- distinct uniform draws -------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(high=st.integers(1, 10**12), size=st.integers(1, 600), seed=st.integers(0, 2**32))
def test_distinct_draws_distinct_ids_in_range_and_repeats_with_the_seed(high, size, seed):
    size = min(size, high)
    ids = distinct(high, size, generator=torch.Generator().manual_seed(seed))
    assert ids.shape == (size,) and ids.dtype == torch.long
    assert len(ids.unique()) == size and int(ids.min()) >= 0 and int(ids.max()) < high
    assert torch.equal(ids, distinct(high, size, generator=torch.Generator().manual_seed(seed)))


def test_distinct_is_uniform_over_ids_and_refuses_a_size_above_high():
    generator, counts = torch.Generator().manual_seed(0), torch.zeros(2000)
    for _ in range(500):
        counts.index_add_(0, distinct(2000, 100, generator=generator), torch.ones(100))
    expected = 500 * 100 / 2000  # 25 per id; a chi-square over 2000 ids stays near 1999
    assert (counts - expected).square().sum() / expected == pytest.approx(1999, rel=0.15)
    with pytest.raises(ValueError, match="size must be in 1..high=3"):
        distinct(3, 4, generator=generator)


# -- two processes ----------------------------------------------------------------------------


def tiny(output_dir: str, name: str, tables: str) -> object:
    return config_from_dict({
        "output_dir": output_dir, "name": name, "epochs": 1, "progress": False, "checkpoint_every": 0,
        "main": {"batch_size": 256}, "ssl": {"batch_size": 64, "augmentation": {"name": "dropout"}},
        "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
        "optim": {"tables": tables, "weight_decay": 1e-3},
    })


def twenty_steps(config: object) -> dict[str, torch.Tensor]:
    parts = build_run(config)
    parts.model.double()  # float64, as tests/test_distributed.py explains
    return train(config, parts=parts, max_steps=20).parts.model.state_dict()


def ranked(rank: int, world: int, output_dir: str) -> dict[str, dict[str, torch.Tensor]]:
    return {tables: twenty_steps(tiny(output_dir, f"ranks-{tables}", tables)) for tables in SPARSE}


def test_twenty_sparse_steps_on_two_gloo_ranks_end_with_one_process_parameters(tmp_path):
    alone = {tables: twenty_steps(tiny(str(tmp_path), f"alone-{tables}", tables)) for tables in SPARSE}
    for state in run_ranks(ranked, 2, str(tmp_path)):
        for tables in SPARSE:
            for name, value in alone[tables].items():
                torch.testing.assert_close(state[tables][name], value, rtol=0, atol=1e-9, msg=f"{tables} {name}")

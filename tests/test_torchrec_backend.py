"""The TorchRec backend (augkit.torchrec): FeatureBatch <-> KeyedJaggedTensor, TorchRecTowers
equal to the native towers on the same weights (1e-6), the fused table optimizer updating each
row once per step with its summed gradient, and 2 sharded processes (table-wise, row-wise)
equal to 1 process after 20 steps of an own loop with augkit's losses and an augmentation.

Needs the `torchrec` extra (torchrec and fbgemm_gpu); skips without it."""

from __future__ import annotations

import doctest

import pytest
import torch
from hypothesis import given, settings
from torch import nn

pytest.importorskip("fbgemm_gpu", reason="the torchrec extra is not installed (fbgemm-gpu-cpu); see the README's TorchRec section")
pytest.importorskip("torchrec", reason="the torchrec extra is not installed (torchrec); see the README's TorchRec section")

from augkit import (
    Categorical,
    Dense,
    FeatureBatch,
    FeatureSchema,
    MultiCategorical,
    TwoViews,
    distributed,
)
from augkit.errors import BatchValidationError, ConfigError, UnknownNameError
from augkit.testing import strategies
from augkit.testing.distributed import run_ranks
from augkit.torchrec import convert
from augkit.torchrec.convert import batch_to_kjt, batches_to_kjt, kjt_to_batch
from augkit.torchrec.sharding import dense_parameters, full_state_dict, local_process_group, shard
from augkit.torchrec.towers import TorchRecTowers
from augkit.towers import Tower, TowerConfig
from augkit_losses import BatchSoftmaxLoss, InfoNCELoss
from augkit_mask import MaskFeatures

ITEMS = FeatureSchema([
    Categorical(name="item_id", num_values=40),
    Categorical(name="genre", num_values=4),
    MultiCategorical(name="tags", num_values=12, max_len=4),
    Dense(name="price", dim=2),
])
QUERIES = FeatureSchema([
    Categorical(name="user_id", num_values=24),
    MultiCategorical(name="history", num_values=40, max_len=5),
    Dense(name="age", dim=1),
])
CONFIG = TowerConfig(hidden=(16,), output_dim=8, embedding_dim=8)
SHARED = {"history": "item_id"}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def native_towers(seed: int = 3, device: str = "cpu") -> nn.ModuleDict:
    """The trainer's towers: the item tower first, the query's history reading its item_id table."""
    generator = torch.Generator(device).manual_seed(seed)
    item = Tower(ITEMS, **CONFIG.to_dict(), generator=generator)
    query = Tower(QUERIES, **CONFIG.to_dict(), tables={"history": item.input_layer.table("item_id")}, generator=generator)
    return nn.ModuleDict({"query": query, "item": item})


def batches(seed: int, device: str = "cpu") -> tuple[FeatureBatch, ...]:
    """Queries, items, two views and negatives with masked, missing and empty features."""
    generator = torch.Generator().manual_seed(seed)
    queries = strategies.random_batch(QUERIES, 7, generator=generator, device=device, missing=0.4)
    return (queries, *(strategies.random_batch(ITEMS, n, generator=generator, device=device, missing=0.4) for n in (5, 4, 4, 3)))


# -- conversion ---------------------------------------------------------------------------------


def test_docstring_examples_run():
    assert doctest.testmod(convert, raise_on_error=True).attempted >= 2


def test_masks_become_lengths_and_only_kept_present_ids_are_values():
    batch = strategies.tiny_batch().mask_features(torch.tensor([[False, True], [True, False], [False, False]]))
    batch = batch.with_kept({"tags": batch.kept["tags"] & torch.tensor([True, False, True])})
    kjt = batch_to_kjt(batch, prefix="item_", stride=4)
    assert kjt.keys() == ["item_genre", "item_tags"] and kjt.stride() == 4
    assert kjt.lengths().tolist() == [1, 0, 1, 0, 0, 1, 1, 0]  # genre [2, -, 1, pad]; tags [-, [2], [1], pad]
    assert kjt.values().tolist() == [2, 1, 2, 1] and kjt.values().dtype == torch.int64


@settings(max_examples=40, deadline=None)
@given(strategies.schemas_and_batches(required_kinds=("categorical", "multi_categorical"), min_size=0))
def test_round_trips_keep_what_a_tower_reads(pair):
    schema, batch = pair
    dense = {spec.name: batch.values[spec.name] for spec in schema if isinstance(spec, Dense)}
    kjt = batch_to_kjt(batch)
    back = kjt_to_batch(kjt, schema, dense=dense)
    again = batch_to_kjt(back)
    assert torch.equal(again.values(), kjt.values()) and torch.equal(again.lengths(), kjt.lengths())
    for j, spec in enumerate(schema):
        if isinstance(spec, Dense):
            continue
        active = batch.present[:, j] if isinstance(spec, Categorical) else (batch.kept[spec.name] & batch.present[:, j : j + 1]).any(1)
        assert torch.equal(back.present[:, j], active), spec.name
    # the towers read the same: a native tower gives the same output on both (dense features as present as before)
    tower = Tower(schema, hidden=(), output_dim=4, embedding_dim=4, generator=torch.Generator().manual_seed(0))
    dense_columns = torch.tensor([isinstance(spec, Dense) for spec in schema])
    back = back.mask_features(~batch.present & dense_columns)
    torch.testing.assert_close(tower(back), tower(batch), rtol=0, atol=1e-6)


def test_kjt_to_batch_names_bad_input():
    from torchrec import KeyedJaggedTensor

    schema = strategies.tiny_batch().schema
    too_long = KeyedJaggedTensor(keys=["genre", "tags"], values=torch.tensor([0, 1, 2]), lengths=torch.tensor([2, 0, 0, 1, 0, 0]))
    with pytest.raises(BatchValidationError, match="feature 'genre' .*row 0 holds 2 ids; a Categorical is a bag of at most 1 id"):
        kjt_to_batch(too_long, schema)
    out_of_range = KeyedJaggedTensor(keys=["genre", "tags"], values=torch.tensor([0, 9]), lengths=torch.tensor([1, 0, 0, 1, 0, 0]))
    with pytest.raises(BatchValidationError, match="feature 'tags' .*id 9 at value 0 is out of range; expected 0..4"):
        kjt_to_batch(out_of_range, schema)
    with pytest.raises(BatchValidationError, match="the KJT has no key 'item_genre'"):
        kjt_to_batch(out_of_range, schema, prefix="item_")
    with pytest.raises(BatchValidationError, match="feature 'price' is Dense and a KJT holds ids only"):
        kjt_to_batch(batch_to_kjt(batches(0)[1]), ITEMS)
    with pytest.raises(BatchValidationError, match="stride 2 is smaller than a batch of 3 rows"):
        batches_to_kjt([("", strategies.tiny_batch())], stride=2)


# -- the towers ---------------------------------------------------------------------------------


def equal_to_native(device: str) -> None:
    native = native_towers(device=device)
    towers = TorchRecTowers.from_towers(native)
    queries, items, view1, view2, negatives = batches(1, device)
    ours = towers(queries, items, (view1, view2), negatives)
    theirs = (native["query"](queries), native["item"](items), native["item"](view1), native["item"](view2), native["item"](negatives))
    for mine, native_output in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, native_output, rtol=0, atol=1e-6)
    temperature = 0.1
    main, ssl = BatchSoftmaxLoss(temperature=temperature), InfoNCELoss(temperature=temperature)
    ids = items.values["item_id"]
    loss = main(ours[0][:5], ours[1], item_ids=ids) + ssl(ours[2], ours[3])
    expected = main(theirs[0][:5], theirs[1], item_ids=ids) + ssl(theirs[2], theirs[3])
    torch.testing.assert_close(loss, expected, rtol=0, atol=1e-6)


def test_forward_and_loss_equal_the_native_towers_on_the_same_weights():
    equal_to_native("cpu")


@CUDA
def test_forward_and_loss_equal_the_native_towers_on_cuda():
    equal_to_native("cuda")


def test_seeded_towers_equal_native_ones_and_convert_back_with_the_shared_table():
    native = native_towers()
    seeded = TorchRecTowers(QUERIES, ITEMS, CONFIG, shared=SHARED, generator=torch.Generator().manual_seed(3))
    converted = TorchRecTowers.from_towers(native)
    assert converted.state_dict().keys() == seeded.state_dict().keys()
    for name, value in converted.state_dict().items():
        assert torch.equal(value, seeded.state_dict()[name]), name
    back = seeded.to_towers()
    assert back["query"].input_layer.table("history") is back["item"].input_layer.table("item_id")
    for name, value in native.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
    assert [c.feature_names for c in seeded.tables.embedding_bag_configs()] == [
        ["query_user_id"], ["item_item_id", "query_history"], ["item_genre"], ["item_tags"],
    ]


def test_bad_configurations_are_named():
    with pytest.raises(UnknownNameError, match="item feature in shared"):
        TorchRecTowers(QUERIES, ITEMS, CONFIG, shared={"history": "movie_id"})
    with pytest.raises(ConfigError, match="query feature 'user_id' \\(24 ids x 8\\) cannot read item feature 'item_id'"):
        TorchRecTowers(QUERIES, ITEMS, CONFIG, shared={"user_id": "item_id"})
    with pytest.raises(ConfigError, match="from_towers takes nn.ModuleDict"):
        TorchRecTowers.from_towers(nn.ModuleDict({"item": native_towers()["item"]}))
    narrow = TorchRecTowers(QUERIES, ITEMS, TowerConfig(hidden=(), output_dim=4, embedding_dim=6), shared=SHARED)
    with local_process_group(), pytest.raises(ConfigError, match="widths divisible by 4 .*query_user_id \\(6\\)"):
        shard(narrow)
    with pytest.raises(ConfigError, match="shard needs a process group"):
        shard(narrow)


# -- training: the fused optimizer, and sharding over processes ---------------------------------


def score(outputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """A loss that reads every output with its own fixed weights."""
    generator = torch.Generator().manual_seed(11)
    return sum((out * torch.randn(out.shape, generator=generator)).sum() for out in outputs)


def one_fused_step(rank: int, world: int) -> dict[str, torch.Tensor]:
    """One row-wise Adagrad step through the fused kernels, and the update the dense
    gradient of the same loss (autograd summing every use of a row) gives by hand."""
    lr, eps = 0.1, 1e-8
    towers = TorchRecTowers.from_towers(native_towers())
    queries, items, view1, view2, negatives = batches(2)
    loss = score(towers(queries, items, (view1, view2), negatives))
    loss.backward()
    expected = {}
    for name, weight in towers.tables.named_parameters(prefix="tables"):
        grad = weight.grad
        state = grad.square().mean(dim=1, keepdim=True)
        expected[name] = weight.detach() - lr * grad / (state.sqrt() + eps)
    towers.zero_grad()
    model = shard(TorchRecTowers.from_towers(native_towers()), optimizer="rowwise_adagrad", lr=lr, eps=eps)
    loss = score(model(queries, items, (view1, view2), negatives))
    loss.backward()
    state = full_state_dict(model)
    return {name: (state[name], value) for name, value in expected.items()}


def test_the_fused_optimizer_updates_each_row_once_with_its_summed_gradient():
    (result,) = run_ranks(one_fused_step, 1)
    for name, (fused, expected) in result.items():
        torch.testing.assert_close(fused, expected, rtol=0, atol=2e-6, msg=name)


STEPS, MAIN_BATCH, SSL_BATCH = 20, 16, 8


def corpus() -> tuple[FeatureBatch, FeatureBatch, torch.Tensor, torch.Tensor]:
    """Items (row i is item i), users, and 160 (user, item) events."""
    generator = torch.Generator().manual_seed(5)
    items = strategies.random_batch(ITEMS, 40, generator=generator, missing=0.3)
    items = items.evolve(values={**items.values, "item_id": torch.arange(40)}, present=items.present.index_fill(1, torch.tensor([0]), True))
    users = strategies.random_batch(QUERIES, 24, generator=generator, missing=0.3)
    return items, users, torch.randint(24, (160,), generator=generator), torch.randint(40, (160,), generator=generator)


def train(rank: int, world: int, sharding: str) -> dict[str, torch.Tensor]:
    """20 steps of an own loop: batch softmax with logQ and gathered in-batch negatives, plus
    InfoNCE on two masked views, the tables row-wise Adagrad (fused), the rest Adam; each process
    embeds its part of every global batch. Returns the whole state."""
    items, users, event_users, event_items = corpus()
    log_q = torch.log(torch.bincount(event_items, minlength=40).clamp(min=1) / len(event_items)).double()
    towers = TorchRecTowers(QUERIES, ITEMS, CONFIG, shared=SHARED, generator=torch.Generator().manual_seed(7))
    towers.query.double()
    towers.item.double()
    model = shard(towers, optimizer="rowwise_adagrad", lr=0.05, sharding=sharding)
    dense = torch.optim.Adam(dense_parameters(model), lr=0.01)
    augment = TwoViews(pair=MaskFeatures(p=0.4))
    main, ssl = BatchSoftmaxLoss(temperature=0.2, gather=True), InfoNCELoss(temperature=0.2, gather=True)
    for step in range(STEPS):
        generator = torch.Generator().manual_seed(100 + step)  # the same draws on every process
        rows = torch.randperm(len(event_items), generator=generator)[:MAIN_BATCH]
        global_ssl = torch.randperm(40, generator=generator)[:SSL_BATCH]
        views = augment(items.select(global_ssl), generator=generator)
        local, sizes = distributed.shard(rows)
        ssl_local, ssl_sizes = distributed.shard(torch.arange(SSL_BATCH))
        item_ids = event_items[local]
        query, item, z1, z2, _ = model(
            users.select(event_users[local]), items.select(item_ids), tuple(v.select(ssl_local) for v in views),
            stride=MAIN_BATCH // world + 2 * SSL_BATCH // world,
        )
        loss = main(query, item, item_ids=item_ids, log_q=log_q[item_ids], sizes=sizes)
        loss = loss + 0.5 * ssl(z1, z2, item_ids=global_ssl[ssl_local], sizes=ssl_sizes)
        dense.zero_grad()
        loss.backward()
        dense.step()
    return full_state_dict(model)


@pytest.fixture(scope="module")
def alone() -> dict[str, torch.Tensor]:
    (state,) = run_ranks(train, 1, "table_wise")
    return state


@pytest.mark.parametrize("sharding", ["table_wise", "row_wise"])
def test_two_sharded_processes_equal_one_after_twenty_steps(alone, sharding):
    """Tables float32 (FBGEMM has no float64 training kernel), the rest float64: the runs differ
    by float32 rounding in the order the tables' gradients are summed, measured at most 1.2e-7
    (table-wise) and 6e-7 (row-wise) after 20 steps; the tolerance is 2e-6 on every parameter."""
    ranks = run_ranks(train, 2, sharding)
    initial = TorchRecTowers(QUERIES, ITEMS, CONFIG, shared=SHARED, generator=torch.Generator().manual_seed(7)).state_dict()
    for name, value in alone.items():
        assert not torch.equal(value.float(), initial[name].float()), f"{name} did not train"
        for state in ranks:
            torch.testing.assert_close(state[name], value, rtol=0, atol=2e-6, msg=name)


@CUDA
@pytest.mark.parametrize("optimizer", ["sparse_adam", "rowwise_adagrad"])
def test_a_fused_step_on_cuda_updates_the_rows_read_only(optimizer):
    import fbgemm_gpu

    if fbgemm_gpu.__variant__ == "cpu":
        pytest.skip("fbgemm_gpu is the CPU build (fbgemm-gpu-cpu): its kernels do not run on CUDA")
    towers = TorchRecTowers.from_towers(native_towers(device="cuda"))
    before = towers.table("item", "genre").detach().clone()
    with local_process_group("cuda"):
        model = shard(towers, optimizer=optimizer, lr=0.01, weight_decay=0.01, device="cuda")
        queries, items, view1, view2, _ = batches(3, "cuda")
        out = model(queries, items, (view1, view2))
        loss = InfoNCELoss()(out[2], out[3]) + BatchSoftmaxLoss()(out[0][:5], out[1])
        loss.backward()
        after = full_state_dict(model)["tables.embedding_bags.item_genre.weight"]
    read = torch.cat([b.values["genre"][b.present[:, 1]] for b in (items, view1, view2)]).unique()
    changed = (after != before).any(dim=1).nonzero().squeeze(1)
    assert torch.isfinite(loss) and torch.equal(changed, read)


def test_bad_shard_arguments_are_named():
    towers = TorchRecTowers(QUERIES, ITEMS, CONFIG, shared=SHARED)
    with local_process_group():
        with pytest.raises(UnknownNameError, match="sharding 'column_wise'"):
            shard(towers, sharding="column_wise")
        with pytest.raises(UnknownNameError, match="table in sharding 'query_history'"):
            shard(towers, sharding={"query_history": "row_wise"})
        with pytest.raises(UnknownNameError, match="table optimizer 'adam'"):
            shard(towers, optimizer="adam")
        with pytest.raises(ConfigError, match="lr must be a positive number"):
            shard(towers, lr=0)


def test_sparse_adam_needs_cuda():
    towers = TorchRecTowers(QUERIES, ITEMS, CONFIG, shared=SHARED)
    with local_process_group(), pytest.raises(ConfigError, match="FBGEMM's Adam kernel runs on CUDA only"):
        shard(towers, optimizer="sparse_adam")


def test_importing_the_backend_loads_no_torchrec():
    import subprocess
    import sys

    code = "import sys, augkit.torchrec.convert, augkit.torchrec.towers, augkit.torchrec.sharding; print('torchrec' in sys.modules, 'fbgemm_gpu' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]

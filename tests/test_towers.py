"""Tests of augkit.towers: the input layer's defaults and masked means, towers, configs."""

from __future__ import annotations

import json

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from augkit_dropout import ValueDropout
from augkit_mask import MaskFeatures
from hypothesis import given, settings
from torch import nn
from torch.overrides import TorchFunctionMode

from augkit import (
    BatchValidationError,
    Categorical,
    ConfigError,
    Dense,
    FeatureBatch,
    FeatureSchema,
    MultiCategorical,
    TwoViews,
    UnknownNameError,
)
from augkit.towers import InputLayer, QueryTower, Tower

SCHEMA = FeatureSchema(
    [
        Categorical(name="item_id", num_values=30),
        Categorical(name="brand", num_values=5),
        MultiCategorical(name="tags", num_values=9, max_len=4),
        Dense(name="price", dim=3),
    ]
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_batch(size: int, seed: int = 0, schema: FeatureSchema = SCHEMA) -> FeatureBatch:
    """A validated batch with some missing singles and bags, and some padding."""
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for spec in schema:
        if isinstance(spec, Categorical):
            ids = rng.integers(0, spec.num_values, size)
            values[spec.name] = np.where(rng.random(size) < 0.2, -1, ids)
        elif isinstance(spec, MultiCategorical):
            ids = rng.integers(0, spec.num_values, (size, spec.max_len))
            values[spec.name] = np.where(rng.random((size, spec.max_len)) < 0.4, -1, ids)
        else:
            values[spec.name] = rng.normal(size=(size, spec.dim))  # float64: the layer casts
    return FeatureBatch.from_tensors(schema, values)


@st.composite
def masked_batches(draw: st.DrawFn) -> FeatureBatch:
    """A random batch, then random masks: whole features and single bag values."""
    size = draw(st.integers(0, 6))
    batch = _random_batch(size, seed=draw(st.integers(0, 2**16)))
    bits = st.lists(st.booleans(), min_size=size * len(SCHEMA), max_size=size * len(SCHEMA))
    mask = torch.tensor(draw(bits), dtype=torch.bool).reshape(size, len(SCHEMA))
    keep = st.lists(st.booleans(), min_size=size * 4, max_size=size * 4)
    drop = torch.tensor(draw(keep), dtype=torch.bool).reshape(size, 4)
    batch = batch.mask_features(mask)
    return batch.with_kept({"tags": batch.kept["tags"] & drop})


def _reference(layer: InputLayer, batch: FeatureBatch) -> torch.Tensor:
    """The input layer computed one example and one value at a time."""
    rows = []
    for b in range(batch.batch_size):
        blocks = []
        for j, spec in enumerate(layer.schema):
            present = bool(batch.present[b, j])
            default = layer.default(spec.name)
            value = batch.values[spec.name][b]
            if isinstance(spec, Categorical):
                blocks.append(layer.table(spec.name).weight[int(value)] if present else default)
            elif isinstance(spec, MultiCategorical):
                kept = [int(v) for v, k in zip(value, batch.kept[spec.name][b]) if k and present]
                table = layer.table(spec.name).weight
                blocks.append(sum(table[i] for i in kept) / len(kept) if kept else default)
            else:
                projection = layer.encoders[j].projection
                blocks.append(projection(value.float()) if present else default)
        rows.append(torch.cat(blocks))
    return torch.stack(rows) if rows else torch.zeros(0, layer.output_dim)


@settings(max_examples=40, deadline=None)
@given(batch=masked_batches())
def test_input_layer_matches_a_loop_reference(batch: FeatureBatch) -> None:
    layer = InputLayer(SCHEMA, 4, embedding_dims={"brand": 2}, generator=_generator())
    with torch.no_grad():
        out = layer(batch)
        expected = _reference(layer, batch)
    assert out.shape == (batch.batch_size, 4 + 2 + 4 + 4)
    torch.testing.assert_close(out, expected)


def _block(layer: InputLayer, out: torch.Tensor, name: str) -> torch.Tensor:
    j = layer.schema.index(name)
    start = sum(layer.dims[:j])
    return out[:, start : start + layer.dims[j]]


def test_masked_feature_reads_exactly_its_default_embedding() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    batch = _random_batch(8)
    masked = MaskFeatures(p=1.0, features=("brand", "tags", "price"))(batch, generator=_generator())
    with torch.no_grad():
        out = layer(masked)
        for name in ("brand", "tags", "price"):
            assert torch.equal(_block(layer, out, name), layer.default(name).expand(8, -1))
        present = batch.is_present("item_id")
        rows = layer.table("item_id").weight[batch.values["item_id"][present]]
        assert torch.equal(_block(layer, out, "item_id")[present], rows)


def test_missing_values_read_the_default_embedding() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    batch = FeatureBatch.from_tensors(
        SCHEMA,
        {
            "item_id": [-1, 3],
            "brand": [2, -1],
            "tags": [[-1, -1], [4, -1]],
            "price": torch.zeros(2, 3),
        },
        present=torch.tensor([[True, True, True, False], [True, True, True, True]]),
    )
    with torch.no_grad():
        out = layer(batch)
        assert torch.equal(_block(layer, out, "item_id")[0], layer.default("item_id"))
        assert torch.equal(_block(layer, out, "brand")[1], layer.default("brand"))
        assert torch.equal(_block(layer, out, "tags")[0], layer.default("tags"))
        assert torch.equal(_block(layer, out, "tags")[1], layer.table("tags").weight[4])
        assert torch.equal(_block(layer, out, "price")[0], layer.default("price"))


def test_bag_with_nothing_kept_reads_the_default_embedding() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    batch = _random_batch(6, seed=3)
    emptied = batch.with_kept({"tags": torch.zeros(6, 4, dtype=torch.bool)})
    with torch.no_grad():
        assert torch.equal(
            _block(layer, layer(emptied), "tags"), layer.default("tags").expand(6, -1)
        )


def test_bag_mean_is_over_kept_values_only() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    batch = FeatureBatch.from_tensors(
        SCHEMA,
        {"item_id": [1], "brand": [1], "tags": [[2, 5, 7, -1]], "price": torch.zeros(1, 3)},
    )
    dropped = batch.with_kept({"tags": torch.tensor([[True, False, True, False]])})
    table = layer.table("tags").weight
    with torch.no_grad():
        torch.testing.assert_close(
            _block(layer, layer(dropped), "tags")[0], (table[2] + table[7]) / 2
        )


def test_dense_default_starts_as_the_projection_of_zeros() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    encoder = layer.encoders[SCHEMA.index("price")]
    assert torch.equal(layer.default("price").detach(), encoder.projection(torch.zeros(3)).detach())


def test_gradients_reach_the_defaults_of_masked_features_only() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    batch = FeatureBatch.from_tensors(
        SCHEMA,
        {"item_id": [1, 2], "brand": [0, 3], "tags": [[1, 2], [3, -1]], "price": torch.ones(2, 3)},
    )
    masked = batch.mask_features(torch.tensor([[True, False, True, True]] * 2))
    (layer(masked) ** 2).sum().backward()
    for name in ("item_id", "tags", "price"):
        assert layer.default(name).grad.abs().sum() > 0, name
    assert torch.count_nonzero(layer.default("brand").grad) == 0
    assert torch.count_nonzero(layer.table("item_id").weight.grad) == 0
    assert torch.count_nonzero(layer.table("tags").weight.grad) == 0
    assert layer.table("brand").weight.grad[[0, 3]].abs().sum() > 0


def test_tower_output_is_unit_norm_and_has_output_dim() -> None:
    tower = Tower(SCHEMA, hidden=(16, 8), output_dim=5, embedding_dim=4, generator=_generator())
    out = tower(_random_batch(7))
    assert out.shape == (7, 5)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(7))
    raw = Tower(
        SCHEMA, hidden=(), output_dim=5, embedding_dim=4, normalize=False, generator=_generator()
    )
    assert len(raw.hidden_layers) == 0
    assert not torch.allclose(raw(_random_batch(7)).norm(dim=1), torch.ones(7))


def test_two_views_go_through_one_tower_with_shared_parameters() -> None:
    tower = Tower(SCHEMA, hidden=(16,), output_dim=8, embedding_dim=4, generator=_generator())
    batch = _random_batch(16, seed=1)
    pipeline = TwoViews(pair=MaskFeatures(p=0.5), each=[ValueDropout(rate=0.3)])
    first, second = pipeline(batch, generator=_generator(2))
    assert not torch.equal(first.present, second.present)
    main, z1, z2 = tower(batch), tower(first), tower(second)
    assert torch.equal(main, tower(batch))
    (z1 * z2).sum().backward()  # the SSL loss alone trains every parameter the main task uses
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.parameters())


def test_schema_mismatch_names_the_differing_features() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    other = FeatureSchema(
        [
            Categorical(name="item_id", num_values=30),
            Categorical(name="brand", num_values=6),
            MultiCategorical(name="tags", num_values=9, max_len=4),
            Dense(name="weight", dim=3),
        ]
    )
    with pytest.raises(BatchValidationError, match="lacks 'price'") as error:
        layer(_random_batch(3, schema=other))
    assert "'weight'" in str(error.value) and "'brand'" in str(error.value)
    reordered = FeatureSchema([SCHEMA["brand"], SCHEMA["item_id"], SCHEMA["tags"], SCHEMA["price"]])
    with pytest.raises(BatchValidationError, match="another order"):
        layer(_random_batch(3, schema=reordered))


def test_batch_on_another_device_is_an_error() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    with pytest.raises(BatchValidationError, match="batch is on meta.*parameters on cpu"):
        layer(_random_batch(3).to("meta"))


def test_out_of_range_id_names_the_feature() -> None:
    layer = InputLayer(SCHEMA, 4, generator=_generator())
    batch = _random_batch(3)
    tags = batch.values["tags"].clone()
    tags[1, 0] = SCHEMA["tags"].padding_id  # a reserved id where the value is marked kept
    kept = batch.kept["tags"].clone()
    kept[1, 0] = True
    present = batch.present.clone()
    present[1, SCHEMA.index("tags")] = True
    bad = FeatureBatch(SCHEMA, {**batch.values, "tags": tags}, present, {"tags": kept})
    with pytest.raises(BatchValidationError, match=r"feature 'tags'.*0\.\.8"):
        layer(bad)
    ids = batch.values["item_id"].clone()
    ids[0] = 30
    present = batch.present.clone()
    present[0, 0] = True
    with pytest.raises(BatchValidationError, match="feature 'item_id'"):
        layer(batch.evolve(values={**batch.values, "item_id": ids}, present=present))


def test_embedding_dims_override_and_errors() -> None:
    layer = InputLayer(SCHEMA, 8, embedding_dims={"price": 2, "tags": 3}, generator=_generator())
    assert layer.dims == (8, 8, 3, 2) and layer.output_dim == 21
    assert layer(_random_batch(2)).shape == (2, 21)
    with pytest.raises(UnknownNameError, match="'prices'.*did you mean 'price'"):
        InputLayer(SCHEMA, embedding_dims={"prices": 2})
    with pytest.raises(ConfigError, match=r"embedding_dims\['tags'\] must be a positive int"):
        InputLayer(SCHEMA, embedding_dims={"tags": 0})
    with pytest.raises(ConfigError, match="embedding_dim must be a positive int"):
        InputLayer(SCHEMA, embedding_dim=True)


QUERY_SCHEMA = FeatureSchema(
    [
        Categorical(name="age", num_values=4),
        MultiCategorical(name="history", num_values=30, max_len=5),
    ]
)


def _query_batch(size: int) -> FeatureBatch:
    return _random_batch(size, seed=7, schema=QUERY_SCHEMA)


def test_query_tower_shares_the_item_table() -> None:
    items = Tower(SCHEMA, hidden=(8,), output_dim=4, embedding_dim=4, generator=_generator())
    table = items.input_layer.table("item_id")
    queries = QueryTower(
        QUERY_SCHEMA,
        hidden=(8,),
        output_dim=4,
        embedding_dim=4,
        tables={"history": table},
        generator=_generator(1),
    )
    assert queries.input_layer.table("history") is table
    assert queries.input_layer.default("history") is not items.input_layer.default("item_id")
    assert queries.input_layer.shared_tables == ("history",)
    queries(_query_batch(6)).sum().backward()
    assert table.weight.grad.abs().sum() > 0
    config = queries.to_config()
    assert config["shared_tables"] == ["history"]
    with pytest.raises(ConfigError, match=r"shares the tables of \['history'\]"):
        Tower.from_config(config)
    rebuilt = Tower.from_config(config, tables={"history": table})
    assert rebuilt.input_layer.table("history") is table


def test_shared_table_errors_name_the_feature() -> None:
    with pytest.raises(ConfigError, match=r"'history'.*\[30, 4\].*\[31, 4\]"):
        InputLayer(QUERY_SCHEMA, 4, tables={"history": nn.Embedding(31, 4)})
    with pytest.raises(ConfigError, match="'history'.*nn.Embedding, got Linear"):
        InputLayer(QUERY_SCHEMA, 4, tables={"history": nn.Linear(4, 30)})
    with pytest.raises(ConfigError, match="'price' is Dense"):
        InputLayer(SCHEMA, 4, tables={"price": nn.Embedding(3, 4)})
    with pytest.raises(UnknownNameError, match="'histroy'.*did you mean 'history'"):
        InputLayer(QUERY_SCHEMA, 4, tables={"histroy": nn.Embedding(30, 4)})
    with pytest.raises(ConfigError, match="'price' is Dense and has no embedding table"):
        InputLayer(SCHEMA, 4).table("price")


def test_config_round_trips_through_json_and_reproduces_the_model() -> None:
    tower = Tower(
        SCHEMA,
        hidden=[16, 8],
        output_dim=6,
        embedding_dim=4,
        dropout=0.2,
        activation="gelu",
        normalize=False,
        embedding_dims={"brand": 2},
        generator=_generator(),
    )
    config = json.loads(json.dumps(tower.to_config()))
    rebuilt = Tower.from_config(config, generator=_generator(5))
    assert rebuilt.to_config() == tower.to_config()
    rebuilt.load_state_dict(tower.state_dict())
    batch = _random_batch(5)
    tower.eval()
    rebuilt.eval()
    torch.testing.assert_close(rebuilt(batch), tower(batch))
    minimal = Tower.from_config({"schema": SCHEMA.to_dict()})
    assert minimal.config.hidden == (256, 128) and minimal.config.output_dim == 64


@pytest.mark.parametrize(
    ("changes", "error", "pattern"),
    [
        ({"hiden": [8]}, UnknownNameError, "'hiden'.*did you mean 'hidden'"),
        ({"hidden": [8, 0]}, ConfigError, "hidden width must be a positive int, got 0"),
        ({"hidden": 8}, ConfigError, "hidden must be a list of positive ints"),
        ({"dropout": 1.0}, ConfigError, r"dropout must be a number in \[0, 1\)"),
        ({"activation": "rellu"}, UnknownNameError, "'rellu'.*did you mean 'relu'"),
        ({"normalize": "yes"}, ConfigError, "normalize must be true or false"),
        ({"output_dim": -1}, ConfigError, "output_dim must be a positive int"),
        ({"shared_tables": "history"}, ConfigError, "'shared_tables' must be a list"),
        ({"schema": None}, ConfigError, "schema dict"),
    ],
)
def test_bad_tower_configs_name_the_key(changes: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        Tower.from_config({"schema": SCHEMA.to_dict(), **changes})


def test_config_without_schema_is_an_error() -> None:
    with pytest.raises(ConfigError, match="needs 'schema'"):
        Tower.from_config({"hidden": [8]})


def test_initialisation_draws_from_the_generator_only() -> None:
    state = torch.random.get_rng_state()
    first = Tower(SCHEMA, hidden=(8,), generator=_generator(3)).state_dict()
    second = Tower(SCHEMA, hidden=(8,), generator=_generator(3)).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(first[key], second[key]) for key in first)
    other = Tower(SCHEMA, hidden=(8,), generator=_generator(4)).state_dict()
    assert not torch.equal(first["output.weight"], other["output.weight"])


def test_dropout_draws_from_the_forward_generator_in_training_only() -> None:
    tower = Tower(SCHEMA, hidden=(32,), output_dim=4, dropout=0.5, generator=_generator())
    batch = _random_batch(4)
    with pytest.raises(TypeError, match=r"dropout=0.5.*torch.Generator"):
        tower(batch)
    torch.testing.assert_close(
        tower(batch, generator=_generator(1)), tower(batch, generator=_generator(1))
    )
    assert not torch.allclose(
        tower(batch, generator=_generator(1)), tower(batch, generator=_generator(2))
    )
    tower.eval()
    torch.testing.assert_close(tower(batch), tower(batch))


def test_runs_on_the_meta_device_without_host_syncs() -> None:
    """A meta tensor has no data: any .item(), bool(tensor) or .cpu() read would fail."""
    tower = Tower(SCHEMA, hidden=(16,), output_dim=8, dropout=0.1, generator=_generator()).to(
        "meta"
    )
    batch = _random_batch(5).to("meta")
    masked = batch.mask_features(torch.ones(5, len(SCHEMA), dtype=torch.bool, device="meta"))
    out = tower(masked, generator=_generator())
    assert out.device.type == "meta" and out.shape == (5, 8)


class _CountCalls(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_no_python_loop_over_the_batch() -> None:
    tower = Tower(SCHEMA, hidden=(16,), output_dim=8, generator=_generator())
    counts = []
    for size in (2, 64):
        batch = _random_batch(size, seed=size)
        with _CountCalls() as mode:
            tower(batch)
        counts.append(mode.calls)
    assert counts[0] == counts[1] > 0

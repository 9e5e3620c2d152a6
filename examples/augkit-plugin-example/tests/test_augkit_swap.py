"""Feature swap: augkit's conformance kit, and properties of its own."""

from __future__ import annotations

import pytest
import torch
from augkit import Categorical, Dense, FeatureBatch, FeatureSchema, UnknownNameError, from_config
from augkit.registry import get_registry
from augkit.testing import EXAMPLE_SCHEMA, parametrize_with_checks, random_batch, strategies
from hypothesis import given, settings
from hypothesis import strategies as st

from augkit_swap import FeatureSwap

SWAPPABLE = ("categorical", "multi_categorical")


@parametrize_with_checks(
    [
        FeatureSwap(),
        FeatureSwap(p=0.5, granularity="batch"),
        FeatureSwap(p=1.0, features=["tags", "genre"]),
    ]
)
def test_conformance(aug: FeatureSwap, check) -> None:
    check(aug)


def test_registered_through_the_entry_point() -> None:
    registration = get_registry().get("augmentation", "swap")
    assert registration.factory is FeatureSwap
    assert (registration.distribution, registration.version) == ("augkit-plugin-example", "0.1.0")
    assert from_config({"name": "swap", "params": {"p": 0.2}}) == FeatureSwap(p=0.2)


# -- properties -----------------------------------------------------------------------------------
def _rows(batch: FeatureBatch, column: int) -> list[tuple]:
    """Per item, everything a swap moves for feature `column`: value(s), present, kept."""
    spec = batch.schema.features[column]
    parts = [batch.values[spec.name].reshape(batch.batch_size, -1), batch.present[:, column : column + 1]]
    if spec.name in batch.kept:
        parts.append(batch.kept[spec.name])
    return [tuple(row) for row in torch.cat([p.long() for p in parts], dim=1).tolist()]


def _swappable(schema: FeatureSchema) -> list[int]:
    return [j for j, spec in enumerate(schema) if not isinstance(spec, Dense)]


schemas_and_batches = strategies.schemas_and_batches(required_kinds=SWAPPABLE, min_size=2)


@settings(max_examples=40, deadline=None)
@given(
    data=schemas_and_batches,
    p=st.floats(0.0, 1.0),
    granularity=st.sampled_from(["example", "batch"]),
    generator=strategies.generators(),
)
def test_swapped_features_come_from_another_item(data, p, granularity, generator) -> None:
    schema, batch = data
    aug = FeatureSwap(p=p, granularity=granularity)
    params = aug.generate_parameters(batch, generator=generator)
    view = aug.apply(batch, params)
    partner = params.partner.tolist()
    assert sorted(partner) == list(range(batch.batch_size))  # a permutation...
    assert all(partner[i] != i for i in range(batch.batch_size))  # ...without fixed points
    if granularity == "batch":
        assert torch.equal(params.swap, params.swap[:1].expand_as(params.swap))
    for j, spec in enumerate(schema):
        before, after = _rows(batch, j), _rows(view, j)
        if j not in _swappable(schema):
            assert after == before and view.values[spec.name] is batch.values[spec.name]
            continue
        for i, row in enumerate(after):
            # every item takes all its swapped features from the one partner item
            expected = before[partner[i]] if bool(params.swap[i, j]) else before[i]
            assert row == expected, (spec.name, i)


@settings(max_examples=25, deadline=None)
@given(
    data=strategies.schemas_and_batches(required_kinds=SWAPPABLE, min_size=0),
    granularity=st.sampled_from(["example", "batch"]),
    generator=strategies.generators(),
)
def test_p_zero_is_the_identity(data, granularity, generator) -> None:
    _, batch = data
    view = FeatureSwap(p=0.0, granularity=granularity)(batch, generator=generator)
    assert torch.equal(view.present, batch.present)
    for name, value in batch.values.items():
        assert torch.equal(view.values[name], value), name
    for name, kept in batch.kept.items():
        assert torch.equal(view.kept[name], kept), name


@settings(max_examples=25, deadline=None)
@given(data=schemas_and_batches, generator=strategies.generators())
def test_p_one_permutes_the_items_of_each_feature(data, generator) -> None:
    schema, batch = data
    view = FeatureSwap(p=1.0, granularity="batch")(batch, generator=generator)
    columns = _swappable(schema)
    for j in columns:
        assert sorted(_rows(view, j)) == sorted(_rows(batch, j)), schema.features[j].name
    # one partner per item: the swapped features move together, as whole rows
    assert _joint_rows(view, columns) == _joint_rows(batch, columns)


def _joint_rows(batch: FeatureBatch, columns: list[int]) -> list[tuple]:
    return sorted(zip(*(_rows(batch, j) for j in columns), strict=True))


def test_example_granularity_draws_per_item() -> None:
    batch = random_batch(EXAMPLE_SCHEMA, 256, generator=torch.Generator().manual_seed(0))
    params = FeatureSwap(p=0.5).generate_parameters(batch, generator=torch.Generator().manual_seed(1))
    swappable = params.swap[:, _swappable(EXAMPLE_SCHEMA)]
    assert bool((swappable != swappable[:1]).any())
    assert not bool(params.swap[:, EXAMPLE_SCHEMA.index("price")].any())


def test_one_item_swaps_with_itself() -> None:
    batch = random_batch(EXAMPLE_SCHEMA, 1, generator=torch.Generator().manual_seed(0))
    view = FeatureSwap(p=1.0)(batch, generator=torch.Generator().manual_seed(0))
    assert all(_rows(view, j) == _rows(batch, j) for j in range(len(EXAMPLE_SCHEMA)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batch_gets_the_cpu_views_from_a_cpu_generator() -> None:
    batch = random_batch(EXAMPLE_SCHEMA, 64, generator=torch.Generator().manual_seed(0))
    aug = FeatureSwap(p=0.5)
    on_cpu = aug(batch, generator=torch.Generator().manual_seed(3))
    on_cuda = aug(batch.to("cuda"), generator=torch.Generator().manual_seed(3))
    assert on_cuda.device.type == "cuda"
    assert torch.equal(on_cuda.present.cpu(), on_cpu.present)
    for name, value in on_cpu.values.items():
        assert torch.equal(on_cuda.values[name].cpu(), value), name


# -- bad parameters -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"p": 1.5}, r"swap: p must be a number in \[0, 1\], got 1.5"),
        ({"p": True}, r"swap: p must be a number in \[0, 1\], got True"),
        ({"granularity": "item"}, "swap: granularity must be one of example, batch, got 'item'"),
        ({"features": []}, "swap: features must be None or distinct feature names"),
        ({"features": ["genre", "genre"]}, "swap: features must be None or distinct feature names"),
    ],
)
def test_rejects_bad_parameters(params, message) -> None:
    with pytest.raises(ValueError, match=message):
        FeatureSwap(**params)


def test_rejects_features_it_cannot_swap() -> None:
    batch = random_batch(EXAMPLE_SCHEMA, 4, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="swap: feature 'price' is Dense"):
        FeatureSwap(features=["genre", "price"])(batch, generator=generator)
    with pytest.raises(UnknownNameError, match="unknown feature 'genres'; did you mean 'genre'"):
        FeatureSwap(features=["genres"])(batch, generator=generator)
    dense_only = FeatureSchema([Dense(name="price", dim=2)])
    dense_batch = FeatureBatch.from_tensors(dense_only, {"price": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="no categorical or multi-categorical feature to swap"):
        FeatureSwap()(dense_batch, generator=generator)
    single = FeatureSchema([Categorical(name="genre", num_values=3), Dense(name="price", dim=2)])
    assert FeatureSwap().columns(single) == (0,)


# -- the loss and the estimator ---------------------------------------------------------------------
def test_margin_softmax_without_margin_is_the_plain_in_batch_softmax() -> None:
    from augkit_swap import MarginSoftmaxLoss

    generator = torch.Generator().manual_seed(0)
    query, item = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    expected = torch.nn.functional.cross_entropy(query @ item.T / 0.05, torch.arange(6))
    assert torch.allclose(MarginSoftmaxLoss(margin=0.0)(query, item), expected)
    assert MarginSoftmaxLoss(margin=0.5)(query, item) > expected  # the margin lowers the positive
    ids = torch.tensor([0, 1, 2, 3, 4, 0])  # row 0's item again in column 5: not a negative
    plain = MarginSoftmaxLoss(margin=0.0, temperature=1.0)
    assert plain(query, item, item_ids=ids) < plain(query, item, item_ids=torch.arange(6))
    with pytest.raises(ValueError, match="margin_softmax: margin"):
        MarginSoftmaxLoss(margin=-1.0)


def test_decayed_count_weighs_recent_steps_most() -> None:
    from augkit_swap import DecayedCountFrequency

    estimator = DecayedCountFrequency(num_items=3, decay=0.5, smoothing=1.0)
    estimator.update(torch.tensor([0, 0]))
    estimator.update(torch.tensor([1]))
    assert torch.allclose(estimator.counts, torch.tensor([1.0, 1.0, 0.0]))
    expected = torch.log(torch.tensor([2.0, 2.0, 1.0]) / 5.0)
    assert torch.allclose(estimator.log_prob(torch.arange(3)), expected)
    with pytest.raises(ValueError, match="ids must be in 0..2"):
        estimator.update(torch.tensor([3]))

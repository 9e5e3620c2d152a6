"""Correlated feature masking (augkit_cfm.cfm)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import augkit
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
from augkit_cfm import CorrelatedFeatureMasking, MutualInformation, compute_mutual_information

SETTINGS = settings(max_examples=30, deadline=None)


def make_mi(matrix) -> MutualInformation:
    names = tuple(f"f{i}" for i in range(len(matrix)))
    return MutualInformation(names=names, matrix=matrix, fingerprints={n: "0" for n in names})


@st.composite
def mi_matrices(draw):
    """Symmetric, non-negative [k, k] matrices with frequent ties (values from a small set)."""
    k = draw(st.integers(2, 6))
    upper = draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]), min_size=k * k, max_size=k * k))
    matrix = np.triu(np.array(upper).reshape(k, k))
    return make_mi(matrix + np.triu(matrix, 1).T)


@st.composite
def cases(draw):
    """(cfm, batch): the MI's features sit in a schema with a Dense and an extra feature."""
    mi = draw(mi_matrices())
    k = len(mi.names)
    n_correlates = draw(st.none() | st.integers(0, k + 1))
    granularity = draw(st.sampled_from(["batch", "example"]))
    cfm = CorrelatedFeatureMasking(mi=mi, n_correlates=n_correlates, granularity=granularity)
    size = draw(st.integers(1, 8))
    specs = [Categorical(name=n, num_values=3) for n in mi.names]
    specs[-1] = MultiCategorical(name=mi.names[-1], num_values=3, max_len=2)
    specs[1:1] = [Dense(name="price", dim=2), Categorical(name="extra", num_values=2)]
    order = draw(st.permutations(range(len(specs))))
    schema = FeatureSchema([specs[i] for i in order])
    values = {
        s.name: torch.randint(3, (size, 2))
        if isinstance(s, MultiCategorical)
        else torch.randint(2 if s.name == "extra" else 3, (size,))
        for s in schema
        if not isinstance(s, Dense)
    }
    values["price"] = torch.randn(size, 2)
    return cfm, FeatureBatch.from_tensors(schema, values)


def reference_masked(mi: MutualInformation, seed: int, n: int) -> set[str]:
    """Seed plus its n others of largest MI, ties to the earlier feature."""
    others = sorted((j for j in range(len(mi.names)) if j != seed), key=lambda j: (-mi.matrix[seed, j], j))
    return {mi.names[seed], *(mi.names[j] for j in others[:n])}


def masked_names(view: FeatureBatch, row: int) -> set[str]:
    return {name for j, name in enumerate(view.schema.names) if not bool(view.present[row, j])}


@given(cases(), st.integers(0, 2**31))
@SETTINGS
def test_views_mask_the_seed_with_its_top_correlates_and_the_complement(case, seed):
    cfm, batch = case
    k = len(cfm.mi.names)
    n = min(k // 2 if cfm.n_correlates is None else cfm.n_correlates, k - 1)
    seeds = cfm.generate_parameters(batch, generator=torch.Generator().manual_seed(seed))
    assert seeds.dtype == torch.int64 and seeds.shape == (batch.batch_size,)
    first, second = cfm.apply(batch, seeds)
    every = set(cfm.mi.names)
    for row, s in enumerate(seeds.tolist()):
        expected = reference_masked(cfm.mi, s, n)
        assert masked_names(first, row) == expected
        assert cfm.mi.names[s] in masked_names(first, row)
        assert masked_names(second, row) == every - expected
        assert masked_names(first, row).isdisjoint(masked_names(second, row))
        assert masked_names(first, row) | masked_names(second, row) == every


@given(cases(), st.integers(0, 2**31))
@SETTINGS
def test_views_keep_shapes_share_values_and_leave_the_input_alone(case, seed):
    cfm, batch = case
    present, kept = batch.present.clone(), {n: k.clone() for n, k in batch.kept.items()}
    first, second = cfm(batch, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(batch.present, present)
    assert all(torch.equal(batch.kept[n], k) for n, k in kept.items())
    for view in (first, second):
        assert view.schema == batch.schema
        assert view.present.shape == batch.present.shape and view.present.dtype == torch.bool
        assert all(view.values[n] is batch.values[n] for n in batch.schema.names)
        assert all(view.kept[n] is batch.kept[n] for n in batch.kept)
        assert bool(view.present[:, batch.schema.index("price")].all())
        assert bool(view.present[:, batch.schema.index("extra")].all())


@given(cases(), st.integers(0, 2**31))
@SETTINGS
def test_same_generator_seed_gives_the_same_views(case, seed):
    cfm, batch = case
    one = cfm(batch, generator=torch.Generator().manual_seed(seed))
    two = cfm(batch, generator=torch.Generator().manual_seed(seed))
    assert all(torch.equal(a.present, b.present) for a, b in zip(one, two, strict=True))


def test_batch_granularity_draws_one_seed_and_example_granularity_many():
    mi = make_mi(np.arange(36.0).reshape(6, 6) % 5 + np.arange(36.0).reshape(6, 6).T % 5)
    schema = FeatureSchema([Categorical(name=n, num_values=2) for n in mi.names])
    batch = FeatureBatch.from_tensors(schema, {n: torch.zeros(64, dtype=torch.long) for n in mi.names})
    generator = torch.Generator().manual_seed(3)
    seeds = CorrelatedFeatureMasking(mi=mi).generate_parameters(batch, generator=generator)
    assert seeds.unique().numel() == 1
    first, _ = CorrelatedFeatureMasking(mi=mi)(batch, generator=generator)
    assert bool((first.present == first.present[0]).all())
    per_example = CorrelatedFeatureMasking(mi=mi, granularity="example")
    assert per_example.generate_parameters(batch, generator=generator).unique().numel() > 1


def test_seed_is_always_masked_even_when_its_self_mi_is_not_the_largest():
    # Regression: a public implementation ranked the seed's whole MI row and masked the top n,
    # which leaves the seed out when its self-MI is small (a zero diagonal, or a bag feature
    # whose fractional self-MI is below its MI with an id). The seed must always be masked.
    matrix = np.array(
        [[0.0, 3.0, 2.0, 1.0], [3.0, 0.0, 1.0, 2.0], [2.0, 1.0, 0.0, 4.0], [1.0, 2.0, 4.0, 0.0]]
    )
    mi = make_mi(matrix)
    schema = FeatureSchema([Categorical(name=n, num_values=2) for n in mi.names])
    batch = FeatureBatch.from_tensors(schema, {n: torch.zeros(4, dtype=torch.long) for n in mi.names})
    for n_correlates in (None, 0, 1, 3):
        cfm = CorrelatedFeatureMasking(mi=mi, n_correlates=n_correlates, granularity="example")
        first, second = cfm.apply(batch, torch.arange(4))
        for seed, name in enumerate(mi.names):
            assert name in masked_names(first, seed)
            assert name not in masked_names(second, seed)
    assert CorrelatedFeatureMasking(mi=mi).masked_set("f0") == ("f0", "f1", "f2")


def test_masked_sets_on_movielens_shaped_data_include_the_seed():
    schema = FeatureSchema(
        [
            Categorical(name="item_id", num_values=6),
            MultiCategorical(name="tags", num_values=4, max_len=3),
            Categorical(name="year", num_values=3),
        ]
    )
    corpus = FeatureBatch.from_tensors(
        schema,
        {
            "item_id": torch.arange(6),
            "tags": [[0, 1, 2], [1, 2, 3], [0, 3, -1], [0, 1, 2], [2, 3, -1], [1, -1, -1]],
            "year": [0, 1, 2, 0, 1, 2],
        },
    )
    mi = compute_mutual_information(corpus)
    assert mi["tags", "tags"] < mi["item_id", "tags"]  # why the bug bites on real data
    cfm = CorrelatedFeatureMasking(mi=mi, n_correlates=1)
    assert cfm.masked_set("tags") == ("tags", "item_id")


def test_n_correlates_is_clamped_to_the_other_features():
    cfm = CorrelatedFeatureMasking(mi=make_mi(np.ones((3, 3))), n_correlates=10)
    assert cfm.correlates == 2
    assert set(cfm.masked_set("f1")) == {"f0", "f1", "f2"}
    assert CorrelatedFeatureMasking(mi=make_mi(np.ones((5, 5)))).correlates == 2


@given(mi_matrices(), st.none() | st.integers(0, 6), st.sampled_from(["batch", "example"]))
@settings(max_examples=20, deadline=None)
def test_config_round_trips_exactly_through_from_config(mi, n_correlates, granularity):
    cfm = CorrelatedFeatureMasking(mi=mi, n_correlates=n_correlates, granularity=granularity)
    config = json.loads(json.dumps(cfm.to_config()))
    rebuilt = augkit.from_config(config)
    assert rebuilt == cfm
    assert rebuilt.to_config() == cfm.to_config()
    assert config["name"] == "cfm" and config["params"]["mi"]["version"] == 1
    pipeline = TwoViews(pair=cfm)
    assert augkit.from_config(json.loads(json.dumps(pipeline.to_config()))) == pipeline


def test_mi_may_be_given_as_a_dict_or_a_file(tmp_path):
    mi = make_mi(np.array([[1.0, 0.5], [0.5, 1.0]]))
    path = tmp_path / "mi.json"
    mi.save(path)
    assert CorrelatedFeatureMasking(mi=str(path)).mi == mi
    assert CorrelatedFeatureMasking(mi=path).mi == mi
    assert CorrelatedFeatureMasking(mi=mi.to_dict()).mi == mi
    with pytest.raises(ConfigError, match="absent.json"):
        CorrelatedFeatureMasking(mi=str(tmp_path / "absent.json"))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_correlates": -1}, ValueError, "n_correlates must be None or a non-negative int"),
        ({"n_correlates": True}, ValueError, "n_correlates"),
        ({"n_correlates": 1.5}, ValueError, "n_correlates"),
        ({"granularity": "item"}, ValueError, "granularity must be one of"),
        ({"mi": make_mi(np.ones((1, 1)))}, ValueError, "at least 2 features"),
        ({"mi": 3}, TypeError, "mi must be a MutualInformation"),
        ({"mi": {"version": 1}}, ConfigError, "lacks key"),
    ],
)
def test_bad_parameters_are_rejected(kwargs, error, message):
    arguments = {"mi": make_mi(np.ones((3, 3))), **kwargs}
    with pytest.raises(error, match=message):
        CorrelatedFeatureMasking(**arguments)


def test_unknown_config_parameter_is_named():
    config = CorrelatedFeatureMasking(mi=make_mi(np.ones((2, 2)))).to_config()
    config["params"]["n_corelates"] = 1
    with pytest.raises(UnknownNameError, match="did you mean 'n_correlates'"):
        augkit.from_config(config)


def test_a_batch_without_the_mi_features_is_rejected_naming_them():
    cfm = CorrelatedFeatureMasking(mi=make_mi(np.ones((3, 3))))
    schema = FeatureSchema([Categorical(name="f1", num_values=2), Categorical(name="g", num_values=2)])
    batch = FeatureBatch.from_tensors(schema, {"f1": [0, 1], "g": [1, 0]})
    with pytest.raises(BatchValidationError, match="lacks feature\\(s\\) 'f0', 'f2'"):
        cfm(batch, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="torch.Generator"):
        cfm(batch, generator=0)


def test_cfm_is_registered_by_the_plugin():
    registration = augkit.get_registry().get("augmentation", "cfm")
    assert registration.factory is CorrelatedFeatureMasking
    assert registration.distribution == "augkit"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_batch_device():
    mi = make_mi(np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.1], [0.2, 0.1, 1.0]]))
    schema = FeatureSchema([Categorical(name=n, num_values=2) for n in mi.names])
    batch = FeatureBatch.from_tensors(schema, {n: torch.zeros(5, dtype=torch.long) for n in mi.names})
    cfm = CorrelatedFeatureMasking(mi=mi, granularity="example")
    cpu = cfm(batch, generator=torch.Generator().manual_seed(1))
    cuda = cfm(batch.to("cuda"), generator=torch.Generator().manual_seed(1))
    for a, b in zip(cpu, cuda, strict=True):
        assert b.present.device.type == "cuda"
        assert torch.equal(a.present, b.present.cpu())


# -- correlation ranking: raw MI or symmetric uncertainty -------------------------------------


@st.composite
def key_and_duplicate(draw):
    """An MI matrix over ``item_id`` (a key: MI(id, X) = H(X), H(id) = log N large), a seed
    ``f1`` and its near-duplicate ``f2`` (MI close to their entropies, which are close), and
    other features weakly tied to everything."""
    k = draw(st.integers(4, 7))
    entropy = np.array([draw(st.floats(0.5, 3.0)) for _ in range(k)])
    entropy[2] = entropy[1] * draw(st.floats(0.9, 1.1))
    entropy[0] = draw(st.floats(10.0, 14.0)) * entropy[1:].max()
    mi = np.zeros((k, k))
    for a in range(1, k):
        for b in range(a + 1, k):
            mi[a, b] = mi[b, a] = draw(st.floats(0.0, 0.5)) * min(entropy[a], entropy[b])
    mi[1, 2] = mi[2, 1] = (1 - draw(st.floats(0.001, 0.1))) * min(entropy[1], entropy[2])
    mi[0, 1:] = mi[1:, 0] = entropy[1:]
    np.fill_diagonal(mi, entropy)
    names = ("item_id", *(f"f{i}" for i in range(1, k)))
    return MutualInformation(names=names, matrix=mi, fingerprints={n: "0" for n in names})


@SETTINGS
@given(key_and_duplicate())
def test_symmetric_uncertainty_keeps_a_key_from_being_every_seeds_top_correlate(mi):
    raw = CorrelatedFeatureMasking(mi=mi, n_correlates=1)
    su = CorrelatedFeatureMasking(mi=mi, n_correlates=1, correlation="symmetric_uncertainty")
    others = [n for n in mi.names if n != "item_id"]
    # Raw MI: MI(id, X) = H(X) is the most any feature can share with X.
    assert all(raw.masked_set(seed) == (seed, "item_id") for seed in others)
    # SU: the near-duplicate wins, so the key is not every seed's top correlate.
    assert su.masked_set("f1") == ("f1", "f2") and su.masked_set("f2") == ("f2", "f1")
    assert not all(su.masked_set(seed)[1] == "item_id" for seed in others)
    values = mi.symmetric_uncertainty()
    assert np.allclose(values, values.T) and (values >= 0).all() and (values <= 1 + 1e-12).all()
    assert np.allclose(np.diag(values), 1.0)


def test_symmetric_uncertainty_on_computed_mutual_information():
    """A real corpus: item_id (a key), category, a 95%-copy of category, and noise."""
    generator = torch.Generator().manual_seed(0)
    n = 2000
    category = torch.randint(8, (n,), generator=generator)
    copy = torch.where(torch.rand(n, generator=generator) < 0.95, category, torch.randint(8, (n,), generator=generator))
    noise = torch.randint(5, (n,), generator=generator)
    schema = FeatureSchema(
        [
            Categorical(name="item_id", num_values=n),
            Categorical(name="category", num_values=8),
            Categorical(name="copy", num_values=8),
            Categorical(name="noise", num_values=5),
        ]
    )
    corpus = FeatureBatch.from_tensors(
        schema, {"item_id": torch.arange(n), "category": category, "copy": copy, "noise": noise}
    )
    mi = compute_mutual_information(corpus)
    assert mi.top_correlates("category", 1) == ("item_id",)
    assert mi.top_correlates("noise", 1) == ("item_id",)
    assert mi.top_correlates("category", 1, "symmetric_uncertainty") == ("copy",)
    assert mi.top_correlates("copy", 1, "symmetric_uncertainty") == ("category",)
    with pytest.raises(ValueError, match="correlation must be one of mi, symmetric_uncertainty"):
        mi.top_correlates("copy", 1, "pearson")


@given(mi_matrices(), st.sampled_from(["batch", "example"]), st.sampled_from(["mi", "symmetric_uncertainty"]))
@settings(max_examples=20, deadline=None)
def test_correlation_round_trips_through_the_config(mi, granularity, correlation):
    cfm = CorrelatedFeatureMasking(mi=mi, granularity=granularity, correlation=correlation)
    config = json.loads(json.dumps(cfm.to_config()))
    assert augkit.from_config(config) == cfm
    assert ("correlation" in config["params"]) == (correlation != "mi")  # old configs unchanged


def test_bad_correlation_is_rejected():
    with pytest.raises(ValueError, match="cfm: correlation must be one of mi, symmetric_uncertainty, got 'su'"):
        CorrelatedFeatureMasking(mi=make_mi(np.eye(3)), correlation="su")


@pytest.mark.parametrize("granularity", ["batch", "example"])
@pytest.mark.parametrize("correlation", ["mi", "symmetric_uncertainty"])
def test_cfm_passes_the_kits_conformance_checks(granularity, correlation):
    from augkit.testing import EXAMPLE_SCHEMA, check_augmentation, random_batch

    names = ("genre", "tags", "year", "actors")
    corpus = random_batch(EXAMPLE_SCHEMA, 200, generator=torch.Generator().manual_seed(1))
    mi = compute_mutual_information(corpus, features=names)
    cfm = CorrelatedFeatureMasking(mi=mi, granularity=granularity, correlation=correlation)
    check_augmentation(cfm, EXAMPLE_SCHEMA)


# -- granularity: RFM (complementary) and CFM both split per example or per batch ---------------


@pytest.mark.parametrize("granularity", ["batch", "example"])
def test_rfm_and_cfm_both_offer_both_granularities(granularity):
    from augkit.testing import EXAMPLE_SCHEMA, check_granularity, random_batch
    from augkit_complementary import ComplementaryMasking

    names = ("genre", "tags", "year", "actors")
    batch = random_batch(EXAMPLE_SCHEMA, 64, generator=torch.Generator().manual_seed(2))
    mi = compute_mutual_information(batch, features=names)
    for aug in (
        ComplementaryMasking(features=names, granularity=granularity),
        CorrelatedFeatureMasking(mi=mi, granularity=granularity),
    ):
        assert aug.granularity == granularity
        check_granularity(aug, batch)
        params = aug.generate_parameters(batch, generator=torch.Generator().manual_seed(3))
        distinct = torch.unique(params, dim=0).shape[0]
        if granularity == "batch":
            assert distinct == 1  # one split for the whole batch
        else:
            assert distinct > 1  # 64 examples, several splits

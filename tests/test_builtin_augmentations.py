"""Properties of the built-in augmentations (mask, dropout, complementary) and the conformance
kit run over every built-in, cfm included."""

from __future__ import annotations

import math
import re

import pytest
import torch
from augkit_cfm import CorrelatedFeatureMasking, compute_mutual_information
from augkit_complementary import ComplementaryMasking
from augkit_dropout import ValueDropout
from augkit_mask import MaskFeatures
from hypothesis import given, settings
from hypothesis import strategies as st

from augkit import from_config
from augkit.batch import FeatureBatch
from augkit.compose import Sequential, TwoViews
from augkit.errors import UnknownNameError
from augkit.schema import Categorical, FeatureSchema, MultiCategorical
from augkit.testing import (
    EXAMPLE_SCHEMA,
    check_granularity,
    check_ids_in_range,
    check_input_not_mutated,
    check_mask_contract,
    check_no_host_sync,
    check_reproducible,
    check_views_structure,
    parametrize_with_checks,
    random_batch,
    schemas,
    schemas_and_batches,
    seeds,
)

PROPERTY = settings(max_examples=40, deadline=None)

# -- strategies of built-in augmentations for a schema --------------------------------------------


def subsets(names: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...] | None]:
    """None (every eligible feature) or a non-empty subset of `names`, in any order."""
    if not names:
        return st.none()
    return st.none() | st.lists(st.sampled_from(names), min_size=1, unique=True).map(tuple)


granularities = st.sampled_from(("example", "batch"))


@st.composite
def masks(draw: st.DrawFn, schema: FeatureSchema, *, by_count: bool | None = None) -> MaskFeatures:
    """Masks by probability ``p`` or by count ``n`` (either, unless `by_count` says which)."""
    features = draw(subsets(schema.names))
    granularity = draw(granularities)
    if by_count is None:
        by_count = draw(st.booleans())
    if by_count:
        k = len(schema) if features is None else len(features)
        return MaskFeatures(n=draw(st.integers(0, k)), features=features, granularity=granularity)
    return MaskFeatures(p=draw(st.floats(0, 1)), features=features, granularity=granularity)


@st.composite
def dropouts(draw: st.DrawFn, schema: FeatureSchema) -> ValueDropout:
    return ValueDropout(
        rate=draw(st.floats(0, 1)),
        features=draw(subsets(schema.multi_valued)),
        granularity=draw(granularities),
    )


@st.composite
def complementaries(draw: st.DrawFn, schema: FeatureSchema) -> ComplementaryMasking:
    return ComplementaryMasking(
        features=draw(subsets(schema.names)), granularity=draw(granularities)
    )


def with_aug(make, **schema_options) -> st.SearchStrategy:
    """``(batch, augmentation)`` with the augmentation drawn for the batch's schema."""
    return schemas_and_batches(**schema_options).flatmap(
        lambda pair: st.tuples(st.just(pair[1]), make(pair[0]))
    )


def views_of(aug, batch: FeatureBatch, seed: int) -> tuple[FeatureBatch, ...]:
    out = aug(batch, generator=torch.Generator().manual_seed(seed))
    return out if isinstance(out, tuple) else (out,)


def columns(schema: FeatureSchema, features: tuple[str, ...] | None) -> torch.Tensor:
    """``BoolTensor[k]``: which schema columns `features` names (all when None)."""
    chosen = torch.zeros(len(schema), dtype=torch.bool)
    chosen[list(schema.indices(features))] = True
    return chosen


# -- every built-in: the kit's contracts on drawn schemas and batches ----------------------------

CONTRACTS = (
    check_views_structure,
    check_ids_in_range,
    check_input_not_mutated,
    check_reproducible,
    check_mask_contract,
    check_no_host_sync,
)


@PROPERTY
@given(
    st.one_of(
        with_aug(masks, min_size=0),
        with_aug(complementaries, min_size=0),
        with_aug(dropouts, required_kinds=("multi_categorical",), min_size=0),
    ),
    seeds(),
)
def test_builtins_keep_structure_never_mutate_and_reproduce_from_the_seed(case, seed: int) -> None:
    """Empty batches included."""
    batch, aug = case
    for check in CONTRACTS:
        check(aug, batch, generator_seed=seed)


# -- mask ---------------------------------------------------------------------------------------------


@PROPERTY
@given(schemas_and_batches(), st.data(), seeds())
def test_mask_with_p_zero_and_dropout_with_rate_zero_leave_masks_alone(
    case, data: st.DataObject, seed: int
) -> None:
    schema, batch = case
    augs = [
        MaskFeatures(
            p=0.0, features=data.draw(subsets(schema.names)), granularity=data.draw(granularities)
        )
    ]
    if schema.multi_valued:
        augs.append(ValueDropout(rate=0.0, granularity=data.draw(granularities)))
    for aug in augs:
        (view,) = views_of(aug, batch, seed)
        assert torch.equal(view.present, batch.present), aug
        for name in schema.multi_valued:
            assert torch.equal(view.kept[name], batch.kept[name]), (aug, name)


@PROPERTY
@given(st.one_of(with_aug(masks), with_aug(complementaries)), seeds())
def test_masked_features_read_as_default_ids(case, seed: int) -> None:
    batch, aug = case
    for view in views_of(aug, batch, seed):
        tensors = view.to_tensors()
        for column, spec in enumerate(view.schema):
            masked = ~view.present[:, column]
            read = tensors[spec.name][masked]
            if isinstance(spec, Categorical):
                assert (read == spec.default_id).all(), spec.name
            elif isinstance(spec, MultiCategorical):
                assert (read[:, 0] == spec.default_id).all(), spec.name
                assert (read[:, 1:] == spec.padding_id).all(), spec.name
            else:
                assert (read == 0).all(), spec.name


@PROPERTY
@given(with_aug(lambda schema: masks(schema, by_count=True)), seeds())
def test_mask_with_n_masks_exactly_n_of_the_chosen_features(case, seed: int) -> None:
    batch, aug = case
    params = aug.generate_parameters(batch, generator=torch.Generator().manual_seed(seed))
    chosen = columns(batch.schema, aug.features)
    assert (params[:, chosen].sum(dim=1) == aug.n).all()
    assert not params[:, ~chosen].any()
    (view,) = views_of(aug, batch, seed)
    assert torch.equal(view.present, batch.present & ~params)


@PROPERTY
@given(with_aug(masks), seeds())
def test_mask_changes_only_the_chosen_features(case, seed: int) -> None:
    batch, aug = case
    (view,) = views_of(aug, batch, seed)
    others = ~columns(batch.schema, aug.features)
    assert torch.equal(view.present[:, others], batch.present[:, others])
    for name in batch.schema.multi_valued:
        assert view.kept[name] is batch.kept[name]


def test_mask_with_n_larger_than_the_features_is_an_error() -> None:
    batch = random_batch(EXAMPLE_SCHEMA, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="mask: n=3 exceeds the 2 maskable features"):
        MaskFeatures(n=3, features=("genre", "tags"))(batch, generator=torch.Generator())


# -- complementary ----------------------------------------------------------------------------------


@PROPERTY
@given(with_aug(complementaries), seeds())
def test_complementary_views_are_disjoint_and_cover_the_features(case, seed: int) -> None:
    batch, aug = case
    first, second = views_of(aug, batch, seed)
    chosen = columns(batch.schema, aug.features)
    masked_first = batch.present & ~first.present
    masked_second = batch.present & ~second.present
    assert not (masked_first & masked_second).any()
    assert torch.equal(masked_first | masked_second, batch.present & chosen)
    params = aug.generate_parameters(batch, generator=torch.Generator().manual_seed(seed))
    assert (params.sum(dim=1) == int(chosen.sum()) // 2).all()  # view 1 masks the smaller half


# -- dropout ------------------------------------------------------------------------------------------


@PROPERTY
@given(with_aug(dropouts, required_kinds=("multi_categorical",)), seeds())
def test_dropout_only_drops_values_and_never_empties_a_bag(case, seed: int) -> None:
    batch, aug = case
    (view,) = views_of(aug, batch, seed)
    assert torch.equal(view.present, batch.present)
    targets = batch.schema.multi_valued if aug.features is None else aug.features
    for name in batch.schema.multi_valued:
        before, after = batch.kept[name], view.kept[name]
        if name not in targets:
            assert after is before, name
            continue
        assert not (after & ~before).any(), name
        assert torch.equal(after.any(dim=1), before.any(dim=1)), name


@settings(max_examples=20, deadline=None)
@given(schemas_and_batches(required_kinds=("multi_categorical",)), seeds())
def test_dropout_at_rate_one_keeps_exactly_one_value_of_each_bag(case, seed: int) -> None:
    schema, batch = case
    (view,) = views_of(ValueDropout(rate=1.0), batch, seed)
    for name in schema.multi_valued:
        expected = batch.kept[name].any(dim=1).long()
        assert torch.equal(view.kept[name].sum(dim=1), expected), name


def keep_moments(rate: float, n: int) -> tuple[float, float]:
    """Mean and variance of K, the values a bag of `n` keeps: K = X + [X == 0] with
    X ~ Binomial(n, 1 - rate) (the values whose draw survives) and one rescued value if none
    does. So P(a value is kept) = E[K] / n = (1 - rate) + rate**n / n."""
    rescue = rate**n
    mean = n * (1 - rate) + rescue
    variance = n * rate * (1 - rate) + rescue * (1 - rescue) - 2 * n * (1 - rate) * rescue
    return mean, variance


@settings(max_examples=12, deadline=None)
@given(st.floats(0.05, 0.95), st.integers(1, 5), seeds())
def test_dropout_keeps_each_value_at_the_stated_rate(rate: float, n: int, seed: int) -> None:
    """Each value of a bag of n is kept with P = (1 - rate) + rate**n / n: within 5 standard
    deviations, slot by slot (items are independent) and for the whole bag."""
    items = 4000
    schema = FeatureSchema([MultiCategorical(name="bag", num_values=10, max_len=5)])
    ids = torch.arange(5).expand(items, 5).masked_fill(torch.arange(5) >= n, -1)
    batch = FeatureBatch.from_tensors(schema, {"bag": ids})
    (view,) = views_of(ValueDropout(rate=rate), batch, seed)
    kept = view.kept["bag"].double()
    keep = (1 - rate) + rate**n / n
    slot_tolerance = 5 * math.sqrt(keep * (1 - keep) / items)
    for slot, fraction in enumerate(kept[:, :n].mean(dim=0).tolist()):
        assert abs(fraction - keep) <= slot_tolerance, (slot, fraction, keep)
    mean, variance = keep_moments(rate, n)
    assert mean == pytest.approx(n * keep)
    bag_tolerance = 5 * math.sqrt(variance / items) + 1e-9
    assert abs(float(kept.sum(dim=1).mean()) - mean) <= bag_tolerance


def test_keep_moments_match_a_direct_enumeration() -> None:
    """Exact moments for n = 2: X in {0, 1, 2} with binomial weights, K = max(X, 1)."""
    rate = 0.3
    weights = [rate**2, 2 * rate * (1 - rate), (1 - rate) ** 2]
    mean = sum(w * max(x, 1) for x, w in enumerate(weights))
    second = sum(w * max(x, 1) ** 2 for x, w in enumerate(weights))
    assert keep_moments(rate, 2) == pytest.approx((mean, second - mean**2))


def reference_dropout_kept(before: torch.Tensor, draws: torch.Tensor, rate: float) -> torch.Tensor:
    """The kept mask of `ValueDropout.apply` as first written (any + argmax + scatter + or), the
    reference its faster formula must reproduce bit for bit."""
    after = before & (draws >= rate)
    emptied = before.any(dim=1) & ~after.any(dim=1)
    survivor = torch.where(before, draws, -1.0).argmax(dim=1, keepdim=True)
    rescue = torch.zeros_like(before).scatter_(1, survivor, emptied.unsqueeze(1))
    return after | rescue


# Draw values that make ties and draws equal to the rate likely (the first largest draw must
# stay on ties, and a draw equal to the rate is kept).
TIE_DRAWS = (0.0, 0.25, 0.3, 0.5, 0.75, 0.9999999)


@st.composite
def dropout_inputs(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(before, draws, rate)``: rows that are empty, full, a prefix or random; draws uniform,
    from a small set (ties), or one row shared by the batch (granularity "batch")."""
    batch_size = draw(st.integers(0, 40))
    max_len = draw(st.integers(1, 17))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**32 - 1)))
    rows = []
    for _ in range(batch_size):
        kind = draw(st.sampled_from(("empty", "full", "prefix", "random")))
        if kind == "empty":
            rows.append(torch.zeros(max_len, dtype=torch.bool))
        elif kind == "full":
            rows.append(torch.ones(max_len, dtype=torch.bool))
        elif kind == "prefix":
            rows.append(torch.arange(max_len) < draw(st.integers(0, max_len)))
        else:
            rows.append(torch.rand(max_len, generator=generator) < 0.5)
    before = torch.stack(rows) if rows else torch.zeros((0, max_len), dtype=torch.bool)
    mode = draw(st.sampled_from(("uniform", "ties", "batch")))
    if mode == "ties":
        choice = torch.randint(len(TIE_DRAWS), (batch_size, max_len), generator=generator)
        draws = torch.tensor(TIE_DRAWS, dtype=torch.float32)[choice]
    else:
        draws = torch.rand((1 if mode == "batch" else batch_size, max_len), generator=generator)
        draws = draws.expand(batch_size, max_len)
    rate = draw(st.sampled_from((0.0, 0.3, 1.0)) | st.floats(0, 1))
    return before, draws, rate


@settings(max_examples=300, deadline=None)
@given(dropout_inputs())
def test_dropout_kept_is_bit_identical_to_the_reference_formula(case) -> None:
    before, draws, rate = case
    schema = FeatureSchema([MultiCategorical(name="bag", num_values=5, max_len=before.shape[1])])
    batch = random_batch(schema, before.shape[0], generator=torch.Generator().manual_seed(0))
    batch = batch.with_kept({"bag": before})
    kept = ValueDropout(rate=rate).apply(batch, {"bag": draws}).kept["bag"]
    expected = reference_dropout_kept(before, draws, rate)
    assert kept.dtype == expected.dtype == torch.bool
    assert torch.equal(kept, expected)
    assert torch.equal(before, batch.kept["bag"])  # the input mask is not written to


@PROPERTY
@given(with_aug(dropouts, required_kinds=("multi_categorical",)), seeds())
def test_dropout_kept_matches_the_reference_on_drawn_batches(case, seed: int) -> None:
    """The same, through `generate_parameters` on drawn schemas and batches (the real stream)."""
    batch, aug = case
    params = aug.generate_parameters(batch, generator=torch.Generator().manual_seed(seed))
    view = aug.apply(batch, params)
    for name, draws in params.items():
        expected = reference_dropout_kept(batch.kept[name], draws, aug.rate)
        assert torch.equal(view.kept[name], expected), name


@settings(max_examples=15, deadline=None)
@given(schemas_and_batches(kinds=("categorical", "dense")))
def test_dropout_on_a_schema_without_bags_is_an_error(case) -> None:
    schema, batch = case
    with pytest.raises(
        ValueError, match="dropout: the schema has no multi-valued feature"
    ) as raised:
        ValueDropout()(batch, generator=torch.Generator())
    assert ", ".join(schema.names) in str(raised.value)


def test_dropout_of_a_single_valued_or_unknown_feature_is_an_error() -> None:
    batch = random_batch(EXAMPLE_SCHEMA, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="dropout: feature 'genre' is Categorical; value dropout"):
        ValueDropout(features=("tags", "genre"))(batch, generator=torch.Generator())
    with pytest.raises(UnknownNameError, match="unknown feature 'tag'; did you mean 'tags'"):
        ValueDropout(features=("tag",))(batch, generator=torch.Generator())


FEATURE_TAKERS = {
    "mask": lambda features: MaskFeatures(p=0.5, features=features),
    "dropout": lambda features: ValueDropout(features=features),
    "complementary": lambda features: ComplementaryMasking(features=features),
}


@pytest.mark.parametrize("name", FEATURE_TAKERS)
@settings(max_examples=25, deadline=None)
@given(text=st.text(max_size=12))
def test_a_string_of_features_is_rejected_not_split_into_letters(name: str, text: str) -> None:
    with pytest.raises(ValueError) as raised:
        FEATURE_TAKERS[name](text)
    assert str(raised.value) == (
        f"{name}: features must be a list of feature names, got the string {text!r}; "
        f"write [{text!r}]"
    )


@pytest.mark.parametrize("name", FEATURE_TAKERS)
@pytest.mark.parametrize(
    ("features", "message"),
    [
        ({"genre"}, "features must be a list of feature names, got set {'genre'}"),
        (3, "features must be a list of feature names, got int 3"),
        ([], "features must be None or distinct feature names, got ()"),
        (["genre", "genre"], "features must be None or distinct feature names"),
        (["genre", ["tags"]], "features must be None or distinct feature names"),
    ],
)
def test_features_must_be_a_list_of_distinct_names(name: str, features, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(f"{name}: {message}")):
        FEATURE_TAKERS[name](features)


@pytest.mark.parametrize("name", FEATURE_TAKERS)
def test_features_from_a_config_list_become_a_tuple(name: str) -> None:
    params = {"p": 0.5} if name == "mask" else {}
    aug = from_config({"name": name, "params": {**params, "features": ["tags"]}})
    assert aug.features == ("tags",)
    with pytest.raises(ValueError, match=f"^{name}: features must be a list .* the string 'tags'"):
        from_config({"name": name, "params": {**params, "features": "tags"}})


# -- config, granularity, two views -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mask", "dropout", "complementary", "cfm"])
def test_unknown_parameters_are_rejected_by_the_registry(name: str) -> None:
    with pytest.raises(UnknownNameError, match=f"unknown parameter of augmentation '{name}' 'q'"):
        from_config({"name": name, "params": {"q": 0.1}})


@PROPERTY
@given(
    st.one_of(
        with_aug(masks),
        with_aug(complementaries),
        with_aug(dropouts, required_kinds=("multi_categorical",)),
    ),
    seeds(),
)
def test_batch_granularity_draws_one_pattern_for_the_batch(case, seed: int) -> None:
    batch, aug = case
    aug = type(aug)(**{**aug.params(), "granularity": "batch"})
    params = aug.generate_parameters(batch, generator=torch.Generator().manual_seed(seed))
    for tensor in params.values() if isinstance(params, dict) else [params]:
        assert (tensor == tensor[:1]).all()
    check_granularity(aug, batch, generator_seed=seed)


def test_lifted_single_view_augmentation_draws_each_view_independently() -> None:
    """With one feature masked at p = 1/2 in each view, both views mask it a quarter of the time
    (half if the views shared their draws, never if they were complementary)."""
    items = 8000
    schema = FeatureSchema([Categorical(name="genre", num_values=3)])
    batch = FeatureBatch.from_tensors(schema, {"genre": torch.zeros(items, dtype=torch.long)})
    first, second = TwoViews(pair=MaskFeatures(p=0.5))(
        batch, generator=torch.Generator().manual_seed(0)
    )
    both = (~first.present & ~second.present).double().mean()
    assert abs(float(both) - 0.25) <= 5 * math.sqrt(0.25 * 0.75 / items)


def test_dropout_after_a_pair_draws_each_view_independently() -> None:
    """In TwoViews(pair, each=[dropout]) a value survives in both views with P(keep)**2."""
    items, rate, n = 8000, 0.5, 3
    schema = FeatureSchema(
        [
            MultiCategorical(name="tags", num_values=5, max_len=n),
            Categorical(name="genre", num_values=2),
        ]
    )
    batch = FeatureBatch.from_tensors(
        schema,
        {"tags": torch.arange(n).expand(items, n), "genre": torch.zeros(items, dtype=torch.long)},
    )
    pipeline = TwoViews(
        pair=ComplementaryMasking(features=("genre",)), each=[ValueDropout(rate=rate)]
    )
    first, second = pipeline(batch, generator=torch.Generator().manual_seed(0))
    keep = (1 - rate) + rate**n / n
    both = (first.kept["tags"][:, 0] & second.kept["tags"][:, 0]).double().mean()
    assert abs(float(both) - keep**2) <= 5 * math.sqrt(keep**2 * (1 - keep**2) / items)
    assert (
        first.present[:, 1].all() and not second.present[:, 1].any()
    )  # 1 feature: view 2 masks it


# -- the conformance kit over every built-in ----------------------------------------------------------


def _mutual_information():
    corpus = random_batch(EXAMPLE_SCHEMA, 400, generator=torch.Generator().manual_seed(7))
    return compute_mutual_information(corpus)


_MI = _mutual_information()
_GAPPY = random_batch(EXAMPLE_SCHEMA, 64, generator=torch.Generator().manual_seed(1), missing=0.6)

BUILTINS = [
    MaskFeatures(p=0.3),
    MaskFeatures(n=2, granularity="batch"),
    (MaskFeatures(p=0.5, features=("tags", "genre")), _GAPPY),
    ValueDropout(),
    ValueDropout(rate=0.6, features=("actors",), granularity="batch"),
    (ValueDropout(rate=0.9), _GAPPY),
    ComplementaryMasking(),
    ComplementaryMasking(features=("genre", "year", "price"), granularity="batch"),
    CorrelatedFeatureMasking(mi=_MI),
    CorrelatedFeatureMasking(mi=_MI, n_correlates=1, granularity="example"),
    Sequential([MaskFeatures(p=0.2), ValueDropout()]),
    TwoViews(pair=ComplementaryMasking(), each=[ValueDropout()]),
    TwoViews(pair=CorrelatedFeatureMasking(mi=_MI), each=[ValueDropout(rate=0.5)]),
    TwoViews(pair=MaskFeatures(p=0.5)),
]


@parametrize_with_checks(BUILTINS)
def test_builtins_pass_the_conformance_kit(aug, check) -> None:
    check(aug)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@parametrize_with_checks(
    [
        (
            aug,
            random_batch(
                EXAMPLE_SCHEMA, 64, generator=torch.Generator().manual_seed(2), device="cuda"
            ),
        )
        for aug in BUILTINS
    ]
    if torch.cuda.is_available()
    else []
)
def test_builtins_pass_the_conformance_kit_on_cuda(aug, check) -> None:
    check(aug)


@settings(max_examples=10, deadline=None)
@given(schemas(required_kinds=("multi_categorical", "categorical")), seeds())
def test_paper_pipeline_passes_the_kit_on_drawn_schemas(schema: FeatureSchema, seed: int) -> None:
    pipeline = TwoViews(pair=ComplementaryMasking(), each=[ValueDropout()])
    batch = random_batch(schema, 32, generator=torch.Generator().manual_seed(seed))
    for check in CONTRACTS:
        check(pipeline, batch, generator_seed=seed)

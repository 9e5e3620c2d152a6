"""`augkit.testing`: the strategies draw valid data, and each check catches its kind of bug."""

from __future__ import annotations

import random
import re
import textwrap
from typing import ClassVar

import attrs
import numpy as np
import pytest
import torch
from hypothesis import find, given, settings

from augkit.augmentation import Augmentation, PairAugmentation
from augkit.batch import FeatureBatch
from augkit.errors import UnknownNameError
from augkit.random import check_generator, uniform
from augkit.registry import Registry
from augkit.schema import Categorical, Dense, FeatureSchema, MultiCategorical
from augkit.testing import (
    CHECKS,
    EXAMPLE_SCHEMA,
    applicable_checks,
    batches,
    check_augmentation,
    check_config_round_trip,
    check_generate_then_apply,
    check_global_rngs_untouched,
    check_granularity,
    check_ids_in_range,
    check_input_not_mutated,
    check_mask_contract,
    check_no_host_sync,
    check_pair_augmentation,
    check_rejects_missing_generator,
    check_reproducible,
    check_views_structure,
    generators,
    parametrize_with_checks,
    random_batch,
    schemas,
    schemas_and_batches,
    seeds,
)

# -- a correct augmentation, and broken variants of it ---------------------------------------------


@attrs.frozen(kw_only=True)
class HalfMask(Augmentation[torch.Tensor]):
    """Masks each feature with probability ``p``: correct, the base of the broken variants."""

    name: ClassVar[str] = "half_mask"
    p: float = 0.5
    granularity: str = "example"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        draws = uniform(
            batch.batch_size,
            (len(batch.schema),),
            granularity=self.granularity,
            generator=generator,
            device=batch.device,
        )
        return draws < self.p

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        return batch.mask_features(params)


class MutatesInput(HalfMask):
    name: ClassVar[str] = "mutates_input"

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        batch.present.masked_fill_(params, False)  # in place: the caller's batch changes
        return batch.evolve(present=batch.present.clone())


class GlobalRandom(HalfMask):
    name: ClassVar[str] = "global_random"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        return torch.rand(batch.present.shape) < self.p  # ignores `generator`


class ReseedsNumpy(HalfMask):
    """Reproducible, but by reseeding NumPy's global RNG: the caller's stream changes."""

    name: ClassVar[str] = "reseeds_numpy"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        np.random.seed(0)
        draws = torch.from_numpy(np.random.random_sample(tuple(batch.present.shape)))
        return draws.to(batch.device) < self.p


class ReseedsPythonRandom(HalfMask):
    """Reproducible, but shuffles its mask's columns with a reseeded global `random`."""

    name: ClassVar[str] = "reseeds_python_random"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        columns = list(range(len(batch.schema)))
        random.seed(0)
        random.shuffle(columns)
        mask = super().generate_parameters(batch, generator=generator)
        return mask[:, torch.tensor(columns, device=batch.device)]


class ChangesValues(HalfMask):
    """Shifts genre ids without declaring ``changes_values``."""

    name: ClassVar[str] = "changes_values"

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        shifted = (batch.values["genre"] + 1) % EXAMPLE_SCHEMA["genre"].num_values
        return super().apply(batch, params).evolve(values={**batch.values, "genre": shifted})


class DeclaredOutOfRange(ChangesValues):
    """Declares value changes, but writes an id past ``num_values``."""

    name: ClassVar[str] = "declared_out_of_range"
    changes_values: ClassVar[bool] = True

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        wrong = torch.full_like(batch.values["genre"], EXAMPLE_SCHEMA["genre"].num_values + 3)
        return batch.evolve(values={**batch.values, "genre": wrong})


@attrs.frozen(kw_only=True)
class PriceNoise(Augmentation[torch.Tensor]):
    """A correct value-changing augmentation: Gaussian noise on the dense feature ``price``."""

    name: ClassVar[str] = "price_noise"
    changes_values: ClassVar[bool] = True
    scale: float = 0.1
    granularity: str = "example"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        shape = batch.values["price"].shape
        noise = torch.randn(shape, generator=generator, device=generator.device)
        return noise.to(batch.device) * self.scale

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        price = batch.values["price"] + params * batch.is_present("price").unsqueeze(1)
        return batch.evolve(values={**batch.values, "price": price})


class Unmasks(HalfMask):
    name: ClassVar[str] = "unmasks"

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        return batch.evolve(present=batch.present | params)


class EmptiesBags(HalfMask):
    name: ClassVar[str] = "empties_bags"

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        return batch.with_kept({"tags": torch.zeros_like(batch.kept["tags"])})


class DoublePrice(HalfMask):
    """Returns the dense feature as float64 (and declares value changes, to fail one check)."""

    name: ClassVar[str] = "double_price"
    changes_values: ClassVar[bool] = True

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        return batch.evolve(values={**batch.values, "price": batch.values["price"].double()})


class ReadsOnHost(HalfMask):
    name: ClassVar[str] = "reads_on_host"

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        if bool(params.any()):  # a host sync
            return batch.mask_features(params)
        return batch


class AcceptsNoGenerator(HalfMask):
    name: ClassVar[str] = "accepts_no_generator"

    def __call__(
        self, batch: FeatureBatch, *, generator: torch.Generator | None = None
    ) -> FeatureBatch:
        generator = torch.Generator().manual_seed(0) if generator is None else generator
        return super().__call__(batch, generator=generator)


class CallDiffersFromApply(HalfMask):
    name: ClassVar[str] = "call_differs"

    def __call__(self, batch: FeatureBatch, *, generator: torch.Generator) -> FeatureBatch:
        check_generator(generator, "CallDiffersFromApply")
        return self.apply(batch, ~self.generate_parameters(batch, generator=generator))


class ForgetsP(HalfMask):
    """Its config leaves out ``p``, so the rebuilt augmentation masks with the default."""

    name: ClassVar[str] = "forgets_p"

    def params(self) -> dict[str, object]:
        return {"granularity": self.granularity}


class TensorParam(HalfMask):
    """Its config holds a tensor, which no JSON/TOML file can."""

    name: ClassVar[str] = "tensor_param"

    def params(self) -> dict[str, object]:
        return {"p": torch.tensor(self.p)}


class Unregistered(HalfMask):
    name: ClassVar[str] = "unregistered"


@attrs.frozen(kw_only=True)
class LiesBatch(HalfMask):
    """Declares granularity 'batch', draws per example."""

    name: ClassVar[str] = "lies_batch"
    granularity: str = "batch"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        draws = torch.rand(batch.present.shape, generator=generator)
        return draws < self.p


class LiesExample(HalfMask):
    """Declares granularity 'example', draws one pattern per batch."""

    name: ClassVar[str] = "lies_example"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        draws = torch.rand((1, len(batch.schema)), generator=generator)
        return (draws < self.p).expand(batch.batch_size, -1)


@attrs.frozen(kw_only=True)
class SwapHalves(PairAugmentation[torch.Tensor]):
    """A correct pair augmentation: view 1 masks a random half, view 2 the rest."""

    name: ClassVar[str] = "swap_halves"
    granularity: str = "example"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        draws = uniform(
            batch.batch_size,
            (len(batch.schema),),
            granularity=self.granularity,
            generator=generator,
            device=batch.device,
        )
        return draws < 0.5

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> tuple[FeatureBatch, FeatureBatch]:
        return batch.mask_features(params), batch.mask_features(~params)


class OneViewPair(SwapHalves):
    """A pair augmentation that returns a single view."""

    name: ClassVar[str] = "one_view_pair"

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:  # type: ignore[override]
        return batch.mask_features(params)


class SecondViewMutates(SwapHalves):
    """Its second view is built by writing into the input."""

    name: ClassVar[str] = "second_view_mutates"

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> tuple[FeatureBatch, FeatureBatch]:
        first = batch.mask_features(params)
        batch.kept["tags"][:, 1:] = False
        return first, batch


REGISTRY = Registry()
for _cls in (
    HalfMask, MutatesInput, GlobalRandom, ReseedsNumpy, ReseedsPythonRandom, ChangesValues,
    DeclaredOutOfRange, PriceNoise, Unmasks,
    EmptiesBags, DoublePrice, ReadsOnHost, AcceptsNoGenerator, CallDiffersFromApply, ForgetsP,
    TensorParam, LiesBatch, LiesExample, SwapHalves, OneViewPair, SecondViewMutates,
):  # fmt: skip
    REGISTRY.register("augmentation", _cls.name, _cls, distribution="test-kit", version="0")


def fresh_batch() -> FeatureBatch:
    """A new batch per test: some broken augmentations write into theirs."""
    return random_batch(EXAMPLE_SCHEMA, 64, generator=torch.Generator().manual_seed(0))


# -- the correct ones pass everything --------------------------------------------------------------


@pytest.mark.parametrize("aug", [HalfMask(), HalfMask(granularity="batch"), PriceNoise()], ids=repr)
def test_correct_augmentations_pass_every_check(aug: Augmentation) -> None:
    check_augmentation(aug, EXAMPLE_SCHEMA, registry=REGISTRY)


def test_correct_pair_augmentation_passes_every_check() -> None:
    check_pair_augmentation(SwapHalves(), fresh_batch(), registry=REGISTRY)


def test_value_changing_augmentations_skip_only_the_mask_contract() -> None:
    names = [c.__name__ for c in applicable_checks(PriceNoise())]
    assert names == [n for n in CHECKS if n != "check_mask_contract"]
    assert [c.__name__ for c in applicable_checks(HalfMask())] == list(CHECKS)


# -- each broken one fails the right check, with a message naming it ---------------------------------

BROKEN = [
    (MutatesInput(), check_input_not_mutated, "the input batch's present changed in place"),
    (
        SecondViewMutates(),
        check_input_not_mutated,
        "the input batch's kept['tags'] changed in place",
    ),
    (
        GlobalRandom(),
        check_reproducible,
        (
            "two calls with generators seeded 0 gave different present of the view (does it draw from "
            "a global RNG"
        ),
    ),
    (
        GlobalRandom(),
        check_global_rngs_untouched,
        (
            "the call changed the state of the global torch RNG; draw from `generator` only "
            "(e.g. torch.rand(..., generator=generator))"
        ),
    ),
    (
        ReseedsNumpy(),
        check_global_rngs_untouched,
        "the call changed the state of the global NumPy (np.random) RNG; draw from `generator` only",
    ),
    (
        ReseedsPythonRandom(),
        check_global_rngs_untouched,
        "the call changed the state of the global Python `random` RNG; draw from `generator` only",
    ),
    (
        ChangesValues(),
        check_mask_contract,
        (
            "values['genre'] of the view is a new tensor; an augmentation that does not declare "
            "changes_values = True must share the input's value tensors"
        ),
    ),
    (
        DeclaredOutOfRange(),
        check_ids_in_range,
        "values['genre'] of the view holds 8 at (0,), where it is read; expected ids 0..4",
    ),
    (Unmasks(), check_mask_contract, "present of the view goes from False to True at"),
    (EmptiesBags(), check_mask_contract, "the view empties the bag 'tags' of item"),
    (
        DoublePrice(),
        check_views_structure,
        (
            "values['price'] of the view is torch.float64 [64, 2] on cpu; the input's is "
            "torch.float32 [64, 2] on cpu"
        ),
    ),
    (ReadsOnHost(), check_no_host_sync, "it fails on a 'meta' batch"),
    (
        AcceptsNoGenerator(),
        check_rejects_missing_generator,
        "generator=None was accepted; it must raise TypeError",
    ),
    (
        CallDiffersFromApply(),
        check_generate_then_apply,
        "apply(generate_parameters(...)) and calling it differ in present of the view",
    ),
    (
        ForgetsP(p=0.1),
        check_config_round_trip,
        "the augmentation rebuilt from its config gives a different present of the view",
    ),
    (TensorParam(), check_config_round_trip, "to_config() is not JSON-able"),
    (
        Unregistered(),
        check_config_round_trip,
        "from_config(to_config()) raised UnknownNameError: unknown augmentation 'unregistered'",
    ),
    (
        LiesBatch(),
        check_granularity,
        (
            "declares granularity 'batch', but with seed 0 copies of one item differ in present of "
            "the view"
        ),
    ),
    (
        LiesExample(),
        check_granularity,
        "declares granularity 'example', but all 256 copies of one item got one pattern per batch",
    ),
    (
        OneViewPair(),
        check_views_structure,
        "a pair augmentation must return two FeatureBatch views, got FeatureBatch",
    ),
]


@pytest.mark.parametrize(
    ("aug", "check", "message"), BROKEN, ids=[f"{a.name}-{c.__name__}" for a, c, _ in BROKEN]
)
def test_each_check_catches_its_bug_with_a_clear_message(aug, check, message: str) -> None:
    with pytest.raises(AssertionError) as raised:
        check(aug, fresh_batch(), registry=REGISTRY)
    text = str(raised.value)
    assert text.startswith(f"{check.__name__} failed for {aug.name}("), text
    assert message in text, text


@pytest.mark.parametrize(("aug", "check", "message"), BROKEN, ids=[a.name for a, _, _ in BROKEN])
def test_check_augmentation_catches_every_broken_augmentation(aug, check, message: str) -> None:
    with pytest.raises(AssertionError, match=r"^check_\w+ failed for "):
        check_augmentation(aug, fresh_batch(), registry=REGISTRY)


def test_check_pair_augmentation_rejects_a_single_view_augmentation() -> None:
    with pytest.raises(AssertionError) as raised:
        check_pair_augmentation(HalfMask(), fresh_batch(), registry=REGISTRY)
    assert str(raised.value) == (
        "check_pair_augmentation failed for half_mask(p=0.5, granularity='example'): "
        "HalfMask is not a PairAugmentation (nor a TwoViews)"
    )


def test_checks_reject_what_is_not_a_batch_or_schema() -> None:
    with pytest.raises(
        TypeError, match="batch_or_schema must be a FeatureBatch or a FeatureSchema, got dict"
    ):
        check_reproducible(HalfMask(), {"genre": [1]})  # type: ignore[arg-type]


@pytest.mark.parametrize("aug", [ReseedsNumpy(), ReseedsPythonRandom()], ids=repr)
def test_reseeding_a_global_rng_is_reproducible_but_still_caught(aug: Augmentation) -> None:
    check_reproducible(aug, fresh_batch(), registry=REGISTRY)
    with pytest.raises(AssertionError, match=r"^check_global_rngs_untouched failed for reseeds_"):
        check_global_rngs_untouched(aug, fresh_batch(), registry=REGISTRY)


def test_global_rng_check_restores_what_the_augmentation_changed() -> None:
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    expected = (torch.rand(3), np.random.random(3), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    for aug in (GlobalRandom(), ReseedsNumpy(), ReseedsPythonRandom()):
        with pytest.raises(AssertionError):
            check_global_rngs_untouched(aug, fresh_batch())
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.random(3), expected[1])
    assert random.random() == expected[2]


def test_global_rng_check_names_every_state_it_finds_changed() -> None:
    @attrs.frozen(kw_only=True)
    class DrawsEverywhere(HalfMask):
        def generate_parameters(self, batch, *, generator):
            random.random(), np.random.random(), torch.rand(1)
            return super().generate_parameters(batch, generator=generator)

    with pytest.raises(AssertionError) as raised:
        check_global_rngs_untouched(DrawsEverywhere(), fresh_batch())
    assert "the global torch and NumPy (np.random) and Python `random` RNG;" in str(raised.value)


def test_reproducibility_check_restores_the_global_rngs() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    check_reproducible(HalfMask(), EXAMPLE_SCHEMA)
    assert torch.equal(torch.rand(3), expected)


# -- parametrize_with_checks --------------------------------------------------------------------------


@parametrize_with_checks([HalfMask(p=0.3), (SwapHalves(), fresh_batch())], registry=REGISTRY)
def test_parametrize_with_checks_runs_each_check(aug, check) -> None:
    check(aug)


@parametrize_with_checks(
    [AcceptsNoGenerator()],
    expected_failures={"check_rejects_missing_generator": "falls back to a fixed generator"},
    registry=REGISTRY,
)
def test_parametrize_with_checks_expects_listed_failures(aug, check) -> None:
    check(aug)


def test_parametrize_with_checks_ids_and_marks() -> None:
    decorator = parametrize_with_checks(
        [HalfMask(p=0.25), (SwapHalves(), fresh_batch())],
        expected_failures={"check_granularity": "a reason"},
    )
    argnames, cases = decorator.args
    assert argnames == ("aug", "check")
    assert [case.id for case in cases[:2]] == [
        "half_mask(p=0.25, granularity='example')-check_views_structure",
        "half_mask(p=0.25, granularity='example')-check_ids_in_range",
    ]
    assert len(cases) == 2 * len(CHECKS)
    for case in cases:
        xfails = [m for m in case.marks if m.name == "xfail"]
        if case.id.endswith("-check_granularity"):
            assert [m.kwargs for m in xfails] == [
                {"strict": True, "raises": AssertionError, "reason": "a reason"}
            ]
        else:
            assert xfails == []


def test_parametrize_with_checks_rejects_unknown_check_names() -> None:
    with pytest.raises(
        UnknownNameError,
        match="unknown check in expected_failures 'check_reproducable'; did you mean 'check_reproducible'",
    ):
        parametrize_with_checks([HalfMask()], expected_failures={"check_reproducable": "typo"})


def test_expected_failure_that_passes_fails_the_run(pytester: pytest.Pytester) -> None:
    """xfail is strict: a check listed in expected_failures that passes is an error."""
    pytester.makepyfile(
        textwrap.dedent(
            """
            from augkit.testing import parametrize_with_checks
            from augkit_mask import MaskFeatures

            @parametrize_with_checks(
                [MaskFeatures(p=0.5)], expected_failures={"check_reproducible": "it does not fail"}
            )
            def test_mask(aug, check):
                check(aug)
            """
        )
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(CHECKS) - 1, failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*it does not fail*"])


# -- strategies -------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(schemas_and_batches(max_features=5, max_size=8))
def test_batches_are_valid_and_match_their_schema(schema_and_batch) -> None:
    schema, batch = schema_and_batch
    assert batch.schema is schema and 1 <= batch.batch_size <= 8
    for column, spec in enumerate(schema):
        value = batch.values[spec.name]
        present = batch.present[:, column]
        if isinstance(spec, Categorical):
            assert (value[present] < spec.num_values).all() and (value[present] >= 0).all()
        elif isinstance(spec, MultiCategorical):
            kept = batch.kept[spec.name]
            assert torch.equal(value == spec.padding_id, ~kept)
            assert not (present & ~kept.any(dim=1)).any()  # present bags hold values
        else:
            assert (value[~present] == 0).all()


def test_batches_hold_missing_values_partial_and_empty_bags() -> None:
    schema = FeatureSchema(
        [Categorical(name="c", num_values=3), MultiCategorical(name="m", num_values=4, max_len=3)]
    )

    def has(batch: FeatureBatch, what: str) -> bool:
        kept = batch.kept["m"].sum(dim=1)
        found = {
            "missing": not bool(batch.present[:, 0].all()),
            "empty bag": bool((kept == 0).any()),
            "partial bag": bool(((kept > 0) & (kept < 3)).any()),
            "full bag": bool((kept == 3).any()),
        }
        return found[what]

    for what in ("missing", "empty bag", "partial bag", "full bag"):
        find(
            batches(schema),
            lambda batch, what=what: has(batch, what),
            settings=settings(database=None, derandomize=True, max_examples=1000),
        )


@settings(max_examples=30, deadline=None)
@given(
    schemas(
        min_features=2,
        max_features=4,
        kinds=("dense", "categorical"),
        required_kinds=("multi_categorical",),
        max_values=3,
        max_len=2,
        max_dim=2,
    )
)
def test_schemas_respect_their_bounds(schema: FeatureSchema) -> None:
    assert 2 <= len(schema) <= 4 and schema.multi_valued
    for spec in schema:
        if isinstance(spec, Dense):
            assert spec.dim <= 2 and spec.name.startswith("dense")
        else:
            assert spec.num_values <= 3
        if isinstance(spec, MultiCategorical):
            assert spec.max_len <= 2 and spec.name.startswith("bag")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: schemas(min_features=0), "min_features must be an int >= 1, got 0"),
        (lambda: schemas(min_features=5, max_features=3), "min_features=5 exceeds max_features=3"),
        (
            lambda: schemas(kinds=("categorical", "sparse")),
            "kinds must be a sequence of categorical",
        ),
        (lambda: schemas(kinds="dense"), "kinds must be a sequence of categorical"),
        (lambda: schemas(kinds=()), "kinds must name at least one feature kind"),
        (lambda: schemas(max_len=0), "max_len must be a positive int, got 0"),
        (
            lambda: schemas(max_features=1, required_kinds=("dense", "categorical")),
            "required_kinds ['dense', 'categorical'] need more than max_features=1 features",
        ),
        (lambda: batches(EXAMPLE_SCHEMA, min_size=4, max_size=2), "min_size=4 exceeds max_size=2"),
        (
            lambda: random_batch(EXAMPLE_SCHEMA, -1, generator=torch.Generator()),
            "random_batch: batch_size must be an int >= 0, got -1",
        ),
        (
            lambda: random_batch(EXAMPLE_SCHEMA, generator=torch.Generator(), missing=2),
            "random_batch: missing must be a probability in [0, 1], got 2",
        ),
    ],
)
def test_strategy_arguments_are_validated(make, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_batches_needs_a_schema() -> None:
    with pytest.raises(TypeError, match="batches: schema must be a FeatureSchema, got dict"):
        batches({"features": []})  # type: ignore[arg-type]


@settings(max_examples=10, deadline=None)
@given(generators(), seeds())
def test_generators_are_seeded_and_print_as_code(generator: torch.Generator, seed: int) -> None:
    rebuilt = eval(repr(generator), {"torch": torch})  # the repr is the code that rebuilds it
    assert torch.equal(torch.rand(4, generator=generator), torch.rand(4, generator=rebuilt))
    assert 0 <= seed < 2**32


def test_random_batch_is_seeded_and_holds_every_case() -> None:
    def draw(seed: int) -> FeatureBatch:
        return random_batch(EXAMPLE_SCHEMA, 200, generator=torch.Generator().manual_seed(seed))

    a, b, c = draw(3), draw(3), draw(4)
    assert all(torch.equal(a.values[n], b.values[n]) for n in EXAMPLE_SCHEMA.names)
    assert not torch.equal(a.values["genre"], c.values["genre"])
    kept = a.kept["tags"].sum(dim=1)
    assert (kept == 0).any() and ((kept > 0) & (kept < 4)).any() and (kept == 4).any()
    assert not a.present.all() and a.present.any(dim=0).all()


def test_random_batch_without_missing_values_leaves_only_short_bags() -> None:
    batch = random_batch(
        EXAMPLE_SCHEMA, 64, generator=torch.Generator().manual_seed(0), missing=0.0
    )
    for name in ("genre", "year", "price"):
        assert batch.is_present(name).all(), name
    kept = batch.kept["tags"]
    assert torch.equal(kept, kept.cummin(dim=1).values)  # padding only at the end

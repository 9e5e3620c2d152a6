"""`TwoViews`, `Sequential` and the config round trip (dict, JSON, TOML)."""

from __future__ import annotations

import json
import tomllib
from typing import Any, ClassVar

import attrs
import pytest
import torch
from augkit_complementary import ComplementaryMasking
from augkit_dropout import ValueDropout
from augkit_mask import MaskFeatures

from augkit.augmentation import CONFIG_VERSION, Augmentation
from augkit.batch import FeatureBatch
from augkit.compose import Sequential, TwoViews, from_config
from augkit.errors import ConfigError, PluginError, UnknownNameError
from augkit.registry import Registry
from augkit.schema import Categorical, Dense, FeatureSchema, MultiCategorical

SCHEMA = FeatureSchema(
    [
        Categorical(name="genre", num_values=5),
        MultiCategorical(name="tags", num_values=9, max_len=4),
        MultiCategorical(name="actors", num_values=6, max_len=3),
        Dense(name="price", dim=2),
    ]
)


def make_batch(size: int = 64) -> FeatureBatch:
    generator = torch.Generator().manual_seed(123)
    tags = torch.randint(-1, 9, (size, 4), generator=generator)
    tags[:, 0] = torch.randint(0, 9, (size,), generator=generator)  # every bag has a value
    actors = torch.randint(-1, 6, (size, 3), generator=generator)
    actors[:, 0] = torch.randint(0, 6, (size,), generator=generator)
    return FeatureBatch.from_tensors(
        SCHEMA,
        {
            "genre": torch.randint(0, 5, (size,), generator=generator),
            "tags": tags,
            "actors": actors,
            "price": torch.randn(size, 2, generator=generator),
        },
    )


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_same_batch(a: FeatureBatch, b: FeatureBatch) -> None:
    assert torch.equal(a.present, b.present)
    for name in SCHEMA.multi_valued:
        assert torch.equal(a.kept[name], b.kept[name]), name
    for name in SCHEMA.names:
        assert torch.equal(a.values[name], b.values[name]), name


@attrs.frozen
class MaskFirstPresent(Augmentation[torch.Tensor]):
    """Masks, per example, the first feature still present: its parameters depend on the batch."""

    name: ClassVar[str] = "mask_first_present"
    granularity: str = "example"

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> torch.Tensor:
        first = batch.present.long().argmax(dim=1)
        return torch.nn.functional.one_hot(first, len(batch.schema)).bool() & batch.present

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        return batch.mask_features(params)


@attrs.frozen(kw_only=True)
class PrivateField(Augmentation[None]):
    """An augmentation whose attrs field is private (``_scale``, passed as ``scale``)."""

    name: ClassVar[str] = "private_field"
    _scale: float = 1.0
    _calls: int = attrs.field(init=False, default=0)
    granularity: str = "batch"

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> None:
        return None

    def apply(self, batch: FeatureBatch, params: None) -> FeatureBatch:
        return batch


@pytest.fixture(scope="module")
def registry() -> Registry:
    registry = Registry()
    factories: dict[str, Any] = {
        "mask": MaskFeatures,
        "dropout": ValueDropout,
        "complementary": ComplementaryMasking,
        "mask_first_present": MaskFirstPresent,
        "private_field": PrivateField,
        "not_an_augmentation": lambda: 42,
    }
    for name, factory in factories.items():
        registry.register("augmentation", name, factory, distribution="test-dist", version="9.9")
    return registry


# -- TwoViews ------------------------------------------------------------------------------------


def test_two_views_with_a_pair_augmentation_then_dropout_on_each() -> None:
    batch = make_batch()
    pipeline = TwoViews(pair=ComplementaryMasking(), each=[ValueDropout(rate=0.5)])
    first, second = pipeline(batch, generator=seeded())
    masked_first, masked_second = ~first.present, ~second.present
    assert not (masked_first & masked_second).any()
    assert (masked_first | masked_second).all()
    for name in SCHEMA.multi_valued:
        for view in (first, second):
            assert not (view.kept[name] & ~batch.kept[name]).any()  # only drops
            assert view.kept[name].any(dim=1).all()  # never empties a bag
            assert view.values[name] is batch.values[name]  # views share value tensors
        assert not torch.equal(first.kept[name], second.kept[name])


def test_two_views_draws_pair_then_each_in_order() -> None:
    batch = make_batch()
    pair, dropout = ComplementaryMasking(), ValueDropout(rate=0.5)
    first, second = TwoViews(pair=pair, each=[dropout])(batch, generator=seeded(7))
    generator = seeded(7)
    expected_first, expected_second = pair(batch, generator=generator)
    expected_first = dropout(expected_first, generator=generator)
    expected_second = dropout(expected_second, generator=generator)
    assert_same_batch(first, expected_first)
    assert_same_batch(second, expected_second)


def test_two_views_lifts_a_single_view_augmentation_with_independent_randomness() -> None:
    batch = make_batch()
    mask = MaskFeatures(p=0.5)
    first, second = TwoViews(pair=mask)(batch, generator=seeded(3))
    generator = seeded(3)
    assert_same_batch(first, mask(batch, generator=generator))
    assert_same_batch(second, mask(batch, generator=generator))
    assert not torch.equal(first.present, second.present)


def test_two_views_is_reproducible_from_the_seed() -> None:
    batch = make_batch()
    pipeline = TwoViews(pair=MaskFeatures(n=1), each=[ValueDropout()])
    a = pipeline(batch, generator=seeded(11))
    b = pipeline(batch, generator=seeded(11))
    c = pipeline(batch, generator=seeded(12))
    for x, y in zip(a, b, strict=True):
        assert_same_batch(x, y)
    assert not torch.equal(a[0].present, c[0].present)


def test_pipelines_run_on_the_batch_device_without_host_syncs() -> None:
    """A 'meta' batch has no data: any host sync (.item(), bool(tensor)) would raise."""
    batch = make_batch().to("meta")
    pipeline = TwoViews(
        pair=ComplementaryMasking(),
        each=[Sequential([MaskFeatures(p=0.2, granularity="batch"), ValueDropout()])],
    )
    first, second = pipeline(batch, generator=seeded())
    assert first.device.type == "meta" and second.kept["tags"].device.type == "meta"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TwoViews(pair=MaskFeatures(p=0.1), each=[ComplementaryMasking()]),
         "TwoViews.each takes single-view augmentations, got ComplementaryMasking("),
        (lambda: TwoViews(pair=MaskFeatures(p=0.1), each=[MaskFeatures(p=0.1), "dropout"]),
         "TwoViews.each takes single-view augmentations, got 'dropout'"),
        (lambda: TwoViews(pair=MaskFeatures(p=0.1), each=ValueDropout()),
         "TwoViews.each takes a list of single-view augmentations, got ValueDropout("),
        (lambda: TwoViews(pair=TwoViews(pair=MaskFeatures(p=0.1))),
         "TwoViews.pair takes an augmentation, got TwoViews("),
        (lambda: TwoViews(pair="complementary"),
         "TwoViews.pair takes an augmentation, got 'complementary'"),
        (lambda: Sequential([ValueDropout(), ComplementaryMasking()]),
         "Sequential.augmentations takes single-view augmentations, got ComplementaryMasking("),
        (lambda: Sequential(MaskFeatures(p=0.1)),
         "Sequential.augmentations takes a list of single-view augmentations, got MaskFeatures("),
    ],
)
def test_non_augmentations_are_type_errors(make, message: str) -> None:
    with pytest.raises(TypeError) as error:
        make()
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("pipeline", "who"),
    [
        (TwoViews(pair=MaskFeatures(p=0.1)), "TwoViews"),
        (Sequential([ValueDropout()]), "Sequential"),
    ],
)
def test_pipelines_require_a_torch_generator(pipeline, who: str) -> None:
    with pytest.raises(TypeError, match=f"{who}: generator must be a torch.Generator"):
        pipeline(make_batch(), generator=0)


# -- Sequential ------------------------------------------------------------------------------------


def test_sequential_equals_applying_its_steps_in_turn() -> None:
    batch = make_batch()
    mask, dropout = MaskFeatures(p=0.3), ValueDropout(rate=0.4)
    out = Sequential([mask, dropout])(batch, generator=seeded(5))
    generator = seeded(5)
    assert_same_batch(out, dropout(mask(batch, generator=generator), generator=generator))


def test_sequential_parameters_come_from_the_output_of_earlier_steps() -> None:
    batch = make_batch(4)
    pipeline = Sequential([MaskFirstPresent(), MaskFirstPresent()])
    out = pipeline(batch, generator=seeded())
    assert out.present.tolist() == [[False, False, True, True]] * 4
    params = pipeline.generate_parameters(batch, generator=seeded())
    assert_same_batch(pipeline.apply(batch, params), out)


def test_sequential_generate_then_apply_equals_call() -> None:
    batch = make_batch()
    pipeline = Sequential([MaskFeatures(n=2), ValueDropout(), MaskFeatures(p=0.1)])
    params = pipeline.generate_parameters(batch, generator=seeded(9))
    assert len(params) == 3
    assert_same_batch(pipeline.apply(batch, params), pipeline(batch, generator=seeded(9)))


def test_sequential_granularity() -> None:
    batch_wide = MaskFeatures(p=0.1, granularity="batch")
    assert Sequential([batch_wide, ValueDropout(granularity="batch")]).granularity == "batch"
    assert Sequential([batch_wide, ValueDropout()]).granularity == "example"


# -- config round trip ---------------------------------------------------------------------------


def to_toml(config: dict[str, Any]) -> str:
    """A tiny TOML writer (inline tables and arrays) for config dicts."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float, str)):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(f"no TOML for {v!r}")

    return "".join(f"{key} = {value(v)}\n" for key, v in config.items())


def plain_values(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in plain_values(v)]
    if isinstance(tree, list):
        return [leaf for v in tree for leaf in plain_values(v)]
    return [tree]


PIPELINES = [
    pytest.param(MaskFeatures(p=0.25, features=("genre", "tags")), id="mask"),
    pytest.param(ComplementaryMasking(granularity="batch"), id="complementary"),
    pytest.param(Sequential([MaskFeatures(n=1), ValueDropout(rate=0.1)]), id="sequential"),
    pytest.param(Sequential([]), id="empty-sequential"),
    pytest.param(TwoViews(pair=ComplementaryMasking(), each=[ValueDropout(rate=0.3)]), id="paper"),
    pytest.param(TwoViews(pair=MaskFeatures(p=0.5)), id="lifted"),
    pytest.param(
        TwoViews(
            pair=Sequential([MaskFeatures(p=0.1), MaskFirstPresent()]),
            each=[Sequential([ValueDropout(features=("actors",))]), PrivateField(scale=2.0)],
        ),
        id="nested",
    ),
]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_config_round_trips_through_dict_json_and_toml(pipeline, registry: Registry) -> None:
    config = pipeline.to_config()
    assert config["version"] == CONFIG_VERSION
    assert None not in plain_values(config)
    assert from_config(config, registry=registry) == pipeline
    assert from_config(json.loads(json.dumps(config)), registry=registry) == pipeline
    assert tomllib.loads(to_toml(config)) == config
    assert from_config(tomllib.loads(to_toml(config)), registry=registry) == pipeline


def test_config_uses_init_names_of_private_fields(registry: Registry) -> None:
    assert PrivateField(scale=3.0).to_config()["params"] == {"scale": 3.0, "granularity": "batch"}


def test_two_views_config_shape() -> None:
    config = TwoViews(pair=ComplementaryMasking(), each=[ValueDropout()]).to_config()
    assert config == {
        "version": CONFIG_VERSION,
        "name": "two_views",
        "params": {
            "pair": {"version": 1, "name": "complementary", "params": {"granularity": "example"}},
            "each": [
                {"version": 1, "name": "dropout", "params": {"rate": 0.3, "granularity": "example"}}
            ],
        },
    }


def test_from_config_without_version_reads_the_current_one(registry: Registry) -> None:
    config = {"name": "mask", "params": {"p": 0.2}}
    assert from_config(config, registry=registry) == MaskFeatures(p=0.2)
    assert from_config({"name": "dropout"}, registry=registry) == ValueDropout()


def test_from_config_uses_installed_plugins_by_default() -> None:
    config = TwoViews(pair=ComplementaryMasking(), each=[ValueDropout()]).to_config()
    assert from_config(config) == TwoViews(pair=ComplementaryMasking(), each=[ValueDropout()])


PAIR = {"name": "complementary"}


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"version": 2, "name": "mask", "params": {"p": 0.1}}, ConfigError,
         "augmentation config 'mask' has version 2; this augkit reads version 1"),
        ({"name": "two_views", "params": {"pair": {"version": "1", "name": "complementary"}}},
         ConfigError,
         "augmentation config 'complementary' has version '1'; this augkit reads version 1"),
        ({"name": "mask", "parmas": {"p": 0.1}}, UnknownNameError,
         "unknown augmentation config key 'parmas'; did you mean 'params'? "
         "Known: name, params, version."),
        ({"version": 1, "params": {}}, ConfigError,
         "augmentation config {'version': 1, 'params': {}} has no 'name'"),
        (["mask"], ConfigError, "an augmentation config is a dict, got list"),
        ({"name": 3}, ConfigError, "augmentation config 'name' must be a string, got 3"),
        ({"name": "mask", "params": [0.1]}, ConfigError,
         "'params' of augmentation config 'mask' must be a dict, got list"),
        ({"name": "two_views", "params": {"each": []}}, ConfigError,
         "'two_views' needs a 'pair' augmentation config"),
        ({"name": "two_views", "params": {"pair": PAIR, "each": PAIR}}, ConfigError,
         "'each' of 'two_views' must be a list of augmentation configs, got dict"),
        ({"name": "two_views", "params": {"pair": PAIR, "views": []}}, UnknownNameError,
         "unknown parameter of 'two_views' 'views'"),
        ({"name": "sequential", "params": {"augmentations": PAIR}}, ConfigError,
         "'augmentations' of 'sequential' must be a list of augmentation configs, got dict"),
        ({"name": "sequential", "params": {"augmentation": []}}, UnknownNameError,
         "unknown parameter of 'sequential' 'augmentation'; did you mean 'augmentations'?"),
        ({"name": "sequential", "params": {"augmentations": ["mask"]}}, ConfigError,
         "an augmentation config is a dict, got str"),
        ({"name": "two_views", "params": {"pair": PAIR, "each": [{"name": "dropuot"}]}},
         UnknownNameError, "unknown augmentation 'dropuot'; did you mean 'dropout'?"),
        ({"name": "mask", "params": {"probability": 0.1}}, UnknownNameError,
         "unknown parameter of augmentation 'mask' 'probability'"),
        ({"name": "mask", "params": {"p": 0.1, "granularty": "batch"}}, UnknownNameError,
         "unknown parameter of augmentation 'mask' 'granularty'; did you mean 'granularity'?"),
        ({"name": "not_an_augmentation"}, PluginError,
         "augmentation 'not_an_augmentation' from distribution test-dist 9.9 built a int, "
         "not an augkit Augmentation or PairAugmentation"),
        ({"name": "two_views", "params": {"pair": PAIR, "each": [PAIR]}}, TypeError,
         "TwoViews.each takes single-view augmentations, got ComplementaryMasking("),
        ({"name": "sequential", "params": {"augmentations": [PAIR]}}, TypeError,
         "Sequential.augmentations takes single-view augmentations, got ComplementaryMasking("),
    ],
)
def test_from_config_errors_name_the_key_at_fault(
    config: Any, error: type, message: str, registry: Registry
) -> None:
    with pytest.raises(error) as raised:
        from_config(config, registry=registry)
    assert str(raised.value).startswith(message), str(raised.value)

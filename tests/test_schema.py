"""Feature specs, reserved ids and the schema's dict round trip."""

from __future__ import annotations

import json
import keyword

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from augkit.errors import ConfigError, SchemaError, UnknownNameError
from augkit.schema import Categorical, Dense, FeatureSchema, MultiCategorical

SCHEMA = FeatureSchema(
    [
        Categorical(name="genre", num_values=5),
        MultiCategorical(name="tags", num_values=7, max_len=4),
        Dense(name="price", dim=2),
    ]
)


# -- specs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "1st", "two words", "with-dash", "class", 7, None])
@pytest.mark.parametrize(
    "make",
    [
        lambda name: Categorical(name=name, num_values=3),
        lambda name: MultiCategorical(name=name, num_values=3, max_len=2),
        lambda name: Dense(name=name, dim=3),
    ],
    ids=["categorical", "multi", "dense"],
)
def test_spec_names_must_be_identifiers(make, name: object) -> None:
    with pytest.raises(SchemaError, match="name must be a non-empty identifier") as error:
        make(name)
    assert repr(name) in str(error.value)
    assert str(error.value).split(".")[0] in {"Categorical", "MultiCategorical", "Dense"}


@pytest.mark.parametrize("name", keyword.kwlist)
def test_every_keyword_is_rejected_as_a_name(name: str) -> None:
    with pytest.raises(SchemaError, match=f"name must be a non-empty identifier, got {name!r}"):
        Categorical(name=name, num_values=3)


@pytest.mark.parametrize("size", [0, -3, True, 2.0, "4", None])
@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda v: Categorical(name="genre", num_values=v), "num_values"),
        (lambda v: MultiCategorical(name="genre", num_values=v, max_len=3), "num_values"),
        (lambda v: MultiCategorical(name="genre", num_values=3, max_len=v), "max_len"),
        (lambda v: Dense(name="genre", dim=v), "dim"),
    ],
    ids=["categorical.num_values", "multi.num_values", "multi.max_len", "dense.dim"],
)
def test_spec_sizes_must_be_positive_ints(make, field: str, size: object) -> None:
    with pytest.raises(SchemaError) as error:
        make(size)
    assert str(error.value) == f"feature 'genre': {field} must be a positive int, got {size!r}"


def test_specs_are_frozen() -> None:
    spec = Categorical(name="genre", num_values=5)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.num_values = 6  # type: ignore[misc]


@given(num_values=st.integers(1, 10**6))
@settings(max_examples=25, deadline=None)
def test_reserved_ids_sit_just_past_the_real_ids(num_values: int) -> None:
    single = Categorical(name="a", num_values=num_values)
    assert single.default_id == num_values
    assert single.embedding_rows == num_values + 1
    bag = MultiCategorical(name="b", num_values=num_values, max_len=3)
    assert (bag.padding_id, bag.default_id) == (num_values, num_values + 1)
    assert bag.embedding_rows == num_values + 2
    assert bag.default_id < bag.embedding_rows


# -- schema ----------------------------------------------------------------------------------


def test_schema_lookup_and_order() -> None:
    assert SCHEMA.names == ("genre", "tags", "price")
    assert SCHEMA.multi_valued == ("tags",)
    assert len(SCHEMA) == 3
    assert [s.name for s in SCHEMA] == list(SCHEMA.names)
    assert "tags" in SCHEMA and "colour" not in SCHEMA
    assert SCHEMA["price"] == Dense(name="price", dim=2)
    assert SCHEMA.index("price") == 2
    assert SCHEMA.indices(None) == (0, 1, 2)
    assert SCHEMA.indices(("price", "genre")) == (2, 0)


def test_schema_is_frozen_hashable_and_compares_by_features() -> None:
    same = FeatureSchema(list(SCHEMA.features))
    assert same == SCHEMA and hash(same) == hash(SCHEMA)
    assert FeatureSchema(SCHEMA.features[:2]) != SCHEMA
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        SCHEMA.features = ()  # type: ignore[misc]


def test_unknown_feature_names_the_closest_match() -> None:
    with pytest.raises(UnknownNameError) as error:
        SCHEMA.index("tag")
    assert str(error.value) == (
        "unknown feature 'tag'; did you mean 'tags'? Known: genre, price, tags."
    )
    with pytest.raises(UnknownNameError, match="unknown feature 'colour'"):
        SCHEMA["colour"]
    with pytest.raises(UnknownNameError, match="unknown feature 'weight'"):
        SCHEMA.indices(("genre", "weight"))


def test_lookup_by_position_is_an_unknown_name_not_a_crash() -> None:
    with pytest.raises(UnknownNameError, match="unknown feature 0. Known: genre, price, tags"):
        SCHEMA[0]  # type: ignore[index]


def test_empty_schema() -> None:
    with pytest.raises(SchemaError, match="a FeatureSchema needs at least one feature"):
        FeatureSchema([])


def test_duplicate_names() -> None:
    with pytest.raises(SchemaError, match="feature 'genre' appears twice in the schema"):
        FeatureSchema([Categorical(name="genre", num_values=5), Dense(name="genre", dim=1)])


def test_schema_takes_only_specs() -> None:
    with pytest.raises(SchemaError) as error:
        FeatureSchema([Categorical(name="genre", num_values=5), {"name": "tags"}])
    assert "takes Categorical, MultiCategorical or Dense specs" in str(error.value)
    assert "{'name': 'tags'}" in str(error.value)


# -- dict round trip ---------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name)
)
"""Valid feature names: identifiers that are not keywords (``if``, ``in``, ...), which the
schema rightly rejects."""
sizes = st.integers(1, 10_000)
specs = st.one_of(
    st.builds(Categorical, name=names, num_values=sizes),
    st.builds(MultiCategorical, name=names, num_values=sizes, max_len=st.integers(1, 64)),
    st.builds(Dense, name=names, dim=st.integers(1, 512)),
)
schemas = st.lists(specs, min_size=1, max_size=6, unique_by=lambda s: s.name).map(FeatureSchema)


@given(schema=schemas)
@settings(max_examples=40, deadline=None)
def test_to_dict_from_dict_round_trips_through_json(schema: FeatureSchema) -> None:
    data = schema.to_dict()
    assert FeatureSchema.from_dict(data) == schema
    assert FeatureSchema.from_dict(json.loads(json.dumps(data))) == schema


def test_to_dict_shape() -> None:
    assert SCHEMA.to_dict() == {
        "features": [
            {"type": "categorical", "name": "genre", "num_values": 5},
            {"type": "multi_categorical", "name": "tags", "num_values": 7, "max_len": 4},
            {"type": "dense", "name": "price", "dim": 2},
        ]
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "a schema dict has exactly one key 'features', got []"),
        (
            {"features": [], "version": 1},
            "a schema dict has exactly one key 'features', got ['features', 'version']",
        ),
        ([{"type": "dense"}], "a schema dict has exactly one key 'features', got list"),
        ({"features": {"genre": 5}}, "schema 'features' must be a list of tables, got dict"),
        ({"features": ["genre"]}, "schema entry 0 must be a table, got 'genre'"),
        (
            {"features": [{"type": "dense", "name": "price", "dim": 2}, {"name": "genre"}]},
            "schema entry 1 ('genre') lacks 'type'; expected one of categorical, "
            "multi_categorical, dense",
        ),
        (
            {"features": [{"type": "multi_categorical", "name": "tags", "num_values": 7}]},
            "schema entry 0 (multi_categorical) lacks max_len",
        ),
    ],
)
def test_from_dict_config_errors(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        FeatureSchema.from_dict(data)  # type: ignore[arg-type]
    assert str(error.value) == message


def test_from_dict_unknown_type_names_the_entry_and_closest_type() -> None:
    with pytest.raises(UnknownNameError) as error:
        FeatureSchema.from_dict(
            {"features": [{"type": "categorcal", "name": "genre", "num_values": 5}]}
        )
    message = str(error.value)
    assert "unknown feature type in schema entry 0 'categorcal'" in message
    assert "did you mean 'categorical'?" in message
    with pytest.raises(UnknownNameError, match=r"schema entry 0 \['dense'\]\. Known"):
        FeatureSchema.from_dict({"features": [{"type": ["dense"], "name": "p", "dim": 1}]})


def test_from_dict_unknown_key_names_the_entry_and_closest_key() -> None:
    entry = {"type": "dense", "name": "price", "dim": 2, "dims": 3}
    with pytest.raises(UnknownNameError) as error:
        FeatureSchema.from_dict({"features": [entry]})
    message = str(error.value)
    assert "unknown key of schema entry 0 (dense) 'dims'; did you mean 'dim'?" in message


def test_from_dict_spec_errors_name_the_feature() -> None:
    with pytest.raises(SchemaError, match="feature 'tags': max_len must be a positive int, got 0"):
        entry = {"type": "multi_categorical", "name": "tags", "num_values": 7, "max_len": 0}
        FeatureSchema.from_dict({"features": [entry]})
    with pytest.raises(SchemaError, match="feature 'genre' appears twice"):
        FeatureSchema.from_dict({"features": [SCHEMA.to_dict()["features"][0]] * 2})

"""`FeatureBatch`: validation of user data, reserved ids, structure checks, immutability."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augkit.batch import FeatureBatch, expand_columns
from augkit.errors import BatchValidationError, UnknownNameError
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, MultiCategorical

GENRE = Categorical(name="genre", num_values=5)
TAGS = MultiCategorical(name="tags", num_values=7, max_len=4)
PRICE = Dense(name="price", dim=2)
SCHEMA = FeatureSchema([GENRE, TAGS, PRICE])

GENRE_IDS = [4, -1, 0]
TAG_IDS = [[1, 2, -1], [-1, -1, -1], [-1, 6, 3]]
PRICES = [[1.5, -2.0], [0.0, 3.25], [7.0, 8.0]]


def user_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "genre": torch.tensor(GENRE_IDS),
        "tags": torch.tensor(TAG_IDS),
        "price": torch.tensor(PRICES),
    }
    data.update(changes)
    return data


def make_batch(**changes: object) -> FeatureBatch:
    return FeatureBatch.from_tensors(SCHEMA, user_data(**changes))


def assert_same_batch(a: FeatureBatch, b: FeatureBatch) -> None:
    assert a.schema == b.schema
    assert torch.equal(a.present, b.present)
    for name in a.schema.names:
        assert torch.equal(a.values[name], b.values[name]), name
    for name in a.schema.multi_valued:
        assert torch.equal(a.kept[name], b.kept[name]), name


# -- from_tensors: accepted inputs ---------------------------------------------------------------


def test_from_tensors_values_masks_and_reserved_ids() -> None:
    batch = make_batch()
    assert batch.batch_size == 3 and batch.device == torch.device("cpu")
    assert batch.values["genre"].tolist() == [4, GENRE.default_id, 0]
    assert batch.values["genre"].dtype == torch.int64
    pad = TAGS.padding_id
    assert batch.values["tags"].tolist() == [[1, 2, pad, pad], [pad] * 4, [pad, 6, 3, pad]]
    assert batch.kept["tags"].tolist() == [
        [True, True, False, False],
        [False] * 4,
        [False, True, True, False],
    ]
    assert batch.present.tolist() == [[True, True, True], [False, False, True], [True, True, True]]
    assert batch.is_present("genre").tolist() == [True, False, True]
    assert torch.equal(batch.values["price"], torch.tensor(PRICES))


def test_numpy_lists_and_tensors_give_the_same_batch() -> None:
    from_tensors = make_batch()
    arrays = {"genre": np.array(GENRE_IDS), "tags": np.array(TAG_IDS), "price": np.array(PRICES)}
    from_numpy = FeatureBatch.from_tensors(SCHEMA, {**arrays, "price": arrays["price"].astype("f4")})
    lists = {"genre": GENRE_IDS, "tags": TAG_IDS, "price": PRICES}
    from_lists = FeatureBatch.from_tensors(SCHEMA, lists)
    assert_same_batch(from_numpy, from_tensors)
    assert_same_batch(from_lists, from_tensors)


def test_bags_shorter_than_max_len_are_padded() -> None:
    batch = make_batch(tags=[[3], [-1], [5]])
    assert batch.values["tags"].shape == (3, TAGS.max_len)
    assert batch.values["tags"][:, 1:].eq(TAGS.padding_id).all()
    one = [True, False, False, False]
    assert batch.kept["tags"].tolist() == [one, [False] * 4, one]


def test_bags_of_exactly_max_len_are_kept_whole() -> None:
    batch = make_batch(tags=[[0, 1, 2, 3]] * 3)
    assert batch.values["tags"].tolist() == [[0, 1, 2, 3]] * 3
    assert batch.kept["tags"].all()


@pytest.mark.parametrize(
    ("dtype", "num_values", "ids"),
    [
        (torch.uint8, 256, [0, 255]),
        (torch.int8, 128, [127, -1]),
        (torch.int16, 20_000, [19_999, -1]),
        (torch.int32, 2**31 - 1, [2**31 - 2, -1]),
    ],
)
def test_narrow_integer_ids_are_checked_without_wrapping(
    dtype: torch.dtype, num_values: int, ids: list[int]
) -> None:
    schema = FeatureSchema([Categorical(name="item", num_values=num_values)])
    batch = FeatureBatch.from_tensors(schema, {"item": torch.tensor(ids, dtype=dtype)})
    expected = [num_values if i == MISSING else i for i in ids]
    assert batch.values["item"].tolist() == expected
    assert batch.values["item"].dtype == torch.int64
    assert batch.present[:, 0].tolist() == [i != MISSING for i in ids]


def test_narrow_integer_ids_out_of_range_are_rejected() -> None:
    schema = FeatureSchema([MultiCategorical(name="tags", num_values=100, max_len=2)])
    with pytest.raises(BatchValidationError, match=r"id 100 at position \(1, 0\) is out of range"):
        tags = torch.tensor([[1, 2], [100, -1]], dtype=torch.int8)
        FeatureBatch.from_tensors(schema, {"tags": tags})


def test_present_argument_masks_features() -> None:
    present = [[True, True, False], [True, True, True], [False, True, True]]
    batch = FeatureBatch.from_tensors(SCHEMA, user_data(), present=present)
    expected = [[True, True, False], [False, False, True], [False, True, True]]
    assert batch.present.tolist() == expected
    assert batch.values["price"][0].tolist() == [0.0, 0.0]
    assert batch.values["price"][1:].tolist() == PRICES[1:]
    assert batch.to_tensors()["genre"].tolist() == [4, GENRE.default_id, GENRE.default_id]


def test_present_argument_must_be_bool_b_by_k() -> None:
    with pytest.raises(BatchValidationError) as error:
        FeatureBatch.from_tensors(SCHEMA, user_data(), present=torch.ones(3, 3, dtype=torch.int64))
    assert str(error.value) == "'present' must be bool [3, 3], got torch.int64 [3, 3]"
    with pytest.raises(BatchValidationError) as error:
        FeatureBatch.from_tensors(SCHEMA, user_data(), present=torch.ones(3, 2, dtype=torch.bool))
    assert str(error.value) == "'present' must be bool [3, 3], got torch.bool [3, 2]"


def test_present_argument_must_make_a_tensor() -> None:
    with pytest.raises(BatchValidationError, match="^'present': cannot make a tensor of it"):
        FeatureBatch.from_tensors(SCHEMA, user_data(), present=[[True] * 3, [True], [False] * 3])


def test_device_argument_places_the_batch() -> None:
    batch = FeatureBatch.from_tensors(SCHEMA, user_data(), device="cpu")
    assert batch.device == torch.device("cpu")
    assert all(v.device == batch.device for v in batch.values.values())


# -- from_tensors: rejected inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"genre": [4, 5, 0]},
            "feature 'genre': id 5 at position (1,) is out of range; expected 0..4, "
            "or -1 for missing/padding",
        ),
        ({"genre": [4, 0, -2]}, "feature 'genre': id -2 at position (2,) is out of range"),
        ({"tags": [[1, 2, -1], [0, 0, 0], [-1, 6, 7]]}, "feature 'tags': id 7 at position (2, 2)"),
        (
            {"genre": torch.tensor([4.0, 1.0, 0.0])},
            "feature 'genre': ids must be an integer tensor [B], got dtype torch.float32",
        ),
        (
            {"tags": np.array(TAG_IDS, dtype=np.float64)},
            "feature 'tags': ids must be an integer tensor [B, L], got dtype torch.float64",
        ),
        (
            {"genre": [True, False, True]},
            "feature 'genre': ids must be an integer tensor [B], got dtype torch.bool",
        ),
        ({"genre": [[4], [1], [0]]}, "feature 'genre': expected shape [B], got [3, 1]"),
        ({"tags": [1, 2, 3]}, "feature 'tags': expected shape [B, L], got [3]"),
        ({"tags": [[1, 2, 3, 4, 5]] * 3}, "feature 'tags': bags of length 5 exceed max_len=4"),
        ({"tags": [[1, 2], [3]]}, "feature 'tags': cannot make a tensor of it"),
        (
            {"price": [[1.0, 2.0], [float("nan"), 0.0], [0.0, 0.0]]},
            "feature 'price': value nan at position (1, 0) is not finite",
        ),
        (
            {"price": [[1.0, 2.0], [0.0, 0.0], [0.0, float("-inf")]]},
            "feature 'price': value -inf at position (2, 1) is not finite",
        ),
        (
            {"price": [[1, 2], [3, 4], [5, 6]]},
            "feature 'price': dense values must be floating point, got dtype torch.int64",
        ),
        ({"price": torch.zeros(3, 3)}, "feature 'price': expected shape [B, 2], got [3, 3]"),
        ({"price": torch.zeros(3)}, "feature 'price': expected shape [B, 2], got [3]"),
        (
            {"tags": [[1], [2]]},
            "features disagree on the batch size: 'genre' has 3, 'tags' has 2, 'price' has 3",
        ),
        ({"genre": torch.tensor(1)}, "features disagree on the batch size: 'genre' has a scalar"),
    ],
)
def test_invalid_user_data_is_named_precisely(changes: dict, message: str) -> None:
    with pytest.raises(BatchValidationError) as error:
        make_batch(**changes)
    assert str(error.value).startswith(message), str(error.value)


def test_unknown_feature_names_the_closest_match() -> None:
    with pytest.raises(UnknownNameError) as error:
        FeatureBatch.from_tensors(SCHEMA, {**user_data(), "tag": TAG_IDS})
    assert "unknown feature in batch values 'tag'; did you mean 'tags'?" in str(error.value)
    with pytest.raises(UnknownNameError, match="unknown feature in batch values 3"):
        FeatureBatch.from_tensors(SCHEMA, {**user_data(), 3: TAG_IDS})  # type: ignore[dict-item]


def test_absent_features_are_named() -> None:
    data = user_data()
    del data["price"], data["genre"]
    with pytest.raises(BatchValidationError) as error:
        FeatureBatch.from_tensors(SCHEMA, data)
    assert str(error.value) == (
        "batch values lack feature(s) 'genre', 'price'; the schema has genre, tags, price"
    )


def test_values_on_several_devices_are_rejected() -> None:
    data = user_data(price=torch.zeros(3, 2, device="meta"))
    with pytest.raises(BatchValidationError) as error:
        FeatureBatch.from_tensors(SCHEMA, data)
    message = str(error.value)
    assert "several devices" in message
    assert "'genre' on cpu" in message and "'price' on meta" in message
    assert "pass device=" in message


# -- to_tensors and embedding layers -----------------------------------------------------------


def test_to_tensors_reserved_ids() -> None:
    batch = make_batch()
    masked = torch.tensor([[False, False, False], [False, False, False], [True, True, True]])
    out = batch.mask_features(masked).to_tensors()
    pad, default = TAGS.padding_id, TAGS.default_id
    assert out["genre"].tolist() == [4, GENRE.default_id, GENRE.default_id]
    empty = [default, pad, pad, pad]
    assert out["tags"].tolist() == [[1, 2, pad, pad], empty, empty]
    assert out["price"].tolist() == [PRICES[0], PRICES[1], [0.0, 0.0]]
    assert out["tags"].dtype == torch.int64


def test_to_tensors_does_not_write_into_the_batch() -> None:
    batch = make_batch()
    before = batch.values["tags"].clone()
    batch.to_tensors()["tags"].fill_(0)
    assert torch.equal(batch.values["tags"], before)


def test_a_bag_with_every_value_dropped_reads_as_default() -> None:
    batch = make_batch().with_kept({"tags": torch.zeros(3, TAGS.max_len, dtype=torch.bool)})
    assert batch.to_tensors()["tags"][:, 0].tolist() == [TAGS.default_id] * 3


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_masked_bag_embeds_as_the_default_row(mode: str) -> None:
    generator = torch.Generator().manual_seed(0)
    bag = torch.nn.EmbeddingBag(TAGS.embedding_rows, 3, mode=mode, padding_idx=TAGS.padding_id)
    torch.nn.init.normal_(bag.weight, generator=generator)
    single = torch.nn.Embedding(GENRE.embedding_rows, 3)
    batch = make_batch()
    masked = torch.zeros(3, 3, dtype=torch.bool)
    masked[2, :2] = True
    view = batch.mask_features(masked)
    out = view.to_tensors()
    with torch.no_grad():
        bags = bag(out["tags"])
        singles = single(out["genre"])
    weight = bag.weight.detach()
    assert torch.allclose(bags[1], weight[TAGS.default_id])  # missing bag
    assert torch.allclose(bags[2], weight[TAGS.default_id])  # masked bag
    rows = weight[[1, 2]]
    reduced = {"mean": rows.mean(0), "sum": rows.sum(0), "max": rows.max(0).values}[mode]
    assert torch.allclose(bags[0], reduced)
    assert torch.allclose(singles[2], single.weight[GENRE.default_id])
    assert torch.allclose(singles[1], single.weight[GENRE.default_id])


def test_to_tensors_runs_without_host_syncs_on_meta() -> None:
    out = make_batch().to("meta").to_tensors()
    assert {t.device.type for t in out.values()} == {"meta"}
    assert out["tags"].shape == (3, TAGS.max_len)


# -- views, immutability, structure ------------------------------------------------------------


def test_select_to_and_evolve() -> None:
    batch = make_batch()
    picked = batch.select(torch.tensor([2, 0]))
    assert picked.batch_size == 2
    assert picked.values["genre"].tolist() == [0, 4]
    assert torch.equal(picked.kept["tags"], batch.kept["tags"][[2, 0]])
    assert torch.equal(picked.present, batch.present[[2, 0]])
    assert_same_batch(batch.to("cpu"), batch)
    on_meta = batch.to(torch.device("meta"))
    assert on_meta.device.type == "meta" and on_meta.values["tags"].device.type == "meta"
    no_price = torch.zeros(3, 3, dtype=torch.bool)
    no_price[:, 2] = True
    evolved = batch.mask_features(no_price)
    assert evolved.present[:, 2].tolist() == [False] * 3
    assert batch.present[:, 2].tolist() == [True] * 3
    assert evolved.values["tags"] is batch.values["tags"]  # views share value tensors


def test_batch_is_immutable() -> None:
    batch = make_batch()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        batch.present = batch.present  # type: ignore[misc]
    with pytest.raises(TypeError):
        batch.values["genre"] = batch.values["genre"]  # type: ignore[index]
    with pytest.raises(TypeError):
        batch.kept["tags"] = batch.kept["tags"]  # type: ignore[index]
    source = dict(batch.values)
    rebuilt = FeatureBatch(SCHEMA, source, batch.present, batch.kept)
    source["genre"] = torch.zeros(3, dtype=torch.long)
    assert rebuilt.values["genre"] is batch.values["genre"]  # the mapping was copied


def test_with_kept_replaces_only_the_named_masks() -> None:
    schema = FeatureSchema([TAGS, MultiCategorical(name="actors", num_values=3, max_len=2)])
    actors = [[0, 1], [2, -1], [-1, -1]]
    batch = FeatureBatch.from_tensors(schema, {"tags": TAG_IDS, "actors": actors})
    dropped = batch.with_kept({"tags": torch.zeros(3, 4, dtype=torch.bool)})
    assert not dropped.kept["tags"].any()
    assert dropped.kept["actors"] is batch.kept["actors"]


def structure_cases() -> list:
    batch = make_batch()
    values, kept = dict(batch.values), dict(batch.kept)
    cases = [
        (
            "schema",
            {"schema": SCHEMA.to_dict()},
            TypeError,
            "FeatureBatch.schema must be a FeatureSchema, got dict",
        ),
        (
            "present-type",
            {"present": batch.present.numpy()},
            TypeError,
            "FeatureBatch.present must be a torch.Tensor, got ndarray",
        ),
        (
            "value-type",
            {"values": {**values, "genre": [4, 5, 0]}},
            TypeError,
            "FeatureBatch.values['genre'] must be a torch.Tensor, got list",
        ),
        (
            "kept-type",
            {"kept": {"tags": kept["tags"].tolist()}},
            TypeError,
            "FeatureBatch.kept['tags'] must be a torch.Tensor, got list",
        ),
        (
            "present-dtype",
            {"present": batch.present.long()},
            BatchValidationError,
            "'present' must be bool [B, 3], got torch.int64 [3, 3]",
        ),
        (
            "present-width",
            {"present": batch.present[:, :2]},
            BatchValidationError,
            "'present' must be bool [B, 3], got torch.bool [3, 2]",
        ),
        (
            "value-keys",
            {"values": {k: v for k, v in values.items() if k != "price"}},
            BatchValidationError,
            "batch values have features ['genre', 'tags'], the schema ['genre', 'price', 'tags']",
        ),
        (
            "kept-keys",
            {"kept": {}},
            BatchValidationError,
            "kept masks are for [], the multi-valued features are ['tags']",
        ),
        (
            "value-dtype",
            {"values": {**values, "genre": values["genre"].int()}},
            BatchValidationError,
            "feature 'genre': value tensor is torch.int32 [3] on cpu; expected [3] on cpu",
        ),
        (
            "value-shape",
            {"values": {**values, "tags": values["tags"][:, :3]}},
            BatchValidationError,
            "feature 'tags': value tensor is torch.int64 [3, 3] on cpu; expected [3, 4] on cpu",
        ),
        (
            "dense-dtype",
            {"values": {**values, "price": values["price"].long()}},
            BatchValidationError,
            "feature 'price': value tensor is torch.int64 [3, 2] on cpu; expected [3, 2] on cpu",
        ),
        (
            "value-device",
            {"values": {**values, "genre": values["genre"].to("meta")}},
            BatchValidationError,
            "feature 'genre': value tensor is torch.int64 [3] on meta; expected [3] on cpu",
        ),
        (
            "kept-shape",
            {"kept": {"tags": kept["tags"][:2]}},
            BatchValidationError,
            "feature 'tags': kept mask is torch.bool [2, 4] on cpu; expected bool [3, 4] on cpu",
        ),
        (
            "kept-dtype",
            {"kept": {"tags": kept["tags"].long()}},
            BatchValidationError,
            "feature 'tags': kept mask is torch.int64 [3, 4] on cpu; expected bool [3, 4] on cpu",
        ),
    ]
    return [pytest.param(*rest, id=case) for case, *rest in cases]


@pytest.mark.parametrize(("changes", "error", "message"), structure_cases())
def test_plain_constructor_checks_structure(changes: dict, error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        make_batch().evolve(**changes)
    assert str(raised.value) == message


def test_expand_columns_places_sub_masks() -> None:
    sub = torch.tensor([[True, False], [False, True]])
    assert expand_columns(sub, (2, 0), 3).tolist() == [[False, False, True], [True, False, False]]
    assert torch.equal(expand_columns(sub, (0, 1), 2), sub)


# -- property: from_tensors then to_tensors keeps the ids ---------------------------------------


@st.composite
def user_batches(draw: st.DrawFn) -> tuple[FeatureSchema, dict[str, np.ndarray]]:
    size, max_len = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    schema = FeatureSchema(
        [
            Categorical(name="single", num_values=draw(st.integers(1, 50))),
            MultiCategorical(name="bag", num_values=draw(st.integers(1, 50)), max_len=max_len),
            Dense(name="vector", dim=2),
        ]
    )

    def ids(shape: tuple[int, ...], num_values: int) -> np.ndarray:
        return draw(hnp.arrays(np.int64, shape, elements=st.integers(MISSING, num_values - 1)))

    floats = st.floats(-1e6, 1e6, allow_nan=False, width=32)
    return schema, {
        "single": ids((size,), schema["single"].num_values),
        "bag": ids((size, draw(st.integers(0, max_len))), schema["bag"].num_values),
        "vector": draw(hnp.arrays(np.float32, (size, 2), elements=floats)),
    }


@given(case=user_batches())
@settings(max_examples=60, deadline=None)
def test_from_tensors_to_tensors_round_trips_ids(
    case: tuple[FeatureSchema, dict[str, np.ndarray]],
) -> None:
    schema, data = case
    out = FeatureBatch.from_tensors(schema, data).to_tensors()
    single, bag = schema["single"], schema["bag"]
    missing = data["single"] == MISSING
    assert out["single"].tolist() == np.where(missing, single.default_id, data["single"]).tolist()
    expected = np.full((len(data["bag"]), bag.max_len), bag.padding_id)
    width = data["bag"].shape[1]
    expected[:, :width] = np.where(data["bag"] == MISSING, bag.padding_id, data["bag"])
    empty = (data["bag"] == MISSING).all(axis=1)
    expected[empty, 0] = bag.default_id
    assert out["bag"].tolist() == expected.tolist()
    assert np.array_equal(out["vector"].numpy(), data["vector"])


def test_a_batch_pickles_for_dataloader_workers() -> None:
    import pickle

    from augkit.testing import EXAMPLE_SCHEMA, random_batch

    batch = random_batch(EXAMPLE_SCHEMA, 7, generator=torch.Generator().manual_seed(3))
    batch = batch.mask_features(torch.eye(7, len(EXAMPLE_SCHEMA), dtype=torch.bool))
    copy = pickle.loads(pickle.dumps(batch))
    assert copy.schema == batch.schema and torch.equal(copy.present, batch.present)
    assert all(torch.equal(copy.values[n], batch.values[n]) for n in batch.values)
    assert all(torch.equal(copy.kept[n], batch.kept[n]) for n in batch.kept)
    with pytest.raises(TypeError):
        copy.values["x"] = batch.present  # still read-only after the round trip

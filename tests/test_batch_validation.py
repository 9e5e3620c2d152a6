"""`FeatureBatch.from_tensors` and `.to`: every bad id, value and device is a named
`BatchValidationError`, never a wrapped id or a bare torch error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augkit.batch import FeatureBatch
from augkit.errors import BatchValidationError
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, MultiCategorical

ITEM = Categorical(name="item", num_values=10)
TAGS = MultiCategorical(name="tags", num_values=10, max_len=3)
PRICE = Dense(name="price", dim=1)
SCHEMA = FeatureSchema([ITEM, TAGS, PRICE])
INT64_MAX = 2**63 - 1
PROPERTY = settings(max_examples=50, deadline=None)


def build(item: object = None, tags: object = None, **kwargs: object) -> FeatureBatch:
    """A batch of two items; `item` and `tags` replace the default ids."""
    data = {
        "item": [1, 2] if item is None else item,
        "tags": [[1, -1], [2, 3]] if tags is None else tags,
        "price": [[0.5], [1.5]],
    }
    return FeatureBatch.from_tensors(SCHEMA, data, **kwargs)


def message(action) -> str:
    with pytest.raises(BatchValidationError) as raised:
        action()
    return str(raised.value)


def out_of_range(feature: str, value: int, position: tuple[int, ...]) -> str:
    return (
        f"feature {feature!r}: id {value} at position {position} is out of range; "
        f"expected 0..9, or {MISSING} for missing/padding"
    )


# -- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [2**64 - 1, 2**64 - 2, 2**63, 10])
def test_uint64_ids_out_of_range_are_errors_never_the_missing_id(value: int) -> None:
    ids = np.array([3, value], dtype=np.uint64)
    for data in (ids, torch.from_numpy(ids)):
        assert message(lambda d=data: build(item=d)) == out_of_range("item", value, (1,))


@PROPERTY
@given(
    value=st.integers(2**63, 2**64 - 1),
    row=st.integers(0, 1),
    column=st.integers(0, 1),
)
def test_any_uint64_beyond_int64_is_rejected_where_it_is(value: int, row: int, column: int) -> None:
    tags = np.array([[1, 2], [3, 4]], dtype=np.uint64)
    tags[row, column] = value
    assert message(lambda: build(tags=tags)) == out_of_range("tags", value, (row, column))


@PROPERTY
@given(hnp.arrays(np.uint64, st.integers(1, 6), elements=st.integers(0, 9)))
def test_uint64_ids_in_range_read_as_themselves(ids: np.ndarray) -> None:
    n = len(ids)
    batch = FeatureBatch.from_tensors(
        SCHEMA, {"item": ids, "tags": np.zeros((n, 1), np.uint64), "price": np.zeros((n, 1), "f4")}
    )
    assert batch.values["item"].tolist() == ids.tolist()
    assert batch.present[:, 0].all()


@PROPERTY
@given(
    value=st.integers(2**63, 2**80) | st.integers(-(2**80), -(2**63) - 1),
    position=st.integers(0, 1),
)
def test_python_ints_beyond_int64_are_rejected_with_their_position(value: int, position: int) -> None:
    item = [1, 2]
    item[position] = value
    assert message(lambda: build(item=item)) == (
        f"feature 'item': {value} at position ({position},) is out of range (beyond int64); "
        f"expected ids 0..9, or {MISSING} for missing/padding"
    )


@pytest.mark.parametrize("container", [list, lambda rows: np.array(rows, dtype=object)])
def test_python_ints_beyond_int64_in_a_bag_name_row_and_column(container) -> None:
    text = message(lambda: build(tags=container([[1, 2], [-1, 2**64 - 1]])))
    assert text.startswith(f"feature 'tags': {2**64 - 1} at position (1, 1) is out of range"), text


@PROPERTY
@given(value=st.integers(-(2**63), -2) | st.integers(10, INT64_MAX), position=st.integers(0, 1))
def test_negative_ids_other_than_missing_and_ids_past_num_values_are_rejected(
    value: int, position: int
) -> None:
    item = [1, 2]
    item[position] = value
    assert message(lambda: build(item=item)) == out_of_range("item", value, (position,))
    as_numpy = np.array(item, dtype=np.int64)
    assert message(lambda: build(item=as_numpy)) == out_of_range("item", value, (position,))


@pytest.mark.parametrize(
    "ids",
    [np.array([True, False]), torch.tensor([True, False]), [True, False]],
    ids=["numpy", "torch", "list"],
)
def test_bool_ids_are_rejected(ids: object) -> None:
    assert message(lambda: build(item=ids)) == (
        "feature 'item': ids must be an integer tensor [B], got dtype torch.bool"
    )


@pytest.mark.parametrize(
    ("ids", "dtype"),
    [([1.5, 2.0], "torch.float32"), (np.array([1.0, 2.25]), "torch.float64"), ([1.0, 2.0], "torch.float32")],
)
def test_float_ids_are_rejected_with_or_without_fractions(ids: object, dtype: str) -> None:
    assert message(lambda: build(item=ids)) == (
        f"feature 'item': ids must be an integer tensor [B], got dtype {dtype}"
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("container", [list, np.array, torch.tensor])
def test_non_finite_dense_values_are_rejected_with_their_position(bad: float, container) -> None:
    price = container([[0.5], [bad]])
    text = message(
        lambda: FeatureBatch.from_tensors(SCHEMA, {"item": [1, 2], "tags": [[1], [2]], "price": price})
    )
    assert text == f"feature 'price': value {bad} at position (1, 0) is not finite"


# -- devices -----------------------------------------------------------------------------------

UNAVAILABLE = [
    *(["cuda", "cuda:0", torch.device("cuda", 7)] if not torch.cuda.is_available() else []),
    "cuda:64",
    *(["mps"] if not torch.backends.mps.is_available() else []),
]


@pytest.mark.parametrize("device", UNAVAILABLE, ids=str)
def test_unavailable_devices_are_named(device: object) -> None:
    name = str(torch.device(device))
    text = message(lambda: build(device=device))
    assert text.startswith(f"FeatureBatch.from_tensors: device {name!r} is not available: "), text
    text = message(lambda: build().to(device))
    assert text.startswith(f"FeatureBatch.to: device {name!r} is not available: "), text


@pytest.mark.parametrize("device", ["nonsense", "cuda:x", "", "cpu:-3"])
def test_strings_that_are_no_device_are_named(device: str) -> None:
    for action, what in (
        (lambda: build(device=device), "FeatureBatch.from_tensors"),
        (lambda: build().to(device), "FeatureBatch.to"),
    ):
        text = message(action)
        assert text.startswith(f"{what}: {device!r} is not a device ("), text
        assert text.endswith("expected e.g. 'cpu', 'cuda' or 'cuda:0'"), text


@pytest.mark.parametrize("device", [3.5, True, ["cpu"], torch.float32])
def test_devices_of_the_wrong_type_are_named(device: object) -> None:
    expected = (
        "device must be a torch.device or a string such as 'cpu' or 'cuda:0', "
        f"got {type(device).__name__} {device!r}"
    )
    assert message(lambda: build(device=device)) == f"FeatureBatch.from_tensors: {expected}"
    assert message(lambda: build().to(device)) == f"FeatureBatch.to: {expected}"


META_ERROR = (
    "FeatureBatch.from_tensors: the meta device holds no data to validate; build the batch on "
    "a real device, then move it with .to('meta')"
)


@pytest.mark.parametrize("device", ["meta", torch.device("meta")], ids=str)
def test_from_tensors_cannot_validate_on_the_meta_device(device: object) -> None:
    assert message(lambda: build(device=device)) == META_ERROR


def test_values_already_on_the_meta_device_are_rejected() -> None:
    data = {
        "item": torch.empty(2, dtype=torch.long, device="meta"),
        "tags": torch.empty(2, 1, dtype=torch.long, device="meta"),
        "price": torch.empty(2, 1, device="meta"),
    }
    assert message(lambda: FeatureBatch.from_tensors(SCHEMA, data)) == META_ERROR
    text = message(lambda: FeatureBatch.from_tensors(SCHEMA, data, device="cpu"))
    assert text.startswith("feature 'item': cannot move it from meta to cpu ("), text


@pytest.mark.parametrize("device", ["cpu", "cpu:0", torch.device("cpu"), "meta"], ids=str)
def test_to_accepts_usable_devices_and_meta(device: object) -> None:
    moved = build().to(device)
    assert moved.device.type == torch.device(device).type
    assert {t.device.type for t in (*moved.values.values(), *moved.kept.values())} == {
        moved.device.type
    }


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_index_past_the_device_count_is_named() -> None:
    count = torch.cuda.device_count()
    text = message(lambda: build(device=f"cuda:{count}"))
    assert text == (
        f"FeatureBatch.from_tensors: device 'cuda:{count}' is not available: this machine has "
        f"{count} CUDA device(s), cuda:0 .. cuda:{count - 1}"
    )

"""Bad examples are named errors, raised when the dataset is opened where the footers tell
(a missing or mistyped column, a list column of the wrong type, a corrupt file, a schema that
changes between files, nulls the statistics count), else at the batch that reads them, naming
the file, the row group and the row; and what the reader accepts besides the plain case."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import numpy as np
import pytest
import torch

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from examples_data import CONFIG, DictEncoder, encoders, events, write_examples

from augkit.data.examples import ExampleLoader, ExamplesConfig, ExampleStream, open_examples
from augkit.errors import BatchValidationError, ConfigError, DataFileError


def _open(path: Path | str, **config: object) -> object:
    return open_examples(ExamplesConfig.from_dict({**CONFIG, "path": str(path), **config}))


def _first_batch(path: Path, num_events: int, **options: object) -> object:
    stream = ExampleStream(_open(path), encoders(num_events), batch_size=4, seed=0, **options)
    return next(iter(ExampleLoader(stream)))


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, column)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_examples(tmp_path / "events", [20, 20, 20], row_group_size=8)
    return tmp_path / "events"


def test_a_missing_column_names_the_file_and_the_closest_column(folder: Path) -> None:
    with pytest.raises(DataFileError) as caught:
        _open(folder, user="usr")
    error = caught.value
    assert error.file == str(folder / "part-0.parquet") and error.column == "usr"
    assert "has no column 'usr' (user); did you mean 'user'?" in str(error)


@pytest.mark.parametrize(
    ("column", "values", "expected"),
    [
        ("item", pa.array(np.arange(20, dtype=np.float64)), "column 'item' (item) is double; a key column holds strings or integers"),
        ("ts", pa.array([str(i) for i in range(20)]), "column 'ts' (timestamp) is string; a timestamp column holds integers"),
        ("weight", pa.array([True] * 20), "column 'weight' (weight) is bool; a weight column holds numbers"),
        ("recent", pa.array([[0.5]] * 20), "column 'recent' (features.recent) is list<element: double>; a multi_categorical feature reads a list column of strings or integers"),
        ("recent", pa.array(["a"] * 20), "column 'recent' (features.recent) is string; a multi_categorical feature reads a list column"),
    ],
)
def test_a_mistyped_column_names_the_file_and_the_column(folder: Path, column: str, values: pa.Array, expected: str) -> None:
    bad = folder / "part-2.parquet"
    pq.write_table(_replace(events(40, 20), column, values), bad)
    with pytest.raises(DataFileError, match=re.escape(expected)) as caught:
        _open(folder)
    assert caught.value.file == str(bad) and caught.value.column == column


def test_a_categorical_feature_given_a_list_column_is_refused(folder: Path) -> None:
    with pytest.raises(DataFileError, match="'recent' \\(features.history\\) is list<element: int64>; a categorical"):
        _open(folder, features={"history": {"type": "categorical", "column": "recent"}})


def test_a_column_whose_type_changes_between_files_names_both(folder: Path) -> None:
    pq.write_table(_replace(events(20, 20), "item", pa.array(np.arange(20, 40, dtype=np.int32))), folder / "part-1.parquet")
    with pytest.raises(DataFileError) as caught:
        _open(folder)
    assert str(caught.value) == (
        f"{str(folder / 'part-1.parquet')!r}: column 'item' (item) is int32 here but int64 in "
        f"{str(folder / 'part-0.parquet')!r}; every file must give a column one type"
    )


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_corrupt_file_among_good_ones_is_named_when_opened(folder: Path, damage: str) -> None:
    bad = folder / "part-1.parquet"
    content = bad.read_bytes()
    bad.write_bytes({"garbage": b"not parquet at all", "truncated": content[: len(content) // 2], "empty": b""}[damage])
    with pytest.raises(DataFileError, match="part-1.parquet' is not a readable Parquet file") as caught:
        _open(folder)
    assert caught.value.file == str(bad)


def test_nulls_the_statistics_count_are_found_when_opened(folder: Path) -> None:
    users = pa.array(["u0"] * 10 + [None] + ["u1"] * 9, type=pa.string())
    pq.write_table(_replace(events(20, 20), "user", users), folder / "part-1.parquet", row_group_size=8)
    with pytest.raises(DataFileError) as caught:
        _open(folder)
    assert "part-1.parquet', row group 1: column 'user' (user) holds 1 nulls" in str(caught.value)
    assert (caught.value.column, caught.value.row_group) == ("user", 1)


@pytest.mark.parametrize("workers", [0, 1])
def test_nulls_without_statistics_are_found_at_the_batch(tmp_path: Path, workers: int) -> None:
    table = _replace(events(0, 20), "item", pa.array([*range(13), None, *range(14, 20)], type=pa.int64()))
    pq.write_table(table, tmp_path / "events.parquet", row_group_size=8, write_statistics=False)
    _open(tmp_path)  # the footer cannot tell
    with pytest.raises(DataFileError, match=r"events.parquet', row group 1, row 5: null in column 'item' \(item\)"):
        _first_batch(tmp_path, 20, num_workers=workers)


def test_a_damaged_page_is_named_at_the_batch(tmp_path: Path) -> None:
    """The footer is intact, so opening succeeds; the page header of row group 1 is not."""
    path = tmp_path / "events.parquet"
    pq.write_table(events(0, 2000), path, row_group_size=1000)
    start = pq.read_metadata(path).row_group(1).column(1).data_page_offset + 40
    content = bytearray(path.read_bytes())
    content[start : start + 200] = b"\xff" * 200
    path.write_bytes(bytes(content))
    stream = ExampleStream(_open(tmp_path), encoders(2000), batch_size=2000, seed=0)
    with pytest.raises(DataFileError, match="events.parquet', row group 1: cannot be read") as caught:
        next(iter(stream))
    assert (caught.value.file, caught.value.row_group) == (str(path), 1)


def test_a_weight_that_is_not_finite_is_named_at_the_batch(tmp_path: Path) -> None:
    weights = np.ones(20, dtype=np.float32)
    weights[3] = np.nan
    pq.write_table(_replace(events(0, 20), "weight", pa.array(weights)), tmp_path / "events.parquet")
    with pytest.raises(DataFileError, match="row group 0, row 3: weight nan in column 'weight' is not a finite number"):
        _first_batch(tmp_path, 20)


def test_a_list_too_long_is_an_error_where_the_config_says_so(tmp_path: Path) -> None:
    write_examples(tmp_path, [20], row_group_size=20)
    config = {"features": {"recent": {"type": "multi_categorical", "max_len": 3, "on_overflow": "error"}}}
    stream = ExampleStream(_open(tmp_path, **config), encoders(20), batch_size=20, seed=0)
    with pytest.raises(DataFileError, match="row group 0, row 4: column 'recent' \\(features.recent\\) holds a list of 4"):
        next(iter(stream))
    first = ExampleStream(_open(tmp_path, features={"recent": {"type": "multi_categorical", "max_len": 3, "on_overflow": "keep_first"}}), encoders(20), batch_size=20, seed=0)
    batch = next(iter(first))
    row = int(torch.nonzero(batch.items == 9)[0, 0])
    assert batch.features["recent"][row].tolist() == [5, 6, 7]  # event 9's history 5..8, its first three


def test_an_encoder_off_its_contract_is_named(folder: Path) -> None:
    class Floats:
        def encode(self, values: pa.Array) -> np.ndarray:
            return np.zeros(len(values))

    class BelowMissing:
        def encode(self, values: pa.Array) -> np.ndarray:
            return np.full(len(values), -2, dtype=np.int64)

    for encoder, message in ((Floats(), "returned ndarray of dtype float64"), (BelowMissing(), "returned id -2")):
        stream = ExampleStream(_open(folder), {**encoders(60), "user": encoder}, batch_size=4, seed=0)
        with pytest.raises(BatchValidationError, match=f"the encoder for 'user' \\({type(encoder).__name__}\\) {message}"):
            next(iter(stream))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"features": {"recent": {"type": "multi_categorical"}}}, "max_len is required for a multi_categorical feature"),
        ({"features": {"recent": {"type": "list", "max_len": 3}}}, "type must be one of"),
        ({"features": {"user": {"type": "categorical"}}}, "feature name 'user' is reserved"),
        ({"shuffle_buffer": 0}, "shuffle_buffer must be an integer >= 1, got 0"),
        ({"shuffle_buffer": "many"}, "expected an integer, got 'many'"),
        ({"timestamp": "item"}, "column 'item' is read twice, as item and as timestamp"),
        ({"weights": "w"}, "unknown key 'weights'; did you mean 'weight'?"),
    ],
)
def test_a_bad_config_names_the_key(folder: Path, config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _open(folder, **config)


def test_a_path_that_names_no_parquet_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        _open(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="no file matches"):
        _open(tmp_path / "*.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no Parquet file"):
        _open(tmp_path / "empty")
    pq.write_table(events(0, 0), tmp_path / "empty" / "none.parquet")
    with pytest.raises(DataFileError, match="hold no rows"):
        _open(tmp_path / "empty")


def test_a_glob_a_file_and_a_partitioned_tree_are_read(tmp_path: Path) -> None:
    for day, first in (("2024-01-01", 0), ("2024-01-02", 10)):
        (tmp_path / f"day={day}").mkdir()
        pq.write_table(events(first, 10), tmp_path / f"day={day}" / "part-0.parquet")
    (tmp_path / "_SUCCESS").write_text("")  # a marker file, skipped
    assert _open(tmp_path).num_rows == 20
    assert _open(tmp_path / "day=*" / "*.parquet").num_rows == 20
    assert _open(tmp_path / "day=2024-01-02" / "part-0.parquet").num_rows == 10


def test_timestamps_dictionaries_and_null_features_are_read(tmp_path: Path) -> None:
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    table = pa.table(
        {
            "user": pa.array(["a", "b", "a", "b"]).dictionary_encode(),
            "item": pa.array([1, 2, 3, 4]),
            "when": pa.array([start + datetime.timedelta(seconds=s) for s in range(4)], type=pa.timestamp("ms", tz="UTC")),
            "device": pa.array(["ios", None, "web", "tv"]),
            "recent": pa.array([[1, None, 2], None, [], [3]], type=pa.list_(pa.int64())),
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    config = ExamplesConfig.from_dict(
        {
            "path": str(tmp_path),
            "timestamp": "when",
            "features": {"device": {"type": "categorical"}, "recent": {"type": "multi_categorical", "max_len": 2}},
        }
    )
    coders = {"user": DictEncoder(["a", "b"]), "item": DictEncoder([1, 2, 3, 4]), "device": DictEncoder(["ios", "web"]),
              "recent": DictEncoder([1, 2, 3, 4])}
    batch = next(iter(ExampleStream(open_examples(config), coders, batch_size=4, seed=0)))
    order = batch.items.argsort()
    assert batch.users[order].tolist() == [0, 1, 0, 1]
    assert batch.timestamps[order].tolist() == [int(start.timestamp()) + s for s in range(4)]
    assert batch.features["device"][order].tolist() == [0, -1, 1, -1]  # null, and "tv" outside the vocabulary
    assert batch.features["recent"][order].tolist() == [[0, 1], [-1, -1], [-1, -1], [2, -1]]
    assert batch.lengths["recent"][order].tolist() == [2, 0, 0, 1]


def test_the_config_round_trips(folder: Path) -> None:
    config = ExamplesConfig.from_dict({**CONFIG, "path": "events", "shuffle_buffer": 1000}, base_dir=folder.parent)
    assert config.path == folder
    assert ExamplesConfig.from_dict(config.to_dict()) == config

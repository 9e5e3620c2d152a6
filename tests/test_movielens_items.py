"""Item tables (augkit.data.items) and MovieLens-100K items (augkit.data.movielens)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augkit import BatchValidationError, Categorical, ConfigError, MultiCategorical, UnknownNameError
from augkit.data import ItemTable, load_movielens_items, load_movielens_rating_counts, read_item_table
from augkit.data.encoding import pad_bags
from augkit.data.items import categorical_warnings
from augkit.data.movielens import GENRES


def datasets_dir() -> Path:
    return Path(
        os.environ.get("AUGKIT_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )


ML_100K = datasets_dir() / "ml-100k"
needs_ml_100k = pytest.mark.skipif(
    not (ML_100K / "u.item").is_file(),
    reason=f"MovieLens-100K not found at {ML_100K} (set AUGKIT_DATASETS to the datasets folder)",
)


def item_line(movie: int, title: str, date: str, genres: tuple[int, ...]) -> str:
    flags = "|".join("1" if g in genres else "0" for g in range(19))
    return f"{movie}|{title}|{date}||http://example.org/{movie}|{flags}"


def write_items(directory: Path, lines: list[str]) -> Path:
    path = directory / "u.item"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return path


FAKE_ITEMS = [
    item_line(2, "Le Bateau, The (1983)", "01-Jan-1983", (1, 17)),
    item_line(1, "Café Crème Crème (1995)", "12-Feb-1995", (5,)),
    item_line(3, "unknown", "", (0,)),
    item_line(4, "Star Wars: Episode IV (1977)", "01-Jan-1977", ()),
]


def test_movielens_items_from_a_generated_u_item(tmp_path):
    write_items(tmp_path, FAKE_ITEMS)
    table = load_movielens_items(tmp_path)
    assert isinstance(table, ItemTable) and len(table) == 4
    assert table.schema.names == ("item_id", "genres", "year", "title_words")
    corpus, vocab = table.corpus, table.vocabularies
    assert corpus.values["item_id"].tolist() == [0, 1, 2, 3]
    assert vocab["item_id"] == (1, 2, 3, 4)
    assert vocab["genres"] == GENRES and len(GENRES) == 19

    def bag(name, row):
        ids = corpus.values[name][row][corpus.kept[name][row]]
        return [vocab[name][i] for i in ids.tolist()]

    assert bag("genres", 0) == ["Comedy"]  # rows follow movie ids, not file order
    assert bag("genres", 1) == ["Action", "War"]
    assert bag("genres", 2) == ["unknown"]
    assert not bool(corpus.is_present("genres")[3])
    assert vocab["year"] == (1977, 1983, 1995)
    assert [vocab["year"][i] for i in corpus.values["year"][[0, 1, 3]].tolist()] == [1995, 1983, 1977]
    assert not bool(corpus.is_present("year")[2])
    assert bag("title_words", 0) == ["café", "crème"]  # distinct, lower-cased, no "(1995)"
    assert sorted(bag("title_words", 1)) == ["bateau", "le", "the"]
    assert bag("title_words", 2) == ["unknown"]
    assert sorted(bag("title_words", 3)) == ["episode", "iv", "star", "wars"]
    spec = table.schema["title_words"]
    assert isinstance(spec, MultiCategorical) and spec.max_len == 4
    assert spec.num_values == len(vocab["title_words"])
    assert load_movielens_items(tmp_path / "u.item").vocabularies == vocab


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([FAKE_ITEMS[0], "5|Short|line"], r"line 2: 3 '\|'-separated fields, expected 24"),
        (
            [FAKE_ITEMS[0], FAKE_ITEMS[1].replace("|1|0|0|0|0|0|0", "|x|0|0|0|0|0|0")],
            r"line 2: genre flag 'Comedy' is 'x'",
        ),
        ([FAKE_ITEMS[1], FAKE_ITEMS[0].replace("01-Jan-1983", "1983")], r"line 2: release date '1983'"),
        ([FAKE_ITEMS[1], FAKE_ITEMS[1]], r"movie id 1 appears on lines 1 and 2"),
        ([FAKE_ITEMS[1], FAKE_ITEMS[3]], r"line 2: movie id 4 is outside 1..2"),
        ([FAKE_ITEMS[1].replace("1|", "one|", 1)], r"line 1: movie id 'one'"),
        ([item_line(1, "unknown", "", (0,))], "no item has a release date"),
    ],
)
def test_movielens_errors_name_file_and_line(tmp_path, lines, message):
    write_items(tmp_path, lines)
    with pytest.raises(ConfigError, match=message) as error:
        load_movielens_items(tmp_path)
    assert "u.item" in str(error.value)


def test_movielens_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="u.item"):
        load_movielens_items(tmp_path)


def test_rating_counts(tmp_path):
    (tmp_path / "u.data").write_text("1\t2\t5\t100\n3\t2\t4\t101\n1\t1\t3\t102\n")
    counts = load_movielens_rating_counts(tmp_path, 3)
    assert counts.dtype == np.float64 and counts.tolist() == [1.0, 2.0, 0.0]
    with pytest.raises(BatchValidationError, match=r"rating 1: item 2 is outside the 1 movies"):
        load_movielens_rating_counts(tmp_path / "u.data", 1)
    (tmp_path / "bad.data").write_text("1\tx\t5\t100\n")
    with pytest.raises(ConfigError, match="bad.data"):
        load_movielens_rating_counts(tmp_path / "bad.data", 3)


@needs_ml_100k
def test_movielens_100k_items():
    table = load_movielens_items(ML_100K)
    corpus, vocab = table.corpus, table.vocabularies
    assert len(table) == 1682
    assert table.schema["item_id"] == Categorical(name="item_id", num_values=1682)
    assert table.schema["genres"].num_values == 19
    toy_story = corpus.values["title_words"][0][corpus.kept["title_words"][0]].tolist()
    assert sorted(vocab["title_words"][i] for i in toy_story) == ["story", "toy"]
    assert vocab["year"][int(corpus.values["year"][0])] == 1995
    assert not bool(corpus.is_present("year")[266])  # movie 267 "unknown" has no date
    assert int(corpus.present.all(dim=1).sum()) == 1681
    counts = load_movielens_rating_counts(ML_100K, len(table))
    assert counts.sum() == 100_000 and counts[49] == 583  # Star Wars (1977)
    # item_id is a key, year's vocabulary holds ints (the loader's choice), the rest are bags
    assert categorical_warnings(table) == []


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_csv_table_with_bags_drops_and_missing_cells(tmp_path):
    path = write(
        tmp_path / "items.csv",
        "sku,brand,tags,notes\nA7,acme, red|blue|red ,x\nB2,,green,y\nC1,zeta,,z\n",
    )
    table = read_item_table(path, multi_valued={"tags": "|"}, drop=["notes"], id_column="sku")
    assert table.schema.names == ("sku", "brand", "tags")
    assert table.schema["sku"] == Categorical(name="sku", num_values=3)
    assert table.schema["tags"] == MultiCategorical(name="tags", num_values=3, max_len=2)
    assert table.vocabularies == {
        "sku": ("A7", "B2", "C1"),
        "brand": ("acme", "zeta"),
        "tags": ("blue", "green", "red"),
    }
    corpus = table.corpus
    assert corpus.values["sku"].tolist() == [0, 1, 2]
    assert corpus.is_present("brand").tolist() == [True, False, True]
    assert corpus.is_present("tags").tolist() == [True, True, False]
    assert corpus.values["tags"][0].tolist() == [0, 2]  # a bag is a set: "red" once
    assert corpus.kept["tags"].tolist() == [[True, True], [True, False], [False, False]]


def test_read_table_drops_a_bom_and_keeps_only_kept_columns(tmp_path):
    path = write(tmp_path / "items.csv", '\ufeffsku,notes,brand\nA7,"long\nnote",acme\n\nB2,,zeta\n')
    table = read_item_table(path, drop=["notes"])
    assert table.schema.names == ("sku", "brand")
    assert table.vocabularies == {"sku": ("A7", "B2"), "brand": ("acme", "zeta")}
    with pytest.raises(
        ConfigError, match=r"items.csv', line 3: a quoted field opens here and is never closed"
    ):
        read_item_table(write(tmp_path / "items.csv", 'sku,brand\nA7,acme\nB2,"zeta\nC1,x\n'))


def test_read_tsv_table(tmp_path):
    path = write(tmp_path / "items.tsv", "genre\tyear\nrock\t1990\npop\t1990\nrock\t\n")
    table = read_item_table(path)
    assert table.vocabularies == {"genre": ("pop", "rock"), "year": ("1990",)}
    assert table.corpus.values["genre"].tolist() == [1, 0, 1]
    assert table.corpus.is_present("year").tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("name", "text", "kwargs", "error", "message"),
    [
        ("t.txt", "a\n1\n", {}, ConfigError, r"unknown extension '.txt'"),
        ("t.csv", "a,b\n1,2\n3\n", {}, ConfigError, r"line 3: 1 fields, the header has 2"),
        ("t.csv", "a,a\n1,2\n", {}, ConfigError, r"line 1: column 'a' appears twice"),
        (
            "t.csv",
            "a,release date\n1,2\n",
            {},
            ConfigError,
            r"column name 'release date' is not an identifier",
        ),
        (
            "t.csv",
            "a,b\n1,2\n",
            {"multi_valued": {"c": "|"}},
            UnknownNameError,
            r"multi-valued column .* 'c'",
        ),
        ("t.csv", "a,b\n1,2\n", {"drop": ["bb"]}, UnknownNameError, r"did you mean 'b'"),
        ("t.csv", "a,b\n1,2\n", {"multi_valued": {"b": ""}}, ConfigError, r"separator of column 'b'"),
        ("t.csv", "a,b\n1,2\n", {"drop": ["a", "b"]}, ConfigError, "every column is dropped"),
        ("t.csv", "a,b\n1,\n2,\n", {}, BatchValidationError, r"column 'b' has no value"),
        (
            "t.csv",
            "a,b\n1,2\n1,3\n",
            {"id_column": "a"},
            BatchValidationError,
            r"repeats key '1' on lines 2 and 3",
        ),
        (
            "t.csv",
            "a,b\n1,2\n,3\n",
            {"id_column": "a"},
            BatchValidationError,
            r"line 3: id column 'a' is empty",
        ),
        ("t.csv", "a,b\n1,2\n", {"id_column": "z"}, ConfigError, r"id_column 'z'"),
        ("t.csv", "", {}, ConfigError, "is empty"),
        ("t.csv", "a,b\n", {}, ConfigError, "no item rows"),
    ],
)
def test_item_table_errors_name_file_line_and_column(tmp_path, name, text, kwargs, error, message):
    path = write(tmp_path / name, text)
    with pytest.raises(error, match=message) as raised:
        read_item_table(path, **kwargs)
    if error is not UnknownNameError:
        assert name in str(raised.value)


def test_item_table_checks_its_vocabularies(tmp_path):
    table = read_item_table(write(tmp_path / "t.csv", "a,b\nx,y\nz,y\n"))
    with pytest.raises(BatchValidationError, match="'a' has 2 ids but a vocabulary of 1"):
        ItemTable(table.schema, table.corpus, {"a": ("x",), "b": ("y",)})
    with pytest.raises(UnknownNameError, match="'c'"):
        ItemTable(table.schema, table.corpus, {**table.vocabularies, "c": ()})


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7)), max_size=40), st.integers(6, 9))
@settings(max_examples=40, deadline=None)
def test_pad_bags_matches_a_per_row_reference(pairs, num_rows):
    rows = np.array([r for r, _ in pairs], dtype=np.int64)
    ids = np.array([i for _, i in pairs], dtype=np.int64)
    padded = pad_bags(rows, ids, num_rows)
    expected = [sorted({i for r, i in pairs if r == row}) for row in range(num_rows)]
    assert padded.shape == (num_rows, max(1, max(map(len, expected))))
    for row, bag in enumerate(expected):
        assert padded[row].tolist() == bag + [-1] * (padded.shape[1] - len(bag))
    assert torch.as_tensor(padded).dtype == torch.int64

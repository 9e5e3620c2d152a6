"""Your own tables as a RecDataset (augkit.data.tables)."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from augkit import Categorical, ConfigError, MultiCategorical, UnknownNameError
from augkit.data import LoadedTables, RecDataset, TablesConfig, load_tables, read_tables


def datasets_dir() -> Path:
    return Path(
        os.environ.get("AUGKIT_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )


AMAZON_HIN = datasets_dir() / "amazon-hin"

AMAZON_HIN_TOML = """
name = "amazon-hin"

[interactions]   # user_id <tab> item_id <tab> rating <tab> unix time; every rating counts
path = "user_item.dat"
header = false
user = 0
item = 1
timestamp = 3

[[items]]        # item_id,category_id: several lines per item
path = "item_category.dat"
sep = ","
header = false
key = 0
form = "long"
features.category = { type = "multi_categorical", column = 1 }

[[items]]        # item_id,brand_id: one line per item
path = "item_brand.dat"
sep = ","
header = false
key = 0
features.brand = { type = "categorical", column = 1 }

[[items]]        # item_id,view_id ("also viewed"): several lines per item, 1,435 items
path = "item_view.dat"
sep = ","
header = false
key = 0
form = "long"
features.also_viewed = { type = "multi_categorical", column = 1 }
"""


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def bag(table, name: str, row: int) -> list[str]:
    """Raw values of multi-valued feature `name` of `row`."""
    corpus = table.corpus
    ids = corpus.values[name][row][corpus.kept[name][row]]
    return [table.vocabularies[name][i] for i in ids.tolist()]


def value(table, name: str, row: int) -> str | None:
    """Raw value of categorical feature `name` of `row` (None when missing)."""
    if not bool(table.corpus.is_present(name)[row]):
        return None
    return table.vocabularies[name][int(table.corpus.values[name][row])]


@pytest.fixture
def shop(tmp_path: Path) -> dict:
    """A small shop: a CSV log with header, a wide CSV item file, a long TSV item file and a wide
    user file."""
    write(tmp_path / "log.csv", "who,what,when\nann,A7,30\nbob,B2,10\nann,B2,20\nann,A7,40\n")
    write(tmp_path / "items.csv", "sku,brand,tags\nA7,acme, red|blue|red \nB2,,green\nC1,zeta,\n")
    write(tmp_path / "cats.tsv", "sku\tcat\tshelf\nB2\tshoes\t3\nB2\tsport\t3\nZ9\tsport\t\nB2\tshoes\t3\n")
    write(tmp_path / "people.csv", "name,city\nbob,Oslo\ncid,Rome\n")
    return {
        "name": "shop",
        "interactions": {"path": "log.csv", "user": "who", "item": "what", "timestamp": "when"},
        "items": [
            {
                "path": "items.csv",
                "key": "sku",
                "features": {
                    "brand": {"type": "categorical", "column": "brand"},
                    "tags": {"type": "multi_categorical", "column": "tags", "separator": "|"},
                },
            },
            {
                "path": "cats.tsv",
                "key": "sku",
                "form": "long",
                "features": {
                    "cat": {"type": "multi_categorical", "column": "cat", "max_len": 3},
                    "shelf": {"type": "categorical", "column": 2},
                },
            },
        ],
        "users": [
            {"path": "people.csv", "key": "name", "features": {"city": {"type": "categorical", "column": 1}}}
        ],
    }


def test_wide_and_long_files_with_headers(tmp_path, shop):
    loaded = read_tables(shop, base_dir=tmp_path)
    assert isinstance(loaded, LoadedTables)
    items, users, data = loaded.items, loaded.users, loaded.dataset
    assert isinstance(data, RecDataset) and data.name == "shop"
    # items: union of the log and the item files, in string order (the keys are not integers)
    assert items.vocabularies["item_id"] == ("A7", "B2", "C1", "Z9")
    assert items.schema.names == ("item_id", "brand", "tags", "cat", "shelf")
    assert items.schema["tags"] == MultiCategorical(name="tags", num_values=3, max_len=2)
    assert items.schema["cat"] == MultiCategorical(name="cat", num_values=2, max_len=3)
    assert items.schema["shelf"] == Categorical(name="shelf", num_values=1)
    assert [value(items, "brand", i) for i in range(4)] == ["acme", None, "zeta", None]
    assert [bag(items, "tags", i) for i in range(4)] == [["blue", "red"], ["green"], [], []]
    assert [bag(items, "cat", i) for i in range(4)] == [[], ["shoes", "sport"], [], ["sport"]]
    assert [value(items, "shelf", i) for i in range(4)] == [None, "3", None, None]
    assert items.corpus.is_present("tags").tolist() == [True, True, False, False]
    # users: the log's users and the user file's keys
    assert users.vocabularies["user_id"] == ("ann", "bob", "cid")
    assert users.schema.names == ("user_id", "city")
    assert [value(users, "city", u) for u in range(3)] == [None, "Oslo", "Rome"]
    # the log: every event, repeats included, in file order
    log = data.interactions
    assert log.users.tolist() == [0, 1, 0, 0]
    assert log.items.tolist() == [0, 1, 1, 0]
    assert log.timestamps.tolist() == [30, 10, 20, 40]
    assert log.users.dtype == log.timestamps.dtype == torch.int64
    assert data.items is items.corpus and data.users is users.corpus
    assert load_tables(TablesConfig.from_dict(shop, base_dir=tmp_path)).num_items == 4


def test_headerless_files_by_index_and_numeric_key_order(tmp_path):
    write(tmp_path / "log.dat", "10\t9\t5\n2\t10\t4\n9\t2\t3\n")
    write(tmp_path / "brand.dat", "9,7\n10,7\n100,8\n")
    config = {
        "interactions": {"path": str(tmp_path / "log.dat"), "header": False, "user": 0, "item": 1},
        "items": [
            {
                "path": str(tmp_path / "brand.dat"),
                "sep": ",",
                "header": False,
                "key": 0,
                "features": {"brand": {"type": "categorical", "column": 1}},
            }
        ],
    }
    loaded = read_tables(config)
    assert loaded.dataset.name == "tables"
    # integer keys sort as numbers: 2 < 9 < 10 < 100
    assert loaded.items.vocabularies["item_id"] == ("2", "9", "10", "100")
    assert loaded.users.vocabularies["user_id"] == ("2", "9", "10")
    assert [value(loaded.items, "brand", i) for i in range(4)] == [None, "7", "7", "8"]
    log = loaded.dataset.interactions
    assert log.users.tolist() == [2, 0, 1] and log.items.tolist() == [1, 2, 0]
    assert log.timestamps is None
    assert loaded.users.schema.names == ("user_id",)


def test_patterns_take_values_out_of_text_cells(tmp_path):
    write(tmp_path / "log.csv", "u,m\n1,1\n1,2\n2,3\n")
    write(tmp_path / "movies.csv", 'm,title\n1,Toy Story (1995)\n2,"Story of Us, The (1999)"\n3,Heat\n')
    write(tmp_path / "tags.csv", "m,tag\n1,Funny\n1,funny \n3,Dark\n")
    title = {"type": "multi_categorical", "column": "title", "pattern": "[^\\W\\d_]+", "lowercase": True}
    config = {
        "interactions": {"path": str(tmp_path / "log.csv"), "user": "u", "item": "m"},
        "items": [
            {"path": str(tmp_path / "movies.csv"), "key": "m", "features": {
                "year": {"type": "categorical", "column": "title", "pattern": "\\((\\d{4})\\)\\s*$"}, "words": title}},
            {"path": str(tmp_path / "tags.csv"), "key": "m", "form": "long",
             "features": {"tags": {"type": "multi_categorical", "column": "tag", "lowercase": True}}},
        ],
    }
    items = read_tables(config).items
    assert [value(items, "year", i) for i in range(3)] == ["1995", "1999", None]  # no match: missing
    vocabulary = items.vocabularies["words"]
    words = [[vocabulary[j] for j in row if j < len(vocabulary)] for row in items.corpus.values["words"].tolist()]  # padding: the default id
    assert words == [["story", "toy"], ["of", "story", "the", "us"], ["heat"]]  # a bag is a set, in vocabulary order
    assert items.vocabularies["tags"] == ("dark", "funny")


def test_patterns_with_optional_groups_decomposed_letters_and_case_folding(tmp_path):
    write(tmp_path / "log.csv", "u,m\n1,1\n1,2\n2,3\n")
    write(tmp_path / "movies.csv", "m,title\n1,Ame\u0301lie (2001)\n2,Straße\n3,STRASSE x\n")
    config = {
        "interactions": {"path": str(tmp_path / "log.csv"), "user": "u", "item": "m"},
        "items": [{"path": str(tmp_path / "movies.csv"), "key": "m", "features": {
            "year": {"type": "categorical", "column": "title", "pattern": "x|\\((\\d{4})\\)"},
            "words": {"type": "multi_categorical", "column": "title", "pattern": "[^\\W\\d_]+", "lowercase": True}}}],
    }
    items = read_tables(config).items
    assert [value(items, "year", i) for i in range(3)] == ["2001", None, None]  # the group left out: no value
    assert items.vocabularies["words"] == ("amélie", "strasse", "x")  # NFC first, then case-folded


def test_a_pattern_that_finds_nothing_is_named(tmp_path):
    write(tmp_path / "log.csv", "u,m\n1,1\n")
    write(tmp_path / "movies.csv", "m,title\n1,Heat\n")
    feature = {"type": "categorical", "column": "title", "pattern": "\\d*"}
    config = {"interactions": {"path": str(tmp_path / "log.csv"), "user": "u", "item": "m"},
              "items": [{"path": str(tmp_path / "movies.csv"), "key": "m", "features": {"year": feature}}]}
    with pytest.raises(ConfigError, match=r"feature 'year' has no value in any line where its pattern '\\d\*' finds one"):
        read_tables(config)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"pattern": "(a)(b)"}, "has 2 groups; give it at most one"),
        ({"pattern": "("}, "is not a regular expression: missing \\)"),
        ({"pattern": ""}, "pattern must be a non-empty string"),
        ({"lowercase": "yes"}, r"expected true or false, got 'yes' \(a string\) @ items\[0\]\.features\.v\.lowercase"),
        ({"type": "dense", "pattern": "x"}, "apply to categorical and multi_categorical features only"),
        ({"patern": "x"}, "did you mean 'pattern'"),
    ],
)
def test_bad_patterns_name_the_feature(spec, message):
    feature = {"type": "categorical", "column": "v", **spec}
    with pytest.raises((ConfigError, UnknownNameError), match=message):
        TablesConfig.from_dict({"interactions": INTERACTIONS, "items": [{**ITEMS, "features": {"v": feature}}]})


def test_latin1_file_and_quoted_cells(tmp_path):
    write(tmp_path / "log.csv", 'user,item\n"Zoë, B.",café\n', encoding="latin-1")
    config = {"interactions": {"path": "log.csv", "encoding": "latin-1", "user": "user", "item": "item"}}
    loaded = read_tables(config, base_dir=tmp_path)
    assert loaded.users.vocabularies["user_id"] == ("Zoë, B.",)
    assert loaded.items.vocabularies["item_id"] == ("café",)
    with pytest.raises(ConfigError, match=r"log.csv' is not utf-8 text .*set encoding"):
        read_tables({"interactions": {**config["interactions"], "encoding": "utf-8"}}, base_dir=tmp_path)


@given(
    bags=st.dictionaries(
        st.integers(0, 30).map(str),
        st.lists(st.sampled_from(["a", "b", "c", "d", "10", "9"]), max_size=5),
        min_size=1,
        max_size=12,
    ),
    max_len=st.integers(0, 2),
)
@settings(max_examples=25, deadline=None)
def test_long_and_wide_forms_give_the_same_bags(tmp_path_factory, bags, max_len):
    directory = tmp_path_factory.mktemp("forms")
    keys = sorted(bags)
    write(directory / "log.csv", "u,i\n" + "".join(f"u,{k}\n" for k in keys))
    long_lines = "".join(f"{k},{v}\n" for k, values in bags.items() for v in values)
    write(directory / "long.csv", "key,value\n" + long_lines)
    write(directory / "wide.csv", "key,value\n" + "".join(f"{k},{';'.join(v)}\n" for k, v in bags.items()))
    longest = max(len(set(v)) for v in bags.values())
    assume(longest > 0)  # a feature without any value is an error, tested below
    width = longest + max_len
    tables = []
    for form, extra in (("long", {}), ("wide", {"separator": ";"})):
        feature = {"type": "multi_categorical", "column": "value", "max_len": width, **extra}
        config = {
            "interactions": {"path": "log.csv", "user": "u", "item": "i"},
            "items": [{"path": f"{form}.csv", "key": "key", "form": form, "features": {"value": feature}}],
        }
        tables.append(read_tables(config, base_dir=directory).items)
    long, wide = tables
    assert long.vocabularies == wide.vocabularies
    assert long.schema == wide.schema and long.schema["value"].max_len == width
    assert torch.equal(long.corpus.values["value"], wide.corpus.values["value"])
    assert torch.equal(long.corpus.kept["value"], wide.corpus.kept["value"])
    ids = long.vocabularies["item_id"]
    assert list(ids) == sorted(keys, key=int)
    for row, key in enumerate(ids):
        assert bag(long, "value", row) == sorted(set(bags[key]), key=long.vocabularies["value"].index)


def test_parquet_matches_csv(tmp_path, shop):
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow: pip install augkit[parquet]")
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow: pip install augkit[parquet]")
    stamps = pa.array([30, 10, 20, 40], type=pa.timestamp("s"))
    log = pa.table({"who": ["ann", "bob", "ann", "ann"], "what": ["A7", "B2", "B2", "A7"], "when": stamps})
    pq.write_table(log, tmp_path / "log.parquet")
    items = pa.table(
        {
            "sku": ["A7", "B2", "C1"],
            "brand": ["acme", None, "zeta"],
            "tags": [" red|blue|red ", "green", None],
        }
    )
    pq.write_table(items, tmp_path / "items.parquet")
    config = {
        **shop,
        "interactions": {**shop["interactions"], "path": "log.parquet"},
        "items": [{**shop["items"][0], "path": "items.parquet"}, shop["items"][1]],
    }
    from_parquet, from_csv = read_tables(config, base_dir=tmp_path), read_tables(shop, base_dir=tmp_path)
    assert from_parquet.items.vocabularies == from_csv.items.vocabularies
    for name in from_csv.items.schema.names:
        assert torch.equal(from_parquet.items.corpus.values[name], from_csv.items.corpus.values[name])
    assert from_parquet.dataset.interactions.timestamps.tolist() == [30, 10, 20, 40]
    with pytest.raises(
        ConfigError, match=r"log.parquet', row 2, column 'who': empty user id, which is required"
    ):
        pq.write_table(
            log.set_column(0, "who", pa.array(["ann", None, "ann", "ann"])), tmp_path / "log.parquet"
        )
        read_tables(config, base_dir=tmp_path)
    with pytest.raises(UnknownNameError, match=r"column of '.*items.parquet' 'brnd'; did you mean 'brand'"):
        feature = {"type": "categorical", "column": "brnd"}
        read_tables(
            {**config, "items": [{"path": "items.parquet", "key": "sku", "features": {"b": feature}}]},
            base_dir=tmp_path,
        )


def test_parquet_without_pyarrow_says_to_install_it(tmp_path, monkeypatch):
    write(tmp_path / "log.parquet", "not really parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ConfigError, match=r"log.parquet' needs pyarrow: pip install pyarrow"):
        load_tables({"interactions": {"path": "log.parquet", "user": "u", "item": "i"}}, base_dir=tmp_path)


LOG = "u,i,t\na,x,1\nb,y,2\n"


@pytest.mark.parametrize(
    ("files", "interactions", "items", "error", "message"),
    [
        ({}, {}, [], ConfigError, r"table file '.*log.csv' does not exist"),
        (
            {"log.csv": "u,i,t\na,x,1\nb,y\n"},
            {},
            [],
            ConfigError,
            r"log.csv', line 3: 2 fields, the header has 3",
        ),
        (
            {"log.csv": "a,x,1\n\nb,y,2,9\n"},
            {"header": False, "user": 0, "item": 1, "timestamp": 2},
            [],
            ConfigError,
            r"log.csv', line 3: 4 fields, line 1 has 3",
        ),
        (
            {"log.csv": "u,i,t\na,x,1\n,y,2\n"},
            {},
            [],
            ConfigError,
            r"log.csv', line 3, column 'u': empty user id, which is required",
        ),
        (
            {"log.csv": "u,i,t\na,x,1\nb,y,2.5\n"},
            {},
            [],
            ConfigError,
            r"log.csv', line 3, column 't': '2.5' is not an integer",
        ),
        (
            {"log.csv": "u,i,t\na,x,1\nb,y,\n"},
            {},
            [],
            ConfigError,
            r"line 3, column 't': empty timestamp, which is required",
        ),
        (
            {"log.csv": "u,item,t\na,x,1\n"},
            {"item": "iten"},
            [],
            UnknownNameError,
            r"column of '.*log.csv' 'iten'; did you mean 'item'",
        ),
        ({"log.csv": "u,i,t\n"}, {}, [], ConfigError, r"log.csv' has no data after its header"),
        ({"log.csv": ""}, {}, [], ConfigError, r"log.csv' is empty; expected a header line"),
        (
            {"log.csv": "u,i,i\na,x,1\n"},
            {"timestamp": None},
            [],
            ConfigError,
            r"column 'i' appears twice in the header",
        ),
        (
            {"log.csv": LOG, "f.csv": "k,v\nx,1\nx,2\n"},
            {},
            [{"path": "f.csv", "key": "k", "features": {"v": {"type": "categorical", "column": "v"}}}],
            ConfigError,
            r"f.csv', column 'k': item 'x' is on lines 2 and 3 of a wide-form file",
        ),
        (
            {"log.csv": LOG, "f.csv": "k,v\nx,1\ny,1\nx,2\n"},
            {},
            [
                {
                    "path": "f.csv",
                    "key": "k",
                    "form": "long",
                    "features": {"v": {"type": "categorical", "column": "v"}},
                }
            ],
            ConfigError,
            r"f.csv', column 'v': item 'x' has two values of categorical feature 'v', '1' \(line 2\) and '2' \(line 4\)",
        ),
        (
            {"log.csv": LOG, "f.csv": "k,v\nx,1\nx,2\nx,3\n"},
            {},
            [
                {
                    "path": "f.csv",
                    "key": "k",
                    "form": "long",
                    "features": {"v": {"type": "multi_categorical", "column": "v", "max_len": 2}},
                }
            ],
            ConfigError,
            r"f.csv', line 2, column 'v': item 'x' has 3 values of 'v', more than max_len=2",
        ),
        (
            {"log.csv": LOG, "f.csv": "k,v\nx,\n"},
            {},
            [{"path": "f.csv", "key": "k", "features": {"v": {"type": "categorical", "column": "v"}}}],
            ConfigError,
            r"f.csv', column 'v': feature 'v' has no value in any line",
        ),
        (
            {"log.csv": LOG, "f.csv": "k,v\nx,1\n,2\n"},
            {},
            [{"path": "f.csv", "key": "k", "features": {"v": {"type": "categorical", "column": "v"}}}],
            ConfigError,
            r"f.csv', line 3, column 'k': empty item key, which is required",
        ),
        (
            {"log.csv": LOG, "f.csv": "x,1\n"},
            {},
            [
                {
                    "path": "f.csv",
                    "header": False,
                    "key": 0,
                    "features": {"v": {"type": "categorical", "column": 2}},
                }
            ],
            ConfigError,
            r"f.csv' has 2 columns; column index 2 is out of range",
        ),
    ],
)
def test_bad_files_name_file_line_and_column(tmp_path, files, interactions, items, error, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    config = {
        "interactions": {"path": "log.csv", "user": "u", "item": "i", "timestamp": "t", **interactions},
        "items": items,
    }
    config["interactions"] = {k: v for k, v in config["interactions"].items() if v is not None}
    with pytest.raises(error, match=message):
        read_tables(config, base_dir=tmp_path)


FEATURE = {"type": "categorical", "column": "v"}
ITEMS = {"path": "f.csv", "key": "k", "features": {"v": FEATURE}}
INTERACTIONS = {"path": "log.csv", "user": "u", "item": "i"}


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        (
            {"interactions": INTERACTIONS, "itemz": []},
            ConfigError,
            r"^unknown key 'itemz'; did you mean 'items'\? \(valid: interactions, items, users, key_type, name\)$",
        ),
        ({"items": []}, ConfigError, r"^required key 'interactions' is missing$"),
        ([], ConfigError, r"^expected a table, got \[\] \(a list\)$"),
        (
            {"interactions": {**INTERACTIONS, "usr": 0}},
            ConfigError,
            r"unknown key 'usr'; did you mean 'user'\? .* @ interactions$",
        ),
        ({"interactions": {"user": "u", "item": "i"}}, ConfigError, r"^required key 'path' is missing @ interactions$"),
        (
            {"interactions": {**INTERACTIONS, "header": False}},
            ConfigError,
            r"user 'u' is a name but header = false; give a 0-based column index @ interactions\.user$",
        ),
        (
            {"interactions": {**INTERACTIONS, "header": "no"}},
            ConfigError,
            r"expected true or false, got 'no' \(a string\) @ interactions\.header$",
        ),
        (
            {"interactions": {**INTERACTIONS, "sep": ";;"}},
            ConfigError,
            r"sep must be a single character, got ';;' @ interactions\.sep$",
        ),
        (
            {"interactions": {**INTERACTIONS, "path": "log.txt"}},
            ConfigError,
            r"cannot tell the separator of 'log.txt'.*set sep .* @ interactions$",
        ),
        (
            {"interactions": {**INTERACTIONS, "path": "log.parquet", "sep": ","}},
            ConfigError,
            r"is Parquet: 'sep' and 'header' do not apply",
        ),
        (
            {"interactions": {**INTERACTIONS, "encoding": "klingon"}},
            ConfigError,
            r"encoding 'klingon' is not a known codec @ interactions\.encoding$",
        ),
        (
            {"interactions": {**INTERACTIONS, "item": -1}},
            ConfigError,
            r"item must be a column name or a 0-based column index, got -1 @ interactions\.item$",
        ),
        (
            {"interactions": {**INTERACTIONS, "item": True}},
            ConfigError,
            r"expected a column name or a 0-based column index, got True \(a boolean\) @ interactions\.item$",
        ),
        (
            {"interactions": INTERACTIONS, "items": ITEMS},
            ConfigError,
            r"expected a list of tables \(\[\[\.\.\.\]\] in TOML\), got .* \(a table\) @ items$",
        ),
        (
            {"interactions": INTERACTIONS, "users": [{**ITEMS, "kye": 0}]},
            ConfigError,
            r"unknown key 'kye'; did you mean 'key'\? .* @ users\[0\]$",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{"path": "f.csv", "features": {"v": FEATURE}}]},
            ConfigError,
            r"^required key 'key' is missing @ items\[0\]$",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{**ITEMS, "header": False, "key": 0}]},
            ConfigError,
            r"features\.v\.column 'v' is a name but header = false.* @ items\[0\]\.features$",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{**ITEMS, "form": "tall"}]},
            ConfigError,
            r"form must be one of 'wide', 'long', got 'tall' @ items\[0\]\.form$",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{**ITEMS, "features": {}}]},
            ConfigError,
            r"features is empty; name at least one feature @ items\[0\]\.features$",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{**ITEMS, "features": ["v"]}]},
            ConfigError,
            r"expected a table of feature name -> options, got \['v'\] \(a list\) @ items\[0\]\.features$",
        ),
        (
            {
                "interactions": INTERACTIONS,
                "items": [{**ITEMS, "features": {"v": {**FEATURE, "colum": "v"}}}],
            },
            ConfigError,
            r"unknown key 'colum'; did you mean 'column'\? .* @ items\[0\]\.features\.v$",
        ),
        (
            {
                "interactions": INTERACTIONS,
                "items": [{**ITEMS, "features": {"v": {**FEATURE, "type": "categorial"}}}],
            },
            ConfigError,
            r"unknown feature type 'categorial'; did you mean 'categorical'\? .* @ items\[0\]\.features\.v\.type$",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{**ITEMS, "features": {"v": {"type": "categorical"}}}]},
            ConfigError,
            r"^required key 'column' is missing @ items\[0\]\.features\.v$",
        ),
        (
            {
                "interactions": INTERACTIONS,
                "items": [{**ITEMS, "features": {"v": {**FEATURE, "max_len": 3}}}],
            },
            ConfigError,
            r"max_len applies to multi_categorical features only @ items\[0\]\.features\.v\.max_len$",
        ),
        (
            {
                "interactions": INTERACTIONS,
                "items": [{**ITEMS, "features": {"v": {"type": "multi_categorical", "column": "v"}}}],
            },
            ConfigError,
            r"multi_categorical feature 'v' of a wide-form file needs a separator.* @ items\[0\]$",
        ),
        (
            {
                "interactions": INTERACTIONS,
                "items": [
                    {
                        **ITEMS,
                        "form": "long",
                        "features": {"v": {"type": "multi_categorical", "column": "v", "max_len": 0}},
                    }
                ],
            },
            ConfigError,
            r"max_len must be an integer >= 1, got 0 @ items\[0\]\.features\.v\.max_len$",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{**ITEMS, "features": {"item_id": FEATURE}}]},
            ConfigError,
            r"'item_id' is reserved",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{**ITEMS, "features": {"class": FEATURE}}]},
            ConfigError,
            r"feature name 'class' is not an identifier",
        ),
        (
            {"interactions": INTERACTIONS, "items": [ITEMS, {**ITEMS, "path": "g.csv"}]},
            ConfigError,
            r"item feature 'v' is defined twice, in 'f.csv' and 'g.csv'",
        ),
        ({"interactions": INTERACTIONS, "name": ""}, ConfigError, r"name must be a non-empty string"),
        (
            {"interactions": {"path": "log.csv", "user": "u"}},
            ConfigError,
            r"^required key 'item' is missing @ interactions$",
        ),
        (
            {"interactions": INTERACTIONS, "items": [{"path": "f.csv", "features": {}}]},
            ConfigError,
            r"^required key 'key' is missing @ items\[0\]$",
        ),
    ],
)
def test_bad_configs_name_the_key(config, error, message):
    with pytest.raises(error, match=message):
        TablesConfig.from_dict(config)


@pytest.mark.skipif(
    not (AMAZON_HIN / "user_item.dat").is_file(),
    reason=f"amazon-hin not found at {AMAZON_HIN} (set AUGKIT_DATASETS to the datasets folder)",
)
def test_amazon_hin_from_the_documented_toml():
    loaded = read_tables(tomllib.loads(AMAZON_HIN_TOML), base_dir=AMAZON_HIN)
    data, items = loaded.dataset, loaded.items
    assert (data.name, data.num_users, data.num_items, len(data.interactions)) == (
        "amazon-hin",
        6170,
        2753,
        195_791,
    )
    assert items.schema.features == (
        Categorical(name="item_id", num_values=2753),
        MultiCategorical(name="category", num_values=22, max_len=4),
        Categorical(name="brand", num_values=334),
        MultiCategorical(name="also_viewed", num_values=3857, max_len=4),
    )
    # raw ids are 0..n-1, so dense ids equal them
    assert items.vocabularies["item_id"][:3] == ("0", "1", "2")
    assert data.interactions.items[:3].tolist() == [2645, 2645, 2645]
    assert data.interactions.users[0].item() == 2836
    assert data.interactions.timestamps[0].item() == 1386201600
    present = items.corpus.present.sum(dim=0).tolist()
    assert present == [2753, 2753, 2753, 1435]
    assert bag(items, "category", 0) == ["0", "1"]
    assert np.bincount(data.interactions.users.numpy()).min() == 11

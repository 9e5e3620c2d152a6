"""Data files (augkit.data.tables, augkit.data.items, augkit.data.delimited): streaming reads,
byte-order marks, quotes, key types and NFC keys, the join report, ISO-8601 timestamps, dense
features, Parquet list columns and the `augkit mi` column warnings."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import unicodedata
from pathlib import Path

import pytest
import torch

from augkit import ConfigError, Dense, MultiCategorical
from augkit.data import RecDataset, TablesConfig, read_item_table, read_tables
from augkit.data.items import categorical_warnings
from augkit.data.sources import load_with_keys
from augkit.train.config import config_from_dict


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def tables(*, items: bool = False, feature: dict | None = None, interactions: dict | None = None, **top):
    """A config of `log.csv` (columns u, i) and, with `items`, of `f.csv` (key k, feature v)."""
    config: dict = {
        "interactions": {"path": "log.csv", "user": "u", "item": "i", **(interactions or {})},
        **top,
    }
    if items:
        feature = feature or {"type": "categorical", "column": "v"}
        config["items"] = [{"path": "f.csv", "key": "k", "features": {"v": feature}}]
    return config


def load(tmp_path: Path, log: str, items: str | None = None, **options):
    """`read_tables` of `log` as `log.csv` and `items` as `f.csv` (see `tables`)."""
    write(tmp_path / "log.csv", log)
    if items is not None:
        write(tmp_path / "f.csv", items)
    return read_tables(tables(items=items is not None, **options), base_dir=tmp_path)


def raw(table, name: str, row: int):
    """Raw value of categorical feature `name` of `row` (None when missing)."""
    if not bool(table.corpus.is_present(name)[row]):
        return None
    return table.vocabularies[name][int(table.corpus.values[name][row])]


# -- memory ----------------------------------------------------------------------------------
READ_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import re, sys
    from pathlib import Path
    from augkit.data import read_item_table, read_tables
    path = sys.argv[1]
    config = {"interactions": {"path": path, "user": "user", "item": "item"}}
    dataset = read_tables(config).dataset
    table = read_item_table(path, drop=["notes"])
    assert len(dataset.interactions) == len(table) == int(sys.argv[2])
    print(re.search(r"VmHWM:\\s*(\\d+) kB", Path("/proc/self/status").read_text())[1])
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_memory_follows_the_used_cells_not_the_longest_cell(tmp_path):
    """A 2 MB file with one 130,000-character cell in an unused column: a reader that makes one
    array of the whole table needs rows x columns x that cell (over 200 GiB). The peak is the
    child's VmHWM (its own address space), not ``ru_maxrss``, which on Linux keeps the high-water
    mark of the forking pytest process across exec; importing augkit (torch) is about 225 MB."""
    rows = 160_000
    lines = ["user,item,notes"]
    lines += [f"u{r % 997},i{r % 1009},n" for r in range(rows)]
    lines[50] = lines[50][:-1] + "x" * 130_000
    path = write(tmp_path / "log.csv", "\n".join(lines) + "\n")
    assert 1.9e6 < path.stat().st_size < 2.3e6
    done = subprocess.run(
        [sys.executable, "-c", READ_IN_A_FRESH_PROCESS, str(path), str(rows)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.split()[-1]) / 1024
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"


# -- the text reader -------------------------------------------------------------------------
def test_a_utf8_byte_order_mark_is_no_part_of_a_name_or_key(tmp_path):
    write(tmp_path / "log.csv", "\ufeffu,i\nann,x\n")
    write(tmp_path / "bare.csv", "\ufeffann,x\nbob,y\n")
    write(tmp_path / "f.csv", "\ufeffk,v\nx,1\n")
    loaded = read_tables(tables(items=True), base_dir=tmp_path)
    assert loaded.users.vocabularies["user_id"] == ("ann",)
    assert raw(loaded.items, "v", 0) == "1"
    bare = {"interactions": {"path": "bare.csv", "header": False, "user": 0, "item": 1}}
    assert read_tables(bare, base_dir=tmp_path).users.vocabularies["user_id"] == ("ann", "bob")
    assert read_item_table(tmp_path / "f.csv").schema.names == ("k", "v")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('u,i\na,x\nb,"y\nc,z\nd,w\n', 3),  # swallows the rest of the file: as wide as the header
        ('u,i,t\na,x,1\n"b,y,2\nc,z,3\n', 3),  # swallows it into one field: too narrow
        ('u,i\na,"x\ny"\nb,"z', 4),  # after a closed multi-line cell, at the end of the file
    ],
)
def test_an_unterminated_quote_is_reported_where_it_opens(tmp_path, text, line):
    message = rf"log.csv', line {line}: a quoted field opens here and is never closed"
    write(tmp_path / "log.csv", text)
    with pytest.raises(ConfigError, match=message):
        read_tables(tables(), base_dir=tmp_path)
    with pytest.raises(ConfigError, match=message):
        read_item_table(tmp_path / "log.csv")


def test_closed_quotes_and_a_missing_final_newline_read_as_written(tmp_path):
    loaded = load(tmp_path, 'u,i,t\na,"x\ny",1\nb,"z",2\nc,"w ""q""",3')
    assert loaded.items.vocabularies["item_id"] == ('w "q"', "x\ny", "z")
    with pytest.raises(ConfigError, match=r"log.csv', line 4, column 't': '2.5' is not an integer"):
        load(tmp_path, 'u,i,t\na,"x\ny",1\nb,z,2.5\n', interactions={"timestamp": "t"})


def test_item_table_lines_count_blank_lines(tmp_path):
    path = write(tmp_path / "t.csv", "a,b\n\n1,2\n1,3\n")
    with pytest.raises(Exception, match=r"repeats key '1' on lines 3 and 4"):
        read_item_table(path, id_column="a")


# -- keys ------------------------------------------------------------------------------------
def test_keys_are_nfc_normalised(tmp_path):
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    loaded = load(tmp_path, f"u,i\nann,{composed}\n", f"k,v\n{decomposed},1\n")
    assert loaded.items.vocabularies["item_id"] == (composed,)
    assert raw(loaded.items, "v", 0) == "1"
    assert unicodedata.is_normalized("NFC", loaded.items.vocabularies["item_id"][0])


def test_key_type_int_matches_leading_zeros(tmp_path):
    loaded = load(tmp_path, "u,i\n7,01\n8,2\n", "k,v\n1,a\n002,b\n", key_type={"item": "int"})
    assert loaded.items.vocabularies["item_id"] == ("1", "2")
    assert [raw(loaded.items, "v", i) for i in range(2)] == ["a", "b"]
    assert loaded.warnings == ()
    both = load(tmp_path, "u,i\n007,01\n", "k,v\n1,a\n", key_type="int")
    assert both.users.vocabularies["user_id"] == ("7",)


def test_no_matching_key_is_an_error_that_offers_key_type_int(tmp_path):
    with pytest.raises(ConfigError) as error:
        load(tmp_path, "u,i\na,01\nb,02\n", "k,v\n1,x\n2,y\n")
    message = str(error.value)
    assert message.startswith("items[0] '")
    for part in ("f.csv', column 'k'", "none of its 2 item keys is in the log", "log.csv' (column 'i')"):
        assert part in message
    assert "e.g. '1' here, '01' in the log" in message and 'key_type = "int"' in message
    with pytest.raises(ConfigError, match=r"none of its 1 item keys .*check that key names the column"):
        load(tmp_path, "u,i\na,x\n", "k,v\ny,1\n")


def test_a_non_integer_key_under_key_type_int_names_file_line_and_column(tmp_path):
    with pytest.raises(ConfigError, match=r"log.csv', line 3, column 'i': item id 'x1' is not an integer"):
        load(tmp_path, "u,i\na,1\nb,x1\n", key_type="int")
    with pytest.raises(ConfigError, match=r"f.csv', line 2, column 'k': item key '1.0' is not an integer"):
        load(tmp_path, "u,i\na,1\n", "k,v\n1.0,x\n", key_type={"item": "int"})


@pytest.mark.parametrize(
    ("key_type", "error", "message"),
    [
        (
            "integer",
            ConfigError,
            r"^must be one of 'str', 'int' or a table \{user, item\}, got 'integer' @ key_type$",
        ),
        ({"itme": "int"}, ConfigError, r"^unknown key 'itme'; did you mean 'item'\? \(valid: user, item\) @ key_type$"),
        ({"user": "float"}, ConfigError, r"^user must be one of 'str', 'int', got 'float' @ key_type\.user$"),
        (["int"], ConfigError, r"^expected one of 'str', 'int' or a table \{user, item\}, got \['int'\] \(a list\) @ key_type$"),
    ],
)
def test_bad_key_types_name_the_key(key_type, error, message):
    with pytest.raises(error, match=message):
        TablesConfig.from_dict(tables(key_type=key_type))


# -- the join report -------------------------------------------------------------------------
def test_the_join_report_counts_unmatched_keys_both_ways(tmp_path):
    write(tmp_path / "people.csv", "name,city\nbob,Oslo\ncid,Rome\n")
    users = [
        {"path": "people.csv", "key": "name", "features": {"city": {"type": "categorical", "column": 1}}}
    ]
    loaded = load(tmp_path, "u,i\nann,A\nbob,B\nann,C\n", "k,v\nA,1\nD,2\nE,3\n", users=users)
    file, people = repr(str(tmp_path / "f.csv")), repr(str(tmp_path / "people.csv"))
    log = repr(str(tmp_path / "log.csv"))
    assert loaded.warnings == (
        f"items[0] {file}: no row for 2 of the 3 logged items; they lack its feature 'v'",
        f"items[0] {file}: no event for 2 of its 3 items in the log {log}; they are items without interactions",
        f"users[0] {people}: no row for 1 of the 2 logged users; they lack its feature 'city'",
        f"users[0] {people}: no event for 1 of its 2 users in the log {log}; they are users without interactions",
    )
    assert loaded.dataset.warnings == loaded.warnings
    assert load(tmp_path, "u,i\nann,A\n", "k,v\nA,1\n").warnings == ()


def test_rec_dataset_warnings_are_a_keyword_field_that_defaults_to_none(tmp_path):
    data = load(tmp_path, "u,i\nann,A\n").dataset
    fields = (data.name, data.items, data.users, data.interactions)
    assert RecDataset(*fields).warnings == ()
    assert RecDataset(*fields, warnings=["look"]).warnings == ("look",)
    with pytest.raises(TypeError):
        RecDataset(*fields, ("look",))


# -- timestamps ------------------------------------------------------------------------------
def test_iso_8601_timestamps_become_unix_seconds(tmp_path):
    stamps = [
        "2023-11-15T09:30:00Z",
        "2023-11-15T10:30:00+01:00",  # the same instant
        "2023-11-15 09:30:00.75",  # naive: UTC; fractions of a second are floored
        "2023-11-15",
        "1969-12-31T23:59:59.5",
    ]
    log = "u,i,t\n" + "".join(f"a,x,{stamp}\n" for stamp in stamps)
    loaded = load(tmp_path, log, interactions={"timestamp": "t"})
    times = loaded.dataset.interactions.timestamps
    assert times.dtype == torch.int64
    assert times.tolist() == [1700040600, 1700040600, 1700040600, 1700006400, -1]


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        (
            ["1700000000", "2023-11-15"],
            (
                r"line 3, column 't': '2023-11-15' is not an integer; the first timestamp "
                r"\('1700000000', line 2\) is Unix seconds, so every one must be"
            ),
        ),
        (
            ["2023-11-15", "1700000000"],
            (
                r"line 3, column 't': '1700000000' is not an ISO-8601 time; the first timestamp "
                r"\('2023-11-15', line 2\) is, so every one must be"
            ),
        ),
        (["2023-11-15", "2023-11-31"], r"line 3, column 't': '2023-11-31' is not an ISO-8601 time"),
        (
            ["yesterday", "2023-11-15"],
            r"line 2, column 't': 'yesterday' is neither an integer \(Unix seconds\) nor an ISO-8601 time",
        ),
    ],
)
def test_mixed_or_invalid_timestamps_name_file_line_column_and_value(tmp_path, cells, message):
    log = "u,i,t\n" + "".join(f"a,x,{cell}\n" for cell in cells)
    with pytest.raises(ConfigError, match=r"log.csv', " + message):
        load(tmp_path, log, interactions={"timestamp": "t"})


# -- dense features --------------------------------------------------------------------------
PRICE = {"type": "dense", "column": "v"}


def test_dense_features_are_float32_with_missing_values(tmp_path):
    loaded = load(tmp_path, "u,i\na,A\na,B\na,C\na,D\n", "k,v\nA, 9.5\nB,\nC,-1e3\n", feature=PRICE)
    items = loaded.items
    assert items.schema["v"] == Dense(name="v", dim=1)
    assert "v" not in items.vocabularies
    values = items.corpus.values["v"]
    assert values.dtype == torch.float32 and values.shape == (4, 1)
    assert values[:, 0].tolist() == [9.5, 0.0, -1000.0, 0.0]
    assert items.corpus.is_present("v").tolist() == [True, False, True, False]  # empty cell, no row


@pytest.mark.parametrize(
    ("items", "form", "message"),
    [
        ("k,v\nA,1\nB,cheap\n", "wide", r"f.csv', line 3, column 'v': 'cheap' is not a number"),
        ("k,v\nA,inf\n", "wide", r"f.csv', line 2, column 'v': 'inf' is not a finite number"),
        ("k,v\nA,1e40\n", "wide", r"line 2, column 'v': '1e40' is not a finite number \(that fits float32\)"),
        ("k,v\nA,\n", "wide", r"f.csv', column 'v': feature 'v' has no value in any line"),
        (
            "k,v\nA,1\nB,3\nA,2\n",
            "long",
            r"f.csv', column 'v': item 'A' has two values of dense feature 'v', '1' \(line 2\) and '2' \(line 4\)",
        ),
    ],
)
def test_bad_dense_cells_name_file_line_column_and_value(tmp_path, items, form, message):
    write(tmp_path / "log.csv", "u,i\na,A\n")
    write(tmp_path / "f.csv", items)
    config = tables(items=True, feature=PRICE)
    config["items"][0]["form"] = form
    with pytest.raises(ConfigError, match=message):
        read_tables(config, base_dir=tmp_path)


def test_a_dense_feature_in_long_form_may_repeat_its_value(tmp_path):
    write(tmp_path / "log.csv", "u,i\na,A\n")
    write(tmp_path / "f.csv", "k,v\nA,2\nA,2.0\n")
    config = tables(items=True, feature=PRICE)
    config["items"][0]["form"] = "long"
    assert read_tables(config, base_dir=tmp_path).items.corpus.values["v"].tolist() == [[2.0]]
    for key in ("max_len", "separator"):
        bad = tables(items=True, feature={**PRICE, key: 2 if key == "max_len" else "|"})
        with pytest.raises(
            ConfigError, match=rf"{key} applies to multi_categorical features only @ items\[0\]\.features\.v\.{key}$"
        ):
            TablesConfig.from_dict(bad)


# -- Parquet list columns --------------------------------------------------------------------
def test_parquet_list_columns_are_bags(tmp_path):
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow: pip install augkit[parquet]")
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow: pip install augkit[parquet]")
    write(tmp_path / "log.csv", "u,i\na,A7\na,B2\n")
    write(tmp_path / "items.csv", "sku,tags\nA7, red|blue|red \nB2,green\nC1,\n")
    lists = pa.array([[" red", "blue", "red"], ["green", None], None], type=pa.list_(pa.string()))
    pq.write_table(pa.table({"sku": ["A7", "B2", "C1"], "tags": lists}), tmp_path / "items.parquet")
    tags = {"type": "multi_categorical", "column": "tags"}
    config = {
        "interactions": {"path": "log.csv", "user": "u", "item": "i"},
        "items": [{"path": "items.parquet", "key": "sku", "features": {"tags": tags}}],
    }
    from_parquet = read_tables(config, base_dir=tmp_path).items
    config["items"][0].update(path="items.csv", features={"tags": {**tags, "separator": "|"}})
    from_csv = read_tables(config, base_dir=tmp_path).items
    assert from_parquet.schema["tags"] == MultiCategorical(name="tags", num_values=3, max_len=2)
    assert from_parquet.vocabularies == from_csv.vocabularies
    assert torch.equal(from_parquet.corpus.values["tags"], from_csv.corpus.values["tags"])
    assert from_parquet.corpus.is_present("tags").tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (
            {"type": "categorical", "column": "tags"},
            (
                r"items.parquet', column 'tags': a Parquet list column holds several values per row; "
                r"categorical feature 'v' takes one"
            ),
        ),
        ({"type": "dense", "column": "tags"}, r"column 'tags': a Parquet list column .* dense feature 'v'"),
        (
            {"type": "multi_categorical", "column": "tags", "separator": "|"},
            r"column 'tags': feature 'v' reads a Parquet list column, whose values are already split",
        ),
        (
            {"type": "multi_categorical", "column": "brand"},
            r"multi_categorical feature 'v' of a wide-form file needs a separator",
        ),
    ],
)
def test_parquet_list_column_errors(tmp_path, feature, message):
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow: pip install augkit[parquet]")
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet needs pyarrow: pip install augkit[parquet]")
    write(tmp_path / "log.csv", "u,i\na,A7\n")
    table = pa.table({"sku": ["A7"], "brand": ["acme"], "tags": pa.array([["red"]])})
    pq.write_table(table, tmp_path / "items.parquet")
    config = {
        "interactions": {"path": "log.csv", "user": "u", "item": "i"},
        "items": [{"path": "items.parquet", "key": "sku", "features": {"v": feature}}],
    }
    with pytest.raises(ConfigError, match=message):
        read_tables(config, base_dir=tmp_path)


# -- augkit mi: columns that are probably not categories -------------------------------------
def test_categorical_warnings_flag_near_unique_and_numeric_looking_columns(tmp_path):
    # colour: 5 distinct values among 10 items, but each on two items, so not near-unique
    rows = [
        f"{i},s{i},{['acme', 'zeta'][i % 2]},{'abcde'[i // 2]},{9.5 + i},{i % 3}|{i % 2}" for i in range(10)
    ]
    path = write(tmp_path / "items.csv", "shop_id,sku,brand,colour,price,tags\n" + "\n".join(rows) + "\n")
    table = read_item_table(path, multi_valued={"tags": "|"})
    near_unique = (
        "is near-unique (10 of the 10 items have a value no other item has) but treated as categorical: "
        "if it is a key or free text, drop it (--drop)"
    )
    numeric = (
        "looks numeric (10 of its 10 distinct values are numbers) but is treated as categorical, each "
        'number a value of its own: if it is a quantity, read it as a dense feature (type = "dense" in '
        "a tables config)"
    )
    assert categorical_warnings(table) == [
        f"column 'sku' {near_unique}",
        f"column 'price' {near_unique}",
        f"column 'price' {numeric}",
    ]
    assert (
        categorical_warnings(read_item_table(path, drop=["sku", "price"], multi_valued={"tags": "|"})) == []
    )


# -- one encoder: `augkit mi` and `augkit train` give one column the same ids ------------------
def test_mi_item_table_and_train_tables_source_give_one_column_the_same_ids(tmp_path):
    write(tmp_path / "log.csv", "u,i\na,s1\na,s2\nb,s3\nb,s4\n")
    items = write(tmp_path / "items.csv", "sku,size,tags\ns1,10,x;y\ns2,9,y\ns3,2,z;x\ns4,10,\n")
    mi_table = read_item_table(items, multi_valued={"tags": ";"}, id_column="sku")
    config = config_from_dict({"data": {"source": "tables", "tables": {
        "interactions": {"path": str(tmp_path / "log.csv"), "user": "u", "item": "i"},
        "items": [{"path": str(items), "key": "sku", "features": {
            "size": {"type": "categorical", "column": "size"},
            "tags": {"type": "multi_categorical", "column": "tags", "separator": ";"},
        }}],
    }}})
    dataset, keys = load_with_keys(config.data)
    assert mi_table.vocabularies["size"] == keys.item_vocabularies["size"] == ("2", "9", "10")
    assert mi_table.vocabularies["tags"] == keys.item_vocabularies["tags"] == ("x", "y", "z")
    rows = keys.items.index(mi_table.vocabularies["sku"])  # the train id of each mi row
    for name in ("size", "tags"):
        assert torch.equal(dataset.items.values[name][rows], mi_table.corpus.values[name])

"""From logs to examples (augkit.data.log_examples, `augkit data examples`): history windows
against a plain reference on an ml-latest-small-shaped log (ties, users with one event), the
same output out of core under a tiny memory limit, the time cut, and bad input named."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pa = pytest.importorskip("pyarrow", reason="augkit data examples needs pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pcsv = pytest.importorskip("pyarrow.csv")

from augkit.cli import main
from augkit.data import event_columns as ec
from augkit.data import log_reader
from augkit.data.log_examples import BYTES_PER_ROW, LogColumns, build_examples
from augkit.errors import ConfigError, UnknownNameError

COLUMNS = LogColumns(user="userId", item="movieId", timestamp="timestamp", weight="rating")


def movielens_like(seed: int = 0, users: int = 300, events: int = 12_000) -> pa.Table:
    """A log shaped like ml-latest-small's ratings: skewed activity, integer ids, ratings as
    weights, coarse timestamps (many ties within a user), and some users with one event."""
    rng = np.random.default_rng(seed)
    user = np.minimum(rng.zipf(1.5, size=events), users) - 1
    user[:20] = np.arange(users, users + 20)  # twenty users with a single event
    item = rng.zipf(1.2, size=events) % 2000 + 1
    timestamp = 1_000_000 + rng.integers(0, 300, size=events) * 60
    rating = rng.integers(1, 11, size=events) / 2
    return pa.table({"userId": user, "movieId": item, "rating": rating, "timestamp": timestamp})


def reference(log: pa.Table, history: int) -> dict[tuple, list]:
    """(user, item, timestamp, row) -> the history, by a plain loop over each user's events."""
    by_user: dict[str, list] = defaultdict(list)
    rows = zip(*(log.column(c).to_pylist() for c in ("userId", "movieId", "timestamp")), strict=True)
    for row, (user, item, timestamp) in enumerate(rows):
        by_user[str(user)].append((timestamp, row, str(item)))
    out = {}
    for user, events in by_user.items():
        for timestamp, row, item in events:
            earlier = sorted(e for e in events if e[0] < timestamp)
            out[(user, item, timestamp, row)] = [e[2] for e in earlier][-history:] if history else []
    return out


def read(out: Path, part: str = "") -> pa.Table:
    files = sorted((out / part).glob("part-*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


def test_histories_match_a_plain_reference(tmp_path: Path) -> None:
    log = movielens_like()
    pcsv.write_csv(log, tmp_path / "ratings.csv")
    report = build_examples(tmp_path / "ratings.csv", tmp_path / "out", columns=COLUMNS, history=5, partitions=3)
    assert report.events == report.rows["all"] == log.num_rows
    got = read(tmp_path / "out")
    assert got.column_names == list(ec.COLUMNS)
    expected = reference(log, 5)
    # each (user, item, timestamp) may repeat: match events by their order within a user
    pending: dict[tuple, list] = defaultdict(list)
    for (user, item, timestamp, row), window in sorted(expected.items(), key=lambda kv: kv[0][3]):
        pending[(user, item, timestamp)].append(window)
    for row in got.to_pylist():
        assert row[ec.HISTORY] == pending[(row[ec.USER], row[ec.ITEM], row[ec.TIMESTAMP])].pop(0)
    assert not any(pending.values())
    weights = dict(zip(range(log.num_rows), log.column("rating").to_pylist(), strict=True))
    assert sorted(got.column(ec.WEIGHT).to_pylist()) == sorted(weights.values())
    single = got.filter(pa.compute.equal(got.column(ec.USER), "305"))
    assert single.num_rows == 1 and single.column(ec.HISTORY).to_pylist() == [[]]


def test_a_file_holds_its_users_together_in_time_order(tmp_path: Path) -> None:
    log = movielens_like(seed=1)
    pq.write_table(log, tmp_path / "ratings.parquet")
    build_examples(tmp_path / "ratings.parquet", tmp_path / "out", columns=COLUMNS, partitions=4)
    for file in sorted((tmp_path / "out").glob("part-*.parquet")):
        table = pq.read_table(file)
        users, times = table.column(ec.USER).to_pylist(), table.column(ec.TIMESTAMP).to_pylist()
        runs = [u for i, u in enumerate(users) if i == 0 or users[i - 1] != u]
        assert len(runs) == len(set(runs))
        assert all(t0 <= t1 for u0, u1, t0, t1 in zip(users, users[1:], times, times[1:], strict=False) if u0 == u1)


def test_a_small_memory_limit_gives_the_same_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many sub-partitions built in turn, and the log read in small batches, write what one
    in-memory pass writes, file by file."""
    log = movielens_like(seed=2)
    pq.write_table(log, tmp_path / "ratings.parquet", row_group_size=1000)
    whole = build_examples(tmp_path / "ratings.parquet", tmp_path / "whole", columns=COLUMNS, partitions=3)
    monkeypatch.setattr(log_reader, "BATCH_ROWS", 517)
    small = build_examples(
        tmp_path / "ratings.parquet", tmp_path / "small", columns=COLUMNS, partitions=3, memory_limit=300 * BYTES_PER_ROW
    )
    assert whole.sub_partitions == 1 and small.sub_partitions > 10
    for name in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        assert pq.read_table(tmp_path / "small" / name).equals(pq.read_table(tmp_path / "whole" / name))
    assert not list((tmp_path / "small").glob(".spill*"))


def test_the_cut_splits_events_and_keeps_earlier_history(tmp_path: Path) -> None:
    log = movielens_like(seed=3)
    pq.write_table(log, tmp_path / "ratings.parquet")
    cut = 1_000_000 + 200 * 60
    report = build_examples(tmp_path / "ratings.parquet", tmp_path / "out", columns=COLUMNS, history=3, partitions=2, cut=cut)
    train, after = read(tmp_path / "out", "train"), read(tmp_path / "out", "after")
    assert report.rows == {"train": train.num_rows, "after": after.num_rows}
    assert train.num_rows + after.num_rows == log.num_rows
    assert max(train.column(ec.TIMESTAMP).to_pylist()) < cut <= min(after.column(ec.TIMESTAMP).to_pylist())
    both = build_examples(tmp_path / "ratings.parquet", tmp_path / "all", columns=COLUMNS, history=3, partitions=2)
    assert both.rows["all"] == log.num_rows
    key = [(ec.USER, "ascending"), (ec.TIMESTAMP, "ascending"), (ec.ITEM, "ascending")]
    assert pa.concat_tables([train, after]).sort_by(key).equals(read(tmp_path / "all").sort_by(key))


def test_int_keys_and_iso_timestamps(tmp_path: Path) -> None:
    (tmp_path / "log.tsv").write_text(
        "u\ti\tt\n007\t1\t2020-01-01T00:00:10Z\n7\t02\t2020-01-01T00:00:20Z\n7\t3\t2020-01-01T00:00:20Z\n"
    )
    build_examples(tmp_path / "log.tsv", tmp_path / "out", columns=LogColumns("u", "i", "t"), key_type="int", partitions=1)
    table = read(tmp_path / "out")
    assert table.schema.field(ec.USER).type == pa.int64() and table.schema.field(ec.HISTORY).type == pa.list_(pa.int64())
    assert table.to_pylist() == [
        {"user": 7, "item": 1, "timestamp": 1577836810, "weight": 1.0, "history": []},
        {"user": 7, "item": 2, "timestamp": 1577836820, "weight": 1.0, "history": [1]},
        {"user": 7, "item": 3, "timestamp": 1577836820, "weight": 1.0, "history": [1]},
    ]


def test_bad_input_is_named(tmp_path: Path) -> None:
    good = tmp_path / "log.csv"
    good.write_text("u,i,t\n1,a,5\n")
    columns = LogColumns("u", "i", "t")
    with pytest.raises(UnknownNameError, match=r"column of '.*log.csv' 'item'"):
        build_examples(good, tmp_path / "o1", columns=LogColumns("u", "item", "t"))
    (tmp_path / "nulls.csv").write_text("u,i,t\n1,a,5\n,b,6\n")
    with pytest.raises(ConfigError, match=r"nulls.csv', column 'u', row 2: empty key"):
        build_examples(tmp_path / "nulls.csv", tmp_path / "o2", columns=columns)
    (tmp_path / "times.csv").write_text("u,i,t\n1,a,yesterday\n")
    with pytest.raises(ConfigError, match=r"times.csv', column 't': timestamps must be integers"):
        build_examples(tmp_path / "times.csv", tmp_path / "o3", columns=columns)
    pq.write_table(pa.table({"u": [[1]], "i": ["a"], "t": [1]}), tmp_path / "lists.parquet")
    with pytest.raises(ConfigError, match=r"lists.parquet', column 'u': keys must be text or integers, got type list"):
        build_examples(tmp_path / "lists.parquet", tmp_path / "o4", columns=columns)
    pq.write_table(pa.table({"u": [1], "i": ["a"], "t": [1.5]}), tmp_path / "floats.parquet")
    with pytest.raises(ConfigError, match=r"floats.parquet', column 't': timestamps must be integers, timestamps or dates, got type double"):
        build_examples(tmp_path / "floats.parquet", tmp_path / "o5", columns=columns)
    logs = tmp_path / "logs"
    logs.mkdir()
    pq.write_table(pa.table({"u": [1], "i": ["a"], "t": [1]}), logs / "a.parquet")
    (logs / "b.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match=r"cannot read .*b.parquet'"):
        build_examples(logs, tmp_path / "o6", columns=columns)
    assert not (tmp_path / "o6").exists()
    with pytest.raises(ConfigError, match=r"log .*missing.csv' does not exist"):
        build_examples(tmp_path / "missing.csv", tmp_path / "o7", columns=columns)
    (tmp_path / "many.csv").write_text("u,i,t\n" + "".join(f"{n},a,{n}\n" for n in range(1000)))
    with pytest.raises(ConfigError, match=r"would spill to \d+ files, more than 1000; raise memory_limit"):
        build_examples(tmp_path / "many.csv", tmp_path / "o8", columns=columns, partitions=3, memory_limit=1)


def test_an_existing_output_is_refused_unless_overwritten(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("u,i,t\n1,a,5\n1,b,6\n")
    columns = LogColumns("u", "i", "t")
    build_examples(tmp_path / "log.csv", tmp_path / "out", columns=columns, partitions=1)
    with pytest.raises(ConfigError, match="output directory .*out' exists; pass --overwrite"):
        build_examples(tmp_path / "log.csv", tmp_path / "out", columns=columns)
    build_examples(tmp_path / "log.csv", tmp_path / "out", columns=columns, history=1, partitions=2, overwrite=True)
    assert len(list((tmp_path / "out").glob("part-*.parquet"))) == 2
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an examples dataset"):
        build_examples(tmp_path / "log.csv", other, columns=columns, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_the_examples_command(tmp_path: Path) -> None:
    pcsv.write_csv(movielens_like(users=50, events=500), tmp_path / "ratings.csv")
    args = ["data", "examples", str(tmp_path / "ratings.csv"), str(tmp_path / "out"), "--user", "userId",
            "--item", "movieId", "--weight", "rating", "--partitions", "2", "--cut", "1970-01-12T13:00:00"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "examples to" in result.output and " train, " in result.output and "peak RSS" in result.output
    assert (tmp_path / "out" / "train" / "part-00001.parquet").is_file() and (tmp_path / "out" / ec.MANIFEST).is_file()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "pass --overwrite" in again.output
    bad = CliRunner().invoke(main, [*args[:4], "--memory-limit", "lots"])
    assert bad.exit_code == 2 and "expected a size" in bad.output

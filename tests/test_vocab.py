"""Vocabularies built out of core and hashed keys (augkit.data.vocab, augkit.data.arrow_keys):
the stable hash, canonical keys, out-of-vocabulary policies, growth that keeps ids, files, and
`augkit data vocab`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pa = pytest.importorskip("pyarrow", reason="vocabularies need pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from augkit.cli import main
from augkit.data import log_reader, vocab
from augkit.data.arrow_keys import canonical_keys, fnv1a64
from augkit.data.vocab import HashedKeys, Vocabulary, build_vocabulary, count_keys, hashing_report, load
from augkit.errors import ConfigError


def test_fnv1a64_has_the_published_test_vectors() -> None:
    hashes = fnv1a64(pa.array(["", "a", "foobar", None]))
    assert [hex(h) for h in hashes.tolist()] == [
        "0xcbf29ce484222325", "0xaf63dc4c8601ec8c", "0x85944171f73967e8", "0xcbf29ce484222325",
    ]


def test_hashed_rows_are_fixed() -> None:
    """A change of hash (or of canonical form) changes these rows, and every trained table."""
    text = HashedKeys(1000).encode(pa.array(["a", "foobar", "item42", " 42 ", "42", None, ""]))
    assert text.tolist() == [996, 968, 948, 691, 691, -1, -1]
    numbers = HashedKeys(1000, key_type="int")
    assert numbers.encode(pa.array([42, 7])).tolist() == [691, 446]
    assert numbers.encode(pa.array(["042", "7"])).tolist() == [691, 446]


def test_hashing_a_sliced_chunked_array_is_hashing_its_values() -> None:
    keys = pa.chunked_array([["x", "yy"], ["zzz", "a"]])
    assert HashedKeys(97).encode(keys).tolist() == HashedKeys(97).encode(pa.array(["x", "yy", "zzz", "a"])).tolist()
    sliced = pa.array(["skip", "foobar", "a"]).slice(1)
    assert fnv1a64(sliced).tolist() == fnv1a64(pa.array(["foobar", "a"])).tolist()


def test_canonical_keys_strip_normalise_and_parse() -> None:
    assert canonical_keys(pa.array([" a ", "e\u0301", "", None]), "str", what="t").to_pylist() == ["a", "\u00e9", None, None]
    assert canonical_keys(pa.array([" 007", "-3"]), "int", what="t").to_pylist() == [7, -3]
    assert canonical_keys(pa.array([7, 8]), "str", what="t").to_pylist() == ["7", "8"]
    with pytest.raises(ConfigError, match="'f.csv', column 'u'.*not an integer"):
        canonical_keys(pa.array(["x"]), "int", what="'f.csv', column 'u'")
    with pytest.raises(ConfigError, match="text or integers, got type double"):
        canonical_keys(pa.array([1.5]), "str", what="t")


def _counts(values: list, key_type: str = "str") -> vocab.KeyCounts:
    keys = canonical_keys(pa.array(values), key_type, what="t")
    table = pa.table({"key": keys}).group_by("key").aggregate([("key", "count")])
    return vocab.KeyCounts(table.column("key").combine_chunks(), table.column("key_count").to_numpy(), len(keys), keys.null_count)


def test_keys_by_frequency_ties_by_key_with_cap_and_min_count() -> None:
    counts = _counts(["b", "a", "c", "c", "b", "d", "d", "d", None])
    built, report = build_vocabulary(counts)
    assert built.keys.to_pylist() == ["d", "b", "c", "a"] and built.counts.tolist() == [3, 2, 2, 1]
    capped, report = build_vocabulary(counts, max_size=2)
    assert capped.keys.to_pylist() == ["d", "b"]
    assert (report.size, report.distinct, report.values, report.missing, report.covered) == (2, 4, 9, 1, 5)
    assert report.coverage == pytest.approx(5 / 8)
    assert build_vocabulary(counts, min_count=2)[0].keys.to_pylist() == ["d", "b", "c"]
    numbers, _ = build_vocabulary(_counts(["10", "9", "10", "9", "01"], "int"), key_type="int")
    assert numbers.keys.to_pylist() == [9, 10, 1]  # ties in numeric order


def test_unknown_keys_go_to_the_bucket_or_to_missing_never_elsewhere() -> None:
    keys = pa.array(["x", "y", "z"])
    bucket = Vocabulary(keys, [3, 2, 1])
    assert bucket.num_rows == 4 and bucket.first_row == 1
    assert bucket.encode(pa.array(["y", "new", None, "", " x "])).tolist() == [2, 0, -1, -1, 1]
    missing = Vocabulary(keys, [3, 2, 1], oov="missing")
    assert missing.num_rows == 3
    assert missing.encode(pa.array(["y", "new", None, "z"])).tolist() == [1, -1, -1, 2]
    many = pa.array([f"k{i}" for i in range(5000)])
    ids = bucket.encode(many)
    assert ids.min() >= 0 and ids.max() < bucket.num_rows and (ids == 0).all()
    assert bucket.decode([0, 1, 3, -1]) == [None, "x", "z", None]
    with pytest.raises(ConfigError, match="row 4 is outside the vocabulary's 4 rows"):
        bucket.decode([4])


def test_shared_64_bit_hashes_still_find_each_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two keys with one FNV-1a 64 hash (forced here: every key hashes to 0) keep their ids."""
    monkeypatch.setattr(vocab, "fnv1a64", lambda keys: np.zeros(len(keys), dtype=np.uint64))
    built = Vocabulary(pa.array(["p", "q", "r"]), [1, 1, 1])
    assert built.encode(pa.array(["r", "p", "s", "q"])).tolist() == [3, 1, 0, 2]


def test_extend_appends_and_keeps_every_old_id() -> None:
    old = Vocabulary(pa.array(["x", "y"]), [5, 4])
    before = old.encode(pa.array(["x", "y", "new"]))
    grown = old.extend(["new", "y", "other", "new"], counts=[7, 1, 2, 7])
    assert grown.keys.to_pylist() == ["x", "y", "new", "other"] and grown.counts.tolist() == [5, 4, 7, 2]
    assert grown.encode(pa.array(["x", "y"])).tolist() == before[:2].tolist()
    assert grown.encode(pa.array(["new", "unknown"])).tolist() == [3, 0]  # row 0 stays the bucket
    assert old.extend(["x"]) is old


def test_build_can_extend_up_to_max_size() -> None:
    old = Vocabulary(pa.array(["b"]), [1])
    grown, report = build_vocabulary(_counts(["a", "a", "c", "b", "d", "d", "d"]), extend=old, max_size=3)
    assert grown.keys.to_pylist() == ["b", "d", "a"] and report.size == 3
    with pytest.raises(ConfigError, match="key_type 'str', not 'int'"):
        build_vocabulary(_counts(["1"], "int"), key_type="int", extend=old)


def test_files_round_trip_and_bad_files_are_named(tmp_path: Path) -> None:
    built = Vocabulary(pa.array([3, 1, 2]), [9, 8, 7], key_type="int", oov="missing")
    built.save(tmp_path / "v.parquet", column="movieId")
    loaded = load(tmp_path / "v.parquet")
    assert isinstance(loaded, Vocabulary) and loaded.keys.to_pylist() == [3, 1, 2]
    assert (loaded.key_type, loaded.oov, loaded.counts.tolist()) == ("int", "missing", [9, 8, 7])
    HashedKeys(64, key_type="int").save(tmp_path / "h.json")
    assert load(tmp_path / "h.json") == HashedKeys(64, key_type="int")
    pq.write_table(pa.table({"key": ["a"]}), tmp_path / "plain.parquet")
    with pytest.raises(ConfigError, match="plain.parquet' is not a vocabulary written by augkit"):
        load(tmp_path / "plain.parquet")
    (tmp_path / "bad.json").write_text('{"kind": "vocabulary"}')
    with pytest.raises(ConfigError, match="bad.json' is not a hashing spec"):
        load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "none.parquet")


def test_counting_out_of_core_equals_counting_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    items = rng.zipf(1.3, size=20_000) % 3000
    pq.write_table(pa.table({"item": items}), tmp_path / "log.parquet", row_group_size=1000)
    whole = count_keys(tmp_path / "log.parquet", "item")
    monkeypatch.setattr(log_reader, "BATCH_ROWS", 777)
    monkeypatch.setattr(vocab, "MERGE_ROWS", 50)
    pieces = count_keys(tmp_path / "log.parquet", "item")
    assert whole.values == pieces.values == 20_000
    expected = dict(zip(*np.unique(items.astype(str), return_counts=True), strict=True))
    for counted in (whole, pieces):
        assert dict(zip(counted.keys.to_pylist(), counted.counts.tolist(), strict=True)) == expected


def test_the_hashing_report_counts_collisions() -> None:
    counts = _counts([f"k{i}" for i in range(1000)])
    report = hashing_report(HashedKeys(100), counts)
    assert report.distinct == 1000 and report.buckets <= 100
    assert report.collision_rate == pytest.approx(1 - report.buckets / 1000)
    wide = hashing_report(HashedKeys(1 << 40), counts)
    assert wide.collision_rate == 0.0 and wide.keys_per_bucket == 1.0


def test_the_vocab_command(tmp_path: Path) -> None:
    (tmp_path / "log.csv").write_text("user,item\n1,a\n2,b\n3,a\n4,\n5,c\n")
    runner = CliRunner()
    out = tmp_path / "items.parquet"
    result = runner.invoke(main, ["data", "vocab", str(tmp_path / "log.csv"), "--column", "item", "--out", str(out), "--max-size", "2"])
    assert result.exit_code == 0, result.output
    assert "2 keys of 3 distinct in 'item'" in result.output and "coverage 75.00% of 4 values (1 missing)" in result.output
    assert load(out).keys.to_pylist() == ["a", "b"]
    again = runner.invoke(main, ["data", "vocab", str(tmp_path / "log.csv"), "--column", "item", "--out", str(out)])
    assert again.exit_code == 1 and "exists; pass --overwrite" in again.output
    (tmp_path / "new.csv").write_text("user,item\n1,c\n2,d\n3,a\n")
    grown = runner.invoke(main, ["data", "vocab", str(tmp_path / "new.csv"), "--column", "item", "--out", str(tmp_path / "g.parquet"), "--extend", str(out)])
    assert grown.exit_code == 0, grown.output
    assert load(tmp_path / "g.parquet").keys.to_pylist() == ["a", "b", "c", "d"]
    hashed = runner.invoke(main, ["data", "vocab", str(tmp_path / "log.csv"), "--column", "item", "--out", str(tmp_path / "h.json"), "--hash-buckets", "1000"])
    assert hashed.exit_code == 0 and "3 distinct keys of 'item'" in hashed.output and "collision rate 0.00%" in hashed.output
    wrong = runner.invoke(main, ["data", "vocab", str(tmp_path / "log.csv"), "--column", "itme", "--out", str(tmp_path / "x.parquet")])
    assert wrong.exit_code == 1 and "unknown column of" in wrong.output and "did you mean 'item'" in wrong.output

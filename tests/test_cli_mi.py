"""The ``augkit mi`` command."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from augkit.cli import main
from augkit.data import read_item_table
from augkit_cfm import MutualInformation, compute_mutual_information

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def datasets_dir() -> Path:
    return Path(
        os.environ.get("AUGKIT_DATASETS") or Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )


ML_100K = datasets_dir() / "ml-100k"

TABLE = (
    "sku,colour,size,tags\n"
    "a1,red,S,summer;cotton\n"
    "a2,red,S,summer\n"
    "a3,blue,L,winter;wool\n"
    "a4,blue,L,winter\n"
    "a5,green,M,cotton\n"
    "a6,red,M,\n"
)


@pytest.fixture
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "items.csv"
    path.write_text(TABLE)
    return path


def test_mi_on_an_item_table_prints_the_matrix_and_writes_json(table_file, tmp_path, monkeypatch):
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(main, ["mi", str(table_file), "--multi", "tags=;", "--drop", "sku"])
    assert result.exit_code == 0, result.output
    saved = MutualInformation.load(cwd / "mi.json")
    expected = compute_mutual_information(
        read_item_table(table_file, multi_valued={"tags": ";"}, drop=["sku"]).corpus
    )
    assert saved == expected
    lines = result.output.splitlines()
    assert lines[1].split() == ["colour", "size", "tags"]
    assert lines[2].split() == ["colour", *(f"{v:.3f}" for v in expected.matrix[0])]
    assert len({len(line) for line in lines[1:5]}) == 1  # aligned columns
    off = expected.matrix + np.diag(np.full(3, -np.inf))
    i, j = np.unravel_index(np.argmax(off), off.shape)
    assert (
        f"largest off-diagonal pair: {saved.names[i]} & {saved.names[j]} = {off[i, j]:.3f} nats"
        in result.output
    )
    assert "key feature" not in result.output
    assert f"wrote {Path(cwd).resolve() / 'mi.json'}" in result.output


def test_mi_names_key_features_and_plots(table_file, tmp_path):
    output, plot = tmp_path / "out.json", tmp_path / "mi.png"
    result = CliRunner().invoke(
        main, ["mi", str(table_file), "--multi", "tags=;", "--output", str(output), "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    assert "largest off-diagonal pair: sku & size = 1.099 nats" in result.output  # log 3: size's entropy
    assert "key feature(s), one distinct value per item: sku;" in result.output
    saved = MutualInformation.load(output)
    assert saved.names == ("sku", "colour", "size", "tags")
    rest = saved.matrix[1:, 1:] + np.diag(np.full(3, -np.inf))
    i, j = np.unravel_index(np.argmax(rest), rest.shape)
    pair = f"{saved.names[1 + i]} & {saved.names[1 + j]} = {rest[i, j]:.3f} nats"
    assert f"largest pair without key features: {pair}" in result.output
    assert plot.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--multi", "tags"], "expected COL=SEP"),
        (["--drop", "colur"], "did you mean 'colour'"),
        (["--multi", "label=;"], "unknown multi-valued column"),
        (["--weights-from", "{table}"], "--weights-from applies to MovieLens directories only"),
    ],
)
def test_mi_reports_bad_input(table_file, arguments, message):
    arguments = [a.replace("{table}", str(table_file)) for a in arguments]
    result = CliRunner().invoke(main, ["mi", str(table_file), *arguments])
    assert result.exit_code != 0
    assert message in result.output


def test_mi_names_an_unwritable_output(table_file, tmp_path):
    target = tmp_path / "absent" / "mi.json"
    result = CliRunner().invoke(main, ["mi", str(table_file), "--output", str(target)])
    assert result.exit_code != 0 and f"cannot write {target}" in result.output


def test_mi_rejects_multi_for_movielens(tmp_path):
    result = CliRunner().invoke(main, ["mi", str(tmp_path), "--multi", "a=;"])
    assert result.exit_code != 0 and "--multi applies to item table files" in result.output


@pytest.mark.skipif(
    not (ML_100K / "u.item").is_file(),
    reason=f"MovieLens-100K not found at {ML_100K} (set AUGKIT_DATASETS to the datasets folder)",
)
def test_mi_on_movielens_100k(tmp_path):
    output, plot = tmp_path / "mi.json", tmp_path / "mi.png"
    result = CliRunner().invoke(main, ["mi", str(ML_100K), "--output", str(output), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    mi = MutualInformation.load(output)
    assert mi.names == ("item_id", "genres", "year", "title_words")
    assert mi["item_id", "item_id"] == pytest.approx(np.log(1682))
    assert mi["item_id", "year"] == pytest.approx(mi["year", "year"])  # the key bound
    assert "largest off-diagonal pair: item_id & title_words" in result.output
    assert "key feature(s), one distinct value per item: item_id;" in result.output
    assert plot.read_bytes()[:8] == PNG_MAGIC
    weighted = CliRunner().invoke(
        main,
        [
            "mi",
            str(ML_100K),
            "--drop",
            "item_id",
            "--output",
            str(output),
            "--weights-from",
            str(ML_100K / "u.data"),
        ],
    )
    assert weighted.exit_code == 0, weighted.output
    assert MutualInformation.load(output).weighting.startswith("weights:")
    assert "items weighted by" in weighted.output

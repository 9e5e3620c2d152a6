"""``augkit recommend | similar | export``: a trained run from the command line, in raw keys,
with named errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from augkit.cli import main

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("AUGKIT_DATASETS") or REPO.parent / "shared" / "datasets")
ML_100K = DATASETS / "ml-100k"
TINY = [
    "epochs=1", "progress=false", "log_every=0", "model.embedding_dim=8", "model.hidden=[16]",
    "model.output_dim=8", "main.batch_size=1024", "ssl.batch_size=128", "eval.max_users=200",
]


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def train(config: Path | None, out: Path, name: str) -> Path:
    sets = [f'output_dir="{out}"', f'name="{name}"', *TINY]
    args = (["train", str(config)] if config else ["train"]) + [x for s in sets for x in ("--set", s)]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return out / name


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train(None, tmp_path_factory.mktemp("runs"), "tiny")


def test_recommend_prints_k_items_per_user(run_dir):
    result = invoke("recommend", run_dir, "--user", 42, "--user", 7, "-k", 3)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "user 42:" and lines[4] == "user 7:" and len(lines) == 8
    assert re.fullmatch(r"\s+1  \d+\s+-?\d\.\d{4}", lines[1])


def test_recommend_json_and_users_file(run_dir, tmp_path):
    keys = tmp_path / "users.txt"
    keys.write_text("# users\n3\n\n5\n")
    result = invoke("recommend", run_dir, "--users-file", keys, "-k", 2, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [(r["query"], r["rank"]) for r in rows] == [(3, 1), (3, 2), (5, 1), (5, 2)]
    keys.write_text("3\nnobody\n")
    result = invoke("recommend", run_dir, "--users-file", keys)
    assert result.exit_code == 1
    assert f"Error: unknown user key 'nobody' in {keys}, line 2" in result.output


def test_recommend_errors(run_dir, tmp_path):
    assert invoke("recommend", run_dir).exit_code == 2  # no user given
    result = invoke("recommend", tmp_path / "absent", "--user", 1)
    assert result.exit_code == 1 and "does not exist or is not a directory" in result.output
    result = invoke("recommend", run_dir, "--user", 1, "-k", 5000)
    assert result.exit_code == 1 and "k must be an int in 1..3000" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("command", [["recommend", "--user", 1], ["similar", "--item", 5], ["export", "--out", "x"]])
def test_a_device_this_machine_lacks_is_one_line(run_dir, command):
    result = invoke(command[0], run_dir, *command[1:], "--device", "cuda")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [result.output.strip()] and "CUDA is not available here" in result.output
    assert "choose the cpu device (or auto)" in result.output  # no config-file syntax on the serving CLI


@pytest.mark.parametrize("device", ["bogus", "", "CPU", "cuda:-1", "meta"])
def test_a_device_name_that_is_not_one_is_one_line(run_dir, device):
    result = invoke("similar", run_dir, "--item", 5, "--device", device)
    assert result.exit_code == 1 and "unexpected" not in result.output
    assert f"Error: device must be one of auto, cpu, cuda, cuda:N, mps, got {device!r}" in result.output


def test_similar_on_an_explicit_cpu_device(run_dir):
    result = invoke("similar", run_dir, "--item", 5, "-k", 2, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 2


def test_similar(run_dir):
    result = invoke("similar", run_dir, "--item", 5, "-k", 4, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 4 and all(r["item"] != 5 for r in rows)


def test_export_reports_the_checks(run_dir, tmp_path):
    pytest.importorskip("faiss", reason="needs faiss-cpu")
    out = tmp_path / "export"
    result = invoke("export", run_dir, "--out", out, "--index", "faiss", "--format", "npy")
    assert result.exit_code == 0, result.output
    assert "max |exported - trained| = 0.00e+00 (query)" in result.output
    assert re.search(r"FAISS flat over 3000 items, \d+ test users \(not used to calibrate it\): recall@10 (1\.0000|0\.999\d), recall@50 (1\.0000|0\.999\d)", result.output)  # near-ties may swap
    assert (out / "items.faiss").is_file() and (out / "item_embeddings.npy").is_file()
    again = invoke("export", run_dir, "--out", out)
    assert again.exit_code == 1 and "holds an earlier export" in again.output and "--overwrite" in again.output


@pytest.mark.skipif(not ML_100K.is_dir(), reason=f"MovieLens-100K not found at {ML_100K} (set AUGKIT_DATASETS)")
def test_movielens_recommend_prints_ten_unseen_movie_ids_with_titles(tmp_path, monkeypatch):
    """The issue's acceptance, with a tiny model of one epoch: after `augkit train
    docs/comparison/ml-100k.toml`, `augkit recommend runs/ml-100k --user 42 -k 10`."""
    from augkit.data.movielens import load_movielens_titles

    monkeypatch.chdir(REPO)  # the config's data path is relative to the repository root
    run_dir = train(REPO / "docs" / "comparison" / "ml-100k.toml", tmp_path / "runs", "ml-100k")
    result = invoke("recommend", run_dir, "--user", 42, "-k", 10)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "user 42:" and len(lines) == 11
    titles = load_movielens_titles(ML_100K)
    ids = []
    for rank, line in enumerate(lines[1:], start=1):
        match = re.fullmatch(r"\s*(\d+)  (\d+)\s+(-?\d\.\d{4})  (.+)", line)
        assert match and int(match[1]) == rank, line
        ids.append(int(match[2]))
        assert match[4] == titles[ids[-1] - 1]
    from augkit.serving import load_run

    run = load_run(run_dir)
    training = {int(i) + 1 for i in run.split.train.items[run.split.train.users == 41]}
    assert training and not set(ids) & training and len(set(ids)) == 10

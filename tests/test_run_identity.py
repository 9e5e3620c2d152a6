"""A run's identity (issue 20): a run records its id and the fingerprints of its data and config;
`load_run`, recommend, similar, export and ``train --resume`` refuse changed data (naming the file
and how it changed) and another run's checkpoint (naming both runs), through the API, the CLI
and a real process; an older run without an identity loads with a one-line warning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from augkit.data.fingerprint import data_changes, file_fingerprint
from augkit.errors import CheckpointError, DataChangedError
from augkit.serving import RunIdentityWarning, load_run
from augkit.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, RUN_KEY, load_checkpoint, save_checkpoint
from augkit.train.identity import IDENTITY_NAME, read_identity
import workspaces
from workspaces import invoke

REPO = Path(__file__).resolve().parents[1]
READS = "reader,book\n" + "".join(f"r{r},b{(r * 3 + k) % 20 + 1}\n" for r in range(1, 31) for k in range(8))
BOOKS = "book,author,genres\n" + "".join(f"b{b},author{b % 3},g{b % 4}|g{(b + 1) % 4}\n" for b in range(1, 21))
CONFIG = """
name = "{name}"
output_dir = "runs"
seed = {seed}
epochs = 1
progress = false
log_every = 0
[model]
embedding_dim = 8
hidden = [16]
output_dim = 8
[main]
batch_size = 64
[ssl]
batch_size = 8
[eval]
ks = [5]
monitor = "valid/all/recall@5"
[data]
source = "tables"
valid_fraction = 0.3
[data.tables]
name = "shop"
interactions = {{ path = "reads.csv", user = "reader", item = "book" }}
[[data.tables.items]]
path = "books.csv"
key = "book"
[data.tables.items.features]
author = {{ type = "categorical", column = "author" }}
genres = {{ type = "multi_categorical", column = "genres", separator = "|" }}
"""


def error_line(result) -> str:
    """The one ``Error:`` line of a refused command (exit 1, no traceback)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A workspace with the data, two runs of it (``shop`` and ``other``) and an export of shop."""
    configs = {f"{name}.toml": CONFIG.format(name=name, seed=seed) for name, seed in (("shop", 0), ("other", 1))}
    return workspaces.build(
        tmp_path_factory.mktemp("identity"), {"reads.csv": READS, "books.csv": BOOKS, **configs},
        [("train", "shop.toml"), ("train", "other.toml"), ("export", "runs/shop", "--out", "exported", "--format", "npy")],
    )


@pytest.fixture
def work(trained, tmp_path, monkeypatch) -> Path:
    """A copy of the trained workspace, as the working directory (the config's paths are relative)."""
    return workspaces.copy_to(trained, tmp_path, monkeypatch)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# -- what a run records --------------------------------------------------------------------------
def test_a_run_records_its_identity_and_every_checkpoint_its_run(work):
    identity = read_identity(work / "runs" / "shop")
    assert identity is not None and len(identity.run_id) == 32
    assert [entry["path"] for entry in identity.data["files"]] == ["reads.csv", "books.csv"]
    assert identity.data["files"][0] == {**file_fingerprint("reads.csv"), "mtime": identity.data["files"][0]["mtime"]}
    for name in (BEST_NAME, CHECKPOINT_NAME):
        assert load_checkpoint(work / "runs" / "shop" / name)[RUN_KEY] == {"id": identity.run_id, "dir": "runs/shop"}
    assert read_identity(work / "runs" / "other").run_id != identity.run_id
    manifest = json.loads((work / "exported" / "manifest.json").read_text())
    assert manifest["run_id"] == identity.run_id


def test_synthetic_data_is_fingerprinted_by_its_generator():
    from augkit.data.sources import fingerprint_data
    from augkit.train import config_from_dict

    seed0 = fingerprint_data(config_from_dict({}).data)
    seed1 = fingerprint_data(config_from_dict({"data": {"synthetic": {"seed": 1}}}).data)
    assert seed0["generator"]["seed"] == 0 and seed0["generator"]["num_items"] == 3000 and seed0["files"] == []
    assert data_changes(seed0, seed1) == ["the generator parameter 'seed' changed (0 -> 1)"]


# -- changed data ----------------------------------------------------------------------------------
def drop_rows(root: Path) -> None:
    lines = READS.splitlines(keepends=True)
    (root / "reads.csv").write_text("".join(lines[: int(len(lines) * 0.8)]))


def same_size_edit(root: Path) -> None:
    (root / "reads.csv").write_text(READS.replace("r1,b4", "r1,b9", 1))


def remove_books(root: Path) -> None:
    (root / "books.csv").unlink()


def touch(root: Path) -> None:
    os.utime(root / "reads.csv", (1e9, 1e9))


def rewrite_same_bytes(root: Path) -> None:
    (root / "books.csv").write_bytes((root / "books.csv").read_bytes())


CHANGES: list = [
    pytest.param(drop_rows, ["'reads.csv' changed size", "bytes"], id="rows-dropped"),
    pytest.param(same_size_edit, ["'reads.csv' changed content", "same size"], id="same-size-edit"),
    pytest.param(remove_books, ["'books.csv' is missing"], id="file-removed"),
]
SAME: list = [pytest.param(touch, id="mtime-only"), pytest.param(rewrite_same_bytes, id="same-bytes-rewritten")]
COMMANDS = [
    pytest.param(["recommend", "runs/shop", "--user", "r1"], id="recommend"),
    pytest.param(["similar", "runs/shop", "--item", "b1"], id="similar"),
    pytest.param(["export", "runs/shop", "--out", "exported", "--format", "npy", "--overwrite"], id="export"),
]


@pytest.mark.parametrize(("change", "expected"), CHANGES)
def test_load_run_refuses_changed_data_naming_the_file(work, change: Callable[[Path], None], expected):
    change(work)
    with pytest.raises(DataChangedError) as caught:
        load_run("runs/shop")
    message = str(caught.value)
    assert "\n" not in message and "run 'runs/shop' was trained on other data" in message
    assert all(part in message for part in expected) and "allow_changed_data=True" in message
    if change is same_size_edit:  # the override loads it (the towers still fit), with a warning
        with pytest.warns(RunIdentityWarning, match="uses changed data"):
            assert load_run("runs/shop", allow_changed_data=True).run_id is not None


@pytest.mark.parametrize("change", SAME)
def test_a_new_mtime_with_the_same_bytes_is_the_same_data(work, change):
    change(work)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_run("runs/shop").run_id == read_identity(work / "runs" / "shop").run_id


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(("change", "expected"), CHANGES[:2])
def test_commands_refuse_changed_data_and_keep_earlier_results(work, command, change, expected):
    before = snapshot(work / "exported")
    change(work)
    line = error_line(invoke(*command))
    assert all(part in line for part in ["run 'runs/shop'", *expected, "--allow-changed-data"]), line
    assert snapshot(work / "exported") == before
    if change is same_size_edit:  # the override goes on (the towers still fit), with a warning
        allowed = invoke(*command, "--allow-changed-data")
        assert allowed.exit_code == 0, allowed.output
        assert "warning: run 'runs/shop' uses changed data ('reads.csv' changed content" in allowed.output


@pytest.mark.parametrize(("change", "expected"), CHANGES[:2])
def test_resume_refuses_changed_data(work, change, expected):
    before = snapshot(work / "runs" / "shop")
    change(work)
    line = error_line(invoke("train", "shop.toml", "--resume"))
    assert all(part in line for part in ["--resume: run", "runs/shop", *expected, "--allow-changed-data"]), line
    assert snapshot(work / "runs" / "shop") == before


def test_resume_without_a_data_file_names_it(work):
    before = snapshot(work / "runs" / "shop")
    remove_books(work)  # the trainer loads the data before it holds the run: the reader names the file
    assert "'books.csv' does not exist" in error_line(invoke("train", "shop.toml", "--resume"))
    assert snapshot(work / "runs" / "shop") == before


def test_resume_with_allow_changed_data_records_the_new_data(work):
    same_size_edit(work)
    result = invoke("train", "shop.toml", "--resume", "--allow-changed-data", "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert "uses changed data" in result.output
    assert load_run("runs/shop").step is not None  # the record now holds the data it went on with


def test_a_real_process_refuses_changed_data_in_one_line(work):
    drop_rows(work)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    env.pop("AUGKIT_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "augkit", "recommend", "runs/shop", "--user", "r1"],
        cwd=work, capture_output=True, text=True, timeout=300, env=env, check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: run 'runs/shop' was trained on other data"), done.stderr
    assert "'reads.csv' changed size" in lines[0]


# -- a checkpoint belongs to its run ------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_another_runs_checkpoint_is_refused_naming_both_runs(work, command):
    before = snapshot(work / "exported")
    line = error_line(invoke(*command, "--checkpoint", "runs/other/best.pt"))
    assert "checkpoint 'runs/other/best.pt' was written by run 'runs/other'" in line
    assert "not by run 'runs/shop'" in line
    assert snapshot(work / "exported") == before


def test_load_run_refuses_another_runs_checkpoint_and_takes_its_own(work):
    with pytest.raises(CheckpointError, match=r"written by run 'runs/other' \(id \w{12}\), not by run 'runs/shop'"):
        load_run("runs/shop", checkpoint="runs/other/best.pt")
    assert load_run("runs/shop", checkpoint="runs/shop/checkpoint.pt").checkpoint.name == CHECKPOINT_NAME


@pytest.mark.parametrize("name", [BEST_NAME, CHECKPOINT_NAME])
def test_a_checkpoint_copied_into_another_run_is_refused(work, name):
    shutil.copy(work / "runs" / "other" / name, work / "runs" / "shop" / name)
    if name == BEST_NAME:
        line = error_line(invoke("recommend", "runs/shop", "--user", "r1"))
    else:
        line = error_line(invoke("train", "shop.toml", "--resume"))
    assert f"checkpoint 'runs/shop/{name}' was written by run 'runs/other'" in line and "not by run 'runs/shop'" in line


# -- runs from before identities ------------------------------------------------------------------
def forget_identity(run_dir: Path) -> None:
    (run_dir / IDENTITY_NAME).unlink()
    for name in (BEST_NAME, CHECKPOINT_NAME):
        state = load_checkpoint(run_dir / name)
        del state[RUN_KEY]
        save_checkpoint(run_dir / name, state)


def test_an_older_run_loads_with_a_one_line_warning(work):
    forget_identity(work / "runs" / "shop")
    same_size_edit(work)  # cannot be told
    with pytest.warns(RunIdentityWarning, match="records no identity.json .* its data cannot be checked"):
        load_run("runs/shop")
    result = invoke("similar", "runs/shop", "--item", "b1", "-k", "2")
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "runs/shop" in warned[0] and "cannot be checked" in warned[0]
    # a newer run's checkpoint is not taken for the older run's
    line = error_line(invoke("similar", "runs/shop", "--item", "b1", "--checkpoint", "runs/other/best.pt"))
    assert "written by run 'runs/other'" in line and "(which records no id)" in line
    # resuming it keeps it as it was: unchecked, with the warning
    result = invoke("train", "shop.toml", "--resume", "--epochs", "2")
    assert result.exit_code == 0 and "cannot be checked" in result.output, result.output
    assert not (work / "runs" / "shop" / IDENTITY_NAME).exists()


def test_a_damaged_identity_is_a_named_error(work):
    (work / "runs" / "shop" / IDENTITY_NAME).write_text("{not json")
    line = error_line(invoke("recommend", "runs/shop", "--user", "r1"))
    assert "run identity 'runs/shop/identity.json' is damaged" in line

"""Writes that cannot half-happen (issue 20): `augkit.atomic`, an export staged beside ``--out``
and swapped in whole, compare's and tune's result files renamed into place; an interrupted
command (Ctrl-C in a real process, KeyboardInterrupt or an error in-process) leaves the earlier
results intact and no temporary file, and says which command stopped and how to go on."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from augkit import atomic
from augkit.cli import INTERRUPTED, interrupted_message
import workspaces
from workspaces import invoke

REPO = Path(__file__).resolve().parents[1]
READS = "reader,book\n" + "".join(f"r{r},b{(r * 3 + k) % 20 + 1}\n" for r in range(1, 31) for k in range(8))
CONFIG = """
name = "shop"
output_dir = "runs"
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
alpha = 0.0
[eval]
ks = [5]
monitor = "valid/all/recall@5"
[data]
source = "tables"
valid_fraction = 0.3
[data.tables]
interactions = { path = "reads.csv", user = "reader", item = "book" }
"""


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def leftovers(directory: Path) -> list[str]:
    """Temporary names (``.name.<pid>-<hex>.tmp|staged|old``) under `directory`."""
    return sorted(str(p) for p in directory.rglob(".*") if p.suffix in (".tmp", ".staged", ".old"))


def one_error_line(output: str) -> str:
    assert "Traceback" not in output and "Aborted!" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, output
    return lines[0]


# -- the helper ------------------------------------------------------------------------------------
class Planted(Exception):
    pass


@pytest.mark.parametrize("raised", [KeyboardInterrupt, Planted, OSError])
@pytest.mark.parametrize("earlier", [b"earlier\n", None], ids=["earlier", "none"])
def test_an_interrupted_file_write_leaves_the_earlier_file(tmp_path, raised, earlier):
    target = tmp_path / "result.json"
    if earlier is not None:
        target.write_bytes(earlier)
    with pytest.raises(raised):
        with atomic.writing(target) as tmp:
            tmp.write_bytes(b"half of the new")
            raise raised()
    assert (target.read_bytes() if target.exists() else None) == earlier
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if earlier is None else ["result.json"])


@pytest.mark.parametrize(("write", "data"), [(atomic.write_text, "new ✓\n"), (atomic.write_bytes, b"\x00new")])
def test_a_clean_write_replaces_the_file(tmp_path, write, data):
    target = tmp_path / "result"
    target.write_text("earlier")
    write(target, data)
    assert (target.read_text(encoding="utf-8") if isinstance(data, str) else target.read_bytes()) == data
    assert [p.name for p in tmp_path.iterdir()] == ["result"]


@pytest.mark.parametrize("raised", [KeyboardInterrupt, Planted])
def test_an_interrupted_staged_directory_leaves_the_earlier_one(tmp_path, raised):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_text("earlier")
    with pytest.raises(raised):
        with atomic.staged_directory(target) as staged:
            (staged / "a").write_text("new")
            raise raised()
    assert snapshot(target) == {"a": b"earlier"} and [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("exists", [True, False])
def test_a_staged_directory_replaces_the_target_whole(tmp_path, exists):
    target = tmp_path / "deep" / "out"
    if exists:
        target.mkdir(parents=True)
        (target / "old-only").write_text("earlier")
    with atomic.staged_directory(target) as staged:
        (staged / "new").write_text("new")
        assert not (target / "new").exists()  # nothing is visible before the swap
    assert snapshot(target) == {"new": b"new"} and [p.name for p in target.parent.iterdir()] == ["out"]


def test_a_failed_swap_puts_the_earlier_directory_back(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_text("earlier")
    real, calls = os.rename, []

    def rename(source, destination):
        calls.append(destination)
        if len(calls) == 2:  # the staged directory onto the target
            raise KeyboardInterrupt
        real(source, destination)

    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        with atomic.staged_directory(target) as staged:
            (staged / "a").write_text("new")
    assert snapshot(target) == {"a": b"earlier"} and [p.name for p in tmp_path.iterdir()] == ["out"]


# -- Ctrl-C messages -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "patched", "expected"),
    [
        ("train", "augkit.cli.train.run_training", ["augkit train interrupted", "--resume"]),
        ("compare", "augkit.cli.experiments.run_compare", ["augkit compare interrupted", "--resume"]),
        ("tune", "augkit.cli.experiments.run_tune", ["augkit tune interrupted", "--resume"]),
        ("export", "augkit.cli.serving.load_run", ["augkit export interrupted", "earlier export", "intact", "rerun"]),
        ("recommend", "augkit.cli.serving.load_run", ["augkit recommend interrupted", "nothing was written"]),
    ],
)
def test_ctrl_c_names_the_command_and_how_to_go_on(tmp_path, monkeypatch, command, patched, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text("epochs = 1\n")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(patched, interrupt)
    args = {
        "train": ["run.toml"], "compare": ["run.toml", "--variants", "baseline,cfm"], "tune": ["run.toml", "--variant", "cfm"],
        "export": ["runs/x", "--out", "out"], "recommend": ["runs/x", "--user", "1"],
    }[command]
    result = invoke(command, *args)
    assert result.exit_code == 130, result.output
    line = one_error_line(result.output)
    assert all(part in line for part in expected), line
    if command != "train":
        assert "training run" not in line
    assert set(INTERRUPTED) >= {"train", "compare", "tune", "export"}
    assert interrupted_message("mi") == "augkit mi interrupted; rerun the command"


# -- export --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A workspace with a tiny run and an earlier export of it in ``out``."""
    return workspaces.build(
        tmp_path_factory.mktemp("atomic"), {"reads.csv": READS, "shop.toml": CONFIG},
        [("train", "shop.toml"), ("export", "runs/shop", "--out", "out", "--format", "npy")],
    )


@pytest.fixture
def work(exported, tmp_path, monkeypatch) -> Path:
    return workspaces.copy_to(exported, tmp_path, monkeypatch)


@pytest.mark.parametrize(
    ("raised", "exit_code", "expected"),
    [
        (KeyboardInterrupt, 130, ["augkit export interrupted", "earlier export in --out", "intact"]),
        (RuntimeError("planted"), 1, ["unexpected RuntimeError: planted"]),
        (OSError(28, "No space left on device"), 1, ["cannot write the export to 'out'", "No space left on device"]),
    ],
    ids=["ctrl-c", "a-bug", "disk-full"],
)
def test_an_interrupted_export_leaves_the_earlier_one(work, monkeypatch, raised, exit_code, expected):
    before = snapshot(work / "out")

    def tower(*args, **kwargs):  # after the item embeddings are written, before the towers
        raise raised

    monkeypatch.setattr("augkit.serving.export.export_tower", tower)
    result = invoke("export", "runs/shop", "--out", "out", "--overwrite")
    assert result.exit_code == exit_code, result.output
    line = one_error_line(result.output)
    assert all(part in line for part in expected), line
    assert snapshot(work / "out") == before and leftovers(work) == []


def test_an_interrupted_first_export_leaves_nothing(work, monkeypatch):
    def tower(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("augkit.serving.export.export_tower", tower)
    assert invoke("export", "runs/shop", "--out", "fresh").exit_code == 130
    assert not (work / "fresh").exists() and leftovers(work) == []


def test_export_replaces_the_earlier_one_whole_and_refuses_foreign_files(work):
    result = invoke("export", "runs/shop", "--out", "out", "--overwrite")  # parquet now: the npy files go
    assert result.exit_code == 0, result.output
    names = set(snapshot(work / "out"))
    assert "items.parquet" in names and "item_embeddings.npy" not in names and leftovers(work) == []
    (work / "out" / "notes.txt").write_text("mine")
    line = one_error_line(invoke("export", "runs/shop", "--out", "out", "--overwrite").output)
    assert "holds files that are not an export's (notes.txt)" in line
    line = one_error_line(invoke("export", "runs/shop", "--out", "runs/shop", "--overwrite").output)
    assert "not an export's" in line and (work / "runs" / "shop" / "best.pt").exists()


def test_ctrl_c_in_a_real_export_process_leaves_the_earlier_export(work):
    before = snapshot(work / "out")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    process = subprocess.Popen(
        [sys.executable, "-m", "augkit", "export", "runs/shop", "--out", "out", "--overwrite", "--format", "npy"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not any(p.suffix == ".staged" for p in work.glob(".out.*")):  # the export is being written
        assert process.poll() is None and time.monotonic() < deadline, "the export ended before it could be interrupted"
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stdout + stderr
    line = one_error_line(stderr)
    assert line.startswith("Error: augkit export interrupted") and "intact" in line
    assert snapshot(work / "out") == before and leftovers(work) == []


# -- compare and tune --------------------------------------------------------------------------------
def half_then_interrupt(monkeypatch, name: str) -> None:
    """Path.write_text writes half of `name`'s new text, then Ctrl-C (other files as usual)."""
    real = pathlib.Path.write_text

    def write_text(self, text, *args, **kwargs):
        if self.name.startswith(f".{name}."):
            real(self, text[: len(text) // 2], *args, **kwargs)
            raise KeyboardInterrupt
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", write_text)


def fake_compare(monkeypatch) -> None:
    """compare's training replaced by fixed scores (the result files are what is tested)."""
    from augkit.experiments import compare as compare_module

    def metrics(score):
        row = {f"recall@{k}": score for k in (10, 50, 100)} | {f"ndcg@{k}": score for k in (10, 50, 100)}
        return {s: dict(row) for s in ["all", "head", "tail", "cold", *(f"decile_{d}" for d in range(10))]}

    def fit(config, dataset, *, on_existing):
        return {"monitor": config.eval.monitor, "score": 0.1, "epoch": 1, "step": 1, "model": metrics(0.1)}

    def evaluate_chosen(config, dataset, *, readings, popular=None):
        score = 0.1 + 0.01 * config.seed + (0.05 if config.ssl.alpha else 0)
        out = {r: {"model": metrics(score), "top_popular": metrics(0.01)} for r in readings}
        return out | {"norms": {f"decile_{d}": 1.0 for d in range(10)} | {"cold": 0.5}}

    monkeypatch.setattr(compare_module, "fit", fit)
    monkeypatch.setattr(compare_module, "evaluate_chosen", evaluate_chosen)
    monkeypatch.setattr(compare_module, "write_tested", lambda *args, **kwargs: None)  # no run files to rewrite


@pytest.mark.parametrize("interrupted", ["compare.json", "compare.md"])
def test_an_interrupted_compare_keeps_each_earlier_result_whole(tmp_path, monkeypatch, interrupted):
    pytest.importorskip("scipy")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text("epochs = 1\n[model]\nembedding_dim = 8\nhidden = [16]\noutput_dim = 8\n")
    fake_compare(monkeypatch)
    args = ["compare", "run.toml", "--variants", "baseline,fd", "--seeds", "2", "--alphas", "1"]
    assert invoke(*args).exit_code == 0
    out = tmp_path / "runs" / "default-compare"
    before = snapshot(out)
    half_then_interrupt(monkeypatch, interrupted)
    result = invoke(*args, "--resume")
    assert result.exit_code == 130, result.output
    assert "augkit compare interrupted" in one_error_line(result.output) and "--resume" in result.output
    json.loads((out / "compare.json").read_text())  # whole
    assert (out / interrupted).read_bytes() == before[interrupted] and leftovers(tmp_path) == []
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in out.glob("*.png"))


@pytest.mark.parametrize("interrupted", ["best.toml", "best.json", "tune.md"])
def test_interrupted_tune_outputs_keep_each_earlier_file_whole(tmp_path, monkeypatch, interrupted):
    optuna = pytest.importorskip("optuna")
    from augkit.experiments.tune import space_for, trial_config, write_outputs
    from augkit.train import config_from_dict, dump_config

    base = config_from_dict({"output_dir": str(tmp_path / "runs")})
    space = space_for(None, "cfm")
    study = optuna.create_study(direction="maximize")
    for number, alpha in enumerate((0.3, 1.0, 3.0)):
        config = trial_config(base, "cfm", {"ssl.alpha": alpha}, name=f"trial-{number:04d}", output_dir=str(tmp_path))
        study.add_trial(optuna.trial.create_trial(
            params={"ssl.alpha": alpha}, distributions={"ssl.alpha": optuna.distributions.FloatDistribution(0.01, 10, log=True)},
            value=alpha / 10, user_attrs={"config": dump_config(config), "epoch": 1},
        ))
    out = tmp_path / "study"
    out.mkdir()
    write_outputs(study, base, "cfm", space, out)
    before = snapshot(out)
    half_then_interrupt(monkeypatch, interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_outputs(study, base, "cfm", space, out)
    assert (out / interrupted).read_bytes() == before[interrupted] and leftovers(tmp_path) == []
    assert set(snapshot(out)) == set(before)

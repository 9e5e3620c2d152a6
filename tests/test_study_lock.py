"""A study like a run: ``augkit tune`` locks its study directory (the holder's pid in the
refusal), a second ``--overwrite`` or ``--resume`` on a live study changes nothing, a trial cut
off by Ctrl-C or a dead process is retried with its parameters and does not count, and a
damaged study database or a read-only study directory is one named ``Error:`` line. Through the
CLI, in this process (click's CliRunner) and as real processes."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from augkit.cli import main
from augkit.train import config_from_dict, dump_config
from augkit.train.rundir import locked

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "epochs": 1,
    "progress": False,
    "main": {"batch_size": 1024},
    "ssl": {"batch_size": 128},
    "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
    "tune": {"space": {"optim.lr": {"low": 1e-3, "high": 1e-2, "log": True}}},
}
STUDY = Path("runs/default-tune-baseline")
DB = STUDY / "study.db"
NAME = "default-tune-baseline"


def cli(args: list[str]) -> tuple[int, str]:
    """``augkit tune run.toml --variant baseline ARGS`` in this process: exit status and output."""
    result = CliRunner().invoke(main, ["tune", "run.toml", "--variant", "baseline", *args])
    assert not isinstance(result.exception, (AssertionError, TypeError, AttributeError)), result.output
    return result.exit_code, result.output


def spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    """``augkit tune run.toml --variant baseline ARGS`` as a real process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "augkit", "tune", "run.toml", "--variant", "baseline", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def one_error(output: str, *expected: str) -> str:
    """The single ``Error:`` line of `output`, holding every `expected` string; no traceback."""
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    for part in expected:
        assert part in lines[0], (part, lines[0])
    for leak in ("sqlalchemy", "PermissionError", "unexpected"):
        assert leak not in lines[0], lines[0]
    return lines[0]


def trials(cwd: Path) -> list[tuple[str, dict]]:
    """Each trial's state and parameters (those it will try, for an enqueued one)."""
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{cwd / DB}")
    return [(t.state.name, t.params or t.system_attrs.get("fixed_params", {})) for t in study.get_trials()]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with run.toml and a study of one complete trial (made once, copied per test)."""
    root = tmp_path_factory.mktemp("study")
    (root / "run.toml").write_text(dump_config(config_from_dict(TINY)))
    with contextlib.chdir(root):
        code, output = cli(["--trials", "1"])
    assert code == 0, output
    return root


@pytest.fixture
def work(finished_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(finished_study, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_held_study_is_refused_with_the_holders_pid_and_left_intact(work):
    before, states = digest(DB), trials(work)
    with locked(STUDY, what="study directory"):  # as a live `augkit tune` holds it
        for flags in ([], ["--resume"], ["--overwrite"], ["--resume", "--trials", "3"]):
            code, output = cli(["--trials", "2", *flags])
            assert code == 1
            one_error(output, "study directory", str(STUDY), f"in use by process {os.getpid()}", ".lock")
            assert digest(DB) == before and trials(work) == states
    assert sorted(p.name for p in STUDY.iterdir()) == sorted(p.name for p in (work / STUDY).iterdir())
    code, output = cli(["--trials", "1", "--resume"])  # released: the study goes on
    assert code == 0, output


def test_overwrite_keeps_the_lock_file_it_holds(work):
    code, output = cli(["--trials", "1", "--overwrite"])
    assert code == 0, output
    assert (STUDY / ".lock").read_text().strip() == str(os.getpid())
    assert [state for state, _ in trials(work)] == ["COMPLETE"]


def running_for(seconds: float, first: subprocess.Popen[str]) -> None:
    """Wait until the study holds a trial that has been running `seconds` (inside its training)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
        with contextlib.suppress(sqlite3.Error, OSError), contextlib.closing(sqlite3.connect(DB, timeout=5)) as db:
            row = db.execute("SELECT datetime_start FROM trials WHERE state = 'RUNNING'").fetchone()
            if row and (datetime.datetime.now() - datetime.datetime.fromisoformat(row[0])).total_seconds() > seconds:
                return
    output = first.communicate(timeout=60)[0] if first.poll() is not None else "(still running)"
    raise AssertionError(f"no trial ran for {seconds} s: {first.poll()=}, its output:\n{output}")


def test_two_processes_one_study_and_ctrl_c_retries_the_cut_trial(work):
    """A live `augkit tune` (a real process) holds its study: a second process's --overwrite and
    this process's --resume are refused naming its pid, and its trials stay; Ctrl-C then cuts
    its running trial, which --resume tries first with the same parameters and does not count."""
    slow = ["--set", "epochs=3"]  # trials long enough that Ctrl-C lands inside one
    first = spawn(["--trials", "200", "--overwrite", *slow], work)
    try:
        running_for(0.5, first)
        second = spawn(["--trials", "2", "--overwrite"], work)
        output = second.communicate(timeout=120)[0]
        assert second.returncode == 1, output
        one_error(output, "study directory", f"in use by process {first.pid}")
        code, output = cli(["--trials", "2", "--resume", *slow])
        assert code == 1
        one_error(output, f"in use by process {first.pid}")
        assert first.poll() is None and trials(work)  # its trials are there
        running_for(0.5, first)
        first.send_signal(signal.SIGINT)
        output = first.communicate(timeout=120)[0]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 130, output
    assert "Traceback" not in output, output
    recorded = trials(work)
    cut = [params for state, params in recorded if state == "FAIL"]
    complete = sum(state == "COMPLETE" for state, _ in recorded)
    assert len(cut) == 1 and recorded[-1] == ("WAITING", cut[0]), recorded  # retried next, with its parameters
    code, output = cli(["--trials", str(complete + 1), "--resume", *slow])
    assert code == 0, output
    after = trials(work)
    assert after[len(recorded) - 1] == ("COMPLETE", cut[0])  # the retry ran first and counts; the cut trial does not
    assert sum(state == "COMPLETE" for state, _ in after) == complete + 1 and len(after) == len(recorded)


def test_a_trial_left_running_by_a_dead_process_is_retried_and_does_not_count(work):
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{DB}")
    cut = study.ask()  # left RUNNING, as by a process killed with -9
    lr = cut.suggest_float("optim.lr", 1e-3, 1e-2, log=True)
    code, output = cli(["--trials", "2", "--resume"])
    assert code == 0, output
    assert trials(work) == [trials(work)[0], ("FAIL", {"optim.lr": lr}), ("COMPLETE", {"optim.lr": lr})]


def _sqlite_without_optuna(path: Path) -> None:
    path.unlink()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE ratings (user INTEGER, item INTEGER)")
        db.commit()


DAMAGED = {
    "text": (lambda p: p.write_text("user,item\n1,2\n"), "not SQLite"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "damaged"),
    "header only": (lambda p: p.write_bytes(p.read_bytes()[:60]), "damaged"),
    "empty": (lambda p: p.write_bytes(b""), "not an Optuna study"),
    "another SQLite database": (_sqlite_without_optuna, "not an Optuna study"),
}


@pytest.mark.parametrize("damage", DAMAGED, ids=list(DAMAGED))
@pytest.mark.parametrize("flags", [["--resume"], []], ids=["resume", "fresh"])
def test_a_damaged_study_database_is_named_and_left_as_it_is(work, damage, flags):
    spoil, reason = DAMAGED[damage]
    spoil(DB)
    before = digest(DB)
    code, output = cli(["--trials", "2", *flags])
    assert code == 1
    one_error(output, f"study database {str(DB)!r}", reason, "move it away", "--overwrite")
    assert digest(DB) == before and not DB.with_name("study.db-journal").exists()


def test_a_damaged_study_database_gives_way_to_overwrite(work):
    DB.write_text("not a database")
    code, output = cli(["--trials", "1", "--overwrite"])
    assert code == 0, output
    assert [state for state, _ in trials(work)] == ["COMPLETE"]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` read-only, also for root (the immutable attribute; skipped where unsupported)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("root cannot make a directory read-only here (no chattr +i)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.parametrize("lock_file", [True, False], ids=["lock-file-there", "no-lock-file"])
def test_a_read_only_study_directory_is_named(work, lock_file):
    if not lock_file:
        (STUDY / ".lock").unlink()
    before, states = digest(DB), trials(work)
    with read_only(STUDY):
        code, output = cli(["--trials", "2", "--resume"])
    assert code == 1
    expected = "is read-only" if lock_file else "cannot lock study directory"
    one_error(output, str(STUDY), expected, "writable")
    assert digest(DB) == before and trials(work) == states

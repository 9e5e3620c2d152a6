"""Workspaces for command-line tests: files written into a directory and ``augkit`` commands
run there once per module, then a fresh copy per test as the working directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from augkit.cli import main


TINY_RUN = {
    "epochs": 1,
    "progress": False,
    "main": {"batch_size": 1024},
    "ssl": {"batch_size": 128},
    "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
}
"""A config small enough for a test to train it in seconds (one epoch, a tiny model)."""


def invoke(*args: object):
    """``augkit ARGS`` in this process (click's runner), every argument as a string."""
    return CliRunner().invoke(main, [str(a) for a in args])


def build(root: Path, files: Mapping[str, str], commands: Sequence[Sequence[object]]) -> Path:
    """`root` with `files` written and each command run in it (each must exit 0); the working
    directory is restored afterwards."""
    for name, text in files.items():
        (root / name).write_text(text)
    before = Path.cwd()
    os.chdir(root)
    try:
        for command in commands:
            result = invoke(*command)
            assert result.exit_code == 0, result.output
    finally:
        os.chdir(before)
    return root


def copy_to(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the workspace `source` under `tmp_path`, made the working directory."""
    root = tmp_path / "work"
    shutil.copytree(source, root)
    monkeypatch.chdir(root)
    return root


def train_whole_and_kill(config: Path, runs: Path) -> tuple[list[str], dict[str, str]]:
    """``augkit train CONFIG`` (one thread) to the end as run ``whole``, then again as run
    ``killed``, killed with SIGKILL as soon as its first checkpoint is written (under `runs`,
    the config's ``output_dir``). Returns the command and environment, for `resume_killed`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "augkit", "train", str(config)]
    subprocess.run([*command, "--name", "whole"], check=True, env=env, capture_output=True)
    killed = subprocess.Popen([*command, "--name", "killed"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = runs / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert checkpoint.exists() and not (runs / "killed" / "metrics.json").exists()
    return command, env


def resume_killed(command: list[str], env: dict[str, str], runs: Path) -> tuple[dict, dict]:
    """``--resume`` the run `train_whole_and_kill` killed; the metrics.json of ``whole`` and of
    the resumed ``killed``."""
    resumed = subprocess.run([*command, "--name", "killed", "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    whole, again = (json.loads((runs / name / "metrics.json").read_text()) for name in ("whole", "killed"))
    return whole, again

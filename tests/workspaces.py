"""Workspaces for command-line tests: files written into a directory and ``augkit`` commands
run there once per module, then a fresh copy per test as the working directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from augkit.cli import main


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

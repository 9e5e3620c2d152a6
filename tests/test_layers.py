"""The architecture holds: imports point down the layers (import-linter's contracts in
pyproject.toml), function-level imports only for optional heavy dependencies, and importing
augkit or a plugin changes nothing in the process and loads no upper layer."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "augkit", *sorted((ROOT / "plugins").glob("augkit_*"))]

OPTIONAL = (
    "faiss", "optuna", "pyarrow", "tensorboard", "torch.utils.tensorboard", "matplotlib", "scipy", "pytest",
    "torch.distributed._functional_collectives", "fcntl", "msvcrt", "torchrec", "fbgemm_gpu",
)
"""Modules that may be imported inside a function: optional heavy dependencies (an extra may be
missing; torchrec and fbgemm_gpu are the `torchrec` extra, which `augkit.torchrec` imports inside functions), torch's private collectives (only where torch.distributed is built) and the platform's
file-lock module."""



def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")])
    return env


def _lint(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
         "--config", str(config), "--no-cache"],
        capture_output=True, text=True, cwd=ROOT, env=_env(), check=False,
    )


def test_the_import_contracts_are_kept() -> None:
    pytest.importorskip("importlinter", reason="import-linter is in the test extra")
    result = _lint(ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout


def test_a_planted_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The contract is not vacuous: a core module that imports the trainer fails it."""
    pytest.importorskip("importlinter", reason="import-linter is in the test extra")
    subprocess.run(["cp", "-r", str(ROOT / "augkit"), str(ROOT / "plugins"), str(ROOT / "pyproject.toml"), str(tmp_path)], check=True)
    schema = tmp_path / "augkit" / "schema.py"
    schema.write_text(schema.read_text() + "\nfrom augkit.train import config  # planted\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(tmp_path / "plugins")])
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
         "--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
    )
    assert result.returncode != 0 and "augkit.schema -> augkit.train" in result.stdout, result.stdout + result.stderr


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found += [(inner.lineno, alias.name) for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom) and inner.level == 0:
                    found.append((inner.lineno, inner.module or ""))
    return found


def test_function_level_imports_are_only_optional_dependencies() -> None:
    offenders = []
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, module in _function_level_imports(path):
                if not (module.split(".")[0] in OPTIONAL or module in OPTIONAL):
                    offenders.append(f"{relative}:{line} imports {module}")
    assert not offenders, "function-level imports of non-optional modules:\n" + "\n".join(offenders)


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("module", ["augkit", "augkit_mask", "augkit_dropout", "augkit_complementary", "augkit_cfm", "augkit_losses", "augkit_samplers"])
def test_an_import_changes_no_environment_and_loads_no_upper_layer(module: str) -> None:
    out = _run(
        "import os, sys, torch; before = (dict(os.environ), torch.get_num_threads()); "
        f"import {module}; "
        "after = (dict(os.environ), torch.get_num_threads()); "
        "upper = sorted(m for m in sys.modules if m.split('.')[:2] in (['augkit', 'train'], ['augkit', 'serving'], "
        "['augkit', 'experiments'], ['augkit', 'cli'], ['augkit', 'data'])); "
        "print(before == after, 'OMP_WAIT_POLICY' in os.environ, upper)"
    )
    assert out == "True False []"


def test_import_augkit_loads_no_torch() -> None:
    assert _run("import sys, augkit; print('torch' in sys.modules)") == "False"


@pytest.mark.parametrize("args", [["--help"], ["plugins", "--help"]])
def test_the_command_line_help_loads_no_torch(args: list[str]) -> None:
    out = _run(
        "import sys; from augkit.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print('torch loaded:', 'torch' in sys.modules)"
    )
    assert "Usage: " in out and out.splitlines()[-1] == "torch loaded: False", out


def test_the_help_summaries_are_the_commands_own_first_sentences() -> None:
    """`augkit --help` prints the summaries of COMMANDS without importing the commands; each
    must be what click would print from the command itself."""
    from augkit.cli import COMMANDS, main

    for name, (_, summary) in COMMANDS.items():
        command = main.get_command(None, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=10_000) == summary, name


def test_every_public_name_of_augkit_resolves_from_its_module() -> None:
    import augkit

    assert sorted(augkit.__all__) == sorted(augkit._HOMES)
    for name in augkit.__all__:
        assert getattr(augkit, name) is getattr(__import__(augkit._HOMES[name], fromlist=[name]), name)

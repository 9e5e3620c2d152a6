"""The newcomer's two commands: the README, docs/index.md, docs/install.md and CI set up and test
with the same ones (that they leave no test skipped for a missing install is checked on a fresh
virtual environment, as docs/install.md describes)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SET_UP = 'pip install torch==2.13.0 -e ".[test,docs]" -e examples/augkit-plugin-example'
TEST = "python -m pytest"


def commands(page: Path) -> list[str]:
    """The lines of `page`'s ```bash blocks, comments removed."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S)
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_index_and_install_page_give_the_same_two_commands():
    for page in (REPO / "README.md", REPO / "docs" / "index.md", REPO / "docs" / "install.md"):
        first = commands(page)[:2]
        assert first == [SET_UP, TEST], f"{page.name}: the first two commands are {first}"


TORCHREC = [
    'pip install torch==2.13.0 fbgemm-gpu-cpu==1.8.0 -e ".[torchrec]"',
    "pip install --no-deps torchrec==1.8.0",
]
"""The torchrec extra's recipe (the README's and the install page's TorchRec section), which CI runs after the set-up."""


def test_the_readme_and_install_page_give_the_torchrec_recipe():
    for page in (REPO / "README.md", REPO / "docs" / "install.md"):
        lines = commands(page)
        assert any(lines[i : i + 2] == TORCHREC for i in range(len(lines))), f"{page.name} lacks the TorchRec recipe"


def test_ci_installs_exactly_what_the_readme_says_and_runs_its_test_command():
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    installs = [shlex.split(line) for line in ci if line.startswith("python -m pip install")]
    assert installs == [
        ["python", "-m", "pip", "install", "--quiet", *shlex.split(command)[2:]] for command in (SET_UP, *TORCHREC)
    ]
    assert any(line.startswith(TEST) and "||" in line for line in ci)  # its status is checked (exit 5: no test)


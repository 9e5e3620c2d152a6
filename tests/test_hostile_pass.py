"""Findings of the hostile pass over the newer commands (issue 20's acceptance), each fixed:
a failed ``--resume --allow-changed-data`` no longer rewrites the run's identity; a malformed
``identity.json`` entry, a users file that is not UTF-8, a file that its codec cannot start
(UTF-16 without a byte-order mark), `load_run` arguments of the wrong type, a comparison
directory that is a file or read-only, and a sampler that cannot serve its role are named
errors, not "unexpected ..." ones or a failure at the first step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from augkit.cli import main
from augkit.errors import RunDirectoryError
from augkit.serving import load_run
from augkit.train.identity import IDENTITY_NAME
import workspaces
from workspaces import invoke

READS = "user,item,ts\n" + "".join(
    f"u{u},b{(u * 7 + k * 3) % 24},{1000 + u * 20 + k}\n" for u in range(40) for k in range(12)
)
BOOKS = "item,genre,tags\n" + "".join(f"b{b},g{b % 5},t{b % 3}|t{(b + 1) % 4}\n" for b in range(24))
CONFIG = """
name = "{name}"
epochs = 1
progress = false
log_every = 0
[model]
embedding_dim = 8
hidden = [16]
output_dim = 8
[main]
batch_size = 64
{main}
[ssl]
batch_size = 16
[eval]
ks = [5]
monitor = "valid/all/recall@5"
[data]
source = "tables"
[data.tables]
name = "shop"
interactions = {{ path = "reads.csv", user = "user", item = "item", timestamp = "ts"{encoding} }}
[[data.tables.items]]
path = "books.csv"
key = "item"
features.genre = {{ type = "categorical", column = "genre" }}
features.tags = {{ type = "multi_categorical", column = "tags", separator = "|" }}
"""


def error_line(result) -> str:
    """The one ``Error:`` line of a refused command (exit 1, not an unexpected error)."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "unexpected" not in lines[0] and "Traceback" not in result.output, result.output
    return lines[0]


def write_config(name: str, *, main_keys: str = "", encoding: str = "") -> str:
    Path(f"{name}.toml").write_text(
        CONFIG.format(name=name, main=main_keys, encoding=f', encoding = "{encoding}"' if encoding else "")
    )
    return f"{name}.toml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A workspace with the data and a trained run ``runs/shop``."""
    config = CONFIG.format(name="shop", main="", encoding="")
    return workspaces.build(
        tmp_path_factory.mktemp("hostile"), {"reads.csv": READS, "books.csv": BOOKS, "shop.toml": config},
        [("train", "shop.toml")],
    )


@pytest.fixture
def work(trained, tmp_path, monkeypatch) -> Path:
    """A copy of the trained workspace, as the working directory."""
    return workspaces.copy_to(trained, tmp_path, monkeypatch)


def test_a_failed_resume_on_changed_data_keeps_the_recorded_identity(work):
    identity = (work / "runs" / "shop" / IDENTITY_NAME).read_bytes()
    reads = (work / "reads.csv").read_text()
    kept = [line for line in reads.splitlines() if not line.startswith(("u3", "u2"))]  # users gone: towers shrink
    (work / "reads.csv").write_text("\n".join(kept) + "\n")
    line = error_line(invoke("train", "shop.toml", "--resume", "--allow-changed-data", "--epochs", "2"))
    assert "does not fit" in line
    assert (work / "runs" / "shop" / IDENTITY_NAME).read_bytes() == identity
    (work / "reads.csv").write_text(reads)  # the data restored, the run serves again
    assert invoke("recommend", "runs/shop", "--user", "u1", "-k", "2").exit_code == 0


@pytest.mark.parametrize("files", [[1, None], [{"path": "reads.csv"}], "reads.csv"])
def test_a_malformed_identity_entry_is_a_named_error(work, files):
    path = work / "runs" / "shop" / IDENTITY_NAME
    record = json.loads(path.read_text())
    record["data"]["files"] = files
    path.write_text(json.dumps(record))
    with pytest.raises(RunDirectoryError, match="identity.json' is damaged"):
        load_run("runs/shop")
    assert "identity.json' is damaged" in error_line(invoke("recommend", "runs/shop", "--user", "u1"))


def test_a_users_file_that_is_not_utf8_is_named(work):
    (work / "users.txt").write_text("u1\nu2\n", encoding="utf-16")
    line = error_line(invoke("recommend", "runs/shop", "--users-file", "users.txt"))
    assert "'users.txt' is not UTF-8 text" in line


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"run_dir": None}, "run_dir"),
        ({"run_dir": ["runs/shop"]}, "run_dir"),
        ({"run_dir": b"runs/shop"}, "run_dir"),
        ({"run_dir": "runs/shop", "checkpoint": 5}, "checkpoint"),
        ({"run_dir": "runs/shop", "allow_changed_data": "no"}, "allow_changed_data"),
    ],
)
def test_load_run_names_an_argument_of_the_wrong_type(arguments, named):
    run_dir = arguments.pop("run_dir")
    with pytest.raises(TypeError, match=f"load_run: {named} must be"):
        load_run(run_dir, **arguments)


def test_a_file_its_codec_cannot_start_is_named(work):
    line = error_line(invoke("train", write_config("enc", encoding="utf-16")))
    assert "'reads.csv' is not utf-16 text" in line
    assert not (work / "runs" / "enc").exists()


def test_a_comparison_directory_that_is_a_file_is_named_before_training(work):
    (work / "runs" / "cmp-compare").write_text("not a directory")
    line = error_line(invoke("compare", write_config("cmp"), "--variants", "baseline,cfm", "--seeds", "1", "--alphas", "1"))
    assert "comparison directory 'runs/cmp-compare' is not a directory" in line
    assert not (work / "runs" / "cmp-baseline-s0").exists()  # nothing trained


def test_a_read_only_comparison_directory_is_named_before_training(work, monkeypatch):
    (work / "runs" / "cmp-compare").mkdir()
    real_access = os.access
    monkeypatch.setattr(  # root may write anywhere: the read-only directory is simulated
        "augkit.experiments.compare.os.access", lambda path, mode: "cmp-compare" not in str(path) and real_access(path, mode)
    )
    line = error_line(invoke("compare", write_config("cmp"), "--variants", "baseline,cfm", "--seeds", "1", "--alphas", "1"))
    assert "comparison directory 'runs/cmp-compare' is read-only" in line
    assert not (work / "runs" / "cmp-baseline-s0").exists()


@pytest.mark.parametrize(
    ("main_keys", "expected"),
    [
        ('negatives = { name = "count" }', "main.negatives: 'count' cannot serve as main.negatives: it has no batches"),
        ('negatives = { name = "streaming" }', "main.negatives: 'streaming' cannot serve as main.negatives"),
        (
            'logq = { name = "uniform_items", params = { batch_size = 8 } }',
            "main.logq: 'uniform_items' cannot serve as main.logq: it has no online",
        ),
    ],
)
def test_a_sampler_that_cannot_serve_its_role_is_named_before_the_run(work, main_keys, expected):
    line = error_line(invoke("train", write_config("role", main_keys=main_keys)))
    assert expected in line
    assert not (work / "runs" / "role").exists()  # refused when the run is built, not at its first step


def test_allow_changed_data_without_resume_is_a_usage_error(work):
    result = invoke("train", "shop.toml", "--name", "fresh", "--allow-changed-data")
    assert result.exit_code == 2, result.output
    assert "--allow-changed-data goes with --resume" in result.output
    assert not (work / "runs" / "fresh").exists()


def test_a_loss_registered_for_another_role_is_refused_when_the_run_is_built(tmp_path: Path) -> None:
    from augkit.errors import ConfigError
    from augkit.train import build_run, config_from_dict

    config = config_from_dict({"output_dir": str(tmp_path), "main": {"spread_out": 0.1, "regularizer": {"name": "info_nce"}}})
    with pytest.raises(ConfigError, match=r"main.regularizer: loss 'info_nce' does not take the call of main.regularizer"):
        build_run(config)
    assert not (tmp_path / "default").exists()


def test_an_empty_variant_name_and_none_as_a_table_are_refused() -> None:
    from augkit.errors import ConfigError
    from augkit.train import config_from_dict

    result = CliRunner().invoke(main, ["compare", "--variants", "baseline,,cfm"])
    assert result.exit_code == 2 and "an empty variant name" in result.output
    with pytest.raises(ConfigError, match=r'write logq = "none" alone'):
        config_from_dict({"main": {"logq": {"name": "none"}}})

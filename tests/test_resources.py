"""Resources before allocation: a model too large for the free memory is a one-line
`ConfigError` that states the estimate against what is available and names the setting (or
the feature) behind it, raised before any table is allocated: quickly, and with the process's
peak memory unchanged. Through the API (`Tower`, `InputLayer`), the CLI (click's CliRunner)
and a real process."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import augkit.memory
from augkit import Categorical, Dense, FeatureSchema, MultiCategorical
from augkit.cli import main
from augkit.errors import ConfigError
from augkit.memory import available_bytes, format_bytes
from augkit.towers import InputLayer, Tower, TowerConfig, parameter_parts
from augkit.train import config_from_dict, dump_config

ROOT = Path(__file__).resolve().parents[1]
HUGE = 2**40
TINY = {"epochs": 1, "progress": False, "main": {"batch_size": 1024}, "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8}}


def peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def refused_without_allocating(build, *expected: str) -> str:
    """`build()` raises a `ConfigError` holding `expected`, within a second and with the peak
    resident memory grown by less than 64 MB."""
    before, start = peak_kb(), time.monotonic()
    with pytest.raises(ConfigError) as caught:
        build()
    assert time.monotonic() - start < 1.0
    assert peak_kb() - before < 64 * 1024
    message = str(caught.value)
    for part in expected:
        assert part in message, (part, message)
    return message


def test_free_memory_is_read_and_bytes_are_shown_in_decimal_units():
    free = available_bytes("cpu")
    assert free is None or free > 0
    assert available_bytes("meta") is None
    assert format_bytes(12.04e9) == "12.0 GB" and format_bytes(7.1e9) == "7.1 GB" and format_bytes(512) == "512 bytes"


def test_the_estimate_counts_every_table_and_layer():
    schema = FeatureSchema([Categorical(name="item_id", num_values=100), MultiCategorical(name="tags", num_values=5, max_len=3),
                            Dense(name="price", dim=2)])
    config = TowerConfig(hidden=(16,), output_dim=8, embedding_dim=4)
    parts = parameter_parts(schema, config)
    tower = Tower(schema, hidden=[16], output_dim=8, embedding_dim=4)
    assert sum(part.count for part in parts) == sum(p.numel() for p in tower.parameters())
    shared = parameter_parts(schema, config, shared=["item_id"])
    assert sum(part.count for part in parts) - sum(part.count for part in shared) == 100 * 4


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda: Tower(FeatureSchema([Categorical(name="big", num_values=HUGE)]), hidden=[16], output_dim=8),
         ["feature 'big' has 1099511627776 ids", "big table 1099511627776 x 32", "need about 140.7 TB", "are available on cpu",
          "fewer ids"]),
        (lambda: InputLayer(FeatureSchema([Categorical(name="big", num_values=HUGE)])),
         ["feature 'big' has 1099511627776 ids", "the input layer's parameters"]),
        (lambda: Tower(FeatureSchema([Categorical(name="item_id", num_values=3000)]), embedding_dim=10**9),
         ["embedding_dim = 1000000000", "item_id table 3000 x 1000000000", "lower embedding_dim"]),
        (lambda: Tower(FeatureSchema([Categorical(name="item_id", num_values=30)]), hidden=[10**7, 10**7]),
         ["hidden = [10000000, 10000000]", "layer 10000000 x 10000000", "lower hidden"]),
    ],
    ids=["2**40 ids", "input layer 2**40 ids", "embedding_dim 1e9", "hidden 1e7"],
)
def test_a_tower_too_large_for_any_machine_is_refused_before_allocating(build, expected):
    refused_without_allocating(build, *expected)


def test_the_estimate_is_against_the_free_memory(monkeypatch):
    monkeypatch.setattr(augkit.memory, "available_bytes", lambda device: int(7.1e9))
    schema = FeatureSchema([Categorical(name="item_id", num_values=3000)])
    refused_without_allocating(
        lambda: Tower(schema, embedding_dim=1_000_000, hidden=[16]),
        "embedding_dim = 1000000: the tower's parameters (item_id table 3000 x 1000000", "need about 12.",
        "7.1 GB are available on cpu",
    )
    monkeypatch.setattr(augkit.memory, "available_bytes", lambda device: None)  # unknown: not checked
    assert Tower(schema, embedding_dim=4, hidden=[16]).output.out_features == 64


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(dump_config(config_from_dict(TINY)))
    return tmp_path


def test_cli_train_with_embedding_dim_1000000_states_the_estimate(workdir, monkeypatch):
    monkeypatch.setattr(augkit.memory, "available_bytes", lambda device: int(7.1e9))
    before = peak_kb()
    result = CliRunner().invoke(main, ["train", "run.toml", "--set", "model.embedding_dim=1000000"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for part in ("model.embedding_dim = 1000000", "the towers' parameters and Adam's state",
                 "item tower's item_id table", "x 1000000", "7.1 GB are available on cpu", "lower model.embedding_dim"):
        assert part in lines[0], (part, lines[0])
    assert peak_kb() - before < 256 * 1024
    assert not (workdir / "runs" / "default" / "checkpoint.pt").exists()


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_real_process_is_refused_with_one_line_and_stays_small(workdir, command):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH", "")])
    args = ["--set", "model.embedding_dim=1000000000"] + (["--variant", "baseline", "--trials", "1"] if command == "tune" else [])
    if command == "tune":
        pytest.importorskip("optuna")
        (workdir / "run.toml").write_text(dump_config(config_from_dict(
            {**TINY, "tune": {"space": {"optim.lr": {"low": 1e-3, "high": 1e-2}}}})))
    code = ("import resource, sys\nfrom augkit.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
            "    print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, command, "run.toml", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    assert "model.embedding_dim = 1000000000" in lines[0] and "are available on cpu" in lines[0], lines[0]
    peak = int(output.rsplit("peak ", 1)[1].split()[0])
    assert peak < 2 * 1024 * 1024, output  # kB: far below the terabytes asked for

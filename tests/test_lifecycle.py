"""The trainer's lifecycle: validation and early stopping, best.pt, history, train longer on
resume, devices, and configuration from the command line."""

from __future__ import annotations

import csv
import json
import re
import tomllib

import pytest
import torch
from click.testing import CliRunner
from workspaces import resume_killed, train_whole_and_kill

from augkit.cli import main
from augkit.errors import ConfigError
from augkit.train import apply_overrides, config_from_dict, dump_config, run_training, train
from augkit.train.checkpoint import load_checkpoint
from augkit.train.device import resolve_device


def small(tmp_path, **changes):
    data = {
        "output_dir": str(tmp_path / "runs"),
        "epochs": 2,
        "progress": False,
        "checkpoint_every": 30,
        "log_every": 20,
        "main": {"batch_size": 512},
        "ssl": {"batch_size": 128},
        "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
    }
    data.update(changes)
    return config_from_dict(data)


def rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_validation_stalls_so_training_stops_early_and_tests_the_best_epoch(tmp_path):
    # lr 1e-12 leaves the rankings as they are: validation never improves after epoch 1
    config = small(tmp_path, epochs=6, optim={"lr": 1e-12}, eval={"patience": 2})
    metrics = run_training(config)
    history = rows(config.run_dir / "history.csv")
    assert len(history) == 3 and metrics["training"]["stopped_early"] and metrics["training"]["epochs"] == 3
    assert metrics["validation"]["epoch"] == 1
    best = load_checkpoint(config.run_dir / "best.pt")
    assert best["best"]["epoch"] == 1 and best["step"] == int(history[0]["step"])
    for row in history:
        assert {"loss/total", "loss/main", "loss/ssl", "valid/all/recall@50", "lr", "items_per_s"} <= set(row)
    assert "stopped early" in (config.run_dir / "report.md").read_text()


def test_best_checkpoint_is_the_best_validation_epoch(tmp_path):
    config = small(tmp_path, epochs=3)
    metrics = run_training(config)
    history = rows(config.run_dir / "history.csv")
    scores = [float(row["valid/all/recall@50"]) for row in history]
    assert metrics["validation"]["epoch"] == scores.index(max(scores)) + 1
    assert metrics["validation"]["score"] == max(scores)
    steps = rows(config.run_dir / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(20, int(history[-1]["step"]) + 1, 20))
    assert "![Losses and validation by epoch](training_curves.png)" in (config.run_dir / "report.md").read_text()


def test_resume_with_more_epochs_equals_the_longer_run(tmp_path):
    longer = run_training(small(tmp_path, name="whole", epochs=3))
    run_training(small(tmp_path, name="grown", epochs=1))
    grown = run_training(small(tmp_path, name="grown", epochs=3), on_existing="resume")
    for key in ("model", "top_popular", "validation"):
        assert grown[key] == longer[key], key
    assert grown["training"]["steps"] == longer["training"]["steps"]
    assert grown["training"]["last_losses"] == longer["training"]["last_losses"]
    whole_rows, grown_rows = (rows(tmp_path / "runs" / n / "history.csv") for n in ("whole", "grown"))
    drop = ("items_per_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in whole_rows] == [
        {k: v for k, v in r.items() if k not in drop} for r in grown_rows
    ]


def test_a_finished_run_resumed_keeps_its_training_record(tmp_path):
    config = small(tmp_path, epochs=1)
    first = run_training(config)
    again = run_training(config, on_existing="resume")
    assert again["training"] == first["training"]
    assert again["model"] == first["model"]


def test_no_validation_split_tests_the_last_step(tmp_path):
    config = small(tmp_path, epochs=1, data={"valid_fraction": 0.0})
    metrics = run_training(config)
    assert metrics["validation"] is None and not (config.run_dir / "best.pt").exists()
    assert "valid/all/recall@50" not in rows(config.run_dir / "history.csv")[0]


def test_validation_on_a_seeded_subset_of_users(tmp_path):
    first = train(small(tmp_path, name="a", epochs=1, eval={"max_users": 50}))
    second = train(small(tmp_path, name="b", epochs=1, eval={"max_users": 50}))
    assert first.history == [dict(r, items_per_s=s["items_per_s"]) for r, s in zip(second.history, first.history)]
    assert first.best["metrics"]["all"]["n"] == 50


def test_device_that_is_not_here_is_a_one_line_error(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="CUDA is not available here"):
        resolve_device("cuda")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--device", "cuda"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [result.output.strip()] and "CUDA is not available" in result.output
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")
def test_cuda_training_has_no_host_syncs_in_the_step(tmp_path):
    from augkit.train.loop import prepare
    from augkit.train.run import STREAM_STEP, generator_for
    from augkit.train.step import train_step

    parts = prepare(small(tmp_path, device="cuda"), None)
    rows_ = torch.arange(512, device="cuda")
    train_step(parts, rows_, generator_for(0, STREAM_STEP, 0))  # warm-up: lazy initialisation may sync
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = train_step(parts, rows_, generator_for(0, STREAM_STEP, 1))
        losses.total.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert losses.total.device.type == "cuda"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")
def test_cuda_run_trains_and_tests_on_cuda(tmp_path):
    metrics = run_training(small(tmp_path, device="cuda", epochs=1))
    assert metrics["model"]["all"]["recall@10"] > 0


def test_set_is_typed_and_checked_like_the_file():
    config = apply_overrides(config_from_dict({}), ["main.batch_size=256", "eval.ks=[10, 20]", "eval.monitor=valid/all/recall@20", "device=cpu"])
    assert config.main.batch_size == 256 and config.eval.ks == (10, 20) and config.device == "cpu"
    with pytest.raises(ConfigError, match=r"--set .epochs=1.5.: expected an integer, got 1.5"):
        apply_overrides(config, ["epochs=1.5"])
    with pytest.raises(ConfigError, match=r"unknown key 'batchsize'; did you mean 'batch_size'"):
        apply_overrides(config, ["main.batchsize=3"])


def test_cli_print_config_and_seed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "--print-config", "--seed", "7", "--set", "ssl.alpha=0.3"])
    assert result.exit_code == 0, result.output
    printed = config_from_dict(tomllib.loads(result.output))
    assert printed.seed == 7 and printed.ssl.alpha == 0.3
    assert printed.eval.baseline  # the default run trains the baseline beside the model
    assert dump_config(printed) == result.output
    assert not (tmp_path / "runs").exists()
    (tmp_path / "empty.toml").write_text("")
    from_file = CliRunner().invoke(main, ["train", "empty.toml", "--print-config"])
    assert not config_from_dict(tomllib.loads(from_file.output)).eval.baseline  # a config file: off unless set


def test_cli_train_prints_the_start_up_summary_and_evaluation_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(
        "epochs = 1\n[main]\nbatch_size = 1024\n[model]\nhidden = [16]\noutput_dim = 8\n[ssl]\nbatch_size = 128\n"
    )
    result = CliRunner().invoke(main, ["train", "run.toml"])
    assert result.exit_code == 0, result.output
    for line in ("users,", "validation,", "parameters; device cpu", "epoch 1: validating", "testing the best"):
        assert line in result.output, line
    def summary(output: str) -> str:
        return re.search(r"test Recall@50: model [^\n]*", output).group()

    assert "baseline" not in summary(result.output)
    both = CliRunner().invoke(main, ["train", "run.toml", "--resume", "--overwrite"])
    assert both.exit_code == 2 and "give one of them" in both.output
    with_baseline = CliRunner().invoke(main, ["train", "run.toml", "--name", "both", "--set", "eval.baseline=true"])
    assert with_baseline.exit_code == 0, with_baseline.output
    last = summary(with_baseline.output)
    assert "model all " in last and "; baseline all " in last and "TopPopular" in last and "training the baseline" in with_baseline.output
    written = json.loads((tmp_path / "runs" / "default" / "metrics.json").read_text())
    assert written["versions"]["torch"] == torch.__version__


def test_tensorboard_events_when_the_extra_is_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = small(tmp_path, epochs=2)
    train(config)
    events = EventAccumulator(str(config.run_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "epoch/loss/total" in tags and "valid/all/recall@50" in tags and "steps/loss/main" in tags
    assert [e.step for e in events.Scalars("valid/all/recall@50")] == [int(r["step"]) for r in rows(config.run_dir / "history.csv")]


def test_kill_9_mid_run_then_resume_gives_the_uninterrupted_metrics(tmp_path):
    (tmp_path / "run.toml").write_text(
        f'output_dir = "{tmp_path / "runs"}"\nepochs = 2\nprogress = false\ncheckpoint_every = 5\n'
        "[main]\nbatch_size = 512\n[model]\nhidden = [16]\noutput_dim = 8\nembedding_dim = 8\n[ssl]\nbatch_size = 128\n"
    )
    command, env = train_whole_and_kill(tmp_path / "run.toml", tmp_path / "runs")
    whole, again = resume_killed(command, env, tmp_path / "runs")
    assert again["model"] == whole["model"] and again["validation"] == whole["validation"]


def test_thread_policy_is_applied_by_the_command_line_unless_the_user_chose_or_torch_came_first():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    show = "import os; print(os.environ.get('OMP_WAIT_POLICY'))"
    run = lambda code, **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**env, **extra}
    ).stdout.strip()
    command = "from augkit.cli import main; main.get_command(None, 'plugins'); "
    assert run(f"import augkit; {show}") == "None"  # an import changes nothing
    assert run(f"{command}{show}") == "PASSIVE"  # the command line, before a command loads torch
    assert run(f"{command}{show}", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert run(f"import torch; from augkit import threads; threads.apply(); {show}") == "None"
    assert run(f"from augkit import threads; threads.apply(); {show}") == "PASSIVE"

"""The reference trainer on streamed examples (the ``examples`` source): training, validation
and test by time, unknown item keys, bad input before training, and exact resume after kill -9."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")

from workspaces import resume_killed, train_whole_and_kill

from augkit.data.log_examples import LogColumns, build_examples  # noqa: E402
from augkit.errors import ConfigError, DataFileError  # noqa: E402
from augkit.train import config_from_dict, run_training  # noqa: E402

ML_LATEST_SMALL = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "ml-latest-small"


def write_log(tmp_path: Path, users: int = 60, items: int = 40, events: int = 1500, seed: int = 0) -> Path:
    """A synthetic log (user, item, timestamp) and an item file (item, genre) for `items - 2`
    items: two item keys of the log are unknown to the item table."""
    rng = np.random.default_rng(seed)
    user = rng.integers(0, users, events)
    item = np.minimum(rng.zipf(1.5, events) - 1, items - 1)
    timestamp = rng.integers(1_000, 100_000, events)
    log = tmp_path / "log.csv"
    log.write_text("user,item,timestamp\n" + "".join(f"u{u},i{i},{t}\n" for u, i, t in zip(user, item, timestamp)))
    (tmp_path / "items.csv").write_text(
        "item,genres\n" + "".join(f"i{i},g{i % 5}|h{i % 3}\n" for i in range(items - 2))
    )
    return log


def config(tmp_path: Path, examples: Path, **changes) -> dict:
    data = {
        "output_dir": str(tmp_path / "runs"),
        "epochs": 2,
        "progress": False,
        "checkpoint_every": 3,
        "main": {"batch_size": 64},
        "ssl": {"batch_size": 16},
        "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
        "eval": {"ks": [5, 10], "monitor": "valid/all/recall@10"},
        "data": {
            "source": "examples",
            "examples": {
                "path": str(examples),
                "timestamp": "timestamp",
                "shuffle_buffer": 300,
                "features": {"history": {"type": "multi_categorical", "max_len": 5}},
                "items": [{"path": str(tmp_path / "items.csv"), "key": "item",
                           "features": {"genres": {"type": "multi_categorical", "column": "genres", "separator": "|"}}}],
                "users": {"hash_buckets": 97},
                "valid_after": 80_000,
                "test_after": 90_000,
            },
        },
    }
    for key, value in changes.items():
        data[key] = value
    return data


@pytest.fixture
def examples(tmp_path):
    log = write_log(tmp_path)
    build_examples(log, tmp_path / "examples", columns=LogColumns(), history=5, partitions=3)
    return tmp_path / "examples"


def test_streamed_training_validates_and_tests_by_time(tmp_path, examples):
    metrics = run_training(config_from_dict(config(tmp_path, examples)))
    assert metrics["training"]["epochs"] == 2
    counted = metrics["examples"]
    assert counted["unknown_item_events"] > 0 and counted["held_out_rows"] > 0
    assert counted["valid_queries"] > 0 and counted["test_queries"] > 0
    for name in ("all", "head", "tail", "cold"):
        assert name in metrics["model"]
    assert 0 <= metrics["model"]["all"]["recall@10"] <= 1


def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_metrics(tmp_path, examples):
    import tomli_w

    data = config(tmp_path, examples, epochs=3, checkpoint_every=2)
    (tmp_path / "run.toml").write_text(tomli_w.dumps(data))
    command, env = train_whole_and_kill(tmp_path / "run.toml", tmp_path / "runs")
    whole, again = resume_killed(command, env, tmp_path / "runs")
    assert again["model"] == whole["model"] and again["validation"] == whole["validation"]
    assert again["training"]["last_losses"] == whole["training"]["last_losses"]


def test_resume_from_every_checkpoint_step_matches(tmp_path, examples):
    """In process: stopped after k steps (max_steps, as a kill leaves it), then resumed."""
    from augkit.train import train

    whole = run_training(config_from_dict(config(tmp_path, examples, name="whole")))
    for stop in (3, 5):  # mid-epoch, at checkpoints (checkpoint_every = 3 does not save at 5: resumes from 3)
        name = f"stopped{stop}"
        train(config_from_dict(config(tmp_path, examples, name=name)), max_steps=stop)
        again = run_training(config_from_dict(config(tmp_path, examples, name=name)), on_existing="resume")
        assert again["model"] == whole["model"] and again["training"]["last_losses"] == whole["training"]["last_losses"]


def test_bad_examples_are_named_before_training(tmp_path, examples):
    data = config(tmp_path, examples)
    data["data"]["examples"]["item"] = "itme"
    with pytest.raises(DataFileError, match="itme"):
        run_training(config_from_dict(data))
    assert not (tmp_path / "runs").exists()
    data = config(tmp_path, examples)
    data["data"]["examples"]["users"] = {"hash_buckets": 3, "vocabulary": "u.parquet"}
    with pytest.raises(ConfigError, match="one of"):
        config_from_dict(data)
    data = config(tmp_path, examples)
    del data["data"]["examples"]["test_after"]
    with pytest.raises(ConfigError, match="test"):
        config_from_dict(data)

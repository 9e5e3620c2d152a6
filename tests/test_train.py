"""The reference trainer: a short run, resume after interruption, determinism, configs (compare: test_compare.py)."""

from __future__ import annotations

import json
import tomllib

import attrs
import pytest
import torch

from augkit.errors import CheckpointError, ConfigError, RunDirectoryError, UnknownNameError
from augkit.experiments.variants import variant_config
from augkit.train.checkpoint import load_checkpoint
from augkit.train import build_run, config_from_dict, dump_config, evaluate_run, load_config, run_training, train
from augkit.compose import prepare_config


def small(tmp_path, **changes) -> object:
    data = {
        "output_dir": str(tmp_path / "runs"),
        "epochs": 1,
        "progress": False,
        "checkpoint_every": 20,
        "main": {"batch_size": 256},
        "ssl": {"batch_size": 128},
        "model": {"hidden": [32], "output_dim": 16, "embedding_dim": 8},
    }
    data.update(changes)
    return config_from_dict(data)


def test_short_run_writes_a_report_and_beats_top_popular(tmp_path):
    config = small(tmp_path, epochs=3, model={})  # the default towers: the tiny ones stay below TopPopular
    metrics = run_training(config)
    run_dir = config.run_dir
    for name in ("config.toml", "metrics.json", "report.md", "recall_by_decile.png", "checkpoint.pt", "best.pt",
                 "history.csv", "training_curves.png"):
        assert (run_dir / name).exists(), name
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["model"]["all"]["recall@10"] == metrics["model"]["all"]["recall@10"]
    assert metrics["model"]["all"]["recall@10"] > metrics["top_popular"]["all"]["recall@10"]
    assert written["versions"]["augkit"] and written["validation"]["monitor"] == "valid/all/recall@50"
    assert set(metrics["training"]["last_losses"]) == {"total", "main", "ssl"}
    # the written config is resolved (CFM's MI inline) and reads back to the run's config
    resolved = load_config(run_dir / "config.toml")
    assert "mi" in resolved.ssl.augmentation["params"]["pair"]["params"]
    written_toml = (run_dir / "config.toml").read_text()
    assert written_toml.startswith("# written by augkit train") and f"# torch {torch.__version__}" in written_toml
    assert dump_config(load_config(run_dir / "config.toml")) in written_toml


def test_checkpoint_loads_with_weights_only(tmp_path):
    config = small(tmp_path)
    train(config)
    outer = torch.load(config.run_dir / "checkpoint.pt", weights_only=True)
    assert outer["format"] == 1 and outer["payload"].dtype == torch.uint8
    state = load_checkpoint(config.run_dir / "checkpoint.pt")
    assert state["step"] > 0 and "model" in state and "optimizer" in state


def test_same_seed_same_metrics_and_other_seed_differs(tmp_path):
    first = evaluate_run(train(small(tmp_path, name="a")).parts)
    second = evaluate_run(train(small(tmp_path, name="b")).parts)
    third = evaluate_run(train(small(tmp_path, name="c", seed=1)).parts)
    assert first == second
    assert first != third


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    whole = train(small(tmp_path, name="whole", epochs=2))
    killed = small(tmp_path, name="killed", epochs=2)
    stopped = train(killed, max_steps=55)  # last checkpoint at step 40; steps 41..55 are lost
    assert not stopped.finished and stopped.steps == 55
    resumed = train(killed, on_existing="resume")
    assert resumed.finished and resumed.steps == whole.steps
    for name, tensor in whole.parts.model.state_dict().items():
        assert torch.equal(tensor, resumed.parts.model.state_dict()[name]), name
    assert evaluate_run(whole.parts) == evaluate_run(resumed.parts)


def test_resume_needs_a_checkpoint_and_the_same_config(tmp_path):
    config = small(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        train(config, on_existing="resume")
    assert not config.run_dir.exists()  # nothing to continue: no directory left behind
    train(config, max_steps=20)
    with pytest.raises(ConfigError, match=r"another config; differing keys: optim.lr, ssl.alpha \("):
        train(attrs.evolve(config, optim=attrs.evolve(config.optim, lr=0.1), ssl=attrs.evolve(config.ssl, alpha=0.5)), on_existing="resume")


def test_unknown_keys_name_the_closest_valid_key(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("epochz = 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'epochz'; did you mean 'epochs'\?.*run\.toml"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"'alpah'; did you mean 'alpha'\?.*\.ssl"):
        config_from_dict({"ssl": {"alpah": 1.0}})
    with pytest.raises(ConfigError, match=r"unknown sampler 'sometimes'.*Known: .*count.*streaming.* @ config.main.logq"):
        config_from_dict({"main": {"logq": "sometimes"}})
    with pytest.raises(ConfigError, match=r"unknown loss 'batch_sofmax'; did you mean 'batch_softmax'\?.* @ config.main.loss"):
        config_from_dict({"main": {"loss": {"name": "batch_sofmax"}}})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("epochs = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_a_bad_tables_config_fails_when_the_config_is_read():
    tables = {"interactions": {"path": "never-read.csv", "user": "u", "item": "i"}, "itmes": []}
    with pytest.raises(ConfigError, match=r"unknown key 'itmes'; did you mean 'items'\? .* @ config\.data\.tables$"):
        config_from_dict({"data": {"source": "tables", "tables": tables}})


def test_config_round_trips_through_toml():
    config = config_from_dict({"epochs": 4, "ssl": {"alpha": 0.3}})
    assert config_from_dict(tomllib.loads(dump_config(config))) == config


def test_variants_switch_the_right_parts_on(tmp_path):
    base = small(tmp_path)
    parts = {v: build_run(variant_config(base, v, 0)) for v in ("baseline", "fd", "so", "rfm", "cfm")}
    # Every variant masks item_id in the main task (the default embedding cold items are served with); FD every feature.
    assert parts["baseline"].ssl_loss is None and parts["baseline"].feature_dropout.features == ("item_id",)
    assert parts["fd"].feature_dropout.features is None and parts["fd"].ssl_loss is None
    assert parts["so"].spread_out is not None
    assert parts["rfm"].augmentation.pair.name == "complementary"
    assert parts["cfm"].augmentation.pair.name == "cfm"
    with pytest.raises(UnknownNameError, match="did you mean 'cfm'"):
        variant_config(base, "cfn", 0)


def test_a_single_view_ssl_augmentation_runs_once_per_view(tmp_path):
    config = small(tmp_path, ssl={"batch_size": 128, "augmentation": {"name": "mask", "params": {"p": 0.5}}})
    result = train(config)
    assert result.finished and result.last_losses["ssl"] > 0
    assert result.parts.augmentation.pair.to_config()["name"] == "mask"
    assert "two_views" not in dump_config(result.parts.config)  # the config stays as written


def test_streaming_logq_trains(tmp_path):
    result = train(small(tmp_path, main={"batch_size": 256, "logq": "streaming"}))
    assert result.finished and result.parts.frequency.step.item() == result.steps


def test_prepare_config_fills_mi_only_where_missing(tmp_path):
    parts = build_run(small(tmp_path, ssl={"alpha": 0.0}))
    config = {"name": "two_views", "params": {"pair": {"name": "cfm"}, "each": [{"name": "dropout"}]}}
    resolved = prepare_config(config, parts.dataset.items)
    assert "mi" in resolved["params"]["pair"]["params"] and "mi" not in config["params"]["pair"].get("params", {})
    assert prepare_config(resolved, parts.dataset.items) == resolved


def test_documented_defaults_are_the_real_defaults():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "reference" / "train-config.md").read_text()
    block = page.split("```toml\n", 1)[1].split("```", 1)[0]
    assert config_from_dict(tomllib.loads(block)) == config_from_dict({})


def test_the_baseline_beside_equals_a_run_without_the_ssl_task(tmp_path):
    config = small(tmp_path, name="ssl", eval={"baseline": True})
    metrics = run_training(config)
    alone = run_training(small(tmp_path, name="alone", ssl={"batch_size": 128, "alpha": 0.0}))
    beside = metrics["baseline"]
    assert beside["run"] == "baseline" and beside["model"] == alone["model"]
    assert beside["model"] != metrics["model"]  # the SSL task changed the model
    baseline_dir = config.run_dir / "baseline"
    assert load_config(baseline_dir / "config.toml").ssl.alpha == 0.0
    assert json.loads((baseline_dir / "metrics.json").read_text())["model"] == alone["model"]
    report = (config.run_dir / "report.md").read_text()
    assert "| baseline | tail" in report and "The SSL task against the baseline beside it" in report
    # the baseline belongs to the run: refused, replaced and resumed with it
    with pytest.raises(RunDirectoryError, match="holds another run's results"):
        run_training(config)
    (config.run_dir / "metrics.json").unlink()
    (config.run_dir / "baseline" / "checkpoint.pt").unlink()
    with pytest.raises(RunDirectoryError, match=r"holds another run's results \(.*baseline"):
        run_training(config)
    resumed = run_training(config, on_existing="resume")  # the baseline's checkpoint is gone: trained afresh
    assert resumed["baseline"]["model"] == alone["model"] and resumed["model"] == metrics["model"]
    run_training(attrs.evolve(config, epochs=2), on_existing="resume")  # both extended
    assert load_checkpoint(baseline_dir / "checkpoint.pt")["step"] == load_checkpoint(config.run_dir / "checkpoint.pt")["step"]
    (baseline_dir / "notes.txt").write_text("mine")
    run_training(config, on_existing="overwrite")  # replaces the run's files in baseline/ too, and only those
    assert (baseline_dir / "metrics.json").exists() and (baseline_dir / "notes.txt").read_text() == "mine"
    assert (baseline_dir / "report.md").read_text().startswith("# Run `ssl/baseline`: the baseline of run `ssl`")


def test_no_baseline_beside_a_run_without_the_ssl_task(tmp_path):
    config = small(tmp_path, ssl={"alpha": 0.0}, eval={"baseline": True})
    assert "baseline" not in run_training(config)
    assert not (config.run_dir / "baseline").exists()


def test_a_run_stopped_in_its_baseline_keeps_the_models_report(tmp_path, monkeypatch):
    import augkit.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(augkit.train, "_baseline_beside", interrupted)
    config = small(tmp_path, eval={"baseline": True})
    with pytest.raises(KeyboardInterrupt):
        run_training(config)
    written = json.loads((config.run_dir / "metrics.json").read_text())
    assert "model" in written and "baseline" not in written and (config.run_dir / "report.md").exists()

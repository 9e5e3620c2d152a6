"""augkit tune: the [tune] table, a resumable Optuna study in SQLite, best.toml and plots."""

from __future__ import annotations

import json
import tomllib

import attrs
import pytest
from click.testing import CliRunner

from augkit.cli import main
from augkit.errors import ConfigError, RunDirectoryError, UnknownNameError
from augkit.experiments.tune import check_space, run_tune, space_for, study_dir
from augkit.experiments.variants import DEFAULT_SPACES
from augkit.train import config_from_dict, dump_config, load_config
from augkit.train.config import TuneConfig

optuna = pytest.importorskip("optuna")

TINY = {
    "epochs": 1,
    "progress": False,
    "main": {"batch_size": 1024},
    "ssl": {"batch_size": 128},
    "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
}
SPACE = {"space": {"optim.lr": {"low": 1e-3, "high": 1e-2, "log": True}},
         "variants": {"cfm": {"ssl.alpha": {"choices": [0.3, 1.0]}}}}


def small(tmp_path, **changes):
    return config_from_dict({**TINY, "output_dir": str(tmp_path / "runs"), "tune": SPACE, **changes})


def test_a_study_resumes_and_best_toml_trains_the_best_trial(tmp_path):
    base = small(tmp_path)
    out = run_tune(base, "cfm", 2)
    assert out == study_dir(base, "cfm") == tmp_path / "runs" / "default-tune-cfm"
    with pytest.raises(RunDirectoryError, match="--resume"):
        run_tune(base, "cfm", 3)
    run_tune(base, "cfm", 3, on_existing="resume")
    study = optuna.load_study(study_name="default-tune-cfm", storage=f"sqlite:///{out / 'study.db'}")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert len({t.params["optim.lr"] for t in trials}) == 3  # the resumed sampler does not repeat draws
    best = study.best_trial
    written = load_config(out / "best.toml")
    trial = config_from_dict(tomllib.loads(best.user_attrs["config"]))
    assert written == attrs.evolve(trial, name="default-cfm-tuned", output_dir=base.output_dir)
    assert written.optim.lr == best.params["optim.lr"] and written.ssl.alpha == best.params["ssl.alpha"]
    assert written.tune is None and written.seed == base.seed
    summary = json.loads((out / "best.json").read_text())
    assert summary["best_trial"] == best.number and summary["trials"] == {"complete": 3, "failed": 0}
    assert sorted(p.name for p in (out / "trials").iterdir()) == [f"trial-{best.number:04d}"]  # only the best kept
    for png in ("optimization_history.png", "param_importances.png", "slice.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in (out / "tune.md").read_text()
    # Asking for no more trials than there are runs none and rewrites the outputs.
    run_tune(base, "cfm", 2, on_existing="resume")
    assert len(optuna.load_study(study_name="default-tune-cfm", storage=f"sqlite:///{out / 'study.db'}").trials) == 3


def test_an_interrupted_trial_is_failed_and_retried_and_a_changed_config_refused(tmp_path):
    base = small(tmp_path, tune={"space": {"optim.lr": {"low": 1e-3, "high": 1e-2}}})
    out = run_tune(base, "baseline", 1)
    study = optuna.load_study(study_name="default-tune-baseline", storage=f"sqlite:///{out / 'study.db'}")
    cut = study.ask()  # a trial left RUNNING, as by a killed process
    lr = cut.suggest_float("optim.lr", 1e-3, 1e-2)
    run_tune(base, "baseline", 2, on_existing="resume")
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params["optim.lr"] == lr  # its parameters tried again
    with pytest.raises(ConfigError, match="another config"):
        run_tune(attrs.evolve(base, epochs=2), "baseline", 3, on_existing="resume")
    with pytest.raises(RunDirectoryError, match="no study"):
        run_tune(base, "cfm", 1, on_existing="resume")


def test_the_default_spaces_fit_every_variant(tmp_path):
    base = small(tmp_path, tune=None)
    for variant, space in DEFAULT_SPACES.items():
        kinds = check_space(base, variant, space_for(TuneConfig(), variant))
        assert set(kinds) == set(space)
        assert kinds["model.embedding_dim"] == "choices" and kinds["optim.lr"] == "float"
    assert "ssl.alpha" in DEFAULT_SPACES["cfm"] and "ssl.alpha" not in DEFAULT_SPACES["baseline"]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"spaces": {}}, "did you mean 'space'"),
        ({"space": {"optim.lr": {"low": 0.1, "high": 0.01}}}, "low must be < high"),
        ({"space": {"optim.lr": {"low": 0, "high": 0.01, "log": True}}}, "a log range needs low > 0"),
        ({"space": {"optim.lr": {"low": 0.001}}}, "high required"),
        ({"space": {"optim.lr": {"choices": [0.1], "low": 0.1}}}, "choices cannot go with low"),
        ({"space": {"optim.lr": {"choices": []}}}, "non-empty list"),
        ({"space": {"model.hidden": {"choices": [[16], [32]]}}}, "a choice must be a string, number or boolean"),
        ({"space": {"optim.lr": {"low": 1e-3, "hihg": 1e-2}}}, "did you mean 'high'"),
        ({"space": {"optim.lr": 0.01}}, "expected a table"),
        ({"variants": {"cfn": {}}}, "did you mean 'cfm'"),
        ({"startup_trials": 0}, "startup_trials must be an integer >= 1"),
    ],
)
def test_bad_tune_tables_are_named_when_the_config_is_read(tmp_path, table, message):
    with pytest.raises((ConfigError, UnknownNameError), match=message):
        config_from_dict({"tune": table})
    path = tmp_path / "run.toml"
    path.write_text("epochs = 1\n[tune]\n")  # an empty table is fine
    assert load_config(path).tune == TuneConfig()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"optim.lrr": {"low": 1e-3, "high": 1e-2}}, "no key 'lrr' in optim"),
        ({"data.source": {"low": 1, "high": 2}}, "not a number: give it choices"),
        ({"model.embedding_dim": {"low": 8.5, "high": 16}}, "is an integer"),
        ({"main.temperature": {"low": -1.0, "high": 0.1}}, "main.temperature' = -1.0"),
    ],
)
def test_bad_spaces_fail_before_the_first_trial(tmp_path, space, message):
    base = small(tmp_path, tune={"space": space})
    with pytest.raises(ConfigError, match=message):
        run_tune(base, "baseline", 1)
    assert not (tmp_path / "runs").exists()


def test_cli_tune(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = dump_config(config_from_dict({**TINY, "tune": {"space": {"optim.lr": {"low": 1e-3, "high": 1e-2}}}}))
    (tmp_path / "run.toml").write_text(text)
    result = CliRunner().invoke(main, ["tune", "run.toml", "--variant", "baseline", "--trials", "1"])
    assert result.exit_code == 0, result.output
    assert "# Tuning `baseline` on default" in result.output and (tmp_path / "runs/default-tune-baseline/best.toml").exists()
    result = CliRunner().invoke(main, ["train", "runs/default-tune-baseline/best.toml"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["tune", "run.toml", "--variant", "cfn"])
    assert result.exit_code == 1 and "did you mean 'cfm'" in result.output

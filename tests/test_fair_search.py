"""Equal search (issue 22): a shared --grid key reaches every variant, defined ones included;
tune scores each trial on the mean of several seeds, disjoint from the comparison's test seeds;
the page states each variant's budget and warns when budgets differ."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from workspaces import TINY_RUN

from augkit.cli import main
from augkit.errors import ConfigError
from augkit.experiments import compare as compare_module
from augkit.experiments.compare import run_compare
from augkit.experiments.spec import (
    budget_warnings,
    compare_spec,
    parse_defines,
    parse_grid,
    read_tuned_budget,
)
from augkit.experiments.tune import TUNE_SEED_OFFSET, run_tune, tuning_seeds
from augkit.experiments.variants import variant_config
from augkit.train import config_from_dict, dump_config

pytest.importorskip("scipy.stats")

TINY = TINY_RUN
TEMPERATURES = [0.05, 0.1]


def small(tmp_path, **changes):
    return config_from_dict({**TINY, "output_dir": str(tmp_path / "runs"), **changes})


def _metrics(score):
    row = {f"recall@{k}": score for k in (10, 50, 100)} | {f"ndcg@{k}": score for k in (10, 50, 100)}
    return {s: dict(row) for s in ["all", "head", "tail", "cold", *(f"decile_{d}" for d in range(10))]}


@pytest.fixture
def fake_training(monkeypatch):
    """compare's training and testing replaced by scores from the run name; the configs trained."""
    trained = []

    def fit(config, dataset, *, on_existing):
        trained.append(config)
        return {"monitor": config.eval.monitor, "score": 0.1, "epoch": 1, "step": 1, "model": _metrics(0.1)}

    def evaluate_chosen(config, dataset, *, readings, popular=None):
        return {r: {"model": _metrics(0.2), "top_popular": _metrics(0.01)} for r in readings} | {"norms": {}}

    monkeypatch.setattr(compare_module, "fit", fit)
    monkeypatch.setattr(compare_module, "evaluate_chosen", evaluate_chosen)
    monkeypatch.setattr(compare_module, "write_tested", lambda *args, **kwargs: None)
    return trained


def test_a_grid_of_a_shared_key_gives_every_variant_the_same_candidates(tmp_path):
    defined = parse_defines(["mns=baseline:main.uniform_negatives=64"])
    variants = ["baseline", "fd", "cfm", "mns"]
    grid = parse_grid([f"main.temperature={','.join(map(str, TEMPERATURES))}"], [*variants])
    spec = compare_spec(small(tmp_path), variants, 2, alphas=(0.3, 1.0), grid=grid, defined=defined)
    for variant in variants:
        searched = sorted({c.config(spec.base, 0).main.temperature for c in spec.pool[variant]})
        assert searched == TEMPERATURES, variant
    budgets = spec.budgets()
    assert all("main.temperature" in b["keys"] for b in budgets.values())
    assert budgets["cfm"]["keys"] == ["alpha", "main.temperature"] and budgets["cfm"]["runs"] == 4 * 2
    assert not [w for w in budget_warnings(budgets) if "main.temperature" in w]


def test_the_cli_grid_reaches_defined_variants(tmp_path, monkeypatch, fake_training):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(dump_config(small(tmp_path)))
    result = CliRunner().invoke(main, [
        "compare", "c.toml", "--variants", "baseline,cfm", "--seeds", "1", "--alphas", "1",
        "--define", "mns=baseline:main.uniform_negatives=64", "--grid", "main.temperature=0.05,0.1",
    ])
    assert result.exit_code == 0, result.output
    by_row: dict[str, set[float]] = {}
    for config in fake_training:
        row = config.name.split("-")[1]
        by_row.setdefault(row, set()).add(config.main.temperature)
    assert by_row == {"baseline": set(TEMPERATURES), "cfm": set(TEMPERATURES), "mns": set(TEMPERATURES)}


def test_a_budget_mismatch_is_warned_on_the_page(tmp_path, fake_training):
    grid = parse_grid(["baseline:main.temperature=0.05,0.1"])
    out = run_compare(compare_spec(small(tmp_path), ["baseline", "cfm"], 2, alphas=(0.3, 1.0, 3.0), grid=grid))
    page = (out / "compare.md").read_text()
    assert "| baseline | 2 candidates × 2 seeds = 4 runs | `main.temperature` |" in page
    assert "| cfm | 3 candidates × 2 seeds = 6 runs | `alpha` |" in page
    assert "> warning: `main.temperature` was searched by baseline but not by cfm" in page
    assert "> warning: the variants had different budgets: baseline 4 runs, cfm 6 runs." in page
    record = json.loads((out / "compare.json").read_text())
    assert record["budgets"]["cfm"]["keys"] == ["alpha"] and len(record["budget_warnings"]) == 2


def test_a_tuned_budget_is_stated_and_its_seeds_must_not_be_test_seeds(tmp_path):
    base = small(tmp_path)
    tuned = variant_config(base, "cfm", 0, 0.3)
    study = {"trials": 30, "seeds": [100, 101, 102], "keys": ["optim.lr", "main.temperature", "ssl.alpha"]}
    spec = compare_spec(base, ["baseline", "cfm"], 5, tuned={"cfm": tuned}, tuned_budgets={"cfm": study})
    budgets = spec.budgets()
    assert budgets["cfm"] == {"how": "tuned", "candidates": 1, "seeds": 5, "trials": 30, "tuning_seeds": [100, 101, 102],
                                  "runs": 90, "keys": study["keys"]}
    assert any("tuned and others searched a grid" in w for w in budget_warnings(budgets))
    with pytest.raises(ConfigError, match=r"scored on seeds \[0\].*share \[0\]"):
        compare_spec(base, ["baseline", "cfm"], 5, tuned={"cfm": tuned}, tuned_budgets={"cfm": {**study, "seeds": [0]}})
    with pytest.raises(ConfigError, match="applies to every variant, but cfm is --tuned"):
        compare_spec(base, ["baseline", "cfm"], 5, tuned={"cfm": tuned}, grid=parse_grid(["main.temperature=0.05,0.1"]))


def test_tune_scores_each_trial_on_the_mean_of_its_seeds(tmp_path):
    space = {"seeds": 3, "space": {"optim.lr": {"low": 1e-3, "high": 1e-2, "log": True}}}
    base = small(tmp_path, tune=space)
    assert tuning_seeds(base) == (TUNE_SEED_OFFSET, TUNE_SEED_OFFSET + 1, TUNE_SEED_OFFSET + 2)
    assert tuning_seeds(small(tmp_path)) == tuple(range(100, 103))  # 3 by default
    out = run_tune(base, "baseline", 1)
    summary = json.loads((out / "best.json").read_text())
    assert summary["seeds"] == [100, 101, 102] and len(summary["best_scores"]) == 3
    assert summary["best_value"] == pytest.approx(sum(summary["best_scores"]) / 3)
    assert summary["budget"] == {"trials": 1, "seeds": 3, "keys": ["optim.lr"]}
    runs = out / "trials" / "trial-0000"
    assert sorted(p.name for p in runs.iterdir()) == ["seed-100", "seed-101", "seed-102"]
    assert "the mean over seeds 100, 101, 102" in (out / "tune.md").read_text()
    assert read_tuned_budget(out / "best.toml") == {"trials": 1, "seeds": [100, 101, 102], "keys": ["optim.lr"]}
    assert "fewer than 3" not in (out / "tune.md").read_text()


def test_a_study_on_fewer_than_three_seeds_says_so(tmp_path):
    base = small(tmp_path, tune={"seeds": 1, "space": {"optim.lr": {"low": 1e-3, "high": 1e-2}}})
    out = run_tune(base, "baseline", 1)
    assert json.loads((out / "best.json").read_text())["seeds"] == [100]
    assert "> note: each trial was scored on 1 seed(s), fewer than 3" in (out / "tune.md").read_text()

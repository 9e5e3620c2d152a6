"""augkit compare as a tool people run for an hour (issue 22): progress over runs and tests,
--resume that reloads finished runs without touching them, run directories with a normal run's
files, one colour per variant, absolute differences beside lifts, p-values that agree with the
†, a second comparison under an existing name refused, and a test pass that does no more work
than it must."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner
from workspaces import TINY_RUN

from augkit.cli import main
from augkit.errors import RunDirectoryError
from augkit.experiments import plots as plots_module
from augkit.experiments import training as training_module
from augkit.experiments.compare import run_compare
from augkit.experiments.plots import COLOURS, colour
from augkit.experiments.report import _lift_cell
from augkit.experiments.spec import compare_spec
from augkit.experiments.stats import NEAR_ZERO, p_text, paired
from augkit.experiments.training import evaluate_chosen
from augkit.experiments.variants import variant_config
from augkit.train import config_from_dict, load_config
from augkit.train.run import load_dataset

pytest.importorskip("scipy.stats")

TINY = {**TINY_RUN, "checkpoint_every": 0}


def small(tmp_path, **changes):
    return config_from_dict({**TINY, "output_dir": str(tmp_path / "runs"), **changes})


# -- the page's numbers -----------------------------------------------------------------------
@pytest.mark.parametrize(("p", "text", "dagger"), [
    (0.0496, "0.0496", True), (0.05, "0.0500", False), (0.0504, "0.0504", False), (0.04999999, "<0.05", True),
    (0.0312, "0.0312", True), (0.0004, "<0.001", True), (0.3104, "0.310", False), (1.0, "1.000", False),
])
def test_p_values_are_printed_so_that_the_number_and_the_dagger_agree(p, text, dagger):
    assert p_text(p) == text
    stats = {"lift": 0.1, "lift_ci": 0.05, "p_t": p, "p_wilcoxon": 0.0625, "significant": p < 0.05,
             "base": 0.2, "diff": 0.02, "diff_ci": 0.01}
    cell = _lift_cell(stats)
    assert f"p={text}/0.0625" in cell and cell.endswith("†") == dagger


def _runs(values, key="tail/recall@50"):
    slice_, metric = key.split("/")
    return [{"model": {slice_: {metric: v}}} for v in values]


def test_lifts_come_with_their_absolute_difference():
    stats = paired(_runs([0.12, 0.14, 0.13, 0.11, 0.14]), _runs([0.10, 0.12, 0.11, 0.10, 0.12]), ["tail/recall@50"])
    cell = _lift_cell(stats["tail/recall@50"])
    assert cell.startswith("+16.4% [") and "Δ +0.0180 [+0.0" in cell and cell.endswith("†")


def test_no_percent_over_a_baseline_near_zero():
    base = [0.0009, 0.0008, 0.0010, 0.0009, 0.0009]  # mean 0.0009 < NEAR_ZERO
    assert sum(base) / 5 < NEAR_ZERO
    stats = paired(_runs([0.011, 0.001, 0.02, 0.0, 0.015]), _runs(base), ["tail/recall@50"])["tail/recall@50"]
    assert stats["lift"] is None and stats["diff"] == pytest.approx(0.0085)
    cell = _lift_cell(stats)
    assert "%" not in cell.replace("no %", "") and "Δ +0.0085 [" in cell and "(baseline 0.0009, near 0: no %)" in cell


# -- colours ----------------------------------------------------------------------------------
def test_each_variant_keeps_its_colour_whatever_the_row_order(tmp_path, monkeypatch):
    assert colour("cfm") == COLOURS["cfm"] and colour("mns") == colour("mns") != colour("baseline")
    seen: list[tuple[str, str]] = []
    original = plots_module._errorbar

    def recording(axes, xs, stats, **style):
        if "label" in style:
            seen.append((style["label"], style["color"]))
        return original(axes, xs, stats, **style)

    monkeypatch.setattr(plots_module, "_errorbar", recording)
    stat = {"mean": 0.1, "ci": 0.01}
    row = {f"decile_{d}/recall@50": stat for d in range(10)} | {"cold/recall@50": stat}
    lift = {key: {"lift": 0.1, "lift_ci": 0.05} for key in row}
    for order in (["baseline", "cfm", "mns"], ["baseline", "mns", "cfm"]):
        chosen = {v: f"{v} row" for v in order}
        summary = {label: row for label in [*chosen.values(), "TopPopular"]}
        lifts = {label: lift for label in list(chosen.values())[1:]}
        plots_module.compare_plots(tmp_path, "x", "valid/all/recall@50", summary, lifts, chosen, 50, {}, {}, {}, 2)
    colours = {}
    for label, tint in seen:
        assert colours.setdefault(label, tint) == tint, label
    assert colours["cfm row"] == COLOURS["cfm"] and colours["TopPopular"] == COLOURS["TopPopular"]


# -- the comparison as a long run -------------------------------------------------------------
def test_progress_resume_run_files_and_a_second_comparison(tmp_path, monkeypatch, caplog):
    base = small(tmp_path, epochs=2)
    spec = compare_spec(base, ["baseline", "cfm"], 2, alphas=(1.0,))
    with caplog.at_level(logging.INFO, logger="augkit.train"):
        out = run_compare(spec)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("compare:")]
    assert "compare: run 1/4: training baseline (seed 0)" in lines[0] and any("run 4/4" in line for line in lines)
    assert any(line.startswith("compare: run 1/4, training baseline (seed 0), took ") and "left" in line for line in lines)
    assert any(line.startswith("compare: test 4/4, testing cfm α=1 (seed 1), took ") and line.endswith("done")
               for line in lines)

    # Every run directory has a normal run's files, with its training time.
    runs = tmp_path / "runs"
    for name in ("default-baseline-s0", "default-baseline-s1", "default-cfm-a1-s0", "default-cfm-a1-s1"):
        for file in ("config.toml", "metrics.json", "report.md", "checkpoint.pt", "best.pt", "history.csv"):
            assert (runs / name / file).exists(), f"{name}/{file}"
        metrics = json.loads((runs / name / "metrics.json").read_text())
        assert metrics["training"]["seconds"] > 0 and metrics["model"]["all"]["recall@50"] is not None
        assert "training time" in (runs / name / "report.md").read_text()
        assert load_config(runs / name / "config.toml").name == name

    # A second comparison under the same name is refused, naming --resume, --overwrite and the directory.
    with pytest.raises(RunDirectoryError, match=rf"{out}.*--resume.*--overwrite"):
        run_compare(spec)

    # --resume reloads finished runs, says so, and leaves their checkpoints and histories as they are.
    kept = {path: path.read_bytes() for name in ("default-baseline-s0", "default-cfm-a1-s1")
            for path in (runs / name / "checkpoint.pt", runs / name / "best.pt", runs / name / "history.csv")}
    stamps = {path: path.stat().st_mtime_ns for path in kept}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="augkit.train"):
        run_compare(spec, on_existing="resume")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("compare: run")]
    assert len(lines) == 4 and all("reloaded" in line and "training" not in line for line in lines)
    for path, data in kept.items():
        assert path.read_bytes() == data and path.stat().st_mtime_ns == stamps[path], path

    # A comparison run continues as a normal run from its config.toml.
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", str(runs / "default-cfm-a1-s0" / "config.toml"), "--resume", "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads((runs / "default-cfm-a1-s0" / "metrics.json").read_text())["training"]["epochs"] == 3


def test_the_test_pass_gathers_its_users_once_and_toppopular_once_per_seed(tmp_path, monkeypatch):
    config = variant_config(small(tmp_path), "cfm", 0, 1.0)
    dataset = load_dataset(config)
    training_module.fit(config, dataset)
    calls = {"holdout": 0, "popular": 0}
    holdout, popular = training_module.build_holdout, training_module.top_popular

    def counting_holdout(*args, **kwargs):
        calls["holdout"] += 1
        return holdout(*args, **kwargs)

    def counting_popular(*args, **kwargs):
        calls["popular"] += 1
        return popular(*args, **kwargs)

    monkeypatch.setattr(training_module, "build_holdout", counting_holdout)
    monkeypatch.setattr(training_module, "top_popular", counting_popular)
    first = evaluate_chosen(config, dataset)
    assert calls == {"holdout": 1, "popular": 1}
    again = evaluate_chosen(config, dataset, popular=first["default"]["top_popular"])
    assert calls == {"holdout": 2, "popular": 1}  # another variant on the same seed reuses TopPopular
    assert again["default"] == first["default"] and again["trained"] == first["trained"]
    assert first["default"]["model"] != first["trained"]["model"]

"""The report shows what a run is for: tail and cold Recall at the monitored k, beside the
baseline when there is one (plot, curves, table and the command's final line), and how to get
a baseline when there is none."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from matplotlib.figure import Figure

from augkit.cli import main
from augkit.train import config_from_dict
from augkit.train.logbook import HISTORY_NAME, write_csv
from augkit.train.report import monitored_k, read_history, summary_line, write_run_report

SLICES = ("all", "head", "tail", "cold", *(f"decile_{d}" for d in range(10)))


def slice_metrics(scale: float, *, cold: float | None = 0.05) -> dict[str, dict[str, float | int | None]]:
    """Metrics of every slice at ks 10 and 50: Recall falling from the head to the tail, zero in
    the last deciles, `cold` on the cold items."""
    recall = {"all": 0.3, "head": 0.45, "tail": 0.02, "cold": cold}
    recall |= {f"decile_{d}": (0.5 / 3**d if d < 7 else 0.0) for d in range(10)}
    out = {}
    for name in SLICES:
        value = None if recall[name] is None else scale * recall[name]
        out[name] = {"n": 10, "n_interactions": 12, "recall@10": value and value / 2, "recall@50": value,
                     "ndcg@10": value, "ndcg@50": value}
    return out


def run_report(*, baseline: bool) -> dict:
    report = {
        "training": {"steps": 4, "seconds": 1.0, "last_losses": {"total": 2.0, "main": 1.0, "ssl": 1.0},
                     "epochs": 2, "stopped_early": False},
        "validation": None,
        "model": slice_metrics(1.0),
        "top_popular": slice_metrics(0.5, cold=0.0),
        "versions": {"augkit": "0"},
    }
    if baseline:
        report["baseline"] = {"run": "baseline", "training": report["training"], "validation": None,
                              "model": slice_metrics(0.8, cold=0.0125)}
    return report


def config(tmp_path, **changes):
    return config_from_dict({"output_dir": str(tmp_path / "runs"), "eval": {"ks": [10, 50]}, **changes})


HISTORY = [
    {"epoch": 1, "step": 2, "loss/total": 3.0, "loss/main": 2.0, "loss/ssl": 1.0, "valid/all/recall@50": 0.2},
    {"epoch": 2, "step": 4, "loss/total": 2.0, "loss/main": 1.5, "loss/ssl": 0.5, "valid/all/recall@50": 0.3},
]


def test_monitored_k_is_the_k_of_eval_monitor(tmp_path):
    assert monitored_k(config(tmp_path)) == 50  # the default monitor: valid/all/recall@50
    assert monitored_k(config(tmp_path, eval={"ks": [10, 20], "monitor": "valid/tail/ndcg@10"})) == 10


def test_the_final_line_gives_head_tail_and_cold_beside_all_for_every_row():
    line = summary_line(run_report(baseline=True), 50, "runs/x/report.md")
    assert line == (
        "test Recall@50: model all 0.3000 head 0.4500 tail 0.0200 cold 0.0500; "
        "baseline all 0.2400 head 0.3600 tail 0.0160 cold 0.0100; "
        "TopPopular all 0.1500 head 0.2250 tail 0.0100 cold 0.0000; report: runs/x/report.md"
    )
    report = run_report(baseline=False)
    report["model"]["cold"]["recall@10"] = None  # no cold item in the test split
    assert "model all 0.1500 head 0.2250 tail 0.0100 cold n/a; TopPopular" in summary_line(report, 10, "r.md")


def test_the_command_ends_with_the_monitored_k_and_every_slice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("augkit.cli.train.run_training", lambda settings, **options: run_report(baseline=True))
    result = CliRunner().invoke(main, ["train", "--set", 'eval.monitor="valid/cold/recall@10"'])
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert re.fullmatch(r"test Recall@10: model all \S+ head \S+ tail \S+ cold \S+; baseline all .*; TopPopular all .*"
                        r"; report: runs/default/report\.md", last), last


@pytest.fixture
def drawn(monkeypatch):
    """The figures the report saves, by file name, instead of PNG files."""
    figures = {}
    monkeypatch.setattr(Figure, "savefig", lambda figure, path: figures.__setitem__(path.name, figure))
    return figures


def test_the_decile_plot_shows_the_monitored_k_on_a_log_axis_with_cold_items_and_the_baseline(tmp_path, drawn):
    run = config(tmp_path, eval={"ks": [10, 50], "baseline": True})
    run.run_dir.mkdir(parents=True)
    write_run_report(run.run_dir, run, run_report(baseline=True))
    axes = drawn["recall_by_decile.png"].axes[0]
    assert axes.get_yscale() == "symlog" and axes.get_ylim()[0] == 0  # zero recall in the tail stays on the plot
    assert "Recall@50" in axes.get_ylabel() and "Recall@50" in axes.get_title()
    assert [t.get_text() for t in axes.get_xticklabels()][-1] == "cold"
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["model", "baseline", "TopPopular"]
    cold = sorted(line.get_ydata()[0] for line in axes.get_lines() if len(line.get_xdata()) == 1)
    assert cold == [0.0, pytest.approx(0.01), pytest.approx(0.05)]  # a cold point per row: TopPopular, baseline, model
    text = (run.run_dir / "report.md").read_text()
    assert "![Test Recall@50 by popularity decile and of the cold items](recall_by_decile.png)" in text
    assert "recall@50: all 0.3000 against 0.2400 (+25.0%); head" in text and "cold 0.0500 against 0.0100" in text


def test_the_training_curves_include_the_baselines_history(tmp_path, drawn):
    run = config(tmp_path, eval={"ks": [10, 50], "baseline": True})
    (run.run_dir / "baseline").mkdir(parents=True)
    write_csv(run.run_dir / "baseline" / HISTORY_NAME, [{**row, "loss/ssl": ""} for row in HISTORY])
    assert read_history(run.run_dir / "baseline" / HISTORY_NAME)[1] == {
        "epoch": 2, "step": 4, "loss/total": 2.0, "loss/main": 1.5, "loss/ssl": None, "valid/all/recall@50": 0.3}
    write_run_report(run.run_dir, run, run_report(baseline=True), history=HISTORY)
    losses, valid = drawn["training_curves.png"].axes
    assert [t.get_text() for t in losses.get_legend().get_texts()] == ["total", "main", "ssl", "baseline: main"]
    assert "baseline" in [t.get_text() for t in valid.get_legend().get_texts()]
    assert "![Losses and validation by epoch, the baseline's dashed](training_curves.png)" in (
        run.run_dir / "report.md").read_text()


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({}, "No baseline was trained beside this run"),
        ({"ssl": {"alpha": 0.0}}, "it is a baseline itself"),
        ({"eval": {"ks": [10, 50], "baseline": True}}, "has not finished: the same command with `--resume` trains it"),
    ],
)
def test_a_report_without_a_baseline_says_why_and_how_to_get_one(tmp_path, drawn, changes, says):
    run = config(tmp_path, **changes)
    run.run_dir.mkdir(parents=True)
    write_run_report(run.run_dir, run, run_report(baseline=False), history=HISTORY)
    text = (run.run_dir / "report.md").read_text()
    assert says in text
    if not changes:
        assert "`baseline = true` in the config's `[eval]` table or add `--set eval.baseline=true`" in text
    assert [t.get_text() for t in drawn["training_curves.png"].axes[0].get_legend().get_texts()] == ["total", "main", "ssl"]


def test_the_report_of_a_run_with_its_baseline_says_nothing_about_getting_one(tmp_path, drawn):
    run = config(tmp_path, eval={"ks": [10, 50], "baseline": True})
    run.run_dir.mkdir(parents=True)
    write_run_report(run.run_dir, run, run_report(baseline=True))
    baseline = config_from_dict({"output_dir": str(run.run_dir), "name": "baseline", "ssl": {"alpha": 0.0},
                                 "eval": {"ks": [10, 50]}})
    baseline.run_dir.mkdir()
    write_run_report(baseline.run_dir, baseline, {**run_report(baseline=False), "baseline_of": "default"})
    for written in (run.run_dir, baseline.run_dir):
        text = (written / "report.md").read_text()
        assert "No baseline" not in text and "a baseline itself" not in text and "has not finished" not in text

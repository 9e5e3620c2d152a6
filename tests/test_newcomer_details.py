"""Issue 21's smaller items: a title column for tables, bags truncated to max_len (counted),
non-finite log_q named, tune's importance caveat, and each data warning once per command."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest
import tomli_w
import torch
from click.testing import CliRunner

from augkit.cli import main
from augkit.cli.common import OncePerCommand, show_progress_lines
from augkit.data import read_tables
from augkit.errors import BatchValidationError, ConfigError, PluginCallError
from augkit.experiments.report import FEW_TRIALS, few_trials_caveat, tune_page
from augkit.train import config_from_dict, train
from augkit.train.contracts import VALUES_CHECKED_STEPS, check_log_prob
from augkit.train.run import build_run
from augkit_losses import BatchSoftmaxLoss

USERS, ITEMS = 24, 12


def write_shop(folder: Path, *, title: bool = True) -> dict:
    """A log of 24 users, 10 events each, over 12 items; ``items.csv`` has a title column and lacks item i11
    (a join warning); the ``tables`` config of both."""
    events = ["user,item,time"]
    for user in range(USERS):
        for k in range(10):
            events.append(f"u{user:02d},i{(user * 5 + k * 7) % ITEMS:02d},{1_700_000_000 + 60 * (user + USERS * k)}")
    (folder / "log.csv").write_text("\n".join(events) + "\n")
    rows = [f"i{i:02d},Item number {i},{'|'.join(f'g{(i + j) % 5}' for j in range(1 + i % 4))}" for i in range(ITEMS - 1)]
    (folder / "items.csv").write_text("item,name,genres\n" + "\n".join(rows) + "\n")
    item_file = {"path": str(folder / "items.csv"), "key": "item",
                 "features": {"genres": {"type": "multi_categorical", "column": "genres", "separator": "|"}}}
    if title:
        item_file["title"] = "name"
    return {"interactions": {"path": str(folder / "log.csv"), "user": "user", "item": "item", "timestamp": "time"},
            "items": [item_file]}


def tiny_config(folder: Path, tables: dict, **changes) -> dict:
    return {
        "name": "shop", "output_dir": str(folder / "runs"), "epochs": 1, "progress": False, "log_every": 0,
        "model": {"hidden": [8], "output_dim": 4, "embedding_dim": 4},
        "main": {"batch_size": 32}, "ssl": {"batch_size": 8},
        "eval": {"ks": [2, 5], "monitor": "valid/all/recall@5"},
        "data": {"source": "tables", "tables": tables, "valid_fraction": 0.2}, **changes,
    }


def write_toml(path: Path, config: dict) -> Path:
    path.write_text(tomli_w.dumps(config))
    return path


# -- the title column ---------------------------------------------------------------------------
def test_a_title_column_is_read_and_never_a_feature(tmp_path):
    loaded = read_tables(write_shop(tmp_path))
    assert loaded.items.schema.names == ("item_id", "genres")
    keys = loaded.items.vocabularies["item_id"]
    assert loaded.titles[keys.index("i03")] == "Item number 3"
    assert loaded.titles[keys.index("i11")] is None  # logged, but no row in items.csv
    assert read_tables(write_shop(tmp_path, title=False)).titles is None


def test_a_title_belongs_to_one_item_file(tmp_path):
    tables = write_shop(tmp_path)
    with pytest.raises(ConfigError, match="title applies to item files only"):
        read_tables({**tables, "users": [{**tables["items"][0], "key": "item"}]})
    with pytest.raises(ConfigError, match="name it in one item file"):
        second = {**tables["items"][0], "features": {"kind": {"type": "categorical", "column": "genres"}}}
        read_tables({**tables, "items": [tables["items"][0], second]})


def test_recommend_prints_the_titles_of_a_tables_run(tmp_path):
    config = write_toml(tmp_path / "shop.toml", tiny_config(tmp_path, write_shop(tmp_path)))
    result = CliRunner().invoke(main, ["train", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["recommend", str(tmp_path / "runs" / "shop"), "--user", "u03", "-k", "4"])
    assert result.exit_code == 0, result.output
    ranked = result.output.splitlines()[1:]
    assert len(ranked) == 4
    titled = [line for line in ranked if re.fullmatch(r"\s+\d  i\d\d\s+-?\d\.\d{4}  Item number \d+", line)]
    untitled = [line for line in ranked if re.fullmatch(r"\s+\d  i11\s+-?\d\.\d{4}", line)]
    assert len(titled) + len(untitled) == 4  # i11 has no row, so no title (not "None")


# -- bags longer than max_len -------------------------------------------------------------------
def test_bags_are_truncated_to_their_first_values_and_counted(tmp_path):
    (tmp_path / "log.csv").write_text("user,item\n" + "".join(f"u{k % 3},i{k % 4}\n" for k in range(12)))
    (tmp_path / "items.csv").write_text("item,tags\ni0,d|c|b|a\ni1,z|y\ni2,c|c|b|a|e\ni3,\n")
    bag = {"type": "multi_categorical", "column": "tags", "separator": "|", "max_len": 3}
    tables = {"interactions": {"path": str(tmp_path / "log.csv"), "user": "user", "item": "item"},
              "items": [{"path": str(tmp_path / "items.csv"), "key": "item", "features": {"tags": bag}}]}
    with pytest.raises(ConfigError, match=r"4 values of 'tags', more than max_len=3 \(on_overflow = \"truncate\""):
        read_tables(tables)
    bag["on_overflow"] = "truncate"
    loaded = read_tables(tables)
    vocabulary = loaded.items.vocabularies["tags"]
    corpus = loaded.items.corpus
    bags = [sorted(vocabulary[v] for v, kept in zip(row, keep, strict=True) if kept)
            for row, keep in zip(corpus.values["tags"].tolist(), corpus.kept["tags"].tolist(), strict=True)]
    assert bags == [["b", "c", "d"], ["y", "z"], ["a", "b", "c"], []]  # the first 3 distinct values, in file order
    assert loaded.items.schema["tags"].max_len == 3
    assert loaded.warnings == ((
        f"items[0] {str(tmp_path / 'items.csv')!r}: feature 'tags': 2 bags truncated to max_len=3 values "
        '(on_overflow = "truncate": each keeps its first values in file order)'
    ),)
    with pytest.raises(ConfigError, match="needs max_len"):
        read_tables({**tables, "items": [{**tables["items"][0], "features": {"tags": {**bag, "max_len": None}}}]})


def test_a_bag_width_far_above_the_typical_bag_is_reported(tmp_path):
    items = ["item,tags"] + [f"i{k},{'|'.join(f't{j}' for j in range(60 if k == 0 else 1 + k % 3))}" for k in range(200)]
    (tmp_path / "items.csv").write_text("\n".join(items) + "\n")
    (tmp_path / "log.csv").write_text("user,item\n" + "".join(f"u{k % 7},i{k}\n" for k in range(200)))
    loaded = read_tables({"interactions": {"path": str(tmp_path / "log.csv"), "user": "user", "item": "item"},
                          "items": [{"path": str(tmp_path / "items.csv"), "key": "item",
                                     "features": {"tags": {"type": "multi_categorical", "column": "tags", "separator": "|"}}}]})
    assert loaded.items.schema["tags"].max_len == 60  # padded to the longest, as before: only said
    assert loaded.warnings == ((
        f"items[0] {str(tmp_path / 'items.csv')!r}: feature 'tags': every bag is padded to the longest, 60 values, "
        'while 99% of the non-empty bags hold at most 3; max_len = 3 with on_overflow = "truncate" would store 3 '
        "(and truncate 1 bag)"
    ),)


# -- non-finite log_q ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [-math.inf, math.nan])
def test_the_loss_names_a_non_finite_log_q(bad):
    query = item = torch.eye(4)
    log_q = torch.tensor([-1.0, -2.0, bad, -1.0])
    loss = BatchSoftmaxLoss(temperature=1.0)
    with pytest.raises(BatchValidationError, match=rf"batch_softmax: log_q\[2\] is {bad}; log_q must be finite"):
        loss(query, item, log_q=log_q)
    loss.eval()  # log_q is not used in eval mode, so not checked
    assert torch.isfinite(loss(query, item, log_q=log_q))


def test_the_trainer_names_the_estimator_of_a_non_finite_log_prob():
    items = torch.tensor([4, 8, 15])
    with pytest.raises(PluginCallError, match=r"step 3: count \(x\) log_prob returned -inf at position 1 \(item id 8\)"):
        check_log_prob(torch.tensor([-1.0, -math.inf, -2.0]), "count (x)", 3, items)
    assert VALUES_CHECKED_STEPS >= 1


def test_a_run_whose_estimator_returns_minus_infinity_fails_naming_it(tmp_path):
    # an estimator that gives an item probability 0 (as counts without smoothing would)
    config = config_from_dict(tiny_config(tmp_path, write_shop(tmp_path)))
    parts = build_run(config)
    parts.frequency.log_prob = lambda ids: torch.full(ids.shape, -math.inf)
    with pytest.raises(PluginCallError, match=r"step 0: sampler 'count' from distribution .* log_prob returned -inf at position 0"):
        train(config, parts=parts, max_steps=1)


# -- tune's caveat ------------------------------------------------------------------------------
class _Trial:
    def __init__(self, number, value):
        self.number, self.value, self.params = number, value, {"optim.lr": 0.01 * (number + 1)}
        self.state = type("State", (), {"name": "COMPLETE"})()


class _Study:
    def __init__(self, n):
        self.trials = [_Trial(i, 0.1 * i) for i in range(n)]
        self.best_trial = self.trials[-1]

    def get_trials(self, deepcopy=False):
        return self.trials


def test_the_tune_page_carries_a_caveat_under_ten_trials():
    plots = {"param_importances.png": "Parameter importances (fANOVA)"}
    few = tune_page(_Study(3), "n", "cfm", "valid/all/recall@50", (0,), ["optim.lr"], plots, complete=3, failed=0)
    assert "> note: the parameter importances are from 3 trials, fewer than 10: a rough guide" in few
    enough = tune_page(_Study(FEW_TRIALS), "n", "cfm", "valid/all/recall@50", (0, 1, 2), ["optim.lr"], plots,
                       complete=FEW_TRIALS, failed=0)
    assert "> note" not in enough and few_trials_caveat(FEW_TRIALS) == ""


def test_the_importance_plot_title_carries_the_caveat(tmp_path):
    optuna = pytest.importorskip("optuna")
    from augkit.experiments.plots import tune_plots  # matplotlib: the experiments extra

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("optim.lr", 1e-3, 1e-2) + t.suggest_float("ssl.alpha", 0.1, 1.0), n_trials=3)
    plots = tune_plots(study, tmp_path, 3, 2)
    assert plots["param_importances.png"] == (
        "Parameter importances (fANOVA), from 3 trials, fewer than 10: a rough guide, not a ranking"
    )
    assert (tmp_path / "param_importances.png").stat().st_size > 1000


# -- warnings once per command ------------------------------------------------------------------
def test_once_per_command_drops_repeated_warnings_only():
    once = OncePerCommand()
    summary = "data 'x': 3 users\nwarning: items[0] 'a.csv': no row for 1 of the 3 logged items"
    assert once.unseen(summary, warning=False) == summary
    assert once.unseen(summary.replace("3 users", "3 users."), warning=False) == "data 'x': 3 users."
    assert once.unseen("tune: no slice.png", warning=True) == "tune: no slice.png"
    assert once.unseen("tune: no slice.png", warning=True) == ""


def test_a_data_warning_is_printed_once_across_a_two_trial_tune(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, write_shop(tmp_path), tune={"space": {"optim.lr": {"low": 1e-3, "high": 1e-2}}})
    write_toml(tmp_path / "shop.toml", config)
    result = CliRunner().invoke(main, ["tune", "shop.toml", "--variant", "baseline", "--trials", "2"])
    assert result.exit_code == 0, result.output
    warning = "no row for 1 of the 12 logged items; they lack its feature 'genres'"
    assert result.output.count(warning) == 1, result.output
    assert result.output.count("data 'tables': 24 users") == 2 * 3  # each run's summary stays: 2 trials x 3 seeds


def test_each_command_starts_with_no_warning_shown(capsys):
    log = logging.getLogger("augkit.train")
    for _ in range(2):  # two commands in one process
        show_progress_lines()
        log.warning("tune: no slice.png (one trial)")
        log.warning("tune: no slice.png (one trial)")
    assert capsys.readouterr().err.count("tune: no slice.png (one trial)") == 2

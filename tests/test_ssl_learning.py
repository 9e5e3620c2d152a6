"""The trainer says when the SSL task is not learning: the SSL loss against ln B, one warning."""

import logging
import math

import pytest
import torch
from click.testing import CliRunner

from augkit import Categorical, FeatureBatch, FeatureSchema
from augkit.cli import main
from augkit.train import build_run, run_training
from augkit.train.loop import summary
from augkit.train.ssl_chance import CHANCE_RATIO
from augkit_cfm import compute_mutual_information
from tests.test_train import small

# every feature masked in both views: the views carry no information, the loss is ln B
BLIND = {"name": "mask", "params": {"p": 1.0}}
# a third of the features masked at random in each view: views that share most features
SHARING = {"name": "mask", "params": {"p": 0.3}}


def _ssl_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "SSL loss" in r.getMessage()
    ]


def test_views_without_information_sit_at_chance_and_warn_once(tmp_path, caplog):
    config = small(tmp_path, epochs=3, ssl={"batch_size": 128, "augmentation": BLIND})
    with caplog.at_level(logging.INFO, logger="augkit.train"):
        metrics = run_training(config)
    facts = metrics["training"]["ssl_loss_vs_chance"]
    assert facts["chance"] == pytest.approx(math.log(128))
    assert all(ratio > CHANCE_RATIO for ratio in facts["epochs"]) and len(facts["epochs"]) == 3
    warnings = _ssl_warnings(caplog)
    assert len(warnings) == 1 and warnings == [facts["warning"]]
    assert "symmetric_uncertainty" in warnings[0] and "is-ssl-learning" in warnings[0]
    assert facts["warning"] in (config.run_dir / "report.md").read_text()
    assert any("ssl loss" in r.getMessage() and "chance ln(128)" in r.getMessage() for r in caplog.records)


def test_a_learning_run_does_not_warn(tmp_path, caplog):
    config = small(tmp_path, epochs=2, ssl={"batch_size": 128, "augmentation": SHARING})
    with caplog.at_level(logging.INFO, logger="augkit.train"):
        metrics = run_training(config)
    facts = metrics["training"]["ssl_loss_vs_chance"]
    assert facts["warning"] is None and facts["last_ratio"] < CHANCE_RATIO
    assert _ssl_warnings(caplog) == []


def test_a_run_without_ssl_reports_nothing(tmp_path):
    metrics = run_training(small(tmp_path, ssl={"alpha": 0.0}))
    assert "ssl_loss_vs_chance" not in metrics["training"]


def test_the_summary_shows_the_cfm_splits(tmp_path):
    parts = build_run(small(tmp_path))
    lines = [
        line for line in summary(parts, parts.queries.device).splitlines() if line.startswith("ssl splits: ")
    ]
    names = parts.dataset.items.schema.names
    assert [line.split(":")[1].strip() for line in lines[: len(names)]] == [f"seed {n}" for n in names]


def test_miller_madow_lowers_a_sparse_pair_and_keeps_the_entropies():
    generator = torch.Generator().manual_seed(0)
    schema = FeatureSchema([Categorical(name="a", num_values=50), Categorical(name="b", num_values=50)])
    # independent features of many values on few items: the plug-in MI is all bias
    corpus = FeatureBatch.from_tensors(
        schema,
        {
            "a": torch.randint(50, (60,), generator=generator),
            "b": torch.randint(50, (60,), generator=generator),
        },
    )
    plugin = compute_mutual_information(corpus)
    corrected = compute_mutual_information(corpus, estimator="miller_madow")
    assert corrected["a", "b"] < 0.5 * plugin["a", "b"]
    assert corrected["a", "a"] == plugin["a", "a"]  # the diagonal stays the entropy
    with pytest.raises(ValueError, match="estimator must be one of plugin, miller_madow"):
        compute_mutual_information(corpus, estimator="mm")


def test_augkit_mi_shows_the_splits_and_flags_a_dominating_sparse_feature(tmp_path):
    rows = ["sku,colour,size,note"] + [
        f"a{i},c{i % 3},s{i % 4},{'n' + str(i) if i < 3 else ''}" for i in range(12)
    ]
    table = tmp_path / "items.csv"
    table.write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(
        main, ["mi", str(table), "--output", str(tmp_path / "mi.json"), "--estimator", "miller_madow"]
    )
    assert result.exit_code == 0, result.output
    assert "CFM splits" in result.output
    for seed in ("sku", "colour", "size", "note"):
        assert f"seed {seed}: view 1 masks {seed}" in result.output
    assert "note: 'note', present for 25% of the items" in result.output

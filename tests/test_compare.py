"""augkit compare: selection on validation only, the chosen configs tested once, CIs and paired
tests against the baseline, both readings of unseen ids, plots, resume and the CLI."""

from __future__ import annotations

import json
import random
import statistics

import pytest
from click.testing import CliRunner

from augkit.cli import main
from augkit.errors import ConfigError, UnknownNameError
from augkit.experiments import compare as compare_module
from augkit.experiments.compare import run_compare
from augkit.experiments.report import _lift_cell, compare_table, lift_table
from augkit.experiments.spec import (
    DefinedVariant,
    candidates,
    check_tuned,
    compare_spec,
    parse_defines,
    parse_grid,
    parse_target,
)
from augkit.experiments.stats import mean_ci, paired, paired_t_test, summarise, wilcoxon_signed_rank
from augkit.experiments.variants import variant_config
from augkit.train import config_from_dict, dump_config, train

scipy_stats = pytest.importorskip("scipy.stats")

TINY = {
    "epochs": 1,
    "progress": False,
    "checkpoint_every": 20,
    "main": {"batch_size": 1024},
    "ssl": {"batch_size": 128},
    "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
}
TINY_TOML = (
    "epochs = 1\nprogress = false\ncheckpoint_every = 20\n[main]\nbatch_size = 1024\n[ssl]\nbatch_size = 128\n"
    "[model]\nhidden = [16]\noutput_dim = 8\nembedding_dim = 8\n"
)


def small(tmp_path, **changes):
    return config_from_dict({**TINY, "output_dir": str(tmp_path / "runs"), **changes})


def compare(base, variants, seeds, *, resume=False, **options):
    """`run_compare` of the spec `compare_spec` builds from these arguments."""
    return run_compare(compare_spec(base, variants, seeds, **options), on_existing="resume" if resume else "refuse")


# -- statistics -------------------------------------------------------------------------------
T_975 = {1: 12.7062047, 2: 4.30265273, 3: 3.18244631, 4: 2.77644511, 5: 2.57058184, 9: 2.26215716, 29: 2.04522964}
"""Student's t 0.975 quantiles by degrees of freedom, from a printed table."""


def test_intervals_use_the_t_quantiles_of_a_printed_table():
    rng = random.Random(1)
    for df, t in T_975.items():
        values = [rng.random() for _ in range(df + 1)]
        s = statistics.stdev(values)
        assert mean_ci(values).half_width == pytest.approx(t * s / (df + 1) ** 0.5, rel=1e-8)
    assert mean_ci([1.0, 2.0, 3.0, 4.0, 5.0], level=0.9).half_width == pytest.approx(2.13184679 * 2.5**0.5 / 5**0.5, rel=1e-8)


def test_mean_ci_and_paired_tests_match_scipy():
    interval = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert interval.mean == 3.0 and interval.half_width == pytest.approx(2.776445105 * (2.5**0.5) / 5**0.5)
    assert mean_ci([0.4]).half_width is None
    rng = random.Random(0)
    for n in (2, 3, 5, 8):
        a = [rng.random() for _ in range(n)]
        b = [x + rng.gauss(0.05, 0.1) for x in a]
        assert paired_t_test(a, b) == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue, rel=1e-9)
        assert wilcoxon_signed_rank(a, b) == pytest.approx(scipy_stats.wilcoxon(a, b, method="exact").pvalue)
        low, high = scipy_stats.t.interval(0.95, n - 1, loc=sum(a) / n, scale=scipy_stats.sem(a))
        assert mean_ci(a).low == pytest.approx(low) and mean_ci(a).high == pytest.approx(high)
    assert wilcoxon_signed_rank([1, 2, 3, 4, 5], [0] * 5) == pytest.approx(0.0625)  # 5 seeds: p >= 2/32
    assert paired_t_test([1, 2], [1, 2]) == 1.0 and wilcoxon_signed_rank([1, 2], [1, 2]) is None


def test_paired_lift_interval_and_marks():
    def run(value):
        return {"model": {"tail": {"recall@50": value}, "cold": {"recall@50": None}}}

    base = [run(v) for v in (0.10, 0.12, 0.11, 0.10, 0.12)]
    method = [run(v) for v in (0.12, 0.14, 0.13, 0.11, 0.14)]
    stats = paired(method, base, ["tail/recall@50", "cold/recall@50"])
    tail = stats["tail/recall@50"]
    diffs = [0.02, 0.02, 0.02, 0.01, 0.02]
    assert tail["diff"] == pytest.approx(0.018) and tail["lift"] == pytest.approx(0.018 / 0.11)
    assert tail["diff_ci"] == pytest.approx(mean_ci(diffs).half_width)
    assert tail["p_t"] == pytest.approx(scipy_stats.ttest_rel([r["model"]["tail"]["recall@50"] for r in method],
                                                               [r["model"]["tail"]["recall@50"] for r in base]).pvalue)
    assert tail["significant"] and stats["cold/recall@50"] is None
    table = lift_table({"cfm": stats}, ["tail/recall@50", "cold/recall@50"])
    assert "+16.4% [" in table and "†" in table and "| n/a |" in table
    summary = summarise(base, ["tail/recall@50"])
    assert compare_table({"baseline": summary}, ["tail/recall@50"]).splitlines()[2].startswith("| baseline | 0.1100 ± 0.0")


# -- the protocol -----------------------------------------------------------------------------
def _fake(monkeypatch, validation_score, test_score):
    """compare.fit / evaluate_chosen / write_tested replaced: validation and test scores by run name."""
    calls = {"fit": [], "test": []}

    def metrics(score):
        row = {f"recall@{k}": score for k in (10, 50, 100)} | {f"ndcg@{k}": score for k in (10, 50, 100)}
        slices = ["all", "head", "tail", "cold", *(f"decile_{d}" for d in range(10))]
        return {s: dict(row) for s in slices}

    def fit(config, dataset, *, on_existing):
        calls["fit"].append(config.name)
        return {"monitor": config.eval.monitor, "score": validation_score(config.name), "epoch": 1, "step": 1,
                "model": metrics(validation_score(config.name))}

    def evaluate_chosen(config, dataset, *, readings, popular=None):
        calls["test"].append(config.name)
        out = {r: {"model": metrics(test_score(config.name)), "top_popular": metrics(0.01)} for r in readings}
        return out | {"norms": {f"decile_{d}": 1.0 for d in range(10)} | {"cold": 0.5}}

    monkeypatch.setattr(compare_module, "fit", fit)
    monkeypatch.setattr(compare_module, "evaluate_chosen", evaluate_chosen)
    monkeypatch.setattr(compare_module, "write_tested", lambda config, tested, reading, *, comparison: None)
    return calls


def test_selection_reads_validation_only_and_tests_the_chosen_once(tmp_path, monkeypatch):
    # On validation alpha 3 wins; on test alpha 0.3 would: the chosen one must be alpha 3.
    def validation(name):
        return 0.3 if "-a3-" in name else (0.2 if "temperature0.1" in name else 0.1)

    def test(name):
        return 0.5 if "-a0.3-" in name else 0.2 + int(name[-1]) * 0.01

    calls = _fake(monkeypatch, validation, test)
    grid = parse_grid(["baseline:main.temperature=0.05,0.1"])
    out = compare(small(tmp_path), ["baseline", "cfm"], 3, alphas=(0.3, 3.0), grid=grid)
    record = json.loads((out / "compare.json").read_text())
    assert record["chosen"] == {"baseline": "baseline main.temperature=0.1", "cfm": "cfm α=3"}
    assert record["budget"] == {"baseline": 2, "cfm": 2}
    assert len(calls["fit"]) == 4 * 3 and sorted(calls["test"]) == sorted(
        [f"default-baseline-temperature0.1-s{s}" for s in range(3)] + [f"default-cfm-a3-s{s}" for s in range(3)]
    )
    assert list(record["test"]) == ["baseline main.temperature=0.1", "cfm α=3"]  # nothing else tested
    scores = {c["label"]: c["selection_score"]["mean"] for c in record["candidates"]}
    assert scores == pytest.approx({"baseline main.temperature=0.05": 0.1, "baseline main.temperature=0.1": 0.2,
                                    "cfm α=0.3": 0.1, "cfm α=3": 0.3})
    assert set(record["summary"]) == {"default", "trained"} and record["protocol"]["main_reading"] == "default"
    page = (out / "compare.md").read_text()
    assert "unseen ids read as `default` (as served)" in page and "the other reading" in page
    for png in ("recall_by_decile.png", "lift_by_decile.png", "alpha_curves.png", "embedding_norms.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in page


def test_the_baseline_with_fewer_candidates_is_noted_and_targets_are_checked(tmp_path, monkeypatch):
    _fake(monkeypatch, lambda name: 0.1, lambda name: 0.2 if "cfm" in name else 0.1 + int(name[-1]) * 0.001)
    out = compare(small(tmp_path), ["baseline", "cfm"], 2, alphas=(0.3, 3.0),
                      targets=["cfm:tail/recall@50>=+10", "cfm:head/recall@50>=+200"])
    page = (out / "compare.md").read_text()
    assert "the baseline had fewer candidates" in page and "Not every target is reached" in page
    targets = json.loads((out / "compare.json").read_text())["targets"]
    assert [t["reached"] for t in targets] == [True, False]


def test_a_real_comparison_selects_on_validation_and_tests_both_readings(tmp_path):
    out = compare(small(tmp_path), ["baseline", "cfm"], 2, alphas=(0.3, 3.0))
    record = json.loads((out / "compare.json").read_text())
    chosen = record["chosen"]["cfm"]
    means = {c["label"]: c["selection_score"]["mean"] for c in record["candidates"] if c["variant"] == "cfm"}
    assert chosen == max(means, key=means.get)
    for candidate in record["candidates"]:
        runs = candidate["validation"]
        assert len(runs) == 2 and candidate["selection_score"]["mean"] == pytest.approx(sum(r["score"] for r in runs) / 2)
    runs = record["test"][chosen]
    assert len(runs) == 2 and set(runs[0]) == {"default", "trained", "norms"}
    cold = [run[r]["model"]["cold"]["recall@50"] for run in runs for r in ("default", "trained")]
    assert all(value is not None for value in cold)
    # Every run has a normal run's files; only the chosen ones hold test metrics.
    for candidate in record["candidates"]:
        for seed in (0, 1):
            name = f"default-{candidate['variant']}" + (f"-a{candidate['alpha']:g}" if candidate["alpha"] else "") + f"-s{seed}"
            metrics = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
            assert metrics["validation"]["score"] == candidate["validation"][seed]["score"]
            assert ("model" in metrics) == (candidate["label"] in record["chosen"].values())


def test_compare_resume_continues_a_killed_comparison(tmp_path):
    whole = compare(small(tmp_path / "whole", epochs=2, checkpoint_every=2), ["baseline", "cfm"], 1)
    base = small(tmp_path / "killed", epochs=2, checkpoint_every=2)
    train(variant_config(base, "baseline", 0))  # finished: only reloaded on resume
    train(variant_config(base, "cfm", 0), max_steps=3)  # killed after its step-2 checkpoint
    resumed = compare(base, ["baseline", "cfm"], 1, resume=True)
    first, second = (json.loads((out / "compare.json").read_text()) for out in (whole, resumed))
    assert first["summary"] == second["summary"] and first["candidates"][1]["validation"] == second["candidates"][1]["validation"]


def test_tuned_configs_must_share_data_and_eval(tmp_path):
    base = small(tmp_path)
    check_tuned(base, "cfm", variant_config(base, "cfm", 0, 0.3), "best.toml")
    other = config_from_dict({**TINY, "data": {"valid_fraction": 0.2}})
    with pytest.raises(ConfigError, match="data differ"):
        check_tuned(base, "cfm", other, "best.toml")


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (["main.temperature"], "expected KEY=V1,V2"),
        (["cfn:main.temperature=0.1"], "did you mean 'cfm'"),
        (["ssl.alpha=0.1,1"], "use --alphas"),
        (["main.temprature=0.1"], "no key 'temprature' in main"),
        (["main.temperature=-1"], "temperature"),
    ],
)
def test_bad_grids_are_named(tmp_path, grid, message):
    with pytest.raises((ConfigError, UnknownNameError), match=message):
        compare(small(tmp_path), ["baseline", "cfm"], 1, grid=parse_grid(grid))


def test_bad_targets_and_variant_lists(tmp_path):
    with pytest.raises(ConfigError, match="expected VARIANT:SLICE/METRIC@K>=PCT"):
        parse_target("cfm tail>=10")
    with pytest.raises(ConfigError, match="must include 'baseline'"):
        compare(small(tmp_path), ["cfm"], 1)
    with pytest.raises(ConfigError, match="valid_fraction must be > 0"):
        compare(small(tmp_path, data={"valid_fraction": 0.0}), ["baseline"], 1)


def test_defined_variants_get_rows_of_their_own_with_their_fixed_keys(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, lambda name: 0.3 if "cfm-su-a3" in name else 0.1, lambda name: 0.2)
    key = "ssl.augmentation.params.pair.params.correlation"
    defined = parse_defines([f'cfm-su=cfm:{key}="symmetric_uncertainty"', "mns=baseline:main.uniform_negatives=64"])
    assert defined == {"cfm-su": DefinedVariant("cfm", {key: "symmetric_uncertainty"}),
                       "mns": DefinedVariant("baseline", {"main.uniform_negatives": 64})}
    out = compare(small(tmp_path), ["baseline", "cfm", "cfm-su", "mns"], 1, alphas=(0.3, 3.0), defined=defined,
                      targets=["cfm-su:tail/recall@50>=+0"])
    record = json.loads((out / "compare.json").read_text())
    assert record["chosen"] == {"baseline": "baseline", "cfm": "cfm α=0.3", "cfm-su": "cfm-su α=3", "mns": "mns"}
    assert record["budget"] == {"baseline": 1, "cfm": 2, "cfm-su": 2, "mns": 1}
    assert {"default-cfm-su-a3-correlationsymmetric_uncertainty-s0", "default-mns-uniform_negatives64-s0"} <= set(calls["fit"])
    assert set(record["lifts"]["default"]) == {"cfm α=0.3", "cfm-su α=3", "mns"}
    assert record["defined"]["mns"] == {"variant": "baseline", "fixed": {"main.uniform_negatives": 64}}
    su = next(c for c in record["candidates"] if c["label"] == "cfm-su α=3")
    assert su["kind"] == "cfm" and su["fixed"] == {key: "symmetric_uncertainty"}
    config = candidates(small(tmp_path), "cfm-su", (3.0,), defined=defined)[0].config(small(tmp_path), 0)
    assert config.ssl.augmentation["params"]["pair"]["params"]["correlation"] == "symmetric_uncertainty"
    assert config.ssl.alpha == 3.0 and config.name == "default-cfm-su-a3-correlationsymmetric_uncertainty-s0"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["su=cfm"], "expected NAME=VARIANT:KEY=VALUE"),
        (["cfm=cfm:main.temperature=0.1"], "is a built-in variant"),
        (["su=cfn:main.temperature=0.1"], "did you mean 'cfm'"),
        (["1su=cfm:main.temperature=0.1"], "must start with a letter"),
        (["su=cfm:ssl.alpha=3"], "use --alphas"),
        (["su=cfm:main.temperature=0.1", "su=rfm:main.lr=0.1"], "already defined from 'cfm'"),
        (["su=cfm:main.temperature=0.1", "su=cfm:main.temperature=0.2"], "given twice"),
        (["Baseline=cfm:main.temperature=0.1"], "is a built-in variant \\(in any case\\)"),
        (["e=baseline:epochs=50"], "epochs is under epochs, which every variant shares"),
        (["v=baseline:data.valid_fraction=0.3"], "data.valid_fraction is under data"),
        (['m=baseline:eval.monitor="valid/all/recall@10"'], "lifts stay paired"),
        (["o=baseline:output_dir=x"], "output_dir is set by compare itself"),
        (['x=baseline:ssl.temperature=0.2'], "baseline has no SSL task \\(its alpha is 0\\), so ssl.temperature would change nothing"),
    ],
)
def test_bad_defines_are_named(items, message):
    with pytest.raises((ConfigError, UnknownNameError), match=message):
        parse_defines(items)


def test_defines_that_would_mislead_are_refused_before_training(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, lambda name: 0.1, lambda name: 0.1)
    defined = parse_defines(["t=baseline:main.temperature=0.1"])
    with pytest.raises(ConfigError, match="'t' fixes that key by its --define"):
        compare(small(tmp_path), ["baseline", "t"], 1, defined=defined, grid=parse_grid(["t:main.temperature=0.2"], ["t"]))
    with pytest.raises(ConfigError, match="'t' is a defined variant; tune it"):
        compare(small(tmp_path), ["baseline", "t"], 1, defined=defined, tuned={"t": small(tmp_path)})
    with pytest.raises(ConfigError, match="share the row 'baseline main.temperature=0.1'"):
        compare(small(tmp_path), ["baseline"], 1, grid=parse_grid(["baseline:main.temperature=0.1,0.1000001"]))
    with pytest.raises(ConfigError, match="share the run name 'default-x-batch_size64-uniform_negatives8-s0'"):
        compare(small(tmp_path), ["baseline", "x", "x-batch_size64"], 1,
                    defined=parse_defines(["x=baseline:main.batch_size=64", "x-batch_size64=baseline:main.uniform_negatives=8"]),
                    grid=parse_grid(["x:main.uniform_negatives=8"], ["x", "x-batch_size64"]))
    with pytest.raises(ConfigError, match="k=5 is not among eval.ks"):
        compare(small(tmp_path), ["baseline", "cfm"], 1, targets=["cfm:all/recall@5>=+1"])
    with pytest.raises(UnknownNameError, match="slice"):
        compare(small(tmp_path), ["baseline", "cfm"], 1, targets=["cfm:tial/recall@50>=+1"])
    bogus = parse_defines(['x=cfm:ssl.augmentation.params.pair.params.correlation="bogus"'])
    with pytest.raises(ConfigError, match="correlation must be one of"):
        compare(small(tmp_path), ["baseline", "x"], 1, defined=bogus)
    assert calls["fit"] == []  # nothing trained for any of these


def test_a_lift_without_a_t_test_prints_both_p_values_readably():
    stats = {"lift": 0.466, "lift_ci": None, "p_t": None, "p_wilcoxon": 1.0, "significant": False}
    assert _lift_cell(stats) == "+46.6% p=n/a/1.000"


def test_a_defined_variant_with_a_bad_key_fails_before_training(tmp_path):
    with pytest.raises(ConfigError, match="no key 'uniform_negative' in main"):
        compare(small(tmp_path), ["baseline", "x"], 1, defined=parse_defines(["x=baseline:main.uniform_negative=8"]))
    with pytest.raises(UnknownNameError, match="variant"):
        compare(small(tmp_path), ["baseline", "nope"], 1)


def test_cli_train_and_compare(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.toml").write_text(TINY_TOML)
    result = CliRunner().invoke(main, ["train", "run.toml", "--name", "cli"])
    assert result.exit_code == 0, result.output
    assert "report: runs/cli/report.md" in result.output
    result = CliRunner().invoke(main, ["train", "run.toml", "--name", "cli"])
    assert result.exit_code == 1 and "holds another run's results" in result.output and "--overwrite" in result.output
    tuned = variant_config(config_from_dict(tomllib_loads(TINY_TOML)), "cfm", 0, 0.3)
    (tmp_path / "best.toml").write_text(dump_config(tuned))
    result = CliRunner().invoke(main, ["compare", "run.toml", "--variants", "baseline,cfm", "--seeds", "1",
                                       "--tuned", "cfm=best.toml", "--target", "cfm:cold/recall@50>=+20"])
    assert result.exit_code == 0, result.output
    assert "| cfm (tuned) |" in result.output and (tmp_path / "runs" / "default-compare" / "compare.md").exists()
    assert (tmp_path / "runs" / "default-cfm-tuned-s0" / "best.pt").exists()
    result = CliRunner().invoke(main, ["train", "missing.toml"])
    assert result.exit_code != 0 and "does not exist" in result.output


def tomllib_loads(text):
    import tomllib

    return tomllib.loads(text)


@pytest.mark.parametrize("alphas", ["0,1", "a,b", ""])
def test_compare_rejects_bad_alphas(tmp_path, monkeypatch, alphas):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["compare", "--alphas", alphas])
    assert result.exit_code == 2 and "--alphas" in result.output and "expected" in result.output


def test_cli_compare_rejects_a_bad_tuned_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["compare", "--tuned", "cfm"])
    assert result.exit_code == 2 and "VARIANT=PATH" in result.output

"""The markdown pages of the experiments: ``compare.md`` (`compare_page`, from the record that
``compare.json`` holds) and ``tune.md`` (`tune_page`, from an Optuna study)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from augkit.experiments.stats import NEAR_ZERO, SIGNIFICANCE, p_text


# -- the comparison ---------------------------------------------------------------------------
def _cell(stats: Mapping[str, Any] | None) -> str:
    if stats is None:
        return "n/a"
    return f"{stats['mean']:.4f}" + (f" ± {stats['ci']:.4f}" if stats["ci"] is not None else "")


def _lift_cell(stats: Mapping[str, Any] | None) -> str:
    """``+16.4% [+5.0, +27.8] Δ +0.0180 [+0.0056, +0.0304] p=0.0031/0.0625 †``: the percent
    lift and the absolute difference, each with its 95% interval; the percent left out over a
    baseline near zero (`NEAR_ZERO`); p-values by `p_text`, so that they agree with the †."""
    if stats is None or (stats["lift"] is None and stats.get("diff") is None):
        return "n/a"
    parts = []
    if stats["lift"] is not None:
        parts.append(f"{100 * stats['lift']:+.1f}%" + _interval(stats["lift"], stats["lift_ci"], 100, ".1f"))
    if stats.get("diff") is not None:
        parts.append(f"Δ {stats['diff']:+.4f}" + _interval(stats["diff"], stats.get("diff_ci"), 1, ".4f"))
        if stats["lift"] is None:
            parts.append(f"(baseline {stats['base']:.4f}, near 0: no %)")
    text = " ".join(parts)
    if stats["p_t"] is not None or stats["p_wilcoxon"] is not None:
        text += " p=" + "/".join(p_text(p) for p in (stats["p_t"], stats["p_wilcoxon"]))
    return text + (" †" if stats["significant"] else "")


def _interval(mean: float, half: float | None, scale: float, spec: str) -> str:
    if half is None:
        return ""
    return f" [{scale * (mean - half):+{spec}}, {scale * (mean + half):+{spec}}]"


def compare_table(summary: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> str:
    """Markdown: a row per chosen variant (and TopPopular), mean ± 95% CI per key."""
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, row in summary.items():
        lines.append(f"| {label} | " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def lift_table(lifts: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> str:
    """Markdown: a row per variant, its lift over the baseline per key and the absolute
    difference, each with the 95% interval, the paired t-test and Wilcoxon p-values, † where
    significant (`_lift_cell`)."""
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, row in lifts.items():
        lines.append(f"| {label} | " + " | ".join(_lift_cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def selection_table(record: Mapping[str, Any]) -> str:
    """Markdown: every candidate's mean validation score ± CI, the chosen ones in bold."""
    chosen = set(record["chosen"].values())
    lines = [f"| candidate | validation {record['protocol']['monitor']} | chosen |", "|---|---|---|"]
    for candidate in record["candidates"]:
        stats = candidate["selection_score"]
        mark = "**yes**" if candidate["label"] in chosen else ""
        lines.append(f"| {candidate['label']} | {_cell(stats)} | {mark} |")
    return "\n".join(lines)


def compare_page(name: str, record: Mapping[str, Any], keys: Sequence[str], plots: Mapping[str, str]) -> str:
    """``compare.md`` of the comparison `name` from its `record` (as in ``compare.json``): the
    protocol, the selection, the test tables of `keys` under the main reading, the targets,
    the other reading, and the `plots` (``{file: title}``)."""
    protocol = record["protocol"]
    seeds = protocol["seeds"]
    budget = record["budget"]
    near_zero = protocol.get("near_zero", NEAR_ZERO)
    lines = [
        f"# {name}: variants over {len(seeds)} seed(s)",
        "",
        (f"Protocol: every candidate trained with seeds {seeds[0]}..{seeds[-1]}; each variant's candidate chosen by the "
        f"{protocol['selection']} (the test split is not read); the chosen candidate of each variant tested once. "
        f"Mean ± half-width of the 95% Student-t interval over seeds. Lifts are against the baseline on the same seeds "
        f"(paired): lift [95% interval], then the absolute difference Δ [95% interval], p = paired t-test / exact "
        f"Wilcoxon signed-rank; † where the t-test gives p < {SIGNIFICANCE:g}. No percent is given over a baseline "
        f"mean below {near_zero:g} (near zero): the difference alone. With {len(seeds)} seeds Wilcoxon's smallest p "
        f"is {p_text(2 / 2 ** len(seeds))}."),
        "",
        "Candidates per variant (the selection budget): " + ", ".join(f"{v} {n}" for v, n in budget.items()) + ".",
    ]
    if record.get("budgets"):
        lines += ["", *budget_section(record["budgets"], record.get("budget_warnings", []), seeds)]
    if any(n > budget["baseline"] for v, n in budget.items() if v != "baseline"):
        lines += ["", ("> note: the baseline had fewer candidates than some variant; give it a grid of its own "
                       "(`--grid baseline:KEY=...`) or tuned configs (`--tuned`) for an equal budget.")]
    main, other = protocol["main_reading"], protocol["other_reading"]
    lines += ["", "## Selection (validation split)", "", selection_table(record), ""]
    lines += _test_section(record, keys, main, " (as served)" if main == "default" else "")
    if record["targets"]:
        lines += _targets_section(record["targets"])
    lines += _test_section(record, keys, other, " (the other reading)")
    lines += ["## Plots", ""]
    lines += [f"![{title}]({file})\n" for file, title in plots.items()]
    return "\n".join(lines)


def budget_section(budgets: Mapping[str, Mapping[str, Any]], warnings: Sequence[str], seeds: Sequence[int]) -> list[str]:
    """Markdown lines: each variant's search budget (`augkit.experiments.spec.CompareSpec.budgets`)
    and a warning per way in which the budgets differ."""
    lines = ["| variant | budget | keys searched |", "|---|---|---|"]
    for variant, b in budgets.items():
        if b["how"] == "tuned":
            tuning = b["tuning_seeds"]
            spent = ("a study of unknown size" if b["trials"] is None else
                     f"tuned: {b['trials']} trials × {len(tuning)} seeds ({', '.join(map(str, tuning))}) = {b['runs']} runs")
            text = f"{spent}; the tuned config tested over {b['seeds']} seeds ({seeds[0]}..{seeds[-1]})"
        else:
            text = f"{b['candidates']} candidate{_s(b['candidates'])} × {b['seeds']} seeds = {b['runs']} runs"
        keys = "unknown" if b["keys"] is None else (", ".join(f"`{k}`" for k in b["keys"]) or "none")
        lines.append(f"| {variant} | {text} | {keys} |")
    lines += [""] + [f"> warning: {w}." for w in warnings]
    return lines


def _test_section(record: Mapping[str, Any], keys: Sequence[str], reading: str, note: str) -> list[str]:
    """The test tables under `reading` of unseen ids: means, then lifts over the baseline."""
    return [
        f"## Test: unseen ids read as `{reading}`{note}",
        "",
        _reading_note(reading),
        "",
        compare_table(record["summary"][reading], keys),
        "",
        "Lift over the baseline:",
        "",
        lift_table(record["lifts"][reading], keys),
        "",
    ]


def _targets_section(targets: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["## Targets", "", "| target | lift [95% CI] | reached (point) | reached (CI lower end) |", "|---|---|---|---|"]
    for t in targets:
        lift = "n/a" if t["lift"] is None else f"{100 * t['lift']:+.1f}%" + (
            f" [{100 * (t['lift'] - t['lift_ci']):+.1f}, {100 * (t['lift'] + t['lift_ci']):+.1f}]" if t["lift_ci"] is not None else "")
        lines.append(f"| {t['text']} | {lift} | {_yes(t['reached'])} | {_yes(t['reached_by_ci'])} |")
    if not all(t["reached"] for t in targets):
        lines += ["", ("**Not every target is reached.** The diagnostics below show where the lift goes: per "
                       "decile, against alpha on validation, and the id-embedding norms by popularity.")]
    lines.append("")
    return lines


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def _reading_note(reading: str) -> str:
    if reading == "default":
        return ("An item never seen in training is embedded with its `item_id` missing, as a new item would be "
                "served: its score comes from its other features and the `item_id` default embedding, which every "
                "variant trains alike (the main task masks `item_id` with the same probability in every variant).")
    return ("An item never seen in training keeps its own `item_id` embedding as training left it: initialised "
            "at random and moved only by losses that sample the whole corpus (the SSL task), which favours them.")


# -- the study --------------------------------------------------------------------------------
FEW_SEEDS = 3
"""Under this many seeds per trial, the tune page warns that one split may have chosen the winner."""
FEW_TRIALS = 10
"""Under this many complete trials, parameter importances are noise more than signal: the
tune page and the importance plot say so (`few_trials_caveat`)."""


def few_trials_caveat(complete: int) -> str:
    """The caveat of parameter importances from `complete` trials; empty from `FEW_TRIALS` on."""
    if complete >= FEW_TRIALS:
        return ""
    return f"from {complete} trials, fewer than {FEW_TRIALS}: a rough guide, not a ranking"


def tune_page(study: Any, name: str, variant: str, monitor: str, seeds: Sequence[int], space: Sequence[str],
              plots: Mapping[str, str], *, complete: int, failed: int) -> str:
    """``tune.md`` of the Optuna `study` of `variant` on the config `name` (`complete` and
    `failed` trials, each scored on the mean over `seeds`): the budget, the best trial, a row per
    trial with its value of each `space` key, and the `plots` (``{file: title}``)."""
    best = study.best_trial
    lines = [
        f"# Tuning `{variant}` on {name}",
        "",
        (f"{complete} complete and {failed} failed trial(s), Optuna TPE; objective: validation "
         f"`{monitor}` (best epoch), the mean over seeds {', '.join(map(str, seeds))}; the test split is not read. "
         f"Budget: {complete + failed} trials × {len(seeds)} seeds, over "
         + ", ".join(f"`{k}`" for k in space) + "."),
        "",
        f"Best: trial {best.number}, {best.value:.4f}: " + ", ".join(f"`{k}` = {v!r}" for k, v in best.params.items()) + ".",
        "`best.toml` trains it.",
        "",
        "| trial | state | value | " + " | ".join(space) + " |",
        "|---" * (len(space) + 3) + "|",
    ]
    for t in study.get_trials(deepcopy=False):
        value = "" if t.value is None else f"{t.value:.4f}"
        cells = " | ".join(_fmt(t.params.get(k)) for k in space)
        lines.append(f"| {t.number} | {t.state.name.lower()} | {value} | {cells} |")
    lines.append("")
    if len(seeds) < FEW_SEEDS:
        lines += [(f"> note: each trial was scored on {len(seeds)} seed(s), fewer than {FEW_SEEDS}: one split can favour a "
                   f"config by chance; set `seeds = {FEW_SEEDS}` or more in `[tune]` before comparing the winner."), ""]
    if "param_importances.png" in plots and few_trials_caveat(complete):
        lines += [(f"> note: the parameter importances are {few_trials_caveat(complete)}. fANOVA fits a "
                   f"random forest to the trials; with so few, the ranking changes from one study to the next. "
                   f"Run at least {FEW_TRIALS} trials (`--trials`) before reading it."), ""]
    lines += [f"![{title}]({file})\n" for file, title in plots.items()]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _s(count: int) -> str:
    return "" if count == 1 else "s"

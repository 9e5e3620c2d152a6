"""The markdown pages of the experiments: ``compare.md`` (`compare_page`, from the record that
``compare.json`` holds) and ``tune.md`` (`tune_page`, from an Optuna study)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from augkit.experiments.stats import SIGNIFICANCE


# -- the comparison ---------------------------------------------------------------------------
def _cell(stats: Mapping[str, Any] | None) -> str:
    if stats is None:
        return "n/a"
    return f"{stats['mean']:.4f}" + (f" ± {stats['ci']:.4f}" if stats["ci"] is not None else "")


def _lift_cell(stats: Mapping[str, Any] | None) -> str:
    if stats is None or stats["lift"] is None:
        return "n/a"
    text = f"{100 * stats['lift']:+.1f}%"
    if stats["lift_ci"] is not None:
        text += f" [{100 * (stats['lift'] - stats['lift_ci']):+.1f}, {100 * (stats['lift'] + stats['lift_ci']):+.1f}]"
    if stats["p_t"] is not None or stats["p_wilcoxon"] is not None:
        text += " p=" + "/".join("n/a" if p is None else f"{p:.3f}" for p in (stats["p_t"], stats["p_wilcoxon"]))
    return text + (" †" if stats["significant"] else "")


def compare_table(summary: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> str:
    """Markdown: a row per chosen variant (and TopPopular), mean ± 95% CI per key."""
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, row in summary.items():
        lines.append(f"| {label} | " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def lift_table(lifts: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> str:
    """Markdown: a row per variant, its lift over the baseline per key with the 95% interval,
    the paired t-test and Wilcoxon p-values, † where significant."""
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
    lines = [
        f"# {name}: variants over {len(seeds)} seed(s)",
        "",
        (f"Protocol: every candidate trained with seeds {seeds[0]}..{seeds[-1]}; each variant's candidate chosen by the "
        f"{protocol['selection']} (the test split is not read); the chosen candidate of each variant tested once. "
        f"Mean ± half-width of the 95% Student-t interval over seeds. Lifts are against the baseline on the same seeds "
        f"(paired): lift [95% interval] p = paired t-test / exact Wilcoxon signed-rank; † where the t-test gives "
        f"p < {SIGNIFICANCE:g}. With {len(seeds)} seeds Wilcoxon's smallest p is {2 / 2 ** len(seeds):.3f}."),
        "",
        "Candidates per variant (the selection budget): " + ", ".join(f"{v} {n}" for v, n in budget.items()) + ".",
    ]
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
        return ("An item never seen in training is embedded with its `item_id` missing (the learned default "
                "embedding), as a new item would be served: its score comes from its other features only.")
    return ("An item never seen in training keeps its own `item_id` embedding as training left it: initialised "
            "at random and moved only by losses that sample the whole corpus (the SSL task), which favours them.")


# -- the study --------------------------------------------------------------------------------
FEW_TRIALS = 10
"""Under this many complete trials, parameter importances are noise more than signal: the
tune page and the importance plot say so (`few_trials_caveat`)."""


def few_trials_caveat(complete: int) -> str:
    """The caveat of parameter importances from `complete` trials; empty from `FEW_TRIALS` on."""
    if complete >= FEW_TRIALS:
        return ""
    return f"from {complete} trials, fewer than {FEW_TRIALS}: a rough guide, not a ranking"


def tune_page(study: Any, name: str, variant: str, monitor: str, seed: int, space: Sequence[str],
              plots: Mapping[str, str], *, complete: int, failed: int) -> str:
    """``tune.md`` of the Optuna `study` of `variant` on the config `name` (`complete` and
    `failed` trials): the best trial, a row per trial with its value of each `space` key, and the
    `plots` (``{file: title}``)."""
    best = study.best_trial
    lines = [
        f"# Tuning `{variant}` on {name}",
        "",
        (f"{complete} complete and {failed} failed trial(s), Optuna TPE; objective: validation "
         f"`{monitor}` (best epoch), seed {seed}; the test split is not read."),
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

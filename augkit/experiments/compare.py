"""``augkit compare``: the paper's comparison of baseline, FD, SO, RFM and CFM over seeds, under
a fair protocol.

1. **Selection on validation only.** Each variant's candidates (one per alpha of the grid for
   the weighted variants, times every value of any ``--grid`` key; a `CompareSpec` from
   `augkit.experiments.spec.compare_spec`, checked before anything trains) are trained with every seed by `fit`, which never touches the test
   split. A candidate's score is the mean over seeds of its best validation ``eval.monitor``;
   each variant keeps its best candidate.
2. **Test once.** Only the chosen candidate of each variant is evaluated on the test split
   (`evaluate_chosen`), with its ``best.pt``; under both readings of items never seen in training:
   the config's ``eval.unseen_ids`` (``"default"`` unless set: served as a new item would be)
   for the main table, and the other, labelled.
3. **Statistics over seeds.** Mean ± 95% Student-t interval per variant; against the baseline,
   on the same seeds (so the same splits and initialisations), the lift with the interval of the
   paired differences, the paired t-test and the exact Wilcoxon signed-rank test; a lift whose
   paired t-test gives p < `SIGNIFICANCE` is marked † (`augkit.experiments.stats`).

Every run directory holds the files of a normal run (`augkit.experiments.training`); on resume a
finished run is reloaded from them, not retrained nor rewritten. Log lines say which run of how
many is training or reloaded, how long each took and about how long the rest will take, in
training and in testing (`augkit.experiments.progress`). A comparison directory that holds a
page already is refused unless resumed or overwritten. The page and plots are made by
`augkit.experiments.report` and `augkit.experiments.plots`; every file is written under a
temporary name and renamed into place (`augkit.atomic`), so an interrupted comparison leaves
each earlier result file whole.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from augkit import atomic
from augkit.errors import RunDirectoryError
from augkit.experiments.plots import compare_plots
from augkit.experiments.progress import Counter
from augkit.experiments.report import compare_page
from augkit.experiments.spec import COMPARE_KS, COMPARE_SLICES, CompareSpec, Target, budget_warnings
from augkit.experiments.stats import NEAR_ZERO, SIGNIFICANCE, mean_ci, paired, scipy_stats, summarise
from augkit.experiments.training import COLD, READINGS, evaluate_chosen, fit, reload, write_tested
from augkit.train.config import config_to_dict
from augkit.train.evaluation import DECILE_PREFIX
from augkit.train.run import build_augmentation, load_dataset
from augkit.train.rundir import OnExisting, check_on_existing
from augkit.train.writing import writing

log = logging.getLogger("augkit.train")


def check_targets(targets: Sequence[Target], chosen: Mapping[str, str], lifts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured lift, its interval, and whether the point estimate (and the
    interval's lower end) reach it."""
    out = []
    for target in targets:
        label = chosen.get(target.variant)
        stats = lifts.get(label, {}).get(target.key) if label else None
        row = {"variant": target.variant, "key": target.key, "lift_at_least": target.lift_at_least, "text": target.text,
               "label": label, "lift": None, "lift_ci": None, "reached": None, "reached_by_ci": None, "p_t": None}
        if stats is not None and stats["lift"] is not None:
            ci = stats["lift_ci"]
            row.update(lift=stats["lift"], lift_ci=ci, p_t=stats["p_t"], reached=stats["lift"] >= target.lift_at_least,
                       reached_by_ci=None if ci is None else stats["lift"] - ci >= target.lift_at_least)
        out.append(row)
    return out


def run_compare(spec: CompareSpec, *, on_existing: OnExisting = "refuse") -> Path:
    """Run the comparison `spec` (`compare_spec`): select each variant's
    candidate on validation, test the chosen ones once, and write ``<output_dir>/<name>-compare/``
    (compare.md, compare.json and the plots); see the module. `on_existing`: ``"resume"``, runs
    with a checkpoint continue from it (a finished run is only reloaded); ``"overwrite"``
    replaces earlier runs and the page; ``"refuse"``, a run directory holding results, or a
    comparison directory holding a page, is an error."""
    scipy_stats()  # the statistics need SciPy: ask for it before anything trains
    base = spec.base
    out = Path(base.output_dir) / f"{base.name}-compare"
    check_result_directory(out, check_on_existing(on_existing))  # before anything trains
    dataset = load_dataset(base)
    for _, config in spec.first_runs():  # a bad augmentation fails before any training
        if config.ssl.alpha > 0:
            build_augmentation(config, dataset.items)
    pool, seed_list = spec.pool, list(spec.seeds)
    # 1. selection: validation only
    validation: dict[str, list[dict[str, Any]]] = {}
    seconds: dict[str, list[float | None]] = {}
    planned = [(candidate, seed) for variant in spec.variants for candidate in pool[variant] for seed in seed_list]
    counter = Counter("run", len(planned))
    for candidate, seed in planned:
        config = candidate.config(base, seed)
        what = f"{candidate.label} (seed {seed}) in {config.run_dir}"
        finished = reload(config) if on_existing == "resume" else None
        if finished is not None:
            counter.skip(f"reloaded {what}: it finished earlier, its files are left as they are")
        else:
            counter.start(f"training {what}")
            finished = fit(config, dataset, on_existing=on_existing)
            counter.done(f"training {candidate.label} (seed {seed})")
        seconds.setdefault(candidate.label, []).append(finished.get("seconds"))
        validation.setdefault(candidate.label, []).append({k: finished[k] for k in ("monitor", "score", "epoch", "step", "model")})
    scores = {label: mean_ci([run["score"] for run in runs]) for label, runs in validation.items()}
    chosen: dict[str, str] = {}
    for variant in spec.variants:
        best = pool[variant][0]
        for candidate in pool[variant][1:]:
            if scores[candidate.label].mean > scores[best.label].mean:
                best = candidate
        chosen[variant] = best.label

    # 2. test once: the chosen candidates, both readings
    by_label = {c.label: c for cs in pool.values() for c in cs}
    main_reading = base.eval.unseen_ids
    other = next(r for r in READINGS if r != main_reading)
    tested: dict[str, list[dict[str, Any]]] = {}
    popular: dict[int, dict[str, Any]] = {}  # TopPopular depends on the seed's split only
    counter = Counter("test", len(spec.variants) * len(seed_list))
    for variant in spec.variants:
        label = chosen[variant]
        for seed in seed_list:
            config = by_label[label].config(base, seed)
            counter.start(f"testing {label} (seed {seed}), both readings of unseen ids")
            result = evaluate_chosen(config, dataset, readings=(main_reading, other), popular=popular.get(seed))
            popular.setdefault(seed, result[main_reading]["top_popular"])
            tested.setdefault(label, []).append(result)
            write_tested(config, result, main_reading, comparison=str(out))
            counter.done(f"testing {label} (seed {seed})")

    # 3. statistics
    ks = [k for k in COMPARE_KS if k in base.eval.ks] or list(base.eval.ks[:2])
    keys = [f"{s}/recall@{k}" for s in COMPARE_SLICES for k in ks]
    plot_k = int(base.eval.monitor.rsplit("@", 1)[1])
    decile_keys = [f"{DECILE_PREFIX}{d}/recall@{plot_k}" for d in range(10)] + [f"{COLD}/recall@{plot_k}"]
    every_key = list(dict.fromkeys(keys + decile_keys))
    baseline_label = chosen["baseline"]
    summary, lifts = {}, {}
    for reading in (main_reading, other):
        runs = {label: [t[reading] for t in tested[label]] for label in chosen.values()}
        summary[reading] = {label: summarise(r, every_key) for label, r in runs.items()}
        summary[reading]["TopPopular"] = summarise(runs[baseline_label], every_key, which="top_popular")
        lifts[reading] = {label: paired(r, runs[baseline_label], every_key) for label, r in runs.items() if label != baseline_label}
    norms = {label: {name: _mean_present([t["norms"].get(name) for t in tested[label]]) for name in
                     [f"{DECILE_PREFIX}{d}" for d in range(10)] + [COLD]} for label in chosen.values()}
    checked = check_targets(spec.targets, chosen, lifts[main_reading])
    budget = {v: len(pool[v]) for v in spec.variants}
    budgets = spec.budgets()

    with writing(out):  # a full disk or a directory made read-only meanwhile: named
        out.mkdir(parents=True, exist_ok=True)
        plots = compare_plots(out, base.name, base.eval.monitor, summary[main_reading], lifts[main_reading], chosen,
                              plot_k, validation, pool, norms, len(seed_list))
    record = {
        "protocol": {
            "seeds": seed_list,
            "selection": f"mean over seeds of the best validation {base.eval.monitor}",
            "monitor": base.eval.monitor,
            "main_reading": main_reading,
            "other_reading": other,
            "significance": SIGNIFICANCE,
            "near_zero": NEAR_ZERO,
            "interval": "95% Student t over seeds",
        },
        "alphas": list(spec.alphas),
        "grid": {k: {kk: list(vv) for kk, vv in v.items()} for k, v in spec.grid.items()},
        "defined": {name: {"variant": d.variant, "fixed": dict(d.fixed)} for name, d in spec.defined.items()},
        "budget": budget,
        "budgets": budgets,
        "budget_warnings": budget_warnings(budgets),
        "candidates": [c.describe() | {"validation": validation[c.label], "selection_score": scores[c.label].as_dict(),
                                       "training_seconds": seconds[c.label]}
                       for cs in pool.values() for c in cs],
        "chosen": chosen,
        "test": tested,
        "summary": summary,
        "lifts": lifts,
        "norms": norms,
        "targets": checked,
        "base_config": config_to_dict(base),
        "tuned_configs": {v: config_to_dict(c) for v, c in spec.tuned.items()},
    }
    page = compare_page(base.name, record, keys, plots)  # both texts ready before either file is replaced
    with writing(out):
        atomic.write_text(out / "compare.json", json.dumps(record, indent=2, default=list))
        atomic.write_text(out / "compare.md", page)
    return out


def check_result_directory(out: Path, on_existing: OnExisting = "refuse") -> None:
    """`RunDirectoryError` if the comparison's directory `out` is not a directory or cannot be
    written, or (with ``"refuse"``) holds the page of an earlier comparison: said before
    anything trains, not after."""
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"comparison directory {str(out)!r} is not a directory; move it away, or set another name (--set name=...)")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise RunDirectoryError(
            f"comparison directory {str(out)!r} is read-only; make it writable, or set another name (--set name=...)"
        )
    found = [name for name in ("compare.md", "compare.json") if (out / name).exists()]
    if found and on_existing == "refuse":
        raise RunDirectoryError(
            f"comparison directory {str(out)!r} holds an earlier comparison ({', '.join(found)}); continue it with "
            "--resume, replace it with --overwrite, or set another name (--set name=...)"
        )


def _mean_present(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None

"""``augkit compare``: the paper's comparison of baseline, FD, SO, RFM and CFM over seeds,
with the SSL (and SO) weight alpha searched over a grid."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from augkit.errors import ConfigError, UnknownNameError
from augkit.train.config import TrainConfig, config_from_dict, config_to_dict
from augkit.train.report import decile_recall, plot_deciles
from augkit.train.run import load_dataset

FD_RATE = 0.1
"""Feature-dropout rate of the FD baseline (not stated in the paper; our choice)."""
VALUE_DROPOUT = 0.3
"""Value dropout after RFM/CFM masking: the paper's best rate."""
WEIGHTED_VARIANTS = ("so", "rfm", "cfm")
"""Variants that take alpha: one row per alpha of the grid."""
SELECTION_KEY = "all/recall@10"
"""The metric that picks each variant's best alpha (on the test split: optimistic)."""
COMPARE_SLICES = ("head", "tail", "cold", "all")
COMPARE_KS = (10, 50)


def _two_views(pair: str) -> dict[str, Any]:
    return {
        "name": "two_views",
        "params": {"pair": {"name": pair}, "each": [{"name": "dropout", "params": {"rate": VALUE_DROPOUT}}]},
    }


def variant_overrides(name: str, alpha: float) -> dict[str, Any]:
    """Config changes that turn a base config into variant `name`:

    * ``baseline``: main task only.
    * ``fd``: feature dropout (mask each item feature with p = `FD_RATE`) on the main task.
    * ``so``: spread-out regulariser on the batch's item embeddings, weight `alpha`.
    * ``rfm``: SSL with complementary random feature masking, then value dropout 0.3.
    * ``cfm``: SSL with correlated feature masking, then value dropout 0.3.
    """
    off = {"feature_dropout": 0.0, "spread_out": 0.0}
    table = {
        "baseline": {"main": off, "ssl": {"alpha": 0.0}},
        "fd": {"main": {**off, "feature_dropout": FD_RATE}, "ssl": {"alpha": 0.0}},
        "so": {"main": {**off, "spread_out": alpha}, "ssl": {"alpha": 0.0}},
        "rfm": {"main": off, "ssl": {"alpha": alpha, "augmentation": _two_views("complementary")}},
        "cfm": {"main": off, "ssl": {"alpha": alpha, "augmentation": _two_views("cfm")}},
    }
    if name not in table:
        raise UnknownNameError("variant", name, table)
    return table[name]


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and key != "augmentation" and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def variant_label(variant: str, alpha: float) -> str:
    """A row of the table: ``cfm α=0.3`` for the weighted variants, else the variant's name."""
    return f"{variant} α={alpha:g}" if variant in WEIGHTED_VARIANTS else variant


def variant_config(base: TrainConfig, variant: str, seed: int, alpha: float | None = None) -> TrainConfig:
    """`base` turned into `variant` with `seed` and weight `alpha` (default ``base.ssl.alpha``),
    named ``<base>-<variant>-s<seed>``, or ``<base>-<variant>-a<alpha>-s<seed>`` when weighted."""
    alpha = base.ssl.alpha if alpha is None else alpha
    if alpha <= 0:
        raise ConfigError(f"compare: alpha (the SSL/SO weight) must be > 0, got {alpha:g}")
    data = _merge(config_to_dict(base), variant_overrides(variant, alpha))
    weight = f"-a{alpha:g}" if variant in WEIGHTED_VARIANTS else ""
    data.update(name=f"{base.name}-{variant}{weight}-s{seed}", seed=seed)
    return config_from_dict(data, source=f"variant {variant!r}")


def best_rows(summary: Mapping[str, Mapping[str, Any]], rows: Sequence[tuple[str, str, float]]) -> dict[str, str]:
    """Each variant's row (label) with the largest mean `SELECTION_KEY`; the first on a tie."""

    def score(label: str) -> float:
        stats = summary[label][SELECTION_KEY]
        return stats[0] if stats is not None else float("-inf")

    best: dict[str, str] = {}
    for label, variant, _ in rows:
        if variant not in best or score(label) > score(best[variant]):
            best[variant] = label
    return best


def _mean_std(values: Sequence[float | None]) -> tuple[float, float] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return statistics.fmean(present), (statistics.stdev(present) if len(present) > 1 else 0.0)


def summarise(results: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Mean and std over seeds of each variant's Recall@10/50 per slice, TopPopular included."""
    rows: dict[str, dict[str, Any]] = {}
    for variant, runs in results.items():
        rows[variant] = {
            f"{s}/recall@{k}": _mean_std([run["model"][s][f"recall@{k}"] for run in runs])
            for s in COMPARE_SLICES
            for k in COMPARE_KS
        }
    first = next(iter(results.values()))
    rows["TopPopular"] = {
        f"{s}/recall@{k}": _mean_std([run["top_popular"][s][f"recall@{k}"] for run in first])
        for s in COMPARE_SLICES
        for k in COMPARE_KS
    }
    return rows


def compare_table(summary: Mapping[str, Mapping[str, Any]], *, baseline: str = "baseline") -> str:
    """Markdown in the paper's form: variants × slice Recall@K, mean ± std, lift in %."""
    keys = [f"{s}/recall@{k}" for s in COMPARE_SLICES for k in COMPARE_KS]
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    base = summary.get(baseline)
    for variant, row in summary.items():
        cells = []
        for key in keys:
            stats = row[key]
            if stats is None:
                cells.append("n/a")
                continue
            cell = f"{stats[0]:.4f} ± {stats[1]:.4f}"
            if base is not None and variant != baseline and base[key] and base[key][0] > 0:
                cell += f" ({100 * (stats[0] / base[key][0] - 1):+.1f}%)"
            cells.append(cell)
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_compare(
    base: TrainConfig,
    variants: Sequence[str],
    seeds: int,
    *,
    alphas: Sequence[float] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Train every variant with seeds ``base.seed .. base.seed + seeds - 1`` (the weighted
    variants once per alpha of `alphas`, default ``(base.ssl.alpha,)``); write
    ``<output_dir>/<name>-compare/`` (compare.md, compare.json, recall_by_decile.png).

    `resume`: a run with a checkpoint continues from it (a finished run is only re-evaluated);
    runs without one start afresh. `overwrite` replaces earlier results of the runs; without
    it (or `resume`) a run directory holding results is an error. A killed comparison so continues where it stopped.
    """
    from augkit.train import run_training
    from augkit.train.checkpoint import CHECKPOINT_NAME
    from augkit.train.run import build_run

    alphas = tuple(alphas) if alphas else (base.ssl.alpha,)
    rows: list[tuple[str, str, float]] = []
    for variant in variants:
        variant_overrides(variant, 1.0)  # unknown names fail before any training
        for alpha in alphas if variant in WEIGHTED_VARIANTS else alphas[:1]:
            variant_config(base, variant, base.seed, alpha)  # so do bad alphas
            rows.append((variant_label(variant, alpha), variant, alpha))
    dataset = load_dataset(base)
    results: dict[str, list[dict[str, Any]]] = {}
    for label, variant, alpha in rows:
        for seed in range(base.seed, base.seed + seeds):
            config = variant_config(base, variant, seed, alpha)
            resumable = resume and (config.run_dir / CHECKPOINT_NAME).exists()
            metrics = run_training(config, resume=resumable, overwrite=overwrite, parts=build_run(config, dataset))
            results.setdefault(label, []).append(metrics)
    out = Path(base.output_dir) / f"{base.name}-compare"
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(results)
    best = best_rows(summary, rows)
    k = COMPARE_KS[0]
    lines = {}
    for label in best.values():
        per_decile = [decile_recall(run["model"], k) for run in results[label]]
        lines[label] = [stats[0] if (stats := _mean_std(values)) else None for values in zip(*per_decile)]
    plot_deciles(lines, out / "recall_by_decile.png", k=k, title=f"{base.name}: Recall@{k} by decile, mean of {seeds} seeds")
    (out / "compare.json").write_text(
        json.dumps(
            {"summary": summary, "best": best, "alphas": list(alphas), "runs": results, "base_config": config_to_dict(base)},
            indent=2,
            default=list,
        ),
        encoding="utf-8",
    )
    selection = ""
    if len(alphas) > 1:
        chosen = ", ".join(best[v] for v in variants if v in WEIGHTED_VARIANTS and v in best)
        selection = (
            f"Alpha searched over {{{', '.join(f'{a:g}' for a in alphas)}}}; best by mean {SELECTION_KEY} "
            f"(chosen on the test split, so optimistic): {chosen}. The plot shows these rows.\n\n"
        )
    (out / "compare.md").write_text(
        f"# {base.name}: variants over {seeds} seed(s)\n\n"
        "Recall@K, mean ± std over seeds; in brackets, the lift over the baseline.\n\n"
        f"{compare_table(summary)}\n\n{selection}![Recall@{k} by popularity decile](recall_by_decile.png)\n",
        encoding="utf-8",
    )
    return out

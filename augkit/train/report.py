"""Run reports: the resolved config, ``metrics.json``, ``report.md`` and a recall-by-decile plot."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from augkit.train.evaluation import DECILE_PREFIX

SUMMARY_SLICES = ("all", "head", "tail", "cold")


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def metrics_table(rows: Mapping[str, Mapping[str, Any]], ks: Sequence[int]) -> str:
    """A markdown table: a line per (entry of `rows`, slice), Recall@K and NDCG@K columns."""
    columns = [f"{m}@{k}" for m in ("recall", "ndcg") for k in ks]
    lines = ["| | slice | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for name, metrics in rows.items():
        for s in SUMMARY_SLICES:
            cells = " | ".join(_cell(metrics[s][c]) for c in columns)
            lines.append(f"| {name} | {s} (n={metrics[s]['n']}) | {cells} |")
    return "\n".join(lines)


def decile_recall(metrics: Mapping[str, Any], k: int) -> list[float | None]:
    """Recall@k in each popularity decile (0 = most popular)."""
    return [metrics[f"{DECILE_PREFIX}{d}"][f"recall@{k}"] for d in range(10)]


def plot_deciles(lines: Mapping[str, Sequence[float | None]], path: Path, *, k: int, title: str) -> None:
    """One line per entry of `lines`: Recall@k by item-popularity decile, written as PNG."""
    figure = Figure(figsize=(7, 4.2), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, values in lines.items():
        axes.plot(range(1, 11), [float("nan") if v is None else v for v in values], marker="o", label=name)
    axes.set_xticks(range(1, 11))
    axes.set_xlabel("item popularity decile (1 = most clicked in training)")
    axes.set_ylabel(f"Recall@{k}")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)


def write_run_report(run_dir: Path, config_toml: str, metrics: Mapping[str, Any], *, ks: Sequence[int], name: str, training: Mapping[str, Any]) -> None:
    """Write ``config.toml``, ``metrics.json``, ``report.md`` and ``recall_by_decile.png``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(config_toml, encoding="utf-8")
    (run_dir / "metrics.json").write_text(
        json.dumps({"training": dict(training), **metrics}, indent=2), encoding="utf-8"
    )
    k = ks[0]
    plot_deciles(
        {"model": decile_recall(metrics["model"], k), "TopPopular": decile_recall(metrics["top_popular"], k)},
        run_dir / "recall_by_decile.png",
        k=k,
        title=f"{name}: Recall@{k} by popularity decile",
    )
    table = metrics_table({"model": metrics["model"], "TopPopular": metrics["top_popular"]}, ks)
    report = [
        f"# Run `{name}`",
        "",
        f"Steps: {training['steps']}, training time: {training['seconds']:.1f} s, "
        f"final losses: {', '.join(f'{k}={v:.4f}' for k, v in training['last_losses'].items())}.",
        "",
        "Full-corpus retrieval, each user's training items excluded. head = top 20% of items by "
        "training count, tail = the rest, cold = never in training.",
        "",
        table,
        "",
        "![Recall by popularity decile](recall_by_decile.png)",
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(report), encoding="utf-8")

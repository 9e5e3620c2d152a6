"""Run reports: the resolved config, ``metrics.json``, ``report.md`` and a recall-by-decile plot."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from augkit.train.config import TrainConfig, dump_config
from augkit.train.evaluation import DECILE_PREFIX
from augkit.train.writing import names_write_errors

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


def plot_history(history: Sequence[Mapping[str, Any]], path: Path, *, monitor: str, title: str) -> None:
    """Per-epoch mean loss of every term (left) and the monitored validation metric (right)."""
    figure = Figure(figsize=(10, 4), dpi=120)
    FigureCanvasAgg(figure)
    losses, valid = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    epochs = [row["epoch"] for row in history]
    for key in [k for k in history[0] if k.startswith("loss/")]:
        losses.plot(epochs, [row.get(key, float("nan")) for row in history], marker="o", label=key.removeprefix("loss/"))
    losses.set_xlabel("epoch")
    losses.set_ylabel("mean loss")
    losses.legend()
    points = [(row["epoch"], row[monitor]) for row in history if row.get(monitor) is not None]
    if points:
        valid.plot(*zip(*points), marker="o", color="tab:green")
        best = max(points, key=lambda p: p[1])
        valid.scatter([best[0]], [best[1]], s=120, facecolors="none", edgecolors="black", label=f"best: epoch {best[0]}")
        valid.legend()
    valid.set_xlabel("epoch")
    valid.set_ylabel(monitor)
    for axes in (losses, valid):
        axes.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)


def report_rows(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The test metrics of a run's report by row: the model, the baseline beside it (with
    ``eval.baseline``) and TopPopular."""
    baseline = report.get("baseline")
    return {"model": report["model"], **({"baseline": baseline["model"]} if baseline else {}), "TopPopular": report["top_popular"]}


def baseline_lines(model: Mapping[str, Any], baseline: Mapping[str, Any], ks: Sequence[int]) -> list[str]:
    """The model against the baseline beside it (`TrainConfig.eval.baseline`): per slice,
    Recall at the middle k of `ks`, both values and the relative change, as markdown lines."""
    key = f"recall@{sorted(ks)[len(ks) // 2]}"

    def cell(s: str) -> str:
        new, old = model[s][key], baseline["model"][s][key]
        if new is None or old is None:
            return f"{s} n/a"
        change = f" ({(new - old) / old:+.1%})" if old > 0 else ""
        return f"{s} {new:.4f} against {old:.4f}{change}"

    cells = "; ".join(cell(s) for s in SUMMARY_SLICES)
    return [
        f"The SSL task against the baseline beside it (`{baseline['run']}/`: ssl.alpha = 0, the same data, split, "
        f"seed and epochs; trained in {baseline['training']['seconds']:.1f} s), {key}: {cells}. One seed, no "
        "interval; `augkit compare` gives several seeds, tuned baselines and paired tests.",
        "",
    ]


def config_text(config: TrainConfig, versions: Mapping[str, str]) -> str:
    """The resolved config as TOML, headed by comments with the versions that ran it."""
    header = "".join(f"# {name} {version}\n" for name, version in versions.items())
    return f"# written by augkit train; versions:\n{header}{dump_config(config)}"


@names_write_errors
def write_run_report(
    run_dir: Path,
    config: TrainConfig,
    report: Mapping[str, Any],
    *,
    history: Sequence[Mapping[str, Any]] = (),
    warnings: Sequence[str] = (),
) -> None:
    """Write ``config.toml``, ``metrics.json`` (`report`), ``report.md``,
    ``recall_by_decile.png`` and, with a `history`, ``training_curves.png``; a failed write
    (read-only directory, full disk) is a `RunDirectoryError` naming the file."""
    ks, name, training = config.eval.ks, config.name, report["training"]
    (run_dir / "config.toml").write_text(config_text(config, report.get("versions", {})), encoding="utf-8")
    (run_dir / "metrics.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    k = ks[0]
    baseline = report.get("baseline")
    rows = report_rows(report)
    plot_deciles(
        {name: decile_recall(metrics, k) for name, metrics in rows.items()},
        run_dir / "recall_by_decile.png",
        k=k,
        title=f"{name}: Recall@{k} by popularity decile",
    )
    parent = report.get("baseline_of")
    lines = [
        f"# Run `{name}`" if parent is None else f"# Run `{parent}/{name}`: the baseline of run `{parent}`",
        "",
        *([f"Run `{parent}` with `ssl.alpha = 0`: the same data, split, seed and epochs, no SSL task.", ""] if parent else []),
        f"Steps: {training['steps']} ({training.get('epochs', 0)} epoch{'' if training.get('epochs') == 1 else 's'}"
        f"{', stopped early' if training.get('stopped_early') else ''}), training time: {training['seconds']:.1f} s, "
        f"final losses: {', '.join(f'{k}={v:.4f}' for k, v in training['last_losses'].items())}.",
        "",
    ]
    lines += [f"> warning: {w}" for w in warnings] + ([""] if warnings else [])
    validation = report.get("validation")
    if validation:
        lines += [
            f"Model selection on the validation split: best `{validation['monitor']}` = {validation['score']:.4f} "
            f"at epoch {validation['epoch']} (step {validation['step']}); that checkpoint (`best.pt`) is the one tested.",
            "",
        ]
    else:
        lines += ["No validation split (data.valid_fraction = 0): the last step is the one tested.", ""]
    if history:
        plot_history(history, run_dir / "training_curves.png", monitor=config.eval.monitor, title=f"{name}: training")
        lines += ["![Losses and validation by epoch](training_curves.png)", ""]
    lines += [
        "Test split, full-corpus retrieval, each user's earlier items excluded. head = top "
        f"{config.eval.head_fraction:.0%} of items by training count, tail = the rest, cold = never in training.",
        "",
        metrics_table(rows, ks),
        "",
        *(baseline_lines(report["model"], baseline, ks) if baseline else []),
        "![Recall by popularity decile](recall_by_decile.png)",
        "",
        "Versions: " + ", ".join(f"{n} {v}" for n, v in report.get("versions", {}).items()),
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")

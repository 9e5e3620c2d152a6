"""Run reports: the resolved config, ``metrics.json``, ``report.md``, the recall-by-decile plot and the
training curves."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from augkit.train.config import MONITOR_PATTERN, TrainConfig, dump_config
from augkit.train.evaluation import DECILE_PREFIX
from augkit.train.logbook import HISTORY_NAME
from augkit.train.writing import names_write_errors

SUMMARY_SLICES = ("all", "head", "tail", "cold")
BASELINE_ROW = "baseline"
"""The row of the baseline beside the model (``eval.baseline``) in `report_rows`."""


def monitored_k(config: TrainConfig) -> int:
    """The k of ``eval.monitor`` (``valid/<slice>/<metric>@<k>``): the k of Recall that the
    decile plot and the command's final line show."""
    return int(MONITOR_PATTERN.fullmatch(config.eval.monitor)["k"])


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
    """Recall@k in each popularity decile (0 = most popular), then of the cold items: 11 values."""
    return [metrics[f"{DECILE_PREFIX}{d}"][f"recall@{k}"] for d in range(10)] + [metrics["cold"][f"recall@{k}"]]


_DECILES, _COLD_X = list(range(1, 11)), 11.5
_TICKS = ([*_DECILES, _COLD_X], [*map(str, _DECILES), "cold"])


def _by_decile(axes: Any, values: Sequence[float | None], **style: Any) -> None:
    """The 10 decile values as a line and the cold value as a square beside it, in one colour."""
    ys = [math.nan if v is None else v for v in values]
    line = axes.plot(_DECILES, ys[:10], marker="o", **style)[0]
    axes.plot([_COLD_X], ys[10:], marker="s", linestyle="none", color=line.get_color())


def _log_above_zero(axes: Any, values: Sequence[float]) -> str:
    """A log y axis that still shows zeros: symmetric-log, linear below the smallest positive
    value's power of ten. The axis label's note."""
    positive = [v for v in values if v > 0]
    if not positive:
        return ""
    threshold = 10.0 ** math.floor(math.log10(min(positive)))
    axes.set_yscale("symlog", linthresh=threshold, linscale=0.5)
    axes.set_ylim(bottom=0)
    return f" (log scale, linear below {threshold:g})"


def plot_deciles(lines: Mapping[str, Sequence[float | None]], path: Path, *, k: int, title: str) -> None:
    """Recall@k by item-popularity decile and of the cold items (`decile_recall`'s 11 values),
    a line per entry of `lines`, on a log axis that keeps the tail deciles readable. PNG."""
    figure = Figure(figsize=(7.5, 4.2), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, values in lines.items():
        _by_decile(axes, values, label=name)
    note = _log_above_zero(axes, [v for values in lines.values() for v in values if v is not None])
    axes.set_xticks(*_TICKS)
    axes.set_xlabel("item popularity decile (1 = most clicked in training), and cold items")
    axes.set_ylabel(f"Recall@{k}{note}")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)


def read_history(path: Path) -> list[dict[str, float | None]]:
    """The rows of a ``history.csv``, numbers as floats (``epoch`` and ``step`` as ints) and
    empty cells as None; no rows when the file is missing."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    integers = ("epoch", "step")
    return [
        {key: None if value == "" else int(float(value)) if key in integers else float(value) for key, value in row.items()}
        for row in rows
    ]


def plot_history(
    history: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    monitor: str,
    title: str,
    baseline: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Per-epoch mean loss of every term (left) and the monitored validation metric (right);
    with the `baseline`'s history (the run beside it without the SSL task), its main loss and
    validation metric as dashed lines."""
    figure = Figure(figsize=(10, 4), dpi=120)
    FigureCanvasAgg(figure)
    losses, valid = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    epochs = [row["epoch"] for row in history]
    colours = {}
    for key in [k for k in history[0] if k.startswith("loss/")]:
        line = losses.plot(epochs, [row.get(key, math.nan) for row in history], marker="o", label=key.removeprefix("loss/"))
        colours[key] = line[0].get_color()
    if baseline:
        losses.plot([row["epoch"] for row in baseline], [row.get("loss/main", math.nan) for row in baseline],
                    linestyle="--", marker="x", color=colours.get("loss/main"), label="baseline: main")
    losses.set_xlabel("epoch")
    losses.set_ylabel("mean loss")
    losses.legend()
    points = [(row["epoch"], row[monitor]) for row in history if row.get(monitor) is not None]
    if points:
        valid.plot(*zip(*points), marker="o", color="tab:green", label="model")
        best = max(points, key=lambda p: p[1])
        valid.scatter([best[0]], [best[1]], s=120, facecolors="none", edgecolors="black", label=f"best: epoch {best[0]}")
    baseline_points = [(row["epoch"], row[monitor]) for row in baseline if row.get(monitor) is not None]
    if baseline_points:
        valid.plot(*zip(*baseline_points), linestyle="--", marker="x", color="tab:gray", label="baseline")
    if points or baseline_points:
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
    return {"model": report["model"], **({BASELINE_ROW: baseline["model"]} if baseline else {}), "TopPopular": report["top_popular"]}


def summary_line(report: Mapping[str, Any], k: int, report_path: Path) -> str:
    """The line ``augkit train`` ends with: test Recall@k of every `report_rows` row on all,
    head, tail and cold items, and the report's path."""
    rows = "; ".join(
        f"{name} " + " ".join(f"{s} {_cell(metrics[s][f'recall@{k}'])}" for s in SUMMARY_SLICES)
        for name, metrics in report_rows(report).items()
    )
    return f"test Recall@{k}: {rows}; report: {report_path}"


def baseline_lines(model: Mapping[str, Any], baseline: Mapping[str, Any], k: int) -> list[str]:
    """The model against the baseline beside it (`TrainConfig.eval.baseline`): per slice,
    Recall@k, both values and the relative change, as markdown lines."""
    key = f"recall@{k}"

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


def timing_lines(timing: Mapping[str, float] | None) -> list[str]:
    """The time of each phase of the run (metrics.json's ``timing``) as a markdown line; none
    for a report written before runs had it."""
    if not timing:
        return []
    line = (
        f"Time: training steps {timing['training_seconds']:.1f} s, building the run (data, split, towers) "
        f"{timing['data_seconds']:.1f} s, validation {timing['validation_seconds']:.1f} s (each over every session "
        f"of the run), test {timing['test_seconds']:.1f} s."
    )
    return [line, ""]


def baseline_status(config: TrainConfig, report: Mapping[str, Any]) -> list[str]:
    """Markdown lines saying whether a baseline was trained beside the run and, if not, how to
    get one; none for a run that has its baseline."""
    if report.get("baseline") or report.get("baseline_of"):
        return []
    if config.ssl.alpha == 0:
        return ["This run has no SSL task (ssl.alpha = 0): it is a baseline itself.", ""]
    if config.eval.baseline:
        return [
            f"The baseline (eval.baseline = true) trains after the model, in `{BASELINE_ROW}/`, and has not finished: "
            "the same command with `--resume` trains it and rewrites this report with it.",
            "",
        ]
    return [
        "No baseline was trained beside this run, so this report cannot show what the SSL task changes. To "
        "train one (this config with ssl.alpha = 0: the same data, split, seed and epochs, in "
        f"`{BASELINE_ROW}/`), set `baseline = true` in the config's `[eval]` table or add "
        "`--set eval.baseline=true` to the command (with `--overwrite` to redo this run).",
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
    k = monitored_k(config)
    baseline = report.get("baseline")
    rows = report_rows(report)
    plot_deciles(
        {row: decile_recall(metrics, k) for row, metrics in rows.items()},
        run_dir / "recall_by_decile.png",
        k=k,
        title=f"{name}: test Recall@{k} by popularity decile",
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
        *timing_lines(report.get("timing")),
    ]
    lines += [f"> warning: {w}" for w in warnings] + ([""] if warnings else [])
    validation = report.get("validation")
    if validation:
        users = validation.get("users")
        on = f" ({users['evaluated']} of its {users['of']} users, `eval.max_users`)" if users and users["evaluated"] < users["of"] else ""
        lines += [
            f"Model selection on the validation split{on}: best `{validation['monitor']}` = {validation['score']:.4f} "
            f"at epoch {validation['epoch']} (step {validation['step']}); that checkpoint (`best.pt`) is the one tested.",
            "",
        ]
    else:
        lines += ["No validation split (data.valid_fraction = 0): the last step is the one tested.", ""]
    if history:
        beside = read_history(run_dir / baseline["run"] / HISTORY_NAME) if baseline else []
        plot_history(history, run_dir / "training_curves.png", monitor=config.eval.monitor, title=f"{name}: training",
                     baseline=beside)
        caption = "Losses and validation by epoch" + (", the baseline's dashed" if beside else "")
        lines += [f"![{caption}](training_curves.png)", ""]
    lines += [
        "Test split, full-corpus retrieval, each user's earlier items excluded. head = top "
        f"{config.eval.head_fraction:.0%} of items by training count, tail = the rest, cold = never in training.",
        "",
        metrics_table(rows, ks),
        "",
        *(baseline_lines(report["model"], baseline, k) if baseline else []),
        *baseline_status(config, report),
        f"![Test Recall@{k} by popularity decile and of the cold items](recall_by_decile.png)",
        "",
        "Versions: " + ", ".join(f"{n} {v}" for n, v in report.get("versions", {}).items()),
        "",
    ]
    (run_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")

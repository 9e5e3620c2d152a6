"""The plots of the experiments, as PNG files: the comparison's (`compare_plots`) and Optuna's
plots of a study (`tune_plots`), each written atomically (`augkit.atomic.writing`)."""

from __future__ import annotations

import json
import logging
import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from augkit import atomic
from augkit.experiments.report import few_trials_caveat
from augkit.experiments.spec import Candidate
from augkit.experiments.stats import mean_ci
from augkit.experiments.training import COLD
from augkit.train.evaluation import DECILE_PREFIX

log = logging.getLogger("augkit.train")

COLOURS = {"baseline": "tab:blue", "fd": "tab:purple", "so": "tab:brown", "rfm": "tab:green", "cfm": "tab:orange",
           "TopPopular": "tab:gray"}
"""Each built-in variant's colour in every plot, whatever the rows' order."""
LINE_STYLES = ("-", "--", "-.", ":")
"""Line styles of one variant's several lines in the alpha curves (a line per grid point)."""
OTHER_COLOURS = ("tab:red", "tab:pink", "tab:olive", "tab:cyan", "black", "gold", "navy", "teal")
"""The colours of defined variants, each picked by a hash of its name (`colour`)."""


def colour(variant: str) -> str:
    """The colour of `variant` in every plot: `COLOURS` for the built-ins and TopPopular, else
    one of `OTHER_COLOURS` chosen by the name's CRC-32, the same in every comparison."""
    return COLOURS.get(variant) or OTHER_COLOURS[zlib.crc32(variant.encode()) % len(OTHER_COLOURS)]


def _figure(size: tuple[float, float] = (7.5, 4.2)) -> tuple[Figure, Any]:
    figure = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, axes: Any, path: Path) -> None:
    """Grid, legend and tight layout, then write `figure` to `path` (PNG, atomically)."""
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic.writing(path) as tmp:
        figure.savefig(tmp, format="png")


def _errorbar(axes: Any, xs: Sequence[float], stats: Sequence[Mapping[str, Any] | None], **style: Any) -> Any:
    ys = [math.nan if s is None else s["mean"] for s in stats]
    err = [0.0 if s is None or s.get("ci") is None else s["ci"] for s in stats]
    return axes.errorbar(xs, ys, yerr=err, capsize=3, **style)


def compare_plots(out: Path, name: str, monitor: str, summary: Mapping[str, Any], lifts: Mapping[str, Any],
                  chosen: Mapping[str, str], k: int, validation: Mapping[str, Sequence[Mapping[str, Any]]],
                  pool: Mapping[str, Sequence[Candidate]], norms: Mapping[str, Mapping[str, float | None]],
                  seeds: int) -> dict[str, str]:
    """The comparison `name`'s plots in `out`: test Recall@`k` and its lift per popularity decile
    (with the cold items), the validation `monitor` against alpha (where a variant has several
    alphas) and the ``item_id`` embedding norms; ``{file: title}``. Each variant has its
    `colour` in every plot."""
    plots = {}
    variant_of = {label: variant for variant, label in chosen.items()} | {"TopPopular": "TopPopular"}
    deciles = [f"{DECILE_PREFIX}{d}/recall@{k}" for d in range(10)]
    cold = f"{COLD}/recall@{k}"
    xs, cold_x = list(range(1, 11)), 11.5
    ticks = ([*xs, cold_x], [*map(str, xs), "cold"])

    figure, axes = _figure()
    for label in [*chosen.values(), "TopPopular"]:
        row = summary[label]
        tint = colour(variant_of[label])
        _errorbar(axes, xs, [row[key] for key in deciles], marker="o", label=label, color=tint)
        _errorbar(axes, [cold_x], [row[cold]], marker="s", color=tint)
    axes.set_xticks(*ticks)
    axes.set_xlabel("item popularity decile (1 = most clicked in training), and cold items")
    axes.set_ylabel(f"Recall@{k}")
    axes.set_title(f"{name}: test Recall@{k} by decile, mean ± 95% CI of {seeds} seeds")
    _save(figure, axes, out / "recall_by_decile.png")
    plots["recall_by_decile.png"] = f"Recall@{k} by popularity decile, with cold items"

    figure, axes = _figure()
    axes.axhline(0, color="black", linewidth=0.8)
    for label, row in lifts.items():
        stats = [None if row[key] is None or row[key]["lift"] is None else
                 {"mean": 100 * row[key]["lift"], "ci": None if row[key]["lift_ci"] is None else 100 * row[key]["lift_ci"]}
                 for key in [*deciles, cold]]
        _errorbar(axes, [*xs, cold_x], stats, marker="o", label=label, color=colour(variant_of[label]))
    axes.set_xticks(*ticks)
    axes.set_xlabel("item popularity decile (1 = most clicked in training), and cold items")
    axes.set_ylabel(f"lift of Recall@{k} over the baseline (%)")
    axes.set_title(f"{name}: lift per decile, paired over {seeds} seeds (95% CI)")
    _save(figure, axes, out / "lift_by_decile.png")
    plots["lift_by_decile.png"] = "Lift per popularity decile"

    curves = {v: cs for v, cs in pool.items() if len({c.alpha for c in cs} - {None}) > 1}
    if curves:
        figure, axes = _figure()
        for variant, cs in curves.items():
            groups: dict[str, list[Candidate]] = {}
            for c in cs:
                groups.setdefault(json.dumps(c.changes, sort_keys=True, default=str), []).append(c)
            for index, (changes, group) in enumerate(groups.items()):  # one colour per variant, a line style per grid point
                group = sorted(group, key=lambda c: c.alpha or 0)
                stats = [mean_ci([r["score"] for r in validation[c.label]]).as_dict() for c in group]
                suffix = "" if changes == "{}" else f" {changes}"
                _errorbar(axes, [c.alpha for c in group], stats, marker="o", label=f"{variant}{suffix}", color=colour(variant),
                          linestyle=LINE_STYLES[index % len(LINE_STYLES)])
        axes.axhline(mean_ci([r["score"] for r in validation[chosen["baseline"]]]).mean, color=colour("baseline"), linestyle=":",
                     label="baseline (chosen)")
        axes.set_xscale("log")
        axes.set_xlabel("alpha")
        axes.set_ylabel(f"validation {monitor}")
        axes.set_title(f"{name}: validation score against alpha (mean ± 95% CI)")
        _save(figure, axes, out / "alpha_curves.png")
        plots["alpha_curves.png"] = "Validation score against alpha"

    if any(v is not None for n in norms.values() for v in n.values()):
        figure, axes = _figure()
        names = [f"{DECILE_PREFIX}{d}" for d in range(10)]
        for label, row in norms.items():
            tint = colour(variant_of[label])
            axes.plot(xs, [math.nan if row[n] is None else row[n] for n in names], marker="o", label=label, color=tint)
            axes.plot([cold_x], [math.nan if row[COLD] is None else row[COLD]], marker="s", color=tint)
        axes.set_xticks(*ticks)
        axes.set_xlabel("item popularity decile (1 = most clicked in training), and cold items")
        axes.set_ylabel("mean norm of the item_id embedding")
        axes.set_title(f"{name}: item_id embedding norms by popularity (mean of {seeds} seeds)")
        _save(figure, axes, out / "embedding_norms.png")
        plots["embedding_norms.png"] = "item_id embedding norms by popularity"
    return plots


def tune_plots(study: Any, out: Path, complete: int, params: int) -> dict[str, str]:
    """Optuna's matplotlib plots of `study` as PNG in `out`: the optimisation history, and the
    parameter importances and slice plot when there are at least 3 `complete` trials and a
    parameter; ``{file: title}``. The importances' title is the figure's, over its whole width
    (long parameter names push the axes right), and under too few complete trials it
    carries `few_trials_caveat` (`augkit.experiments.report.FEW_TRIALS`)."""
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # after the backend is chosen: Optuna draws on pyplot
    from optuna.visualization import matplotlib as views  # optional: the experiments extra

    wanted = [("optimization_history.png", "Optimisation history", views.plot_optimization_history)]
    if complete >= 3 and params >= 1:
        wanted += [("param_importances.png", "Parameter importances (fANOVA)", views.plot_param_importances),
                   ("slice.png", "Objective against each parameter", views.plot_slice)]
    written = {}
    for file, title, plot in wanted:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = plot(study)
            except (ValueError, RuntimeError) as error:
                log.warning("tune: no %s (%s)", file, error)
                continue
        figure = (axes.flat[0] if hasattr(axes, "flat") else axes).figure
        if file == "param_importances.png":
            caveat = few_trials_caveat(complete)
            title = f"{title}, {caveat}" if caveat else title
            for where in ("left", "center"):
                axes.set_title("", loc=where)
            figure.set_size_inches(max(figure.get_figwidth(), 9.0), figure.get_figheight())
            figure.suptitle("Parameter importances (fANOVA)\n" + (caveat or f"from {complete} trials"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure.tight_layout()
        with atomic.writing(out / file) as tmp:
            figure.savefig(tmp, dpi=110, format="png")
        plt.close(figure)
        written[file] = title
    return written

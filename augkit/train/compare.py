"""``augkit compare``: the paper's comparison of baseline, FD, SO, RFM and CFM over seeds, under
a fair protocol.

1. **Selection on validation only.** Each variant's candidates (one per alpha of the grid for
   the weighted variants, times every value of any ``--grid`` key) are trained with every seed
   by `fit`, which never touches the test split. A candidate's score is the mean over seeds of
   its best validation ``eval.monitor``; each variant keeps its best candidate.
2. **Test once.** Only the chosen candidate of each variant is evaluated on the test split
   (`evaluate_chosen`), with its ``best.pt``; under both readings of items never seen in training:
   the config's ``eval.unseen_ids`` (``"default"`` unless set: served as a new item would be)
   for the main table, and the other, labelled.
3. **Statistics over seeds.** Mean ± 95% Student-t interval per variant; against the baseline,
   on the same seeds (so the same splits and initialisations), the lift with the interval of the
   paired differences, the paired t-test and the exact Wilcoxon signed-rank test; a lift whose
   paired t-test gives p < `SIGNIFICANCE` is marked †.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from augkit.data.dataset import RecDataset
from augkit.errors import ConfigError, UnknownNameError
from augkit.train.config import TrainConfig, config_from_dict, config_to_dict
from augkit.train.evaluation import DECILE_PREFIX
from augkit.train.run import ITEM_ID_FEATURE, build_augmentation, load_dataset
from augkit.train.stats import mean_ci, paired_t_test, wilcoxon_signed_rank

log = logging.getLogger("augkit.train")

FD_RATE = 0.1
"""Feature-dropout rate of the FD baseline (not stated in the paper; our choice)."""
VALUE_DROPOUT = 0.3
"""Value dropout after RFM/CFM masking: the paper's best rate."""
VARIANTS = ("baseline", "fd", "so", "rfm", "cfm")
WEIGHTED_VARIANTS = ("so", "rfm", "cfm")
"""Variants that take alpha: one candidate per alpha of the grid."""
DEFAULT_SEEDS = 5
SIGNIFICANCE = 0.05
"""A lift is marked † when the paired t-test against the baseline gives p below this."""
COMPARE_SLICES = ("head", "tail", "cold", "all")
COMPARE_KS = (10, 50)
READINGS = ("default", "trained")
"""The two readings of items never seen in training (`eval.unseen_ids`)."""
COLD = "cold"


# -- variants ---------------------------------------------------------------------------------
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


def set_path(data: dict[str, Any], key: str, value: Any, *, where: str) -> None:
    """Set dotted `key` of the config dict `data` to `value` in place. A part that is a number
    indexes a list (``ssl.augmentation.params.each.0.params.rate``); every table and list on the
    way must exist, and the last part must be a key that is there, inside the config's own tables
    (augmentation params may be new). Errors start with `where`."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        inside_augmentation = "augmentation" in parts[:depth]
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{where}: {key!r}: {part!r} is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node and not (inside_augmentation and (last or part == "params")):
                known = ", ".join(sorted(node)) or "none"
                raise ConfigError(f"{where}: {key!r}: no key {part!r} in {'.'.join(parts[:depth]) or 'the config'} (keys: {known})")
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{where}: {key!r}: {'.'.join(parts[:depth])} is a value, not a table or list")


def variant_label(variant: str, alpha: float | None = None, changes: Mapping[str, Any] | None = None) -> str:
    """A candidate's row: ``cfm α=0.3`` (a weighted variant's `alpha`), with the grid values
    after it (``baseline main.temperature=0.1``); the variant's name alone otherwise."""
    label = f"{variant} α={alpha:g}" if alpha is not None else variant
    return " ".join([label, *(f"{k}={_text(v)}" for k, v in (changes or {}).items())])


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _name_part(changes: Mapping[str, Any]) -> str:
    text = "".join(f"-{key.rsplit('.', 1)[-1]}{_text(v)}" for key, v in changes.items())
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def variant_config(
    base: TrainConfig,
    variant: str,
    seed: int,
    alpha: float | None = None,
    changes: Mapping[str, Any] | None = None,
    *,
    row: str | None = None,
) -> TrainConfig:
    """`base` turned into the built-in `variant` with `seed`, weight `alpha` (default
    ``base.ssl.alpha``) and the dotted-key `changes` (see `set_path`), named
    ``<base>-<row>-s<seed>``, ``<base>-<row>-a<alpha>-s<seed>`` when weighted, with
    ``-<key><value>`` for each change; `row` (a defined variant's name) defaults to `variant`."""
    alpha = base.ssl.alpha if alpha is None else alpha
    if alpha <= 0:
        raise ConfigError(f"compare: alpha (the SSL/SO weight) must be > 0, got {alpha:g}")
    data = _merge(config_to_dict(base), variant_overrides(variant, alpha))
    where = f"variant {row or variant!r}"
    for key, value in (changes or {}).items():
        set_path(data, key, value, where=where)
    weight = f"-a{alpha:g}" if variant in WEIGHTED_VARIANTS else ""
    data.update(name=f"{base.name}-{row or variant}{weight}{_name_part(changes or {})}-s{seed}", seed=seed, tune=None)
    return config_from_dict(data, source=where)


# -- the grid ---------------------------------------------------------------------------------
def parse_grid(items: Sequence[str], known: Sequence[str] = VARIANTS) -> dict[str, dict[str, list[Any]]]:
    """``KEY=V1,V2,...`` (every variant) or ``VARIANT:KEY=V1,V2,...`` (that variant only, one of
    `known`: the built-ins and any defined ones) -> ``{"*" or variant: {key: [values]}}``; each
    value is read as TOML (`read_value`)."""
    grid: dict[str, dict[str, list[Any]]] = {}
    for item in items:
        target, key, values = _grid_item(item, known)
        if key in grid.get(target, {}):
            raise ConfigError(f"--grid {item!r}: {key!r} is given twice for {target if target != '*' else 'every variant'}")
        grid.setdefault(target, {})[key] = values
    return grid


SET_BY_COMPARE = ("ssl.alpha", "main.spread_out", "seed", "name", "output_dir", "tune")
"""Keys compare sets itself for every run."""
PAIRED = ("data", "eval", "epochs")
"""Config parts every variant shares, so that lifts are paired: the same splits, the same
selection metric and the same training length."""


def check_variable_key(key: str, where: str) -> None:
    """`ConfigError` unless a ``--grid`` or ``--define`` may vary `key`: not a key compare sets
    (`SET_BY_COMPARE`), nor one under `PAIRED`."""
    if key in SET_BY_COMPARE:
        hint = " (use --alphas for the weight alpha)" if key in ("ssl.alpha", "main.spread_out") else ""
        raise ConfigError(f"{where}: {key} is set by compare itself{hint}")
    head = key.split(".", 1)[0]
    if head in PAIRED:
        raise ConfigError(
            f"{where}: {key} is under {head}, which every variant shares so that the lifts stay paired "
            "(the same splits, selection metric and epochs); set it for all with --set"
        )


def read_value(text: str) -> Any:
    """A value from the command line, read as TOML (``0.1``, ``64``, ``true``, ``"cfm"``), else
    the text itself as a string."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _grid_item(item: str, known: Sequence[str]) -> tuple[str, str, list[Any]]:
    head, equals, text = item.partition("=")
    target, colon, key = head.partition(":")
    if not colon:
        target, key = "*", head
    key = key.strip()
    if not equals or not key or not all(key.split(".")) or not text.strip():
        raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2 or VARIANT:KEY=V1,V2, e.g. main.temperature=0.05,0.1")
    if target != "*" and target not in known:
        raise UnknownNameError("variant in --grid", target, known)
    check_variable_key(key, f"--grid {item!r}")
    return target, key, [read_value(part) for part in text.split(",")]


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*")


def parse_defines(items: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``NAME=VARIANT:KEY=VALUE`` -> ``{name: (variant, {key: value})}``: a variant of its own,
    the built-in VARIANT with the dotted KEY fixed at VALUE (`read_value`), compared with the
    baseline in a row of its own; the same NAME again fixes one more key. For options past the
    paper, e.g. ``cfm-su=cfm:ssl.augmentation.params.pair.params.correlation="symmetric_uncertainty"``."""
    defined: dict[str, tuple[str, dict[str, Any]]] = {}
    for item in items:
        name, equals, rest = item.partition("=")
        variant, colon, setting = rest.partition(":")
        key, equals_value, value = setting.partition("=")
        name, variant, key = name.strip(), variant.strip(), key.strip()
        if not (equals and colon and equals_value and name and key and value.strip()) or not all(key.split(".")):
            raise ConfigError(f"--define {item!r}: expected NAME=VARIANT:KEY=VALUE, e.g. mns=baseline:main.uniform_negatives=1024")
        if not _NAME.fullmatch(name):
            raise ConfigError(f"--define {item!r}: the name {name!r} must start with a letter and hold letters, digits, _, + or - only")
        if name.lower() in VARIANTS:
            raise ConfigError(f"--define {item!r}: {name!r} is a built-in variant (in any case); give the new one a name of its own")
        if variant not in VARIANTS:
            raise UnknownNameError(f"variant in --define {item!r}", variant, VARIANTS)
        check_variable_key(key, f"--define {item!r}")
        if key.startswith("ssl.") and variant not in ("rfm", "cfm"):
            raise ConfigError(f"--define {item!r}: {variant} has no SSL task (its alpha is 0), so {key} would change nothing")
        kind, fixed = defined.setdefault(name, (variant, {}))
        if kind != variant:
            raise ConfigError(f"--define {item!r}: {name!r} is already defined from {kind!r}, not {variant!r}")
        if key in fixed:
            raise ConfigError(f"--define {item!r}: {name}'s {key} is given twice")
        fixed[key] = read_value(value)
    return defined


@attrs.frozen
class Candidate:
    """One configuration of a variant that selection may choose: the config for a seed
    (`config`) from the base config, the built-in `kind` (the variant itself, or the one a
    defined variant starts from) with its `fixed` keys, `alpha` and the grid's dotted-key
    `changes`; or a `tuned` config."""

    label: str
    variant: str
    alpha: float | None
    changes: dict[str, Any]
    tuned: TrainConfig | None = None
    kind: str = attrs.field(default=attrs.Factory(lambda self: self.variant, takes_self=True))
    fixed: dict[str, Any] = attrs.field(factory=dict)

    def config(self, base: TrainConfig, seed: int) -> TrainConfig:
        if self.tuned is not None:
            name = f"{base.name}-{self.variant}-tuned-s{seed}"
            return attrs.evolve(self.tuned, seed=seed, name=name, output_dir=base.output_dir, progress=base.progress)
        alpha = self.alpha if self.alpha is not None else 1.0
        return variant_config(base, self.kind, seed, alpha, {**self.fixed, **self.changes}, row=self.variant)

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "variant": self.variant, "kind": self.kind, "fixed": self.fixed,
                "alpha": self.alpha, "changes": self.changes, "tuned": self.tuned is not None}


def candidates(
    base: TrainConfig,
    variant: str,
    alphas: Sequence[float],
    grid: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    tuned: TrainConfig | None = None,
    defined: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
) -> list[Candidate]:
    """The candidates of `variant` (a built-in, or a name of `defined`, see `parse_defines`):
    the tuned config alone, or every alpha of `alphas` (the weighted variants) times every
    combination of the grid keys for every variant (``"*"``) and for this one; each config is
    built once here, so a bad value fails before any training."""
    kind, fixed = (defined or {}).get(variant, (variant, {}))
    variant_overrides(kind, 1.0)  # unknown names fail first
    if tuned is not None and fixed:
        raise ConfigError(f"--tuned {variant}: {variant!r} is a defined variant; tune it, or define it from the tuned config")
    if tuned is not None:
        found = Candidate(f"{variant} (tuned)", variant, None, {}, tuned, kind=kind, fixed=dict(fixed))
        found.config(base, base.seed)
        return [found]
    keys: dict[str, Sequence[Any]] = {**(grid or {}).get("*", {}), **(grid or {}).get(variant, {})}
    clash = sorted(set(keys) & set(fixed))
    if clash:
        raise ConfigError(f"--grid {clash[0]}: {variant!r} fixes that key by its --define; grid it in a variant that does not")
    weights: Sequence[float | None] = alphas if kind in WEIGHTED_VARIANTS else [None]
    out = []
    for alpha in weights:
        for values in itertools.product(*keys.values()):
            changes = dict(zip(keys, values))
            found = Candidate(variant_label(variant, alpha, changes), variant, alpha, changes, kind=kind, fixed=dict(fixed))
            found.config(base, base.seed)
            out.append(found)
    return out


def check_tuned(base: TrainConfig, variant: str, tuned: TrainConfig, source: str) -> None:
    """A tuned config must share the base's data, evaluation and epochs: the same splits and the
    same selection metric, so that the comparison stays paired."""
    a, b = config_to_dict(base), config_to_dict(tuned)
    differing = [k for k in ("data", "eval", "epochs") if a[k] != b[k]]
    if differing:
        raise ConfigError(
            f"--tuned {variant}={source}: its {', '.join(differing)} differ from the base config's; a tuned "
            "config must be tuned on the same data, evaluation and epochs (tune it from the same config)"
        )


# -- training and testing one run ------------------------------------------------------------
def fit(config: TrainConfig, dataset: RecDataset, *, resume: bool, overwrite: bool) -> dict[str, Any]:
    """Train `config` (its checkpoints and ``best.pt`` in its run directory) and return its best
    validation: ``{"monitor", "score", "epoch", "step", "model": metrics}``. The test split is
    not evaluated."""
    from augkit.train.checkpoint import CHECKPOINT_NAME
    from augkit.train.loop import train
    from augkit.train.run import build_run

    resumable = resume and (config.run_dir / CHECKPOINT_NAME).exists()
    on_existing = "resume" if resumable else "overwrite" if overwrite else "refuse"
    result = train(config, on_existing=on_existing, parts=build_run(config, dataset))
    if result.best is None or result.best["score"] is None:
        raise ConfigError(
            f"run {config.name!r} has no validation score for {config.eval.monitor!r} (is its slice empty?); "
            "compare selects on validation only"
        )
    return {key: result.best[key] for key in ("monitor", "score", "epoch", "step")} | {"model": result.best["metrics"]}


def evaluate_chosen(config: TrainConfig, dataset: RecDataset, *, readings: Sequence[str] = READINGS) -> dict[str, Any]:
    """The trained run of `config` (``best.pt``, else ``checkpoint.pt``) on the test split, once
    per reading of unseen ids: ``{reading: {"model", "top_popular"}, "norms": {...}}``, where
    ``norms`` holds the mean norm of the ``item_id`` embedding rows per popularity decile and of
    the cold items (where the item tower has an ``item_id`` feature)."""
    from augkit.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint
    from augkit.train.evaluation import evaluate_run, item_slices
    from augkit.train.loop import prepare
    from augkit.train.run import build_run

    parts = prepare(config, build_run(config, dataset))
    path = config.run_dir / BEST_NAME
    if not path.exists():
        path = config.run_dir / CHECKPOINT_NAME
    parts.model.load_state_dict(load_checkpoint(path, required=("model",))["model"])
    out: dict[str, Any] = {}
    for reading in readings:
        evaluated = attrs.evolve(parts, config=attrs.evolve(parts.config, eval=attrs.evolve(parts.config.eval, unseen_ids=reading)))
        out[reading] = evaluate_run(evaluated, on="test")
    norms: dict[str, float | None] = {}
    item = parts.model["item"]
    if ITEM_ID_FEATURE in parts.dataset.items.schema:
        with torch.no_grad():
            weight = item.input_layer.table(ITEM_ID_FEATURE).weight
            size = min(weight.shape[0], parts.dataset.num_items)
            row_norms = weight[:size].norm(dim=1).cpu()
        slices = item_slices(parts.train_counts.cpu(), parts.config.eval.head_fraction)
        for name in [f"{DECILE_PREFIX}{d}" for d in range(10)] + [COLD]:
            mask = slices[name][:size]
            norms[name] = float(row_norms[mask].mean()) if bool(mask.any()) else None
    out["norms"] = norms
    return out


# -- statistics -------------------------------------------------------------------------------
def _value(metrics: Mapping[str, Any], key: str) -> float | None:
    slice_, metric = key.split("/")
    return metrics.get(slice_, {}).get(metric)


def summarise(runs: Sequence[Mapping[str, Any]], keys: Sequence[str], *, which: str = "model") -> dict[str, Any]:
    """``{key: {"mean", "ci", "n"} | None}``: mean and 95% t-interval over the seeds' ``which``
    metrics (``"model"`` or ``"top_popular"``); seeds where the metric is undefined are left out."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [v for run in runs if (v := _value(run[which], key)) is not None]
        out[key] = mean_ci(values).as_dict() if values else None
    return out


def paired(method: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Against the baseline on the same seeds (run i of each is seed i): per key, the mean paired
    difference with its 95% interval, the lift (difference over the baseline's mean) with that
    interval scaled, the paired t-test and Wilcoxon p-values, and whether p_t < `SIGNIFICANCE`."""
    out: dict[str, Any] = {}
    for key in keys:
        pairs = [(a, b) for m, s in zip(method, baseline)
                 if (a := _value(m["model"], key)) is not None and (b := _value(s["model"], key)) is not None]
        if not pairs:
            out[key] = None
            continue
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        diff = mean_ci([x - y for x, y in pairs])
        base_mean = sum(b) / len(b)
        scale = 1 / base_mean if base_mean > 0 else None
        p_t = paired_t_test(a, b)
        out[key] = {
            "n": len(pairs),
            "diff": diff.mean,
            "diff_ci": diff.half_width,
            "lift": None if scale is None else diff.mean * scale,
            "lift_ci": None if scale is None or diff.half_width is None else diff.half_width * scale,
            "p_t": p_t,
            "p_wilcoxon": wilcoxon_signed_rank(a, b),
            "significant": p_t is not None and p_t < SIGNIFICANCE,
        }
    return out


# -- targets ----------------------------------------------------------------------------------
_TARGET = re.compile(r"(?P<variant>[\w+-]+):(?P<key>\w+/\w+@\d+)\s*>=\s*(?P<pct>[+-]?\d+(\.\d+)?)%?")


def parse_target(text: str, known: Sequence[str] = VARIANTS) -> dict[str, Any]:
    """``VARIANT:SLICE/METRIC@K>=PCT`` (``cfm:tail/recall@50>=+10``) -> a target: the lift of
    VARIANT (one of `known`) over the baseline (main reading) on that metric is at least PCT
    percent."""
    match = _TARGET.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"--target {text!r}: expected VARIANT:SLICE/METRIC@K>=PCT, e.g. cfm:tail/recall@50>=+10")
    if match["variant"] not in known:
        raise UnknownNameError("variant in --target", match["variant"], known)
    return {"variant": match["variant"], "key": match["key"], "lift_at_least": float(match["pct"]) / 100, "text": text.strip()}


def _check_target_key(target: Mapping[str, Any], base: TrainConfig) -> None:
    slice_, metric = target["key"].split("/")
    k = int(metric.rsplit("@", 1)[1])
    slices = (*COMPARE_SLICES, *(f"{DECILE_PREFIX}{d}" for d in range(10)))
    if slice_ not in slices:
        raise UnknownNameError(f"slice in --target {target['text']!r}", slice_, slices)
    if k not in base.eval.ks:
        raise ConfigError(f"--target {target['text']!r}: k={k} is not among eval.ks {list(base.eval.ks)}, so it is never computed")


def _check_distinct(first_runs: Sequence[tuple[Candidate, TrainConfig]]) -> None:
    """`ConfigError` when two candidates would share a row label or a run directory (values that
    print alike, such as 0.1 and 0.1000001, or a defined name that spells another's run name);
    `first_runs` pairs each candidate with its config for one seed."""
    seen: dict[tuple[str, str], Candidate] = {}
    for candidate, config in first_runs:
        for what, text in (("row", candidate.label), ("run name", config.name)):
            other = seen.setdefault((what, text), candidate)
            if other is not candidate:
                raise ConfigError(
                    f"compare: candidates {other.label!r} and {candidate.label!r} share the {what} {text!r}; "
                    "give values that print differently, or another --define name"
                )


def check_targets(targets: Sequence[Mapping[str, Any]], chosen: Mapping[str, str], lifts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured lift, its interval, and whether the point estimate (and the
    interval's lower end) reach it."""
    out = []
    for target in targets:
        label = chosen.get(target["variant"])
        stats = lifts.get(label, {}).get(target["key"]) if label else None
        row = dict(target, label=label, lift=None, lift_ci=None, reached=None, reached_by_ci=None, p_t=None)
        if stats is not None and stats["lift"] is not None:
            ci = stats["lift_ci"]
            row.update(lift=stats["lift"], lift_ci=ci, p_t=stats["p_t"], reached=stats["lift"] >= target["lift_at_least"],
                       reached_by_ci=None if ci is None else stats["lift"] - ci >= target["lift_at_least"])
        out.append(row)
    return out


# -- the comparison ---------------------------------------------------------------------------
def run_compare(
    base: TrainConfig,
    variants: Sequence[str],
    seeds: int = DEFAULT_SEEDS,
    *,
    alphas: Sequence[float] | None = None,
    grid: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
    tuned: Mapping[str, TrainConfig] | None = None,
    defined: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
    targets: Sequence[str] = (),
    resume: bool = False,
    overwrite: bool = False,
) -> Path:
    """Select each variant's candidate on validation, test the chosen ones once, and write
    ``<output_dir>/<name>-compare/`` (compare.md, compare.json and the plots); see the module.

    Seeds are ``base.seed .. base.seed + seeds - 1``. `alphas` (default ``(base.ssl.alpha,)``):
    the weights of so, rfm and cfm; `grid` (`parse_grid`): more keys searched for every variant
    (``"*"``) or one; `tuned`: ``{variant: config}`` from ``augkit tune``, that variant's only
    candidate; `defined` (`parse_defines`): variants of their own built from a built-in with fixed
    keys, listed in `variants` like the built-ins. `targets` (`parse_target`) are checked on the page. `resume`: runs with a
    checkpoint continue from it (a finished run is only reloaded); `overwrite` replaces earlier
    runs; without either, a run directory holding results is an error.
    """
    if base.data.valid_fraction <= 0:
        raise ConfigError("compare selects on the validation split: data.valid_fraction must be > 0")
    if "baseline" not in variants:
        raise ConfigError("compare: the variants must include 'baseline' (every lift is against it)")
    if len(set(variants)) != len(variants):
        raise ConfigError(f"compare: a variant is listed twice in {list(variants)}")
    defined = dict(defined or {})
    known = [*VARIANTS, *defined]
    for name in variants:
        if name not in known:
            raise UnknownNameError("variant", name, known)
    alphas = tuple(alphas) if alphas else (base.ssl.alpha,)
    tuned = dict(tuned or {})
    for name in tuned:
        if name not in variants:
            raise ConfigError(f"--tuned {name}: {name!r} is not among the variants {list(variants)}")
    parsed_targets = [parse_target(t, known) for t in targets]
    for target in parsed_targets:
        _check_target_key(target, base)
    pool = {v: candidates(base, v, alphas, grid, tuned.get(v), defined) for v in variants}
    seed_list = list(range(base.seed, base.seed + seeds))
    first_runs = [(c, c.config(base, seed_list[0])) for cs in pool.values() for c in cs]
    _check_distinct(first_runs)
    dataset = load_dataset(base)
    for _, config in first_runs:  # a bad augmentation fails before any training
        if config.ssl.alpha > 0:
            build_augmentation(config, dataset.items)

    # 1. selection: validation only
    validation: dict[str, list[dict[str, Any]]] = {}
    for variant in variants:
        for candidate in pool[variant]:
            for seed in seed_list:
                config = candidate.config(base, seed)
                log.info("compare: training %s (seed %d)", candidate.label, seed)
                validation.setdefault(candidate.label, []).append(fit(config, dataset, resume=resume, overwrite=overwrite))
    scores = {label: mean_ci([run["score"] for run in runs]) for label, runs in validation.items()}
    chosen: dict[str, str] = {}
    for variant in variants:
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
    for variant in variants:
        label = chosen[variant]
        for seed in seed_list:
            tested.setdefault(label, []).append(evaluate_chosen(by_label[label].config(base, seed), dataset, readings=(main_reading, other)))

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
    checked = check_targets(parsed_targets, chosen, lifts[main_reading])
    budget = {v: len(pool[v]) for v in variants}

    out = Path(base.output_dir) / f"{base.name}-compare"
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(out, base, summary[main_reading], lifts[main_reading], chosen, plot_k, validation, pool, norms, len(seed_list))
    record = {
        "protocol": {
            "seeds": seed_list,
            "selection": f"mean over seeds of the best validation {base.eval.monitor}",
            "monitor": base.eval.monitor,
            "main_reading": main_reading,
            "other_reading": other,
            "significance": SIGNIFICANCE,
            "interval": "95% Student t over seeds",
        },
        "alphas": list(alphas),
        "grid": {k: {kk: list(vv) for kk, vv in v.items()} for k, v in (grid or {}).items()},
        "defined": {name: {"variant": kind, "fixed": dict(fixed)} for name, (kind, fixed) in defined.items()},
        "budget": budget,
        "candidates": [c.describe() | {"validation": validation[c.label], "selection_score": scores[c.label].as_dict()}
                       for cs in pool.values() for c in cs],
        "chosen": chosen,
        "test": tested,
        "summary": summary,
        "lifts": lifts,
        "norms": norms,
        "targets": checked,
        "base_config": config_to_dict(base),
        "tuned_configs": {v: config_to_dict(c) for v, c in tuned.items()},
    }
    (out / "compare.json").write_text(json.dumps(record, indent=2, default=list), encoding="utf-8")
    (out / "compare.md").write_text(
        _page(base, record, keys, plots, main_reading, other, plot_k), encoding="utf-8"
    )
    return out


def _mean_present(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


# -- the page ---------------------------------------------------------------------------------
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


def _page(base: TrainConfig, record: Mapping[str, Any], keys: Sequence[str], plots: Mapping[str, str],
          main: str, other: str, k: int) -> str:
    protocol = record["protocol"]
    seeds = protocol["seeds"]
    budget = record["budget"]
    lines = [
        f"# {base.name}: variants over {len(seeds)} seed(s)",
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
    lines += [
        "",
        "## Selection (validation split)",
        "",
        selection_table(record),
        "",
        f"## Test: unseen ids read as `{main}`" + (" (as served)" if main == "default" else ""),
        "",
        _reading_note(main),
        "",
        compare_table(record["summary"][main], keys),
        "",
        "Lift over the baseline:",
        "",
        lift_table(record["lifts"][main], keys),
        "",
    ]
    if record["targets"]:
        lines += ["## Targets", "", "| target | lift [95% CI] | reached (point) | reached (CI lower end) |", "|---|---|---|---|"]
        for t in record["targets"]:
            lift = "n/a" if t["lift"] is None else f"{100 * t['lift']:+.1f}%" + (
                f" [{100 * (t['lift'] - t['lift_ci']):+.1f}, {100 * (t['lift'] + t['lift_ci']):+.1f}]" if t["lift_ci"] is not None else "")
            lines.append(f"| {t['text']} | {lift} | {_yes(t['reached'])} | {_yes(t['reached_by_ci'])} |")
        if not all(t["reached"] for t in record["targets"]):
            lines += ["", ("**Not every target is reached.** The diagnostics below show where the lift goes: per "
                           "decile, against alpha on validation, and the id-embedding norms by popularity.")]
        lines.append("")
    lines += [
        f"## Test: unseen ids read as `{other}` (the other reading)",
        "",
        _reading_note(other),
        "",
        compare_table(record["summary"][other], keys),
        "",
        "Lift over the baseline:",
        "",
        lift_table(record["lifts"][other], keys),
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{title}]({name})\n" for name, title in plots.items()]
    return "\n".join(lines)


def _yes(value: bool | None) -> str:
    return "n/a" if value is None else ("yes" if value else "**no**")


def _reading_note(reading: str) -> str:
    if reading == "default":
        return ("An item never seen in training is embedded with its `item_id` missing (the learned default "
                "embedding), as a new item would be served: its score comes from its other features only.")
    return ("An item never seen in training keeps its own `item_id` embedding as training left it: initialised "
            "at random and moved only by losses that sample the whole corpus (the SSL task), which favours them.")


# -- plots ------------------------------------------------------------------------------------
def _figure(size: tuple[float, float] = (7.5, 4.2)) -> tuple[Figure, Any]:
    figure = Figure(figsize=size, dpi=120)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _save(figure: Figure, axes: Any, path: Path) -> None:
    """Grid, legend and tight layout, then write `figure` to `path` (PNG)."""
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)


def _errorbar(axes: Any, xs: Sequence[float], stats: Sequence[Mapping[str, Any] | None], **style: Any) -> Any:
    ys = [math.nan if s is None else s["mean"] for s in stats]
    err = [0.0 if s is None or s.get("ci") is None else s["ci"] for s in stats]
    return axes.errorbar(xs, ys, yerr=err, capsize=3, **style)


def _plots(out: Path, base: TrainConfig, summary: Mapping[str, Any], lifts: Mapping[str, Any], chosen: Mapping[str, str],
           k: int, validation: Mapping[str, Sequence[Mapping[str, Any]]], pool: Mapping[str, Sequence[Candidate]],
           norms: Mapping[str, Mapping[str, float | None]], seeds: int) -> dict[str, str]:
    plots = {}
    deciles = [f"{DECILE_PREFIX}{d}/recall@{k}" for d in range(10)]
    cold = f"{COLD}/recall@{k}"
    xs, cold_x = list(range(1, 11)), 11.5
    ticks = ([*xs, cold_x], [*map(str, xs), "cold"])

    figure, axes = _figure()
    for label in [*chosen.values(), "TopPopular"]:
        row = summary[label]
        line = _errorbar(axes, xs, [row[key] for key in deciles], marker="o", label=label)
        _errorbar(axes, [cold_x], [row[cold]], marker="s", color=line[0].get_color())
    axes.set_xticks(*ticks)
    axes.set_xlabel("item popularity decile (1 = most clicked in training), and cold items")
    axes.set_ylabel(f"Recall@{k}")
    axes.set_title(f"{base.name}: test Recall@{k} by decile, mean ± 95% CI of {seeds} seeds")
    _save(figure, axes, out / "recall_by_decile.png")
    plots["recall_by_decile.png"] = f"Recall@{k} by popularity decile, with cold items"

    figure, axes = _figure()
    axes.axhline(0, color="black", linewidth=0.8)
    for label, row in lifts.items():
        stats = [None if row[key] is None or row[key]["lift"] is None else
                 {"mean": 100 * row[key]["lift"], "ci": None if row[key]["lift_ci"] is None else 100 * row[key]["lift_ci"]}
                 for key in [*deciles, cold]]
        _errorbar(axes, [*xs, cold_x], stats, marker="o", label=label)
    axes.set_xticks(*ticks)
    axes.set_xlabel("item popularity decile (1 = most clicked in training), and cold items")
    axes.set_ylabel(f"lift of Recall@{k} over the baseline (%)")
    axes.set_title(f"{base.name}: lift per decile, paired over {seeds} seeds (95% CI)")
    _save(figure, axes, out / "lift_by_decile.png")
    plots["lift_by_decile.png"] = "Lift per popularity decile"

    curves = {v: cs for v, cs in pool.items() if len({c.alpha for c in cs} - {None}) > 1}
    if curves:
        figure, axes = _figure()
        for variant, cs in curves.items():
            groups: dict[str, list[Candidate]] = {}
            for c in cs:
                groups.setdefault(json.dumps(c.changes, sort_keys=True, default=str), []).append(c)
            for changes, group in groups.items():
                group = sorted(group, key=lambda c: c.alpha or 0)
                stats = [mean_ci([r["score"] for r in validation[c.label]]).as_dict() for c in group]
                suffix = "" if changes == "{}" else f" {changes}"
                _errorbar(axes, [c.alpha for c in group], stats, marker="o", label=f"{variant}{suffix}")
        axes.axhline(mean_ci([r["score"] for r in validation[chosen["baseline"]]]).mean, color="gray", linestyle="--", label="baseline (chosen)")
        axes.set_xscale("log")
        axes.set_xlabel("alpha")
        axes.set_ylabel(f"validation {base.eval.monitor}")
        axes.set_title(f"{base.name}: validation score against alpha (mean ± 95% CI)")
        _save(figure, axes, out / "alpha_curves.png")
        plots["alpha_curves.png"] = "Validation score against alpha"

    if any(v is not None for n in norms.values() for v in n.values()):
        figure, axes = _figure()
        names = [f"{DECILE_PREFIX}{d}" for d in range(10)]
        for label, row in norms.items():
            line = axes.plot(xs, [math.nan if row[n] is None else row[n] for n in names], marker="o", label=label)
            axes.plot([cold_x], [math.nan if row[COLD] is None else row[COLD]], marker="s", color=line[0].get_color())
        axes.set_xticks(*ticks)
        axes.set_xlabel("item popularity decile (1 = most clicked in training), and cold items")
        axes.set_ylabel("mean norm of the item_id embedding")
        axes.set_title(f"{base.name}: item_id embedding norms by popularity (mean of {seeds} seeds)")
        _save(figure, axes, out / "embedding_norms.png")
        plots["embedding_norms.png"] = "item_id embedding norms by popularity"
    return plots

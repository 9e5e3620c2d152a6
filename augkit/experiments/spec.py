"""What ``augkit compare`` runs, typed and checked before anything trains: a `CompareSpec`
(variants, seeds, alphas, the ``--grid``, ``--define``-d variants, ``--tuned`` configs and
``--target``-s) and the `Candidate` configurations of each variant that selection chooses from.
The command-line forms are read here too (`parse_grid`, `parse_defines`, `parse_target`).
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from augkit.errors import ConfigError, UnknownNameError
from augkit.experiments.variants import (
    ALPHA,
    VARIANTS,
    WEIGHTED_VARIANTS,
    is_shared_key,
    id_dropout,
    variant_config,
    variant_label,
    variant_overrides,
)
from augkit.train.config import TrainConfig, config_to_dict
from augkit.train.evaluation import DECILE_PREFIX
from augkit.train.run import ITEM_ID_FEATURE

DEFAULT_SEEDS = 5
COMPARE_SLICES = ("head", "tail", "cold", "all")
"""The slices of the comparison's tables."""
COMPARE_KS = (10, 50)
"""The cut-offs of the comparison's tables (those of ``eval.ks``; else its first two)."""

Grid = Mapping[str, Mapping[str, Sequence[Any]]]
"""``{"*" or variant: {dotted key: [values]}}`` (`parse_grid`)."""

SET_BY_COMPARE = ("ssl.alpha", "main.spread_out", "seed", "name", "output_dir", "tune")
"""Keys compare sets itself for every run."""
PAIRED = ("data", "eval", "epochs")
"""Config parts every variant shares, so that lifts are paired: the same splits, the same
selection metric and the same training length."""


# -- the command-line forms -------------------------------------------------------------------
def read_value(text: str) -> Any:
    """A value from the command line, read as TOML (``0.1``, ``64``, ``true``, ``"cfm"``), else
    the text itself as a string."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


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


@attrs.frozen
class DefinedVariant:
    """A variant of its own (``--define``): the built-in `variant` with the dotted keys of
    `fixed` set."""

    variant: str
    fixed: dict[str, Any] = attrs.field(factory=dict)


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*")


def parse_defines(items: Sequence[str]) -> dict[str, DefinedVariant]:
    """``NAME=VARIANT:KEY=VALUE`` -> ``{name: DefinedVariant(variant, {key: value})}``: a variant
    of its own, the built-in VARIANT with the dotted KEY fixed at VALUE (`read_value`), compared
    with the baseline in a row of its own; the same NAME again fixes one more key. For options
    past the paper, e.g. ``cfm-su=cfm:ssl.augmentation.params.pair.params.correlation="symmetric_uncertainty"``."""
    defined: dict[str, DefinedVariant] = {}
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
        found = defined.setdefault(name, DefinedVariant(variant))
        if found.variant != variant:
            raise ConfigError(f"--define {item!r}: {name!r} is already defined from {found.variant!r}, not {variant!r}")
        if key in found.fixed:
            raise ConfigError(f"--define {item!r}: {name}'s {key} is given twice")
        found.fixed[key] = read_value(value)
    return defined


@attrs.frozen
class Target:
    """``--target``: the lift of `variant` over the baseline (main reading) on `key`
    (``SLICE/METRIC@K``) is at least `lift_at_least` (a fraction); `text` as given."""

    variant: str
    key: str
    lift_at_least: float
    text: str


_TARGET = re.compile(r"(?P<variant>[\w+-]+):(?P<key>\w+/\w+@\d+)\s*>=\s*(?P<pct>[+-]?\d+(\.\d+)?)%?")


def parse_target(text: str, known: Sequence[str] = VARIANTS) -> Target:
    """``VARIANT:SLICE/METRIC@K>=PCT`` (``cfm:tail/recall@50>=+10``) -> a `Target` of VARIANT
    (one of `known`): its lift on that metric is at least PCT percent."""
    match = _TARGET.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"--target {text!r}: expected VARIANT:SLICE/METRIC@K>=PCT, e.g. cfm:tail/recall@50>=+10")
    if match["variant"] not in known:
        raise UnknownNameError("variant in --target", match["variant"], known)
    return Target(match["variant"], match["key"], float(match["pct"]) / 100, text.strip())


def _check_target_key(target: Target, base: TrainConfig) -> None:
    slice_, metric = target.key.split("/")
    k = int(metric.rsplit("@", 1)[1])
    slices = (*COMPARE_SLICES, *(f"{DECILE_PREFIX}{d}" for d in range(10)))
    if slice_ not in slices:
        raise UnknownNameError(f"slice in --target {target.text!r}", slice_, slices)
    if k not in base.eval.ks:
        raise ConfigError(f"--target {target.text!r}: k={k} is not among eval.ks {list(base.eval.ks)}, so it is never computed")


def check_tuned(base: TrainConfig, variant: str, tuned: TrainConfig, source: str) -> None:
    """A tuned config must share the base's data, evaluation and epochs: the same splits and the
    same selection metric, so that the comparison stays paired."""
    a, b = config_to_dict(base), config_to_dict(tuned)
    differing = [k for k in PAIRED if a[k] != b[k]]
    if differing:
        raise ConfigError(
            f"--tuned {variant}={source}: its {', '.join(differing)} differ from the base config's; a tuned "
            "config must be tuned on the same data, evaluation and epochs (tune it from the same config)"
        )
    masks = tuned.main.item_augmentation()
    features = (masks or {}).get("params", {}).get("features")
    if masks is None or (features is not None and ITEM_ID_FEATURE not in features):
        raise ConfigError(
            f"--tuned {variant}={source}: its main task never masks item_id, so the default embedding cold items "
            f"are served with stays untrained, unlike every other variant's (main.augmentation = {id_dropout()}); "
            "it was tuned by an earlier augkit: tune it again"
        )


# -- candidates -------------------------------------------------------------------------------
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
    grid: Grid | None = None,
    tuned: TrainConfig | None = None,
    defined: Mapping[str, DefinedVariant] | None = None,
) -> list[Candidate]:
    """The candidates of `variant` (a built-in, or a name of `defined`, see `parse_defines`):
    the tuned config alone, or every alpha of `alphas` (the weighted variants) times every
    combination of the grid keys for every variant (``"*"``) and for this one; each config is
    built once here, so a bad value fails before any training."""
    own = (defined or {}).get(variant, DefinedVariant(variant))
    kind, fixed = own.variant, own.fixed
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


# -- the spec ---------------------------------------------------------------------------------
@attrs.frozen(kw_only=True)
class CompareSpec:
    """A checked comparison (`compare_spec`): the `base` config, the `variants` (``baseline``
    among them), the `seeds`, the weights `alphas` of so, rfm and cfm, the `grid`, the `tuned`
    configs by variant, the `defined` variants, the `targets`, and each variant's candidates
    (`pool`)."""

    base: TrainConfig
    variants: tuple[str, ...]
    seeds: tuple[int, ...]
    alphas: tuple[float, ...]
    grid: Grid
    tuned: Mapping[str, TrainConfig]
    defined: Mapping[str, DefinedVariant]
    targets: tuple[Target, ...]
    pool: Mapping[str, Sequence[Candidate]]
    tuned_budgets: Mapping[str, Mapping[str, Any] | None] = attrs.field(factory=dict)
    """Each tuned variant's study budget (`read_tuned_budget`; None where unknown)."""

    def first_runs(self) -> list[tuple[Candidate, TrainConfig]]:
        """Every candidate with its config for the first seed."""
        return [(c, c.config(self.base, self.seeds[0])) for cs in self.pool.values() for c in cs]

    def budgets(self) -> dict[str, dict[str, Any]]:
        """Each variant's search budget: ``{"how": "grid" or "tuned", "candidates", "seeds",
        "runs", "keys"}`` (`keys`: those searched over more than one value, `ALPHA` for the
        weights of ``--alphas``), and for a tuned variant its study's ``"trials"``,
        ``"tuning_seeds"`` and ``"runs"`` (trials × seeds; None where the study is unknown)."""
        out = {}
        for variant in self.variants:
            cands = self.pool[variant]
            if variant in self.tuned:
                study = self.tuned_budgets.get(variant) or {}
                trials, seeds = study.get("trials"), study.get("seeds")
                out[variant] = {"how": "tuned", "candidates": 1, "seeds": len(self.seeds), "trials": trials,
                                "tuning_seeds": seeds, "runs": None if trials is None or seeds is None else trials * len(seeds),
                                "keys": study.get("keys")}
                continue
            keys = [key for key in dict.fromkeys(k for c in cands for k in c.changes)
                    if len({repr(c.changes[key]) for c in cands}) > 1]
            if len({c.alpha for c in cands} - {None}) > 1:
                keys.insert(0, ALPHA)
            out[variant] = {"how": "grid", "candidates": len(cands), "seeds": len(self.seeds),
                            "runs": len(cands) * len(self.seeds), "keys": keys}
        return out


def budget_warnings(budgets: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What makes the `budgets` (`CompareSpec.budgets`) unequal, one sentence each: a shared
    key (`augkit.experiments.variants.is_shared_key`) searched by some variants and not others,
    a different number of runs, grid against tuned, a study whose budget is unknown."""
    warnings = []
    hows = {b["how"] for b in budgets.values()}
    if len(hows) > 1:
        warnings.append("some variants were tuned and others searched a grid: their budgets are not alike; "
                        "tune every variant, or give every variant the same grid")
    unknown = [v for v, b in budgets.items() if b["keys"] is None]
    if unknown:
        warnings.append(f"the study budget of {', '.join(unknown)} is unknown (no best.json beside its best.toml)")
    shared = list(dict.fromkeys(k for b in budgets.values() for k in b["keys"] or () if is_shared_key(k)))
    for key in shared:
        by = [v for v, b in budgets.items() if key in (b["keys"] or ())]
        missing = [v for v, b in budgets.items() if b["keys"] is not None and v not in by]
        if missing:
            warnings.append(f"`{key}` was searched by {', '.join(by)} but not by {', '.join(missing)}, "
                            "so the variants did not search the same shared settings")
    runs = {v: b["runs"] for v, b in budgets.items() if b["runs"] is not None}
    if len(set(runs.values())) > 1:
        warnings.append("the variants had different budgets: " + ", ".join(f"{v} {n} runs" for v, n in runs.items()))
    return warnings


def read_tuned_budget(best_toml: str | Path) -> dict[str, Any] | None:
    """The budget of the study that wrote `best_toml`, from the ``best.json`` beside it:
    ``{"trials", "seeds": [tuning seeds], "keys": [searched keys]}``; None without that file.
    A study of an earlier augkit, which recorded no seeds, was scored on the config's seed."""
    path = Path(best_toml).parent / "best.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or "space" not in summary:
        return None
    trials = summary.get("trials", {})
    seeds = summary.get("seeds")
    if seeds is None:
        seeds = [tomllib.loads(Path(best_toml).read_text(encoding="utf-8")).get("seed", 0)]
    budget = summary.get("budget") or {}
    return {"trials": budget.get("trials", trials.get("complete", 0) + trials.get("failed", 0)),
            "seeds": list(seeds), "keys": list(summary["space"])}


def compare_spec(
    base: TrainConfig,
    variants: Sequence[str],
    seeds: int = DEFAULT_SEEDS,
    *,
    alphas: Sequence[float] | None = None,
    grid: Grid | None = None,
    tuned: Mapping[str, TrainConfig] | None = None,
    defined: Mapping[str, DefinedVariant] | None = None,
    targets: Sequence[str] = (),
    tuned_budgets: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> CompareSpec:
    """The spec of a comparison of `variants` (built-ins and names of `defined`, ``baseline``
    among them) over seeds ``base.seed .. base.seed + seeds - 1``; every name, target and
    candidate config is checked here, so a bad one is a `ConfigError` (or `UnknownNameError`)
    before anything trains.

    `alphas` (default ``(base.ssl.alpha,)``): the weights of so, rfm and cfm; `grid`
    (`parse_grid`): more keys searched for every variant (``"*"``) or one; `tuned`:
    ``{variant: config}`` from ``augkit tune``, that variant's only candidate; `defined`
    (`parse_defines`): variants of their own built from a built-in with fixed keys; `targets`
    (`parse_target`'s form), checked on the page; `tuned_budgets`: ``{variant:
    read_tuned_budget(best.toml)}``, stated on the page, whose tuning seeds must be disjoint from
    the comparison's."""
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
    if tuned and (grid or {}).get("*"):
        key = next(iter(grid["*"]))
        raise ConfigError(
            f"--grid {key}=... applies to every variant, but {', '.join(tuned)} {'is' if len(tuned) == 1 else 'are'} "
            "--tuned (its config is its only candidate); tune every variant, or name the variants the grid is for "
            f"(--grid VARIANT:{key}=...)"
        )
    seed_range = range(base.seed, base.seed + seeds)
    tuned_budgets = dict(tuned_budgets or {})
    for name, budget in tuned_budgets.items():
        overlap = sorted(set(seed_range) & set((budget or {}).get("seeds") or ()))
        if overlap:
            raise ConfigError(
                f"--tuned {name}: its study was scored on seeds {budget['seeds']}, and the comparison tests on "
                f"seeds {seed_range.start}..{seed_range.stop - 1}, which share {overlap}; the test seeds must be ones "
                "the study never saw: tune it again (augkit tune scores trials on seeds from seed + 100), or move "
                "the comparison's seeds (--set seed=...)"
            )
    parsed_targets = tuple(parse_target(t, known) for t in targets)
    for target in parsed_targets:
        _check_target_key(target, base)
    spec = CompareSpec(
        base=base,
        variants=tuple(variants),
        seeds=tuple(seed_range),
        alphas=alphas,
        grid=grid or {},
        tuned=tuned,
        defined=defined,
        targets=parsed_targets,
        pool={v: candidates(base, v, alphas, grid, tuned.get(v), defined) for v in variants},
        tuned_budgets=tuned_budgets,
    )
    _check_distinct(spec.first_runs())
    return spec

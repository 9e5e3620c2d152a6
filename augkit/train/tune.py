"""``augkit tune``: a variant's hyperparameters searched with Optuna's TPE sampler on the
validation split, the study kept in SQLite so that it can be resumed.

The search space is the ``[tune]`` table of the trainer config::

    [tune]
    sampler_seed = 0        # TPE's seed (default: the config's seed)
    startup_trials = 10     # random trials before TPE models the results
    keep_runs = false       # keep every trial's run directory (default: only the best one's)

    [tune.space]            # for every variant
    "optim.lr" = { low = 1e-4, high = 1e-2, log = true }
    "model.embedding_dim" = { choices = [16, 32, 64] }

    [tune.variants.cfm]     # added for (and overriding, key by key) one variant
    "ssl.alpha" = { low = 0.03, high = 10.0, log = true }
    "ssl.augmentation.params.each.0.params.rate" = { low = 0.0, high = 0.6 }

A key is a dotted config key (a number indexes a list); a range ``{low, high, log, step}`` is
an integer range where the key holds an integer, else a float range; ``{choices = [...]}``
takes strings, numbers or booleans. A variant that neither table names gets
`DEFAULT_SPACES`. The objective is the config's ``eval.monitor`` on validation (the best epoch's,
as ``best.pt`` keeps it), one seed (the config's) for every trial: the test split is never read.

The study lives in ``<output_dir>/<name>-tune-<variant>/``: ``study.db``, ``trials/trial-NNNN/``
(run directories), ``best.toml`` (the best trial's config: ``augkit train best.toml`` trains
the winner; ``augkit compare --tuned VARIANT=best.toml`` compares it), ``best.json``,
``tune.md`` and Optuna's plots.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from augkit.errors import (
    AugkitError,
    ConfigError,
    RunDirectoryError,
    TrainingError,
    UnknownNameError,
    check_known_keys,
)
from augkit.train.config import TrainConfig, config_from_dict, config_to_dict, dump_config

log = logging.getLogger("augkit.train")

STUDY_DB = "study.db"
TUNE_KEYS = ("space", "variants", "sampler_seed", "startup_trials", "keep_runs")
SPEC_KEYS = ("low", "high", "log", "step", "choices")
VARIANTS = ("baseline", "fd", "so", "rfm", "cfm")

_COMMON: dict[str, dict[str, Any]] = {
    "optim.lr": {"low": 3e-4, "high": 1e-2, "log": True},
    "main.temperature": {"low": 0.02, "high": 0.3, "log": True},
    "model.embedding_dim": {"choices": [16, 32, 64]},
    "optim.weight_decay": {"choices": [0.0, 1e-6, 1e-5, 1e-4]},
}
_SSL: dict[str, dict[str, Any]] = {
    "ssl.alpha": {"low": 0.03, "high": 10.0, "log": True},
    "ssl.temperature": {"low": 0.05, "high": 1.0, "log": True},
    "ssl.augmentation.params.each.0.params.rate": {"low": 0.0, "high": 0.6},
}
DEFAULT_SPACES: Mapping[str, Mapping[str, Mapping[str, Any]]] = {
    "baseline": _COMMON,
    "fd": {**_COMMON, "main.feature_dropout": {"low": 0.05, "high": 0.5}},
    "so": {**_COMMON, "main.spread_out": {"low": 0.01, "high": 10.0, "log": True}},
    "rfm": {**_COMMON, **_SSL},
    "cfm": {**_COMMON, **_SSL},
}
"""The space of each variant when the config's ``[tune]`` table gives none for it: the
baseline's own parameters (learning rate, main temperature, embedding size, weight decay) for
every variant, plus the variant's: FD's dropout rate, SO's weight, and for RFM/CFM the SSL
weight alpha, the SSL temperature and the value-dropout rate after masking."""


# -- the [tune] table -------------------------------------------------------------------------
@attrs.frozen
class Param:
    """One dimension of the space: a range (`low`, `high`, `log`, `step`) or `choices`."""

    key: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None

    @classmethod
    def from_dict(cls, key: str, spec: Any) -> Param:
        where = f"space key {key!r}"
        if not isinstance(key, str) or not key or not all(key.split(".")):
            raise ConfigError(f"{where}: expected a dotted config key such as 'optim.lr'")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a table {{low, high, log, step}} or {{choices}}, got {spec!r}")
        check_known_keys(f"key of {where}", spec, SPEC_KEYS)
        if "choices" in spec:
            extra = [k for k in ("low", "high", "log", "step") if k in spec]
            if extra:
                raise ConfigError(f"{where}: choices cannot go with {', '.join(extra)}")
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: choices must be a non-empty list, got {choices!r}")
            for choice in choices:
                if not isinstance(choice, (str, int, float, bool)):
                    raise ConfigError(f"{where}: a choice must be a string, number or boolean, got {choice!r}")
            if len(set(map(repr, choices))) != len(choices):
                raise ConfigError(f"{where}: choices repeat a value: {choices!r}")
            return cls(key, choices=tuple(choices))
        missing = [k for k in ("low", "high") if k not in spec]
        if missing:
            raise ConfigError(f"{where}: {' and '.join(missing)} required (or give choices)")
        low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
        for name, value in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{where}: {name} must be a finite number, got {value!r}")
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: log must be true or false, got {log!r}")
        if not low < high:
            raise ConfigError(f"{where}: low must be < high, got low = {low!r}, high = {high!r}")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got {low!r}")
        if step is not None and (log or step <= 0):
            raise ConfigError(f"{where}: step must be > 0 and cannot go with log = true")
        return cls(key, low=low, high=high, log=log, step=step)

    def describe(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log} | ({"step": self.step} if self.step is not None else {})


@attrs.frozen
class TuneConfig:
    """The ``[tune]`` table, checked (see the module)."""

    space: dict[str, Param]
    variants: dict[str, dict[str, Param]]
    sampler_seed: int | None = None
    startup_trials: int = 10
    keep_runs: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuneConfig:
        """Check a ``[tune]`` table; errors name the key at fault."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"expected a table, got {data!r}")
        check_known_keys("key of [tune]", data, TUNE_KEYS)
        space = _space(data.get("space", {}), "[tune.space]")
        variants_table = data.get("variants", {})
        if not isinstance(variants_table, Mapping):
            raise ConfigError(f"[tune.variants] must be a table of variants, got {variants_table!r}")
        check_known_keys("variant in [tune.variants]", variants_table, VARIANTS)
        variants = {v: _space(s, f"[tune.variants.{v}]") for v, s in variants_table.items()}
        seed, startup, keep = data.get("sampler_seed"), data.get("startup_trials", 10), data.get("keep_runs", False)
        if seed is not None and (type(seed) is not int or seed < 0):
            raise ConfigError(f"sampler_seed must be an integer >= 0, got {seed!r}")
        if type(startup) is not int or startup < 1:
            raise ConfigError(f"startup_trials must be an integer >= 1, got {startup!r}")
        if not isinstance(keep, bool):
            raise ConfigError(f"keep_runs must be true or false, got {keep!r}")
        return cls(space, variants, seed, startup, keep)

    def space_for(self, variant: str) -> dict[str, Param]:
        """The space of `variant`: ``[tune.space]`` with ``[tune.variants.<variant>]`` over it,
        or `DEFAULT_SPACES` when both are empty."""
        chosen = {**self.space, **self.variants.get(variant, {})}
        if chosen:
            return chosen
        return {k: Param.from_dict(k, spec) for k, spec in DEFAULT_SPACES[variant].items()}


def _space(table: Any, where: str) -> dict[str, Param]:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table of config keys, got {table!r}")
    out = {}
    for key, spec in table.items():
        try:
            out[key] = Param.from_dict(key, spec)
        except (ConfigError, UnknownNameError) as error:
            raise ConfigError(f"{where}: {error}") from None
    return out


# -- trials -----------------------------------------------------------------------------------
def _get_path(data: Mapping[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return None
    return node


def trial_config(base: TrainConfig, variant: str, params: Mapping[str, Any], *, name: str, output_dir: str) -> TrainConfig:
    """`base` as `variant` (`augkit.train.compare.variant_config`, seed ``base.seed``) with the
    dotted-key `params` set, named `name` under `output_dir`, without the ``[tune]`` table."""
    from augkit.train.compare import set_path, variant_config

    config = variant_config(attrs.evolve(base, tune=None), variant, base.seed)
    data = config_to_dict(config)
    for key, value in params.items():
        set_path(data, key, value, where=f"tune {variant}")
    data.update(name=name, output_dir=output_dir, tune=None)
    return config_from_dict(data, source=f"tune {variant}")


def _kind(base: TrainConfig, variant: str, param: Param) -> str:
    """``int``, ``float`` or ``choices``: how the sampler draws `param` for this config."""
    from augkit.train.compare import variant_config

    if param.choices is not None:
        return "choices"
    current = _get_path(config_to_dict(variant_config(attrs.evolve(base, tune=None), variant, base.seed)), param.key)
    if isinstance(current, (bool, str, list, dict)):
        raise ConfigError(f"tune {variant}: {param.key!r} holds {current!r}, not a number: give it choices, not a range")
    whole = all(isinstance(v, int) for v in (param.low, param.high) if v is not None) and (param.step is None or isinstance(param.step, int))
    if isinstance(current, int):
        if not whole:
            raise ConfigError(f"tune {variant}: {param.key!r} is an integer; low, high (and step) must be integers")
        return "int"
    return "float"


def check_space(base: TrainConfig, variant: str, space: Mapping[str, Param]) -> dict[str, str]:
    """``{key: kind}``; every key's ends (or every choice) are set once into a config, so a
    wrong key or an out-of-range value is an error before the first trial."""
    kinds = {}
    for key, param in space.items():
        kinds[key] = _kind(base, variant, param)
        values = param.choices if param.choices is not None else (param.low, param.high)
        for value in values:
            value = float(value) if kinds[key] == "float" else value
            try:
                trial_config(base, variant, {key: value}, name="check", output_dir=base.output_dir)
            except AugkitError as error:
                raise ConfigError(f"tune {variant}: space key {key!r} = {value!r}: {error}") from None
    return kinds


def _suggest(trial: Any, param: Param, kind: str) -> Any:
    if kind == "choices":
        return trial.suggest_categorical(param.key, list(param.choices))
    if kind == "int":
        return trial.suggest_int(param.key, param.low, param.high, step=param.step or 1, log=param.log)
    return trial.suggest_float(param.key, float(param.low), float(param.high), step=param.step, log=param.log)


# -- the study --------------------------------------------------------------------------------
def study_dir(base: TrainConfig, variant: str) -> Path:
    """``<output_dir>/<name>-tune-<variant>``."""
    return Path(base.output_dir) / f"{base.name}-tune-{variant}"


def _fingerprint(base: TrainConfig, space: Mapping[str, Param]) -> dict[str, Any]:
    from augkit.train.checkpointing import RESUMABLE_KEYS

    data = config_to_dict(attrs.evolve(base, tune=None))
    for key in RESUMABLE_KEYS - {"epochs"}:
        data.pop(key, None)
    return {"config": json.loads(json.dumps(data, default=list)), "space": {k: p.describe() for k, p in space.items()}}


def run_tune(
    base: TrainConfig,
    variant: str,
    trials: int,
    *,
    resume: bool = False,
    overwrite: bool = False,
    timeout: float | None = None,
) -> Path:
    """Run (or continue, with `resume`) the study of `variant` until it holds `trials` finished
    trials (or `timeout` seconds pass); write the study directory (see the module) and return it.

    A trial whose training diverges (`TrainingError`) is recorded as failed and counts; a trial
    cut off by an interrupted process is marked failed and its parameters are tried again first.
    """
    try:
        import optuna
    except ImportError:
        raise ConfigError("augkit tune needs Optuna: pip install 'augkit[tune]' (or optuna>=3.6)") from None
    from optuna.trial import TrialState

    from augkit.train.compare import fit, variant_overrides
    from augkit.train.run import load_dataset

    variant_overrides(variant, 1.0)
    if base.data.valid_fraction <= 0:
        raise ConfigError("tune optimises a validation metric: data.valid_fraction must be > 0")
    tune = TuneConfig.from_dict(base.tune or {})
    space = tune.space_for(variant)
    kinds = check_space(base, variant, space)
    out = study_dir(base, variant)
    db = out / STUDY_DB
    if db.exists() and not resume:
        if not overwrite:
            raise RunDirectoryError(
                f"{str(db)!r} holds a study already: continue it with --resume, or start afresh with --overwrite"
            )
        shutil.rmtree(out)
    if resume and not db.exists():
        raise RunDirectoryError(f"--resume: no study at {str(db)!r}; start one without --resume")
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(base, space)
    name, storage = f"{base.name}-tune-{variant}", f"sqlite:///{db.resolve()}"
    # A resumed study draws from seed + the trials it holds, so it does not repeat its first draws.
    try:
        recorded = len(optuna.load_study(study_name=name, storage=storage).trials) if resume else 0
    except KeyError:
        raise RunDirectoryError(f"--resume: {str(db)!r} holds no study named {name!r}; use --overwrite") from None
    seed = (base.seed if tune.sampler_seed is None else tune.sampler_seed) + recorded
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials)
    study = optuna.create_study(
        storage=storage, sampler=sampler, study_name=name, direction="maximize", load_if_exists=resume
    )
    if resume:
        before = study.user_attrs.get("fingerprint")
        if before != fingerprint:
            changed = [k for k in ("config", "space") if (before or {}).get(k) != fingerprint[k]]
            raise ConfigError(
                f"--resume: the study in {str(db)!r} was run with another {' and '.join(changed)}; "
                "resume with the same config (only --trials and --timeout may change), or use --overwrite"
            )
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            if frozen.state == TrialState.RUNNING:
                study.set_user_attr(f"interrupted-{frozen.number}", True)
                study.tell(frozen.number, state=TrialState.FAIL)
                study.enqueue_trial(dict(frozen.params), skip_if_exists=False)
    else:
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("variant", variant)
        study.set_user_attr("monitor", base.eval.monitor)
    dataset = load_dataset(base)
    trials_dir = out / "trials"

    def objective(trial: Any) -> float:
        params = {key: _suggest(trial, space[key], kinds[key]) for key in space}
        config = trial_config(base, variant, params, name=f"trial-{trial.number:04d}", output_dir=str(trials_dir))
        trial.set_user_attr("config", dump_config(config))
        log.info("tune %s: trial %d, %s", variant, trial.number, ", ".join(f"{k}={v!r}" for k, v in params.items()))
        result = fit(config, dataset, resume=False, overwrite=True)
        trial.set_user_attr("epoch", result["epoch"])
        return float(result["score"])

    def keep_best(study: Any, frozen: Any) -> None:
        if tune.keep_runs:
            return
        try:
            best = study.best_trial.number
        except ValueError:
            best = None
        keep = None if best is None else f"trial-{best:04d}"
        for path in trials_dir.glob("trial-*"):
            if path.name != keep:
                shutil.rmtree(path, ignore_errors=True)

    remaining = trials - _finished(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(TrainingError,), callbacks=[keep_best],
                       gc_after_trial=False)
    return write_outputs(study, base, variant, space, out)


def _finished(study: Any) -> int:
    """Trials that count towards ``--trials``: complete, pruned, or failed but not interrupted."""
    from optuna.trial import TrialState

    done = 0
    for frozen in study.get_trials(deepcopy=False):
        if frozen.state in (TrialState.COMPLETE, TrialState.PRUNED) or frozen.state == TrialState.FAIL and not study.user_attrs.get(f"interrupted-{frozen.number}"):
            done += 1
    return done


def best_config(study: Any, base: TrainConfig, variant: str) -> TrainConfig:
    """The best trial's config, named ``<name>-<variant>-tuned`` under the base's output_dir."""
    import tomllib

    text = study.best_trial.user_attrs["config"]
    config = config_from_dict(tomllib.loads(text), source=f"trial {study.best_trial.number}")
    return attrs.evolve(config, name=f"{base.name}-{variant}-tuned", output_dir=base.output_dir)


def write_outputs(study: Any, base: TrainConfig, variant: str, space: Mapping[str, Param], out: Path) -> Path:
    """best.toml, best.json, tune.md and the plots of `study` in `out`."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not complete:
        raise TrainingError(f"tune {variant}: no trial of the study in {str(out)!r} completed ({len(failed)} failed)")
    best = study.best_trial
    config = best_config(study, base, variant)
    (out / "best.toml").write_text(
        f"# augkit tune: best of {len(complete)} trials of {variant} (trial {best.number}, validation "
        f"{base.eval.monitor} = {best.value:.4f}); train it with `augkit train` or compare it with "
        f"`augkit compare --tuned {variant}=<this file>`\n{dump_config(config)}",
        encoding="utf-8",
    )
    summary = {
        "variant": variant,
        "monitor": base.eval.monitor,
        "best_value": best.value,
        "best_trial": best.number,
        "best_params": best.params,
        "best_epoch": best.user_attrs.get("epoch"),
        "trials": {"complete": len(complete), "failed": len(failed)},
        "space": {k: p.describe() for k, p in space.items()},
        "all": [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params} for t in study.get_trials(deepcopy=False)],
    }
    (out / "best.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    plots = _plots(study, out, len(complete), len(space))
    lines = [
        f"# Tuning `{variant}` on {base.name}",
        "",
        (f"{len(complete)} complete and {len(failed)} failed trial(s), Optuna TPE; objective: validation "
         f"`{base.eval.monitor}` (best epoch), seed {base.seed}; the test split is not read."),
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
    lines += ["", *[f"![{title}]({file})\n" for file, title in plots.items()]]
    (out / "tune.md").write_text("\n".join(lines), encoding="utf-8")
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _plots(study: Any, out: Path, complete: int, params: int) -> dict[str, str]:
    """Optuna's matplotlib plots as PNG: the optimisation history, and the parameter importances
    and slice plot when there are at least 3 complete trials."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure.tight_layout()
        figure.savefig(out / file, dpi=110)
        plt.close(figure)
        written[file] = title
    return written

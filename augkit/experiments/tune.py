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
takes strings, numbers or booleans. The table is read with the rest of the config, into
`augkit.train.config.TuneConfig`. A variant that neither table names gets its default space,
`augkit.experiments.variants.DEFAULT_SPACES`. The objective is the config's ``eval.monitor`` on
validation (the best epoch's, as ``best.pt`` keeps it), averaged over ``[tune] seeds`` seeds
(default 3): `tuning_seeds`, ``seed + TUNE_SEED_OFFSET`` on, so that they are disjoint from the
seeds ``augkit compare`` tests on (``seed`` to ``seed + 4``). The test split is never read.

The study lives in ``<output_dir>/<name>-tune-<variant>/``: ``study.db``,
``trials/trial-NNNN/seed-S/`` (a run directory per seed), ``best.toml`` (the best trial's
config: ``augkit train best.toml`` trains the winner; ``augkit compare --tuned
VARIANT=best.toml`` compares it), ``best.json``, ``tune.md`` and Optuna's plots.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import sqlite3
import statistics
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from augkit import atomic
from augkit.errors import AugkitError, ConfigError, RunDirectoryError, StudyError, TrainingError
from augkit.experiments.plots import tune_plots
from augkit.experiments.progress import duration, time_left
from augkit.experiments.report import tune_page
from augkit.experiments.training import fit
from augkit.experiments.variants import DEFAULT_SPACES, set_path, variant_config, variant_overrides
from augkit.train.config import TrainConfig, TuneConfig, TuneParam, config_from_dict, config_to_dict, dump_config
from augkit.train.checkpointing import RESUMABLE_KEYS
from augkit.train.rundir import LOCK_NAME, OnExisting, check_on_existing, locked
from augkit.train.run import load_dataset

log = logging.getLogger("augkit.train")

STUDY_DB = "study.db"
TUNE_SEED_OFFSET = 100
"""A trial's seeds start at the config's seed plus this, past the seeds ``augkit compare`` tests
on (the config's seed and the next four by default), so tuning never sees a test split."""
OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})
"""Tables every Optuna SQLite study has; a database without them is not a study."""


def tuning_seeds(base: TrainConfig) -> tuple[int, ...]:
    """The seeds every trial is trained with: ``[tune] seeds`` of them (default 3), from
    ``base.seed + TUNE_SEED_OFFSET``."""
    count = (base.tune or TuneConfig()).seeds
    return tuple(range(base.seed + TUNE_SEED_OFFSET, base.seed + TUNE_SEED_OFFSET + count))


def space_for(tune: TuneConfig | None, variant: str) -> dict[str, TuneParam]:
    """The space of `variant`: ``[tune.space]`` with ``[tune.variants.<variant>]`` over it, or
    `DEFAULT_SPACES` when both are empty (or there is no ``[tune]`` table)."""
    tune = tune or TuneConfig()
    return {**tune.space, **tune.variants.get(variant, {})} or dict(DEFAULT_SPACES[variant])


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


def trial_config(
    base: TrainConfig, variant: str, params: Mapping[str, Any], *, name: str, output_dir: str, seed: int | None = None
) -> TrainConfig:
    """`base` as `variant` (`augkit.experiments.variants.variant_config`, with `seed`, default
    ``base.seed``) with the dotted-key `params` set, named `name` under `output_dir`, without the
    ``[tune]`` table."""
    config = variant_config(attrs.evolve(base, tune=None), variant, base.seed if seed is None else seed)
    data = config_to_dict(config)
    for key, value in params.items():
        set_path(data, key, value, where=f"tune {variant}")
    data.update(name=name, output_dir=output_dir, tune=None)
    return config_from_dict(data, source=f"tune {variant}")


def _kind(base: TrainConfig, variant: str, key: str, param: TuneParam) -> str:
    """``int``, ``float`` or ``choices``: how the sampler draws `param` (of dotted `key`) for this config."""
    if param.choices is not None:
        return "choices"
    current = _get_path(config_to_dict(variant_config(attrs.evolve(base, tune=None), variant, base.seed)), key)
    if isinstance(current, (bool, str, list, dict)):
        raise ConfigError(f"tune {variant}: {key!r} holds {current!r}, not a number: give it choices, not a range")
    whole = all(isinstance(v, int) for v in (param.low, param.high) if v is not None) and (param.step is None or isinstance(param.step, int))
    if isinstance(current, int):
        if not whole:
            raise ConfigError(f"tune {variant}: {key!r} is an integer; low, high (and step) must be integers")
        return "int"
    return "float"


def check_space(base: TrainConfig, variant: str, space: Mapping[str, TuneParam]) -> dict[str, str]:
    """``{key: kind}``; every key's ends (or every choice) are set once into a config, so a
    wrong key or an out-of-range value is an error before the first trial."""
    kinds = {}
    for key, param in space.items():
        kinds[key] = _kind(base, variant, key, param)
        values = param.choices if param.choices is not None else (param.low, param.high)
        for value in values:
            value = float(value) if kinds[key] == "float" else value
            try:
                trial_config(base, variant, {key: value}, name="check", output_dir=base.output_dir)
            except AugkitError as error:
                raise ConfigError(f"tune {variant}: space key {key!r} = {value!r}: {error}") from None
    return kinds


def _suggest(trial: Any, key: str, param: TuneParam, kind: str) -> Any:
    if kind == "choices":
        return trial.suggest_categorical(key, list(param.choices))
    if kind == "int":
        return trial.suggest_int(key, param.low, param.high, step=param.step or 1, log=param.log)
    return trial.suggest_float(key, float(param.low), float(param.high), step=param.step, log=param.log)


# -- the study --------------------------------------------------------------------------------
def study_dir(base: TrainConfig, variant: str) -> Path:
    """``<output_dir>/<name>-tune-<variant>``."""
    return Path(base.output_dir) / f"{base.name}-tune-{variant}"


def _fingerprint(base: TrainConfig, space: Mapping[str, TuneParam]) -> dict[str, Any]:
    data = config_to_dict(attrs.evolve(base, tune=None))
    for key in RESUMABLE_KEYS - {"epochs"}:
        data.pop(key, None)
    return {"config": json.loads(json.dumps(data, default=list)), "space": {k: p.describe() for k, p in space.items()},
            "seeds": list(tuning_seeds(base))}


def run_tune(
    base: TrainConfig,
    variant: str,
    trials: int,
    *,
    on_existing: OnExisting = "refuse",
    timeout: float | None = None,
) -> Path:
    """Run (or continue, with ``on_existing="resume"``; ``"overwrite"`` deletes an earlier one) the study of `variant` until it holds `trials` finished
    trials (or `timeout` seconds pass); write the study directory (see the module) and return it.

    The study directory is locked while this runs (`augkit.train.rundir.locked`): a second
    process is refused with the holder's pid before it reads, deletes or changes anything. A
    trial whose training diverges (`TrainingError`) is recorded as failed and counts; a trial
    cut off by Ctrl-C, or left running by a process that died, is marked failed, does not count,
    and its parameters are tried again first.
    """
    try:
        import optuna  # optional: the experiments extra, not a base dependency
    except ImportError:
        raise ConfigError("augkit tune needs Optuna: pip install 'augkit[experiments]' (or optuna>=3.6)") from None

    variant_overrides(variant, 1.0)
    if base.data.valid_fraction <= 0:
        raise ConfigError("tune optimises a validation metric: data.valid_fraction must be > 0")
    tune = base.tune or TuneConfig()
    space = space_for(tune, variant)
    kinds = check_space(base, variant, space)
    out = study_dir(base, variant)
    resume = check_on_existing(on_existing) == "resume"
    if resume and not (out / STUDY_DB).exists():  # nothing to continue: leave no directory behind
        raise RunDirectoryError(f"--resume: no study at {str(out / STUDY_DB)!r}; start one without --resume")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"cannot create study directory {str(out)!r}: {error.strerror}") from None
    with locked(out, what="study directory"):
        study = _open_study(optuna, base, variant, space, tune, out, on_existing)
        return _optimize(study, base, variant, space, kinds, tune, trials, timeout, out)


def _open_study(
    optuna: Any, base: TrainConfig, variant: str, space: Mapping[str, TuneParam], tune: TuneConfig, out: Path,
    on_existing: OnExisting,
) -> Any:
    """The study in the locked `out`: created (after deleting an earlier one's files with
    ``"overwrite"``) or loaded (``"resume"``: checked against the config and space, and every
    trial left RUNNING, which no live process holds under the lock, failed and enqueued again)."""
    from optuna.trial import TrialState  # optional: the experiments extra

    db = out / STUDY_DB
    _check_writable(out, db)
    if db.exists() and on_existing != "overwrite":
        check_study_db(db)
        if on_existing == "refuse":
            raise RunDirectoryError(
                f"{str(db)!r} holds a study already: continue it with --resume, or start afresh with --overwrite"
            )
    if on_existing == "overwrite":
        for path in out.iterdir():
            if path.name != LOCK_NAME:  # the lock this process holds stays
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    resume = on_existing == "resume"
    fingerprint = _fingerprint(base, space)
    name, storage = f"{base.name}-tune-{variant}", f"sqlite:///{db.resolve()}"
    try:
        # A resumed study draws from seed + the trials it holds, so it does not repeat its first draws.
        recorded = len(optuna.load_study(study_name=name, storage=storage).trials) if resume else 0
        seed = (base.seed if tune.sampler_seed is None else tune.sampler_seed) + recorded
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=tune.startup_trials)
        study = optuna.create_study(
            storage=storage, sampler=sampler, study_name=name, direction="maximize", load_if_exists=resume
        )
    except KeyError:
        raise RunDirectoryError(f"--resume: {str(db)!r} holds no study named {name!r}; use --overwrite") from None
    except Exception as error:  # sqlalchemy's errors, or Optuna's RuntimeError for a schema of another version
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise StudyError(
            f"study database {str(db)!r} cannot be opened by Optuna {optuna.__version__} ({reason}); "
            "move it away, or start afresh with --overwrite"
        ) from None
    if resume:
        before = study.user_attrs.get("fingerprint")
        if before != fingerprint:
            names = {"config": "config", "space": "space", "seeds": "set of seeds"}
            changed = [names[k] for k in names if (before or {}).get(k) != fingerprint[k]]
            raise ConfigError(
                f"--resume: the study in {str(db)!r} was run with another {' and '.join(changed)}; "
                "resume with the same config (only --trials and --timeout may change), or use --overwrite"
            )
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(frozen.number, state=TrialState.FAIL)
            _retry(study, frozen.number, frozen.params)
    else:
        study.set_user_attr("fingerprint", fingerprint)
        study.set_user_attr("variant", variant)
        study.set_user_attr("monitor", base.eval.monitor)
    return study


def _retry(study: Any, number: int, params: Mapping[str, Any]) -> None:
    """Mark trial `number` interrupted (it does not count towards ``--trials``) and enqueue its
    `params`, so that the next trial tries them again."""
    study.set_user_attr(f"interrupted-{number}", True)
    study.enqueue_trial(dict(params), skip_if_exists=False)


def check_study_db(db: Path) -> None:
    """`StudyError` unless `db` is an SQLite database that passes SQLite's quick check and has
    Optuna's tables; read without creating or changing a table (a hot journal left by a killed
    process is rolled back, as SQLite does on any open)."""
    try:
        with contextlib.closing(sqlite3.connect(db)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.Error as error:
        raise StudyError(
            f"study database {str(db)!r} is damaged or not SQLite ({error}); move it away, or start afresh with --overwrite"
        ) from None
    if problems != ["ok"]:
        raise StudyError(
            f"study database {str(db)!r} is damaged ({problems[0]}); move it away, or start afresh with --overwrite"
        )
    if not OPTUNA_TABLES <= tables:
        raise StudyError(
            f"study database {str(db)!r} is not an Optuna study (it lacks the tables "
            f"{', '.join(sorted(OPTUNA_TABLES - tables))}); move it away, or start afresh with --overwrite"
        )


def _check_writable(out: Path, db: Path) -> None:
    """`RunDirectoryError` if the study directory or its database cannot be written (SQLite
    writes a journal beside the database)."""
    for path in (out, db):
        if path.exists() and not os.access(path, os.W_OK):
            raise RunDirectoryError(
                f"study {'directory' if path == out else 'database'} {str(path)!r} is read-only; make it "
                "writable, or copy the study elsewhere and run it there"
            )


def _optimize(
    study: Any, base: TrainConfig, variant: str, space: Mapping[str, TuneParam], kinds: Mapping[str, str],
    tune: TuneConfig, trials: int, timeout: float | None, out: Path,
) -> Path:
    """Run trials of `study` until `trials` finished ones, then write the outputs into `out`. Each
    trial trains one run per seed of `tuning_seeds` (in ``trials/trial-NNNN/seed-S/``) and is
    scored by the mean of their best validation values; a log line per trial gives its time and
    an estimate of the rest."""
    dataset = load_dataset(base)
    trials_dir = out / "trials"
    seeds = tuning_seeds(base)
    remaining = trials - _finished(study)
    durations: list[float] = []

    stopped: list[BaseException] = []

    def objective(trial: Any) -> float:
        try:
            started = time.perf_counter()
            params = {key: _suggest(trial, key, space[key], kinds[key]) for key in space}
            name, runs = f"trial-{trial.number:04d}", str(trials_dir / f"trial-{trial.number:04d}")
            trial.set_user_attr("config", dump_config(trial_config(base, variant, params, name=name, output_dir=str(trials_dir))))
            log.info("tune %s: trial %d (%d of %d this session), %d seeds, %s", variant, trial.number, len(durations) + 1,
                     remaining, len(seeds), ", ".join(f"{k}={v!r}" for k, v in params.items()))
            results = [fit(trial_config(base, variant, params, name=f"seed-{seed}", output_dir=runs, seed=seed), dataset,
                           on_existing="overwrite") for seed in seeds]
            scores = [float(result["score"]) for result in results]
            trial.set_user_attr("scores", scores)
            trial.set_user_attr("epoch", [result["epoch"] for result in results])
            durations.append(time.perf_counter() - started)
            log.info("tune %s: trial %d scored %.4f (mean of %d seeds) in %s; %s", variant, trial.number,
                     statistics.fmean(scores), len(seeds), duration(durations[-1]),
                     time_left(durations, remaining - len(durations)))
            return statistics.fmean(scores)
        except TrainingError as error:  # diverged: the trial failed and counts; the study goes on
            log.warning("tune %s: trial %d failed: %s", variant, trial.number, error)
        except (KeyboardInterrupt, AugkitError) as error:  # the study stops; Ctrl-C's trial is retried on --resume
            if isinstance(error, KeyboardInterrupt):
                _retry(study, trial.number, trial.params)
            stopped.append(error)
            study.stop()
        return math.nan  # Optuna records the trial failed, without logging a traceback

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

    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=timeout, callbacks=[keep_best], gc_after_trial=False)
    if stopped:
        raise stopped[0]
    return write_outputs(study, base, variant, space, out)


def _finished(study: Any) -> int:
    """Trials that count towards ``--trials``: complete, pruned, or failed but not interrupted."""
    from optuna.trial import TrialState  # optional: the experiments extra

    done = 0
    for frozen in study.get_trials(deepcopy=False):
        if frozen.state in (TrialState.COMPLETE, TrialState.PRUNED) or frozen.state == TrialState.FAIL and not study.user_attrs.get(f"interrupted-{frozen.number}"):
            done += 1
    return done


def best_config(study: Any, base: TrainConfig, variant: str) -> TrainConfig:
    """The best trial's config, named ``<name>-<variant>-tuned`` under the base's output_dir."""
    text = study.best_trial.user_attrs["config"]
    config = config_from_dict(tomllib.loads(text), source=f"trial {study.best_trial.number}")
    return attrs.evolve(config, name=f"{base.name}-{variant}-tuned", output_dir=base.output_dir)


def write_outputs(study: Any, base: TrainConfig, variant: str, space: Mapping[str, TuneParam], out: Path) -> Path:
    """best.toml, best.json, tune.md and the plots of `study` in `out`, each written under a
    temporary name and renamed into place (`augkit.atomic`)."""
    from optuna.trial import TrialState  # optional: the experiments extra

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not complete:
        raise TrainingError(f"tune {variant}: no trial of the study in {str(out)!r} completed ({len(failed)} failed)")
    best = study.best_trial
    config = best_config(study, base, variant)
    atomic.write_text(
        out / "best.toml",
        f"# augkit tune: best of {len(complete)} trials of {variant} (trial {best.number}, validation "
        f"{base.eval.monitor} = {best.value:.4f}); train it with `augkit train` or compare it with "
        f"`augkit compare --tuned {variant}=<this file>`\n{dump_config(config)}",
    )
    summary = {
        "variant": variant,
        "monitor": base.eval.monitor,
        "best_value": best.value,
        "best_trial": best.number,
        "best_params": best.params,
        "best_epoch": best.user_attrs.get("epoch"),
        "best_scores": best.user_attrs.get("scores"),
        "trials": {"complete": len(complete), "failed": len(failed)},
        "seeds": list(tuning_seeds(base)),
        "budget": {"trials": _finished(study), "seeds": len(tuning_seeds(base)), "keys": list(space)},
        "space": {k: p.describe() for k, p in space.items()},
        "all": [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params} for t in study.get_trials(deepcopy=False)],
    }
    atomic.write_text(out / "best.json", json.dumps(summary, indent=2))
    plots = tune_plots(study, out, len(complete), len(space))
    page = tune_page(study, base.name, variant, base.eval.monitor, tuning_seeds(base), list(space), plots,
                     complete=len(complete), failed=len(failed))
    atomic.write_text(out / "tune.md", page)
    return out

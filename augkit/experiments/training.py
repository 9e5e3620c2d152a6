"""Training and testing one run of an experiment: `fit` trains and reads the best validation
score (for selection, by ``augkit compare`` and each trial of ``augkit tune``); `evaluate_chosen`
tests a chosen run once on the test split, under both readings of unseen ids.

Every run directory gets the files of a normal run (``augkit train``): ``config.toml`` (so
``augkit train <run>/config.toml --resume`` continues it), ``metrics.json`` and ``report.md``
with its training time and best validation, written by `fit`; a chosen run's are rewritten with
its test metrics by `write_tested` (`augkit.train.report.write_run_report`). On resume a
finished run is only reloaded from them (`reload`), its checkpoint and history left as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch

from augkit import atomic
from augkit.data.dataset import RecDataset
from augkit.errors import AugkitError, ConfigError
from augkit.metrics import top_popular
from augkit.train import versions
from augkit.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint
from augkit.train.config import TrainConfig, config_to_dict, load_config
from augkit.train.evaluation import DECILE_PREFIX, Holdout, build_holdout, evaluate_model, item_slices
from augkit.train.logbook import HISTORY_NAME
from augkit.train.loop import TrainResult, prepare, train
from augkit.train.report import config_text, read_history, write_run_report
from augkit.train.run import ITEM_ID_FEATURE, RunParts, build_run
from augkit.train.rundir import OnExisting
from augkit.train.writing import writing

READINGS = ("default", "trained")
"""The two readings of items never seen in training (`eval.unseen_ids`)."""
COLD = "cold"
METRICS, CONFIG, REPORT = "metrics.json", "config.toml", "report.md"
"""A run's files, as ``augkit train`` names them."""
UNCHANGED_KEYS = ("progress", "device", "threads")
"""Config keys that may differ between a finished run and the comparison that reloads it."""
VALIDATION_KEYS = ("monitor", "score", "epoch", "step")


def fit(config: TrainConfig, dataset: RecDataset, *, on_existing: OnExisting = "refuse") -> dict[str, Any]:
    """Train `config` (its checkpoints and ``best.pt`` in its run directory, then its
    ``config.toml``, ``metrics.json`` and ``report.md``) and return its best validation:
    ``{"monitor", "score", "epoch", "step", "model": metrics, "seconds": training time,
    "reloaded": bool}``. The test split is not evaluated. ``"resume"`` reloads a finished run
    (`reload`: nothing is written), continues a run that has a checkpoint and trains one that
    has none afresh."""
    if on_existing == "resume":
        finished = reload(config)
        if finished is not None:
            return finished
        if not (config.run_dir / CHECKPOINT_NAME).exists():
            on_existing = "refuse"
    result = train(config, on_existing=on_existing, parts=build_run(config, dataset))
    if result.best is None or result.best["score"] is None:
        raise ConfigError(
            f"run {config.name!r} has no validation score for {config.eval.monitor!r} (is its slice empty?); "
            "compare selects on validation only"
        )
    validation = {key: result.best[key] for key in VALIDATION_KEYS} | {"model": result.best["metrics"]}
    _write_trained(config, result, validation)
    return validation | {"seconds": result.seconds, "reloaded": False}


def _training(result: TrainResult) -> dict[str, Any]:
    """The ``training`` entry of a run's ``metrics.json``, as ``augkit train`` writes it."""
    training = {"steps": result.steps, "seconds": result.seconds, "last_losses": result.last_losses,
                "epochs": len(result.history), "stopped_early": result.stopped_early}
    if result.ssl_vs_chance is not None:
        training["ssl_loss_vs_chance"] = result.ssl_vs_chance
    return training


def _write_trained(config: TrainConfig, result: TrainResult, validation: Mapping[str, Any]) -> None:
    """``config.toml``, ``metrics.json`` (training and validation; the test is not read) and a
    short ``report.md`` of a run that selection has not tested."""
    run_dir, found = config.run_dir, versions()
    report = {"training": _training(result), "validation": dict(validation), "versions": found}
    training = report["training"]
    page = [
        f"# Run `{config.name}`",
        "",
        f"A candidate of a comparison or study (`augkit compare`, `augkit tune`): steps {training['steps']} "
        f"({training['epochs']} epoch{'' if training['epochs'] == 1 else 's'}), training time {training['seconds']:.1f} s.",
        "",
        f"Best validation `{validation['monitor']}` = {validation['score']:.4f} at epoch {validation['epoch']} "
        "(`best.pt`). The test split is not read here: only the candidate each variant chooses on validation is "
        "tested, by the comparison, which then rewrites this report with the test metrics.",
        "",
    ]
    with writing(run_dir):
        atomic.write_text(run_dir / CONFIG, config_text(config, found))
        atomic.write_text(run_dir / METRICS, json.dumps(report, indent=2))
        atomic.write_text(run_dir / REPORT, "\n".join(page))


def reload(config: TrainConfig) -> dict[str, Any] | None:
    """`fit`'s result for a run of `config` that finished earlier, read from its
    ``metrics.json`` (``"reloaded": True``), or None: no such file, or its ``config.toml`` is not
    `config` (but for `UNCHANGED_KEYS`; more epochs, say: then the run continues)."""
    run_dir = config.run_dir
    try:
        report = json.loads((run_dir / METRICS).read_text(encoding="utf-8"))
        saved = load_config(run_dir / CONFIG)
    except (OSError, ValueError, AugkitError):
        return None
    validation = report.get("validation") if isinstance(report, dict) else None
    if not validation or not _same_run(saved, config):
        return None
    return {key: validation[key] for key in (*VALIDATION_KEYS, "model")} | {
        "seconds": report.get("training", {}).get("seconds"), "reloaded": True}


def _same_run(a: TrainConfig, b: TrainConfig) -> bool:
    first, second = config_to_dict(a), config_to_dict(b)
    for key in UNCHANGED_KEYS:
        first.pop(key, None)
        second.pop(key, None)
    return first == second


def tested_parts(config: TrainConfig, dataset: RecDataset) -> RunParts:
    """The parts of `config`'s run with its trained towers (``best.pt``, else ``checkpoint.pt``)
    on its device, for testing. Built without the SSL task: the towers do not depend on it, and
    its augmentation (CFM's corpus statistics) is not needed to test."""
    towers_only = attrs.evolve(config, ssl=attrs.evolve(config.ssl, alpha=0.0))
    parts = prepare(towers_only, build_run(towers_only, dataset))
    path = config.run_dir / BEST_NAME
    if not path.exists():
        path = config.run_dir / CHECKPOINT_NAME
    parts.model.load_state_dict(load_checkpoint(path, required=("model",))["model"])
    return attrs.evolve(parts, config=config)


def evaluate_chosen(
    config: TrainConfig, dataset: RecDataset, *, readings: Sequence[str] = READINGS,
    popular: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The trained run of `config` on the test split, once per reading of unseen ids:
    ``{reading: {"model", "top_popular"}, "norms": {...}}``, where ``norms`` holds the mean norm
    of the ``item_id`` embedding rows per popularity decile and of the cold items (where the item
    tower has an ``item_id`` feature). The test users are gathered once for both readings, and
    TopPopular (which depends on the seed's split only) is computed once, or taken from
    `popular` (`popular_on_test` of a run with the same seed)."""
    parts = tested_parts(config, dataset)
    holdout = build_holdout(parts, on="test")
    popular = dict(popular) if popular is not None else popular_on_test(parts, holdout)
    out: dict[str, Any] = {}
    for reading in readings:
        evaluated = attrs.evolve(parts, config=attrs.evolve(parts.config, eval=attrs.evolve(parts.config.eval, unseen_ids=reading)))
        out[reading] = {"model": evaluate_model(evaluated, holdout).as_dict(), "top_popular": popular}
    out["norms"] = _norms(parts)
    return out


def popular_on_test(parts: RunParts, holdout: Holdout) -> dict[str, Any]:
    """TopPopular's test metrics on `holdout` (`augkit.metrics.top_popular`), as a dict."""
    device = parts.train_counts.device
    holdout = holdout.to(device)
    return top_popular(parts.train_counts, holdout.target, holdout.known, ks=parts.config.eval.ks,
                       slices=holdout.slices).as_dict()


def _norms(parts: RunParts) -> dict[str, float | None]:
    norms: dict[str, float | None] = {}
    if ITEM_ID_FEATURE not in parts.dataset.items.schema:
        return norms
    with torch.no_grad():
        weight = parts.model["item"].input_layer.table(ITEM_ID_FEATURE).weight
        size = min(weight.shape[0], parts.dataset.num_items)
        row_norms = weight[:size].norm(dim=1).cpu()
    slices = item_slices(parts.train_counts.cpu(), parts.config.eval.head_fraction)
    for name in [f"{DECILE_PREFIX}{d}" for d in range(10)] + [COLD]:
        mask = slices[name][:size]
        norms[name] = float(row_norms[mask].mean()) if bool(mask.any()) else None
    return norms


def write_tested(config: TrainConfig, tested: Mapping[str, Any], main_reading: str, *, comparison: str) -> None:
    """Rewrite a chosen run's files as ``augkit train`` writes them (`write_run_report`: its
    config, ``metrics.json`` with the test metrics of `main_reading`, ``report.md`` and plots),
    keeping its training and validation entries; every reading's test metrics under
    ``"compare"`` with the name of the `comparison`."""
    run_dir = config.run_dir
    with writing(run_dir / METRICS):
        earlier = json.loads((run_dir / METRICS).read_text(encoding="utf-8"))
    report = {
        "training": earlier["training"], "validation": earlier["validation"],
        "model": tested[main_reading]["model"], "top_popular": tested[main_reading]["top_popular"],
        "versions": earlier.get("versions") or versions(),
        "compare": {"comparison": comparison, "main_reading": main_reading,
                    "readings": {r: tested[r]["model"] for r in READINGS if r in tested}},
    }
    write_run_report(run_dir, config, report, history=read_history(run_dir / HISTORY_NAME))

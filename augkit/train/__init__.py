"""The reference trainer: ``run_training(config)`` trains, validates, tests and writes a report."""

from __future__ import annotations

import importlib.metadata
import logging
import time
from pathlib import Path
from typing import Any

import attrs
import torch

from augkit import distributed
from augkit.registry import get_registry
from augkit.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint
from augkit.train.config import TrainConfig, apply_overrides, config_from_dict, dump_config, load_config
from augkit.train.evaluation import evaluate_run
from augkit.train.loop import TrainResult, joined, prepare, run_directory, run_loop, train
from augkit.train.report import write_run_report
from augkit.train.run import RunParts, build_run
from augkit.train.rundir import OnExisting, check_on_existing

__all__ = [
    "OnExisting",
    "RunParts",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "build_run",
    "config_from_dict",
    "dump_config",
    "evaluate_run",
    "load_config",
    "run_training",
    "train",
    "versions",
]

log = logging.getLogger("augkit.train")


def versions() -> dict[str, str]:
    """augkit's, torch's and every plugin distribution's version, for the run's records."""
    out = {"augkit": importlib.metadata.version("augkit"), "torch": torch.__version__}
    for registration in get_registry().registrations():
        out.setdefault(registration.distribution, registration.version)
    return out


def run_training(
    config: TrainConfig,
    *,
    on_existing: OnExisting = "refuse",
    parts: RunParts | None = None,
    allow_changed_data: bool = False,
) -> dict[str, Any]:
    """Train `config`, pick the best validation checkpoint, evaluate it once on the test split
    over the full corpus, write ``<output_dir>/<name>/`` and return the metrics (as in
    ``metrics.json``). `parts` reuses pieces built by `build_run`; `on_existing` as in
    `train` (``"refuse"``, ``"resume"`` or ``"overwrite"``); a resume checks that the data is
    what the run trained on, unless `allow_changed_data` (`augkit.train.identity`). Under
    torchrun, every process calls it; the first writes the run directory."""
    with joined(config):  # the trained towers are gone before the process group is left
        return _train_and_test(config, on_existing=on_existing, parts=parts, allow_changed_data=allow_changed_data)


def _train_and_test(
    config: TrainConfig,
    *,
    on_existing: OnExisting,
    parts: RunParts | None,
    baseline_of: str | None = None,
    allow_changed_data: bool = False,
) -> dict[str, Any]:
    check_on_existing(on_existing)
    started = time.perf_counter()
    parts = prepare(config, parts)
    data_seconds = time.perf_counter() - started
    with run_directory(parts.config.run_dir, on_existing=on_existing) as run_dir:
        result = run_loop(
            parts, run_dir, on_existing=on_existing, allow_changed_data=allow_changed_data, data_seconds=data_seconds
        )
        distributed.barrier()  # best.pt is written by the first process
        if result.best is not None:
            best = load_checkpoint(run_dir / BEST_NAME, required=("model",))
            parts.model.load_state_dict(best["model"])
        log.info("testing %s on the full corpus ...", "the best validation checkpoint" if result.best else "the last step")
        started = time.perf_counter()
        metrics = evaluate_run(parts, on="test")
        test_seconds = time.perf_counter() - started
        k = parts.config.eval.ks[0]
        log.info(
            "test: Recall@%d %.4f (TopPopular %.4f) in %.1f s", k, metrics["model"]["all"][f"recall@{k}"],
            metrics["top_popular"]["all"][f"recall@{k}"], test_seconds,
        )
        training = {
            "steps": result.steps,
            "seconds": result.seconds,
            "last_losses": result.last_losses,
            "epochs": len(result.history),
            "stopped_early": result.stopped_early,
        }
        if result.ssl_vs_chance is not None:
            training["ssl_loss_vs_chance"] = result.ssl_vs_chance
        validation = None
        if result.best is not None:
            validation = {key: result.best[key] for key in ("monitor", "score", "epoch", "step")}
            validation["users"] = {
                "evaluated": result.best["metrics"]["all"]["n"], "of": len(torch.unique(parts.split.valid.users)),
            }
            validation["model"] = result.best["metrics"]
        timing = {"training_seconds": result.seconds, **result.timing, "test_seconds": test_seconds}
        report = {"training": training, "timing": timing, "validation": validation, **metrics, "versions": versions()}
        if parts.examples is not None:
            report["examples"] = parts.examples.summary()
        if baseline_of is not None:
            report["baseline_of"] = baseline_of
        write = distributed.rank() == 0
        ssl_warning = (result.ssl_vs_chance or {}).get("warning")
        warnings = (*parts.dataset.warnings, *([ssl_warning] if ssl_warning else []))
        if write:  # the model's report first: a run stopped in its baseline keeps it
            write_run_report(run_dir, parts.config, report, history=result.history, warnings=warnings)
        if parts.config.eval.baseline and parts.config.ssl.alpha == 0:
            log.info("eval.baseline: this run is the baseline (ssl.alpha = 0), so none is trained beside it")
        elif parts.config.eval.baseline:
            report["baseline"] = _baseline_beside(
                parts, run_dir, on_existing=on_existing, allow_changed_data=allow_changed_data
            )
            if write:
                write_run_report(run_dir, parts.config, report, history=result.history, warnings=warnings)
    return report


BASELINE_RUN = "baseline"
"""The sub-directory of a run with ``eval.baseline`` that holds the baseline's run."""


def baseline_config(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """`config` without the SSL task (``ssl.alpha = 0``), run in ``<run_dir>/baseline/``."""
    return attrs.evolve(
        config, name=BASELINE_RUN, output_dir=str(run_dir), ssl=attrs.evolve(config.ssl, alpha=0.0),
        eval=attrs.evolve(config.eval, baseline=False),
    )


def _baseline_beside(
    parts: RunParts, run_dir: Path, *, on_existing: OnExisting, allow_changed_data: bool
) -> dict[str, Any]:
    """Train and test the baseline of `parts`' config on the same data (see
    `TrainConfig.eval.baseline`); its report's training, validation and test metrics.
    ``"resume"`` continues its checkpoint when it has one; otherwise it trains afresh, replacing
    what a run stopped before the baseline finished left (the directory is the run's own)."""
    config = baseline_config(parts.config, run_dir)
    log.info("training the baseline (ssl.alpha = 0) beside the model, in %s", config.run_dir)
    continues = on_existing == "resume" and (config.run_dir / CHECKPOINT_NAME).exists()
    report = _train_and_test(
        config, on_existing="resume" if continues else "overwrite", parts=build_run(config, parts.dataset),
        baseline_of=parts.config.name, allow_changed_data=allow_changed_data,
    )
    return {"run": BASELINE_RUN, **{key: report[key] for key in ("training", "validation", "model")}}

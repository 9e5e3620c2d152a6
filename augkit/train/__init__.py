"""The reference trainer: ``run_training(config)`` trains, evaluates and writes a report."""

from __future__ import annotations

from typing import Any

from augkit.train.config import TrainConfig, config_from_dict, dump_config, load_config
from augkit.train.evaluation import evaluate_run
from augkit.train.loop import TrainResult, train
from augkit.train.report import write_run_report
from augkit.train.run import RunParts, build_run

__all__ = [
    "RunParts",
    "TrainConfig",
    "TrainResult",
    "build_run",
    "config_from_dict",
    "dump_config",
    "evaluate_run",
    "load_config",
    "run_training",
    "train",
]


def run_training(
    config: TrainConfig, *, resume: bool = False, parts: RunParts | None = None
) -> dict[str, Any]:
    """Train `config`, evaluate on the full corpus, write ``<output_dir>/<name>/`` and return
    the metrics (as in ``metrics.json``). `parts` reuses pieces built by `build_run`."""
    result = train(config, resume=resume, parts=parts)
    metrics = evaluate_run(result.parts)
    training = {"steps": result.steps, "seconds": result.seconds, "last_losses": result.last_losses}
    write_run_report(
        config.run_dir, dump_config(result.parts.config), metrics, ks=config.eval.ks, name=config.name, training=training
    )
    return {"training": training, **metrics}

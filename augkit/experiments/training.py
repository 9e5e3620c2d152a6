"""Training and testing one run of an experiment: `fit` trains and reads the best validation
score (for selection, by ``augkit compare`` and each trial of ``augkit tune``); `evaluate_chosen`
tests a chosen run once on the test split, under both readings of unseen ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import torch

from augkit.data.dataset import RecDataset
from augkit.errors import ConfigError
from augkit.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint
from augkit.train.config import TrainConfig
from augkit.train.evaluation import DECILE_PREFIX, evaluate_run, item_slices
from augkit.train.loop import prepare, train
from augkit.train.run import ITEM_ID_FEATURE, build_run
from augkit.train.rundir import OnExisting

READINGS = ("default", "trained")
"""The two readings of items never seen in training (`eval.unseen_ids`)."""
COLD = "cold"


def fit(config: TrainConfig, dataset: RecDataset, *, on_existing: OnExisting = "refuse") -> dict[str, Any]:
    """Train `config` (its checkpoints and ``best.pt`` in its run directory) and return its best
    validation: ``{"monitor", "score", "epoch", "step", "model": metrics}``. The test split is
    not evaluated. ``"resume"`` continues a run that has a checkpoint and trains one that has
    none afresh."""
    if on_existing == "resume" and not (config.run_dir / CHECKPOINT_NAME).exists():
        on_existing = "refuse"
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

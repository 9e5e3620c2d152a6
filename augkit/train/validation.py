"""Validation while training: full-corpus metrics on the validation split after an epoch,
flattened for the history and scored by ``eval.monitor``."""

from __future__ import annotations

import logging
from typing import Any

import attrs

from augkit.train.evaluation import Holdout, build_holdout, evaluate_model
from augkit.train.run import RunParts, generator_for

log = logging.getLogger("augkit.train")

STREAM_VALID = 5
"""The stream of the validation users' draw (``eval.max_users``), made once per session."""
VALID_SLICES = ("all", "head", "tail", "cold")


@attrs.frozen(eq=False)
class Validation:
    """One validation of the model."""

    metrics: dict[str, dict[str, Any]]
    """``{slice: {"recall@K", "ndcg@K", "n", "n_interactions"}}`` (`RetrievalMetrics.as_dict`)."""
    flat: dict[str, Any]
    """``{"valid/<slice>/<recall or ndcg>@<k>": value}`` of the slices all, head, tail, cold:
    the validation columns of ``history.csv``."""
    score: float | None
    """The value of ``eval.monitor``; None when its slice has no validation interaction."""


class Validator:
    """Validates `parts`' model; the validation users are drawn once, from the run's seed."""

    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self._holdout: Holdout | None = None

    def __call__(self, epoch: int) -> Validation:
        """The validation after epoch `epoch` (from 1; for the log)."""
        config = self.parts.config
        log.info("epoch %d: validating ...", epoch)
        if self._holdout is None:
            generator = generator_for(config.seed, STREAM_VALID, 0)
            self._holdout = build_holdout(self.parts, on="valid", max_users=config.eval.max_users or None, generator=generator)
        metrics = evaluate_model(self.parts, self._holdout).as_dict()
        flat = {
            f"valid/{s}/{m}@{k}": metrics[s][f"{m}@{k}"]
            for s in VALID_SLICES
            for m in ("recall", "ndcg")
            for k in config.eval.ks
        }
        _, slice_, key = config.eval.monitor.split("/")
        return Validation(metrics, flat, metrics[slice_][key])

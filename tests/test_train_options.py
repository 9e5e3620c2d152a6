"""Past the paper, as trainer options: mixed negatives, corrected logQ, occurrence-counting
streaming estimate; each trains, and each changes what the main loss sees."""

from __future__ import annotations

import math

import pytest
import torch

from augkit.train import build_run, config_from_dict
from augkit.train.step import train_step
from augkit.train.run import STREAM_STEP, generator_for


def parts_with(**main):
    return build_run(config_from_dict({
        "progress": False, "ssl": {"alpha": 0.0},
        "main": {"batch_size": 256, **main},
        "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
    }))


def main_loss(parts, step: int = 0) -> float:
    rows = torch.arange(step * 256, (step + 1) * 256)
    return float(train_step(parts, rows, generator_for(0, STREAM_STEP, step)).main.detach())


@pytest.mark.parametrize(
    "options",
    [
        {"uniform_negatives": 128},
        {"uniform_negatives": 128, "logq": "streaming"},
        {"uniform_negatives": 64, "logq": "none"},
        {"logq_correction": "corrected"},
        {"logq_correction": "corrected", "logq": {"name": "streaming", "params": {"count": "occurrences"}}},
        {"logq": {"name": "streaming", "params": {"count": "occurrences"}}},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_each_option_changes_the_main_loss_and_stays_finite(options):
    plain = main_loss(parts_with(**{k: v["name"] if isinstance(v, dict) else v for k, v in options.items() if k == "logq"}))
    changed = main_loss(parts_with(**options))
    assert math.isfinite(changed) and changed != plain


def test_mixed_negatives_are_more_columns_of_the_softmax(monkeypatch):
    parts = parts_with(uniform_negatives=100)
    seen = {}
    original = type(parts.main_loss).forward

    def spy(self, query, item, *args, **kwargs):
        seen.update(kwargs)
        return original(self, query, item, *args, **kwargs)

    monkeypatch.setattr(type(parts.main_loss), "forward", spy)
    main_loss(parts)
    assert seen["negatives"].shape == (100, 8) and seen["negative_ids"].shape == (100,)
    assert seen["negative_log_q"].shape == (100,) and bool(torch.isfinite(seen["negative_log_q"]).all())

"""Case 3: one optimiser step of the reference two-tower trainer (`augkit.train`) on its
synthetic data set, with the SSL task (alpha = 1, the default CFM + dropout(0.3) views) and
without it (alpha = 0), and the share of the SSL step spent in the augmentation.

A step is what `augkit.train.train`'s loop does per batch (`Step`, shared with the scale case):
`train_step` (towers, batch softmax with logQ, and for SSL the two views, the item tower on
both and InfoNCE), backward and a step of the trainer's optimizer (dense Adam by default). The augmentation is timed alone on an SSL batch drawn the trainer's way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import attrs
import torch

from augkit.data.synthetic import make_synthetic
from augkit.random import generator_for
from augkit.train import RunParts, build_run, config_from_dict
from augkit.train.backend import build_run_optimizer
from augkit.train.optimizers import FusedTablesOptimizer, SparseTablesOptimizer
from augkit.train.run import STREAM_EPOCH, STREAM_STEP
from augkit.train.step import train_step
from benchmarks.profiles import TARGET_TRAIN_BATCH, Profile
from benchmarks.report import CaseResult, Series, Target, profile_evidence, ratio, seconds
from benchmarks.timing import time_side_by_side

SHARE_TARGET = 0.05


@attrs.define(eq=False)
class Step:
    """One training step of `parts` as `augkit.train.loop.Loop` takes it: the next
    ``main.batch_size`` rows of the first epoch's permutation of the training rows (wrapping
    around at its end), `train_step` with the step's generator, zero_grad, backward and a step
    of the run's optimizer (`augkit.train.backend.build_run_optimizer`: from ``[optim]``, fused
    tables on TorchRec)."""

    parts: RunParts
    order: torch.Tensor
    optimizer: torch.optim.Optimizer | SparseTablesOptimizer | FusedTablesOptimizer
    step: int = 0

    @classmethod
    def build(cls, parts: RunParts) -> Step:
        config = parts.config
        order = torch.randperm(len(parts.split.train), generator=generator_for(config.seed, STREAM_EPOCH, 0))
        optimizer = build_run_optimizer(parts)
        return cls(parts, order.to(parts.queries.device), optimizer)

    def __call__(self) -> None:
        batch = self.parts.config.main.batch_size
        start = self.step * batch % max(1, len(self.order) - batch + 1)
        generator = generator_for(self.parts.config.seed, STREAM_STEP, self.step)
        losses = train_step(self.parts, self.order[start : start + batch], generator, step=self.step)
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.optimizer.step()
        self.step += 1


def _parts(batch_size: int, alpha: float, dataset: object) -> RunParts:
    config = config_from_dict(
        {
            "progress": False,
            "main": {"batch_size": batch_size},
            "ssl": {"alpha": alpha, "batch_size": batch_size},
        }
    )
    return build_run(config, dataset)  # type: ignore[arg-type]


def run(profile: Profile, log: Callable[[str], None]) -> CaseResult:
    """Measure case 3 at every batch size of `profile`."""
    dataset = make_synthetic(seed=0)
    records, rows, measured = [], [], {}
    for batch_size in profile.train_batch_sizes:
        log(f"training: batch {batch_size}, SSL batch {batch_size}")
        ssl, baseline = _parts(batch_size, 1.0, dataset), _parts(batch_size, 0.0, dataset)
        generator = torch.Generator().manual_seed(3)
        ssl_items = torch.randperm(dataset.num_items, generator=generator)[:batch_size]
        ssl_batch = dataset.items.select(ssl_items)
        augment = functools.partial(ssl.augmentation, ssl_batch, generator=generator)
        step = Step.build(ssl)
        timings = time_side_by_side(
            {"step_ssl": step, "step_no_ssl": Step.build(baseline), "augmentation": augment},
            repeats=profile.train_repeats,
            min_sample_s=profile.min_sample_s,
            warmup=profile.warmup,
        )
        median = {name: t.median for name, t in timings.items()}
        share = median["augmentation"] / median["step_ssl"]
        measured[batch_size] = (share, median, step)
        records.append(
            {
                "batch_size": batch_size,
                "ssl_batch_size": int(ssl_items.numel()),
                "items": dataset.num_items,
                "timings": {name: t.as_dict() for name, t in timings.items()},
                "augmentation_share": share,
                "ssl_over_no_ssl": median["step_ssl"] / median["step_no_ssl"],
            }
        )
        rows.append(
            (
                f"{batch_size} / {int(ssl_items.numel())}",
                seconds(median["step_no_ssl"]),
                seconds(median["step_ssl"]),
                ratio(median["step_ssl"] / median["step_no_ssl"]),
                seconds(median["augmentation"]),
                f"{share:.1%}",
            )
        )
    at = TARGET_TRAIN_BATCH if TARGET_TRAIN_BATCH in measured else max(measured)
    share, _, step = measured[at]
    return CaseResult(
        name="training",
        title="3. Training step: reference two-tower model on the synthetic data (3,000 items)",
        headers=(
            "batch / SSL batch",
            "step, no SSL",
            "step, SSL",
            "SSL / no SSL",
            "augmentation",
            "aug share",
        ),
        rows=rows,
        records=records,
        targets=[
            Target(
                name="training_augmentation_share",
                goal=f"augmentation <= {SHARE_TARGET:.0%} of an SSL step at batch {TARGET_TRAIN_BATCH}, "
                f"SSL batch {TARGET_TRAIN_BATCH}",
                value=share,
                threshold=SHARE_TARGET,
                higher_is_better=False,
                measured_at=f"batch {at}",
                indicative=at != TARGET_TRAIN_BATCH,
            ).with_evidence(profile_evidence(step, profile.evidence_calls))
        ],
        notes=[
            (
                "step = train_step + backward + the trainer's optimizer (dense Adam), as in augkit.train.train; default model "
                "(embedding 32, hidden 128, output 64), CFM granularity 'batch' (the trainer's default)"
            ),
            "aug share = augmentation alone / SSL step",
        ],
        series=[
            Series.of(f"training {name}", "batch", {b: measured[b][1][name] for b in measured})
            for name in ("step_no_ssl", "step_ssl", "augmentation")
        ],
    )

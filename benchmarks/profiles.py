"""Problem sizes and repeat counts of the three profiles: tiny (smoke test), quick, full."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class ScaleEpoch:
    """One epoch through the trainer: synthetic data of `items`, `users` x `events_per_user`
    clicks, main batch `batch`, validation on `validation_users` seeded users."""

    items: int
    users: int
    events_per_user: int
    batch: int
    validation_users: int


@attrs.frozen(kw_only=True)
class ScaleSizes:
    """Sizes of the scale case (`benchmarks.scale`).

    * items: the catalog sizes of the step; `users` and `events_per_user` are the same at every
      size, so that only the catalog grows.
    * batch: the main batch of a step (the SSL task keeps the trainer's default).
    * steps: steps timed per candidate and size after one warm-up step; slow_steps: for a
      candidate whose warm-up step takes over a second (dense Adam at millions of items).
    * evidence_steps: steps cProfiled at the largest size, for the sparse candidates' targets.
    * epoch: the epoch run through the trainer, or None.
    """

    items: tuple[int, ...]
    users: int
    events_per_user: int
    batch: int
    steps: int
    slow_steps: int
    evidence_steps: int
    epoch: ScaleEpoch | None


@attrs.frozen(kw_only=True)
class Profile:
    """Sizes of every case. Targets are defined at the sizes of the full profile; smaller
    profiles evaluate them at their largest size and mark them indicative.

    * augmentation: batch sizes B, the corpus the CFM matrix is computed from.
    * mutual information: corpus sizes N.
    * training: (main batch = SSL batch) sizes of one step.
    * evaluation: (queries, items) where the naive and the chunked evaluation both run, and
      larger sizes where only the chunked one runs (the naive one would not fit in memory).
    * scale: catalog sizes of the trainer's step, and the epoch (`ScaleSizes`).
    * min_sample_s, warmup: shortest timed sample, untimed rounds before timing.
    * evidence_calls: how many calls cProfile records for a missed target's evidence.
    """

    name: str
    batch_sizes: tuple[int, ...]
    cfm_corpus: int
    augmentation_repeats: int
    mi_items: tuple[int, ...]
    mi_repeats: int
    train_batch_sizes: tuple[int, ...]
    train_repeats: int
    eval_side_by_side: tuple[int, int]
    eval_chunked_only: tuple[tuple[int, int], ...]
    eval_repeats: int
    eval_large_repeats: int
    scale: ScaleSizes
    min_sample_s: float
    warmup: int
    evidence_calls: int


TARGET_BATCH = 4096
TARGET_MI_ITEMS = 1_000_000
TARGET_TRAIN_BATCH = 1024
TARGET_EVAL = (10_000, 1_000_000)
TARGET_SCALE_ITEMS = (10_000, 10_000_000)
"""The sparse step at the larger catalog is held against the step at the smaller."""
TARGET_EPOCH = ScaleEpoch(
    items=1_000_000, users=290_000, events_per_user=100, batch=2048, validation_users=1_000
)
"""About 2e7 training events (of 2.9e7 clicks: the split holds out test and validation events and
cold items, 30%). Batch 2048: on 2 CPU cores a step at 4096 costs about twice as much per event
(the batch softmax's B x B scores, 64 MiB a matrix at 4096, outgrow the caches)."""

PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        batch_sizes=(64, 128),
        cfm_corpus=500,
        augmentation_repeats=1,
        mi_items=(1_000,),
        mi_repeats=1,
        train_batch_sizes=(64,),
        train_repeats=1,
        eval_side_by_side=(50, 2_000),
        eval_chunked_only=((50, 4_000),),
        eval_repeats=1,
        eval_large_repeats=1,
        scale=ScaleSizes(
            items=(1_000, 2_000),
            users=200,
            events_per_user=10,
            batch=64,
            steps=2,
            slow_steps=1,
            evidence_steps=1,
            epoch=ScaleEpoch(items=1_000, users=200, events_per_user=10, batch=64, validation_users=50),
        ),
        min_sample_s=0.0,
        warmup=0,
        evidence_calls=2,
    ),
    "quick": Profile(
        name="quick",
        batch_sizes=(1024, 4096),
        cfm_corpus=20_000,
        augmentation_repeats=5,
        mi_items=(100_000,),
        mi_repeats=3,
        train_batch_sizes=(1024,),
        train_repeats=5,
        eval_side_by_side=(1_000, 100_000),
        eval_chunked_only=((1_000, 1_000_000),),
        eval_repeats=3,
        eval_large_repeats=1,
        scale=ScaleSizes(
            items=(10_000, 100_000, 1_000_000),
            users=20_000,
            events_per_user=50,
            batch=2048,
            steps=3,
            slow_steps=2,
            evidence_steps=3,
            epoch=None,
        ),
        min_sample_s=0.02,
        warmup=1,
        evidence_calls=20,
    ),
    "full": Profile(
        name="full",
        batch_sizes=(1024, 4096, 16384),
        cfm_corpus=20_000,
        augmentation_repeats=7,
        mi_items=(100_000, 1_000_000),
        mi_repeats=3,
        train_batch_sizes=(256, 1024, 2048),
        train_repeats=7,
        eval_side_by_side=(10_000, 100_000),
        eval_chunked_only=((10_000, 1_000_000),),
        eval_repeats=3,
        eval_large_repeats=1,
        scale=ScaleSizes(
            items=(10_000, 100_000, 1_000_000, 10_000_000),
            users=20_000,
            events_per_user=50,
            batch=2048,
            steps=10,
            slow_steps=3,
            evidence_steps=5,
            epoch=TARGET_EPOCH,
        ),
        min_sample_s=0.05,
        warmup=1,
        evidence_calls=50,
    ),
}

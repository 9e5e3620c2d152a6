"""Case 1: ``TwoViews(pair=cfm, each=[dropout(0.3)])`` against a per-example Python version
of the same augmentation, and against the floor of cloning the batch's tensors once.

The per-example version is written the way public SSL recommender code does it: a loop over
examples that picks the features to mask from the CFM table, loops over each bag's values
to drop them, copies what survives into new per-example lists, and collates the lists into
padded tensors. Its randomness comes from a seeded `random.Random` (per-value draws from
torch would only make it slower). Both sides draw CFM seeds per example.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch

from augkit import Categorical, FeatureBatch, FeatureSchema, MultiCategorical, TwoViews
from augkit_cfm import CorrelatedFeatureMasking, compute_mutual_information
from augkit_dropout import ValueDropout
from benchmarks.data import augmentation_items
from benchmarks.profiles import TARGET_BATCH, Profile
from benchmarks.report import CaseResult, Series, Target, profile_evidence, ratio, seconds
from benchmarks.timing import time_side_by_side

RATE = 0.3
SPEEDUP_TARGET = 50.0
FLOOR_TARGET = 10.0
AGREEMENT = 0.05
"""Largest difference allowed between augkit's and the reference's view statistics."""

Row = dict[str, Any]


@attrs.frozen
class PerExampleTwoViews:
    """The reference: CFM (one seed per example) then value dropout, one example at a time.

    ``masked[s]`` holds the feature names view 1 and view 2 mask for seed s. Output: the two
    views as tensors in the format of `FeatureBatch.to_tensors`.
    """

    schema: FeatureSchema
    masked: tuple[tuple[frozenset[str], frozenset[str]], ...]
    rate: float

    @classmethod
    def like(cls, cfm: CorrelatedFeatureMasking, schema: FeatureSchema, rate: float) -> PerExampleTwoViews:
        every = frozenset(cfm.mi.names)
        sets = []
        for seed in cfm.mi.names:
            first = frozenset(cfm.masked_set(seed))
            sets.append((first, every - first))
        return cls(schema, tuple(sets), rate)

    def __call__(self, rows: Sequence[Row], rng: random.Random) -> tuple[dict[str, torch.Tensor], ...]:
        views: tuple[list[Row], list[Row]] = ([], [])
        for row in rows:
            seed = rng.randrange(len(self.masked))
            for examples, masked in zip(views, self.masked[seed]):
                example: Row = {}
                for spec in self.schema:
                    value = row[spec.name]
                    if isinstance(spec, Categorical):
                        example[spec.name] = spec.default_id if spec.name in masked else value
                    elif isinstance(spec, MultiCategorical):
                        if spec.name in masked or not value:
                            example[spec.name] = [spec.default_id]
                            continue
                        kept = []
                        for v in value:
                            if rng.random() >= self.rate:
                                kept.append(v)
                        if not kept:
                            kept.append(rng.choice(value))
                        example[spec.name] = kept
                    else:
                        example[spec.name] = value.clone()
                examples.append(example)
        return self._collate(views[0]), self._collate(views[1])

    def _collate(self, examples: list[Row]) -> dict[str, torch.Tensor]:
        out = {}
        for spec in self.schema:
            column = [example[spec.name] for example in examples]
            if isinstance(spec, Categorical):
                out[spec.name] = torch.tensor(column, dtype=torch.long)
            elif isinstance(spec, MultiCategorical):
                padded = [bag + [spec.padding_id] * (spec.max_len - len(bag)) for bag in column]
                out[spec.name] = torch.tensor(padded, dtype=torch.long)
            else:
                out[spec.name] = torch.stack(column)
        return out


def per_example_rows(batch: FeatureBatch) -> list[Row]:
    """The batch as a dataset of per-example records: ints, lists of kept ids (empty for a
    missing bag) and one dense tensor per example."""
    columns: dict[str, list[Any]] = {}
    for spec in batch.schema:
        value = batch.values[spec.name]
        if isinstance(spec, Categorical):
            columns[spec.name] = value.tolist()
        elif isinstance(spec, MultiCategorical):
            kept = batch.kept[spec.name] & batch.is_present(spec.name)[:, None]
            columns[spec.name] = [
                [v for v, k in zip(ids, keep) if k] for ids, keep in zip(value.tolist(), kept.tolist())
            ]
        else:
            columns[spec.name] = [row.clone() for row in value]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def view_statistics(views: Sequence[dict[str, torch.Tensor]], batch: FeatureBatch) -> dict[str, float]:
    """Of the views (in `to_tensors` format) of `batch`: the fraction of (example, categorical
    or bag feature) cells that read as the default id, and the fraction of the input's bag
    values that survive."""
    defaults, cells, kept = 0, 0, 0
    for view in views:
        for spec in batch.schema:
            ids = view[spec.name]
            if isinstance(spec, Categorical):
                defaults += int((ids == spec.default_id).sum())
            elif isinstance(spec, MultiCategorical):
                defaults += int((ids[:, 0] == spec.default_id).sum())
                kept += int((ids < spec.num_values).sum())
            else:
                continue
            cells += ids.shape[0]
    given = sum(int((batch.kept[n] & batch.is_present(n)[:, None]).sum()) for n in batch.schema.multi_valued)
    return {"default_fraction": defaults / cells, "kept_value_fraction": kept / (len(views) * given)}


def _check_agreement(augkit: dict[str, float], reference: dict[str, float], batch_size: int) -> None:
    for key, value in augkit.items():
        if abs(value - reference[key]) > AGREEMENT:
            raise RuntimeError(
                f"augmentation case, B={batch_size}: the per-example reference does not implement "
                f"the same augmentation: {key} is {value:.3f} for augkit but {reference[key]:.3f} "
                f"for the reference (allowed difference {AGREEMENT})"
            )


def clone_floor(batch: FeatureBatch) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    """Clone every tensor of `batch` once: the least any augmentation that copies costs."""
    return (
        {name: value.clone() for name, value in batch.values.items()},
        batch.present.clone(),
        {name: kept.clone() for name, kept in batch.kept.items()},
    )


def run(profile: Profile, log: Callable[[str], None]) -> CaseResult:
    """Measure case 1 at every batch size of `profile` (after checking that both sides
    implement the same augmentation, `view_statistics`)."""
    generator = torch.Generator().manual_seed(0)
    corpus = augmentation_items(profile.cfm_corpus, generator)
    cfm = CorrelatedFeatureMasking(mi=compute_mutual_information(corpus), granularity="example")
    two_views = TwoViews(pair=cfm, each=[ValueDropout(rate=RATE)])
    reference = PerExampleTwoViews.like(cfm, corpus.schema, RATE)

    records, rows, timed = [], [], {}
    for batch_size in profile.batch_sizes:
        log(f"augmentation: B={batch_size}")
        batch = augmentation_items(batch_size, generator)
        examples = per_example_rows(batch)
        views_generator = torch.Generator().manual_seed(1)
        rng = random.Random(1)
        checks = {
            "augkit": view_statistics(
                [v.to_tensors() for v in two_views(batch, generator=views_generator)], batch
            ),
            "per_example": view_statistics(reference(examples, rng), batch),
        }
        _check_agreement(checks["augkit"], checks["per_example"], batch_size)
        augkit = functools.partial(two_views, batch, generator=views_generator)
        candidates: dict[str, Callable[[], object]] = {
            "augkit": augkit,
            "augkit_to_tensors": lambda augkit=augkit: [v.to_tensors() for v in augkit()],
            "per_example": functools.partial(reference, examples, rng),
            "clone_floor": functools.partial(clone_floor, batch),
        }
        timings = time_side_by_side(
            candidates,
            repeats=profile.augmentation_repeats,
            min_sample_s=profile.min_sample_s,
            warmup=profile.warmup,
        )
        median = {name: t.median for name, t in timings.items()}
        speedup = median["per_example"] / median["augkit"]
        over_floor = median["augkit"] / median["clone_floor"]
        timed[batch_size] = (speedup, over_floor, augkit, median)
        records.append(
            {
                "batch_size": batch_size,
                "timings": {name: t.as_dict() for name, t in timings.items()},
                "speedup_vs_per_example": speedup,
                "augkit_over_clone_floor": over_floor,
                "view_statistics": checks,
            }
        )
        rows.append(
            (
                str(batch_size),
                seconds(median["augkit"]),
                seconds(median["augkit_to_tensors"]),
                seconds(median["per_example"]),
                seconds(median["clone_floor"]),
                ratio(speedup),
                ratio(over_floor),
                f"{max(t.spread for t in timings.values()):.0%}",
            )
        )

    at = TARGET_BATCH if TARGET_BATCH in timed else max(timed)
    speedup, over_floor, augkit_call, _ = timed[at]
    evidence = profile_evidence(augkit_call, profile.evidence_calls)
    targets = [
        Target(
            name="augmentation_vs_per_example",
            goal=f">= {SPEEDUP_TARGET:g}x faster than per-example Python at B={TARGET_BATCH}",
            value=speedup,
            threshold=SPEEDUP_TARGET,
            higher_is_better=True,
            measured_at=f"B={at}",
            indicative=at != TARGET_BATCH,
        ).with_evidence(evidence),
        Target(
            name="augmentation_vs_clone_floor",
            goal=f"within {FLOOR_TARGET:g}x of cloning the batch once at B={TARGET_BATCH}",
            value=over_floor,
            threshold=FLOOR_TARGET,
            higher_is_better=False,
            measured_at=f"B={at}",
            indicative=at != TARGET_BATCH,
        ).with_evidence(evidence),
    ]
    return CaseResult(
        name="augmentation",
        title="1. Augmentation: TwoViews(pair=cfm(granularity='example'), each=[dropout(0.3)])",
        headers=(
            "B",
            "augkit",
            "+to_tensors",
            "per-example",
            "clone floor",
            "speed-up",
            "vs floor",
            "spread",
        ),
        rows=rows,
        records=records,
        targets=targets,
        notes=[
            "medians of interleaved repeats; spread = (max - min) / median, worst candidate",
            "speed-up = per-example / augkit; vs floor = augkit / clone floor",
            (
                "+to_tensors: augkit plus materialising both views as id tensors (not needed by "
                "augkit's towers, shown for a like-for-like output)"
            ),
        ],
        series=[
            Series.of(f"augmentation {name}", "B", {b: timed[b][3][name] for b in timed})
            for name in ("augkit", "per_example", "clone_floor")
        ],
    )

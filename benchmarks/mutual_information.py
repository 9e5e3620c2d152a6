"""Case 2: augkit's mutual-information matrix against pairwise
`sklearn.metrics.mutual_info_score`, and adding one feature (`MutualInformation.extend`)
against recomputing the whole matrix.

The sklearn side is written as public CFM code does it: a double loop over feature pairs
calling ``mutual_info_score`` on two label columns (numpy arrays converted beforehand, so
sklearn is not charged for the conversion), diagonal included so both sides build the same
matrix. The multi-valued case (8 features plus a bag, which sklearn cannot count) is timed
for augkit alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from sklearn.metrics import mutual_info_score

from augkit import FeatureBatch
from augkit_cfm import compute_mutual_information
from benchmarks.data import BAG, item_table
from benchmarks.profiles import TARGET_MI_ITEMS, Profile
from benchmarks.report import CaseResult, Series, Target, profile_evidence, ratio, seconds
from benchmarks.timing import time_side_by_side

SPEEDUP_TARGET = 5.0
AGREEMENT = 1e-9
EXTEND_SLACK = 1.5
""""About 1/k": the extend target allows up to 1.5/k of a full recomputation."""


def sklearn_pairwise(labels: dict[str, np.ndarray]) -> np.ndarray:
    """The ``[k, k]`` MI matrix (nats) from one ``mutual_info_score`` per pair."""
    names = list(labels)
    matrix = np.zeros((len(names), len(names)))
    for i, a in enumerate(names):
        for j in range(i, len(names)):
            matrix[i, j] = matrix[j, i] = mutual_info_score(labels[a], labels[names[j]])
    return matrix


def _labels(corpus: FeatureBatch) -> dict[str, np.ndarray]:
    return {name: corpus.values[name].numpy() for name in corpus.schema.names}


def run(profile: Profile, log: Callable[[str], None]) -> CaseResult:
    """Measure case 2 at every corpus size of `profile`."""
    generator = torch.Generator().manual_seed(2)
    records, rows, at_size = [], [], {}
    for size in profile.mi_items:
        log(f"mutual information: N={size}")
        corpus = item_table(size, generator)
        names = corpus.schema.names
        k = len(names)
        base = compute_mutual_information(corpus, features=names[:-1])
        full = compute_mutual_information(corpus)
        difference = float(np.abs(full.matrix - sklearn_pairwise(_labels(corpus))).max())
        extended = base.extend(corpus, [names[-1]])
        if not np.allclose(extended.matrix, full.matrix, rtol=0, atol=1e-12):
            raise RuntimeError(f"mutual information, N={size}: extend differs from a full recomputation")
        bagged = item_table(size, generator, with_bag=True)
        bag_base = compute_mutual_information(bagged, features=names)
        augkit = functools.partial(compute_mutual_information, corpus)
        candidates = {
            "augkit": augkit,
            "sklearn_pairwise": functools.partial(sklearn_pairwise, _labels(corpus)),
            "extend_one": functools.partial(base.extend, corpus, [names[-1]]),
            "multi_valued_full": functools.partial(compute_mutual_information, bagged),
            "multi_valued_extend_bag": functools.partial(bag_base.extend, bagged, [BAG.name]),
        }
        timings = time_side_by_side(
            candidates, repeats=profile.mi_repeats, min_sample_s=profile.min_sample_s, warmup=profile.warmup
        )
        median = {name: t.median for name, t in timings.items()}
        speedup = median["sklearn_pairwise"] / median["augkit"]
        extend_share = median["extend_one"] / median["augkit"]
        at_size[size] = (speedup, extend_share, difference, augkit, median)
        records.append(
            {
                "items": size,
                "features": k,
                "added_feature": names[-1],
                "timings": {name: t.as_dict() for name, t in timings.items()},
                "speedup_vs_sklearn": speedup,
                "extend_over_full": extend_share,
                "one_over_k": 1 / k,
                "pair_share_of_extend": k / (k * (k + 1) / 2),
                "max_abs_difference_vs_sklearn": difference,
            }
        )
        rows.append(
            (
                str(size),
                seconds(median["augkit"]),
                seconds(median["sklearn_pairwise"]),
                ratio(speedup),
                seconds(median["extend_one"]),
                f"{extend_share:.3f}",
                f"{difference:.1e}",
                seconds(median["multi_valued_full"]),
                seconds(median["multi_valued_extend_bag"]),
            )
        )

    at = TARGET_MI_ITEMS if TARGET_MI_ITEMS in at_size else max(at_size)
    speedup, extend_share, _, augkit, _ = at_size[at]
    k = len(item_table(2, generator).schema)
    evidence = profile_evidence(augkit, 1)
    targets = [
        Target(
            name="mi_vs_sklearn_pairwise",
            goal=f">= {SPEEDUP_TARGET:g}x faster than pairwise sklearn at N={TARGET_MI_ITEMS:g}",
            value=speedup,
            threshold=SPEEDUP_TARGET,
            higher_is_better=True,
            measured_at=f"N={at}",
            indicative=at != TARGET_MI_ITEMS,
        ).with_evidence(evidence),
        Target(
            name="mi_agrees_with_sklearn",
            goal=f"every entry equal to sklearn's within {AGREEMENT:g} at every N",
            value=max(r[2] for r in at_size.values()),
            threshold=AGREEMENT,
            higher_is_better=False,
            measured_at="all N",
        ),
        Target(
            name="mi_extend_one_feature",
            goal=f"adding feature {k} of {k} costs about 1/k (<= {EXTEND_SLACK:g}/k = "
            f"{EXTEND_SLACK / k:.3f}) of a full recomputation",
            value=extend_share,
            threshold=EXTEND_SLACK / k,
            higher_is_better=False,
            measured_at=f"N={at}",
            indicative=at != TARGET_MI_ITEMS,
        ).with_evidence(profile_evidence(candidates["extend_one"], 1)),
    ]
    return CaseResult(
        name="mutual_information",
        title=f"2. Mutual information: {k} single-valued features (+ one bag of max_len {BAG.max_len})",
        headers=(
            "N",
            "augkit",
            "sklearn pairs",
            "speed-up",
            "extend 1",
            "extend/full",
            "max |diff|",
            "bag: full",
            "bag: extend",
        ),
        rows=rows,
        records=records,
        targets=targets,
        notes=[
            (
                f"full matrix: {k * (k + 1) // 2} pairs (diagonal included); extend computes the {k} pairs "
                f"of the added feature, so its floor is {k}/{k * (k + 1) // 2} = {2 / (k + 1):.3f} of a full "
                f"recomputation, not 1/{k} = {1 / k:.3f}"
            ),
            "bag: 9 features, one multi-valued (fractional value pairs); 'extend' adds only the bag",
        ],
        series=[
            Series.of(f"mutual information {name}", "N", {n: at_size[n][4][name] for n in at_size})
            for name in ("augkit", "sklearn_pairwise", "extend_one", "multi_valued_full")
        ],
    )

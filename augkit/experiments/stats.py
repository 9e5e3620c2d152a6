"""Small-sample statistics for comparisons over seeds, with `scipy.stats`: Student-t confidence
intervals, the paired t-test and the exact Wilcoxon signed-rank test; and the comparison's
summaries of runs (`summarise`) and paired lifts against the baseline (`paired`).

SciPy is an optional dependency (the ``experiments`` extra): `scipy_stats` imports it on first
use, and `augkit compare` asks for it before it trains anything.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from augkit.errors import ConfigError

SIGNIFICANCE = 0.05
"""A lift is marked † when the paired t-test against the baseline gives p below this."""
NEAR_ZERO = 1e-3
"""A baseline mean below this is near zero: a percent lift over it is noise (``+1170%`` over a
Recall of 0.0009), so `paired` gives the absolute difference only (``"lift"`` None)."""


def p_text(p: float | None) -> str:
    """A p-value as printed beside a lift: three decimals from 0.1 (``0.310``), three significant
    digits below (``0.0625``), more where needed to be on the same side of `SIGNIFICANCE` as the
    value itself (``0.0496``, never ``0.050``, for p = 0.0496), so that the number and the †
    agree; ``<0.001`` below 0.001; ``n/a`` for None."""
    if p is None:
        return "n/a"
    if p < 0.001:
        return "<0.001"
    if p >= 0.1:
        return f"{p:.3f}"
    for digits in range(3, 7):
        text = f"{p:#.{digits}g}"
        if (float(text) < SIGNIFICANCE) == (p < SIGNIFICANCE):
            return text
    return f"<{SIGNIFICANCE:g}" if p < SIGNIFICANCE else f"{p:#.6g}"


def scipy_stats() -> Any:
    """The `scipy.stats` module; a `ConfigError` saying how to install SciPy when it is missing."""
    try:
        from scipy import stats  # optional: the experiments extra, not a base dependency
    except ImportError:
        raise ConfigError("augkit compare needs SciPy: pip install 'augkit[experiments]' (or scipy>=1.11)") from None
    return stats


@attrs.frozen
class Interval:
    """A mean with the half-width of its confidence interval (``None`` for one value)."""

    mean: float
    half_width: float | None
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci": self.half_width, "n": self.n}


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of `values` and the half-width of its `level` Student-t interval,
    ``t_{(1+level)/2, n-1} * s / sqrt(n)`` (None with one value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = statistics.fmean(values)
    if n == 1:
        return Interval(mean, None, 1)
    s = statistics.stdev(values)
    return Interval(mean, float(scipy_stats().t.ppf((1 + level) / 2, n - 1)) * s / math.sqrt(n), n)


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of the paired t-test of ``mean(a - b) = 0`` (None with fewer than two
    pairs; 1.0 when every difference is 0, or when they are all equal but not 0: 0.0)."""
    diffs = _diffs(a, b)
    if len(diffs) < 2:
        return None
    if statistics.stdev(diffs) == 0:
        return 1.0 if statistics.fmean(diffs) == 0 else 0.0
    with warnings.catch_warnings():
        # Nearly equal differences make SciPy warn of precision loss; its p-value stands, as before.
        warnings.simplefilter("ignore", RuntimeWarning)
        return min(1.0, float(scipy_stats().ttest_rel(a, b).pvalue))


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided exact p-value of the Wilcoxon signed-rank test on the pairs of `a` and `b`:
    zero differences are dropped, tied absolute differences share their mean rank, and the
    statistic's null distribution is counted over all 2^n sign patterns (None without a
    non-zero difference). With n pairs the smallest possible p is 2 / 2^n (0.0625 for 5)."""
    diffs = [d for d in _diffs(a, b) if d != 0]
    if not diffs:
        return None
    if len(diffs) == 1:
        return 1.0  # both signs of one difference are as extreme; SciPy wants two
    stats = scipy_stats()
    # SciPy's method="exact" ignores ties; a permutation over all 2^n signs counts them exactly.
    exact = stats.PermutationMethod(n_resamples=2 ** len(diffs))
    return min(1.0, float(stats.wilcoxon(diffs, method=exact).pvalue))


def _diffs(a: Sequence[float], b: Sequence[float]) -> list[float]:
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    return [x - y for x, y in zip(a, b)]


def _value(metrics: Mapping[str, Any], key: str) -> float | None:
    slice_, metric = key.split("/")
    return metrics.get(slice_, {}).get(metric)


def summarise(runs: Sequence[Mapping[str, Any]], keys: Sequence[str], *, which: str = "model") -> dict[str, Any]:
    """``{key: {"mean", "ci", "n"} | None}``: mean and 95% t-interval over the seeds' ``which``
    metrics (``"model"`` or ``"top_popular"``); seeds where the metric is undefined are left out."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [v for run in runs if (v := _value(run[which], key)) is not None]
        out[key] = mean_ci(values).as_dict() if values else None
    return out


def paired(method: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Against the baseline on the same seeds (run i of each is seed i): per key, the baseline's
    mean (``"base"``), the mean paired difference with its 95% interval, the lift (difference
    over the baseline's mean) with that interval scaled (None when the baseline's mean is below
    `NEAR_ZERO`), the paired t-test and Wilcoxon p-values, and whether p_t < `SIGNIFICANCE`."""
    out: dict[str, Any] = {}
    for key in keys:
        pairs = [(a, b) for m, s in zip(method, baseline)
                 if (a := _value(m["model"], key)) is not None and (b := _value(s["model"], key)) is not None]
        if not pairs:
            out[key] = None
            continue
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        diff = mean_ci([x - y for x, y in pairs])
        base_mean = sum(b) / len(b)
        scale = 1 / base_mean if base_mean >= NEAR_ZERO else None
        p_t = paired_t_test(a, b)
        out[key] = {
            "n": len(pairs),
            "base": base_mean,
            "diff": diff.mean,
            "diff_ci": diff.half_width,
            "lift": None if scale is None else diff.mean * scale,
            "lift_ci": None if scale is None or diff.half_width is None else diff.half_width * scale,
            "p_t": p_t,
            "p_wilcoxon": wilcoxon_signed_rank(a, b),
            "significant": p_t is not None and p_t < SIGNIFICANCE,
        }
    return out

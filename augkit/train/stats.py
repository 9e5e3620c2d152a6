"""Small-sample statistics for comparisons over seeds: Student-t confidence intervals, the
paired t-test and the exact Wilcoxon signed-rank test, in plain Python (no SciPy needed).

The t distribution's CDF uses the closed forms for an integer number of degrees of freedom
(Abramowitz & Stegun 26.7.3 and 26.7.4), which is every case here (``n - 1`` seeds); its
quantile is found by bisection on that CDF.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import attrs


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with `df` (an integer >= 1) degrees of freedom."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 1:
        # A(t|df) = 2/pi (theta + sin cos (1 + 2/3 cos^2 + 2.4/(3.5) cos^4 + ...)), df - 3 over 2 terms
        series, term = 0.0, 1.0
        if df > 1:
            series = term
            for j in range(1, (df - 1) // 2):
                term *= cos2 * (2 * j) / (2 * j + 1)
                series += term
        inside = 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * series)
    else:
        # A(t|df) = sin (1 + 1/2 cos^2 + 1.3/(2.4) cos^4 + ...), (df - 2) / 2 + 1 terms
        series, term = 1.0, 1.0
        for j in range(1, df // 2):
            term *= cos2 * (2 * j - 1) / (2 * j)
            series += term
        inside = math.sin(theta) * series
    inside = min(max(inside, 0.0), 1.0)
    return 0.5 + inside / 2 if t >= 0 else 0.5 - inside / 2


def t_quantile(p: float, df: int) -> float:
    """The `p` quantile (0 < p < 1) of Student's t with `df` degrees of freedom."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        low, high = high, high * 2
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


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
    return Interval(mean, t_quantile((1 + level) / 2, n - 1) * s / math.sqrt(n), n)


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided p-value of the paired t-test of ``mean(a - b) = 0`` (None with fewer than two
    pairs; 1.0 when every difference is 0, or when they are all equal but not 0: 0.0)."""
    diffs = _diffs(a, b)
    n = len(diffs)
    if n < 2:
        return None
    mean, s = statistics.fmean(diffs), statistics.stdev(diffs)
    if s == 0:
        return 1.0 if mean == 0 else 0.0
    t = mean / (s / math.sqrt(n))
    return min(1.0, 2 * (1 - t_cdf(abs(t), n - 1)))


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided exact p-value of the Wilcoxon signed-rank test on the pairs of `a` and `b`:
    zero differences are dropped, tied absolute differences share their mean rank, and the
    statistic's null distribution is counted over all 2^n sign patterns (None without a
    non-zero difference). With n pairs the smallest possible p is 2 / 2^n (0.0625 for 5)."""
    diffs = [d for d in _diffs(a, b) if d != 0]
    n = len(diffs)
    if n == 0:
        return None
    order = sorted(range(n), key=lambda i: abs(diffs[i]))
    doubled = [0] * n  # twice the ranks, so that mid-ranks of ties stay integers
    i = 0
    while i < n:
        j = i
        while j + 1 < n and abs(diffs[order[j + 1]]) == abs(diffs[order[i]]):
            j += 1
        for k in range(i, j + 1):
            doubled[order[k]] = i + j + 2
        i = j + 1
    observed = sum(r for r, d in zip(doubled, diffs) if d > 0)
    total = sum(doubled)
    counts = {0: 1}  # sums of twice-ranks of the positive signs -> number of patterns
    for r in doubled:
        grown = dict(counts)
        for value, count in counts.items():
            grown[value + r] = grown.get(value + r, 0) + count
        counts = grown
    centre = total / 2
    extreme = sum(count for value, count in counts.items() if abs(value - centre) >= abs(observed - centre) - 1e-9)
    return min(1.0, extreme / 2**n)


def _diffs(a: Sequence[float], b: Sequence[float]) -> list[float]:
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    return [x - y for x, y in zip(a, b)]

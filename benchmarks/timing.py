"""Wall-clock timing with warm-up, interleaved repeats and medians; cProfile top entries.

Candidates measured together run in rounds (A, B, C, then B, C, A, ...), so that load from
other processes on a shared machine hits them alike and their ratios stay meaningful.
"""

from __future__ import annotations

import cProfile
import math
import pstats
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs


@attrs.frozen
class Timing:
    """Seconds per call of one candidate: one entry per repeat, each the mean over
    ``calls`` back-to-back calls (more than one for calls too short to time alone)."""

    seconds: tuple[float, ...] = attrs.field(converter=tuple)
    calls: int = 1

    @seconds.validator
    def _check(self, attribute: attrs.Attribute, value: tuple[float, ...]) -> None:
        if not value or any(not math.isfinite(s) or s < 0 for s in value):
            raise ValueError(f"Timing.seconds must be finite non-negative samples, got {value!r}")

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median of the repeats: the noise of this measurement."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": min(self.seconds),
            "max_s": max(self.seconds),
            "spread": self.spread,
            "repeats": len(self.seconds),
            "calls_per_repeat": self.calls,
            "samples_s": list(self.seconds),
        }


def _calls_for(fn: Callable[[], object], min_sample_s: float) -> int:
    """How many back-to-back calls make one sample of at least `min_sample_s` (runs `fn`
    once, unless `min_sample_s` is 0)."""
    if min_sample_s <= 0:
        return 1
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    return max(1, math.ceil(min_sample_s / max(once, 1e-9)))


def time_side_by_side(
    candidates: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    min_sample_s: float = 0.02,
) -> dict[str, Timing]:
    """Time each zero-argument callable `repeats` times, interleaved, after `warmup` rounds.

    The first call of each candidate sizes its sample (`Timing.calls`) and counts as the
    first warm-up round; when `min_sample_s` is 0 there is no sizing call and ``warmup``
    plain rounds run instead. Nothing is recorded before the warm-up ends.
    """
    if repeats < 1 or warmup < 0 or (min_sample_s > 0 and warmup < 1):
        raise ValueError(
            f"repeats must be >= 1 and warmup >= 0 (>= 1 with a sizing call), got {repeats}, {warmup}"
        )
    names = list(candidates)
    calls = {name: _calls_for(candidates[name], min_sample_s) for name in names}
    for _ in range(warmup - 1 if min_sample_s > 0 else warmup):
        for name in names:
            candidates[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            fn, n = candidates[name], calls[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: Timing(samples[name], calls[name]) for name in names}


def profile_top(fn: Callable[[], object], *, limit: int = 10) -> list[dict[str, Any]]:
    """cProfile one call of `fn`: the `limit` entries of largest own time, as
    ``{"function", "calls", "own_s", "cumulative_s"}`` rows."""
    profiler = cProfile.Profile()
    profiler.runcall(fn)
    stats = pstats.Stats(profiler)
    rows = []
    for (path, line, function), (_, ncalls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = function if path == "~" else f"{function} ({_short(path)}:{line})"
        rows.append({"function": where, "calls": ncalls, "own_s": own, "cumulative_s": cumulative})
    rows.sort(key=lambda row: row["own_s"], reverse=True)
    return rows[:limit]


def _short(path: str) -> str:
    """The last two components of a source path."""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])

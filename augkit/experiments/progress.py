"""Progress of the experiments' long loops as log lines (``augkit.train``'s logger, which the
command line shows): run k of N with its time, and an estimate of the time left from the runs
that did work (a run only reloaded takes no time and does not count)."""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence

log = logging.getLogger("augkit.train")


def duration(seconds: float) -> str:
    """``"42.0 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def time_left(durations: Sequence[float], remaining: int) -> str:
    """``"about 12 min 30 s left"``: `remaining` more steps at the mean of `durations`;
    ``"done"`` with none remaining, ``"time left unknown"`` before the first duration."""
    if remaining <= 0:
        return "done"
    if not durations:
        return "time left unknown"
    return f"about {duration(statistics.fmean(durations) * remaining)} left"


class Counter:
    """The `total` steps of one phase (``"run"``, ``"test"``) of ``augkit compare``: `start`
    logs ``compare: <phase> k/N: <what>`` and starts its clock, `done` logs its time and the
    estimate of the rest (`time_left`, from the steps that did work), `skip` counts a step that
    needed no work (a run only reloaded)."""

    def __init__(self, phase: str, total: int) -> None:
        self.phase, self.total = phase, total
        self.count = 0
        self.durations: list[float] = []
        self._started = 0.0

    def start(self, what: str) -> None:
        self.count += 1
        self._started = time.perf_counter()
        log.info("compare: %s %d/%d: %s", self.phase, self.count, self.total, what)

    def skip(self, what: str) -> None:
        self.count += 1
        log.info("compare: %s %d/%d: %s", self.phase, self.count, self.total, what)

    def done(self, what: str) -> float:
        """Log the time since `start` and the estimate of the rest; those seconds."""
        seconds = time.perf_counter() - self._started
        self.durations.append(seconds)
        log.info("compare: %s %d/%d, %s, took %s; %s", self.phase, self.count, self.total, what, duration(seconds),
                 time_left(self.durations, self.total - self.count))
        return seconds

"""What a case returns (`CaseResult`, `Target`), the printed tables, and the JSON file."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from benchmarks.timing import profile_top

JSON_VERSION = 1
"""Version of the JSON document `write_json` writes."""


def profile_evidence(slow: Callable[[], object], calls: int) -> Callable[[], list[dict[str, Any]]]:
    """A memoised callable: cProfile top entries of `calls` back-to-back calls of `slow`,
    so that several missed targets of one case share a single profile."""
    cache: list[list[dict[str, Any]]] = []

    def evidence() -> list[dict[str, Any]]:
        if not cache:
            cache.append(profile_top(lambda: [slow() for _ in range(calls)]))
        return cache[0]

    return evidence


@attrs.frozen(kw_only=True)
class Target:
    """A goal a case is held to: `value` against `threshold` (``>=`` when `higher_is_better`).

    `measured_at` names the size it was measured at; `indicative` is True when that is not the
    size the goal is defined at (the smaller profiles). `evidence`: cProfile top entries of the
    slow side, for a missed target.
    """

    name: str
    goal: str
    value: float
    threshold: float
    higher_is_better: bool
    measured_at: str
    indicative: bool = False
    evidence: tuple[dict[str, Any], ...] = attrs.field(default=(), converter=tuple)

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.value >= self.threshold
        return self.value <= self.threshold

    def with_evidence(self, evidence: Callable[[], Sequence[dict[str, Any]]]) -> Target:
        """This target, with ``evidence()`` (cProfile rows, see `profile_evidence`) attached
        when it is missed; `evidence` is not called for a met target."""
        return self if self.met else attrs.evolve(self, evidence=evidence())

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "goal": self.goal,
            "value": self.value,
            "threshold": self.threshold,
            "higher_is_better": self.higher_is_better,
            "met": self.met,
            "measured_at": self.measured_at,
            "indicative": self.indicative,
            "evidence": list(self.evidence),
        }


@attrs.frozen(kw_only=True)
class Series:
    """How one measured `quantity` (unit ``"s"`` or ``"bytes"``) grows with `size_name`:
    ``values[j]`` at ``sizes[j]`` (increasing sizes). The input of the scaling table."""

    quantity: str
    size_name: str
    unit: str
    sizes: tuple[int, ...] = attrs.field(converter=tuple)
    values: tuple[float, ...] = attrs.field(converter=tuple)

    @classmethod
    def of(cls, quantity: str, size_name: str, by_size: Mapping[int, float], *, unit: str = "s") -> Series:
        """The series of `by_size` (size -> value), in increasing size."""
        sizes = sorted(by_size)
        return cls(
            quantity=quantity, size_name=size_name, unit=unit, sizes=sizes, values=[by_size[n] for n in sizes]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "quantity": self.quantity,
            "size_name": self.size_name,
            "unit": self.unit,
            "sizes": list(self.sizes),
            "values": list(self.values),
        }


@attrs.frozen(kw_only=True)
class CaseResult:
    """One case: a table to print (`headers`, `rows` of strings), its data as JSON-able
    `records` (one dict per measured configuration), its targets, free-text notes and the
    `series` the scaling table reads."""

    name: str
    title: str
    headers: tuple[str, ...] = attrs.field(converter=tuple)
    rows: tuple[tuple[str, ...], ...] = attrs.field(converter=lambda rows: tuple(map(tuple, rows)))
    records: tuple[dict[str, Any], ...] = attrs.field(converter=tuple)
    targets: tuple[Target, ...] = attrs.field(default=(), converter=tuple)
    notes: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    series: tuple[Series, ...] = attrs.field(default=(), converter=tuple)

    @rows.validator
    def _check_rows(self, attribute: attrs.Attribute, value: tuple[tuple[str, ...], ...]) -> None:
        for row in value:
            if len(row) != len(self.headers):
                raise ValueError(f"{self.name}: row {row!r} does not match headers {self.headers!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "records": list(self.records),
            "targets": [target.as_dict() for target in self.targets],
            "notes": list(self.notes),
            "series": [series.as_dict() for series in self.series],
        }


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: left-aligned first column, right-aligned others."""
    widths = [max(len(h), *(len(r[j]) for r in rows)) if rows else len(h) for j, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:]))])

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def format_case(case: CaseResult) -> str:
    """The case's title, table, targets (MET / MISSED, indicative ones marked) and notes."""
    parts = [case.title, "=" * len(case.title), format_table(case.headers, case.rows)]
    for target in case.targets:
        verdict = "MET" if target.met else "MISSED"
        label = " (indicative: " + target.measured_at + ")" if target.indicative else ""
        parts.append(
            f"target {target.name}: {target.goal}; measured {number(target.value)} "
            f"at {target.measured_at} -> {verdict}{label}"
        )
        for entry in target.evidence[:6]:
            parts.append(
                f"    {entry['own_s']:8.4f}s own {entry['cumulative_s']:8.4f}s cum "
                f"{entry['calls']:>7} calls  {entry['function']}"
            )
    parts.extend(f"note: {note}" for note in case.notes)
    return "\n".join(parts)


def seconds(value: float) -> str:
    """A duration with a unit that keeps three significant digits."""
    if value >= 1.0:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def ratio(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3g}x"


def number(value: float) -> str:
    return f"{value:.3g}"


def mebibytes(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def write_json(path: str | os.PathLike[str], document: dict[str, Any]) -> None:
    """Write `document` (with ``"version"``) as indented JSON, creating parent folders."""
    folder = os.path.dirname(os.fspath(path))
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"version": JSON_VERSION, **document}, handle, indent=1, allow_nan=False)
        handle.write("\n")

"""Case 5: how each measured quantity grows with batch or corpus size, from the `Series`
the other cases return.

Between consecutive sizes n1 < n2 with values v1, v2 the growth exponent is
``log(v2 / v1) / log(n2 / n1)``: 1 is linear, 0 constant. An exponent within
`LINEAR_BAND` of 1 reads "linear"; below that "sublinear" (fixed costs still dominate, or a
bounded quantity such as chunked memory), above it "superlinear".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmarks.report import CaseResult, Series, mebibytes, seconds

LINEAR_BAND = 0.15
CONSTANT_BAND = 0.15


def exponent(series: Series, j: int) -> float:
    """Growth exponent of `series` from size ``j`` to size ``j + 1`` (NaN if undefined)."""
    (n1, n2), (v1, v2) = series.sizes[j : j + 2], series.values[j : j + 2]
    if v1 <= 0 or v2 <= 0 or n2 <= n1:
        return math.nan
    return math.log(v2 / v1) / math.log(n2 / n1)


def verdict(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) <= CONSTANT_BAND:
        return "constant"
    if abs(value - 1) <= LINEAR_BAND:
        return "linear"
    return "sublinear" if value < 1 else "superlinear"


def run(cases: Sequence[CaseResult]) -> CaseResult:
    """The scaling table of the series of `cases` (those with at least two sizes)."""
    rows, records = [], []
    for case in cases:
        for series in case.series:
            show = mebibytes if series.unit == "bytes" else seconds
            for j in range(len(series.sizes) - 1):
                value = exponent(series, j)
                (n1, n2), (v1, v2) = series.sizes[j : j + 2], series.values[j : j + 2]
                records.append(
                    {
                        "case": case.name,
                        "quantity": series.quantity,
                        "size_name": series.size_name,
                        "from_size": n1,
                        "to_size": n2,
                        "from_value": v1,
                        "to_value": v2,
                        "unit": series.unit,
                        "exponent": None if math.isnan(value) else value,
                        "verdict": verdict(value),
                    }
                )
                rows.append(
                    (
                        series.quantity,
                        f"{series.size_name} {n1:,} -> {n2:,}",
                        f"{show(v1)} -> {show(v2)}",
                        f"{v2 / v1:.3g}x / {n2 / n1:.3g}x" if v1 > 0 else "n/a",
                        "n/a" if math.isnan(value) else f"{value:.2f}",
                        verdict(value),
                    )
                )
    return CaseResult(
        name="scaling",
        title="5. Scaling: growth between consecutive sizes",
        headers=("quantity", "size", "value", "growth / size ratio", "exponent", "verdict"),
        rows=rows,
        records=records,
        notes=[
            (
                f"exponent = log(value ratio) / log(size ratio); linear within {LINEAR_BAND} of 1, "
                f"constant within {CONSTANT_BAND} of 0"
            ),
        ],
    )

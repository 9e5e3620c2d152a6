"""The scale case's bookkeeping (benchmarks/scale.py): candidates whose dependency is missing read
"not installed", and its targets are computed from the measured records. The measurement
itself runs in the smoke test's tiny profile (tests/test_benchmarks_smoke.py)."""

import attrs
import pytest

pytest.importorskip("sklearn")

from benchmarks import scale
from benchmarks.profiles import PROFILES
from benchmarks.scale_worker import Candidate, trainer_with


def _measured(median_s: float, evidence: list | None = None) -> dict:
    return {"status": "measured", "timing": {"median_s": median_s}, "evidence": evidence or []}


def test_a_candidate_without_its_module_reads_not_installed(monkeypatch):
    missing = Candidate("needs_it", trainer_with("sparse_adam"), requires=("augkit_no_such_module",))
    monkeypatch.setattr(scale, "CANDIDATES", {"needs_it": missing})
    tiny = PROFILES["tiny"]
    profile = attrs.evolve(tiny, scale=attrs.evolve(tiny.scale, epoch=None))
    logged = []
    result = scale.run(profile, logged.append)
    assert [row[2] for row in result.rows] == ["not installed"] * len(tiny.scale.items)
    assert all(r["reason"] == "no module augkit_no_such_module" for r in result.records)
    assert any("needs_it not installed" in line for line in logged)
    assert result.targets == ()


def test_flat_target_compares_the_largest_with_the_smallest_catalog():
    evidence = [{"function": "f", "calls": 1, "own_s": 1.0, "cumulative_s": 1.0}]
    target = scale._flat_target("sparse_adam", {10_000: _measured(0.1), 10_000_000: _measured(0.2, evidence)})
    assert target.value == pytest.approx(2.0)
    assert not target.met and not target.indicative
    assert target.evidence == tuple(evidence)
    smaller = scale._flat_target("sparse_adam", {1_000: _measured(0.1), 2_000: _measured(0.11)})
    assert smaller.met and smaller.indicative and smaller.evidence == ()


def test_relative_target_only_where_both_candidates_ran(monkeypatch):
    monkeypatch.setattr(scale, "RELATIVE_TARGETS", (("other", "sparse_adam", 1.5, 1_000_000),))
    sparse = {100_000: _measured(0.1), 1_000_000: _measured(0.2)}
    assert scale.relative_targets({"sparse_adam": sparse}) == []
    (target,) = scale.relative_targets({"sparse_adam": sparse, "other": {1_000_000: _measured(0.4)}})
    assert target.value == pytest.approx(2.0) and not target.met and not target.indicative
    (smaller,) = scale.relative_targets({"sparse_adam": sparse, "other": {100_000: _measured(0.12)}})
    assert smaller.met and smaller.indicative and smaller.measured_at == "100,000 items"

"""The benchmark runner runs end to end on its tiny profile and writes JSON of the documented
structure (docs/performance.md). Timings are not checked: they are not pass/fail."""

import json

import pytest

pytest.importorskip("sklearn")

from benchmarks.__main__ import CASES, main

TARGET_KEYS = {
    "name",
    "goal",
    "value",
    "threshold",
    "higher_is_better",
    "met",
    "measured_at",
    "indicative",
    "evidence",
}
CASE_KEYS = {"title", "records", "targets", "notes", "series"}


def test_tiny_profile_writes_documented_json(tmp_path, capsys):
    output = tmp_path / "out" / "tiny.json"
    assert main(["--tiny", "--output", str(output)]) == 0
    document = json.loads(output.read_text())
    assert document["version"] == 1
    assert document["profile"] == "tiny"
    assert document["command"].startswith("python -m benchmarks --tiny")
    assert {"cpu_model", "usable_cpus", "torch", "load_average_at_start", "load_average_at_end"} <= set(
        document["machine"]
    )
    assert set(document["cases"]) == {*CASES, "scaling"}
    for case in document["cases"].values():
        assert set(case) == CASE_KEYS
        assert case["records"]
        for target in case["targets"]:
            assert set(target) == TARGET_KEYS
            assert isinstance(target["met"], bool) and isinstance(target["indicative"], bool)
    expected = sum(len(case["targets"]) for case in document["cases"].values())
    assert len(document["targets"]) == expected
    for row in document["cases"]["scaling"]["records"]:
        assert {"quantity", "from_size", "to_size", "exponent", "verdict"} <= set(row)
    printed = capsys.readouterr().out
    assert "Targets" in printed and str(output) in printed

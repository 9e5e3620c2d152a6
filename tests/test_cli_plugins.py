"""`augkit plugins`: registered names with their distribution, load failures and conflicts."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from augkit.cli import main
from augkit.registry import DISABLE_AUTOLOAD_ENV, get_registry

FAKE_DISTS = Path(__file__).resolve().parent / "fake_dists"
BUILTINS = ("mask", "dropout", "complementary")


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch):
    """The command reads the process-wide registry: reload it around each test."""
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    get_registry.cache_clear()
    yield
    get_registry.cache_clear()


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, ["plugins", *args])
    assert result.exit_code == 0, result.output
    return result


def rows_of(result: Result) -> list[list[str]]:
    return [line.split() for line in result.stdout.splitlines()]


def test_lists_builtins_with_distribution_and_version() -> None:
    rows = rows_of(invoke())
    assert rows[0] == ["kind", "name", "distribution", "version"]
    for name in BUILTINS:
        assert ["augmentation", name, "augkit", version("augkit")] in rows


def test_json_lists_builtins_and_failures() -> None:
    report = json.loads(invoke("--json").stdout)
    assert set(report) == {"registered", "failures"}
    builtins = {r["name"]: r for r in report["registered"] if r["name"] in BUILTINS}
    assert set(builtins) == set(BUILTINS)
    for name, row in builtins.items():
        assert row == {
            "kind": "augmentation",
            "name": name,
            "distribution": "augkit",
            "version": version("augkit"),
            "plugin": name,
        }
    assert isinstance(report["failures"], list)


def test_third_party_plugin_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAKE_DISTS / "good"))
    rows = rows_of(invoke())
    assert ["augmentation", "fake_identity", "fake-plugin-good", "1.0"] in rows
    assert ["loss", "fake_loss", "fake-plugin-good", "1.0"] in rows


def test_failing_plugin_is_reported_with_its_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAKE_DISTS / "broken_import"))
    monkeypatch.syspath_prepend(str(FAKE_DISTS / "broken_register"))
    report = json.loads(invoke("--json").stdout)
    failures = {f["distribution"]: f for f in report["failures"]}
    broken, half = failures["fake-plugin-broken"], failures["fake-plugin-half"]
    assert (broken["plugin"], broken["version"], broken["phase"]) == ("broken", "0.3", "import")
    assert "cannot be imported" in broken["error"]
    assert (half["plugin"], half["version"], half["phase"]) == ("half", "2.0", "register")
    assert "half_aug" not in {r["name"] for r in report["registered"]}
    assert set(BUILTINS) <= {r["name"] for r in report["registered"]}

    text = invoke()
    assert (
        "failed: plugin 'broken' from distribution fake-plugin-broken 0.3 failed to import: "
        "RuntimeError: fake_plugin_broken cannot be imported" in text.output
    )
    half_failed = "failed: plugin 'half' from distribution fake-plugin-half 2.0 failed to register"
    assert half_failed in text.output


def test_conflicts_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAKE_DISTS / "clash"))
    text = invoke()
    assert ["augmentation", "clash", "fake-plugin-clash-a", "1.0"] in rows_of(text)
    assert ["augmentation", "clash", "fake-plugin-clash-b", "2.5"] in rows_of(text)
    assert "conflict: augmentation 'clash' is registered 2 times" in text.output
    report = json.loads(invoke("--json").stdout)
    clash = [r["distribution"] for r in report["registered"] if r["name"] == "clash"]
    assert clash == ["fake-plugin-clash-a", "fake-plugin-clash-b"]


def test_disabled_autoload_lists_only_augkit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FAKE_DISTS / "good"))
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    report = json.loads(invoke("--json").stdout)
    assert {r["distribution"] for r in report["registered"]} == {"augkit"}

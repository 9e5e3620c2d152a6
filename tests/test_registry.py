"""Plugin discovery through real entry points (fake distributions on sys.path) and `Registry`."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from augkit.errors import PluginError, UnknownNameError
from augkit.registry import DISABLE_AUTOLOAD_ENV, LoadFailure, Registry, load_plugins

FAKE_DISTS = Path(__file__).resolve().parent / "fake_dists"
BUILTINS = ("mask", "dropout", "complementary")


@pytest.fixture
def with_dists(monkeypatch: pytest.MonkeyPatch):
    """Prepend fake distribution folders (see fake_dists/README.md) to sys.path."""
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)

    def prepend(*folders: str) -> None:
        for folder in folders:
            monkeypatch.syspath_prepend(str(FAKE_DISTS / folder))

    return prepend


def failure_of(registry: Registry, distribution: str) -> LoadFailure:
    found = [f for f in registry.failures if f.distribution == distribution]
    assert len(found) == 1, registry.failures
    return found[0]


def test_builtins_come_from_distribution_augkit(with_dists) -> None:
    registry = load_plugins()
    for name in BUILTINS:
        registration = registry.get("augmentation", name)
        assert registration.distribution == "augkit"
        assert registration.version == version("augkit")


def test_third_party_plugin_registers_with_distribution_and_version(with_dists) -> None:
    with_dists("good")
    registry = load_plugins()
    aug = registry.get("augmentation", "fake_identity")
    assert (aug.distribution, aug.version, aug.plugin) == ("fake-plugin-good", "1.0", "good")
    assert registry.get("loss", "fake_loss").distribution == "fake-plugin-good"
    assert registry.create("augmentation", "fake_identity", {"strength": 2.0}).strength == 2.0
    assert not [f for f in registry.failures if f.distribution.startswith("fake-")]


def test_plugin_failing_on_import_is_recorded_and_others_load(with_dists) -> None:
    with_dists("broken_import", "good")
    registry = load_plugins()
    failure = failure_of(registry, "fake-plugin-broken")
    assert (failure.plugin, failure.version, failure.phase) == ("broken", "0.3", "import")
    assert "RuntimeError" in failure.error and "cannot be imported" in failure.error
    assert "fake_plugin_broken.py" in failure.traceback
    assert failure.describe() == (
        "plugin 'broken' from distribution fake-plugin-broken 0.3 failed to import: "
        + failure.error
    )
    assert "fake_identity" in registry.names("augmentation")
    assert set(BUILTINS) <= set(registry.names("augmentation"))


def test_plugin_failing_in_a_hook_leaks_no_partial_registration(with_dists) -> None:
    with_dists("broken_register", "good")
    registry = load_plugins()
    failure = failure_of(registry, "fake-plugin-half")
    assert (failure.plugin, failure.version, failure.phase) == ("half", "2.0", "register")
    assert "breaks while registering losses" in failure.error
    assert "half_aug" not in registry.names("augmentation")
    assert "fake_identity" in registry.names("augmentation")


def test_plugin_registering_a_non_identifier_is_recorded(with_dists) -> None:
    with_dists("bad_name")
    registry = load_plugins()
    failure = failure_of(registry, "fake-plugin-badname")
    assert failure.phase == "register"
    assert "'bad-name'" in failure.error and "identifier" in failure.error
    assert "fake-plugin-badname:badname" in failure.error
    assert "bad-name" not in registry.names("augmentation")


def test_misspelled_hook_is_recorded_not_ignored(with_dists) -> None:
    with_dists("typo_hook")
    registry = load_plugins()
    failure = failure_of(registry, "fake-plugin-typo")
    assert failure.phase == "register"
    assert "augkit_register_augmentation" in failure.error
    assert "typo_aug" not in registry.names("augmentation")


def test_same_name_from_two_distributions_is_an_error_naming_both(with_dists) -> None:
    with_dists("clash")
    registry = load_plugins()
    assert registry.names("augmentation").count("clash") == 1
    assert [r.distribution for r in registry.registrations() if r.name == "clash"] == [
        "fake-plugin-clash-a",
        "fake-plugin-clash-b",
    ]
    with pytest.raises(PluginError) as error:
        registry.get("augmentation", "clash")
    message = str(error.value)
    assert "'clash'" in message
    assert "fake-plugin-clash-a 1.0" in message and "fake-plugin-clash-b 2.5" in message
    assert DISABLE_AUTOLOAD_ENV in message
    registry.get("augmentation", "mask")  # the conflict spoils only its own name


@pytest.mark.parametrize("env_value", ["1", "true"])
def test_disable_autoload_loads_only_augkit_builtins(
    with_dists, monkeypatch: pytest.MonkeyPatch, env_value: str
) -> None:
    with_dists("good", "broken_import")
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, env_value)
    registry = load_plugins()
    assert {r.distribution for r in registry.registrations()} == {"augkit"}
    assert set(BUILTINS) <= set(registry.names("augmentation"))
    assert "fake_identity" not in registry.names("augmentation")
    assert not [f for f in registry.failures if f.distribution != "augkit"]


def test_autoload_argument_overrides_environment(with_dists, monkeypatch) -> None:
    with_dists("good")
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert "fake_identity" in load_plugins(autoload=True).names("augmentation")
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV)
    assert "fake_identity" not in load_plugins(autoload=False).names("augmentation")


# -- Registry by hand ----------------------------------------------------------------------


def make_factory():
    def factory(*, strength: float = 1.0, granularity: str = "example") -> tuple[float, str]:
        return strength, granularity

    return factory


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.register("augmentation", "shuffle", make_factory(), distribution="dist-a", version="1")
    registry.register("augmentation", "swap", make_factory(), distribution="dist-a", version="1")
    return registry


def test_register_get_and_names(registry: Registry) -> None:
    assert registry.names("augmentation") == ("shuffle", "swap")
    assert registry.names("loss") == ()
    registration = registry.get("augmentation", "swap")
    assert (registration.kind, registration.name, registration.distribution) == (
        "augmentation",
        "swap",
        "dist-a",
    )
    assert [r.name for r in registry.registrations()] == ["shuffle", "swap"]


def test_unknown_name_lists_names_and_closest_match(registry: Registry) -> None:
    with pytest.raises(UnknownNameError) as error:
        registry.get("augmentation", "shufle")
    message = str(error.value)
    assert "unknown augmentation 'shufle'" in message
    assert "did you mean 'shuffle'?" in message
    assert "Known: shuffle, swap." in message
    assert error.value.known == ("shuffle", "swap")


def test_unknown_name_without_a_close_match(registry: Registry) -> None:
    with pytest.raises(UnknownNameError, match=r"unknown loss 'xyz'\. Known: \(none\)\.") as error:
        registry.get("loss", "xyz")
    assert "did you mean" not in str(error.value)


def test_unknown_kind(registry: Registry) -> None:
    expected = "unknown plugin kind 'augmentations'; did you mean 'augmentation'"
    with pytest.raises(UnknownNameError, match=expected):
        registry.names("augmentations")
    with pytest.raises(UnknownNameError, match="unknown plugin kind 'metric'"):
        registry.register("metric", "recall", make_factory())


def test_create_passes_parameters(registry: Registry) -> None:
    assert registry.create("augmentation", "swap", {"strength": 0.5}) == (0.5, "example")
    assert registry.create("augmentation", "swap") == (1.0, "example")


def test_create_rejects_unknown_parameter_with_close_match(registry: Registry) -> None:
    with pytest.raises(UnknownNameError) as error:
        registry.create("augmentation", "swap", {"strenght": 0.5})
    message = str(error.value)
    assert "unknown parameter of augmentation 'swap' 'strenght'" in message
    assert "did you mean 'strength'?" in message
    assert "Known: granularity, strength." in message


def test_create_leaves_kwargs_factories_alone() -> None:
    registry = Registry()
    registry.register("loss", "anything", lambda **kwargs: kwargs)
    assert registry.create("loss", "anything", {"x": 1}) == {"x": 1}


def test_two_registrations_of_one_name_conflict(registry: Registry) -> None:
    registry.register(
        "augmentation", "swap", make_factory(), distribution="dist-b", version="3", plugin="pb"
    )
    with pytest.raises(PluginError) as error:
        registry.create("augmentation", "swap", {})
    assert "dist-a 1 (plugin '<local>')" in str(error.value)
    assert "dist-b 3 (plugin 'pb')" in str(error.value)


@pytest.mark.parametrize("name", ["bad-name", "", "two words", 3])
def test_register_rejects_non_identifier_names(registry: Registry, name: object) -> None:
    with pytest.raises(PluginError) as error:
        registry.register("augmentation", name, make_factory(), plugin="mine")  # type: ignore
    assert f"plugin 'mine' registered augmentation name {name!r}" in str(error.value)
    assert "identifier" in str(error.value)


def test_register_rejects_non_callable_factory(registry: Registry) -> None:
    expected = "plugin 'mine' registered loss 'l2' with a non-callable 42"
    with pytest.raises(PluginError, match=expected):
        registry.register("loss", "l2", 42, plugin="mine")  # type: ignore[arg-type]
    assert registry.names("loss") == ()

"""The example third-party plugin (examples/augkit-plugin-example), once pip-installed, is found
through its entry point: `augkit plugins` lists it and the trainer builds it by name."""

from __future__ import annotations

import json
import math
from importlib.metadata import PackageNotFoundError, version

import pytest
from click.testing import CliRunner

from augkit.cli import main
from augkit.registry import DISABLE_AUTOLOAD_ENV, get_registry
from augkit.train import config_from_dict, train

DISTRIBUTION = "augkit-plugin-example"


def _installed() -> bool:
    try:
        version(DISTRIBUTION)
    except PackageNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _installed(),
    reason=f"{DISTRIBUTION} is not installed; run `pip install -e examples/augkit-plugin-example` (CI does)",
)


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch):
    """Load the installed plugins afresh, with autoloading on."""
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    get_registry.cache_clear()
    yield
    get_registry.cache_clear()


def test_augkit_plugins_lists_swap_from_the_example_distribution() -> None:
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r for r in report["registered"] if r["name"] == "swap"] == [
        {
            "kind": "augmentation",
            "name": "swap",
            "distribution": DISTRIBUTION,
            "version": "0.1.0",
            "plugin": "swap",
        }
    ]
    assert [f for f in report["failures"] if f["distribution"] == DISTRIBUTION] == []


def test_trainer_builds_and_trains_with_swap_named_in_its_config(tmp_path) -> None:
    augmentation = {
        "name": "two_views",
        "params": {
            "pair": {"name": "cfm"},
            "each": [{"name": "swap", "params": {"p": 0.1}}, {"name": "dropout"}],
        },
    }
    config = config_from_dict(
        {
            "output_dir": str(tmp_path / "runs"),
            "epochs": 1,
            "progress": False,
            "checkpoint_every": 0,
            "main": {"batch_size": 128},
            "ssl": {"batch_size": 64, "augmentation": augmentation},
            "model": {"hidden": [16], "output_dim": 8, "embedding_dim": 8},
        }
    )
    result = train(config, max_steps=3)
    swap = result.parts.augmentation.each[0]
    assert type(swap).__module__ == "augkit_swap.swap" and swap.p == 0.1
    assert result.parts.config.ssl.augmentation["params"]["each"][0] == {"name": "swap", "params": {"p": 0.1}}
    assert result.steps == 3
    assert set(result.last_losses) == {"total", "main", "ssl"}
    assert all(math.isfinite(loss) for loss in result.last_losses.values())

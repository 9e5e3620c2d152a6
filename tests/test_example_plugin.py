"""The example third-party plugin (examples/augkit-plugin-example), once pip-installed, is found
through its entry point: `augkit plugins` lists it and the trainer builds it by name."""

from __future__ import annotations

import json
import math
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from click.testing import CliRunner

from augkit.cli import main
from augkit.registry import DISABLE_AUTOLOAD_ENV, get_registry
from augkit.errors import ConfigError
from augkit.train import build_run, config_from_dict, load_config, train

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


def test_augkit_train_uses_the_example_loss_and_estimator_named_in_a_config(tmp_path) -> None:
    """The distribution's train.toml: `augkit train` builds its loss and logQ estimator by name
    through the registry, as it builds the built-ins, and the run's report is written."""
    config = Path(__file__).resolve().parents[1] / "examples" / DISTRIBUTION / "train.toml"
    loaded = load_config(config, overrides=[f'output_dir="{tmp_path}"'])
    parts = build_run(loaded)
    assert type(parts.main_loss).__module__ == "augkit_swap.margin" and parts.main_loss.margin == 0.1
    assert type(parts.frequency).__module__ == "augkit_swap.decayed" and parts.frequency.decay == 0.99
    result = CliRunner().invoke(main, ["train", str(config), "--set", f'output_dir="{tmp_path}"', "--epochs", "1"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "plugin-example" / "metrics.json").read_text())
    assert math.isfinite(metrics["model"]["all"]["recall@10"])
    assert float(parts.frequency.counts.sum()) == 0  # built afresh above; the CLI run updated its own


def test_an_unknown_loss_name_gets_the_registry_s_closest_match() -> None:
    with pytest.raises(ConfigError, match=r"unknown loss 'margin_sofmax'; did you mean 'margin_softmax'\?.* @ config.main.loss"):
        config_from_dict({"main": {"loss": {"name": "margin_sofmax"}}})

"""augkit: self-supervised learning for two-tower retrieval recommenders.

Declare item features (`FeatureSchema`), wrap your tensors (`FeatureBatch.from_tensors`), and
get two augmented views from any registered augmentation (`from_config`, `TwoViews`). A trained
run (`augkit train`) answers in raw keys through `load_run`: recommend, similar items, embed new
items, export for serving.

Importing augkit has no side effect on the process and loads nothing heavy: each name below is
imported from its module on first use (``augkit.FeatureBatch`` loads torch, ``augkit.load_run``
the serving layer), so a plugin that imports ``augkit.hookimpl`` or the command line's
``augkit --help`` stays light. The thread policy (`augkit.threads`) is applied by the command
line and the trainer, never by an import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
    from augkit.augmentation import CONFIG_VERSION, Augmentation, PairAugmentation
    from augkit.batch import FeatureBatch
    from augkit.compose import Sequential, TwoViews, from_config
    from augkit.errors import (
        AugkitError,
        BatchValidationError,
        ConfigError,
        PluginError,
        SchemaError,
        UnknownNameError,
    )
    from augkit.hookspecs import hookimpl
    from augkit.registry import Registry, get_registry, load_plugins
    from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, MultiCategorical
    from augkit.serving import load_run

_HOMES: dict[str, str] = {
    "CONFIG_VERSION": "augkit.augmentation",
    "Augmentation": "augkit.augmentation",
    "PairAugmentation": "augkit.augmentation",
    "FeatureBatch": "augkit.batch",
    "Sequential": "augkit.compose",
    "TwoViews": "augkit.compose",
    "from_config": "augkit.compose",
    "AugkitError": "augkit.errors",
    "BatchValidationError": "augkit.errors",
    "ConfigError": "augkit.errors",
    "PluginError": "augkit.errors",
    "SchemaError": "augkit.errors",
    "UnknownNameError": "augkit.errors",
    "hookimpl": "augkit.hookspecs",
    "Registry": "augkit.registry",
    "get_registry": "augkit.registry",
    "load_plugins": "augkit.registry",
    "MISSING": "augkit.schema",
    "Categorical": "augkit.schema",
    "Dense": "augkit.schema",
    "FeatureSchema": "augkit.schema",
    "MultiCategorical": "augkit.schema",
    "load_run": "augkit.serving",
}
"""Each public name and the module that defines it."""

__all__ = [
    "AugkitError",
    "Augmentation",
    "BatchValidationError",
    "CONFIG_VERSION",
    "Categorical",
    "ConfigError",
    "Dense",
    "FeatureBatch",
    "FeatureSchema",
    "MISSING",
    "MultiCategorical",
    "PairAugmentation",
    "PluginError",
    "Registry",
    "SchemaError",
    "Sequential",
    "TwoViews",
    "UnknownNameError",
    "from_config",
    "get_registry",
    "hookimpl",
    "load_plugins",
    "load_run",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562) and kept."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'augkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))

"""augkit: self-supervised learning for two-tower retrieval recommenders.

Declare item features (`FeatureSchema`), wrap your tensors (`FeatureBatch.from_tensors`), and
get two augmented views from any registered augmentation (`from_config`, `TwoViews`). A trained
run (`augkit train`) answers in raw keys through `load_run`: recommend, similar items, embed new
items, export for serving.
"""

from augkit import threads

threads.apply()  # before torch loads: see augkit.threads

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

__all__ = [
    "CONFIG_VERSION",
    "MISSING",
    "AugkitError",
    "Augmentation",
    "BatchValidationError",
    "Categorical",
    "ConfigError",
    "Dense",
    "FeatureBatch",
    "FeatureSchema",
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

"""The built-in variants, defined once for ``augkit compare`` and ``augkit tune``: what each
changes in a base config (`variant_overrides`, `variant_config`) and the space ``augkit tune``
searches for it when the ``[tune]`` table gives none (`DEFAULT_SPACES`).

* ``baseline``: main task only.
* ``fd``: feature dropout (mask each item feature with p = `FD_RATE`) on the main task.
* ``so``: spread-out regulariser on the batch's item embeddings, weight alpha.
* ``rfm``: SSL with complementary random feature masking, then value dropout `VALUE_DROPOUT`.
* ``cfm``: SSL with correlated feature masking, then value dropout `VALUE_DROPOUT`.

Every variant masks the ``item_id`` of the main task's items with p = `ID_DROPOUT` (FD does
so as one of the features it masks at `FD_RATE`, the same rate): an item never seen in
training is served with its ``item_id`` missing, so its score reads the ``item_id`` default
embedding, and this trains that embedding in every variant alike.

Their names, `VARIANTS`, live in `augkit.train.config`, which checks ``[tune.variants]`` when a
config is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from augkit.errors import ConfigError, UnknownNameError
from augkit.train.config import VARIANTS, TrainConfig, TuneParam, config_from_dict, config_to_dict
from augkit.train.run import ITEM_ID_FEATURE

__all__ = [
    "ALPHA",
    "DEFAULT_SPACES",
    "FD_RATE",
    "ID_DROPOUT",
    "SHARED_KEYS",
    "VALUE_DROPOUT",
    "VARIANTS",
    "WEIGHTED_VARIANTS",
    "id_dropout",
    "is_shared_key",
    "set_path",
    "variant_config",
    "variant_label",
    "variant_overrides",
]

FD_RATE = 0.1
"""Feature-dropout rate of the FD baseline (not stated in the paper; our choice)."""
ID_DROPOUT = FD_RATE
"""Probability with which every variant masks the ``item_id`` of each main-task item, so that
the default embedding cold items are served with is trained in every variant alike: the FD
rate, at which FD masks every feature, ``item_id`` included."""
VALUE_DROPOUT = 0.3
"""Value dropout after RFM/CFM masking: the paper's best rate."""
WEIGHTED_VARIANTS = ("so", "rfm", "cfm")
"""Variants that take alpha: one candidate per alpha of the grid."""


def _two_views(pair: str) -> dict[str, Any]:
    return {
        "name": "two_views",
        "params": {"pair": {"name": pair}, "each": [{"name": "dropout", "params": {"rate": VALUE_DROPOUT}}]},
    }


def id_dropout() -> dict[str, Any]:
    """The main-task augmentation of every variant but FD: ``item_id`` masked with p =
    `ID_DROPOUT` (the ``mask`` plugin)."""
    return {"name": "mask", "params": {"p": ID_DROPOUT, "features": [ITEM_ID_FEATURE]}}


def variant_overrides(name: str, alpha: float) -> dict[str, Any]:
    """Config changes that turn a base config into variant `name` (see the module), with
    weight `alpha` for the weighted variants. Each sets the main task's augmentation: the
    ``item_id`` dropout (`id_dropout`), or FD's feature dropout, which includes it."""
    off = {"feature_dropout": 0.0, "spread_out": 0.0, "augmentation": id_dropout()}
    table = {
        "baseline": {"main": off, "ssl": {"alpha": 0.0}},
        "fd": {"main": {**off, "augmentation": None, "feature_dropout": FD_RATE}, "ssl": {"alpha": 0.0}},
        "so": {"main": {**off, "spread_out": alpha}, "ssl": {"alpha": 0.0}},
        "rfm": {"main": off, "ssl": {"alpha": alpha, "augmentation": _two_views("complementary")}},
        "cfm": {"main": off, "ssl": {"alpha": alpha, "augmentation": _two_views("cfm")}},
    }
    if name not in table:
        raise UnknownNameError("variant", name, VARIANTS)
    return table[name]


_COMMON = {
    "optim.lr": TuneParam(low=3e-4, high=1e-2, log=True),
    "main.temperature": TuneParam(low=0.02, high=0.3, log=True),
    "model.embedding_dim": TuneParam(choices=(16, 32, 64)),
    "optim.weight_decay": TuneParam(choices=(0.0, 1e-6, 1e-5, 1e-4)),
}
_SSL = {
    "ssl.alpha": TuneParam(low=0.03, high=10.0, log=True),
    "ssl.temperature": TuneParam(low=0.05, high=1.0, log=True),
    "ssl.augmentation.params.each.0.params.rate": TuneParam(low=0.0, high=0.6),
}
DEFAULT_SPACES: Mapping[str, Mapping[str, TuneParam]] = {
    "baseline": _COMMON,
    "fd": {**_COMMON, "main.feature_dropout": TuneParam(low=0.05, high=0.5)},
    "so": {**_COMMON, "main.spread_out": TuneParam(low=0.01, high=10.0, log=True)},
    "rfm": {**_COMMON, **_SSL},
    "cfm": {**_COMMON, **_SSL},
}
"""The space of each variant when the config's ``[tune]`` table gives none for it: the
baseline's own parameters (learning rate, main temperature, embedding size, weight decay) for
every variant, plus the variant's: FD's dropout rate, SO's weight, and for RFM/CFM the SSL
weight alpha, the SSL temperature and the value-dropout rate after masking."""

SHARED_KEYS = tuple(_COMMON)
"""The keys every variant's default space searches (`DEFAULT_SPACES`)."""
ALPHA = "alpha"
"""How a budget names the weight of so, rfm and cfm searched by ``augkit compare --alphas``."""
_OWN_KEYS = ("ssl.", "main.spread_out", "main.feature_dropout", "main.augmentation")


def is_shared_key(key: str) -> bool:
    """Whether a searched `key` is one any variant may search (the learning rate, a temperature
    of the main task, ...) rather than a variant's own (`ALPHA`, an ``ssl.*`` key, SO's weight,
    FD's rate, the main task's augmentation)."""
    return key != ALPHA and not any(key == own or key.startswith(own) for own in _OWN_KEYS)


def _merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and key != "augmentation" and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def set_path(data: dict[str, Any], key: str, value: Any, *, where: str) -> None:
    """Set dotted `key` of the config dict `data` to `value` in place. A part that is a number
    indexes a list (``ssl.augmentation.params.each.0.params.rate``); every table and list on the
    way must exist, and the last part must be a key that is there, inside the config's own tables
    (augmentation params may be new). Errors start with `where`."""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        inside_augmentation = "augmentation" in parts[:depth]
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{where}: {key!r}: {part!r} is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node and not (inside_augmentation and (last or part == "params")):
                known = ", ".join(sorted(node)) or "none"
                raise ConfigError(f"{where}: {key!r}: no key {part!r} in {'.'.join(parts[:depth]) or 'the config'} (keys: {known})")
            if last:
                node[part] = value
                return
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"{where}: {key!r}: {'.'.join(parts[:depth])} is a value, not a table or list")


def variant_label(variant: str, alpha: float | None = None, changes: Mapping[str, Any] | None = None) -> str:
    """A candidate's row: ``cfm α=0.3`` (a weighted variant's `alpha`), with the grid values
    after it (``baseline main.temperature=0.1``); the variant's name alone otherwise."""
    label = f"{variant} α={alpha:g}" if alpha is not None else variant
    return " ".join([label, *(f"{k}={_text(v)}" for k, v in (changes or {}).items())])


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _name_part(changes: Mapping[str, Any]) -> str:
    text = "".join(f"-{key.rsplit('.', 1)[-1]}{_text(v)}" for key, v in changes.items())
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def variant_config(
    base: TrainConfig,
    variant: str,
    seed: int,
    alpha: float | None = None,
    changes: Mapping[str, Any] | None = None,
    *,
    row: str | None = None,
) -> TrainConfig:
    """`base` turned into the built-in `variant` with `seed`, weight `alpha` (default
    ``base.ssl.alpha``) and the dotted-key `changes` (see `set_path`), named
    ``<base>-<row>-s<seed>``, ``<base>-<row>-a<alpha>-s<seed>`` when weighted, with
    ``-<key><value>`` for each change, without the ``[tune]`` table; `row` (a defined variant's
    name) defaults to `variant`."""
    alpha = base.ssl.alpha if alpha is None else alpha
    if alpha <= 0:
        raise ConfigError(f"compare: alpha (the SSL/SO weight) must be > 0, got {alpha:g}")
    data = _merge(config_to_dict(base), variant_overrides(variant, alpha))
    where = f"variant {row or variant!r}"
    for key, value in (changes or {}).items():
        set_path(data, key, value, where=where)
    weight = f"-a{alpha:g}" if variant in WEIGHTED_VARIANTS else ""
    data.update(name=f"{base.name}-{row or variant}{weight}{_name_part(changes or {})}-s{seed}", seed=seed, tune=None)
    return config_from_dict(data, source=where)

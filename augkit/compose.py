"""Pipelines of augmentations, the two-view composition, and their config round trip.

Every pipeline is a plain dict ``{"version": 1, "name": ..., "params": {...}}`` (nested for
`Sequential` and `TwoViews`), resolved through the plugin registry, so a TOML/JSON config
reproduces a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import torch

from augkit.augmentation import CONFIG_VERSION, Augmentation, PairAugmentation
from augkit.batch import FeatureBatch
from augkit.errors import ConfigError, check_known_keys
from augkit.random import check_generator
from augkit.registry import Registry, get_registry


def _single_views(instance: Any, attribute: attrs.Attribute, value: tuple) -> None:
    for aug in value:
        if not isinstance(aug, Augmentation):
            raise TypeError(
                f"{type(instance).__name__}.{attribute.name} takes single-view augmentations, "
                f"got {aug!r}"
            )


@attrs.frozen
class Sequential(Augmentation[list]):
    """Apply single-view augmentations one after the other, each with fresh randomness.

    Parameters of every step are drawn from the input batch (its shape and device), in order.
    """

    name: ClassVar[str] = "sequential"
    augmentations: tuple[Augmentation, ...] = attrs.field(converter=tuple, validator=_single_views)

    @property
    def granularity(self) -> str:  # type: ignore[override]
        grains = {a.granularity for a in self.augmentations}
        return "batch" if grains == {"batch"} else "example"

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> list:
        return [a.generate_parameters(batch, generator=generator) for a in self.augmentations]

    def apply(self, batch: FeatureBatch, params: list) -> FeatureBatch:
        for aug, step in zip(self.augmentations, params, strict=True):
            batch = aug.apply(batch, step)
        return batch

    def params(self) -> dict[str, Any]:
        return {"augmentations": [a.to_config() for a in self.augmentations]}


@attrs.frozen
class TwoViews:
    """The paper's two-step augmentation: a pair augmentation, then `each` on both views.

    ``pair`` may be a `PairAugmentation` (complementary, CFM) or a single-view augmentation,
    which is applied to each view with independent randomness. ``each`` (e.g. value dropout)
    is applied to view 1, then to view 2, drawing fresh randomness for each.
    """

    name: ClassVar[str] = "two_views"
    pair: PairAugmentation | Augmentation = attrs.field()
    each: tuple[Augmentation, ...] = attrs.field(default=(), converter=tuple, validator=_single_views)

    @pair.validator
    def _check_pair(self, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, (PairAugmentation, Augmentation)):
            raise TypeError(f"TwoViews.pair takes an augmentation, got {value!r}")

    def __call__(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> tuple[FeatureBatch, FeatureBatch]:
        check_generator(generator, "TwoViews")
        if isinstance(self.pair, PairAugmentation):
            first, second = self.pair(batch, generator=generator)
        else:
            first = self.pair(batch, generator=generator)
            second = self.pair(batch, generator=generator)
        for aug in self.each:
            first = aug(first, generator=generator)
            second = aug(second, generator=generator)
        return first, second

    def params(self) -> dict[str, Any]:
        return {"pair": self.pair.to_config(), "each": [a.to_config() for a in self.each]}

    def to_config(self) -> dict[str, Any]:
        return {"version": CONFIG_VERSION, "name": self.name, "params": self.params()}


def from_config(
    config: Mapping[str, Any], *, registry: Registry | None = None
) -> Augmentation | PairAugmentation | TwoViews:
    """Build an augmentation or pipeline from ``{"version", "name", "params"}``.

    Names resolve through `registry` (the process-wide plugin registry by default);
    ``"sequential"`` and ``"two_views"`` are augkit's own compositions.
    """
    registry = registry or get_registry()
    if not isinstance(config, Mapping):
        raise ConfigError(f"an augmentation config is a dict, got {type(config).__name__}")
    check_known_keys("augmentation config key", config, ("version", "name", "params"))
    if "name" not in config:
        raise ConfigError(f"augmentation config {dict(config)!r} has no 'name'")
    version = config.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(
            f"augmentation config {config['name']!r} has version {version!r}; "
            f"this augkit reads version {CONFIG_VERSION}"
        )
    name, params = config["name"], dict(config.get("params", {}))
    if name == Sequential.name:
        check_known_keys("parameter of 'sequential'", params, ("augmentations",))
        return Sequential([from_config(c, registry=registry) for c in params.get("augmentations", [])])
    if name == TwoViews.name:
        check_known_keys("parameter of 'two_views'", params, ("pair", "each"))
        if "pair" not in params:
            raise ConfigError("'two_views' needs a 'pair' augmentation config")
        return TwoViews(
            pair=from_config(params["pair"], registry=registry),
            each=[from_config(c, registry=registry) for c in params.get("each", [])],
        )
    return registry.create("augmentation", name, params)


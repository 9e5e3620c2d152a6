"""Pipelines of augmentations, the two-view composition, and their config round trip.

Every pipeline is a plain dict ``{"version": 1, "name": ..., "params": {...}}`` (nested for
`Sequential` and `TwoViews`), resolved through the plugin registry, so a TOML/JSON config
reproduces a run.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import attrs
import torch

from augkit.augmentation import CONFIG_VERSION, Augmentation, PairAugmentation, check_pair, check_view
from augkit.batch import FeatureBatch
from augkit.config_io import check_depth
from augkit.errors import AugkitError, ConfigError, PluginError, UnknownNameError, check_known_keys
from augkit.random import check_generator
from augkit.registry import Registry, get_registry

__all__ = ["Sequential", "TwoViews", "from_config", "prepare_config"]


def _as_tuple(value: Any) -> Any:
    """Lists (from TOML/JSON) become tuples; anything else is left for `_single_views`."""
    if isinstance(value, Iterable) and not isinstance(value, (str, Mapping)):
        return tuple(value)
    return value


def _single_views(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, tuple):
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} takes a list of single-view "
            f"augmentations, got {value!r}"
        )
    for aug in value:
        if not isinstance(aug, Augmentation):
            raise TypeError(
                f"{type(instance).__name__}.{attribute.name} takes single-view augmentations, "
                f"got {aug!r}"
            )


def _combined_granularity(steps: tuple[Any, ...]) -> str:
    return "batch" if {s.granularity for s in steps} == {"batch"} else "example"


@attrs.frozen
class Sequential(Augmentation[list]):
    """Apply single-view augmentations one after the other, each with fresh randomness.

    Step i draws its parameters from the output of step i-1, so ``Sequential([a, b])(x)``
    equals ``b(a(x))`` for the same generator state. Parameters: the list of each step's.

    Examples:
        >>> import torch
        >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
        >>> batch = tiny_batch()
        >>> from augkit import Sequential
        >>> from augkit_dropout import ValueDropout
        >>> from augkit_mask import MaskFeatures
        >>> pipeline = Sequential([MaskFeatures(n=1), ValueDropout(rate=0.5)])
        >>> view = pipeline(batch, generator=torch.Generator().manual_seed(0))
        >>> generator = torch.Generator().manual_seed(0)
        >>> by_hand = ValueDropout(rate=0.5)(MaskFeatures(n=1)(batch, generator=generator), generator=generator)
        >>> torch.equal(view.present, by_hand.present), torch.equal(view.kept["tags"], by_hand.kept["tags"])
        (True, True)
        >>> [step["name"] for step in pipeline.to_config()["params"]["augmentations"]]
        ['mask', 'dropout']
    """

    name: ClassVar[str] = "sequential"
    augmentations: tuple[Augmentation, ...] = attrs.field(
        converter=_as_tuple, validator=_single_views
    )

    @property
    def granularity(self) -> str:  # type: ignore[override]
        return _combined_granularity(self.augmentations)

    @property
    def changes_values(self) -> bool:  # type: ignore[override]
        return any(a.changes_values for a in self.augmentations)

    def __call__(self, batch: FeatureBatch, *, generator: torch.Generator) -> FeatureBatch:
        check_generator(generator, "Sequential")
        for aug in self.augmentations:
            batch = check_view(aug.name, batch, aug(batch, generator=generator))
        return batch

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> list:
        """Each step's parameters, drawn from the batch the earlier steps produce (which this
        applies on the way; calling the pipeline draws and applies in one pass)."""
        params = []
        for aug in self.augmentations:
            step = aug.generate_parameters(batch, generator=generator)
            batch = aug.apply(batch, step)
            params.append(step)
        return params

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

    Examples:
        >>> import torch
        >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
        >>> batch = tiny_batch()
        >>> from augkit import TwoViews, from_config
        >>> from augkit_complementary import ComplementaryMasking
        >>> from augkit_dropout import ValueDropout
        >>> two_views = TwoViews(pair=ComplementaryMasking(), each=[ValueDropout(rate=0.5)])
        >>> first, second = two_views(batch, generator=torch.Generator().manual_seed(0))
        >>> first.present ^ second.present  # complementary: each feature is masked in one view
        tensor([[True, True],
                [True, True],
                [True, True]])
        >>> from_config(two_views.to_config()) == two_views
        True
    """

    name: ClassVar[str] = "two_views"
    pair: PairAugmentation | Augmentation = attrs.field()
    each: tuple[Augmentation, ...] = attrs.field(
        default=(), converter=_as_tuple, validator=_single_views
    )

    @pair.validator
    def _check_pair(self, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, (PairAugmentation, Augmentation)):
            raise TypeError(f"TwoViews.pair takes an augmentation, got {value!r}")

    @property
    def granularity(self) -> str:
        """"batch" when every step draws one pattern per batch, else "example"."""
        return _combined_granularity((self.pair, *self.each))

    @property
    def changes_values(self) -> bool:
        return any(a.changes_values for a in (self.pair, *self.each))

    def __call__(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> tuple[FeatureBatch, FeatureBatch]:
        check_generator(generator, "TwoViews")
        pair = self.pair
        if isinstance(pair, PairAugmentation):
            first, second = check_pair(pair.name, batch, pair(batch, generator=generator))
        else:
            first = check_view(pair.name, batch, pair(batch, generator=generator))
            second = check_view(pair.name, batch, pair(batch, generator=generator))
        for aug in self.each:
            first = check_view(aug.name, first, aug(first, generator=generator))
            second = check_view(aug.name, second, aug(second, generator=generator))
        return first, second

    def params(self) -> dict[str, Any]:
        return {"pair": self.pair.to_config(), "each": [a.to_config() for a in self.each]}

    def to_config(self) -> dict[str, Any]:
        return {"version": CONFIG_VERSION, "name": self.name, "params": self.params()}


def from_config(
    config: Mapping[str, Any], *, registry: Registry | None = None, where: str = ""
) -> Augmentation | PairAugmentation | TwoViews:
    """Build an augmentation or pipeline from ``{"version", "name", "params"}``.

    Names resolve through `registry` (the process-wide plugin registry by default);
    ``"sequential"`` and ``"two_views"`` are augkit's own compositions. `where` (a config key
    path such as ``ssl.augmentation``) prefixes every error with the key path at fault, down to
    the parameter: ``ssl.augmentation.params.each[0].params.rate: dropout: rate must be ...``.
    A config whose tables and lists nest deeper than `augkit.config_io.MAX_DEPTH` is a
    `ConfigError` (checked before anything is built).

    Examples:
        >>> from augkit import from_config
        >>> config = {
        ...     "version": 1,
        ...     "name": "two_views",
        ...     "params": {"pair": {"name": "complementary"}, "each": [{"name": "dropout", "params": {"rate": 0.2}}]},
        ... }
        >>> from_config(config)
        TwoViews(pair=ComplementaryMasking(features=None, granularity='example'),
                 each=(ValueDropout(rate=0.2, features=None, granularity='example'),))

        An unknown name gets the registered names and the closest match:

        >>> from_config({"name": "dropuot"}, where="ssl.augmentation")
        Traceback (most recent call last):
        ...
        augkit.errors.UnknownNameError: unknown augmentation 'dropuot'; did you mean 'dropout'? Known: ... (at ssl.augmentation)
    """
    registry = get_registry() if registry is None else registry
    check_depth(config, where or "augmentation config")
    try:
        return _from_config(config, registry, where)
    except UnknownNameError as error:
        if not where:
            raise
        raise UnknownNameError(error.what, error.name, error.known, note=f"{error.note} (at {error.where or where})".lstrip()) from None


def _from_config(
    config: Mapping[str, Any], registry: Registry, where: str
) -> Augmentation | PairAugmentation | TwoViews:
    def fail(message: str, at: str = where) -> ConfigError:
        return ConfigError(f"{at}: {message}" if at else message)

    if not isinstance(config, Mapping):
        raise fail(f"an augmentation config is a dict, got {type(config).__name__}")
    _known_keys(where, "augmentation config key", config, ("version", "name", "params"))
    if "name" not in config:
        raise fail(f"augmentation config {dict(config)!r} has no 'name'")
    version = config.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise fail(
            f"augmentation config {config['name']!r} has version {version!r}; "
            f"this augkit reads version {CONFIG_VERSION}"
        )
    name, params = config["name"], config.get("params", {})
    if not isinstance(name, str):
        raise fail(f"augmentation config 'name' must be a string, got {name!r}")
    if not isinstance(params, Mapping):
        raise fail(f"'params' of augmentation config {name!r} must be a dict, got {type(params).__name__}")
    inner = f"{where}.params" if where else ""
    if name == Sequential.name:
        _known_keys(where, "parameter of 'sequential'", params, ("augmentations",))
        steps = _config_list(params, "augmentations", name)
        return Sequential([_from_config(c, registry, _at(inner, f"augmentations[{i}]")) for i, c in enumerate(steps)])
    if name == TwoViews.name:
        _known_keys(where, "parameter of 'two_views'", params, ("pair", "each"))
        if "pair" not in params:
            raise fail("'two_views' needs a 'pair' augmentation config")
        each = _config_list(params, "each", name)
        return TwoViews(
            pair=_from_config(params["pair"], registry, _at(inner, "pair")),
            each=[_from_config(c, registry, _at(inner, f"each[{i}]")) for i, c in enumerate(each)],
        )
    try:
        built = registry.create("augmentation", name, params)
    except UnknownNameError as error:
        error.where = where
        raise
    except (ValueError, TypeError) as error:
        if isinstance(error, AugkitError) or not where:
            raise
        named = [key for key in params if re.search(rf"\b{re.escape(key)}\b", str(error))]
        raise fail(str(error), f"{inner}.{named[0]}" if len(named) == 1 else inner) from None
    if not isinstance(built, (Augmentation, PairAugmentation)):
        origin = registry.get("augmentation", name)
        raise PluginError(
            f"augmentation {name!r} from distribution {origin.distribution} {origin.version} "
            f"built a {type(built).__name__}, not an augkit Augmentation or PairAugmentation"
        )
    return built


def prepare_config(
    config: Mapping[str, Any],
    corpus: FeatureBatch,
    *,
    allow_stale: bool = False,
    registry: Registry | None = None,
    where: str = "",
) -> dict[str, Any]:
    """A copy of an augmentation config with every entry's parameters prepared for `corpus`.

    The lifecycle of augmentations that need corpus statistics: a registered factory may define
    ``prepare(params, corpus, *, allow_stale) -> dict`` (a classmethod) returning its
    parameters completed from the item corpus it will augment, e.g. ``cfm`` computes its
    mutual information, or checks a given one against the corpus unless `allow_stale`. The
    result is self-contained: `from_config` builds the same pipeline from it in any process.
    Entries without ``prepare``, and malformed entries (which `from_config` reports), are
    copied as they are. Errors name the key path of the entry (`where` prefixes it).

    Examples:
        ``cfm`` without ``mi`` gets the mutual information of the corpus inline:

        >>> import torch
        >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
        >>> batch = tiny_batch()
        >>> from augkit.compose import prepare_config
        >>> config = {"name": "two_views", "params": {"pair": {"name": "cfm"}}}
        >>> prepared = prepare_config(config, batch)
        >>> prepared["params"]["pair"]["params"]["mi"]["names"]
        ['genre', 'tags']
        >>> "mi" in config["params"]["pair"].get("params", {})  # the input is left as it was
        False
    """
    registry = get_registry() if registry is None else registry
    check_depth(config, where or "augmentation config")
    return _prepare(copy.deepcopy(dict(config)), corpus, allow_stale, registry, where)


def _prepare(
    config: dict[str, Any], corpus: FeatureBatch, allow_stale: bool, registry: Registry, where: str
) -> dict[str, Any]:
    name, params = config.get("name"), config.get("params", {})
    if not isinstance(name, str) or not isinstance(params, Mapping):
        return config
    inner = f"{where}.params" if where else "params"
    nested = {Sequential.name: ("augmentations",), TwoViews.name: ("pair", "each")}.get(name)
    if nested is not None:
        for key in nested:
            value = params.get(key)
            if isinstance(value, Mapping):
                params[key] = _prepare(dict(value), corpus, allow_stale, registry, f"{inner}.{key}")
            elif isinstance(value, list):
                params[key] = [
                    _prepare(dict(c), corpus, allow_stale, registry, f"{inner}.{key}[{i}]") if isinstance(c, Mapping) else c
                    for i, c in enumerate(value)
                ]
        return config
    if name not in registry.names("augmentation"):
        return config  # from_config names the unknown name with its closest match
    prepare = getattr(registry.get("augmentation", name).factory, "prepare", None)
    if prepare is None:
        return config
    try:
        config["params"] = dict(prepare(params, corpus, allow_stale=allow_stale))
    except (ConfigError, ValueError, TypeError) as error:
        key, colon, message = str(error).partition(": ")  # "mi: ..." names the parameter at fault
        at = f"{inner}.{key}" if colon and key in params else where
        raise ConfigError(f"{at}: {message if at != where else error}" if at else str(error)) from None
    return config


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else ""


def _known_keys(where: str, what: str, given: Iterable[str], known: tuple[str, ...]) -> None:
    try:
        check_known_keys(what, given, known)
    except UnknownNameError as error:
        error.where = where
        raise


def _config_list(params: Mapping[str, Any], key: str, name: str) -> list[Any]:
    value = params.get(key, [])
    if not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"{key!r} of {name!r} must be a list of augmentation configs, "
            f"got {type(value).__name__}"
        )
    return list(value)

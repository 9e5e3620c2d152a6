"""Plugin loading from the ``augkit`` entry-point group, and registries of factories by kind.

Entry points load one at a time: a plugin that fails to import or to register is recorded in
`Registry.failures` with its distribution, and the others still load; a hook implementation
that no hook specification names (a misspelling) fails the plugin, and a failed plugin keeps none
of its registrations. Set ``AUGKIT_DISABLE_PLUGIN_AUTOLOAD=1`` to load only the plugins built
into augkit.
"""

from __future__ import annotations

import functools
import inspect
import os
import traceback
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import attrs
import pluggy

from augkit import hookspecs
from augkit.errors import PluginError, UnknownNameError

__all__ = ["LoadFailure", "Registration", "Registry", "get_registry", "load_plugins"]

ENTRY_POINT_GROUP = "augkit"
DISABLE_AUTOLOAD_ENV = "AUGKIT_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_DISTRIBUTION = "augkit"

Kind = Literal["augmentation", "loss", "sampler"]
HOOKS: Mapping[str, str] = {
    "augmentation": "augkit_register_augmentations",
    "loss": "augkit_register_losses",
    "sampler": "augkit_register_samplers",
}


@attrs.frozen
class Registration:
    """One name registered by one plugin."""

    kind: str
    name: str
    factory: Callable[..., Any]
    distribution: str
    version: str
    plugin: str

    @property
    def package(self) -> str:
        """The top-level import package of the factory (``augkit_cfm``), to find its frames."""
        return str(getattr(self.factory, "__module__", "") or "").partition(".")[0]

    def describe(self) -> str:
        return f"{self.kind} {self.name!r} from distribution {self.distribution} {self.version}".rstrip()


@attrs.frozen
class LoadFailure:
    """A plugin that could not be imported or could not register."""

    plugin: str
    distribution: str
    version: str
    phase: Literal["import", "register"]
    error: str
    traceback: str = attrs.field(repr=False)

    def describe(self) -> str:
        return (
            f"plugin {self.plugin!r} from distribution {self.distribution} {self.version} "
            f"failed to {self.phase}: {self.error}"
        )


@attrs.define
class Registry:
    """Names to factories, by kind, with the plugin load failures.

    Examples:
        A registry of your own, filled by hand (entry-point plugins fill `get_registry`'s):

        >>> import torch
        >>> from augkit import Registry
        >>> registry = Registry()
        >>> registry.register("loss", "mse", torch.nn.MSELoss)
        >>> registry.names("loss")
        ('mse',)
        >>> registry.get("loss", "mse").describe()
        "loss 'mse' from distribution <local>"
    """

    _entries: dict[str, dict[str, list[Registration]]] = attrs.field(
        factory=lambda: {kind: {} for kind in HOOKS}
    )
    failures: list[LoadFailure] = attrs.field(factory=list)

    def register(
        self,
        kind: str,
        name: str,
        factory: Callable[..., Any],
        *,
        distribution: str = "<local>",
        version: str = "",
        plugin: str = "<local>",
    ) -> None:
        """Add a factory by hand (notebooks, tests); entry-point plugins arrive via hooks."""
        _check_registration(kind, name, factory, plugin)
        self._entries[kind].setdefault(name, []).append(
            Registration(kind, name, factory, distribution, version, plugin)
        )

    def names(self, kind: str) -> tuple[str, ...]:
        """Sorted registered names of `kind`."""
        return tuple(sorted(self._by_kind(kind)))

    def registrations(self) -> list[Registration]:
        """Every registration, conflicts included, sorted by kind and name."""
        return [
            r
            for kind in HOOKS
            for name in sorted(self._entries[kind])
            for r in self._entries[kind][name]
        ]

    def get(self, kind: str, name: str) -> Registration:
        """The one registration of `name`; errors for unknown and conflicting names."""
        found = self._by_kind(kind).get(name)
        if not found:
            raise UnknownNameError(kind, name, self._by_kind(kind), note=self._failures_note(name))
        if len(found) > 1:
            who = " and ".join(f"{r.distribution} {r.version} (plugin {r.plugin!r})" for r in found)
            raise PluginError(
                f"{kind} {name!r} is registered by {who}; uninstall one of them or disable "
                f"autoloading with {DISABLE_AUTOLOAD_ENV}=1"
            )
        return found[0]

    def create(self, kind: str, name: str, params: Mapping[str, Any] | None = None) -> Any:
        """Build `name` with `params`, rejecting unknown parameter names.

        Examples:
            >>> from augkit import get_registry
            >>> get_registry().create("augmentation", "mask", {"p": 0.5})
            MaskFeatures(p=0.5, n=None, features=None, granularity='example')
            >>> get_registry().create("augmentation", "mask", {"p": 0.5, "granularty": "batch"})
            Traceback (most recent call last):
            ...
            augkit.errors.UnknownNameError: unknown parameter of augmentation 'mask' 'granularty'; did you mean 'granularity'? Known: features, granularity, n, p.
        """
        factory = self.get(kind, name).factory
        params = dict(params or {})
        accepted = _parameter_names(factory)
        if accepted is not None:
            for key in params:
                if key not in accepted:
                    raise UnknownNameError(f"parameter of {kind} {name!r}", key, accepted)
        return factory(**params)

    def _failures_note(self, name: object) -> str:
        """Which failed plugins may have provided `name`: the one whose entry point has that
        name for certain, else every plugin that failed to load."""
        exact = [f for f in self.failures if f.plugin == name]
        if exact:
            return f"It would come from {exact[0].describe()}."
        if self.failures:
            return "Plugins that failed to load, one of which may provide it: " + "; ".join(
                f.describe() for f in self.failures
            ) + " (see `augkit plugins`)."
        return ""

    def _by_kind(self, kind: str) -> dict[str, list[Registration]]:
        if kind not in self._entries:
            raise UnknownNameError("plugin kind", kind, self._entries)
        return self._entries[kind]


def _check_registration(kind: str, name: object, factory: object, plugin: str) -> None:
    if kind not in HOOKS:
        raise UnknownNameError("plugin kind", kind, HOOKS)
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(
            f"plugin {plugin!r} registered {kind} name {name!r}; a name must be a Python identifier"
        )
    if not callable(factory):
        raise PluginError(f"plugin {plugin!r} registered {kind} {name!r} with a non-callable {factory!r}")


def _parameter_names(factory: Callable[..., Any]) -> tuple[str, ...] | None:
    """Keyword names `factory` accepts, or None when it takes ``**kwargs``."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.append(parameter.name)
    return tuple(names)


def _distribution(entry_point: EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        return "<unknown>", ""
    return dist.metadata["Name"] or "<unknown>", dist.version or ""


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def load_plugins(
    *,
    autoload: bool | None = None,
    plugins: Iterable[EntryPoint] | None = None,
) -> Registry:
    """A fresh `Registry` with every ``augkit`` entry point loaded.

    `autoload` False (or the environment variable ``AUGKIT_DISABLE_PLUGIN_AUTOLOAD`` set to a
    non-empty value) loads only augkit's own built-ins. `plugins` replaces the entry-point
    scan (tests).
    """
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    registry = Registry()
    found = entry_points(group=ENTRY_POINT_GROUP) if plugins is None else plugins
    for entry_point in sorted(found, key=lambda ep: (_distribution(ep)[0], ep.name)):
        distribution, version = _distribution(entry_point)
        if not autoload and distribution != BUILTIN_DISTRIBUTION:
            continue
        _load_one(manager, registry, entry_point, distribution, version)
    return registry


def _load_one(
    manager: pluggy.PluginManager,
    registry: Registry,
    entry_point: EntryPoint,
    distribution: str,
    version: str,
) -> None:
    plugin_name = f"{distribution}:{entry_point.name}"

    def fail(phase: Literal["import", "register"], error: BaseException) -> None:
        registry.failures.append(
            LoadFailure(
                plugin=entry_point.name,
                distribution=distribution,
                version=version,
                phase=phase,
                error=_describe(error),
                traceback="".join(traceback.format_exception(error)),
            )
        )

    try:
        module = entry_point.load()
    except Exception as error:  # a broken plugin must not take the others down
        fail("import", error)
        return
    staged: list[tuple[str, str, Callable[..., Any]]] = []
    try:
        manager.register(module, name=plugin_name)
        manager.check_pending()  # a misspelled hook name is an error, not a silent no-op
        others = [p for p in manager.get_plugins() if p is not module]
        for kind, hook_name in HOOKS.items():

            def register(name: str, factory: Callable[..., Any], _kind: str = kind) -> None:
                _check_registration(_kind, name, factory, plugin_name)
                staged.append((_kind, name, factory))

            manager.subset_hook_caller(hook_name, remove_plugins=others)(register=register)
    except Exception as error:
        if manager.is_registered(module):
            manager.unregister(module)
        fail("register", error)
        return
    for kind, name, factory in staged:
        registry.register(
            kind, name, factory, distribution=distribution, version=version, plugin=entry_point.name
        )


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, loaded on first use.

    Examples:
        >>> from augkit import get_registry
        >>> {"mask", "dropout", "complementary", "cfm"} <= set(get_registry().names("augmentation"))
        True
        >>> loss = get_registry().create("loss", "info_nce", {"temperature": 0.2})
        >>> type(loss).__name__, loss.temperature
        ('InfoNCELoss', 0.2)
    """
    return load_plugins()

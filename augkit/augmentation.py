"""Base classes of augmentations and their config dicts.

Following kornia, an augmentation draws its random parameters (`generate_parameters`) apart
from applying them (`apply`): parameters are tensors on the batch's device, and applying is
deterministic. Calling the augmentation does both.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Generic, TypeVar

import attrs
import torch

from augkit.batch import FeatureBatch
from augkit.random import check_generator

__all__ = ["CONFIG_VERSION", "Augmentation", "PairAugmentation", "check_pair", "check_view"]

CONFIG_VERSION = 1
"""Version of the ``{"version", "name", "params"}`` config dicts this augkit writes and reads."""

Params = TypeVar("Params")


class _Configurable:
    name: ClassVar[str]
    """The registry name the config dict uses."""

    def params(self) -> dict[str, Any]:
        """Constructor arguments (by their ``__init__`` names) as plain TOML/JSON-able values;
        None (a default) is left out."""
        return {
            field.alias: list(value) if isinstance(value, tuple) else value
            for field in attrs.fields(type(self))  # type: ignore[arg-type]
            if field.init and (value := getattr(self, field.name)) is not None
        }

    def to_config(self) -> dict[str, Any]:
        """``{"version", "name", "params"}``; `augkit.compose.from_config` inverts it."""
        return {"version": CONFIG_VERSION, "name": self.name, "params": self.params()}


class Augmentation(_Configurable, Generic[Params], abc.ABC):
    """One view in, one view out: ``aug(batch, *, generator) -> FeatureBatch``.

    Examples:
        A subclass draws its random parameters in `generate_parameters` and applies them in
        `apply`. This one masks the genre of each example with probability ``p``:

        >>> import attrs
        >>> import torch
        >>> from augkit import Augmentation, Categorical, FeatureBatch, FeatureSchema
        >>> @attrs.frozen
        ... class MaskGenre(Augmentation[torch.Tensor]):
        ...     name = "mask_genre"
        ...     granularity = "example"
        ...     p: float = 0.5
        ...
        ...     def generate_parameters(self, batch, *, generator):
        ...         draws = torch.rand(batch.batch_size, generator=generator)
        ...         return draws.to(batch.device) < self.p
        ...
        ...     def apply(self, batch, params):
        ...         mask = torch.zeros_like(batch.present)
        ...         mask[:, batch.schema.index("genre")] = params
        ...         return batch.mask_features(mask)
        >>> schema = FeatureSchema([Categorical(name="genre", num_values=3), Categorical(name="year", num_values=9)])
        >>> batch = FeatureBatch.from_tensors(schema, {"genre": [0, 1, 2, 0], "year": [5, 6, 7, 8]})
        >>> view = MaskGenre(p=0.5)(batch, generator=torch.Generator().manual_seed(0))
        >>> view.present
        tensor([[False,  True],
                [ True,  True],
                [False,  True],
                [False,  True]])
        >>> MaskGenre(p=0.5).to_config()
        {'version': 1, 'name': 'mask_genre', 'params': {'p': 0.5}}
    """

    granularity: str
    """"example" (a pattern per example) or "batch" (one pattern for the batch)."""
    changes_values: ClassVar[bool] = False
    """True for augmentations that write new value tensors (noise, swaps); False promises
    that only ``present``/``kept`` change and the views share the input's value tensors."""

    @abc.abstractmethod
    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> Params:
        """Draw the random parameters for `batch` (tensors on the batch's device)."""

    @abc.abstractmethod
    def apply(self, batch: FeatureBatch, params: Params) -> FeatureBatch:
        """Apply drawn parameters; deterministic and never mutates `batch`."""

    def __call__(self, batch: FeatureBatch, *, generator: torch.Generator) -> FeatureBatch:
        check_generator(generator, type(self).__name__)
        return self.apply(batch, self.generate_parameters(batch, generator=generator))


class PairAugmentation(_Configurable, Generic[Params], abc.ABC):
    """One batch in, two views out: ``aug(batch, *, generator) -> (view1, view2)``.

    Examples:
        A subclass returns both views from `apply`. This one masks the genre in one view and
        the year in the other, a coin per example deciding which view gets which:

        >>> import attrs
        >>> import torch
        >>> from augkit import Categorical, FeatureBatch, FeatureSchema, PairAugmentation
        >>> @attrs.frozen
        ... class SplitGenreYear(PairAugmentation[torch.Tensor]):
        ...     name = "split_genre_year"
        ...     granularity = "example"
        ...
        ...     def generate_parameters(self, batch, *, generator):
        ...         return torch.rand(batch.batch_size, generator=generator).to(batch.device) < 0.5
        ...
        ...     def apply(self, batch, params):
        ...         first = torch.stack([params, ~params], dim=1)  # columns: genre, year
        ...         return batch.mask_features(first), batch.mask_features(~first)
        >>> schema = FeatureSchema([Categorical(name="genre", num_values=3), Categorical(name="year", num_values=9)])
        >>> batch = FeatureBatch.from_tensors(schema, {"genre": [0, 1, 2, 0], "year": [5, 6, 7, 8]})
        >>> first, second = SplitGenreYear()(batch, generator=torch.Generator().manual_seed(0))
        >>> first.present
        tensor([[False,  True],
                [ True, False],
                [False,  True],
                [False,  True]])
        >>> (first.present ^ second.present).all()  # each feature is kept in exactly one view
        tensor(True)
    """

    granularity: str
    """"example" (a pattern per example) or "batch" (one pattern for the batch)."""
    changes_values: ClassVar[bool] = False
    """As for `Augmentation`."""

    @abc.abstractmethod
    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> Params:
        """Draw the random parameters of both views."""

    @abc.abstractmethod
    def apply(self, batch: FeatureBatch, params: Params) -> tuple[FeatureBatch, FeatureBatch]:
        """Apply drawn parameters; deterministic and never mutates `batch`."""

    def __call__(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> tuple[FeatureBatch, FeatureBatch]:
        check_generator(generator, type(self).__name__)
        return self.apply(batch, self.generate_parameters(batch, generator=generator))


def check_view(who: str, batch: FeatureBatch, view: object) -> FeatureBatch:
    """`view` if it is a view of `batch`: a `FeatureBatch` with its schema, size and device.

    Raises `TypeError` naming `who` (the augmentation) and what came back instead.
    """
    if isinstance(view, FeatureBatch) and view.schema == batch.schema and view.batch_size == batch.batch_size and view.device == batch.device:
        return view
    if isinstance(view, FeatureBatch):
        got = f"a FeatureBatch of {view.batch_size} items on {view.device}"
        if view.schema != batch.schema:
            got += f" with features {list(view.schema.names)}"
    else:
        got = f"a {type(view).__name__}"
    raise TypeError(
        f"augmentation {who!r} returned {got}; expected a FeatureBatch of {batch.batch_size} items "
        f"with features {list(batch.schema.names)} on {batch.device}"
    )


def check_pair(who: str, batch: FeatureBatch, views: object) -> tuple[FeatureBatch, FeatureBatch]:
    """`views` if it is a pair of views of `batch` (see `check_view`)."""
    if not isinstance(views, tuple) or len(views) != 2:
        raise TypeError(f"augmentation {who!r} returned a {type(views).__name__}; expected a pair (view1, view2)")
    return check_view(who, batch, views[0]), check_view(who, batch, views[1])

"""Random feature masking: a masked feature reads as its learned default embedding."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from augkit import validators
from augkit.augmentation import Augmentation
from augkit.batch import FeatureBatch, expand_columns
from augkit.random import uniform


@attrs.frozen(kw_only=True)
class MaskFeatures(Augmentation[torch.Tensor]):
    """Mask each feature with probability ``p``, or exactly ``n`` features, per example.

    ``features`` (a list or tuple of names, never a string) limits masking to those names
    (default: every feature of the batch's schema). ``granularity="batch"`` draws one pattern
    for the whole batch. Parameters: the ``BoolTensor[B, k]`` of features to mask.

    Examples:
        >>> import torch
        >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
        >>> batch = tiny_batch()
        >>> from augkit_mask import MaskFeatures
        >>> view = MaskFeatures(n=1)(batch, generator=torch.Generator().manual_seed(1))
        >>> view.present  # exactly one feature masked per example
        tensor([[ True, False],
                [False,  True],
                [False,  True]])
        >>> MaskFeatures(p=0.5, features=["tags"]).to_config()
        {'version': 1, 'name': 'mask', 'params': {'p': 0.5, 'features': ['tags'], 'granularity': 'example'}}
    """

    name: ClassVar[str] = "mask"
    p: float | None = attrs.field(default=None, validator=validators.optional_probability)
    n: int | None = attrs.field(default=None)
    features: tuple[str, ...] | None = attrs.field(
        default=None, converter=validators.optional_tuple, validator=validators.feature_names
    )
    granularity: str = attrs.field(default="example", validator=validators.granularity)

    @n.validator
    def _check_n(self, attribute: attrs.Attribute, value: int | None) -> None:
        if (value is None) == (self.p is None):
            raise ValueError(f"mask: give exactly one of p (probability) or n (count); got p={self.p!r}, n={value!r}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"mask: n must be a non-negative int, got {value!r}")

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> torch.Tensor:
        columns = batch.schema.indices(self.features)
        if self.n is not None and self.n > len(columns):
            raise ValueError(f"mask: n={self.n} exceeds the {len(columns)} maskable features")
        draws = uniform(
            batch.batch_size,
            (len(columns),),
            granularity=self.granularity,
            generator=generator,
            device=batch.device,
        )
        if self.n is None:
            sub = draws < self.p
        else:
            sub = draws.argsort(dim=1).argsort(dim=1) < self.n
        return expand_columns(sub, columns, len(batch.schema))

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> FeatureBatch:
        return batch.mask_features(params)

"""Random feature masking with complementary views (RFM in Yao et al., CIKM 2021)."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from augkit import validators
from augkit.augmentation import PairAugmentation
from augkit.batch import FeatureBatch, expand_columns
from augkit.random import uniform


@attrs.frozen(kw_only=True)
class ComplementaryMasking(PairAugmentation[torch.Tensor]):
    """Split the features at random into two disjoint halves; each view masks one half.

    Of the k features in ``features`` (a list or tuple of names; default: all), view 1 masks
    ⌊k/2⌋ drawn uniformly and view 2 masks the other ⌈k/2⌉, so the two views' masked sets are
    disjoint and cover the features. Parameters: the ``BoolTensor[B, k_schema]`` masked in
    view 1.

    Examples:
        >>> import torch
        >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
        >>> batch = tiny_batch()
        >>> from augkit_complementary import ComplementaryMasking
        >>> first, second = ComplementaryMasking()(batch, generator=torch.Generator().manual_seed(1))
        >>> first.present
        tensor([[ True, False],
                [False,  True],
                [False,  True]])
        >>> second.present
        tensor([[False,  True],
                [ True, False],
                [ True, False]])
    """

    name: ClassVar[str] = "complementary"
    features: tuple[str, ...] | None = attrs.field(
        default=None, converter=validators.optional_tuple, validator=validators.feature_names
    )
    granularity: str = attrs.field(default="example", validator=validators.granularity)

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> torch.Tensor:
        columns = batch.schema.indices(self.features)
        draws = uniform(
            batch.batch_size,
            (len(columns),),
            granularity=self.granularity,
            generator=generator,
            device=batch.device,
        )
        first = draws.argsort(dim=1).argsort(dim=1) < len(columns) // 2
        return expand_columns(first, columns, len(batch.schema))

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> tuple[FeatureBatch, FeatureBatch]:
        columns = batch.schema.indices(self.features)
        covered = expand_columns(
            torch.ones(1, len(columns), dtype=torch.bool, device=params.device),
            columns,
            len(batch.schema),
        )
        return batch.mask_features(params), batch.mask_features(covered & ~params)

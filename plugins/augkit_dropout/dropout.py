"""Value dropout: drop ids from multi-valued features, never emptying a bag."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch

from augkit import validators
from augkit.augmentation import Augmentation
from augkit.batch import FeatureBatch
from augkit.random import uniform
from augkit.schema import MultiCategorical


@attrs.frozen(kw_only=True)
class ValueDropout(Augmentation[dict[str, torch.Tensor]]):
    """Drop each kept value of a multi-valued feature with probability ``rate``.

    ``rate`` defaults to 0.3, the best rate in Yao et al. (CIKM 2021). A bag that had values
    keeps at least one: if every value would drop, the value with the largest draw stays
    (uniform among the bag's values). Rewrites ``kept`` only. ``features`` (a list or tuple
    of names; default: every multi-valued feature) must name multi-valued features.
    Parameters: per feature, the ``FloatTensor[B, max_len]`` of U[0, 1) draws; a value drops
    where its draw is below ``rate``.

    Examples:
        >>> import torch
        >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
        >>> batch = tiny_batch()
        >>> from augkit_dropout import ValueDropout
        >>> view = ValueDropout(rate=0.5)(batch, generator=torch.Generator().manual_seed(0))
        >>> batch.kept["tags"]
        tensor([[ True,  True,  True],
                [ True,  True, False],
                [ True, False, False]])
        >>> view.kept["tags"]  # every bag keeps at least one value
        tensor([[False,  True, False],
                [False,  True, False],
                [ True, False, False]])
    """

    name: ClassVar[str] = "dropout"
    rate: float = attrs.field(default=0.3, validator=validators.probability)
    features: tuple[str, ...] | None = attrs.field(
        default=None, converter=validators.optional_tuple, validator=validators.feature_names
    )
    granularity: str = attrs.field(default="example", validator=validators.granularity)

    def _targets(self, batch: FeatureBatch) -> tuple[MultiCategorical, ...]:
        schema = batch.schema
        if self.features is None:
            if not schema.multi_valued:
                raise ValueError(
                    "dropout: the schema has no multi-valued feature to drop values from "
                    f"(features: {', '.join(schema.names)})"
                )
            names = schema.multi_valued
        else:
            names = self.features
        specs = tuple(schema[name] for name in names)
        for spec in specs:
            if not isinstance(spec, MultiCategorical):
                raise ValueError(
                    f"dropout: feature {spec.name!r} is {type(spec).__name__}; "
                    "value dropout applies to MultiCategorical features"
                )
        return specs  # type: ignore[return-value]

    def generate_parameters(
        self, batch: FeatureBatch, *, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        return {
            spec.name: uniform(
                batch.batch_size,
                (spec.max_len,),
                granularity=self.granularity,
                generator=generator,
                device=batch.device,
            )
            for spec in self._targets(batch)
        }

    def apply(self, batch: FeatureBatch, params: dict[str, torch.Tensor]) -> FeatureBatch:
        kept = {}
        for name, draws in params.items():
            before = batch.kept[name]
            after = before & (draws >= self.rate)
            # The bag's largest draw (first on ties; -1 where the bag is empty) and its slot.
            # A non-empty bag keeps that slot: either it is the rescued value (every draw fell
            # below the rate) or its draw is >= the rate and `after` already keeps it. So one
            # scatter of "the bag is non-empty" rescues exactly the bags that emptied.
            largest, survivor = torch.where(before, draws, -1.0).max(dim=1, keepdim=True)
            kept[name] = after.scatter_(1, survivor, largest >= 0)
        return batch.with_kept(kept)

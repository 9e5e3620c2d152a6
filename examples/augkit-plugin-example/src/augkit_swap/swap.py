"""Feature swap: an item takes some of its categorical features from another item of the batch."""

from __future__ import annotations

from typing import ClassVar

import attrs
import torch
from augkit import Augmentation, FeatureBatch, validators
from augkit.batch import expand_columns
from augkit.random import uniform
from augkit.schema import Categorical, FeatureSchema, MultiCategorical


@attrs.frozen
class SwapParameters:
    """The random parameters of `FeatureSwap` for a batch of B items and k features.

    * ``partner``: ``LongTensor[B]``, the item whose features item i takes. It is one cycle
      through the whole batch, so ``partner[i] != i`` whenever ``B > 1``.
    * ``swap``: ``BoolTensor[B, k]``, column j for ``schema.features[j]``: True where item i
      takes feature j from ``partner[i]``; always False for features the swap leaves alone.
    """

    partner: torch.Tensor
    swap: torch.Tensor


@attrs.frozen(kw_only=True)
class FeatureSwap(Augmentation[SwapParameters]):
    """With probability ``p`` per item and feature, replace the feature with another item's.

    A swapped feature takes the partner item's value tensor row and its ``present`` bit (and,
    for a bag, its ``kept`` row), so a swapped-in missing feature stays missing and every id
    read is one the batch already holds. ``features`` (default: every `Categorical` and
    `MultiCategorical` feature) must name categorical or multi-categorical features.
    ``granularity="batch"`` decides per feature for the whole batch: all items swap it or none.
    Value tensors are new for the swappable features and shared for the others.
    """

    name: ClassVar[str] = "swap"
    changes_values: ClassVar[bool] = True
    p: float = attrs.field(default=0.1, validator=validators.probability)
    features: tuple[str, ...] | None = attrs.field(
        default=None, converter=validators.optional_tuple, validator=validators.feature_names
    )
    granularity: str = attrs.field(default="example", validator=validators.granularity)

    def columns(self, schema: FeatureSchema) -> tuple[int, ...]:
        """Columns of `schema` the swap may change; errors name a feature it cannot swap."""
        if self.features is None:
            columns = tuple(
                j for j, spec in enumerate(schema) if isinstance(spec, (Categorical, MultiCategorical))
            )
            if not columns:
                raise ValueError(
                    "swap: the schema has no categorical or multi-categorical feature to swap "
                    f"(features: {', '.join(schema.names)})"
                )
            return columns
        columns = schema.indices(self.features)
        for j in columns:
            spec = schema.features[j]
            if not isinstance(spec, (Categorical, MultiCategorical)):
                raise ValueError(
                    f"swap: feature {spec.name!r} is {type(spec).__name__}; feature swap applies "
                    "to Categorical and MultiCategorical features"
                )
        return columns

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> SwapParameters:
        columns = self.columns(batch.schema)
        size, device = batch.batch_size, batch.device
        # A random cycle: order[i] takes from order[i + 1], the last from the first. Drawn on the
        # generator's device, so a CPU generator gives the same views on every device.
        order = torch.randperm(size, generator=generator, device=generator.device)
        order = order.to(device, non_blocking=device.type != "cpu")
        partner = torch.empty_like(order).index_copy(0, order, order.roll(-1))
        draws = uniform(
            size, (len(columns),), granularity=self.granularity, generator=generator, device=device
        )
        swap = expand_columns(draws < self.p, columns, len(batch.schema))
        return SwapParameters(partner=partner, swap=swap)

    def apply(self, batch: FeatureBatch, params: SwapParameters) -> FeatureBatch:
        partner, swap = params.partner, params.swap
        values: dict[str, torch.Tensor] = {}
        kept: dict[str, torch.Tensor] = {}
        for j in self.columns(batch.schema):
            name = batch.schema.features[j].name
            value = batch.values[name]
            take = swap[:, j] if value.ndim == 1 else swap[:, j].unsqueeze(1)
            values[name] = torch.where(take, value.index_select(0, partner), value)
            if name in batch.kept:
                mask = batch.kept[name]
                kept[name] = torch.where(take, mask.index_select(0, partner), mask)
        present = torch.where(swap, batch.present.index_select(0, partner), batch.present)
        return batch.evolve(values={**batch.values, **values}, present=present, kept={**batch.kept, **kept})

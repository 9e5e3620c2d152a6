"""Correlated feature masking (CFM in Yao et al., CIKM 2021)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import numpy as np
import torch

from augkit import validators
from augkit.augmentation import PairAugmentation
from augkit.batch import FeatureBatch, expand_columns
from augkit.errors import AugkitError, BatchValidationError
from augkit.random import randint
from augkit_cfm.columns import column
from augkit_cfm.mutual_information import CORRELATIONS, MutualInformation, compute_mutual_information


def _as_mutual_information(value: Any) -> MutualInformation:
    """Converter: a `MutualInformation`, its `to_dict` dict, or the path of its JSON file."""
    if isinstance(value, MutualInformation):
        return value
    if isinstance(value, Mapping):
        return MutualInformation.from_dict(value)
    if isinstance(value, (str, os.PathLike)):
        return MutualInformation.load(value)
    raise TypeError(
        "cfm: mi must be a MutualInformation, its to_dict() dict or a path to its JSON file, "
        f"got {type(value).__name__}"
    )


SPARSE_COVERAGE = 0.5
"""A feature present (and, for a bag, non-empty) for fewer than this share of the items is
sparse, for `CorrelatedFeatureMasking.split_report`."""


@functools.lru_cache(maxsize=64)
def _table_on(rows: tuple[tuple[bool, ...], ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool, device=device)


@attrs.frozen(kw_only=True)
class CorrelatedFeatureMasking(PairAugmentation[torch.Tensor]):
    """Mask a seed feature with its most correlated features in view 1, the rest in view 2.

    Of the k features of ``mi`` (a `MutualInformation`, its dict, or a path to its JSON), a
    seed is drawn uniformly. View 1 masks the seed and its ``n_correlates`` features of largest
    MI (default ⌊k/2⌋, at most k-1; ties go to the feature first in ``mi.names``); view 2 masks
    the other features of ``mi``. The seed is always masked in view 1. Features of the batch
    that are not in ``mi`` are never masked; every feature of ``mi`` must be in the batch.
    ``granularity="batch"`` (the paper) draws one seed per batch, ``"example"`` one per
    example. Parameters: the seeds, ``LongTensor[B]`` of positions in ``mi.names``.

    ``correlation`` ranks the correlates: ``"mi"`` (default, the paper) by raw mutual
    information, ``"symmetric_uncertainty"`` by ``SU = 2 MI(X, Y) / (H(X) + H(Y))``
    (`MutualInformation.symmetric_uncertainty`, the diagonal as entropies). Raw MI of a key
    feature (``item_id``: MI(id, X) = H(X)) is the largest any feature can have with X, so
    the key is every seed's top correlate; SU divides by the key's large entropy, so a
    feature that really tracks the seed ranks first.

    Built directly, CFM trusts its ``mi``: it has no corpus to check the matrix against, and a
    batch is a sample of items whose columns never match the corpus fingerprints, so no check
    at call time can tell a stale matrix. Check it against the item corpus with
    `augkit.compose.prepare_config` (the trainer does; ``prepare(params, corpus)`` below): a
    matrix computed from other data is an error naming the features that changed.

    Examples:
        ``subgenre`` follows ``genre``; ``year`` is independent of both:

        >>> import torch
        >>> from augkit import Categorical, FeatureBatch, FeatureSchema
        >>> schema = FeatureSchema(
        ...     [Categorical(name=name, num_values=4) for name in ("genre", "subgenre", "year")]
        ... )
        >>> genre = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        >>> corpus = FeatureBatch.from_tensors(
        ...     schema, {"genre": genre, "subgenre": genre, "year": torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])}
        ... )
        >>> from augkit_cfm import CorrelatedFeatureMasking, compute_mutual_information
        >>> cfm = CorrelatedFeatureMasking(mi=compute_mutual_information(corpus), n_correlates=1)
        >>> cfm.masked_set("genre")
        ('genre', 'subgenre')
        >>> first, second = cfm(corpus, generator=torch.Generator().manual_seed(1))
        >>> first.present[0], second.present[0]  # one seed for the batch: every row is alike
        (tensor([False, False,  True]), tensor([ True,  True, False]))
    """

    name: ClassVar[str] = "cfm"
    mi: MutualInformation = attrs.field(converter=_as_mutual_information)
    n_correlates: int | None = attrs.field(default=None)
    granularity: str = attrs.field(default="batch", validator=validators.granularity)
    correlation: str = attrs.field(default="mi")
    _table: tuple[tuple[bool, ...], ...] = attrs.field(init=False, repr=False, eq=False)

    @mi.validator
    def _check_mi(self, attribute: attrs.Attribute, value: MutualInformation) -> None:
        if len(value.names) < 2:
            raise ValueError(f"cfm: mi must cover at least 2 features, got {list(value.names)}")

    @n_correlates.validator
    def _check_n(self, attribute: attrs.Attribute, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"cfm: n_correlates must be None or a non-negative int, got {value!r}")

    @correlation.validator
    def _check_correlation(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in CORRELATIONS:
            raise ValueError(f"cfm: correlation must be one of {', '.join(CORRELATIONS)}, got {value!r}")

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_table", self._masked_sets())

    @classmethod
    def prepare(cls, params: Mapping[str, Any], corpus: FeatureBatch, *, allow_stale: bool = False) -> dict[str, Any]:
        """`params` for the item `corpus` (the augmentation lifecycle, `augkit.compose.prepare_config`):
        without ``mi``, the mutual information of `corpus` (items weighted uniformly, the SSL
        task's distribution) inline; with one, the same `params` once every feature of the
        matrix is in `corpus` with the fingerprint it was computed from (a stale matrix is a
        `ValueError` naming the features, unless `allow_stale`)."""
        if "mi" not in params:
            return {**params, "mi": compute_mutual_information(corpus).to_dict()}
        try:
            matrix = _as_mutual_information(params["mi"])
        except (AugkitError, ValueError, TypeError, KeyError, OSError) as error:
            raise ValueError(f"mi: not a mutual-information matrix ({error})") from None
        absent = [name for name in matrix.names if name not in corpus.schema]
        if absent:
            raise ValueError(f"mi: the MI names features {absent} that the item corpus lacks")
        stale = [name for name in matrix.names if column(corpus, name).fingerprint() != matrix.fingerprints[name]]
        if stale and not allow_stale:
            raise ValueError(
                f"mi: the MI is stale: features {stale} differ from the item corpus it was computed "
                "from (fingerprint mismatch); remove mi to compute it from this corpus, recompute it with "
                "`augkit mi`, or allow stale statistics (the trainer's ssl.allow_stale_mi = true)"
            )
        return dict(params)

    @property
    def correlates(self) -> int:
        """How many correlates view 1 masks with the seed: ``n_correlates`` or ⌊k/2⌋, at most k-1."""
        k = len(self.mi.names)
        return min(k // 2 if self.n_correlates is None else self.n_correlates, k - 1)

    def masked_set(self, seed: str) -> tuple[str, ...]:
        """Features view 1 masks for `seed`: the seed, then its top correlates."""
        return (seed, *self.mi.top_correlates(seed, self.correlates, self.correlation))

    def split_report(self, corpus: FeatureBatch) -> tuple[str, ...]:
        """Human-readable lines: for each seed, the features view 1 masks and those view 2
        masks; then a ``note:`` for each feature that dominates the splits.

        The rule: a feature is *sparse* when fewer than `SPARSE_COVERAGE` (half) of the items
        of `corpus` have it, and it *dominates* when it is a correlate (masked with the seed,
        not the seed itself) of more than half of the other seeds. Most items lack it, so for
        most items those splits mask less than they name, and the two views are often a
        single feature against the rest: the split the plug-in MI of a sparse feature of many
        values tends to give."""
        names = self.mi.names
        lines = []
        for seed in names:
            first = self.masked_set(seed)
            second = [name for name in names if name not in first]
            lines.append(f"seed {seed}: view 1 masks {', '.join(first)}; view 2 masks {', '.join(second)}")
        for name in names:
            coverage = float((column(corpus, name).sizes > 0).mean())
            seeds = sum(name in self.masked_set(seed)[1:] for seed in names if seed != name)
            if coverage < SPARSE_COVERAGE and seeds > (len(names) - 1) / 2:
                lines.append(
                    f"note: {name!r}, present for {coverage:.0%} of the items, is masked with {seeds} of the "
                    f"{len(names) - 1} other seeds, so for most items those views mask less than they name; if "
                    "the SSL loss stays near chance, try correlation = 'symmetric_uncertainty' and "
                    "granularity = 'example' (docs: how-to/is-ssl-learning)"
                )
        return tuple(lines)

    def _masked_sets(self) -> tuple[tuple[bool, ...], ...]:
        """Row s: which features of ``mi.names`` view 1 masks for seed s."""
        names = self.mi.names
        table = np.zeros((len(names), len(names)), dtype=bool)
        for s, seed in enumerate(names):
            table[s, [self.mi.index(n) for n in self.masked_set(seed)]] = True
        return tuple(map(tuple, table.tolist()))

    def _columns(self, batch: FeatureBatch) -> tuple[int, ...]:
        absent = [n for n in self.mi.names if n not in batch.schema]
        if absent:
            raise BatchValidationError(
                f"cfm: the batch lacks feature(s) {', '.join(map(repr, absent))} of its "
                f"mutual-information matrix; the batch's schema has {', '.join(batch.schema.names)}"
            )
        return batch.schema.indices(self.mi.names)

    def generate_parameters(self, batch: FeatureBatch, *, generator: torch.Generator) -> torch.Tensor:
        self._columns(batch)
        return randint(
            len(self.mi.names),
            batch.batch_size,
            granularity=self.granularity,
            generator=generator,
            device=batch.device,
        )

    def apply(self, batch: FeatureBatch, params: torch.Tensor) -> tuple[FeatureBatch, FeatureBatch]:
        columns = self._columns(batch)
        first = _table_on(self._table, params.device).index_select(0, params)
        width = len(batch.schema)
        return (
            batch.mask_features(expand_columns(first, columns, width)),
            batch.mask_features(expand_columns(~first, columns, width)),
        )

    def params(self) -> dict[str, Any]:
        """Constructor arguments with ``mi`` inline as its dict, so a config is self-contained."""
        out: dict[str, Any] = {"mi": self.mi.to_dict(), "granularity": self.granularity}
        if self.n_correlates is not None:
            out["n_correlates"] = self.n_correlates
        if self.correlation != "mi":
            out["correlation"] = self.correlation
        return out

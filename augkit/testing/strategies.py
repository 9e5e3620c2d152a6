"""Test data for augmentations: Hypothesis strategies, and a seeded batch builder.

Every batch is built through `FeatureBatch.from_tensors` from user data, so it holds missing
values (``-1``), partially padded bags, empty bags and whole features marked missing. Feature
names tell their kind: ``cat0``, ``bag1``, ``dense2`` (the number is the schema column).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augkit.batch import FeatureBatch
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, FeatureSpec, MultiCategorical

KINDS: tuple[str, ...] = ("categorical", "multi_categorical", "dense")
"""The feature kinds `schemas` draws from."""

_PREFIX = {"categorical": "cat", "multi_categorical": "bag", "dense": "dense"}

EXAMPLE_SCHEMA = FeatureSchema(
    [
        Categorical(name="genre", num_values=5),
        MultiCategorical(name="tags", num_values=9, max_len=4),
        Categorical(name="year", num_values=12),
        MultiCategorical(name="actors", num_values=6, max_len=3),
        Dense(name="price", dim=2),
    ]
)
"""A small schema with every feature kind, the default of `augkit.testing.checks`."""


class _SeededGenerator(torch.Generator):
    """A `torch.Generator` whose repr is the code that rebuilds it (for Hypothesis reports)."""

    def __new__(cls, seed: int, device: str | torch.device = "cpu") -> Self:
        generator = super().__new__(cls, device)
        generator.manual_seed(seed)
        return generator

    def __repr__(self) -> str:
        return f"torch.Generator({str(self.device)!r}).manual_seed({self.initial_seed()})"


def _check_range(name: str, low: int, high: int, *, minimum: int) -> None:
    for label, value in ((f"min_{name}", low), (f"max_{name}", high)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{label} must be an int >= {minimum}, got {value!r}")
    if low > high:
        raise ValueError(f"min_{name}={low} exceeds max_{name}={high}")


def _check_bound(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_kinds(name: str, kinds: Sequence[str]) -> tuple[str, ...]:
    unknown = [k for k in kinds if k not in KINDS]
    if isinstance(kinds, str) or unknown:
        raise ValueError(f"{name} must be a sequence of {', '.join(KINDS)}; got {kinds!r}")
    return tuple(kinds)


def seeds() -> st.SearchStrategy[int]:
    """Seeds for `torch.Generator.manual_seed`: ints in ``0 .. 2**32 - 1``."""
    return st.integers(min_value=0, max_value=2**32 - 1)


def generators(*, device: str | torch.device = "cpu") -> st.SearchStrategy[torch.Generator]:
    """Fresh `torch.Generator`s on `device`, seeded from `seeds`.

    Their repr (in a falsifying example) is ``torch.Generator('cpu').manual_seed(SEED)``.
    """
    return seeds().map(lambda seed: _SeededGenerator(seed, device))


def schemas(
    *,
    min_features: int = 1,
    max_features: int = 8,
    kinds: Sequence[str] = KINDS,
    required_kinds: Sequence[str] = (),
    max_values: int = 12,
    max_len: int = 5,
    max_dim: int = 4,
) -> st.SearchStrategy[FeatureSchema]:
    """`FeatureSchema`s of ``min_features .. max_features`` features of `kinds`.

    Each kind in `required_kinds` appears at least once (e.g. ``("multi_categorical",)`` for
    value dropout). Categorical features get ``1 .. max_values`` ids, bags ``1 .. max_len``
    slots, dense features ``1 .. max_dim`` values.
    """
    kinds = _check_kinds("kinds", kinds)
    required = _check_kinds("required_kinds", required_kinds)
    _check_range("features", min_features, max_features, minimum=1)
    for name, bound in (("max_values", max_values), ("max_len", max_len), ("max_dim", max_dim)):
        _check_bound(name, bound)
    if not kinds:
        raise ValueError("kinds must name at least one feature kind")
    if len(required) > max_features:
        raise ValueError(
            f"required_kinds {list(required)} need more than max_features={max_features} features"
        )
    return _schemas(
        st.lists(
            st.sampled_from(kinds),
            min_size=max(min_features - len(required), 0),
            max_size=max_features - len(required),
        ).flatmap(lambda extra: st.permutations([*required, *extra])),
        max_values=max_values,
        max_len=max_len,
        max_dim=max_dim,
    )


@st.composite
def _schemas(
    draw: st.DrawFn,
    kinds: st.SearchStrategy[list[str]],
    *,
    max_values: int,
    max_len: int,
    max_dim: int,
) -> FeatureSchema:
    specs: list[FeatureSpec] = []
    for column, kind in enumerate(draw(kinds)):
        name = f"{_PREFIX[kind]}{column}"
        if kind == "dense":
            specs.append(Dense(name=name, dim=draw(st.integers(1, max_dim))))
            continue
        num_values = draw(st.integers(1, max_values))
        if kind == "categorical":
            specs.append(Categorical(name=name, num_values=num_values))
        else:
            length = draw(st.integers(1, max_len))
            specs.append(MultiCategorical(name=name, num_values=num_values, max_len=length))
    return FeatureSchema(specs)


def _ids(num_values: int) -> st.SearchStrategy[int]:
    """An id or, one time in three, ``MISSING``."""
    real = st.integers(0, num_values - 1)
    return st.one_of(st.just(MISSING), real, real)


@st.composite
def _batch(
    draw: st.DrawFn,
    schema: FeatureSchema,
    *,
    min_size: int,
    max_size: int,
    device: str | torch.device | None,
) -> FeatureBatch:
    size = draw(st.integers(min_size, max_size))
    values: dict[str, np.ndarray] = {}
    for spec in schema:
        if isinstance(spec, Dense):
            floats = st.floats(-1e3, 1e3, allow_nan=False, width=32)
            values[spec.name] = draw(hnp.arrays(np.float32, (size, spec.dim), elements=floats))
        elif isinstance(spec, Categorical):
            values[spec.name] = draw(hnp.arrays(np.int64, (size,), elements=_ids(spec.num_values)))
        else:
            width = draw(st.integers(0, spec.max_len))  # from_tensors pads to max_len
            values[spec.name] = draw(
                hnp.arrays(np.int64, (size, width), elements=_ids(spec.num_values))
            )
    present = draw(st.none() | hnp.arrays(np.bool_, (size, len(schema)), elements=st.booleans()))
    return FeatureBatch.from_tensors(schema, values, present=present, device=device)


def batches(
    schema: FeatureSchema,
    *,
    min_size: int = 1,
    max_size: int = 16,
    device: str | torch.device | None = None,
) -> st.SearchStrategy[FeatureBatch]:
    """Valid `FeatureBatch`es of `schema` with ``min_size .. max_size`` items on `device`.

    Ids are missing (``-1``) about one time in three; bags come in any width up to
    ``max_len`` (so partially padded and empty bags are common); and an optional ``present``
    mask marks further features, dense ones included, as missing.
    """
    if not isinstance(schema, FeatureSchema):
        raise TypeError(f"batches: schema must be a FeatureSchema, got {type(schema).__name__}")
    _check_range("size", min_size, max_size, minimum=0)
    return _batch(schema, min_size=min_size, max_size=max_size, device=device)


def schemas_and_batches(
    *,
    min_features: int = 1,
    max_features: int = 8,
    kinds: Sequence[str] = KINDS,
    required_kinds: Sequence[str] = (),
    max_values: int = 12,
    max_len: int = 5,
    max_dim: int = 4,
    min_size: int = 1,
    max_size: int = 16,
    device: str | torch.device | None = None,
) -> st.SearchStrategy[tuple[FeatureSchema, FeatureBatch]]:
    """``(schema, batch)`` pairs: a schema from `schemas`, then a batch of it from `batches`."""
    _check_range("size", min_size, max_size, minimum=0)
    return schemas(
        min_features=min_features,
        max_features=max_features,
        kinds=kinds,
        required_kinds=required_kinds,
        max_values=max_values,
        max_len=max_len,
        max_dim=max_dim,
    ).flatmap(
        lambda schema: st.tuples(
            st.just(schema), batches(schema, min_size=min_size, max_size=max_size, device=device)
        )
    )


def tiny_batch() -> FeatureBatch:
    """Three items with a ``genre`` (3 values) and a ``tags`` bag (5 values, at most 3; padding
    reads as the default id 5, not kept): the fixed batch of augkit's docstring examples, small enough to read views by eye.

    Examples:
        >>> from augkit.testing import tiny_batch
        >>> batch = tiny_batch()
        >>> batch.schema.names, batch.values["genre"]
        (('genre', 'tags'), tensor([2, 0, 1]))
        >>> batch.values["tags"]
        tensor([[4, 0, 1],
                [2, 3, 5],
                [1, 5, 5]])
        >>> batch.kept["tags"]
        tensor([[ True,  True,  True],
                [ True,  True, False],
                [ True, False, False]])
    """
    schema = FeatureSchema(
        [Categorical(name="genre", num_values=3), MultiCategorical(name="tags", num_values=5, max_len=3)]
    )
    return FeatureBatch.from_tensors(schema, {"genre": [2, 0, 1], "tags": [[4, 0, 1], [2, 3, -1], [1, -1, -1]]})


def random_batch(
    schema: FeatureSchema,
    batch_size: int = 64,
    *,
    generator: torch.Generator,
    device: str | torch.device | None = None,
    missing: float = 0.2,
) -> FeatureBatch:
    """A seeded batch of `schema` without Hypothesis (for fixtures and the conformance checks).

    Ids are uniform; each single id and each bag slot is missing with probability `missing`;
    bag widths are uniform on ``0 .. max_len`` (padding at the end, so some bags are empty);
    each feature is marked missing with probability ``missing / 2``. Draws come from the CPU
    `generator`, then move to `device`.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"random_batch: batch_size must be an int >= 0, got {batch_size!r}")
    if isinstance(missing, bool) or not isinstance(missing, (int, float)) or not 0 <= missing <= 1:
        raise ValueError(f"random_batch: missing must be a probability in [0, 1], got {missing!r}")
    values: dict[str, torch.Tensor] = {}
    for spec in schema:
        if isinstance(spec, Dense):
            values[spec.name] = torch.randn((batch_size, spec.dim), generator=generator)
            continue
        shape = (batch_size,) if isinstance(spec, Categorical) else (batch_size, spec.max_len)
        ids = torch.randint(spec.num_values, shape, generator=generator)
        holes = torch.rand(shape, generator=generator) < missing
        if isinstance(spec, MultiCategorical):
            widths = torch.randint(spec.max_len + 1, (batch_size, 1), generator=generator)
            holes |= torch.arange(spec.max_len) >= widths
        values[spec.name] = ids.masked_fill(holes, MISSING)
    present = torch.rand((batch_size, len(schema)), generator=generator) >= missing / 2
    return FeatureBatch.from_tensors(schema, values, present=present, device=device)

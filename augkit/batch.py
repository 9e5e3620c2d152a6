"""`FeatureBatch`: the values of B items plus the masks that augmentations rewrite."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs
import numpy as np
import torch

from augkit.config_io import MAX_DEPTH
from augkit.errors import BatchValidationError, UnknownNameError
from augkit.schema import MISSING, Categorical, Dense, FeatureSchema, FeatureSpec, MultiCategorical

__all__ = ["FeatureBatch", "expand_columns"]

TensorLike = torch.Tensor | np.ndarray | list


def _frozen_mapping(value: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if not isinstance(value, Mapping):
        raise TypeError(f"FeatureBatch values and kept masks are mappings of feature name to tensor, got {type(value).__name__}")
    return MappingProxyType(dict(value))


@attrs.frozen(eq=False)
class FeatureBatch:
    """B items of one schema. Immutable: use `evolve`, `mask_features` or `with_kept`.

    * ``values[name]``: ``LongTensor[B]`` (categorical, ``default_id`` where missing),
      ``LongTensor[B, max_len]`` (multi-valued, ``padding_id`` where padding) or
      ``FloatTensor[B, dim]`` (dense, zeros where missing).
    * ``present``: ``BoolTensor[B, k]``, column j for ``schema.features[j]``; False where the
      whole feature is masked or missing.
    * ``kept[name]`` (multi-valued only): ``BoolTensor[B, max_len]``; False for padding and for
      dropped values.

    Build one from user data with `from_tensors`, which validates everything. The plain
    constructor checks structure (keys, shapes, dtypes, devices) only, so that augmentations
    stay free of host syncs.

    Examples:
        Two items: the second has no genre and an empty bag of tags.

        >>> import torch
        >>> from augkit import Categorical, FeatureBatch, FeatureSchema, MultiCategorical
        >>> schema = FeatureSchema(
        ...     [Categorical(name="genre", num_values=3), MultiCategorical(name="tags", num_values=5, max_len=3)]
        ... )
        >>> batch = FeatureBatch.from_tensors(schema, {"genre": [2, -1], "tags": [[4, 0], [-1, -1]]})
        >>> batch.present  # column j: schema.features[j]
        tensor([[ True,  True],
                [False, False]])
        >>> batch.values["tags"]  # padded to max_len with padding_id 5
        tensor([[4, 0, 5],
                [5, 5, 5]])
        >>> batch.kept["tags"]
        tensor([[ True,  True, False],
                [False, False, False]])
    """

    schema: FeatureSchema
    values: Mapping[str, torch.Tensor] = attrs.field(converter=_frozen_mapping)
    present: torch.Tensor
    kept: Mapping[str, torch.Tensor] = attrs.field(converter=_frozen_mapping)

    def __attrs_post_init__(self) -> None:
        _check_structure(self)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle as plain dicts (for DataLoader workers and ``spawn``); unpickling rechecks
        the structure."""
        return FeatureBatch, (self.schema, dict(self.values), self.present, dict(self.kept))

    # -- construction from user data ------------------------------------------------------
    @classmethod
    def from_tensors(
        cls,
        schema: FeatureSchema,
        values: Mapping[str, TensorLike],
        *,
        present: TensorLike | None = None,
        device: torch.device | str | None = None,
    ) -> FeatureBatch:
        """Validate user data against `schema` and wrap it.

        `values[name]` per feature type:

        * `Categorical`: integer ``[B]``, ids ``0..num_values-1``, ``-1`` for missing.
        * `MultiCategorical`: integer ``[B, L]`` with ``L <= max_len``, ``-1`` for padding
          (anywhere in the row); padded to ``max_len``. A bag with no id is missing.
        * `Dense`: floating ``[B, dim]``, finite.

        Ids of any integer dtype are checked before they become ``int64``, so none wraps
        (``uint64`` ``2**64 - 1`` is out of range, not ``-1``). `present` (optional
        ``bool [B, k]``) marks further features as missing. `device` must be one this process
        can use, not "meta": validation reads the data (move a built batch with `to`).
        Raises `BatchValidationError` naming the feature, position and value at fault.

        Examples:
            >>> from augkit import Categorical, FeatureBatch, FeatureSchema, MultiCategorical
            >>> schema = FeatureSchema(
            ...     [Categorical(name="genre", num_values=3), MultiCategorical(name="tags", num_values=5, max_len=3)]
            ... )
            >>> batch = FeatureBatch.from_tensors(schema, {"genre": [2, -1], "tags": [[4, 0], [-1, -1]]})
            >>> batch.values["genre"]  # the missing genre holds default_id 3
            tensor([2, 3])
            >>> FeatureBatch.from_tensors(schema, {"genre": [3, 0], "tags": [[4], [1]]})
            Traceback (most recent call last):
            ...
            augkit.errors.BatchValidationError: feature 'genre': id 3 at position (0,) is out of range; expected 0..2, or -1 for missing/padding
        """
        if not isinstance(schema, FeatureSchema):
            hint = " (build one with FeatureSchema.from_dict)" if isinstance(schema, Mapping) else ""
            raise BatchValidationError(
                f"FeatureBatch.from_tensors(schema): expected a FeatureSchema, got {type(schema).__name__}{hint}"
            )
        if not isinstance(values, Mapping):
            raise BatchValidationError(
                "FeatureBatch.from_tensors(values): expected a mapping of feature name to tensor, "
                f"array or list (e.g. {{{schema.names[0]!r}: [...]}}), got {type(values).__name__}"
            )
        unknown = [name for name in values if name not in schema]
        if unknown:
            raise UnknownNameError("feature in batch values", unknown[0], schema.names)
        absent = [name for name in schema.names if name not in values]
        if absent:
            raise BatchValidationError(
                f"batch values lack feature(s) {', '.join(map(repr, absent))}; "
                f"the schema has {', '.join(schema.names)}"
            )
        if device is not None:
            device = _no_meta("FeatureBatch.from_tensors", check_device("FeatureBatch.from_tensors", device))
        tensors = {
            spec.name: _as_tensor(f"feature {spec.name!r}", values[spec.name], device, _expected(spec))
            for spec in schema
        }
        if device is None:
            devices = {t.device for t in tensors.values()}
            if len(devices) > 1:
                raise BatchValidationError(
                    "batch values live on several devices: "
                    + ", ".join(f"{n!r} on {t.device}" for n, t in tensors.items())
                    + "; pass device=... to move them"
                )
        batch_size = _batch_size(tensors)
        target = _no_meta("FeatureBatch.from_tensors", next(iter(tensors.values())).device)
        out_values: dict[str, torch.Tensor] = {}
        kept: dict[str, torch.Tensor] = {}
        present_columns = []
        for spec in schema:
            tensor = tensors[spec.name]
            if isinstance(spec, Categorical):
                tensor = _check_ids(spec.name, tensor, spec.num_values, ndim=1, what="[B]")
                missing = tensor == MISSING
                out_values[spec.name] = torch.where(missing, spec.default_id, tensor)
                present_columns.append(~missing)
            elif isinstance(spec, MultiCategorical):
                tensor = _check_ids(spec.name, tensor, spec.num_values, ndim=2, what="[B, L]")
                if tensor.shape[1] > spec.max_len:
                    raise BatchValidationError(
                        f"feature {spec.name!r}: bags of length {tensor.shape[1]} exceed "
                        f"max_len={spec.max_len}"
                    )
                tensor = torch.nn.functional.pad(
                    tensor, (0, spec.max_len - tensor.shape[1]), value=MISSING
                )
                is_kept = tensor != MISSING
                out_values[spec.name] = torch.where(is_kept, tensor, spec.padding_id)
                kept[spec.name] = is_kept
                present_columns.append(is_kept.any(dim=1))
            else:
                _check_dense(spec, tensor)
                out_values[spec.name] = tensor
                present_columns.append(torch.ones(batch_size, dtype=torch.bool, device=target))
        present_mask = torch.stack(present_columns, dim=1)
        if present is not None:
            given = _as_tensor("'present'", present, target, "booleans")
            if given.dtype != torch.bool or tuple(given.shape) != (batch_size, len(schema)):
                raise BatchValidationError(
                    f"'present' must be bool [{batch_size}, {len(schema)}], "
                    f"got {given.dtype} {list(given.shape)}"
                )
            present_mask = present_mask & given
        for spec in schema:
            if isinstance(spec, Dense):
                column = present_mask[:, schema.index(spec.name)]
                out_values[spec.name] = out_values[spec.name] * column.unsqueeze(1)
        return cls(schema, out_values, present_mask, kept)

    # -- views --------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """B, the number of items."""
        return self.present.shape[0]

    @property
    def device(self) -> torch.device:
        """The device of every tensor of the batch."""
        return self.present.device

    def is_present(self, name: str) -> torch.Tensor:
        """``BoolTensor[B]``: where feature `name` is neither masked nor missing."""
        return self.present[:, self.schema.index(name)]

    def evolve(self, **changes: Any) -> FeatureBatch:
        """A copy with some of ``values``, ``present``, ``kept`` replaced (tensors are shared).

        Examples:
            >>> import torch
            >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
            >>> batch = tiny_batch()
            >>> nothing = batch.evolve(present=torch.zeros(3, 2, dtype=torch.bool))
            >>> nothing.present.any(), batch.present.all()
            (tensor(False), tensor(True))
        """
        return attrs.evolve(self, **changes)

    def mask_features(self, mask: torch.Tensor) -> FeatureBatch:
        """Mark features as masked where ``mask`` (``BoolTensor[B, k]``) is True.

        Examples:
            >>> import torch
            >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
            >>> batch = tiny_batch()
            >>> masked = batch.mask_features(torch.tensor([[True, False], [False, True], [False, False]]))
            >>> masked.present  # item 0's genre and item 1's tags are masked
            tensor([[False,  True],
                    [ True, False],
                    [ True,  True]])
            >>> masked.values["genre"]  # values stay: masking rewrites the mask only
            tensor([2, 0, 1])
        """
        return self.evolve(present=self.present & ~mask)

    def with_kept(self, kept: Mapping[str, torch.Tensor]) -> FeatureBatch:
        """Replace the kept masks of some multi-valued features."""
        return self.evolve(kept={**self.kept, **kept})

    def select(self, index: torch.Tensor) -> FeatureBatch:
        """The items at ``index`` (``LongTensor[n]`` on the batch's device).

        Examples:
            >>> import torch
            >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
            >>> batch = tiny_batch()
            >>> reordered = batch.select(torch.tensor([2, 0, 0, 1]))
            >>> reordered.batch_size, reordered.values["genre"]
            (4, tensor([1, 2, 2, 0]))
        """
        return FeatureBatch(
            self.schema,
            {n: v.index_select(0, index) for n, v in self.values.items()},
            self.present.index_select(0, index),
            {n: k.index_select(0, index) for n, k in self.kept.items()},
        )

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> FeatureBatch:
        """The same batch on `device`: one this process can use, or "meta" (shapes only, for
        checking code for host syncs). `BatchValidationError` for any other."""
        device = check_device("FeatureBatch.to", device)

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return FeatureBatch(
            self.schema,
            {n: move(v) for n, v in self.values.items()},
            move(self.present),
            {n: move(k) for n, k in self.kept.items()},
        )

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Plain tensors for your own embedding layers, with the reserved ids of `augkit.schema`.

        * categorical: ``LongTensor[B]``; ``default_id`` where not present.
        * multi-valued: ``LongTensor[B, max_len]``; ``padding_id`` where not kept, and a bag
          with nothing kept (masked, missing) holds ``default_id`` in position 0.
        * dense: the vector, zeros where not present.

        Examples:
            >>> import torch
            >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
            >>> batch = tiny_batch()
            >>> masked = batch.mask_features(torch.tensor([[True, False], [False, True], [False, False]]))
            >>> ids = masked.to_tensors()
            >>> ids["genre"]  # default_id 3 where masked or missing
            tensor([3, 0, 1])
            >>> ids["tags"]  # padding_id 5; a masked bag holds default_id 6 first
            tensor([[4, 0, 1],
                    [6, 5, 5],
                    [1, 5, 5]])
        """
        out: dict[str, torch.Tensor] = {}
        for j, spec in enumerate(self.schema):
            value = self.values[spec.name]
            present = self.present[:, j]
            if isinstance(spec, Categorical):
                out[spec.name] = torch.where(present, value, spec.default_id)
            elif isinstance(spec, MultiCategorical):
                kept = self.kept[spec.name] & present.unsqueeze(1)
                ids = torch.where(kept, value, spec.padding_id)
                empty = ~kept.any(dim=1)
                ids[:, 0] = torch.where(empty, spec.default_id, ids[:, 0])
                out[spec.name] = ids
            else:
                out[spec.name] = value * present.unsqueeze(1).to(value.dtype)
        return out


_DEVICE_ERRORS = (RuntimeError, AssertionError, NotImplementedError, ImportError)
"""What torch raises for a device it cannot use (AssertionError: not compiled with CUDA)."""


def check_device(what: str, device: object) -> torch.device:
    """`device` (a `torch.device`, or a string such as ``"cuda:0"``) as a `torch.device` that
    this process can place tensors on, "meta" included; `BatchValidationError` naming `what`
    for anything else."""
    if isinstance(device, bool) or not isinstance(device, (torch.device, str, int)):
        raise BatchValidationError(
            f"{what}: device must be a torch.device or a string such as 'cpu' or 'cuda:0', "
            f"got {type(device).__name__} {device!r}"
        )
    try:
        resolved = torch.device(device)
    except _DEVICE_ERRORS as error:
        raise BatchValidationError(
            f"{what}: {device!r} is not a device ({error}); expected e.g. 'cpu', 'cuda' or 'cuda:0'"
        ) from None
    reason = _unavailable(resolved)
    if reason is not None:
        raise BatchValidationError(f"{what}: device {str(resolved)!r} is not available: {reason}")
    return resolved


@functools.lru_cache(maxsize=64)
def _unavailable(device: torch.device) -> str | None:
    """Why this process cannot place tensors on `device`, or None when it can."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "torch.cuda.is_available() is False"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"this machine has {count} CUDA device(s), cuda:0 .. cuda:{count - 1}"
        return None
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "torch.backends.mps.is_available() is False"
    try:
        torch.empty(0, device=device)
    except _DEVICE_ERRORS as error:
        return str(error).splitlines()[0].split(". ")[0]
    return None


def _no_meta(what: str, device: torch.device) -> torch.device:
    if device.type == "meta":
        raise BatchValidationError(
            f"{what}: the meta device holds no data to validate; build the batch on a real "
            "device, then move it with .to('meta')"
        )
    return device


def _expected(spec: FeatureSpec) -> str:
    """What user data of `spec` holds, for error messages."""
    if isinstance(spec, Dense):
        return "finite floating-point values"
    return f"ids 0..{spec.num_values - 1}, or {MISSING} for missing/padding"


def _as_tensor(what: str, data: TensorLike, device: torch.device | None, expected: str) -> torch.Tensor:
    """`data` as a tensor on `device` (where it is when None). A Python int that int64 cannot
    hold is named with its position and `expected`."""
    try:
        tensor = torch.as_tensor(data)
    except (TypeError, ValueError, RuntimeError) as error:
        huge = _first_huge_int(data, ())
        if huge is not None:
            value, position = huge
            raise BatchValidationError(
                f"{what}: {value} at position {position} is out of range (beyond int64); "
                f"expected {expected}"
            ) from None
        raise BatchValidationError(f"{what}: cannot make a tensor of it ({error})") from None
    if device is None:
        return tensor
    try:
        return tensor.to(device)
    except _DEVICE_ERRORS as error:
        raise BatchValidationError(
            f"{what}: cannot move it from {tensor.device} to {device} ({error})"
        ) from None


def _first_huge_int(data: object, position: tuple[int, ...]) -> tuple[int, tuple[int, ...]] | None:
    """The first Python int of nested lists (or an object array) `data` that int64 cannot
    hold, and its position; none past `MAX_DEPTH` levels (no tensor has that many dims)."""
    if len(position) > MAX_DEPTH:
        return None
    if isinstance(data, np.ndarray) and data.dtype == object:
        data = data.tolist()
    if isinstance(data, (list, tuple)):
        for index, item in enumerate(data):
            found = _first_huge_int(item, (*position, index))
            if found is not None:
                return found
        return None
    if isinstance(data, int) and not -(2**63) <= data < 2**63:
        return data, position
    return None


def _batch_size(tensors: Mapping[str, torch.Tensor]) -> int:
    sizes = {name: (t.shape[0] if t.ndim else None) for name, t in tensors.items()}
    distinct = set(sizes.values())
    if len(distinct) != 1 or None in distinct:
        raise BatchValidationError(
            "features disagree on the batch size: "
            + ", ".join(f"{n!r} has {s if s is not None else 'a scalar'}" for n, s in sizes.items())
        )
    return distinct.pop()


def _position(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


def _check_ids(
    name: str, tensor: torch.Tensor, num_values: int, *, ndim: int, what: str
) -> torch.Tensor:
    """The ids as ``int64`` (compared there: a narrow dtype would wrap ``-1`` and the bound)."""
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise BatchValidationError(
            f"feature {name!r}: ids must be an integer tensor {what}, got dtype {tensor.dtype}"
        )
    if tensor.ndim != ndim:
        raise BatchValidationError(
            f"feature {name!r}: expected shape {what}, got {list(tensor.shape)}"
        )
    tensor = _as_int64(name, tensor, num_values)
    bad = (tensor < MISSING) | (tensor >= num_values)
    if bool(bad.any()):
        position = _position(bad)
        raise _id_out_of_range(name, int(tensor[position]), position, num_values)
    return tensor


def _as_int64(name: str, tensor: torch.Tensor, num_values: int) -> torch.Tensor:
    """Integer ids as ``int64``; a ``uint64`` id past the int64 range is an error (a cast would
    wrap it: ``2**64 - 1`` would read as ``-1``, missing)."""
    if tensor.dtype != torch.uint64:
        return tensor.long()
    signed = tensor.view(torch.int64)
    beyond = signed < 0
    if bool(beyond.any()):
        position = _position(beyond)
        raise _id_out_of_range(name, int(signed[position]) + 2**64, position, num_values)
    return signed


def _id_out_of_range(
    name: str, value: int, position: tuple[int, ...], num_values: int
) -> BatchValidationError:
    return BatchValidationError(
        f"feature {name!r}: id {value} at position {position} is out of range; "
        f"expected 0..{num_values - 1}, or {MISSING} for missing/padding"
    )


def _check_dense(spec: Dense, tensor: torch.Tensor) -> None:
    if not tensor.is_floating_point():
        raise BatchValidationError(
            f"feature {spec.name!r}: dense values must be floating point, got dtype {tensor.dtype}"
        )
    if tensor.ndim != 2 or tensor.shape[1] != spec.dim:
        raise BatchValidationError(
            f"feature {spec.name!r}: expected shape [B, {spec.dim}], got {list(tensor.shape)}"
        )
    bad = ~torch.isfinite(tensor)
    if bool(bad.any()):
        position = _position(bad)
        raise BatchValidationError(
            f"feature {spec.name!r}: value {float(tensor[position])} at position {position} "
            "is not finite"
        )


def _check_structure(batch: FeatureBatch) -> None:
    """Cheap checks (no host sync) that a batch is internally consistent."""
    schema = batch.schema
    if not isinstance(schema, FeatureSchema):
        raise TypeError(f"FeatureBatch.schema must be a FeatureSchema, got {type(schema).__name__}")
    present = batch.present
    tensors = [
        ("present", present),
        *((f"values[{n!r}]", v) for n, v in batch.values.items()),
        *((f"kept[{n!r}]", k) for n, k in batch.kept.items()),
    ]
    for what, tensor in tensors:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(
                f"FeatureBatch.{what} must be a torch.Tensor, got {type(tensor).__name__}"
            )
    if present.dtype != torch.bool or present.ndim != 2 or present.shape[1] != len(schema):
        raise BatchValidationError(
            f"'present' must be bool [B, {len(schema)}], got {present.dtype} {list(present.shape)}"
        )
    if set(batch.values) != set(schema.names):
        raise BatchValidationError(
            f"batch values have features {sorted(batch.values)}, the schema {sorted(schema.names)}"
        )
    if set(batch.kept) != set(schema.multi_valued):
        raise BatchValidationError(
            f"kept masks are for {sorted(batch.kept)}, the multi-valued features are "
            f"{sorted(schema.multi_valued)}"
        )
    size, device = present.shape[0], present.device
    for spec in schema:
        value = batch.values[spec.name]
        if isinstance(spec, Dense):
            expected: tuple[int, ...] = (size, spec.dim)
            dtype_ok = value.is_floating_point()
        else:
            expected = (size,) if isinstance(spec, Categorical) else (size, spec.max_len)
            dtype_ok = value.dtype == torch.int64
        if tuple(value.shape) != expected or not dtype_ok or value.device != device:
            raise BatchValidationError(
                f"feature {spec.name!r}: value tensor is {value.dtype} {list(value.shape)} on "
                f"{value.device}; expected {list(expected)} on {device}"
            )
        if isinstance(spec, MultiCategorical):
            kept = batch.kept[spec.name]
            if kept.dtype != torch.bool or tuple(kept.shape) != expected or kept.device != device:
                raise BatchValidationError(
                    f"feature {spec.name!r}: kept mask is {kept.dtype} {list(kept.shape)} on "
                    f"{kept.device}; expected bool {list(expected)} on {device}"
                )


@functools.lru_cache(maxsize=256)
def column_index(columns: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``LongTensor`` of `columns` on `device`, cached so hot paths copy it to a device once."""
    return torch.tensor(columns, dtype=torch.long, device=device)


def expand_columns(sub: torch.Tensor, columns: tuple[int, ...], num_features: int) -> torch.Tensor:
    """Place ``sub`` (``BoolTensor[B, len(columns)]``) at `columns` of a ``[B, num_features]``
    mask that is False elsewhere."""
    if columns == tuple(range(num_features)):
        return sub.contiguous()
    full = torch.zeros(sub.shape[0], num_features, dtype=torch.bool, device=sub.device)
    return full.index_copy(1, column_index(columns, sub.device), sub.contiguous())

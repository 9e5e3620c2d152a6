"""`FeatureBatch` <-> TorchRec `KeyedJaggedTensor` (KJT): the id features of a batch as bags.

A KJT holds, for each key (feature) and each of its ``stride`` rows, a bag of ids: its
``lengths()`` are ``[F * stride]`` (feature-major), its ``values()`` the ids of every bag one
after the other. augkit's masks map onto the lengths:

* `Categorical`: a bag of the one id where the feature is present, of length 0 where it is
  masked or missing.
* `MultiCategorical`: a bag of the ids that are kept (``kept & present``), in their order; a
  masked or missing bag, or one whose ids were all dropped, has length 0.
* `Dense` features are not in the KJT (pass them beside it, see `kjt_to_batch`).

Values are ``int64`` ids ``0 .. num_values-1`` (no reserved ids: an empty bag stands for
"nothing"), lengths are ``int64``; the KJT is unweighted, since a mean over the kept ids is
what both augkit's towers and an ``EmbeddingBagCollection`` with ``PoolingType.MEAN`` compute.

Host syncs: `batch_to_kjt` selects the kept ids with one boolean mask (one sync: the number of
values is data-dependent, and a KJT needs it). `kjt_to_batch` splits the KJT by key (one sync
for the number of values per key) and, when ``validate`` is on, checks lengths and ids
(more syncs). Nothing loops over examples.

What round-trips: ``batch_to_kjt(kjt_to_batch(kjt, schema))`` equals ``kjt`` (a valid one).
``kjt_to_batch(batch_to_kjt(batch), schema)`` keeps what a tower reads, each feature's kept ids
in order and whether it is present, but not the rest: a KJT carries no masks, so ``present``
comes back as "the bag is not empty", the kept ids are packed to the front of each row, and
the values under a mask or a dropped id are gone.

torchrec is an optional dependency (the ``torchrec`` extra): it is imported inside the
functions that build or read a KJT, so that importing this module does not load it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from augkit.batch import FeatureBatch
from augkit.errors import BatchValidationError
from augkit.schema import Categorical, Dense, FeatureSchema, MultiCategorical

if TYPE_CHECKING:
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

__all__ = ["batch_to_kjt", "batches_to_kjt", "id_features", "kjt_to_batch"]


def id_features(schema: FeatureSchema) -> tuple[str, ...]:
    """The names of the `Categorical` and `MultiCategorical` features of `schema`, in schema
    order: the keys a KJT of its batches has (before any prefix)."""
    return tuple(spec.name for spec in schema if not isinstance(spec, Dense))


def _bags(batch: FeatureBatch) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(name, ids [B, L], active [B, L])`` of each id feature: ``active`` is where an id is
    present and kept (a `Categorical` is a bag of length 1)."""
    bags = []
    for j, spec in enumerate(batch.schema):
        if isinstance(spec, Dense):
            continue
        present = batch.present[:, j : j + 1]
        ids = batch.values[spec.name]
        if isinstance(spec, MultiCategorical):
            bags.append((spec.name, ids, batch.kept[spec.name] & present))
        else:
            bags.append((spec.name, ids.unsqueeze(1), present))
    return bags


def batches_to_kjt(
    parts: Sequence[tuple[str, FeatureBatch]], *, stride: int | None = None
) -> KeyedJaggedTensor:
    """One KJT of the id features of several batches side by side: ``parts`` are ``(prefix,
    batch)``, the keys ``prefix + name`` in the order of `parts` and then of each schema.

    A KJT has one ``stride`` (rows per key): ``None`` takes the largest batch size; the rows of
    a smaller batch past its size are bags of length 0. All batches must be on one device; the
    KJT is there. One host sync for all of them (see the module docstring)."""
    # optional: torchrec is the `torchrec` extra; loading it costs seconds
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    if not parts:
        raise BatchValidationError("batches_to_kjt needs at least one (prefix, batch)")
    largest = max(batch.batch_size for _, batch in parts)
    stride = largest if stride is None else stride
    if stride < largest:
        raise BatchValidationError(f"batches_to_kjt: stride {stride} is smaller than a batch of {largest} rows")
    keys, ids, active, lengths = [], [], [], []
    for prefix, batch in parts:
        for name, feature_ids, feature_active in _bags(batch):
            keys.append(prefix + name)
            ids.append(feature_ids.reshape(-1))
            active.append(feature_active.reshape(-1))
            counts = feature_active.sum(dim=1)
            lengths.append(torch.nn.functional.pad(counts, (0, stride - counts.shape[0])))
    if not keys:
        raise BatchValidationError("batches_to_kjt: the batches have no Categorical or MultiCategorical feature")
    values = torch.cat(ids)[torch.cat(active)]  # the one host sync
    return KeyedJaggedTensor(keys=keys, values=values, lengths=torch.cat(lengths), stride=stride)


def batch_to_kjt(batch: FeatureBatch, *, prefix: str = "", stride: int | None = None) -> KeyedJaggedTensor:
    """The id features of `batch` as a KJT with keys ``prefix + name`` (`id_features` order)
    and ``stride`` rows per key (the batch size when None; extra rows are empty bags).

    Examples:
        >>> import torch
        >>> from augkit.testing import tiny_batch  # genre [2, 0, 1], tags [[4, 0, 1], [2, 3], [1]]
        >>> batch = tiny_batch().mask_features(torch.tensor([[True, False], [False, False], [False, True]]))
        >>> kjt = batch_to_kjt(batch)
        >>> kjt.keys(), kjt.lengths().tolist(), kjt.values().tolist()
        (['genre', 'tags'], [0, 1, 1, 3, 2, 0], [0, 1, 4, 0, 1, 2, 3])
    """
    return batches_to_kjt([(prefix, batch)], stride=stride)


def kjt_to_batch(
    kjt: KeyedJaggedTensor,
    schema: FeatureSchema,
    *,
    prefix: str = "",
    dense: Mapping[str, torch.Tensor] | None = None,
    validate: bool = True,
) -> FeatureBatch:
    """A `FeatureBatch` of `schema` from the keys ``prefix + name`` of `kjt` (other keys are
    ignored), ``B = kjt.stride()`` rows.

    * `Categorical`: a bag of length 1 is the present id, length 0 is missing (``default_id``).
    * `MultiCategorical`: the bag's ids, padded to ``max_len`` with ``padding_id``; ``kept`` is
      True on the bag's ids, ``present`` where the bag is not empty.
    * `Dense`: ``dense[name]``, a floating ``[B, dim]`` tensor, present everywhere (mask it
      with `FeatureBatch.mask_features` where missing).

    ``validate`` (default) checks lengths (at most 1 for a `Categorical`, at most ``max_len``
    for a `MultiCategorical`) and ids (``0 .. num_values-1``), raising `BatchValidationError`
    naming the feature; each check is a host sync. Without it, bad input is undefined.

    Examples:
        >>> import torch
        >>> from torchrec import KeyedJaggedTensor
        >>> from augkit.testing import tiny_batch
        >>> kjt = KeyedJaggedTensor(keys=["genre", "tags"], values=torch.tensor([2, 1, 4, 0, 3, 3]),
        ...                         lengths=torch.tensor([1, 0, 1, 3, 0, 1]))
        >>> batch = kjt_to_batch(kjt, tiny_batch().schema)
        >>> batch.values["genre"], batch.present[:, 0]
        (tensor([2, 3, 1]), tensor([ True, False,  True]))
        >>> batch.values["tags"], batch.kept["tags"][2]
        (tensor([[4, 0, 3],
                [5, 5, 5],
                [3, 5, 5]]), tensor([ True, False, False]))
    """
    dense = dict(dense or {})
    if kjt.variable_stride_per_key():
        raise BatchValidationError("kjt_to_batch: the KJT has a stride per key (variable batch); a FeatureBatch has one batch size")
    size = kjt.stride()
    device = kjt.values().device
    lengths_by_key = kjt.lengths().long().view(len(kjt.keys()), size)
    sections = lengths_by_key.sum(dim=1).tolist()  # the host sync a KJT needs to split by key
    by_key = dict(zip(kjt.keys(), zip(lengths_by_key, kjt.values().long().split(sections), strict=True), strict=True))
    values: dict[str, torch.Tensor] = {}
    kept: dict[str, torch.Tensor] = {}
    present = []
    for spec in schema:
        if isinstance(spec, Dense):
            values[spec.name] = _dense(spec, dense, size, device)
            present.append(torch.ones(size, dtype=torch.bool, device=device))
            continue
        key = prefix + spec.name
        if key not in by_key:
            raise BatchValidationError(f"feature {spec.name!r}: the KJT has no key {key!r}; its keys are {kjt.keys()}")
        lengths, ids = by_key[key]
        if validate:
            _check_bags(spec, key, lengths, ids)
        if isinstance(spec, Categorical):
            filled = lengths == 1
            values[spec.name] = torch.full((size,), spec.default_id, device=device).masked_scatter(filled, ids)
            present.append(filled)
        else:
            rows = torch.repeat_interleave(torch.arange(size, device=device), lengths, output_size=ids.shape[0])
            starts = torch.cumsum(lengths, 0) - lengths
            columns = torch.arange(ids.shape[0], device=device) - starts[rows]
            padded = torch.full((size, spec.max_len), spec.padding_id, device=device)
            values[spec.name] = padded.index_put((rows, columns), ids)
            mask = torch.zeros(size, spec.max_len, dtype=torch.bool, device=device)
            kept[spec.name] = mask.index_put((rows, columns), torch.ones_like(ids, dtype=torch.bool))
            present.append(lengths > 0)
    unknown = sorted(set(dense) - {spec.name for spec in schema if isinstance(spec, Dense)})
    if unknown:
        raise BatchValidationError(f"kjt_to_batch(dense=...): {unknown} are not Dense features of the schema")
    return FeatureBatch(schema, values, torch.stack(present, dim=1), kept)


def _dense(spec: Dense, dense: Mapping[str, torch.Tensor], size: int, device: torch.device) -> torch.Tensor:
    if spec.name not in dense:
        raise BatchValidationError(
            f"feature {spec.name!r} is Dense and a KJT holds ids only: pass it as dense={{{spec.name!r}: FloatTensor[B, {spec.dim}]}}"
        )
    value = dense[spec.name]
    if not value.is_floating_point() or tuple(value.shape) != (size, spec.dim) or value.device != device:
        raise BatchValidationError(
            f"feature {spec.name!r}: dense values must be floating [{size}, {spec.dim}] on {device}, "
            f"got {value.dtype} {list(value.shape)} on {value.device}"
        )
    return value


def _check_bags(spec: Categorical | MultiCategorical, key: str, lengths: torch.Tensor, ids: torch.Tensor) -> None:
    longest = 1 if isinstance(spec, Categorical) else spec.max_len
    if bool((lengths > longest).any()):
        row = int(torch.nonzero(lengths > longest)[0, 0])
        what = "a Categorical is a bag of at most 1 id" if longest == 1 else f"max_len is {longest}"
        raise BatchValidationError(f"feature {spec.name!r} (key {key!r}): row {row} holds {int(lengths[row])} ids; {what}")
    bad = (ids < 0) | (ids >= spec.num_values)
    if bool(bad.any()):
        position = int(torch.nonzero(bad)[0, 0])
        raise BatchValidationError(
            f"feature {spec.name!r} (key {key!r}): id {int(ids[position])} at value {position} is out of range; "
            f"expected 0..{spec.num_values - 1}"
        )

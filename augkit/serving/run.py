"""A trained run as an object: recommend, embed, find similar items, embed new items from their
features, and export for serving.

``load_run("runs/ml-100k")`` rebuilds the run's data, split and towers from the config saved in
its checkpoint (``best.pt`` when present, else ``checkpoint.pt``) and loads the weights, after
checking the run's identity (`augkit.train.identity`): the checkpoint was written by this run,
and the data is the data it trained on. Every
key in and out is a raw key (table keys, MovieLens ids), never an internal index; a key the
run's data lacks is an `UnknownKeyError` naming it.

Scores are inner products of the towers' L2-normalised outputs (cosine similarities), computed
on the towers' device ``query_chunk x item_chunk`` at a time (`chunked_top_k`): memory is
bounded by the chunk sizes, not by users x items.
"""

from __future__ import annotations

import os
import tomllib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from augkit.batch import FeatureBatch
from augkit.data.dataset import RecDataset
from augkit.data.keys import DataKeys
from augkit.data.sources import load_with_keys
from augkit.data.splits import Split
from augkit.errors import AugkitError, CheckpointError, ConfigError, RunDirectoryError
from augkit.metrics import Interactions
from augkit.serving.encoding import ItemEncoder, as_keys
from augkit.serving.errors import RunError
from augkit.serving.export import ExportReport, export_run
from augkit.serving.results import Embeddings, Recommendations
from augkit.serving.topk import ITEM_CHUNK, QUERY_CHUNK, chunked_top_k
from augkit.towers import Tower
from augkit.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, RUN_KEY, check_owner, load_checkpoint
from augkit.train.config import TrainConfig, config_from_dict
from augkit.train.device import resolve_device
from augkit.train.evaluation import embed
from augkit.train.history import with_history
from augkit.train.identity import (
    RunIdentityWarning,
    changes_warning,
    check_config,
    check_data,
    read_identity,
    unchecked_warning,
)
from augkit.train.run import ITEM_ID_FEATURE, build_model, split_for


def _checkpoint_of(run_dir: Path, checkpoint: str | os.PathLike[str] | None) -> Path:
    """The checkpoint to load: `checkpoint` when given, else the run's best, else its last."""
    if checkpoint is not None:
        return Path(checkpoint)
    for name in (BEST_NAME, CHECKPOINT_NAME):
        if (run_dir / name).is_file():
            return run_dir / name
    raise CheckpointError(
        f"run directory {str(run_dir)!r} has no checkpoint: expected {BEST_NAME} or {CHECKPOINT_NAME} "
        "(written by `augkit train`)"
    )


def load_run(
    run_dir: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    allow_changed_data: bool = False,
) -> Run:
    """The trained run in `run_dir` (a directory written by `augkit train`).

    The weights come from `checkpoint`, by default ``best.pt`` (the best validation epoch)
    when the run has one, else ``checkpoint.pt`` (the last step). The data, the split and the
    towers are rebuilt from the config saved in that checkpoint, deterministically from its
    seed; relative data paths resolve against the working directory, as in training.

    The run's identity (``identity.json``, `augkit.train.identity`) is checked first: the
    checkpoint must have been written by this run (a `CheckpointError` naming both runs
    otherwise), and each data file must have the size and content hash it had when the run
    began (a new mtime alone is no change): a `DataChangedError` naming the file and how it
    changed, unless `allow_changed_data` (then a `RunIdentityWarning`). A run written before
    identities loads with a `RunIdentityWarning` that its data cannot be checked.

    Errors: `TypeError` naming the argument of a wrong type, `RunDirectoryError` when `run_dir` is not a directory, `CheckpointError` when it
    has no checkpoint, the checkpoint is damaged or belongs to another run,
    `DataChangedError` (above), `RunError` when the weights do not fit the towers the config
    builds (a run of other data or another version), and the data loader's own errors naming
    the file at fault.
    """
    _check_arguments(run_dir, checkpoint, allow_changed_data)
    target = resolve_device(str(device))  # a bad or absent device fails before any loading
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(
            f"run directory {str(run_dir)!r} does not exist or is not a directory; expected the "
            "<output_dir>/<name> folder `augkit train` wrote"
        )
    path = _checkpoint_of(run_dir, checkpoint)
    state = load_checkpoint(path, required=("model", "config"))
    identity = read_identity(run_dir)
    if identity is not None or (checkpoint is not None and RUN_KEY in state):
        check_owner(path, state, run_dir, None if identity is None else identity.run_id)
    if not isinstance(state["config"], str):
        raise CheckpointError(f"checkpoint {str(path)!r}: 'config' is not the run's config as TOML text")
    try:
        config = config_from_dict(tomllib.loads(state["config"]), source=f"{path} (config)")
    except tomllib.TOMLDecodeError as error:
        raise CheckpointError(f"checkpoint {str(path)!r}: its config is not valid TOML ({error})") from None
    except ConfigError as error:
        raise RunError(
            f"run {str(run_dir)!r} was written by an incompatible augkit: its config does not "
            f"load ({error})"
        ) from None
    if identity is None:
        warnings.warn(unchecked_warning(run_dir), RunIdentityWarning, stacklevel=2)
    else:
        check_config(identity, config, path=path, run_dir=run_dir)
        what = f"run {str(run_dir)!r}"
        changes = check_data(identity, config.data, what=what, allow_changed_data=allow_changed_data)
        if changes:
            warnings.warn(changes_warning(what, changes), RunIdentityWarning, stacklevel=2)
    try:
        dataset, keys = load_with_keys(config.data)
    except AugkitError as error:
        message = f"run {str(run_dir)!r}: cannot load its data ({error})"
        try:
            wrapped = type(error)(message)
        except TypeError:  # an error type with another signature (UnknownNameError)
            wrapped = RunError(message)
        raise wrapped from None
    split = split_for(config, dataset)
    queries = with_history(
        dataset.users, split.train, num_items=dataset.num_items, history_len=config.data.history_len
    )
    model = build_model(config, dataset.items, queries, training=False)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise RunError(
            f"checkpoint {str(path)!r} does not fit the towers its config builds on data set "
            f"{dataset.name!r} ({dataset.num_items} items, {dataset.num_users} users): was the data "
            f"changed since training? ({detail})"
        ) from None
    model.to(target).eval()
    step = state.get("step")
    return Run(
        run_dir=run_dir,
        checkpoint=path,
        step=step if isinstance(step, int) else None,
        config=config,
        dataset=dataset,
        split=split,
        queries=queries,
        model=model,
        keys=keys,
        run_id=None if identity is None else identity.run_id,
    )


def _check_arguments(run_dir: Any, checkpoint: Any, allow_changed_data: Any) -> None:
    """`TypeError` naming the argument of `load_run` that has the wrong type."""
    if not isinstance(run_dir, (str, os.PathLike)):
        raise TypeError(f"load_run: run_dir must be a path (str or os.PathLike), got {type(run_dir).__name__}")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"load_run: checkpoint must be a path (str or os.PathLike) or None, got {type(checkpoint).__name__}")
    if not isinstance(allow_changed_data, bool):
        raise TypeError(f"load_run: allow_changed_data must be True or False, got {allow_changed_data!r}")


def _check_k(k: Any, num_items: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= num_items:
        raise RunError(f"k must be an int in 1..{num_items} (the run's items), got {k!r}")
    return k


@attrs.define(eq=False)
class Run:
    """A trained run (see `load_run`): its config, data, split, towers and raw keys.

    ``queries`` are the query features of every user, as in training and evaluation: the user
    table plus ``history``, the user's last training items. "Seen" items are the user's
    training items; validation and test events stay held out, as in the run's evaluation.
    """

    run_dir: Path
    checkpoint: Path
    step: int | None
    config: TrainConfig
    dataset: RecDataset
    split: Split
    queries: FeatureBatch
    model: nn.ModuleDict
    keys: DataKeys
    run_id: str | None = None
    """The run's id (``identity.json``); None for a run written before identities."""
    _item_vectors: torch.Tensor | None = attrs.field(default=None, init=False, repr=False)
    _seen: tuple[torch.Tensor, torch.Tensor] | None = attrs.field(default=None, init=False, repr=False)
    _item_encoder: ItemEncoder = attrs.field(init=False, repr=False)

    @_item_encoder.default
    def _encoder_of_items(self) -> ItemEncoder:
        return ItemEncoder(self.dataset.items.schema, self.keys, self.dataset.name)

    @property
    def query_tower(self) -> Tower:
        return self.model["query"]

    @property
    def item_tower(self) -> Tower:
        return self.model["item"]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # embeddings
    def served_items(self) -> FeatureBatch:
        """The item corpus as the run's evaluation embeds it: with ``eval.unseen_ids =
        "default"`` the ``item_id`` of every item never seen in training is missing (the
        default embedding, as for a new item); with ``"trained"`` the corpus as it is."""
        items = self.dataset.items
        if self.config.eval.unseen_ids == "trained" or ITEM_ID_FEATURE not in items.schema:
            return items
        counts = torch.bincount(self.split.train.items, minlength=self.dataset.num_items)
        mask = torch.zeros_like(items.present)
        mask[:, items.schema.index(ITEM_ID_FEATURE)] = counts.to(items.device) == 0
        return items.mask_features(mask)

    def item_vectors(self) -> torch.Tensor:
        """``FloatTensor[num_items, output_dim]`` on the towers' device: row i embeds internal
        item id i as `served_items` gives it (computed once, then kept)."""
        if self._item_vectors is None:
            self._item_vectors = embed(self.item_tower, self.served_items())
        return self._item_vectors

    def item_embeddings(self) -> Embeddings:
        """Every item's embedding (``[num_items, output_dim]``, on the towers' device), keyed by
        raw item key, in the order of ``keys.items``; items never seen in training embedded as
        the run's evaluation embeds them (`served_items`)."""
        return Embeddings(self.keys.items.keys, self.item_vectors())

    def _user_ids(self, user_keys: Any, where: str = "") -> torch.Tensor:
        return self.keys.users.index(as_keys(user_keys), where=where)

    def query_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """``FloatTensor[len(users), output_dim]``: the query tower's embedding of internal user
        ids `users` (``LongTensor``), from their features and training history."""
        return embed(self.query_tower, self.queries.select(users))

    def query_embeddings(self, user_keys: Any) -> Embeddings:
        """The query tower's embedding of each user of `user_keys` (a key or an iterable of
        keys), from the user's features and training history."""
        users = self._user_ids(user_keys)
        return Embeddings(self.keys.users.key_of(users), self.query_vectors(users))

    # retrieval
    def search(
        self,
        vectors: torch.Tensor,
        k: int = 10,
        *,
        exclude: tuple[torch.Tensor, torch.Tensor] | None = None,
        query_chunk: int = QUERY_CHUNK,
        item_chunk: int = ITEM_CHUNK,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact top-`k` items of query `vectors` (``FloatTensor[Q, d]``) over the whole corpus:
        ``(scores FloatTensor[Q, k], ids LongTensor[Q, k])``, internal ids, best first.

        ``exclude = (rows, items)`` (``LongTensor[P]`` each, rows increasing) leaves item
        ``items[p]`` out of the ranking of query ``rows[p]``; ranks left empty by exclusions
        hold id ``-1`` and score ``-inf``."""
        k = _check_k(k, self.dataset.num_items)
        return chunked_top_k(
            vectors.to(self.device),
            self.item_vectors(),
            k,
            exclude=exclude,
            query_chunk=query_chunk,
            item_chunk=item_chunk,
        )

    def seen_csr(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each user's training items as CSR over internal ids, ``(indptr LongTensor[U + 1],
        items LongTensor[nnz])``: user u's are ``items[indptr[u]:indptr[u + 1]]``, increasing."""
        if self._seen is None:
            train = self.split.train
            pairs = Interactions.from_pairs(train.users, train.items, self.dataset.num_users, self.dataset.num_items)
            self._seen = (pairs.indptr, pairs.items)
        return self._seen

    def seen_items(self, user_keys: Any) -> list[tuple[Any, ...]]:
        """The raw keys of each user's training items (what ``exclude_seen`` leaves out)."""
        indptr, items = self.seen_csr()
        users = self._user_ids(user_keys)
        return [self.keys.items.key_of(items[indptr[u] : indptr[u + 1]]) for u in users.tolist()]

    def _exclusions(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows, items) pairs: row q's training items, for the users `users` (queries in order)."""
        indptr, items = self.seen_csr()
        starts, counts = indptr[users], indptr[users + 1] - indptr[users]
        rows = torch.repeat_interleave(torch.arange(len(users)), counts)
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        cols = items[first + torch.arange(int(counts.sum()))]
        return rows, cols

    def _result(self, queries: Sequence[Any], scores: torch.Tensor, ids: torch.Tensor) -> Recommendations:
        ids = ids.cpu()
        item_keys = tuple(self.keys.items.key_of(row) for row in ids)
        titles = None
        if self.keys.titles is not None:
            names = self.keys.titles
            titles = tuple(tuple(None if i < 0 else names[i] for i in row.tolist()) for row in ids)
        return Recommendations(queries, item_keys, scores.cpu(), titles)

    def recommend(self, user_keys: Any, k: int = 10, *, exclude_seen: bool = True) -> Recommendations:
        """The top-`k` items of each user of `user_keys` (a key or an iterable of keys) over the
        full corpus, with scores; `exclude_seen` leaves out the user's training items."""
        users = self._user_ids(user_keys)
        exclude = self._exclusions(users) if exclude_seen else None
        scores, ids = self.search(self.query_vectors(users), k, exclude=exclude)
        return self._result(self.keys.users.key_of(users), scores, ids)

    def similar_items(self, item_keys: Any, k: int = 10) -> Recommendations:
        """The `k` items nearest each item of `item_keys` in the item tower's space (cosine),
        the item itself left out."""
        items = self.keys.items.index(as_keys(item_keys))
        vectors = self.item_vectors()[items.to(self.device)]
        k = _check_k(k, self.dataset.num_items - 1) if self.dataset.num_items > 1 else _check_k(k, 0)
        scores, ids = self.search(vectors, k, exclude=(torch.arange(len(items)), items))
        return self._result(self.keys.items.key_of(items), scores, ids)

    # new items
    def encode_items(self, table: Any, *, unknown: str = "error") -> FeatureBatch:
        """New items' raw feature rows as a validated `FeatureBatch` over the item schema (what
        `embed_items` embeds); see `embed_items` for `table` and `unknown`."""
        return self._item_encoder.encode(table, unknown=unknown)

    def embed_items(self, table: Any, *, unknown: str = "error") -> torch.Tensor:
        """``FloatTensor[B, output_dim]``: the item tower's embedding of B new items given only
        their raw feature values (cold start from features).

        `table` is a mapping ``{feature: [value per item]}``, a sequence of ``{feature: value}``
        rows, or a `FeatureBatch` over the item schema. Values are raw, as in the data files:
        a categorical feature's value, a list of values for a multi-valued one, a number or a
        list of ``dim`` numbers for a dense one; ``None`` (or an absent feature) is missing and
        reads as the feature's default embedding. The item id is a raw item key: a key the
        run never saw, or none, reads as the default embedding, as an unseen item does in
        evaluation. A value that a feature's vocabulary lacks is an `UnknownValueError` naming
        it, or missing with ``unknown="missing"``. A column that is not an item feature is an
        `UnknownNameError` with the closest name.
        """
        batch = table if isinstance(table, FeatureBatch) else self.encode_items(table, unknown=unknown)
        return embed(self.item_tower, batch)

    # export
    def export(
        self,
        out: str | os.PathLike[str],
        *,
        format: str = "parquet",
        index: str | None = None,
        index_type: str = "auto",
        overwrite: bool = False,
    ) -> ExportReport:
        """Write the run for serving to directory `out` (see `ExportReport` for the files):
        item embeddings with their keys (``format="parquet"``: ``items.parquet``, needs pyarrow;
        ``"npy"``: ``item_embeddings.npy`` + ``item_keys.json``), the towers as `torch.export`
        programs with a manifest of their inputs, every user's query inputs, and with
        ``index="faiss"`` a FAISS index (``index_type``: one of `INDEX_TYPES`; ``auto`` is flat
        up to `FLAT_MAX_ITEMS` items, else IVF). The export is written beside `out` and swapped
        in whole when complete: an interrupted one leaves `out` as it was. `overwrite` replaces
        an earlier export; without it an `out` holding one is refused, and an `out` holding
        other files always is."""
        return export_run(self, Path(out), format=format, index=index, index_type=index_type, overwrite=overwrite)

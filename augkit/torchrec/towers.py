"""augkit's two towers with their id tables in one TorchRec ``EmbeddingBagCollection``.

`TorchRecTowers` computes what ``nn.ModuleDict({"query": Tower, "item": Tower})`` of
`augkit.towers` computes, on the same parameters, with the tables held apart:

* ``tables``: one ``EmbeddingBagCollection`` (``PoolingType.MEAN``) with a table per id
  feature of each tower, named ``query_<feature>`` / ``item_<feature>`` (`table_key`). A query
  feature that shares an item feature's table (``shared={"history": "item_id"}``, as the
  native query tower shares the item tower's ``item_id`` table) is a second feature name of
  that table's ``EmbeddingBagConfig``: one table, read by both towers.
* ``query`` and ``item``: the rest of each tower, as `augkit.towers.Tower` computes it: each
  feature's learned default embedding, read where its bag is empty (masked, missing, all ids
  dropped); the dense features' projections; the MLP; the L2 normalisation.

One lookup per step
-------------------
``forward(queries, items, views, negatives)`` embeds everything a training step needs through
the collection in **one** call: the item-side batches are concatenated, and the query and item
features become one ``KeyedJaggedTensor`` of one stride (the rows of the shorter side past its
size are empty bags). This matters with a fused optimizer (`augkit.torchrec.sharding`): FBGEMM's
table-batched kernels apply the optimizer to the rows of a lookup in its backward, once per
distinct row with the gradients of the lookup summed. One lookup per step thus updates each
row once with its whole gradient, as a dense optimizer does after autograd sums the gradients
of every use; separate lookups for the items, the views and the negatives would update a row
seen by several of them several times, each with a part of its gradient (and advance
row-wise Adagrad's or Adam's state as many times).

Unsharded, the collection is plain ``nn.EmbeddingBag`` s with dense gradients: use it for
inference, conversion and checks. Train through `augkit.torchrec.sharding.shard`, which puts
the tables in FBGEMM's fused kernels (one process or many). Tables are float32 (the only
full precision FBGEMM's training kernels have); ``module.query.double()`` /
``module.item.double()`` run the rest in float64.

torchrec is an optional dependency (the ``torchrec`` extra): it is imported when a module is
built, so that importing this module does not load it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from augkit.batch import FeatureBatch
from augkit.errors import BatchValidationError, ConfigError, UnknownNameError
from augkit.schema import Dense, FeatureSchema, MultiCategorical
from augkit.torchrec.convert import batches_to_kjt
from augkit.towers import Tower, TowerConfig, mlp_head

__all__ = ["TOWERS", "TorchRecTowers", "TowerHead", "table_key"]

TOWERS = ("query", "item")
"""The two towers, in the order their features appear in the step's KJT."""


def table_key(tower: str, feature: str) -> str:
    """The KJT key (and, for the feature that owns it, the table name) of `feature` of
    `tower`: ``"item_item_id"``, ``"query_history"``."""
    return f"{tower}_{feature}"


def _dims(schema: FeatureSchema, config: TowerConfig) -> dict[str, int]:
    unknown = [name for name in config.embedding_dims if name not in schema]
    if unknown:
        raise UnknownNameError("feature in embedding_dims", unknown[0], schema.names)
    return {spec.name: config.embedding_dims.get(spec.name, config.embedding_dim) for spec in schema}


def _normal(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """N(0, 1) draws, as `augkit.towers` initialises tables and default embeddings."""
    return torch.empty(shape, device=device).normal_(generator=generator)


def _linear(fan_in: int, fan_out: int, device: torch.device, generator: torch.Generator | None) -> nn.Linear:
    """``nn.Linear`` drawn as `augkit.towers` draws it: U(+-1/sqrt(fan_in)), weight then bias."""
    layer = nn.Linear(fan_in, fan_out, device="meta").to_empty(device=device)
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class TowerHead(nn.Module):
    """A tower without its id tables: ``forward(batch, pooled) -> FloatTensor[B, output_dim]``.

    ``pooled`` maps each id feature's KJT key to its mean-pooled rows (``[>= B, dim]``, zeros
    for an empty bag; rows past ``B`` are ignored). Parameters: ``defaults[name]`` (``[dim]``,
    every feature), ``projections[name]`` (each `Dense` feature), ``hidden_layers``, ``output``,
    named as in `augkit.towers.Tower` where the two have the same part."""

    def __init__(self, tower: str, schema: FeatureSchema, config: TowerConfig) -> None:
        super().__init__()
        self.tower = tower
        self.schema = schema
        self.config = config
        self.dims = _dims(schema, config)
        self.defaults = nn.ParameterDict()
        self.projections = nn.ModuleDict()
        self.hidden_layers = nn.ModuleList()
        self.output: nn.Linear | None = None

    def forward(self, batch: FeatureBatch, pooled: Mapping[str, torch.Tensor], *, generator: torch.Generator | None = None) -> torch.Tensor:
        if batch.schema != self.schema:
            raise BatchValidationError(f"the {self.tower} tower's schema is {self.schema.names}, the batch's {batch.schema.names}")
        rows = batch.batch_size
        blocks = []
        for j, spec in enumerate(self.schema):
            default = self.defaults[spec.name]
            present = batch.present[:, j]
            if isinstance(spec, Dense):
                projection = self.projections[spec.name]
                projected = projection(batch.values[spec.name].to(projection.weight.dtype))
                blocks.append(torch.where(present.unsqueeze(1), projected, default))
                continue
            if isinstance(spec, MultiCategorical):
                present = (batch.kept[spec.name] & present.unsqueeze(1)).any(dim=1)
            mean = pooled[table_key(self.tower, spec.name)][:rows].to(default.dtype)
            blocks.append(torch.where(present.unsqueeze(1), mean, default))
        return mlp_head(self, torch.cat(blocks, dim=1), generator, who="TorchRecTowers")


def _concat(batches: Sequence[FeatureBatch]) -> FeatureBatch:
    """The rows of several batches of one schema, one after the other."""
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    for batch in batches[1:]:
        if batch.schema != first.schema:
            raise BatchValidationError(f"item-side batches differ in schema: {first.schema.names} and {batch.schema.names}")
    return FeatureBatch(
        first.schema,
        {name: torch.cat([b.values[name] for b in batches]) for name in first.schema.names},
        torch.cat([b.present for b in batches]),
        {name: torch.cat([b.kept[name] for b in batches]) for name in first.schema.multi_valued},
    )


class TorchRecTowers(nn.Module):
    """The query and item towers over one TorchRec ``EmbeddingBagCollection`` (module docstring).

    * `query_schema`, `item_schema`: the towers' features.
    * `config`: a `TowerConfig` for both towers, or ``{"query": ..., "item": ...}``.
    * `shared`: query feature -> item feature whose table it reads (same ``num_values`` and
      width), e.g. ``{"history": "item_id"}``.
    * `generator`: draws the parameters in the order and from the distributions
      `augkit.towers` uses (item tower first, as the trainer builds them), so a seeded module
      equals the native towers built with the same seed; on the generator's device (torch's
      global generator and the host when None).

    Attributes: ``tables`` (the collection), ``query`` and ``item`` (`TowerHead`), ``shared``.
    """

    def __init__(
        self,
        query_schema: FeatureSchema,
        item_schema: FeatureSchema,
        config: TowerConfig | Mapping[str, TowerConfig] | None = None,
        *,
        shared: Mapping[str, str] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        # optional: torchrec is the `torchrec` extra; loading it costs seconds
        from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, PoolingType

        configs = _configs(config)
        schemas = {"query": query_schema, "item": item_schema}
        self.shared = dict(shared or {})
        self.query = TowerHead("query", query_schema, configs["query"])
        self.item = TowerHead("item", item_schema, configs["item"])
        _check_shared(self.shared, self.query, self.item)
        device = torch.device("cpu") if generator is None else generator.device
        readers = {item_feature: [] for item_feature in self.shared.values()}
        for query_feature, item_feature in self.shared.items():
            readers[item_feature].append(table_key("query", query_feature))
        tables = [
            EmbeddingBagConfig(
                name=table_key(head.tower, spec.name),
                embedding_dim=head.dims[spec.name],
                num_embeddings=spec.num_values,
                feature_names=[table_key(head.tower, spec.name), *(readers.get(spec.name, []) if head.tower == "item" else [])],
                pooling=PoolingType.MEAN,
                init_fn=_drawn_by_augkit,
            )
            for head in (self.query, self.item)
            for spec in schemas[head.tower]
            if not isinstance(spec, Dense) and not (head.tower == "query" and spec.name in self.shared)
        ]
        self.tables = EmbeddingBagCollection(tables=tables, device=device)
        for head in (self.item, self.query):  # the trainer builds the item tower first
            self._draw(head, device, generator)

    def _draw(self, head: TowerHead, device: torch.device, generator: torch.Generator | None) -> None:
        """Head and tables of one tower, drawn in `augkit.towers`' order: per feature its table
        (unless shared) then its default, or its projection; then the MLP."""
        for spec in head.schema:
            dim = head.dims[spec.name]
            if isinstance(spec, Dense):
                head.projections[spec.name] = _linear(spec.dim, dim, device, generator)
                head.defaults[spec.name] = nn.Parameter(head.projections[spec.name].bias.detach().clone())
                continue
            if not (head.tower == "query" and spec.name in self.shared):
                with torch.no_grad():
                    self.table(head.tower, spec.name).copy_(_normal((spec.num_values, dim), device, generator))
            head.defaults[spec.name] = nn.Parameter(_normal((dim,), device, generator))
        widths = (sum(head.dims.values()), *head.config.hidden)
        for fan_in, fan_out in itertools.pairwise(widths):
            head.hidden_layers.append(_linear(fan_in, fan_out, device, generator))
        head.output = _linear(widths[-1], head.config.output_dim, device, generator)

    def table(self, tower: str, feature: str) -> torch.Tensor:
        """The weight (``[num_values, dim]``) of the table `feature` of `tower` reads (the item
        feature's for a shared query feature) in the unsharded collection."""
        if tower == "query" and feature in self.shared:
            tower, feature = "item", self.shared[feature]
        return self.tables.embedding_bags[table_key(tower, feature)].weight

    def forward(
        self,
        queries: FeatureBatch,
        items: FeatureBatch,
        views: tuple[FeatureBatch, FeatureBatch] | None = None,
        negatives: FeatureBatch | None = None,
        *,
        stride: int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor | None, ...]:
        """``(query, item, z1, z2, negative)`` embeddings, None where the batch is absent, as
        `augkit.train.run.TowerStep` returns them, from one lookup of the collection.

        ``stride``: rows per key of the KJT (the larger of the query batch and the item-side
        batches together when None). Sharded row-wise, every process must pass the same
        ``stride`` (TorchRec's backward gathers equal blocks): take the largest of any process.
        ``generator``: for the towers' dropout in training (one draw over the item-side rows
        concatenated)."""
        item_parts = [items, *(views or ()), *(() if negatives is None else (negatives,))]
        item_side = _concat(item_parts)
        kjt = batches_to_kjt([(table_key("query", ""), queries), (table_key("item", ""), item_side)], stride=stride)
        pooled = self.tables(kjt).to_dict()
        query = self.query(queries, pooled, generator=generator)
        embedded = self.item(item_side, pooled, generator=generator).split([b.batch_size for b in item_parts])
        item, rest = embedded[0], list(embedded[1:])
        z1, z2 = (rest.pop(0), rest.pop(0)) if views is not None else (None, None)
        return query, item, z1, z2, rest.pop(0) if negatives is not None else None

    # -- conversion from and to augkit's native towers ------------------------------------------

    @classmethod
    def from_towers(cls, towers: nn.ModuleDict) -> TorchRecTowers:
        """A module with the schemas, configs, shared tables and parameter values of native
        towers ``nn.ModuleDict({"query": Tower, "item": Tower})``, on their device."""
        query, item = _native_pair(towers)
        shared = {}
        item_tables = {name: item.input_layer.table(name) for name in item.schema.names if not isinstance(item.schema[name], Dense)}
        if item.input_layer.shared_tables:
            raise ConfigError(f"the item tower reads tables of another module ({list(item.input_layer.shared_tables)}); TorchRecTowers holds the item tower's own")
        for name in query.input_layer.shared_tables:
            table = query.input_layer.table(name)
            owners = [of for of, candidate in item_tables.items() if candidate is table]
            if not owners:
                raise ConfigError(f"query feature {name!r} shares a table the item tower does not hold")
            shared[name] = owners[0]
        device = next(item.parameters()).device
        module = cls(
            query.schema, item.schema, {"query": query.config, "item": item.config}, shared=shared,
            generator=torch.Generator(device),  # drawn, then overwritten below
        ).to(next(item.parameters()).dtype)
        module.load_state_dict(module.from_native_state(towers.state_dict()))
        return module

    def to_towers(self, state: Mapping[str, torch.Tensor] | None = None) -> nn.ModuleDict:
        """Native towers ``nn.ModuleDict({"query": Tower, "item": Tower})`` holding `state`
        (a state dict of this module, as `augkit.torchrec.sharding.full_state_dict` gathers it
        from a sharded one; this module's own when None), on its device and in its dtype."""
        state = self.state_dict() if state is None else state
        device = self.item.output.weight.device
        item = Tower(self.item.schema, **self.item.config.to_dict(), generator=torch.Generator(device))
        tables = {name: item.input_layer.table(of) for name, of in self.shared.items()}
        query = Tower(self.query.schema, **self.query.config.to_dict(), tables=tables, generator=torch.Generator(device))
        towers = nn.ModuleDict({"query": query, "item": item}).to(self.item.output.weight.dtype)
        towers.load_state_dict(self.to_native_state(state))
        return towers

    def native_names(self) -> dict[str, str]:
        """Every state-dict key of the native towers -> the key of this module holding the same
        values (the query tower's shared table is the item table's key)."""
        names: dict[str, str] = {}
        for head in (self.query, self.item):
            for j, spec in enumerate(head.schema):
                encoder = f"{head.tower}.input_layer.encoders.{j}"
                names[f"{encoder}.default"] = f"{head.tower}.defaults.{spec.name}"
                if isinstance(spec, Dense):
                    for part in ("weight", "bias"):
                        names[f"{encoder}.projection.{part}"] = f"{head.tower}.projections.{spec.name}.{part}"
                    continue
                tower, feature = ("item", self.shared[spec.name]) if head.tower == "query" and spec.name in self.shared else (head.tower, spec.name)
                names[f"{encoder}.table.weight"] = f"tables.embedding_bags.{table_key(tower, feature)}.weight"
            for k in range(len(head.hidden_layers)):
                for part in ("weight", "bias"):
                    names[f"{head.tower}.hidden_layers.{k}.{part}"] = f"{head.tower}.hidden_layers.{k}.{part}"
            for part in ("weight", "bias"):
                names[f"{head.tower}.output.{part}"] = f"{head.tower}.output.{part}"
        return names

    def from_native_state(self, native: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A native towers' state dict under this module's keys."""
        return {ours: native[theirs] for theirs, ours in self.native_names().items()}

    def to_native_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This module's state dict under the native towers' keys."""
        return {theirs: state[ours] for theirs, ours in self.native_names().items()}


def _drawn_by_augkit(weight: torch.Tensor) -> None:
    """The tables' ``init_fn``: nothing, since `TorchRecTowers` draws them in augkit's order."""


def _configs(config: TowerConfig | Mapping[str, TowerConfig] | None) -> dict[str, TowerConfig]:
    if config is None:
        config = TowerConfig()
    if isinstance(config, TowerConfig):
        return {"query": config, "item": config}
    if not isinstance(config, Mapping) or set(config) != set(TOWERS) or not all(isinstance(c, TowerConfig) for c in config.values()):
        raise ConfigError(f"TorchRecTowers(config=...): a TowerConfig, or {{'query': TowerConfig, 'item': TowerConfig}}, got {config!r}")
    return dict(config)


def _check_shared(shared: Mapping[str, str], query: TowerHead, item: TowerHead) -> None:
    for query_feature, item_feature in shared.items():
        for head, name in ((query, query_feature), (item, item_feature)):
            if name not in head.schema:
                raise UnknownNameError(f"{head.tower} feature in shared", name, head.schema.names)
            if isinstance(head.schema[name], Dense):
                raise ConfigError(f"shared: {head.tower} feature {name!r} is Dense and has no table")
        ours, theirs = query.schema[query_feature], item.schema[item_feature]
        if ours.num_values != theirs.num_values or query.dims[query_feature] != item.dims[item_feature]:
            raise ConfigError(
                f"shared: query feature {query_feature!r} ({ours.num_values} ids x {query.dims[query_feature]}) cannot read "
                f"item feature {item_feature!r}'s table ({theirs.num_values} ids x {item.dims[item_feature]})"
            )


def _native_pair(towers: Any) -> tuple[Tower, Tower]:
    if not isinstance(towers, nn.ModuleDict) or set(towers.keys()) != set(TOWERS) or not all(isinstance(towers[t], Tower) for t in TOWERS):
        raise ConfigError("TorchRecTowers.from_towers takes nn.ModuleDict({'query': Tower, 'item': Tower})")
    return towers["query"], towers["item"]


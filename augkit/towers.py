"""The input layer and the towers of a two-tower model, built from a `FeatureSchema`.

`InputLayer` turns each feature into one vector and concatenates them in schema order:

* `Categorical`: the row of the id in the feature's table, or the feature's learned
  **default embedding** where the feature is not present (masked or missing).
* `MultiCategorical`: the mean of the rows of the kept ids (``kept & present``), or the
  default embedding where nothing is kept or the bag is not present.
* `Dense`: a linear projection of the vector, or the default embedding where not present.

The layer reads the batch's masks, not the reserved ids of `augkit.schema`: a table holds the
``num_values`` real ids only, and each feature owns its default embedding as a separate
parameter. So one table can serve a `Categorical` and a `MultiCategorical` over the same ids,
whose reserved ids differ: the item id of the item tower and the bag of the user's training
items in the query tower::

    items = Tower(item_schema)
    queries = QueryTower(query_schema, tables={"history": items.input_layer.table("item_id")})

A shared table is a parameter of both towers: build the optimiser over one module holding
both (``nn.ModuleDict({"query": queries, "item": items}).parameters()`` lists it once).

`Tower` is InputLayer -> MLP -> L2 normalisation. The item tower embeds the main task's items
and both SSL views: the same module applied to different `FeatureBatch` es, which is the
parameter sharing of Yao et al. (CIKM 2021).

Parameters are drawn from an optional `torch.Generator` (torch's global generator when None,
as in `torch.nn`) on the generator's device; move a tower with ``.to(device)``. The forward
pass runs on the device of the parameters, which must be the batch's, without host syncs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from augkit.batch import FeatureBatch
from augkit.errors import BatchValidationError, ConfigError, UnknownNameError, check_known_keys
from augkit.memory import check_fits
from augkit.random import check_generator, uniform
from augkit.schema import Categorical, Dense, FeatureSchema, MultiCategorical

ACTIVATIONS: Mapping[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
}
"""Activation functions of the tower's hidden layers, by config name."""


def _positive_int(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} must be a positive int, got {value!r}")


# -- parameter construction ----------------------------------------------------------------


def _init_device(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def _embedding(rows: int, dim: int, generator: torch.Generator | None) -> nn.Embedding:
    """``nn.Embedding(rows, dim)`` with N(0, 1) rows drawn from `generator` (torch's default
    init, built on the meta device first so that no draw is wasted)."""
    table = nn.Embedding(rows, dim, device="meta").to_empty(device=_init_device(generator))
    nn.init.normal_(table.weight, generator=generator)
    return table


def _linear(fan_in: int, fan_out: int, generator: torch.Generator | None) -> nn.Linear:
    """``nn.Linear`` with torch's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the
    weight and the bias, drawn from `generator`."""
    layer = nn.Linear(fan_in, fan_out, device="meta").to_empty(device=_init_device(generator))
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


# -- one encoder per feature ---------------------------------------------------------------


class _IdEncoder(nn.Module):
    """Ids -> masked mean of table rows, or the default embedding where nothing is active.

    A `Categorical` feature is a bag of length 1.
    """

    def __init__(
        self,
        spec: Categorical | MultiCategorical,
        table: nn.Embedding,
        dim: int,
        generator: torch.Generator | None,
    ) -> None:
        super().__init__()
        self.name = spec.name
        self.table = table
        default = torch.empty(dim, device=_init_device(generator), dtype=table.weight.dtype)
        self.default = nn.Parameter(nn.init.normal_(default, generator=generator))

    def forward(self, ids: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """``ids``: ``LongTensor[B, L]``; ``active``: ``BoolTensor[B, L]`` -> ``[B, dim]``."""
        try:
            rows = self.table(torch.where(active, ids, 0))
        except IndexError as error:
            raise BatchValidationError(
                f"feature {self.name!r}: a present, kept id lies outside "
                f"0..{self.table.num_embeddings - 1} (FeatureBatch.from_tensors validates ids; "
                "the plain constructor does not)"
            ) from error
        count = active.sum(dim=1, keepdim=True)
        weights = active.to(rows.dtype) / count.clamp(min=1).to(rows.dtype)
        mean = torch.bmm(weights.unsqueeze(1), rows).squeeze(1)
        return torch.where(count > 0, mean, self.default)


class _DenseEncoder(nn.Module):
    """Vectors -> linear projection, or the default embedding where not present.

    The default starts as the projection of zeros (the bias), which is how `FeatureBatch`
    stores a missing vector, and then learns.
    """

    def __init__(self, spec: Dense, dim: int, generator: torch.Generator | None) -> None:
        super().__init__()
        self.projection = _linear(spec.dim, dim, generator)
        self.default = nn.Parameter(self.projection.bias.detach().clone())

    def forward(self, values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``values``: ``FloatTensor[B, D]``; ``present``: ``BoolTensor[B]`` -> ``[B, dim]``."""
        projected = self.projection(values.to(self.projection.weight.dtype))
        return torch.where(present.unsqueeze(1), projected, self.default)


# -- sizes before allocation ---------------------------------------------------------------


class ParameterPart(NamedTuple):
    """A part of a tower's parameters: ``label`` (``"item_id table 3000 x 32"``), ``count``
    (parameters), and what sizes it: a setting ``key`` (``"embedding_dim"``, ``"hidden"``) and
    its ``value``, or, for a table with more ids than columns, ``feature`` (its name) and
    ``value`` its number of ids. ``rows``: an id table's number of rows (0 for other parts)."""

    label: str
    count: int
    key: str
    value: object
    feature: bool = False
    rows: int = 0

    def driver(self, prefix: str = "") -> str:
        """``"model.embedding_dim = 1000000"`` (with `prefix` ``"model."``) or ``"feature 'big' has 1099511627776 ids"``."""
        return f"feature {self.key!r} has {self.value} ids" if self.feature else f"{prefix}{self.key} = {self.value}"


def _input_parts(
    schema: FeatureSchema, dims: tuple[int, ...], embedding_dim: int, shared: Iterable[str]
) -> list[ParameterPart]:
    """The input layer's parameters: each id table it owns, then the default embeddings and
    dense projections together."""
    shared = set(shared)
    parts, small = [], 0
    for spec, dim in zip(schema, dims, strict=True):
        key = "embedding_dim" if dim == embedding_dim else f"embedding_dims[{spec.name!r}]"
        if isinstance(spec, Dense):
            small += (spec.dim + 2) * dim  # weight, bias, default
            continue
        small += dim  # default
        if spec.name in shared:
            continue
        label, count = f"{spec.name} table {spec.num_values} x {dim}", spec.num_values * dim
        if spec.num_values > dim:
            parts.append(ParameterPart(label, count, spec.name, spec.num_values, feature=True, rows=spec.num_values))
        else:
            parts.append(ParameterPart(label, count, key, dim, rows=spec.num_values))
    parts.append(ParameterPart("default embeddings and dense projections", small, "embedding_dim", embedding_dim))
    return parts


def parameter_parts(
    schema: FeatureSchema, config: TowerConfig, *, shared: Iterable[str] = ()
) -> tuple[ParameterPart, ...]:
    """The parameters a `Tower` of `schema` and `config` holds, by part, largest first, counted
    without allocating: each id table it owns (``num_values x dim``; not the `shared` ones),
    the default embeddings and dense projections, and each layer of the MLP (``fan_in x
    fan_out`` and the bias)."""
    if not isinstance(schema, FeatureSchema):
        raise TypeError(f"Tower takes a FeatureSchema, got {type(schema).__name__}")
    dims = _feature_dims(schema, config.embedding_dim, config.embedding_dims)
    parts = _input_parts(schema, dims, config.embedding_dim, shared)
    widths = (sum(dims), *config.hidden, config.output_dim)
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        if i == 0 and fan_in > fan_out:  # the input layer's width sizes the first layer
            key, value = "embedding_dim", config.embedding_dim
        else:
            key, value = ("hidden", list(config.hidden)) if i < len(config.hidden) else ("output_dim", config.output_dim)
        parts.append(ParameterPart(f"layer {fan_in} x {fan_out}", (fan_in + 1) * fan_out, key, value))
    return tuple(sorted(parts, key=lambda part: -part.count))


def check_parameter_memory(
    parts: Iterable[ParameterPart],
    device: torch.device | str,
    *,
    what: str,
    copies: int = 1,
    prefix: str = "",
) -> None:
    """`ConfigError` before allocation when `copies` of the `parts` (the parameters, and an
    optimiser's state per parameter) in the default dtype exceed the free memory of `device`
    (`augkit.memory.check_fits`). The message leads with what makes up most of the size (the
    settings, each ``prefix + key``, or a feature's number of ids) and lists the largest parts."""
    parts = sorted(parts, key=lambda part: -part.count)
    total = sum(part.count for part in parts)
    by_driver: dict[tuple[str, bool], list[ParameterPart]] = {}
    for part in parts:
        by_driver.setdefault((part.key, part.feature), []).append(part)
    drivers, covered = [], 0
    for group in sorted(by_driver.values(), key=lambda group: -sum(part.count for part in group)):
        drivers.append(group[0])  # what makes up half the size
        covered += sum(part.count for part in group)
        if covered * 2 >= total:
            break
    settings = [prefix + lead.key for lead in drivers if not lead.feature]
    features = [repr(lead.key) for lead in drivers if lead.feature]
    fixes = ([f"lower {' and '.join(settings)}"] if settings else []) + (
        [f"give feature {', '.join(features)} fewer ids (a vocabulary or hashing)"] if features else []
    )
    check_fits(
        total * copies * (torch.finfo(torch.get_default_dtype()).bits // 8),
        device,
        what=f"{'; '.join(lead.driver(prefix) for lead in drivers)}: {what} ({', '.join(p.label for p in parts[:3])})",
        fix=" or ".join(fixes),
    )


# -- the input layer -----------------------------------------------------------------------


def _feature_dims(
    schema: FeatureSchema, embedding_dim: int, overrides: Mapping[str, int]
) -> tuple[int, ...]:
    _positive_int("embedding_dim", embedding_dim)
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"embedding_dims must map feature names to ints, got {overrides!r}")
    for name, dim in overrides.items():
        if name not in schema:
            raise UnknownNameError("feature in embedding_dims", name, schema.names)
        _positive_int(f"embedding_dims[{name!r}]", dim)
    return tuple(overrides.get(spec.name, embedding_dim) for spec in schema)


def _check_table(spec: Categorical | MultiCategorical, table: object, dim: int) -> nn.Embedding:
    if not isinstance(table, nn.Embedding):
        raise ConfigError(
            f"feature {spec.name!r}: a shared table must be an nn.Embedding, "
            f"got {type(table).__name__}"
        )
    expected = (spec.num_values, dim)
    if tuple(table.weight.shape) != expected:
        raise ConfigError(
            f"feature {spec.name!r}: a shared table must be [num_values, dim] = {list(expected)}, "
            f"got {list(table.weight.shape)}"
        )
    return table


def _schema_mismatch(layer: FeatureSchema, batch: FeatureSchema) -> str:
    ours = {spec.name: spec for spec in layer}
    theirs = {spec.name: spec for spec in batch}
    parts = []
    if missing := [name for name in layer.names if name not in theirs]:
        parts.append(f"the batch lacks {', '.join(map(repr, missing))}")
    if extra := [name for name in batch.names if name not in ours]:
        parts.append(f"the layer does not know {', '.join(map(repr, extra))}")
    parts += [
        f"feature {name!r} is {theirs[name]!r} in the batch but {spec!r} in the layer"
        for name, spec in ours.items()
        if name in theirs and theirs[name] != spec
    ]
    if not parts:
        parts.append(f"the features are in another order: batch {batch.names}, layer {layer.names}")
    return "the batch's schema differs from the input layer's: " + "; ".join(parts)


class InputLayer(nn.Module):
    """Embeds a `FeatureBatch`: ``forward(batch) -> FloatTensor[B, output_dim]``.

    One block per feature, in schema order, of width ``embedding_dims.get(name,
    embedding_dim)`` (see the module docstring for what each feature type gives).

    ``tables`` maps a `Categorical` or `MultiCategorical` feature to an existing
    ``nn.Embedding`` of shape ``[num_values, dim]`` to use (and train) instead of a table of
    its own; the feature's default embedding stays its own. Ids at positions that are present
    and kept must lie in ``0 .. num_values-1``, as `FeatureBatch.from_tensors` guarantees.

    Attributes: ``schema``; ``dims``, the width of each feature's block in schema order;
    ``shared_tables``, the features whose table came from ``tables``, in schema order.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        embedding_dim: int = 32,
        *,
        embedding_dims: Mapping[str, int] | None = None,
        tables: Mapping[str, nn.Embedding] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(schema, FeatureSchema):
            raise TypeError(f"InputLayer takes a FeatureSchema, got {type(schema).__name__}")
        dims = _feature_dims(schema, embedding_dim, embedding_dims or {})
        tables = dict(tables or {})
        check_parameter_memory(
            _input_parts(schema, dims, embedding_dim, tables), _init_device(generator),
            what="the input layer's parameters",
        )
        for name in tables:
            if name not in schema:
                raise UnknownNameError("feature in tables", name, schema.names)
            if isinstance(schema[name], Dense):
                raise ConfigError(
                    f"feature {name!r} is Dense; only Categorical and MultiCategorical features "
                    "take a shared table"
                )
        encoders: list[nn.Module] = []
        for spec, dim in zip(schema, dims, strict=True):
            if isinstance(spec, Dense):
                encoders.append(_DenseEncoder(spec, dim, generator))
                continue
            table = (
                _check_table(spec, tables[spec.name], dim)
                if spec.name in tables
                else _embedding(spec.num_values, dim, generator)
            )
            encoders.append(_IdEncoder(spec, table, dim, generator))
        self.schema = schema
        self.dims = dims
        self.shared_tables = tuple(name for name in schema.names if name in tables)
        self.encoders = nn.ModuleList(encoders)

    @property
    def output_dim(self) -> int:
        """Width of the output: the sum of the features' widths."""
        return sum(self.dims)

    def table(self, name: str) -> nn.Embedding:
        """The ``nn.Embedding`` (``[num_values, dim]``) of categorical feature `name`."""
        encoder = self.encoders[self.schema.index(name)]
        if not isinstance(encoder, _IdEncoder):
            raise ConfigError(f"feature {name!r} is Dense and has no embedding table")
        return encoder.table

    def default(self, name: str) -> nn.Parameter:
        """The learned default embedding (``[dim]``) of feature `name`."""
        return self.encoders[self.schema.index(name)].default

    def forward(self, batch: FeatureBatch) -> torch.Tensor:
        """``FloatTensor[B, output_dim]`` on the parameters' device, which must be the batch's."""
        if batch.schema is not self.schema and batch.schema != self.schema:
            raise BatchValidationError(_schema_mismatch(self.schema, batch.schema))
        device = self.encoders[0].default.device
        if batch.device != device:
            raise BatchValidationError(
                f"the batch is on {batch.device}, the input layer's parameters on {device}; "
                "move one of them (batch.to(device) or layer.to(device))"
            )
        blocks = []
        for j, (spec, encoder) in enumerate(zip(self.schema, self.encoders, strict=True)):
            present = batch.present[:, j]
            value = batch.values[spec.name]
            if isinstance(spec, MultiCategorical):
                blocks.append(encoder(value, batch.kept[spec.name] & present.unsqueeze(1)))
            elif isinstance(spec, Categorical):
                blocks.append(encoder(value.unsqueeze(1), present.unsqueeze(1)))
            else:
                blocks.append(encoder(value, present))
        return torch.cat(blocks, dim=1)


# -- towers --------------------------------------------------------------------------------


def _tuple_of(value: Any) -> Any:
    """Lists (from TOML/JSON) become tuples; anything else is left for the validator."""
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
        return tuple(value)
    return value


def _check_hidden(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, tuple):
        raise ConfigError(f"Tower: hidden must be a list of positive ints, got {value!r}")
    for width in value:
        _positive_int("Tower: each hidden width", width)


def _check_positive(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    _positive_int(f"Tower: {attribute.name}", value)


def _check_embedding_dims(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"Tower: embedding_dims must map feature names to ints, got {value!r}")
    for name, dim in value.items():
        _positive_int(f"Tower: embedding_dims[{name!r}]", dim)


def _check_dropout(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"Tower: dropout must be a number in [0, 1), got {value!r}")


def _check_activation(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in ACTIVATIONS:
        raise UnknownNameError("Tower activation", value, ACTIVATIONS)


def _check_bool(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"Tower: {attribute.name} must be true or false, got {value!r}")


@attrs.frozen(kw_only=True)
class TowerConfig:
    """The architecture of a `Tower` apart from its schema (see `Tower` for the fields)."""

    hidden: tuple[int, ...] = attrs.field(
        default=(256, 128), converter=_tuple_of, validator=_check_hidden
    )
    output_dim: int = attrs.field(default=64, validator=_check_positive)
    embedding_dim: int = attrs.field(default=32, validator=_check_positive)
    embedding_dims: Mapping[str, int] = attrs.field(
        factory=dict,
        converter=lambda v: dict(v) if isinstance(v, Mapping) else v,
        validator=_check_embedding_dims,
    )
    dropout: float = attrs.field(default=0.0, validator=_check_dropout)
    activation: str = attrs.field(default="relu", validator=_check_activation)
    normalize: bool = attrs.field(default=True, validator=_check_bool)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML/JSON-able values (lists and dicts)."""
        return attrs.asdict(self)


def mlp_head(tower: nn.Module, x: torch.Tensor, generator: torch.Generator | None, *, who: str) -> torch.Tensor:
    """A tower's layers after its input layer, on ``x`` (``[B, input width]``): each of
    ``tower.hidden_layers`` -> activation -> dropout (in training, drawn per example from
    `generator`, which ``dropout > 0`` requires; `who` names the tower in that error), then
    ``tower.output``, then L2 normalisation where ``tower.config.normalize``. `Tower` and the
    TorchRec towers' heads share it."""
    config: TowerConfig = tower.config
    activation, rate = ACTIVATIONS[config.activation], config.dropout
    for layer in tower.hidden_layers:
        x = activation(layer(x))
        if tower.training and rate > 0.0:
            check_generator(generator, f"{who} (training with dropout={rate})")
            draws = uniform(x.shape[0], (x.shape[1],), granularity="example", generator=generator, device=x.device)
            x = x * (draws >= rate) / (1.0 - rate)
    x = tower.output(x)
    return F.normalize(x, dim=-1) if config.normalize else x


_CONFIG_KEYS = ("schema", "shared_tables", *(f.name for f in attrs.fields(TowerConfig)))


class Tower(nn.Module):
    """InputLayer -> MLP -> L2 normalisation: ``forward(batch, *, generator=None) ->
    FloatTensor[B, output_dim]``, unit rows when ``normalize``.

    * ``hidden``: widths of the hidden layers, each Linear -> activation -> dropout;
      a final Linear maps to ``output_dim`` (``hidden=()``: the Linear alone).
    * ``embedding_dim`` / ``embedding_dims`` / ``tables``: see `InputLayer`.
    * ``dropout``: rate after each hidden activation, in training mode only; it draws from the
      ``generator`` passed to ``forward``, which training with ``dropout > 0`` requires.
    * ``activation``: a name of `ACTIVATIONS`.
    * ``generator``: draws the initial parameters (see the module docstring).
    """

    def __init__(
        self,
        schema: FeatureSchema,
        hidden: Iterable[int] = (256, 128),
        output_dim: int = 64,
        embedding_dim: int = 32,
        dropout: float = 0.0,
        activation: str = "relu",
        normalize: bool = True,
        *,
        embedding_dims: Mapping[str, int] | None = None,
        tables: Mapping[str, nn.Embedding] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = TowerConfig(
            hidden=hidden,
            output_dim=output_dim,
            embedding_dim=embedding_dim,
            embedding_dims={} if embedding_dims is None else embedding_dims,
            dropout=dropout,
            activation=activation,
            normalize=normalize,
        )
        check_parameter_memory(
            parameter_parts(schema, self.config, shared=tables or {}), _init_device(generator),
            what="the tower's parameters",
        )
        self.input_layer = InputLayer(
            schema,
            self.config.embedding_dim,
            embedding_dims=self.config.embedding_dims,
            tables=tables,
            generator=generator,
        )
        widths = (self.input_layer.output_dim, *self.config.hidden)
        self.hidden_layers = nn.ModuleList(
            _linear(fan_in, fan_out, generator) for fan_in, fan_out in itertools.pairwise(widths)
        )
        self.output = _linear(widths[-1], self.config.output_dim, generator)

    @property
    def schema(self) -> FeatureSchema:
        return self.input_layer.schema

    def forward(
        self, batch: FeatureBatch, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return mlp_head(self, self.input_layer(batch), generator, who="Tower")

    def to_config(self) -> dict[str, Any]:
        """``{"schema", "shared_tables", **TowerConfig}`` as plain values; `from_config`
        inverts it. ``shared_tables`` names the features whose table was passed in."""
        return {
            "schema": self.schema.to_dict(),
            "shared_tables": list(self.input_layer.shared_tables),
            **self.config.to_dict(),
        }

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        tables: Mapping[str, nn.Embedding] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tower:
        """Build a tower from `to_config` output; keys other than ``schema`` are optional.

        ``tables`` must hold exactly the features listed in ``shared_tables``, so that a
        shared table cannot silently become a table of its own.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(f"a tower config is a dict, got {type(config).__name__}")
        check_known_keys("tower config key", config, _CONFIG_KEYS)
        if "schema" not in config:
            raise ConfigError(
                "a tower config needs 'schema' (as FeatureSchema.to_dict() writes it)"
            )
        shared = config.get("shared_tables", [])
        if not isinstance(shared, (list, tuple)) or not all(isinstance(n, str) for n in shared):
            raise ConfigError(
                f"tower config 'shared_tables' must be a list of feature names, got {shared!r}"
            )
        given = sorted(tables or {})
        if sorted(shared) != given:
            raise ConfigError(
                f"the tower config shares the tables of {sorted(shared)}; pass exactly those as "
                f"tables=..., got {given}"
            )
        arguments = {
            key: value for key, value in config.items() if key not in ("schema", "shared_tables")
        }
        return cls(
            FeatureSchema.from_dict(config["schema"]),
            **arguments,
            tables=tables,
            generator=generator,
        )


QueryTower = Tower
"""The query tower is a `Tower` over the query schema: user features and, optionally, a
`MultiCategorical` bag of the user's training item ids sharing the item tower's table
(``tables={"history": item_tower.input_layer.table("item_id")}``)."""

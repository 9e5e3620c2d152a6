"""Everything a training run is built from: data, split, towers, losses and augmentation."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from augkit import distributed
from augkit.augmentation import Augmentation, PairAugmentation
from augkit.batch import FeatureBatch
from augkit.compose import Sequential, TwoViews, from_config, prepare_config
from augkit.data.dataset import RecDataset
from augkit.data.sources import load_source, load_streamed
from augkit.data.streamed import StreamedData
from augkit.data.splits import Split, split_interactions
from augkit.errors import AugkitError, ConfigError, UnknownNameError
from augkit.random import generator_for
from augkit.registry import get_registry
from augkit.testing import check_global_rngs_untouched, check_reproducible
from augkit.towers import ParameterPart, Tower, TowerConfig, check_parameter_memory, parameter_parts
from augkit.train.config import Component, TrainConfig
from augkit.train.contracts import augmentations, culprit
from augkit.train.history import HISTORY_FEATURE, with_history
from augkit.train.optimizers import use_sparse_gradients

log = logging.getLogger("augkit.train")

ITEM_ID_FEATURE = "item_id"


STREAM_SPLIT, STREAM_INIT, STREAM_EPOCH, STREAM_STEP = 1, 2, 3, 4


def load_dataset(config: TrainConfig) -> RecDataset:
    """The data set named by ``config.data.source`` (a registered source, `augkit.data.sources`)."""
    return load_source(config.data)


@attrs.frozen(eq=False)
class RunParts:
    """The built pieces of a run (everything but the loop state)."""

    config: TrainConfig
    """The run's config, resolved: a ``cfm`` augmentation carries its MI inline."""
    dataset: RecDataset
    split: Split
    queries: FeatureBatch
    model: nn.ModuleDict
    main_loss: nn.Module
    ssl_loss: nn.Module | None
    spread_out: nn.Module | None
    frequency: nn.Module | None
    """The logQ estimator: ``update(ids)`` each step when ``online``, else fitted on
    `train_counts`; ``log_prob(ids)`` on the scale ``per`` ("draw" or "batch")."""
    negatives: Any | None
    """The extra-negatives sampler: ``batches(generator)`` and per-draw ``log_prob(ids)``."""
    augmentation: TwoViews | PairAugmentation | None
    """The SSL views; a single-view augmentation of the config is lifted to `TwoViews`."""
    feature_dropout: Any | None
    train_counts: torch.Tensor
    towers: Callable[..., tuple[torch.Tensor | None, ...]]
    """The step's one forward: `TowerStep` over ``model`` (in DDP when distributed), or on the
    torchrec backend `augkit.train.backend.TorchRecStep`."""
    examples: StreamedData | None = None
    """The streamed training examples of the ``examples`` source (`augkit.train.streamed`
    trains from them); None for the in-memory sources."""


def split_for(config: TrainConfig, dataset: RecDataset) -> Split:
    """The run's train / validation / test split of `dataset` (seeded by ``config.seed``)."""
    return split_interactions(
        dataset,
        test_fraction=config.data.test_fraction,
        valid_fraction=config.data.valid_fraction,
        cold_fraction=config.data.cold_fraction,
        generator=generator_for(config.seed, STREAM_SPLIT),
    )


def build_run(config: TrainConfig, dataset: RecDataset | None = None) -> RunParts:
    """Load data, split it and build towers, losses and augmentations from `config`. The
    ``examples`` source streams its training events: its data is loaded afresh (`dataset`
    unused), its split holds the held-out events (`augkit.data.streamed`)."""
    examples = load_streamed(config.data) if config.data.source == "examples" else None
    dataset = examples.dataset if examples is not None else dataset if dataset is not None else load_dataset(config)
    too_large = [k for k in config.eval.ks if k > dataset.num_items]
    if too_large:
        raise ConfigError(
            f"eval.ks: k={too_large[0]} exceeds the {dataset.num_items} items of data set {dataset.name!r}"
        )
    split = examples.split if examples is not None else split_for(config, dataset)
    if examples is not None and not int(examples.train_counts.sum()):
        raise ConfigError(f"the examples at {str(config.data.examples.reader.path)!r} leave no training event with a known item")
    if examples is None and len(split.train) == 0:
        raise ConfigError(
            f"data set {dataset.name!r} leaves no training events after the split "
            f"(data.test_fraction, data.valid_fraction, data.cold_fraction)"
        )
    if examples is not None:
        queries, train_counts = examples.queries, examples.train_counts
    else:
        queries = with_history(
            dataset.users, split.train, num_items=dataset.num_items, history_len=config.data.history_len
        )
        train_counts = torch.bincount(split.train.items, minlength=dataset.num_items)
    model = build_model(config, dataset.items, queries)
    gather = config.main.gather if config.main.gather is not None else distributed.world_size() > 1
    main_loss = build_component(
        "loss", config.main.loss, "main.loss",
        temperature=config.main.temperature, logq_correction=config.main.logq_correction, gather=gather,
    )
    frequency = None
    if config.main.logq is not None:
        frequency = build_component("sampler", config.main.logq, "main.logq", num_items=dataset.num_items)
        require_role(frequency, config.main.logq.name, "main.logq", ("online", "log_prob"))
        require_role(frequency, config.main.logq.name, "main.logq", ("update",) if frequency.online else ("fit",))
        if not frequency.online:
            frequency.fit(train_counts)
    negatives = None
    if config.main.negative_sampler() is not None:
        negatives = build_component("sampler", config.main.negative_sampler(), "main.negatives", num_items=dataset.num_items)
        require_role(negatives, config.main.negative_sampler().name, "main.negatives", ("batches", "log_prob"))
    ssl_loss = augmentation = None
    if config.ssl.alpha > 0:
        ssl_loss = build_component("loss", config.ssl.loss, "ssl.loss", temperature=config.ssl.temperature, gather=gather)
        resolved, augmentation = build_augmentation(config, dataset.items)
        config = attrs.evolve(config, ssl=attrs.evolve(config.ssl, augmentation=resolved))
    spread_out = None
    if config.main.spread_out > 0:
        spread_out = build_component("loss", config.main.regularizer, "main.regularizer", gather=gather)
    _check_loss_calls(config, main_loss, ssl_loss, spread_out)
    feature_dropout = None
    if config.main.item_augmentation() is not None:
        feature_dropout = from_config(config.main.item_augmentation(), where="main.augmentation")
    return RunParts(
        config=config,
        dataset=dataset,
        split=split,
        queries=queries,
        model=model,
        main_loss=main_loss,
        ssl_loss=ssl_loss,
        spread_out=spread_out,
        frequency=frequency,
        negatives=negatives,
        augmentation=augmentation,
        feature_dropout=feature_dropout,
        train_counts=train_counts,
        towers=TowerStep(model),
        examples=examples,
    )


def build_component(kind: str, component: Component, where: str, **passed: Any) -> Any:
    """The plugin `component` of `kind` from the registry, built with its params and the
    arguments its role `passes` (a param that repeats one of them is refused). Errors name the
    config key `where`: an unknown name with the closest match, a parameter the plugin does not
    take (a plugin for this role must accept the passed arguments)."""
    clash = sorted(set(passed) & set(component.params))
    if clash:
        raise ConfigError(f"{where}.params: {clash} are set by the trainer for {where}; remove them from params")
    registry = get_registry()
    try:
        return registry.create(kind, component.name, {**component.params, **passed})
    except UnknownNameError as error:
        if error.name in passed:
            raise ConfigError(
                f"{where}: {kind} {component.name!r} does not accept {error.name!r}, which the trainer passes "
                f"to every {where} ({', '.join(passed)}); see docs/reference/train-config.md"
            ) from None
        raise ConfigError(f"{where}: {error}") from None
    except (ValueError, TypeError) as error:
        if isinstance(error, AugkitError):
            raise ConfigError(f"{where}: {error}") from None
        raise ConfigError(f"{where}.params: {error}") from None


def require_role(component: Any, name: str, where: str, members: Sequence[str]) -> None:
    """`ConfigError` naming `where` when the plugin `component` (registered as `name`) lacks
    one of the `members` the trainer uses in that role: said when the run is built, not at
    its first step."""
    missing = [member for member in members if not hasattr(component, member)]
    if missing:
        raise ConfigError(
            f"{where}: {name!r} cannot serve as {where}: it has no {', '.join(missing)}, which the trainer "
            f"uses there; see docs/reference/train-config.md"
        )


def _check_loss_calls(
    config: TrainConfig, main_loss: nn.Module, ssl_loss: nn.Module | None, regularizer: nn.Module | None
) -> None:
    """`ConfigError` naming the config key unless each loss takes its role's call (`augkit.train.step`)
    on four rows of random unit embeddings: a loss registered for another role is found when the
    run is built, not at step 0 with the run directory written. Each call is made on a copy of
    the loss, so a loss with state (a queue, running statistics) starts training untouched.
    Skipped in a process group, where a loss that gathers would call collectives."""
    if distributed.is_distributed():
        return
    main_loss, ssl_loss, regularizer = copy.deepcopy((main_loss, ssl_loss, regularizer))
    generator = torch.Generator().manual_seed(0)

    def rows() -> torch.Tensor:
        return nn.functional.normalize(torch.randn(4, config.model.output_dim, generator=generator), dim=1)

    ids = torch.arange(4)
    calls = [("main.loss", config.main.loss, lambda: main_loss(rows(), rows(), item_ids=ids, log_q=torch.zeros(4)))]
    if ssl_loss is not None:
        calls.append(("ssl.loss", config.ssl.loss, lambda: ssl_loss(rows(), rows(), item_ids=ids)))
    if regularizer is not None:
        calls.append(("main.regularizer", config.main.regularizer, lambda: regularizer(rows(), item_ids=ids)))
    for key, component, call in calls:
        try:
            with torch.no_grad():
                call()
        except Exception as error:
            raise ConfigError(
                f"{key}: loss {component.name!r} does not take the call of {key} "
                f"({type(error).__name__}: {error}); see the roles in docs/reference/train-config.md"
            ) from None


def build_augmentation(config: TrainConfig, items: FeatureBatch) -> tuple[dict[str, Any], TwoViews | PairAugmentation]:
    """The SSL augmentation of `config` for the item corpus `items`: its config prepared for
    the corpus (`augkit.compose.prepare_config`: a ``cfm`` gets the corpus MI inline) and the
    two-view pipeline built from it, checked on a dry run over a few items. Errors name the
    config path."""
    resolved = prepare_config(
        config.ssl.augmentation, items, allow_stale=config.ssl.allow_stale_mi, where="ssl.augmentation"
    )
    augmentation = _two_view(from_config(resolved, where="ssl.augmentation"), resolved)
    _check_fits(augmentation, items, resolved)
    return resolved, augmentation


class TowerStep(nn.Module):
    """Every tower call of a training step in one forward, as DDP wants: the query tower on
    the queries, the item tower on the main batch's items and on the SSL views."""

    def __init__(self, model: nn.ModuleDict) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        queries: FeatureBatch,
        items: FeatureBatch,
        views: tuple[FeatureBatch, FeatureBatch] | None,
        negatives: FeatureBatch | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Query, item, the two views' and the extra negatives' embeddings (None where absent)."""
        tower = self.model["item"]
        query, item = self.model["query"](queries), tower(items)
        z1, z2 = (None, None) if views is None else (tower(views[0]), tower(views[1]))
        return query, item, z1, z2, None if negatives is None else tower(negatives)


ADAM_STATES = 2
"""Tensors of optimiser state per parameter (Adam's two moments), counted before the towers are built."""
OPTIMIZER_STATE = {
    "adam": "Adam's state",
    "sparse_adam": "the optimizers' state (Adam's two moments per parameter, SparseAdam's per table parameter)",
    "rowwise_adagrad": "the optimizers' state (Adam's two moments per parameter, row-wise Adagrad's one per table row)",
}
"""What the memory check counts besides the parameters, by ``optim.tables``."""


def with_optimizer_state(part: ParameterPart, tables: str) -> ParameterPart:
    """`part` counting its optimizer state too: Adam's (and SparseAdam's, which keeps dense
    moments) two values per parameter, row-wise Adagrad's one per row of an id table."""
    state = part.rows if part.rows and tables == "rowwise_adagrad" else ADAM_STATES * part.count
    return part._replace(count=part.count + state)


def build_model(
    config: TrainConfig, items: FeatureBatch, queries: FeatureBatch, *, training: bool = True
) -> nn.ModuleDict:
    """Item and query towers, initialised from the run's seed. The query's ``history`` bag
    shares the item tower's ``item_id`` table when both exist.

    First their parameters (and, when `training`, the optimizer state of ``optim.tables``,
    `with_optimizer_state`) are estimated and checked against the free memory of the host
    (where they are built) and of a CUDA ``device``: too large a model is a `ConfigError`
    naming the ``model.*`` setting or the feature behind it, before any table is allocated;
    on the torchrec backend the check counts the id tables twice (the native towers and the
    TorchRec copy, `augkit.train.backend`). When `training` natively with a sparse
    ``optim.tables`` choice, the id tables produce sparse gradients
    (`augkit.train.optimizers.use_sparse_gradients`). Serving builds with ``training=False``."""
    generator = generator_for(config.seed, STREAM_INIT)
    shape = {
        "hidden": config.model.hidden,
        "output_dim": config.model.output_dim,
        "embedding_dim": config.model.embedding_dim,
    }
    tables = {}
    if HISTORY_FEATURE in queries.schema and ITEM_ID_FEATURE in items.schema:
        tables[HISTORY_FEATURE] = ITEM_ID_FEATURE
    sizes = TowerConfig(**shape)
    parts = [part._replace(label=f"item tower's {part.label}") for part in parameter_parts(items.schema, sizes)]
    parts += [part._replace(label=f"query tower's {part.label}") for part in parameter_parts(queries.schema, sizes, shared=tables)]
    devices = ["cpu"]  # the towers are built on the host, then moved to the run's device
    if config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available()):
        devices.append("cuda" if config.device == "auto" else config.device)
    what = "the towers' parameters"
    if training:
        copies = [] if config.model.backend == "native" else [p._replace(label=f"{p.label}'s TorchRec copy") for p in parts if p.rows]
        parts = [with_optimizer_state(part, config.optim.tables) for part in parts] + copies
        what += f" and {OPTIMIZER_STATE[config.optim.tables]}" + (" and the TorchRec copy of the id tables" if copies else "")
    for device in devices:
        check_parameter_memory(parts, device, what=what, prefix="model.")
    item_tower = Tower(items.schema, **shape, generator=generator)
    query_tower = Tower(
        queries.schema, **shape, tables={name: item_tower.input_layer.table(of) for name, of in tables.items()},
        generator=generator,
    )
    model = nn.ModuleDict({"query": query_tower, "item": item_tower})
    if training and config.optim.tables != "adam" and config.model.backend == "native":
        use_sparse_gradients(model)
    return model


def _two_view(augmentation: Any, config: dict[str, Any]) -> TwoViews | PairAugmentation:
    """The SSL task's augmentation as a pair: a single-view one runs once per view, with fresh
    randomness (``TwoViews(pair=augmentation)``)."""
    if isinstance(augmentation, (TwoViews, PairAugmentation)):
        return augmentation
    if isinstance(augmentation, Augmentation):
        return TwoViews(pair=augmentation)
    raise ConfigError(
        f"ssl.augmentation {config.get('name')!r} is a {type(augmentation).__name__}, not an "
        "augmentation: the SSL task needs an Augmentation, a PairAugmentation or two_views"
    )


def _check_fits(augmentation: TwoViews | PairAugmentation, items: FeatureBatch, config: dict[str, Any]) -> None:
    """`ConfigError` unless `augmentation` gives views of a few items of the corpus: a feature
    it names that the items lack, or a feature kind it needs (a bag to drop values from), is
    found before the run directory is touched, not at step 0."""
    sample = items.select(torch.arange(min(8, items.batch_size), device=items.device))
    try:
        augmentation(sample, generator=torch.Generator().manual_seed(0))
    except Exception as error:
        raise ConfigError(
            f"ssl.augmentation does not fit the item features ({', '.join(items.schema.names)}): "
            f"{culprit(augmentations(config), error)}: {type(error).__name__}: {error}"
        ) from None
    _warn_on_global_randomness(augmentation, sample, config)


def _warn_on_global_randomness(
    augmentation: TwoViews | PairAugmentation, sample: FeatureBatch, config: dict[str, Any]
) -> None:
    """Log a warning naming the plugin when `augmentation` draws from (or reseeds) a global RNG
    instead of the generator it is given: the conformance kit's `check_reproducible` and
    `check_global_rngs_untouched` on the dry-run sample. Two runs of one config would differ,
    so the run is not refused, but the user is told which plugin breaks reproducibility."""
    failure = _own_randomness_failure(augmentation, sample)
    if failure is None:
        return
    failing = {leaf["name"]: found for leaf in _leaf_configs(config) if (found := _own_randomness_failure(from_config(leaf), sample))}
    registry = get_registry()
    culprits = [registry.get("augmentation", name) for name in failing] or augmentations(config)
    log.warning(
        "ssl.augmentation: %s draws from a global random number generator, not the generator it is "
        "given, so two runs with the same seed will differ (%s)",
        " or ".join(dict.fromkeys(r.describe() for r in culprits)),
        next(iter(failing.values()), failure),
    )


def _own_randomness_failure(augmentation: Any, sample: FeatureBatch) -> str | None:
    """The conformance kit's message when `augmentation` touches a global RNG, else None."""
    try:
        check_reproducible(augmentation, sample)
        check_global_rngs_untouched(augmentation, sample)
    except AssertionError as failure:
        return str(failure)
    return None


def _leaf_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The configs of the registered augmentations inside a (prepared) augmentation config."""
    if config.get("name") not in (Sequential.name, TwoViews.name):
        return [config]
    nested = [v for value in config.get("params", {}).values() for v in (value if isinstance(value, list) else [value])]
    return [leaf for child in nested if isinstance(child, dict) for leaf in _leaf_configs(child)]

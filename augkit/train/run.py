"""Everything a training run is built from: data, split, towers, losses and augmentation."""

from __future__ import annotations

import copy
from typing import Any

import attrs
import torch
from torch import nn

from augkit import distributed
from augkit.augmentation import Augmentation, PairAugmentation
from augkit.batch import FeatureBatch
from augkit.compose import TwoViews, from_config
from augkit.data.dataset import RecDataset
from augkit.data.sources import load_source
from augkit.data.splits import Split, split_interactions
from augkit.errors import AugkitError, ConfigError
from augkit.random import generator_for
from augkit.registry import get_registry
from augkit.towers import Tower
from augkit.train.config import TrainConfig
from augkit.train.history import HISTORY_FEATURE, with_history

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
    augmentation: TwoViews | PairAugmentation | None
    """The SSL views; a single-view augmentation of the config is lifted to `TwoViews`."""
    feature_dropout: Any | None
    train_counts: torch.Tensor
    towers: nn.Module
    """`TowerStep` over ``model`` (in DDP when distributed): the step's one forward."""


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
    """Load data, split it and build towers, losses and augmentations from `config`."""
    dataset = dataset if dataset is not None else load_dataset(config)
    too_large = [k for k in config.eval.ks if k > dataset.num_items]
    if too_large:
        raise ConfigError(
            f"eval.ks: k={too_large[0]} exceeds the {dataset.num_items} items of data set {dataset.name!r}"
        )
    split = split_for(config, dataset)
    if len(split.train) == 0:
        raise ConfigError(
            f"data set {dataset.name!r} leaves no training events after the split "
            f"(data.test_fraction, data.valid_fraction, data.cold_fraction)"
        )
    queries = with_history(
        dataset.users, split.train, num_items=dataset.num_items, history_len=config.data.history_len
    )
    model = build_model(config, dataset.items, queries)
    registry = get_registry()
    train_counts = torch.bincount(split.train.items, minlength=dataset.num_items)
    frequency = None
    if config.main.logq == "count":
        frequency = registry.create("sampler", "count", {"num_items": dataset.num_items}).fit(train_counts)
    elif config.main.logq == "streaming":
        hash_size = 1 << max(dataset.num_items - 1, 1).bit_length()
        frequency = registry.create(
            "sampler", "streaming", {"hash_size": hash_size, "count": config.main.stream_count}
        )
    gather = {"gather": config.main.gather if config.main.gather is not None else distributed.world_size() > 1}
    main_loss = registry.create(
        "loss",
        "batch_softmax",
        {"temperature": config.main.temperature, "logq_correction": config.main.logq_correction, **gather},
    )
    ssl_loss = augmentation = None
    if config.ssl.alpha > 0:
        ssl_loss = registry.create("loss", "info_nce", {"temperature": config.ssl.temperature, **gather})
        resolved, augmentation = build_augmentation(config, dataset.items)
        config = attrs.evolve(config, ssl=attrs.evolve(config.ssl, augmentation=resolved))
    spread_out = registry.create("loss", "spread_out", gather) if config.main.spread_out > 0 else None
    feature_dropout = None
    if config.main.feature_dropout > 0:
        feature_dropout = from_config({"name": "mask", "params": {"p": config.main.feature_dropout}})
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
        augmentation=augmentation,
        feature_dropout=feature_dropout,
        train_counts=train_counts,
        towers=TowerStep(model),
    )


def build_augmentation(config: TrainConfig, items: FeatureBatch) -> tuple[dict[str, Any], TwoViews | PairAugmentation]:
    """The SSL augmentation of `config` for the item corpus `items`: its config resolved (a
    ``cfm`` gets the corpus MI inline, see `resolve_augmentation`) and the two-view pipeline
    built from it, checked on a dry run over a few items. Errors name the config path."""
    resolved = resolve_augmentation(config.ssl.augmentation, items, allow_stale_mi=config.ssl.allow_stale_mi)
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


def build_model(config: TrainConfig, items: FeatureBatch, queries: FeatureBatch) -> nn.ModuleDict:
    """Item and query towers, initialised from the run's seed. The query's ``history`` bag
    shares the item tower's ``item_id`` table when both exist."""
    generator = generator_for(config.seed, STREAM_INIT)
    shape = {
        "hidden": config.model.hidden,
        "output_dim": config.model.output_dim,
        "embedding_dim": config.model.embedding_dim,
    }
    item_tower = Tower(items.schema, **shape, generator=generator)
    tables = {}
    if HISTORY_FEATURE in queries.schema and ITEM_ID_FEATURE in items.schema:
        tables[HISTORY_FEATURE] = item_tower.input_layer.table(ITEM_ID_FEATURE)
    query_tower = Tower(queries.schema, **shape, tables=tables, generator=generator)
    return nn.ModuleDict({"query": query_tower, "item": item_tower})


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
    from augkit.train.contracts import augmentations, culprit

    sample = items.select(torch.arange(min(8, items.batch_size), device=items.device))
    try:
        augmentation(sample, generator=torch.Generator().manual_seed(0))
    except Exception as error:
        raise ConfigError(
            f"ssl.augmentation does not fit the item features ({', '.join(items.schema.names)}): "
            f"{culprit(augmentations(config), error)}: {type(error).__name__}: {error}"
        ) from None


def resolve_augmentation(
    config: dict[str, Any], corpus: FeatureBatch, *, allow_stale_mi: bool = False
) -> dict[str, Any]:
    """A copy of an augmentation config where every ``cfm`` without ``mi`` gets the mutual
    information of `corpus` (items weighted uniformly, the SSL distribution) inline.

    A ``cfm`` with an ``mi`` of its own must match `corpus`: every feature's fingerprint the
    same as the corpus column's, else `ConfigError` naming the stale features (unless
    `allow_stale_mi`)."""
    resolved = copy.deepcopy(dict(config))
    pending = [(resolved, "ssl.augmentation")]
    mi_dict = None
    while pending:
        node, where = pending.pop()
        if not isinstance(node.get("name"), str):
            continue  # from_config reports the malformed entry with its key path
        params = node.setdefault("params", {})
        if node["name"] == "cfm" and "mi" not in params:
            if mi_dict is None:
                from augkit_cfm import compute_mutual_information

                mi_dict = compute_mutual_information(corpus).to_dict()
            params["mi"] = mi_dict
        elif node["name"] == "cfm" and not allow_stale_mi:
            _check_fresh_mi(params["mi"], corpus, f"{where}.params.mi")
        for key, value in params.items():  # nested pipeline configs: two_views, sequential
            children = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, child in children:
                if isinstance(child, dict) and "name" in child:
                    pending.append((child, f"{where}.params.{key}" + ("" if i is None else f"[{i}]")))
    return resolved


def _check_fresh_mi(mi: Any, corpus: FeatureBatch, where: str) -> None:
    """`ConfigError` unless the MI `mi` (a dict or a saved file's path) was computed from `corpus`."""
    from augkit_cfm import MutualInformation
    from augkit_cfm.columns import column

    try:
        matrix = MutualInformation.load(mi) if isinstance(mi, str) else MutualInformation.from_dict(mi)
    except (AugkitError, ValueError, TypeError, KeyError, OSError) as error:
        raise ConfigError(f"{where}: not a mutual-information matrix ({error})") from None
    absent = [name for name in matrix.names if name not in corpus.schema]
    if absent:
        raise ConfigError(f"{where}: the MI names features {absent} that the item corpus lacks")
    stale = [name for name in matrix.names if column(corpus, name).fingerprint() != matrix.fingerprints[name]]
    if stale:
        raise ConfigError(
            f"{where}: the MI is stale: features {stale} differ from the item corpus it was computed "
            "from (fingerprint mismatch); remove mi to compute it from this corpus, recompute it with "
            "`augkit mi`, or set ssl.allow_stale_mi = true to use it anyway"
        )

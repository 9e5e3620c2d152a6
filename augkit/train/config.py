"""The trainer's configuration: attrs classes, read from and written to TOML.

Every key has a default, so an empty file is a valid config (the embedded synthetic data).
Unknown keys are errors that name the closest valid key. Defaults follow Yao et al. (CIKM 2021)
where the paper states them; each is documented in docs/reference/config.md.
"""

from __future__ import annotations

import math
import re
import reprlib
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs.gen
import tomli_w

from augkit.config_io import MAX_DEPTH, check_depth, join, kind, strict, strict_converter, structure
from augkit.data.sources import SOURCES
from augkit.data.synthetic import SyntheticConfig
from augkit.data.streamed import ExamplesSource, structure_source
from augkit.data.tables_config import TablesConfig, structure_tables
from augkit.errors import ConfigError, UnknownNameError, check_known_keys
from augkit.registry import get_registry
from augkit.validators import (
    Validator,
    device,
    distinct,
    integer,
    number,
    one_of,
    positive_integers,
    registered,
    run_name,
)


@attrs.frozen(kw_only=True)
class DataConfig:
    source: str = attrs.field(default="synthetic", validator=registered("data source", SOURCES))
    """A registered data source (`augkit.data.sources.SOURCES`): synthetic, movielens-100k, tables."""
    path: str = ""
    """Directory (movielens-100k) or unused (synthetic); tables use ``tables``."""
    synthetic: SyntheticConfig = attrs.field(factory=SyntheticConfig)
    """The size and seed of the ``synthetic`` source, the ``[data.synthetic]`` table."""
    test_fraction: float = attrs.field(default=0.2, validator=number(0, open_low=True, high=1, open_high=True))
    valid_fraction: float = attrs.field(default=0.1, validator=number(0, high=1, open_high=True))
    """The last `valid_fraction` of each user's events left after test go to validation (0: none)."""
    cold_fraction: float = attrs.field(default=0.05, validator=number(0, high=1, open_high=True))
    history_len: int = attrs.field(default=20, validator=integer(0))
    """The user's last training items as a multi-valued query feature (0: none)."""
    tables: TablesConfig | None = None
    """The files of the ``tables`` source, the ``[data.tables]`` table (`TablesConfig`); checked
    when the config is read, the files when the data is loaded. An empty table is none."""
    examples: ExamplesSource | None = None
    """The streamed Parquet examples of the ``examples`` source, the ``[data.examples]`` table
    (`augkit.data.streamed.ExamplesSource`); an empty table is none."""

    def __attrs_post_init__(self) -> None:
        if (self.examples is not None) != (self.source == "examples"):
            raise ValueError('source = "examples" reads [data.examples], and only it does: set both or neither')
        if self.tables is not None and self.source != "tables":
            raise ValueError(
                f"tables is set but source is {self.source!r}, so the tables would be ignored; "
                'set source = "tables" (or remove [data.tables])'
            )
        if self.test_fraction + self.valid_fraction >= 1:
            raise ValueError(
                f"test_fraction + valid_fraction must be < 1, got {self.test_fraction} + {self.valid_fraction}"
            )


BACKENDS = ("native", "torchrec")
"""The choices of ``model.backend``."""
SHARDINGS = ("auto", "table_wise", "row_wise")
"""The choices of ``model.sharding`` (`augkit.torchrec.sharding.SHARDINGS`)."""


@attrs.frozen(kw_only=True)
class ModelConfig:
    embedding_dim: int = attrs.field(default=32, validator=integer(1))
    hidden: tuple[int, ...] = attrs.field(default=(128,), validator=positive_integers)
    output_dim: int = attrs.field(default=64, validator=integer(1))
    backend: str = attrs.field(default="native", validator=one_of(*BACKENDS))
    """Where the id tables train: ``native`` (augkit's towers, `optim.tables` as chosen) or
    ``torchrec`` (the tables in a TorchRec collection sharded over the processes, updated by
    FBGEMM's fused `optim.tables` optimizer; the ``torchrec`` extra, `augkit.train.backend`)."""
    sharding: str = attrs.field(default="auto", validator=one_of(*SHARDINGS))
    """How the ``torchrec`` backend places the tables over the processes: ``table_wise``
    (whole tables), ``row_wise`` (every table's rows split), ``auto`` (the planner's choice)."""

    def __attrs_post_init__(self) -> None:
        if self.backend == "native" and self.sharding != "auto":
            raise ValueError(f'sharding = {self.sharding!r} places TorchRec tables; set backend = "torchrec", or remove sharding')
        if self.backend == "torchrec" and self.embedding_dim % 4:
            raise ValueError(f"embedding_dim = {self.embedding_dim}: the torchrec backend's FBGEMM kernels need a multiple of 4")


_temperature = number(0, open_low=True)
_weight = number(0)


def _plugin_name(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError(f"{attribute.name} must be a registered plugin name, got {value!r}")


def registered_plugin(kind: str) -> Validator:
    """A `Component` (or None) whose name the plugin registry knows as a `kind`: an unknown
    name is the registry's `UnknownNameError` (the closest match, and the plugins that failed
    to load), raised when the config is read, before any data is loaded."""

    def check(instance: Any, attribute: attrs.Attribute, value: Component | None) -> None:
        if value is not None:
            try:
                get_registry().get(kind, value.name)
            except UnknownNameError as error:
                error.where = attribute.name
                raise

    return check


@attrs.frozen(kw_only=True)
class Component:
    """A plugin the trainer composes, chosen by its registered name: a ``{ name = "...",
    params = { ... } }`` table, as ``ssl.augmentation`` is. The trainer builds it through the
    plugin registry (unknown names get the closest match) with `params` plus the arguments
    its role passes (see docs/reference/train-config.md)."""

    name: str = attrs.field(validator=_plugin_name)
    params: dict[str, Any] = attrs.field(factory=dict)


NO_ESTIMATOR = "none"
"""``main.logq = "none"``: no logQ correction."""


@attrs.frozen(kw_only=True)
class MainTaskConfig:
    batch_size: int = attrs.field(default=512, validator=integer(1))
    loss: Component = attrs.field(default=Component(name="batch_softmax"), validator=registered_plugin("loss"))
    """The main loss (kind ``loss``), built with ``temperature``, ``logq_correction``,
    ``gather`` and its params."""
    temperature: float = attrs.field(default=0.05, validator=_temperature)
    logq: Component | None = attrs.field(default=Component(name="count"), validator=registered_plugin("sampler"))
    """The item-frequency estimator for the logQ correction (kind ``sampler``, Yi et al.,
    RecSys 2019), built with ``num_items`` and its params; a name alone (``"count"``,
    ``"streaming"``) is short for ``{ name = ... }``, ``"none"`` turns the correction off."""
    logq_correction: str = attrs.field(default="standard", validator=one_of("standard", "corrected"))
    """``standard``: every column's logit minus its log q; ``corrected`` (Khrylchenko et al.,
    RecSys 2025): the positive's logit stays uncorrected."""
    negatives: Component | None = attrs.field(default=None, validator=registered_plugin("sampler"))
    """Extra negatives each step (kind ``sampler``, built with ``num_items`` and its params):
    the items it draws join the in-batch negatives, with the mixture's logQ."""
    uniform_negatives: int = attrs.field(default=0, validator=integer(0))
    """Mixed negative sampling (Yang et al., WWW 2020): this many items drawn uniformly from the
    corpus each step join the in-batch negatives (0: in-batch only); short for ``negatives =
    { name = "uniform_items", params = { batch_size = N, replacement = true } }``."""
    augmentation: dict[str, Any] | None = None
    """An augkit pipeline config applied to the main task's items (none by default)."""
    feature_dropout: float = attrs.field(default=0.0, validator=number(0, high=1, open_high=True))
    """FD baseline: mask each item feature of the main task with this probability; short for
    ``augmentation = { name = "mask", params = { p = P } }``."""
    regularizer: Component = attrs.field(default=Component(name="spread_out"), validator=registered_plugin("loss"))
    """The regulariser on the batch's item embeddings (kind ``loss``, built with ``gather``
    and its params), weighted by `spread_out`."""
    spread_out: float = attrs.field(default=0.0, validator=_weight)
    """SO baseline: weight of the regulariser (spread-out by default); 0 turns it off."""
    gather: bool | None = None
    """Score against the candidates of every process (global in-batch negatives, also for the
    SSL and spread-out losses); unset: on when more than one process trains."""

    def __attrs_post_init__(self) -> None:
        if self.negatives is not None and self.uniform_negatives:
            raise ValueError("set negatives or uniform_negatives, not both (uniform_negatives is short for negatives)")
        if self.augmentation is not None and self.feature_dropout:
            raise ValueError("set augmentation or feature_dropout, not both (feature_dropout is short for augmentation)")

    def negative_sampler(self) -> Component | None:
        """`negatives`, or the uniform sampler `uniform_negatives` stands for; None for in-batch only."""
        if self.uniform_negatives:
            return Component(name="uniform_items", params={"batch_size": self.uniform_negatives, "replacement": True})
        return self.negatives

    def item_augmentation(self) -> dict[str, Any] | None:
        """`augmentation`, or the feature masking `feature_dropout` stands for; None for none."""
        if self.feature_dropout:
            return {"name": "mask", "params": {"p": self.feature_dropout}}
        return self.augmentation


@attrs.frozen(kw_only=True)
class SSLConfig:
    alpha: float = attrs.field(default=1.0, validator=_weight)
    """Weight of the SSL loss; 0 turns the SSL task off (the baseline). The paper searched
    {0.1, 0.3, 1, 3}."""
    batch_size: int = attrs.field(default=512, validator=integer(2))
    loss: Component = attrs.field(default=Component(name="info_nce"), validator=registered_plugin("loss"))
    """The SSL loss on the two views (kind ``loss``), built with ``temperature``, ``gather``
    and its params."""
    temperature: float = attrs.field(default=0.1, validator=_temperature)
    augmentation: dict[str, Any] = attrs.field(
        factory=lambda: {
            "name": "two_views",
            "params": {"pair": {"name": "cfm"}, "each": [{"name": "dropout", "params": {"rate": 0.3}}]},
        }
    )
    """An augkit pipeline config, prepared for the item corpus (`augkit.compose.prepare_config`:
    a ``cfm`` entry without ``mi`` gets the MI of the corpus)."""
    allow_stale_mi: bool = False
    """Accept corpus statistics given in the augmentation config (a ``cfm`` ``mi``) whose
    feature fingerprints do not match the item corpus."""


TABLE_OPTIMIZERS = ("adam", "sparse_adam", "rowwise_adagrad")
"""The choices of ``optim.tables`` (`augkit.train.optimizers` builds them)."""


@attrs.frozen(kw_only=True)
class OptimConfig:
    lr: float = attrs.field(default=0.003, validator=number(0, open_low=True))
    """The learning rate of dense Adam (and of the id tables unless `tables_lr` is set)."""
    weight_decay: float = attrs.field(default=0.0, validator=_weight)
    """L2 weight decay, added to the gradient (Adam's ``weight_decay``); under a sparse
    `tables` choice, added on the tables to the rows of the batch only."""
    tables: str = attrs.field(default="adam", validator=one_of(*TABLE_OPTIMIZERS))
    """How the id embedding tables are updated: ``adam`` (one dense Adam over every parameter:
    every row every step), ``sparse_adam`` or ``rowwise_adagrad`` (sparse gradients, only the
    batch's rows updated; every other parameter keeps dense Adam)."""
    tables_lr: float | None = attrs.field(default=None, validator=attrs.validators.optional(number(0, open_low=True)))
    """The learning rate of a sparse `tables` optimizer (unset: `lr`); ignored by ``adam``."""

    def __attrs_post_init__(self) -> None:
        if self.tables == "adam" and self.tables_lr is not None:
            raise ValueError(
                'tables_lr is set but tables = "adam" trains the tables with the dense Adam at lr; '
                'set tables = "sparse_adam" or "rowwise_adagrad", or remove tables_lr'
            )

    @property
    def table_lr(self) -> float:
        """`tables_lr`, or `lr` where it is unset."""
        return self.lr if self.tables_lr is None else self.tables_lr


MONITOR_PATTERN = re.compile(r"valid/(?P<slice>all|head|tail|cold|decile_\d)/(?P<metric>recall|ndcg)@(?P<k>\d+)")


@attrs.frozen(kw_only=True)
class EvalConfig:
    ks: tuple[int, ...] = attrs.field(default=(10, 50, 100), validator=[distinct, positive_integers])
    head_fraction: float = attrs.field(default=0.2, validator=number(0, open_low=True, high=1, open_high=True))
    every: int = attrs.field(default=1, validator=integer(0))
    """Epochs between validation evaluations (0: only after the last epoch)."""
    monitor: str = attrs.field(default="valid/all/recall@50")
    """The validation metric that picks ``best.pt`` and drives early stopping (larger is better)."""
    patience: int = attrs.field(default=0, validator=integer(0))
    """Stop after this many validations without a better `monitor` (0: never stop early)."""
    max_users: int = attrs.field(default=0, validator=integer(0))
    """Validate on a seeded random subset of this many users (0: every validation user)."""
    unseen_ids: str = attrs.field(default="default", validator=one_of("default", "trained"))
    """How items never seen in training are embedded at evaluation: ``default``, their
    ``item_id`` reads as the default (missing) embedding, as when serving a new item; or
    ``trained``, their own id embedding as training left it."""
    baseline: bool = False
    """Also train the baseline (this config with ``ssl.alpha = 0``: same data, split, seed and
    epochs) in ``<run_dir>/baseline/`` and report it beside the model; ``augkit train``
    without a config turns it on. Ignored when ``ssl.alpha`` is 0, and by compare and tune."""

    @monitor.validator
    def _check_monitor(self, attribute: attrs.Attribute, value: str) -> None:
        match = MONITOR_PATTERN.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise ValueError(
                "monitor must read valid/<slice>/<recall|ndcg>@<k> with slice all, head, tail, cold or "
                f"decile_0..decile_9, got {value!r}"
            )
        if int(match["k"]) not in self.ks:
            raise ValueError(f"monitor {value!r} needs k={match['k']} in ks, which are {list(self.ks)}")


VARIANTS = ("baseline", "fd", "so", "rfm", "cfm")
"""The built-in variants of ``augkit compare`` and ``augkit tune`` (what each changes:
`augkit.experiments.variants`); named here so that ``[tune.variants]`` is checked when the
config is read."""

Choice = str | int | float | bool
"""A value of a search dimension's ``choices``."""


def _dotted_keys(instance: Any, attribute: attrs.Attribute, value: Mapping[str, Any]) -> None:
    for key in value:
        if not key or not all(key.split(".")):
            raise ValueError(f"{attribute.name} key {key!r} must be a dotted config key such as 'optim.lr'")


@attrs.frozen(kw_only=True)
class TuneParam:
    """One dimension of a ``[tune]`` search space: a range from `low` to `high` (`log`: on a
    log scale; `step`: a grid) or `choices` (strings, numbers or booleans). A range is drawn as
    integers where its key holds an integer, else as floats."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    choices: tuple[Choice, ...] | None = None

    def __attrs_post_init__(self) -> None:
        if self.choices is not None:
            given = [name for name in ("low", "high", "step") if getattr(self, name) is not None]
            if given or self.log:
                raise ValueError(f"choices cannot go with {', '.join(given or ['log'])}")
            if len(set(map(repr, self.choices))) != len(self.choices):
                raise ValueError(f"choices repeat a value: {list(self.choices)!r}")
            return
        missing = [name for name in ("low", "high") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{' and '.join(missing)} required (or give choices)")
        for name in ("low", "high", "step"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not self.low < self.high:
            raise ValueError(f"low must be < high, got low = {self.low!r}, high = {self.high!r}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low!r}")
        if self.step is not None and (self.log or self.step <= 0):
            raise ValueError("step must be > 0 and cannot go with log = true")

    def describe(self) -> dict[str, Any]:
        """The dimension as a table: ``{choices}``, or ``{low, high, log}`` (and ``step``)."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log} | ({"step": self.step} if self.step is not None else {})


def _known_variants(instance: Any, attribute: attrs.Attribute, value: Mapping[str, Any]) -> None:
    check_known_keys("variant in [tune.variants]", value, VARIANTS)
    for variant, space in value.items():
        _dotted_keys(instance, attribute, space)


@attrs.frozen(kw_only=True)
class TuneConfig:
    """The ``[tune]`` table: the search space of every variant (`space`) and, key by key over
    it, of one (`variants`); TPE's seed (`sampler_seed`, default: the config's seed), its random
    `startup_trials`, the number of seeds each trial is trained with and scored on, by the mean
    of their best validation values (`seeds`, default 3), and whether every trial's run directory
    is kept (`keep_runs`, default: only the best one's). A variant that neither table names gets
    its default space (`augkit.experiments.variants.DEFAULT_SPACES`)."""

    space: dict[str, TuneParam] = attrs.field(factory=dict, validator=_dotted_keys)
    variants: dict[str, dict[str, TuneParam]] = attrs.field(factory=dict, validator=_known_variants)
    sampler_seed: int | None = attrs.field(default=None, validator=attrs.validators.optional(integer(0)))
    startup_trials: int = attrs.field(default=10, validator=integer(1))
    seeds: int = attrs.field(default=3, validator=integer(1))
    keep_runs: bool = False


@attrs.frozen(kw_only=True)
class TrainConfig:
    name: str = attrs.field(default="default", validator=run_name)
    """The run directory's name under `output_dir`: a plain name, no path."""
    seed: int = attrs.field(default=0, validator=integer(0))
    output_dir: str = attrs.field(default="runs")
    device: str = attrs.field(default="auto", validator=device)
    """auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps."""
    precision: str = attrs.field(default="32", validator=one_of("32", "bf16-mixed"))
    """32, or bf16-mixed (CUDA only): towers under bfloat16 autocast, losses in float32."""
    threads: int = attrs.field(default=0, validator=integer(0))
    """torch's intra-op threads (0: augkit's policy, `augkit.threads.default_threads`:
    ``OMP_NUM_THREADS`` when set, else cores − 1)."""
    epochs: int = attrs.field(default=10, validator=integer(1))
    checkpoint_every: int = attrs.field(default=200, validator=integer(0))
    """Steps between atomic checkpoints (0: only at epoch ends)."""
    log_every: int = attrs.field(default=50, validator=integer(0))
    """Steps per row of ``steps.csv``, each the mean of those steps' losses (0: no such rows)."""
    progress: bool = True
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    main: MainTaskConfig = MainTaskConfig()
    ssl: SSLConfig = SSLConfig()
    optim: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()
    tune: TuneConfig | None = None
    """``augkit tune``'s search, the ``[tune]`` table (run by `augkit.experiments.tune`);
    checked when the config is read, ignored by training."""

    def __attrs_post_init__(self) -> None:
        if self.model.backend == "torchrec" and self.optim.tables == "adam":
            raise ValueError(
                'model.backend = "torchrec" updates the tables with a fused sparse optimizer, and optim.tables is "adam" '
                '(dense): set optim.tables = "rowwise_adagrad" (CPU or CUDA) or "sparse_adam" (CUDA)'
            )

    @output_dir.validator
    def _check_output_dir(self, attribute: attrs.Attribute, value: str) -> None:
        if not value or "\0" in value:
            raise ValueError(f"output_dir must be a directory path, got {value!r}")

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def _tables(value: Any, _: Any) -> TablesConfig | None:
    """``[data.tables]``: an empty table (as an older run's config.toml has) is none."""
    return None if value is None or (isinstance(value, Mapping) and not value) else structure_tables(value)


_converter = strict_converter()
_converter.register_structure_hook_func(lambda t: t == TablesConfig | None, _tables)
_converter.register_unstructure_hook(TablesConfig, TablesConfig.to_dict)
_converter.register_structure_hook_func(
    lambda t: t == ExamplesSource | None,
    lambda value, _: None if value is None or (isinstance(value, Mapping) and not value) else structure_source(value),
)
_converter.register_unstructure_hook(ExamplesSource, ExamplesSource.to_dict)


def _estimator(value: Any, _: Any) -> Component | None:
    """``main.logq``: a ``{ name, params }`` table, a name alone, or ``"none"``."""
    if value == NO_ESTIMATOR:
        return None
    if isinstance(value, Mapping) and value.get("name") == NO_ESTIMATOR:
        raise ValueError(f'"{NO_ESTIMATOR}" turns the logQ correction off: write logq = "{NO_ESTIMATOR}" alone, not as a table')
    if isinstance(value, str):
        value = {"name": value}
    return _converter.structure(value, Component)


def _optional_component(value: Any, _: Any) -> Component | None:
    return None if value is None else _converter.structure(value, Component)


def _choices(value: Any, _: Any) -> tuple[Choice, ...]:
    if not isinstance(value, list) or not value:
        raise TypeError(f"expected a non-empty list, got {value!r} ({kind(value)})")
    for i, item in enumerate(value):
        if not isinstance(item, (str, int, float, bool)):
            raise TypeError(f"a choice must be a string, number or boolean, item {i} is {item!r} ({kind(item)})")
    return tuple(value)


def _tune_param_table(param: TuneParam) -> dict[str, Any]:
    """A `TuneParam` as one writes it: ``log`` only when true, ``step`` only when set."""
    table = param.describe()
    if table.get("log") is False:
        del table["log"]
    return table


_converter.register_structure_hook_func(
    lambda t: t in (int | float, int | float | None),
    strict("a number", lambda v: v is None or isinstance(v, (int, float)) and not isinstance(v, bool)),
)
_converter.register_structure_hook_func(lambda t: t == tuple[Choice, ...], _choices)
_converter.register_unstructure_hook(TuneParam, _tune_param_table)
_converter.register_structure_hook_func(lambda t: t == Component | None, _optional_component)
_converter.register_unstructure_hook_func(
    lambda t: t == Component | None, lambda v: None if v is None else _converter.unstructure(v, Component)
)
_MAIN_STRUCTURE = cattrs.gen.make_dict_structure_fn(
    MainTaskConfig, _converter, _cattrs_forbid_extra_keys=True, logq=cattrs.gen.override(struct_hook=_estimator)
)
_MAIN_UNSTRUCTURE = cattrs.gen.make_dict_unstructure_fn(
    MainTaskConfig, _converter, logq=cattrs.gen.override(unstruct_hook=lambda v: NO_ESTIMATOR if v is None else _converter.unstructure(v, Component))
)


def _main_hook(value: Any, type_: Any) -> MainTaskConfig:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table, got {value!r} ({kind(value)})")
    return _MAIN_STRUCTURE(value, type_)


_converter.register_structure_hook(MainTaskConfig, _main_hook)
_converter.register_unstructure_hook(MainTaskConfig, _MAIN_UNSTRUCTURE)

MOVED_KEYS: dict[str, tuple[Any, str]] = {
    "main.stream_count": ("distinct", 'main.logq = { name = "streaming", params = { count = "occurrences" } }'),
    "data.synthetic_seed": (0, "data.synthetic.seed (seed in the [data.synthetic] table)"),
}
"""Keys of earlier versions: the value they had by default, which is dropped (so run
directories of earlier versions still load), and what replaces any other value, for the error."""

_SECTIONS: dict[str, type] = {
    "": TrainConfig, "data": DataConfig, "data.synthetic": SyntheticConfig, "model": ModelConfig, "main": MainTaskConfig,
    "ssl": SSLConfig, "optim": OptimConfig, "eval": EvalConfig,
    "main.loss": Component, "main.logq": Component, "main.negatives": Component,
    "main.regularizer": Component, "ssl.loss": Component,
}
"""Every table of the config by its key path ("" is the top level)."""


def _homes(key: str) -> list[str]:
    """The tables where `key` is a valid key, as ``[main]`` (or ``the top level``)."""
    return [
        f"[{section}]" if section else "the top level"
        for section, cls in _SECTIONS.items()
        if key in attrs.fields_dict(cls) and not (section == "" and key in _SECTIONS)
    ]


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
    """Structure a plain dict into a `TrainConfig`; errors name the key path at fault
    (``epochs must be an integer >= 1, got 0 @ run.toml.epochs``)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a trainer config is a table, got {kind(data)} @ {source}")
    check_depth(data, source)
    data = _strip_bom_keys(data)
    for moved, (default, replacement) in MOVED_KEYS.items():
        section, _, key = moved.partition(".")
        table = data.get(section)
        if isinstance(table, Mapping) and key in table:
            if table[key] != default:
                raise ConfigError(f"{moved} was replaced: write {replacement} @ {join(source, moved)}")
            data[section] = {k: v for k, v in table.items() if k != key}
    return structure(_converter, data, TrainConfig, source=source, homes=_homes)


def _strip_bom_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with a UTF-8 byte-order mark removed from the first key (a file saved with one)."""
    return {(k.lstrip("\ufeff") if isinstance(k, str) else k): v for k, v in data.items()}


def load_config(path: str | Path, *, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a TOML file (a leading UTF-8 byte-order mark is ignored), apply `overrides`
    (``key.path=value``, see `apply_overrides`); errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory; expected a TOML file") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: tables and lists nest deeper than the TOML reader follows; augkit reads "
            f"configs nested at most {MAX_DEPTH} deep"
        ) from None
    config = config_from_dict(data, source=str(path))
    return apply_overrides(config, overrides) if overrides else config


def apply_overrides(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """`config` with each ``key.path=value`` of `overrides` set, in order (``--set``).

    The value is read as a TOML value (``3``, ``0.1``, ``true``, ``[10, 50]``, ``"cfm"``); a value
    that is not TOML is a string (``device=cuda``). The result is checked once, as a file is;
    errors name the overrides and the key at fault.
    """
    values = {}
    for override in overrides:
        key, equals, text = override.partition("=")
        if not equals or not all(key.strip().split(".")):
            raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. main.batch_size=256")
        try:
            values[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = text
        except RecursionError:
            raise ConfigError(
                f"--set {key.strip()!r}: the value nests deeper than the TOML reader follows; augkit "
                f"reads configs nested at most {MAX_DEPTH} deep"
            ) from None
    return apply_values(config, values, option=f"--set {', '.join(map(repr, overrides))}")


def apply_values(config: TrainConfig, values: Mapping[str, Any], *, option: str) -> TrainConfig:
    """`config` with each dotted key of `values` set to its value, checked as a file is;
    errors start with `option`, the command-line option that gave the values.

    A key part ``name[i]`` addresses item ``i`` of a list (``ssl.augmentation.params.each[0]
    .params.rate``); an index past the list, an index into something that is not a list, and a
    key into something that is not a table are `ConfigError` naming what stands at that path.
    """
    data = config_to_dict(config)
    for key, value in values.items():
        steps = _key_steps(key, option)
        node: Any = data
        for depth, step in enumerate(steps[:-1]):
            if depth == 0 and step not in data:
                known = [k for k, v in data.items() if isinstance(v, dict)]
                raise UnknownNameError(f"table in {option}", step, known)
            if depth >= 2 and isinstance(node, dict) and step not in node:
                node[step] = {}  # a new table inside a free-form one (an augmentation's params)
            node = _descend(node, step, steps[:depth], option)
        _check_step(node, steps[-1], steps[:-1], option, last=True)
        node[steps[-1]] = value
    try:
        return config_from_dict(data, source="")
    except ConfigError as error:
        raise ConfigError(f"{option}: {error}") from None


_KEY_PART = re.compile(r"([^\[\]]+)((?:\[\d+\])*)")
"""A part of a dotted key: a name, then any list indexes ``[i]``."""


def _key_steps(key: str, option: str) -> list[str | int]:
    """``"a.b[0][1].c"`` as ``["a", "b", 0, 1, "c"]``."""
    steps: list[str | int] = []
    for part in key.strip().split("."):
        match = _KEY_PART.fullmatch(part.strip())
        if match is None:
            raise ConfigError(
                f"{option}: cannot read key part {part!r} of {key!r}; write a table key as name and "
                "a list item as name[index], e.g. ssl.augmentation.params.each[0].params.rate"
            )
        steps.append(match[1])
        steps.extend(int(index) for index in re.findall(r"\d+", match[2]))
    return steps


def _path(steps: Sequence[str | int]) -> str:
    return "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps).lstrip(".")


def _check_step(node: Any, step: str | int, path: Sequence[str | int], option: str, *, last: bool = False) -> None:
    """`ConfigError` unless `node` (at `path`) can take `step`: a key of a table, or an index in
    range of a list. `last`: the step sets a value, so a new key of a table is fine."""
    where = _path(path)
    if isinstance(step, int):
        if not isinstance(node, list):
            raise ConfigError(f"{option}: {where} is {kind(node)}, not a list; [{step}] indexes a list only")
        if step >= len(node):
            raise ConfigError(
                f"{option}: {where}[{step}] is out of range; {where} holds {len(node)} item(s)"
                + (f", indexes 0..{len(node) - 1}" if node else "")
            )
        return
    if not isinstance(node, dict):
        hint = f"; address its items as {where}[index]" if isinstance(node, list) else ""
        raise ConfigError(
            f"{option}: {where} is {kind(node)} ({reprlib.repr(node)}), not a table; it has no key {step!r}{hint}"
        )
    if not last and step not in node:
        raise UnknownNameError(
            f"key of {where} in {option}",
            step,
            node,
            note="" if node else f"({where} is an empty table)",
        )


def _descend(node: Any, step: str | int, path: Sequence[str | int], option: str) -> Any:
    """``node[step]``, checked; a tuple there becomes a list so that its items can be set."""
    _check_step(node, step, path, option)
    child = node[step]
    if isinstance(child, tuple):
        child = node[step] = list(child)
    return child


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return _converter.unstructure(config)


def dump_config(config: TrainConfig) -> str:
    """TOML text that `load_config` reads back to an equal config."""
    return tomli_w.dumps(_drop_none(config_to_dict(config)))


def _drop_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value

"""The trainer's configuration: attrs classes, read from and written to TOML.

Every key has a default, so an empty file is a valid config (the embedded synthetic data).
Unknown keys are errors that name the closest valid key. Defaults follow Yao et al. (CIKM 2021)
where the paper states them; each is documented in docs/reference/config.md.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
import tomli_w

from augkit.errors import ConfigError, UnknownNameError


@attrs.frozen(kw_only=True)
class DataConfig:
    source: str = attrs.field(default="synthetic", validator=attrs.validators.in_(("synthetic", "movielens-100k", "tables")))
    path: str = ""
    """Directory (movielens-100k) or unused (synthetic); tables use ``tables``."""
    synthetic_seed: int = 0
    test_fraction: float = 0.2
    cold_fraction: float = 0.05
    history_len: int = 20
    """The user's last training items as a multi-valued query feature (0: none)."""
    tables: dict[str, Any] = attrs.field(factory=dict)
    """Options of the ``tables`` source (see `augkit.data.tables`); checked when the config is
    read, the files when the data is loaded."""

    @tables.validator
    def _check_tables(self, attribute: attrs.Attribute, value: dict[str, Any]) -> None:
        if value:
            from augkit.data.tables import TablesConfig

            try:
                TablesConfig.from_dict(value)
            except (ConfigError, UnknownNameError) as error:
                raise ValueError(f"data.tables: {error}") from None


@attrs.frozen(kw_only=True)
class ModelConfig:
    embedding_dim: int = 32
    hidden: tuple[int, ...] = (128,)
    output_dim: int = 64


@attrs.frozen(kw_only=True)
class MainTaskConfig:
    batch_size: int = 512
    temperature: float = 0.05
    logq: str = attrs.field(default="count", validator=attrs.validators.in_(("none", "count", "streaming")))
    """Sampling-probability estimate for the logQ correction (Yi et al., RecSys 2019)."""
    feature_dropout: float = 0.0
    """FD baseline: mask each item feature of the main task with this probability."""
    spread_out: float = 0.0
    """SO baseline: weight of the spread-out regulariser on the batch's item embeddings."""


@attrs.frozen(kw_only=True)
class SSLConfig:
    alpha: float = 1.0
    """Weight of the SSL loss; 0 turns the SSL task off (the baseline). The paper searched
    {0.1, 0.3, 1, 3}."""
    batch_size: int = 512
    temperature: float = 0.1
    augmentation: dict[str, Any] = attrs.field(
        factory=lambda: {
            "name": "two_views",
            "params": {"pair": {"name": "cfm"}, "each": [{"name": "dropout", "params": {"rate": 0.3}}]},
        }
    )
    """An augkit pipeline config; a ``cfm`` entry without ``mi`` gets the MI of the corpus."""


@attrs.frozen(kw_only=True)
class OptimConfig:
    lr: float = 0.003
    weight_decay: float = 0.0


@attrs.frozen(kw_only=True)
class EvalConfig:
    ks: tuple[int, ...] = (10, 50, 100)
    head_fraction: float = 0.2


@attrs.frozen(kw_only=True)
class TrainConfig:
    name: str = "default"
    seed: int = 0
    output_dir: str = "runs"
    epochs: int = 10
    checkpoint_every: int = 200
    """Steps between atomic checkpoints (0: only at the end)."""
    progress: bool = True
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    main: MainTaskConfig = MainTaskConfig()
    ssl: SSLConfig = SSLConfig()
    optim: OptimConfig = OptimConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


_converter = cattrs.Converter(forbid_extra_keys=True)


def _format_error(error: BaseException, type_: Any) -> str:
    if isinstance(error, cattrs.ForbiddenExtraKeysError):
        known = [f.name for f in attrs.fields(error.cl)]
        parts = []
        for key in sorted(error.extra_fields):
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            parts.append(f"unknown key {key!r}{hint} (valid: {', '.join(known)})")
        return "; ".join(parts)
    if type(error) in (ValueError, TypeError) and str(error):
        return str(error.args[0])  # an attrs validator's message names the field and values
    return cattrs.v.format_exception(error, type_)


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
    """Structure a plain dict into a `TrainConfig`; errors name the key path at fault."""
    try:
        return _converter.structure(dict(data), TrainConfig)
    except Exception as error:
        if isinstance(error, cattrs.BaseValidationError):
            lines = cattrs.transform_error(error, path=source, format_exception=_format_error)
            raise ConfigError("; ".join(lines)) from None
        raise ConfigError(f"{source}: {error}") from None


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML file; errors name the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return config_from_dict(data, source=str(path))


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

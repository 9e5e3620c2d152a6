"""What the training commands share: the config from a file, ``--set`` and options, and log
lines that do not break a progress bar."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from tqdm.auto import tqdm

from augkit.train import TrainConfig, apply_overrides, config_from_dict, load_config
from augkit.train.config import apply_values
from augkit.train.rundir import OnExisting


def settings_from(
    config: Path | None, overrides: Sequence[str], options: dict[str, Any] | None = None, *, without: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The trainer config of file `config` (without one, the defaults changed by `without`) with
    the ``--set`` `overrides`, then the named `options` (``{"name": ...}``: ``--name``) given."""
    settings = apply_overrides(load_config(config) if config else config_from_dict(dict(without or {})), overrides)
    for key, value in (options or {}).items():
        if value is not None:
            settings = apply_values(settings, {key: value}, option=f"--{key} {value!r}")
    return settings


class _TqdmHandler(logging.Handler):
    """Log lines on stderr that do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


def show_progress_lines() -> None:
    """Show the trainer's log lines on stderr, above the progress bar."""
    if os.environ.get("RANK", "0") != "0":  # under torchrun, the first process speaks for all
        return
    logger = logging.getLogger("augkit.train")
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        logger.addHandler(_TqdmHandler())
        logger.setLevel(logging.INFO)


def on_existing(resume: bool, overwrite: bool) -> OnExisting:
    """The one value ``--resume`` and ``--overwrite`` give (`augkit.train.OnExisting`); both
    together are a usage error."""
    if resume and overwrite:
        raise click.UsageError("--resume continues the run and --overwrite replaces it; give one of them")
    return "resume" if resume else "overwrite" if overwrite else "refuse"

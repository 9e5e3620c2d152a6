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


WARNING_LINE = "warning: "
"""How a line of a longer log message starts when it is a warning (the start-up summary's data
warnings: ``warning: items[0] 'tags.tsv': no row for 3 of the 8 logged items; ...``)."""


class OncePerCommand:
    """Each distinct warning once per command: `unseen` drops a message at ``WARNING`` or
    above that was shown before, and a line starting with `WARNING_LINE` once shown (the rest
    of its message is kept). `augkit tune` and `augkit compare` load the data once but start a
    run per trial or seed, and each run logs the data's warnings."""

    def __init__(self) -> None:
        self.shown: set[str] = set()

    def unseen(self, message: str, *, warning: bool) -> str:
        """`message` less what was shown before ("" when nothing is left); remembers it."""
        if warning:
            seen = message in self.shown
            self.shown.add(message)
            return "" if seen else message
        lines = message.split("\n")
        warned = {line for line in lines if line.startswith(WARNING_LINE)}
        kept = [line for line in lines if line not in warned or line not in self.shown]
        self.shown |= warned
        return "\n".join(kept)


_ONCE = OncePerCommand()


class _TqdmHandler(logging.Handler):
    """Log lines on stderr that do not break a progress bar, each distinct warning once
    (`OncePerCommand`)."""

    def emit(self, record: logging.LogRecord) -> None:
        text = _ONCE.unseen(self.format(record), warning=record.levelno >= logging.WARNING)
        if text:
            tqdm.write(text, file=sys.stderr)


def show_progress_lines() -> None:
    """Show the trainer's log lines on stderr, above the progress bar, each distinct warning
    once from here on (`OncePerCommand`); a command calls it once, when it starts."""
    if os.environ.get("RANK", "0") != "0":  # under torchrun, the first process speaks for all
        return
    _ONCE.shown.clear()  # a new command (the tests run several in one process)
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

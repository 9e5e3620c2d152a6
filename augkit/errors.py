"""The exceptions augkit raises. Every message names the feature, plugin, file or key at fault."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AugkitError",
    "BatchValidationError",
    "CheckpointError",
    "ConfigError",
    "DataChangedError",
    "DataFileError",
    "PluginCallError",
    "PluginError",
    "RunDirectoryError",
    "SchemaError",
    "StudyError",
    "TrainingError",
    "UnknownNameError",
    "check_known_keys",
]


class AugkitError(Exception):
    """Base class of every error augkit raises on purpose."""


class SchemaError(AugkitError, ValueError):
    """A feature spec or schema is malformed (bad name, size, duplicate)."""


class BatchValidationError(AugkitError, ValueError):
    """User data does not match the schema: wrong dtype, shape, id range or non-finite value."""


class PluginError(AugkitError):
    """A plugin failed to load or register, or two plugins claim one name."""


class UnknownNameError(AugkitError, LookupError):
    """A name (augmentation, loss, sampler, parameter, config key) is not known.

    The message lists the known names and the closest match.

    Examples:
        >>> from augkit.errors import UnknownNameError
        >>> error = UnknownNameError("augmentation", "dropuot", ["mask", "dropout", "cfm"])
        >>> print(error)
        unknown augmentation 'dropuot'; did you mean 'dropout'? Known: cfm, dropout, mask.
        >>> error.name, error.known
        ('dropuot', ('cfm', 'dropout', 'mask'))
    """

    def __init__(self, what: str, name: object, known: Iterable[str], *, note: str = "") -> None:
        known = sorted(known)
        message = f"unknown {what} {name!r}"
        close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        message += f"; did you mean {close[0]!r}?" if close else "."
        message += f" Known: {', '.join(known) if known else '(none)'}."
        super().__init__(f"{message} {note}" if note else message)
        self.what = what
        self.note = note
        self.name = name
        self.known = tuple(known)
        self.where = ""
        """The config key path where the name stands, when known."""


class ConfigError(AugkitError, ValueError):
    """A configuration dict is malformed (missing key, wrong type, bad version)."""


class CheckpointError(AugkitError, ValueError):
    """A checkpoint file is missing, damaged or does not fit the run (names the file and fault)."""


class DataChangedError(AugkitError, ValueError):
    """A run's data (or config) is not what it was trained on: names each file that changed and
    how (size, content, missing), and the override for users who mean it."""


class DataFileError(AugkitError, ValueError):
    """A data file cannot be read or does not hold what the config names: not Parquet or
    damaged, a column missing, of the wrong type or of another type than in the other files, a
    null key. Names the file and the column, and the row group and row for a fault found while
    reading; `file`, `column` and `row_group` hold them (None where they do not apply)."""

    def __init__(
        self, message: str, *, file: str | None = None, column: str | None = None, row_group: int | None = None
    ) -> None:
        super().__init__(message)
        self.file = file
        self.column = column
        self.row_group = row_group


class RunDirectoryError(AugkitError):
    """A run directory is in use by another process, holds another run, or is not a plain name."""


class StudyError(AugkitError, ValueError):
    """An ``augkit tune`` study database is damaged, not SQLite, or holds no Optuna study (names
    the file and what to do)."""


class TrainingError(AugkitError, RuntimeError):
    """Training cannot go on: a loss became non-finite (names the step and the term)."""


class PluginCallError(PluginError):
    """A plugin's augmentation, loss or sampler raised or returned something off contract while
    training; names the registered name, its distribution and version, and the step."""


def check_known_keys(what: str, given: Iterable[str], known: Iterable[str]) -> None:
    """Raise `UnknownNameError` for the first key of `given` that is not in `known`."""
    known = tuple(known)
    for key in given:
        if key not in known:
            raise UnknownNameError(what, key, known)

"""Writes into a run directory that fail (a read-only directory, no permission, a full disk)
end in a `RunDirectoryError` naming the file and the reason, ``cannot write <path>: Permission
denied``, not in an `OSError` from deep inside."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

from augkit.errors import RunDirectoryError

P = ParamSpec("P")
R = TypeVar("R")


def cannot_write(path: str | os.PathLike[str], error: OSError) -> RunDirectoryError:
    """The error for a write to `path` that failed with `error` (its own file name, when it has
    one that is not a temporary file, is the one named)."""
    named = error.filename if error.filename and not str(error.filename).endswith(".tmp") else path
    return RunDirectoryError(f"cannot write {os.fspath(named)}: {error.strerror or error}")


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Run the block; an `OSError` in it becomes `cannot_write` of `path`."""
    try:
        yield
    except OSError as error:
        raise cannot_write(path, error) from None


def names_write_errors(function: Callable[P, R]) -> Callable[P, R]:
    """`function` (whose first argument is the directory it writes into) with an `OSError`
    turned into `cannot_write`."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with writing(Path(args[0])):  # type: ignore[arg-type]
            return function(*args, **kwargs)

    return wrapper

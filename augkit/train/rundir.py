"""A run directory held by one process at a time, never silently reused.

``<output_dir>/<name>/`` is locked with an OS file lock (released by the OS when the process
dies, also on ``kill -9``), and a fresh run refuses a directory that holds another run's
results unless told to overwrite them: `OnExisting` says which. `locked` is the lock alone, which an
``augkit tune`` study directory takes too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, get_args

from augkit.errors import RunDirectoryError
from augkit.train.checkpoint import no_checkpoint
from augkit.train.writing import writing

OnExisting = Literal["refuse", "resume", "overwrite"]
"""What a run does with its directory (``--resume``, ``--overwrite``, neither):
``"refuse"`` a directory holding an earlier run's results (a fresh run, the default),
``"resume"`` the run from its checkpoint (which must exist), or ``"overwrite"`` the results."""
ON_EXISTING: tuple[OnExisting, ...] = get_args(OnExisting)
LOCK_NAME = ".lock"
RESULTS = (
    "checkpoint.pt", "best.pt", "metrics.json", "config.toml", "history.csv", "steps.csv",
    "report.md", "recall_by_decile.png", "training_curves.png", "tensorboard",
)
"""What a run writes into its directory; a fresh run with ``overwrite`` removes these only."""
SUB_RUNS = ("baseline",)
"""Run directories inside a run (``eval.baseline``), whose `RESULTS` belong to the run."""


@contextlib.contextmanager
def hold(run_dir: Path, *, on_existing: OnExisting = "refuse") -> Iterator[Path]:
    """Create and lock `run_dir` for this process; yield it; unlock on exit.

    A second process is refused with the holder's pid. ``"resume"`` needs the directory to
    exist (`CheckpointError` otherwise, creating nothing). Otherwise a directory with results
    of an earlier run (its own or its `SUB_RUNS`') is refused (``"refuse"``) or they, and only
    they, are removed (``"overwrite"``, after the lock is held, so never under a running
    process).
    """
    check_on_existing(on_existing)
    if on_existing == "resume" and not run_dir.exists():  # nothing to continue: leave no empty directory behind
        raise no_checkpoint(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"cannot create run directory {str(run_dir)!r}: {error.strerror or error}") from None
    if not run_dir.is_dir():
        raise RunDirectoryError(f"run directory {str(run_dir)!r} is not a directory")
    with locked(run_dir):
        for stale in run_dir.glob(".*.tmp"):  # a checkpoint write cut short by a killed process
            with writing(stale):
                stale.unlink()
        if on_existing != "resume":
            found = [name for name in RESULTS if (run_dir / name).exists()]
            found += [f"{sub}/{name}" for sub in SUB_RUNS for name in RESULTS if (run_dir / sub / name).exists()]
            if found and on_existing == "refuse":
                raise RunDirectoryError(
                    f"run directory {str(run_dir)!r} holds another run's results ({', '.join(found)}); "
                    "continue it with --resume, replace it with --overwrite, or choose another name (`name` in the config, --name for train)"
                )
            for name in found:
                with writing(run_dir / name):
                    _remove(run_dir / name)
        yield run_dir


def check_on_existing(value: object) -> OnExisting:
    """`value` if it is one of `ON_EXISTING`, else a `ValueError` naming them."""
    if value not in ON_EXISTING:
        raise ValueError(f"on_existing must be one of {', '.join(map(repr, ON_EXISTING))}, got {value!r}")
    return value  # type: ignore[return-value]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() and not child.is_symlink() else child.unlink()
        path.rmdir()
    else:
        path.unlink()


@contextlib.contextmanager
def locked(directory: Path, *, what: str = "run directory") -> Iterator[None]:
    """An exclusive, non-blocking OS lock on ``directory / LOCK_NAME`` (the directory must
    exist), which records the holder's pid: a second process is refused with it, and a lock
    file that cannot be opened (a read-only directory) is named. Both are `RunDirectoryError`.
    `what` names the directory in the messages (``"study directory"`` for ``augkit tune``)."""
    path = directory / LOCK_NAME
    try:
        handle = open(path, "a+", encoding="utf-8")
    except OSError as error:
        raise RunDirectoryError(
            f"cannot lock {what} {str(directory)!r}: {error.strerror} ({str(path)!r}); "
            "make the directory writable, or choose another name or output_dir (`name` in the config, --name for train)"
        ) from None
    try:
        if not _try_lock(handle):
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunDirectoryError(
                f"{what} {str(directory)!r} is in use by process {holder} (lock {str(path)!r}); "
                "wait for it to finish or choose another name (`name` in the config, --name for train)"
            )
        with writing(path):
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def _try_lock(handle: object) -> bool:
    try:
        import fcntl  # the platform's file lock: POSIX here, msvcrt on Windows
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[attr-defined]
    except BlockingIOError:
        return False
    return True

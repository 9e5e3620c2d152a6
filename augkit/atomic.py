"""Writes that cannot half-happen: a file or a directory is written under a temporary name
beside its target and renamed into place only once it is complete.

* `writing(path)` yields a temporary path beside `path` to write; when the block ends cleanly
  the file is flushed to disk and renamed over `path` (``os.replace``: readers see the old file
  or the new one, never a part); when it raises (Ctrl-C included) the temporary file is removed
  and `path` is as it was. `write_text` and `write_bytes` write through it.
* `staged_directory(target)` does the same for a directory: it yields a new, empty directory
  beside `target` to fill; on a clean end the earlier `target` is renamed aside, the staged one
  renamed to `target`, and only then the earlier one removed; on an exception the staged
  directory is removed and `target` is untouched.

Temporary names start with a dot and hold the writer's pid: ``.<name>.<pid>-<random>.tmp``
(``.staged`` / ``.old`` for directories). A process killed with SIGKILL can leave one behind;
it is never read and is safe to delete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def temporary_beside(path: Path, suffix: str = "tmp") -> Path:
    """A fresh hidden name in `path`'s directory, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{suffix}")


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside `path` for the block to write; renamed over `path` when the block
    ends cleanly, removed when it raises. The block must create the file (with the temporary
    name, which has no meaningful extension: give writers their format explicitly)."""
    path = Path(path)
    tmp = temporary_beside(path)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (see `writing`)."""
    with writing(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically (see `writing`)."""
    with writing(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A new empty directory beside `target` for the block to fill; it replaces `target` (an
    existing one is removed only after the new one is in place) when the block ends cleanly,
    and is removed, leaving `target` untouched, when the block raises."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = temporary_beside(target, "staged")
    staged.mkdir()
    try:
        yield staged
        _swap_in(staged, target)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def _swap_in(staged: Path, target: Path) -> None:
    """Rename `staged` to `target`; an existing `target` is renamed aside first and removed
    after, or put back if the second rename fails."""
    if not target.exists():
        os.rename(staged, target)
        return
    old = temporary_beside(target, "old")
    os.rename(target, old)
    try:
        os.rename(staged, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)

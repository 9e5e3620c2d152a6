"""The fingerprint of a data set's inputs, and what changed between two fingerprints.

A fingerprint is plain data (JSON): ``{"source": name, "files": [...], "generator": {...}}``.
Each file is ``{"path", "size", "mtime", "sha256"}``: its path as the config names it, its
size in bytes, its modification time (Unix seconds) and the SHA-256 of its bytes (read in 1 MiB
chunks). ``generator`` holds the parameters of generated data (the synthetic source).

Only the size and the content hash decide whether a file changed: a file touched or copied
with the same bytes (a new mtime) is the same data; the mtime is kept to say when it changed.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

CHUNK = 1 << 20
"""Bytes read at a time while hashing."""


def file_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"path", "size", "mtime", "sha256"}`` of the file at `path` (`OSError` if unreadable)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        stat = os.fstat(handle.fileno())
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return {"path": str(path), "size": stat.st_size, "mtime": stat.st_mtime, "sha256": digest.hexdigest()}


def files_fingerprint(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """`file_fingerprint` of each of `paths` that exists (a missing one shows as missing when
    compared with a fingerprint that has it)."""
    return [file_fingerprint(path) for path in paths if os.path.isfile(path)]


def _when(mtime: Any) -> str:
    if not isinstance(mtime, (int, float)):
        return "unknown"
    return datetime.datetime.fromtimestamp(mtime).isoformat(sep=" ", timespec="seconds")


def data_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs from the fingerprint `recorded` in `current`, a phrase per difference naming
    the file and how (missing, new, size, content), or the source or generator parameter; empty
    when the data is the same. Modification times alone are not a difference."""
    changes = []
    if recorded.get("source") != current.get("source"):
        changes.append(f"the data source changed ({recorded.get('source')!r} -> {current.get('source')!r})")
    before, after = recorded.get("generator") or {}, current.get("generator") or {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changes.append(f"the generator parameter {key!r} changed ({before.get(key)!r} -> {after.get(key)!r})")
    old = {entry["path"]: entry for entry in recorded.get("files", ())}
    new = {entry["path"]: entry for entry in current.get("files", ())}
    for path, was in old.items():
        now = new.get(path)
        if now is None:
            changes.append(f"{path!r} is missing")
        elif now["size"] != was["size"]:
            changes.append(
                f"{path!r} changed size ({was['size']} -> {now['size']} bytes; modified {_when(now['mtime'])})"
            )
        elif now["sha256"] != was["sha256"]:
            changes.append(
                f"{path!r} changed content (same size, {now['size']} bytes, another sha256; modified {_when(now['mtime'])})"
            )
    changes += [f"{path!r} is new" for path in new if path not in old]
    return changes

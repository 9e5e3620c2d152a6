"""Atomic, checksummed checkpoints that load with ``torch.load(weights_only=True)``.

A file holds ``{"format", "sha256", "payload"}``: the payload is the ``torch.save`` bytes of the
state as a ``uint8`` tensor and ``sha256`` its digest, so a flipped byte anywhere is a named
error instead of silently wrong weights. Both layers load with ``weights_only=True``: tensors
and plain containers only, never code.

A checkpoint belongs to the run that wrote it: the state's ``"run"`` (`RUN_KEY`) records
``{"id", "dir"}``, the run's id (`augkit.train.identity`) and directory; `check_owner` refuses a
checkpoint of another run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import uuid
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from augkit.errors import CheckpointError
from augkit.train.writing import writing

CHECKPOINT_NAME = "checkpoint.pt"
"""The latest state of a run (for ``--resume``)."""
BEST_NAME = "best.pt"
"""The state at the best validation score (used for the final test evaluation)."""
FORMAT = 1
RUN_KEY = "run"
"""The state key of the run that wrote a checkpoint: ``{"id": run id, "dir": run directory}``."""


def no_checkpoint(run_dir: Path) -> CheckpointError:
    """The error of ``--resume`` on `run_dir` without a checkpoint."""
    return CheckpointError(
        f"--resume: no checkpoint at {str(run_dir / CHECKPOINT_NAME)!r}; start the run without --resume"
    )


def check_owner(path: Path, state: Mapping[str, Any], run_dir: Path, run_id: str | None) -> None:
    """`CheckpointError` unless the checkpoint `state` (loaded from `path`) was written by the
    run `run_id` (None: a run that records no id) in `run_dir`; the message names both runs."""
    record = state.get(RUN_KEY)
    written_id = record.get("id") if isinstance(record, Mapping) else None
    if written_id == run_id:
        return
    this = f"run {str(run_dir)!r} " + (f"(id {run_id[:12]})" if run_id else "(which records no id)")
    if written_id is None:
        other = "a run that recorded no id (an augkit before run identities)"
    else:
        other = f"run {str(record.get('dir'))!r} (id {str(written_id)[:12]})"
    raise CheckpointError(
        f"checkpoint {str(path)!r} was written by {other}, not by {this}: a checkpoint belongs to its run; "
        "load it from the run that wrote it"
    )


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write `state` to a temporary file unique to this process beside `path`, fsync it, then
    rename it over `path`: a run killed mid-write leaves the previous checkpoint intact. A failed
    write (read-only directory, full disk) is a `RunDirectoryError` naming `path`."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    payload = buffer.getvalue()
    wrapped = {
        "format": FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as handle:
                torch.save(wrapped, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            tmp.unlink(missing_ok=True)


def _load(source: Any, path: Path, what: str) -> Any:
    if not zipfile.is_zipfile(source):  # what torch.save writes; anything else is damage
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged or truncated: {what} is not a complete torch.save archive")
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {str(path)!r}: {what} holds objects other than tensors and plain containers, refused ({first})") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged or truncated: {what} does not load ({first})") from None


def load_checkpoint(path: Path, *, required: Iterable[str] = ()) -> dict[str, Any]:
    """The state saved at `path`, after checking its checksum and that it has `required` keys.

    Every fault is a `CheckpointError` naming the file: missing, a directory, empty, truncated
    or damaged, checksum mismatch, not a checkpoint of this format, missing keys.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory, expected a file")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    if size == 0:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty (0 bytes)")
    outer = _load(path, path, "the file")
    if not isinstance(outer, dict) or outer.get("format") != FORMAT or not isinstance(outer.get("payload"), torch.Tensor):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is not an augkit checkpoint of format {FORMAT} "
            f"(expected a dict with format, sha256 and payload, got {_describe(outer)})"
        )
    payload = outer["payload"].numpy().tobytes()
    if hashlib.sha256(payload).hexdigest() != outer.get("sha256"):
        raise CheckpointError(f"checkpoint {str(path)!r} fails its checksum: the file was changed or damaged")
    state = _load(io.BytesIO(payload), path, "the payload")
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {str(path)!r} holds {_describe(state)}, expected a dict")
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {', '.join(map(repr, missing))}")
    return state


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))[:6]}"
    return f"a {type(value).__name__}"

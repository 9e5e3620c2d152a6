"""A run's identity: its id, and the fingerprints of the config and the data it trained on.

A run started afresh writes ``identity.json`` into its directory (`IDENTITY_NAME`)::

    {"format": 1, "run_id": "<uuid4 hex>", "config": "<sha256>", "data": {...}}

``config`` is the SHA-256 of the run's config (`config_fingerprint`: the keys a ``--resume``
may change, `RESUMABLE_KEYS`, left out) and ``data`` the fingerprint of its data
(`augkit.data.sources.fingerprint_data`: size, mtime and content hash of each file, or the
synthetic generator's parameters). Every checkpoint the run writes records the run's id and
directory (`augkit.train.checkpoint.RUN_KEY`).

A resumed run, `augkit.serving.load_run` and the commands built on it check the data against
the record (`check_data`): a file whose size or content hash differs, or that is missing, is a
`DataChangedError` naming it, unless ``allow_changed_data``. A new mtime with the same bytes is
the same data. A run written before identities were recorded has no ``identity.json``: it
still loads, with a warning that its data cannot be checked.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import uuid
from pathlib import Path
from typing import Any

import attrs

from augkit import atomic
from augkit.data.fingerprint import data_changes
from augkit.data.sources import DataOptions, fingerprint_data
from augkit.errors import DataChangedError, RunDirectoryError
from augkit.train.checkpointing import RESUMABLE_KEYS
from augkit.train.config import TrainConfig, config_from_dict, config_to_dict, dump_config

IDENTITY_NAME = "identity.json"
FORMAT = 1
OVERRIDE = "--allow-changed-data (allow_changed_data=True)"
"""How a user who means it uses a run on changed data (named in `DataChangedError`)."""


class RunIdentityWarning(UserWarning):
    """A run's data cannot be checked (a run from before identities), or is used changed."""


@attrs.frozen
class RunIdentity:
    """What ``identity.json`` holds: see the module."""

    run_id: str
    config: str
    data: dict[str, Any]

    def record(self, run_dir: Path) -> dict[str, str]:
        """What a checkpoint of this run records under ``"run"``."""
        return {"id": self.run_id, "dir": str(run_dir)}


def config_fingerprint(config: TrainConfig) -> str:
    """SHA-256 of `config` as its checkpoint stores it (TOML, read back), without the
    `RESUMABLE_KEYS`: the same for a run's every checkpoint, resumed or not."""
    data = config_to_dict(config_from_dict(tomllib.loads(dump_config(config)), source="the run's config"))
    for key in RESUMABLE_KEYS:
        data.pop(key, None)
    text = json.dumps(data, sort_keys=True, default=list)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_identity(config: TrainConfig) -> RunIdentity:
    """A fresh id, with the fingerprints of `config` and of its data as they are now."""
    return RunIdentity(uuid.uuid4().hex, config_fingerprint(config), fingerprint_data(config.data))


def identity_for(
    config: TrainConfig, run_dir: Path, *, resume: bool, allow_changed_data: bool = False
) -> tuple[RunIdentity | None, str | None]:
    """The identity of the run of `config` in `run_dir`, and a warning to show, if any.

    A fresh run gets a new identity, written to `run_dir`. A resumed run keeps the one it
    recorded, after `check_data`; with `allow_changed_data` and changed data, the identity
    returned takes the data as it is now (the run goes on training on it) with the warning, but
    is not written: the caller records it (`write_identity`) once the checkpoint is restored, so
    a resume that fails leaves the record as it was. A run from before identities keeps none."""
    if not resume:
        identity = new_identity(config)
        write_identity(run_dir, identity)
        return identity, None
    identity = read_identity(run_dir)
    if identity is None:
        return None, unchecked_warning(run_dir)
    what = f"--resume: run {str(run_dir)!r}"
    changes = check_data(identity, config.data, what=what, allow_changed_data=allow_changed_data)
    if not changes:
        return identity, None
    return attrs.evolve(identity, data=fingerprint_data(config.data)), changes_warning(what, changes)


def write_identity(run_dir: Path, identity: RunIdentity) -> None:
    """Write ``identity.json`` into `run_dir` (atomically)."""
    record = {"format": FORMAT, "run_id": identity.run_id, "config": identity.config, "data": identity.data}
    atomic.write_text(run_dir / IDENTITY_NAME, json.dumps(record, indent=2) + "\n")


def read_identity(run_dir: Path) -> RunIdentity | None:
    """The identity recorded in `run_dir`, or None where there is none (a run from before
    identities); `RunDirectoryError` naming the file when it is damaged."""
    path = run_dir / IDENTITY_NAME
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record.get("format") != FORMAT:
            raise ValueError(f"format {record.get('format')!r}, expected {FORMAT}")
        return RunIdentity(str(record["run_id"]), str(record["config"]), _data_record(record["data"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise RunDirectoryError(
            f"run identity {str(path)!r} is damaged ({type(error).__name__}: {error}); the run's data cannot be "
            "checked: retrain the run, or delete the file to load it unchecked, as a run from before identities"
        ) from None


def _data_record(data: Any) -> dict[str, Any]:
    """`data` as `data_changes` reads it (a dict; ``files`` a list of dicts with a text
    ``path``, an integer ``size`` and a text ``sha256``; ``generator`` a dict); `TypeError`
    naming the first entry that is not."""
    if not isinstance(data, dict):
        raise TypeError(f"'data' is {type(data).__name__}, expected an object")
    files = data.get("files", [])
    if not isinstance(files, list):
        raise TypeError(f"'data.files' is {type(files).__name__}, expected a list")
    for n, entry in enumerate(files):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and type(entry.get("size")) is int
            and isinstance(entry.get("sha256"), str)
        ):
            raise TypeError(f"'data.files[{n}]' is not a file's path, size and sha256: {entry!r}")
    if not isinstance(data.get("generator", {}), dict):
        raise TypeError("'data.generator' is not an object")
    return data


def check_data(identity: RunIdentity, data: DataOptions, *, what: str, allow_changed_data: bool = False) -> list[str]:
    """What changed in the data of `data` since `identity` was recorded (`data_changes`);
    `DataChangedError` naming every change, `what` (e.g. ``run 'runs/ml'``) and the override,
    unless `allow_changed_data` (then the changes are returned for a warning)."""
    changes = data_changes(identity.data, fingerprint_data(data))
    if changes and not allow_changed_data:
        raise DataChangedError(
            f"{what} was trained on other data: {'; '.join(changes)}. Restore the data, retrain, or use it "
            f"anyway with {OVERRIDE}"
        )
    return changes


def check_config(identity: RunIdentity, config: TrainConfig, *, path: Path, run_dir: Path) -> None:
    """`DataChangedError` unless `config` (from the checkpoint at `path`) is the one `identity`
    recorded (but the `RESUMABLE_KEYS`)."""
    if config_fingerprint(config) != identity.config:
        raise DataChangedError(
            f"checkpoint {str(path)!r} holds a config other than the one run {str(run_dir)!r} recorded in "
            f"{IDENTITY_NAME}: the checkpoint or {IDENTITY_NAME} was replaced; retrain the run"
        )


def changes_warning(what: str, changes: list[str]) -> str:
    """The one-line warning of a run used on changed data, allowed."""
    return f"{what} uses changed data ({'; '.join(changes)}), as allow_changed_data asks"


def unchecked_warning(run_dir: Path) -> str:
    """The one-line warning of a run that records no identity."""
    return (
        f"run {str(run_dir)!r} records no {IDENTITY_NAME} (written before augkit recorded run identities): "
        "its data cannot be checked against the data it was trained on"
    )

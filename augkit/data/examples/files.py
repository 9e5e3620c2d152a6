"""Open an examples dataset: find its Parquet files, and check every file's footer against the
config before a row is read.

Each file's footer gives its schema and its row groups; the checks cost one small read per
file. A file that is not Parquet or is damaged, a column missing or of the wrong type, a column
whose type differs from the first file's, and a null in a key, timestamp or weight column that
the footer's statistics already count are each a `DataFileError` naming the file and the column
(and the row group). What footers cannot tell, a null in a file written without statistics, is
found by the reader (`augkit.data.examples.rows`) at the row group that holds it.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from augkit.data.examples.config import ExamplesConfig
from augkit.errors import ConfigError, DataFileError

if TYPE_CHECKING:
    import pyarrow as pa

REQUIRED = ("user", "item", "timestamp", "weight")
"""The roles whose column may hold no null."""


@attrs.frozen(eq=False)
class ExampleFiles:
    """An opened examples dataset: plain data, cheap to send to DataLoader workers.

    ``paths[f]`` is file f (sorted); ``row_groups[f][g]`` the rows of its row group g. A *unit*
    is one non-empty row group; ``unit_file[u]``, ``unit_group[u]``, ``unit_rows[u]`` (int64
    arrays) say which, in file then row-group order.
    """

    config: ExamplesConfig
    root: Path
    paths: tuple[str, ...]
    row_groups: tuple[tuple[int, ...], ...]
    unit_file: np.ndarray = attrs.field(init=False)
    unit_group: np.ndarray = attrs.field(init=False)
    unit_rows: np.ndarray = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        units = [(f, g, n) for f, groups in enumerate(self.row_groups) for g, n in enumerate(groups) if n]
        table = np.asarray(units, dtype=np.int64).reshape(-1, 3)
        for name, column in zip(("unit_file", "unit_group", "unit_rows"), table.T, strict=True):
            object.__setattr__(self, name, np.ascontiguousarray(column))

    @property
    def num_rows(self) -> int:
        return int(self.unit_rows.sum())

    @property
    def num_units(self) -> int:
        return self.unit_rows.size

    def digest(self) -> str:
        """A hash of the file names (relative to `root`) and their row groups' sizes: equal
        digests, the same rows in the same places."""
        layout = [
            [Path(path).relative_to(self.root).as_posix(), list(groups)]
            for path, groups in zip(self.paths, self.row_groups, strict=True)
        ]
        return hashlib.sha256(json.dumps(layout).encode()).hexdigest()


def open_examples(config: ExamplesConfig) -> ExampleFiles:
    """The files of `config.path`, each footer checked (see the module docstring): a
    `DataFileError` for the first fault, `ConfigError` when the path names no Parquet file."""
    try:  # pyarrow is optional: only Parquet examples need it
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"reading the Parquet examples {str(config.path)!r} needs pyarrow: pip install pyarrow") from None
    root, paths = _find(config)
    uses = _uses(config)
    first: dict[str, tuple[str, str]] = {}  # column -> (first file, its type)
    row_groups = []
    for path in paths:
        try:
            with pq.ParquetFile(path) as parquet:
                schema, metadata = parquet.schema_arrow, parquet.metadata
        except (OSError, pa.ArrowException) as error:
            raise DataFileError(f"{path!r} is not a readable Parquet file: {error}", file=path) from None
        for role, column in config.roles().items():
            kind = _column_type(path, schema, role, column, uses[role])
            seen = first.setdefault(column, (path, kind))
            if seen[1] != kind:
                raise DataFileError(
                    f"{path!r}: column {column!r} ({role}) is {kind} here but {seen[1]} in {seen[0]!r}; "
                    "every file must give a column one type",
                    file=path, column=column,
                )
        _check_null_counts(path, metadata, config)
        row_groups.append(tuple(metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)))
    files = ExampleFiles(config, root, tuple(paths), tuple(row_groups))
    if not files.num_rows:
        raise DataFileError(f"the examples at {str(config.path)!r} hold no rows ({len(paths)} files)", file=paths[0])
    return files


def _find(config: ExamplesConfig) -> tuple[Path, list[str]]:
    """The root (for names in messages and the digest) and the sorted Parquet files."""
    path = config.path
    if config.is_glob:
        parts = path.parts
        fixed = next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))
        root = Path(*parts[:fixed]) if fixed else Path()
        paths = sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not paths:
            raise ConfigError(f"no file matches the examples path {str(path)!r}")
        return root, paths
    if path.is_file():
        return path.parent, [str(path)]
    if not path.is_dir():
        raise ConfigError(f"the examples path {str(path)!r} does not exist")
    import pyarrow as pa  # optional: the directory's files are found by pyarrow.dataset
    import pyarrow.dataset as ds

    # the empty schema keeps discovery from reading any file: each footer is checked below
    paths = sorted(ds.dataset(str(path), format="parquet", schema=pa.schema([])).files)
    if not paths:
        raise ConfigError(f"the examples directory {str(path)!r} holds no Parquet file")
    return path, paths


def _column_type(path: str, schema: pa.Schema, role: str, column: str, use: str) -> str:
    """The Arrow type of `column`, after checking that it fits `use` (see `_type_problem`)."""
    if schema.get_field_index(column) < 0:
        names = schema.names
        close = difflib.get_close_matches(column, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DataFileError(
            f"{path!r} has no column {column!r} ({role}){hint} Its columns: {', '.join(names)}",
            file=path, column=column,
        )
    kind = schema.field(column).type
    problem = _type_problem(use, kind)
    if problem:
        raise DataFileError(f"{path!r}: column {column!r} ({role}) is {kind}; {problem}", file=path, column=column)
    return str(kind)


def _type_problem(use: str, kind: pa.DataType) -> str | None:
    """Why a column of type `kind` cannot serve as `use` (a role, or a feature's type), or
    None when it can."""
    import pyarrow as pa  # optional: only Parquet examples need it

    def is_key(t: pa.DataType) -> bool:
        if pa.types.is_dictionary(t):
            return is_key(t.value_type)
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)

    def is_list(t: pa.DataType) -> bool:
        return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)

    checks: dict[str, tuple[Callable[[pa.DataType], bool], str]] = {
        "user": (is_key, "a key column holds strings or integers"),
        "item": (is_key, "a key column holds strings or integers"),
        "timestamp": (
            lambda t: pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date(t),
            "a timestamp column holds integers (Unix seconds), timestamps or dates",
        ),
        "weight": (lambda t: pa.types.is_integer(t) or pa.types.is_floating(t), "a weight column holds numbers"),
        "categorical": (is_key, "a categorical feature reads one string or integer key per row"),
        "multi_categorical": (
            lambda t: is_list(t) and is_key(t.value_type),
            "a multi_categorical feature reads a list column of strings or integers",
        ),
    }
    accepts, expected = checks[use]
    return None if accepts(kind) else expected


def _uses(config: ExamplesConfig) -> dict[str, str]:
    """What each role's column must be: its role, or a feature's type."""
    uses = {role: role for role in config.roles() if not role.startswith("features.")}
    uses.update({f"features.{f.name}": f.type for f in config.features})
    return uses


def _check_null_counts(path: str, metadata: Any, config: ExamplesConfig) -> None:
    """A `DataFileError` for the first row group whose statistics count a null in a column
    that may hold none."""
    roles = config.roles()
    wanted = {roles[role]: role for role in REQUIRED if role in roles}
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            role = wanted.get(chunk.path_in_schema)
            stats = chunk.statistics
            if role is not None and stats is not None and stats.has_null_count and stats.null_count:
                raise DataFileError(
                    f"{path!r}, row group {g}: column {chunk.path_in_schema!r} ({role}) holds "
                    f"{stats.null_count} nulls; every row needs its {role}",
                    file=path, column=chunk.path_in_schema, row_group=g,
                )

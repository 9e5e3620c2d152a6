"""``augkit data examples`` and ``augkit data vocab``: logs of any size made ready for training,
out of core (`augkit.data.log_examples`, `augkit.data.vocab`)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from augkit.data.arrow_keys import HASH_NAME, KEY_TYPES
from augkit.data.log_examples import LogColumns, build_examples
from augkit.data.vocab import OOV_POLICIES, HashedKeys, build_vocabulary, count_keys, hashing_report, load

if sys.platform != "win32":
    import resource

_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    """Bytes of a size such as ``512MB`` (decimal), ``2GiB`` (binary) or ``1500000000``."""
    match = _SIZE.fullmatch(value)
    if not match:
        raise click.BadParameter(f"expected a size such as 512MB or 2GiB, got {value!r}", ctx, param)
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(float(match.group(1)) * _UNITS[unit])


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """Unix seconds of an integer or an ISO-8601 date or time (naive: UTC)."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"expected Unix seconds or an ISO-8601 time such as 2018-06-01, got {value!r}", ctx, param) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() // 1)


def _peak_memory() -> str:
    """The process's peak resident memory so far, for the report."""
    if sys.platform == "win32":
        return "peak memory unknown on Windows"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return f"peak RSS {peak / 2**30:.2f} GiB"


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise click.ClickException(f"{str(out)!r} exists; pass --overwrite to replace it")


@click.group()
def data() -> None:
    """Prepare logs of any size for training, out of core: examples with each user's previous items, and vocabularies or hashed keys.

    Both commands read CSV/TSV (with a header) or Parquet: a file, a directory of them or a glob.
    """


@data.command()
@click.argument("log")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--user", default="user", show_default=True, help="The log's user key column.")
@click.option("--item", default="item", show_default=True, help="The log's item key column.")
@click.option("--timestamp", default="timestamp", show_default=True, help="The log's timestamp column: Unix seconds, Arrow timestamps or ISO-8601 text.")
@click.option("--weight", default=None, help="The log's weight column (default: every event weighs 1).")
@click.option("--history", default=20, show_default=True, type=click.IntRange(min=0), help="Previous items kept per event.")
@click.option("--partitions", default=8, show_default=True, type=click.IntRange(min=1), help="Parquet files to write (users by hash).")
@click.option(
    "--cut", default=None, callback=_moment, metavar="TIME",
    help="Write events before TIME (Unix seconds or ISO-8601) to OUT/train and the others to OUT/after.",
)
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="str", show_default=True, help="Keys as text or as integers (01 is 1).")
@click.option(
    "--memory-limit", default="2GiB", show_default=True, callback=_size, metavar="SIZE",
    help="Working memory for building histories (e.g. 512MB); more sub-partitions are built in turn below it.",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it is an examples dataset.")
def examples(
    log: str,
    out: Path,
    user: str,
    item: str,
    timestamp: str,
    weight: str | None,
    history: int,
    partitions: int,
    cut: int | None,
    key_type: str,
    memory_limit: int,
    overwrite: bool,
) -> None:
    """Turn the interaction LOG into examples in the directory OUT: one row per event with the user's previous items by time.

    Each row holds user, item, timestamp, weight and history: the items of the user's events
    with a strictly earlier timestamp, the last --history of them, oldest first. OUT holds
    --partitions Parquet files (users split by a stable hash) and a manifest, _examples.json.
    """
    columns = LogColumns(user=user, item=item, timestamp=timestamp, weight=weight)
    report = build_examples(
        log, out, columns=columns, history=history, partitions=partitions, cut=cut,
        key_type=key_type, memory_limit=memory_limit, overwrite=overwrite,
    )
    parts = ", ".join(f"{rows:,} {part}" for part, rows in report.rows.items()) if cut is not None else f"{report.events:,}"
    click.echo(
        f"wrote {parts} examples to {report.out} ({report.partitions} partitions, "
        f"{report.sub_partitions} sub-partition{'s' if report.sub_partitions > 1 else ''} each) "
        f"in {report.seconds:.1f} s, {_peak_memory()}"
    )


@data.command()
@click.argument("log")
@click.option("--column", required=True, help="The column whose keys to map to rows.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write: a .parquet vocabulary, or with --hash-buckets a .json hashing spec.",
)
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="str", show_default=True, help="Keys as text or as integers (01 is 1).")
@click.option("--max-size", type=click.IntRange(min=0), default=None, help="Keep at most this many keys, the most frequent (default: all).")
@click.option("--min-count", type=click.IntRange(min=1), default=1, show_default=True, help="Keep keys seen at least this often.")
@click.option(
    "--oov", type=click.Choice(OOV_POLICIES), default="bucket", show_default=True,
    help="Unknown keys: bucket (one shared row, row 0) or missing (the feature's default embedding).",
)
@click.option("--extend", "extend_path", type=click.Path(dir_okay=False, path_type=Path), help="Grow this vocabulary: its keys keep their rows, new keys follow.")
@click.option("--hash-buckets", type=click.IntRange(min=1), default=None, help=f"Hash keys into this many rows ({HASH_NAME}) instead of a vocabulary.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def vocab(
    log: str,
    column: str,
    out: Path,
    key_type: str,
    max_size: int | None,
    min_count: int,
    oov: str,
    extend_path: Path | None,
    hash_buckets: int | None,
    overwrite: bool,
) -> None:
    """Map the keys of COLUMN of LOG to embedding rows: a vocabulary by frequency, or hashing.

    One pass over the column, out of core; prints the size, the share of values covered, and for
    hashing the collision rate (distinct keys that share a bucket).
    """
    suffix = ".json" if hash_buckets is not None else ".parquet"
    if out.suffix.lower() != suffix:
        raise click.UsageError(f"--out must end in {suffix} for {'a hashing spec' if hash_buckets else 'a vocabulary'}, got {str(out)!r}")
    if hash_buckets is not None and (extend_path or max_size is not None or min_count != 1):
        raise click.UsageError("--extend, --max-size and --min-count apply to a vocabulary, not to --hash-buckets")
    _refuse_existing(out, overwrite)
    extend = None
    if extend_path is not None:
        extend = load(extend_path)
        if isinstance(extend, HashedKeys):
            raise click.UsageError(f"--extend {str(extend_path)!r} is a hashing spec; hashed keys need no growth")
        oov = extend.oov
    counts = count_keys(log, column, key_type=key_type)
    present = counts.values - counts.missing
    if hash_buckets is not None:
        hashed = HashedKeys(hash_buckets, key_type=key_type)
        hashing = hashing_report(hashed, counts)
        hashed.save(out, column=column)
        click.echo(
            f"wrote {out}: {hashing.distinct:,} distinct keys of {column!r} ({present:,} values, "
            f"{counts.missing:,} missing) hashed into {hashing.buckets:,} of {hash_buckets:,} rows; "
            f"collision rate {hashing.collision_rate:.2%} ({hashing.keys_per_bucket:.3f} keys per filled row)"
        )
        return
    vocabulary, report = build_vocabulary(
        counts, key_type=key_type, max_size=max_size, min_count=min_count, oov=oov, extend=extend
    )
    vocabulary.save(out, column=column)
    grown = f", {len(vocabulary) - len(extend):,} new after the {len(extend):,} of {extend_path}" if extend is not None else ""
    click.echo(
        f"wrote {out}: {report.size:,} keys of {report.distinct:,} distinct in {column!r}{grown} "
        f"({vocabulary.num_rows:,} rows, oov = {oov}); coverage {report.coverage:.2%} of {present:,} values "
        f"({counts.missing:,} missing)"
    )

"""``augkit recommend``, ``similar`` and ``export``: a trained run answers in raw keys."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import click

from augkit.serving import Run, load_run

_RUN_ARGUMENT = click.argument("run", type=click.Path(path_type=Path))
_CHECKPOINT_OPTION = click.option(
    "--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
    help="Load these weights instead of RUN/best.pt (else RUN/checkpoint.pt).",
)


_DEVICE_OPTION = click.option(
    "--device", default="cpu", show_default=True, metavar="DEVICE",
    help="Where the towers run: cpu, cuda, cuda:N, mps or auto (cuda when available).",
)


_ALLOW_CHANGED_DATA_OPTION = click.option(
    "--allow-changed-data", is_flag=True,
    help="Use the run even if its data files changed since training (size or content hash; a new mtime alone is no change).",
)


def _load(run: Path, checkpoint: Path | None, device: str, allow_changed_data: bool) -> Run:
    """`load_run`, its warnings (data that cannot be checked, or changed and allowed) printed
    as one ``warning:`` line each on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_run(run, checkpoint=checkpoint, device=device, allow_changed_data=allow_changed_data)
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    return loaded


def _keys_file(path: Path) -> list[tuple[str, str]]:
    """(key, where) for each non-blank line of `path` that is not a ``#`` comment."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise click.ClickException(f"cannot read {str(path)!r}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise click.ClickException(
            f"--users-file {str(path)!r} is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from None
    lines = ((n, line.strip()) for n, line in enumerate(text.splitlines(), start=1))
    return [(line, f"{path}, line {n}") for n, line in lines if line and not line.startswith("#")]


def _print_ranked(result: Any, what: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.rows(), indent=2, default=str))
        return
    scores = result.scores.tolist()
    for q, query in enumerate(result.queries):
        click.echo(f"{what} {query}:")
        for r, item in enumerate(result.items[q]):
            if item is None:
                continue
            title = "" if result.titles is None or result.titles[q][r] is None else f"  {result.titles[q][r]}"
            click.echo(f"{r + 1:>4}  {item!s:<12} {scores[q][r]:.4f}{title}")


@click.command()
@_RUN_ARGUMENT
@click.option("--user", "users", multiple=True, metavar="KEY", help="A user's raw key, e.g. a MovieLens user id (repeatable).")
@click.option("--users-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A file of user keys, one per line.")
@click.option("-k", "--k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Items per user.")
@click.option("--include-seen", is_flag=True, help="Keep the user's training items in the ranking.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows (query, rank, item, score, title).")
@_CHECKPOINT_OPTION
@_DEVICE_OPTION
@_ALLOW_CHANGED_DATA_OPTION
def recommend(
    run: Path, users: tuple[str, ...], users_file: Path | None, k: int, include_seen: bool, as_json: bool,
    checkpoint: Path | None, device: str, allow_changed_data: bool,
) -> None:
    """Top-K items for users of the trained run RUN (a directory written by `augkit train`)."""
    asked = [(key, "--user") for key in users] + (_keys_file(users_file) if users_file else [])
    if not asked and users_file:
        raise click.ClickException(f"--users-file {str(users_file)!r} lists no user keys (one per line; # comments)")
    if not asked:
        raise click.UsageError("give --user KEY (repeatable) or --users-file PATH")
    loaded = _load(run, checkpoint, device, allow_changed_data)
    for key, where in asked:  # each key checked with where it came from, before any work
        loaded.keys.users.index([key], where=where)
    result = loaded.recommend([key for key, _ in asked], k, exclude_seen=not include_seen)
    _print_ranked(result, "user", as_json)


@click.command()
@_RUN_ARGUMENT
@click.option("--item", "items", multiple=True, required=True, metavar="KEY", help="An item's raw key (repeatable).")
@click.option("-k", "--k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Items per item.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows (query, rank, item, score, title).")
@_CHECKPOINT_OPTION
@_DEVICE_OPTION
@_ALLOW_CHANGED_DATA_OPTION
def similar(
    run: Path, items: tuple[str, ...], k: int, as_json: bool, checkpoint: Path | None, device: str, allow_changed_data: bool
) -> None:
    """The K items nearest each --item in the item tower's space (cosine), itself left out."""
    loaded = _load(run, checkpoint, device, allow_changed_data)
    _print_ranked(loaded.similar_items(list(items), k), "item", as_json)


@click.command()
@_RUN_ARGUMENT
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory to write.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "npy"]), default="parquet", show_default=True, help="Item embeddings file.")
@click.option("--index", type=click.Choice(["faiss"]), help="Also build an ANN index (needs faiss-cpu).")
@click.option(
    "--index-type", type=click.Choice(["auto", "flat", "ivf", "hnsw"]), default="auto", show_default=True,
    help="FAISS index: auto is flat (exact) up to 100,000 items, else IVF.",
)
@click.option(
    "--overwrite", is_flag=True,
    help="Replace an earlier export in --out (the new one is swapped in only once complete).",
)
@_CHECKPOINT_OPTION
@_DEVICE_OPTION
@_ALLOW_CHANGED_DATA_OPTION
def export(
    run: Path, out: Path, fmt: str, index: str | None, index_type: str, overwrite: bool, checkpoint: Path | None,
    device: str, allow_changed_data: bool,
) -> None:
    """Export RUN for serving: item embeddings with keys, the towers as torch.export programs
    (loadable without augkit), and optionally a FAISS index with its recall against exact search."""
    loaded = _load(run, checkpoint, device, allow_changed_data)
    written = loaded.export(out, format=fmt, index=index, index_type=index_type, overwrite=overwrite)
    report = written.report
    diffs = report["max_abs_diff"]
    click.echo(f"exported towers: max |exported - trained| = {diffs['query']:.2e} (query), {diffs['item']:.2e} (item)")
    if "ann" in report:
        ann, settings = report["ann"], report["index"]
        recalls = ", ".join(f"{key} {value:.4f}" for key, value in ann.items() if key.startswith("recall@"))
        knobs = ", ".join(f"{key}={settings[key]}" for key in ("nlist", "nprobe", "ef_search") if key in settings)
        latency = ann["latency_ms"]
        click.echo(
            f"FAISS {settings['type']}{f' ({knobs})' if knobs else ''} over {settings['items']} items, "
            f"{ann['queries']} test users (not used to calibrate it): {recalls} of exact search; "
            f"same top-10 for {100 * ann['same_top10']:.1f}% of users; "
            f"one query {latency['ann_one_query']:.3f} ms (exact {latency['exact_one_query']:.3f} ms)"
        )
    click.echo(f"wrote {', '.join(written.files)} to {out}")

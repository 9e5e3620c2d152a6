"""``augkit mi``: the mutual information of an item table's features, CFM's offline step.

It calls the ``cfm`` plugin directly (the one place augkit does): this module is imported only
when the command runs, so a broken ``cfm`` plugin spares the other commands.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from augkit.batch import FeatureBatch
from augkit.data import ItemTable, load_movielens_items, load_movielens_rating_counts, read_item_table
from augkit.data.items import categorical_warnings
from augkit.errors import AugkitError
from augkit.schema import Categorical
from augkit_cfm import CorrelatedFeatureMasking, compute_mutual_information
from augkit_cfm.report import format_matrix, largest_pair, plot_matrix


def _parse_multi(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value:
        column, equals, separator = item.partition("=")
        if not equals or not column or not separator:
            raise click.BadParameter(f"expected COL=SEP (e.g. tags='|'), got {item!r}", ctx, param)
        out[column] = separator
    return out


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--multi", multiple=True, callback=_parse_multi, metavar="COL=SEP",
    help="Item tables: split column COL by SEP into a multi-valued feature (repeatable).",
)
@click.option("--drop", multiple=True, metavar="COL", help="Leave feature COL out (repeatable).")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("mi.json"),
    show_default=True, help="Where to write the matrix as JSON (default: the current directory).",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a heatmap PNG.")
@click.option(
    "--estimator", type=click.Choice(["plugin", "miller_madow"]), default="plugin", show_default=True,
    help="plugin: MI of the empirical joint; miller_madow: minus its small-sample bias.",
)
@click.option(
    "--weights-from", type=click.Path(exists=True, path_type=Path), metavar="U_DATA",
    help="MovieLens only: weight items by their ratings in this u.data file (default: uniform).",
)
def mi(
    source: Path,
    multi: dict[str, str],
    drop: tuple[str, ...],
    output: Path,
    plot: Path | None,
    weights_from: Path | None,
    estimator: str,
) -> None:
    """Mutual information between the item features of SOURCE, for correlated feature masking.

    SOURCE is a MovieLens-100K directory (with u.item) or an item table (.csv or .tsv with a
    header; every column a categorical feature). Also shows the splits CFM draws from the
    matrix with its default parameters, and flags a sparse feature that dominates them.
    """
    try:
        table, features, weights = _mi_inputs(source, multi, drop, weights_from)
        matrix = compute_mutual_information(table.corpus, features=features, weights=weights, estimator=estimator)
    except AugkitError as error:
        raise click.ClickException(str(error)) from None
    if not source.is_dir():
        for warning in categorical_warnings(table):
            click.echo(f"warning: {warning}", err=True)
    described = "uniform item weights" if weights is None else f"items weighted by {weights_from}"
    click.echo(f"mutual information (nats) of {len(table)} items from {source}, {described}:")
    click.echo(format_matrix(matrix))
    top = largest_pair(matrix)
    if top is not None:
        click.echo(f"largest off-diagonal pair: {top[0]} & {top[1]} = {top[2]:.3f} nats")
    keys = _key_features(table.corpus, matrix.names)
    if keys:
        click.echo(
            f"key feature(s), one distinct value per item: {', '.join(keys)}; "
            "a key determines every feature, so its MI with one is that feature's own information"
        )
        rest = largest_pair(matrix, exclude=keys)
        if rest is not None:
            click.echo(f"largest pair without key features: {rest[0]} & {rest[1]} = {rest[2]:.3f} nats")
    if len(matrix.names) >= 2:
        click.echo("CFM splits (correlation = 'mi', granularity = 'batch'):")
        for line in CorrelatedFeatureMasking(mi=matrix).split_report(table.corpus):
            click.echo(f"  {line}")
    target = output
    try:
        matrix.save(output)
        click.echo(f"wrote {output.resolve()}")
        if plot is not None:
            target = plot
            plot_matrix(matrix, plot, title=f"Feature mutual information (nats): {source.name}")
            click.echo(f"wrote {plot.resolve()}")
    except OSError as error:
        raise click.ClickException(f"cannot write {error.filename or target}: {error.strerror or error}") from None


def _mi_inputs(
    source: Path, multi: dict[str, str], drop: tuple[str, ...], weights_from: Path | None
) -> tuple[ItemTable, list[str], np.ndarray | None]:
    """The item table of SOURCE, the features to use and the item weights (None: uniform)."""
    if not source.is_dir():
        if weights_from is not None:
            raise click.UsageError("--weights-from applies to MovieLens directories only")
        table = read_item_table(source, multi_valued=multi, drop=drop)
        return table, list(table.schema.names), None
    if multi:
        raise click.UsageError("--multi applies to item table files, not MovieLens directories")
    table = load_movielens_items(source)
    for name in drop:
        table.schema.index(name)
    features = [n for n in table.schema.names if n not in drop]
    if not features:
        raise click.UsageError("--drop leaves no feature to compute mutual information of")
    weights = None if weights_from is None else load_movielens_rating_counts(weights_from, len(table))
    return table, features, weights


def _key_features(corpus: FeatureBatch, names: tuple[str, ...]) -> tuple[str, ...]:
    """Single-valued features of `names` present for every item with a distinct value each."""
    keys = []
    for name in names:
        if isinstance(corpus.schema[name], Categorical) and bool(corpus.is_present(name).all()):
            values = corpus.values[name]
            if values.unique().numel() == values.numel():
                keys.append(name)
    return tuple(keys)

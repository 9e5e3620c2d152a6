"""The ``augkit`` command line: ``augkit plugins | mi | train | compare | tune | ...``."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from augkit.data import ItemTable, load_movielens_items, load_movielens_rating_counts, read_item_table
from augkit.data.items import categorical_warnings
from augkit.errors import AugkitError
from augkit.registry import get_registry
from augkit.schema import Categorical

if TYPE_CHECKING:
    import numpy as np

    from augkit.batch import FeatureBatch
    from augkit.train.rundir import OnExisting


DEBUG_ENV = "AUGKIT_DEBUG"
"""Set to 1 to see the traceback of an unexpected error (as ``augkit --traceback``)."""


class _Interrupted(click.ClickException):
    exit_code = 130


class ErrorBoundary(click.Group):
    """The one place where errors become messages: an `AugkitError` (bad input) prints
    ``Error: <message>`` and exits 1; any other exception (a bug) prints one line saying how to
    see its traceback and exits 1; Ctrl-C prints what to do next and exits 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except AugkitError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            raise _Interrupted(
                "interrupted; a training run continues from its last checkpoint with --resume"
            ) from None
        except Exception as error:
            if ctx.meta.get("augkit.traceback") or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            raise click.ClickException(
                f"unexpected {type(error).__name__}: {error} (a bug in augkit or a plugin; run with "
                f"--traceback or {DEBUG_ENV}=1 to see where, and please report it)"
            ) from None


@click.group(cls=ErrorBoundary)
@click.version_option(package_name="augkit")
@click.option("--traceback", "show_traceback", is_flag=True, help="Show the traceback of an unexpected error.")
@click.pass_context
def main(ctx: click.Context, show_traceback: bool) -> None:
    """augkit: self-supervised learning for two-tower retrieval recommenders."""
    ctx.meta["augkit.traceback"] = show_traceback


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def plugins(as_json: bool) -> None:
    """List every registered name with its kind, distribution and version, and load failures."""
    registry = get_registry()
    rows = [
        {
            "kind": r.kind,
            "name": r.name,
            "distribution": r.distribution,
            "version": r.version,
            "plugin": r.plugin,
        }
        for r in registry.registrations()
    ]
    failures = [
        {
            "plugin": f.plugin,
            "distribution": f.distribution,
            "version": f.version,
            "phase": f.phase,
            "error": f.error,
        }
        for f in registry.failures
    ]
    if as_json:
        click.echo(json.dumps({"registered": rows, "failures": failures}, indent=2))
        return
    headers = ("kind", "name", "distribution", "version")
    table = [headers] + [tuple(row[h] for h in headers) for row in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(headers))]
    for line in table:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip())
    counts: dict[tuple[str, str], int] = {}
    for row in rows:
        counts[(row["kind"], row["name"])] = counts.get((row["kind"], row["name"]), 0) + 1
    for (kind, name), count in sorted(counts.items()):
        if count > 1:
            click.echo(f"conflict: {kind} {name!r} is registered {count} times (see above)", err=True)
    for failure in registry.failures:
        click.echo(f"failed: {failure.describe()}", err=True)


def _parse_multi(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value:
        column, equals, separator = item.partition("=")
        if not equals or not column or not separator:
            raise click.BadParameter(f"expected COL=SEP (e.g. tags='|'), got {item!r}", ctx, param)
        out[column] = separator
    return out


@main.command()
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
) -> None:
    """Mutual information between the item features of SOURCE, for correlated feature masking.

    SOURCE is a MovieLens-100K directory (with u.item) or an item table (.csv or .tsv with a
    header; every column a categorical feature).
    """
    # The cfm plugin loads here, not with the CLI, so a broken plugin spares `augkit plugins`.
    from augkit_cfm import compute_mutual_information
    from augkit_cfm.report import format_matrix, largest_pair, plot_matrix

    try:
        table, features, weights = _mi_inputs(source, multi, drop, weights_from)
        matrix = compute_mutual_information(table.corpus, features=features, weights=weights)
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
    try:
        matrix.save(output)
        click.echo(f"wrote {output.resolve()}")
        if plot is not None:
            plot_matrix(matrix, plot, title=f"Feature mutual information (nats): {source.name}")
            click.echo(f"wrote {plot.resolve()}")
    except OSError as error:
        raise click.ClickException(f"cannot write {error.filename}: {error.strerror}") from None


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


DEFAULT_RUN = {"eval": {"baseline": True}}
"""What ``augkit train`` without a config changes from the defaults: the baseline beside the
model, so that the default report shows what the SSL task does."""


def _settings(
    config: Path | None, overrides: Sequence[str], options: dict[str, Any] | None = None, *, without: Mapping[str, Any] | None = None
) -> Any:
    """The trainer config of file `config` (without one, the defaults changed by `without`) with
    the ``--set`` `overrides`, then the named `options` (``{"name": ...}``: ``--name``) given."""
    from augkit.train import apply_overrides, config_from_dict, load_config
    from augkit.train.config import apply_values

    settings = apply_overrides(load_config(config) if config else config_from_dict(dict(without or {})), overrides)
    for key, value in (options or {}).items():
        if value is not None:
            settings = apply_values(settings, {key: value}, option=f"--{key} {value!r}")
    return settings


class _TqdmHandler(logging.Handler):
    """Log lines on stderr that do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def _show_progress_lines() -> None:
    if os.environ.get("RANK", "0") != "0":  # under torchrun, the first process speaks for all
        return
    logger = logging.getLogger("augkit.train")
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        logger.addHandler(_TqdmHandler())
        logger.setLevel(logging.INFO)


@main.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--resume", is_flag=True, help="Continue from the run's last checkpoint (may raise --epochs).")
@click.option("--overwrite", is_flag=True, help="Replace the results of an earlier run in the run directory.")
@click.option("--name", help="Run name (sets `name`).")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs (sets `epochs`).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed (sets `seed`).")
@click.option("--device", help="auto, cpu, cuda, cuda:N or mps (sets `device`).")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Set any config key, typed and checked as in the file, e.g. --set main.batch_size=256 (repeatable).",
)
@click.option("--print-config", is_flag=True, help="Print the resolved config as TOML and exit.")
@click.option(
    "--nproc", type=click.IntRange(min=1), metavar="N",
    help="Train in N processes on this machine (torch's launcher, torchrun --standalone).",
)
def train(
    config: Path | None,
    resume: bool,
    overwrite: bool,
    name: str | None,
    epochs: int | None,
    seed: int | None,
    device: str | None,
    overrides: tuple[str, ...],
    print_config: bool,
    nproc: int | None,
) -> None:
    """Train the two towers with the SSL task; without CONFIG, on the embedded synthetic data
    with the baseline (ssl.alpha = 0) trained beside it (eval.baseline = true).

    Writes runs/<name>/: config.toml, checkpoint.pt, best.pt, history.csv, metrics.json,
    report.md and plots (and baseline/, a run of its own). A default run takes about a minute
    on 2 CPU cores.
    """
    from augkit.train import dump_config, run_training
    from augkit.train.report import report_rows

    if resume and overwrite:
        raise click.UsageError("--resume continues the run and --overwrite replaces it; give one of them")
    on_existing: OnExisting = "resume" if resume else "overwrite" if overwrite else "refuse"
    settings = _settings(
        config, overrides, {"name": name, "epochs": epochs, "seed": seed, "device": device}, without=DEFAULT_RUN
    )
    if print_config:
        click.echo(dump_config(settings), nl=False)
        return
    if nproc is not None and nproc > 1:
        _launch(nproc, config, on_existing=on_existing, overrides=overrides, options={
            "name": name, "epochs": epochs, "seed": seed, "device": device,
        })
        return
    _show_progress_lines()
    metrics = run_training(settings, on_existing=on_existing)
    if os.environ.get("RANK", "0") != "0":
        return
    k = settings.eval.ks[0]
    recalls = ", ".join(f"{row} {m['all'][f'recall@{k}']:.4f}" for row, m in report_rows(metrics).items())
    click.echo(f"test Recall@{k}: {recalls}; report: {settings.run_dir / 'report.md'}")


def _launch(nproc: int, config: Path | None, *, on_existing: OnExisting, overrides: Sequence[str], options: dict[str, Any]) -> None:
    """``augkit train`` again in `nproc` processes through torch's launcher (``torchrun
    --standalone --nproc-per-node N -m augkit train ...``), with the same arguments."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    from augkit.distributed import environment_world_size

    if environment_world_size() > 1:
        raise click.UsageError("--nproc: already running under torchrun; leave --nproc out")
    arguments = ["--standalone", "--nproc-per-node", str(nproc), "-m", "augkit", "train"]
    arguments += [str(config)] if config else []
    arguments += [f"--{on_existing}"] if on_existing != "refuse" else []  # --resume, --overwrite
    arguments += [part for override in overrides for part in ("--set", override)]
    arguments += [part for key, value in options.items() if value is not None for part in (f"--{key}", str(value))]
    try:
        torchrun(arguments)
    except ChildFailedError as error:
        failed = ", ".join(f"rank {rank}" for rank in sorted(error.failures))
        raise click.ClickException(f"--nproc {nproc}: {failed} failed (see the errors above)") from None


def _parse_floats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 0.1,0.3,1,3, got {value!r}") from None
    if not numbers or any(not n > 0 for n in numbers):
        raise click.BadParameter(f"expected one or more numbers > 0, got {value!r}")
    return numbers


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--variants", default="baseline,fd,so,rfm,cfm", show_default=True,
    help="Comma-separated variants: baseline, fd, so, rfm, cfm (baseline is required).",
)
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(min=1), help="Seeds per candidate.")
@click.option(
    "--alphas", default="0.1,0.3,1,3", show_default=True, callback=_parse_floats,
    help="Comma-separated weights alpha for so, rfm and cfm (the paper's grid); one candidate each, chosen on validation.",
)
@click.option(
    "--grid", "grid", multiple=True, metavar="[VARIANT:]KEY=V1,V2",
    help="Also search config KEY over these values, for every variant or only VARIANT (repeatable).",
)
@click.option(
    "--tuned", "tuned", multiple=True, metavar="VARIANT=BEST_TOML",
    help="Use the config augkit tune wrote (best.toml) as VARIANT's only candidate (repeatable).",
)
@click.option(
    "--define", "defines", multiple=True, metavar="NAME=VARIANT:KEY=VALUE",
    help="A variant of its own: VARIANT with KEY fixed at VALUE, a row of its own (repeatable; NAME again fixes one more key).",
)
@click.option(
    "--target", "targets", multiple=True, metavar="VARIANT:SLICE/METRIC@K>=PCT",
    help="Check a lift on the page, e.g. cfm:tail/recall@50>=+10 (repeatable).",
)
@click.option("--resume", is_flag=True, help="Continue runs that have a checkpoint; finished runs are only reloaded.")
@click.option("--overwrite", is_flag=True, help="Replace the results of earlier runs of the comparison.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Set a key of the base config (repeatable).")
def compare(
    config: Path | None,
    variants: str,
    seeds: int,
    alphas: tuple[float, ...],
    grid: tuple[str, ...],
    tuned: tuple[str, ...],
    defines: tuple[str, ...],
    targets: tuple[str, ...],
    resume: bool,
    overwrite: bool,
    overrides: tuple[str, ...],
) -> None:
    """Compare the variants fairly: select each one's candidate on the validation split, test
    the chosen ones once over the seeds; write a table with 95% CIs, paired tests and plots.
    Variants given by --define join the list."""
    from augkit.train import load_config
    from augkit.train.compare import VARIANTS, check_tuned, parse_defines, parse_grid, run_compare

    settings = _settings(config, overrides)
    defined = parse_defines(defines)
    names = [v.strip() for v in variants.split(",") if v.strip()]
    names += [name for name in defined if name not in names]
    configs = {}
    for item in tuned:
        variant, equals, path = item.partition("=")
        if not equals or not variant.strip() or not path.strip():
            raise click.BadParameter(f"expected VARIANT=PATH (e.g. cfm=runs/x-tune-cfm/best.toml), got {item!r}",
                                     param_hint="--tuned")
        configs[variant.strip()] = load_config(path.strip())
        check_tuned(settings, variant.strip(), configs[variant.strip()], path.strip())
    _show_progress_lines()
    out = run_compare(
        settings, names, seeds, alphas=alphas, grid=parse_grid(grid, [*VARIANTS, *defined]), tuned=configs,
        defined=defined, targets=targets,
        resume=resume, overwrite=overwrite,
    )
    click.echo((out / "compare.md").read_text(encoding="utf-8"))
    click.echo(f"written to {out}")


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--variant", default="cfm", show_default=True, help="The variant to tune: baseline, fd, so, rfm or cfm.")
@click.option("--trials", default=30, show_default=True, type=click.IntRange(min=1), help="Trials in the study in all (a resumed study runs the rest).")
@click.option("--resume", is_flag=True, help="Continue the study in its study.db.")
@click.option("--overwrite", is_flag=True, help="Delete an earlier study of the same name and variant first.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS", help="Start no new trial after this many seconds.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Set a key of the base config (repeatable).")
def tune(
    config: Path | None,
    variant: str,
    trials: int,
    resume: bool,
    overwrite: bool,
    timeout: float | None,
    overrides: tuple[str, ...],
) -> None:
    """Tune VARIANT's hyperparameters on the validation split with Optuna (TPE); the study in
    runs/<name>-tune-<variant>/study.db; writes best.toml (trains the winner), best.json and plots."""
    from augkit.train.tune import run_tune

    settings = _settings(config, overrides)
    _show_progress_lines()
    out = run_tune(settings, variant, trials, resume=resume, overwrite=overwrite, timeout=timeout)
    click.echo((out / "tune.md").read_text(encoding="utf-8"))
    click.echo(f"written to {out}")


# -- serving a trained run: recommend, similar, export ------------------------------------------
_RUN_ARGUMENT = click.argument("run", type=click.Path(path_type=Path))
_CHECKPOINT_OPTION = click.option(
    "--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
    help="Load these weights instead of RUN/best.pt (else RUN/checkpoint.pt).",
)


_DEVICE_OPTION = click.option(
    "--device", default="cpu", show_default=True, metavar="DEVICE",
    help="Where the towers run: cpu, cuda, cuda:N, mps or auto (cuda when available).",
)


def _keys_file(path: Path) -> list[tuple[str, str]]:
    """(key, where) for each non-blank line of `path` that is not a ``#`` comment."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise click.ClickException(f"cannot read {str(path)!r}: {error.strerror}") from None
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
            title = "" if result.titles is None else f"  {result.titles[q][r]}"
            click.echo(f"{r + 1:>4}  {item!s:<12} {scores[q][r]:.4f}{title}")


@main.command()
@_RUN_ARGUMENT
@click.option("--user", "users", multiple=True, metavar="KEY", help="A user's raw key, e.g. a MovieLens user id (repeatable).")
@click.option("--users-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A file of user keys, one per line.")
@click.option("-k", "--k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Items per user.")
@click.option("--include-seen", is_flag=True, help="Keep the user's training items in the ranking.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows (query, rank, item, score, title).")
@_CHECKPOINT_OPTION
@_DEVICE_OPTION
def recommend(
    run: Path, users: tuple[str, ...], users_file: Path | None, k: int, include_seen: bool, as_json: bool,
    checkpoint: Path | None, device: str,
) -> None:
    """Top-K items for users of the trained run RUN (a directory written by `augkit train`)."""
    from augkit.runs import load_run

    asked = [(key, "--user") for key in users] + (_keys_file(users_file) if users_file else [])
    if not asked and users_file:
        raise click.ClickException(f"--users-file {str(users_file)!r} lists no user keys (one per line; # comments)")
    if not asked:
        raise click.UsageError("give --user KEY (repeatable) or --users-file PATH")
    loaded = load_run(run, checkpoint=checkpoint, device=device)
    for key, where in asked:  # each key checked with where it came from, before any work
        loaded.keys.users.index([key], where=where)
    result = loaded.recommend([key for key, _ in asked], k, exclude_seen=not include_seen)
    _print_ranked(result, "user", as_json)


@main.command()
@_RUN_ARGUMENT
@click.option("--item", "items", multiple=True, required=True, metavar="KEY", help="An item's raw key (repeatable).")
@click.option("-k", "--k", "k", default=10, show_default=True, type=click.IntRange(min=1), help="Items per item.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows (query, rank, item, score, title).")
@_CHECKPOINT_OPTION
@_DEVICE_OPTION
def similar(run: Path, items: tuple[str, ...], k: int, as_json: bool, checkpoint: Path | None, device: str) -> None:
    """The K items nearest each --item in the item tower's space (cosine), itself left out."""
    from augkit.runs import load_run

    loaded = load_run(run, checkpoint=checkpoint, device=device)
    _print_ranked(loaded.similar_items(list(items), k), "item", as_json)


@main.command()
@_RUN_ARGUMENT
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory to write.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "npy"]), default="parquet", show_default=True, help="Item embeddings file.")
@click.option("--index", type=click.Choice(["faiss"]), help="Also build an ANN index (needs faiss-cpu).")
@click.option(
    "--index-type", type=click.Choice(["auto", "flat", "ivf", "hnsw"]), default="auto", show_default=True,
    help="FAISS index: auto is flat (exact) up to 100,000 items, else IVF.",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out.")
@_CHECKPOINT_OPTION
@_DEVICE_OPTION
def export(
    run: Path, out: Path, fmt: str, index: str | None, index_type: str, overwrite: bool, checkpoint: Path | None, device: str
) -> None:
    """Export RUN for serving: item embeddings with keys, the towers as torch.export programs
    (loadable without augkit), and optionally a FAISS index with its recall against exact search."""
    from augkit.runs import load_run

    loaded = load_run(run, checkpoint=checkpoint, device=device)
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

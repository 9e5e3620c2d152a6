"""``augkit train``: one run, validated every epoch, tested once, reported; ``--nproc`` runs it
in several processes through torch's launcher."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main as torchrun

from augkit.cli.common import on_existing, settings_from, show_progress_lines
from augkit.distributed import environment_world_size
from augkit.train import dump_config, run_training
from augkit.train.report import monitored_k, summary_line
from augkit.train.rundir import OnExisting

DEFAULT_RUN = {"eval": {"baseline": True}}
"""What ``augkit train`` without a config changes from the defaults: the baseline beside the
model, so that the default report shows what the SSL task does."""


@click.command()
@click.argument("config", required=False, type=click.Path(path_type=Path))
@click.option("--resume", is_flag=True, help="Continue from the run's last checkpoint (may raise --epochs).")
@click.option("--overwrite", is_flag=True, help="Replace the results of an earlier run in the run directory.")
@click.option(
    "--allow-changed-data", is_flag=True,
    help="With --resume: go on even if the run's data files changed since it began (size or content hash).",
)
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
    allow_changed_data: bool,
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
    existing = on_existing(resume, overwrite)
    if allow_changed_data and not resume:  # only a resume checks the data; elsewhere it would be ignored
        raise click.UsageError("--allow-changed-data goes with --resume (a new run records the data as it is)")
    settings = settings_from(
        config, overrides, {"name": name, "epochs": epochs, "seed": seed, "device": device}, without=DEFAULT_RUN
    )
    if print_config:
        click.echo(dump_config(settings), nl=False)
        return
    if nproc is not None and nproc > 1:
        _launch(nproc, config, on_existing=existing, allow_changed_data=allow_changed_data, overrides=overrides, options={
            "name": name, "epochs": epochs, "seed": seed, "device": device,
        })
        return
    show_progress_lines()
    metrics = run_training(settings, on_existing=existing, allow_changed_data=allow_changed_data)
    if os.environ.get("RANK", "0") != "0":
        return
    click.echo(summary_line(metrics, monitored_k(settings), settings.run_dir / "report.md"))


def _launch(
    nproc: int,
    config: Path | None,
    *,
    on_existing: OnExisting,
    allow_changed_data: bool,
    overrides: Sequence[str],
    options: dict[str, Any],
) -> None:
    """``augkit train`` again in `nproc` processes through torch's launcher (``torchrun
    --standalone --nproc-per-node N -m augkit train ...``), with the same arguments."""
    if environment_world_size() > 1:
        raise click.UsageError("--nproc: already running under torchrun; leave --nproc out")
    arguments = ["--standalone", "--nproc-per-node", str(nproc), "-m", "augkit", "train"]
    arguments += [str(config)] if config else []
    arguments += [f"--{on_existing}"] if on_existing != "refuse" else []
    arguments += ["--allow-changed-data"] if allow_changed_data else []
    arguments += [part for override in overrides for part in ("--set", override)]
    arguments += [part for key, value in options.items() if value is not None for part in (f"--{key}", str(value))]
    try:
        torchrun(arguments)
    except ChildFailedError as error:
        failed = ", ".join(f"rank {rank}" for rank in sorted(error.failures))
        raise click.ClickException(f"--nproc {nproc}: {failed} failed (see the errors above)") from None

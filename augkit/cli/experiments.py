"""``augkit compare`` (the fair comparison of the variants) and ``augkit tune`` (an Optuna
study of one variant)."""

from __future__ import annotations

from pathlib import Path

import click

from augkit.cli.common import on_existing, settings_from, show_progress_lines
from augkit.experiments.compare import run_compare
from augkit.experiments.spec import check_tuned, compare_spec, parse_defines, parse_grid, read_tuned_budget
from augkit.experiments.tune import run_tune
from augkit.experiments.variants import VARIANTS
from augkit.train import load_config


def _parse_floats(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        numbers = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 0.1,0.3,1,3, got {value!r}") from None
    if not numbers or any(not n > 0 for n in numbers):
        raise click.BadParameter(f"expected one or more numbers > 0, got {value!r}")
    return numbers


@click.command()
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
    help="Also search config KEY over these values, for every variant (defined ones too) or only VARIANT (repeatable).",
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
@click.option("--overwrite", is_flag=True, help="Replace the results of earlier runs of the comparison, and its page.")
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
    settings = settings_from(config, overrides)
    defined = parse_defines(defines)
    names = [v.strip() for v in variants.split(",")]
    if not all(names):
        raise click.BadParameter(f"an empty variant name in {variants!r}; give names separated by commas", param_hint="--variants")
    names += [name for name in defined if name not in names]
    configs, budgets = {}, {}
    for item in tuned:
        variant, equals, path = item.partition("=")
        if not equals or not variant.strip() or not path.strip():
            raise click.BadParameter(f"expected VARIANT=PATH (e.g. cfm=runs/x-tune-cfm/best.toml), got {item!r}",
                                     param_hint="--tuned")
        configs[variant.strip()] = load_config(path.strip())
        check_tuned(settings, variant.strip(), configs[variant.strip()], path.strip())
        budgets[variant.strip()] = read_tuned_budget(path.strip())
    show_progress_lines()
    spec = compare_spec(
        settings, names, seeds, alphas=alphas, grid=parse_grid(grid, [*VARIANTS, *defined]), tuned=configs,
        defined=defined, targets=targets, tuned_budgets=budgets,
    )
    out = run_compare(spec, on_existing=on_existing(resume, overwrite))
    click.echo((out / "compare.md").read_text(encoding="utf-8"))
    click.echo(f"written to {out}")


@click.command()
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
    settings = settings_from(config, overrides)
    show_progress_lines()
    out = run_tune(settings, variant, trials, on_existing=on_existing(resume, overwrite), timeout=timeout)
    click.echo((out / "tune.md").read_text(encoding="utf-8"))
    click.echo(f"written to {out}")

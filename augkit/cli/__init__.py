"""The ``augkit`` command line: ``augkit plugins | mi | train | compare | tune | data | recommend |
similar | export``.

Each command lives in a module of its own, imported when the command is looked up: ``augkit
--help`` and ``augkit plugins --help`` load no torch, and a command whose plugin is broken
spares the others. The group is the one place where errors become messages (`ErrorBoundary`),
and it applies augkit's thread policy (`augkit.threads.apply`) before a command's module loads
torch.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from augkit import threads
from augkit.errors import AugkitError

DEBUG_ENV = "AUGKIT_DEBUG"
"""Set to 1 to see the traceback of an unexpected error (as ``augkit --traceback``)."""

COMMANDS: dict[str, tuple[str, str]] = {
    "compare": (
        "augkit.cli.experiments",
        "Compare the variants fairly: select each one's candidate on the validation split, test the "
        "chosen ones once over the seeds; write a table with 95% CIs, paired tests and plots.",
    ),
    "data": (
        "augkit.cli.data",
        "Prepare logs of any size for training, out of core: examples with each user's previous items, "
        "and vocabularies or hashed keys.",
    ),
    "export": (
        "augkit.cli.serving",
        "Export RUN for serving: item embeddings with keys, the towers as torch.export programs "
        "(loadable without augkit), and optionally a FAISS index with its recall against exact search.",
    ),
    "mi": ("augkit.cli.mi", "Mutual information between the item features of SOURCE, for correlated feature masking."),
    "plugins": (
        "augkit.cli.plugins",
        "List every registered name with its kind, distribution and version, and load failures.",
    ),
    "recommend": (
        "augkit.cli.serving",
        "Top-K items for users of the trained run RUN (a directory written by `augkit train`).",
    ),
    "similar": (
        "augkit.cli.serving",
        "The K items nearest each --item in the item tower's space (cosine), itself left out.",
    ),
    "train": (
        "augkit.cli.train",
        "Train the two towers with the SSL task; without CONFIG, on the embedded synthetic data with the "
        "baseline (ssl.alpha = 0) trained beside it (eval.baseline = true).",
    ),
    "tune": (
        "augkit.cli.experiments",
        "Tune VARIANT's hyperparameters on the validation split with Optuna (TPE); the study in "
        "runs/<name>-tune-<variant>/study.db; writes best.toml (trains the winner), best.json and plots.",
    ),
}
"""Each command: the module that defines it (a function of the command's name) and its
summary for ``augkit --help``, which must be the command's own first sentence (a test checks)."""


INTERRUPTED: dict[str, str] = {
    "train": "the run continues from its last checkpoint with the same command and --resume",
    "compare": "rerun the same command with --resume: finished runs are reloaded, the others continue from their checkpoints",
    "tune": "continue the study with the same command and --resume",
    "export": "the earlier export in --out (if any) is intact and nothing half-written was left; rerun the command",
    "recommend": "nothing was written; rerun the command",
    "similar": "nothing was written; rerun the command",
}
"""How to go on after Ctrl-C, by command (any other: rerun the command)."""


def interrupted_message(command: str | None) -> str:
    """The one line printed when `command` (``augkit <command>``) is interrupted."""
    what = f"augkit {command}" if command else "augkit"
    return f"{what} interrupted; {INTERRUPTED.get(command or '', 'rerun the command')}"


class _Interrupted(click.ClickException):
    exit_code = 130


class ErrorBoundary(click.Group):
    """The ``augkit`` group: commands imported on first use from `COMMANDS`, and the one place
    where errors become messages: an `AugkitError` (bad input) prints ``Error: <message>`` and
    exits 1; any other exception (a bug) prints one line saying how to see its traceback and
    exits 1; Ctrl-C prints which command was interrupted and how to go on (`INTERRUPTED`) and
    exits 130."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        threads.apply()  # before the command's module loads torch: see augkit.threads
        return getattr(importlib.import_module(COMMANDS[cmd_name][0]), cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands with their summaries, without importing them (as click's own layout)."""
        limit = formatter.width - 6 - max(map(len, COMMANDS))
        rows = [(name, click.utils.make_default_short_help(COMMANDS[name][1], limit)) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except AugkitError as error:
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            raise _Interrupted(interrupted_message(ctx.invoked_subcommand)) from None
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

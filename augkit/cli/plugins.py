"""``augkit plugins``: every registered name and every plugin that failed to load."""

from __future__ import annotations

import json

import click

from augkit.registry import get_registry


@click.command()
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

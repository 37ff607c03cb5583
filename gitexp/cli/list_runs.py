from __future__ import annotations

import click


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (see docs/format.md for the schema).")
def command(as_json: bool) -> None:
    """List runs, newest first."""
    from gitexp import query, render
    from gitexp.store import Store

    from gitexp.cli import warn

    problems: list[str] = []
    runs = query.runs(Store.discover(), problems)
    for problem in problems:
        warn(problem)
    if as_json:
        click.echo(render.to_json([r.to_dict() for r in runs]))
    else:
        click.echo(render.runs_table(runs))

from __future__ import annotations

import click

from gitexp.render import FORMATS


@click.command("list")
@click.option("-w", "--where", "where", metavar="EXPR", help='Only runs matching EXPR, e.g. "metrics.acc > 0.9 and params.lr <= 0.01" (see docs/cli.md).')
@click.option("-s", "--sort", "sort", metavar="[-]KEY[,...]", help="Sort by these columns; a leading '-' sorts descending (default: newest first). Runs missing a key come last.")
@click.option("-l", "--limit", type=click.IntRange(min=1), help="Show at most this many runs.")
@click.option("-c", "--columns", "columns_given", metavar="KEY[,...]", multiple=True, help="Columns to show, e.g. name,params.lr,metrics.acc; repeatable (default: name, created, status, duration, the params that differ between the runs listed, every metric).")
@click.option("--wide", is_flag=True, help="Every param, even those the same in every run, and no column left out for the terminal's width.")
@click.option("--only-changed", is_flag=True, help="Only the params and metrics whose value differs between the runs that have them (a run lacking one is not a difference).")
@click.option("-f", "--format", "output", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format. The table fits the terminal (COLUMNS, else the terminal's width; no limit when not a terminal); CSV and JSON have every param and metric.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json: every run's summary (schema in docs/format.md).")
@click.option("-g", "--group-by", "group_by", metavar="KEY[,...]", help="One row per group of runs sharing these fields (e.g. config, params.lr, sweep): n and each metric's mean ± SEM and min..max (as CSV: a column per metric and statistic). config shows as the params that differ between the groups.")
def command(where: str | None, sort: str | None, limit: int | None, columns_given: tuple[str, ...], wide: bool, only_changed: bool, output: str, as_json: bool, group_by: str | None) -> None:
    """List runs, newest first."""
    import gc

    from gitexp import api, render

    gc.disable()  # a short-lived process: 100,000 summaries make no cycles, and collecting them cost 0.3 s
    from gitexp.cli import output_width, warn

    given = ",".join(columns_given)
    if as_json:
        output = "json"
    width = None if wide or output != "table" else output_width()
    if group_by:
        if given or only_changed:
            raise click.UsageError("--columns and --only-changed do not apply to --group-by (it shows every metric)")
        groups = api.groups(group_by, where, sort, limit)
        for problem in groups.problems:
            warn(problem)
        click.echo(render.groups_text(groups.cores(), list(groups.by), output, width, wide))
        return
    found = api.runs(where, sort, limit)
    for problem in found.problems:
        warn(problem)
    if output == "json" and not given:
        click.echo(render.json_lines(found.to_dicts()))
        return
    runs = found.summaries()
    if not runs and where and output == "table":
        click.echo(f"no runs match: {where}")
        return
    from gitexp import columns, query

    if given:
        chosen = query.parse_columns(given)
    else:  # CSV is complete (every param and metric, unless --only-changed); the table and Markdown show what differs
        chosen = columns.run_columns(runs, wide or output == "csv", only_changed)
    click.echo(render.runs_output(runs, chosen, output, width))

from __future__ import annotations

import click

from gitexp.render import FORMATS


@click.command("list")
@click.option("-w", "--where", "where", metavar="EXPR", help='Only runs matching EXPR, e.g. "metrics.acc > 0.9 and params.lr <= 0.01" (see docs/cli.md).')
@click.option("-s", "--sort", "sort", metavar="[-]KEY[,...]", help="Sort by these columns; a leading '-' sorts descending (default: newest first). Runs missing a key come last.")
@click.option("-l", "--limit", type=click.IntRange(min=1), help="Show at most this many runs.")
@click.option("-c", "--columns", "columns_given", metavar="KEY[,...]", multiple=True, help="Columns to show, e.g. name,params.lr,metrics.acc; repeatable (default: name, created, status, duration, params, metrics).")
@click.option("--only-changed", is_flag=True, help="Hide param and metric columns whose value is the same in every row.")
@click.option("-f", "--format", "output", type=click.Choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json: every run's summary (schema in docs/format.md).")
@click.option("-g", "--group-by", "group_by", metavar="KEY[,...]", help="One row per group of runs sharing these fields (e.g. config, params.lr, sweep): n and each metric's mean ± SEM and min..max (as CSV: a column per metric and statistic).")
def command(where: str | None, sort: str | None, limit: int | None, columns_given: tuple[str, ...], only_changed: bool, output: str, as_json: bool, group_by: str | None) -> None:
    """List runs, newest first."""
    from gitexp import api, render
    from gitexp.cli import warn

    columns = ",".join(columns_given)
    if group_by:
        if columns or only_changed:
            raise click.UsageError("--columns and --only-changed do not apply to --group-by (it shows every metric)")
        groups = api.groups(group_by, where, sort, limit)
        for problem in groups.problems:
            warn(problem)
        click.echo(render.groups_text(groups.cores(), list(groups.by), "json" if as_json else output))
        return
    found = api.runs(where, sort, limit)
    for problem in found.problems:
        warn(problem)
    if (as_json or output == "json") and not columns:
        click.echo(render.json_lines(found.to_dicts()))
        return
    runs = found.summaries()
    if not runs and where and output == "table" and not as_json:
        click.echo(f"no runs match: {where}")
        return
    from gitexp import query

    chosen = query.parse_columns(columns) if columns else render.default_columns(runs, only_changed)
    click.echo(render.runs_output(runs, chosen, "json" if as_json else output))

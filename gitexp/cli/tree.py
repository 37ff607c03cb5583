from __future__ import annotations

import sys

import click

from gitexp.cli import color_option, use_color


@click.command("tree")
@click.argument("run", required=False)
@click.option("-w", "--where", "where", metavar="EXPR", help="Only runs matching EXPR (same language as gitexp list --where).")
@click.option("-m", "--metric", help="The metric shown on each line (default: the first in 'direction:' of .gitexp.yaml, else the first one recorded).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/format.md).")
@color_option
def command(run: str | None, where: str | None, metric: str | None, as_json: bool, color: str) -> None:
    """The evolution tree: runs under the runs they improve upon, grouped by base commit.

    With RUN, only that run's ancestry and descendants.
    """
    from gitexp import config, lineage, query, render
    from gitexp.store import Store

    store = Store.discover(bare_ok=True)
    every = query.runs(store)
    if run is not None:
        groups = lineage.focus(every, query.resolve(store, run))
    else:
        shown = query.select(store, where, None, None, None, every) if where else every
        groups = lineage.build(every, shown)
    metric = metric or query.primary_metric(config.load(store.root), every)
    if as_json:
        click.echo(render.to_json(lineage.to_dict(groups, metric)))
        return
    encoding = (getattr(sys.stdout, "encoding", "") or "").lower().replace("-", "")
    unicode = sys.stdout.isatty() and encoding == "utf8"
    click.echo(render.tree_text(groups, metric, unicode, use_color(color)), color=use_color(color))

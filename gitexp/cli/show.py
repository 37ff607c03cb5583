from __future__ import annotations

import click


@click.command("show")
@click.argument("run", default="latest")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (see docs/format.md for the schema).")
def command(run: str, as_json: bool) -> None:
    """Show everything recorded about RUN (a name, a commit id prefix, or 'latest')."""
    from gitexp import format as fmt
    from gitexp import query, render
    from gitexp.store import Store

    store = Store.discover(bare_ok=True)
    found = query.resolve(store, run)
    details = query.details(store, found)
    if as_json:
        click.echo(render.to_json(details))
        return
    parent_name = query.name_of(store, found.parent) if found.parent else None
    stdout = query.read_log(store, found, fmt.STDOUT_FILE)
    stderr = query.read_log(store, found, fmt.STDERR_FILE)
    from gitexp import series

    curves = series.merge(*(series.parse(query.read_log(store, found, f)) for f in (fmt.STEPS_FILE, fmt.SYSTEM_FILE)))
    click.echo(render.show_text(details, parent_name, stdout, stderr, series.describe(curves, width=30)))

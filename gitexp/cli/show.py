from __future__ import annotations

import click


@click.command("show")
@click.argument("run", default="latest")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (see docs/format.md for the schema).")
def command(run: str, as_json: bool) -> None:
    """Show everything recorded about RUN (a name, a commit id prefix, or 'latest')."""
    from gitexp import api, render, series

    found = api.run(run)
    details = found.details()
    if as_json:
        click.echo(render.to_json(details))
        return
    parent = found.parent_run() if found.parent else None
    curves = {name: list(s.points) for name, s in found.all_series().items()}
    click.echo(render.show_text(details, parent.name if parent else None, found.stdout(), found.stderr(), series.describe(curves, width=30)))

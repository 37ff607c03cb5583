from __future__ import annotations

import click


@click.command("branch")
@click.argument("run")
@click.argument("name")
@click.option("--switch", is_flag=True, help="Also check the run out and put HEAD on the new branch.")
def command(run: str, name: str, switch: bool) -> None:
    """Create branch NAME holding RUN's code (no record files), on RUN's base commit."""
    from gitexp import query, restore
    from gitexp.cli import warn
    from gitexp.store import Store

    store = Store.discover()
    found = query.resolve(store, run)
    commit = restore.branch(store, found, name, switch, warn)
    click.echo(f"created branch {name} at {commit[:10]} with the code of {found.name}" + ("; switched to it" if switch else ""))

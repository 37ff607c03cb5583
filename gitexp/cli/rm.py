from __future__ import annotations

import sys

import click


@click.command("rm")
@click.argument("runs", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def command(runs: tuple[str, ...], yes: bool) -> None:
    """Delete the refs of RUNS (names, id prefixes or 'latest'); 'gitexp gc' then frees their data."""
    from gitexp import query
    from gitexp.errors import GitexpError
    from gitexp.render import inert
    from gitexp.store import Store

    store = Store.discover()
    found = list({r.name: r for r in (query.settled(query.resolve(store, spec)) for spec in runs)}.values())
    names = inert(", ".join(r.name for r in found))
    if not yes:
        if not sys.stdin.isatty():
            raise GitexpError(f"refusing to delete {names} without confirmation (add -y)")
        click.confirm(f"Delete {len(found)} run(s): {names}?", abort=True, err=True)
    for run in found:
        if store.delete_run(run.name, run.commit):
            click.echo(f"deleted {inert(run.name)} ({run.commit[:10]})")
        else:
            click.echo(f"gitexp: {inert(run.name)} changed meanwhile; not deleted", err=True)

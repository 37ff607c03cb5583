from __future__ import annotations

import click


@click.command("rename")
@click.argument("run")
@click.argument("new_name")
def command(run: str, new_name: str) -> None:
    """Give RUN the name NEW_NAME (e.g. to settle a clash with a teammate's run of the same name).

    The run commit is unchanged; only its ref moves, from refs/experiments/OLD to
    refs/experiments/NEW_NAME.
    """
    from gitexp import names, query
    from gitexp.store import Store
    from gitexp.workspace import Pointer, rename_in_pointers

    store = Store.discover()
    found = query.settled(query.resolve(store, run))
    names.validate(new_name)
    store.rename_run(found.name, new_name, found.commit)
    rename_in_pointers(store.state_dir, Pointer(found.name, found.commit), new_name)
    from gitexp.render import inert

    click.echo(f"renamed {inert(found.name)} to {new_name} ({found.commit[:10]})")

from __future__ import annotations

import click


@click.command("alias")
@click.argument("run", required=False)
@click.argument("name", required=False)
@click.option("-d", "--delete", "delete", metavar="NAME", help="Remove the alias NAME.")
def command(run: str | None, name: str | None, delete: str | None) -> None:
    """Point the alias NAME at RUN (moving it from the run that had it); without arguments, list the aliases.

    An alias names its run wherever a run is expected (gitexp get production model.pkl, show, diff...).
    Its history is kept in git: git log refs/notes/gitexp-aliases.
    """
    from gitexp import aliases
    from gitexp.store import Store

    if delete is not None:
        if run or name:
            raise click.UsageError("-d NAME takes no other argument")
        gone = aliases.remove(Store.discover(), delete)
        click.echo(f"removed alias {delete} (was {gone.run} {gone.commit[:10]})")
        return
    if run is None:
        from gitexp.render import inert

        store = Store.discover(bare_ok=True)
        rows = []
        for alias in sorted(aliases.read(store).values(), key=lambda a: a.name):
            now = aliases.find(store, alias.name)
            row = [alias.name, now[0] if now else f"{alias.run} (deleted)", (now[1] if now else alias.commit)[:10]]
            rows.append([inert(cell) for cell in row])  # the alias ref may come from anyone
        if rows:
            from tabulate import tabulate

            click.echo(tabulate(rows, headers=["alias", "run", "commit"], tablefmt="simple", disable_numparse=True))
        return
    if name is None:
        raise click.UsageError("give the alias: gitexp alias RUN NAME")
    from gitexp import query

    store = Store.discover()
    found = query.resolve(store, run)
    previous = aliases.set_alias(store, found, name)
    moved = f" (moved from {previous})" if previous and previous != found.name else ""
    click.echo(f"{name} -> {found.name} {found.commit[:10]}{moved}")

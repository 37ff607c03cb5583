from __future__ import annotations

import click


@click.command("init")
@click.argument("remotes", nargs=-1)
def command(remotes: tuple[str, ...]) -> None:
    """Make plain `git push` and `git fetch` carry runs (refs/experiments/*) and their notes.

    \b
    Adds to each git remote (all by default) a fetch refspec that never
    overwrites a local run, and push refspecs. A remote that had no push
    refspec also gets HEAD, so `git push` still pushes the current branch
    (to the branch of the same name, like push.default=current). Runs named
    saved-* (work in progress saved by checkout) are left out of a plain push.
    Pruning is turned off for the remote (remote.NAME.prune=false) unless set
    for it already: a pruning fetch would delete every run the remote lacks.
    Running it again changes nothing.
    """
    from gitexp import share
    from gitexp.store import Store

    added = share.init(Store.discover(), list(remotes))
    for line in added:
        click.echo(f"added {line}")
    if not added:
        click.echo("already set up; nothing changed")

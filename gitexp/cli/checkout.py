from __future__ import annotations

from pathlib import Path

import click


@click.command("checkout")
@click.argument("run")
@click.option("--into", "into", type=click.Path(file_okay=False, path_type=Path), help="Write the run's files into this new or empty directory instead; the workspace is left alone.")
def command(run: str, into: Path | None) -> None:
    """Make the workspace RUN's: code, params, data and outputs, byte for byte.

    \b
    Uncommitted work that the checkout would overwrite is first saved as a run
    with status 'saved' (gitexp checkout SAVED-RUN gives it back). HEAD moves to
    the run's base commit (its branch when the branch is still there, else
    detached), and the index to that commit, so `git status` shows the run's
    changes. The next `gitexp run` has RUN as its parent.
    """
    from gitexp import query, restore
    from gitexp.cli import warn
    from gitexp.cli.progress import TerminalProgress
    from gitexp.store import Store

    store = Store.discover()
    found = query.resolve(store, run)
    if into is not None:
        count = restore.materialize(store, found, into.resolve())
        click.echo(f"wrote {count} files of {found.name} into {into}")
        return
    result = restore.checkout(store, found, warn, TerminalProgress())
    click.echo(f"checked out {found.name}: {result.written} files written, {result.removed} removed; HEAD {result.head}")

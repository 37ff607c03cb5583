from __future__ import annotations

import click


@click.command("note")
@click.argument("run")
@click.argument("text", required=False)
def command(run: str, text: str | None) -> None:
    """Set the note of RUN to TEXT (what it tried, what you learned); without TEXT, print it.

    Notes live in the notes ref refs/notes/gitexp: the run commit never changes.
    """
    from gitexp import query
    from gitexp.store import Store

    store = Store.discover()
    found = query.resolve(store, run)
    if text is not None:
        found = query.set_note(store, found, text)
    from gitexp.render import inert

    click.echo(inert(found.note, keep="\n"))

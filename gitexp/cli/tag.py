from __future__ import annotations

import click


@click.command("tag")
@click.argument("run")
@click.argument("tags", nargs=-1)
@click.option("-d", "--delete", "remove", multiple=True, metavar="TAG", help="Remove this tag. Repeatable.")
def command(run: str, tags: tuple[str, ...], remove: tuple[str, ...]) -> None:
    """Add TAGS to RUN (or remove some with -d); without TAGS, print its tags.

    Tags live in the notes ref refs/notes/gitexp: the run commit never changes.
    """
    from gitexp import query
    from gitexp.store import Store

    store = Store.discover()
    found = query.resolve(store, run)
    from gitexp.cli import warn

    for tag in remove:
        if tag not in found.tags:
            warn(f"{found.name} has no tag {tag!r}")
    if tags or remove:
        found = query.set_tags(store, found, tags, remove)
    from gitexp.render import inert

    click.echo(inert(" ".join(found.tags)))

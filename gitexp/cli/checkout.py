from __future__ import annotations

import os
from pathlib import Path

import click


@click.command("checkout")
@click.argument("run")
@click.argument("paths", nargs=-1, metavar="[-- PATH...]")
@click.option("--into", "into", type=click.Path(file_okay=False, path_type=Path), help="Write the run's files into this new or empty directory instead; the workspace is left alone.")
def command(run: str, paths: tuple[str, ...], into: Path | None) -> None:
    """Make the workspace RUN's: code, params, data and outputs, byte for byte.

    \b
    Uncommitted work that the checkout would overwrite is first saved as a run
    with status 'saved' (gitexp checkout SAVED-RUN gives it back). HEAD moves to
    the run's base commit (its branch when the branch is still there, else
    detached), and the index to that commit, so `git status` shows the run's
    changes. The next `gitexp run` has RUN as its parent. Files are written as
    git's checkout would (line endings, Git LFS content); a sparse checkout's
    files outside it stay unwritten; submodules move to the run's commits.

    \b
    gitexp checkout RUN -- PATH... writes only the run's files at or under
    those paths (code, data or outputs; relative to the current directory),
    with the same save first; HEAD, the index and the current run stay.
    """
    import gc

    gc.disable()  # a short-lived process that makes no cycles worth collecting: 1.3 ms of a small checkout
    from gitexp import query, restore
    from gitexp.cli import warn
    from gitexp.cli.progress import TerminalProgress
    from gitexp.errors import GitexpError
    from gitexp.store import Store

    store = Store.discover()
    found = query.resolve(store, run)
    if into is not None:
        if paths:
            raise GitexpError("--into writes the whole run; for some of its paths use: gitexp get RUN PATH -o DEST")
        count = restore.materialize(store, found, into.resolve(), notify=warn)
        click.echo(f"wrote {count} files of {found.name} into {into}")
        return
    if paths:
        here = Path.cwd().resolve()
        root = store.root.resolve()
        prefix = os.path.relpath(here, root).replace(os.sep, "/") if here.is_relative_to(root) else "."
        relative = tuple(
            os.path.relpath(p, root) if os.path.isabs(p) else p if prefix == "." else f"{prefix}/{p}" for p in paths
        )
        result = restore.checkout(store, found, warn, TerminalProgress(), paths=relative)
        click.echo(f"restored {result.written} file(s) of {found.name}, {result.removed} removed; HEAD and the index unchanged")
        return
    result = restore.checkout(store, found, warn, TerminalProgress())
    click.echo(f"checked out {found.name}: {result.written} files written, {result.removed} removed; HEAD {result.head}")

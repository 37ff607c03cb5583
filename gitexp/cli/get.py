from __future__ import annotations

from pathlib import Path

import click


@click.command("get")
@click.argument("run")
@click.argument("path")
@click.option("-o", "--output", "dest", metavar="DEST",
              help="Where to write (default: PATH's last component in the current directory; '-': stdout, one file).")
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
def command(run: str, path: str, dest: str | None, force: bool) -> None:
    """Write a file or directory of RUN (code, input, output, large file, artifact) to DEST.

    The workspace, HEAD and index are not touched; works in a bare repository. Data comes from the
    cache, or from the data remote when the cache lacks it, and is verified by its digest: hashed as it
    is copied, or, when the cache stamped the object as hashed in full and its file has not changed
    since (same inode, size, mtime and ctime), copied without hashing it again. 'gitexp fsck' always hashes.
    """
    import sys

    from gitexp import query
    from gitexp.get import check_path, get
    from gitexp.store import Store

    store = Store.discover(bare_ok=True)
    found = query.resolve(store, run)
    if dest == "-":
        get(store, found, path, None, force, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    target = Path(dest) if dest else Path.cwd() / Path(check_path(path)).name
    got = get(store, found, path, target, force, into=dest is not None)
    click.echo(f"wrote {got.dest} ({got.files} file{'s' if got.files != 1 else ''}, {got.size} bytes) from run {found.name}", err=True)

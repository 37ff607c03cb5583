from __future__ import annotations

from pathlib import Path

import click


@click.command("which")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(target: str, as_json: bool) -> None:
    """Which runs used or produced this content? TARGET is a file, a directory or a digest."""
    from gitexp import render
    from gitexp.data.inventory import which
    from gitexp.store import Store

    from gitexp.cli import warn

    problems: list[str] = []
    digest, found = which(Store.discover(bare_ok=True), target, Path.cwd(), problems)
    for problem in problems:
        warn(problem)
    if as_json:
        click.echo(render.to_json({"digest": digest, "uses": [u._asdict() for u in found]}))
        return
    if not found:
        click.echo(f"no run used or produced {digest} as data, output or large file"
                   " (code is in git: git log --all -- PATH)")
        return
    from tabulate import tabulate

    rows = [[render.inert(u.run), u.role, render.inert(u.path), u.commit[:10]] for u in found]
    click.echo(f"content {digest}")
    click.echo(tabulate(rows, headers=["run", "as", "path", "commit"], tablefmt="simple", disable_numparse=True))

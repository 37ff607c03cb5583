from __future__ import annotations

import click


@click.command("trust")
@click.argument("paths", nargs=-1)
@click.option("--remove", is_flag=True, help="Withdraw the consent for PATHS (paths, or data remote destinations).")
def command(paths: tuple[str, ...], remove: bool) -> None:
    """Allow gitexp to read PATHS outside the repository (and all below them), e.g. a mounted dataset that a
    symlinked data path or params file leads to. The consent is kept in this clone only
    (.git/gitexp/trust.json), where no run can write. Without PATHS: list what this clone allows."""
    import os

    from gitexp import trust
    from gitexp.errors import GitexpError
    from gitexp.store import Store

    common = Store.discover().git_common_dir()
    if not paths:
        allowed = trust.trusted(common)
        for path in allowed["paths"]:
            click.echo(f"path\t{path}")
        for remote in allowed["remotes"]:
            click.echo(f"remote\t{remote}")
        return
    for path in paths:
        if remove:
            gone = trust.forget(common, path) or trust.forget(common, os.path.realpath(path))
            click.echo(f"{'no longer trusted' if gone else 'was not trusted'}: {path}")
            continue
        real = os.path.realpath(path)
        if not os.path.exists(real):
            raise GitexpError(f"{path} does not exist (give the directory or file a data path or params file leads to)")
        trust.allow(common, "paths", real)
        click.echo(f"gitexp may now read {real} and everything below it")

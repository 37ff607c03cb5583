from __future__ import annotations

import click


@click.group("remote")
def command() -> None:
    """Data remotes: where data and output bytes are shared (a directory, or s3://, gs://... with gitexp[cloud])."""


@command.command("add")
@click.argument("name")
@click.argument("url")
def add(name: str, url: str) -> None:
    """Add data remote NAME at URL to .gitexp.yaml (commit it to share it with the team)."""
    from gitexp import config
    from gitexp.store import Store

    config.add_remote(Store.discover().root, name, url)
    click.echo(f"added data remote {name}: {url}")


@command.command("list")
def list_() -> None:
    """List the data remotes."""
    from gitexp import config
    from gitexp.store import Store

    for name, url in config.load(Store.discover().root).remotes:
        click.echo(f"{name}\t{url}")

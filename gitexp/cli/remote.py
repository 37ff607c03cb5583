from __future__ import annotations

import click


@click.group("remote")
def command() -> None:
    """Data remotes: where data and output bytes are shared (a directory, or s3://, gs://... with gitexp[cloud])."""


@command.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--local", is_flag=True, help="Keep it in this clone's .git/config instead (not shared, not versioned).")
def add(name: str, url: str, local: bool) -> None:
    """Add data remote NAME at URL to .gitexp.yaml (commit it to share it with the team)."""
    from gitexp import config, names
    from gitexp.store import Store

    store = Store.discover()
    if local:
        names.validate(name)
        store.set_local_data_remote(name, url)
        click.echo(f"added local data remote {name}: {url}")
        return
    config.add_remote(store.root, name, url)
    click.echo(f"added data remote {name}: {url}")


@command.command("list")
def list_() -> None:
    """List the data remotes."""
    from gitexp.share import data_remotes
    from gitexp.store import Store

    for name, url in data_remotes(Store.discover()).items():
        click.echo(f"{name}\t{url}")

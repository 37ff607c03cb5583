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
    """Add data remote NAME at URL to .gitexp.yaml (commit it to share it with the team); this clone trusts it."""
    from gitexp import config, names, trust
    from gitexp.store import Store

    store = Store.discover()
    if local:
        names.validate(name)
        store.set_local_data_remote(name, url)
        click.echo(f"added local data remote {name}: {url}")
        return
    config.add_remote(store.root, name, url)
    trust.allow(store.git_common_dir(), "remotes", trust.destination(url, store.root))  # the user typed it
    click.echo(f"added data remote {name}: {url}")


@command.command("trust")
@click.argument("name")
def trust_(name: str) -> None:
    """Allow gitexp push to send data to data remote NAME of .gitexp.yaml (a consent kept in this clone only)."""
    from gitexp import trust
    from gitexp.errors import GitexpError
    from gitexp.share import data_remotes
    from gitexp.store import Store

    store = Store.discover()
    remotes = data_remotes(store)
    if name not in remotes:
        raise GitexpError(f"no data remote named {name!r} (see: gitexp remote list)")
    where = trust.destination(remotes[name], store.root)
    trust.allow(store.git_common_dir(), "remotes", where)
    click.echo(f"gitexp push may now send data to {name} ({where})")


@command.command("list")
def list_() -> None:
    """List the data remotes (untrusted: named in .gitexp.yaml, not yet allowed by this clone)."""
    from gitexp import trust
    from gitexp.render import inert
    from gitexp.share import data_remotes
    from gitexp.store import Store

    store = Store.discover()
    local = store.local_data_remotes()
    allowed = trust.trusted(store.git_common_dir())["remotes"]
    for name, url in data_remotes(store).items():
        ok = name in local or trust.destination(url, store.root) in allowed
        shown = inert(name)  # .gitexp.yaml may come from a checked-out run
        click.echo(f"{shown}\t{inert(url)}" + ("" if ok else f"\t(untrusted: gitexp remote trust {shown})"))

from __future__ import annotations

from pathlib import Path

import click


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), help="Where to create the demo repo (default: a new temp dir).")
def command(directory: Path | None) -> None:
    """Create a throw-away repo with a tiny training script, record three runs, list and show them."""
    from gitexp import format as fmt
    from gitexp import query, render
    from gitexp.demo import run_demo
    from gitexp.store import Store

    root, results = run_demo(directory, say=lambda msg: click.echo(msg if msg.startswith(("\n", "$", "#", "demo")) else f"gitexp: {msg}", err=False))
    store = Store.discover(root)
    click.echo("\n$ gitexp list")
    click.echo(render.runs_table(query.runs(store)))
    last = results[-1].run
    click.echo(f"\n$ gitexp show {last.name}")
    found = query.resolve(store, last.name)
    parent = query.name_of(store, found.parent) if found.parent else None
    click.echo(render.show_text(query.details(store, found), parent, query.read_log(store, found, fmt.STDOUT_FILE), b""))
    click.echo(f"\n$ git log --oneline refs/experiments/{last.name}")
    for line in store.log_oneline(found.commit, 5):
        click.echo(line)
    click.echo(f"\nExplore it yourself:  cd {root} && gitexp list")

from __future__ import annotations

import click

from gitexp.cli import color_option, use_color


@click.command("diff")
@click.argument("run_a")
@click.argument("run_b", default="latest")
@click.option("--code", "code", is_flag=True, help="Print the code diff (like git diff, without the record files).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/format.md).")
@color_option
def command(run_a: str, run_b: str, code: bool, as_json: bool, color: str) -> None:
    """What changed from RUN_A to RUN_B: params, metrics (with deltas), data, environment, code."""
    from gitexp import compare, config, query, render
    from gitexp.store import Store

    store = Store.discover()
    a, b = query.resolve(store, run_a), query.resolve(store, run_b)
    if code:
        click.echo(compare.code_patch(store, a, b), nl=False)
        return
    result = compare.diff(store, config.load(store.root), a, b)
    if as_json:
        click.echo(render.to_json(result.to_dict()))
    else:
        click.echo(render.diff_text(result, use_color(color)), color=use_color(color))

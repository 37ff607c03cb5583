from __future__ import annotations

import click

from gitexp.cli import color_option, use_color


@click.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--only-changed", is_flag=True, help="Show only the params and metrics that differ.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/format.md).")
@color_option
def command(runs: tuple[str, ...], only_changed: bool, as_json: bool, color: str) -> None:
    """Params and metrics of RUNS side by side; each metric's best value is marked."""
    from gitexp import compare, config, query, render
    from gitexp.store import Store

    store = Store.discover()
    found = [query.resolve(store, spec) for spec in runs]
    rows = compare.compare_table(found, only_changed)
    best = compare.best_columns(config.load(store.root), rows)
    if as_json:
        click.echo(render.to_json({
            "runs": [{"name": r.name, "commit": r.commit} for r in found],
            "rows": [{"key": key, "values": values, "best": best.get(key)} for key, values in rows],
        }))
    else:
        click.echo(render.compare_text(found, rows, best, use_color(color)), color=use_color(color))

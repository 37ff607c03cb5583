from __future__ import annotations

import click

from gitexp.cli import color_option, use_color


@click.command("compare")
@click.argument("runs", nargs=-1, required=True)
@click.option("--only-changed", is_flag=True, help="Show only the params and metrics that differ.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/format.md).")
@click.option("-g", "--groups", is_flag=True, help="RUNS are --where expressions, each a group of runs: each group's metrics (mean ± SEM) against the first's, with Welch's t-test.")
@color_option
def command(runs: tuple[str, ...], only_changed: bool, as_json: bool, groups: bool, color: str) -> None:
    """Params and metrics of RUNS side by side; each metric's best value is marked."""
    from gitexp import compare, config, query, render
    from gitexp.store import Store

    store = Store.discover(bare_ok=True)
    if groups:
        from gitexp.grouping import selected, tests

        if len(runs) < 2:
            raise click.UsageError("give two groups or more (each a --where expression)")
        found_groups = selected(store, runs)
        cfg = config.load(store.root)
        pairs = [(runs[i], found_groups[i], tests(cfg, found_groups[0], found_groups[i])) for i in range(1, len(runs))]
        if as_json:
            click.echo(render.to_json({
                "groups": [g.to_dict() for g in found_groups],
                "against_first": [{"where": e, "metrics": [r.to_dict() for r in res]} for e, _, res in pairs],
            }))
            return
        base = (runs[0], len(found_groups[0].runs))
        texts = [render.group_tests_text((base[0], e), (base[1], len(g.runs)), res, use_color(color)) for e, g, res in pairs]
        click.echo("\n\n".join(texts), color=use_color(color))
        return
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

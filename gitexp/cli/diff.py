from __future__ import annotations

import click

from gitexp.cli import color_option, use_color, warn


@click.command("diff")
@click.argument("run_a")
@click.argument("run_b", default="latest")
@click.option("--code", "code", is_flag=True, help="Print the code diff (like git diff, without the record files and metrics files).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/format.md).")
@click.option("-g", "--groups", is_flag=True, help="RUN_A and RUN_B are --where expressions, each selecting a group of runs (repeats): compare their metrics' means with Welch's t-test.")
@color_option
def command(run_a: str, run_b: str, code: bool, as_json: bool, groups: bool, color: str) -> None:
    """What changed from RUN_A to RUN_B: params, metrics (with deltas), data, environment, code.

    With --groups: is group B better than group A beyond noise? e.g.
    gitexp diff -g "params.lr = 0.1" "params.lr = 0.01"
    """
    from gitexp import compare, config, query, render
    from gitexp.store import Store

    store = Store.discover(bare_ok=True)
    if groups:
        from gitexp.grouping import overlap, selected, tests

        group_a, group_b = selected(store, (run_a, run_b))
        shared = overlap([group_a, group_b])
        if shared:
            warn(f"{len(shared)} run(s) are in both groups ({', '.join(shared[:3])}...): the test assumes they are apart")
        results = tests(config.load(store.root), group_a, group_b)
        if as_json:
            click.echo(render.to_json({"a": group_a.to_dict(), "b": group_b.to_dict(), "metrics": [r.to_dict() for r in results]}))
        else:
            sizes = (len(group_a.runs), len(group_b.runs))
            click.echo(render.group_tests_text((run_a, run_b), sizes, results, use_color(color)), color=use_color(color))
        return
    a, b = query.resolve(store, run_a), query.resolve(store, run_b)
    settings = config.load(store.root)
    if code:
        click.echo(compare.code_patch(store, settings, a, b), nl=False)
        return
    result = compare.diff(store, settings, a, b)
    if as_json:
        click.echo(render.to_json(result.to_dict()))
    else:
        click.echo(render.diff_text(result, use_color(color)), color=use_color(color))

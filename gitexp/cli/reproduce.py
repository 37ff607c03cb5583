from __future__ import annotations

import click

from gitexp.cli import color_option, use_color


@click.command("reproduce")
@click.argument("run")
@click.option("--rtol", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Relative tolerance for metrics to count as reproduced (0: exactly equal).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/format.md).")
@color_option
def command(run: str, rtol: float, as_json: bool, color: str) -> int:
    """Re-run RUN on its recorded code, params and input data in an isolated copy; compare the metrics.

    The result is recorded as a new run (tag 'reproduction') whose parent is RUN.
    Exits 0 when every metric matches within --rtol, 1 when one differs, or the
    command's own exit code when it failed.
    """
    from gitexp import query, render
    from gitexp.cli import warn
    from gitexp.cli.progress import TerminalProgress
    from gitexp.reproduce import reproduce
    from gitexp.store import Store

    store = Store.discover()
    result = reproduce(store, query.resolve(store, run), rtol, warn, TerminalProgress())
    for change in result.env_changes:
        warn(f"environment differs from the original: {change}")
    if as_json:
        click.echo(render.to_json(result.to_dict()))
    else:
        click.echo(render.reproduction_text(result, use_color(color)), color=use_color(color))
    if result.result.exit_code != 0:
        return result.result.exit_code
    return 0 if result.matches else 1

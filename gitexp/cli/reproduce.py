from __future__ import annotations

import sys

import click

from gitexp.cli import color_option, use_color


@click.command("reproduce")
@click.argument("run")
@click.option("--rtol", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Relative tolerance for metrics to count as reproduced (0: exactly equal).")
@click.option("--yes", "-y", "yes", is_flag=True, help="Run the command of a run someone else recorded without asking (needed when stdin is not a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in docs/format.md).")
@color_option
def command(run: str, rtol: float, yes: bool, as_json: bool, color: str) -> int:
    """Re-run RUN on its recorded code, params and input data in an isolated copy; compare the metrics.

    The result is recorded as a new run (tag 'reproduction') whose parent is RUN.
    Exits 0 when every metric matches within --rtol, 1 when one differs, or the
    command's own exit code when it failed. A run recorded by someone else (its
    author is not your git user.email) runs their command on your machine: it is
    shown first and run only once you confirm, or with --yes.
    """
    from gitexp import query, render
    from gitexp.cli import warn
    from gitexp.cli.progress import TerminalProgress
    from gitexp.errors import GitexpError
    from gitexp.reproduce import Recipe, reproduce
    from gitexp.render import inert
    from gitexp.store import Store

    store = Store.discover()
    found = query.resolve(store, run)

    def approve(recipe: Recipe) -> None:
        if recipe.stranger is None or yes:
            return
        what = f"run {inert(found.name)} was recorded by {inert(recipe.stranger)}; reproducing it runs: {recipe.shown()}"
        if not sys.stdin.isatty():
            raise GitexpError(f"{what} -- stdin is not a terminal to confirm it: pass --yes to run it; nothing was run")
        warn(what)
        if not click.confirm("gitexp: run this command?", default=False, err=True):
            raise GitexpError("not confirmed; nothing was run")

    result = reproduce(store, found, rtol, warn, approve, TerminalProgress())
    for change in result.env_changes:
        warn(f"environment differs from the original: {change}")
    if as_json:
        click.echo(render.to_json(result.to_dict()))
    else:
        click.echo(render.reproduction_text(result, use_color(color)), color=use_color(color))
    if result.result.exit_code != 0:
        return result.result.exit_code
    return 0 if result.matches else 1

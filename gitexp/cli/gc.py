from __future__ import annotations

import click


@click.command("gc")
@click.option("--min-age", default=3600.0, show_default=True, metavar="SECONDS", help="Keep unreferenced objects younger than this (a run in progress may be about to point at them).")
@click.option("--now", is_flag=True, help="Same as --min-age 0.")
@click.option("-n", "--dry-run", is_flag=True, help="Only report what would be freed.")
def command(min_age: float, now: bool, dry_run: bool) -> None:
    """Free cache objects that no run refers to."""
    from gitexp.data.upkeep import gc
    from gitexp.render import size
    from gitexp.store import Store

    from gitexp.cli import warn

    report = gc(Store.discover(), 0.0 if now else min_age, dry_run)
    for problem in report.problems:
        warn(problem + " (every object its record mentions is kept)")
    verb = "would free" if dry_run else "freed"
    click.echo(
        f"{verb} {report.deleted} object(s), {size(report.freed_bytes)}; kept {report.kept} referenced"
        + (f" and {report.kept_recent} recent unreferenced (see --min-age)" if report.kept_recent else "")
    )

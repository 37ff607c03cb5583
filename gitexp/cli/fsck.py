from __future__ import annotations

import click


@click.command("fsck")
@click.option("--repair", is_flag=True, help="Move corrupt objects to .git/gitexp/cache/corrupt/; then 'gitexp pull' or a re-run stores good copies.")
def command(repair: bool) -> int:
    """Verify the data cache: every object hashes to its name; list cached content runs miss."""
    from gitexp import render
    from gitexp.data.upkeep import fsck
    from gitexp.store import Store

    from gitexp.cli import warn

    report = fsck(Store.discover(), repair)
    for problem in report.problems:
        warn(problem)
    for digest in report.corrupt:
        fate = "moved to .git/gitexp/cache/corrupt/" if repair else "never used; set it aside with --repair"
        click.echo(f"corrupt: {digest} (bytes do not match the digest; {fate})")
    for missing in report.missing:
        click.echo(render.missing_object(missing))
    click.echo(f"checked {report.checked} object(s): {len(report.corrupt)} corrupt, {len(report.missing)} missing")
    return 1 if report.corrupt or report.missing or report.problems else 0

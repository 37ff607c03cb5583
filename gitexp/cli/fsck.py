from __future__ import annotations

import click


@click.command("fsck")
def command() -> int:
    """Verify the data cache: every object hashes to its name; list cached content runs miss."""
    from gitexp.data.inventory import fsck
    from gitexp.store import Store

    report = fsck(Store.discover())
    for digest in report.corrupt:
        click.echo(f"corrupt: {digest} (bytes do not match the digest; the object is never used)")
    for use in report.missing:
        click.echo(f"missing: {use.digest} {use.path} ({use.role} of run {use.run})")
    click.echo(f"checked {report.checked} object(s): {len(report.corrupt)} corrupt, {len(report.missing)} missing")
    return 1 if report.corrupt or report.missing else 0

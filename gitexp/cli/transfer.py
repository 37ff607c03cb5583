"""`gitexp push` and `gitexp pull`: one module, since they are mirror images."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from gitexp.share import ShareReport


def _report(report: ShareReport, verb: str) -> int:
    from gitexp.cli import warn
    from gitexp.render import size

    rejected = report.rejected
    data = report.data
    click.echo(f"{verb} {len(report.refs)} ref(s)" + (f"; {len(rejected)} rejected" if rejected else ""))
    if report.handed_over:
        click.echo(f"handed {len(report.handed_over)} queued run(s) over to the remote's queue "
                   "(workers run them with: gitexp queue work --remote REMOTE)")
    for line in rejected:
        warn(f"rejected {line}")
    for line in report.warnings:
        warn(line)
    if data is not None:
        click.echo(
            f"data ({report.data_remote}): {data.sent} object(s), {size(data.sent_bytes)} transferred; "
            f"{data.skipped} already there"
        )
        for digest in data.repaired:
            warn(f"object {digest} was damaged on the data remote and has been sent again")
        for digest in data.rejected:
            warn(f"object {digest} did not match its digest and was rejected")
        for digest in data.missing:
            warn(f"object {digest} is not available at the source")
    return 1 if rejected or (data is not None and (data.rejected or data.missing)) else 0


@click.command("push")
@click.argument("remote", default="origin")
@click.argument("runs", nargs=-1)
@click.option("--data-remote", metavar="NAME", help="The data remote (default: the only one configured, or the one named like REMOTE).")
@click.option("--verify-remote", is_flag=True, help="Also re-hash the objects the data remote already has, and replace damaged ones.")
@click.option("--include-saved", is_flag=True, help="Also push runs with status saved when pushing all runs.")
def push(remote: str, runs: tuple[str, ...], data_remote: str | None, verify_remote: bool, include_saved: bool) -> int:
    """Push RUNS (all by default) and their notes to git REMOTE, and their data to the data remote.

    All runs means all finished ones except those with status saved (work in
    progress gitexp saved before a checkout): name them, or add --include-saved.
    Queued runs (and their inputs) are handed over to REMOTE's queue, for workers
    started with `gitexp queue work --remote REMOTE`; here they leave the local queue.
    """
    from gitexp import query, share
    from gitexp.cli.progress import TerminalProgress
    from gitexp.store import Store

    store = Store.discover()
    names = [query.resolve(store, r).name for r in runs]
    report = share.push(store, remote, names, data_remote, TerminalProgress(), verify_remote, include_saved)
    return _report(report, "pushed")


@click.command("pull")
@click.argument("remote", default="origin")
@click.argument("runs", nargs=-1)
@click.option("--data-remote", metavar="NAME", help="The data remote (default: the only one configured, or the one named like REMOTE).")
@click.option("--no-data", is_flag=True, help="Fetch the runs only, not their data.")
def pull(remote: str, runs: tuple[str, ...], data_remote: str | None, no_data: bool) -> int:
    """Fetch RUNS (all by default) and notes from git REMOTE, and the data needed to check them out."""
    from gitexp import share
    from gitexp.cli.progress import TerminalProgress
    from gitexp.names import validate
    from gitexp.store import Store

    for name in runs:
        validate(name)
    report = share.pull(Store.discover(), remote, list(runs), data_remote, TerminalProgress(), data=not no_data)
    return _report(report, "fetched")

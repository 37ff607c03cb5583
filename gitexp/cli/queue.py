from __future__ import annotations

import click

from gitexp.cli import warn


@click.group("queue")
def command() -> None:
    """Runs waiting in the queue (gitexp run --queue): start workers, see them, cancel them."""


@command.command("start")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, metavar="N", help="Runs at a time.")
@click.option("--fail-fast", is_flag=True, help="Start no more runs after one fails.")
@click.option("--gpus-per-run", type=click.IntRange(min=0), metavar="K", help="With -j: GPUs each parallel run gets in CUDA_VISIBLE_DEVICES (default 1 when GPUs are visible; 0: leave it). Each also gets its share of the cores in OMP_NUM_THREADS & co unless set.")
@click.argument("runs", nargs=-1)
def start(jobs: int, fail_fast: bool, gpus_per_run: int | None, runs: tuple[str, ...]) -> int:
    """Work off the queue (or only RUNS), N runs at a time, each in a temporary copy of its code; until it is empty.

    Runs queued meanwhile are run too. Ctrl-C stops the runs in progress (recorded as
    interrupted); the runs not started stay queued. A queued run someone else recorded (a
    fetched one) is run only when named: its command is theirs.
    """
    from gitexp import queue
    from gitexp.render import batch_summary
    from gitexp.store import Store

    store = Store.discover()
    queue.remove_stale_worktrees()
    waiting = [queue.queued_run(store, spec) for spec in runs] if runs else queue.queued(store)
    if not waiting:
        warn("the queue is empty (queue runs with: gitexp run --queue ...)")
        return 0
    warn(f"{len(waiting)} queued run(s), {jobs} at a time")
    try:
        outcomes = queue.work(store, [r.name for r in waiting] if runs else None, jobs, fail_fast, warn, gpus_per_run, keep_rest=True)
    except queue.Stopped as stop:
        from gitexp.cli.batch import stopped

        return stopped(stop, f"{len(queue.queued(store))} run(s) stay queued (start them with: gitexp queue start)")
    store.pack_refs_if_many()  # each run finished rewrote its ref as a loose file
    click.echo(batch_summary(outcomes), err=True)
    return queue.exit_code(outcomes)


@command.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the queued and running runs.")
def status(as_json: bool) -> None:
    """The runs queued (oldest first, the next to start on top) and those running."""
    from gitexp import query, render
    from gitexp.store import Store

    store = Store.discover()
    found = [r for r in reversed(query.runs(store)) if r.status in ("queued", "running")]
    if as_json:
        click.echo(render.to_json([r.to_dict() for r in found]))
        return
    if not found:
        click.echo("nothing queued or running")
        return
    click.echo(render.runs_output(found, ["name", "status", "created", "sweep"], "table"))


@command.command("cancel")
@click.argument("runs", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Cancel every queued run.")
@click.option("--sweep", "sweep_id", metavar="ID", help="Cancel the queued runs of this sweep.")
def cancel(runs: tuple[str, ...], everything: bool, sweep_id: str | None) -> None:
    """Remove queued runs (never a run that started)."""
    from gitexp import queue
    from gitexp.store import Store

    store = Store.discover()
    if bool(runs) + everything + (sweep_id is not None) != 1:
        raise click.UsageError("name the runs, or give --all, or --sweep ID")
    names = list(runs) or [r.name for r in queue.queued(store) if everything or r.sweep.get("id") == sweep_id]
    done = queue.cancel(store, names)
    click.echo(f"cancelled {len(done)} queued run(s)" + (f": {', '.join(done)}" if done else ""))


@command.command("serve", hidden=True)
@click.option("--events-fd", type=int, required=True)
def serve(events_fd: int) -> None:
    """A worker of `queue start` and `run -j`: runs the queued runs named on stdin, one per line."""
    import os
    import sys

    from gitexp import queue
    from gitexp.store import Store

    with os.fdopen(events_fd, "wb") as events:
        queue.serve(Store.discover(), sys.stdin, events, warn)

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

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
    click.echo(batch_summary(outcomes), err=True)
    return queue.exit_code(outcomes)


@command.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the queued and running runs.")
@click.option("--remote", metavar="REMOTE", help="The queue of this git remote instead: queued, running (worker, lease left) and crashed runs.")
def status(as_json: bool, remote: str | None) -> None:
    """The runs queued (oldest first, the next to start on top) and those running."""
    from gitexp import query, render
    from gitexp.store import Store

    store = Store.discover()
    if remote is not None:
        _remote_status(store, remote, as_json)
        return
    found = [r for r in reversed(query.runs(store)) if r.status in ("queued", "running")]
    if as_json:
        click.echo(render.to_json([r.to_dict() for r in found]))
        return
    from gitexp.format import QUEUE_PREFIX

    handed = len(store.refs_under(QUEUE_PREFIX))
    if handed:
        warn(f"{handed} run(s) were handed over to a remote's queue (gitexp push): see them with gitexp queue status --remote REMOTE")
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


@command.command("work")
@click.option("--remote", "remote", required=True, metavar="REMOTE", help="The git remote (name or URL) whose queue to work off: runs handed over with gitexp push.")
@click.option("--idle-exit", type=click.FloatRange(min=0), metavar="S", help="End once the remote's queue has had nothing to claim for S seconds (0: as soon as it has none). Default: keep waiting.")
@click.option("--lease", type=click.FloatRange(min=1), default=300, show_default=True, metavar="S", help="Seconds a claim holds without renewal; renewed every S/5 while the run is alive. A claim whose lease ended is recorded as crashed by the next worker.")
@click.option("--retry-crashed", type=click.IntRange(min=0), default=0, show_default=True, metavar="N", help="Queue a crashed run again, as NAME-attemptK, up to N times.")
@click.option("--data-remote", metavar="NAME", help="The data remote for inputs and outputs (default: the only one configured, or the one named like REMOTE).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON at the end: the outcome of each run this worker ran.")
def work(remote: str, idle_exit: float | None, lease: float, retry_crashed: int, data_remote: str | None, as_json: bool) -> int:
    """Run the queued runs of a git remote, one at a time, in a temporary repository of this worker's own.

    Start any number of workers, anywhere (each in a clone that can reach REMOTE: a
    Slurm array, Ray or Dask tasks): each run is claimed by a compare-and-swap push, so it
    runs exactly once; its final commit goes to REMOTE, its outputs to the data remote. A
    remote that cannot be reached ends the worker (exit 1), leaving its run to its lease.
    SIGTERM or Ctrl-C records the run in progress as interrupted and ends the worker.
    """
    from gitexp import remote_queue
    from gitexp.queue import Stopped, exit_code
    from gitexp.render import batch_summary, to_json
    from gitexp.store import Store

    options = remote_queue.Options(remote, idle_exit, lease, retry_crashed, data_remote)
    try:
        with _stdout_to_stderr(as_json):  # the runs' output must not mix with the JSON
            outcomes = remote_queue.work(Store.discover(), options, warn)
    except Stopped as stop:
        from gitexp.cli.batch import stopped

        if as_json:
            click.echo(to_json([o.__dict__ for o in stop.outcomes]))
        return stopped(stop, "the queued runs not started stay on the remote")
    if as_json:
        click.echo(to_json([o.__dict__ for o in outcomes]))
    else:
        click.echo(batch_summary(outcomes), err=True)
    return exit_code(outcomes)


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """While active: what is written to stdout (file descriptor 1, so child processes too) goes to stderr."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _remote_status(store: object, remote: str, as_json: bool) -> None:
    import time

    from gitexp import remote_queue, render
    from gitexp.store import Store

    assert isinstance(store, Store)
    found, problems = remote_queue.status(store, remote)
    for line in problems:
        warn(line)
    if as_json:
        click.echo(remote_queue.to_json(found))
        return
    if not found:
        click.echo(f"nothing queued or running on {remote}")
        return
    now = time.time()
    rows = [[render.inert(cell) for cell in remote_queue.describe(e, now)] for e in found]
    click.echo(render.aligned(["name", "status", "attempt", "worker", "lease left", "overrides"], rows))

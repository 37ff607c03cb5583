"""The sweep side of `gitexp run`: several runs in place, in parallel worktrees, or queued."""

from __future__ import annotations

import click

from gitexp.cli import warn
from gitexp.recorder import RunRequest
from gitexp.sweep import Plan


def run_batch(request: RunRequest, sweep: Plan, jobs: int | None, to_queue: bool, fail_fast: bool) -> int:
    from gitexp import queue
    from gitexp.cli.progress import TerminalProgress
    from gitexp.recorder import record_run
    from gitexp.render import batch_summary
    from gitexp.store import Store

    said: set[str] = set()

    def notify(message: str) -> None:  # a sweep would repeat the same warning for each of its runs
        if message not in said:
            said.add(message)
            warn(message)

    requests = queue.requests_for(request, sweep)
    if sweep.id:
        how = "queued" if to_queue else (f"{jobs} at a time" if jobs else "one after another")
        warn(f"sweep {sweep.id}: {len(requests)} runs, {how} (find them with: gitexp list --where 'sweep = {sweep.id}')")
    if to_queue:
        names = [r.name for r in queue.enqueue(requests, notify)]
        warn(f"queued {', '.join(names)}; start them with: gitexp queue start -j N")
        return 0
    if jobs is None:
        outcomes = queue.run_in_place(requests, fail_fast, warn, lambda r: record_run(r, notify, TerminalProgress()))
    else:
        names = [r.name for r in queue.enqueue(requests, notify)]
        try:
            outcomes = queue.work(Store.discover(request.cwd), names, jobs, fail_fast, warn)
        except queue.Terminated as stop:
            warn(f"stopped by signal {stop.signum}: the runs in progress were recorded as interrupted, the rest cancelled")
            return 128 + stop.signum
    click.echo(batch_summary(outcomes), err=True)
    return queue.exit_code(outcomes)

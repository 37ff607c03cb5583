"""The sweep side of `gitexp run`: several runs in place, in parallel worktrees, or queued."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gitexp.cli import warn
from gitexp.recorder import RunRequest
from gitexp.sweep import Plan

if TYPE_CHECKING:
    from gitexp.queue import Stopped
    from gitexp.search import Spec


def run_batch(
    request: RunRequest, sweep: Plan, jobs: int | None, to_queue: bool, fail_fast: bool, gpus_per_run: int | None = None
) -> int:
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
    for key in _list_params_swept(request, sweep):
        warn(f"-S {key}=...: {key} is a list in your params; the sweep sets it to each value in turn "
             "(-S sets single values: to change the list itself, edit the params file)")
    if sweep.id:
        how = "queued" if to_queue else (f"{jobs} at a time" if jobs else "one after another")
        warn(f"sweep {sweep.id}: {len(requests)} runs, {how} (find them with: gitexp list --where 'sweep = {sweep.id}')")
    if to_queue:
        names = [r.name for r in queue.enqueue(requests, notify)]
        Store.discover(request.cwd).pack_refs_if_many()  # a large sweep leaves one loose file per run
        warn(f"queued {', '.join(names)}; start them with: gitexp queue start -j N")
        return 0
    if jobs is None:
        outcomes = queue.run_in_place(requests, fail_fast, warn, lambda r: record_run(r, notify, TerminalProgress()))
    else:
        names = [r.name for r in queue.enqueue(requests, notify)]
        try:
            outcomes = queue.work(Store.discover(request.cwd), names, jobs, fail_fast, warn, gpus_per_run)
        except queue.Stopped as stop:
            return stopped(stop, "the rest cancelled")
    Store.discover(request.cwd).pack_refs_if_many()
    click.echo(batch_summary(outcomes), err=True)
    return queue.exit_code(outcomes)


def stopped(stop: Stopped, rest: str) -> int:
    """After Ctrl-C, SIGTERM or SIGHUP: how each run ended, what became of the rest; 128 + the signal."""
    import signal

    from gitexp.render import batch_summary

    click.echo(batch_summary(stop.outcomes), err=True)
    how = "Ctrl-C" if stop.signum == signal.SIGINT else signal.Signals(stop.signum).name
    warn(f"stopped by {how}: the runs in progress were recorded as interrupted; {rest}")
    return 128 + stop.signum


def _list_params_swept(request: RunRequest, sweep: Plan) -> list[str]:
    """Keys swept over several values whose value in the params files is a list or a mapping (a likely mistake)."""
    from gitexp import config, paramfiles
    from gitexp.errors import GitexpError
    from gitexp.store import Store

    keys = {o.partition("=")[0] for run in sweep.runs for o in run.overrides}
    swept = [k for k in keys if len({o for run in sweep.runs for o in run.overrides if o.startswith(k + "=")}) > 1]
    if not swept:
        return []
    try:
        root = Store.discover(request.cwd).root
        files = paramfiles.load_files(root, config.load(root).params, required=False)
        params = paramfiles.flatten(paramfiles.effective(files, []).params)
    except GitexpError:
        return []  # reported properly when the runs start
    return sorted(k for k in swept if isinstance(params.get(k), (list, dict)))


def run_search(request: RunRequest, spec: Spec) -> int:
    """`gitexp run --optuna N`: the search, then each trial's run and the best one."""
    from gitexp import queue, search
    from gitexp.render import aligned, inert, value

    try:
        result = search.search(request, spec, warn)
    except queue.Stopped as stop:
        return stopped(stop, "no further trials were started")
    rows = [[t.name, _state(t), value(t.value), " ".join(t.overrides)] for t in result.trials]
    counts = {s: sum(t.state == s for t in result.trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    head = (f"{len(result.trials)} trial(s) of sweep {result.sweep_id}: {counts['COMPLETE']} completed, "
            f"{counts['PRUNED']} pruned, {counts['FAIL']} failed")
    if result.resumed:
        head += f" (after {result.resumed} earlier)"
    click.echo(head + "\n" + aligned(["name", "state", spec.metric, "overrides"], rows), err=True)
    best = result.best
    if best is not None:
        warn(f"best: {best.name} with {inert(spec.metric)} = {best.value:g} ({', '.join(best.overrides)})")
    else:
        warn(f"no trial recorded a number for {inert(spec.metric)}")
    return search.exit_code(result)


def _state(trial: Any) -> str:
    if trial.state == "COMPLETE":
        return "completed"
    if trial.state == "PRUNED":
        return "pruned"
    return "no value" if trial.status == "completed" else trial.status

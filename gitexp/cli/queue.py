from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from gitexp.cli import warn

if TYPE_CHECKING:
    from gitexp.launch import Tasks, WorkerOptions


@click.group("queue")
def command() -> None:
    """Runs waiting in the queue (gitexp run --queue): start workers, see them, cancel them."""


@command.command("start")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, metavar="N", help="Runs at a time; with --ray/--dask: workers (engine tasks).")
@click.option("--fail-fast", is_flag=True, help="Start no more runs after one fails.")
@click.option("--gpus-per-run", type=click.IntRange(min=0), metavar="K", help="With -j: GPUs each parallel run gets in CUDA_VISIBLE_DEVICES (default 1 when GPUs are visible; 0: leave it). Each also gets its share of the cores in OMP_NUM_THREADS & co unless set.")
@click.option("--ray", "ray_address", metavar="ADDRESS", help="Start N workers of the queue on REMOTE as tasks of this Ray cluster (auto: the one this node belongs to; local: a new one on this machine). Needs gitexp[ray].")
@click.option("--dask", "dask_address", metavar="ADDRESS", help="Start N workers of the queue on REMOTE as tasks of this Dask scheduler (tcp://host:8786). Needs gitexp[dask].")
@click.option("--remote", default="origin", show_default=True, metavar="R", help="With --ray/--dask: the git remote (name or URL) whose queue the workers work off; each clones it.")
@click.option("--idle-exit", type=click.FloatRange(min=0), default=0, show_default=True, metavar="S", help="With --ray/--dask: a worker ends after S seconds with nothing queued.")
@click.option("--lease", type=click.FloatRange(min=1), metavar="S", help="With --ray/--dask: passed to each worker (gitexp queue work --lease).")
@click.option("--retry-crashed", type=click.IntRange(min=0), metavar="N", help="With --ray/--dask: passed to each worker (gitexp queue work --retry-crashed).")
@click.option("--data-remote", metavar="NAME", help="With --ray/--dask: the data remote for outputs (default: as gitexp push chooses); this clone must trust it, and each worker's clone gets it as its own.")
@click.option("--cpus", type=click.IntRange(min=1), default=1, show_default=True, metavar="C", help="With --ray: CPUs each worker reserves (Ray sets OMP_NUM_THREADS to it). Dask: start its workers with --nthreads 1.")
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True, metavar="K", help="With --ray: GPUs each worker reserves (Ray sets CUDA_VISIBLE_DEVICES; with 0, to none). With --dask: resource GPU=K (start its workers with --resources GPU=N).")
@click.option("--json", "as_json", is_flag=True, help="With --ray/--dask: print JSON: each worker's host, exit code and own --json summary.")
@click.argument("runs", nargs=-1)
def start(
    jobs: int,
    fail_fast: bool,
    gpus_per_run: int | None,
    ray_address: str | None,
    dask_address: str | None,
    remote: str,
    idle_exit: float,
    lease: float | None,
    retry_crashed: int | None,
    data_remote: str | None,
    cpus: int,
    gpus: int,
    as_json: bool,
    runs: tuple[str, ...],
) -> int:
    """Work off the queue (or only RUNS), N runs at a time, each in a temporary copy of its code; until it is empty.

    Runs queued meanwhile are run too. Ctrl-C stops the runs in progress (recorded as
    interrupted); the runs not started stay queued. A queued run someone else recorded (a
    fetched one) is run only when named: its command is theirs.

    With --ray ADDRESS or --dask ADDRESS, the runs are those queued on the git remote REMOTE
    (pushed there with gitexp push): N tasks of that engine each clone REMOTE into a fresh
    directory on their node and run `gitexp queue work --remote origin` there; the remote hands
    each run to exactly one worker. The summary of every worker is printed when all have ended;
    the exit code is 1 if any worker failed. See docs/cluster.md.
    """
    ctx = click.get_current_context()
    engines = [(name, address) for name, address in (("ray", ray_address), ("dask", dask_address)) if address is not None]
    if len(engines) > 1:
        raise click.UsageError("give --ray or --dask, not both")
    if engines:
        local_only = [f"--{o.replace('_', '-')}" for o in ("fail_fast", "gpus_per_run") if ctx.get_parameter_source(o) == click.core.ParameterSource.COMMANDLINE]
        if runs or local_only:
            raise click.UsageError(f"{' '.join(local_only) or 'RUNS'}: only for the local queue, not with --{engines[0][0]}")
        if engines[0][0] == "dask" and ctx.get_parameter_source("cpus") == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError("--cpus: Dask tasks reserve no CPUs; give each Dask worker one thread (dask worker --nthreads 1)")
        from gitexp.launch import Tasks, WorkerOptions

        options = WorkerOptions(idle_exit, lease, retry_crashed, data_remote)
        return _start_engine(engines[0][0], engines[0][1], remote, options, Tasks(jobs, cpus, gpus), as_json)
    remote_only = [f"--{o.replace('_', '-')}" for o in ("remote", "idle_exit", "lease", "retry_crashed", "data_remote", "cpus", "gpus", "as_json") if ctx.get_parameter_source(o) == click.core.ParameterSource.COMMANDLINE]
    if remote_only:
        raise click.UsageError(f"{remote_only[0].replace('--as-json', '--json')} needs --ray or --dask (one worker here: gitexp queue work --remote R)")

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


def _start_engine(engine: str, address: str, remote: str, options: WorkerOptions, tasks: Tasks, as_json: bool) -> int:
    from gitexp import launch, render

    launch.engine_module(engine)  # first: a missing engine is said before anything else is looked at
    url = launch.remote_url(remote)
    options = launch.with_data_remote(options, remote)
    warn(f"starting {tasks.jobs} worker(s) on {engine} at {address}, each in a clone of {launch.shown_url(url)}")

    def ended(report: launch.WorkerReport) -> None:
        warn(render.worker_line(report))

    try:
        reports = launch.launch(engine, address, url, options, tasks, ended)
    except KeyboardInterrupt:
        what = (
            "the Ray tasks were cancelled: a run whose worker Ray ended stays claimed until its lease ends, "
            "then the next worker records it as crashed (and queues it again with --retry-crashed N)"
            if engine == "ray"
            else "the workers already started go on until the queue is empty (Dask cannot stop a running task)"
        )
        warn(f"stopped waiting: {what}; see: gitexp queue status --remote {remote}")
        return 130
    if as_json:
        click.echo(render.to_json([r.to_dict() for r in reports]))
    else:
        click.echo(render.workers_summary(reports))
    return 0 if all(r.ok for r in reports) else 1


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


@command.command("slurm-script")
@click.option("--array", type=click.IntRange(min=1), metavar="N", help="Start N workers as one Slurm job array (#SBATCH --array=1-N).")
@click.option("--gpus", type=click.IntRange(min=0), metavar="K", help="GPUs each worker gets (#SBATCH --gpus=K).")
@click.option("--cpus", type=click.IntRange(min=1), metavar="C", help="CPUs each worker gets (#SBATCH --cpus-per-task=C).")
@click.option("--time", "time_limit", metavar="T", help="Time limit of each worker (#SBATCH --time=T, e.g. 4:00:00).")
@click.option("--partition", metavar="P", help="Slurm partition (#SBATCH --partition=P).")
@click.option("--remote", default="origin", show_default=True, metavar="R", help="The git remote (name or URL) whose queue the workers work off; each clones it.")
@click.option("--idle-exit", type=click.FloatRange(min=0), default=60, show_default=True, metavar="S", help="A worker ends after S seconds with nothing queued.")
@click.option("--lease", type=click.FloatRange(min=1), metavar="S", help="Passed to each worker (gitexp queue work --lease).")
@click.option("--retry-crashed", type=click.IntRange(min=0), metavar="N", help="Passed to each worker (gitexp queue work --retry-crashed).")
@click.option("--data-remote", metavar="NAME", help="The data remote for outputs (default: as gitexp push chooses); this clone must trust it, and the script adds it to each clone as its own.")
def slurm_script(
    array: int | None,
    gpus: int | None,
    cpus: int | None,
    time_limit: str | None,
    partition: str | None,
    remote: str,
    idle_exit: float,
    lease: float | None,
    retry_crashed: int | None,
    data_remote: str | None,
) -> None:
    """Print an sbatch script whose tasks each clone REMOTE and work off its queue (gitexp queue work).

    Save it and submit it: gitexp queue slurm-script --array 8 --gpus 1 > work.sh && sbatch work.sh.
    A remote's name is resolved to its URL here, so the script runs on any node. See docs/cluster.md.
    """
    from gitexp import launch

    for name, text in (("--time", time_limit), ("--partition", partition)):
        if text is not None and not launch.sbatch_value_ok(text):
            raise click.BadParameter(f"{text!r}: only letters, digits and , . : _ - + are allowed", param_hint=name)
    url = launch.remote_url(remote)
    options = launch.with_data_remote(launch.WorkerOptions(idle_exit, lease, retry_crashed, data_remote), remote)
    click.echo(launch.slurm_script(url, options, array, gpus, cpus, time_limit, partition), nl=False)

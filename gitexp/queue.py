"""Many runs: sweeps in place, the queue of runs waiting in git, and workers running them in temporary worktrees.

A queued run is a commit with status `queued` on its own ref: its code (with
its overrides in the params files), params, command, and its inputs already
hashed and cached. A worker (`gitexp queue serve`, one process for many runs)
claims it by moving the ref to a `running` commit (compare-and-swap, so two
workers never run the same run), brings its temporary directory to the run's
code and inputs (writing only what differs from its last run, removing what
that run left), runs the command there and records the result as usual; the
directory is removed when the worker ends, on failure and Ctrl-C too. A worker
killed outright leaves its run `running`, then `crashed` (see live.py), never
lost: its runner, if alive, ends the command it left and records the run as
crashed at once; its directory is removed by its runner or the next one.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, TextIO

from gitexp import format as fmt
from gitexp.environment import hostname
from gitexp.errors import GitexpError
from gitexp.model import RunSummary, Snapshot
from gitexp.recorder import ClaimLost, Notify, Recording, RunRequest, RunResult, record_run
from gitexp.signals import signals_deferred
from gitexp.store import Store
from gitexp.sweep import Plan
from gitexp.workspace import pid_alive

WORKTREE_PREFIX = "gitexp-wt-"
TAKEN = "(taken by another worker)"
POLL_SECONDS = 0.05
OWN_STOP_SECONDS = 3.0  # after Ctrl-C, before the runner passes the signal on to workers still running
STOP_GRACE_SECONDS = 30.0  # after Ctrl-C, how long workers get to record their runs before they are killed
KILL_WAIT_SECONDS = 5.0  # for the orphaned command of a dead worker to be gone


class NotQueued(GitexpError):
    def __init__(self, name: str, status: str) -> None:
        super().__init__(f"run {name!r} is {status}, not queued (see: gitexp queue status)")


@dataclass(frozen=True)
class Outcome:
    """How one run of a batch ended."""

    name: str
    status: str
    exit_code: int | None
    duration: float | None
    overrides: tuple[str, ...]
    error: str = ""


def requests_for(base: RunRequest, plan: Plan) -> list[RunRequest]:
    """One request per planned run: its overrides, its place in the sweep, its name."""
    out = []
    for run in plan.runs:
        name = base.name
        if name is not None and len(plan.runs) > 1:
            name = f"{name}-{run.index + 1}"
        out.append(replace(base, name=name, overrides=run.overrides, sweep=plan.record(run)))
    return out


def run_in_place(
    requests: list[RunRequest], fail_fast: bool, notify: Notify, run: Callable[[RunRequest], RunResult]
) -> list[Outcome]:
    """Run the requests one after another in the workspace; siblings: all get the parent the first one got."""
    outcomes: list[Outcome] = []
    parent: RunRequest | None = None
    for i, request in enumerate(requests):
        if parent is not None:
            request = replace(request, parent=parent.parent, no_parent=parent.no_parent)
        result = run(request)
        if parent is None:  # by name: resolving a name is one ref read, a commit id a scan of them all
            parent = replace(request, parent=result.parent_name, no_parent=result.parent_name is None)
        outcomes.append(_outcome(result.run, request.overrides))
        if result.run.status == "interrupted" or (fail_fast and result.run.status != "completed"):
            outcomes += [Outcome(r.name or "-", "not run", None, None, r.overrides) for r in requests[i + 1 :]]
            break
    return outcomes


def enqueue(requests: list[RunRequest], notify: Notify) -> list[RunSummary]:
    return [Recording.enqueue(replace(r, update_pointer=False), notify) for r in requests]


def queued(store: Store) -> list[RunSummary]:
    """Runs waiting in the queue, oldest first."""
    from gitexp.query import runs

    return sorted((r for r in runs(store) if r.status == "queued"), key=lambda r: (r.started_at, r.name))


def cancel(store: Store, names: list[str]) -> list[str]:
    """Delete these queued runs (only if still queued); the names deleted."""
    from gitexp.query import resolve

    done = []
    for name in names:
        run = resolve(store, name)
        if run.status != "queued":
            raise NotQueued(run.name, run.status)
        if store.delete_run(run.name, run.commit):
            done.append(run.name)
    return done


def queued_run(store: Store, name: str) -> RunSummary:
    from gitexp.query import resolve

    run = resolve(store, name)
    if run.status != "queued":
        raise NotQueued(run.name, run.status)
    return run


def _execute_in(store: Store, run: RunSummary, workdir: Path, notify: Notify) -> RunResult:
    """Run a queued run in workdir, which holds its code and inputs; its `running` commit claims it."""
    from gitexp.safeload import json_object

    meta = json_object(store.read_record(run.commit, fmt.RUN_FILE) or b"{}", f"{fmt.RECORD_DIR}/{fmt.RUN_FILE} of run {run.name!r}")
    code = store.code_tree(run.commit)
    cwd = workdir / meta.get("cwd", "")
    request = RunRequest(
        command=list(meta.get("command") or []),
        cwd=cwd,
        outputs=tuple(os.path.relpath(workdir / p, cwd) for p in meta.get("outputs") or ()),
        note=run.note,
        overrides=tuple(meta.get("overrides") or ()),
        apply_overrides=False,
        template="argv" in meta,  # a command with {name} placeholders: the overrides give their values
        tags=run.tags,
        scalars=meta.get("scalars"),
        sample_interval=meta.get("sample_interval"),
        repository=store.root,
        workdir=workdir,
        code=Snapshot(code, run.base, run.base_branch, dirty=run.base is None or code != store.tree_of(run.base)),
        update_pointer=False,
        claim=run,
        sweep=run.sweep or None,
    )
    return record_run(request, notify)


def serve(store: Store, names: TextIO, events: BinaryIO, notify: Notify) -> None:
    """A worker: run each queued run named on `names` (one per line) in one reused worktree; report on `events`.

    Each run ends with a line `<name>\t<error, or nothing>` on events. An interrupted run ends the
    worker. Between runs the worktree is refreshed (restore.sync): only what differs is written, and
    whatever the last run left is removed. It is deleted when the worker ends, whatever the reason.
    """
    from gitexp.restore import Known, sync

    scratch = Path(tempfile.mkdtemp(prefix=f"{WORKTREE_PREFIX}{os.getpid()}-"))
    workdir = scratch / "workspace"
    known: Known = {}
    try:
        for line in names:
            name = line.strip()
            error, interrupted = "", False
            try:
                run = queued_run(store, name)
                known = sync(store, run, workdir, known, ("inputs", "large_files"))
                interrupted = _execute_in(store, run, workdir, notify).run.status == "interrupted"
            except ClaimLost:
                error = TAKEN  # another worker started it first: not this worker's run
            except GitexpError as exc:
                error, known = exc.message, {}  # the worktree may be half-written: start afresh
            except Exception as exc:  # noqa: BLE001 - one run's trouble must not end the worker
                error, known = f"internal error: {type(exc).__name__}: {exc}", {}
            events.write(f"{name}\t{' '.join(error.split())}\n".encode())
            events.flush()
            if interrupted:
                break
    finally:
        with signals_deferred():
            shutil.rmtree(scratch, ignore_errors=True)


def remove_stale_worktrees() -> None:
    """Temporary worktrees of workers that were killed outright."""
    for path in Path(tempfile.gettempdir()).glob(f"{WORKTREE_PREFIX}*-*"):
        pid = path.name[len(WORKTREE_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid), hostname()):
            shutil.rmtree(path, ignore_errors=True)


THREAD_VARIABLES = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
)


def share(slot: int, jobs: int, gpus: list[str], gpus_per_run: int | None = None) -> dict[str, str]:
    """The environment of the worker in slot (of jobs at a time): its share of the machine.

    With jobs > 1, each thread-pool variable the user has not set becomes max(1, cores // jobs); when GPUs are visible,
    CUDA_VISIBLE_DEVICES becomes the slot's own gpus_per_run of them (default 1; round the list again
    when jobs x gpus_per_run exceeds them). A run records them in env.json.
    """
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    for name in THREAD_VARIABLES if jobs > 1 else ():
        env.setdefault(name, threads)
    per_run = gpus_per_run if gpus_per_run is not None else 1
    if gpus and per_run > 0 and (jobs > 1 or gpus_per_run is not None):
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[(slot * per_run + i) % len(gpus)] for i in range(per_run))
    return env


def visible_gpus() -> list[str]:
    """The GPUs a run may use: CUDA_VISIBLE_DEVICES when set (empty or -1: none), else `nvidia-smi -L`'s."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        ids = [g.strip() for g in given.split(",") if g.strip()]
        return [] if not ids or ids[0].startswith("-") else ids
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


class _Worker:
    """A `gitexp queue serve` process: given run names on its stdin, it answers on a pipe of its own."""

    def __init__(self, store: Store, slot: int = 0, env: dict[str, str] | None = None) -> None:
        read_end, write_end = os.pipe()
        self.slot = slot
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gitexp", "queue", "serve", "--events-fd", str(write_end)],
            cwd=store.root, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(write_end,), env=env,
        )
        os.close(write_end)
        self.events = os.fdopen(read_end, "rb")
        self.current: str | None = None

    def give(self, name: str) -> None:
        assert self.proc.stdin is not None
        self.current = name
        self.proc.stdin.write(f"{name}\n".encode())
        self.proc.stdin.flush()

    def answer(self) -> tuple[str, str] | None:
        """(name, error) of the run it finished; None if it ended instead (killed, or done after Ctrl-C)."""
        line = self.events.readline().decode(errors="replace")
        if not line.endswith("\n"):
            return None
        name, _, error = line.rstrip("\n").partition("\t")
        self.current = None
        return name, error

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


def work(
    store: Store,
    names: list[str] | None,
    jobs: int,
    fail_fast: bool,
    notify: Notify,
    gpus_per_run: int | None = None,
    keep_rest: bool = False,
) -> list[Outcome]:
    """Work off queued runs with `jobs` worker processes: these names, or the whole queue.

    The names of a sweep not started when it stops are cancelled, unless keep_rest (queued runs the user
    named: they stay queued).

    The queue is looked at anew whenever a worker is free, so runs queued meanwhile are run too.
    Ctrl-C reaches the workers (same process group): they record their runs as interrupted; this waits,
    cancels a sweep's runs not started (the queue's stay queued) and raises Stopped with the outcomes.
    """
    remove_stale_worktrees()
    gpus = visible_gpus()
    restore_signals = _terminate_on_signals()
    tried: set[str] = set()
    workers: list[_Worker] = []
    outcomes: list[Outcome] = []
    stopping = False
    try:
        while True:
            idle = [w for w in workers if w.current is None]
            while not stopping and (idle or len(workers) < jobs):
                name = _next(store, names, tried, notify)
                if name is None:
                    break
                tried.add(name)
                if not idle:
                    slot = min(set(range(jobs + len(workers))) - {w.slot for w in workers})
                    workers.append(_Worker(store, slot, share(slot, jobs, gpus, gpus_per_run)))
                    idle.append(workers[-1])
                worker = idle.pop()
                worker.give(name)
                notify(f"started {name}" + _overrides_text(store, name))
            busy = [w for w in workers if w.current is not None]
            if not busy:
                break
            ready, _, _ = select.select([w.events for w in busy], [], [])
            for worker in busy:
                if worker.events not in ready:
                    continue
                name = worker.current
                assert name is not None
                answer = worker.answer()
                if answer is None:  # the worker died: whatever it was running is crashed, or still queued
                    workers.remove(worker)
                    worker.proc.wait()
                    _bury(store, worker.proc.pid, name)
                if answer is not None and answer[1] == TAKEN:
                    continue  # another runner's worker has it: its outcome is that runner's to report
                outcome = _finished(store, name, answer[1] if answer else "its worker died")
                outcomes.append(outcome)
                notify(_describe(outcome))
                stop_now = outcome.status == "interrupted" or (fail_fast and outcome.status != "completed")
                if stop_now and not stopping:
                    stopping = True
                    left = _cancel_rest(store, None if keep_rest else names, tried)
                    if left:
                        outcomes += left
                        notify(f"{outcome.name} {outcome.status}: {len(left)} queued run(s) of the sweep cancelled")
    except (KeyboardInterrupt, Stopped) as stop:
        busy_names = [w.current for w in workers if w.current is not None]
        _stop(workers)
        outcomes += [_finished(store, n, "") for n in busy_names]
        outcomes += _cancel_rest(store, None if keep_rest else names, tried)
        raise Stopped(stop.signum if isinstance(stop, Stopped) else signal.SIGINT, outcomes) from None
    finally:
        for worker in workers:
            worker.close()
        for worker in workers:
            worker.proc.wait()
            worker.events.close()
        restore_signals()
    return outcomes


class Stopped(Exception):  # a signal, not an error
    """Ctrl-C, or SIGTERM or SIGHUP reaching the runner alone (a scheduler, a closed terminal), stopped the batch.

    outcomes: how its runs ended (those in progress interrupted; a sweep's unstarted runs cancelled)."""

    def __init__(self, signum: int, outcomes: list[Outcome] | None = None) -> None:
        super().__init__(signum)
        self.signum = signum
        self.outcomes = outcomes or []


def _terminate_on_signals() -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise Stopped in the main thread; return what puts the old handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, _frame: object) -> None:
        raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _is_queued(store: Store, name: str) -> bool:
    commit = store.run_commit(name)
    return commit is not None and store.summary(name, commit).status == "queued"


def _next(store: Store, names: list[str] | None, tried: set[str], notify: Notify) -> str | None:
    if names is not None:  # a sweep's own runs: look at those alone, not at every run of the repository
        for name in names:
            if name not in tried:
                if _is_queued(store, name):
                    return name
                tried.add(name)  # cancelled or taken meanwhile
        return None
    from gitexp.reproduce import recorded_by_others

    for run in queued(store):
        if run.name in tried:
            continue
        others = recorded_by_others(store, run)
        if others is None:
            return run.name
        tried.add(run.name)  # a fetched run's command is not run unasked: naming it is the consent
        notify(f"queued run {run.name} was recorded by {others}, not you: not run; 'gitexp queue start {run.name}' runs it")
    return None


def _cancel_rest(store: Store, names: list[str] | None, tried: set[str]) -> list[Outcome]:
    """Cancel a sweep's runs not started yet (the queue's own runs stay queued: names None)."""
    left = [n for n in (names or []) if n not in tried and _is_queued(store, n)]
    return [Outcome(n, "cancelled", None, None, ()) for n in cancel(store, left)]


def _bury(store: Store, worker_pid: int, name: str) -> None:
    """A worker died outright: kill the command it left running (an orphan now), record its run as crashed
    and remove its worktree, now rather than when the next runner starts."""
    from gitexp import live
    from gitexp.recorder import finalize_crashed

    state = live.read(store.git_common_dir(), name)
    if state is not None and state.pid == worker_pid and state.command_pid:
        _kill_tree(state.command_pid, state.scratch)
    finalize_crashed(store, lambda _message: None)  # the run's outcome says it crashed
    remove_stale_worktrees()


def _kill_tree(pid: int, scratch: str) -> None:
    """SIGKILL a run's command and its descendants, and wait for them; only if pid is still that command
    (its $GITEXP_RUN_DIR is the run's scratch directory), not a process that took its pid since."""
    import psutil  # type: ignore[import-untyped]

    from gitexp.recorder import ENV_RUN_DIR

    try:
        root = psutil.Process(pid)
        if root.environ().get(ENV_RUN_DIR) != scratch:
            return
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(procs, timeout=KILL_WAIT_SECONDS)


def _overrides_text(store: Store, name: str) -> str:
    commit = store.run_commit(name)
    overrides = store.summary(name, commit).sweep.get("overrides") if commit else None
    return f" ({', '.join(overrides)})" if overrides else ""


def _stop(workers: list[_Worker]) -> None:
    """After Ctrl-C: give the workers a moment to stop by themselves (a terminal's Ctrl-C reached them too),
    then pass it on to those that did not get it; wait for them to record their runs; kill the late ones."""
    for worker in workers:
        worker.close()
    deadline = time.monotonic() + OWN_STOP_SECONDS
    while any(w.proc.poll() is None for w in workers) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(w.proc.poll() is None for w in workers) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.kill()


def _finished(store: Store, name: str, error: str) -> Outcome:
    from gitexp.query import resolve

    try:
        run = resolve(store, name)
    except GitexpError:
        return Outcome(name, "error", None, None, (), error or "the run disappeared")
    outcome = _outcome(run, ())
    if run.status in ("queued", "running"):  # the worker failed before or without finishing it
        return replace(outcome, status="error", error=error or f"the worker left it {run.status}")
    return outcome


def _outcome(run: RunSummary, overrides: tuple[str, ...]) -> Outcome:
    return Outcome(run.name, run.status, run.exit_code, run.duration, overrides or tuple(run.sweep.get("overrides", ())))


def _describe(o: Outcome) -> str:
    if o.status == "error":
        return f"{o.name}: not run: {o.error}"
    code = f"exit code {o.exit_code}, " if o.exit_code is not None else ""
    return f"{o.name}: {o.status} ({code}{o.duration or 0:.1f}s)"


def exit_code(outcomes: list[Outcome]) -> int:
    """0 when every run completed; 130 if one was interrupted; else 1 (failed, crashed, cancelled, not run)."""
    if any(o.status == "interrupted" for o in outcomes):
        return 130
    return 0 if all(o.status == "completed" for o in outcomes) else 1

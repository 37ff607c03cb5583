"""Many runs: sweeps in place, the queue of runs waiting in git, and workers running them in temporary worktrees.

A queued run is a commit with status `queued` on its own ref: its code (with
its overrides in the params files), params, command, and its inputs already
hashed and cached. A worker (`gitexp queue exec NAME`, one process per run)
claims it by moving the ref to a `running` commit (compare-and-swap, so two
workers never run the same run), copies the code and inputs into a temporary
directory, runs the command there and records the result as usual; the
directory is removed afterwards, on failure and Ctrl-C too. A worker killed
outright leaves its run `running`, then `crashed` (see live.py), never lost,
and its directory is removed by the next runner.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from gitexp import format as fmt
from gitexp.environment import hostname
from gitexp.errors import GitexpError
from gitexp.model import RunSummary, Snapshot
from gitexp.process import signals_deferred
from gitexp.recorder import Notify, Recording, RunRequest, RunResult, record_run
from gitexp.store import Store
from gitexp.sweep import Plan
from gitexp.workspace import pid_alive

WORKTREE_PREFIX = "gitexp-wt-"
POLL_SECONDS = 0.05
OWN_STOP_SECONDS = 3.0  # after Ctrl-C, before the runner passes the signal on to workers still running
STOP_GRACE_SECONDS = 30.0  # after Ctrl-C, how long workers get to record their runs before they are killed


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
    for request in requests:
        if parent is not None:
            request = replace(request, parent=parent.parent, no_parent=parent.no_parent)
        result = run(request)
        if parent is None:
            parent = replace(request, parent=result.run.parent, no_parent=result.run.parent is None)
        outcomes.append(_outcome(result.run, request.overrides))
        if result.run.status == "interrupted" or (fail_fast and result.run.status != "completed"):
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


def execute(store: Store, name: str, notify: Notify) -> RunResult:
    """Run one queued run in a temporary worktree (what `gitexp queue exec` does)."""
    from gitexp.query import resolve
    from gitexp.restore import materialize

    run = resolve(store, name)
    if run.status != "queued":
        raise NotQueued(run.name, run.status)
    meta = json.loads(store.read_record(run.commit, fmt.RUN_FILE) or b"{}")
    scratch = Path(tempfile.mkdtemp(prefix=f"{WORKTREE_PREFIX}{os.getpid()}-"))
    try:
        workdir = scratch / "workspace"
        materialize(store, run, workdir, sections=("inputs", "large_files"))
        code = store.code_tree(run.commit)
        request = RunRequest(
            command=list(meta.get("command") or []),
            cwd=workdir / meta.get("cwd", ""),
            note=run.note,
            overrides=tuple(meta.get("overrides") or ()),
            apply_overrides=False,
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
    finally:
        with signals_deferred():
            shutil.rmtree(scratch, ignore_errors=True)


def remove_stale_worktrees() -> None:
    """Temporary worktrees of workers that were killed outright."""
    for path in Path(tempfile.gettempdir()).glob(f"{WORKTREE_PREFIX}*-*"):
        pid = path.name[len(WORKTREE_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid), hostname()):
            shutil.rmtree(path, ignore_errors=True)


def work(
    store: Store,
    names: list[str] | None,
    jobs: int,
    fail_fast: bool,
    notify: Notify,
) -> list[Outcome]:
    """Work off queued runs, `jobs` at a time, each by a worker process: these names, or the whole queue.

    The whole queue is read anew whenever a worker is free, so runs queued meanwhile are run too.
    Ctrl-C reaches the workers (same process group): they record their runs as interrupted; this waits.
    """
    remove_stale_worktrees()
    tried: set[str] = set()
    running: dict[str, tuple[subprocess.Popen[bytes], Path, float]] = {}
    outcomes: list[Outcome] = []
    stopping = False
    overrides = {r.name: tuple(r.sweep.get("overrides", ())) for r in queued(store)}
    try:
        while True:
            while not stopping and len(running) < jobs:
                name = _next(store, names, tried)
                if name is None:
                    break
                tried.add(name)
                running[name] = _spawn(store, name)
                notify(f"started {name}" + (f" ({', '.join(overrides[name])})" if overrides.get(name) else ""))
            if not running:
                break
            for name, code in _reap(running):
                outcome = _finished(store, name, code)
                outcomes.append(outcome)
                notify(_describe(outcome))
                if fail_fast and outcome.status != "completed" and not stopping:
                    stopping = True
                    left = [n for n in (names or []) if n not in tried]
                    if left:
                        cancel(store, left)
                        notify(f"--fail-fast: {outcome.name} {outcome.status}; {len(left)} queued run(s) cancelled")
    except KeyboardInterrupt:
        _stop(running)
        for name, code in _reap(running, block=True):
            outcomes.append(_finished(store, name, code))
        if names:
            cancel(store, [n for n in names if n not in tried])
        raise
    return outcomes


def _next(store: Store, names: list[str] | None, tried: set[str]) -> str | None:
    if names is not None:
        waiting = {r.name for r in queued(store)}
        return next((n for n in names if n not in tried and n in waiting), None)
    return next((r.name for r in queued(store) if r.name not in tried), None)


def _spawn(store: Store, name: str) -> tuple[subprocess.Popen[bytes], Path, float]:
    log = store.state_dir / "tmp" / f"worker-{os.getpid()}-{name}.err"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gitexp", "queue", "exec", name],
            cwd=store.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )
    return proc, log, time.monotonic()


def _reap(
    running: dict[str, tuple[subprocess.Popen[bytes], Path, float]], block: bool = False
) -> list[tuple[str, str]]:
    """Wait until at least one worker ended (all, with block); (name, its last error line) of each that did."""
    done: list[tuple[str, str]] = []
    while running and (not done or block):
        for name, (proc, log, _) in list(running.items()):
            if proc.poll() is not None:
                errors = [ln for ln in log.read_text(errors="replace").splitlines() if "error:" in ln] if log.exists() else []
                log.unlink(missing_ok=True)
                done.append((name, errors[-1].split("error:", 1)[1].strip() if errors else ""))
                del running[name]
        if running and (not done or block):
            time.sleep(POLL_SECONDS)
    return done


def _stop(running: dict[str, tuple[subprocess.Popen[bytes], Path, float]]) -> None:
    """After Ctrl-C: give the workers a moment to stop by themselves (a terminal's Ctrl-C reached them too),
    then pass it on to those that did not get it; wait for them to record their runs; kill the late ones."""
    deadline = time.monotonic() + OWN_STOP_SECONDS
    while any(p.poll() is None for p, _, _ in running.values()) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for proc, _, _ in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(p.poll() is None for p, _, _ in running.values()) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for proc, _, _ in running.values():
        if proc.poll() is None:
            proc.kill()


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
    return f"{o.name}: {o.status} (exit code {o.exit_code}, {o.duration or 0:.1f}s)"


def exit_code(outcomes: list[Outcome]) -> int:
    """0 when every run completed; 130 if one was interrupted; else 1."""
    if any(o.status == "interrupted" for o in outcomes):
        return 130
    return 0 if all(o.status == "completed" for o in outcomes) else 1

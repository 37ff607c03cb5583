"""`gitexp reproduce`: re-run a run in an isolated copy of its workspace and compare the metrics."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp import format as fmt
from gitexp.compare import changes, number
from gitexp.errors import GitexpError
from gitexp.model import Progress, RunSummary, Snapshot
from gitexp.recorder import Notify, RunRequest, RunResult, record_run
from gitexp.render import inert
from gitexp.restore import materialize
from gitexp.store import Store

TAG = "reproduction"


@dataclass(frozen=True)
class MetricCheck:
    key: str
    original: Any
    reproduced: Any
    matches: bool


@dataclass(frozen=True)
class Reproduction:
    original: RunSummary
    result: RunResult
    checks: list[MetricCheck]
    env_changes: list[str]

    @property
    def matches(self) -> bool:
        completed = self.original.status == "completed"
        return completed and self.result.exit_code == 0 and all(c.matches for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "original": {"name": self.original.name, "commit": self.original.commit},
            "reproduction": {"name": self.result.run.name, "commit": self.result.run.commit, "exit_code": self.result.exit_code},
            "matches": self.matches,
            "metrics": [c.__dict__ for c in self.checks],
            "environment_changes": self.env_changes,
        }


@dataclass(frozen=True)
class Recipe:
    """What reproducing a run would execute, read from its record and validated."""

    command: tuple[str, ...]  # as recorded: a template when argv is set
    cwd: str  # relative to the copy's root, '' for the root
    stranger: str | None  # who recorded the run, when that is not the user (git identity emails)
    argv: tuple[str, ...] = ()  # what the template gave (the -S values in its {name}s): what will run
    overrides: tuple[str, ...] = ()  # the -S the run was given (the copy's params files have them already)
    scalars: str | None = None  # what shaped the record: stdout capture, sampling, -d/-o (root-relative)
    sample_interval: float | None = None
    data: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    def shown(self) -> str:
        """The command as a shell would take it, with every control character escaped: safe to print."""
        import shlex

        return inert(shlex.join(self.argv or self.command)) + (f"  (in {inert(self.cwd)}/)" if self.cwd else "")


def recipe(store: Store, run: RunSummary) -> Recipe:
    """The command and working directory the run recorded, refusing what cannot run inside its copy."""
    from gitexp.safeload import UnreadableRecord, json_object

    raw = store.read_record(run.commit, fmt.RUN_FILE)
    try:  # bounded: a run.json nested 100,000 deep is someone else's, and must not end in exit 3
        meta = json_object(raw, f"{fmt.RUN_FILE} of run {run.name!r}") if raw else {}
    except UnreadableRecord:
        raise GitexpError(f"run {run.name!r} has an unreadable {fmt.RUN_FILE}: nothing to reproduce") from None
    command = meta.get("command") or []
    if not command:
        raise GitexpError(f"run {run.name!r} has no command to reproduce (it is a saved workspace)")
    if not isinstance(command, list) or not all(isinstance(a, str) and a and "\0" not in a for a in command):
        raise GitexpError(f"run {run.name!r} records a malformed command (not a list of arguments); it cannot be reproduced")
    cwd = meta.get("cwd") or ""
    if not isinstance(cwd, str) or cwd and (cwd.startswith("/") or "\0" in cwd or {"..", ""} & set(cwd.split("/"))):
        raise GitexpError(
            f"run {run.name!r} records the working directory {inert(repr(cwd))}, which is not inside its "
            "repository; reproduce runs a command only inside its copy of the run, so it refuses"
        )
    return Recipe(
        tuple(command), cwd, recorded_by_others(store, run), _texts(run, meta, "argv"), _texts(run, meta, "overrides"),
        _scalars(run, meta.get("scalars")), _interval(meta.get("sample_interval")), _paths(run, meta, "data"),
        _paths(run, meta, "outputs"),
    )


def _texts(run: RunSummary, meta: dict[str, Any], key: str) -> tuple[str, ...]:
    value = meta.get(key) or []
    if not isinstance(value, list) or not all(isinstance(a, str) and a and "\0" not in a for a in value):
        raise GitexpError(f"run {run.name!r} records a malformed {key} (not a list of texts); it cannot be reproduced")
    return tuple(value)


def _paths(run: RunSummary, meta: dict[str, Any], key: str) -> tuple[str, ...]:
    paths = _texts(run, meta, key)
    for path in paths:
        if path.startswith("/") or {"..", ".git"} & set(path.split("/")):
            raise GitexpError(f"run {run.name!r} records the {key} path {inert(repr(path))}, outside its copy; it cannot be reproduced")
    return paths


def _scalars(run: RunSummary, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise GitexpError(f"run {run.name!r} records a malformed scalars setting; it cannot be reproduced")


def _interval(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def recorded_by_others(store: Store, run: RunSummary) -> str | None:
    """Who else recorded run (the emails of its author, committer and Gitexp-User that are not the user's), or None."""
    mine = store.identity()[1].lower()
    others = sorted({e for e in store.recorded_by(run.commit) | {_email(run.user)} if e and e.lower() != mine})
    return ", ".join(others) or None


def _email(user: str) -> str:
    return user.rpartition("<")[2].rstrip(">").strip()


def reproduce(
    store: Store,
    run: RunSummary,
    rtol: float,
    notify: Notify,
    approve: Callable[[Recipe], None],
    progress: Progress | None = None,
) -> Reproduction:
    """Re-run run's command on its code, params and input data, in a temporary copy; record it as a child.

    approve sees the command before anything is done; it raises to refuse (it decides whether a run
    someone else recorded may run here).
    """
    if run.status in ("queued", "running"):
        raise GitexpError(f"run {run.name!r} is {run.status}: it has no result to reproduce yet")
    todo = recipe(store, run)
    approve(todo)
    if run.status != "completed":
        notify(f"run {run.name!r} is {run.status}: it cannot be reproduced, only re-run; the verdict is 'not reproduced'")
    from gitexp.queue import WORKTREE_PREFIX, remove_stale_worktrees

    remove_stale_worktrees()  # the copies of reproductions and workers that were killed outright
    scratch = Path(tempfile.mkdtemp(prefix=f"{WORKTREE_PREFIX}{os.getpid()}-"))
    try:
        workdir = scratch / "workspace"
        materialize(store, run, workdir, sections=("inputs", "large_files"))
        cwd = workdir / todo.cwd
        if not cwd.resolve().is_relative_to(workdir.resolve()) or not cwd.is_dir():
            raise GitexpError(
                f"run {run.name!r} records the working directory {inert(repr(todo.cwd))}, which is not a "
                "directory inside its copy (a symlink leading out, or missing); reproduce refuses to run it"
            )
        notify(f"reproducing {run.name} in {workdir}")
        request = RunRequest(
            command=list(todo.command),
            template=bool(todo.argv),  # the same {name} values again: from the recorded -S
            overrides=todo.overrides,
            apply_overrides=False,
            scalars=todo.scalars,
            sample_interval=todo.sample_interval,
            data=tuple(os.path.relpath(workdir / p, cwd) for p in todo.data),
            outputs=tuple(os.path.relpath(workdir / p, cwd) for p in todo.outputs),
            cwd=cwd,
            name=_name(store, run.name),
            note=f"reproduction of {run.name}",
            parent=run.commit,
            tags=(TAG,),
            repository=store.root,
            workdir=workdir,
            code=Snapshot(store.code_tree(run.commit), run.base, run.base_branch, dirty=_dirty(store, run)),
            update_pointer=False,
        )
        result = record_run(request, notify, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    checks = [
        MetricCheck(key, run.metrics.get(key), result.run.metrics.get(key), _close(run.metrics.get(key), result.run.metrics.get(key), rtol))
        for key in sorted(run.metrics.keys() | result.run.metrics.keys())
    ]
    return Reproduction(run, result, checks, _env_changes(store, run.commit, result.run.commit))


def _name(store: Store, original: str) -> str:
    for i in range(1, 1000):
        name = f"{original[:80]}-repro-{i}"
        if not store.run_exists(name):
            return name
    raise GitexpError(f"too many reproductions of {original!r}")


def _env(store: Store, commit: str) -> dict[str, Any]:
    """A run's env.json, or {} when it is missing or unreadable (bounded: it may be someone else's)."""
    from gitexp.safeload import UnreadableRecord, json_object

    try:
        raw = store.read_record(commit, fmt.ENV_FILE)
        return json_object(raw, f"{fmt.ENV_FILE} of {commit[:12]}") if raw else {}
    except UnreadableRecord:
        return {}


def _dirty(store: Store, run: RunSummary) -> bool:
    git = _env(store, run.commit).get("git")
    return bool(isinstance(git, dict) and git.get("dirty"))


def _close(a: Any, b: Any, rtol: float) -> bool:
    x, y = number(a), number(b)
    if x is None or y is None:
        return a == b and a is not None
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=rtol, abs_tol=0.0)


def _env_changes(store: Store, a: str, b: str) -> list[str]:
    def packages(commit: str) -> dict[str, Any]:
        py = _env(store, commit).get("python")
        py = py if isinstance(py, dict) else {}
        packages = py.get("packages")
        return {"python": py.get("version"), **{f"package {k}": v for k, v in (packages if isinstance(packages, dict) else {}).items()}}

    return [
        f"{c.key}: {c.old or '(none)'} -> {c.new or '(none)'}" for c in changes(packages(a), packages(b))
    ]

"""`gitexp reproduce`: re-run a run in an isolated copy of its workspace and compare the metrics."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitexp import format as fmt
from gitexp.compare import changes, number
from gitexp.errors import GitexpError
from gitexp.model import Progress, RunSummary, Snapshot
from gitexp.recorder import Notify, RunRequest, RunResult, record_run
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


def reproduce(store: Store, run: RunSummary, rtol: float, notify: Notify, progress: Progress | None = None) -> Reproduction:
    """Re-run run's command on its code, params and input data, in a temporary copy; record it as a child."""
    if run.status in ("queued", "running"):
        raise GitexpError(f"run {run.name!r} is {run.status}: it has no result to reproduce yet")
    if run.status != "completed":
        notify(f"run {run.name!r} is {run.status}: it cannot be reproduced, only re-run; the verdict is 'not reproduced'")
    raw = store.read_record(run.commit, fmt.RUN_FILE)
    meta = json.loads(raw) if raw else {}
    command = meta.get("command") or []
    if not command:
        raise GitexpError(f"run {run.name!r} has no command to reproduce (it is a saved workspace)")
    from gitexp.queue import WORKTREE_PREFIX, remove_stale_worktrees

    remove_stale_worktrees()  # the copies of reproductions and workers that were killed outright
    scratch = Path(tempfile.mkdtemp(prefix=f"{WORKTREE_PREFIX}{os.getpid()}-"))
    try:
        workdir = scratch / "workspace"
        materialize(store, run, workdir, sections=("inputs", "large_files"))
        notify(f"reproducing {run.name} in {workdir}")
        request = RunRequest(
            command=list(command),
            cwd=workdir / meta.get("cwd", ""),
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


def _dirty(store: Store, run: RunSummary) -> bool:
    raw = store.read_record(run.commit, fmt.ENV_FILE)
    return bool(raw and json.loads(raw).get("git", {}).get("dirty"))


def _close(a: Any, b: Any, rtol: float) -> bool:
    x, y = number(a), number(b)
    if x is None or y is None:
        return a == b and a is not None
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return math.isclose(x, y, rel_tol=rtol, abs_tol=0.0)


def _env_changes(store: Store, a: str, b: str) -> list[str]:
    def packages(commit: str) -> dict[str, Any]:
        raw = store.read_record(commit, fmt.ENV_FILE)
        env = json.loads(raw) if raw else {}
        py = env.get("python") or {}
        return {"python": py.get("version"), **{f"package {k}": v for k, v in (py.get("packages") or {}).items()}}

    return [
        f"{c.key}: {c.old or '(none)'} -> {c.new or '(none)'}" for c in changes(packages(a), packages(b))
    ]

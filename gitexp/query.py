"""Find runs: by name, by commit id prefix, or 'latest'; list them newest first."""

from __future__ import annotations

import json
from typing import Any

from gitexp import format as fmt
from gitexp.errors import AmbiguousRun, RunNotFound
from gitexp.model import RunSummary
from gitexp.store import Store

MIN_PREFIX = 4


def runs(store: Store, problems: list[str] | None = None) -> list[RunSummary]:
    """Every readable run, newest first (unreadable ones are described in problems)."""
    return sorted(store.summaries(problems), key=lambda r: (r.started_at, r.name), reverse=True)


def resolve(store: Store, spec: str) -> RunSummary:
    """A run named spec, 'latest', or the run whose commit id starts with spec."""
    name = spec.removeprefix(fmt.REF_PREFIX)
    commit = store.run_commit(name) if name and "/" not in name and name != "latest" else None
    if commit is not None:
        return store.summary(name, commit)
    if spec == "latest":
        all_runs = runs(store)
        if not all_runs:
            raise RunNotFound(spec)
        return all_runs[0]
    if len(spec) >= MIN_PREFIX and all(c in "0123456789abcdefABCDEF" for c in spec):
        matches = store.commits_with_prefix(spec)
        if len(matches) == 1:
            return store.summary(*matches[0])
        if len(matches) > 1:
            raise AmbiguousRun(spec, sorted(n for n, _ in matches))
    raise RunNotFound(spec)


def details(store: Store, run: RunSummary) -> dict[str, Any]:
    """Everything recorded about a run: the summary plus its record files."""
    out: dict[str, Any] = run.to_dict()
    for key, filename in (
        ("meta", fmt.RUN_FILE),
        ("params_nested", fmt.PARAMS_FILE),
        ("env", fmt.ENV_FILE),
        ("data", fmt.DATA_FILE),
    ):
        raw = store.read_record(run.commit, filename)
        out[key] = json.loads(raw) if raw else None
    return out


def read_log(store: Store, run: RunSummary, filename: str) -> bytes:
    return store.read_record(run.commit, filename) or b""


def name_of(store: Store, commit: str) -> str | None:
    """The name of the run ref pointing at commit (None once that run was deleted)."""
    return next((n for n, c in store.run_refs() if c == commit), None)

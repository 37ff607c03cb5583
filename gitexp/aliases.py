"""Aliases: a unique name (production, best, ...) for one run, with the history of its moves kept in git.

The aliases live on the ref ALIASES_REF: each commit's tree holds one file,
aliases.json, the map alias -> {"run": name, "commit": run commit}; every change
is a new commit whose parent is the previous one (`git log ALIASES_REF` is the
history), and the ref moves by compare-and-swap, retried when another process
moved it first. The ref matches the notes refspec `refs/notes/gitexp*`, so it
travels with the notes: with `gitexp push`/`pull` and after `gitexp init`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitexp import format as fmt
from gitexp.errors import GitexpError, StorageError
from gitexp.model import RunSummary
from gitexp.store import Store

ALIASES_REF = "refs/notes/gitexp-aliases"
ALIASES_FILE = "aliases.json"
_RETRIES = 20


@dataclass(frozen=True)
class Alias:
    name: str
    run: str  # the run's name when the alias was set
    commit: str  # the run's commit when the alias was set


def read(store: Store) -> dict[str, Alias]:
    """Every alias (empty when none was ever set, or the ref holds something unreadable)."""
    return _parse(store.read_ref_file(ALIASES_REF, ALIASES_FILE)[1])


def find(store: Store, name: str) -> tuple[str, str] | None:
    """(run name, commit) of the run alias `name` points at now, or None (no such alias, or its run is gone).

    The run is found by its commit (a renamed run keeps it), else by its name (a run recorded
    again under the same name, such as a crashed run finalized later).
    """
    alias = read(store).get(name)
    if alias is None:
        return None
    refs = dict(store.run_refs())
    for run, commit in refs.items():
        if commit == alias.commit:
            return run, commit
    if alias.run in refs:
        return alias.run, refs[alias.run]
    return None


def set_alias(store: Store, run: RunSummary, name: str) -> str | None:
    """Point alias name at run (moving it from the run that had it); return that previous run's name."""
    from gitexp.names import validate

    try:
        validate(name)
    except GitexpError as exc:
        raise GitexpError(exc.message.replace("run name", "alias name")) from None
    if store.run_exists(name):
        raise GitexpError(f"alias {name!r} would clash with the run named {name!r}: choose another alias")
    previous: list[str | None] = [None]

    def change(aliases: dict[str, Alias]) -> str | None:
        old = aliases.get(name)
        previous[0] = old.run if old is not None else None
        if old is not None and old.commit == run.commit:
            return None
        aliases[name] = Alias(name, run.name, run.commit)
        moved = f" (was {old.run} {old.commit[:10]})" if old is not None else ""
        return f"alias {name} -> {run.name} {run.commit[:10]}{moved}"

    _update(store, change)
    return previous[0]


def remove(store: Store, name: str) -> Alias:
    """Remove alias name; GitexpError when there is none."""
    removed: list[Alias] = []

    def change(aliases: dict[str, Alias]) -> str | None:
        if name not in aliases:
            raise GitexpError(f"no alias named {name!r} (see: gitexp alias)")
        removed[:] = [aliases.pop(name)]
        return f"alias -d {name} (was {removed[0].run} {removed[0].commit[:10]})"

    _update(store, change)
    return removed[0]


def _update(store: Store, change: Any) -> None:
    """Apply change (aliases -> commit message, or None: nothing to do) and compare-and-swap the ref; retry on a race."""
    for _ in range(_RETRIES):
        old, raw = store.read_ref_file(ALIASES_REF, ALIASES_FILE)
        aliases = _parse(raw)
        message = change(aliases)
        if message is None:
            return
        data = fmt.to_json({a.name: {"run": a.run, "commit": a.commit} for a in aliases.values()}).encode()
        if store.write_ref_file(ALIASES_REF, ALIASES_FILE, data, message + "\n", old):
            return
    raise StorageError(f"{ALIASES_REF} kept moving while it was updated; try again")


def _parse(raw: bytes | None) -> dict[str, Alias]:
    if raw is None:
        return {}
    from gitexp.safeload import UnreadableRecord, json_loads

    try:  # the alias ref may come from anyone: bounded like every record
        data = json_loads(raw, f"{ALIASES_REF}:{ALIASES_FILE}")
    except UnreadableRecord:
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for name, value in data.items():
        if isinstance(value, dict) and isinstance(value.get("run"), str) and isinstance(value.get("commit"), str):
            out[name] = Alias(name, value["run"], value["commit"])
    return out

"""Sharing runs: refs travel with the user's own `git` (credentials, SSH and all); data to a data remote."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gitexp import config as config_mod
from gitexp import format as fmt
from gitexp.data.cache import Cache
from gitexp.data.inventory import uses
from gitexp.data.remote import DataRemote, TransferReport, open_remote
from gitexp.data.session import cache_root
from gitexp.errors import GitexpError, RunInProgress
from gitexp.model import Progress
from gitexp.store import Store
from gitexp.trust import require_remote

RUNS_REFSPEC = f"{fmt.REF_PREFIX}*:{fmt.REF_PREFIX}*"
# A glob, so that a repository without notes yet does not make a plain git push or fetch fail.
NOTES_REFSPEC = f"{fmt.NOTES_REF}*:{fmt.NOTES_REF}*"


class GitFailed(GitexpError):
    pass


@dataclass
class ShareReport:
    refs: list[str] = field(default_factory=list)  # lines git reported as updated
    rejected: list[str] = field(default_factory=list)  # "ref: reason" git refused
    data: TransferReport | None = None
    data_remote: str | None = None
    warnings: list[str] = field(default_factory=list)


def init(store: Store, remotes: list[str]) -> list[str]:
    """Make plain `git push` / `git fetch` carry runs and their notes; return what was added.

    Fetch never forces (a different local run of the same name is kept and the
    clash reported by git). For push, a remote without push refspecs first gets
    `HEAD`, so a plain `git push` still pushes the current branch (to the branch
    of the same name: like push.default=current).
    """
    names = remotes or store.remote_names()
    if not names:
        raise GitexpError("this repository has no git remote (add one with: git remote add origin URL)")
    added = []
    for remote in names:
        if remote not in store.remote_names():
            raise GitexpError(f"no git remote named {remote!r} (see: git remote -v)")
        fetch = store.config_values(f"remote.{remote}.fetch")
        push = store.config_values(f"remote.{remote}.push")
        wanted = [(f"remote.{remote}.fetch", v) for v in (RUNS_REFSPEC, NOTES_REFSPEC) if v not in fetch]
        if not push:
            wanted.append((f"remote.{remote}.push", "HEAD"))
        wanted += [(f"remote.{remote}.push", v) for v in (RUNS_REFSPEC, NOTES_REFSPEC) if v not in push]
        for key, value in wanted:
            store.add_config_value(key, value)
            added.append(f"{key} {value}")
    return added


def push(
    store: Store, remote: str, runs: list[str], data_remote: str | None, progress: Progress, verify_remote: bool = False
) -> ShareReport:
    """git push the runs (all by default) and their notes; then send their data the data remote lacks."""
    refspecs = [f"{fmt.REF_PREFIX}{n}:{fmt.REF_PREFIX}{n}" for n in runs] or [RUNS_REFSPEC]
    report = ShareReport()
    in_progress = _in_progress(store)
    for name in runs:
        if name in in_progress:
            raise RunInProgress(name)
    if not runs:  # a run in progress would later end as a commit that does not fast-forward the pushed one
        refspecs += [f"^{fmt.REF_PREFIX}{name}" for name in sorted(in_progress)]
        report.warnings += [f"{name} has not finished (queued, running, or crashed and not yet finalized): not pushed"
                            for name in sorted(in_progress)]
    refspecs.append(NOTES_REFSPEC)
    target = _data_remote(store, data_remote, remote, sending=True)  # refused before anything is sent
    _git_transfer(store.root, ["push", "--porcelain", remote, *refspecs], report)
    if target is None:
        _no_data_remote(store, runs, report)
    else:
        report.data_remote = target.url
        digests = _wanted(store, runs)
        cache = Cache(cache_root(store.git_common_dir()))
        progress.start("pushing data", sum(cache.path(d).stat().st_size for d in digests if cache.has(d)))
        try:
            report.data = target.push(cache, digests, progress.advance, verify_remote)
        finally:
            progress.done()
    return report


def _in_progress(store: Store) -> set[str]:
    """Names of the runs whose commit is not their final one yet: queued, running, or crashed and not finalized.

    Their final commit does not fast-forward this one, so pushing it now would block pushing the run later.
    """
    return {r.name for r in store.summaries() if r.status in ("queued", "running")}


def pull(store: Store, remote: str, runs: list[str], data_remote: str | None, progress: Progress, data: bool = True) -> ShareReport:
    """git fetch the runs (all by default) and notes, never replacing a local run; then fetch their data."""
    refspecs = [f"{fmt.REF_PREFIX}{n}:{fmt.REF_PREFIX}{n}" for n in runs] or [RUNS_REFSPEC]
    refspecs.append(NOTES_REFSPEC)
    report = ShareReport()
    _git_transfer(store.root, ["fetch", remote, *refspecs], report)
    target = _data_remote(store, data_remote, remote) if data else None
    if target is None and data:
        _no_data_remote(store, runs, report)
    if target is not None:
        report.data_remote = target.url
        cache = Cache(cache_root(store.git_common_dir()))
        progress.start("pulling data", 0)
        try:
            report.data = target.pull(cache, _wanted(store, runs), progress.advance)
        finally:
            progress.done()
    return report


def _no_data_remote(store: Store, runs: list[str], report: ShareReport) -> None:
    if _wanted(store, runs):
        report.warnings.append(
            "these runs point to data, but no data remote is configured, so their data did not travel "
            "(gitexp remote add NAME DIR-OR-URL, and commit .gitexp.yaml)"
        )


def _wanted(store: Store, runs: list[str]) -> set[str]:
    """Digests of the cached content the given runs (all when empty) point to."""
    chosen = set(runs)
    return {u.digest for u in uses(store) if u.cached and (not chosen or u.run in chosen)}


def data_remotes(store: Store) -> dict[str, str]:
    """The data remotes: those of .gitexp.yaml (shared with the team), then this clone's own from .git/config."""
    return {**dict(config_mod.load(store.root).remotes), **store.local_data_remotes()}


def _data_remote(store: Store, name: str | None, git_remote: str, sending: bool = False) -> DataRemote | None:
    """The data remote to use; one to send to must be this clone's own or allowed by it (gitexp.trust)."""
    remotes = data_remotes(store)
    if name is not None:
        if name not in remotes:
            raise GitexpError(f"no data remote named {name!r} (add one with: gitexp remote add {name} URL)")
    elif not remotes:
        return None
    elif len(remotes) == 1:
        name = next(iter(remotes))
    elif git_remote in remotes:
        name = git_remote
    else:
        raise GitexpError(f"several data remotes are configured ({', '.join(remotes)}); choose one with --data-remote")
    if sending:
        require_remote(store, name, remotes[name])
    return open_remote(remotes[name], store.root)


# git push --porcelain (stdout): "!<TAB>src:dst<TAB>[rejected] (why)"; git fetch (stderr, no --porcelain
# before git 2.41): " ! [rejected]   src -> dst  (why)". Updated refs: "*", "+", " ", "-" flags.
_PUSH_LINE = re.compile(r"^(?P<flag>[*+ !=-])\t(?P<ref>\S+)\t(?P<summary>.*)$")
_FETCH_LINE = re.compile(r"^ (?P<flag>[*+ !=t-]) +(?P<summary>\[[^]]+\]|\S+) +\S+ +-> +(?P<ref>\S+)(?: +\((?P<why>.*)\))?$")


def _git_transfer(root: Path, args: list[str], report: ShareReport) -> None:
    """Run git push/fetch with the user's own git; turn refusals into clear reasons."""
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    lines = proc.stdout.splitlines() if args[0] == "push" else proc.stderr.splitlines()
    for line in lines:
        match = _PUSH_LINE.match(line) if args[0] == "push" else _FETCH_LINE.match(line)
        if match is None or match["flag"] == "=":
            continue
        ref = match["ref"].split(":")[-1]
        if match["flag"] == "!":
            why = match.groupdict().get("why") or match["summary"].partition("(")[2].rstrip(")") or match["summary"]
            report.rejected.append(f"{ref}: {_reason(why)}")
        else:
            report.refs.append(ref)
    if proc.returncode != 0 and not report.rejected:
        message = " ".join(proc.stderr.strip().splitlines()[-2:]) or f"git {args[0]} failed"
        raise GitFailed(f"git {args[0]} failed: {message}")


def _reason(why: str) -> str:
    if "non-fast-forward" in why or "already exists" in why or "fetch first" in why or "would clobber" in why:
        return f"{why}: the other side has a different run of that name; nothing was overwritten (rename yours, or delete one)"
    return why

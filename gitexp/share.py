"""Sharing runs: refs travel with the user's own `git` (credentials, SSH and all); data to a data remote."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gitexp import config as config_mod
from gitexp import format as fmt
from gitexp.data.cache import Cache
from gitexp.data.needs import Needs, Totals
from gitexp.data.remote import DataRemote, TransferReport, open_remote
from gitexp.data.session import cache_root
from gitexp.errors import GitexpError, RunInProgress
from gitexp.model import Progress
from gitexp.store import Store
from gitexp.trust import require_remote

RUNS_REFSPEC = f"{fmt.REF_PREFIX}*:{fmt.REF_PREFIX}*"
# Runs gitexp saved on its own (work in progress before a checkout) are named saved-*: a plain git push leaves
# them out (git 2.29+ negative refspec). A refspec cannot select by status, so one named so by hand is left out too.
SAVED_PUSH_REFSPEC = f"^{fmt.REF_PREFIX}saved-*"
# How long `gitexp rm` waits for a remote to list its runs.
LS_REMOTE_TIMEOUT = 20
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
    handed_over: list[str] = field(default_factory=list)  # queued runs pushed to the remote's queue


def init(store: Store, remotes: list[str]) -> list[str]:
    """Make plain `git push` / `git fetch` carry runs and their notes; return what was added.

    Fetch never forces (a different local run of the same name is kept and the
    clash reported by git). For push, a remote without push refspecs first gets
    `HEAD`, so a plain `git push` still pushes the current branch (to the branch
    of the same name: like push.default=current); runs named saved-* stay out.
    Pruning is turned off for the remote (unless set for it already): a pruning
    fetch deletes every local ref its refspecs map that the remote lacks, which
    would be every run not pushed yet.
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
        wanted += [(f"remote.{remote}.push", v) for v in (RUNS_REFSPEC, SAVED_PUSH_REFSPEC, NOTES_REFSPEC) if v not in push]
        if not store.config_values(f"remote.{remote}.prune"):  # fetch.prune=true would delete every run it lacks
            wanted.append((f"remote.{remote}.prune", "false"))
        for key, value in wanted:
            store.add_config_value(key, value)
            added.append(f"{key} {value}")
    return added


def push(
    store: Store, remote: str, runs: list[str], data_remote: str | None, progress: Progress, verify_remote: bool = False,
    include_saved: bool = False,
) -> ShareReport:
    """git push the runs (all by default) and their notes; then send their data the data remote lacks.

    All runs means all but those not finished and, unless include_saved, those with status `saved`
    (work in progress gitexp saved before a checkout): those are pushed only when named.
    """
    report = ShareReport()
    needs = Needs(store)
    totals = needs.totals()  # statuses and data of every run, derived once per commit id, added up once per refs
    in_progress = {n for n, status in totals.special.items() if status in ("queued", "running")}
    queued = {n for n, status in totals.special.items() if status == "queued"}  # handed over to the remote's queue
    for name in runs:
        if name in in_progress - queued:
            raise RunInProgress(name)
    handing = [n for n in runs if n in queued] if runs else sorted(queued)
    finished = [n for n in runs if n not in queued]
    refspecs = [f"{fmt.REF_PREFIX}{n}:{fmt.REF_PREFIX}{n}" for n in finished] or ([] if runs else [RUNS_REFSPEC])
    left_out: set[str] = set()
    if not runs:  # a run in progress would later end as a commit that does not fast-forward the pushed one
        saved = set() if include_saved else {n for n, status in totals.special.items() if status == "saved"}
        left_out = in_progress | saved
        refspecs += [f"^{fmt.REF_PREFIX}{name}" for name in sorted(left_out)]
        report.warnings += [f"{name} has not finished (running, or crashed and not yet finalized): not pushed"
                            for name in sorted(in_progress - queued)]
        if saved:
            report.warnings.append(
                f"{len(saved)} saved run(s) not pushed ({_some(saved)}: work in progress gitexp saved before a "
                "checkout); name them, or add --include-saved"
            )
    refspecs.append(NOTES_REFSPEC)
    target = _data_remote(store, data_remote, remote, sending=True)  # refused before anything is sent
    _git_transfer(store.root, ["push", "--porcelain", remote, *refspecs], report)
    if runs:
        lfs = runs if store.info_attributes_use_lfs() else [n for n in runs if n in totals.lfs]
    else:
        every = [n for n, _ in store.run_refs()] if store.info_attributes_use_lfs() else totals.lfs
        lfs = [n for n in every if n not in left_out]
    _lfs_transfer(store, remote, lfs, report, sending=True)
    # a queued run's inputs go too: for the remote's workers
    digests = _wanted(needs, runs, report) if runs else _every_wanted(totals, report, ("", "queued", *(["saved"] if include_saved else [])))
    if target is None:
        _no_data_remote(digests, report)
    else:
        report.data_remote = target.url
        cache = Cache(cache_root(store.git_common_dir()))
        cache.pin(digests)  # a concurrent rm and gc cannot take them from under the push
        try:
            report.data = target.push(cache, digests, progress.advance, verify_remote,
                                      start=lambda total: progress.start("pushing data", total))
        finally:
            progress.done()
            cache.release()
    _keep(needs)
    if handing:  # after its inputs: a worker may claim it at once
        from gitexp.remote_queue import hand_over

        report.handed_over, rejected = hand_over(store, remote, handing)
        report.rejected += rejected
    return report


def _keep(needs: Needs) -> None:
    """Save what was derived; when every run was asked about, commits no run points to any more are dropped."""
    needs.forget_unused()
    needs.save()


def _some(names: set[str], shown: int = 5) -> str:
    listed = sorted(names)
    return ", ".join(listed[:shown]) + (f" and {len(listed) - shown} more" if len(listed) > shown else "")


def fetches_runs(store: Store, remote: str) -> bool:
    """Whether a plain `git fetch` from remote writes refs/experiments/* (gitexp init, or a refspec of the user's)."""
    for spec in store.config_values(f"remote.{remote}.fetch"):
        _, _, dst = spec.lstrip("+").partition(":")
        if dst.startswith(fmt.REF_PREFIX) or (dst.endswith("*") and fmt.REF_PREFIX.startswith(dst.rstrip("*"))):
            return True
    return False


def remote_runs(store: Store, remote: str) -> dict[str, str]:
    """The runs git remote has now (name -> commit), asked with `git ls-remote` (no prompt, bounded wait)."""
    import os

    args = ["git", "ls-remote", "--refs", remote, f"{fmt.REF_PREFIX}*"]
    try:
        proc = subprocess.run(
            args, cwd=store.root, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
            timeout=LS_REMOTE_TIMEOUT, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except subprocess.TimeoutExpired as exc:
        raise GitFailed(f"git ls-remote {remote} did not answer within {LS_REMOTE_TIMEOUT} s") from exc
    if proc.returncode != 0:
        message = " ".join(proc.stderr.strip().splitlines()[-2:]) or "failed"
        raise GitFailed(f"git ls-remote {remote} failed: {message}")
    found = {}
    for line in proc.stdout.splitlines():
        commit, _, ref = line.partition("\t")
        if ref.startswith(fmt.REF_PREFIX):
            found[ref[len(fmt.REF_PREFIX) :]] = commit
    return found


def coming_back(store: Store, deleted: list[str]) -> list[str]:
    """What to tell the user about runs just deleted here that a plain `git fetch` would bring back.

    Only remotes a plain fetch takes runs from (gitexp init) are asked, once each (git ls-remote): whether
    they still have a run is known there only, since the fetch writes runs straight to refs/experiments/*.
    """
    lines = []
    for remote in store.remote_names() if deleted else []:
        if not fetches_runs(store, remote):
            continue
        try:
            there = remote_runs(store, remote)
        except GitFailed as exc:
            lines.append(
                f"could not ask {remote} whether it still has {', '.join(deleted)} ({exc.message}); if it does, "
                f"the next git fetch brings them back (to delete them there: gitexp rm --remote {remote} {' '.join(deleted)})"
            )
            continue
        back = [n for n in deleted if n in there]
        if back:
            lines.append(
                f"{remote} still has {', '.join(back)}: the next git fetch brings {'it' if len(back) == 1 else 'them'} back "
                f"(to delete {'it' if len(back) == 1 else 'them'} there too: gitexp rm --remote {remote} {' '.join(back)})"
            )
    return lines


def delete_remote(store: Store, remote: str, runs: dict[str, str]) -> ShareReport:
    """Delete runs (name -> the commit it must still be at there) on git remote, with the user's git push.

    A run that moved there since it was listed is not deleted (rejected: stale info). git also deletes
    the local ref a fetch refspec maps it to (with gitexp init: the run's own ref here).
    """
    report = ShareReport()
    if runs:
        leases = [f"--force-with-lease={fmt.REF_PREFIX}{n}:{c}" for n, c in sorted(runs.items())]
        _git_transfer(store.root, ["push", "--porcelain", *leases, remote, *(f":{fmt.REF_PREFIX}{n}" for n in sorted(runs))], report)
    return report


def pull(store: Store, remote: str, runs: list[str], data_remote: str | None, progress: Progress, data: bool = True) -> ShareReport:
    """git fetch the runs (all by default) and notes, never replacing a local run; then fetch their data."""
    refspecs = [f"{fmt.REF_PREFIX}{n}:{fmt.REF_PREFIX}{n}" for n in runs] or [RUNS_REFSPEC]
    refspecs.append(NOTES_REFSPEC)
    report = ShareReport()
    _git_transfer(store.root, ["fetch", remote, *refspecs], report)
    # A large pull leaves one loose file per run: git packs them while what the runs need is added up (the
    # refs listed by git itself meanwhile: see Store.run_refs_from_git) and their data travels.
    packing = store.start_packing_refs()
    try:
        if data:
            listed = None
            if packing is not None:
                listed = store.run_refs_from_git([])  # (odd refs are `list`'s to name)
                if listed is None:
                    packing.wait()  # (git could not list them: libgit2 does, once they are packed)
            _pull_data(store, remote, runs, data_remote, progress, report, listed)
    finally:
        if packing is not None:
            packing.wait()
    return report


def _pull_data(
    store: Store, remote: str, runs: list[str], data_remote: str | None, progress: Progress, report: ShareReport,
    refs: list[tuple[str, str]] | None,
) -> None:
    """The Git LFS objects and the data of the runs a pull fetched (runs: those named, else all).
    refs: every run ref, when the caller listed them (see Needs.totals)."""
    needs = Needs(store)
    totals = needs.totals(refs)
    fetched = set(runs) | {r.removeprefix(fmt.REF_PREFIX) for r in report.refs if r.startswith(fmt.REF_PREFIX)}
    uses_lfs = store.info_attributes_use_lfs()
    _lfs_transfer(store, remote, sorted(n for n in fetched if uses_lfs or n in totals.lfs), report, sending=False)
    target = _data_remote(store, data_remote, remote)
    digests = _wanted(needs, runs, report) if runs else _every_wanted(totals, report, ("", "queued", "running", "saved"))
    if target is None:
        _no_data_remote(digests, report)
    else:
        report.data_remote = target.url
        cache = Cache(cache_root(store.git_common_dir()))
        progress.start("pulling data", 0)
        try:
            report.data = target.pull(cache, digests, progress.advance)
        finally:
            progress.done()
            cache.release()  # the pulled objects' pins: the fetched runs point at them
    _keep(needs)


def _lfs_transfer(store: Store, remote: str, runs: list[str], report: ShareReport, sending: bool) -> None:
    """The Git LFS objects the runs' code points to travel through the git remote's own LFS storage, with
    git-lfs (`git lfs push REMOTE --object-id`, `git lfs fetch REMOTE REF`), as a branch's would: a run
    with a modified LFS file needs its object wherever it is checked out. runs: those that may use it
    (filter=lfs in their .gitattributes, known per commit; every run when .git/info/attributes sets it).
    Failures are warnings (the runs themselves went)."""
    import shutil

    wanted: dict[str, str] = {}  # oid -> run
    for name in runs:
        commit = store.run_commit(name)
        try:  # a run may come from anyone: one whose tree cannot be walked is skipped, with a warning
            found = store.lfs_pointers(commit) if commit else None
            if not commit or not found or (not sending and not found[1]):
                continue
            oids = store.lfs_oids(commit)
        except (GitexpError, RecursionError, KeyError, ValueError) as exc:
            report.warnings.append(f"run {name}: its Git LFS files were not looked at ({exc})"[:300])
            continue
        for oid in oids:
            wanted.setdefault(oid, name)
    if not wanted:
        return
    if shutil.which("git-lfs") is None:
        report.warnings.append(f"these runs use {len(wanted)} Git LFS object(s) and git-lfs is not installed: they did not travel")
        return
    objects = store.git_common_dir() / "lfs" / "objects"
    if sending:
        here = sorted(o for o in wanted if (objects / o[:2] / o[2:4] / o).is_file())
        batches = [["lfs", "push", remote, "--object-id", *here[i : i + 200]] for i in range(0, len(here), 200)]
        if len(here) < len(wanted):
            report.warnings.append(f"{len(wanted) - len(here)} Git LFS object(s) the runs use are not in this clone: not sent")
    else:
        refs = sorted({fmt.REF_PREFIX + n for n in wanted.values()})
        batches = [["lfs", "fetch", remote, *refs[i : i + 100]] for i in range(0, len(refs), 100)]
    for args in batches:
        proc = subprocess.run(["git", *args], cwd=store.root, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            reason = " ".join(proc.stderr.strip().splitlines()[-2:])
            report.warnings.append(f"git {' '.join(args[:2])} of the runs' Git LFS objects failed: {reason}")


def _no_data_remote(digests: set[str], report: ShareReport) -> None:
    if digests:
        report.warnings.append(
            "these runs point to data, but no data remote is configured, so their data did not travel "
            "(gitexp remote add NAME DIR-OR-URL, and commit .gitexp.yaml)"
        )


def _wanted(needs: Needs, runs: list[str], report: ShareReport) -> set[str]:
    """Digests of the cached content the named runs point to; a run whose record cannot be read is left
    out, with a warning in report."""
    problems: list[str] = []
    found: set[str] = set()
    for name in runs:
        commit = needs.store.run_commit(name)
        need = needs.of(name, commit, problems) if commit else None
        if need is not None and need.digests:
            found |= need.digests
    report.warnings += [p for p in problems if p not in report.warnings]
    return found


def _every_wanted(totals: Totals, report: ShareReport, statuses: tuple[str, ...]) -> set[str]:
    """Digests of the cached content of every run whose status is one of statuses ("": any other status);
    runs whose record cannot be read are left out, with a warning in report."""
    report.warnings += [p for p in totals.problems if p not in report.warnings]
    return set().union(*(totals.digests[s] for s in statuses))


def data_remotes(store: Store) -> dict[str, str]:
    """The data remotes: those of .gitexp.yaml (shared with the team), then this clone's own from .git/config."""
    return {**dict(config_mod.load(store.root).remotes), **store.local_data_remotes()}


def data_remote_name(remotes: dict[str, str], name: str | None, git_remote: str) -> str | None:
    """Which of remotes a transfer with git remote git_remote uses: name if given, else the only one, else
    the one named like the git remote; None when there are none."""
    if name is not None:
        if name not in remotes:
            raise GitexpError(f"no data remote named {name!r} (add one with: gitexp remote add {name} URL)")
        return name
    if not remotes:
        return None
    if len(remotes) == 1:
        return next(iter(remotes))
    if git_remote in remotes:
        return git_remote
    raise GitexpError(f"several data remotes are configured ({', '.join(remotes)}); choose one with --data-remote")


def _data_remote(store: Store, name: str | None, git_remote: str, sending: bool = False) -> DataRemote | None:
    """The data remote to use; one to send to must be this clone's own or allowed by it (gitexp.trust)."""
    remotes = data_remotes(store)
    name = data_remote_name(remotes, name, git_remote)
    if name is None:
        return None
    if sending:
        require_remote(store, name, remotes[name])
    return open_remote(remotes[name], store.root)


# git push --porcelain (stdout): "!<TAB>src:dst<TAB>[rejected] (why)"; git fetch (stderr, no --porcelain
# before git 2.41): " ! [rejected]   src -> dst  (why)". Updated refs: "*", "+", " ", "-" flags.
_PUSH_LINE = re.compile(r"^(?P<flag>[*+ !=-])\t(?P<ref>\S+)\t(?P<summary>.*)$")
_FETCH_LINE = re.compile(r"^ (?P<flag>[*+ !=t-]) +(?P<summary>\[[^]]+\]|\S+) +\S+ +-> +(?P<ref>\S+)(?: +\((?P<why>.*)\))?$")


def _git_transfer(root: Path, args: list[str], report: ShareReport) -> None:
    """Run git push/fetch with the user's own git; turn refusals into clear reasons."""
    # `push --porcelain` lists every ref, up to date or not, and would first work out how to abbreviate each
    # one's commit id: 0.1 s at 100,000 runs, for nothing. core.abbrev=no (git 2.31+; retried without).
    quick = ["-c", "core.abbrev=no"] if args[0] == "push" else []
    proc = subprocess.run(["git", *quick, *args], cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if quick and proc.returncode != 0 and "core.abbrev" in proc.stderr:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    lines = [line for line in proc.stdout.splitlines() if line[:1] != "="] if args[0] == "push" else proc.stderr.splitlines()
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

"""The queue over a git remote: runs queued on a shared remote, claimed and run by workers anywhere.

The remote is the only meeting point. A queued run handed over to it (`gitexp push`) is a ref
`refs/gitexp-queue/<name>` at its `queued` commit. A worker (`gitexp queue work --remote R`, in a
temporary repository of its own) fetches only those refs, and claims a run by a compare-and-swap push
(`git push --atomic --force-with-lease=REF:QUEUED R CLAIM:REF`) of a `running` commit carrying its
lease (`Gitexp-Lease: <host> <pid> <lease end>`); a rejected push means another worker won. It renews
the lease by the same kind of push while the run is alive, runs the run as a local queue worker does,
sends its outputs to the data remote, and pushes the final commit to `refs/experiments/<name>` while
deleting the queue ref, in one atomic compare-and-swap push. A claim whose lease ended belongs to a
dead worker: the next worker records that run `crashed` (same kind of push) and, with
`--retry-crashed N`, queues it again as `<name>-attempt<k>` linked to the crashed one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gitexp import format as fmt
from gitexp.environment import hostname
from gitexp.errors import GitexpError
from gitexp.model import RunSummary
from gitexp.queue import Outcome, Stopped, _describe, _execute_in, _terminate_on_signals
from gitexp.recorder import Notify
from gitexp.store import Store
from gitexp.workspace import pid_alive

PREFIX = fmt.QUEUE_PREFIX
TEMP_PREFIX = "gitexp-rq-"
DEFAULT_LEASE = 300.0
RENEW_FRACTION = 5  # a lease is renewed every lease / 5 (a minute for the default 5 minutes)
GIT_TIMEOUT = 120.0  # seconds a fetch or push may take before the remote counts as down
MAX_ATTEMPT = 1000
_LEASE = re.compile(r"([A-Za-z0-9._-]{1,253}) ([0-9]{1,10}) ([0-9]{1,12})")
_ATTEMPT_SUFFIX = re.compile(r"-attempt[0-9]+$")
_HEX40 = re.compile(r"[0-9a-f]{40}")


class RemoteDown(GitexpError):
    """The git remote could not be reached, or refused for a reason that is not a lost race."""


@dataclass(frozen=True)
class Lease:
    host: str
    pid: int
    until: int  # unix seconds

    def text(self) -> str:
        return f"{self.host} {self.pid} {self.until}"


@dataclass(frozen=True)
class Entry:
    """One run of a remote queue: its ref's commit, read and checked."""

    run: RunSummary
    lease: Lease | None = None
    attempt: int = 1
    retry_of: str | None = None

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def ref(self) -> str:
        return PREFIX + self.run.name

    def to_dict(self, now: float) -> dict[str, Any]:
        out = self.run.to_dict()
        out["attempt"] = self.attempt
        out["retry_of"] = self.retry_of
        out["lease"] = (
            {"host": self.lease.host, "pid": self.lease.pid, "until": self.lease.until, "left": round(self.lease.until - now, 1)}
            if self.lease else None
        )
        return out


def own_lease(seconds: float) -> Lease:
    """A lease of this process that ends in `seconds`; its host name spelled as a lease allows."""
    host = re.sub(r"[^A-Za-z0-9._-]", "_", hostname())[:253] or "host"
    return Lease(host, os.getpid(), int(time.time() + seconds))


def parse_lease(text: str) -> Lease:
    match = _LEASE.fullmatch(text)
    if match is None:
        raise ValueError(f"its {fmt.T_LEASE} trailer is not '<host> <pid> <unix time>'")
    return Lease(match[1], int(match[2]), int(match[3]))


def read_entry(store: Store, refname: str, target: str | None) -> Entry:
    """The run at a queue ref; GitexpError naming what is wrong with it (a remote may send anything)."""
    from gitexp.names import validate

    name = refname[len(PREFIX) :]
    try:
        validate(name)
    except GitexpError as exc:
        raise GitexpError(f"not a run name: {exc.message}") from None
    if target is None:
        raise GitexpError("a symbolic ref")
    run = store.summary(name, target)  # not a commit, too large, a newer format: refused here
    trailers = fmt.parse_trailers(store.commit_message(target))
    if trailers.get(fmt.T_RUN) != name:
        raise GitexpError(f"its {fmt.T_RUN} trailer does not name {name!r}")
    if run.status not in ("queued", "running"):
        raise GitexpError(f"its status is {run.status!r}, not queued or running")
    lease = None
    if run.status == "running":
        try:
            lease = parse_lease(trailers.get(fmt.T_LEASE, ""))
        except ValueError as exc:
            raise GitexpError(str(exc)) from None
    attempt_text = trailers.get(fmt.T_ATTEMPT, "1")
    if not (attempt_text.isascii() and attempt_text.isdigit() and 1 <= int(attempt_text[:5]) <= MAX_ATTEMPT):
        raise GitexpError(f"its {fmt.T_ATTEMPT} trailer is not a number from 1 to {MAX_ATTEMPT}")
    retry_of = trailers.get(fmt.T_RETRY_OF)
    if retry_of is not None and not _HEX40.fullmatch(retry_of):
        raise GitexpError(f"its {fmt.T_RETRY_OF} trailer is not a commit id")
    return Entry(run, lease, int(attempt_text), retry_of)


def entries(store: Store, problems: list[str]) -> list[Entry]:
    """The runs of the queue refs here, oldest first; each ref that cannot be one is described in problems."""
    from gitexp.render import inert

    out = []
    for refname, target in store.refs_under(PREFIX):
        try:
            out.append(read_entry(store, refname, target))
        except GitexpError as exc:
            problems.append(
                f"refused {inert(refname)[:200]}: {exc.message[:300]} (nothing run; if it is not a run, delete it "
                f"on the remote: git push REMOTE :{inert(refname)[:200]})"
            )
    return sorted(out, key=lambda e: (e.run.started_at, e.name))


# -- git, with bounded waits ------------------------------------------------------


def _git(cwd: Path, args: list[str], timeout: float = GIT_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL,
            check=False, timeout=timeout, env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise RemoteDown(f"git {args[0]} did not finish within {timeout:.0f} s") from exc


def _last_lines(text: str) -> str:
    return " ".join(line.strip() for line in text.strip().splitlines()[-2:]) or "failed"


def fetch_queue(root: Path, remote: str) -> None:
    """Fetch the remote's queue refs, and only those (protocol v2 asks for refs/gitexp-queue/ alone), into
    refs/gitexp-queue/* here, removing those gone there."""
    proc = _git(root, ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--prune", remote,
                       f"+{PREFIX}*:{PREFIX}*"])
    if proc.returncode != 0:
        raise RemoteDown(f"cannot fetch the queue from {remote}: {_last_lines(proc.stderr)}")


# How git reports a ref that moved under a push (on our side: stale info; on the remote's, under its lock).
_LOST_RACE = ("stale info", "fetch first", "non-fast-forward", "already exists", "failed to update ref", "atomic",
              "cannot lock ref", "failed to lock", "but expected")


def cas_push(root: Path, remote: str, expected: dict[str, str], updates: list[str]) -> bool:
    """git push --atomic: every ref in expected must still be at its commit there ("": must not exist).

    True when pushed; False when a ref had moved (another worker won); RemoteDown otherwise.
    """
    leases = [f"--force-with-lease={ref}:{old}" for ref, old in expected.items()]
    proc = _git(root, ["push", "--porcelain", "--atomic", "--no-verify", *leases, remote, *updates])
    if proc.returncode == 0:
        return True
    rejected = [line for line in proc.stdout.splitlines() if line.startswith("!\t")]
    if rejected and any(why in line for line in rejected for why in _LOST_RACE):
        return False
    raise RemoteDown(f"cannot push to {remote}: {_last_lines(proc.stderr or proc.stdout)}")


# -- commits of the queue --------------------------------------------------------------


def _message(entry: Entry, status: str, extra: list[tuple[str, str]], name: str | None = None,
             recorder: str = "", note: str | None = None) -> str:
    run = replace(entry.run, name=name or entry.name, status=status, recorder=recorder)
    command_part = entry.run.subject.partition(" (")[2]
    subject = f"{run.name}: {status}" + (f" ({command_part}" if command_part else "")
    return fmt.build_message(subject, entry.run.note if note is None else note, fmt.run_trailers(run) + extra)


def _run_json(store: Store, entry: Entry, **changes: Any) -> bytes:
    from gitexp.safeload import json_object

    meta = json_object(store.read_record(entry.run.commit, fmt.RUN_FILE) or b"{}", f"run.json of {entry.name!r}")
    meta.update(changes)
    return fmt.to_json(meta).encode()


def claim_commit(store: Store, entry: Entry, queued: str, lease: Lease) -> str:
    """A `running` commit of the queued run (same tree and parents) naming this worker and its lease."""
    extra = [(fmt.T_LEASE, lease.text())] + _attempt_trailers(entry)
    message = _message(entry, "running", extra, recorder=f"{lease.pid}@{lease.host}")
    return store.amended_commit(queued, {}, message)


def _attempt_trailers(entry: Entry) -> list[tuple[str, str]]:
    out = [(fmt.T_ATTEMPT, str(entry.attempt))] if entry.attempt > 1 else []
    return out + ([(fmt.T_RETRY_OF, entry.retry_of)] if entry.retry_of else [])


def crashed_commit(store: Store, entry: Entry, why: str) -> str:
    """The final `crashed` commit of a claimed run whose worker died (its logs died with it)."""
    now = datetime.now(timezone.utc).astimezone().isoformat(timespec="milliseconds")
    incomplete = [{"what": "logs", "why": why}]
    run_json = _run_json(store, entry, status="crashed", ended=now, incomplete=incomplete)
    final = replace(entry.run, incomplete=("logs",))
    message = _message(Entry(final, None, entry.attempt, entry.retry_of), "crashed", _attempt_trailers(entry))
    return store.amended_commit(entry.run.commit, {fmt.RUN_FILE: run_json}, message)


def retry_name(name: str, attempt: int) -> str:
    from gitexp.names import MAX_LENGTH

    suffix = f"-attempt{attempt}"
    return _ATTEMPT_SUFFIX.sub("", name)[: MAX_LENGTH - len(suffix)] + suffix


def retry_commit(store: Store, entry: Entry, crashed: str) -> tuple[str, str]:
    """(name, commit) of the run queued again: the same run as a new attempt, linked to the crashed one."""
    attempt = entry.attempt + 1
    name = retry_name(entry.name, attempt)
    note = (entry.run.note + "\n\n" if entry.run.note else "") + f"attempt {attempt}: retry of crashed run {entry.name} ({crashed[:12]})"
    run_json = _run_json(store, entry, name=name, status="queued", note=note)
    again = Entry(entry.run, None, attempt, crashed)
    message = _message(again, "queued", _attempt_trailers(again), name=name, note=note)
    return name, store.amended_commit(entry.run.commit, {fmt.RUN_FILE: run_json}, message)


# -- the worker --------------------------------------------------------------------


class _Held:
    """Stop signals caught while a step of the protocol ran: raise_caught() raises them afterwards."""

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.outcome: Outcome | None = None

    def stash(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def raise_caught(self) -> None:
        if self.caught:
            raise Stopped(self.caught[0], [self.outcome] if self.outcome else [])


@contextlib.contextmanager
def _held() -> Iterator[_Held]:
    """SIGINT, SIGTERM and SIGHUP wait until the block is done (a push half made would be lost), then count."""
    held = _Held()
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    watched = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, lambda signum, _frame: held.caught.append(signum)) for s in watched}
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class Options:
    remote: str
    idle_exit: float | None = None  # seconds with nothing to claim before the worker ends (None: never)
    lease: float = DEFAULT_LEASE
    retry_crashed: int = 0
    data_remote: str | None = None
    poll: float = 5.0  # seconds between looks at an empty queue

    @property
    def renew(self) -> float:
        return self.lease / RENEW_FRACTION


def remote_url(store: Store, remote: str) -> str:
    """The URL of git remote `remote` of this clone (insteadOf applied); a URL or path is taken as it is."""
    if remote in store.remote_names():
        proc = _git(store.root, ["remote", "get-url", remote], timeout=30)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    if "://" in remote or remote.startswith(("/", ".")) or ":" in remote:
        return remote
    raise GitexpError(f"no git remote named {remote!r} (see: git remote -v), and it is not a URL")


def remove_stale_temporaries() -> None:
    """Temporary repositories of workers on this host that were killed outright."""
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        pid = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid), hostname()):
            shutil.rmtree(path, ignore_errors=True)


class _Renewer(threading.Thread):
    """Keeps a claim's lease fresh: every `every` seconds, a new claim commit pushed over the last one."""

    def __init__(self, root: Path, url: str, entry: Entry, queued: str, claim: str, options: Options, notify: Notify) -> None:
        super().__init__(daemon=True)
        self.root, self.url, self.entry, self.queued, self.options, self.notify = root, url, entry, queued, options, notify
        self.current = claim
        self.lost = False
        self.done = threading.Event()

    def run(self) -> None:
        store = Store.discover(self.root)  # a repository object of its own: pygit2's are not shared across threads
        while not self.done.wait(self.options.renew):
            lease = own_lease(self.options.lease)
            try:
                new = claim_commit(store, self.entry, self.queued, lease)
                if cas_push(self.root, self.url, {self.entry.ref: self.current}, [f"{new}:{self.entry.ref}"]):
                    self.current = new
                else:
                    self.lost = True
                    self.notify(f"{self.entry.name}: its lease was taken over by another worker (renewals came too late)")
                    return
            except GitexpError as exc:  # the remote is down for now: try again next time, the lease may still hold
                self.notify(f"{self.entry.name}: lease not renewed: {exc.message}")

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()


@dataclass
class Worker:
    clone: Store
    options: Options
    notify: Notify
    url: str = ""
    scratch: Path = field(default_factory=Path)
    store: Store | None = None
    known: dict[str, Any] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)
    data: Any = None  # the DataRemote, opened when a run needs it

    def open(self) -> None:
        self.url = remote_url(self.clone, self.options.remote)
        self.scratch = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
        repo = self.scratch / "repo"
        proc = _git(self.scratch, ["init", "--quiet", str(repo)], timeout=60)
        if proc.returncode != 0:
            raise GitexpError(f"cannot create the worker's repository in {repo}: {_last_lines(proc.stderr)}")
        objects = self.clone.git_common_dir() / "objects"
        (repo / ".git" / "objects" / "info").mkdir(parents=True, exist_ok=True)
        (repo / ".git" / "objects" / "info" / "alternates").write_text(f"{objects}\n")  # the clone's objects: fetch less
        self.store = Store.discover(repo)
        self._data_remote()  # an untrusted or unknown data remote is refused before any run is claimed

    def close(self) -> None:
        from gitexp.signals import signals_deferred

        with signals_deferred():
            shutil.rmtree(self.scratch, ignore_errors=True)

    def look(self) -> list[Entry]:
        assert self.store is not None
        fetch_queue(self.store.root, self.url)
        problems: list[str] = []
        found = entries(self.store, problems)
        for line in problems:
            if line not in self.tried:
                self.tried.add(line)
                self.notify(line)
        return found

    def bury(self, entry: Entry) -> bool:
        """Record a run whose worker's lease ended as crashed; queue it again when retries are left."""
        assert self.store is not None and entry.lease is not None
        lease = entry.lease
        why = f"its worker ({lease.host}, pid {lease.pid}) stopped renewing its lease, which ended {datetime.fromtimestamp(lease.until, timezone.utc).isoformat(timespec='seconds')}"
        crashed = crashed_commit(self.store, entry, why)
        expected = {entry.ref: entry.run.commit, fmt.REF_PREFIX + entry.name: ""}
        updates = [f"{crashed}:{fmt.REF_PREFIX}{entry.name}", f":{entry.ref}"]
        again = ""
        if entry.attempt <= self.options.retry_crashed:
            name, commit = retry_commit(self.store, entry, crashed)
            expected[PREFIX + name] = ""
            updates.append(f"{commit}:{PREFIX}{name}")
            again = f"; queued again as {name} (attempt {entry.attempt + 1})"
        if not cas_push(self.store.root, self.url, expected, updates):
            return False  # another worker saw it first
        self.notify(f"{entry.name}: crashed: {why}{again}")
        return True

    def execute(self, entry: Entry) -> Outcome | None:
        """Claim, run and publish one queued run; None when another worker claimed it first."""
        from gitexp.restore import sync

        store = self.store
        assert store is not None
        queued = entry.run.commit
        overrides = tuple(entry.run.sweep.get("overrides", ()))
        try:
            self._fetch_inputs(entry)
            claim = claim_commit(store, entry, queued, own_lease(self.options.lease))
        except RemoteDown:
            raise
        except GitexpError as exc:  # nothing claimed: it stays queued for a worker that can run it
            self.notify(f"{entry.name}: not run: {exc.message}; left queued")
            return Outcome(entry.name, "error", None, None, overrides, exc.message)
        renewer: _Renewer | None = None
        result, error = None, ""
        try:
            with _held() as held:
                if not cas_push(store.root, self.url, {entry.ref: queued}, [f"{claim}:{entry.ref}"]):
                    self.notify(f"{entry.name}: taken by another worker")
                    return None
                renewer = _Renewer(store.root, self.url, entry, queued, claim, self.options, self.notify)
                renewer.start()
            held.raise_caught()
            store.set_ref(fmt.REF_PREFIX + entry.name, queued)
            self.notify(f"started {entry.name}" + (f" (attempt {entry.attempt})" if entry.attempt > 1 else ""))
            try:
                self.known = sync(store, entry.run, self.scratch / "workspace", self.known, ("inputs", "large_files"))
                result = _execute_in(store, entry.run, self.scratch / "workspace", self.notify)
            except GitexpError as exc:
                self.known, error = {}, exc.message
            except Stopped:
                raise  # SIGTERM before the command started: the run goes back to the queue (below)
            except Exception as exc:  # noqa: BLE001 - one run's trouble must not end the worker
                self.known, error = {}, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            # The recorder deletes the run's local ref when its command never started; a `running` one is left
            # when the command ran but its record could not be written (a full disk): that run must not run again.
            ran = store.run_commit(entry.name) not in (None, queued)
            if renewer is not None:
                renewer.stop()
                if result is None and not ran:  # it never started (or this worker is stopping): back to the queue
                    with _held(), contextlib.suppress(GitexpError):
                        cas_push(store.root, self.url, {entry.ref: renewer.current}, [f"{queued}:{entry.ref}"])
                    store.set_ref(fmt.REF_PREFIX + entry.name, None)
        if result is None and ran:
            self.notify(f"{entry.name}: its command ran but its record could not be written ({error}); left to its "
                        "lease: the next worker records it as crashed once the lease ends")
            return Outcome(entry.name, "error", None, None, overrides, error)
        if result is None:
            self.notify(f"{entry.name}: not run: {error}; left queued for another worker")
            return Outcome(entry.name, "error", None, None, overrides, error)
        run = result.run
        outcome = Outcome(run.name, run.status, run.exit_code, run.duration, overrides)
        with _held() as held:
            self._send_outputs(run)
            final = {fmt.REF_PREFIX + run.name: "", entry.ref: renewer.current}
            try:
                pushed = cas_push(store.root, self.url, final, [f"{run.commit}:{fmt.REF_PREFIX}{run.name}", f":{entry.ref}"])
            except RemoteDown as exc:
                raise RemoteDown(
                    f"{exc.message}; run {entry.name} is left to its lease (its result is lost with this worker; "
                    "once the lease ends the next worker records it as crashed)"
                ) from None
        if not pushed:
            error = ("its claim was taken over (the lease ended before it was renewed), or the remote has a run of that "
                     "name already: its result was not pushed")
            self.notify(f"{entry.name}: {error}")
            outcome = replace(outcome, status="error", error=error)
        else:
            self.notify(_describe(outcome))
        held.stash(outcome)
        held.raise_caught()
        return outcome

    def _data_remote(self) -> Any:
        if self.data is None:
            from gitexp.share import _data_remote

            self.data = _data_remote(self.clone, self.options.data_remote, self.options.remote, sending=True) or False
        return self.data or None

    def _fetch_inputs(self, entry: Entry) -> None:
        """Bring the inputs the queued run points to from the data remote into this worker's cache."""
        from gitexp.data.cache import Cache
        from gitexp.data.inventory import run_uses
        from gitexp.data.session import cache_root

        assert self.store is not None
        digests = {u.digest for u in run_uses(self.store, entry.name, entry.run.commit) if u.cached}
        if not digests:
            return
        cache = Cache(cache_root(self.store.git_common_dir()))
        missing = {d for d in digests if not cache.has(d)}
        if not missing:
            return
        target = self._data_remote()
        if target is None:
            raise GitexpError(f"run {entry.name} needs data and no data remote is configured (gitexp remote add NAME URL)")
        report = target.pull(cache, missing)
        if report.missing or report.rejected:
            raise GitexpError(f"run {entry.name}: {len(report.missing) + len(report.rejected)} data object(s) are not on the data remote (push them with: gitexp push)")

    def _send_outputs(self, run: RunSummary) -> None:
        from gitexp.data.cache import Cache
        from gitexp.data.inventory import run_uses
        from gitexp.data.session import cache_root

        assert self.store is not None
        digests = {u.digest for u in run_uses(self.store, run.name, run.commit) if u.cached}
        if not digests:
            return
        target = self._data_remote()
        if target is None:
            self.notify(f"{run.name}: its outputs stay in this worker (no data remote is configured)")
            return
        cache = Cache(cache_root(self.store.git_common_dir()))
        try:
            report = target.push(cache, digests)
        except (GitexpError, OSError) as exc:  # the run is published all the same: its record says what it made
            self.notify(f"{run.name}: its outputs could not be sent to the data remote: {getattr(exc, 'message', exc)}")
            return
        if report.missing or report.rejected:
            self.notify(f"{run.name}: {len(report.missing) + len(report.rejected)} output object(s) could not be sent")


CLAIM_SPREAD = 8  # a worker tries the oldest queued runs in random order, so that workers do not all race for one


def _claim_order(queued: list[Entry]) -> list[Entry]:
    """The order to try to claim queued runs (oldest first): the CLAIM_SPREAD oldest shuffled, then the rest."""
    import random

    head = queued[:CLAIM_SPREAD]
    random.shuffle(head)
    return head + queued[CLAIM_SPREAD:]


def work(clone: Store, options: Options, notify: Notify) -> list[Outcome]:
    """Work off the remote's queue until it has nothing to claim for options.idle_exit seconds.

    RemoteDown ends the worker (a run in progress is left to its lease); Stopped (SIGTERM, Ctrl-C)
    after the run in progress was recorded as interrupted, with the outcomes.
    """
    remove_stale_temporaries()
    for variable in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"):
        os.environ.pop(variable, None)  # they would point this worker's git, and the runs', at the clone
    worker = Worker(clone, options, notify)
    outcomes: list[Outcome] = []
    restore_signals = _terminate_on_signals()
    try:
        worker.open()
        idle_since = time.monotonic()
        while True:
            busy = False
            found = worker.look()
            for entry in found:
                if entry.run.status != "running" or entry.lease is None or entry.lease.until >= time.time():
                    continue
                if f"bury {entry.run.commit}" in worker.tried:
                    continue
                try:
                    busy = worker.bury(entry) or busy
                except RemoteDown:
                    raise
                except GitexpError as exc:  # its record cannot be read: leave it, say so once
                    worker.tried.add(f"bury {entry.run.commit}")
                    notify(f"{entry.name}: its lease ended but it cannot be recorded as crashed: {exc.message}")
            if busy:
                continue  # look again: the retries are queued now
            for entry in _claim_order([e for e in found if e.run.status == "queued" and e.name not in worker.tried]):
                worker.tried.add(entry.name)
                outcome = worker.execute(entry)
                if outcome is None:
                    continue  # another worker won it: the next one
                busy = True
                outcomes.append(outcome)
                if outcome.status == "interrupted":  # SIGTERM or Ctrl-C reached the command and this worker
                    raise Stopped(signal.SIGTERM)
                break  # look at the queue anew: others changed it meanwhile
            if busy:
                idle_since = time.monotonic()
                continue
            if options.idle_exit is not None and time.monotonic() - idle_since >= options.idle_exit:
                return outcomes
            time.sleep(min(options.poll, max(0.2, (options.idle_exit or options.poll) / 4)))
    except KeyboardInterrupt:
        raise Stopped(signal.SIGINT, outcomes) from None
    except Stopped as stop:
        raise Stopped(stop.signum, outcomes + stop.outcomes) from None
    finally:
        restore_signals()
        worker.close()


# -- the user's side: handing runs over, looking at the remote's queue ------------------------


def hand_over(store: Store, remote: str, names: list[str]) -> tuple[list[str], list[str]]:
    """Push queued runs to the remote's queue (create only), then keep them here as refs/gitexp-queue/<name>
    instead of refs/experiments/<name>, so that no local worker runs them too. (handed over, rejected lines)."""
    commits = {n: store.run_commit(n) for n in names}
    wanted = {n: c for n, c in commits.items() if c}
    if not wanted:
        return [], []
    leases = [f"--force-with-lease={PREFIX}{n}:" for n in sorted(wanted)]
    proc = _git(store.root, ["push", "--porcelain", *leases, remote, *(f"{c}:{PREFIX}{n}" for n, c in sorted(wanted.items()))])
    done, rejected = [], []
    for line in proc.stdout.splitlines():
        flag, _, rest = line.partition("\t")
        ref = rest.split("\t")[0].rpartition(":")[2]
        if not ref.startswith(PREFIX):
            continue
        name = ref[len(PREFIX) :]
        if flag == "!":
            rejected.append(f"{ref}: the remote's queue already has a run of that name (rename yours: gitexp rename {name} NEW)")
        elif name in wanted:
            done.append(name)
    if proc.returncode != 0 and not rejected:
        raise RemoteDown(f"cannot hand the queued runs over to {remote}: {_last_lines(proc.stderr)}")
    for name in done:
        store.set_ref(PREFIX + name, wanted[name])
        store.delete_run(name, wanted[name])
    return done, rejected


def status(store: Store, remote: str) -> tuple[list[Entry], list[str]]:
    """The remote's queue as it is now (fetched into refs/gitexp-queue/* here), and the refused refs."""
    fetch_queue(store.root, remote_url(store, remote))
    problems: list[str] = []
    return entries(store, problems), problems


def describe(entry: Entry, now: float) -> list[str]:
    """A row of `queue status --remote`: name, status, attempt, worker, lease left, sweep overrides."""
    lease = entry.lease
    if lease is None:
        holder, left = "", ""
    else:
        holder = f"{lease.host} pid {lease.pid}"
        left = f"{lease.until - now:.0f}s" if lease.until >= now else f"ended {now - lease.until:.0f}s ago (crashed)"
    return [entry.name, "crashed" if lease and lease.until < now else entry.run.status, str(entry.attempt), holder, left,
            " ".join(entry.run.sweep.get("overrides", ()))]


def to_json(found: list[Entry]) -> str:
    now = time.time()
    return json.dumps([e.to_dict(now) for e in found], sort_keys=True, indent=2)

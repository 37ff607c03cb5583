"""Runs in progress: their live file, the heartbeat that keeps it fresh, and telling running from crashed.

While `gitexp run` (or `gitexp.start()`) records, the run's ref already points
at a commit with status `running`. Its latest metrics and the recorder's
identity live beside it in `<git common dir>/gitexp/live/<name>.json`, rewritten
every few seconds, and its logs and step metrics grow in a scratch directory.
No git object is written per heartbeat, so a week-long run leaves no litter.

A reader sees a `running` run whose recorder is gone as `crashed`, with the
metrics of the last heartbeat; the next `gitexp run` in the repository then
finalizes it: a commit with status `crashed` holding the logs and steps the
scratch directory kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gitexp import format as fmt
from gitexp.environment import hostname
from gitexp.model import RunSummary
from gitexp.workspace import atomic_write, live_dir, pid_alive

HEARTBEAT_SECONDS = 2.0
_CLAIM = ".finalizing"  # <name>.json.<pid>.finalizing: the live file of a crashed run that process pid finalizes
TAIL_LINES = 500  # of the lines logged since the last beat, how many are read for the latest values


@dataclass(frozen=True)
class LiveState:
    """What live/<name>.json holds."""

    name: str
    commit: str  # the `running` commit the ref points at
    pid: int
    host: str
    boot: str  # the kernel's boot id: a pid from before a reboot is not alive
    scratch: str  # the directory where logs and steps grow
    started: float  # unix time
    updated: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    command_pid: int | None = None  # the command's: it may outlive a recorder killed outright
    workdir: str = ""  # the directory the run works in (a user's workspace, or a worker's copy)
    files: list[str] = field(default_factory=list)  # the metrics files and outputs it declares, workdir-relative

    def to_json(self) -> bytes:
        return fmt.to_json(self.__dict__).encode()


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def recorder_tag() -> str:
    """The Gitexp-Recorder trailer value of this process: pid@host."""
    return f"{os.getpid()}@{hostname()}"


def write(common_dir: Path, state: LiveState) -> None:
    path = live_dir(common_dir) / f"{state.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, state.to_json(), durable=False)


def read(common_dir: Path, name: str) -> LiveState | None:
    return _read_file(live_dir(common_dir) / f"{name}.json")


def _read_file(path: Path) -> LiveState | None:
    try:
        return LiveState(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def awaited_scratches(common_dir: Path) -> set[str]:
    """The scratch dirs still to be read: of live runs, and of crashed runs a process is finalizing now.

    Listed twice: a live file renamed to its claim (or back) between listing and reading is found once.
    """
    directory = live_dir(common_dir)
    return {
        state.scratch
        for _ in range(2)
        for path in [*directory.glob("*.json"), *directory.glob(f"*.json.*{_CLAIM}")]
        if (state := _read_file(path)) is not None
    }


def running_in(common_dir: Path, workdir: Path) -> list[LiveState]:
    """The live runs whose recorder still runs and that work in workdir."""
    directory = live_dir(common_dir)
    states = [read(common_dir, p.stem) for p in sorted(directory.glob("*.json"))] if directory.is_dir() else []
    return [s for s in states if s is not None and s.workdir == str(workdir) and alive(s)]


@contextlib.contextmanager
def registering(common_dir: Path) -> Iterator[None]:
    """Held while a run checks the live runs and writes its own live file: of two runs, one sees the other."""
    directory = live_dir(common_dir)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / "live.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # (closing the file releases the lock)


def sharing(
    common_dir: Path, workdir: Path, files: tuple[str, ...], name: str = ""
) -> tuple[LiveState, list[str]] | None:
    """A live run in workdir (its recorder alive) that declares one of files, or a path inside or around one;
    and which of files it shares."""
    directory = live_dir(common_dir)
    if not files or not directory.is_dir():
        return None
    for path in sorted(directory.glob("*.json")):
        state = read(common_dir, path.stem)
        if state is None or state.name == name or state.workdir != str(workdir):
            continue
        # Not counted: a run whose recorder died (its command, if still running, is recorded by no one), and
        # this process's own run that it could not finalize.
        if not alive(state) or (state.pid == os.getpid() and state.host == hostname()):
            continue
        shared = [f for f in files if any(_overlap(f, g) for g in state.files)]
        if shared:
            return state, shared
    return None


def _overlap(a: str, b: str) -> bool:
    """Whether workspace paths a and b are the same, or one is inside the other."""
    a, b = a.strip("/") + "/", b.strip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def remove(common_dir: Path, name: str) -> None:
    (live_dir(common_dir) / f"{name}.json").unlink(missing_ok=True)


def alive(state: LiveState) -> bool:
    """Whether the recorder of state still runs (one on another host counts as alive: we cannot tell)."""
    if state.host == hostname() and state.boot and state.boot != boot_id():
        return False
    return pid_alive(state.pid, state.host)


def current(common_dir: Path, run: RunSummary) -> RunSummary:
    """A `running` run as it stands now: still running with its latest metrics, or crashed."""
    if run.status != "running":
        return run
    state = read(common_dir, run.name)
    if state is not None and state.commit == run.commit:
        metrics = {**run.metrics, **state.metrics}
        if alive(state):
            return replace(run, metrics=metrics, duration=round(time.time() - state.started, 3))
        return replace(run, status="crashed", metrics=metrics, duration=round(state.updated - state.started, 3))
    pid, _, host = run.recorder.partition("@")
    if host == hostname() and not (pid.isdigit() and pid_alive(int(pid), host)):
        return replace(run, status="crashed")
    return run


class Heartbeat:
    """Rewrites the live file every few seconds with the latest values of the run's step series."""

    def __init__(self, common_dir: Path, state: LiveState, steps: list[Path], interval: float = HEARTBEAT_SECONDS):
        self._common = common_dir
        self.state = state
        self._tails = [_Tail(p) for p in steps]
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gitexp-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def command_started(self, pid: int) -> None:
        self.state = replace(self.state, command_pid=pid)
        self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def beat(self) -> None:
        latest = dict(self.state.metrics)
        for tail in self._tails:
            latest.update(tail.latest())
        self.state = replace(self.state, metrics=latest, updated=round(time.time(), 3))
        write(self._common, self.state)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception:  # a full disk, a value nested too deeply: the run goes on, the next beat tries again
                pass


class _Tail:
    """Reads a growing steps file incrementally; remembers each name's latest value."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._latest: dict[str, Any] = {}

    def latest(self) -> dict[str, Any]:
        from gitexp.series import last_line_of_each  # (here: a checkout asks live.py only who is running)

        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return self._latest
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next beat
        self._offset += end
        lines = chunk[:end].splitlines()
        # The last lines are parsed; of the lines before them (a script logging 100k points/s must not
        # cost this process a core), only the last line of each name, so that no series is left out.
        for name, line in last_line_of_each(b"\n".join(lines[:-TAIL_LINES])).items():
            self._latest.update((k, v) for k, v in _values(line).items() if k == name)
        for line in lines[-TAIL_LINES:]:
            self._latest.update(_values(line))
        return self._latest


def _values(line: bytes) -> dict[str, Any]:
    try:
        values = json.loads(line).get("values")
    except (ValueError, AttributeError, RecursionError):  # a line nested too deeply is skipped, never fatal
        return {}
    return values if isinstance(values, dict) else {}


def finalize_crashed(common_dir: Path, finish: Callable[[LiveState], None]) -> list[str]:
    """Call finish for every run whose recorder on this host died; then drop its live file and scratch dir.

    finish writes the run's final `crashed` commit; the names handled are returned.
    """
    handled: list[str] = []
    directory = live_dir(common_dir)
    if not directory.is_dir():
        return handled
    for claim in directory.glob(f"*.json.*{_CLAIM}"):  # its finalizer was killed: the live file is put back
        live_name, _, owner = claim.name[: -len(_CLAIM)].rpartition(".")
        if owner.isdigit() and not pid_alive(int(owner), hostname()):
            with contextlib.suppress(OSError):  # another process put it back first
                os.rename(claim, directory / live_name)
    for path in sorted(directory.glob("*.json")):
        state = read(common_dir, path.stem)
        if state is None or state.host != hostname() or alive(state):
            continue
        if state.command_pid and alive(replace(state, pid=state.command_pid)):
            continue  # its command still runs (and logs): finalize it once that ended too
        claim = path.with_name(f"{path.name}.{os.getpid()}{_CLAIM}")
        try:
            os.rename(path, claim)  # atomic: of two gitexp processes finalizing at once, one gets it
        except FileNotFoundError:
            continue
        try:
            finish(state)
        except BaseException:
            os.rename(claim, path)  # for the next one to try again
            raise
        claim.unlink()
        shutil.rmtree(state.scratch, ignore_errors=True)
        handled.append(state.name)
    return handled

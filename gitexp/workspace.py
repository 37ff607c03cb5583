"""Per-workspace state kept in the git dir (never in the work tree, never pushed).

- current.json: the current run of each branch, like HEAD for experiments.
- params-backup.json: the original bytes of params files that -S rewrote for the
  length of a run, so they are restored even after gitexp itself was killed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from gitexp.environment import hostname
from gitexp.errors import GitexpError

DETACHED = "(detached)"
STALE_CLAIM_SECONDS = 60


def atomic_write(path: Path, data: bytes, mode: int | None = None, durable: bool = True) -> None:
    """Write data to path so that readers see the old or the new file, never a mix.

    durable=False skips the fsync, for state that is cheap to lose (not user files).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def live_dir(common_dir: Path) -> Path:
    """Where the live files of runs in progress are (see gitexp/live.py)."""
    return common_dir / "gitexp" / "live"


# -- the current-run pointer ----------------------------------------------------


class Pointer(NamedTuple):
    name: str
    commit: str


def read_pointer(state_dir: Path, branch: str | None) -> Pointer | None:
    entry = _read_json(state_dir / "current.json").get(branch or DETACHED)
    if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("commit"), str):
        return Pointer(entry["name"], entry["commit"])
    return None


def write_pointer(state_dir: Path, branch: str | None, pointer: Pointer) -> None:
    path = state_dir / "current.json"
    data = _read_json(path)
    data[branch or DETACHED] = {"name": pointer.name, "commit": pointer.commit}
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), durable=False)


def rename_in_pointers(state_dir: Path, old: Pointer, new_name: str) -> None:
    """Keep branches whose current run was renamed pointing at it."""
    path = state_dir / "current.json"
    data = _read_json(path)
    changed = False
    for entry in data.values():
        if isinstance(entry, dict) and entry.get("name") == old.name and entry.get("commit") == old.commit:
            entry["name"] = new_name
            changed = True
    if changed:
        atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), durable=False)


# -- params files rewritten for a run ---------------------------------------------


class ParamsInUse(GitexpError):
    def __init__(self, pid: int, run: str = "", files: tuple[str, ...] = ()) -> None:
        who = ", ".join(x for x in (f"run {run!r}" if run else "", f"pid {pid}" if pid > 0 else "starting now") if x)
        super().__init__(
            f"another gitexp run ({who}) has rewritten the params files of this workspace"
            f"{' (' + ', '.join(files) + ')' if files else ''} with its -S values; wait for it to finish, "
            "or use 'gitexp run -j 1' or '--queue': they run in isolated worktrees"
        )
        self.pid = pid
        self.run = run
        self.files = files


class Rewrite(NamedTuple):
    """Params files a live gitexp run holds rewritten: their original bytes (None: the run created the file)."""

    pid: int
    run: str
    originals: dict[str, bytes | None]


class ParamsGuard:
    """Rewrites params files for one -S run and puts the user's bytes (and mtime) back afterwards.

    A file the user edited during the run keeps the user's edit. Without
    overrides nothing is written, so runs without -S never wait for each other.
    """

    def __init__(self, state_dir: Path, root: Path) -> None:
        self._backup = state_dir / "params-backup.json"
        self._root = root

    def recover(self) -> list[str]:
        """Restore files left rewritten by a gitexp that died; return one note per file dealt with.

        A file the user edited since keeps the edit; its bytes from before the run, if
        they are in no file now, are kept under params-kept/ (never discarded).
        """
        data = _read_json(self._backup)
        if not data:
            try:  # an empty claim left by a gitexp killed between creating and writing it
                if time.time() - self._backup.stat().st_mtime > STALE_CLAIM_SECONDS:
                    self._backup.unlink()
            except OSError:
                pass
            return []
        if pid_alive(data.get("pid"), data.get("host")):
            return []
        notes = [f"restored {path}, left rewritten by a gitexp run that was killed" for path in self._put_back(data, report_kept=False)]
        notes += [
            f"{path} was changed after a gitexp run that rewrote it was killed; your change was kept{where}"
            for path, where in self._keep_originals(data).items()
        ]
        self._backup.unlink(missing_ok=True)
        return notes

    def _keep_originals(self, data: dict[str, object]) -> dict[str, str]:
        """Copy aside the original bytes of files the user changed while they were rewritten (else lost).

        Returns, per such file, the end of a sentence that says where its original bytes are.
        """
        where = {}
        files = data.get("files")
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        for path, entry in (files.items() if isinstance(files, dict) else []):
            full = self._root / path
            original = entry.get("original")
            if original is None or _as_written(full, entry):
                continue  # the run created the file, or it was put back just now
            original_bytes = base64.b64decode(original)
            try:
                if full.read_bytes() == original_bytes:
                    continue
            except OSError:
                pass
            kept = self._backup.parent / "params-kept" / f"{stamp}-{os.getpid()}" / path
            atomic_write(kept, original_bytes)
            shown = os.path.relpath(kept, self._root) if kept.is_relative_to(self._root) else str(kept)
            where[path] = f", and the file as it was before the run is kept in {shown}; copy it back if you want it"
        return where

    def ensure_free(self) -> None:
        """Raise ParamsInUse if a live gitexp run has its overrides applied here."""
        data = _read_json(self._backup)
        pid, run, files = data.get("pid"), data.get("run"), data.get("files")
        if isinstance(pid, int) and pid_alive(pid, data.get("host")):
            raise ParamsInUse(pid, run if isinstance(run, str) else "", tuple(files) if isinstance(files, dict) else ())

    def rewritten(self) -> Rewrite | None:
        """The params files a live gitexp run holds rewritten now (a file edited since is the user's again)."""
        data = _read_json(self._backup)
        pid, run, files = data.get("pid"), data.get("run"), data.get("files")
        if not isinstance(pid, int) or not isinstance(files, dict) or not pid_alive(pid, data.get("host")):
            return None
        originals = {}
        for path, entry in files.items():
            if _as_written(self._root / path, entry):
                originals[path] = None if entry["original"] is None else base64.b64decode(entry["original"])
        return Rewrite(pid, run if isinstance(run, str) else "", originals) if originals else None

    def apply(self, contents: dict[str, bytes], originals: dict[str, bytes | None], run: str = "") -> None:
        if not contents:
            return
        files = {}
        for path, content in contents.items():
            original = originals.get(path)
            try:
                mtime_ns = (self._root / path).stat().st_mtime_ns if original is not None else None
            except OSError:
                mtime_ns = None
            files[path] = {
                "original": None if original is None else base64.b64encode(original).decode(),
                "mtime_ns": mtime_ns,
                "written": base64.b64encode(content).decode(),
            }
        self._claim(json.dumps({"pid": os.getpid(), "host": hostname(), "run": run, "files": files}).encode())
        for path, content in contents.items():
            full = self._root / path
            if full.exists() and not full.is_file():
                raise GitexpError(f"the params file {path} is not a regular file (a directory?); fix 'params:' in .gitexp.yaml")
            mode = full.stat().st_mode & 0o7777 if full.exists() else None
            atomic_write(full, content, mode)

    def _claim(self, record: bytes) -> None:
        """Create the backup file exclusively: the one lock that keeps two -S runs from crossing."""
        self._backup.parent.mkdir(parents=True, exist_ok=True)
        for attempt in (1, 2):
            try:
                fd = os.open(self._backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                if attempt == 2:
                    raise ParamsInUse(-1) from None
                self.ensure_free()  # a live run holds it: refuse
                self.recover()  # a dead one: put its files back, then claim again
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(record)
                f.flush()
                os.fsync(f.fileno())
            return

    def restore(self) -> list[str]:
        """Put the originals back; return a note per file kept as the user edited it during the run."""
        data = _read_json(self._backup)
        if not data or data.get("pid") != os.getpid():
            return []
        edited = self._put_back(data, report_kept=True)
        aside = self._keep_originals(data)
        self._backup.unlink(missing_ok=True)
        return [f"{path} was edited during the run; your edit was kept{aside.get(path, '')}" for path in edited]

    def _put_back(self, data: dict[str, object], report_kept: bool) -> list[str]:
        """Restore each file still as gitexp wrote it; list the restored ones, or with report_kept the others."""
        listed = []
        files = data.get("files")
        for path, entry in (files.items() if isinstance(files, dict) else []):
            full = self._root / path
            if not _as_written(full, entry):  # the user changed it meanwhile: theirs wins
                if report_kept:
                    listed.append(path)
                continue
            if entry["original"] is None:
                full.unlink()
            else:
                atomic_write(full, base64.b64decode(entry["original"]), full.stat().st_mode & 0o7777)
                if entry.get("mtime_ns") is not None:
                    os.utime(full, ns=(entry["mtime_ns"], entry["mtime_ns"]))
            if not report_kept:
                listed.append(path)
        return listed


CHECKOUT_LOCK = "checkout.lock"


class CheckoutInProgress(GitexpError):
    def __init__(self, pid: int) -> None:
        super().__init__(f"a gitexp checkout (pid {pid}) is changing this workspace; wait for it to finish")
        self.pid = pid


def checkout_in_progress(state_dir: Path) -> int | None:
    """The pid of a live gitexp checkout of this workspace, if one runs."""
    data = _read_json(state_dir / CHECKOUT_LOCK)
    pid = data.get("pid")
    return pid if isinstance(pid, int) and pid_alive(pid, data.get("host")) else None


@contextlib.contextmanager
def checkout_lock(state_dir: Path) -> Iterator[None]:
    """Held while a checkout changes the workspace: a second checkout, or a run, waits for it (refuses)."""
    path = state_dir / CHECKOUT_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            pid = checkout_in_progress(state_dir)
            if pid is not None or attempt == 2:
                raise CheckoutInProgress(pid or -1) from None
            _clear_after_killed_checkout(path)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"pid": os.getpid(), "host": hostname()}))
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _clear_after_killed_checkout(lock: Path) -> None:
    """Remove the checkout.lock of a checkout killed outright (its process is gone), and the index.lock it
    left if it was killed while writing the index: one made since that checkout took its lock (git leaves a
    lock file of a killed process for a person to remove; here the process that made it is known dead)."""
    try:
        taken = lock.stat().st_mtime_ns
    except FileNotFoundError:
        return
    index_lock = lock.parent.parent / "index.lock"  # the state dir is <git dir>/gitexp
    try:
        if index_lock.stat().st_mtime_ns >= taken:
            index_lock.unlink()
    except FileNotFoundError:
        pass
    lock.unlink(missing_ok=True)


def _as_written(path: Path, entry: dict[str, str | None]) -> bool:
    """Whether a params file holds the bytes a -S run wrote into it (its backup entry)."""
    try:
        current = path.read_bytes()
    except OSError:
        return False
    return current == base64.b64decode(entry["written"] or "")


def pid_alive(pid: object, host: object) -> bool:
    """Whether process pid runs on this host (a pid of another host counts as alive: we cannot tell).

    A zombie (ended, not yet reaped by a parent that may itself have been killed) is not alive.
    """
    if host != hostname():
        return True
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(0) is all we can tell


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

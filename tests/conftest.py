"""Shared fixtures: isolated HOME and git config, throw-away repos, a real gitexp CLI.

Every end-to-end test that freezes a workspace gets, at teardown, the checks the
project promises after every run: the user's HEAD, index, branches and files are
byte-identical, `git fsck --strict` is clean, and `git gc --prune=now` keeps
every run.
"""

from __future__ import annotations

import hashlib
import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test User",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def isolate(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point HOME and git's config at a fresh home, so nothing real is read or written."""
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
        "[gc]\n\tauto = 0\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_CONFIG_GLOBAL", "GIT_DIR", "GIT_INDEX_FILE", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("COLUMNS", "LINES"):  # `gitexp list` fits COLUMNS: no test depends on the terminal it ran in
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test can read or write the real home directory or global git config."""
    home = tmp_path_factory.mktemp("home")
    isolate(home, monkeypatch)
    return home


def git(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace", env={**os.environ, **IDENTITY, **(env or {})}
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def _port_slice() -> Iterator[int]:
    """Ports for this test process alone: below the kernel's ephemeral range (never handed out by bind(0) or a
    connect), one slice of 1,000 per xdist worker, started at a place the pid chooses (two pytest sessions)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    worker = int("0" + "".join(c for c in os.environ.get("PYTEST_XDIST_WORKER", "") if c.isdigit()))
    first = low - 1000 * (12 - worker % 12)
    offset = os.getpid() % 1000
    while True:
        for n in range(1000):
            yield first + (offset + n) % 1000


_PORTS = _port_slice()


def free_port() -> int:
    """A port nothing listens on, that no other test process will choose before its user binds it.

    bind(0) would hand out an ephemeral port, which another worker's bind(0) could get too between
    this check and the daemon's own bind: its daemon or its client would then take ours.
    """
    for _ in range(1000):
        port = next(_PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use: by our own earlier daemon, or by something else on the machine
            return port
    raise AssertionError("no free port in this test process's slice")


@contextlib.contextmanager
def git_daemon(base: Path, receive_pack: bool = False) -> Iterator[str]:
    """A real `git daemon` on 127.0.0.1 serving the repositories under base; yields its git:// URL prefix.

    Ready once it accepts connections (waited for, never assumed); stopped at the end of the block.
    """
    for _attempt in range(5):
        port = free_port()
        args = ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", "--export-all", f"--base-path={base}"]
        if receive_pack:
            args.append("--enable=receive-pack")
        daemon = subprocess.Popen([*args, str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while daemon.poll() is None:  # exited: it could not bind (taken meanwhile); another port
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    daemon.kill()
                    raise AssertionError("git daemon did not start") from None
                time.sleep(0.05)
        if daemon.poll() is None:
            break
    else:
        raise AssertionError("git daemon did not start on any of 5 ports")
    try:
        yield f"git://127.0.0.1:{port}"
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


# -P (3.11+): the working directory is not put first on sys.path, or a bare repository's own gitexp/
# state directory would be imported as the package (`python -m` does that; the console script does not).
GITEXP = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else []), "-m", "gitexp"]


def wait_for(predicate: Callable[[], object], timeout: float = 120, interval: float = 0.05) -> None:
    """Poll until predicate() is true: tests wait for conditions, never for fixed times. The timeout only
    catches a hang, so it is generous for a loaded machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def gitexp(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
    """Run the real CLI in a subprocess, as a user would.

    The timeout only catches a hang: on a loaded 2-core machine a framework run (HuggingFace, Lightning)
    takes well over a minute, so it is generous."""
    proc = subprocess.run(
        [*GITEXP, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        env={**os.environ, **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def run_in_pty(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, columns: int | None = None
) -> tuple[int, bytes]:
    """Run a command with a pseudo-terminal as stdin, stdout and stderr; return (exit code, output).

    columns: the terminal's width, as a terminal window tells it (TIOCSWINSZ); default: unset (0)."""
    import pty

    master, slave = pty.openpty()
    if columns is not None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env={**os.environ, **(env or {})})
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed its end
            break
        if not chunk:
            break
        output += chunk
    code = proc.wait(timeout=60)
    os.close(master)
    return code, output


@dataclass
class Workspace:
    root: Path
    frozen: dict[str, str] | None = None
    may_change: set[str] = field(default_factory=set)

    def write(self, rel: str, text: str = "x\n", mode: int | None = None) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if mode is not None:
            path.chmod(mode)
        return path

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.root, *args, check=check)

    def commit_all(self, message: str = "commit") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def gitexp(self, *args: str, **kw: object) -> Result:
        return gitexp(self.root, *args, **kw)  # type: ignore[arg-type]

    def run(self, *args: str) -> Result:
        """`gitexp run ARGS` that must succeed."""
        result = self.gitexp("run", *args)
        assert result.code == 0, result.err
        return result

    def runs(self) -> dict[str, str]:
        out = self.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/experiments/")
        return {line.split()[0].removeprefix("refs/experiments/"): line.split()[1] for line in out.splitlines()}

    def tree(self, rev: str) -> dict[str, tuple[str, str]]:
        """{path: (mode, content)} of every blob in rev's tree."""
        out = self.git("ls-tree", "-r", "-z", rev)
        entries = {}
        for item in out.split("\0"):
            if not item:
                continue
            meta, path = item.split("\t", 1)
            mode, _, oid = meta.split()
            entries[path] = (mode, self.git("cat-file", "-p", oid))
        return entries

    def record(self, run: str, filename: str) -> object:
        return json.loads(self.git("show", f"refs/experiments/{run}:.gitexp/{filename}"))

    def fingerprint(self) -> dict[str, str]:
        """Everything of the user's that gitexp must not touch (read without writing the index)."""
        gitdir = self.root / ".git"
        fp = {
            "HEAD": (gitdir / "HEAD").read_text(),
            "head-commit": self.git("rev-parse", "-q", "--verify", "HEAD", check=False),
            "branches": self.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/", "refs/tags/"),
            "index": _digest(gitdir / "index"),
        }
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                full = Path(dirpath, name)
                rel = full.relative_to(self.root).as_posix()
                st = full.lstat()
                if stat.S_ISLNK(st.st_mode):
                    fp["file:" + rel] = "link:" + os.readlink(full)
                else:
                    fp["file:" + rel] = f"{oct(st.st_mode)}:{_digest(full)}"
        return fp

    def freeze(self, *may_change: str) -> None:
        """From now on, the test's teardown checks the workspace is untouched."""
        self.frozen = self.fingerprint()
        self.may_change = {"file:" + p for p in may_change}

    def check_untouched(self) -> None:
        assert self.frozen is not None
        after = self.fingerprint()
        before = {k: v for k, v in self.frozen.items() if k not in self.may_change}
        after = {k: v for k, v in after.items() if k not in self.may_change}
        assert after == before, "gitexp changed the user's repository or files"
        fsck = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=self.root, capture_output=True, text=True)
        assert fsck.returncode == 0 and "error" not in fsck.stderr, fsck.stderr
        runs = self.runs()
        self.git("gc", "-q", "--prune=now")
        for name, commit in runs.items():
            self.git("cat-file", "-e", f"{commit}^{{tree}}")
            self.git("rev-parse", "--verify", f"{commit}:.gitexp/run.json")
        assert self.runs() == runs


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"


@contextlib.contextmanager
def template_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """An empty repository with a home of its own, for a module-scoped fixture to record runs in once;
    each test then works on a copy_of it."""
    ws = Workspace(tmp_path_factory.mktemp("template") / "repo")
    ws.root.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        isolate(tmp_path_factory.mktemp("template-home"), mp)
        git(ws.root, "init", "-q", "-b", "main")
        yield ws


def copy_of(template: Path, tmp_path: Path) -> Workspace:
    """A private copy of a template repository."""
    root = tmp_path / "runs"
    shutil.copytree(template, root, symlinks=True)
    return Workspace(root)


@pytest.fixture
def ws(tmp_path: Path, isolated_home: Path) -> Iterator[Workspace]:
    """An empty git repository (no commits) whose teardown checks nothing was damaged once frozen."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    workspace = Workspace(root)
    yield workspace
    if workspace.frozen is not None:
        workspace.check_untouched()

"""Data under faults: gc beside runs in progress, killed pushes and pulls, temporary files of dead and live processes.

Real processes and real signals throughout; a stall is made with a real FIFO standing in
for one object of the data remote (a reader blocks on it until the test writes the bytes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import git, gitexp, wait_for, Workspace

PY = sys.executable
OUT_FILES = 6




def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([PY, "-m", "gitexp", *args], cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def objects(root: Path) -> dict[str, Path]:
    """The objects of a cache or data remote directory, by digest."""
    return {p.parent.name + p.name: p for p in (root / "objects").glob("*/*") if p.is_file() or p.is_fifo()}


def identity(paths: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of each object: an object sent again would have a new one."""
    return {d: (p.stat().st_ino, p.stat().st_mtime_ns) for d, p in paths.items()}


def tmp_files(tmp: Path) -> list[Path]:
    """The files under tmp now; a directory its owner removes while it is listed counts as empty."""
    try:
        return [p for p in tmp.rglob("*") if not p.is_dir()] if tmp.is_dir() else []
    except FileNotFoundError:
        return []


def dead_process_tag() -> str:
    """The tmp/ name (docs/format.md: <host>-<pid>-<start>) of a real process that has ended."""
    child = subprocess.Popen(["sleep", "60"])
    start_ticks = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    child.kill()
    child.wait()
    return f"{os.uname().nodename}-{child.pid}-{start_ticks}"


def cache_of(root: Path) -> Path:
    return root / ".git" / "gitexp" / "cache"


@pytest.fixture
def outputs(ws: Workspace) -> Workspace:
    """A repository whose runs write the output directory out/: `write.py COUNT MB SEED [PREFIX]`."""
    ws.write(".gitexp.yaml", "outputs: [out/]\n")
    ws.write(".gitignore", "out/\n")
    ws.write(
        "write.py",
        "import hashlib, os, sys\n"
        "os.makedirs('out', exist_ok=True)\n"
        "count, size, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
        "prefix = sys.argv[4] if len(sys.argv) > 4 else 'part'\n"
        "block = hashlib.sha256(seed.encode()).digest() * (1 << 15)\n"
        "for i in range(count):\n"
        "    with open(f'out/{prefix}{i:03d}.bin', 'wb') as f:\n"
        "        f.write(f'{seed} {i}'.encode())\n"
        "        for _ in range(size):\n"
        "            f.write(block)\n",
    )
    ws.commit_all("base")
    return ws


# -- gc beside a run in progress ------------------------------------------------------


GC_LOOP = """
import pathlib, subprocess, sys
stop, done, failed = (pathlib.Path(a) for a in sys.argv[1:4])
n = 0
while not stop.exists():
    r = subprocess.run([sys.executable, "-m", "gitexp", "gc", "--now"], capture_output=True, text=True)
    if r.returncode != 0:
        failed.write_text(r.stdout + r.stderr)
    n += 1
    done.write_text(str(n))
"""


class GcLoops:
    """Two `gitexp gc --now` loops in the background, once started."""

    def __init__(self, root: Path, tmp_path: Path) -> None:
        self.root = root
        self.stop = tmp_path / "stop"
        self.counts = [tmp_path / f"done{i}" for i in range(2)]
        self.failed = tmp_path / "gc-failed"
        self.loops: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.loops = [subprocess.Popen([PY, "-c", GC_LOOP, str(self.stop), str(c), str(self.failed)], cwd=self.root)
                      for c in self.counts]

    def ended(self) -> int:
        """How many gcs have ended so far."""
        return sum(int(c.read_text() or 0) for c in self.counts if c.exists())

    def close(self) -> None:
        self.stop.touch()
        for loop in self.loops:
            loop.wait(timeout=120)


@pytest.fixture
def gc_loops(outputs: Workspace, tmp_path: Path) -> Iterator[GcLoops]:
    loops = GcLoops(outputs.root, tmp_path)
    try:
        yield loops
    finally:
        loops.close()
    assert not loops.failed.exists(), loops.failed.read_text()


def test_gc_looping_beside_a_run_that_stores_a_big_output_never_breaks_the_run(outputs: Workspace, gc_loops: GcLoops) -> None:
    ws = outputs
    # An object no run refers to any more, which the next run's first output file has again:
    # the run relies on it while gc is free to collect it, unless the run pins it first.
    ws.run("-n", "old", "--", PY, "write.py", "1", "1", "same", "a")
    assert ws.gitexp("rm", "-y", "old").code == 0
    run = start(ws.root, "run", "-n", "big", "--", "sh", "-c", f"{PY} write.py 1 1 same a && {PY} write.py 4 40 big b")
    tmp = cache_of(ws.root) / "tmp"
    wait_for(lambda: tmp_files(tmp) or run.poll() is not None, interval=0.002)  # it stores b000, after a000
    gc_loops.start()
    out, err = run.communicate(timeout=300)
    during = gc_loops.ended()
    assert run.returncode == 0, err
    assert "big" in ws.runs()
    data = ws.record("big", "data.json")
    assert isinstance(data, dict) and data["outputs"][0]["files"] == 5
    present = objects(cache_of(ws.root))
    manifest = ws.record("big", f"manifests/{data['outputs'][0]['digest']}.json")
    assert isinstance(manifest, dict)
    for entry in manifest["files"]:
        assert entry["digest"] in present, f"the run points at {entry['path']}, whose object gc deleted"
    wait_for(lambda: gc_loops.ended() >= during + 2)  # and gcs after the run keep them too
    assert set(objects(cache_of(ws.root))) == set(present)
    fsck = ws.gitexp("fsck")
    assert fsck.code == 0, fsck.out + fsck.err
    assert not tmp_files(tmp)


def test_a_run_killed_while_storing_its_outputs_leaves_debris_that_the_next_run_clears(outputs: Workspace) -> None:
    ws = outputs
    tmp = cache_of(ws.root) / "tmp"
    for attempt in range(5):  # until the kill lands while the outputs are being stored
        proc = start(ws.root, "run", "-n", f"killed{attempt}", "--", PY, "write.py", "4", "40", f"k{attempt}")
        wait_for(lambda: tmp_files(tmp) or proc.poll() is not None, interval=0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if tmp_files(tmp):
            break
    else:
        pytest.fail("the run always stored its outputs before it could be killed")
    ws.run("-n", "next", "--", PY, "write.py", "1", "1", "n")
    assert not tmp_files(tmp)
    assert ws.gitexp("fsck").code == 0


def test_a_run_without_data_clears_the_debris_of_dead_processes_too(outputs: Workspace) -> None:
    ws = outputs
    tmp = cache_of(ws.root) / "tmp"
    debris = tmp / dead_process_tag() / "in-partial"
    debris.parent.mkdir(parents=True)
    debris.write_bytes(b"partial")
    ws.write(".gitexp.yaml", "")  # no data, no outputs
    ws.run("-n", "plain", "--", "true")
    assert not debris.exists()


# -- push and pull resume ----------------------------------------------------------------


@pytest.fixture
def team(outputs: Workspace, tmp_path: Path) -> tuple[Workspace, Path, Path]:
    """outputs with a bare 'origin' and a data remote directory."""
    ws = outputs
    bare = tmp_path / "origin.git"
    store = tmp_path / "datastore"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "origin", str(bare))
    ws.write(".gitexp.yaml", f"outputs: [out/]\nremotes:\n  shared: {store}\n")
    assert ws.gitexp("remote", "trust", "shared").code == 0  # written by hand: this clone consents once
    ws.commit_all("data remote")
    ws.git("push", "-q", "-u", "origin", "main")
    return ws, bare, store


def test_a_killed_push_is_resumed_sending_only_the_missing_objects_and_leaves_no_debris(
    team: tuple[Workspace, Path, Path],
) -> None:
    ws, _, store = team
    ws.run("-n", "many", "--", PY, "write.py", "96", "1", "m")
    total = set(objects(cache_of(ws.root)))
    for _attempt in range(5):  # until the kill lands while the push is under way
        proc = start(ws.root, "push")
        wait_for(lambda: objects(store) or proc.poll() is not None, interval=0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        placed = identity(objects(store))
        if 0 < len(placed) < len(total):
            break
        subprocess.run(["rm", "-rf", str(store)], check=True)
    else:
        pytest.fail("the push always ended before it could be killed")
    retry = ws.gitexp("push")
    assert retry.code == 0, retry.err
    assert f"{len(total) - len(placed)} object(s)" in retry.out and f"{len(placed)} already there" in retry.out, retry.out
    after = objects(store)
    assert set(after) == total
    assert {d: v for d, v in identity(after).items() if d in placed} == placed, "objects already in place were not sent again"
    assert not tmp_files(store / "tmp") and not list((store / "tmp").iterdir())


@pytest.fixture
def teammate(team: tuple[Workspace, Path, Path], tmp_path: Path) -> tuple[Workspace, Path, Path, str]:
    """team after a push of a run with several objects, and a clone of it; one remote object is a FIFO.

    Returns (workspace, clone, store, the digest whose object is a FIFO that blocks its reader).
    """
    ws, bare, store = team
    ws.run("-n", "r1", "--", PY, "write.py", str(OUT_FILES), "1", "r")
    assert ws.gitexp("push").code == 0
    clone = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    digest = sorted(objects(store))[0]
    fifo = objects(store)[digest]
    saved = fifo.read_bytes()
    (tmp_path / "saved.bin").write_bytes(saved)
    fifo.unlink()
    os.mkfifo(fifo)
    return ws, clone, store, digest


def feed(fifo: Path, data: bytes) -> int:
    """Open the FIFO for writing (the blocked reader goes on) and write data; return the descriptor, still open."""
    fd = os.open(fifo, os.O_WRONLY)
    os.write(fd, data)
    return fd


def test_a_killed_pull_is_resumed_fetching_only_the_missing_objects_and_its_debris_is_cleared(
    teammate: tuple[Workspace, Path, Path, str], tmp_path: Path
) -> None:
    ws, clone, store, digest = teammate
    wanted = set(objects(store))
    cache = cache_of(clone)
    proc = start(clone, "pull")
    wait_for(lambda: len(objects(cache)) == len(wanted) - 1)  # all but the FIFO's
    assert proc.poll() is None
    saved = (tmp_path / "saved.bin").read_bytes()
    fd = feed(objects(store)[digest], saved[:1000])
    wait_for(lambda: tmp_files(cache / "tmp"))  # the blocked download has begun its temporary file
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.close(fd)
    before = identity(objects(cache))
    assert digest not in before and tmp_files(cache / "tmp")

    fifo = objects(store)[digest]
    fifo.unlink()
    fifo.write_bytes(saved)
    retry = gitexp(clone, "pull")
    assert retry.code == 0, retry.err
    assert "1 object(s)" in retry.out and f"{len(wanted) - 1} already there" in retry.out, retry.out
    after = objects(cache)
    assert set(after) == wanted
    assert {d: v for d, v in identity(after).items() if d in before} == before
    assert not tmp_files(cache / "tmp") and not list((cache / "tmp").iterdir())
    assert gitexp(clone, "fsck").code == 0


def test_a_live_transfer_keeps_its_temporary_file_while_others_clear_the_debris_of_dead_processes(
    teammate: tuple[Workspace, Path, Path, str], tmp_path: Path
) -> None:
    ws, clone, store, digest = teammate
    cache = cache_of(clone)
    dead_cache = cache / "tmp" / dead_process_tag() / "in-partial"
    dead_upload = store / "tmp" / dead_process_tag() / f"{digest}.abcdef"
    for debris in (dead_cache, dead_upload):
        debris.parent.mkdir(parents=True)
        debris.write_bytes(b"partial")
    live = start(clone, "pull")
    saved = (tmp_path / "saved.bin").read_bytes()
    fd = feed(objects(store)[digest], saved[:1000])
    try:
        wait_for(lambda: len(objects(cache)) == len(objects(store)) - 1)
        wait_for(lambda: [p for p in tmp_files(cache / "tmp") if p != dead_cache])
        held = [p for p in tmp_files(cache / "tmp") if p != dead_cache]
        assert len(held) == 1, "the live pull is writing its temporary file"

        assert gitexp(clone, "remote", "trust", "shared").code == 0  # the clone consents once, too
        for other in (gitexp(clone, "gc", "--now"), gitexp(clone, "push"), ws.gitexp("push")):
            assert other.code == 0, other.err
        assert not dead_cache.exists() and not dead_upload.exists(), "debris of dead processes is cleared"
        assert held[0].exists(), "a live process's temporary file is never removed"
        assert live.poll() is None
        os.write(fd, saved[1000:])
    finally:
        os.close(fd)
    out, err = live.communicate(timeout=60)
    assert live.returncode == 0, err
    assert digest in objects(cache) and not tmp_files(cache / "tmp")
    assert gitexp(clone, "fsck").code == 0


def test_an_fsspec_remote_gets_each_object_in_place_and_loses_only_dead_processes_uploads(tmp_path: Path) -> None:
    pytest.importorskip("fsspec")
    import fsspec  # type: ignore[import-untyped]

    from gitexp.data.cache import Cache, process_tag
    from gitexp.data.hashing import StatCache
    from gitexp.data.remote import open_remote

    cache = Cache(tmp_path / "cache")
    stats = StatCache(tmp_path / "stat.db")
    digests = []
    for i in range(3):
        src = tmp_path / f"f{i}"
        src.write_bytes(b"content %d" % i)
        digests.append(cache.store_file(src, stats))
    stats.close()
    url = f"memory://gitexp-test-{os.getpid()}-{tmp_path.name}"
    fs = fsspec.filesystem("memory")
    base = url.removeprefix("memory://")
    dead, mine = dead_process_tag(), process_tag()
    fs.pipe({f"{base}/tmp/{dead}/x.abc": b"partial", f"{base}/tmp/{mine}/y.abc": b"being written"})
    remote = open_remote(url, tmp_path)
    report = remote.push(cache, digests)
    assert report.sent == 3 and remote.digests() == set(digests)
    assert not fs.exists(f"{base}/tmp/{dead}/x.abc"), "a dead process's upload is cleared"
    assert fs.exists(f"{base}/tmp/{mine}/y.abc"), "a live process's upload is kept"
    again = remote.push(cache, digests)
    assert again.sent == 0 and again.skipped == 3
    cache.release()


def test_a_temporary_directory_whose_pid_now_runs_another_process_is_debris(tmp_path: Path) -> None:
    from gitexp.data.cache import clear_dead, process_tag

    host, pid, _ = process_tag().rsplit("-", 2)
    reused = tmp_path / f"{host}-{pid}-1"  # this pid, but a process that started at another time
    mine = tmp_path / process_tag()
    other_host = tmp_path / "another-host-1-1"  # nothing here can tell whether it runs
    for d in (reused, mine, other_host):
        d.mkdir()
        (d / "obj-x").write_bytes(b"partial")
    clear_dead(tmp_path)
    assert not reused.exists() and mine.exists() and other_host.exists()

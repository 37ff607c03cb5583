"""Store.run_refs reads the run refs from .git/gitexp/run-refs while the ref files are unchanged: whatever git
does to the refs afterwards (add, move, delete, pack) is seen at once, and a kept file that is damaged or
stale is never believed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from conftest import Workspace, git

from gitexp.store import Store, refcache


@pytest.fixture
def repo(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """Three runs; refcache's clock a minute ahead, so what it reads is old enough to keep at once."""
    ws.write("a.txt", "a\n")
    ws.commit_all("base")
    for name in ("r1", "r2", "r3"):
        ws.run("-n", name, "--", "true")
    ahead = time.time_ns() + 60 * 10**9
    monkeypatch.setattr(refcache.time, "time_ns", lambda: ahead)
    return ws


def refs(ws: Workspace, problems: list[str] | None = None) -> dict[str, str]:
    return dict(Store.discover(ws.root).run_refs(problems))


def truth(ws: Workspace) -> dict[str, str]:
    out = git(ws.root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/experiments/")
    return {line.split()[0].removeprefix("refs/experiments/"): line.split()[1] for line in out.splitlines()}


def kept(ws: Workspace) -> Path:
    return ws.root / ".git/gitexp/run-refs"


def test_what_was_read_is_kept_and_read_back_while_the_refs_are_unchanged(repo: Workspace) -> None:
    first = refs(repo)
    assert first == truth(repo) and set(first) == {"r1", "r2", "r3"}
    assert kept(repo).is_file()
    stamp = kept(repo).stat().st_mtime_ns
    assert refs(repo) == first and kept(repo).stat().st_mtime_ns == stamp, "read back, not written again"


@pytest.mark.parametrize("change", ["add", "move", "delete", "pack", "pack then move", "pack then delete", "by hand"])
def test_any_change_git_makes_to_the_refs_is_seen_at_once(repo: Workspace, change: str) -> None:
    ws = repo
    runs = refs(ws)
    r1, r2 = runs["r1"], runs["r2"]
    if change.startswith("pack"):
        git(ws.root, "pack-refs", "--all")
        assert refs(ws) == truth(ws)  # the packing is a change too: read again, kept again
    if change == "add":
        git(ws.root, "update-ref", "refs/experiments/new", r1)
    elif change in ("move", "pack then move"):
        git(ws.root, "update-ref", "refs/experiments/r1", r2)
    elif change in ("delete", "pack then delete"):
        git(ws.root, "update-ref", "-d", "refs/experiments/r3")
    elif change == "by hand":  # a loose ref rewritten in place (not by rename), its mtime put back
        loose = ws.root / ".git/refs/experiments/r1"
        st = loose.stat()
        with open(loose, "r+") as f:
            f.write(r2 + "\n")
        import os

        os.utime(loose, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert refs(ws) == truth(ws)


def test_a_damaged_or_foreign_kept_file_is_ignored(repo: Workspace) -> None:
    ws = repo
    want = refs(ws)
    path = kept(ws)
    good = path.read_bytes()
    head, _, body = good.partition(b"\n")
    for bad in (b"", b"garbage", good[:-20], head + b"\n" + body.replace(want["r1"].encode(), want["r2"].encode()),
                head.replace(b"run-refs 1 ", b"run-refs 1 0") + b"\n" + body):
        path.write_bytes(bad)
        assert refs(ws) == want
    # a file checksummed right but kept for other ref files (copied from another clone, say)
    other = refcache.MAGIC.encode() + b" " + b"0" * 64
    import hashlib

    path.write_bytes(other + b" " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    assert refs(ws) == want


def test_refs_that_no_run_can_have_are_reported_from_the_kept_file_too(repo: Workspace) -> None:
    ws = repo
    git(ws.root, "update-ref", "refs/experiments/dir/odd", refs(ws)["r1"])
    for _ in range(2):  # read, then read back
        problems: list[str] = []
        assert set(refs(ws, problems)) == {"r1", "r2", "r3"}
        assert len(problems) == 1 and "refs/experiments/dir/odd" in problems[0]


def test_refs_changed_within_the_racy_window_are_not_kept(ws: Workspace) -> None:
    ws.write("a.txt", "a\n")
    ws.commit_all("base")
    ws.run("-n", "r1", "--", "true")
    assert set(refs(ws)) == {"r1"}
    assert not kept(ws).exists(), "a ref written just now could change again within the same timestamp"


def test_a_reftable_repository_is_read_through_libgit2_only(tmp_path: Path) -> None:
    root = tmp_path / "rt"
    made = subprocess.run(["git", "init", "-q", "--ref-format=reftable", str(root)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip("this git cannot make a reftable repository (git >= 2.45 can)")
    assert refcache.fingerprint(root / ".git") is None

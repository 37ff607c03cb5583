"""Costs that follow the work, not the history: what runs need is derived once per commit, refs get packed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workspace, git, gitexp
from test_share import objects, team  # noqa: F401  (team: a repo, a bare origin, a data store, two runs with data)


def many_runs(repo: Path, prefix: str, count: int) -> list[str]:
    """count run commits on refs/experiments/<prefix>-NNNN (parent: repo's main), written by git fast-import."""
    base = git(repo, "rev-parse", "main").strip()
    names = [f"{prefix}-{i:04d}" for i in range(count)]
    chunks = []
    for i, name in enumerate(names):
        message = (f"{name}: completed (true)\n\nGitexp-Format: 1\nGitexp-Run: {name}\nGitexp-Status: completed\n"
                   f"Gitexp-Exit-Code: 0\nGitexp-Started: 2026-01-01T00:00:{i % 60:02d}.000+00:00\n"
                   f"Gitexp-Params: {{\"i\": {i}}}\nGitexp-Metrics: {{\"acc\": 0.5}}\n").encode()
        chunks.append(b"commit refs/experiments/%s\ncommitter T <t@example.invalid> %d +0000\n" % (name.encode(), 1767225600 + i))
        chunks.append(b"data %d\n%s\nfrom %s\n" % (len(message), message, base.encode()))
        chunks.append(b"M 100644 inline .gitexp/run.json\ndata 3\n{}\n\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(chunks), check=True, capture_output=True)
    return names


def needs_file(ws: Workspace) -> Path:
    return ws.root / ".git" / "gitexp" / "needs"


def totals_file(ws: Workspace) -> Path:
    return ws.root / ".git" / "gitexp" / "needs-totals"


def test_a_push_derives_what_runs_need_once_and_a_push_with_nothing_new_reuses_it(team: tuple[Workspace, Path, Path]) -> None:
    ws, bare, store = team
    first = ws.gitexp("push", "origin")
    assert first.code == 0, first.err
    assert len(objects(store)) == 4
    lines = needs_file(ws).read_text().splitlines()
    assert lines[0].startswith("gitexp-needs 1 ")
    assert {line.split(" ")[0] for line in lines[1:]} == set(ws.runs().values()), "one line per run commit"
    before = needs_file(ws).stat()
    again = ws.gitexp("push", "origin")
    assert again.code == 0, again.err
    assert "pushed 0 ref(s)" in again.out and "0 object(s)" in again.out
    after = needs_file(ws).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "nothing derived again, nothing rewritten"


def _valid(body: bytes) -> bytes:
    return b"gitexp-needs 1 " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body


@pytest.mark.parametrize(
    "damage",
    [
        "garbage", "empty", "truncated", "says-nothing-needed-with-a-stale-checksum", "checksummed-but-malformed",
        "checksummed-with-a-malformed-digest", "a-directory",
    ],
)
def test_a_damaged_needs_file_is_rebuilt_and_the_push_sends_the_same(team: tuple[Workspace, Path, Path], damage: str) -> None:
    ws, bare, store = team
    assert ws.gitexp("push", "origin").code == 0
    good = needs_file(ws).read_bytes()
    lost = sorted(objects(store))[0]
    os.chmod(store / "objects" / lost[:2] / lost[2:], 0o644)
    (store / "objects" / lost[:2] / lost[2:]).unlink()  # the data remote lost one: the next push must send it again
    path = needs_file(ws)
    totals_file(ws).unlink()  # (else the totals kept for these refs answer, and the needs file is not read)
    body = good.partition(b"\n")[2]
    if damaged_plainly(path, good, damage):
        pass
    elif damage == "says-nothing-needed-with-a-stale-checksum":
        emptied = b"".join(b" ".join(line.split(b" ")[:3] + [b"-"]) + b"\n" for line in body.splitlines())
        path.write_bytes(good.partition(b"\n")[0] + b"\n" + emptied)
    elif damage == "checksummed-but-malformed":
        path.write_bytes(_valid(body.replace(body[:40], b"../../../../etc/passwd-not-a-commit-id-x", 1)))
    elif damage == "checksummed-with-a-malformed-digest":
        lines = body.splitlines()
        lines = [b" ".join(line.split(b" ")[:3] + [b"../../outside"]) for line in lines]
        path.write_bytes(_valid(b"".join(line + b"\n" for line in lines)))
    push_sends_again(ws, store, lost, path, good if damage != "a-directory" else None)


def damaged_plainly(path: Path, good: bytes, damage: str) -> bool:
    """Damage path as any file can be (garbage, empty, truncated, a directory in its place); False for other damage."""
    if damage == "garbage":
        path.write_bytes(os.urandom(300))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "a-directory":
        path.unlink()
        path.mkdir()
    else:
        return False
    return True


def push_sends_again(ws: Workspace, store: Path, lost: str, path: Path, good: bytes | None) -> None:
    """The next push sends the object the data remote lost, and rewrites path as it was (good; None: not checked)."""
    result = ws.gitexp("push", "origin")
    assert result.code == 0, result.err
    assert "1 object(s)" in result.out, result.out
    assert lost in objects(store)
    if good is not None:
        assert _without_stamp(path.read_bytes()) == _without_stamp(good), "rebuilt exactly as made the first time"


def _without_stamp(totals: bytes) -> object:
    """A needs file as it is; a totals file without its stamp and checksum: the refs' stat fingerprint is
    kept only once it is 2 s old (git's racy rule), so a push on a busy machine may keep it where the
    first one could not."""
    if not totals.startswith(b"gitexp-needs-totals "):
        return totals
    data = json.loads(totals.partition(b"\n")[2])
    data.pop("stamp")
    return data


@pytest.mark.parametrize(
    "damage",
    ["garbage", "empty", "truncated", "says-nothing-needed-with-a-stale-checksum", "checksummed-with-a-malformed-digest",
     "checksummed-with-a-name-no-run-can-have", "checksummed-for-other-refs", "a-directory"],
)
def test_damaged_totals_are_rebuilt_and_the_push_sends_the_same(team: tuple[Workspace, Path, Path], damage: str) -> None:
    ws, bare, store = team
    assert ws.gitexp("push", "origin").code == 0
    path = totals_file(ws)
    good = path.read_bytes()
    data = json.loads(good.partition(b"\n")[2])
    lost = sorted(objects(store))[0]
    os.chmod(store / "objects" / lost[:2] / lost[2:], 0o644)
    (store / "objects" / lost[:2] / lost[2:]).unlink()  # the data remote lost one: the next push must send it again

    def checksummed(changed: dict[str, object]) -> bytes:
        body = json.dumps(changed).encode()
        return b"gitexp-needs-totals 1 " + hashlib.sha256(body).hexdigest().encode() + b"\n" + body

    if damaged_plainly(path, good, damage):
        pass
    elif damage == "says-nothing-needed-with-a-stale-checksum":
        path.write_bytes(good.partition(b"\n")[0] + b"\n" + json.dumps({**data, "digests": {k: [] for k in data["digests"]}}).encode())
    elif damage == "checksummed-with-a-malformed-digest":
        path.write_bytes(checksummed({**data, "digests": {**data["digests"], "": ["../../outside"]}}))
    elif damage == "checksummed-with-a-name-no-run-can-have":
        path.write_bytes(checksummed({**data, "special": {"../x": "running"}}))
    elif damage == "checksummed-for-other-refs":
        path.write_bytes(checksummed({**data, "refs": "0" * 64, "stamp": "1" * 64, "digests": {k: [] for k in data["digests"]}}))
    push_sends_again(ws, store, lost, path, good if damage != "a-directory" else None)


def test_totals_follow_the_refs_a_new_run_is_pushed_with_its_data(team: tuple[Workspace, Path, Path]) -> None:
    ws, bare, store = team
    assert ws.gitexp("push", "origin").code == 0
    before = totals_file(ws).read_bytes()
    ws.run("-n", "later", "--", sys.executable, "train.py", "3")  # a new model.bin: one new object
    result = ws.gitexp("push", "origin")
    assert result.code == 0 and "1 object(s)" in result.out, result.out + result.err
    assert totals_file(ws).read_bytes() != before
    assert git(bare, "rev-parse", "refs/experiments/later").strip() == ws.runs()["later"]


def test_a_run_whose_data_record_is_unreadable_is_warned_about_on_every_push_and_never_kept(team: tuple[Workspace, Path, Path]) -> None:
    ws, _, _ = team
    base = ws.git("rev-parse", "main").strip()
    message = b"bad: completed\n\nGitexp-Format: 1\nGitexp-Status: completed\n"
    data = b'{"inputs": 7}\n'  # not a list: refused by the reader
    stream = (b"commit refs/experiments/bad\ncommitter T <t@example.invalid> 1767225600 +0000\n"
              b"data %d\n%s\nfrom %s\nM 100644 inline .gitexp/data.json\ndata %d\n%s\n"
              % (len(message), message, base.encode(), len(data), data))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=ws.root, check=True, capture_output=True, input=stream)
    bad_commit = ws.runs()["bad"]
    for _ in range(2):
        result = ws.gitexp("push", "origin")
        assert result.code == 0, result.err
        assert "skipped refs/experiments/bad" in result.err
    assert bad_commit not in needs_file(ws).read_text()


def test_a_push_among_many_runs_sends_only_the_new_ones(team: tuple[Workspace, Path, Path]) -> None:
    ws, bare, store = team
    many_runs(ws.root, "old", 300)
    first = ws.gitexp("push", "origin")
    assert first.code == 0, first.err
    assert "pushed 302 ref(s)" in first.out
    ws.run("-n", "r3", "--", sys.executable, "train.py", "3")
    result = ws.gitexp("push", "origin")
    assert result.code == 0, result.err
    assert "pushed 1 ref(s)" in result.out and "1 object(s)" in result.out, result.out
    assert git(bare, "rev-parse", "refs/experiments/r3").strip() == ws.runs()["r3"]
    assert len(objects(store)) == 5


def test_a_large_pull_packs_the_run_refs_and_everything_stays_valid_git(ws: Workspace, tmp_path: Path) -> None:
    ws.write("train.py", "print(1)\n")
    ws.commit_all("base")
    names = many_runs(ws.root, "big", 300)
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(ws.root), str(mate))
    result = gitexp(mate, "pull", "origin")
    assert result.code == 0, result.err
    loose = mate / ".git" / "refs" / "experiments"
    assert not loose.exists() or not any(loose.iterdir()), "no loose run ref is left"
    packed = (mate / ".git" / "packed-refs").read_text()
    assert all(f"refs/experiments/{n}\n" in packed for n in names)
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=mate, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    listed = gitexp(mate, "list", "--format", "csv", "--columns", "name")
    assert listed.code == 0, listed.err
    assert set(listed.out.split()[1:]) == set(names)
    assert gitexp(mate, "pull", "origin").code == 0  # nothing new


def test_a_large_pull_with_data_packs_the_refs_beside_the_data_and_knows_what_every_run_needs(
    team: tuple[Workspace, Path, Path], tmp_path: Path
) -> None:
    ws, bare, store = team
    names = many_runs(ws.root, "big", 400)  # packed while the data of r1 and r2 travels
    assert ws.gitexp("push", "origin").code == 0
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(bare), str(mate))
    result = gitexp(mate, "pull", "origin")
    assert result.code == 0, result.err
    assert "4 object(s)" in result.out, result.out  # each run's input and output
    loose = mate / ".git" / "refs" / "experiments"
    assert not loose.exists() or not any(loose.iterdir()), "no loose run ref is left"
    packed = (mate / ".git" / "packed-refs").read_text()
    assert all(f"refs/experiments/{n}\n" in packed for n in [*names, "r1", "r2"])
    assert objects(mate / ".git" / "gitexp" / "cache") == objects(store)  # every run's data arrived
    for name, content in (("r1", "weights 1"), ("r2", "weights 2")):
        got = gitexp(mate, "get", name, "model.bin", "-o", str(tmp_path / f"{name}.bin"))
        assert got.code == 0, got.err
        assert (tmp_path / f"{name}.bin").read_text() == content
    again = gitexp(mate, "pull", "origin")  # nothing new: the 4 objects every run needs are all there
    assert again.code == 0 and "0 object(s)" in again.out and "4 already there" in again.out, again.out
    assert subprocess.run(["git", "fsck", "--strict"], cwd=mate, capture_output=True).returncode == 0


def test_a_small_pull_leaves_its_refs_loose(ws: Workspace, tmp_path: Path) -> None:
    ws.write("train.py", "print(1)\n")
    ws.commit_all("base")
    many_runs(ws.root, "few", 20)
    mate = tmp_path / "mate"
    git(tmp_path, "clone", "-q", str(ws.root), str(mate))
    assert gitexp(mate, "pull", "origin").code == 0
    assert len(list((mate / ".git" / "refs" / "experiments").iterdir())) == 20


def test_restoring_a_small_change_touches_only_the_changed_files_and_is_exact(ws: Workspace) -> None:
    for d in range(3):
        for f in range(20):
            ws.write(f"pkg{d}/m{f}.py", f"x = {d * 100 + f}\n")
    ws.write("data/big.bin", "A" * 100_000)
    ws.write("data/small.txt", "same\n")
    ws.write(".gitexp.yaml", "data: [data/]\n")
    ws.write(".gitignore", "data/\n")
    ws.commit_all("C1")
    ws.run("-n", "A", "--", "true")
    ws.write("pkg1/m3.py", "x = 'changed'\n")
    ws.write("pkg2/m7.py", "x = 'changed too'\n")
    ws.commit_all("C2")
    ws.write("data/big.bin", "B" * 100_000)
    ws.run("-n", "B", "--", "true")

    def files() -> dict[str, tuple[int, int, bytes]]:
        out = {}
        for path in ws.root.rglob("*"):
            if path.is_file() and ".git" not in path.relative_to(ws.root).parts:
                st = path.stat()
                out[path.relative_to(ws.root).as_posix()] = (st.st_ino, st.st_mtime_ns, path.read_bytes())
        return out

    changed = {"pkg1/m3.py", "pkg2/m7.py", "data/big.bin"}
    before = files()
    result = ws.gitexp("checkout", "A")
    assert result.code == 0, result.err
    after = files()
    assert set(after) == set(before)
    for path, (ino, mtime, content) in before.items():
        if path not in changed:
            assert after[path] == (ino, mtime, content), f"{path} was touched"
    assert after["pkg1/m3.py"][2] == b"x = 103\n" and after["pkg2/m7.py"][2] == b"x = 207\n"
    assert after["data/big.bin"][2] == b"A" * 100_000
    assert ws.git("status", "--porcelain") == ""
    assert ws.gitexp("checkout", "B").code == 0
    back = files()
    assert {p: c for p, (_, _, c) in back.items()} == {p: c for p, (_, _, c) in before.items()}
    for path in set(before) - changed:
        assert back[path][:2] == before[path][:2], f"{path} was touched on the way back"

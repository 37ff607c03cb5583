"""Refs under concurrency and deletion: tags and notes never lost, rm on a remote, push leaves saved runs out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workspace, git, gitexp

RUNS = 24


def spawn(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gitexp", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, env=os.environ.copy(),
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    """(exit code, stderr) of each process, waited for with a generous deadline."""
    out = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        out.append((proc.returncode, err))
    return out


def notes(ws: Workspace) -> dict[str, dict[str, object]]:
    """The annotations in refs/notes/gitexp, by run name, read with git itself."""
    by_commit = {commit: name for name, commit in ws.runs().items()}
    out = {}
    for line in ws.git("notes", "--ref=gitexp", "list").splitlines():
        blob, commit = line.split()
        out[by_commit.get(commit, commit)] = json.loads(ws.git("cat-file", "-p", blob))
    return out


@pytest.fixture
def many(ws: Workspace) -> tuple[Workspace, list[str]]:
    """RUNS finished runs (one sweep: one process) and their names."""
    ws.write("p.yaml", "i: 0\n")
    ws.commit_all("base")
    ws.run("-S", "i=" + ",".join(str(i) for i in range(RUNS)), "--", "true")
    names = sorted(ws.runs())
    assert len(names) == RUNS
    return ws, names


def test_concurrent_tags_and_notes_on_different_runs_are_all_kept(many: tuple[Workspace, list[str]]) -> None:
    ws, names = many
    procs = [spawn(ws.root, "tag", name, f"t{i}", "shared") for i, name in enumerate(names)]
    procs += [spawn(ws.root, "note", name, f"note of {name}") for name in names]
    for code, err in finish(procs):
        assert code == 0, err
    kept = notes(ws)
    for i, name in enumerate(names):
        assert kept[name] == {"tags": [f"t{i}", "shared"], "note": f"note of {name}"}
    listed = ws.gitexp("list", "--where", "tags = shared", "-c", "name", "-f", "csv").out.split()
    assert sorted(listed[1:]) == names
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=ws.root, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


def test_concurrent_tags_on_one_run_are_all_kept_and_removals_apply(many: tuple[Workspace, list[str]]) -> None:
    ws, names = many
    run = names[0]
    assert ws.gitexp("tag", run, "old", "keep").code == 0
    procs = [spawn(ws.root, "tag", run, f"t{i}") for i in range(12)]
    procs.append(spawn(ws.root, "tag", run, "-d", "old"))
    procs.append(spawn(ws.root, "note", run, "the note"))
    for code, err in finish(procs):
        assert code == 0, err
    kept = notes(ws)[run]
    assert sorted(kept["tags"]) == sorted(["keep", *(f"t{i}" for i in range(12))])  # type: ignore[arg-type]
    assert kept["note"] == "the note"


def test_a_tag_waits_for_a_notes_ref_another_process_holds_then_is_kept(many: tuple[Workspace, list[str]]) -> None:
    ws, (r1, *_) = many
    lock = ws.root / ".git" / "refs" / "notes" / "gitexp.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")  # as git holds it while it writes the ref
    proc = spawn(ws.root, "tag", r1, "waited")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1)  # still retrying, not failed
    finally:
        lock.unlink()
    code, err = finish([proc])[0]
    assert code == 0, err
    assert notes(ws)[r1]["tags"] == ["waited"]


def test_a_notes_ref_locked_for_good_fails_saying_what_failed(many: tuple[Workspace, list[str]]) -> None:
    ws, (r1, r2, *_) = many
    assert ws.gitexp("tag", r1, "first").code == 0
    lock = ws.root / ".git" / "refs" / "notes" / "gitexp.lock"
    lock.write_text("")
    result = ws.gitexp("tag", r2, "second")
    assert result.code == 1
    assert "refs/notes/gitexp" in result.err and "gitexp.lock" in result.err and "remove that file" in result.err
    assert "free space" not in result.err
    lock.unlink()
    assert ws.gitexp("tag", r2, "second").code == 0
    assert notes(ws)[r2]["tags"] == ["second"] and notes(ws)[r1]["tags"] == ["first"]


def test_notes_written_by_git_with_fan_out_are_read_and_updated_in_place(many: tuple[Workspace, list[str]]) -> None:
    ws, (r3, *_) = many
    commit = ws.runs()[r3]
    # git lays notes out in fan-out directories once there are many; simulate one written that way
    note = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=ws.root, input='{"tags": ["by-git"]}\n',
                          capture_output=True, text=True, check=True).stdout.strip()
    inner = subprocess.run(["git", "mktree"], cwd=ws.root, input=f"100644 blob {note}\t{commit[2:]}\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    root = subprocess.run(["git", "mktree"], cwd=ws.root, input=f"040000 tree {inner}\t{commit[:2]}\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    notes_commit = ws.git("commit-tree", root, "-m", "notes").strip()
    ws.git("update-ref", "refs/notes/gitexp", notes_commit)
    assert ws.gitexp("tag", r3).out.split() == ["by-git"]
    assert ws.gitexp("tag", r3, "more").code == 0
    assert ws.gitexp("tag", r3).out.split() == ["by-git", "more"]
    assert ws.git("ls-tree", "--name-only", "refs/notes/gitexp").split() == [commit[:2]], "no second copy at the top"
    assert notes(ws)[r3] == {"tags": ["by-git", "more"]}

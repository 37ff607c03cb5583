"""Reading every run at once (`gitexp list`): git cat-file beside the process, libgit2 when git fails;
the same summaries either way, odd commits included."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Workspace, git
from test_scale_costs import many_runs

from gitexp import format as fmt
from gitexp.model import RunSummary
from gitexp.store import Store, batch


def odd_runs(ws: Workspace) -> None:
    """A run whose message is Latin-1 (encoding header), one with no message, a ref to a blob, a run with a
    note and extra trailers out of order, and 30 ordinary ones."""
    ws.write("a.txt")
    ws.commit_all()
    many_runs(ws.root, "r", 30)
    tree = git(ws.root, "rev-parse", "HEAD^{tree}").strip()
    latin = "caf\xe9: completed\n\nGitexp-Run: cafe\nGitexp-Status: completed\nGitexp-Params: {\"who\": \"Jos\xe9\"}\n"
    raw = f"tree {tree}\nauthor T <t@x> 1 +0000\ncommitter T <t@x> 1 +0000\nencoding ISO-8859-1\n\n".encode() + latin.encode("latin-1")
    out = subprocess.run(["git", "hash-object", "-w", "-t", "commit", "--stdin"], cwd=ws.root, input=raw, capture_output=True, check=True)
    git(ws.root, "update-ref", "refs/experiments/latin", out.stdout.decode().strip())
    bare = f"tree {tree}\nauthor T <t@x> 1 +0000\ncommitter T <t@x> 1 +0000\n".encode()
    out = subprocess.run(["git", "hash-object", "-w", "-t", "commit", "--stdin", "--literally"], cwd=ws.root, input=bare, capture_output=True, check=True)
    git(ws.root, "update-ref", "refs/experiments/empty", out.stdout.decode().strip())
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=ws.root, input=b"not a commit\n", capture_output=True, check=True)
    git(ws.root, "update-ref", "refs/experiments/blob", blob.stdout.decode().strip())
    message = ("noted: completed\n\nA note\n\non two paragraphs\n\nGitexp-Status: failed\nGitexp-Params: {\"x\": 1}\n"
               "Other: kept out\nGitexp-Metrics: {\"acc\": 0.25}\nGitexp-Status: completed\n")
    git(ws.root, "commit-tree", tree, "-m", "x")  # (the identity for the next commit)
    commit = subprocess.run(["git", "commit-tree", tree], cwd=ws.root, input=message.encode(), capture_output=True, check=True,
                            env={**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "T",
                                 "GIT_COMMITTER_EMAIL": "t@x"})
    git(ws.root, "update-ref", "refs/experiments/noted", commit.stdout.decode().strip())


def read(root: Path) -> tuple[list[RunSummary], list[str]]:
    problems: list[str] = []
    found = Store.discover(root).summaries(problems)
    return sorted(found, key=lambda r: r.name), problems


def test_git_beside_the_process_reads_the_same_summaries_as_libgit2(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    odd_runs(ws)
    monkeypatch.setattr(batch, "WORTH_IT", 10**9)
    by_libgit2, problems_libgit2 = read(ws.root)
    monkeypatch.setattr(batch, "WORTH_IT", 1)
    by_git, problems_git = read(ws.root)
    assert by_git == by_libgit2 and problems_git == problems_libgit2
    assert len(by_git) == 33  # 30 + latin + empty + noted; the blob is a problem, not a run
    assert problems_git == ["skipped refs/experiments/blob: refs/experiments/blob does not point to a commit (run 'git fsck')"]
    runs = {r.name: r for r in by_git}
    assert runs["latin"].params == {"who": "Jos\xe9"} and runs["latin"].subject == "caf\xe9: completed"
    assert runs["empty"].status == "unknown" and runs["empty"].subject == ""
    noted = runs["noted"]
    assert (noted.status, noted.params, noted.metrics, noted.note) == ("completed", {"x": 1}, {"acc": 0.25}, "A note\n\non two paragraphs")


def test_a_git_that_cannot_start_or_dies_midway_leaves_libgit2_to_read_every_run(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd_runs(ws)
    monkeypatch.setattr(batch, "WORTH_IT", 1)
    expected = read(ws.root)
    fake = tmp_path / "bin"
    fake.mkdir()
    real_git = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True, check=True).stdout.strip()
    # a git that answers five objects, then dies
    (fake / "git").write_text(f"#!/bin/sh\nhead -n 5 | {real_git} \"$@\"\nexit 1\n")
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert read(ws.root) == expected
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git at all
    assert read(ws.root) == expected


def test_a_commit_larger_than_the_bound_is_skipped_unread_with_a_clear_problem(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.write("a.txt")
    ws.commit_all()
    many_runs(ws.root, "r", 3)
    monkeypatch.setattr(batch, "WORTH_IT", 1)
    store = Store.discover(ws.root)
    commits = [c for _, c in store.run_refs()]
    items = list(batch.messages(store.repo.path, commits, limit=100))  # type: ignore[arg-type]
    assert all(isinstance(i, batch.TooLarge) for i in items) and len(items) == 3


def test_a_summary_made_fast_equals_one_made_by_the_dataclass() -> None:
    message = fmt.build_message("s", "a note", fmt.run_trailers(RunSummary(
        name="n", commit="c", status="completed", exit_code=3, started="2026-01-01T00:00:00+00:00", duration=1.5,
        user="U <u@x>", base="b" * 40, base_branch="main", parent="p", tags=("t",), params={"lr": 0.1},
        metrics={"acc": 1}, resources={"cpu": 2}, sweep={"id": "s1"}, incomplete=("logs",), recorder="1@h")))
    fast = fmt.summary_from_message("n", "c", message)
    slow = RunSummary(**{f.name: getattr(fast, f.name) for f in dataclasses.fields(RunSummary)})
    assert fast == slow and set(vars(fast)) == {f.name for f in dataclasses.fields(RunSummary)}
    assert (fast.exit_code, fast.tags, fast.sweep, fast.incomplete, fast.recorder, fast.note) == (3, ("t",), {"id": "s1"}, ("logs",), "1@h", "a note")

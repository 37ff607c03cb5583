"""Commit parents: the base commit, then the run this one improves upon."""

from __future__ import annotations

from conftest import Workspace


def parents(ws: Workspace, run: str) -> list[str]:
    return ws.git("log", "-1", "--format=%P", f"refs/experiments/{run}").split()


def test_iterating_makes_the_previous_run_the_parent(ws: Workspace) -> None:
    ws.write("train.py", "v1\n")
    base = ws.commit_all()
    ws.freeze("train.py")
    ws.run("-n", "a", "--", "true")
    ws.write("train.py", "v2 tweak\n")
    ws.run("-n", "b", "--", "true")
    runs = ws.runs()
    assert parents(ws, "a") == [base]
    assert parents(ws, "b") == [base, runs["a"]]
    assert ws.record("b", "run.json")["parent_run"] == {"name": "a", "commit": runs["a"]}
    trailers = ws.git("log", "-1", "--format=%(trailers:key=Gitexp-Parent-Run,valueonly)", "refs/experiments/b")
    assert trailers.strip() == runs["a"]
    assert ws.gitexp("show", "b").out.count("parent   a (") == 1


def test_no_parent_starts_a_new_root_and_parent_picks_one(ws: Workspace) -> None:
    ws.write("f")
    base = ws.commit_all()
    ws.freeze()
    ws.run("-n", "a", "--", "true")
    ws.run("-n", "b", "--", "true")
    ws.run("-n", "root2", "--no-parent", "--", "true")
    ws.run("-n", "from-a", "--parent", "a", "--", "true")
    runs = ws.runs()
    assert parents(ws, "root2") == [base]
    assert parents(ws, "from-a") == [base, runs["a"]]
    prefix = runs["b"][:8]
    ws.run("-n", "by-prefix", "--parent", prefix, "--", "true")
    assert parents(ws, "by-prefix") == [base, runs["b"]]
    both = ws.gitexp("run", "--parent", "a", "--no-parent", "--", "true")
    assert both.code == 2 and "cannot be used together" in both.err
    missing = ws.gitexp("run", "--parent", "nope", "--", "touch", "ran")
    assert missing.code == 1 and not (ws.root / "ran").exists()


def test_in_an_empty_repo_the_only_parent_is_the_parent_run(ws: Workspace) -> None:
    ws.freeze()
    ws.run("-n", "a", "--", "true")
    ws.run("-n", "b", "--", "true")
    assert parents(ws, "a") == []
    assert parents(ws, "b") == [ws.runs()["a"]]


def test_each_branch_keeps_its_own_current_run(ws: Workspace) -> None:
    ws.write("f")
    main = ws.commit_all()
    ws.run("-n", "on-main", "--", "true")
    ws.git("checkout", "-q", "-b", "feature")
    ws.write("g")
    feature = ws.commit_all()
    ws.run("-n", "on-feature", "--", "true")
    assert parents(ws, "on-feature") == [feature], "a branch without runs starts a new root"
    ws.run("-n", "on-feature-2", "--", "true")
    assert parents(ws, "on-feature-2") == [feature, ws.runs()["on-feature"]]
    ws.git("checkout", "-q", "main")
    ws.run("-n", "back-on-main", "--", "true")
    assert parents(ws, "back-on-main") == [main, ws.runs()["on-main"]]


def test_a_deleted_parent_run_is_not_reused(ws: Workspace) -> None:
    ws.run("-n", "a", "--", "true")
    ws.git("update-ref", "-d", "refs/experiments/a")
    result = ws.run("-n", "b", "--", "true")
    assert parents(ws, "b") == []
    assert "no longer exists" in result.err


def test_lineage_survives_in_trailers_after_a_rebase_of_the_branch(ws: Workspace) -> None:
    ws.write("f", "1\n")
    base = ws.commit_all()
    ws.run("-n", "a", "--", "true")
    ws.git("commit", "-q", "--amend", "-m", "rewritten")  # the user's branch moves on
    trailers = ws.git("log", "-1", "--format=%(trailers:key=Gitexp-Base,valueonly)", "refs/experiments/a")
    assert trailers.strip() == base
    assert ws.git("cat-file", "-t", base).strip() == "commit"

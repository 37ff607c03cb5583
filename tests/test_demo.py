"""`gitexp demo`: the README's main-job command works on a fresh machine."""

from __future__ import annotations

from pathlib import Path

from conftest import git, gitexp


def test_demo_records_three_runs_and_prints_list_and_show(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    result = gitexp(tmp_path, "demo", "--dir", str(target), timeout=120)
    assert result.code == 0, result.err
    assert "$ gitexp list" in result.out and "$ gitexp show square-feature" in result.out
    refs = git(target, "for-each-ref", "--format=%(refname:short)", "refs/experiments/").split()
    assert sorted(refs) == ["experiments/baseline", "experiments/lr-high", "experiments/square-feature"]
    listed = gitexp(target, "list", "--json").json()
    acc = {r["name"]: r["metrics"]["accuracy"] for r in listed}  # type: ignore[index, union-attr]
    assert acc["square-feature"] > acc["baseline"], "the demo tells a story: the feature helps"
    assert ".env" not in git(target, "ls-tree", "-r", "--name-only", "refs/experiments/baseline")
    assert git(target, "status", "--porcelain").split() == ["M", "train.py"]
    git(target, "fsck", "--strict")


def test_demo_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = gitexp(tmp_path, "demo", "--dir", str(tmp_path / "full"))
    assert result.code == 1 and "not empty" in result.err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"

"""The workspace after faults: params left rewritten by a killed -S run, checkouts killed half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for, Workspace

PY = sys.executable
MINE = "lr: 0.1   # my uncommitted tuning, in no commit and no run\n"




def kill_an_override_run(ws: Workspace) -> None:
    """An -S run SIGKILLed with its command: params.yaml stays rewritten, the user's bytes only in the backup."""
    proc = subprocess.Popen(
        [PY, "-m", "gitexp", "run", "-n", "doomed", "-S", "lr=9", "--", "sleep", "60"],
        cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for(lambda: "lr: 9" in (ws.root / "params.yaml").read_text())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (ws.root / ".git/gitexp/params-backup.json").exists()


def holders(ws: Workspace, content: str) -> list[str]:
    """The runs whose params.yaml is content."""
    return [name for name in ws.runs() if ws.git("show", f"refs/experiments/{name}:params.yaml", check=False) == content]


@pytest.fixture
def other(ws: Workspace) -> Workspace:
    """A workspace with committed params, a run 'other' of different params, and the user's uncommitted edit."""
    ws.write("params.yaml", "lr: 0.3\n")
    ws.commit_all()
    ws.write("params.yaml", "lr: 0.2\n")
    ws.run("-n", "other", "--", "true")
    ws.write("params.yaml", MINE)
    return ws


@pytest.mark.parametrize("command", [("checkout", "other"), ("branch", "--switch", "other", "tried")])
def test_a_checkout_after_a_killed_override_run_restores_the_users_params_before_saving_the_workspace(
    other: Workspace, command: tuple[str, ...]
) -> None:
    kill_an_override_run(other)
    result = other.gitexp(*command)
    assert result.code == 0, result.err
    assert "restored params.yaml" in result.err
    assert (other.root / "params.yaml").read_text() == "lr: 0.2\n"
    saved = holders(other, MINE)
    assert saved and saved[0].startswith("saved-"), "the workspace was saved with the user's params, not the -S ones"
    assert not (other.root / ".git/gitexp/params-backup.json").exists()
    other.run("-n", "next", "--", "true")
    assert other.gitexp("checkout", saved[0]).code == 0
    assert (other.root / "params.yaml").read_text() == MINE


def test_the_users_params_are_kept_when_the_file_was_edited_after_the_killed_run(other: Workspace) -> None:
    kill_an_override_run(other)
    (other.root / "params.yaml").write_text("lr: 0.7   # edited after the crash\n")
    result = other.gitexp("checkout", "other")  # the edit wins; the bytes before the run are kept aside
    assert result.code == 0, result.err
    assert not (other.root / ".git/gitexp/params-backup.json").exists()
    kept = [line for line in result.err.splitlines() if "params.yaml" in line and "kept in" in line]
    assert len(kept) == 1, result.err
    path = Path(kept[0].split("kept in ", 1)[1].split(";")[0].strip())
    assert (other.root / path).read_text() == MINE
    assert holders(other, "lr: 0.7   # edited after the crash\n")  # the edit itself was saved by the checkout
    again = other.run("-n", "next", "--", "true")  # nothing left to recover, and the kept copy stays
    assert "params.yaml" not in again.err and (other.root / path).read_text() == MINE


def test_a_run_after_a_killed_override_run_and_an_edit_keeps_the_users_params(other: Workspace) -> None:
    kill_an_override_run(other)
    (other.root / "params.yaml").write_text("lr: 0.7\n")
    result = other.run("-n", "next", "--", "true")
    assert "kept in" in result.err
    path = result.err.split("kept in ", 1)[1].split(";")[0].strip()
    assert (other.root / path).read_text() == MINE
    assert (other.root / "params.yaml").read_text() == "lr: 0.7\n"


def test_the_users_params_are_kept_when_the_file_was_edited_during_the_run(ws: Workspace) -> None:
    ws.write("params.yaml", MINE)
    result = ws.run("-n", "edited", "-S", "lr=0.5", "--", "sh", "-c", "echo 'lr: 0.7' > params.yaml")
    assert (ws.root / "params.yaml").read_text() == "lr: 0.7\n"  # the edit wins
    assert "your edit was kept" in result.err
    path = result.err.split("kept in ", 1)[1].split(";")[0].strip()
    assert (ws.root / path).read_text() == MINE  # and the bytes it replaced are not lost
    ws.write("params.yaml", MINE)
    same = ws.run("-n", "same", "-S", "lr=0.5", "--", "sh", "-c", f"printf '{MINE}' > params.yaml")
    assert "your edit was kept" in same.err and "kept in" not in same.err  # the file holds them: nothing to keep


def test_params_are_not_touched_by_a_checkout_while_the_override_run_lives(other: Workspace) -> None:
    proc = subprocess.Popen(
        [PY, "-m", "gitexp", "run", "-n", "alive", "-S", "lr=9", "--", "sleep", "60"],
        cwd=other.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for(lambda: "lr: 9" in (other.root / "params.yaml").read_text())
        result = other.gitexp("checkout", "other")
        assert result.code == 1 and "running in this workspace" in result.err
        assert "lr: 9" in (other.root / "params.yaml").read_text()
        assert (other.root / ".git/gitexp/params-backup.json").exists()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    assert (other.root / "params.yaml").read_text() == MINE


def status(ws: Workspace) -> tuple[list[str], list[str]]:
    return (
        sorted(ws.git("status", "--porcelain=v1", "--untracked-files=all").splitlines()),
        sorted(ws.git("diff", "HEAD", "--name-status").splitlines()),
    )


@pytest.fixture
def changed(ws: Workspace) -> tuple[Workspace, tuple[list[str], list[str]]]:
    """A base commit of many files and a run 'r' that changes most of them without changing their size."""
    for i in range(300):
        ws.write(f"src/f{i:03}.txt", f"base {i:03}\n")
    ws.write("grows.txt", "short\n")
    ws.write("gone.txt", "deleted by the run\n")
    ws.commit_all()
    for i in range(0, 300, 2):
        ws.write(f"src/f{i:03}.txt", f"RUN! {i:03}\n")  # same size, same second: only the content tells
    ws.write("grows.txt", "much longer now\n")
    (ws.root / "gone.txt").unlink()
    ws.write("new.txt", "added by the run\n")
    ws.run("-n", "r", "--", "true")
    expected = status(ws)
    assert len(expected[0]) == 153 and " M src/f000.txt" in expected[0]
    return ws, expected


def back_to_base(ws: Workspace) -> None:
    """The files and the index as at the base commit, written at the start of a second: a checkout that
    rewrites a file within that second leaves it with the stat data git has for the base's content
    (same size, same inode, same second), which is what makes a stale index entry look clean."""
    ws.git("reset", "-q", "--hard")
    ws.git("clean", "-fdq")
    assert status(ws) == ([], [])
    while time.time() % 1 > 0.05:
        time.sleep(0.005)
    for i in range(0, 300, 2):  # rewritten now, as a git checkout would
        (ws.root / f"src/f{i:03}.txt").unlink()
    ws.git("checkout", "-q", "--", "src")


def test_a_checkout_shows_exactly_the_runs_changes_in_git_status_even_within_one_second(
    changed: tuple[Workspace, tuple[list[str], list[str]]],
) -> None:
    ws, expected = changed
    for _ in range(3):
        back_to_base(ws)
        result = ws.gitexp("checkout", "r")
        assert result.code == 0, result.err
        assert status(ws) == expected


def test_a_checkout_killed_at_any_moment_then_run_again_shows_exactly_the_runs_changes(
    changed: tuple[Workspace, tuple[list[str], list[str]]],
) -> None:
    ws, expected = changed
    back_to_base(ws)
    started = time.monotonic()
    assert ws.gitexp("checkout", "r").code == 0
    took = time.monotonic() - started
    first = ws.root / "src/f000.txt"
    moments: list[float | None] = [None] * 8 + [took * i / 12 for i in range(12)]  # None: once it has written a file
    for moment in moments:
        back_to_base(ws)
        proc = subprocess.Popen([PY, "-m", "gitexp", "checkout", "r"], cwd=ws.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if moment is None:
            deadline = time.time() + 60
            while proc.poll() is None and first.read_bytes().startswith(b"base") and time.time() < deadline:
                pass  # busy: the window is short
        else:
            time.sleep(moment)
        proc.kill()
        proc.wait()
        again = ws.gitexp("checkout", "r")
        assert again.code == 0, again.err
        assert status(ws) == expected, f"killed after {moment}s"

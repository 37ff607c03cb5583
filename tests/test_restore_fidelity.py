"""Restoring gives the same back: a checkout writes what git's own checkout would.

The oracle is git again: every code file a checkout writes has the bytes
`git cat-file --filters --path=P BLOB` gives (line endings, Git LFS smudged);
`git status` after checking a run out is what it was when the run was recorded;
a sparse checkout keeps its files out and their skip-worktree bits; submodules
go to the commits the run used. Then `gitexp checkout RUN -- PATH...`, and Git
LFS objects travelling with push and pull.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import IDENTITY, Workspace, git, gitexp
from test_git_fidelity import (
    HAS_LFS,
    Setup,
    autocrlf_input,
    autocrlf_true,
    gitattributes_text_eol,
    lfs_modified,
    lfs_new,
    skip_worktree,
    sparse_cone,
    sparse_non_cone,
    submodule_moved,
    write,
)

needs_lfs = pytest.mark.skipif(not HAS_LFS, reason="git-lfs is not installed")


@pytest.fixture(autouse=True)
def identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """git-lfs and commits inside submodules need an identity too."""
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)


def status(root: Path) -> list[str]:
    return sorted(git(root, "status", "--porcelain", "--untracked-files=all").splitlines())


def skip_worktree_bits(root: Path) -> set[str]:
    return {line[2:] for line in git(root, "ls-files", "-t").splitlines() if line.startswith("S ")}


def git_would_write(root: Path, run: str, left_out: set[str] = frozenset()) -> dict[str, bytes]:  # type: ignore[assignment]
    """path -> the bytes git's checkout writes for each file of the run's code (the oracle)."""
    out = {}
    listing = subprocess.run(["git", "ls-tree", "-r", "-z", f"refs/experiments/{run}"], cwd=root, capture_output=True, check=True)
    for item in listing.stdout.split(b"\0"):
        if not item:
            continue
        meta, raw = item.split(b"\t", 1)
        path = os.fsdecode(raw)
        mode, kind, oid = meta.decode().split()
        if kind != "blob" or path.startswith(".gitexp/") or path in left_out or mode == "120000":
            continue
        proc = subprocess.run(["git", "cat-file", "--filters", f"--path={path}", oid], cwd=root, capture_output=True, check=True)
        out[path] = proc.stdout
    return out


def files_of(root: Path, paths: dict[str, bytes]) -> dict[str, bytes | None]:
    return {p: (root / p).read_bytes() if (root / p).is_file() else None for p in paths}


def back_to_head(root: Path) -> None:
    """Throw the work away (the run holds it): the workspace is HEAD again."""
    git(root, "reset", "-q", "--hard")
    git(root, "clean", "-qfd")


def recorded(ws: Workspace, setup: Setup, tmp_path: Path) -> tuple[list[str], dict[str, bytes]]:
    """Set the repository up, record run r; (git status then, the bytes of every file then)."""
    setup(ws.root, tmp_path)
    before = status(ws.root)
    ws.run("-n", "r", "--", "true")
    files = {}
    for dirpath, dirnames, filenames in os.walk(ws.root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            full = Path(dirpath, name)
            if not full.is_symlink():
                files[full.relative_to(ws.root).as_posix()] = full.read_bytes()
    return before, files


# -- in place: what git's checkout would write, and git status as it was --------------------------------


@pytest.mark.parametrize("setup", [lfs_modified, lfs_new, autocrlf_true, autocrlf_input, gitattributes_text_eol],
                         ids=lambda s: s.__name__)
def test_checkout_writes_what_git_would_and_git_status_is_as_when_the_run_was_recorded(
    ws: Workspace, tmp_path: Path, setup: Setup
) -> None:
    if setup in (lfs_modified, lfs_new) and not HAS_LFS:
        pytest.skip("git-lfs is not installed")
    before, _ = recorded(ws, setup, tmp_path)
    back_to_head(ws.root)
    for child in ws.root.iterdir():  # every file is then written by the checkout
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    result = ws.gitexp("checkout", "r")
    assert result.code == 0, result.err
    expected = git_would_write(ws.root, "r")
    assert files_of(ws.root, expected) == expected
    assert status(ws.root) == before


@needs_lfs
def test_a_modified_lfs_file_gets_its_real_content_in_place_and_into_a_directory(ws: Workspace, tmp_path: Path) -> None:
    _, files = recorded(ws, lfs_modified, tmp_path)
    assert git(ws.root, "cat-file", "-p", "refs/experiments/r:model.bin").startswith("version https://git-lfs")
    back_to_head(ws.root)
    assert (ws.root / "model.bin").read_bytes() != files["model.bin"]
    assert ws.gitexp("checkout", "r").code == 0
    assert (ws.root / "model.bin").read_bytes() == files["model.bin"]
    assert status(ws.root) == [" M model.bin"]
    into = tmp_path / "copy"
    assert ws.gitexp("checkout", "r", "--into", str(into)).code == 0
    assert (into / "model.bin").read_bytes() == files["model.bin"]
    assert (into / "train.py").read_bytes() == files["train.py"]


@needs_lfs
def test_an_lfs_file_whose_object_is_missing_is_written_as_its_pointer_with_a_notice(ws: Workspace, tmp_path: Path) -> None:
    recorded(ws, lfs_modified, tmp_path)
    pointer = git(ws.root, "cat-file", "-p", "refs/experiments/r:model.bin")
    oid = pointer.split("oid sha256:")[1].split()[0]
    (ws.root / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).unlink()
    into = tmp_path / "copy"
    result = ws.gitexp("checkout", "r", "--into", str(into))
    assert result.code == 0, result.err
    assert (into / "model.bin").read_text() == pointer
    assert "model.bin" in result.err and "gitexp pull" in result.err


# -- sparse checkouts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("setup", [sparse_cone, sparse_non_cone], ids=lambda s: s.__name__)
def test_a_sparse_checkout_keeps_its_files_out_and_their_skip_worktree_bits(ws: Workspace, tmp_path: Path, setup: Setup) -> None:
    before, files = recorded(ws, setup, tmp_path)
    outside = skip_worktree_bits(ws.root)
    assert outside  # the setup leaves some files out
    back_to_head(ws.root)
    result = ws.gitexp("checkout", "r")
    assert result.code == 0, result.err
    assert skip_worktree_bits(ws.root) == outside
    assert not [p for p in outside if (ws.root / p).exists()]
    assert status(ws.root) == before  # no deletions
    expected = git_would_write(ws.root, "r", outside)
    assert files_of(ws.root, expected) == expected
    assert all((ws.root / p).read_bytes() == data for p, data in files.items())
    into = tmp_path / "copy"
    assert ws.gitexp("checkout", "r", "--into", str(into)).code == 0
    assert all((into / p).is_file() for p in outside)  # a copy of the run has all of it


def test_skip_worktree_entries_set_by_hand_keep_their_bit_and_their_local_files(ws: Workspace, tmp_path: Path) -> None:
    before, _ = recorded(ws, skip_worktree, tmp_path)
    write(ws.root, "c.py", "c\n")  # back to HEAD's
    result = ws.gitexp("checkout", "r")
    assert result.code == 0, result.err
    assert (ws.root / "c.py").read_text() == "changed\n"
    assert (ws.root / "a.py").read_text() == "local config\n" and not (ws.root / "b.py").exists()
    assert skip_worktree_bits(ws.root) == {"a.py", "b.py"}
    assert status(ws.root) == before


# -- submodules -----------------------------------------------------------------------------------------


def test_a_moved_submodule_is_checked_out_at_the_commit_the_run_used(ws: Workspace, tmp_path: Path) -> None:
    before, _ = recorded(ws, submodule_moved, tmp_path)
    sub = ws.root / "sub"
    used = git(sub, "rev-parse", "HEAD").strip()
    git(sub, "checkout", "-q", "--detach", "HEAD~1")
    back_to_head(ws.root)
    result = ws.gitexp("checkout", "r")
    assert result.code == 0, result.err
    assert git(sub, "rev-parse", "HEAD").strip() == used
    assert "submodule sub checked out at" in result.err
    assert status(ws.root) == before


def test_a_submodule_not_initialised_or_lacking_the_commit_gets_a_notice_naming_it(ws: Workspace, tmp_path: Path) -> None:
    recorded(ws, submodule_moved, tmp_path)
    sub = ws.root / "sub"
    used = git(sub, "rev-parse", "HEAD").strip()
    git(sub, "checkout", "-q", "--detach", "HEAD~1")
    git(sub, "branch", "-q", "-f", "main", "HEAD")
    git(sub, "reflog", "expire", "--expire=now", "--all")
    git(sub, "gc", "-q", "--prune=now")
    assert git(sub, "cat-file", "-t", used, check=False).strip() != "commit"
    result = ws.gitexp("checkout", "r")
    assert result.code == 0, result.err
    assert f"submodule sub does not have commit {used[:10]}" in result.err and "git -C sub fetch" in result.err
    git(ws.root, "submodule", "deinit", "-q", "-f", "sub")
    result = ws.gitexp("checkout", "r")
    assert result.code == 0, result.err
    assert "submodule sub is not initialised" in result.err and "git submodule update --init sub" in result.err


# -- gitexp checkout RUN -- PATH... --------------------------------------------------------------------


@pytest.fixture
def two_runs(ws: Workspace) -> Workspace:
    """Run A: code and a data directory; then run B changes both; the workspace is B, HEAD at base."""
    ws.write(".gitexp.yaml", "data: [data]\n")
    ws.write("train.py", "v = 1\n")
    ws.write("src/util.py", "u = 1\n")
    ws.write("src/more.py", "m = 1\n")
    ws.commit_all("base")
    ws.write("train.py", "v = 'A'\n")
    ws.write("data/a.csv", "A\n")
    ws.write("data/sub/b.csv", "A b\n")
    ws.run("-n", "A", "--", "true")
    ws.write("train.py", "v = 'B'\n")
    ws.write("src/util.py", "u = 'B'\n")
    ws.write("src/more.py", "m = 'B'\n")
    ws.write("data/a.csv", "B\n")
    ws.write("data/sub/b.csv", "B b\n")
    ws.write("data/sub/only_b.csv", "B only\n")
    ws.run("-n", "B", "--", "true")
    return ws


def _unmoved(ws: Workspace) -> tuple[str, str, str]:
    """HEAD, the index's entries (its stat data may be dropped: git then hashes those files again), the branch."""
    return (ws.git("rev-parse", "HEAD"), ws.git("ls-files", "-s"), ws.git("symbolic-ref", "HEAD"))


def test_checkout_of_one_code_file_restores_only_it_and_moves_nothing(two_runs: Workspace) -> None:
    ws = two_runs
    pointer = sorted((ws.root / ".git" / "gitexp").glob("current*"))
    before = _unmoved(ws)
    result = ws.gitexp("checkout", "A", "--", "train.py")
    assert result.code == 0, result.err
    assert (ws.root / "train.py").read_text() == "v = 'A'\n"
    assert (ws.root / "src/util.py").read_text() == "u = 'B'\n"
    assert (ws.root / "data/a.csv").read_text() == "B\n"
    assert _unmoved(ws) == before
    assert sorted((ws.root / ".git" / "gitexp").glob("current*")) == pointer
    assert "saved" not in result.err  # B holds what was overwritten
    # the next run's parent is still B
    ws.run("-n", "C", "--", "true")
    assert ws.record("C", "run.json")["parent_run"]["name"] == "B"  # type: ignore[index]


def test_checkout_of_a_directory_and_a_data_file_restores_what_is_under_them(two_runs: Workspace) -> None:
    ws = two_runs
    sub = ws.root / "src"
    result = gitexp(sub, "checkout", "A", "--", "util.py", ".")  # relative to the current directory
    assert result.code == 0, result.err
    assert (ws.root / "src/util.py").read_text() == "u = 1\n" and (ws.root / "src/more.py").read_text() == "m = 1\n"
    assert (ws.root / "train.py").read_text() == "v = 'B'\n"
    result = ws.gitexp("checkout", "A", "--", "data/a.csv")
    assert result.code == 0, result.err
    assert (ws.root / "data/a.csv").read_text() == "A\n" and (ws.root / "data/sub/b.csv").read_text() == "B b\n"
    result = ws.gitexp("checkout", "A", "--", "data/sub/")
    assert result.code == 0, result.err
    assert (ws.root / "data/sub/b.csv").read_text() == "A b\n"
    assert not (ws.root / "data/sub/only_b.csv").exists()  # a data directory holds only the run's files
    result = ws.gitexp("checkout", "B", "--", ".")  # the whole workspace, HEAD and index staying
    assert result.code == 0, result.err
    assert (ws.root / "src/util.py").read_text() == "u = 'B'\n" and (ws.root / "data/sub/only_b.csv").exists()


def test_checkout_of_a_path_saves_a_modified_file_first(two_runs: Workspace) -> None:
    ws = two_runs
    ws.write("train.py", "my unsaved edit\n")
    before = _unmoved(ws)
    result = ws.gitexp("checkout", "A", "--", "train.py")
    assert result.code == 0, result.err
    saved = next(line.split()[-1] for line in result.err.splitlines() if "get it back with" in line)
    assert ws.record(saved, "run.json")["status"] == "saved"  # type: ignore[index]
    assert ws.git("show", f"refs/experiments/{saved}:train.py") == "my unsaved edit\n"
    assert (ws.root / "train.py").read_text() == "v = 'A'\n"
    assert _unmoved(ws) == before


@pytest.mark.parametrize("path, says", [
    ("nothere.py", "has no file or directory 'nothere.py'"),
    ("../outside", "not a path inside the workspace"),
    ("/etc/passwd", "not a path inside the workspace"),
    (".gitexp/run.json", "does not name one of the run's files"),
])
def test_checkout_of_a_path_the_run_lacks_is_refused_and_changes_nothing(two_runs: Workspace, path: str, says: str) -> None:
    ws = two_runs
    ws.freeze()
    result = ws.gitexp("checkout", "A", "--", "train.py", path)
    assert result.code != 0
    assert says in result.err and len(result.err.strip().splitlines()) == 1
    assert not [n for n in ws.runs() if n.startswith("saved-")]


# -- Git LFS objects travel with push and pull ---------------------------------------------------------


@needs_lfs
def test_a_runs_lfs_object_travels_with_push_and_pull_to_a_fresh_clone(ws: Workspace, tmp_path: Path) -> None:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    _, files = recorded(ws, lfs_modified, tmp_path)
    ws.git("remote", "add", "origin", str(bare))
    ws.git("push", "-q", "origin", "main")
    (ws.root / ".git" / "hooks" / "pre-push").unlink()  # git-lfs's hook would send it with the git push: gitexp must
    result = ws.gitexp("push", "origin", "r")
    assert result.code == 0, result.err
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "lfs", "install", "--local")
    pointer = git(clone, "cat-file", "-p", "refs/experiments/r:model.bin", check=False)
    assert pointer == ""  # not fetched yet
    result = gitexp(clone, "pull", "origin", "r")
    assert result.code == 0, result.err
    oid = git(clone, "cat-file", "-p", "refs/experiments/r:model.bin").split("oid sha256:")[1].split()[0]
    assert (clone / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).is_file()
    result = gitexp(clone, "checkout", "r")
    assert result.code == 0, result.err
    assert (clone / "model.bin").read_bytes() == files["model.bin"]
    assert status(clone) == [" M model.bin"]

"""`gitexp get`: any file or directory of a run, written elsewhere, verified; and reading runs in a bare repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Workspace, git, gitexp


@pytest.fixture
def trained(ws: Workspace, tmp_path: Path) -> Workspace:
    """Two runs: code, an input directory, an output file and an output directory, and a data remote."""
    ws.write(".gitexp.yaml", f"data: [data]\noutputs: [model.bin, out]\nremotes:\n  shared: {tmp_path / 'datastore'}\n")
    ws.write(".gitignore", "model.bin\nout/\n")
    ws.write("train.py", "import os, sys\nos.makedirs('out/sub', exist_ok=True)\n"
             "open('model.bin', 'w').write('weights ' + sys.argv[1])\n"
             "open('out/a.txt', 'w').write('a' + sys.argv[1])\nopen('out/sub/b.txt', 'w').write('b')\n")
    ws.write("data/train.csv", "a,b\n1,2\n")
    ws.commit_all("base")
    assert ws.gitexp("remote", "trust", "shared").code == 0  # written by hand: this clone consents once
    ws.run("-n", "r1", "--", sys.executable, "train.py", "1")
    ws.write("train.py", ws.root.joinpath("train.py").read_text() + "# v2\n")
    ws.run("-n", "r2", "--", sys.executable, "train.py", "2")
    return ws


def test_get_writes_a_code_file_an_output_and_a_directory_without_touching_the_workspace(trained: Workspace, tmp_path: Path) -> None:
    ws = trained
    ws.freeze()
    dest = tmp_path / "got"
    dest.mkdir()
    for args in (("r1", "train.py"), ("r1", "model.bin"), ("r1", "out"), ("r1", "data/train.csv")):
        result = gitexp(dest, "get", *args, env={"GIT_DIR": str(ws.root / ".git")})
        assert result.code == 0, result.err
    assert "# v2" not in (dest / "train.py").read_text()
    assert (dest / "model.bin").read_text() == "weights 1"
    assert (dest / "out/a.txt").read_text() == "a1" and (dest / "out/sub/b.txt").read_text() == "b"
    assert (dest / "train.csv").read_text() == "a,b\n1,2\n"
    assert not list(dest.glob(".*gitexp*")), "no temporary left behind"


def test_get_refuses_to_overwrite_unless_forced_and_streams_one_file_to_stdout(trained: Workspace, tmp_path: Path) -> None:
    ws = trained
    ws.freeze()
    target = tmp_path / "model.copy"
    target.write_text("mine")
    refused = ws.gitexp("get", "r1", "model.bin", "-o", str(target))
    assert refused.code == 1 and "already exists" in refused.err and target.read_text() == "mine"
    assert ws.gitexp("get", "r1", "model.bin", "-o", str(target), "--force").code == 0
    assert target.read_text() == "weights 1"
    out = subprocess.run([sys.executable, "-m", "gitexp", "get", "r2", "model.bin", "-o", "-"], cwd=ws.root, capture_output=True, check=False)
    assert out.returncode == 0 and out.stdout == b"weights 2"
    directory = ws.gitexp("get", "r2", "out", "-o", "-")
    assert directory.code == 1 and "one file" in directory.err


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "out/../../x", ".git/config", ""])
def test_get_refuses_paths_that_leave_the_run(trained: Workspace, tmp_path: Path, bad: str) -> None:
    result = gitexp(tmp_path, "get", "r1", bad, "-o", str(tmp_path / "x"), env={"GIT_DIR": str(trained.root / ".git")})
    assert result.code == 1 and "invalid path" in result.err and "\n" not in result.err.strip()
    assert not (tmp_path / "x").exists()


def test_a_missing_object_is_named_and_nothing_is_written(trained: Workspace, tmp_path: Path) -> None:
    ws = trained
    cache = ws.root / ".git/gitexp/cache/objects"
    for obj in cache.glob("*/*"):
        obj.chmod(0o644)
        obj.unlink()
    result = ws.gitexp("get", "r1", "out", "-o", str(tmp_path / "out"))
    assert result.code == 1, result.err
    assert "out/" in result.err and "neither in the local cache nor on a data remote" in result.err
    assert re.search(r"\([0-9a-f]{32}\)", result.err), "the missing object is named by its digest"
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    unknown = ws.gitexp("get", "r1", "nothere.txt")
    assert unknown.code == 1 and "no file or directory 'nothere.txt'" in unknown.err


def test_a_clone_that_fetched_only_the_runs_gets_data_from_the_data_remote(trained: Workspace, tmp_path: Path) -> None:
    ws = trained
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "origin", str(bare))
    ws.git("push", "-q", "origin", "main")
    assert ws.gitexp("push", "origin").code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "fetch", "-q", "origin", "refs/experiments/*:refs/experiments/*")
    result = gitexp(clone, "get", "r2", "out/a.txt", "-o", str(tmp_path / "a.txt"))
    assert result.code == 0, result.err
    assert (tmp_path / "a.txt").read_text() == "a2"
    assert git(clone, "status", "--porcelain") == ""


def test_read_only_commands_work_in_a_bare_repository_and_the_others_say_they_need_a_work_tree(
    trained: Workspace, tmp_path: Path
) -> None:
    ws = trained
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(ws.root), str(mirror))
    git(mirror, "fetch", "-q", "origin", "refs/experiments/*:refs/experiments/*")
    listed = gitexp(mirror, "list", "-c", "name", "-f", "csv")
    assert listed.code == 0, listed.err
    assert sorted(listed.out.split()[1:]) == ["r1", "r2"]
    digest = ws.gitexp("which", "model.bin", "--json").json()["digest"]  # type: ignore[index]
    for args in (("show", "r1"), ("diff", "r1", "r2"), ("compare", "r1", "r2"), ("tree",), ("logs", "r1"),
                 ("which", digest)):
        result = gitexp(mirror, *args)
        assert result.code == 0, (args, result.err)
    # data: the mirror has no cache; get pulls from the run's own data remote (.gitexp.yaml in the run)
    _push_data(ws)
    got = gitexp(mirror, "get", "r1", "model.bin", "-o", str(tmp_path / "m.bin"))
    assert got.code == 0, got.err and (tmp_path / "m.bin").read_text() == "weights 1"
    code = gitexp(mirror, "get", "r1", "train.py", "-o", "-")
    assert code.code == 0 and "# v2" not in code.out
    for args in (("run", "--", "true"), ("checkout", "r1")):
        refused = gitexp(mirror, *args)
        assert refused.code == 1 and "bare repository" in refused.err and len(refused.err.strip().splitlines()) == 1


def _push_data(ws: Workspace) -> None:
    """Send the runs' data to the data remote (a git remote is needed by gitexp push: a throw-away one)."""
    bare = ws.root.parent / "for-push.git"
    git(ws.root.parent, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "forpush", str(bare))
    result = ws.gitexp("push", "forpush")
    assert result.code == 0, result.err


def test_get_works_from_a_subdirectory_with_a_relative_destination(trained: Workspace) -> None:
    ws = trained
    sub = ws.root / "data"
    result = gitexp(sub, "get", "r2", "model.bin", "-o", "copy.bin")
    assert result.code == 0, result.err
    assert (sub / "copy.bin").read_text() == "weights 2"
    os.unlink(sub / "copy.bin")


def test_a_damaged_cache_object_is_refused_and_nothing_is_written(trained: Workspace, tmp_path: Path) -> None:
    ws = trained
    digest = ws.gitexp("which", "model.bin", "--json").json()["digest"]  # type: ignore[index]
    [obj] = (ws.root / ".git/gitexp/cache/objects").glob(f"{digest[:2]}/{digest[2:]}*")
    obj.chmod(0o644)
    obj.write_text("weights X")
    result = ws.gitexp("get", "r2", "model.bin", "-o", str(tmp_path / "m.bin"))
    assert result.code == 1 and "corrupted" in result.err
    assert not (tmp_path / "m.bin").exists() and not list(tmp_path.glob(".m.bin*"))


def test_the_default_destination_is_the_basename_here_and_an_existing_one_is_refused(trained: Workspace, tmp_path: Path) -> None:
    env = {"GIT_DIR": str(trained.root / ".git")}
    here = tmp_path / "here"
    (here / "out").mkdir(parents=True)
    refused = gitexp(here, "get", "r1", "out", env=env)
    assert refused.code == 1 and "already exists" in refused.err and not (here / "out/out").exists()
    forced = gitexp(here, "get", "r1", "out", "--force", env=env)
    assert forced.code == 0, forced.err
    assert (here / "out/a.txt").read_text() == "a1" and not (here / "out/out").exists()
    into = gitexp(here, "get", "r2", "model.bin", "-o", str(here / "out"), env=env)
    assert into.code == 0 and (here / "out/model.bin").read_text() == "weights 2"

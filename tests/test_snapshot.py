"""A run's tree is the code state `git add -A` would stage, and nothing of the user's moves."""

from __future__ import annotations

import os

from conftest import Workspace, gitexp


def test_run_in_empty_repo_records_untracked_files_without_a_base_commit(ws: Workspace) -> None:
    ws.write("train.py", "print('hi')\n")
    ws.freeze()
    ws.run("-n", "first", "--", "true")
    commit = ws.runs()["first"]
    assert ws.git("log", "--format=%P", "-1", commit).strip() == ""
    tree = ws.tree("refs/experiments/first")
    assert tree["train.py"] == ("100644", "print('hi')\n")
    meta = ws.record("first", "run.json")
    assert meta["base"] is None and meta["status"] == "completed"


def test_dirty_and_untracked_files_are_captured_against_the_base_commit(ws: Workspace) -> None:
    ws.write("model.py", "v1\n")
    ws.write("gone.py", "old\n")
    base = ws.commit_all()
    ws.write("model.py", "v2 uncommitted\n")
    ws.write("new_feature.py", "new\n")
    (ws.root / "gone.py").unlink()
    ws.write("staged.py", "staged\n")
    ws.git("add", "staged.py")
    ws.freeze()
    ws.run("-n", "dirty", "--", "true")
    tree = ws.tree("refs/experiments/dirty")
    assert tree["model.py"][1] == "v2 uncommitted\n"
    assert tree["new_feature.py"][1] == "new\n"
    assert tree["staged.py"][1] == "staged\n"
    assert "gone.py" not in tree
    assert ws.git("rev-parse", "refs/experiments/dirty^1").strip() == base
    assert ws.record("dirty", "env.json")["git"] == {"base": base, "branch": "main", "dirty": True}


def test_clean_workspace_run_has_the_base_tree_plus_the_record_dir(ws: Workspace) -> None:
    ws.write("a.py")
    ws.commit_all()
    ws.freeze()
    ws.run("-n", "clean", "--", "true")
    diff = ws.git("diff", "--name-only", "HEAD", "refs/experiments/clean").split()
    assert diff and all(p.startswith(".gitexp/") for p in diff)
    assert ws.record("clean", "env.json")["git"]["dirty"] is False


def test_ignored_files_never_reach_a_run(ws: Workspace) -> None:
    ws.write(".gitignore", ".env\ncache/\n*.ckpt\n")
    ws.write(".env", "API_KEY=secret-value\n")
    ws.write("cache/big.bin", "ignored dir\n")
    ws.write("model.ckpt", "weights\n")
    ws.write("train.py")
    ws.commit_all()
    ws.freeze()
    ws.run("-n", "ign", "--", "true")
    tree = ws.tree("refs/experiments/ign")
    assert ".env" not in tree and "model.ckpt" not in tree
    assert not any(p.startswith("cache/") for p in tree)
    assert all("secret-value" not in content for _, content in tree.values())


def test_nested_dirs_unicode_and_spaces_in_names(ws: Workspace) -> None:
    ws.write("src/models/deep/net.py", "net\n")
    ws.write("données/über file.txt", "unicode\n")
    ws.write("with space/a b.py", "spaces\n")
    ws.commit_all()
    ws.write("données/nouveau ñ.txt", "new unicode\n")
    ws.freeze()
    ws.run("-n", "uni", "--", "true")
    tree = ws.tree("refs/experiments/uni")
    assert tree["src/models/deep/net.py"][1] == "net\n"
    assert tree["données/über file.txt"][1] == "unicode\n"
    assert tree["données/nouveau ñ.txt"][1] == "new unicode\n"
    assert tree["with space/a b.py"][1] == "spaces\n"


def test_symlinks_stay_links_and_executable_bits_are_kept(ws: Workspace) -> None:
    ws.write("run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    ws.write("data/real.txt", "real\n")
    ws.commit_all()
    os.symlink("data/real.txt", ws.root / "latest.txt")  # untracked symlink
    ws.write("tool.sh", "#!/bin/sh\n", mode=0o755)  # untracked executable
    ws.freeze()
    ws.run("-n", "modes", "--", "true")
    tree = ws.tree("refs/experiments/modes")
    assert tree["run.sh"][0] == "100755"
    assert tree["tool.sh"][0] == "100755"
    assert tree["data/real.txt"][0] == "100644"
    assert tree["latest.txt"] == ("120000", "data/real.txt")


def test_detached_head_records_the_commit_and_no_branch(ws: Workspace) -> None:
    ws.write("a.py", "1\n")
    first = ws.commit_all("one")
    ws.write("a.py", "2\n")
    ws.commit_all("two")
    ws.git("checkout", "-q", "--detach", first)
    ws.freeze()
    ws.run("-n", "detached", "--", "true")
    meta = ws.record("detached", "run.json")
    assert meta["base"] == first and meta["base_branch"] is None
    assert ws.tree("refs/experiments/detached")["a.py"][1] == "1\n"


def test_run_from_a_subdirectory_captures_the_whole_repo_and_records_cwd(ws: Workspace) -> None:
    ws.write("top.py", "top\n")
    ws.write("sub/inner.py", "inner\n")
    ws.commit_all()
    ws.freeze()
    result = gitexp(ws.root / "sub", "run", "-n", "sub", "--", "pwd")
    assert result.code == 0, result.err
    assert result.out.strip().endswith("/sub")
    meta = ws.record("sub", "run.json")
    assert meta["cwd"] == "sub"
    assert "top.py" in ws.tree("refs/experiments/sub")


def test_merge_conflict_in_index_is_captured_as_the_workspace_file(ws: Workspace) -> None:
    ws.write("f.txt", "base\n")
    ws.commit_all()
    ws.git("checkout", "-q", "-b", "other")
    ws.write("f.txt", "other\n")
    ws.commit_all()
    ws.git("checkout", "-q", "main")
    ws.write("f.txt", "mine\n")
    ws.commit_all()
    ws.git("merge", "-q", "other", check=False)
    ws.write("f.txt", "resolved by hand\n")
    ws.freeze()
    ws.run("-n", "conflict", "--", "true")
    assert ws.tree("refs/experiments/conflict")["f.txt"][1] == "resolved by hand\n"


def test_a_workspace_path_named_like_the_record_dir_is_refused_before_running(ws: Workspace) -> None:
    ws.write(".gitexp/notes.txt", "mine\n")
    ws.freeze()
    result = ws.gitexp("run", "--", "touch", "ran")
    assert result.code == 1
    assert "reserved" in result.err and ".gitignore" in result.err
    assert "Traceback" not in result.err
    assert not (ws.root / "ran").exists()
    assert ws.runs() == {}


def test_run_commits_are_readable_by_plain_git(ws: Workspace) -> None:
    ws.write("a.py")
    base = ws.commit_all()
    ws.freeze()
    ws.run("-n", "plain", "-m", "try a thing", "--", "true")
    log = ws.git("log", "--oneline", "refs/experiments/plain")
    assert log.splitlines()[0].split(" ", 1)[1].startswith("plain: completed (true)")
    trailers = ws.git("log", "-1", "--format=%(trailers:only,unfold)", "refs/experiments/plain")
    assert f"Gitexp-Base: {base}" in trailers
    assert "Gitexp-Run: plain" in trailers
    assert "try a thing" in ws.git("log", "-1", "--format=%b", "refs/experiments/plain")
    assert ws.git("show", "refs/experiments/plain:.gitexp/run.json").startswith("{")


def test_git_dir_and_git_work_tree_are_honoured_like_git_does(ws: Workspace, tmp_path: object) -> None:
    ws.write("a.py", "in the repo\n")
    elsewhere = ws.root.parent / "elsewhere"
    elsewhere.mkdir()
    env = {"GIT_DIR": str(ws.root / ".git"), "GIT_WORK_TREE": str(ws.root)}
    result = gitexp(elsewhere, "run", "-n", "via-env", "--", "true", env=env)
    assert result.code == 0, result.err
    assert ws.tree("refs/experiments/via-env")["a.py"][1] == "in the repo\n"
    wrong = gitexp(elsewhere, "run", "--", "true", env={"GIT_DIR": str(elsewhere / "nope")})
    assert wrong.code == 1 and "GIT_DIR" in wrong.err


def test_a_git_status_that_fails_stops_the_run_in_one_line_before_anything_is_recorded(ws: Workspace, tmp_path: object) -> None:
    """The snapshot asks git itself what changed: when git refuses, the user reads git's words on one line."""
    import subprocess
    from pathlib import Path

    real_git = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True, check=True).stdout.strip()
    fake = Path(str(tmp_path)) / "bin"
    fake.mkdir()
    (fake / "git").write_text(
        "#!/bin/sh\n"
        'case " $* " in *" status "*) echo "fatal: first line" >&2; echo "hint: second line" >&2; exit 128;; esac\n'
        f'exec {real_git} "$@"\n'
    )
    (fake / "git").chmod(0o755)
    ws.write("train.py", "print(1)\n")
    ws.commit_all()
    result = gitexp(ws.root, "run", "-n", "refused", "--", "true", env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"})
    assert result.code != 0
    assert result.err.strip().splitlines() == [
        "gitexp: error: git status failed: fatal: first line; hint: second line"
    ], result.err
    assert "refused" not in ws.runs()

"""The oracle is git itself: a run's code tree is exactly the tree `git add -A` would stage.

For every repository setup below, the tree of the run without `.gitexp/` has the
id that `GIT_INDEX_FILE=<copy of the index> git add -A && git write-tree` gives
at the same moment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import IDENTITY, Workspace, git

HAS_LFS = shutil.which("git-lfs") is not None


def git_add_all_tree(root: Path, tmp: Path) -> str:
    """What `git add -A` would stage now, without touching the real index."""
    gitdir = Path(git(root, "rev-parse", "--absolute-git-dir").strip())
    index = tmp / "oracle-index"
    if (gitdir / "index").exists():
        shutil.copyfile(gitdir / "index", index)
    env = {"GIT_INDEX_FILE": str(index)}
    git(root, "add", "-A", env=env)
    return git(root, "write-tree", env=env).strip()


def run_code_tree(root: Path, run: str) -> str:
    """The run's tree without the record directory."""
    listing = git(root, "ls-tree", "-z", f"refs/experiments/{run}")
    kept = [item for item in listing.split("\0") if item and item.split("\t", 1)[1] != ".gitexp"]
    proc = subprocess.run(
        ["git", "mktree", "-z", "--missing"], cwd=root, input="".join(k + "\0" for k in kept), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def listing(root: Path, tree: str) -> list[str]:
    return git(root, "ls-tree", "-r", tree).splitlines()


def commit(root: Path, message: str = "commit") -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def write(root: Path, rel: str, data: str | bytes, mode: int | None = None) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    if mode is not None:
        path.chmod(mode)


# -- setups: each builds the repository at root and returns the directory to run in ------------------

Setup = Callable[[Path, Path], Path]


def _lfs_base(root: Path) -> None:
    if not HAS_LFS:
        pytest.skip("git-lfs is not installed")
    git(root, "lfs", "install", "--local")
    write(root, ".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
    write(root, "model.bin", os.urandom(200_000))
    write(root, "train.py", "print('x')\n")
    commit(root)


def lfs_unchanged(root: Path, tmp: Path) -> Path:
    _lfs_base(root)
    write(root, "train.py", "print('y')\n")
    return root


def lfs_modified(root: Path, tmp: Path) -> Path:
    _lfs_base(root)
    write(root, "model.bin", os.urandom(300_000))
    return root


def lfs_new(root: Path, tmp: Path) -> Path:
    _lfs_base(root)
    write(root, "data/new.bin", os.urandom(100_000))
    write(root, "data/new\nline.bin", os.urandom(1000))  # a name `hash-object --stdin-paths` cannot carry
    write(root, os.fsdecode(b"data/not-utf8-\xff.bin"), os.urandom(1000))
    return root


def gitattributes_text_eol(root: Path, tmp: Path) -> Path:
    write(root, ".gitattributes", "*.txt text\n*.crlf text eol=crlf\n*.raw -text\n*.lf eol=lf\n")
    write(root, "a.txt", "one\r\ntwo\r\n")
    write(root, "b.crlf", "one\r\ntwo\n")
    write(root, "c.raw", "one\r\ntwo\r\n")
    commit(root)
    write(root, "a.txt", "one\r\ntwo\r\nthree\r\n")
    write(root, "new.txt", "x\r\ny\r\n")
    write(root, "new.crlf", "x\r\ny\r\n")
    write(root, "new.raw", "x\r\ny\r\n")
    write(root, "new.lf", "x\r\ny\r\n")
    write(root, "plain.py", "x\r\ny\r\n")
    return root


def _autocrlf(root: Path, value: str) -> Path:
    git(root, "config", "core.autocrlf", value)
    write(root, "a.py", "one\ntwo\n")
    write(root, "bin.dat", b"\x00\x01\r\n\x02")
    commit(root)
    write(root, "a.py", "one\r\ntwo\r\nthree\r\n")
    write(root, "new.py", "x\r\ny\r\n")
    write(root, "mixed.py", "x\r\ny\nz\r\n")
    write(root, "new.dat", b"\x00\r\n\x00")
    return root


def autocrlf_true(root: Path, tmp: Path) -> Path:
    return _autocrlf(root, "true")


def autocrlf_input(root: Path, tmp: Path) -> Path:
    return _autocrlf(root, "input")


def filemode_false(root: Path, tmp: Path) -> Path:
    write(root, "run.sh", "echo hi\n", 0o644)
    write(root, "tool.sh", "echo tool\n", 0o755)
    commit(root)
    git(root, "config", "core.fileMode", "false")
    (root / "run.sh").chmod(0o755)
    (root / "tool.sh").chmod(0o644)
    write(root, "tool.sh", "echo changed\n")
    write(root, "new.sh", "echo new\n", 0o755)
    return root


def symlinks_false(root: Path, tmp: Path) -> Path:
    write(root, "target.py", "x = 1\n")
    os.symlink("target.py", root / "link.py")
    os.symlink("target.py", root / "other.py")
    commit(root)
    git(root, "config", "core.symlinks", "false")
    for name in ("link.py", "other.py"):
        (root / name).unlink()
    write(root, "link.py", "target.py")  # as git checks a symlink out without symlink support
    write(root, "other.py", "elsewhere.py")
    return root


def _sparse_base(root: Path) -> None:
    for d in ("a", "b", "c/deep"):
        write(root, f"{d}/f.py", f"{d}\n")
        write(root, f"{d}/g.md", f"{d}\n")
    write(root, "top.py", "top\n")
    commit(root)


def sparse_cone(root: Path, tmp: Path) -> Path:
    _sparse_base(root)
    git(root, "sparse-checkout", "set", "--cone", "a")
    assert not (root / "b").exists()
    write(root, "a/f.py", "changed\n")
    write(root, "a/new.py", "new\n")
    return root


def sparse_non_cone(root: Path, tmp: Path) -> Path:
    _sparse_base(root)
    git(root, "sparse-checkout", "set", "--no-cone", "/a/", "*.md")
    assert not (root / "b/f.py").exists() and (root / "b/g.md").exists()
    write(root, "b/g.md", "changed\n")
    return root


def _submodule(root: Path, tmp: Path) -> Path:
    src = tmp / "subsrc"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    write(src, "lib.py", "v1\n")
    commit(src)
    write(root, "main.py", "x\n")
    commit(root)
    git(root, "-c", "protocol.file.allow=always", "submodule", "-q", "add", str(src), "sub")
    commit(root, "add sub")
    return root / "sub"


def submodule_unchanged(root: Path, tmp: Path) -> Path:
    _submodule(root, tmp)
    write(root, "main.py", "y\n")
    return root


def submodule_moved(root: Path, tmp: Path) -> Path:
    sub = _submodule(root, tmp)
    write(sub, "lib.py", "v2\n")
    commit(sub, "v2")
    return root


def submodule_dirty_inside(root: Path, tmp: Path) -> Path:
    sub = _submodule(root, tmp)
    write(sub, "lib.py", "uncommitted\n")
    write(sub, "untracked.py", "u\n")
    return root


def nested_repository(root: Path, tmp: Path) -> Path:
    write(root, "main.py", "x\n")
    commit(root)
    nested = root / "vendor" / "nested"
    nested.mkdir(parents=True)
    git(nested, "init", "-q", "-b", "main")
    write(nested, "n.py", "n\n")
    commit(nested)
    return root


def intent_to_add(root: Path, tmp: Path) -> Path:
    write(root, "main.py", "x\n")
    commit(root)
    write(root, "planned.py", "later\n")
    git(root, "add", "-N", "planned.py")
    write(root, "gone.py", "g\n")
    git(root, "add", "-N", "gone.py")
    (root / "gone.py").unlink()
    return root


def assume_unchanged(root: Path, tmp: Path) -> Path:
    write(root, "a.py", "a\n")
    write(root, "b.py", "b\n")
    commit(root)
    git(root, "update-index", "--assume-unchanged", "a.py")
    write(root, "a.py", "changed but assumed unchanged\n")
    write(root, "b.py", "changed\n")
    return root


def skip_worktree(root: Path, tmp: Path) -> Path:
    write(root, "a.py", "a\n")
    write(root, "b.py", "b\n")
    write(root, "c.py", "c\n")
    commit(root)
    git(root, "update-index", "--skip-worktree", "a.py", "b.py")
    write(root, "a.py", "local config\n")
    (root / "b.py").unlink()
    write(root, "c.py", "changed\n")
    return root


def deleted_in_work_tree(root: Path, tmp: Path) -> Path:
    write(root, "a.py", "a\n")
    write(root, "dir/b.py", "b\n")
    write(root, "dir/c.py", "c\n")
    commit(root)
    (root / "a.py").unlink()
    shutil.rmtree(root / "dir")
    return root


def staged_then_reverted(root: Path, tmp: Path) -> Path:
    write(root, "a.py", "a\n")
    commit(root)
    write(root, "a.py", "staged\n")
    write(root, "b.py", "staged new\n")
    git(root, "add", "a.py", "b.py")
    write(root, "a.py", "a\n")
    (root / "b.py").unlink()
    return root


def ignore_rules(root: Path, tmp: Path) -> Path:
    excludes = tmp / "global-excludes"
    excludes.write_text("*.globalignored\n")
    git(root, "config", "core.excludesFile", str(excludes))
    (root / ".git/info").mkdir(exist_ok=True)
    (root / ".git/info/exclude").write_text("*.localignored\n")
    write(root, ".gitignore", "*.log\nbuild/\n")
    write(root, "sub/.gitignore", "!keep.log\n*.tmp\n!important.tmp\n")
    write(root, "main.py", "x\n")
    commit(root)
    for rel in ("a.log", "sub/keep.log", "sub/other.log", "sub/x.tmp", "sub/important.tmp", "build/out.py",
                "a.globalignored", "b.localignored", "sub/deeper/z.tmp", "sub/deeper/keep.log"):
        write(root, rel, "content\n")
    return root


def unicode_names(root: Path, tmp: Path) -> Path:
    nfc = unicodedata.normalize("NFC", "café.py")
    nfd = unicodedata.normalize("NFD", "résumé.py")
    write(root, nfc, "nfc\n")
    commit(root)
    write(root, nfc, "nfc changed\n")
    write(root, nfd, "nfd\n")
    write(root, unicodedata.normalize("NFD", "dir_é/x.py"), "x\n")
    return root


def case_only_renames(root: Path, tmp: Path) -> Path:
    write(root, "Model.py", "m\n")
    write(root, "README.md", "r\n")
    commit(root)
    git(root, "mv", "Model.py", "model.py")
    (root / "README.md").rename(root / "readme.md")
    return root


def linked_worktree(root: Path, tmp: Path) -> Path:
    write(root, "a.py", "a\n")
    write(root, "b.py", "b\n")
    commit(root)
    other = tmp / "linked"
    git(root, "worktree", "add", "-q", "-b", "other", str(other))
    write(other, "a.py", "changed in the worktree\n")
    (other / "b.py").unlink()
    write(other, "c.py", "new\n")
    return other


SETUPS: list[Setup] = [
    lfs_unchanged,
    lfs_modified,
    lfs_new,
    gitattributes_text_eol,
    autocrlf_true,
    autocrlf_input,
    filemode_false,
    symlinks_false,
    sparse_cone,
    sparse_non_cone,
    submodule_unchanged,
    submodule_moved,
    submodule_dirty_inside,
    nested_repository,
    intent_to_add,
    assume_unchanged,
    skip_worktree,
    deleted_in_work_tree,
    staged_then_reverted,
    ignore_rules,
    unicode_names,
    case_only_renames,
    linked_worktree,
]


@pytest.fixture(autouse=True)
def identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """git-lfs and commits inside submodules need an identity too."""
    for key, value in IDENTITY.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(params=SETUPS, ids=[s.__name__ for s in SETUPS])
def setup(request: pytest.FixtureRequest) -> Setup:
    return request.param  # type: ignore[no-any-return]


def test_a_runs_code_tree_is_exactly_what_git_add_all_would_stage(ws: Workspace, tmp_path: Path, setup: Setup) -> None:
    where = setup(ws.root, tmp_path)
    expected = git_add_all_tree(where, tmp_path)
    ws.freeze()
    result = ws.gitexp("run", "-n", "oracle", "--", "true") if where == ws.root else _run_in(where)
    assert result.code == 0, result.err
    got = run_code_tree(where, "oracle")
    assert listing(where, got) == listing(where, expected)
    assert got == expected


def _run_in(where: Path) -> object:
    from conftest import gitexp

    return gitexp(where, "run", "-n", "oracle", "--", "true")


# -- env.json tells the truth about submodules and Git LFS ----------------------------------------------


def _env_git(ws: Workspace) -> dict[str, object]:
    record = ws.record("oracle", "env.json")
    assert isinstance(record, dict)
    return record["git"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("make, moved, modified", [
    (submodule_unchanged, False, False), (submodule_moved, True, False), (submodule_dirty_inside, False, True),
])
def test_env_json_names_each_submodule_and_whether_it_moved_or_has_changes_inside(
    ws: Workspace, tmp_path: Path, make: Setup, moved: bool, modified: bool
) -> None:
    make(ws.root, tmp_path)
    ws.freeze()
    ws.run("-n", "oracle", "--", "true")
    record = _env_git(ws)
    [sub] = record["submodules"]  # type: ignore[misc]
    assert sub["path"] == "sub" and sub["moved"] is moved and sub["modified"] is modified and sub["checked_out"] is True
    assert sub["commit"] == git(ws.root / "sub", "rev-parse", "HEAD").strip()
    assert record["dirty"] is True  # main.py changed, or the submodule did


def test_env_json_lists_lfs_pointers_and_whether_git_lfs_is_installed(ws: Workspace, tmp_path: Path) -> None:
    lfs_new(ws.root, tmp_path)
    ws.freeze()
    ws.run("-n", "oracle", "--", "true")
    lfs = _env_git(ws)["lfs"]
    assert lfs["installed"] is True  # type: ignore[index]
    assert {"model.bin", "data/new.bin"} <= set(lfs["pointers"])  # type: ignore[index]
    assert lfs["objects_missing"] == []  # type: ignore[index]
    assert int(git(ws.root, "cat-file", "-s", "refs/experiments/oracle:data/new.bin")) < 200


def test_env_json_has_no_submodule_or_lfs_section_in_a_plain_repository(ws: Workspace) -> None:
    ws.write("a.py")
    ws.commit_all()
    ws.run("-n", "oracle", "--", "true")
    assert set(_env_git(ws)) == {"base", "branch", "dirty"}

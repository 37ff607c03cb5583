"""Store.changed_files: two code states compared by tree id, only the subtrees that differ read.

A checkout learns what the workspace holds from it (the run's files, then where
the two differ), so it must agree with comparing both trees in full, whatever
the change: a file edited, added, removed, made executable or a link, a file
turned into a directory and back, a submodule moved, the record directory left out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
import pytest
from conftest import git

from gitexp.store import Store


def tree_of(repo: pygit2.Repository, files: dict[str, tuple[int, bytes]]) -> str:
    """A tree holding files (path -> (mode, content; a commit id for a submodule)), written bottom-up."""
    index = pygit2.Index()
    for path, (mode, data) in files.items():
        oid = pygit2.Oid(hex=data.decode()) if mode == 0o160000 else repo.create_blob(data)
        index.add(pygit2.IndexEntry(path, oid, mode))
    return str(index.write_tree(repo))


def full_comparison(store: Store, old: str, new: str) -> dict[str, tuple[int, str] | None]:
    was = {p: (m, o) for p, m, o in store.code_entries(old)}
    now = {p: (m, o) for p, m, o in store.code_entries(new)}
    return {p: was.get(p) for p in was.keys() | now.keys() if was.get(p) != now.get(p)}


SUBMODULE_A, SUBMODULE_B = "1" * 40, "2" * 40
BASE = {
    "train.py": (0o100644, b"print('a')\n"),
    "src/model.py": (0o100644, b"m\n"),
    "src/deep/er/x.py": (0o100644, b"x\n"),
    "src/deep/er/y.py": (0o100644, b"y\n"),
    "vendor/lib": (0o160000, SUBMODULE_A.encode()),
    "link": (0o120000, b"train.py"),
    "run.sh": (0o100644, b"#!/bin/sh\n"),
    **{f"big/{i:03}.py": (0o100644, f"{i}\n".encode()) for i in range(50)},
}
CHANGES = {
    "nothing": {},
    "an edit deep down": {"src/deep/er/x.py": (0o100644, b"x2\n")},
    "a new file in a new directory": {"new/dir/f.py": (0o100644, b"f\n")},
    "a file removed": {"src/model.py": None},
    "a directory removed": {"src/deep/er/x.py": None, "src/deep/er/y.py": None},
    "made executable": {"run.sh": (0o100755, b"#!/bin/sh\n")},
    "a file made a link": {"train.py": (0o120000, b"src/model.py")},
    "a file made a directory": {"link": None, "link/inside.py": (0o100644, b"i\n")},
    "a directory made a file": {"src/deep/er/x.py": None, "src/deep/er/y.py": None, "src/deep": (0o100644, b"now a file\n")},
    "a submodule moved": {"vendor/lib": (0o160000, SUBMODULE_B.encode())},
    "the record directory": {".gitexp/run.json": (0o100644, b"{}\n")},
}


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("direction", ["forward", "back"])
def test_changed_files_agree_with_comparing_both_trees_in_full(tmp_path: Path, change: str, direction: str) -> None:
    git(tmp_path, "init", "-q")
    store = Store(pygit2.Repository(str(tmp_path)))
    after = {**BASE, **{p: v for p, v in CHANGES[change].items() if v is not None}}
    for path, value in CHANGES[change].items():
        if value is None:
            del after[path]
    old, new = tree_of(store.repo, BASE), tree_of(store.repo, after)
    if direction == "back":
        old, new = new, old
    expected = full_comparison(store, old, new)
    assert Store(pygit2.Repository(str(tmp_path))).changed_files(old, new) == expected
    if change in ("nothing", "the record directory"):
        assert expected == {}


def test_a_subtree_of_one_id_on_both_sides_is_never_read(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    store = Store(pygit2.Repository(str(tmp_path)))
    after = {**BASE, "train.py": (0o100644, b"print('b')\n")}
    old, new = tree_of(store.repo, BASE), tree_of(store.repo, after)
    untouched = {str(store.repo[old].peel(pygit2.Tree)[name].id) for name in ("big", "src")}

    fresh = Store(pygit2.Repository(str(tmp_path)))
    assert fresh.changed_files(old, new) == {"train.py": (0o100644, str(store.repo[old].peel(pygit2.Tree)["train.py"].id))}
    assert not untouched & set(fresh._trees), "an unchanged subtree was read"
    assert len(fresh._trees) == 2  # the two root trees, nothing else


def test_checkout_after_work_in_a_few_directories_writes_and_removes_only_what_differs(tmp_path: Path) -> None:
    """End to end through the CLI: the comparison feeds what a checkout writes, removes and keeps."""
    from conftest import gitexp

    git(tmp_path, "init", "-q")
    for d in range(5):
        os.makedirs(tmp_path / f"d{d}")
        for f in range(20):
            (tmp_path / f"d{d}" / f"f{f}.py").write_text(f"{d}.{f}\n")
    (tmp_path / "train.py").write_text("print(1)\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    assert gitexp(tmp_path, "run", "--name", "first", "--", "true").code == 0
    (tmp_path / "d1" / "f3.py").write_text("changed\n")
    (tmp_path / "d4" / "f0.py").unlink()
    (tmp_path / "d9").mkdir()
    (tmp_path / "d9" / "new.py").write_text("new\n")
    assert gitexp(tmp_path, "run", "--name", "second", "--", "true").code == 0
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.py")}

    result = gitexp(tmp_path, "checkout", "first")
    assert result.code == 0, result.err
    assert "2 files written, 1 removed" in result.out + result.err, result.out + result.err
    assert (tmp_path / "d1" / "f3.py").read_text() == "1.3\n"
    assert (tmp_path / "d4" / "f0.py").read_text() == "4.0\n"
    assert not (tmp_path / "d9").exists()
    rewritten = [p for p in before if p.exists() and p.stat().st_mtime_ns != before[p] and p != tmp_path / "d1" / "f3.py"]
    assert rewritten == [], f"rewritten although the same: {rewritten}"
    assert git(tmp_path, "status", "--porcelain") == ""


def _raw_tree(repo: Path, entries: list[tuple[bytes, bytes, str]]) -> str:
    """A tree object of exactly these (mode, name, id) entries, as given (git hash-object --literally)."""
    data = b"".join(mode + b" " + name + b"\0" + bytes.fromhex(oid) for mode, name, oid in entries)
    (repo / "raw-tree").write_bytes(data)
    return git(repo, "hash-object", "-w", "-t", "tree", "--literally", "raw-tree").strip()


def _libgit2_items(repo: pygit2.Repository, tree: str) -> tuple[tuple[str, int, str], ...]:
    return tuple((e.name or "", int(e.filemode), str(e.id)) for e in repo[tree].peel(pygit2.Tree))


@pytest.mark.parametrize("entries", [
    [(b"100644", b"a.py", "1" * 40), (b"100755", b"run.sh", "2" * 40), (b"120000", b"link", "3" * 40),
     (b"160000", b"sub", "4" * 40), (b"40000", b"dir", "5" * 40)],
    [(b"100664", b"old-git.py", "1" * 40)],  # a mode old git wrote: libgit2 reports it normalised
    [(b"100644", "naïve-ünïcode.py".encode(), "1" * 40)],
    [(b"100644", b"latin1-\xe9.py", "1" * 40)],  # not UTF-8
    [(b"100644", b"a\nb", "1" * 40), (b"100644", b"a.py", "1" * 40), (b"100644", b"a.py", "2" * 40)],  # a name twice
    [(b"100644", b".git", "1" * 40), (b"100644", b"..", "1" * 40)],
    [],
], ids=["every-kind", "old-mode", "unicode-name", "latin1-name", "odd-and-twice", "unsafe-names", "empty"])
def test_a_tree_object_is_read_as_libgit2_reads_it(tmp_path: Path, entries: list[tuple[bytes, bytes, str]]) -> None:
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    tree = _raw_tree(repo, entries)
    store = Store(pygit2.Repository(str(repo)))
    assert store._tree_items(tree, None, "") == _libgit2_items(store.repo, tree)


def test_a_tree_object_cut_short_or_padded_is_never_read_as_a_shorter_one(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", str(repo))
    good = b"100644 a.py\0" + bytes.fromhex("1" * 40) + b"100644 b.py\0" + bytes.fromhex("2" * 40)
    store = Store(pygit2.Repository(str(repo)))
    for data in (good[:-5], good + b"junk", b"junk" + good):
        (repo / "raw-tree").write_bytes(data)
        tree = git(repo, "hash-object", "-w", "-t", "tree", "--literally", "raw-tree").strip()
        try:
            expected: object = _libgit2_items(store.repo, tree)
        except (pygit2.GitError, ValueError, KeyError) as exc:
            expected = type(exc)
        try:
            got: object = store._tree_items(tree, None, "")
        except (pygit2.GitError, ValueError, KeyError) as exc:
            got = type(exc)
        assert got == expected

"""The code state of a workspace as a git tree: what `git add -A` would stage.

Built in a private in-memory index loaded from the user's .git/index, so the
stat data already there spares re-hashing unchanged files, and the user's index
file, HEAD and work tree are never written.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, FileStatus

from gitexp.errors import ReservedPath
from gitexp.format import RECORD_DIR
from gitexp.model import Snapshot

_FROM_WORKDIR = FileStatus.WT_NEW | FileStatus.WT_MODIFIED | FileStatus.WT_TYPECHANGE | FileStatus.WT_RENAMED


def take(
    repo: pygit2.Repository,
    replace: dict[str, bytes] | None = None,
    exclude: tuple[str, ...] = (),
    large_threshold: int | None = None,
) -> Snapshot:
    """Snapshot the workspace.

    `replace` gives contents to use instead of some files'. Untracked files under
    an `exclude` path (declared data and outputs), or larger than
    `large_threshold` bytes, are left out of the tree; the large ones are listed
    in Snapshot.large so the caller can record them as data pointers.
    """
    index = _private_index(repo)
    filemode = _config_bool(repo, "core.filemode", True)
    root = Path(repo.workdir)
    skipped: list[str] = []
    large: list[str] = []
    prefixes = tuple(p.rstrip("/") + "/" for p in exclude)
    for path, flags in repo.status(untracked_files="all", ignored=False).items():
        if path.endswith("/"):  # an untracked nested repository: git would add a gitlink
            skipped.append(path.rstrip("/"))
            continue
        if flags & FileStatus.WT_NEW and (path in exclude or path.startswith(prefixes)):
            continue
        if flags & FileStatus.WT_NEW and large_threshold is not None and _size(root / path) > large_threshold:
            large.append(path)
            continue
        entry = _entry(index, path)
        if entry is not None and entry.mode == FileMode.COMMIT:
            continue  # submodule: the index already records its commit
        if flags & FileStatus.CONFLICTED:
            _drop_conflict(index, path)
            _add_from_workdir(repo, index, root, path, filemode)
        elif flags & _FROM_WORKDIR:
            _add_from_workdir(repo, index, root, path, filemode)
        elif flags & FileStatus.WT_DELETED:
            index.remove(path)
    for path, data in (replace or {}).items():
        entry = _entry(index, path)
        mode = entry.mode if entry is not None else FileMode.BLOB
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), mode))
    tree = index.write_tree(repo)
    if RECORD_DIR in repo[tree]:  # type: ignore[operator]
        raise ReservedPath(RECORD_DIR)
    base, branch = head(repo)
    dirty = str(tree) != (str(repo[base].peel(pygit2.Tree).id) if base else str(_empty_tree(repo)))
    return Snapshot(
        tree=str(tree), base=base, base_branch=branch, dirty=dirty, skipped=tuple(skipped), large=tuple(sorted(large))
    )


def head(repo: pygit2.Repository) -> tuple[str | None, str | None]:
    """(commit id of HEAD or None on an unborn branch, branch short name or None when detached)."""
    branch = None
    if not repo.head_is_detached:
        target = repo.references["HEAD"].target
        if isinstance(target, str) and target.startswith("refs/heads/"):
            branch = target[len("refs/heads/") :]
    if repo.head_is_unborn:
        return None, branch
    return str(repo.head.target), branch


def _private_index(repo: pygit2.Repository) -> pygit2.Index:
    path = os.path.join(repo.path, "index")
    index = pygit2.Index(path) if os.path.exists(path) else pygit2.Index()
    return index


def _add_from_workdir(repo: pygit2.Repository, index: pygit2.Index, root: Path, path: str, filemode: bool) -> None:
    try:
        st = os.lstat(root / path)
        oid = repo.create_blob_fromworkdir(path)
    except (OSError, pygit2.GitError):  # vanished or unreadable since status: as git would, leave it out
        if _entry(index, path) is not None:
            index.remove(path)
        return
    entry = _entry(index, path)
    if stat.S_ISLNK(st.st_mode):
        mode = FileMode.LINK
    elif not filemode and entry is not None:
        mode = entry.mode
    elif filemode and st.st_mode & stat.S_IXUSR:
        mode = FileMode.BLOB_EXECUTABLE
    else:
        mode = FileMode.BLOB
    index.add(pygit2.IndexEntry(path, oid, mode))


def _size(path: Path) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _entry(index: pygit2.Index, path: str) -> pygit2.IndexEntry | None:
    """The stage-0 entry of path, or None (absent, or only in conflict stages)."""
    try:
        return index[path]
    except KeyError:
        return None


def _drop_conflict(index: pygit2.Index, path: str) -> None:
    conflicts = index.conflicts
    if conflicts is not None:
        try:
            del conflicts[path]
        except KeyError:
            pass


def _config_bool(repo: pygit2.Repository, key: str, default: bool) -> bool:
    try:
        return repo.config.get_bool(key)
    except KeyError:
        return default


def _empty_tree(repo: pygit2.Repository) -> pygit2.Oid:
    return repo.TreeBuilder().write()

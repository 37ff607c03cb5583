"""The code state of a workspace as a git tree: exactly what `git add -A` would stage.

Built in a private in-memory index loaded from the user's .git/index, so the
stat data already there spares re-hashing unchanged files, and the user's index
file, HEAD and work tree are never written. libgit2 finds the changed tracked
files and hashes them; git itself (`git status`, in a process of its own, beside
the caller's work) says which tracked files changed and lists the untracked ones
(libgit2 misses a nested .gitignore's negation of a parent's pattern, and holds
the interpreter while it looks), and hashes the paths that a configured filter
(Git LFS) must clean. Where git keeps the index's entry, so
does the snapshot: skip-worktree (sparse checkout) and assume-unchanged
entries, a symlink checked out as a plain file under core.symlinks=false, the
mode under core.fileMode=false; a submodule (or a nested repository) is recorded
at the commit checked out in it.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pygit2
from pygit2.enums import FileMode, Option

from gitexp.errors import ReservedPath, StorageError
from gitexp.format import RECORD_DIR
from gitexp.model import Snapshot

_SKIP_WORKTREE = 1 << 14  # git_index_entry.flags_extended
_ASSUME_VALID = 0x8000  # git_index_entry.flags


def take(
    repo: pygit2.Repository,
    replace: dict[str, bytes] | None = None,
    exclude: tuple[str, ...] = (),
    large_threshold: int | None = None,
    status: Status | None = None,
) -> Snapshot:
    """Snapshot the workspace.

    `replace` gives contents to use instead of some files'. Untracked files under
    an `exclude` path (declared data and outputs), or larger than
    `large_threshold` bytes (and not cleaned by a filter such as Git LFS), are
    left out of the tree; the large ones are listed in Snapshot.large so the
    caller can record them as data pointers. `status`: one the caller started earlier (to overlap it
    with its own work), read and closed here.
    """
    if status is None:
        status = Status(repo)
    try:
        index = _private_index(repo)
        hashing = _Hashing(repo, index)
        root = Path(repo.workdir)
        skipped: list[str] = []
        large: list[str] = []
        prefixes = tuple(p.rstrip("/") + "/" for p in exclude)
        changed, listed = status.read()
    finally:
        status.close()
    for path, change in changed.items():
        entry = _entry(index, path)
        if entry is not None and _kept_from_index(index, path):
            continue  # skip-worktree or assume-unchanged: git add leaves the entry alone
        if entry is not None and entry.mode == FileMode.COMMIT:
            hashing.gitlink(path, entry)
        elif change == CONFLICTED:
            _drop_conflict(index, path)
            hashing.add(path)
        elif change == DELETED:
            index.remove(path)
        else:
            hashing.add(path)
    for path in listed:
        bare = path.rstrip("/")
        if bare in exclude or bare.startswith(prefixes):
            continue
        if path.endswith("/"):  # a nested repository: git add records a gitlink at its checked-out commit
            if not hashing.gitlink(bare, None):
                skipped.append(bare)
        elif large_threshold is not None and _size(root / path) > large_threshold and not hashing.filtered(path):
            large.append(path)
        else:
            hashing.add(path)
    hashing.finish()
    for path, data in (replace or {}).items():
        entry = _entry(index, path)
        mode = entry.mode if entry is not None else FileMode.BLOB
        index.add(pygit2.IndexEntry(path, repo.create_blob(data), mode))
    tree = _write_tree(repo, index)
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


def submodule_head(workdir: str | os.PathLike[str], path: str) -> str | None:
    """The commit checked out in the repository at path (a submodule or a nested repository), or None."""
    try:
        sub = pygit2.Repository(os.path.join(workdir, path), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
        return None if sub.head_is_unborn else str(sub.head.target)
    except (pygit2.GitError, KeyError, ValueError):
        return None


class _Hashing:
    """Puts work-tree files into the private index: libgit2 hashes them, or git when a filter must clean them."""

    def __init__(self, repo: pygit2.Repository, index: pygit2.Index) -> None:
        self.repo = repo
        self.index = index
        self.root = Path(repo.workdir)
        self.filemode = _config_bool(repo, "core.filemode", True)
        self.symlinks = _config_bool(repo, "core.symlinks", True)
        self.drivers = _filter_drivers(repo)
        self.through_git: list[tuple[str, FileMode]] = []

    def filtered(self, path: str) -> bool:
        """Whether git add would pass path through a configured clean filter (Git LFS stores a small pointer)."""
        if not self.drivers:
            return False
        try:
            name = self.repo.get_attr(os.fsencode(path), "filter")  # type: ignore[arg-type]  # (bytes: any file name)
        except pygit2.GitError:
            return False
        return isinstance(name, str) and name in self.drivers

    def add(self, path: str) -> None:
        try:
            st = os.lstat(self.root / path)
        except OSError:  # vanished since status: as git would, leave it out
            self._remove(path)
            return
        entry = _entry(self.index, path)
        if stat.S_ISLNK(st.st_mode):
            mode = FileMode.LINK
        elif not stat.S_ISREG(st.st_mode):
            self._remove(path)
            return
        elif not self.symlinks and entry is not None and entry.mode == FileMode.LINK:
            mode = FileMode.LINK  # checked out as a plain file holding the link's target
        elif not self.filemode:
            mode = entry.mode if entry is not None and entry.mode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE) else FileMode.BLOB
        else:
            mode = FileMode.BLOB_EXECUTABLE if st.st_mode & stat.S_IXUSR else FileMode.BLOB
        if mode != FileMode.LINK and self.filtered(path):
            self.through_git.append((path, mode))
            return
        try:
            oid = self.repo.create_blob_fromworkdir(path)
        except (OSError, pygit2.GitError):  # unreadable: as git add --ignore-errors, leave it out
            self._remove(path)
            return
        self.index.add(pygit2.IndexEntry(path, oid, mode))

    def gitlink(self, path: str, entry: pygit2.IndexEntry | None) -> bool:
        """Record path at the commit checked out there; a submodule not checked out keeps its entry."""
        commit = submodule_head(self.root, path)
        if commit is not None:
            self.index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=commit), FileMode.COMMIT))
        return commit is not None or entry is not None

    def finish(self) -> None:
        """Hash the filtered paths with git itself, in one process."""
        if not self.through_git:
            return
        lines = [(p, m) for p, m in self.through_git if "\n" not in p]
        oids = self._hash_object(["--stdin-paths"], b"".join(os.fsencode(p) + b"\n" for p, _ in lines))
        for path, mode in self.through_git:
            if "\n" in path:  # a name --stdin-paths cannot carry: one process for it
                with open(self.root / path, "rb") as f:
                    oids += self._hash_object([f"--path={path}", "--stdin"], f.read())
        done = lines + [(p, m) for p, m in self.through_git if "\n" in p]
        if len(oids) != len(done):
            raise StorageError("git hash-object (clean filters) gave fewer ids than paths")
        for (path, mode), oid in zip(done, oids):
            self.index.add(pygit2.IndexEntry(path, pygit2.Oid(hex=oid), mode))

    def _hash_object(self, args: list[str], stdin: bytes) -> list[str]:
        if not stdin and "--stdin-paths" in args:
            return []
        env = {**os.environ, "GIT_DIR": self.repo.path, "GIT_WORK_TREE": self.repo.workdir}
        proc = subprocess.run(
            ["git", "hash-object", "-w", *args], cwd=self.repo.workdir, input=stdin, capture_output=True, env=env, check=False
        )
        if proc.returncode != 0:
            raise StorageError(f"git hash-object (clean filters) failed: {_one_line(proc.stderr)}")
        return proc.stdout.decode().split()

    def _remove(self, path: str) -> None:
        if _entry(self.index, path) is not None:
            self.index.remove(path)


CHANGED, DELETED, CONFLICTED = "changed", "deleted", "conflicted"


class Status:
    """What `git status` says of the workspace: the tracked paths whose work-tree file differs from the
    index, and the untracked, not ignored paths (a nested repository as 'dir/'). git is started at once
    and works beside the caller (a process of its own); read() waits for it. It never writes the index
    (--no-optional-locks), and git's own rules decide: ignore files, filters, core.fileMode and the like.
    """

    def __init__(self, repo: pygit2.Repository) -> None:
        env = {**os.environ, "GIT_DIR": repo.path, "GIT_WORK_TREE": repo.workdir}
        env.pop("GIT_INDEX_FILE", None)
        self.proc = subprocess.Popen(
            ["git", "--no-optional-locks", "status", "--porcelain=v2", "-z", "--untracked-files=all", "--no-renames",
             "--ignore-submodules=none"],
            cwd=repo.workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def read(self) -> tuple[dict[str, str], list[str]]:
        """({path: CHANGED | DELETED | CONFLICTED} of the tracked files the work tree changed, untracked paths)."""
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            raise StorageError(f"git status failed: {_one_line(err)}")
        changed: dict[str, str] = {}
        untracked: list[str] = []
        records = iter(out.decode("utf-8", "surrogateescape").split("\0"))
        for record in records:
            kind = record[:2]
            if kind == "? ":
                untracked.append(record[2:])
            elif kind in ("1 ", "2 "):  # 1 XY sub mH mI mW hH hI path; 2 ... X-score path NUL origPath
                fields = record.split(" ", 8 if kind == "1 " else 9)
                if kind == "2 ":
                    next(records, None)
                worktree = fields[1][1:2]
                if worktree == "D":
                    changed[fields[-1]] = DELETED
                elif worktree not in (".", ""):
                    changed[fields[-1]] = CHANGED  # M, T, or A (an intent-to-add entry: git add -A stages it)
            elif kind == "u ":  # u XY sub m1 m2 m3 mW h1 h2 h3 path
                changed[record.split(" ", 10)[-1]] = CONFLICTED
        return changed, untracked

    def close(self) -> None:
        """After read(), or instead of it (an error came first): git is not left behind."""
        if self.proc.returncode is None:
            self.proc.kill()
            self.proc.communicate()


def _one_line(stderr: bytes) -> str:
    """What git said on stderr, as one line (an error is one line: git may have said several)."""
    return "; ".join(line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()) or "no message"


def _filter_drivers(repo: pygit2.Repository) -> frozenset[str]:
    """Names of the filter drivers with a clean command configured (`filter.NAME.clean` or `.process`)."""
    names = set()
    for entry in repo.config:
        name = entry.name or ""
        if name.startswith("filter.") and name.endswith((".clean", ".process")) and entry.value:
            names.add(name[len("filter.") : name.rindex(".")])
    return frozenset(names)


def _kept_from_index(index: pygit2.Index, path: str) -> bool:
    from pygit2 import C, ffi  # type: ignore[attr-defined]

    centry = C.git_index_get_bypath(index._index, path.encode("utf-8", "surrogateescape"), 0)
    if centry == ffi.NULL:
        return False
    return bool(centry.flags_extended & _SKIP_WORKTREE or centry.flags & _ASSUME_VALID)


def _write_tree(repo: pygit2.Repository, index: pygit2.Index) -> pygit2.Oid:
    """The index's tree, written without libgit2's check that the object of every entry exists (strict
    object creation looks up all of them, even under subtrees the index's cache-tree holds: 2 ms of a
    2,000-file checkout). Each entry of the snapshot's index is one git status found unchanged from HEAD's
    tree (whose objects a sound repository has, as git write-tree assumes under a valid cache-tree), one
    git add wrote (an entry git keeps: skip-worktree, assume-unchanged) or one hashed just now."""
    pygit2.option(Option.ENABLE_STRICT_OBJECT_CREATION, 0)
    try:
        return index.write_tree(repo)
    finally:
        pygit2.option(Option.ENABLE_STRICT_OBJECT_CREATION, 1)


def _private_index(repo: pygit2.Repository) -> pygit2.Index:
    path = os.path.join(repo.path, "index")
    return pygit2.Index(path) if os.path.exists(path) else pygit2.Index()


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

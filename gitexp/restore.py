"""Getting a run back: `gitexp checkout` (in place or --into a directory) and `gitexp branch`.

Nothing of the user's is lost: before a checkout changes a file whose content is
not recoverable (committed at HEAD, or recorded by a run, or in the cache), the
workspace is saved as a run with status `saved`. Every byte to write is staged
and verified first; the workspace is only touched once all of it is at hand.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import stat
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import NamedTuple, NoReturn, TypeVar

from gitexp import config as config_mod
from gitexp import format as fmt
from gitexp.data.cache import Cache
from gitexp.data.hashing import StatCache
from gitexp.data.inventory import SECTION_ROLES, manifest, run_pointers
from gitexp.data.pointers import MAX_PATH, InvalidPointer, link_target_ok, name_problem, path_problem
from gitexp.data.session import cache_root, stat_db
from gitexp.errors import GitexpError
from gitexp.model import Progress, RunSummary
from gitexp.store import TREE_MEMO, Store, TreeItems
from gitexp.store.snapshot import Status
from gitexp.trust import Exclude
from gitexp.workspace import ParamsGuard, Pointer, checkout_lock, live_dir, read_pointer, write_pointer

EXEC_MODE = 0o100755
LINK_MODE = 0o120000
GITLINK_MODE = 0o160000
TREE_MODE = 0o040000
T = TypeVar("T")


class MissingData(GitexpError):
    def __init__(self, run: str, paths: list[str]) -> None:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        super().__init__(
            f"run {run!r} needs data that is not in the local cache: {shown} "
            "(fetch it with 'gitexp pull', or re-create it by re-running); nothing was changed"
        )
        self.paths = paths


class Entry(NamedTuple):  # (a tuple: a run has thousands, each made in a fraction of a dataclass's time)
    """One file of a run's workspace and where its bytes come from."""

    path: str
    kind: str  # blob (git) | object (data cache) | link
    source: str  # blob id | digest | link target
    executable: bool = False


class Target(NamedTuple):
    entries: dict[str, Entry]
    owned: tuple[str, ...]  # data and output paths: extra files under them are the run's to remove
    uncached: tuple[tuple[str, str], ...]  # (path, digest) of inputs recorded without their bytes
    code: tuple[tuple[str, int, str], ...]  # (path, mode, id) of each file of the run's code tree, submodules too


def target(store: Store, run: RunSummary, sections: tuple[str, ...] = tuple(SECTION_ROLES)) -> Target:
    """Every file of the run: its code, then its data pointers, all validated (they may come from anyone)
    before anything is written: see _check_layout."""
    from gitexp.query import settled

    settled(run)  # a run in progress has no outputs yet
    code = checked_files(store, run)
    entries = _entries(store, code)
    owned: list[str] = []
    uncached: list[tuple[str, str]] = []
    for section, pointers in run_pointers(store, run.commit).items():
        if section not in sections:
            continue
        for p in pointers:
            owned.append(p.path)
            if p.kind == "link":
                entries[p.path] = Entry(p.path, "link", p.target or "")
            elif p.kind == "file" and p.digest:
                entries[p.path] = Entry(p.path, "object", p.digest, p.executable)
                if not p.cached:
                    uncached.append((p.path, p.digest))
            elif p.kind == "dir":
                if p.path in entries and entries[p.path].kind == "link":
                    # A tracked link to the data (data -> /mnt/datasets): what the run recorded behind it is
                    # restored as a directory; nothing is ever written through the link.
                    del entries[p.path]
                for e in manifest(store, run.commit, p).entries:
                    path = f"{p.path}/{e['path']}"
                    _check_path(path, run)
                    if "link" in e:
                        entries[path] = Entry(path, "link", str(e["link"]))
                    else:
                        entries[path] = Entry(path, "object", e["digest"], bool(e.get("executable")))
                        if not p.cached:
                            uncached.append((path, e["digest"]))
    _check_layout(run, entries, owned)
    return Target(entries, tuple(owned), tuple(uncached), tuple(code))


def _entries(store: Store, files: list[tuple[str, int, str]]) -> dict[str, Entry]:
    """What to write for each file of a code tree (submodules are not written)."""
    entries: dict[str, Entry] = {}
    for path, mode, oid in files:
        if mode == GITLINK_MODE:
            continue
        if mode == LINK_MODE:
            entries[path] = Entry(path, "link", _link_target(store, oid))
        else:
            entries[path] = Entry(path, "blob", oid, mode == EXEC_MODE)
    return entries


def checked_files(store: Store, run: RunSummary, tree: str | None = None) -> list[tuple[str, int, str]]:
    """(path, mode, id) of each file of the run's code tree (or of another tree it brings), refusing a
    tree that names a path twice (two entries of one name), an unsafe name (see pointers.path_problem:
    '.', '..', '/', NUL, .git in any spelling), an unknown mode or an unusable link target.

    Each tree object is checked once per process (what makes it unsafe is in the object itself, bar the
    length of the whole path and the record directory at the top, checked for each path): the trees of a
    run, of its base commit and of the workspace share most of their subtrees.
    """
    found = store.code_entries(tree or run.commit, visit=functools.partial(_check_tree, store, run))
    _check_lengths((path for path, _, _ in found), run)
    return found


def _check_changes(store: Store, run: RunSummary, tree: str) -> None:
    """Refuse tree (one the index will hold) as checked_files would; of it, only what differs from the run's
    code tree (checked already) is read."""
    _check_lengths(store.changed_files(run.commit, tree, visit=functools.partial(_check_tree, store, run)), run)


def _check_lengths(paths: Iterable[str], run: RunSummary) -> None:
    """The one check of a path that its tree objects cannot vouch for: its whole length."""
    for path in paths:
        if len(path) * 4 > MAX_PATH:  # (only a long one can be over in bytes)
            _check_path(path, run)


def _check_tree(store: Store, run: RunSummary, tree_id: str, items: TreeItems, prefix: str) -> None:
    """Refuse a tree object with an unsafe name, a name twice, an unknown mode or an unusable link target."""
    if prefix and tree_id in _SAFE_TREES:
        return
    names: set[str] = set()
    for name, mode, oid in items:
        path = prefix + name
        if "/" in name:
            _refuse(run, f"its tree has an entry whose name contains '/' ({path!r})")
        problem = path_problem(name, workspace=True) if not prefix and name != fmt.RECORD_DIR else name_problem(name)
        if problem:
            _refuse(run, f"it names the unsafe path {path!r}: {problem}")
        if name in names:
            _refuse(run, f"its tree names {path!r} twice")
        names.add(name)
        if mode not in _MODES:
            _refuse(run, f"its tree gives {path!r} the unknown mode {mode:o}")
        if mode == LINK_MODE and not link_target_ok(_link_target(store, oid)):
            _refuse(run, f"its symlink {path!r} has the unusable target {_link_target(store, oid)!r}")
    if prefix:
        if len(_SAFE_TREES) >= TREE_MEMO:
            _SAFE_TREES.clear()
        _SAFE_TREES.add(tree_id)


_SAFE_TREES: set[str] = set()  # ids of subtrees whose entries passed checked_files' checks
_MODES = frozenset((TREE_MODE, 0o100644, EXEC_MODE, LINK_MODE, GITLINK_MODE))


def _link_target(store: Store, blob: str) -> str:
    return store.blob(blob).decode("utf-8", errors="surrogateescape")


def _check_path(path: str, run: RunSummary) -> None:
    problem = path_problem(path, workspace=True)
    if problem:
        _refuse(run, f"it names the unsafe path {path!r}: {problem}")


def _refuse(run: RunSummary, reason: str) -> NoReturn:
    raise InvalidPointer(f"run {run.name!r}", reason)


def _check_layout(run: RunSummary, entries: dict[str, Entry], owned: list[str]) -> None:
    """Refuse a run where anything lies below one of its files or links: a link `dd` and a file `dd/f`
    (from its tree, a pointer, a manifest, or any two of them) would write f wherever dd points."""
    for path in list(entries) + owned:
        prefix = path
        while "/" in prefix:
            prefix = prefix.rpartition("/")[0]
            below = entries.get(prefix)
            if below is not None:
                what = "symlink" if below.kind == "link" else "file"
                _refuse(run, f"it has {path!r} below its {what} {prefix!r} (written, it would land wherever that leads)")


class _Stage:
    """Checks that every byte of entries is at hand before the workspace is touched, then writes them.

    check(): data objects (the bytes that can be missing or damaged) are read
    and hashed where they are in the cache, git blobs checked to exist; nothing
    is written yet. write(): each data file is copied out of the cache into the
    scratch directory, hashed again as it is copied, and renamed into place
    right after the file it replaces is removed; git blobs are written in
    place, the way git itself checks out. Removing first, as `rm -rf` then `cp`
    does, lets the copy reuse the memory the removed file held in the page
    cache, and means both never take disk space at once.
    """

    def __init__(self, store: Store, scratch: Path) -> None:
        self.store = store
        self.cache = Cache(cache_root(store.git_common_dir()))
        self.scratch = scratch
        self.entries: list[Entry] = []
        self.lfs_missing: list[str] = []  # LFS files written as their pointer: the object is not here
        scratch.mkdir(parents=True)

    def check(self, run: RunSummary, entries: list[Entry], uncached: tuple[tuple[str, str], ...] = ()) -> None:
        """Name every missing data object, then verify each (one still as its stamp says it was hashed in
        full is not read again; the others are hashed two at a time), check that every git blob exists and
        that the disk has room."""
        missing = [e.path for e in entries if e.kind == "object" and not self.cache.has(e.source)]
        never = [p for p in missing if p in dict(uncached)]
        if never:
            raise GitexpError(
                f"run {run.name!r} recorded these inputs without caching them (cache_inputs: false), so no copy "
                f"can hold them: {', '.join(never[:5])}; check the run out in place while the workspace has them"
            )
        if missing:
            raise MissingData(run.name, missing)
        objects = {e.source: e.path for e in entries if e.kind == "object"}
        _in_parallel([functools.partial(self.cache.check, d, p, stamp_will_do=True) for d, p in objects.items()], 2)
        for entry in entries:
            if entry.kind == "blob" and not self.store.has_object(entry.source):
                raise GitexpError(f"git object {entry.source} of {entry.path} is missing (run 'git fsck'); nothing was changed")
        needed = sum(
            self.cache.path(e.source).stat().st_size if e.kind == "object" else self.store.blob_size(e.source)
            for e in entries if e.kind != "link"
        )
        free = shutil.disk_usage(self.scratch).free
        if needed > free:
            raise GitexpError(
                f"not enough disk space: the run's files need {needed >> 20} MiB and {free >> 20} MiB are free "
                "(free some space, or use --into DIR on another disk); nothing was changed"
            )
        self.entries = entries

    def write(self, root: Path, commit: str, all_paths: Collection[str]) -> None:
        """Put every checked entry in place, by a few threads: each file costs a handful of system calls,
        and those run in parallel, as in git's parallel checkout.

        Code files get what git's checkout would write: line endings converted in-process (libgit2, with
        the attributes of the run's commit); a path whose `filter` attribute names a configured driver
        (Git LFS) is written by git itself (`git cat-file --filters`), except an LFS pointer whose object
        is not in .git/lfs/objects: that is written as the pointer (as GIT_LFS_SKIP_SMUDGE=1 does) and
        listed in lfs_missing. all_paths: every path of the run (its .gitattributes files decide).

        Every directory is reached from root one component at a time with O_NOFOLLOW (_Below), so no
        symlink is ever followed, even one put there while we write; the run's own symlinks are made last.
        """
        blob_paths = [e.path for e in self.entries if e.kind == "blob"]
        filtered = self.store.needs_filters(list(all_paths))
        through_git = self.store.filter_paths(blob_paths, commit) if filtered and blob_paths else set()
        umask = os.umask(0)
        os.umask(umask)
        lock = threading.Lock()  # pygit2 reads from one thread at a time

        def mode(entry: Entry) -> int:  # as git gives a new file
            return (0o777 if entry.executable else 0o666) & ~umask

        def copy(below: _Below, entry: Entry) -> None:
            fd, name = below.parent(entry.path)
            st = _clear(fd, name, entry.path)
            if st is not None:
                # Removed, not renamed over: renaming over an existing file makes ext4 (auto_da_alloc)
                # flush the new one to disk at once, which costs more than the whole copy did.
                os.unlink(name, dir_fd=fd)
            tmp = self.scratch / os.urandom(8).hex()
            self.cache.copy_out(entry.source, tmp, entry.path)
            os.chmod(tmp, mode(entry))
            os.rename(tmp, name, dst_dir_fd=fd)

        def write_code(below: _Below, entry: Entry) -> None:
            fd, name = below.parent(entry.path)
            st = _clear(fd, name, entry.path)
            if entry.kind == "link":
                os.symlink(entry.source, name, dir_fd=fd)
                return
            smudge = False
            with lock:
                if entry.path in through_git:
                    data = self.store.blob(entry.source)
                    lfs = self.store.lfs_object(data)
                    smudge = lfs is None or lfs[1].is_file()
                    if not smudge:
                        self.lfs_missing.append(entry.path)
                else:
                    data = self.store.worktree_bytes(entry.source, entry.path, commit) if filtered else self.store.blob(entry.source)
            # An existing file with no other hard link is rewritten in place (cheaper than unlink + create).
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o777 if entry.executable else 0o666, dir_fd=fd)
            try:
                if smudge:
                    _smudge(self.store.root, entry, out)
                view = memoryview(b"" if smudge else data)
                while view:
                    view = view[os.write(out, view):]
                if st is not None and bool(st.st_mode & 0o100) != entry.executable:
                    os.fchmod(out, mode(entry))
            finally:
                os.close(out)

        def job(fn: Callable[[_Below, Entry], None], entries: list[Entry]) -> None:
            with _Below(root) as below:
                for entry in entries:
                    fn(below, entry)

        with _Below(root) as below:
            for parent in sorted({os.path.dirname(e.path) for e in self.entries} - {""}):
                below.makedirs(parent)
        objects = [e for e in self.entries if e.kind == "object"]
        blobs = [e for e in self.entries if e.kind == "blob"]
        size = max(64, -(-len(blobs) // 8))
        _in_parallel(
            [functools.partial(job, copy, objects[i : i + 16]) for i in range(0, len(objects), 16)]
            + [functools.partial(job, write_code, blobs[i : i + size]) for i in range(0, len(blobs), size)],
            4,
        )
        # Links last, once every file and directory is in place: nothing is ever written below one.
        job(write_code, [e for e in self.entries if e.kind == "link"])


def _in_parallel(calls: Sequence[Callable[[], T]], workers: int) -> list[T]:
    """Each call's result, in order: made by up to `workers` threads (the work is system calls and hashing,
    which release the GIL), or in this one when there is a single call. The first error is raised once
    every thread has stopped; calls not started by then are not made."""
    if len(calls) <= 1:
        return [call() for call in calls]
    results: list[T | None] = [None] * len(calls)
    errors: list[BaseException] = []
    todo = iter(enumerate(calls))
    lock = threading.Lock()

    def work() -> None:
        while not errors:
            with lock:
                item = next(todo, None)
            if item is None:
                return
            try:
                results[item[0]] = item[1]()
            except BaseException as exc:  # noqa: BLE001 - raised in the calling thread below
                errors.append(exc)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(min(workers, len(calls)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


def _smudge(repo_root: Path, entry: Entry, out: int) -> None:
    """Write a blob into descriptor out through git's own smudge filters, as git's checkout would."""
    import subprocess

    env = dict(os.environ)
    env.pop("GIT_LFS_SKIP_SMUDGE", None)
    proc = subprocess.run(
        ["git", "cat-file", "--filters", f"--path={entry.path}", entry.source],
        cwd=repo_root, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, check=False,
    )
    if proc.returncode != 0:
        reason = " ".join(proc.stderr.decode(errors="replace").strip().splitlines()[-2:])
        raise GitexpError(f"git could not write {entry.path} through its filter: {reason}")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Below:
    """Paths below a root directory, reached one component at a time from the root's descriptor with
    O_NOFOLLOW: a symlink anywhere on the way, even one created meanwhile, is never followed.

    The directory of the last path is kept open, so files of one directory cost one open each.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.last: tuple[str, int] | None = None

    def __enter__(self) -> _Below:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.last is not None:
            os.close(self.last[1])
        os.close(self.fd)

    def parent(self, rel: str, make: bool = False) -> tuple[int, str]:
        """(descriptor of rel's directory, owned by self; rel's last name). With make, missing directories
        are created, and a file standing where one must be is removed (checked before: the run's to replace)."""
        directory, _, name = rel.rpartition("/")
        if self.last is not None and self.last[0] == directory:
            return self.last[1], name
        fd = os.dup(self.fd)
        try:
            done = []
            for part in directory.split("/") if directory else []:
                done.append(part)
                step = self._step(fd, part, "/".join(done), make)
                os.close(fd)
                fd = step
        except BaseException:
            os.close(fd)
            raise
        if self.last is not None:
            os.close(self.last[1])
        self.last = (directory, fd)
        return fd, name

    def makedirs(self, rel: str) -> None:
        self.parent(rel + "/", make=True)

    def _step(self, fd: int, part: str, shown: str, make: bool) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not make:
                raise
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                raise GitexpError(f"{shown} is a symlink now: nothing is written through it (it leads outside the directory)") from None
            if not make:
                raise
            os.unlink(part, dir_fd=fd)  # a file where the run has a directory: it was checked to be the run's to replace
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, dir_fd=fd)
        return os.open(part, _DIR_FLAGS, dir_fd=fd)


def _clear(fd: int, name: str, shown: str) -> os.stat_result | None:
    """Make room for name in directory fd: nothing there (None), or a lone regular file to overwrite (its stat)."""
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        _remove_empty_tree(fd, name, shown)
    elif stat.S_ISLNK(st.st_mode) or st.st_nlink > 1 or not stat.S_ISREG(st.st_mode):
        os.unlink(name, dir_fd=fd)
    else:
        return st
    return None


def _remove_empty_tree(fd: int, name: str, shown: str) -> None:
    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
    try:
        for entry in os.scandir(sub):
            if not entry.is_dir(follow_symlinks=False):
                raise GitexpError(f"cannot replace the directory {shown} by a file: it still holds files")
            _remove_empty_tree(sub, entry.name, shown)
    finally:
        os.close(sub)
    os.rmdir(name, dir_fd=fd)


class CheckoutResult(NamedTuple):
    run: RunSummary
    written: int
    removed: int
    saved: RunSummary | None
    head: str


def materialize(
    store: Store, run: RunSummary, into: Path, sections: tuple[str, ...] = tuple(SECTION_ROLES),
    notify: Callable[[str], None] | None = None,
) -> int:
    """Write the run's files into a new or empty directory; return how many. (Submodules are not copied:
    their directories stay empty, as in a fresh clone.)"""
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise GitexpError(f"{into} exists and is not an empty directory (give a new or empty directory)")
    if into.resolve().is_relative_to(store.root.resolve()):
        raise GitexpError(f"{into} is inside the repository, where the copy would become code of the next run (choose a directory outside it)")
    tgt = target(store, run, sections)
    made = not into.exists()
    try:
        _write_copy(store, run, list(tgt.entries.values()), into, tgt.uncached, notify=notify, all_paths=tgt.entries)
    except BaseException:
        if made:
            shutil.rmtree(into, ignore_errors=True)  # no half copy left behind to refuse the next try
        raise
    return len(tgt.entries)


def _write_copy(
    store: Store, run: RunSummary, entries: list[Entry], into: Path, uncached: tuple[tuple[str, str], ...] = (),
    notify: Callable[[str], None] | None = None, all_paths: Collection[str] = (),
) -> None:
    """Check, then write entries into directory into: a copy of the run (nothing there to save first)."""
    stage = _Stage(store, into.parent / f".gitexp-stage-{os.getpid()}-{os.urandom(3).hex()}")
    try:
        stage.check(run, entries, uncached)
        into.mkdir(parents=True, exist_ok=True)
        stage.write(into, run.commit, all_paths or [e.path for e in entries])
        if notify is not None:
            _lfs_notice(stage.lfs_missing, notify)
    finally:
        shutil.rmtree(stage.scratch, ignore_errors=True)


Known = dict[str, tuple[str, str, bool, int, int, int]]  # path -> (kind, source, executable, size, ctime_ns, inode)


def sync(store: Store, run: RunSummary, into: Path, known: Known, sections: tuple[str, ...]) -> Known:
    """Make directory into hold exactly the run's files, rewriting only what differs from what we wrote last.

    known describes the files a previous sync wrote; a file whose stat changed since (the last run in
    this directory wrote it) is written again, and everything else the directory holds is removed.
    This is what lets a worker reuse its temporary worktree from one run to the next.
    """
    tgt = target(store, run, sections)
    keep: set[str] = set()
    into.mkdir(parents=True, exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(into, topdown=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, into).replace(os.sep, "/")
            entry, st = tgt.entries.get(rel), os.lstat(full)
            if entry is not None and known.get(rel) == _fingerprint(entry, st):
                keep.add(rel)
            else:
                os.unlink(full)
        if dirpath != str(into):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)  # only if empty
    _write_copy(store, run, [e for path, e in tgt.entries.items() if path not in keep], into, all_paths=tgt.entries)
    return {path: _fingerprint(e, os.lstat(into / path)) for path, e in tgt.entries.items()}


def _fingerprint(entry: Entry, st: os.stat_result) -> tuple[str, str, bool, int, int, int]:
    return (entry.kind, entry.source, entry.executable, st.st_size, st.st_ctime_ns, st.st_ino)  # ctime: chmod too


def checkout(
    store: Store, run: RunSummary, notify: Callable[[str], None], progress: Progress | None = None,
    paths: tuple[str, ...] | None = None,
) -> CheckoutResult:
    """Make the workspace the run's: code, params, data and outputs; HEAD at its base commit.

    With paths (relative to the workspace root), only the run's files at or under them are written, with
    the same checks and the same save first; HEAD, the index and the current-run pointer stay.
    """
    with checkout_lock(store.state_dir):
        for stale in (store.state_dir / "tmp").glob("checkout-*"):  # under the lock: left by a killed checkout
            shutil.rmtree(stale, ignore_errors=True)
        return _checkout(store, run, notify, progress, paths)


def restore_paths(run: RunSummary, paths: list[str], tgt: Target) -> tuple[str, ...]:
    """The given paths, normalised (no '.', trailing '/'), each checked to be inside the workspace and
    to name a file or directory the run has; refused in one line otherwise."""
    out: list[str] = []
    for given in paths:
        parts = [p for p in given.replace(os.sep, "/").split("/") if p not in ("", ".")]
        if given.startswith("/") or ".." in parts:
            raise GitexpError(f"{given!r} is not a path inside the workspace (relative, without '..'); nothing was changed")
        path = "/".join(parts)
        if path == fmt.RECORD_DIR or path.startswith(fmt.RECORD_DIR + "/"):
            raise GitexpError(f"{given!r} does not name one of the run's files or directories; nothing was changed")
        if path and path not in tgt.entries and path not in tgt.owned and not any(p.startswith(path + "/") for p in tgt.entries):
            raise GitexpError(f"run {run.name!r} has no file or directory {path!r}; nothing was changed")
        out.append(path)
    return tuple(dict.fromkeys(out))


def _under(path: str, paths: tuple[str, ...]) -> bool:
    return any(not p or path == p or path.startswith(p + "/") for p in paths)  # '' is the workspace's root


def _checkout(
    store: Store, run: RunSummary, notify: Callable[[str], None], progress: Progress | None, only: tuple[str, ...] | None
) -> CheckoutResult:
    from gitexp.query import settled

    settled(run)  # a run in progress has no outputs yet: said first, whatever else is going on
    _refuse_while_busy(store)
    for note in ParamsGuard(store.state_dir, store.root).recover():  # the user's params first: they may need saving
        notify(note)
    status = store.workspace_status()  # git reads the workspace while the run is read and checked
    try:
        return _checkout_status(store, run, notify, progress, only, status)
    finally:
        status.close()


def _checkout_status(
    store: Store, run: RunSummary, notify: Callable[[str], None], progress: Progress | None, only: tuple[str, ...] | None,
    status: Status,
) -> CheckoutResult:
    root = store.root
    tgt = target(store, run)
    if only is not None:
        only = restore_paths(run, list(only), tgt)
    staged = store.tree_of(f"{run.commit}:{fmt.RECORD_DIR}/{fmt.INDEX_TREE}")
    indexed = staged or run.base
    if only is None and indexed and (staged or indexed != store.head()[0]):
        _check_changes(store, run, indexed)  # the index will hold it: refused now, not half-way
    # A sparse checkout leaves files outside it unwritten (and their index entries skip-worktree), as git does.
    sparse = store.sparse_outside([p for p, e in tgt.entries.items() if e.kind != "object"])
    config = config_mod.load(root, store.state_dir)
    declared = tuple(dict.fromkeys(config.data + config.outputs + tgt.owned))
    stats = StatCache(stat_db(store.git_common_dir()))
    try:
        left_out = Exclude(config.exclude).why
        current_data = _files_under(root, declared, stats, left_out)  # while git status reads the workspace
        current = store.snapshot(exclude=declared, large_threshold=config.large_files, status=status)
        current_data.update(_files_under(root, current.large, stats, left_out))
        # The workspace's code: the run's, but where the two trees differ (compared by id: only the subtrees
        # that differ are read; the cost follows the change, not the size of the tree).
        changed = store.changed_files(current.tree, run.commit)
        current_code = {path: (mode, oid) for path, mode, oid in tgt.code}
        for path, was in changed.items():
            if was is None:
                current_code.pop(path, None)
            else:
                current_code[path] = was
        ignores_differ = any(p.rpartition("/")[2] == ".gitignore" for p in changed)
        uncached_bad = [p for p, d in tgt.uncached if current_data.get(p) != d]
        if uncached_bad:
            raise GitexpError(
                f"run {run.name!r} recorded these inputs without caching them (cache_inputs: false) and the "
                f"workspace no longer has them: {', '.join(uncached_bad[:5])}; nothing was changed"
            )
        todo = [e for e in tgt.entries.values() if e.path not in sparse and not _same(root, e, current_code, current_data)]
        # Files under a data path the run did not declare were never the run's: they stay.
        owned = tuple(p.rstrip("/") + "/" for p in tgt.owned)
        theirs = set(tgt.owned) | set(current.large) | {p for p in current_data if p.startswith(owned)}
        removals = sorted(
            p for p in (set(current_code) | (set(current_data) & theirs)) - set(tgt.entries) if _removable(root / p)
        )
        if ignores_differ:
            removals = _not_ignored_by_run(store, tgt, current_code, removals)
        if only is not None:  # as git checkout RUN -- PATH: code files the run lacks stay; its data paths hold only its files
            todo = [e for e in todo if _under(e.path, only)]
            removals = [p for p in removals if _under(p, only) and p in current_data and p in theirs]
        removals = [p for p in removals if p not in tgt.owned or not os.path.islink(root / p)]  # a data link stays
        _refuse_through_symlinks(root, [e.path for e in todo] + removals)
        todo = _guard_unsaveable(store, todo, current_code, current_data, removals)
        touched = {e.path for e in todo} | set(removals)
        saved = None
        stage = _Stage(store, store.state_dir / "tmp" / f"checkout-{os.getpid()}-{os.urandom(3).hex()}")
        cache = stage.cache
        try:
            stage.check(run, todo)  # every byte verified before anything is saved or changed
            _repair_from_workspace(cache, stats, root, {p: current_data[p] for p in touched if p in current_data})
            if not _recoverable(store, touched, current_code, current_data, cache):
                from gitexp.recorder import save_workspace

                # The run's own data and output paths are saved too, even where the current config
                # does not declare them (an ignored model file, say): the checkout will replace them.
                saved = save_workspace(store, notify, progress, extra_outputs=declared)
                notify(f"your uncommitted work was saved as run {saved.name}; get it back with: gitexp checkout {saved.name}")
            head_before = store.head()
            with _completed_once_started(run, saved, notify):
                with _Below(root) as below:
                    for path in removals:
                        _remove(below, path)
                stage.write(root, run.commit, tgt.entries)
                for entry in todo:  # so that the next snapshot or checkout does not read them again
                    if entry.kind == "object":
                        stats.remember(root / entry.path, entry.source)
                if only is None:
                    index_tree = store.tree_of(f"{run.commit}:{fmt.RECORD_DIR}/{fmt.INDEX_TREE}")
                    written = [e.path for e in todo if e.kind == "blob"]
                    head = store.move_head(run.base, run.base_branch, index_tree, run.commit, written)
                    if sparse:
                        index_paths = {p for p, _, _ in store.code_entries(index_tree or run.base or run.commit)}
                        store.mark_skip_worktree(sorted(sparse & index_paths))
                    _, branch = store.head()
                    write_pointer(store.state_dir, branch, Pointer(run.name, run.commit))
                else:
                    store.forget_stat([e.path for e in todo if e.kind == "blob"])
                    head = "unchanged"
            _lfs_notice(stage.lfs_missing, notify)
            if only is None:
                _submodules(store, run, notify)
        finally:
            shutil.rmtree(stage.scratch, ignore_errors=True)
    finally:
        stats.close()
    if ignores_differ:
        after = {path for path, _, _ in store.code_entries(store.snapshot(exclude=declared, large_threshold=config.large_files).tree)}
        shown = sorted(after - set(tgt.entries) - set(current_code))
        if shown:
            notify(
                f"{len(shown)} file(s) your ignore rules hid are no longer ignored (the run's .gitignore differs): "
                f"{', '.join(shown[:5])}{' ...' if len(shown) > 5 else ''}; the next gitexp run would record them"
            )
    left, was_branch = head_before
    if only is None and left and was_branch is None and left != run.base and not store.held_by_a_ref(left):
        notify(f"HEAD was detached at {left[:10]}, which no branch or tag holds; keep it with: git branch NAME {left[:10]}")
    return CheckoutResult(run, len(todo), len(removals), saved, head)


def _lfs_notice(paths: list[str], notify: Callable[[str], None]) -> None:
    if paths:
        shown = ", ".join(sorted(paths)[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        notify(
            f"{len(paths)} Git LFS file(s) were written as pointers, their objects not being in .git/lfs/objects: "
            f"{shown}; get them with 'gitexp pull' (or 'git lfs fetch'), then check the run out again"
        )


def _submodules(store: Store, run: RunSummary, notify: Callable[[str], None]) -> None:
    """Check each submodule of the run out at the commit the run recorded (detached), as
    `git submodule update` would; one that is not initialised, lacks the commit or refuses is named."""
    import subprocess

    if not (store.root / ".gitmodules").exists():
        return
    from gitexp.store.snapshot import submodule_head

    for path, mode, commit in store.code_entries(run.commit):
        if mode != GITLINK_MODE:
            continue
        head = submodule_head(store.root, path)
        if head == commit:
            continue
        if head is None:
            notify(
                f"submodule {path} is not initialised, so it is not at {commit[:10]}, the commit the run used; "
                f"get it with: git submodule update --init {path} && git -C {path} checkout --detach {commit}"
            )
            continue
        where = store.root / path
        has = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=where, capture_output=True, check=False)
        if has.returncode != 0:
            notify(
                f"submodule {path} does not have commit {commit[:10]}, the one the run used (it stays at {head[:10]}); "
                f"fetch it with: git -C {path} fetch && git -C {path} checkout --detach {commit}"
            )
            continue
        proc = subprocess.run(["git", "checkout", "-q", "--detach", commit], cwd=where, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            reason = " ".join(proc.stderr.strip().splitlines()[:2])
            notify(f"submodule {path} could not be checked out at {commit[:10]} ({reason}); it stays at {head[:10]}")
        else:
            notify(f"submodule {path} checked out at {commit[:10]} (detached), the commit the run used")


def _refuse_while_busy(store: Store) -> None:
    """A checkout waits for git operations, and for gitexp runs that work in this workspace (their live
    files say so: one that rewrote the params files has one too)."""
    operation = store.operation_in_progress()
    if operation:
        raise GitexpError(f"a git {operation} is in progress here; finish or abort it first; nothing was changed")
    if (Path(store.repo.path) / "index.lock").exists():
        raise GitexpError(
            f"{Path(store.repo.path) / 'index.lock'} exists: a git command is using the index (or one was killed; "
            "then remove that file); nothing was changed"
        )
    common = store.git_common_dir()
    if not any(live_dir(common).glob("*.json")):  # no run in progress here: gitexp.live is not even imported
        return
    from gitexp import live

    busy = live.running_in(common, store.root)
    if busy:
        raise GitexpError(
            f"run {busy[0].name!r} (pid {busy[0].pid}) is running in this workspace and may still write to it; "
            "wait for it to end (or stop it) before a checkout; nothing was changed"
        )


@contextlib.contextmanager
def _completed_once_started(run: RunSummary, saved: RunSummary | None, notify: Callable[[str], None]) -> Iterator[None]:
    """Once the workspace starts to change: Ctrl-C waits for the end (half a checkout is a mix of two
    states), and an error says what state the workspace is in and how to finish."""
    from gitexp.signals import signals_deferred

    try:
        with signals_deferred():
            yield
    except KeyboardInterrupt:
        notify("the checkout was finished before stopping: stopped half-way, the workspace would be a mix")
        raise
    except (OSError, GitexpError) as exc:
        reason = exc.message if isinstance(exc, GitexpError) else f"{exc.strerror or exc}: {exc.filename or ''}"
        kept = f"your work was saved as run {saved.name}" if saved else "what it replaced can be had again"
        raise GitexpError(
            f"the checkout stopped half-way ({reason}); the workspace is partly {run.name}'s and HEAD did not move; "
            f"fix the cause and run 'gitexp checkout {run.name}' again to finish ({kept})"
        ) from exc


def _refuse_through_symlinks(root: Path, paths: list[str]) -> None:
    """Refuse to write or remove anything through a symlinked directory (it would change files outside)."""
    seen: dict[str, bool] = {}
    for path in paths:
        parts = PurePosixPath(path).parts
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix not in seen:
                seen[prefix] = os.path.islink(root / prefix)
            if seen[prefix]:
                link = root / prefix
                raise GitexpError(
                    f"{prefix} is a symlink ({prefix} -> {os.readlink(link)}) and the checkout would change "
                    f"{path} through it, outside the repository; move the link aside first, or use --into DIR; "
                    "nothing was changed"
                )


def _repair_from_workspace(cache: Cache, stats: StatCache, root: Path, digests: dict[str, str]) -> None:
    """Verify the cache objects that hold the bytes of data files the checkout will replace; a damaged one
    is stored again from the workspace's copy (which is about to go), so that it can be had again."""
    from gitexp.data.cache import CorruptObject

    def damaged(path: str, digest: str) -> bool:
        if digest.startswith("link:") or not cache.has(digest):
            return False
        try:
            cache.check(digest, path, stamp_will_do=True)
        except CorruptObject:
            return True
        return False

    found = [p for p, bad in zip(digests, _in_parallel([functools.partial(damaged, p, d) for p, d in digests.items()], 2)) if bad]
    for path in found:  # one thread: the stat cache is sqlite
        cache.store_file(root / path, stats, verify_existing=True)


def _not_ignored_by_run(store: Store, tgt: Target, code: dict[str, tuple[int, str]], removals: list[str]) -> list[str]:
    """removals less the files the run's own .gitignore files ignore: the run could not have had them.

    (Files ignored now are never candidates; this is for those that ignore rules of the
    workspace no longer hide: called when its .gitignore files differ from the run's.)
    """
    candidates = [p for p in removals if p in code]  # under the run's data and output paths, all extra files go
    if not candidates:
        return removals
    ignored = store.ignored_by(_gitignores(tgt), candidates)
    return [p for p in removals if p not in ignored]


def _gitignores(tgt: Target) -> dict[str, str]:
    """The run's .gitignore files: path -> blob id."""
    return {p: e.source for p, e in tgt.entries.items() if e.kind == "blob" and p.rpartition("/")[2] == ".gitignore"}


def _files_under(
    root: Path, paths: tuple[str, ...], stats: StatCache, left_out: Callable[[str], str | None]
) -> dict[str, str]:
    """path -> digest (or 'link:' + target) of every file at or under the given workspace paths.

    Files no run records (secrets, `exclude:`) are not listed: they are never the run's to replace or remove.
    """
    out: dict[str, str] = {}

    def add(f: Path) -> None:
        rel = f.relative_to(root).as_posix()
        if left_out(rel) is None:
            out[rel] = "link:" + os.readlink(f) if f.is_symlink() else stats.digest(f)

    for rel in paths:
        full = root / rel
        if left_out(rel) is not None:
            continue
        stats.prefetch(full)
        if full.is_symlink() or full.is_file():
            add(full)
            continue
        for dirpath, dirnames, filenames in os.walk(full):  # symlinked dirs are listed, never entered
            dirnames[:] = [d for d in dirnames if d != ".git" and left_out(Path(dirpath, d).relative_to(root).as_posix()) is None]
            for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                add(Path(dirpath, name))
    return out


def _same(root: Path, e: Entry, code: dict[str, tuple[int, str]], data: dict[str, str]) -> bool:
    """Whether the workspace already holds entry e exactly (then it is not written again)."""
    if e.kind == "blob":
        return code.get(e.path) == ((EXEC_MODE if e.executable else 0o100644), e.source)
    path = root / e.path
    if e.kind == "link":
        return path.is_symlink() and os.readlink(path) == e.source
    if data.get(e.path) != e.source:
        return False
    return bool(os.stat(path).st_mode & stat.S_IXUSR) == e.executable


def _guard_unsaveable(
    store: Store, todo: list[Entry], code: dict[str, tuple[int, str]], data: dict[str, str], removals: list[str]
) -> list[Entry]:
    """Refuse to overwrite a file no run can hold (ignored, or inside a nested repository) unless it already
    has the run's content; such files are dropped from the work when identical. The same for what stands
    where the run needs a directory (a file) or a file (a directory, unless all it holds goes)."""
    root = store.root
    keep: list[Entry] = []
    blocked: list[str] = []
    going = set(removals)
    for entry in todo:
        path = root / entry.path
        if entry.path in code or entry.path in data or not os.path.lexists(path):
            keep.append(entry)
        elif path.is_dir() and not path.is_symlink():
            inside = [os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/") for d, _, fs in os.walk(path) for f in fs]
            if all(p in going for p in inside):  # a directory whose files all go: the run's file replaces it
                keep.append(entry)
            else:
                blocked.append(entry.path)
        elif entry.kind == "link" and path.is_symlink() and os.readlink(path) == entry.source or entry.kind == "blob" and path.is_file() and not path.is_symlink() and store.hash_file(path) == entry.source:
            continue
        else:
            blocked.append(entry.path)
    for parent in sorted({str(PurePosixPath(e.path).parent) for e in keep} - {"."}):
        full = root / parent
        if os.path.lexists(full) and (full.is_symlink() or not full.is_dir()) and parent not in code and parent not in data:
            blocked.append(parent)  # a file or link where the run has a directory, and nothing holds it
    if blocked:
        shown = ", ".join(blocked[:5]) + (f" and {len(blocked) - 5} more" if len(blocked) > 5 else "")
        raise GitexpError(
            f"the checkout would overwrite files that gitexp cannot save first (ignored, or inside a nested "
            f"repository): {shown}; move them aside (or stop ignoring them) and try again; nothing was changed"
        )
    return keep


def _removable(path: Path) -> bool:
    return path.is_symlink() or path.is_file()


def _remove(below: _Below, rel: str) -> None:
    """Remove the file or link at rel, then the directories it leaves empty; never through a symlink."""
    try:
        fd, name = below.parent(rel)
    except (FileNotFoundError, NotADirectoryError):
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)
    while "/" in rel:
        rel = rel.rpartition("/")[0]
        fd, name = below.parent(rel)
        try:
            os.rmdir(name, dir_fd=fd)
        except OSError:
            break


def _recoverable(
    store: Store, touched: set[str], code: dict[str, tuple[int, str]], data: dict[str, str], cache: Cache
) -> bool:
    """Whether every file the checkout would overwrite or remove can be had again without a save.

    A code file can if the same content sits at the same path at HEAD or in the
    workspace's current run; a data file if its bytes are in the cache.
    """
    pointer = read_pointer(store.state_dir, store.head()[1])
    revs = ["HEAD"] + ([pointer.commit] if pointer and store.run_commit(pointer.name) == pointer.commit else [])
    trees = [tree for tree in map(store.tree_of, revs) if tree]
    for path in touched:  # each path looked up: the cost follows the change, not the size of the trees
        if path in code and all(store.file_entry(tree, path) != code[path] for tree in trees):
            return False
        if path in data and (data[path].startswith("link:") or not cache.has(data[path])):
            return False
    return True


def branch(store: Store, run: RunSummary, name: str, switch: bool, notify: Callable[[str], None]) -> str:
    """refs/heads/<name> at a commit holding the run's code, on the run's base commit.

    With switch, the run is checked out and HEAD put on the new branch, whose
    tree is then exactly the workspace's code: `git status` is clean. The run's tree is validated
    first, as for a checkout: a branch of it is checked out by git later.
    """
    checked_files(store, run)
    commit = store.create_branch(
        name,
        store.code_tree(run.commit),
        run.base,
        f"Code of gitexp run {run.name}\n\n{fmt.T_RUN}: {run.name}\nGitexp-Run-Commit: {run.commit}\n",
    )
    if switch:
        try:
            checkout(store, run, notify)
        except BaseException:
            store.delete_branch(name, commit)  # "nothing was changed" must hold for the branch too
            raise
        store.switch_branch(name)
        write_pointer(store.state_dir, name, Pointer(run.name, run.commit))
    return commit

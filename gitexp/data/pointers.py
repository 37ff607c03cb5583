"""Pointers: what a run records about a data or output path instead of its bytes.

A file's pointer holds its xxh3-128 digest; a directory's holds the digest of
its manifest (the sorted list of its files, links and their digests), which is
stored in the run's record so a fetched run knows every file it needs.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gitexp.data.cache import Cache
from gitexp.data.hashing import StatCache, digest_bytes, is_digest
from gitexp.errors import GitexpError
from gitexp.format import RECORD_DIR
from gitexp.model import Progress

MANIFEST_FORMAT = 1
KINDS = ("file", "dir", "link", "missing")


class InvalidPointer(GitexpError):
    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"refusing {what}: {reason} (it may come from an untrusted or damaged run)")


class BadDataPath(GitexpError):
    def __init__(self, path: str, reason: str, fix: str = "give a relative path inside the repository") -> None:
        super().__init__(f"data/output path {path!r} {reason} ({fix})")


class DataPointer(NamedTuple):  # (a tuple: defined in a fraction of a frozen dataclass's time, at every start)
    path: str
    kind: str
    digest: str | None = None
    size: int = 0
    files: int = 0
    executable: bool = False
    target: str | None = None
    cached: bool = True
    fresh: bool | None = None  # outputs only: whether the run wrote or changed it

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "kind": self.kind}
        if self.kind in ("file", "dir"):
            out.update(digest=self.digest, size=self.size, files=self.files, cached=self.cached)
        if self.fresh is not None:
            out["fresh"] = self.fresh
        if self.kind == "file":
            out["executable"] = self.executable
        if self.kind == "link":
            out["target"] = self.target
        return out

    @classmethod
    def from_dict(cls, data: Any) -> DataPointer:
        """Read a pointer from a run record, refusing anything malformed or unsafe."""
        if not isinstance(data, dict):
            raise InvalidPointer("a pointer", "it is not an object")
        path = data.get("path")
        kind = data.get("kind")
        if not isinstance(path, str):
            raise InvalidPointer(f"pointer path {path!r}", "it is not a string")
        problem = pointer_path_problem(path, workspace=True)
        if problem:
            raise InvalidPointer(f"pointer path {path!r}", problem)
        if kind not in KINDS:
            raise InvalidPointer(f"pointer {path!r}", f"unknown kind {kind!r}")
        digest = data.get("digest")
        size = data.get("size", 0)
        files = data.get("files", 0)
        if kind in ("file", "dir"):
            if not isinstance(digest, str) or not is_digest(digest):
                raise InvalidPointer(f"pointer {path!r}", f"malformed digest {digest!r}")
            if not isinstance(size, int) or not 0 <= size < 1 << 50 or not isinstance(files, int) or files < 0:
                raise InvalidPointer(f"pointer {path!r}", "absurd size or file count")
        target = data.get("target")
        if kind == "link" and not link_target_ok(target):
            raise InvalidPointer(f"pointer {path!r}", f"a link with the unusable target {target!r}")
        fresh = data.get("fresh")
        return cls(path, kind, digest if kind in ("file", "dir") else None, size, files,
                   bool(data.get("executable", False)), target, bool(data.get("cached", True)),
                   fresh if isinstance(fresh, bool) else None)


@dataclass
class Manifest:
    """The files of a directory pointer: path -> entry, sorted when serialized."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        from gitexp.format import compact_json

        return compact_json({"format": MANIFEST_FORMAT, "files": sorted(self.entries, key=lambda e: e["path"])}).encode()

    @classmethod
    def from_bytes(cls, raw: bytes, what: str) -> Manifest:
        from gitexp.safeload import MAX_LARGE_BYTES, UnreadableRecord, json_loads

        try:
            data = json_loads(raw, f"{what} (a manifest)", MAX_LARGE_BYTES)
        except UnreadableRecord as exc:
            raise InvalidPointer(what, f"its manifest is malformed or too large: {exc.reason}") from exc
        entries = data.get("files") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise InvalidPointer(what, "its manifest is malformed")
        seen: set[str] = set()
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("path"), str):
                raise InvalidPointer(what, f"its manifest has a malformed entry {e!r}")
            problem = pointer_path_problem(e["path"])
            if problem:
                raise InvalidPointer(what, f"its manifest names the path {e['path']!r}: {problem}")
            if e["path"] in seen:
                raise InvalidPointer(what, f"its manifest names {e['path']!r} twice")
            seen.add(e["path"])
            if "link" in e:
                if not link_target_ok(e["link"]):
                    raise InvalidPointer(what, f"its manifest has the unusable link target {e['link']!r} for {e['path']!r}")
            elif not (isinstance(e.get("digest"), str) and is_digest(e["digest"])):
                raise InvalidPointer(what, f"its manifest has a malformed digest for {e['path']!r}")
        return cls(entries)

    def files(self) -> Iterator[dict[str, Any]]:
        return (e for e in self.entries if "link" not in e)


MAX_PATH = 4096  # bytes: PATH_MAX on Linux
MAX_NAME = 255  # bytes of one path component: NAME_MAX
# Code points HFS+ ignores in names, so that ".g\u200cit" is ".git" there (as git's is_hfs_dotgit knows).
_HFS_IGNORED = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


def is_dotgit(name: str) -> bool:
    """Whether a file system could take name for a repository's .git: in any case, with the trailing dots and
    spaces Windows drops, the code points HFS+ ignores, or as the NTFS short name GIT~1."""
    folded = name.translate(_HFS_IGNORED).rstrip(". ").lower()
    return folded in (".git", "git~1")


@functools.lru_cache(maxsize=4096)  # a pure function of name; a tree repeats its directory names
def name_problem(name: str) -> str | None:
    """Why one file name from a run must not be written (None when it may)."""
    if name in ("", ".", ".."):
        return f"it has the name {name!r}"
    if "/" in name or "\0" in name:
        return f"the name {name!r} contains '/' or NUL"
    if is_dotgit(name):
        return f"it names {name!r}, a repository's .git (writing there could install hooks)"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        return f"a name is longer than {MAX_NAME} bytes"
    return None


def path_problem(path: str, workspace: bool = False) -> str | None:
    """Why a '/'-separated relative path from a run must not be written (None when it may).

    Refused: absolute paths, empty, '.' and '..' components, NUL, .git in any spelling as any component, paths longer than PATH_MAX; with workspace (a path from the
    repository root), the record directory .gitexp too.
    """
    if not path or path.startswith("/"):
        return "it is not a relative path"
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
        return f"it is longer than {MAX_PATH} bytes"
    parts = path.split("/")
    if workspace and parts[0].lower() == RECORD_DIR:
        return f"{RECORD_DIR}/ is reserved for run records"
    for part in parts:
        problem = name_problem(part)
        if problem:
            return problem
    return None


def pointer_path_problem(path: str, workspace: bool = False) -> str | None:
    """path_problem, and no backslash (a separator on Windows): what a pointer or manifest may name."""
    return "it contains a backslash" if "\\" in path else path_problem(path, workspace)


def safe_relative(path: str) -> bool:
    return pointer_path_problem(path) is None


def link_target_ok(target: object) -> bool:
    """Whether a symlink target from a run can be created: a non-empty string without NUL, under PATH_MAX."""
    return isinstance(target, str) and bool(target) and "\0" not in target and len(target.encode("utf-8", "surrogateescape")) < MAX_PATH


def normalize(root: Path, cwd: Path, path: str) -> str:
    """A user-given path (relative to cwd) as a '/'-separated path relative to the repository root."""
    if os.path.isabs(path):
        raise BadDataPath(path, "is absolute")
    full = os.path.normpath(os.path.join(os.path.abspath(cwd), path))
    rel = os.path.relpath(full, os.path.abspath(root))
    if rel == "." or rel.startswith(".."):
        raise BadDataPath(path, "is outside the repository" if rel != "." else "is the whole repository")
    if rel.split(os.sep)[0] == ".git":
        raise BadDataPath(path, "is inside .git")
    problem = pointer_path_problem(rel.replace(os.sep, "/"), workspace=True)
    if problem:
        raise BadDataPath(path, f"cannot be recorded: {problem}", "give another path")
    return rel.replace(os.sep, "/")


def collect(root: Path, rel: str, cache: Cache | None, stats: StatCache, progress: Progress,
            manifests: dict[str, bytes], verify_existing: bool = False,
            leave_out: Callable[[str], str | None] | None = None, left_out: list[tuple[str, str]] | None = None
            ) -> DataPointer:
    """Hash (and cache, when cache is given) the file or directory at rel.

    A top-level symlink the user declared is followed (the caller checks where it leads); links
    inside a directory are recorded as links, never followed. Under a directory, what
    `leave_out(path)` gives a reason for (a secret) is skipped, and (path, reason) added to left_out.
    """
    full = root / rel
    try:
        st = os.stat(full)
    except FileNotFoundError:
        if os.path.islink(full):
            return DataPointer(rel, "link", target=os.readlink(full))
        return DataPointer(rel, "missing")
    if stat.S_ISREG(st.st_mode):
        digest = _file_digest(full, cache, stats, progress, verify_existing)
        return DataPointer(rel, "file", digest, st.st_size, 1, bool(st.st_mode & stat.S_IXUSR), cached=cache is not None)
    if not stat.S_ISDIR(st.st_mode):
        raise BadDataPath(rel, "is neither a file nor a directory")
    manifest = Manifest()
    total = 0
    count = 0
    below = len(str(full)) + 1

    def pruned(sub: str) -> bool:
        path = f"{rel}/{sub[below:]}"
        why = leave_out(path) if leave_out is not None else None
        if why is not None and left_out is not None:
            left_out.append((path, why))
        return why is not None

    stats.prefetch(full)
    for sub, entry_st in _walk(full, pruned if leave_out is not None else None):
        sub_rel = sub.relative_to(full).as_posix()
        if stat.S_ISLNK(entry_st.st_mode):
            manifest.entries.append({"path": sub_rel, "link": os.readlink(sub)})
            continue
        digest = _file_digest(sub, cache, stats, progress, verify_existing)
        manifest.entries.append(
            {"path": sub_rel, "digest": digest, "size": entry_st.st_size, "executable": bool(entry_st.st_mode & stat.S_IXUSR)}
        )
        total += entry_st.st_size
        count += 1
    raw = manifest.to_bytes()
    digest = digest_bytes(raw)
    manifests[digest] = raw
    return DataPointer(rel, "dir", digest, total, count, cached=cache is not None)


def stat_state(root: Path, rel: str) -> frozenset[tuple[str, int, int]]:
    """(path, size, mtime_ns) of the file or of every file and link under the directory at rel."""
    full = root / rel
    try:
        st = os.lstat(full)
    except OSError:
        return frozenset()
    if not stat.S_ISDIR(st.st_mode):
        return frozenset({(rel, st.st_size, st.st_mtime_ns)})
    return frozenset((str(p), s.st_size, s.st_mtime_ns) for p, s in _walk(full))


def total_size(root: Path, rel: str) -> int:
    full = root / rel
    if full.is_file():
        return full.stat().st_size
    return sum(st.st_size for _, st in _walk(full) if stat.S_ISREG(st.st_mode)) if full.is_dir() else 0


def _walk(top: Path, pruned: Callable[[str], bool] | None = None) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files and symlinks below top, sorted, without following links; .git dirs (and what pruned
    says) skipped."""
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        st = entry.stat(follow_symlinks=False)
        if not (stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) and entry.name != ".git"):
            continue
        if pruned is not None and pruned(entry.path):
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(Path(entry.path), pruned)
        else:
            yield Path(entry.path), st


def _file_digest(path: Path, cache: Cache | None, stats: StatCache, progress: Progress, verify_existing: bool = False) -> str:
    if cache is not None:
        return cache.store_file(path, stats, progress.advance, verify_existing)
    return stats.digest(path, progress=progress.advance)

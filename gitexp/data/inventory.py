"""Which runs point at which cache objects: `which`, `gc` and `fsck`."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gitexp import format as fmt
from gitexp.data.cache import Cache, CorruptObject, MissingObject
from gitexp.data.hashing import StatCache
from gitexp.data.pointers import DataPointer, Manifest, collect
from gitexp.data.session import cache_root, stat_db
from gitexp.errors import GitexpError
from gitexp.model import Progress
from gitexp.store import Store

SECTION_ROLES = {"inputs": "input", "outputs": "output", "large_files": "large file"}


@dataclass(frozen=True)
class Use:
    """One place a run holds some content: a pointer, or a file inside a directory pointer."""

    run: str
    commit: str
    role: str  # input | output | large file
    path: str  # path in the workspace
    digest: str
    size: int
    cached: bool


def run_pointers(store: Store, commit: str) -> dict[str, list[DataPointer]]:
    """The pointers of a run by section (empty for a run without data)."""
    raw = store.read_record(commit, fmt.DATA_FILE)
    if raw is None:
        return {}
    data = json.loads(raw)
    return {section: [DataPointer.from_dict(p) for p in data.get(section, [])] for section in SECTION_ROLES}


def manifest(store: Store, commit: str, pointer: DataPointer) -> Manifest:
    raw = store.read_record(commit, f"{fmt.MANIFEST_DIR}/{pointer.digest}.json")
    if raw is None:
        raise GitexpError(f"the manifest of {pointer.path} ({pointer.digest}) is missing from run {commit[:12]}")
    return Manifest.from_bytes(raw, f"the manifest of {pointer.path}")


def uses(store: Store, dirs: bool = False) -> Iterator[Use]:
    """Every piece of content every run refers to: each file, and each directory too with dirs."""
    for name, commit in store.run_refs():
        for section, pointers in run_pointers(store, commit).items():
            role = SECTION_ROLES[section]
            for p in pointers:
                shown = role + " (unchanged)" if p.fresh is False else role
                if p.kind == "file" or (dirs and p.kind == "dir"):
                    yield Use(name, commit, shown, p.path, p.digest or "", p.size, p.cached)
                if p.kind == "dir":
                    for e in manifest(store, commit, p).files():
                        yield Use(name, commit, shown, f"{p.path}/{e['path']}", e["digest"], e.get("size", 0), p.cached)


def which(store: Store, target: str, cwd: Path) -> tuple[str, list[Use]]:
    """(digest, uses) of the content of a file or directory, or of a digest (or its 8+ first hex digits)."""
    digest = _digest_of(store, target, cwd)
    return digest, [u for u in uses(store, dirs=True) if u.digest.startswith(digest)]


def _digest_of(store: Store, target: str, cwd: Path) -> str:
    path = Path(cwd, target)
    if not path.exists():
        text = target.lower()
        if 8 <= len(text) <= 32 and all(c in "0123456789abcdef" for c in text):
            return text
        raise GitexpError(f"{target!r} is neither an existing file or directory nor a digest (8 to 32 hex digits)")
    stats = StatCache(stat_db(store.git_common_dir()))
    try:
        if path.is_dir():
            rel = os.path.relpath(os.path.abspath(path), store.root)
            return collect(store.root, rel, None, stats, Progress(), {}).digest or ""
        return stats.digest(path)
    finally:
        stats.close()


@dataclass(frozen=True)
class GcReport:
    deleted: int
    freed_bytes: int
    kept: int
    kept_recent: int


def gc(store: Store, min_age_seconds: float, dry_run: bool = False) -> GcReport:
    """Delete cache objects no run refers to (nor a live process has pinned), older than min_age_seconds.

    Pins are read before refs: a run drops its pins only once its ref points at the objects.
    The objects found unused are deleted under the cache's exclusive lock, after reading
    pins and refs again: a process pins an object before it stores it or relies on it being
    there, so it either sees the object gone (and stores it again) or gc sees its pin.
    """
    cache = Cache(cache_root(store.git_common_dir()))
    seen: dict[str, set[str]] = {}  # digests per run commit: a commit's record never changes
    live = cache.pinned(drop_dead=False) | _referenced(store, seen)
    now = time.time()
    candidates: list[tuple[str, int]] = []
    kept = recent = 0
    for digest, path in list(cache.iter_objects()):
        if digest in live:
            kept += 1
            continue
        try:
            st = path.stat()
        except FileNotFoundError:  # another gc took it
            continue
        if now - st.st_mtime < min_age_seconds:
            recent += 1
            continue
        candidates.append((digest, st.st_size))
    if dry_run:
        return GcReport(len(candidates), sum(size for _, size in candidates), kept, recent)
    deleted = freed = 0
    with cache.collecting():
        live = cache.pinned(drop_dead=True) | _referenced(store, seen)
        for digest, size in candidates:
            if digest in live:
                kept += 1
                continue
            cache.delete(digest)
            deleted += 1
            freed += size
    cache.clear_tmp()
    return GcReport(deleted, freed, kept, recent)


def _referenced(store: Store, seen: dict[str, set[str]]) -> set[str]:
    """Every digest the runs point to now; seen caches them per commit."""
    found: set[str] = set()
    for _, commit in store.run_refs():
        if commit not in seen:
            digests = set()
            for pointers in run_pointers(store, commit).values():
                for p in pointers:
                    if p.digest:
                        digests.add(p.digest)
                    if p.kind == "dir":
                        digests.update(e["digest"] for e in manifest(store, commit, p).files())
            seen[commit] = digests
        found |= seen[commit]
    return found


@dataclass(frozen=True)
class Missing:
    """A cache object that runs refer to and the cache lacks, with every place that refers to it."""

    digest: str
    uses: tuple[Use, ...]

    @property
    def runs(self) -> list[str]:
        """The names of the runs that need it, each once."""
        return list(dict.fromkeys(use.run for use in self.uses))


@dataclass(frozen=True)
class FsckReport:
    checked: int
    corrupt: list[str]
    missing: list[Missing]  # one per object, however many runs and files refer to it


def fsck(store: Store, repair: bool = False) -> FsckReport:
    """Re-hash every cache object; list corrupt ones and cached content runs miss.

    With repair, corrupt objects are moved to cache/corrupt/, so that the next
    run, save or `gitexp pull` that has the right bytes stores them again.
    """
    cache = Cache(cache_root(store.git_common_dir()))
    corrupt = []
    checked = 0
    for digest, _ in list(cache.iter_objects()):
        try:
            cache.check(digest, digest)
        except MissingObject:  # deleted meanwhile (a concurrent gc): not damaged
            continue
        except (CorruptObject, OSError):
            corrupt.append(digest)
            if repair:
                with contextlib.suppress(FileNotFoundError):
                    cache.quarantine(digest)
        checked += 1
    missing: dict[str, list[Use]] = {}
    for use in uses(store):
        if use.cached and (use.digest in missing or not cache.has(use.digest)):
            missing.setdefault(use.digest, []).append(use)
    return FsckReport(checked, corrupt, [Missing(digest, tuple(found)) for digest, found in missing.items()])

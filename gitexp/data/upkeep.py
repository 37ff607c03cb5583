"""Keeping the cache tidy and whole: `gc` deletes what no run refers to, `fsck` finds what is damaged or missing."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from gitexp import format as fmt
from gitexp.data.cache import Cache, CorruptObject, MissingObject
from gitexp.data.inventory import Use, mentioned_digests, run_uses, uses
from gitexp.data.session import cache_root
from gitexp.errors import GitexpError
from gitexp.store import Store


@dataclass(frozen=True)
class GcReport:
    deleted: int
    freed_bytes: int
    kept: int
    kept_recent: int
    problems: list[str] = field(default_factory=list)  # runs skipped (their content is kept)


def gc(store: Store, min_age_seconds: float, dry_run: bool = False) -> GcReport:
    """Delete cache objects no run refers to (nor a live process has pinned), older than min_age_seconds.

    Pins are read before refs: a run drops its pins only once its ref points at the objects.
    The objects found unused are deleted under the cache's exclusive lock, after reading
    pins and refs again: a process pins an object before it stores it or relies on it being
    there, so it either sees the object gone (and stores it again) or gc sees its pin.
    """
    cache = Cache(cache_root(store.git_common_dir()))
    seen: dict[str, set[str]] = {}  # digests per run commit: a commit's record never changes
    problems: list[str] = []
    live = cache.pinned(drop_dead=False) | _referenced(store, seen, problems)
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
        return GcReport(len(candidates), sum(size for _, size in candidates), kept, recent, problems)
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
    return GcReport(deleted, freed, kept, recent, problems)


def _referenced(store: Store, seen: dict[str, set[str]], problems: list[str] | None = None) -> set[str]:
    """Every digest the runs point to now; seen caches them per commit. A run whose record cannot be
    read is named in problems, and every digest its raw record files mention is kept."""
    found: set[str] = set()
    for name, commit in store.run_refs():
        if commit not in seen:
            try:
                seen[commit] = {u.digest for u in run_uses(store, name, commit, dirs=True) if u.digest}
            except GitexpError as exc:
                if problems is not None:
                    problems.append(f"skipped {fmt.REF_PREFIX}{name}: {exc.message}")
                seen[commit] = mentioned_digests(store, commit)
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
    problems: list[str] = field(default_factory=list)  # runs whose record could not be read (skipped)


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
    problems: list[str] = []
    for use in uses(store, problems=problems):
        if use.cached and (use.digest in missing or not cache.has(use.digest)):
            missing.setdefault(use.digest, []).append(use)
    return FsckReport(checked, corrupt, [Missing(digest, tuple(found)) for digest, found in missing.items()], problems)

"""Which runs point at which cache objects: their pointers, manifests and uses, and `which`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from gitexp import format as fmt
from gitexp.data.hashing import StatCache
from gitexp.data.pointers import DataPointer, InvalidPointer, Manifest, collect
from gitexp.data.session import cache_root, stat_db
from gitexp.errors import GitexpError
from gitexp.model import Progress
from gitexp.safeload import json_object
from gitexp.store import Store

SECTION_ROLES = {"inputs": "input", "outputs": "output", "large_files": "large file"}
_DIGEST = re.compile(rb"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


class Use(NamedTuple):
    """One place a run holds some content: a pointer, or a file inside a directory pointer."""

    run: str
    commit: str
    role: str  # input | output | large file
    path: str  # path in the workspace
    digest: str
    size: int
    cached: bool


def run_pointers(store: Store, commit: str) -> dict[str, list[DataPointer]]:
    """The pointers of a run by section (empty for a run without data); InvalidPointer or UnreadableRecord
    when its data.json is malformed, beyond the bounds or names an unsafe pointer."""
    raw = store.read_record(commit, fmt.DATA_FILE)
    return {} if raw is None else parse_pointers(raw, f"{fmt.RECORD_DIR}/{fmt.DATA_FILE} of run {commit[:12]}")


def parse_pointers(raw: bytes, what: str) -> dict[str, list[DataPointer]]:
    """The pointers of a data.json by section; InvalidPointer or UnreadableRecord naming what."""
    data = json_object(raw, what)
    out = {}
    for section in SECTION_ROLES:
        pointers = data.get(section, [])
        if not isinstance(pointers, list):
            raise InvalidPointer(f"the {section} of {what}", "they are not a list")
        out[section] = [DataPointer.from_dict(p) for p in pointers]
    return out


def manifest(store: Store, commit: str, pointer: DataPointer) -> Manifest:
    raw = store.read_record(commit, f"{fmt.MANIFEST_DIR}/{pointer.digest}.json")
    if raw is None:
        raise GitexpError(f"the manifest of {pointer.path} ({pointer.digest}) is missing from run {commit[:12]}")
    return Manifest.from_bytes(raw, f"the manifest of {pointer.path}")


def run_uses(store: Store, name: str, commit: str, dirs: bool = False) -> list[Use]:
    """Every piece of content one run refers to (GitexpError when its record cannot be read)."""
    out = []
    for section, pointers in run_pointers(store, commit).items():
        role = SECTION_ROLES[section]
        for p in pointers:
            shown = role + " (unchanged)" if p.fresh is False else role
            if p.kind == "file" or (dirs and p.kind == "dir"):
                out.append(Use(name, commit, shown, p.path, p.digest or "", p.size, p.cached))
            if p.kind == "dir":
                for e in manifest(store, commit, p).files():
                    size = e.get("size", 0)
                    out.append(Use(name, commit, shown, f"{p.path}/{e['path']}", e["digest"],
                                   size if isinstance(size, int) else 0, p.cached))
    return out


def uses(store: Store, dirs: bool = False, problems: list[str] | None = None, kept: set[str] | None = None) -> Iterator[Use]:
    """Every piece of content every readable run refers to: each file, and each directory too with dirs.

    A run whose record cannot be read is skipped, with a line in problems; kept (for gc) then gets
    every digest its raw record files mention, so that its content is never deleted.
    """
    for name, commit in store.run_refs():
        try:
            found = run_uses(store, name, commit, dirs)
        except GitexpError as exc:
            if problems is not None:
                problems.append(f"skipped {fmt.REF_PREFIX}{name}: {exc.message}")
            if kept is not None:
                kept |= mentioned_digests(store, commit)
            continue
        yield from found


def mentioned_digests(store: Store, commit: str) -> set[str]:
    """Every digest-like text in a run's data.json and manifests, however damaged they are."""
    found: set[str] = set()
    for filename in [fmt.DATA_FILE, *store.record_names(commit, fmt.MANIFEST_DIR)]:
        try:
            raw = store.read_record(commit, filename)
        except GitexpError:
            raw = None
        if raw is None:
            continue
        found |= {m.decode() for m in _DIGEST.findall(raw)}
        found.add(filename.rpartition("/")[2].removesuffix(".json"))
    return found


def which(store: Store, target: str, cwd: Path, problems: list[str] | None = None) -> tuple[str, list[Use]]:
    """(digest, uses) of the content of a file or directory, or of a digest (or its 8+ first hex digits)."""
    digest = _digest_of(store, target, cwd)
    return digest, [u for u in uses(store, dirs=True, problems=problems) if u.digest.startswith(digest)]


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

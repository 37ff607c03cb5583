"""The run refs as Store.run_refs last read them, kept while the ref files are unchanged.

Iterating 100,000 refs through libgit2 takes 0.2 s, and every push, pull and list starts with it. Git keeps refs
in files (`packed-refs`, and loose files under `refs/experiments/`) and replaces a ref file by renaming a new
one over it, so the stat data of those files and of their directories (a rename changes its directory)
tells whether any run ref may have changed. <git common dir>/gitexp/run-refs keeps what was read with that
stat data; while it matches, the refs are read from it (a few ms per 10,000) instead.

It is never trusted beyond that: a file that is damaged in any way, written for other stat data, or kept
for a repository whose refs are not in files (reftable) is ignored, and the refs are read through libgit2.
Stat data younger than RACY seconds when the refs are read is not kept: a file changed again within the
file system's timestamp granularity could look unchanged (git's "racy" rule for its index).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

MAGIC = "gitexp-run-refs 1"
RACY = 2.0  # seconds


def cache_path(common_dir: Path) -> Path:
    return common_dir / "gitexp" / "run-refs"


def fingerprint(common_dir: Path) -> tuple[str, int] | None:
    """(a digest of the stat data of every file and directory the run refs live in, the newest mtime_ns), or
    None when the refs are not in files."""
    if (common_dir / "reftable").exists():
        return None
    parts: list[str] = []
    newest = 0
    try:
        st = os.stat(common_dir / "packed-refs")
        parts.append(f"packed-refs {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}")
        newest = max(st.st_mtime_ns, st.st_ctime_ns)
    except FileNotFoundError:
        parts.append("packed-refs -")
    stack = [common_dir / "refs" / "experiments"]
    while stack:
        top = stack.pop()
        try:
            st = os.stat(top)
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except FileNotFoundError:
            parts.append(f"{top.name} -")
            continue
        parts.append(f"d {top} {st.st_ino} {st.st_mtime_ns} {st.st_ctime_ns}")
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
                continue
            try:
                est = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # removed since listed (git pack-refs at work): like no other state
                parts.append(f"f {entry.path} - {os.urandom(8).hex()}")
                continue
            parts.append(f"f {entry.path} {est.st_ino} {est.st_size} {est.st_mtime_ns} {est.st_ctime_ns}")
            newest = max(newest, est.st_mtime_ns, est.st_ctime_ns)
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest(), newest


def load(common_dir: Path, stamp: str) -> tuple[list[tuple[str, str]], list[str]] | None:
    """The (name, commit) pairs and problem lines kept for the fingerprint stamp, or None."""
    try:
        raw = cache_path(common_dir).read_bytes()
    except OSError:
        return None
    head, sep, body = raw.partition(b"\n")
    if not sep or head != f"{MAGIC} {stamp} {hashlib.sha256(body).hexdigest()}".encode():
        return None
    first, _, rest = body.partition(b"\n")
    try:
        problems = json.loads(first)
        words = rest.decode("ascii").split()  # run names hold no blank (names.readable), commit ids are hex
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(problems, list) or not all(isinstance(p, str) for p in problems) or len(words) % 2:
        return None
    return list(zip(words[::2], words[1::2])), problems


def save(common_dir: Path, stamp: str, newest_ns: int, pairs: list[tuple[str, str]], problems: list[str]) -> None:
    """Keep what was read (unless the stat data is too recent to be trusted; a failure to write is ignored)."""
    if time.time_ns() - newest_ns < RACY * 1e9:
        return
    data = (json.dumps(problems, ensure_ascii=True) + "\n" + "".join(f"{n} {c}\n" for n, c in pairs)).encode("ascii")
    from gitexp.workspace import atomic_write

    try:
        atomic_write(cache_path(common_dir), f"{MAGIC} {stamp} {hashlib.sha256(data).hexdigest()}\n".encode() + data, durable=False)
    except OSError:
        pass

"""What each run needs to travel, derived once per commit id and kept as rebuildable local data.

A push or pull must know, for every run, its status (runs in progress and `saved` ones are left out of
`push`), whether its code uses Git LFS, and which cache objects its record points to. A run commit never
changes, so this is derived once per commit id, from that commit alone (its message and its validated
data.json and manifests, exactly as inventory.run_uses reads them), and kept in
<git common dir>/gitexp/needs: a checksummed text file, written atomically. A file that is damaged in any
way is ignored and rebuilt; nothing in it comes from anywhere but this code's own reading of a commit.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from gitexp.errors import GitexpError
from gitexp.store import Store

MAGIC = "gitexp-needs 1"
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Need:
    """What one run commit needs to travel."""

    status: str  # the run's status trailer ("" when the message names none)
    lfs: bool  # the top .gitattributes of its code sets filter=lfs
    digests: frozenset[str] | None  # the cache objects its record points to (files, and the files of
    # directories); None when its record cannot be read (never kept: asked again, and reported, each time)


def needs_path(common_dir: Path) -> Path:
    return common_dir / "gitexp" / "needs"


class Needs:
    """The needs of a repository's runs, by commit id; load, ask, then save()."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = needs_path(store.git_common_dir())
        self._known = _load(self.path)
        self._used: set[str] = set()
        self._changed = False
        self._every: dict[str, Need] | None = None
        self._problems: list[str] = []

    def of(self, name: str, commit: str, problems: list[str] | None = None) -> Need:
        """The needs of run `name` at commit (digests None, and a line in problems, when its record cannot be read)."""
        self._used.add(commit)
        need = self._known.get(commit)
        if need is None:
            need = self._derive(name, commit, problems)
            if need.digests is not None and _storable(need.status):
                self._known[commit] = need
                self._changed = True
        return need

    def every(self, problems: list[str] | None = None) -> dict[str, Need]:
        """Run name -> needs, for every run ref (read once per Needs; problems get the unreadable records)."""
        if self._every is None:
            self._every = {name: self.of(name, commit, self._problems) for name, commit in self.store.run_refs()}
        if problems is not None:
            problems += [p for p in self._problems if p not in problems]
        return self._every

    def save(self) -> None:
        """Write the file if anything was learned (keeping only commits asked about when every run was)."""
        if not self._changed:
            return
        from gitexp.workspace import atomic_write

        lines = [f"{c} {int(n.lfs)} {n.status} {','.join(sorted(n.digests or ())) or '-'}\n" for c, n in sorted(self._known.items())]
        body = "".join(lines).encode()
        try:
            atomic_write(self.path, f"{MAGIC} {hashlib.sha256(body).hexdigest()}\n".encode() + body, durable=False)
        except OSError:
            pass  # only a cache: the next command derives the needs again
        self._changed = False

    def forget_unused(self) -> None:
        """Drop commits not asked about since loading (runs deleted or moved); call after every()."""
        stale = set(self._known) - self._used
        for commit in stale:
            del self._known[commit]
        self._changed = self._changed or bool(stale)

    def _derive(self, name: str, commit: str, problems: list[str] | None) -> Need:
        from gitexp import format as fmt
        from gitexp.data.inventory import run_uses

        try:
            status = self.store.summary(name, commit).status
        except GitexpError:
            status = ""
        digests: frozenset[str] | None
        try:
            digests = frozenset(u.digest for u in run_uses(self.store, name, commit) if u.cached)
        except GitexpError as exc:
            if problems is not None:
                problems.append(f"skipped {fmt.REF_PREFIX}{name}: {exc.message}")
            digests = None
        return Need(status, self.store.top_attributes_use_lfs(commit), digests)


def _storable(status: str) -> bool:
    return 0 < len(status) <= 64 and status.isascii() and status.isprintable() and " " not in status


def _load(path: Path) -> dict[str, Need]:
    """The needs the file holds; {} when it is missing or damaged in any way (it is then rebuilt)."""
    try:
        raw = path.read_bytes()
    except OSError:
        return {}
    head, sep, body = raw.partition(b"\n")
    try:
        magic, _, checksum = head.decode("ascii").rpartition(" ")
    except UnicodeDecodeError:
        return {}
    if not sep or magic != MAGIC or hashlib.sha256(body).hexdigest() != checksum:
        return {}
    out: dict[str, Need] = {}
    try:
        for line in body.decode("ascii").splitlines():
            commit, lfs, status, digests = line.split(" ")
            found = frozenset(digests.split(",")) if digests != "-" else frozenset()
            if (len(commit) not in (40, 64) or not _HEX.issuperset(commit) or lfs not in ("0", "1")
                    or not _storable(status) or not all(len(d) == 32 and _HEX.issuperset(d) for d in found)):
                return {}
            out[commit] = Need(status, lfs == "1", found)
    except (UnicodeDecodeError, ValueError):
        return {}
    return out


def remove(common_dir: Path) -> None:
    """Delete the file (tests and benchmarks that want a cold start)."""
    try:
        os.unlink(needs_path(common_dir))
    except FileNotFoundError:
        pass

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
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gitexp.errors import GitexpError
from gitexp.store import Store

MAGIC = "gitexp-needs 1"


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
        self._loaded: dict[str, str] | None = None
        self._used: set[str] = set()
        self._changed = False
        self._every: dict[str, Need] | None = None
        self._parsed: dict[str, Need] = {}
        self._problems: list[str] = []

    @property
    def _known(self) -> dict[str, str]:
        if self._loaded is None:  # read when first asked: a push whose totals are known never reads it
            self._loaded = _load(self.path)
        return self._loaded

    def totals(self, refs: list[tuple[str, str]] | None = None) -> Totals:
        """What every run needs, added up; kept in <common dir>/gitexp/needs-totals for the run refs it was
        made for (a push with nothing new at 100,000 runs then reads neither the runs nor the needs file).
        refs: the (name, commit) of every run ref, listed by the caller while the ref files change (a pull
        packing them): the totals are then kept for those refs alone, not for the files' stat data."""
        from gitexp.store import refcache

        path = self.path.with_name("needs-totals")
        stamp = refcache.fingerprint(self.store.git_common_dir()) if refs is None else None
        kept = _load_totals(path)
        if kept is not None and stamp is not None and kept[1] == stamp[0]:
            return kept[0]  # the ref files are as they were when these were added up: the refs are not even read
        pairs = sorted(self.store.run_refs() if refs is None else refs)
        key = hashlib.sha256("".join(f"{n} {c}\n" for n, c in pairs).encode()).hexdigest()
        if kept is not None and kept[2] == key:
            if stamp is not None:
                _save_totals(path, stamp, key, kept[0])  # the same refs in other files (packed since): noted
            return kept[0]
        problems: list[str] = []
        every = self.every(problems, pairs)  # the refs the key is made of, not read again
        special = {n: need.status for n, need in every.items() if need.status in SPECIAL}
        digests: dict[str, set[str]] = {status: set() for status in ("", *SPECIAL)}
        for name, need in every.items():
            digests[special.get(name, "")] |= need.digests or set()
        totals = Totals(special, frozenset(n for n, need in every.items() if need.lfs),
                        {s: frozenset(d) for s, d in digests.items()}, tuple(problems))
        if not problems:  # an unreadable record is read again, and warned about, on every push
            _save_totals(path, stamp, key, totals)
        return totals

    def of(self, name: str, commit: str, problems: list[str] | None = None) -> Need:
        """The needs of run `name` at commit (digests None, and a line in problems, when its record cannot be read)."""
        self._used.add(commit)
        line = self._known.get(commit)
        if line is not None:
            known = self._parsed.get(line)
            if known is None:  # many runs need the same (a sweep's inputs): parsed once
                known = _parse(line)
                if known is not None:
                    self._parsed[line] = known
            if known is not None:
                return known
        need = self._derive(name, commit, problems)
        if need.digests is not None and _storable(need.status):
            self._known[commit] = _line(need)
            self._changed = True
        return need

    def every(self, problems: list[str] | None = None, refs: Iterable[tuple[str, str]] | None = None) -> dict[str, Need]:
        """Run name -> needs, for every run ref (read once per Needs, unless given as refs: (name, commit)
        pairs); problems get the unreadable records."""
        if self._every is None:
            listed = self.store.run_refs() if refs is None else refs
            self._every = {name: self.of(name, commit, self._problems) for name, commit in listed}
        if problems is not None:
            problems += [p for p in self._problems if p not in problems]
        return self._every

    def save(self) -> None:
        """Write the file if anything was learned (keeping only commits asked about when every run was)."""
        if not self._changed or self._loaded is None:
            return
        from gitexp.workspace import atomic_write

        body = "".join(f"{c} {rest}\n" for c, rest in sorted(self._known.items())).encode()
        try:
            atomic_write(self.path, f"{MAGIC} {hashlib.sha256(body).hexdigest()}\n".encode() + body, durable=False)
        except OSError:
            pass  # only a cache: the next command derives the needs again
        self._changed = False

    def forget_unused(self) -> None:
        """Drop commits not asked about since loading (runs deleted or moved); only after every()."""
        if self._every is None or self._loaded is None:
            return
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


# The statuses a push of every run treats apart: queued runs go to the remote's queue, running and saved ones stay.
SPECIAL = ("queued", "running", "saved")
TOTALS_MAGIC = "gitexp-needs-totals 1"


@dataclass(frozen=True)
class Totals:
    """What every run needs, added up: what a push of all runs asks."""

    special: dict[str, str]  # run name -> status, for the runs whose status is one of SPECIAL
    lfs: frozenset[str]  # the runs whose code uses Git LFS
    digests: dict[str, frozenset[str]]  # "" -> the cache objects of every other run; status -> of those runs
    problems: tuple[str, ...]  # runs whose record could not be read (then never kept)


def _save_totals(path: Path, stamp: tuple[str, int] | None, key: str, totals: Totals) -> None:
    """Keep totals for the refs whose digest is key and, unless too recent to be trusted (refcache.RACY),
    for the stat data of the ref files (refcache.fingerprint)."""
    import json
    import time

    from gitexp.store.refcache import RACY
    from gitexp.workspace import atomic_write

    trusted = stamp[0] if stamp is not None and time.time_ns() - stamp[1] >= RACY * 1e9 else ""
    body = json.dumps({"refs": key, "stamp": trusted, "special": totals.special, "lfs": sorted(totals.lfs),
                       "digests": {s: sorted(d) for s, d in totals.digests.items()}}, sort_keys=True).encode()
    try:
        atomic_write(path, f"{TOTALS_MAGIC} {hashlib.sha256(body).hexdigest()}\n".encode() + body, durable=False)
    except OSError:
        pass  # only a cache


_DIGEST = re.compile(r"[0-9a-f]{32}")


def _load_totals(path: Path) -> tuple[Totals, str, str] | None:
    """(the totals kept, the fingerprint of the ref files they were added up for ("" when none was
    trusted), the digest of the run refs); None when missing or damaged in any way (every name and digest
    is checked: nothing in it is used unless this code could have written it)."""
    import json

    from gitexp.names import readable

    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head, sep, body = raw.partition(b"\n")
    if not sep or head != f"{TOTALS_MAGIC} {hashlib.sha256(body).hexdigest()}".encode():
        return None
    try:
        data = json.loads(body)
        key, stamp, special, lfs, digests = data["refs"], data["stamp"], data["special"], data["lfs"], data["digests"]
        if not (isinstance(key, str) and isinstance(stamp, str) and isinstance(special, dict) and isinstance(lfs, list) and isinstance(digests, dict)
                and set(digests) == {"", *SPECIAL} and set(special.values()) <= set(SPECIAL)
                and all(isinstance(n, str) and readable(n) for n in [*special, *lfs])
                and all(isinstance(d, list) and all(isinstance(x, str) and _DIGEST.fullmatch(x) for x in d) for d in digests.values())):
            return None
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return Totals(dict(special), frozenset(lfs), {s: frozenset(d) for s, d in digests.items()}, ()), stamp, key


def _line(need: Need) -> str:
    return f"{int(need.lfs)} {need.status} {','.join(sorted(need.digests or ())) or '-'}"


def _storable(status: str) -> bool:
    return 0 < len(status) <= 64 and status.isascii() and status.isprintable() and " " not in status


_REST = re.compile(r"[01] [!-~]{1,64} (?:-|[0-9a-f]{32}(?:,[0-9a-f]{32})*)")


def _load(path: Path) -> dict[str, str]:
    """Commit id -> the rest of its line, as the file holds them; {} when it is missing or damaged in any
    way (it is then rebuilt). One pass checks the whole file; a line is parsed only when its commit is asked."""
    try:
        raw = path.read_bytes()
    except OSError:
        return {}
    head, sep, body = raw.partition(b"\n")
    magic, _, checksum = head.rpartition(b" ")
    if not sep or magic != MAGIC.encode() or hashlib.sha256(body).hexdigest().encode() != checksum:
        return {}
    try:
        return dict(line.split(" ", 1) for line in body.decode("ascii").splitlines())  # type: ignore[misc]
    except (UnicodeDecodeError, ValueError):
        return {}


def _parse(rest: str) -> Need | None:
    """The needs a line holds after its commit id; None when it is malformed (then derived again).
    (A malformed commit id is harmless: no run's commit is looked up by it.)"""
    if _REST.fullmatch(rest) is None:
        return None
    lfs, status, digests = rest.split(" ")
    return Need(status, lfs == "1", frozenset(digests.split(",")) if digests != "-" else frozenset())


def remove(common_dir: Path) -> None:
    """Delete the files (tests and benchmarks that want a cold start)."""
    for path in (needs_path(common_dir), needs_path(common_dir).with_name("needs-totals")):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

"""Data remotes: where cache objects travel, with the cache's own layout (objects/<2 hex>/<30 hex>).

A plain directory (a shared drive, NFS) works out of the box; any other URL
(s3://, gs://, az://, memory://) goes through fsspec, installed with the
`cloud` extra. Everything that arrives, in either direction, is verified
against its digest before it is kept, and written under a temporary name
first (in tmp/<owner>/, the writing process's own directory), then renamed
into place as soon as it is complete: an interrupted transfer leaves nothing
half-written under a final name, keeps every object it completed, and a retry
sends only what is still missing. Each transfer first removes what processes
that are gone left in tmp/ (never a live process's upload).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from gitexp.data.cache import Cache, CorruptObject, TamperedObject, clear_dead, owned_tmp, owner_alive, process_tag
from gitexp.data.hashing import copy_hashing, is_digest
from gitexp.errors import GitexpError

WORKERS = 4


class RemoteError(GitexpError):
    pass


@dataclass
class TransferReport:
    sent: int = 0
    sent_bytes: int = 0
    skipped: int = 0
    rejected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # wanted but absent at the source
    repaired: list[str] = field(default_factory=list)  # damaged on the remote, sent again


class DataRemote:
    """The operations gitexp needs of a data remote; subclasses say how bytes move."""

    url: str

    def digests(self) -> set[str]:
        raise NotImplementedError

    def open_read(self, digest: str) -> BinaryIO:
        raise NotImplementedError

    def write(self, cache: Cache, digest: str, progress: Callable[[int], None] | None) -> None:
        """Copy the cache's object under a temporary name, verified on the way, then give it its name;
        TamperedObject when the cache's bytes do not hash to digest."""
        raise NotImplementedError

    def clear_tmp(self) -> None:
        """Remove the partial uploads of processes that are gone (best effort: the remote may be read-only)."""
        raise NotImplementedError

    def verify(self, digest: str) -> bool:
        """Whether the remote's copy of digest hashes to its name."""
        try:
            with self.open_read(digest) as f:
                return copy_hashing(f, None) == digest
        except OSError:
            return False

    def push(
        self, cache: Cache, digests: Iterable[str], progress: Callable[[int], None] | None = None, verify_remote: bool = False,
        start: Callable[[int], None] | None = None,
    ) -> TransferReport:
        """Send the objects the remote lacks (each verified on the way); start, if given, is told how many
        bytes that is before any is sent.

        With verify_remote, objects the remote already has are re-hashed there
        too, and damaged ones replaced by the local good copy.
        """
        report = TransferReport()
        self.clear_tmp()
        cache.clear_tmp()
        there = self.digests()
        if verify_remote:
            damaged = {d for d in set(digests) & there if cache.has(d) and not self.verify(d)}
            report.repaired = sorted(damaged)
            there -= damaged
        todo = []
        for d in sorted(set(digests)):
            if d in there:
                report.skipped += 1
            elif not cache.has(d):
                report.missing.append(d)
            else:
                todo.append(d)
        if start is not None:
            start(sum(cache.path(d).stat().st_size for d in todo))

        def send(d: str) -> tuple[str, int, bool]:
            try:
                self.write(cache, d, progress)
            except TamperedObject:
                return d, 0, False
            return d, cache.path(d).stat().st_size, True

        for d, size, ok in _parallel(send, todo):
            if ok:
                report.sent += 1
                report.sent_bytes += size
            else:
                report.rejected.append(d)
        return report

    def pull(self, cache: Cache, digests: Iterable[str], progress: Callable[[int], None] | None = None) -> TransferReport:
        """Fetch the objects the cache lacks; bytes that do not match their digest never enter the cache."""
        report = TransferReport()
        cache.clear_tmp()
        self.clear_tmp()
        there = self.digests()
        todo = []
        for d in sorted(set(digests)):
            if cache.has(d):
                report.skipped += 1
            elif d not in there:
                report.missing.append(d)
            else:
                todo.append(d)

        def fetch(d: str) -> tuple[str, int, bool]:
            try:
                with self.open_read(d) as f:
                    size = cache.store_stream(d, f, progress)
            except TamperedObject:
                return d, 0, False
            return d, size, True

        for d, size, ok in _parallel(fetch, todo):
            if ok:
                report.sent += 1
                report.sent_bytes += size
            else:
                report.rejected.append(d)
        return report


class DirectoryRemote(DataRemote):
    def __init__(self, path: Path) -> None:
        self.url = str(path)
        self.root = path
        self.objects = path / "objects"

    def digests(self) -> set[str]:
        found: set[str] = set()
        if not self.objects.is_dir():
            return found
        for sub in os.scandir(self.objects):
            if len(sub.name) == 2 and sub.is_dir():
                found.update(sub.name + e.name for e in os.scandir(sub.path) if is_digest(sub.name + e.name))
        return found

    def open_read(self, digest: str) -> BinaryIO:
        return open(self.objects / digest[:2] / digest[2:], "rb")

    def write(self, cache: Cache, digest: str, progress: Callable[[int], None] | None) -> None:
        """Copied by the kernel, as `cp` does (Cache.copy_out): an object whose stamp says it was hashed in
        full since it last changed is not hashed again; any other is hashed beside the copy."""
        final = self.objects / digest[:2] / digest[2:]
        with owned_tmp(self.root / "tmp") as tmp_dir:
            tmp = tmp_dir / f"{digest}.{os.urandom(3).hex()}"
            try:
                try:
                    size = cache.copy_out(digest, tmp, "the local cache")
                except CorruptObject:
                    raise TamperedObject(digest, "the local cache") from None
                if progress is not None:
                    progress(size)
                # Like git's loose objects, no fsync: the rename is atomic, and every reader re-hashes
                # what it gets (pull rejects a damaged object; push --verify-remote replaces it).
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)

    def clear_tmp(self) -> None:
        clear_dead(self.root / "tmp")


class FsspecRemote(DataRemote):
    def __init__(self, url: str) -> None:
        try:
            import fsspec  # type: ignore[import-untyped]
        except ImportError as exc:
            raise RemoteError(f"data remote {url} needs fsspec: pip install 'gitexp[cloud]' (and the store's own package, e.g. s3fs)") from exc
        try:
            self.fs, self.base = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:
            raise RemoteError(f"cannot open data remote {url}: {exc}") from exc
        self.url = url

    def _path(self, digest: str) -> str:
        return f"{self.base.rstrip('/')}/objects/{digest[:2]}/{digest[2:]}"

    def digests(self) -> set[str]:
        try:
            paths = self.fs.find(f"{self.base.rstrip('/')}/objects")
        except FileNotFoundError:
            return set()
        found = set()
        for p in paths:
            parts = str(p).rstrip("/").split("/")
            if len(parts) >= 2 and is_digest(parts[-2] + parts[-1]):
                found.add(parts[-2] + parts[-1])
        return found

    def open_read(self, digest: str) -> BinaryIO:
        return self.fs.open(self._path(digest), "rb")  # type: ignore[no-any-return]

    def write(self, cache: Cache, digest: str, progress: Callable[[int], None] | None) -> None:
        src = cache.path(digest)
        with open(src, "rb") as f:
            if copy_hashing(f, None, progress) != digest:
                raise TamperedObject(digest, "the local cache")
        tmp = f"{self.base.rstrip('/')}/tmp/{process_tag()}/{digest}.{os.urandom(3).hex()}"
        self.fs.put_file(str(src), tmp)
        self.fs.mv(tmp, self._path(digest))

    def clear_tmp(self) -> None:
        try:
            entries = self.fs.ls(f"{self.base.rstrip('/')}/tmp", detail=False)
        except (OSError, ValueError):  # none yet, or not allowed
            return
        for path in entries:
            if owner_alive(str(path).rstrip("/").rsplit("/", 1)[-1]) is False:
                try:
                    self.fs.rm(path, recursive=True)
                except (OSError, ValueError):
                    pass


def open_remote(url: str, repo_root: Path) -> DataRemote:
    """The data remote at url: a directory path (relative to the repository root), or an fsspec URL."""
    if "://" in url and not url.startswith("file://"):
        return FsspecRemote(url)
    path = Path(url.removeprefix("file://"))
    return DirectoryRemote(path if path.is_absolute() else repo_root / path)


def _parallel(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    if len(items) <= 1:
        return [fn(i) for i in items]
    from concurrent.futures import ThreadPoolExecutor  # (and logging with it: only when something moves)

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(fn, items))



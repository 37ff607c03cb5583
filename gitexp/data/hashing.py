"""Hashing files with xxh3-128, and the stat cache that spares re-hashing unchanged ones."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import xxhash

if TYPE_CHECKING:
    import sqlite3  # imported when the stat cache is first used: reading a run (get, list, show) never is

CHUNK = 4 << 20
ProgressFn = Callable[[int], None]  # called with the number of bytes just read
DIGEST_LENGTH = 32  # hex characters of an xxh3-128 digest
RACY_SECONDS = 0.01  # a file changed this close to (or after) the read may change again unseen


def is_digest(text: str) -> bool:
    return len(text) == DIGEST_LENGTH and all(c in "0123456789abcdef" for c in text)


def digest_bytes(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: Path, copy_to: BinaryIO | None = None, progress: ProgressFn | None = None) -> tuple[str, int]:
    """(xxh3-128 hex digest, size) of a file, reading it once; optionally copying it on the way."""
    h = xxhash.xxh3_128()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(max(1, min(CHUNK, os.fstat(f.fileno()).st_size)))
        view = memoryview(buf)
        while n := f.readinto(buf):
            chunk = view[:n]
            h.update(chunk)
            if copy_to is not None:
                copy_to.write(chunk)
            size += n
            if progress is not None:
                progress(n)
    return h.hexdigest(), size


class StatCache:
    """path + (size, mtime_ns, inode) -> digest, in sqlite; derived data, safe to delete.

    `hashed_bytes` and `hashed_files` count real reads, so callers (and tests)
    can tell a cache hit from a re-hash.
    """

    def __init__(self, db_path: Path) -> None:
        self._path = db_path
        self._db: sqlite3.Connection | None = None
        self._pending: list[tuple[bytes, int, int, int, str]] = []
        self._rows: dict[bytes, tuple[int, int, int, str]] = {}  # read ahead by prefetch
        self._prefetched: list[bytes] = []  # the paths prefetch read all of (and all below them)
        self.hashed_bytes = 0
        self.hashed_files = 0

    def _conn(self) -> sqlite3.Connection:
        import sqlite3

        if self._db is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError:
                self._path.unlink(missing_ok=True)  # corrupt: it is only a cache
                self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        import sqlite3

        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS stat (path BLOB PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
            " inode INTEGER, digest TEXT)"
        )
        return db

    def prefetch(self, top: Path) -> None:
        """Read what the cache knows of top and of every file below it in one query (a range of the key),
        so that the digests asked next of those files are not a query each."""
        key = _key(top)
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns, inode, digest FROM stat WHERE path = ? OR (path >= ? AND path < ?)",
            (key, key + b"/", key + b"0"),  # ('0' follows '/')
        )
        for path, size, mtime_ns, inode, digest in rows:
            self._rows[bytes(path)] = (size, mtime_ns, inode, digest)
        self._prefetched.append(key)

    def lookup(self, path: Path, st: os.stat_result) -> str | None:
        key = _key(path)
        if any(key == top or key.startswith(top + b"/") for top in self._prefetched):
            row = self._rows.get(key)
            return row[3] if row is not None and row[:3] == (st.st_size, st.st_mtime_ns, st.st_ino) else None
        found = self._conn().execute(
            "SELECT digest FROM stat WHERE path = ? AND size = ? AND mtime_ns = ? AND inode = ?",
            (key, st.st_size, st.st_mtime_ns, st.st_ino),
        ).fetchone()
        return found[0] if found else None

    def digest(self, path: Path, st: os.stat_result | None = None, copy_to: BinaryIO | None = None,
               progress: ProgressFn | None = None) -> str:
        """The file's digest, from the cache when its stat data is unchanged, else by reading it."""
        st = st or os.stat(path)
        known = self.lookup(path, st) if copy_to is None else None
        if known is not None:
            return known
        began = time.time_ns()
        digest, size = hash_file(path, copy_to, progress)
        self.hashed_bytes += size
        self.hashed_files += 1
        after = os.stat(path)
        unchanged = (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
        if unchanged and after.st_mtime_ns < began - RACY_SECONDS * 1e9:
            self._pending.append((_key(path), after.st_size, after.st_mtime_ns, after.st_ino, digest))
        return digest

    def remember(self, path: Path, digest: str) -> None:
        """Record the digest of a file gitexp has just written itself (its bytes are known: no read needed)."""
        st = os.stat(path)
        self._pending.append((_key(path), st.st_size, st.st_mtime_ns, st.st_ino, digest))

    def flush(self) -> None:
        if not self._pending:
            return
        import sqlite3

        db = self._conn()
        try:
            db.execute("BEGIN")
            db.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?)", self._pending)
            db.execute("COMMIT")
        except sqlite3.Error:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None


def copy_hashing(src: BinaryIO, out: BinaryIO | None, progress: Callable[[int], None] | None = None) -> str:
    """Read src to the end, copying to out when given; return the xxh3-128 of what was read."""
    h = xxhash.xxh3_128()
    while chunk := src.read(CHUNK):
        h.update(chunk)
        if out is not None:
            out.write(chunk)
        if progress is not None:
            progress(len(chunk))
    return h.hexdigest()


def _key(path: Path) -> bytes:
    """The stat cache's key: the path's bytes, as the file system has them (names need not be UTF-8)."""
    return os.fsencode(path)

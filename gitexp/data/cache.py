"""The local content-addressed object cache, inside the git dir (shared by worktrees).

Layout: <git common dir>/gitexp/cache/objects/<first 2 hex>/<other 30 hex>.
Objects are written to cache/tmp/ and renamed into place only when complete and
synced, so a crash never leaves a truncated object under its final name. Files
are cloned (reflink) where the filesystem can, otherwise copied; never
hard-linked, since a later in-place write by the user would corrupt the cache.
"""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import xxhash

from gitexp.data.hashing import CHUNK, ProgressFn, StatCache, copy_hashing, digest_bytes, hash_file, is_digest
from gitexp.errors import GitexpError

FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def _hash_mapped(src: BinaryIO, out: BinaryIO | None = None) -> str:
    """The xxh3-128 of src, read through a memory map; copied to out on the way, if given.

    The map saves the copy into a read buffer that hash_file makes (a third less memory traffic,
    measured 25% faster); it is safe here because cache objects are read-only and never truncated.
    """
    size = os.fstat(src.fileno()).st_size
    if size == 0:
        return digest_bytes(b"")
    h = xxhash.xxh3_128()
    with mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            for start in range(0, size, CHUNK):
                chunk = view[start : start + CHUNK]
                h.update(chunk)
                while out is not None and chunk:
                    chunk = chunk[out.write(chunk) :]
        finally:
            del chunk
            view.release()
    return h.hexdigest()


class CorruptObject(GitexpError):
    def __init__(self, digest: str, path: Path) -> None:
        super().__init__(
            f"cache object {digest} is corrupted ({path} does not hash to its name); it was not used "
            "(run 'gitexp fsck --repair' to set damaged objects aside, then 'gitexp pull' or re-run to get them back)"
        )
        self.digest = digest


class TamperedObject(GitexpError):
    def __init__(self, digest: str, where: str) -> None:
        super().__init__(f"object {digest} from {where} does not match its digest; it was rejected (the remote copy is damaged or was altered)")
        self.digest = digest


class MissingObject(GitexpError):
    def __init__(self, digest: str, what: str) -> None:
        super().__init__(f"{what} ({digest}) is not in the local cache (fetch it with 'gitexp pull', or re-run)")
        self.digest = digest


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self._tmp = root / "tmp"
        self._reflink: bool | None = None
        self.stored_bytes = 0
        self.stored_files = 0

    def path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def store_file(
        self, src: Path, stats: StatCache, progress: ProgressFn | None = None, verify_existing: bool = False
    ) -> str:
        """Put src's bytes in the cache (unless already there); return its digest.

        An existing object is trusted, except with verify_existing, or when src
        was just read anyway: then a damaged object is replaced by src's bytes.
        """
        st = os.stat(src)
        known = stats.lookup(src, st)
        if known is not None and self.has(known) and (not verify_existing or self.verify(known)):
            return known
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="obj-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if self._try_reflink(src, out.fileno()):
                    digest = stats.digest(src, st, progress=progress)
                else:
                    digest = stats.digest(src, st, copy_to=out, progress=progress)
                if self.has(digest) and self.verify(digest):
                    return digest
                out.flush()
                os.fsync(out.fileno())
            final = self.path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)  # new, or a repair of a damaged object with the same name
            self.stored_bytes += st.st_size
            self.stored_files += 1
            return digest
        finally:
            tmp.unlink(missing_ok=True)

    def quarantine(self, digest: str) -> Path:
        """Move a damaged object out of the way (kept in cache/corrupt/ for inspection); it is then missing."""
        dest = self.root / "corrupt" / digest
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path(digest), dest)
        return dest

    def store_stream(self, digest: str, src: BinaryIO, progress: ProgressFn | None = None) -> int:
        """Put the bytes read from src in the cache as digest, only if they hash to it; return the size.

        Bytes that do not match never reach their final name (TamperedObject is raised).
        """
        self._tmp.mkdir(parents=True, exist_ok=True)
        tmp = self._tmp / f"in-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            with open(tmp, "wb") as out:
                got = copy_hashing(src, out, progress)
                out.flush()
                os.fsync(out.fileno())
            if got != digest:
                raise TamperedObject(digest, "the data remote")
            final = self.path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            return final.stat().st_size
        finally:
            tmp.unlink(missing_ok=True)

    def _try_reflink(self, src: Path, dst_fd: int) -> bool:
        with open(src, "rb") as f:
            return self._try_reflink_fd(f.fileno(), dst_fd)

    def _try_reflink_fd(self, src_fd: int, dst_fd: int) -> bool:
        """Clone src into dst copy-on-write (FICLONE); False where the filesystem cannot."""
        if self._reflink is False:
            return False
        try:
            import fcntl

            fcntl.ioctl(dst_fd, FICLONE, src_fd)
        except (OSError, ImportError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (
                errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS, errno.EBADF, errno.EPERM,
            ):
                raise
            self._reflink = False
            return False
        self._reflink = True
        return True

    def verify(self, digest: str) -> bool:
        """True if the object's bytes hash to its name."""
        try:
            self.check(digest, digest)
        except (MissingObject, CorruptObject, OSError):
            return False
        return True

    def check(self, digest: str, what: str) -> None:
        """Raise MissingObject or CorruptObject unless the object is here and hashes to its name."""
        src = self.path(digest)
        try:
            with open(src, "rb") as f:
                got = _hash_mapped(f)
        except FileNotFoundError:
            raise MissingObject(digest, what) from None
        if got != digest:
            raise CorruptObject(digest, src)

    def copy_out(self, digest: str, dest: Path, what: str) -> None:
        """Copy an object to dest (a new file), then verify what was written; never use a corrupt object.

        The copy is a reflink where the filesystem can (then dest is read to hash
        it), else the bytes are hashed as they are copied: one pass, and what is
        written is exactly what was hashed.
        """
        src = self.path(digest)
        if not src.is_file():
            raise MissingObject(digest, what)
        with open(src, "rb") as f, open(dest, "wb", buffering=0) as out:
            reflinked = self._try_reflink_fd(f.fileno(), out.fileno())
            got = hash_file(dest)[0] if reflinked else _hash_mapped(f, out)
        if got != digest:
            dest.unlink(missing_ok=True)
            raise CorruptObject(digest, src)

    def iter_objects(self) -> Iterator[tuple[str, Path]]:
        if not self.objects.is_dir():
            return
        for sub in sorted(self.objects.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for obj in sorted(sub.iterdir()):
                digest = sub.name + obj.name
                if is_digest(digest):
                    yield digest, obj

    def delete(self, digest: str) -> None:
        path = self.path(digest)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass

    def clear_tmp(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

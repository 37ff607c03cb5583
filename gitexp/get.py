"""`gitexp get RUN PATH`: one file or directory of a run, written elsewhere, the workspace untouched.

Code files come from the run's tree (the blob's bytes, as `git show RUN:PATH`
gives them); inputs, outputs, large files and artifacts from their data
pointers: out of the cache, or first fetched into it from a data remote, and
verified: hashed again as they are copied, unless the cache stamped the object
as hashed in full and its file has not changed since (gitexp.data.cache). Everything is checked to be at hand before
anything is written; the result is written under a temporary name next to the
destination and renamed into place at the end, so a failure leaves nothing.
Works in a bare repository (nothing of a work tree is read or written).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from gitexp.data.cache import Cache, CorruptObject, MissingObject, stat_key
from gitexp.data.hashing import digest_bytes
from gitexp.data.pointers import safe_relative
from gitexp.data.session import cache_root
from gitexp.errors import GitexpError
from gitexp.model import RunSummary
from gitexp.restore import Entry, target
from gitexp.store import Store


class NotInRun(GitexpError):
    def __init__(self, run: str, path: str) -> None:
        super().__init__(f"run {run!r} has no file or directory {path!r} (see 'gitexp show {run}' and 'git ls-tree -r')")


@dataclass(frozen=True)
class Got:
    """What `get` wrote: the destination ('-' for stdout), how many files, how many bytes."""

    dest: str
    files: int
    size: int


def check_path(path: str) -> str:
    """The run-relative path as given, normalized ('a/b/'), or GitexpError when it could leave the run."""
    clean = path.strip()
    while clean.startswith("./"):
        clean = clean[2:]
    clean = clean.rstrip("/")
    if not clean or clean == "." or not safe_relative(clean) or ".git" in PurePosixPath(clean).parts:
        raise GitexpError(f"invalid path {path!r}: give a path inside the run, relative, without '..' (such as model/best.pt)")
    return clean


def entries_under(store: Store, run: RunSummary, path: str) -> tuple[bool, list[Entry]]:
    """(whether path is a single file, the run's entries at or under path)."""
    entries = target(store, run).entries
    if path in entries:
        return True, [entries[path]]
    found = [e for p, e in sorted(entries.items()) if p.startswith(path + "/")]
    if not found:
        raise NotInRun(run.name, path)
    return False, found


def get(
    store: Store, run: RunSummary, path: str, dest: Path | None, force: bool, stdout: BinaryIO | None = None, into: bool = True
) -> Got:
    """Write the run's file or directory at path to dest (dest None: to stdout, one file only).

    With into, a dest that is an existing directory receives the file or directory under its own name (as `cp`).
    """
    path = check_path(path)
    single, entries = entries_under(store, run, path)
    cache = Cache(cache_root(store.git_common_dir()))
    _fetch_missing(store, run, cache, entries)
    if dest is None:
        if not single or entries[0].kind == "link":
            raise GitexpError(f"{path!r} of run {run.name!r} is a {'directory' if not single else 'symlink'}: "
                              "'-o -' streams one file; give a destination instead")
        assert stdout is not None
        return Got("-", 1, _stream(store, cache, entries[0], stdout))
    if into and dest.is_dir() and not dest.is_symlink():
        dest = dest / PurePosixPath(path).name
    if os.path.lexists(dest) and not force:
        raise GitexpError(f"{dest} already exists (use --force to replace it, or -o to choose another destination)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.gitexp-get-"))
    try:
        size = 0
        for entry in entries:
            rel = "" if single else entry.path[len(path) + 1 :]
            out = tmp / "x" / rel if rel else tmp / "x"
            out.parent.mkdir(parents=True, exist_ok=True)
            size += _write(store, cache, entry, out)
        _replace(tmp / "x", dest, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Got(str(dest), len(entries), size)


def _one_file(store: Store, run: RunSummary, path: str) -> tuple[Entry, Cache]:
    """The entry of the run's one file at path (not a directory or link), its data fetched into the cache if missing."""
    path = check_path(path)
    single, entries = entries_under(store, run, path)
    if not single or entries[0].kind == "link":
        raise GitexpError(f"{path!r} of run {run.name!r} is a {'directory' if not single else 'symlink'}: "
                          "read one file (a directory: checkout(into=...), or gitexp get)")
    cache = Cache(cache_root(store.git_common_dir()))
    _fetch_missing(store, run, cache, entries)
    return entries[0], cache


def read(store: Store, run: RunSummary, path: str) -> bytes:
    """The bytes of one file of the run: code from its tree, data from the cache or first fetched from a
    data remote, checked against its digest (CorruptObject if it does not match)."""
    entry, cache = _one_file(store, run, path)
    if entry.kind == "blob":
        return store.blob(entry.source)
    try:
        data = cache.path(entry.source).read_bytes()
    except FileNotFoundError:
        raise MissingObject(entry.source, entry.path) from None
    if digest_bytes(data) != entry.source:  # read once, checked in memory: what is returned is what was hashed
        raise CorruptObject(entry.source, cache.path(entry.source))
    return data


def source(store: Store, run: RunSummary, path: str) -> bytes | Path:
    """One file of the run to stream (as `gitexp get -o -` does): a code file's bytes, or the path of the data
    object in the cache, verified against its digest first (a stream cannot be taken back); nothing is
    read into memory whole."""
    entry, cache = _one_file(store, run, path)
    if entry.kind == "blob":
        return store.blob(entry.source)
    cache.check(entry.source, entry.path)
    return cache.path(entry.source)


def _replace(src: Path, dest: Path, force: bool) -> None:
    if force and os.path.lexists(dest) and (dest.is_dir() and not dest.is_symlink()) != (src.is_dir() and not src.is_symlink()):
        _remove(dest)  # a file replaced by a directory, or the other way round
    if force and dest.is_dir() and not dest.is_symlink():
        old = dest.with_name(f".{dest.name}.gitexp-old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _write(store: Store, cache: Cache, entry: Entry, out: Path) -> int:
    if entry.kind == "link":
        os.symlink(entry.source, out)
        return 0
    if entry.kind == "blob":
        data = store.blob(entry.source)
        out.write_bytes(data)
        size = len(data)
    else:
        size = cache.copy_out(entry.source, out, entry.path)
    os.chmod(out, 0o755 if entry.executable else 0o644)
    return size


def _stream(store: Store, cache: Cache, entry: Entry, stdout: BinaryIO) -> int:
    if entry.kind == "blob":
        data = store.blob(entry.source)
        stdout.write(data)
        return len(data)
    src = cache.path(entry.source)
    try:
        f = open(src, "rb")  # noqa: SIM115
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MissingObject(entry.source, entry.path) from None
    with f:
        # verified before the first byte goes out (a stream cannot be taken back): stamped, or hashed now
        if not cache.stamped(entry.source, os.fstat(f.fileno())) and not cache.hashes_to(f, entry.source):
            raise CorruptObject(entry.source, src)
        shutil.copyfileobj(f, stdout, 1 << 20)
        return f.tell()


def _fetch_missing(store: Store, run: RunSummary, cache: Cache, entries: list[Entry]) -> None:
    """Bring the data objects the cache lacks from the data remote(s), verified; name what none has."""
    missing = {e.source: e.path for e in entries if e.kind == "object" and not cache.has(e.source)}
    for entry in entries:
        if entry.kind == "blob" and not store.has_object(entry.source):
            raise GitexpError(f"git object {entry.source} of {entry.path} is missing from this repository (run 'git fsck'); nothing was written")
    if not missing:
        return
    from gitexp.data.remote import open_remote

    for url in _remote_urls(store, run):
        remote = open_remote(url, store.root)
        remote.pull(cache, list(missing))
        for digest in [d for d in missing if cache.has(d)]:
            del missing[digest]
        if not missing:
            return
    digest, where = next(iter(missing.items()))
    more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
    raise GitexpError(
        f"{where} of run {run.name!r} ({digest}) is neither in the local cache nor on a data remote{more}; nothing was written"
    )


def _remote_urls(store: Store, run: RunSummary) -> list[str]:
    """The data remotes to try: this clone's and the workspace's .gitexp.yaml ones, else those of the run's own .gitexp.yaml."""
    from gitexp import config as config_mod

    urls = dict(store.local_data_remotes())
    if not store.bare:
        urls = {**dict(config_mod.load(store.root).remotes), **urls}
    else:
        urls = {**_run_yaml_remotes(store, run), **urls}
    return list(dict.fromkeys(urls.values()))


def _run_yaml_remotes(store: Store, run: RunSummary) -> dict[str, str]:
    from gitexp import config as config_mod
    from gitexp.format import CONFIG_FILE

    for path, _, oid in store.code_entries(run.commit):
        if path == CONFIG_FILE:
            with tempfile.TemporaryDirectory() as tmp:
                Path(tmp, CONFIG_FILE).write_bytes(store.blob(oid))
                return dict(config_mod.load(Path(tmp)).remotes)
    return {}

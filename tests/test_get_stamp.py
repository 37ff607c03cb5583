"""Verified stamps: `gitexp get` of a cache object hashed in full since it last changed copies it without hashing
it again; anything else (no stamp, a changed object, a malformed or hostile stamp) is hashed, and fsck always hashes."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GITEXP, Workspace, git, gitexp

SIZE = 256 * 1024


@pytest.fixture
def stored(ws: Workspace) -> tuple[Workspace, str]:
    """A run whose output model.bin (SIZE bytes) is in the cache; its digest."""
    ws.write(".gitexp.yaml", "outputs: [model.bin]\n")
    ws.write(".gitignore", "model.bin\n")
    ws.write("train.py", f"open('model.bin', 'wb').write(bytes(range(256)) * {SIZE // 256})\n")
    ws.commit_all("base")
    ws.run("-n", "r1", "--", sys.executable, "train.py")
    digest = ws.gitexp("which", "model.bin", "--json").json()["digest"]  # type: ignore[index]
    return ws, digest


def cache_object(ws: Workspace, digest: str) -> Path:
    return ws.root / ".git/gitexp/cache/objects" / digest[:2] / digest[2:]


def stamp_file(ws: Workspace, digest: str) -> Path:
    return ws.root / ".git/gitexp/cache/verified" / digest[:2] / digest[2:]


def stamp_text(obj: Path) -> str:
    st = os.stat(obj)
    return f"gitexp-verified 1 {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}\n"


def tamper(obj: Path, keep_mtime: bool = True) -> bytes:
    """Overwrite the object in place with other bytes of the same size (mtime set back): what bit-flipping tools,
    or a user's editor, could do. Returns the new bytes."""
    st = os.stat(obj)
    bad = b"\xff" * st.st_size
    obj.chmod(0o644)
    with open(obj, "r+b") as f:
        f.write(bad)
    obj.chmod(0o444)
    if keep_mtime:
        os.utime(obj, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bad


def stream(ws: Workspace) -> subprocess.CompletedProcess[bytes]:
    """`gitexp get r1 model.bin -o -`, its output as bytes."""
    return subprocess.run([*GITEXP, "get", "r1", "model.bin", "-o", "-"], cwd=ws.root, capture_output=True, timeout=60, check=False)


def clones(directory: Path) -> bool:
    """Whether the file system under directory makes copy-on-write clones (FICLONE): the cache then clones outputs."""
    a, b = directory / "clone-a", directory / "clone-b"
    a.write_bytes(b"x" * 4096)
    with open(a, "rb") as src, open(b, "wb") as dst:
        try:
            fcntl.ioctl(dst.fileno(), 0x40049409, src.fileno())
        except OSError:
            return False
    return True


def got_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_get_hashes_an_object_once_then_copies_it_on_the_strength_of_its_stamp(stored: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, digest = stored
    obj = cache_object(ws, digest)
    first = ws.gitexp("get", "r1", "model.bin", "-o", str(tmp_path / "a.bin"))
    assert first.code == 0, first.err
    assert (tmp_path / "a.bin").read_bytes() == obj.read_bytes()
    assert stamp_file(ws, digest).read_text() == stamp_text(obj), "the stamp records the object's stat data"
    # Proof that a stamped object is not hashed again: change its bytes and forge its stamp to the new stat
    # data (only someone who can write .git can): the copy is then made without noticing.
    bad = tamper(obj)
    stamp_file(ws, digest).write_text(stamp_text(obj))
    trusted = ws.gitexp("get", "r1", "model.bin", "-o", str(tmp_path / "b.bin"))
    assert trusted.code == 0, trusted.err
    assert (tmp_path / "b.bin").read_bytes() == bad
    streamed = stream(ws)
    assert streamed.returncode == 0 and streamed.stdout == bad


def test_an_object_changed_after_its_stamp_is_hashed_refused_and_unstamped(stored: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, digest = stored
    obj = cache_object(ws, digest)
    assert ws.gitexp("get", "r1", "model.bin", "-o", str(tmp_path / "a.bin")).code == 0
    assert stamp_file(ws, digest).is_file()
    tamper(obj)  # same size, mtime set back with utime: only the ctime tells, and it cannot be set back
    out = tmp_path / "out"
    out.mkdir()
    refused = ws.gitexp("get", "r1", "model.bin", "-o", str(out / "m.bin"))
    assert refused.code == 1 and "corrupted" in refused.err and digest in refused.err, refused.err
    assert "\n" not in refused.err.strip() and "Traceback" not in refused.err
    assert got_files(out) == [], "nothing written, no temporary left"
    assert not stamp_file(ws, digest).exists(), "a mismatch removes the stamp"
    streamed = stream(ws)
    assert streamed.returncode == 1 and b"corrupted" in streamed.stderr and streamed.stdout == b""


@pytest.mark.parametrize(
    "kind", ["garbage", "empty", "trailing junk", "no newline", "other version", "huge", "symlink to a forged stamp", "fifo", "directory"]
)
def test_a_malformed_or_hostile_stamp_is_no_stamp(stored: tuple[Workspace, str], tmp_path: Path, kind: str) -> None:
    ws, digest = stored
    obj = cache_object(ws, digest)
    tamper(obj)
    stamp = stamp_file(ws, digest)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    forged = stamp_text(obj).encode()
    content = {
        "garbage": b"\x00\xffnot a stamp",
        "empty": b"",
        "trailing junk": forged + b"x",
        "no newline": forged.rstrip(b"\n"),
        "other version": forged.replace(b"verified 1", b"verified 2"),
        "huge": forged + b" " * 10_000_000,
    }.get(kind, kind)
    if content == "symlink to a forged stamp":
        elsewhere = tmp_path / "forged"
        elsewhere.write_bytes(forged)  # trusted if followed: the link must not be
        stamp.symlink_to(elsewhere)
    elif content == "fifo":
        os.mkfifo(stamp)  # opening it must not wait for a writer
    elif content == "directory":
        stamp.mkdir()
    else:
        assert isinstance(content, bytes)
        stamp.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    refused = ws.gitexp("get", "r1", "model.bin", "-o", str(out / "m.bin"), timeout=60)
    assert refused.code == 1 and "corrupted" in refused.err, refused.err
    assert got_files(out) == []


def test_fsck_hashes_every_object_even_a_stamped_one(stored: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, digest = stored
    obj = cache_object(ws, digest)
    assert ws.gitexp("get", "r1", "model.bin", "-o", str(tmp_path / "a.bin")).code == 0
    clean = ws.gitexp("fsck")
    assert clean.code == 0 and "0 corrupt" in clean.out, clean.out + clean.err
    tamper(obj)
    stamp_file(ws, digest).write_text(stamp_text(obj))  # a stamp matching the damaged object
    found = ws.gitexp("fsck")
    assert found.code == 1 and f"corrupt: {digest}" in found.out, found.out + found.err
    repaired = ws.gitexp("fsck", "--repair")
    assert repaired.code == 1 and not obj.exists() and not stamp_file(ws, digest).exists()


def test_a_missing_stamp_costs_a_hash_and_the_verified_get_stamps_again(stored: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, digest = stored
    obj = cache_object(ws, digest)
    stamp_file(ws, digest).unlink(missing_ok=True)
    got = ws.gitexp("get", "r1", "model.bin", "-o", str(tmp_path / "a.bin"))
    assert got.code == 0, got.err
    assert (tmp_path / "a.bin").read_bytes() == obj.read_bytes()
    assert stamp_file(ws, digest).read_text() == stamp_text(obj)
    assert not list((ws.root / ".git/gitexp/cache/tmp").glob("*/stamp-*")), "no temporary stamp left"


def test_an_output_is_stamped_as_it_is_stored(stored: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, digest = stored
    if clones(tmp_path):
        pytest.skip("this file system clones outputs into the cache: their bytes are hashed apart from the clone, "
                    "so the first verified get stamps them")
    assert stamp_file(ws, digest).read_text() == stamp_text(cache_object(ws, digest))


def test_data_fetched_from_a_data_remote_is_hashed_as_it_arrives_and_stamped_then(ws: Workspace, tmp_path: Path) -> None:
    ws.write(".gitexp.yaml", f"outputs: [model.bin]\nremotes:\n  shared: {tmp_path / 'datastore'}\n")
    ws.write(".gitignore", "model.bin\n")
    ws.write("train.py", "open('model.bin', 'w').write('weights from afar')\n")
    ws.commit_all("base")
    assert ws.gitexp("remote", "trust", "shared").code == 0
    ws.run("-n", "r1", "--", sys.executable, "train.py")
    digest = ws.gitexp("which", "model.bin", "--json").json()["digest"]  # type: ignore[index]
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "origin", str(bare))
    ws.git("push", "-q", "origin", "main")
    assert ws.gitexp("push", "origin").code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "fetch", "-q", "origin", "refs/experiments/*:refs/experiments/*")
    [remote_obj] = [p for p in (tmp_path / "datastore").rglob(digest[2:]) if p.is_file()]
    remote_obj.chmod(0o644)
    good = remote_obj.read_bytes()
    remote_obj.write_bytes(b"weights from evil")  # same size: only the hash tells
    refused = gitexp(clone, "get", "r1", "model.bin", "-o", str(tmp_path / "bad.bin"))
    assert refused.code == 1 and digest in refused.err, refused.err  # the damaged copy was rejected, never cached
    assert not (tmp_path / "bad.bin").exists() and not (clone / ".git/gitexp/cache/verified").exists()
    remote_obj.write_bytes(good)
    got = gitexp(clone, "get", "r1", "model.bin", "-o", str(tmp_path / "m.bin"))
    assert got.code == 0, got.err
    assert (tmp_path / "m.bin").read_text() == "weights from afar"
    local = clone / ".git/gitexp/cache/objects" / digest[:2] / digest[2:]
    assert (clone / ".git/gitexp/cache/verified" / digest[:2] / digest[2:]).read_text() == stamp_text(local)


def test_a_large_object_is_copied_whole_into_a_preallocated_file_stamped_or_hashed(ws: Workspace, tmp_path: Path) -> None:
    from gitexp.data.cache import PREALLOCATE

    size = PREALLOCATE + 12345  # over the preallocation threshold, not a multiple of a block
    ws.write(".gitexp.yaml", "outputs: [model.bin]\n")
    ws.write(".gitignore", "model.bin\n")
    ws.write("train.py", f"import os\nopen('model.bin', 'wb').write(os.urandom({size}))\n")
    ws.commit_all("base")
    ws.run("-n", "big", "--", sys.executable, "train.py")
    want = (ws.root / "model.bin").read_bytes()
    digest = ws.gitexp("which", "model.bin", "--json").json()["digest"]  # type: ignore[index]
    for stamped in (True, False):
        if not stamped:
            stamp_file(ws, digest).unlink()  # the other path: hashed beside the copy
        out = tmp_path / f"got-{stamped}.bin"
        result = ws.gitexp("get", "big", "model.bin", "-o", str(out))
        assert result.code == 0, result.err
        assert out.stat().st_size == size and out.read_bytes() == want
    assert stamp_file(ws, digest).is_file(), "the hashed copy stamped the object again"
    tamper(cache_object(ws, digest))
    refused = ws.gitexp("get", "big", "model.bin", "-o", str(tmp_path / "bad.bin"))
    assert refused.code == 1 and "corrupted" in refused.err
    assert not (tmp_path / "bad.bin").exists() and not list(tmp_path.glob(".bad.bin*"))

"""Share: runs travel with plain git; data travels to a data remote, verified, only what is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import Workspace, git, gitexp


@pytest.fixture
def team(ws: Workspace, tmp_path: Path) -> tuple[Workspace, Path, Path]:
    """A repo with a bare 'origin', a data store directory, and two runs with data."""
    bare = tmp_path / "origin.git"
    store = tmp_path / "datastore"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "origin", str(bare))
    ws.write(".gitexp.yaml", f"data: [data]\noutputs: [model.bin]\nremotes:\n  shared: {store}\n")
    ws.write(".gitignore", "model.bin\n")
    ws.write("train.py", "import sys\nopen('model.bin', 'w').write('weights ' + sys.argv[1])\n")
    ws.commit_all("base")
    assert ws.gitexp("remote", "trust", "shared").code == 0  # written by hand: this clone consents once
    ws.git("push", "-q", "-u", "origin", "main")
    ws.write("data/train.csv", "a,b\n1,2\n")
    ws.run("-n", "r1", "--", sys.executable, "train.py", "1")
    ws.write("data/train.csv", "a,b\n3,4\n")
    ws.run("-n", "r2", "--", sys.executable, "train.py", "2")
    return ws, bare, store


def objects(root: Path) -> set[str]:
    return {p.parent.name + p.name for p in (root / "objects").glob("*/*")}


def test_init_makes_plain_git_push_carry_runs_and_keeps_branch_behaviour(team: tuple[Workspace, Path, Path]) -> None:
    ws, bare, _ = team
    ws.git("branch", "side")  # a local branch that a plain push must not publish, as before
    assert ws.gitexp("init").code == 0
    config = ws.git("config", "--get-all", "remote.origin.push")
    assert ws.gitexp("init").out.strip() == "already set up; nothing changed"
    assert ws.git("config", "--get-all", "remote.origin.push") == config, "running it twice changes nothing"
    ws.write("more.py", "x\n")
    ws.commit_all("more work")
    ws.git("push", "-q")
    remote_refs = git(bare, "for-each-ref", "--format=%(refname)").split()
    assert "refs/heads/main" in remote_refs and "refs/heads/side" not in remote_refs
    assert {"refs/experiments/r1", "refs/experiments/r2"} <= set(remote_refs)
    assert git(bare, "rev-parse", "refs/heads/main").strip() == ws.git("rev-parse", "main").strip()


def test_push_without_init_is_plain_git(team: tuple[Workspace, Path, Path]) -> None:
    ws, bare, _ = team
    ws.git("push", "-q", "origin", "refs/experiments/*:refs/experiments/*")
    assert "refs/experiments/r1" in git(bare, "for-each-ref", "--format=%(refname)")


def test_a_teammate_clones_fetches_and_lists_and_checks_out_with_data(team: tuple[Workspace, Path, Path], tmp_path: Path) -> None:
    ws, bare, store = team
    result = ws.gitexp("push")
    assert result.code == 0, result.err
    assert "pushed 2 ref(s)" in result.out and "3 object(s)" in result.out.replace("4 object(s)", "3 object(s)")
    clone = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    assert gitexp(clone, "init").code == 0
    git(clone, "fetch", "-q")
    listed = gitexp(clone, "list", "-c", "name", "-f", "csv").out.split()
    assert sorted(listed[1:]) == ["r1", "r2"]
    missing = gitexp(clone, "checkout", "r1")
    assert missing.code == 1 and "gitexp pull" in missing.err
    pulled = gitexp(clone, "pull", "origin", "r1")
    assert pulled.code == 0, pulled.err
    done = gitexp(clone, "checkout", "r1")
    assert done.code == 0, done.err
    assert (clone / "data/train.csv").read_text() == "a,b\n1,2\n"
    assert (clone / "model.bin").read_text() == "weights 1"


def test_only_missing_objects_are_sent_and_a_second_push_sends_nothing(team: tuple[Workspace, Path, Path]) -> None:
    ws, _, store = team
    first = ws.gitexp("push", "origin", "r1")
    assert first.code == 0 and "data" in first.out
    sent_first = objects(store)
    assert len(sent_first) == 2  # r1's input and output
    second = ws.gitexp("push")
    assert "2 object(s)" in second.out and "2 already there" in second.out
    again = ws.gitexp("push")
    assert "0 object(s), 0 B transferred; 4 already there" in again.out and "pushed 0 ref(s)" in again.out


def test_an_interrupted_transfer_is_completed_by_a_retry(team: tuple[Workspace, Path, Path]) -> None:
    ws, _, store = team
    assert ws.gitexp("push").code == 0
    victim = sorted((store / "objects").glob("*/*"))[0]
    digest = victim.parent.name + victim.name
    victim.chmod(0o644)
    victim.unlink()  # as if the transfer stopped before this object was renamed into place
    (store / "tmp").mkdir(exist_ok=True)
    (store / "tmp" / f"{digest}.999.abcdef").write_bytes(b"partial")
    retry = ws.gitexp("push")
    assert retry.code == 0 and "1 object(s)" in retry.out
    assert digest in objects(store)
    assert (store / "objects" / digest[:2] / digest[2:]).read_bytes() == (ws.root / ".git/gitexp/cache/objects" / digest[:2] / digest[2:]).read_bytes()


def test_a_tampered_object_is_rejected_at_download_and_never_cached(team: tuple[Workspace, Path, Path], tmp_path: Path) -> None:
    ws, bare, store = team
    assert ws.gitexp("push").code == 0
    import xxhash

    digest = xxhash.xxh3_128_hexdigest(b"weights 1")
    obj = store / "objects" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"weights 1 but altered")
    clone = tmp_path / "victim"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    result = gitexp(clone, "pull")
    assert result.code == 1 and f"object {digest} did not match its digest" in result.err
    assert not (clone / ".git/gitexp/cache/objects" / digest[:2] / digest[2:]).exists()
    assert not list((clone / ".git/gitexp/cache/tmp").glob("*"))
    checkout = gitexp(clone, "checkout", "r1")
    assert checkout.code == 1 and "model.bin" in checkout.err and not (clone / "model.bin").exists()


def test_a_fetch_never_overwrites_a_different_local_run_of_the_same_name(team: tuple[Workspace, Path, Path], tmp_path: Path) -> None:
    ws, bare, _ = team
    assert ws.gitexp("push").code == 0
    clone = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    (clone / "data").mkdir()
    (clone / "data/train.csv").write_text("theirs\n")
    assert gitexp(clone, "run", "-n", "r1", "--", "true").code == 0
    mine = git(clone, "rev-parse", "refs/experiments/r1").strip()
    assert gitexp(clone, "remote", "trust", "shared").code == 0
    result = gitexp(clone, "pull", "--no-data")
    assert result.code == 1 and "rejected refs/experiments/r1" in result.err and "nothing was overwritten" in result.err
    assert git(clone, "rev-parse", "refs/experiments/r1").strip() == mine
    assert git(clone, "rev-parse", "refs/experiments/r2").strip() == ws.runs()["r2"], "the other runs still arrive"
    refused = gitexp(clone, "push")
    assert refused.code == 1 and "rejected refs/experiments/r1" in refused.err


def test_remote_add_keeps_the_config_file_as_written(ws: Workspace, tmp_path: Path) -> None:
    ws.write(".gitexp.yaml", "# our team config\ndata: [data]   # the inputs\n")
    assert ws.gitexp("remote", "add", "nas", str(tmp_path / "nas")).code == 0
    text = (ws.root / ".gitexp.yaml").read_text()
    assert text.startswith("# our team config\ndata: [data]   # the inputs\nremotes:\n")
    assert ws.gitexp("remote", "add", "s3", "s3://bucket/prefix").code == 0
    assert ws.gitexp("remote", "list").out.split() == ["nas", str(tmp_path / "nas"), "s3", "s3://bucket/prefix"]
    again = ws.gitexp("remote", "add", "nas", "/elsewhere")
    assert again.code == 1 and "already exists" in again.err


def test_bad_sharing_requests_are_clear(team: tuple[Workspace, Path, Path]) -> None:
    ws, _, _ = team
    unknown = ws.gitexp("push", "--data-remote", "nope")
    assert unknown.code == 1 and "no data remote named 'nope'" in unknown.err
    no_git_remote = ws.gitexp("init", "upstream")
    assert no_git_remote.code == 1 and "no git remote named 'upstream'" in no_git_remote.err
    bad_remote = ws.gitexp("push", "nowhere")
    assert bad_remote.code == 1 and "git push failed" in bad_remote.err and "Traceback" not in bad_remote.err


def test_an_fsspec_data_remote_works_the_same(ws: Workspace) -> None:
    pytest.importorskip("fsspec")
    ws.write(".gitexp.yaml", "outputs: [out.txt]\nremotes:\n  mem: memory://gitexp-test-store\n")
    ws.run("-n", "m1", "--", "sh", "-c", "echo hello > out.txt")
    assert ws.gitexp("remote", "trust", "mem").code == 0
    # memory:// lives in one process: push and pull through the Python API in-process
    from gitexp import share
    from gitexp.data.cache import Cache
    from gitexp.data.session import cache_root
    from gitexp.model import Progress
    from gitexp.store import Store

    store = Store.discover(ws.root)
    bare = ws.root.parent / "bare.git"
    git(ws.root.parent, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "origin", str(bare))
    report = share.push(store, "origin", [], None, Progress())
    assert report.data is not None and report.data.sent == 1
    cache = Cache(cache_root(store.git_common_dir()))
    [(digest, path)] = list(cache.iter_objects())
    path.chmod(0o644)
    path.unlink()
    back = share.pull(store, "origin", [], None, Progress())
    assert back.data is not None and back.data.sent == 1 and cache.verify(digest)


def test_push_verify_remote_repairs_a_damaged_remote_object(team: tuple[Workspace, Path, Path]) -> None:
    ws, _, store = team
    assert ws.gitexp("push").code == 0
    import xxhash

    digest = xxhash.xxh3_128_hexdigest(b"weights 1")
    obj = store / "objects" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"EVIL")
    assert "0 object(s)" in ws.gitexp("push").out, "a plain push trusts what the remote has"
    repaired = ws.gitexp("push", "--verify-remote")
    assert repaired.code == 0 and f"object {digest} was damaged on the data remote" in repaired.err
    assert obj.read_bytes() == b"weights 1"


def test_a_clash_is_settled_by_renaming_the_local_run(team: tuple[Workspace, Path, Path], tmp_path: Path) -> None:
    ws, bare, _ = team
    assert ws.gitexp("push").code == 0
    clone = tmp_path / "mine"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    (clone / "data").mkdir()
    (clone / "data/train.csv").write_text("mine\n")
    assert gitexp(clone, "run", "-n", "r1", "--", "true").code == 0
    mine = git(clone, "rev-parse", "refs/experiments/r1").strip()
    assert gitexp(clone, "pull", "--no-data").code == 1
    renamed = gitexp(clone, "rename", "r1", "r1-mine")
    assert renamed.code == 0, renamed.err
    assert git(clone, "rev-parse", "refs/experiments/r1-mine").strip() == mine
    assert gitexp(clone, "pull", "--no-data").code == 0
    assert git(clone, "rev-parse", "refs/experiments/r1").strip() == ws.runs()["r1"]
    assert gitexp(clone, "run", "-n", "next", "--", "true").code == 0
    assert git(clone, "log", "-1", "--format=%(trailers:key=Gitexp-Parent-Run,valueonly)", "refs/experiments/next").strip() == mine
    taken = gitexp(clone, "rename", "r1-mine", "r2")
    assert taken.code == 1 and "already exists" in taken.err


def test_a_local_data_remote_survives_checking_out_an_older_config(ws: Workspace, tmp_path: Path) -> None:
    store = tmp_path / "local-store"
    ws.write(".gitexp.yaml", "outputs: [out.txt]\n")
    ws.commit_all("config without remotes")
    assert ws.gitexp("remote", "add", "--local", "mine", str(store)).code == 0
    assert ws.git("config", "gitexp-remote.mine.url").strip() == str(store)
    assert (ws.root / ".gitexp.yaml").read_text() == "outputs: [out.txt]\n", "the shared config is untouched"
    ws.run("-n", "o", "--", "sh", "-c", "echo hi > out.txt")
    bare = tmp_path / "o.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "origin", str(bare))
    pushed = ws.gitexp("push")
    assert pushed.code == 0 and "1 object(s)" in pushed.out
    assert ws.gitexp("remote", "list").out.split() == ["mine", str(store)]


@pytest.mark.parametrize("how", ["rewritten", "bit-rot-with-the-old-times"])
def test_a_damaged_cache_object_is_never_pushed(team: tuple[Workspace, Path, Path], how: str) -> None:
    """Objects are copied to a directory remote by the kernel, trusting a cache object's stamp (hashed in
    full since it last changed); a damaged object, even one whose size and times were put back, is hashed,
    refused and named, and the good ones still travel."""
    import os

    from gitexp.data.hashing import digest_bytes

    ws, _, store = team
    victim = ws.root / ".git/gitexp/cache/objects"
    digest = digest_bytes(b"weights 1")
    path = victim / digest[:2] / digest[2:]
    st = path.stat()
    os.chmod(path, 0o644)
    path.write_bytes(b"weights 9")  # same size
    if how == "bit-rot-with-the-old-times":
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    result = ws.gitexp("push", "origin")
    assert result.code == 1, result.out + result.err
    assert f"object {digest} did not match its digest and was rejected" in result.err
    assert digest not in objects(store)
    assert digest_bytes(b"weights 2") in objects(store)  # the good one travelled, intact
    for name in objects(store):
        assert digest_bytes((store / "objects" / name[:2] / name[2:]).read_bytes()) == name
    assert not list((store / "tmp").rglob("*.*")), "no partial copy left behind"

"""Data and outputs: content-addressed pointers, a local cache, the stat cache, which, rm and gc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workspace


def cache_objects(ws: Workspace) -> dict[str, Path]:
    root = ws.root / ".git" / "gitexp" / "cache" / "objects"
    return {p.parent.name + p.name: p for p in root.glob("*/*")} if root.exists() else {}


def data_record(ws: Workspace, run: str) -> dict:  # type: ignore[type-arg]
    return ws.record(run, "data.json")  # type: ignore[return-value]


def write_bytes(ws: Workspace, rel: str, data: bytes) -> None:
    path = ws.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def xxh(data: bytes) -> str:
    import xxhash

    return xxhash.xxh3_128_hexdigest(data)


@pytest.fixture
def dataset(ws: Workspace) -> Workspace:
    """A repo declaring data/ as input and model.bin, plots/ as outputs; train.py writes the outputs."""
    ws.write(".gitexp.yaml", "data: [data/]\noutputs: [model.bin, plots/]\n")
    ws.write(".gitignore", "model.bin\nplots/\n")
    ws.write(
        "train.py",
        "import os, sys\n"
        "os.makedirs('plots', exist_ok=True)\n"
        "open('model.bin', 'wb').write(('weights ' + sys.argv[1]).encode())\n"
        "open('plots/loss.txt', 'w').write('loss curve ' + sys.argv[1])\n",
    )
    ws.commit_all()
    # untracked and not ignored: only the data declaration keeps it out of git
    write_bytes(ws, "data/train.csv", b"a,b\n" + b"1,2\n" * 1000)
    write_bytes(ws, "data/sub/test.csv", b"a,b\n3,4\n")
    os.symlink("train.csv", ws.root / "data" / "latest.csv")
    return ws


def test_directory_inputs_become_a_manifest_pointer_and_are_cached(dataset: Workspace) -> None:
    ws = dataset
    ws.freeze("model.bin", "plots/loss.txt")
    ws.run("-n", "r1", "--", sys.executable, "train.py", "1")
    data = data_record(ws, "r1")
    [inp] = data["inputs"]
    assert inp["path"] == "data" and inp["kind"] == "dir" and inp["files"] == 2 and inp["size"] == 4004 + 8
    manifest = json.loads(ws.git("show", f"refs/experiments/r1:.gitexp/manifests/{inp['digest']}.json"))
    assert xxh(ws.git("show", f"refs/experiments/r1:.gitexp/manifests/{inp['digest']}.json").encode()) == inp["digest"]
    entries = {e["path"]: e for e in manifest["files"]}
    assert entries["train.csv"]["digest"] == xxh(b"a,b\n" + b"1,2\n" * 1000)
    assert entries["latest.csv"] == {"path": "latest.csv", "link": "train.csv"}, "links are recorded, not followed"
    objects = cache_objects(ws)
    for entry in (entries["train.csv"], entries["sub/test.csv"]):
        assert objects[entry["digest"]].read_bytes() == (ws.root / "data" / entry["path"]).read_bytes()
    assert not any(p.startswith("data/") for p in ws.tree("refs/experiments/r1")), "data is not put in git"


def test_outputs_are_hashed_after_the_run_and_change_between_runs(dataset: Workspace) -> None:
    ws = dataset
    ws.run("-n", "r1", "--", sys.executable, "train.py", "1")
    ws.run("-n", "r2", "--", sys.executable, "train.py", "2")
    out1 = {p["path"]: p for p in data_record(ws, "r1")["outputs"]}
    out2 = {p["path"]: p for p in data_record(ws, "r2")["outputs"]}
    assert out1["model.bin"]["digest"] == xxh(b"weights 1")
    assert out2["model.bin"]["digest"] == xxh(b"weights 2")
    assert out1["plots"]["kind"] == "dir" and out1["plots"]["digest"] != out2["plots"]["digest"]
    assert cache_objects(ws)[xxh(b"weights 1")].read_bytes() == b"weights 1"
    shown = ws.gitexp("show", "r2").out
    assert "outputs:" in shown and xxh(b"weights 2") in shown and "data" in shown


def test_an_unchanged_rerun_reads_no_input_byte_and_copies_nothing(dataset: Workspace) -> None:
    ws = dataset
    ws.run("-n", "r1", "-o", "model.bin", "--", "true")
    first = data_record(ws, "r1")["stats"]
    assert first["hashed_bytes"] >= 4012 and first["stored_files"] == 2
    ws.run("-n", "r2", "--", "true")
    second = data_record(ws, "r2")["stats"]
    assert second == {"hashed_bytes": 0, "hashed_files": 0, "stored_bytes": 0, "stored_files": 0}
    assert data_record(ws, "r2")["inputs"] == data_record(ws, "r1")["inputs"]


def test_a_changed_input_file_alone_is_rehashed(dataset: Workspace) -> None:
    ws = dataset
    ws.run("-n", "r1", "--", "true")
    write_bytes(ws, "data/sub/test.csv", b"a,b\n5,6\n7,8\n")
    ws.run("-n", "r2", "--", "true")
    stats = data_record(ws, "r2")["stats"]
    assert stats["hashed_files"] == 1 and stats["hashed_bytes"] == 12
    assert data_record(ws, "r1")["inputs"][0]["digest"] != data_record(ws, "r2")["inputs"][0]["digest"]


def test_identical_content_is_stored_once(dataset: Workspace) -> None:
    ws = dataset
    write_bytes(ws, "data/copy.csv", (ws.root / "data/train.csv").read_bytes())
    ws.run("-n", "r1", "--", sys.executable, "train.py", "same")
    ws.run("-n", "r2", "--", sys.executable, "train.py", "same")
    digests = [d for d in cache_objects(ws)]
    assert len(digests) == len(set(digests))
    assert set(digests) == {xxh(b"a,b\n" + b"1,2\n" * 1000), xxh(b"a,b\n3,4\n"), xxh(b"weights same"), xxh(b"loss curve same")}
    assert data_record(ws, "r2")["stats"]["stored_files"] == 0


def test_cached_objects_are_read_only_files_not_links(dataset: Workspace) -> None:
    ws = dataset
    ws.run("-n", "r1", "--", "true")
    for path in cache_objects(ws).values():
        st = path.lstat()
        assert st.st_nlink == 1 and not path.is_symlink()
        assert not st.st_mode & 0o222
    assert not list((ws.root / ".git/gitexp/cache/tmp").glob("*"))


def test_large_untracked_files_become_pointers_not_git_blobs(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "large_files: 2kB\n")
    write_bytes(ws, "checkpoint.pt", b"x" * 3000)
    write_bytes(ws, "small.txt", b"y" * 100)
    ws.freeze()
    result = ws.run("-n", "big", "--", "true")
    assert "checkpoint.pt is large and untracked" in result.err
    tree = ws.tree("refs/experiments/big")
    assert "checkpoint.pt" not in tree and "small.txt" in tree
    [large] = data_record(ws, "big")["large_files"]
    assert large["path"] == "checkpoint.pt" and large["digest"] == xxh(b"x" * 3000)
    assert cache_objects(ws)[large["digest"]].read_bytes() == b"x" * 3000


def test_the_large_file_rule_defaults_to_10_mb_and_can_be_turned_off(ws: Workspace) -> None:
    write_bytes(ws, "weights.bin", b"\0" * 10_000_001)
    ws.run("-n", "default", "--", "true")
    assert "weights.bin" not in ws.tree("refs/experiments/default")
    ws.write(".gitexp.yaml", "large_files: off\n")
    ws.run("-n", "off", "--", "true")
    assert ws.git("cat-file", "-s", "refs/experiments/off:weights.bin").strip() == "10000001"


def test_inputs_can_be_recorded_without_caching_them(dataset: Workspace) -> None:
    ws = dataset
    ws.write(".gitexp.yaml", "data: [data/]\ncache_inputs: false\n")
    ws.run("-n", "nocache", "--", "true")
    [inp] = data_record(ws, "nocache")["inputs"]
    assert inp["cached"] is False and inp["digest"]
    assert cache_objects(ws) == {}
    copy = ws.gitexp("checkout", "nocache", "--into", str(ws.root.parent / "copy"))
    assert copy.code == 1 and "cache_inputs: false" in copy.err and "gitexp pull" not in copy.err
    assert not (ws.root.parent / "copy").exists()


def test_data_and_outputs_given_as_flags_relative_to_the_current_directory(ws: Workspace) -> None:
    write_bytes(ws, "exp/inputs/x.npy", b"npy")
    from conftest import gitexp

    result = gitexp(ws.root / "exp", "run", "-n", "flags", "-d", "inputs", "-o", "out.txt", "--", "sh", "-c", "echo hi > out.txt")
    assert result.code == 0, result.err
    data = data_record(ws, "flags")
    assert [p["path"] for p in data["inputs"]] == ["exp/inputs"]
    assert data["outputs"][0]["path"] == "exp/out.txt" and data["outputs"][0]["digest"] == xxh(b"hi\n")


def test_a_missing_output_is_recorded_as_missing(dataset: Workspace) -> None:
    ws = dataset
    result = ws.run("-n", "noout", "--", "true")
    outputs = {p["path"]: p for p in data_record(ws, "noout")["outputs"]}
    assert outputs["model.bin"] == {"path": "model.bin", "kind": "missing"}
    assert "output model.bin was not produced" in result.err


@pytest.mark.parametrize(
    ("args", "config", "words"),
    [
        (["-d", "../outside"], "", ["outside the repository"]),
        (["-d", "/etc"], "", ["is absolute"]),
        (["-o", ".git/config"], "", ["inside .git"]),
        ([], "data: [../secrets]\n", ["inside the repository"]),
        ([], "data: [/etc/passwd]\n", ["inside the repository"]),
        (["-d", "nothere"], "", ["does not exist"]),
        ([], "large_files: huge\n", ["large_files"]),
    ],
)
def test_bad_data_paths_are_refused_before_the_command_starts(ws: Workspace, args: list[str], config: str, words: list[str]) -> None:
    if config:
        ws.write(".gitexp.yaml", config)
    ws.freeze()
    result = ws.gitexp("run", *args, "--", "touch", "ran")
    assert result.code == 1 and "Traceback" not in result.err, result.err
    for word in words:
        assert word in result.err
    assert not (ws.root / "ran").exists() and ws.runs() == {}


def test_which_finds_runs_by_file_directory_inner_file_and_digest(dataset: Workspace) -> None:
    ws = dataset
    ws.run("-n", "r1", "--", sys.executable, "train.py", "1")
    ws.run("-n", "r2", "--", sys.executable, "train.py", "2")
    by_model = ws.gitexp("which", "--json", "model.bin").json()
    assert [(u["run"], u["role"]) for u in by_model["uses"]] == [("r2", "output")]  # type: ignore[index]
    inner = ws.gitexp("which", "--json", "data/train.csv").json()
    assert sorted(u["run"] for u in inner["uses"]) == ["r1", "r2"]  # type: ignore[index]
    assert {u["path"] for u in inner["uses"]} == {"data/train.csv"}  # type: ignore[index]
    whole = ws.gitexp("which", "--json", "data").json()
    assert sorted(u["run"] for u in whole["uses"]) == ["r1", "r2"]  # type: ignore[index]
    by_digest = ws.gitexp("which", xxh(b"weights 1")).out
    assert "r1" in by_digest and "output" in by_digest and "r2" not in by_digest
    assert "r1" in ws.gitexp("which", xxh(b"weights 1")[:10]).out, "a digest prefix works too"
    none = ws.gitexp("which", "train.py")
    assert none.code == 0 and "no run used or produced" in none.out
    bad = ws.gitexp("which", "nope")
    assert bad.code == 1 and "neither an existing" in bad.err


def test_rm_then_gc_frees_only_unreferenced_objects(dataset: Workspace) -> None:
    ws = dataset
    ws.run("-n", "r1", "--", sys.executable, "train.py", "1")
    ws.run("-n", "r2", "--", sys.executable, "train.py", "2")
    refusal = ws.gitexp("rm", "r1")
    assert refusal.code == 1 and "-y" in refusal.err and "r1" in ws.runs()
    assert ws.gitexp("rm", "-y", "r1").code == 0
    assert "r1" not in ws.runs()
    kept = ws.gitexp("gc")
    assert "kept" in kept.out and xxh(b"weights 1") in cache_objects(ws), "young objects are kept by default"
    freed = ws.gitexp("gc", "--now")
    assert freed.code == 0 and "freed 2 object(s)" in freed.out
    objects = cache_objects(ws)
    assert xxh(b"weights 1") not in objects and xxh(b"loss curve 1") not in objects
    for still in (xxh(b"weights 2"), xxh(b"a,b\n3,4\n"), xxh(b"a,b\n" + b"1,2\n" * 1000)):
        assert still in objects, "objects a run points to are never deleted"
    assert ws.gitexp("fsck").code == 0


def test_gc_keeps_what_a_run_in_progress_has_pinned(dataset: Workspace) -> None:
    ws = dataset
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitexp", "run", "-n", "slow", "--", "sleep", "30"], cwd=ws.root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        pins = ws.root / ".git/gitexp/cache/pins"
        for _ in range(200):
            if pins.exists() and any(pins.iterdir()):
                break
            import time

            time.sleep(0.05)
        assert ws.gitexp("gc", "--now").out.startswith("freed 0 object(s)")
        assert xxh(b"a,b\n3,4\n") in cache_objects(ws)
    finally:
        proc.terminate()
        proc.wait()


def test_a_corrupted_cache_object_is_reported_by_name(dataset: Workspace) -> None:
    ws = dataset
    ws.run("-n", "r1", "--", sys.executable, "train.py", "1")
    victim = cache_objects(ws)[xxh(b"weights 1")]
    victim.chmod(0o644)
    victim.write_bytes(b"weights 1 but tampered")
    result = ws.gitexp("fsck")
    assert result.code == 1 and f"corrupt: {xxh(b'weights 1')}" in result.out
    victim.unlink()
    missing = ws.gitexp("fsck")
    assert missing.code == 1 and "missing:" in missing.out and "model.bin" in missing.out


def test_fsck_counts_and_lists_a_missing_object_once_naming_the_runs_that_need_it(dataset: Workspace) -> None:
    ws = dataset
    content = b"a,b\n3,4\n"  # that of data/sub/test.csv
    for i in range(2):
        write_bytes(ws, f"data/copy-{i}.csv", content)
    ws.run("-n", "r1", "--", sys.executable, "train.py", "1")
    ws.run("-n", "r2", "--", sys.executable, "train.py", "2")
    cache_objects(ws)[xxh(content)].unlink()
    result = ws.gitexp("fsck")
    assert result.code == 1
    [line] = [line for line in result.out.splitlines() if line.startswith("missing:")]
    assert line.startswith(f"missing: {xxh(content)} data/"), line
    assert line.endswith("; needed by 6 files in 2 run(s): r1, r2)"), line
    assert result.out.splitlines()[-1].endswith(": 0 corrupt, 1 missing")


def test_cache_reads_verify_the_digest(tmp_path: Path) -> None:
    from gitexp.data.cache import Cache, CorruptObject, MissingObject
    from gitexp.data.hashing import StatCache

    cache = Cache(tmp_path / "cache")
    src = tmp_path / "f.bin"
    src.write_bytes(b"payload")
    digest = cache.store_file(src, StatCache(tmp_path / "stat.db"))
    cache.copy_out(digest, tmp_path / "ok.bin", "f.bin")
    assert (tmp_path / "ok.bin").read_bytes() == b"payload"
    cache.path(digest).chmod(0o644)
    cache.path(digest).write_bytes(b"evil")
    with pytest.raises(CorruptObject):
        cache.copy_out(digest, tmp_path / "bad.bin", "f.bin")
    assert not (tmp_path / "bad.bin").exists(), "nothing restored from a corrupt object"
    with pytest.raises(MissingObject):
        cache.copy_out("0" * 32, tmp_path / "none.bin", "none")


@pytest.mark.parametrize(
    "pointer",
    [
        {"path": "../../etc/passwd", "kind": "file", "digest": "0" * 32, "size": 1, "files": 1},
        {"path": "/etc/passwd", "kind": "file", "digest": "0" * 32, "size": 1, "files": 1},
        {"path": "ok", "kind": "file", "digest": "xyz", "size": 1, "files": 1},
        {"path": "ok", "kind": "file", "digest": "0" * 32, "size": 1 << 60, "files": 1},
        {"path": "ok", "kind": "device"},
        "not an object",
    ],
)
def test_malformed_or_escaping_pointers_are_refused(pointer: object) -> None:
    from gitexp.data.pointers import DataPointer, InvalidPointer

    with pytest.raises(InvalidPointer):
        DataPointer.from_dict(pointer)


def test_stat_cache_ignores_files_changed_at_the_same_size(tmp_path: Path) -> None:
    from gitexp.data.hashing import StatCache

    f = tmp_path / "d.bin"
    f.write_bytes(b"aaaa")
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    stats = StatCache(tmp_path / "s.db")
    first = stats.digest(f)
    stats.flush()
    assert StatCache(tmp_path / "s.db").digest(f) == first
    f.write_bytes(b"bbbb")  # same size, new mtime
    again = StatCache(tmp_path / "s.db")
    assert again.digest(f) == xxh(b"bbbb") and again.hashed_files == 1


def test_stat_cache_prefetch_reads_a_directory_at_once_and_answers_as_lookups_do(tmp_path: Path) -> None:
    from gitexp.data.hashing import StatCache

    files = {"data/a.bin": b"a", "data/sub/b.bin": b"bb", "data0/c.bin": b"ccc", "data.bin": b"dddd"}
    for rel, content in files.items():  # data0/ and data.bin sort right after data/: outside the range
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(content)
        os.utime(tmp_path / rel, ns=(1_000_000_000, 1_000_000_000))
    first = StatCache(tmp_path / "s.db")
    for rel in files:
        first.digest(tmp_path / rel)
    first.close()
    (tmp_path / "data/sub/b.bin").write_bytes(b"xx")  # same size, new mtime: a miss, read again
    stats = StatCache(tmp_path / "s.db")
    stats.prefetch(tmp_path / "data")
    assert sorted(stats._rows) == sorted(os.fsencode(tmp_path / p) for p in ("data/a.bin", "data/sub/b.bin"))
    got = {rel: stats.digest(tmp_path / rel) for rel in files}
    assert got == {rel: xxh(b"xx" if rel == "data/sub/b.bin" else content) for rel, content in files.items()}
    assert stats.hashed_files == 1  # only the changed one was read; the others (inside and out) were known
    stats.close()


def test_a_single_file_input_is_a_file_pointer(ws: Workspace) -> None:
    write_bytes(ws, "corpus.txt", b"hello corpus\n")
    ws.freeze()
    ws.run("-n", "onefile", "-d", "corpus.txt", "--", "true")
    [inp] = data_record(ws, "onefile")["inputs"]
    assert inp == {
        "path": "corpus.txt", "kind": "file", "digest": xxh(b"hello corpus\n"), "size": 13, "files": 1,
        "cached": True, "executable": False,
    }
    assert "corpus.txt" not in ws.tree("refs/experiments/onefile"), "declared data stays out of git"


def test_no_progress_bar_when_output_is_not_a_terminal(dataset: Workspace) -> None:
    result = dataset.run("-n", "quiet", "--", "true")
    assert "[#" not in result.err and "%" not in result.err


def test_outputs_a_run_did_not_write_are_marked_unchanged(dataset: Workspace) -> None:
    ws = dataset
    ws.run("-n", "writer", "--", sys.executable, "train.py", "1")
    result = ws.run("-n", "idle", "--", "true")
    assert "output model.bin was not written by this run" in result.err
    outputs = {p["path"]: p for p in data_record(ws, "idle")["outputs"]}
    assert outputs["model.bin"]["fresh"] is False and outputs["model.bin"]["digest"] == xxh(b"weights 1")
    assert {p["path"]: p["fresh"] for p in data_record(ws, "writer")["outputs"]} == {"model.bin": True, "plots": True}
    uses = {(u["run"], u["role"]) for u in ws.gitexp("which", "--json", "model.bin").json()["uses"]}  # type: ignore[index]
    assert uses == {("writer", "output"), ("idle", "output (unchanged)")}


def test_file_names_that_are_not_utf8_are_recorded_and_restored(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "data: [data]\nlarge_files: 1kB\n")
    (ws.root / "data").mkdir()
    odd = os.fsdecode(b"data/f\xff.bin")
    (ws.root / odd).write_bytes(b"odd name\n")
    (ws.root / os.fsdecode(b"big\xfe.bin")).write_bytes(b"x" * 2000)
    ws.run("-n", "odd", "--", "true")
    [entry] = json.loads(ws.git("show", f"refs/experiments/odd:.gitexp/manifests/{data_record(ws, 'odd')['inputs'][0]['digest']}.json"))["files"]
    assert os.fsencode(entry["path"]) == b"f\xff.bin"
    (ws.root / odd).unlink()
    (ws.root / os.fsdecode(b"big\xfe.bin")).unlink()
    assert ws.gitexp("checkout", "odd").code == 0
    assert (ws.root / odd).read_bytes() == b"odd name\n"
    assert (ws.root / os.fsdecode(b"big\xfe.bin")).read_bytes() == b"x" * 2000


def test_a_metric_with_an_empty_name_is_skipped_and_list_still_works(ws: Workspace) -> None:
    result = ws.run("-n", "m", "--", "sh", "-c", "echo '{\"\": 1, \"ok\": 2}' > metrics.json")
    assert "has an empty part" in result.err
    assert ws.record("m", "metrics.json") == {"ok": 2}
    assert ws.gitexp("list").code == 0

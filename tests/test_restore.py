"""Restore: checkout (in place, --into), branch, reproduce; nothing of the user's is ever lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Workspace, git

TRAIN = (
    "import os, sys\n"
    "os.makedirs('out', exist_ok=True)\n"
    "open('out/model.bin', 'w').write('model from ' + open('version.txt').read())\n"
)


def tree_files(root: Path) -> dict[str, str]:
    """Every file under root (no .git) as 'mode:content' or 'link:target'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            else:
                out[rel] = f"{oct(path.stat().st_mode & 0o777)}:{path.read_bytes().hex()}"
    return out


@pytest.fixture
def project(ws: Workspace) -> Workspace:
    """Run A: version 1 code, params, a data dir with a link and an executable, an output; then run B changes all."""
    ws.write(".gitexp.yaml", "data: [data]\noutputs: [out]\n")
    ws.write(".gitignore", "out/\nsecret.env\n")
    ws.write("train.py", TRAIN)
    ws.write("params.yaml", "lr: 0.1\n")
    ws.write("run.sh", "#!/bin/sh\necho run\n", mode=0o755)
    ws.commit_all("base")
    ws.write("version.txt", "v1\n")
    ws.write("data/a.csv", "x,y\n1,2\n")
    ws.write("data/tool.sh", "#!/bin/sh\n", mode=0o755)
    os.symlink("a.csv", ws.root / "data" / "current.csv")
    os.symlink("train.py", ws.root / "entry.py")
    ws.run("-n", "A", "--", sys.executable, "train.py")
    ws.state_a = tree_files(ws.root)  # type: ignore[attr-defined]
    ws.write("version.txt", "v2\n")
    ws.write("extra_b.py", "only in B\n")
    ws.write("data/a.csv", "x,y\n3,4\n")
    ws.write("data/b.csv", "new file\n")
    (ws.root / "entry.py").unlink()
    ws.run("-n", "B", "-S", "lr=0.5", "--", sys.executable, "train.py")
    ws.write("secret.env", "TOKEN=keep-me\n")
    return ws


def test_checkout_restores_code_params_data_and_outputs_byte_for_byte(project: Workspace) -> None:
    ws = project
    result = ws.gitexp("checkout", "A")
    assert result.code == 0, result.err
    now = tree_files(ws.root)
    assert {k: v for k, v in now.items() if k != "secret.env"} == ws.state_a  # type: ignore[attr-defined]
    assert now["secret.env"].endswith(b"TOKEN=keep-me\n".hex()), "ignored files are never touched"
    assert now["data/current.csv"] == "link:a.csv" and now["entry.py"] == "link:train.py"
    assert now["data/tool.sh"].startswith("0o755") and now["run.sh"].startswith("0o755")
    assert "extra_b.py" not in now and "data/b.csv" not in now
    ws.run("-n", "C", "--", "true")
    assert ws.record("C", "run.json")["parent_run"]["name"] == "A", "the next run continues from the checked-out run"


def test_checkout_over_uncommitted_work_saves_it_first_and_gives_it_back(project: Workspace) -> None:
    ws = project
    ws.write("version.txt", "v3 work in progress\n")
    ws.write("notes.md", "my unsaved notes\n")
    ws.write("data/a.csv", "x,y\nhand edited\n")
    ws.git("add", "notes.md")
    before = tree_files(ws.root)
    staged = ws.git("diff", "--cached", "--name-only").split()
    result = ws.gitexp("checkout", "A")
    assert result.code == 0, result.err
    saved = next(line.split()[-1] for line in result.err.splitlines() if "get it back with" in line)
    assert tree_files(ws.root)["version.txt"] != before["version.txt"]
    back = ws.gitexp("checkout", saved)
    assert back.code == 0, back.err
    assert tree_files(ws.root) == before, "every byte of the uncommitted work is back"
    assert ws.git("diff", "--cached", "--name-only").split() == staged, "what was staged is staged again"
    assert ws.record(saved, "run.json")["status"] == "saved"


def test_checkout_of_the_current_state_saves_nothing(project: Workspace) -> None:
    ws = project
    result = ws.gitexp("checkout", "B")
    assert result.code == 0 and "saved" not in result.err
    assert not [n for n in ws.runs() if n.startswith("saved-")]


def test_checkout_into_a_directory_leaves_the_workspace_alone(project: Workspace, tmp_path: Path) -> None:
    ws = project
    ws.freeze()
    target = tmp_path / "restored"
    result = ws.gitexp("checkout", "A", "--into", str(target))
    assert result.code == 0, result.err
    assert tree_files(target) == ws.state_a  # type: ignore[attr-defined]
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("mine")
    refused = ws.gitexp("checkout", "A", "--into", str(occupied))
    assert refused.code == 1 and "not an empty directory" in refused.err and (occupied / "x").read_text() == "mine"


def test_checkout_across_base_commits_detaches_head_at_the_base(ws: Workspace) -> None:
    ws.write("model.py", "v1\n")
    c1 = ws.commit_all("one")
    ws.write("model.py", "v1 + experiment\n")
    ws.run("-n", "exp", "--", "true")
    ws.git("checkout", "-q", "model.py")
    ws.write("model.py", "v2\n")
    ws.commit_all("two")
    result = ws.gitexp("checkout", "exp")
    assert result.code == 0, result.err
    assert ws.git("rev-parse", "HEAD").strip() == c1 and ws.git("symbolic-ref", "-q", "HEAD", check=False) == ""
    assert ws.git("status", "--porcelain").split() == ["M", "model.py"]
    assert "+v1 + experiment" in ws.git("diff")
    assert ws.git("rev-parse", "main").strip() != c1, "the branch itself is untouched"


def test_checkout_stays_on_the_branch_when_it_is_at_the_base(project: Workspace) -> None:
    ws = project
    assert ws.gitexp("checkout", "A").code == 0
    assert ws.git("symbolic-ref", "HEAD").strip() == "refs/heads/main"


def test_missing_cache_objects_change_nothing(project: Workspace) -> None:
    ws = project
    import xxhash

    digest = xxhash.xxh3_128_hexdigest(b"x,y\n1,2\n")
    (ws.root / ".git/gitexp/cache/objects" / digest[:2] / digest[2:]).unlink()
    ws.freeze()
    result = ws.gitexp("checkout", "A")
    assert result.code == 1 and "not in the local cache" in result.err and "data/a.csv" in result.err
    assert "gitexp pull" in result.err and "Traceback" not in result.err


def test_a_corrupt_cache_object_is_never_restored(project: Workspace) -> None:
    ws = project
    import xxhash

    obj = ws.root / ".git/gitexp/cache/objects" / xxhash.xxh3_128_hexdigest(b"x,y\n1,2\n")[:2]
    victim = next(obj.iterdir())
    victim.chmod(0o644)
    victim.write_bytes(b"x,y\n6,6\n")
    ws.freeze()
    result = ws.gitexp("checkout", "A")
    assert result.code == 1 and "corrupted" in result.err and "Traceback" not in result.err


def test_a_pointer_escaping_the_repository_is_refused(project: Workspace) -> None:
    ws = project
    data = json.loads(ws.git("show", "refs/experiments/A:.gitexp/data.json"))
    data["outputs"][0]["path"] = "../outside"
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=ws.root, input=json.dumps(data), capture_output=True, text=True).stdout.strip()
    env = {"GIT_INDEX_FILE": str(ws.root / ".git/evil-index")}
    git(ws.root, "read-tree", "refs/experiments/A", env=env)
    git(ws.root, "update-index", "--cacheinfo", f"100644,{blob},.gitexp/data.json", env=env)
    tree = git(ws.root, "write-tree", env=env).strip()
    message = ws.git("log", "-1", "--format=%B", "refs/experiments/A").replace("Gitexp-Run: A", "Gitexp-Run: evil")
    commit = git(ws.root, "commit-tree", tree, "-m", message).strip()
    ws.git("update-ref", "refs/experiments/evil", commit)
    ws.freeze()
    result = ws.gitexp("checkout", "evil")
    assert result.code == 1 and "refusing" in result.err and "../outside" in result.err
    assert not (ws.root.parent / "outside").exists()


def test_branch_holds_the_run_code_on_its_base(project: Workspace) -> None:
    ws = project
    head = ws.git("rev-parse", "HEAD").strip()
    assert ws.gitexp("branch", "A", "from-a").code == 0
    assert ws.git("rev-parse", "from-a^").strip() == head
    run_top = [line for line in ws.git("ls-tree", "refs/experiments/A").splitlines() if not line.endswith("\t.gitexp")]
    assert ws.git("ls-tree", "from-a").splitlines() == run_top, "the branch tree is the run's tree without .gitexp/"
    files = set(ws.git("ls-tree", "-r", "--name-only", "from-a").split())
    assert "version.txt" in files and "entry.py" in files and not any(f.startswith(".gitexp/") for f in files)
    assert ws.git("symbolic-ref", "HEAD").strip() == "refs/heads/main", "no switch without --switch"
    taken = ws.gitexp("branch", "A", "from-a")
    assert taken.code == 1 and "already exists" in taken.err
    bad = ws.gitexp("branch", "A", "bad..name")
    assert bad.code == 1 and "invalid branch name" in bad.err


def test_branch_switch_leaves_a_clean_status(project: Workspace) -> None:
    ws = project
    result = ws.gitexp("branch", "A", "from-a", "--switch")
    assert result.code == 0, result.err
    assert ws.git("symbolic-ref", "HEAD").strip() == "refs/heads/from-a"
    assert ws.git("status", "--porcelain", "--untracked-files=no") == ""
    assert (ws.root / "version.txt").read_text() == "v1\n"


def test_reproduce_a_deterministic_script_matches(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "data: [data]\n")
    ws.write("data/x.txt", "21\n")
    ws.write("calc.py", "import json\nn = int(open('data/x.txt').read())\njson.dump({'answer': n * 2}, open('metrics.json', 'w'))\n")
    ws.run("-n", "orig", "--", sys.executable, "calc.py")
    ws.freeze("metrics.json")
    result = ws.gitexp("reproduce", "--json", "orig")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["matches"] is True and report["metrics"] == [{"key": "answer", "original": 42, "reproduced": 42, "matches": True}]
    repro = report["reproduction"]["name"]
    meta = ws.record(repro, "run.json")
    assert meta["parent_run"]["name"] == "orig" and "reproduction" in meta["tags"]
    assert ws.record(repro, "data.json")["inputs"] == ws.record("orig", "data.json")["inputs"]


def test_reproduce_of_a_clock_reading_script_fails(ws: Workspace) -> None:
    ws.write("clock.py", "import json, time\njson.dump({'t': time.time()}, open('metrics.json', 'w'))\n")
    ws.run("-n", "clock", "--", sys.executable, "clock.py")
    result = ws.gitexp("reproduce", "clock")
    assert result.code == 1
    assert "DIFFERENT" in result.out and "NOT reproduced" in result.out
    loose = ws.gitexp("reproduce", "clock", "--rtol", "0.5")
    assert loose.code == 0, loose.out


def test_reproduce_of_a_saved_workspace_is_refused(project: Workspace) -> None:
    ws = project
    ws.write("version.txt", "dirty\n")
    saved = next(line.split()[-1] for line in ws.gitexp("checkout", "A").err.splitlines() if "get it back" in line)
    result = ws.gitexp("reproduce", saved)
    assert result.code == 1 and "no command to reproduce" in result.err


def test_an_ignored_file_the_run_declares_as_output_is_saved_before_it_is_replaced(ws: Workspace) -> None:
    ws.write(".gitignore", "model.pkl\n")
    ws.write(".gitexp.yaml", "outputs: [model.pkl]\n")
    ws.commit_all("base")
    ws.run("-n", "a", "--", "sh", "-c", "echo 'trained by a' > model.pkl")
    (ws.root / ".gitexp.yaml").unlink()  # e.g. a branch whose config declares no outputs
    ws.write("model.pkl", "HAND TRAINED\n")
    result = ws.gitexp("checkout", "a")
    assert result.code == 0, result.err
    assert (ws.root / "model.pkl").read_text() == "trained by a\n"
    saved = next(line.split()[-1] for line in result.err.splitlines() if "get it back" in line)
    assert ws.gitexp("checkout", saved).code == 0
    assert (ws.root / "model.pkl").read_text() == "HAND TRAINED\n", "the hand-made model came back"


def test_a_failed_checkout_saves_nothing(project: Workspace) -> None:
    ws = project
    import xxhash

    digest = xxhash.xxh3_128_hexdigest(b"x,y\n1,2\n")
    victim = ws.root / ".git/gitexp/cache/objects" / digest[:2] / digest[2:]
    victim.chmod(0o644)
    victim.write_bytes(b"damaged!")
    ws.write("version.txt", "uncommitted\n")
    result = ws.gitexp("checkout", "A")
    assert result.code == 1 and "corrupted" in result.err and "fsck --repair" in result.err
    assert not [n for n in ws.runs() if n.startswith("saved-")], "no saved run for a checkout that did nothing"
    assert (ws.root / "version.txt").read_text() == "uncommitted\n"


def test_a_damaged_cache_object_is_repaired_by_content_with_the_same_bytes(project: Workspace) -> None:
    ws = project
    import xxhash

    good = b"x,y\n1,2\n"
    digest = xxhash.xxh3_128_hexdigest(good)
    victim = ws.root / ".git/gitexp/cache/objects" / digest[:2] / digest[2:]
    victim.chmod(0o644)
    victim.write_bytes(b"damaged!")
    assert ws.gitexp("fsck").code == 1
    ws.write("data/a.csv", good.decode())  # the same bytes again, as a re-run would produce them
    ws.run("-n", "again", "--", "true")
    assert victim.read_bytes() == good, "the object was repaired from the fresh bytes"
    assert "0 corrupt" in ws.gitexp("fsck").out


def test_fsck_repair_sets_damaged_objects_aside(project: Workspace) -> None:
    ws = project
    victim = sorted((ws.root / ".git/gitexp/cache/objects").glob("*/*"))[0]
    digest = victim.parent.name + victim.name
    victim.chmod(0o644)
    victim.write_bytes(b"damaged!")
    result = ws.gitexp("fsck", "--repair")
    assert result.code == 1 and f"corrupt: {digest}" in result.out and "moved to" in result.out
    assert not victim.exists() and (ws.root / ".git/gitexp/cache/corrupt" / digest).read_bytes() == b"damaged!"
    assert "0 corrupt" in ws.gitexp("fsck").out


def test_checkout_into_the_repository_itself_is_refused(project: Workspace) -> None:
    ws = project
    result = ws.gitexp("checkout", "A", "--into", "copy")
    assert result.code == 1 and "inside the repository" in result.err and not (ws.root / "copy").exists()


def test_a_broken_params_file_does_not_block_a_checkout(project: Workspace) -> None:
    ws = project
    ws.write("params.yaml", "lr: [0.1\n")
    result = ws.gitexp("checkout", "A")
    assert result.code == 0, result.err
    saved = next(line.split()[-1] for line in result.err.splitlines() if "get it back" in line)
    assert ws.gitexp("checkout", saved).code == 0
    assert (ws.root / "params.yaml").read_text() == "lr: [0.1\n"


def test_a_data_symlink_is_never_replaced_silently(ws: Workspace, tmp_path: Path) -> None:
    mounted = tmp_path / "mounted-dataset"
    mounted.mkdir()
    (mounted / "x.csv").write_text("1\n")
    ws.write(".gitexp.yaml", "data: [data]\n")
    os.symlink(mounted, ws.root / "data")
    assert ws.gitexp("trust", str(mounted)).code == 0  # a place outside the repository: read with consent
    ws.run("-n", "linked", "--", "true")
    (mounted / "x.csv").write_text("2\n")
    ws.freeze()
    result = ws.gitexp("checkout", "linked")
    assert result.code == 1 and "is a symlink" in result.err and "--into" in result.err
    assert (mounted / "x.csv").read_text() == "2\n"


def test_an_ignored_file_the_run_had_as_code_is_never_overwritten_unsaved(ws: Workspace) -> None:
    ws.write("notes.txt", "v1\n")
    ws.run("-n", "A", "--", "true")
    ws.write(".gitignore", "notes.txt\n")
    ws.commit_all("ignore notes")
    ws.write("notes.txt", "PRECIOUS\n")
    result = ws.gitexp("checkout", "A")
    assert result.code == 1 and "cannot save first" in result.err and "notes.txt" in result.err
    assert (ws.root / "notes.txt").read_text() == "PRECIOUS\n"


def test_files_inside_a_nested_repository_are_never_overwritten_unsaved(ws: Workspace) -> None:
    ws.write("nested/n.txt", "n1\n")
    ws.run("-n", "A", "--", "true")
    git(ws.root / "nested", "init", "-q")
    ws.write("nested/n.txt", "PRECIOUS2\n")
    result = ws.gitexp("checkout", "A")
    assert result.code == 1 and "nested/n.txt" in result.err
    assert (ws.root / "nested/n.txt").read_text() == "PRECIOUS2\n"


def test_checkout_writes_line_endings_as_git_would(ws: Workspace) -> None:
    ws.git("config", "core.autocrlf", "true")
    (ws.root / "crlf.txt").write_bytes(b"a\r\nb\r\n")
    ws.commit_all("crlf")
    (ws.root / "crlf.txt").write_bytes(b"a\r\nb\r\nc\r\n")
    ws.run("-n", "A", "--", "true")
    (ws.root / "crlf.txt").write_bytes(b"a\r\nb\r\n")
    assert ws.gitexp("checkout", "A").code == 0
    assert (ws.root / "crlf.txt").read_bytes() == b"a\r\nb\r\nc\r\n"


def test_checkout_flips_the_executable_bit_of_files_it_keeps(ws: Workspace) -> None:
    ws.write("same.sh", "#!/bin/sh\n", mode=0o644)
    ws.write("edited.sh", "#!/bin/sh\necho 1\n", mode=0o755)
    ws.write("pkg/m.py", "x = 1\n")
    ws.run("-n", "A", "--", "true")
    (ws.root / "same.sh").chmod(0o755)  # the mode alone changes
    ws.write("edited.sh", "#!/bin/sh\necho 2\n", mode=0o644)
    ws.run("-n", "B", "--", "true")
    for run, same, edited in (("A", 0o644, 0o755), ("B", 0o755, 0o644), ("A", 0o644, 0o755)):
        assert ws.gitexp("checkout", run).code == 0
        modes = {p: (ws.root / p).stat().st_mode & 0o777 for p in ("same.sh", "edited.sh")}
        assert modes == {"same.sh": same, "edited.sh": edited}, run
    assert (ws.root / "edited.sh").read_text() == "#!/bin/sh\necho 1\n"


def test_reproduce_warns_when_package_versions_differ(ws: Workspace, tmp_path: Path) -> None:
    for version in ("1.0", "2.0"):
        (tmp_path / version / f"fakepkg-{version}.dist-info").mkdir(parents=True)
    ws.write("calc.py", "import json\njson.dump({'answer': 42}, open('metrics.json', 'w'))\n")
    assert ws.gitexp("run", "-n", "orig", "--", sys.executable, "calc.py", env={"PYTHONPATH": str(tmp_path / "1.0")}).code == 0
    ws.freeze("metrics.json")  # reproducing never touches the workspace
    same = ws.gitexp("reproduce", "orig", env={"PYTHONPATH": str(tmp_path / "1.0")})
    assert same.code == 0 and "fakepkg" not in same.err
    moved = ws.gitexp("reproduce", "--json", "orig", env={"PYTHONPATH": str(tmp_path / "2.0")})
    assert moved.code == 0, moved.err  # the metrics still match: a warning, not a failure
    assert "package fakepkg: 1.0 -> 2.0" in moved.err
    assert json.loads(moved.out)["environment_changes"] == ["package fakepkg: 1.0 -> 2.0"]


@pytest.fixture
def small_disk(tmp_path: Path) -> object:
    """A 1 MiB file system (tmpfs; needs root, as in CI): where a larger run cannot fit."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_run_too_large_for_the_disk_is_refused_before_anything_is_written(ws: Workspace, small_disk: Path) -> None:
    ws.write(".gitexp.yaml", "data: [data]\n")
    (ws.root / "data").mkdir()
    (ws.root / "data" / "big.bin").write_bytes(os.urandom(3 << 20))
    ws.run("-n", "big", "--", "true")
    result = ws.gitexp("checkout", "big", "--into", str(small_disk / "copy"))
    assert result.code == 1 and "not enough disk space" in result.err and "Traceback" not in result.err
    assert list(small_disk.iterdir()) == []  # no partial copy, no scratch left


def test_files_the_run_itself_ignores_are_never_removed_or_saved(ws: Workspace) -> None:
    ws.write("train.py", "print('v1')\n")
    ws.commit_all("base")
    ws.run("-n", "old", "--", "true")  # no .gitignore in this run
    ws.write(".gitignore", "secrets.txt\ncheckpoints/\n")  # uncommitted
    ws.write("secrets.txt", "API_KEY=xyz\n")
    ws.write("checkpoints/epoch1.pt", "weights\n")
    ws.write("train.py", "print('v2')\n")
    first = ws.gitexp("checkout", "old")
    assert first.code == 0, first.err
    saved = next(line.split()[-1] for line in first.err.splitlines() if "get it back" in line)
    assert "secrets.txt" not in ws.git("ls-tree", "-r", "--name-only", f"refs/experiments/{saved}")
    assert not (ws.root / ".gitignore").exists() and (ws.root / "secrets.txt").exists()  # ignored: left alone
    assert "no longer ignored" in first.err and "secrets.txt" in first.err  # said, before a run records it
    back = ws.gitexp("checkout", saved)  # its .gitignore ignores them: they were never the run's to remove
    assert back.code == 0, back.err
    assert "saved as run" not in back.err, "nothing needed saving"
    assert (ws.root / "secrets.txt").read_text() == "API_KEY=xyz\n"
    assert (ws.root / "checkpoints/epoch1.pt").read_text() == "weights\n"
    assert (ws.root / "train.py").read_text() == "print('v2')\n" and (ws.root / ".gitignore").exists()
    assert not any("secrets" in ws.git("ls-tree", "-r", "--name-only", f"refs/experiments/{r}") for r in ws.runs())


def _object(ws: Workspace, run: str, path: str) -> Path:
    pointers = {p["path"]: p for p in ws.record(run, "data.json")["inputs"]}  # type: ignore[index]
    digest = pointers[path]["digest"]
    return ws.root / ".git/gitexp/cache/objects" / digest[:2] / digest[2:]


def test_a_damaged_cache_copy_of_the_data_being_replaced_is_repaired_first(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "data: [data/a]\n")
    ws.write("data/a", "A1\n")
    ws.run("-n", "A", "--", "true")
    ws.write("data/a", "A2\n")
    ws.run("-n", "B", "--", "true")
    damaged = _object(ws, "B", "data/a")
    damaged.chmod(0o644)
    damaged.write_text("XX\n")  # the cache's only copy of A2 rots; the workspace still has it
    assert ws.gitexp("checkout", "A").code == 0
    assert (ws.root / "data/a").read_text() == "A1\n"
    back = ws.gitexp("checkout", "B")
    assert back.code == 0, back.err
    assert (ws.root / "data/a").read_text() == "A2\n", "A2 was never lost"


def test_checkout_waits_for_a_run_working_in_the_workspace(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.5  # my tuning\n")
    ws.write("slow.py", "import time\ntime.sleep(30)\n")
    ws.run("-n", "A", "--", "true")
    proc = subprocess.Popen([sys.executable, "-m", "gitexp", "run", "-n", "slow", "-S", "lr=0.9", "--", sys.executable, "slow.py"],
                            cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while "lr: 0.9" not in (ws.root / "params.yaml").read_text():
            assert time.time() < deadline
            time.sleep(0.05)
        result = ws.gitexp("checkout", "A")
        assert result.code == 1 and "is running in this workspace" in result.err and "nothing was changed" in result.err
        assert "slow" in result.err and not any(n.startswith("saved-") for n in ws.runs())
    finally:
        proc.kill()
        proc.wait()


def test_what_stands_in_the_way_of_the_run_files_is_handled_safely(ws: Workspace) -> None:
    ws.write("cfg/s.py", "x = 1\n")
    ws.write("tool", "a file\n")
    ws.commit_all("base")
    ws.run("-n", "A", "--", "true")
    ws.git("rm", "-q", "-r", "cfg", "tool")
    ws.write(".gitignore", "cfg\n")
    ws.write("tool/run.py", "print('a dir now')\n")  # where A has a file: part of the code, it can go
    ws.commit_all("cfg is ignored now")
    ws.write("cfg", "SECRET\n")  # ignored, where A has a directory
    ws.freeze()
    refused = ws.gitexp("checkout", "A")
    assert refused.code == 1 and "cannot save first" in refused.err and "cfg" in refused.err
    (ws.root / "cfg").unlink()
    ws.frozen = None
    result = ws.gitexp("checkout", "A")
    assert result.code == 0, result.err
    assert (ws.root / "tool").read_text() == "a file\n" and (ws.root / "cfg/s.py").read_text() == "x = 1\n"


def test_nothing_is_written_through_a_symlinked_directory(ws: Workspace, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    (shared / "data" / "f1").write_text("1\n")
    os.symlink(shared, ws.root / "assets")
    ws.write(".gitignore", "assets\n")
    ws.write(".gitexp.yaml", "data: [assets/data]\n")
    assert ws.gitexp("trust", str(shared)).code == 0  # a place outside the repository: read with consent
    ws.run("-n", "A", "--", "true")
    assert ws.gitexp("checkout", "A").code == 0, "nothing to write: a symlinked dataset is fine"
    (shared / "data" / "f2").write_text("a teammate's\n")
    result = ws.gitexp("checkout", "A")
    assert result.code == 1 and "assets is a symlink" in result.err
    assert (shared / "data" / "f2").read_text() == "a teammate's\n"


def test_data_under_a_path_the_run_did_not_declare_stays(ws: Workspace) -> None:
    ws.write(".gitignore", "data/\n")
    ws.run("-n", "A", "--", "true")
    ws.write(".gitexp.yaml", "data: [data/]\n")
    ws.write("data/set.csv", "1,2\n")
    result = ws.gitexp("checkout", "A")
    assert result.code == 0, result.err
    assert (ws.root / "data/set.csv").read_text() == "1,2\n"


def test_checkout_refuses_during_a_merge_and_branch_refuses_head(ws: Workspace) -> None:
    ws.write("f.txt", "base\n")
    ws.commit_all("base")
    ws.run("-n", "A", "--", "true")
    ws.git("checkout", "-q", "-b", "other")
    ws.write("f.txt", "other\n")
    ws.commit_all("other")
    ws.git("checkout", "-q", "-")
    ws.write("f.txt", "main\n")
    ws.commit_all("main")
    ws.git("merge", "-q", "other", check=False)  # a conflict: the merge stays in progress
    result = ws.gitexp("checkout", "A")
    assert result.code == 1 and "merge is in progress" in result.err
    ws.git("merge", "--abort")
    bad = ws.gitexp("branch", "A", "HEAD")
    assert bad.code == 1 and "invalid branch name" in bad.err and "refs/heads/HEAD" not in ws.git("show-ref")


def test_a_failed_branch_switch_leaves_no_branch(ws: Workspace) -> None:
    ws.write("notes.txt", "v1\n")
    ws.commit_all("base")
    ws.run("-n", "A", "--", "true")
    ws.git("rm", "-q", "notes.txt")
    ws.write(".gitignore", "notes.txt\n")
    ws.commit_all("ignore notes")
    ws.write("notes.txt", "mine, ignored\n")
    result = ws.gitexp("branch", "A", "fix", "--switch")
    assert result.code == 1 and "cannot save first" in result.err
    assert "refs/heads/fix" not in ws.git("show-ref")


def test_leaving_a_detached_head_that_no_branch_holds_is_warned_about(ws: Workspace) -> None:
    ws.write("f.txt", "1\n")
    ws.commit_all("one")
    ws.run("-n", "A", "--", "true")
    ws.write("f.txt", "2\n")
    ws.commit_all("two")
    ws.run("-n", "B", "--", "true")
    assert ws.gitexp("checkout", "A").code == 0  # detaches HEAD at A's base
    ws.write("fix.txt", "a fix\n")
    orphan = ws.commit_all("a fix on the detached HEAD")
    result = ws.gitexp("checkout", "B")
    assert result.code == 0 and f"git branch NAME {orphan[:10]}" in result.err


def test_a_base_branch_checked_out_in_another_worktree_is_left_to_it(ws: Workspace, tmp_path: Path) -> None:
    ws.write("f.txt", "1\n")
    ws.commit_all("one")
    ws.git("checkout", "-q", "-b", "feature")
    ws.write("f.txt", "2\n")
    ws.run("-n", "A", "--", "true")  # base branch: feature
    ws.commit_all("two")
    ws.git("checkout", "-q", "main" if "main" in ws.git("branch") else "master")
    ws.write("g.txt", "on main\n")
    ws.commit_all("three")
    ws.git("worktree", "add", "-q", "-f", str(tmp_path / "wt"), "feature")
    ws.git("-C", str(tmp_path / "wt"), "reset", "-q", "--hard", "HEAD~1")  # feature is at A's base again, over there
    result = ws.gitexp("checkout", "A")
    assert result.code == 0, result.err
    assert "detached" in result.out and ws.git("status", "--porcelain").strip() == "M f.txt"


def test_a_checkout_in_progress_holds_off_other_checkouts_and_runs_until_it_ends(ws: Workspace) -> None:
    ws.run("-n", "A", "--", "true")
    lock = ws.root / ".git/gitexp/checkout.lock"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        lock.write_text(json.dumps({"pid": sleeper.pid, "host": os.uname().nodename}))  # a checkout mid-way
        for args in (("checkout", "A"), ("run", "-n", "B", "--", "true")):
            result = ws.gitexp(*args)
            assert result.code == 1 and f"a gitexp checkout (pid {sleeper.pid}) is changing this workspace" in result.err
        assert "B" not in ws.runs()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert ws.gitexp("checkout", "A").code == 0, "a lock whose checkout died is stale"
    assert not lock.exists()
    assert ws.gitexp("run", "-n", "B", "--", "true").code == 0


def test_the_index_lock_of_a_checkout_killed_while_writing_the_index_is_cleared_and_no_other(ws: Workspace) -> None:
    ws.run("-n", "A", "--", "true")
    lock, index_lock = ws.root / ".git/gitexp/checkout.lock", ws.root / ".git/index.lock"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    index_lock.write_bytes(b"")  # older than the dead checkout's lock: not its own (someone else's, or git's)
    os.utime(index_lock, ns=(1, 1))
    lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    refused = ws.gitexp("checkout", "A")
    assert refused.code == 1 and "index.lock exists" in refused.err and "nothing was changed" in refused.err
    assert index_lock.exists()
    lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    os.utime(lock, ns=(1, 1))  # the killed checkout took its lock, then died while writing the index
    index_lock.write_bytes(b"DIRC")
    result = ws.gitexp("checkout", "A")
    assert result.code == 0, result.err
    assert not index_lock.exists() and not lock.exists()
    assert ws.git("status", "--porcelain").strip() == ""


def test_reproduce_works_in_a_copy_and_clears_the_copies_of_killed_ones(ws: Workspace, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    (tmp / "gitexp-wt-999999-dead").mkdir(parents=True)  # a pid that is not running: a copy left by a kill
    ws.write("calc.py", "import json, os\njson.dump({'cwd': len(os.getcwd())}, open('metrics.json', 'w'))\n")
    ws.run("-n", "orig", "--", sys.executable, "calc.py")
    result = ws.gitexp("reproduce", "orig", env={"TMPDIR": str(tmp)})
    assert f"in {tmp}/gitexp-wt-" in result.err  # where it ran
    assert list(tmp.iterdir()) == [], "its own copy is gone, and so is the killed one's"


def _wait_for_cpu_time(proc: subprocess.Popen[str], seconds: float) -> None:
    """Until proc has used this much CPU time (or ended): wall time says nothing of its progress on a busy machine."""
    import psutil

    deadline = time.monotonic() + 120
    try:
        process = psutil.Process(proc.pid)
        while proc.poll() is None and time.monotonic() < deadline:
            used = process.cpu_times()
            if used.user + used.system >= seconds:
                return
            time.sleep(0.005)
    except psutil.NoSuchProcess:
        return


def test_ctrl_c_leaves_either_the_old_workspace_or_the_whole_run_never_a_mix(ws: Workspace) -> None:
    import signal

    ws.write(".gitexp.yaml", "data: [data]\n")
    ws.write(".gitignore", "data/\n")
    ws.write("code.py", "v = 'A'\n")
    ws.commit_all("A")
    for i in range(48):
        (ws.root / "data").mkdir(exist_ok=True)
        (ws.root / "data" / f"{i}.bin").write_bytes(b"A" * (4 << 20))
    ws.run("-n", "A", "--", "true")
    ws.write("code.py", "v = 'B'\n")
    ws.commit_all("B")
    for i in range(48):
        (ws.root / "data" / f"{i}.bin").write_bytes(b"B" * (4 << 20))
    ws.run("-n", "B", "--", "true")

    def state() -> tuple[str, set[bytes]]:
        return (ws.root / "code.py").read_text(), {p.read_bytes()[:1] for p in (ws.root / "data").iterdir()}

    for delay in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6):
        proc = subprocess.Popen([sys.executable, "-m", "gitexp", "checkout", "A"], cwd=ws.root, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        _wait_for_cpu_time(proc, delay)  # a moment in the checkout's own progress, whatever the machine's load
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        # (-2: Ctrl-C while Python was still importing gitexp, before any of it ran)
        assert proc.returncode in (0, 130, -signal.SIGINT) and ("Traceback" not in err or proc.returncode < 0), err
        assert state() in ((("v = 'A'\n"), {b"A"}), (("v = 'B'\n"), {b"B"})), (delay, err)  # one or the other, whole
        assert ws.git("status", "--porcelain").strip() == "", (delay, err)  # HEAD and index agree with the files
        assert ws.gitexp("checkout", "B").code == 0

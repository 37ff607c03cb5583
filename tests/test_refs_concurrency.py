"""Refs under concurrency and deletion: tags and notes never lost, rm on a remote, push leaves saved runs out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Workspace, git, git_daemon, gitexp

RUNS = 24


def spawn(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gitexp", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, env=os.environ.copy(),
    )


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    """(exit code, stderr) of each process, waited for with a generous deadline."""
    out = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        out.append((proc.returncode, err))
    return out


def notes(ws: Workspace) -> dict[str, dict[str, object]]:
    """The annotations in refs/notes/gitexp, by run name, read with git itself."""
    by_commit = {commit: name for name, commit in ws.runs().items()}
    out = {}
    for line in ws.git("notes", "--ref=gitexp", "list").splitlines():
        blob, commit = line.split()
        out[by_commit.get(commit, commit)] = json.loads(ws.git("cat-file", "-p", blob))
    return out


@pytest.fixture
def many(ws: Workspace) -> tuple[Workspace, list[str]]:
    """RUNS finished runs (one sweep: one process) and their names."""
    ws.write("p.yaml", "i: 0\n")
    ws.commit_all("base")
    ws.run("-S", "i=" + ",".join(str(i) for i in range(RUNS)), "--", "true")
    names = sorted(ws.runs())
    assert len(names) == RUNS
    return ws, names


def test_concurrent_tags_and_notes_on_different_runs_are_all_kept(many: tuple[Workspace, list[str]]) -> None:
    ws, names = many
    procs = [spawn(ws.root, "tag", name, f"t{i}", "shared") for i, name in enumerate(names)]
    procs += [spawn(ws.root, "note", name, f"note of {name}") for name in names]
    for code, err in finish(procs):
        assert code == 0, err
    kept = notes(ws)
    for i, name in enumerate(names):
        assert kept[name] == {"tags": [f"t{i}", "shared"], "note": f"note of {name}"}
    listed = ws.gitexp("list", "--where", "tags = shared", "-c", "name", "-f", "csv").out.split()
    assert sorted(listed[1:]) == names
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=ws.root, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


def test_concurrent_tags_on_one_run_are_all_kept_and_removals_apply(many: tuple[Workspace, list[str]]) -> None:
    ws, names = many
    run = names[0]
    assert ws.gitexp("tag", run, "old", "keep").code == 0
    procs = [spawn(ws.root, "tag", run, f"t{i}") for i in range(12)]
    procs.append(spawn(ws.root, "tag", run, "-d", "old"))
    procs.append(spawn(ws.root, "note", run, "the note"))
    for code, err in finish(procs):
        assert code == 0, err
    kept = notes(ws)[run]
    assert isinstance(kept["tags"], list)
    assert sorted(kept["tags"]) == sorted(["keep", *(f"t{i}" for i in range(12))])
    assert kept["note"] == "the note"


def test_a_tag_waits_for_a_notes_ref_another_process_holds_then_is_kept(many: tuple[Workspace, list[str]]) -> None:
    ws, (r1, *_) = many
    lock = ws.root / ".git" / "refs" / "notes" / "gitexp.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")  # as git holds it while it writes the ref
    proc = spawn(ws.root, "tag", r1, "waited")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=1)  # still retrying, not failed
    finally:
        lock.unlink()
    code, err = finish([proc])[0]
    assert code == 0, err
    assert notes(ws)[r1]["tags"] == ["waited"]


def test_a_notes_ref_locked_for_good_fails_saying_what_failed(many: tuple[Workspace, list[str]]) -> None:
    ws, (r1, r2, *_) = many
    assert ws.gitexp("tag", r1, "first").code == 0
    lock = ws.root / ".git" / "refs" / "notes" / "gitexp.lock"
    lock.write_text("")
    result = ws.gitexp("tag", r2, "second")
    assert result.code == 1
    assert "refs/notes/gitexp" in result.err and "gitexp.lock" in result.err and "remove that file" in result.err
    assert "free space" not in result.err
    lock.unlink()
    assert ws.gitexp("tag", r2, "second").code == 0
    assert notes(ws)[r2]["tags"] == ["second"] and notes(ws)[r1]["tags"] == ["first"]


def test_notes_written_by_git_with_fan_out_are_read_and_updated_in_place(many: tuple[Workspace, list[str]]) -> None:
    ws, (r3, *_) = many
    commit = ws.runs()[r3]
    # git lays notes out in fan-out directories once there are many; simulate one written that way
    note = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=ws.root, input='{"tags": ["by-git"]}\n',
                          capture_output=True, text=True, check=True).stdout.strip()
    inner = subprocess.run(["git", "mktree"], cwd=ws.root, input=f"100644 blob {note}\t{commit[2:]}\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    root = subprocess.run(["git", "mktree"], cwd=ws.root, input=f"040000 tree {inner}\t{commit[:2]}\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    notes_commit = ws.git("commit-tree", root, "-m", "notes").strip()
    ws.git("update-ref", "refs/notes/gitexp", notes_commit)
    assert ws.gitexp("tag", r3).out.split() == ["by-git"]
    assert ws.gitexp("tag", r3, "more").code == 0
    assert ws.gitexp("tag", r3).out.split() == ["by-git", "more"]
    assert ws.git("ls-tree", "--name-only", "refs/notes/gitexp").split() == [commit[:2]], "no second copy at the top"
    assert notes(ws)[r3] == {"tags": ["by-git", "more"]}


@pytest.fixture
def shared(ws: Workspace, tmp_path: Path) -> tuple[Workspace, Path]:
    """A repo set up with gitexp init against a bare origin, with runs r1, r2 pushed there and r3 kept local."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    ws.write("train.py", "print('hi')\n")
    ws.commit_all("base")
    ws.git("remote", "add", "origin", str(bare))
    assert ws.gitexp("init").code == 0
    for name in ("r1", "r2"):
        ws.run("-n", name, "--", "true")
    ws.git("push", "-q")
    ws.run("-n", "r3", "--", "true")
    return ws, bare


def remote_runs(bare: Path) -> set[str]:
    return {r.removeprefix("refs/experiments/") for r in git(bare, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()}


def test_rm_of_a_run_the_remote_still_has_says_it_comes_back_and_how_to_delete_it_there(shared: tuple[Workspace, Path]) -> None:
    ws, bare = shared
    result = ws.gitexp("rm", "-y", "r1", "r3")
    assert result.code == 0, result.err
    assert "origin still has r1: the next git fetch brings it back" in result.err
    assert "gitexp rm --remote origin r1" in result.err and "r3" not in result.err
    ws.git("fetch", "-q")
    assert "r1" in ws.runs(), "as announced"
    again = ws.gitexp("rm", "-y", "r1")
    assert "gitexp rm --remote origin r1" in again.err
    there = ws.gitexp("rm", "-y", "--remote", "origin", "r1")  # r1 is gone here: it is deleted there only
    assert there.code == 0, there.err
    assert remote_runs(bare) == {"r2"}
    ws.git("fetch", "-q")
    assert "r1" not in ws.runs()


def test_rm_remote_deletes_the_run_there_and_here_and_a_fetch_does_not_bring_it_back(shared: tuple[Workspace, Path]) -> None:
    ws, bare = shared
    result = ws.gitexp("rm", "-y", "--remote", "origin", "r2", "r3")
    assert result.code == 0, result.err
    assert "deleted r2 on origin" in result.out and "deleted r2 (" in result.out and "deleted r3 (" in result.out
    assert remote_runs(bare) == {"r1"}
    assert "still has" not in result.err
    ws.git("fetch", "-q")
    assert sorted(ws.runs()) == ["r1"]


def test_rm_remote_never_deletes_another_run_of_the_same_name_there(shared: tuple[Workspace, Path], tmp_path: Path) -> None:
    ws, bare = shared
    clone = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    assert gitexp(clone, "run", "-n", "r3", "--", "true").code == 0  # the teammate's own r3
    git(clone, "push", "-q", "origin", "refs/experiments/r3:refs/experiments/r3")
    theirs = git(bare, "rev-parse", "refs/experiments/r3").strip()
    result = ws.gitexp("rm", "-y", "--remote", "origin", "r3")
    assert result.code == 1
    assert "origin's r3 is another run" in result.err and "deleted neither there nor here" in result.err
    assert git(bare, "rev-parse", "refs/experiments/r3").strip() == theirs
    assert "r3" in ws.runs()


def test_rm_remote_of_a_run_the_remote_does_not_have_deletes_it_here(shared: tuple[Workspace, Path]) -> None:
    ws, bare = shared
    result = ws.gitexp("rm", "-y", "--remote", "origin", "r3")
    assert result.code == 0, result.err
    assert "r3" not in ws.runs() and remote_runs(bare) == {"r1", "r2"}
    missing = ws.gitexp("rm", "-y", "--remote", "origin", "never-was")
    assert missing.code == 1 and "origin has no run never-was" in missing.err
    assert ws.gitexp("rm", "-y", "--remote", "nowhere", "r1").code == 1


def test_rm_remote_over_the_git_protocol(shared: tuple[Workspace, Path], tmp_path: Path) -> None:
    """The same deletion through a git daemon (receive-pack enabled), as with a real server."""
    ws, bare = shared
    with git_daemon(tmp_path, receive_pack=True) as url:
        ws.git("remote", "set-url", "origin", f"{url}/origin.git")
        warned = ws.gitexp("rm", "-y", "r2")
        assert "origin still has r2" in warned.err, warned.err
        result = ws.gitexp("rm", "-y", "--remote", "origin", "r2")
        assert result.code == 0, result.err
        assert remote_runs(bare) == {"r1"}


def test_rm_without_a_remote_that_fetches_runs_asks_no_remote(ws: Workspace, tmp_path: Path) -> None:
    ws.write("train.py", "x\n")
    ws.commit_all("base")
    ws.git("remote", "add", "origin", str(tmp_path / "does-not-exist.git"))  # not set up with gitexp init
    ws.run("-n", "r1", "--", "true")
    result = ws.gitexp("rm", "-y", "r1")
    assert result.code == 0 and result.err == ""


def test_rm_says_when_it_could_not_ask_the_remote(shared: tuple[Workspace, Path], tmp_path: Path) -> None:
    ws, _ = shared
    ws.git("remote", "set-url", "origin", str(tmp_path / "moved-away.git"))
    result = ws.gitexp("rm", "-y", "r1")
    assert result.code == 0 and "r1" not in ws.runs()
    assert "could not ask origin whether it still has r1" in result.err and "gitexp rm --remote origin r1" in result.err


@pytest.fixture
def with_saved(shared: tuple[Workspace, Path]) -> tuple[Workspace, Path, str]:
    """shared, plus a run with status saved (uncommitted work gitexp saved before a checkout)."""
    ws, bare = shared
    ws.write("train.py", "print('work in progress')\n")
    result = ws.gitexp("checkout", "r1")
    assert result.code == 0, result.err
    saved = next(line.split()[-1] for line in result.err.splitlines() if "get it back with" in line)
    assert ws.record(saved, "run.json")["status"] == "saved"  # type: ignore[index]
    return ws, bare, saved


def test_push_leaves_saved_runs_out_unless_named_or_included(with_saved: tuple[Workspace, Path, str]) -> None:
    ws, bare, saved = with_saved
    result = ws.gitexp("push")
    assert result.code == 0, result.err
    assert remote_runs(bare) == {"r1", "r2", "r3"}
    assert "1 saved run(s) not pushed" in result.err and saved in result.err and "--include-saved" in result.err
    named = ws.gitexp("push", "origin", saved)
    assert named.code == 0, named.err
    assert saved in remote_runs(bare)
    git(bare, "update-ref", "-d", f"refs/experiments/{saved}")
    included = ws.gitexp("push", "--include-saved")
    assert included.code == 0, included.err
    assert saved in remote_runs(bare) and "not pushed" not in included.err


def test_a_plain_git_push_after_init_leaves_saved_runs_out(with_saved: tuple[Workspace, Path, str]) -> None:
    ws, bare, saved = with_saved
    ws.run("-n", "r4", "--", "true")
    ws.git("push", "-q")
    assert remote_runs(bare) == {"r1", "r2", "r3", "r4"}
    ws.gitexp("rename", saved, "kept-work")  # named by hand: shared like any run
    ws.git("push", "-q")
    assert "kept-work" in remote_runs(bare)


def test_a_plain_fetch_after_init_never_prunes_local_runs_even_with_fetch_prune_set(shared: tuple[Workspace, Path]) -> None:
    ws, _ = shared
    ws.git("config", "fetch.prune", "true")  # a common setting: it would delete every run origin lacks
    ws.git("fetch", "-q")
    assert sorted(ws.runs()) == ["r1", "r2", "r3"], "r3 was never pushed and is still here"


def test_a_tag_written_while_the_run_moves_to_its_final_commit_lands_on_the_final_commit(ws: Workspace) -> None:
    """The ref moves between `tag` reading the run and writing its note (the run ended meanwhile)."""
    from gitexp import query
    from gitexp.store import Store

    ws.write("train.py", "x\n")
    ws.commit_all("base")
    ws.run("-n", "r", "--", "true")
    assert ws.gitexp("note", "r", "set before").code == 0
    store = Store.discover(ws.root)
    seen = query.resolve(store, "r")
    message = ws.git("log", "-1", "--format=%B", "refs/experiments/r")
    final = subprocess.run(["git", "commit-tree", f"{seen.commit}^{{tree}}", "-p", f"{seen.commit}^"], cwd=ws.root,
                           input=message, capture_output=True, text=True, check=True).stdout.strip()
    ws.git("update-ref", "refs/experiments/r", final, seen.commit)
    query.set_tags(store, seen, ("late",), ())
    assert notes(ws)["r"] == {"note": "set before", "tags": ["late"]}, "carried with what the old commit had"
    assert ws.gitexp("tag", "r").out.split() == ["late"]


def test_git_lists_the_run_refs_as_libgit2_does(ws: Workspace) -> None:
    from test_scale_costs import many_runs

    from gitexp.store import Store

    ws.write("train.py", "print(1)\n")
    ws.commit_all("base")
    many_runs(ws.root, "p", 30)
    ws.git("pack-refs", "--all")
    many_runs(ws.root, "l", 5)  # loose ones beside the packed
    head = ws.git("rev-parse", "HEAD").strip()
    ws.git("update-ref", "refs/experiments/sub/dir", head)  # not a run name
    ws.git("symbolic-ref", "refs/experiments/alias", "refs/experiments/p-0001")  # a symbolic ref: no run
    store = Store.discover(ws.root)
    expected_problems: list[str] = []
    expected = sorted(store.run_refs(expected_problems))
    problems: list[str] = []
    assert sorted(store.run_refs_from_git(problems) or []) == expected and len(expected) == 35
    assert problems == expected_problems and "'refs/experiments/sub/dir'" in problems[0]
    (ws.root / ".git" / "refs" / "experiments" / "broken").write_text("1" * 40 + "\n")  # a missing object
    expected = sorted(store.run_refs())
    assert ("broken", "1" * 40) in expected  # listed, as libgit2 lists it: reading it is what fails
    assert sorted(store.run_refs_from_git([]) or []) == expected


def test_git_lists_every_run_ref_while_another_process_packs_them(ws: Workspace) -> None:
    from test_scale_costs import many_runs

    from gitexp.store import Store

    ws.write("train.py", "print(1)\n")
    ws.commit_all("base")
    store = Store.discover(ws.root)
    for round_ in range(6):  # each round: 300 new loose refs, packed by git while git lists them
        many_runs(ws.root, f"r{round_}", 300)
        want = 300 * (round_ + 1)
        packing = store.start_packing_refs()
        assert packing is not None
        listed = []
        while packing.poll() is None or not listed:
            listed.append(len(store.run_refs_from_git([]) or []))
        assert packing.wait() == 0
        assert set(listed) == {want}, listed  # never one missing, whenever it looked


def test_every_run_ref_is_listed_while_another_process_packs_them(ws: Workspace) -> None:
    """libgit2 alone can miss refs moved into packed-refs while it lists them (seen here: 586 of 600); a
    listing during which the ref files changed is made by git instead. gc decides what to keep from it."""
    from test_scale_costs import many_runs

    from gitexp.store import Store, refcache

    ws.write("train.py", "print(1)\n")
    ws.commit_all("base")
    for round_ in range(8):
        many_runs(ws.root, f"r{round_}", 300)
        want = 300 * (round_ + 1)
        packing = subprocess.Popen(["git", "pack-refs", "--all"], cwd=ws.root)
        listed = []
        while packing.poll() is None or not listed:
            refcache.cache_path(ws.root / ".git").unlink(missing_ok=True)  # read the ref files each time
            listed.append(len(list(Store.discover(ws.root).run_refs())))
        assert packing.wait() == 0
        assert set(listed) == {want}, listed

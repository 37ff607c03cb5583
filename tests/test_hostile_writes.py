"""Hostile runs never write outside their place: a corpus of runs built by hand with git plumbing in an
"attacker" repository, fetched into a "victim" clone over a real `git daemon`, then checked out in place,
--into a directory, reproduced and branched. Each is refused with one clear line before anything changes:
nothing outside the repository, nothing under .git/hooks, nothing in the workspace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import Workspace, git, git_daemon, gitexp, isolate

ATTACKER = {
    "GIT_AUTHOR_NAME": "Mallory",
    "GIT_AUTHOR_EMAIL": "mallory@evil.example",
    "GIT_COMMITTER_NAME": "Mallory",
    "GIT_COMMITTER_EMAIL": "mallory@evil.example",
}
DIGEST = "0123456789abcdef0123456789abcdef"  # any well-formed digest: validation comes before the cache


@dataclass
class Corpus:
    victim: Workspace
    sentinel: Path  # outside every repository: must stay byte-identical
    tmpdir: Path  # $TMPDIR of the commands: reproductions' copies go there
    marker: Path  # written by the base run's command: proves whether it ran


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    base = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        home = base / "home"
        home.mkdir()
        isolate(home, mp)
        sentinel = base / "sentinel"
        (sentinel / "inside").mkdir(parents=True)
        (sentinel / "secret.txt").write_text("the victim's own file\n")
        marker = base / "marker"
        tmpdir = base / "tmp"
        tmpdir.mkdir()
        served = base / "served"
        served.mkdir()
        attacker = served / "att"
        attacker.mkdir()
        git(attacker, "init", "-q", "-b", "main")
        git(attacker, "config", "user.email", ATTACKER["GIT_AUTHOR_EMAIL"])  # gitexp run signs with the config's identity
        (attacker / "t.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
        (attacker / "sub").mkdir()
        (attacker / "sub" / "keep.txt").write_text("k\n")
        git(attacker, "add", "-A")
        git(attacker, "commit", "-q", "-m", "base", env=ATTACKER)
        made = subprocess.run([sys.executable, "-m", "gitexp", "run", "-n", "base", "--", "python", "t.py"], cwd=attacker,
                              capture_output=True, text=True, env={**os.environ, **ATTACKER})
        assert made.returncode == 0, made.stderr
        marker.unlink()
        _build_hostile_runs(attacker, sentinel)
        victim = base / "victim"
        with git_daemon(served) as url:
            git(base, "clone", "-q", f"{url}/att", str(victim))
            git(victim, "fetch", "-q", "origin", "refs/experiments/*:refs/experiments/*")
        yield Corpus(Workspace(victim), sentinel, tmpdir, marker)


def _hash(repo: Path, data: bytes, kind: str = "blob") -> str:
    return subprocess.run(["git", "hash-object", "-w", "--literally", "-t", kind, "--stdin"], cwd=repo, input=data,
                          capture_output=True, check=True).stdout.decode().strip()


def _tree(repo: Path, entries: list[tuple[str, bytes, str]]) -> str:
    """A raw tree object, in git's order (lookups by path need it) but otherwise as given: duplicates, '..',
    '.git' and '/' in names included."""
    ordered = sorted(entries, key=lambda e: e[1] + (b"/" if e[0] == "40000" else b""))
    raw = b"".join(mode.encode() + b" " + name + b"\0" + bytes.fromhex(oid) for mode, name, oid in ordered)
    return _hash(repo, raw, "tree")


def _entries(repo: Path, treeish: str) -> list[tuple[str, bytes, str]]:
    out = subprocess.run(["git", "ls-tree", "-z", treeish], cwd=repo, capture_output=True, check=True).stdout
    entries = []
    for item in out.split(b"\0"):
        if item:
            meta, name = item.split(b"\t", 1)
            mode, _, oid = meta.decode().split()
            entries.append((mode, name, oid))
    return entries


def _build_hostile_runs(repo: Path, sentinel: Path) -> None:
    """refs/experiments/<case> for each case: the base run's commit message and record, altered."""
    message = git(repo, "log", "-1", "--format=%B", "refs/experiments/base")
    base_commit = git(repo, "rev-parse", "refs/experiments/base^").strip()
    record = _entries(repo, "refs/experiments/base:.gitexp")
    code = [e for e in _entries(repo, "refs/experiments/base") if e[1] != b".gitexp"]
    run_json = json.loads(git(repo, "show", "refs/experiments/base:.gitexp/run.json"))
    payload = _hash(repo, b"#!/bin/sh\necho pwned\n")
    outside = _hash(repo, str(sentinel).encode())
    inside = _hash(repo, str(sentinel / "inside").encode())

    def pointer(path: str, kind: str = "file", **more: object) -> dict[str, object]:
        p: dict[str, object] = {"path": path, "kind": kind, **more}
        if kind in ("file", "dir"):
            p.update(digest=p.get("digest", DIGEST), size=1, files=1, cached=True)
        return p

    def run(name: str, extra_code: list[tuple[str, bytes, str]] = (), outputs: list[dict[str, object]] | None = None,
            manifests: dict[str, bytes] | None = None, meta: dict[str, object] | None = None, base: str = base_commit) -> None:
        files = {e[1]: e for e in record}
        if outputs is not None:
            data = {"inputs": [], "outputs": outputs, "large_files": [], "stats": {}}
            files[b"data.json"] = ("100644", b"data.json", _hash(repo, json.dumps(data).encode()))
        if manifests:
            found = [("100644", f"{d}.json".encode(), _hash(repo, raw)) for d, raw in manifests.items()]
            files[b"manifests"] = ("40000", b"manifests", _tree(repo, found))
        if meta is not None:
            files[b"run.json"] = ("100644", b"run.json", _hash(repo, json.dumps({**run_json, **meta}).encode()))
        tree = _tree(repo, [*code, *extra_code, ("40000", b".gitexp", _tree(repo, list(files.values())))])
        text = message.replace("Gitexp-Run: base", f"Gitexp-Run: {name}").replace(base_commit, base)
        commit = git(repo, "commit-tree", tree, "-p", base, "-m", text, env=ATTACKER).strip()
        git(repo, "update-ref", f"refs/experiments/{name}", commit)

    hooks = _tree(repo, [("100755", b"post-checkout", payload)])
    run("link-and-dir", [("120000", b"dd", outside), ("40000", b"dd", _tree(repo, [("100644", b"pwned", payload)]))])
    run("upper-git", [("40000", b".GIT", _tree(repo, [("40000", b"hooks", hooks)]))])
    run("dot-git", [("40000", b".git", _tree(repo, [("40000", b"hooks", hooks)]))])
    run("hfs-git", [("40000", ".g\u200cit".encode(), _tree(repo, [("40000", b"hooks", hooks)]))])
    run("sub-git", [("40000", b"lib", _tree(repo, [("40000", b".Git", _tree(repo, [("100644", b"config", payload)]))]))])
    run("dotdot", [("40000", b"..", _tree(repo, [("100644", b"pwned", payload)]))])
    run("dot", [("40000", b".", _tree(repo, [("100644", b"pwned", payload)]))])
    run("slash-name", [("100644", b"new/file", payload)])
    run("twice", [("100644", b"x.py", payload), ("100644", b"x.py", outside)])
    run("record-dir", [("40000", b".GITEXP", _tree(repo, [("100644", b"run.json", payload)]))])
    run("nul-link", [("120000", b"l", _hash(repo, b"a\0b"))])
    run("pointer-in-git", outputs=[pointer(".git/hooks/post-checkout", executable=True)])
    run("pointer-in-upper-git", outputs=[pointer("out/.GIT/hooks/post-checkout")])
    run("pointer-dotdot", outputs=[pointer("../x")])
    run("pointer-absolute", outputs=[pointer(str(sentinel / "x"))])
    run("pointer-record-dir", outputs=[pointer(".gitexp/params.json")])
    run("link-pointer-and-file", outputs=[pointer("out", "link", target=str(sentinel)), pointer("out/f")])
    manifest = json.dumps({"format": 1, "files": [{"path": "x", "link": str(sentinel)},
                                                   {"path": "x/y", "digest": DIGEST, "size": 1, "executable": False}]}).encode()
    mdigest = hashlib.md5(manifest).hexdigest()  # any name: the pointer names it
    run("manifest-link-and-file", outputs=[pointer("m", "dir", digest=mdigest)], manifests={mdigest: manifest})
    twice = json.dumps({"format": 1, "files": [{"path": "y", "digest": DIGEST}, {"path": "y", "digest": DIGEST}]}).encode()
    run("manifest-twice", outputs=[pointer("m", "dir", digest=hashlib.md5(twice).hexdigest())],
        manifests={hashlib.md5(twice).hexdigest(): twice})
    ingit = json.dumps({"format": 1, "files": [{"path": "sub/.git/hooks/post-checkout", "digest": DIGEST}]}).encode()
    run("manifest-git", outputs=[pointer("m", "dir", digest=hashlib.md5(ingit).hexdigest())],
        manifests={hashlib.md5(ingit).hexdigest(): ingit})
    run("code-link-and-pointer", [("120000", b"c", outside)], outputs=[pointer("c/f")])
    run("link-pointer-and-missing", outputs=[pointer("o", "link", target=str(sentinel)), pointer("o/sub", "missing")])
    evil_base = _tree(repo, [*code, ("40000", b".GIT", _tree(repo, [("40000", b"hooks", hooks)]))])
    run("base-with-git", base=git(repo, "commit-tree", evil_base, "-p", base_commit, "-m", "base", env=ATTACKER).strip())
    # Each tree object is checked once per process: one that is safe below the top (lib/.GITEXP) is checked
    # again where it is the top, as the base commit's tree (.GITEXP there would be the record directory).
    top = _tree(repo, [*code, ("40000", b".GITEXP", _tree(repo, [("100644", b"run.json", payload)]))])
    run("safe-below-not-at-top", [("40000", b"lib", top)],
        base=git(repo, "commit-tree", top, "-p", base_commit, "-m", "base", env=ATTACKER).strip())
    run("cwd-absolute", meta={"cwd": str(sentinel)})
    run("cwd-dotdot", meta={"cwd": "sub/../../.."})
    run("cwd-through-link", [("120000", b"lnk", inside)], meta={"cwd": "lnk"})
    run("command-not-a-list", meta={"command": "rm -rf ~"})


def _state(path: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(path).as_posix()
            out[rel] = "link:" + os.readlink(full) if full.is_symlink() else ("dir" if full.is_dir() else full.read_bytes().hex())
    return out


WRITES = ["checkout", "into", "reproduce", "branch"]
CASES = {
    "link-and-dir": ("'dd' twice", WRITES),
    "upper-git": (".GIT", WRITES),
    "dot-git": (".git", WRITES),
    "hfs-git": (".git", WRITES),
    "sub-git": (".Git", WRITES),
    "dotdot": ("'..'", WRITES),
    "dot": ("'.'", WRITES),
    "slash-name": ("contains '/'", WRITES),
    "twice": ("'x.py' twice", WRITES),
    "record-dir": (".gitexp/ is reserved", WRITES),
    "nul-link": ("unusable target", WRITES),
    "pointer-in-git": (".git", ["checkout", "into"]),
    "pointer-in-upper-git": (".GIT", ["checkout", "into"]),
    "pointer-dotdot": ("'..'", ["checkout", "into"]),
    "pointer-absolute": ("not a relative path", ["checkout", "into"]),
    "pointer-record-dir": (".gitexp/ is reserved", ["checkout", "into"]),
    "link-pointer-and-file": ("below its symlink 'out'", ["checkout", "into"]),
    "manifest-link-and-file": ("below its symlink 'm/x'", ["checkout", "into"]),
    "manifest-twice": ("'y' twice", ["checkout", "into"]),
    "manifest-git": ("'.git'", ["checkout", "into"]),
    "code-link-and-pointer": ("below its symlink 'c'", ["checkout", "into"]),
    "link-pointer-and-missing": ("below its symlink 'o'", ["checkout", "into"]),
    "base-with-git": (".GIT", ["checkout"]),
    "safe-below-not-at-top": (".gitexp/ is reserved", ["checkout"]),
    "cwd-absolute": ("not inside its repository", ["reproduce"]),
    "cwd-dotdot": ("not inside its repository", ["reproduce"]),
    "cwd-through-link": ("not a directory inside its copy", ["reproduce"]),
    "command-not-a-list": ("malformed command", ["reproduce"]),
}


def _command(kind: str, run: str, target: Path) -> list[str]:
    return {
        "checkout": ["checkout", "--", run],
        "into": ["checkout", "--into", str(target), run],
        "reproduce": ["reproduce", "--yes", run],
        "branch": ["branch", run, f"b-{run}"],
    }[kind]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_run_is_refused_in_one_line_and_nothing_changes(corpus: Corpus, case: str, tmp_path: Path) -> None:
    victim = corpus.victim
    reason, commands = CASES[case]
    assert case in victim.runs(), "the fetch over git daemon brought the hostile run"
    hooks = sorted(os.listdir(victim.root / ".git" / "hooks"))
    sentinel = _state(corpus.sentinel)
    before = victim.fingerprint()
    runs = victim.runs()
    for kind in commands:
        into = tmp_path / f"into-{kind}"
        result = gitexp(victim.root, *_command(kind, case, into), env={"TMPDIR": str(corpus.tmpdir)})
        errors = [line for line in result.err.splitlines() if line.startswith("gitexp: error:")]
        assert result.code not in (0, 3) and "Traceback" not in result.err and "internal error" not in result.err, (kind, result.err)
        assert len(errors) == 1 and reason in errors[0], (kind, result.err)
        assert not into.exists(), f"{kind}: nothing is left of a refused copy"
        assert _state(corpus.sentinel) == sentinel, f"{kind} wrote outside the repository"
        assert sorted(os.listdir(victim.root / ".git" / "hooks")) == hooks, f"{kind} wrote into .git/hooks"
        assert victim.fingerprint() == before, f"{kind} changed the workspace"
        assert victim.runs() == runs, f"{kind} recorded or removed a run"
        assert not corpus.marker.exists(), f"{kind} ran the run's command"
        assert os.listdir(corpus.tmpdir) == [], f"{kind} left its copy behind"


def test_the_base_run_of_the_corpus_is_accepted(corpus: Corpus, tmp_path: Path) -> None:
    """The hostile runs are refused for what was altered, not for their layout: the untouched one copies fine."""
    result = gitexp(corpus.victim.root, "checkout", "--into", str(tmp_path / "copy"), "base")
    assert result.code == 0, result.err
    assert (tmp_path / "copy" / "sub" / "keep.txt").read_text() == "k\n"


def test_a_run_someone_else_recorded_never_runs_from_a_pipe_without_yes(corpus: Corpus) -> None:
    result = gitexp(corpus.victim.root, "reproduce", "base", env={"TMPDIR": str(corpus.tmpdir)})
    assert result.code == 1 and "--yes" in result.err and "mallory@evil.example" in result.err, result.err
    assert "python t.py" in result.err, "the command is shown"
    assert not corpus.marker.exists()
    assert os.listdir(corpus.tmpdir) == []


def test_a_nested_ref_is_skipped_with_a_warning_and_odd_names_are_addressable(ws: Workspace) -> None:
    ws.write("t.py", "print(1)\n")
    ws.commit_all()
    ws.run("-n", "A", "--", "python", "t.py")
    ws.git("update-ref", "refs/experiments/sub/dir", "refs/experiments/A")
    ws.git("update-ref", "refs/experiments/-rf", "refs/experiments/A")
    ws.git("update-ref", "refs/experiments/latest", "refs/experiments/A")
    listed = ws.gitexp("list", "--json")
    assert listed.code == 0 and "refs/experiments/sub/dir" in listed.err and "skipped" in listed.err, listed.err
    assert sorted(r["name"] for r in listed.json()) == ["-rf", "A", "latest"]  # type: ignore[union-attr]
    for spec in (["--", "-rf"], ["refs/experiments/-rf"], ["refs/experiments/latest"]):
        shown = ws.gitexp("show", "--json", *spec)
        assert shown.code == 0 and shown.json()["name"] == spec[-1].removeprefix("refs/experiments/"), shown.err  # type: ignore[index]
    for command in (["gc"], ["fsck"], ["tree"], ["which", "t.py"]):
        result = ws.gitexp(*command)
        assert result.code in (0, 1) and "Traceback" not in result.err and "internal error" not in result.err, result.err
    renamed = ws.gitexp("rename", "--", "-rf", "settled")
    assert renamed.code == 0, renamed.err


def test_a_symlink_put_in_the_way_while_writing_is_never_followed(tmp_path: Path) -> None:
    """The writer walks each path from the root with O_NOFOLLOW: a directory replaced by a link after the
    checks (a race) stops the write instead of sending it outside."""
    from gitexp.errors import GitexpError
    from gitexp.restore import _Below

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    with _Below(root) as below:
        fd, name = below.parent("a/b/f", make=True)
        assert name == "f"
    shutil.rmtree(root / "a" / "b")
    os.symlink(outside, root / "a" / "b")
    for make in (False, True):
        with _Below(root) as below, pytest.raises(GitexpError, match="a/b is a symlink"):
            below.parent("a/b/f", make=make)
    assert os.listdir(outside) == []


def test_reproduce_asks_on_a_terminal_and_shows_the_command_escaped(corpus: Corpus, tmp_path: Path) -> None:
    import pty

    repo = corpus.victim.root
    message = git(repo, "log", "-1", "--format=%B", "refs/experiments/base")
    meta = json.loads(git(repo, "show", "refs/experiments/base:.gitexp/run.json"))
    meta["command"] = ["python", "t.py", "\x1b]0;owned\x07\x1b[2J"]
    env = {"GIT_INDEX_FILE": str(tmp_path / "index")}
    git(repo, "read-tree", "refs/experiments/base", env=env)
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=json.dumps(meta), capture_output=True,
                          text=True, check=True).stdout.strip()
    git(repo, "update-index", "--cacheinfo", f"100644,{blob},.gitexp/run.json", env=env)
    tree = git(repo, "write-tree", env=env).strip()
    commit = git(repo, "commit-tree", tree, "-m", message.replace("Gitexp-Run: base", "Gitexp-Run: escapes"),
                 env=ATTACKER).strip()
    git(repo, "update-ref", "refs/experiments/escapes", commit)
    try:
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "gitexp", "reproduce", "escapes"], cwd=repo, stdin=slave,
                                stdout=slave, stderr=slave, env={**os.environ, "TMPDIR": str(corpus.tmpdir)})
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + 60
        while b"run this command?" not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen
            seen += os.read(master, 4096)
        os.write(master, b"n\n")
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(timeout=60) == 1
        os.close(master)
    finally:
        git(repo, "update-ref", "-d", "refs/experiments/escapes")
    assert b"\x1b" not in seen and b"\\x1b]0;owned\\x07" in seen, seen
    assert b"mallory@evil.example" in seen and b"nothing was run" in seen
    assert not corpus.marker.exists()



def test_a_tracked_link_to_the_data_is_restored_as_a_directory_in_a_copy_and_never_written_through(ws: Workspace, tmp_path: Path) -> None:
    """The honest form of 'a code symlink and data below it': data -> /mnt/datasets committed, data declared."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "f1").write_text("1\n")
    os.symlink(shared, ws.root / "data")
    ws.write(".gitexp.yaml", "data: [data]\n")
    ws.commit_all("a tracked link to the dataset")
    assert ws.gitexp("trust", str(shared)).code == 0  # a dataset outside the repository: this clone consents once
    ws.run("-n", "A", "--", "true")
    before = _state(shared)
    copy = tmp_path / "copy"
    result = ws.gitexp("checkout", "--into", str(copy), "A")
    assert result.code == 0, result.err
    assert not (copy / "data").is_symlink() and (copy / "data" / "f1").read_text() == "1\n"
    assert _state(shared) == before
    (shared / "f1").write_text("changed by a teammate\n")
    ws.freeze()
    refused = ws.gitexp("checkout", "A")  # in place: never through the link (it says how to get a copy)
    assert refused.code == 1 and "data is a symlink" in refused.err and "--into" in refused.err, refused.err
    assert (shared / "f1").read_text() == "changed by a teammate\n"

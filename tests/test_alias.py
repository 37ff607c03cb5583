"""Aliases: a unique name for a run, moved with its history kept in git, travelling with the notes."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import Workspace, git, gitexp

REF = "refs/notes/gitexp-aliases"


def _runs(ws: Workspace) -> None:
    ws.write("train.py", "import sys\nopen('model.txt', 'w').write(sys.argv[1])\n")
    ws.write(".gitexp.yaml", "outputs: [model.txt]\n")
    ws.write(".gitignore", "model.txt\n")
    ws.commit_all()
    ws.run("-n", "r1", "--", sys.executable, "train.py", "one")
    ws.run("-n", "r2", "--", sys.executable, "train.py", "two")


def test_an_alias_names_its_run_everywhere_and_moves_with_history(ws: Workspace, tmp_path: Path) -> None:
    _runs(ws)
    ws.freeze()
    first = ws.gitexp("alias", "r1", "production")
    assert first.code == 0, first.err
    shown = ws.gitexp("show", "production", "--json")
    assert shown.code == 0 and shown.json()["name"] == "r1"  # type: ignore[index]
    moved = ws.gitexp("alias", "r2", "production")
    assert moved.code == 0 and "moved from r1" in moved.out
    got = ws.gitexp("get", "production", "model.txt", "-o", "-")
    assert got.code == 0 and got.out == "two"
    assert ws.gitexp("diff", "r1", "production").code == 0
    listed = ws.gitexp("alias")
    assert "production" in listed.out and "r2" in listed.out and "r1" not in listed.out
    history = ws.git("log", "--format=%s", REF).splitlines()
    assert len(history) == 2 and "production -> r2" in history[0] and "production -> r1" in history[1]
    assert ws.gitexp("alias", "-d", "production").code == 0
    assert ws.gitexp("show", "production").code == 1
    assert len(ws.git("log", "--format=%s", REF).splitlines()) == 3
    assert ws.gitexp("alias", "-d", "production").code == 1


def test_an_alias_cannot_take_a_run_name_nor_an_invalid_one(ws: Workspace) -> None:
    _runs(ws)
    clash = ws.gitexp("alias", "r1", "r2")
    assert clash.code == 1 and "clash with the run named 'r2'" in clash.err
    for bad in ("latest", "a b", "../x"):
        result = ws.gitexp("alias", "r1", bad)
        assert result.code == 1 and "invalid alias name" in result.err
    assert REF not in ws.git("for-each-ref", "--format=%(refname)")


def test_aliases_travel_with_push_and_fetch_to_a_clone(ws: Workspace, tmp_path: Path) -> None:
    _runs(ws)
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "origin", str(bare))
    ws.git("push", "-q", "origin", "main")
    assert ws.gitexp("alias", "r1", "production").code == 0
    pushed = ws.gitexp("push", "origin")
    assert pushed.code == 0, pushed.err
    assert REF in git(bare, "for-each-ref", "--format=%(refname)")
    on_server = gitexp(bare, "alias")  # a bare repository lists them, and resolves them
    assert on_server.code == 0 and "production" in on_server.out and "r1" in on_server.out
    assert gitexp(bare, "get", "production", "train.py", "-o", "-").out.startswith("import sys")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    assert gitexp(clone, "init").code == 0
    git(clone, "fetch", "-q")
    shown = gitexp(clone, "show", "production", "--json")
    assert shown.code == 0, shown.err
    assert shown.json()["name"] == "r1"  # type: ignore[index]
    assert ws.gitexp("alias", "r2", "production").code == 0
    ws.git("push", "-q", "origin", f"{REF}:{REF}")
    pulled = gitexp(clone, "pull", "origin", "--no-data")
    assert pulled.code == 0, pulled.err
    assert gitexp(clone, "show", "production", "--json").json()["name"] == "r2"  # type: ignore[index]


def test_a_renamed_run_keeps_its_alias(ws: Workspace) -> None:
    _runs(ws)
    assert ws.gitexp("alias", "r1", "best").code == 0
    assert ws.gitexp("rename", "r1", "r1-final").code == 0
    shown = ws.gitexp("show", "best", "--json")
    assert shown.code == 0 and shown.json()["name"] == "r1-final"  # type: ignore[index]


def _forge_aliases(ws: Workspace, content: str) -> None:
    """refs/notes/gitexp-aliases as someone else may have pushed it: one commit holding aliases.json."""
    import subprocess

    def plumb(*args: str, data: str | None = None) -> str:
        return subprocess.run(["git", *args], cwd=ws.root, input=data, capture_output=True, text=True, check=True).stdout.strip()

    blob = plumb("hash-object", "-w", "--stdin", data=content)
    tree = plumb("mktree", data=f"100644 blob {blob}\taliases.json\n")
    plumb("update-ref", REF, plumb("commit-tree", tree, "-m", "forged"))


def test_a_hostile_alias_ref_is_shown_inert_and_a_deep_one_is_ignored(ws: Workspace) -> None:
    _runs(ws)
    commit = ws.runs()["r1"]
    _forge_aliases(ws, '{"prod\\u001b]0;pwned\\u0007": {"run": "r1\\u001b[2J", "commit": "%s"}}' % commit)
    listed = ws.gitexp("alias")
    assert listed.code == 0 and "\x1b" not in listed.out and "prod\\x1b]0;pwned\\x07" in listed.out, listed.out
    _forge_aliases(ws, "[" * 100_000 + "]" * 100_000)
    for args in (("alias",), ("show", "r1"), ("list",)):
        result = ws.gitexp(*args)
        assert result.code == 0 and "Traceback" not in result.err, (args, result.err)

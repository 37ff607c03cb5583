"""Hostile or damaged runs, built by hand with git plumbing: each one affects only itself.

A run that cannot be read is skipped with one warning naming it, and every command works for
the others; a command naming it gets a one-line error; nothing from a run reaches the terminal
as a control character; JSON output stays exact; no traceback, never exit 3 (internal error).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import IDENTITY, Result, Workspace, git, git_daemon, gitexp, run_in_pty

DEEP = 100_000
ESC_TITLE = "\x1b]0;pwned\x07"
ESC_CLEAR = "\x1b[2J"
C1_NAME = "evil\u009b2J"  # git refuses C0 controls in ref names, not C1 (CSI here)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# -- building runs by hand ------------------------------------------------------------------


def _plumb(cwd: Path, *args: str, data: bytes = b"", env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, env={**os.environ, **IDENTITY, **(env or {})})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().strip()


def forge(
    repo: Path,
    template: str,
    name: str,
    message: str | None = None,
    trailers: dict[str, str] | None = None,
    body: str | None = None,
    files: dict[str, bytes] | None = None,
) -> str:
    """A run commit like refs/experiments/<template>, with its message or record files altered, at refs/experiments/<name>."""
    commit = _plumb(repo, "rev-parse", f"refs/experiments/{template}")
    raw = _plumb(repo, "cat-file", "commit", commit)
    headers, _, original = raw.partition("\n\n")
    parents = [line.split()[1] for line in headers.splitlines() if line.startswith("parent ")]
    if message is None:
        paragraphs = original.rstrip("\n").split("\n\n")
        lines = paragraphs[-1].split("\n")
        for key, value in (trailers or {}).items():
            lines = [ln for ln in lines if not ln.startswith(key + ": ")] + [f"{key}: {value}"]
        paragraphs[-1] = "\n".join(lines)
        if body is not None:
            paragraphs = [paragraphs[0], body, paragraphs[-1]]
        message = "\n\n".join(paragraphs) + "\n"
    index = Path(_plumb(repo, "rev-parse", "--absolute-git-dir")) / "forge-index"
    env = {"GIT_INDEX_FILE": str(index)}
    _plumb(repo, "read-tree", commit, env=env)
    for path, content in (files or {}).items():
        blob = _plumb(repo, "hash-object", "-w", "--stdin", data=content)
        _plumb(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
    tree = _plumb(repo, "write-tree", env=env)
    index.unlink()
    forged = _plumb(repo, "commit-tree", tree, *(a for p in parents for a in ("-p", p)), data=message.encode("utf-8"))
    _plumb(repo, "update-ref", f"refs/experiments/{name}", forged)
    return forged


def record(repo: Path, run: str, filename: str) -> dict[str, object]:
    return json.loads(git(repo, "show", f"refs/experiments/{run}:.gitexp/{filename}"))  # type: ignore[no-any-return]


# -- checking what a command did ---------------------------------------------------------------


def clean(result: Result, what: str) -> Result:
    """No traceback, no internal error, nothing a terminal would act on, in stdout or stderr."""
    for stream in (result.out, result.err):
        assert "Traceback" not in stream, f"{what}: {stream}"
        assert "internal error" not in stream, f"{what}: {stream}"
        found = _CONTROL.search(stream)
        assert found is None, f"{what}: raw {found.group()!r} printed: {stream!r}"
    assert result.code != 3, f"{what}: {result.err}"
    return result


def warned_once(result: Result, run: str) -> None:
    lines = [ln for ln in result.err.splitlines() if f"refs/experiments/{run}:" in ln]
    assert len(lines) == 1, f"expected one warning naming {run}: {result.err!r}"


def one_line_error(result: Result, run: str) -> None:
    assert result.code == 1, result.err
    assert result.err.count("\n") == 1 and result.err.startswith("gitexp: error: ") and run in result.err, result.err


@pytest.fixture
def victim(ws: Workspace, tmp_path: Path) -> Workspace:
    """A repo with a bare origin, a data remote and two good runs with params, metrics and data."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    ws.git("remote", "add", "origin", str(bare))
    ws.write(".gitexp.yaml", f"data: [data]\nremotes:\n  shared: {tmp_path / 'datastore'}\n")
    ws.write("params.yaml", "lr: 0.1\n")
    ws.write("train.py", "import json\njson.dump({'acc': 0.5}, open('metrics.json', 'w'))\nprint('trained')\n")
    ws.write(".gitignore", "metrics.json\n")
    ws.commit_all("base")
    assert ws.gitexp("remote", "trust", "shared").code == 0  # written by hand: this clone consents once
    ws.git("push", "-q", "-u", "origin", "main")
    ws.write("data/train.csv", "a,b\n1,2\n")
    ws.run("-n", "good1", "--", sys.executable, "train.py")
    ws.write("data/train.csv", "a,b\n3,4\n")
    ws.run("-n", "good2", "-S", "lr=0.2", "--", sys.executable, "train.py")
    return ws


def _digest_of_input(ws: Workspace, run: str) -> str:
    """The cache object of data/train.csv as the run recorded it (inside its data directory's manifest)."""
    data = record(ws.root, run, "data.json")
    manifest = record(ws.root, run, f"manifests/{data['inputs'][0]['digest']}.json")  # type: ignore[index]
    return manifest["files"][0]["digest"]  # type: ignore[index, no-any-return]


# -- one bad run does not block the others ---------------------------------------------------


def test_a_trailer_nested_100000_deep_skips_only_its_run_with_one_warning(victim: Workspace) -> None:
    ws = victim
    forge(ws.root, "good1", "evil-deep", trailers={"Gitexp-Metrics": "[" * DEEP + "]" * DEEP})
    forge(ws.root, "good1", "evil-deep-params", trailers={"Gitexp-Params": '{"a":' * DEEP + "1" + "}" * DEEP})
    for args in (["list"], ["list", "--json"], ["tree"], ["tree", "--json"], ["compare", "good1", "good2"]):
        result = clean(ws.gitexp(*args), " ".join(args))
        assert result.code == 0, result.err
        assert "good1" in result.out and "good2" in result.out, args
        assert "evil-deep" not in result.out
        if args[0] == "list":
            warned_once(result, "evil-deep")
            warned_once(result, "evil-deep-params")
    listed = json.loads(ws.gitexp("list", "--json").out)
    assert {r["name"] for r in listed} == {"good1", "good2"}
    one_line_error(clean(ws.gitexp("show", "evil-deep"), "show"), "evil-deep")
    one_line_error(clean(ws.gitexp("diff", "good1", "evil-deep"), "diff"), "evil-deep")
    pushed = clean(ws.gitexp("push"), "push")
    assert pushed.code == 0, pushed.err
    assert "good1" in git(ws.root, "ls-remote", "origin")


@pytest.mark.parametrize(
    "case, files",
    [
        ("deep-run-json", {".gitexp/run.json": b"[" * DEEP + b"]" * DEEP}),
        ("malformed-run-json", {".gitexp/run.json": b'{"command": ["python", '}),
        ("wrong-run-json", {".gitexp/run.json": b'{"command": 5, "cwd": [1], "host": {"x": 1}}'}),
        ("deep-params-json", {".gitexp/params.json": b'{"a":' * 5000 + b"1" + b"}" * 5000}),
        ("deep-env-json", {".gitexp/env.json": b"[" * DEEP + b"]" * DEEP}),
        ("wrong-env-json", {".gitexp/env.json": b'{"python": 3, "gpus": {"a": 1}, "env": [1], "memory_bytes": 1e400}'}),
        ("deep-metrics-json", {".gitexp/metrics.json": b"[" * DEEP + b"]" * DEEP}),
    ],
)
def test_a_damaged_record_file_fails_only_the_command_naming_its_run(victim: Workspace, case: str, files: dict[str, bytes]) -> None:
    ws = victim
    name = f"evil-{case}"
    forge(ws.root, "good1", name, files=files)
    listed = clean(ws.gitexp("list"), "list")
    assert listed.code == 0 and "good1" in listed.out and "good2" in listed.out
    for args in (["show", "good1"], ["diff", "good1", "good2"], ["compare", "good1", "good2"], ["tree"], ["logs", "good1"]):
        result = clean(ws.gitexp(*args), " ".join(args))
        assert result.code == 0, (args, result.err)
    for args in (["show", name], ["diff", "good1", name], ["compare", "good1", name], ["logs", name], ["show", "--json", name]):
        result = clean(ws.gitexp(*args), " ".join(args))
        if result.code != 0:
            one_line_error(result, name)


@pytest.mark.parametrize(
    "case, data",
    [
        ("up-path", lambda d: {**d, "inputs": [{**d["inputs"][0], "path": "../x"}]}),
        ("abs-path", lambda d: {**d, "inputs": [{**d["inputs"][0], "path": "/abs/x"}]}),
        ("deep", lambda d: "[" * DEEP + "]" * DEEP),
        ("malformed", lambda d: '{"inputs": [{"path": '),
        ("not-a-list", lambda d: {"inputs": {"path": "data"}}),
        ("bad-manifest", None),
    ],
)
def test_a_bad_pointer_or_data_json_is_skipped_by_pull_fsck_gc_which_and_diff(victim: Workspace, tmp_path: Path, case: str, data: object) -> None:
    ws = victim
    name = f"evil-{case}"
    good = record(ws.root, "good1", "data.json")
    if data is None:  # a directory pointer whose manifest is not JSON
        digest = "0" * 32
        good = {**good, "inputs": [{"path": "data", "kind": "dir", "digest": digest, "size": 1, "files": 1, "cached": True}]}
        files = {".gitexp/data.json": json.dumps(good).encode(), f".gitexp/manifests/{digest}.json": b"[" * DEEP}
    else:
        forged = data(good)  # type: ignore[operator]
        files = {".gitexp/data.json": (forged if isinstance(forged, str) else json.dumps(forged)).encode()}
    forge(ws.root, "good1", name, files=files)

    which = clean(ws.gitexp("which", "data/train.csv"), "which")
    assert which.code == 0 and "good2" in which.out, which.err
    warned_once(which, name)
    fsck = clean(ws.gitexp("fsck"), "fsck")
    assert "checked" in fsck.out
    warned_once(fsck, name)
    pushed = clean(ws.gitexp("push"), "push")
    assert pushed.code == 0, pushed.err
    warned_once(pushed, name)
    diff = clean(ws.gitexp("diff", "good1", "good2"), "diff")
    assert diff.code == 0 and "data" in diff.out
    one_line_error(clean(ws.gitexp("diff", "good1", name), "diff bad"), name)

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), str(clone))
    assert gitexp(clone, "init").code == 0
    pulled = clean(gitexp(clone, "pull"), "pull")
    assert pulled.code == 0, pulled.err
    warned_once(pulled, name)
    checkout = clean(gitexp(clone, "checkout", "good2"), "checkout good2")
    assert checkout.code == 0, checkout.err
    assert (clone / "data/train.csv").read_text() == "a,b\n3,4\n"

    kept = _digest_of_input(ws, "good1")
    ws.git("update-ref", "-d", "refs/experiments/good1")  # the skipped run may now be the only one using it
    gc = clean(ws.gitexp("gc", "--now"), "gc")
    assert gc.code == 0, gc.err
    warned_once(gc, name)
    cache = ws.root / ".git" / "gitexp" / "cache" / "objects"
    if case in ("up-path", "abs-path"):
        assert (cache / kept[:2] / kept[2:]).exists(), "gc keeps every object a skipped run mentions"
    assert clean(ws.gitexp("fsck"), "fsck after gc").code == 1


def test_a_commit_with_an_unknown_encoding_or_huge_message_is_skipped(victim: Workspace) -> None:
    ws = victim
    commit = _plumb(ws.root, "rev-parse", "refs/experiments/good1")
    raw = _plumb(ws.root, "cat-file", "commit", commit)
    headers, _, message = raw.partition("\n\n")
    bad = (headers + "\nencoding no-such-encoding\n\n").encode() + b"subject \xff\xfe\n\n" + message.split("\n\n", 1)[1].encode()
    forged = _plumb(ws.root, "hash-object", "-t", "commit", "-w", "--stdin", data=bad)
    _plumb(ws.root, "update-ref", "refs/experiments/evil-encoding", forged)
    result = clean(ws.gitexp("list"), "list")
    assert result.code == 0 and "good1" in result.out and "evil-encoding" in result.out


# -- everything printed is inert -----------------------------------------------------------


EVIL = "evil-esc"  # a run whose name is fine and whose contents are not


def test_escape_sequences_in_a_run_are_shown_escaped_and_json_stays_exact(victim: Workspace) -> None:
    ws = victim
    evil_params = {f"k{ESC_CLEAR}": f"v{ESC_TITLE}"}
    forge(ws.root, "good1", C1_NAME)  # a ref no run can be named: skipped, and its name shown escaped
    skipped = clean(ws.gitexp("list"), "list")
    assert skipped.code == 0 and "evil\\x9b2J" in skipped.err and "\x9b" not in skipped.err + skipped.out
    git(ws.root, "update-ref", "-d", f"refs/experiments/{C1_NAME}")
    forge(
        ws.root,
        "good1",
        EVIL,
        trailers={
            "Gitexp-Tags": json.dumps([f"t{ESC_TITLE}"]),
            "Gitexp-Params": json.dumps(evil_params),
            "Gitexp-Metrics": json.dumps({f"m{ESC_CLEAR}": 1.0}),
            "Gitexp-Status": f"completed{ESC_CLEAR}",
        },
        body=f"note{ESC_TITLE}\u202eline",
        files={".gitexp/run.json": json.dumps({"command": ["echo", f"x{ESC_CLEAR}"], "cwd": f"d{ESC_TITLE}"}).encode(),
               ".gitexp/stdout.log": f"out{ESC_CLEAR}\n".encode()},
    )
    shown = [
        ["list"], ["list", "-f", "csv"], ["list", "-f", "markdown"], ["tree"], ["show", EVIL], ["compare", "good1", EVIL],
        ["diff", "good1", EVIL], ["tag", EVIL], ["note", EVIL],
    ]
    for args in shown:
        result = clean(ws.gitexp(*args), " ".join(args))
        assert result.code == 0, (args, result.err)
    listing = ws.gitexp("list").out
    assert EVIL in listing and "k\\x1b[2J" in listing and "v\\x1b]0;pwned\\x07" in listing
    show = ws.gitexp("show", EVIL).out
    assert "echo 'x\\x1b[2J'" in show and "note\\x1b]0;pwned\\x07\\u202eline" in show and "out\\x1b[2J" in show
    assert "t\\x1b]0;pwned\\x07" in ws.gitexp("tag", EVIL).out
    # JSON output is exact
    listed = {r["name"]: r for r in json.loads(ws.gitexp("list", "--json").out)}
    assert listed[EVIL]["params"] == evil_params and listed[EVIL]["tags"] == [f"t{ESC_TITLE}"]
    details = json.loads(ws.gitexp("show", "--json", EVIL).out)
    assert details["meta"]["command"] == ["echo", f"x{ESC_CLEAR}"] and details["note"] == f"note{ESC_TITLE}\u202eline"
    # notes set later, too
    notes_ref = "refs/notes/gitexp"
    commit = _plumb(ws.root, "rev-parse", "refs/experiments/good2")
    _plumb(ws.root, "notes", f"--ref={notes_ref}", "add", "-f", "-m", json.dumps({"tags": [ESC_CLEAR], "note": ESC_TITLE}), commit)
    for args in (["list"], ["tag", "good2"], ["note", "good2"], ["show", "good2"], ["tree"]):
        result = clean(ws.gitexp(*args), " ".join(args))
        assert result.code == 0, (args, result.err)
    assert "\\x1b[2J" in ws.gitexp("tag", "good2").out


def test_logs_escape_control_characters_on_a_terminal_unless_raw_and_are_exact_when_piped(victim: Workspace) -> None:
    ws = victim
    forge(ws.root, "good1", "evil-logs", files={".gitexp/stdout.log": f"a{ESC_TITLE}b\r\nprogress 1\rprogress 2\n".encode()})
    piped = subprocess.run([sys.executable, "-m", "gitexp", "logs", "evil-logs"], cwd=ws.root, capture_output=True)
    assert piped.returncode == 0 and piped.stdout == f"a{ESC_TITLE}b\r\nprogress 1\rprogress 2\n".encode()
    code, out = run_in_pty([sys.executable, "-m", "gitexp", "logs", "evil-logs"], ws.root)
    assert code == 0 and b"\x1b" not in out and b"\x07" not in out, out
    assert b"a\\x1b]0;pwned\\x07b" in out and b"progress 1" in out and b"progress 2" in out
    code, out = run_in_pty([sys.executable, "-m", "gitexp", "logs", "--raw", "evil-logs"], ws.root)
    assert code == 0 and ESC_TITLE.encode() in out


def test_tag_and_note_of_a_run_whose_note_is_hostile_work(victim: Workspace) -> None:
    ws = victim
    commit = _plumb(ws.root, "rev-parse", "refs/experiments/good1")
    _plumb(ws.root, "notes", "--ref=refs/notes/gitexp", "add", "-F", "-", commit, data=b"[" * DEEP + b"]" * DEEP)
    assert clean(ws.gitexp("list"), "list").code == 0
    assert clean(ws.gitexp("tag", "good1", "fine"), "tag").code == 0
    assert ws.gitexp("tag", "good1").out.split() == ["fine"]
    assert clean(ws.gitexp("note", "good1", "ok now"), "note").code == 0
    assert ws.gitexp("note", "good1").out.strip() == "ok now"


# -- YAML from a checked-out run ---------------------------------------------------------------

ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
)


def test_a_yaml_alias_bomb_in_a_checked_out_params_file_is_refused_at_once(victim: Workspace) -> None:
    ws = victim
    assert len(ALIAS_BOMB.encode()) < 400
    forge(ws.root, "good1", "evil-yaml", files={"params.yaml": ALIAS_BOMB.encode()})
    checkout = clean(ws.gitexp("checkout", "evil-yaml"), "checkout")
    assert checkout.code == 0, checkout.err
    assert (ws.root / "params.yaml").read_text() == ALIAS_BOMB
    started = time.monotonic()
    result = clean(ws.gitexp("run", "--", sys.executable, "train.py", timeout=120), "run")
    assert result.code == 1 and "params.yaml" in result.err and "aliases" in result.err, result.err
    assert result.err.count("\n") == 1
    assert time.monotonic() - started < 60
    ws.write("params.yaml", "x: &x [*x]\n")
    cyclic = clean(ws.gitexp("run", "--", sys.executable, "train.py"), "run cyclic")
    assert cyclic.code == 1 and "params.yaml" in cyclic.err
    ws.write("params.yaml", "lr: 0.1\n")
    ws.write(".gitexp.yaml", ALIAS_BOMB)
    config = clean(ws.gitexp("run", "--", sys.executable, "train.py"), "run bad config")
    assert config.code == 1 and ".gitexp.yaml" in config.err


# -- fetched from an attacker over the git protocol -------------------------------------------------


def test_hostile_runs_fetched_over_git_daemon_leave_every_command_working(victim: Workspace, tmp_path: Path) -> None:
    ws = victim
    attacker = tmp_path / "served" / "attacker.git"
    git(tmp_path, "clone", "-q", "--bare", str(ws.root), str(attacker))
    git(ws.root, "push", "-q", str(attacker), "refs/experiments/*:refs/experiments/*")
    good = record(ws.root, "good1", "data.json")
    forge(attacker, "good1", "evil-deep", trailers={"Gitexp-Metrics": "{" * DEEP})
    forge(attacker, "good1", "evil-path", files={".gitexp/data.json": json.dumps({**good, "inputs": [{**good["inputs"][0], "path": "../x"}]}).encode()})  # type: ignore[dict-item, index]
    forge(attacker, "good1", "evil-ansi", trailers={"Gitexp-Tags": json.dumps([ESC_CLEAR])}, body=ESC_TITLE)
    for name in ("good1", "good2"):
        git(attacker, "update-ref", "-d", f"refs/experiments/{name}")
    with git_daemon(tmp_path / "served") as url:
        ws.git("remote", "add", "attacker", f"{url}/attacker.git")
        pulled = clean(ws.gitexp("pull", "attacker", "--no-data"), "pull")
        assert pulled.code == 0, pulled.err
    assert {"evil-deep", "evil-path", "evil-ansi"} <= set(ws.runs())
    listed = clean(ws.gitexp("list"), "list")
    assert listed.code == 0 and all(n in listed.out for n in ("good1", "good2", "evil-path", "evil-ansi"))
    warned_once(listed, "evil-deep")
    for args in (
        ["list", "--json"], ["tree"], ["show", "good1"], ["show", "evil-ansi"], ["diff", "good1", "good2"],
        ["compare", "good1", "good2", "evil-ansi"], ["logs", "good2"], ["which", "data/train.csv"], ["fsck"], ["gc"],
        ["push"], ["pull"], ["tag", "evil-ansi"], ["note", "evil-ansi"],
    ):
        result = clean(ws.gitexp(*args), " ".join(args))
        assert result.code in (0, 1), (args, result.err)
        if args[0] in ("which", "fsck", "gc", "push", "pull"):
            warned_once(result, "evil-path")
        if args[0] not in ("fsck",):
            assert result.code == 0, (args, result.err)
    for args in (["show", "evil-deep"], ["diff", "good1", "evil-path"]):
        one_line_error(clean(ws.gitexp(*args), " ".join(args)), args[-1])


def test_a_chain_of_thousands_of_runs_draws_as_a_tree() -> None:
    from gitexp.format import summary_from_message
    from gitexp.lineage import build
    from gitexp.render import tree_text

    runs = []
    parent = ""
    for i in range(3000):
        trailers = "Gitexp-Status: completed\nGitexp-Started: 2025-01-01T00:00:00+00:00" + (f"\nGitexp-Parent-Run: {parent}" if parent else "")
        commit = f"{i:040x}"
        runs.append(summary_from_message(f"r{i}", commit, f"s\n\n{trailers}\n"))
        parent = commit
    text = tree_text(build(runs), None, False, False)
    assert text.count("\n") == 3000 and text.splitlines()[-1].lstrip(" |`-").startswith("r2999")


def test_a_lineage_thousands_of_runs_deep_renders_as_text_and_json() -> None:
    """A chain of runs (forged, or a long-lived branch) nests as deep as it is long: no renderer recurses on it."""
    from gitexp import lineage
    from gitexp.model import RunSummary
    from gitexp.render import to_json

    depth = 5000
    chain = [
        RunSummary(name=f"r{i}", commit=f"{i:040x}", status="completed", exit_code=0, started=f"2026-01-01T00:00:{i % 60:02d}",
                   duration=1.0, user="u", base=None, base_branch=None, parent=f"{i - 1:040x}" if i else None)
        for i in range(depth)
    ]
    groups = lineage.build(chain)
    from gitexp.render import tree_text

    assert tree_text(groups, None, unicode=True, colour=False).count("r") >= depth
    text = to_json(lineage.to_dict(groups, None))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(4 * depth)  # for the test's own reading: Python's JSON decoder recurses
    try:
        data = json.loads(text)
    finally:
        sys.setrecursionlimit(limit)
    node, seen = data[0]["runs"][0], 1
    while node["children"]:
        node, seen = node["children"][0], seen + 1
    assert seen == depth and node["name"] == f"r{depth - 1}"


def test_reproduce_of_a_run_with_deep_run_json_or_env_json_is_refused_in_one_line(victim: Workspace) -> None:
    ws = victim
    forge(ws.root, "good1", "evil-run-json", files={".gitexp/run.json": ("[" * DEEP + "]" * DEEP).encode()})
    one_line_error(clean(ws.gitexp("reproduce", "--yes", "evil-run-json"), "reproduce"), "evil-run-json")
    forge(ws.root, "good1", "evil-env-json", files={".gitexp/env.json": ("{\"a\":" * DEEP + "1" + "}" * DEEP).encode()})
    result = clean(ws.gitexp("reproduce", "--yes", "evil-env-json"), "reproduce")
    assert result.code in (0, 1) and "Traceback" not in result.err, result.err  # env.json is only informative

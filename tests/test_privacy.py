"""Consent and privacy: a run's say-so never makes gitexp read outside the repository or send data to a new
place; files that look like secrets never enter a run's data, outputs or artifacts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from conftest import Workspace, git, gitexp

PY = sys.executable
TOKEN = "sk-live-0123456789abcdef"  # what must never leave the victim's machine


def cache_bytes(repo: Path) -> bytes:
    """Everything in the repository's data cache, concatenated."""
    return b"".join(p.read_bytes() for p in sorted((repo / ".git/gitexp/cache/objects").glob("*/*")))


def all_git_text(repo: Path) -> str:
    """Every object git holds, as text: a secret recorded anywhere (a trailer, a blob) shows here."""
    return git(repo, "cat-file", "--batch-all-objects", "--batch")


def hostile_run(tmp_path: Path, origin: Path, victim_private: Path, victim_file: Path, drop: Path) -> None:
    """An attacker publishes run 'evil' whose tree holds a .gitexp.yaml naming the attacker's data remote,
    `data -> <victim's private dir>` and `params.yaml -> <victim's private file>` (built with git plumbing
    around the record of a real run)."""
    attacker = tmp_path / "attacker"
    git(tmp_path, "clone", "-q", str(origin), str(attacker))
    assert gitexp(attacker, "run", "-n", "evil", "--", "true").code == 0
    old = git(attacker, "rev-parse", "refs/experiments/evil").strip()
    (attacker / ".gitexp.yaml").write_text(f"outputs: [model.bin]\ndata: [data]\nremotes:\n  team: {drop}\n")
    os.symlink(victim_private, attacker / "data")
    os.symlink(victim_file, attacker / "params.yaml")
    git(attacker, "add", "-A")
    code_tree = git(attacker, "write-tree").strip()
    record = git(attacker, "rev-parse", f"{old}:.gitexp").strip()
    listing = git(attacker, "ls-tree", code_tree) + f"040000 tree {record}\t.gitexp\n"
    import subprocess

    tree = subprocess.run(["git", "mktree"], cwd=attacker, input=listing, capture_output=True, text=True, check=True).stdout.strip()
    message = git(attacker, "log", "-1", "--format=%B", old)
    base = git(attacker, "rev-parse", "HEAD").strip()
    commit = subprocess.run(["git", "commit-tree", tree, "-p", base], cwd=attacker, input=message, capture_output=True,
                            text=True, check=True, env={**os.environ, "GIT_AUTHOR_NAME": "Mallory",
                            "GIT_AUTHOR_EMAIL": "m@evil", "GIT_COMMITTER_NAME": "Mallory", "GIT_COMMITTER_EMAIL": "m@evil"}).stdout.strip()
    git(attacker, "update-ref", "refs/experiments/evil", commit, old)
    git(attacker, "push", "-q", "origin", "refs/experiments/evil:refs/experiments/evil")


def test_a_fetched_run_cannot_make_the_victim_record_or_upload_private_files(ws: Workspace, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    private = tmp_path / "victim-home" / ".ssh"
    private.mkdir(parents=True)
    (private / "id_work").write_text(f"PRIVATE KEY {TOKEN}\n")
    private_file = tmp_path / "victim-home" / "secrets.yaml"
    private_file.write_text(f"api_token: {TOKEN}\n")
    drop = tmp_path / "attacker-drop"
    ws.write(".gitexp.yaml", "outputs: [model.bin]\n")
    ws.write(".gitignore", "model.bin\n")
    ws.commit_all("base")
    ws.git("remote", "add", "origin", str(origin))
    ws.git("push", "-q", "origin", "main")
    ws.run("-n", "own", "--", "sh", "-c", "echo weights > model.bin")
    hostile_run(tmp_path, origin, private, private_file, drop)

    ws.git("fetch", "-q", "origin", "refs/experiments/*:refs/experiments/*")
    checkout = ws.gitexp("checkout", "evil")
    assert checkout.code == 0, checkout.err
    assert os.readlink(ws.root / "params.yaml") == str(private_file) and os.readlink(ws.root / "data") == str(private)

    refused = ws.gitexp("run", "-n", "mine", "--", "true")
    assert refused.code == 1 and "Traceback" not in refused.err
    [line] = refused.err.strip().splitlines()
    assert f"params file params.yaml -> {private_file}" in line and f"gitexp trust {private_file}" in line
    assert "mine" not in ws.runs()
    trusted_file = ws.gitexp("trust", str(private_file))  # even then, the data link stays refused
    assert trusted_file.code == 0
    refused = ws.gitexp("run", "-n", "mine", "--", "true")
    assert refused.code == 1 and f"data path data -> {private}" in refused.err and f"gitexp trust {private}" in refused.err
    assert "mine" not in ws.runs()
    assert ws.gitexp("trust", "--remove", str(private_file)).code == 0
    assert TOKEN.encode() not in cache_bytes(ws.root) and TOKEN not in all_git_text(ws.root)

    push = ws.gitexp("push")
    assert push.code == 1 and "Traceback" not in push.err
    [line] = push.err.strip().splitlines()
    assert f"data remote 'team' ({drop})" in line and "nothing was sent" in line and "gitexp remote trust team" in line
    assert not drop.exists() or not any(drop.rglob("*")), "nothing reached the attacker's remote"
    assert "refs/experiments/own" not in git(origin, "for-each-ref"), "nor were any refs pushed"
    assert "untrusted" in ws.gitexp("remote", "list").out

    assert ws.gitexp("remote", "trust", "team").code == 0  # the user's explicit consent
    pushed = ws.gitexp("push")
    assert pushed.code == 0, pushed.err
    assert "refs/experiments/own" in git(origin, "for-each-ref")
    sent = b"".join(p.read_bytes() for p in drop.rglob("*") if p.is_file())
    assert b"weights" in sent and TOKEN.encode() not in sent


def test_a_symlink_into_the_git_directory_is_never_read_even_when_trusted(ws: Workspace, tmp_path: Path) -> None:
    ws.write(".gitexp.yaml", "data: [data]\n")
    os.symlink(".git", ws.root / "data")
    refused = ws.gitexp("run", "--", "true")
    assert refused.code == 1 and "inside a git directory" in refused.err
    os.unlink(ws.root / "data")
    ws.write(".gitexp.yaml", "data: [.git/hooks]\n")
    assert ws.gitexp("trust", str(ws.root)).code == 0
    refused = ws.gitexp("run", "--", "true")
    assert refused.code == 1 and "inside a git directory" in refused.err
    assert ws.runs() == {}


def test_a_metrics_file_leading_outside_is_refused_before_the_command(ws: Workspace, tmp_path: Path) -> None:
    private = tmp_path / "docker-config.json"
    private.write_text('{"auths": {"registry": "' + TOKEN + '"}}')
    os.symlink(private, ws.root / "metrics.json")
    refused = ws.gitexp("run", "--", "touch", str(private))  # a run that changes it meanwhile would record it
    assert refused.code == 1 and f"metrics file metrics.json -> {private}" in refused.err
    assert ws.runs() == {}


def test_an_outside_params_file_is_read_once_allowed(ws: Workspace, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "params.yaml"
    shared.parent.mkdir()
    shared.write_text("lr: 0.1\n")
    os.symlink(shared, ws.root / "params.yaml")
    refused = ws.gitexp("run", "--", "true")
    assert refused.code == 1 and f"gitexp trust {shared}" in refused.err
    assert ws.gitexp("trust", str(shared.parent)).code == 0  # a directory allows everything below it
    listed = ws.gitexp("trust").out
    assert f"path\t{shared.parent}" in listed
    ws.run("-n", "p", "--", "true")
    assert ws.record("p", "params.json") == {"lr": 0.1}


def test_secrets_and_excluded_files_in_an_output_dir_are_left_out_and_kept(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "outputs: [out]\nexclude: ['*.tmp', out/scratch]\n")
    ws.write(".gitignore", "out/\n")
    ws.write("train.py", (
        "import os, sys\n"
        "os.makedirs('out/keys', exist_ok=True); os.makedirs('out/scratch', exist_ok=True)\n"
        "open('out/model.bin', 'w').write(sys.argv[1])\n"
        "token = os.environ['SECRET']  # not in the code: the code is recorded\n"
        "open('out/.env', 'w').write('TOKEN=' + token)\n"
        "open('out/keys/server.KEY', 'w').write(token)\n"
        "open('out/id_rsa', 'w').write(token)\n"
        "open('out/cache.tmp', 'w').write('tmp')\n"
        "open('out/scratch/x', 'w').write('scratch')\n"
    ))
    ws.commit_all()
    result = ws.gitexp("run", "-n", "a", "--", PY, "train.py", "A", env={"SECRET": TOKEN})
    assert result.code == 0, result.err
    notice = [line for line in result.err.splitlines() if "left out of the run" in line]
    assert len(notice) == 1
    for path in ("out/.env", "out/keys/server.KEY", "out/id_rsa", "out/cache.tmp", "out/scratch"):
        assert path in notice[0]
    [pointer] = ws.record("a", "data.json")["outputs"]  # type: ignore[index]
    manifest = ws.record("a", f"manifests/{pointer['digest']}.json")
    assert [e["path"] for e in manifest["files"]] == ["model.bin"]  # type: ignore[index]
    assert TOKEN.encode() not in cache_bytes(ws.root) and TOKEN not in all_git_text(ws.root)
    assert ws.gitexp("run", "-n", "b", "--", PY, "train.py", "B", env={"SECRET": TOKEN}).code == 0
    checkout = ws.gitexp("checkout", "a")
    assert checkout.code == 0, checkout.err
    assert (ws.root / "out/model.bin").read_text() == "A"
    assert (ws.root / "out/.env").read_text() == f"TOKEN={TOKEN}", "a checkout never removes what no run holds"
    assert (ws.root / "out/keys/server.KEY").exists() and (ws.root / "out/scratch/x").exists()


def test_a_declared_secret_file_is_not_taken_as_data(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "data: [.env, data]\n")
    ws.write(".gitignore", ".env\ndata/\n")
    ws.write(".env", f"TOKEN={TOKEN}\n")
    ws.write("data/train.csv", "1\n")
    result = ws.run("-n", "d", "--", "true")
    assert ".env (looks like a secret: .env)" in result.err
    assert [p["path"] for p in ws.record("d", "data.json")["inputs"]] == ["data"]  # type: ignore[index]
    assert TOKEN.encode() not in cache_bytes(ws.root)


def test_log_artifact_refuses_secrets_and_outside_paths_and_training_goes_on(ws: Workspace, tmp_path: Path) -> None:
    outside = ws.root.parent / "outside"
    outside.mkdir()
    (outside / "f").write_text(f"{TOKEN}\n")
    store = tmp_path / "datastore"
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    ws.git("remote", "add", "origin", str(origin))
    assert ws.gitexp("remote", "add", "shared", str(store)).code == 0  # typed by the user: trusted
    ws.write(".gitexp.yaml", (ws.root / ".gitexp.yaml").read_text() + "outputs: [late]\n")
    ws.write(".gitignore", ".env\nmodel.bin\nlink\nlate\n")
    ws.write(".env", f"TOKEN={TOKEN}\n")
    os.symlink(outside, ws.root / "link")
    ws.write("train.py", (
        "import os, gitexp\n"
        "gitexp.log_artifact('.env')\n"
        "gitexp.log_artifact('../outside/f')\n"
        "gitexp.log_artifact('link/f')\n"
        "open('model.bin', 'w').write('weights')\n"
        "gitexp.log_artifact('model.bin')\n"
        f"os.symlink({str(outside)!r}, 'late')  # a declared output that ends up leading outside\n"
        "print('still training')\n"
    ))
    ws.commit_all()
    result = ws.run("-n", "art", "--", PY, "train.py")
    assert "still training" in result.out and "Traceback" not in result.err
    assert "gitexp.log_artifact:" in result.err and "looks like a secret (.env)" in result.err
    assert result.err.count("is outside the workspace") == 2
    assert f"output late -> {outside}" in result.err and "left out of the run" in result.err
    assert ws.git("log", "-1", "--format=%(trailers:key=Gitexp-Status,valueonly)", "refs/experiments/art").strip() == "completed"
    outputs = ws.record("art", "data.json")["outputs"]  # type: ignore[index]
    assert [p["path"] for p in outputs] == ["model.bin"]
    assert TOKEN.encode() not in cache_bytes(ws.root)
    for command in (["fsck"], ["gc"], ["which", "model.bin"], ["push"]):
        done = ws.gitexp(*command)
        assert done.code == 0, (command, done.err)
    assert "refs/experiments/art" in git(origin, "for-each-ref")
    assert TOKEN.encode() not in b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file())


def test_gitexp_start_refuses_an_artifact_outside_the_workspace(ws: Workspace) -> None:
    outside = ws.root.parent / "elsewhere.bin"
    outside.write_text("x")
    ws.write("nb.py", (
        "import gitexp\n"
        "with gitexp.start(name='nb'):\n"
        "    gitexp.log_artifact('nb.py/../../elsewhere.bin')  # lexically inside, really outside\n"
    ))
    ws.commit_all()
    import subprocess

    proc = subprocess.run([PY, "nb.py"], cwd=ws.root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "is outside the workspace" in proc.stderr, proc.stderr
    assert ws.git("show", "refs/experiments/nb:.gitexp/run.json")
    assert ws.gitexp("show", "--json", "nb").json()["data"] is None  # type: ignore[index]


def test_a_name_is_a_secret_by_the_first_pattern_it_matches_case_insensitively() -> None:
    """secret_pattern tests names with plain string operations: it must say what fnmatch would."""
    import fnmatch
    import itertools

    from gitexp.trust import SECRET_PATTERNS, secret_pattern

    stems = ["", ".env", ".ENV.", "id_rsa", "ID_Ed25519", "credentials", "my", ".netrc", "_netrc", ".npmrc", "x"]
    ends = ["", ".pem", ".KEY", ".json", ".p12", ".pfx", ".pub", ".yaml", "-prod.json", ".local"]
    names = ["".join(p) for p in itertools.product(stems, ends)] + ["key", "pem", "env", "credentials*.json", "[a]"]
    for name in names:
        expected = next((p for p in SECRET_PATTERNS if fnmatch.fnmatchcase(name.lower(), p)), None)
        assert secret_pattern(name) == expected, name
    assert secret_pattern("id_rsa.pem") == "*.pem"  # the pattern listed first wins
    assert secret_pattern("model.pt") is None

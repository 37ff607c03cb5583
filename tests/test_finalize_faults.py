"""Once a run's command started, the run is recorded whatever happens to gitexp afterwards.

Faults are real: a full disk is a small tmpfs holding the repository (root only; skipped elsewhere), a
broken stderr is a real shell pipe into `head`, a second run is a real concurrent gitexp process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import git, wait_for, Workspace

PY = sys.executable




@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Mounts a small file system of its own (a tmpfs) at a directory: a disk that fills up. Root only."""
    mounted: list[Path] = []

    def mount(directory: Path, size: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                                  capture_output=True)
        except OSError:
            pytest.skip("no mount command: a full disk cannot be simulated here")
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here (needs root): {done.stderr.decode().strip()}")
        mounted.append(directory)
        return directory

    yield mount
    for directory in reversed(mounted):
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path, tmpfs: Callable[[Path, str], Path]) -> Path:
    """A 24 MiB disk for a repository."""
    return tmpfs(tmp_path / "disk", "24m")


def repo_in(directory: Path) -> Workspace:
    root = directory / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    ws = Workspace(root)
    ws.write("README", "hello\n")
    ws.commit_all()
    return ws


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fsck_clean(ws: Workspace) -> None:
    done = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=ws.root, capture_output=True, text=True)
    assert done.returncode == 0 and "error" not in done.stderr, done.stderr


def test_an_output_larger_than_the_free_space_is_left_out_and_the_run_recorded_with_what_fits(small_disk: Path) -> None:
    ws = repo_in(small_disk)
    size = free_bytes(small_disk) * 2 // 3  # fits in the workspace, not a second time in the cache
    ws.write("train.py", (
        "import os, sys\n"
        f"open('model.bin', 'wb').write(os.urandom({size}))\n"
        "open('small.txt', 'w').write('kept\\n')\n"
        "open('metrics.json', 'w').write('{\"acc\": 0.75}')\n"
        "print('trained')\n"
        "sys.exit(3)\n"
    ))
    result = ws.gitexp("run", "-n", "big", "-o", "model.bin", "-o", "small.txt", "--", PY, "train.py")
    assert result.code == 3, result.err  # the command's exit code
    assert "Traceback" not in result.err
    assert "incomplete" in result.err and "outputs" in result.err.splitlines()[-1]
    assert "big" in ws.runs()
    meta = ws.record("big", "run.json")
    assert meta["status"] == "failed" and meta["exit_code"] == 3  # type: ignore[index]
    missing = meta["incomplete"]  # type: ignore[index]
    assert [(m["what"], m["path"]) for m in missing] == [("outputs", "model.bin")]
    assert "No space left on device" in missing[0]["why"]
    data = ws.record("big", "data.json")
    assert [p["path"] for p in data["outputs"]] == ["small.txt"]  # type: ignore[index]
    assert ws.record("big", "metrics.json") == {"acc": 0.75}
    assert ws.git("show", "refs/experiments/big:.gitexp/stdout.log") == "trained\n"
    assert 'Gitexp-Incomplete: ["outputs"]' in ws.git("log", "-1", "--format=%B", "refs/experiments/big")
    shown = ws.gitexp("show", "big").out
    assert "missing  outputs (model.bin): No space left on device" in shown
    listed = ws.gitexp("list", "--json").json()
    assert listed[0]["incomplete"] == ["outputs"]  # type: ignore[index]
    assert list((ws.root / ".git/gitexp/cache/tmp").glob("*")) == []  # the partial copy is gone
    assert not (ws.root / ".git/gitexp/live/big.json").exists()
    fsck_clean(ws)


def test_a_full_disk_never_kills_the_command_nor_its_output_and_the_run_is_kept_for_crashed(small_disk: Path) -> None:
    ws = repo_in(small_disk)
    ws.write("fill.py", (
        "import sys\n"
        "try:\n"
        "    with open('filler', 'wb') as f:\n"
        "        while True:\n"
        "            f.write(b'x' * 65536)\n"
        "except OSError:\n"
        "    pass\n"
        "for i in range(3000):\n"
        "    print('line', i, 'x' * 100, flush=True)\n"
        "print('done')\n"
    ))
    ws.commit_all()
    result = ws.gitexp("run", "-n", "filled", "--", PY, "fill.py")
    lines = result.out.splitlines()
    assert len(lines) == 3001 and lines[-1] == "done", "every line reached the terminal, the command was not killed"
    assert "Traceback" not in result.err
    assert "stdout.log" in result.err and "No space left on device" in result.err
    assert result.code == 1 and "stays 'running'" in result.err, result.err
    # Not even the final commit fits: the run stays at its running commit with its scratch dir and live file.
    assert ws.record("filled", "run.json")["status"] == "running"  # type: ignore[index]
    assert (ws.root / ".git/gitexp/live/filled.json").exists()
    assert list((ws.root / ".git/gitexp/tmp").glob("run-*"))
    (ws.root / "filler").unlink()
    ws.run("-n", "after", "--", "true")
    assert ws.record("filled", "run.json")["status"] == "crashed"  # type: ignore[index]
    assert list((ws.root / ".git/gitexp/tmp").glob("run-*")) == []
    fsck_clean(ws)


def test_a_log_cut_short_by_a_full_disk_is_recorded_as_far_as_it_got_and_the_output_goes_on(
    ws: Workspace, tmpfs: Callable[[Path, str], Path]
) -> None:
    ws.write("talk.py", "for i in range(30000):\n    print('line', i, 'x' * 100)\nprint('done')\n")
    ws.commit_all()
    tmpfs(ws.root / ".git/gitexp/tmp", "1m")  # where a run's logs grow: full long before the output ends
    result = ws.gitexp("run", "-n", "talky", "--", PY, "talk.py")
    assert result.code == 0, result.err
    expected = "".join(f"line {i} {'x' * 100}\n" for i in range(30000)) + "done\n"
    assert result.out == expected, "all the output reached gitexp's stdout"
    assert "Traceback" not in result.err
    meta = ws.record("talky", "run.json")
    assert meta["status"] == "completed" and meta["exit_code"] == 0  # type: ignore[index]
    lost = {m["path"]: m["why"] for m in meta["incomplete"] if m["what"] == "logs"}  # type: ignore[index]
    assert "No space left on device" in lost["stdout.log"]
    logged = ws.git("show", "refs/experiments/talky:.gitexp/stdout.log")
    assert 0 < len(logged) < len(expected) and expected.startswith(logged)
    assert "missing  logs (stdout.log): No space left on device" in ws.gitexp("show", "talky").out
    assert list((ws.root / ".git/gitexp/tmp").glob("run-*")) == []


def test_metrics_nested_too_deep_are_left_out_and_the_run_says_why(ws: Workspace) -> None:
    depth = 5000
    ws.write("deep.py", (
        f"open('metrics.json', 'w').write('{{\"a\": ' * {depth} + '1' + '}}' * {depth})\n"
        "print('wrote')\n"
    ))
    ws.commit_all()
    result = ws.gitexp("run", "-n", "deep", "--", PY, "deep.py")
    assert result.code == 0, result.err
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert "incomplete, without its metrics" in result.err
    meta = ws.record("deep", "run.json")
    assert meta["status"] == "completed"  # type: ignore[index]
    missing = meta["incomplete"]  # type: ignore[index]
    assert missing == [{"what": "metrics", "path": "metrics.json", "why": "it nests deeper than 64 levels"}]
    assert ws.record("deep", "metrics.json") == {}
    assert ws.git("show", "refs/experiments/deep:.gitexp/stdout.log") == "wrote\n"
    assert "missing  metrics (metrics.json): it nests deeper than 64 levels" in ws.gitexp("show", "deep").out


@pytest.mark.parametrize("exit_code,status", [(0, "completed"), (3, "failed")])
def test_gitexp_output_piped_to_head_changes_neither_the_record_nor_the_exit_code(
    ws: Workspace, exit_code: int, status: str
) -> None:
    ws.write("count.py", f"import sys\nfor i in range(20000):\n    print(i)\nsys.exit({exit_code})\n")
    ws.commit_all()
    script = (
        f"{PY} -m gitexp run -n piped -- {PY} count.py 2>&1 | head -2; "
        'echo "exit=${PIPESTATUS[0]}"'
    )
    done = subprocess.run(["bash", "-c", script], cwd=ws.root, capture_output=True, text=True, timeout=120)
    out = done.stdout.splitlines()
    assert len(out) == 3 and out[-1] == f"exit={exit_code}", done.stdout + done.stderr
    meta = ws.record("piped", "run.json")
    assert meta["status"] == status and meta["exit_code"] == exit_code  # type: ignore[index]
    assert "incomplete" not in meta  # type: ignore[operator]
    stdout = ws.git("show", "refs/experiments/piped:.gitexp/stdout.log")
    assert stdout == "".join(f"{i}\n" for i in range(20000))
    assert not (ws.root / ".git/gitexp/live/piped.json").exists()


WAIT_FOR_GO = (
    "import os, sys, time\n"
    "deadline = time.time() + 120\n"
    "while not os.path.exists('go') and time.time() < deadline:\n"
    "    time.sleep(0.05)\n"
    "open(sys.argv[1], 'w').write('{\"acc\": 1}')\n"
)


def start_waiting_run(ws: Workspace, name: str, *options: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [PY, "-m", "gitexp", "run", "-n", name, *options, "--", PY, "wait.py", "metrics.json"],
        cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    live = ws.root / ".git/gitexp/live" / f"{name}.json"

    def started() -> bool:
        try:
            return bool(json.loads(live.read_text()).get("command_pid"))
        except (OSError, ValueError):
            return False

    wait_for(started)
    return proc


def finish(ws: Workspace, proc: subprocess.Popen[bytes]) -> None:
    (ws.root / "go").write_text("")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    (ws.root / "go").unlink()


def test_a_second_run_writing_the_same_metrics_file_is_refused_while_the_first_is_live(ws: Workspace) -> None:
    ws.write("wait.py", WAIT_FOR_GO)
    ws.commit_all()
    first = start_waiting_run(ws, "first")
    try:
        second = ws.gitexp("run", "-n", "second", "--", PY, "wait.py", "metrics.json")
    finally:
        finish(ws, first)
    assert second.code == 1
    assert "'first'" in second.err and f"pid {first.pid}" in second.err and "metrics.json" in second.err
    assert "-j" in second.err and "--queue" in second.err and "git worktree add" in second.err
    assert "second" not in ws.runs()
    assert ws.record("first", "run.json")["status"] == "completed"  # type: ignore[index]
    assert ws.record("first", "metrics.json") == {"acc": 1}
    assert ws.gitexp("run", "--queue", "-n", "queued", "--", "true").code == 0  # queueing is not running


def test_a_second_run_writing_inside_the_first_runs_output_is_refused(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "metrics: []\n")
    ws.write("wait.py", WAIT_FOR_GO)
    ws.commit_all()
    first = start_waiting_run(ws, "first", "-o", "out")
    try:
        second = ws.gitexp("run", "-n", "second", "-o", "out/model.bin", "--", "true")
    finally:
        finish(ws, first)
    assert second.code == 1 and "'first'" in second.err and "out/model.bin" in second.err


def test_a_second_run_with_disjoint_metrics_and_outputs_runs_beside_the_first(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "metrics: []\n")
    ws.write("wait.py", WAIT_FOR_GO)
    ws.commit_all()
    first = start_waiting_run(ws, "first", "-o", "a.bin")
    try:
        second = ws.gitexp("run", "-n", "second", "-o", "b.bin", "--", PY, "-c", "open('b.bin', 'w').write('b')")
    finally:
        finish(ws, first)
    assert second.code == 0, second.err
    assert ws.record("second", "run.json")["status"] == "completed"  # type: ignore[index]
    assert ws.record("first", "run.json")["status"] == "completed"  # type: ignore[index]


def test_of_two_runs_started_at_once_with_the_same_metrics_file_exactly_one_runs(ws: Workspace) -> None:
    ws.write("wait.py", WAIT_FOR_GO)
    ws.commit_all()
    procs = {
        name: subprocess.Popen(
            [PY, "-m", "gitexp", "run", "-n", name, "--", PY, "wait.py", "metrics.json"],
            cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for name in ("one", "two")
    }

    def command_started(name: str) -> bool:
        try:
            return bool(json.loads((ws.root / ".git/gitexp/live" / f"{name}.json").read_text()).get("command_pid"))
        except (OSError, ValueError):
            return False

    wait_for(lambda: all(p.poll() is not None or command_started(n) for n, p in procs.items()))
    (ws.root / "go").write_text("")
    outcomes = {name: (p.wait(timeout=120), p.stderr.read() if p.stderr else "") for name, p in procs.items()}
    ran = [name for name, (code, _) in outcomes.items() if code == 0]
    assert len(ran) == 1, outcomes
    other = "two" if ran == ["one"] else "one"
    code, err = outcomes[other]
    assert code == 1 and f"run {ran[0]!r}" in err and "is running in this workspace" in err
    assert set(ws.runs()) == set(ran)


def test_runs_in_copies_are_not_refused_beside_a_live_run_in_the_workspace(ws: Workspace) -> None:
    ws.write("wait.py", WAIT_FOR_GO)
    ws.write("params.yaml", "x: 0\n")
    ws.commit_all()
    first = start_waiting_run(ws, "first")
    try:
        write = "open('metrics.json', 'w').write('{\"acc\": 1}')"
        swept = ws.gitexp("run", "-j", "2", "-S", "x=1,2", "--", PY, "-c", write, timeout=120)
    finally:
        finish(ws, first)
    assert swept.code == 0, swept.err
    assert len(ws.runs()) == 3
    assert all(ws.record(name, "metrics.json") == {"acc": 1} for name in ws.runs())

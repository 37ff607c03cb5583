"""The command runs as if gitexp were not there: output, exit code, signals, terminals."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Workspace, run_in_pty


def script(ws: Workspace, name: str, body: str) -> list[str]:
    ws.write(name, body)
    return [sys.executable, name]


def test_output_is_streamed_and_recorded_byte_for_byte(ws: Workspace) -> None:
    cmd = script(
        ws,
        "out.py",
        "import sys\n"
        "sys.stdout.write('line 1\\nno newline at end')\n"
        "sys.stderr.write('warning: careful\\n')\n"
        "sys.stdout.buffer.write(bytes(range(256)))\n",
    )
    ws.freeze()
    result = ws.gitexp("run", "-n", "out", "--", *cmd)
    assert result.code == 0
    assert "line 1\nno newline at end" in result.out
    assert "warning: careful" in result.err
    stdout = subprocess.run(
        ["git", "cat-file", "blob", "refs/experiments/out:.gitexp/stdout.log"], cwd=ws.root, capture_output=True
    ).stdout
    assert stdout == b"line 1\nno newline at end" + bytes(range(256))
    assert ws.git("show", "refs/experiments/out:.gitexp/stderr.log") == "warning: careful\n"


def test_a_failing_command_is_recorded_as_failed_and_its_exit_code_returned(ws: Workspace) -> None:
    cmd = script(ws, "fail.py", "import sys\nprint('about to fail')\nsys.exit(3)\n")
    ws.freeze()
    result = ws.gitexp("run", "-n", "boom", "--", *cmd)
    assert result.code == 3
    meta = ws.record("boom", "run.json")
    assert meta["status"] == "failed" and meta["exit_code"] == 3
    assert ws.git("show", "refs/experiments/boom:.gitexp/stdout.log") == "about to fail\n"


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal(ws: Workspace) -> None:
    ws.freeze()
    result = ws.gitexp("run", "-n", "killed", "--", "sh", "-c", "kill -9 $$")
    assert result.code == 128 + 9
    assert ws.record("killed", "run.json")["status"] == "failed"


def _start_interruptible(ws: Workspace, body: str, name: str) -> subprocess.Popen[bytes]:
    cmd = script(ws, "long.py", body)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitexp", "run", "-n", name, "--", *cmd],
        cwd=ws.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "the command never started"
    assert proc.stdout.readline().strip() == b"started"
    return proc


LONG = "import time\nprint('started', flush=True)\nprint('partial output', flush=True)\ntime.sleep(60)\n"


def test_ctrl_c_stops_the_command_and_records_it_as_interrupted(ws: Workspace) -> None:
    ws.freeze("long.py")
    proc = _start_interruptible(ws, LONG, "ctrlc")
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"Traceback (most recent call last)" not in err.split(b"KeyboardInterrupt")[-1]
    meta = ws.record("ctrlc", "run.json")
    assert meta["status"] == "interrupted"
    assert "partial output" in ws.git("show", "refs/experiments/ctrlc:.gitexp/stdout.log")


def test_sigint_to_gitexp_alone_is_passed_on_to_the_command(ws: Workspace) -> None:
    ws.freeze("long.py")
    proc = _start_interruptible(ws, LONG, "forwarded")
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # only gitexp gets it: it must stop the command itself
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert ws.record("forwarded", "run.json")["status"] == "interrupted"


def test_sigterm_stops_the_command_and_records_it_as_interrupted(ws: Workspace) -> None:
    ws.freeze("long.py")
    proc = _start_interruptible(ws, LONG, "terminated")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert ws.record("terminated", "run.json")["status"] == "interrupted"


def test_a_command_that_ignores_ctrl_c_is_stopped_firmly(ws: Workspace) -> None:
    body = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" + LONG.split("\n", 1)[1]
    ws.freeze("long.py")
    proc = _start_interruptible(ws, body, "stubborn")
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # a second Ctrl-C: terminate now
    proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert ws.record("stubborn", "run.json")["status"] == "interrupted"


def test_the_command_sees_a_terminal_when_gitexp_runs_in_one(ws: Workspace) -> None:
    cmd = script(ws, "tty.py", "import sys\nprint('isatty', sys.stdout.isatty(), sys.stderr.isatty())\n")
    code, output = run_in_pty([sys.executable, "-m", "gitexp", "run", "-n", "tty", "--", *cmd], ws.root)
    assert code == 0, output
    assert b"isatty True True" in output and b"\r\r\n" not in output
    assert ws.git("show", "refs/experiments/tty:.gitexp/stdout.log") == "isatty True True\n"


def test_the_command_gets_the_run_name_in_its_environment(ws: Workspace) -> None:
    cmd = script(ws, "env.py", "import os\nprint(os.environ['GITEXP_RUN_NAME'])\n")
    result = ws.gitexp("run", "-n", "named", "--", *cmd)
    assert result.out.strip() == "named"


def test_environment_record_holds_versions_but_no_secrets(ws: Workspace) -> None:
    ws.freeze()
    result = ws.gitexp(
        "run", "-n", "env", "--", sys.executable, "-c", "pass",
        env={"MY_SECRET_TOKEN": "hunter2-secret", "CUDA_VISIBLE_DEVICES": "0,1"},
    )
    assert result.code == 0
    env = ws.record("env", "env.json")
    assert env["python"]["version"] == sys.version.split()[0]
    assert env["python"]["source"] == "command"
    assert "pygit2" in env["python"]["packages"] and "click" in env["python"]["packages"]
    from gitexp.environment import ENV_ALLOWLIST

    assert env["env"]["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert set(env["env"]) <= set(ENV_ALLOWLIST)
    assert env["os"]["system"] and env["cpu"]["count"] >= 1
    for record in ("run.json", "env.json", "params.json", "metrics.json"):
        assert "hunter2-secret" not in ws.git("show", f"refs/experiments/env:.gitexp/{record}")


def test_runs_in_a_linked_worktree_keep_their_own_pointer_and_share_runs(ws: Workspace, tmp_path: Path) -> None:
    ws.write("a.py")
    ws.commit_all()
    other = tmp_path / "wt"
    ws.git("worktree", "add", "-q", "-b", "feature", str(other))
    ws.run("-n", "main-run", "--", "true")
    from conftest import gitexp

    result = gitexp(other, "run", "-n", "wt-run", "--", "true")
    assert result.code == 0, result.err
    assert set(ws.runs()) == {"main-run", "wt-run"}
    assert ws.record("wt-run", "run.json")["parent_run"] is None
    assert ws.record("wt-run", "run.json")["base_branch"] == "feature"


def test_a_killed_gitexp_leaves_no_scratch_behind_after_the_next_run(ws: Workspace) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gitexp", "run", "-n", "doomed", "--", "sh", "-c", "echo partial; sleep 60"],
        cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"partial\n"
    scratch = list((ws.root / ".git/gitexp/tmp").glob("run-*"))
    assert scratch and (scratch[0] / "stdout.log").read_bytes() == b"partial\n", "logs are written as they come"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    ws.run("-n", "next", "--", "true")
    assert list((ws.root / ".git/gitexp/tmp").glob("run-*")) == []


class _Stopped(Exception):
    pass


def test_a_sigterm_that_comes_while_the_command_starts_is_passed_on_to_it(tmp_path: Path, monkeypatch) -> None:
    """Seen in CI: a worker stopped just as its command started raised past the command, which ran on
    unrecorded. The signal lands here between the command's start and the return of Popen."""
    from gitexp import process

    real = subprocess.Popen

    def started_then_signalled(*args, **kwargs):  # type: ignore[no-untyped-def]
        proc = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a point where Python runs the handler, before returning
        return proc

    def stop(signum, frame):  # type: ignore[no-untyped-def]
        raise _Stopped  # what a worker's own handler does outside a run

    previous = signal.signal(signal.SIGTERM, stop)
    monkeypatch.setattr(process.subprocess, "Popen", started_then_signalled)
    try:
        outcome = process.execute(["sleep", "60"], tmp_path, dict(os.environ), tmp_path / "out", tmp_path / "err")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert outcome.interrupted and outcome.exit_code == 128 + signal.SIGTERM


def test_a_sigterm_that_comes_while_a_command_fails_to_start_is_not_lost(tmp_path: Path, monkeypatch) -> None:
    from gitexp import process

    def signalled_then_failed(*args, **kwargs):  # type: ignore[no-untyped-def]
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])
        raise PermissionError(13, "Permission denied")

    def stop(signum, frame):  # type: ignore[no-untyped-def]
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    monkeypatch.setattr(process.subprocess, "Popen", signalled_then_failed)
    try:
        with pytest.raises(_Stopped):
            process.execute(["sleep", "60"], tmp_path, dict(os.environ), tmp_path / "out", tmp_path / "err")
    finally:
        signal.signal(signal.SIGTERM, previous)

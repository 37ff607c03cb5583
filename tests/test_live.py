"""Runs in progress and after: live status, crashed recorders, logs with times and --follow, stdout scalars,
hardware usage, sparklines and plots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for, Workspace

PY = sys.executable

SLOW = """\
import gitexp, sys, time
for i in range(int(sys.argv[1])):
    gitexp.log({"loss": 1.0 / (i + 1)}, step=i)
    print(f"step {i}", flush=True)
    time.sleep(0.1)
"""


def start(ws: Workspace, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", "gitexp", "run", *args], cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )




def listed(ws: Workspace) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in ws.gitexp("list", "--json").json()}  # type: ignore[attr-defined, index]


def test_a_run_in_progress_is_listed_as_running_with_its_latest_metrics(ws: Workspace, tmp_path: Path) -> None:
    ws.write("slow.py", SLOW)
    ws.commit_all()
    ws.run("-n", "done", "--", "true")
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    ws.git("remote", "add", "origin", str(bare))
    ws.run("--queue", "-n", "waiting", "--", "true")
    proc = start(ws, "-n", "live", "--", PY, "slow.py", "100000")  # until the SIGINT below, however slow the machine
    try:
        wait_for(lambda: "live" in ws.runs())
        assert ws.gitexp("show", "live").code == 0
        wait_for(lambda: listed(ws)["live"]["metrics"].get("loss", 1) < 0.2)  # type: ignore[attr-defined]
        run = listed(ws)["live"]
        assert run["status"] == "running" and run["duration"] > 0  # type: ignore[operator]
        assert ws.gitexp("list", "--where", "status = running", "--json").json()[0]["name"] == "live"  # type: ignore[index]
        for refused in (("checkout", "live"), ("rm", "-y", "live"), ("rename", "live", "other")):
            result = ws.gitexp(*refused)
            assert result.code == 1 and "'live' is still running" in result.err, refused
        assert ws.gitexp("tag", "live", "watched").code == 0  # a tag set while it runs stays with the run
        pushed = ws.gitexp("push")  # its final commit would not fast-forward a pushed running one
        assert pushed.code == 0 and "live has not finished" in pushed.out + pushed.err
        assert "handed 1 queued run(s) over to the remote's queue" in pushed.out  # a queued one goes to its queue
        remote_refs = subprocess.run(["git", "for-each-ref", "--format=%(refname)"], cwd=bare, capture_output=True,
                                     text=True, check=True).stdout.split()
        assert "refs/experiments/done" in remote_refs and "refs/experiments/live" not in remote_refs
        assert "refs/experiments/waiting" not in remote_refs and "refs/gitexp-queue/waiting" in remote_refs
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    assert listed(ws)["live"]["status"] == "interrupted"
    assert "watched" in listed(ws)["live"]["tags"]  # type: ignore[operator]
    assert ws.gitexp("push").code == 0
    assert "refs/experiments/live" in subprocess.run(["git", "for-each-ref"], cwd=bare, capture_output=True, text=True,
                                                     check=True).stdout
    assert not (ws.root / ".git/gitexp/live/live.json").exists()


def test_a_sigkilled_recorder_shows_crashed_with_partial_metrics_and_logs(ws: Workspace) -> None:
    ws.write("slow.py", SLOW)
    ws.commit_all()
    ws.freeze()
    proc = start(ws, "-n", "doomed", "--", PY, "slow.py", "600")
    wait_for(lambda: "doomed" in ws.runs() and listed(ws)["doomed"]["metrics"].get("loss", 1) < 0.1)  # type: ignore[attr-defined]
    os.killpg(proc.pid, signal.SIGKILL)  # gitexp and the script die without a word
    proc.wait()
    run = listed(ws)["doomed"]
    assert run["status"] == "crashed" and run["metrics"]["loss"] < 0.1  # type: ignore[index]
    assert "step 5" in ws.gitexp("logs", "doomed").out  # read from what the dead recorder left
    # The next run finalizes it: a real commit with status crashed, its logs and steps.
    result = ws.run("-n", "next", "--", "true")
    assert "run doomed: its recorder died; recorded as crashed" in result.err
    meta = ws.record("doomed", "run.json")
    assert meta["status"] == "crashed" and meta["duration"] > 0.5  # type: ignore[index, operator]
    last = ws.git("show", "refs/experiments/doomed:.gitexp/steps.jsonl").splitlines()[-1]
    assert ws.record("doomed", "metrics.json")["loss"] == json.loads(last)["values"]["loss"]  # type: ignore[index]
    assert "step 5" in ws.git("show", "refs/experiments/doomed:.gitexp/stdout.log")
    assert "Gitexp-Recorder" not in ws.git("log", "-1", "--format=%B", "refs/experiments/doomed")
    assert ws.record("doomed", "env.json")["python"]  # type: ignore[index]  # captured before it died
    resources = ws.record("doomed", "resources.json")  # summarised from the samples it left
    assert resources["peak_rss_mb"] > 5 and resources["samples"] >= 1  # type: ignore[index, operator]
    assert ws.gitexp("list", "--where", "resources.peak_rss_mb > 5", "-c", "name", "--format", "csv").out.split()[1:] == ["doomed"]
    assert list((ws.root / ".git/gitexp/live").iterdir()) == []
    assert list((ws.root / ".git/gitexp/tmp").iterdir()) == []
    assert listed(ws)["doomed"]["status"] == "crashed"


def test_a_crashed_runs_leftovers_are_kept_while_another_process_finalizes_it_and_a_killed_finalizer_lets_go(
    ws: Workspace,
) -> None:
    ws.write("slow.py", SLOW)
    ws.commit_all()
    ws.freeze()
    proc = start(ws, "-n", "doomed", "--", PY, "slow.py", "600")
    wait_for(lambda: "doomed" in ws.runs() and listed(ws)["doomed"]["metrics"].get("loss", 1) < 0.5)  # type: ignore[attr-defined]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    live_file = ws.root / ".git/gitexp/live/doomed.json"
    scratch = Path(json.loads(live_file.read_text())["scratch"])
    # Another gitexp process is finalizing it right now: it took the live file as its claim.
    finalizer = subprocess.Popen([PY, "-c", "import time; time.sleep(600)"])
    try:
        claim = live_file.with_name(f"doomed.json.{finalizer.pid}.finalizing")
        live_file.rename(claim)
        ws.run("-n", "beside", "--", "true")  # clears the scratch dirs of dead runs: not one being finalized
        assert (scratch / "stdout.log").is_file() and claim.is_file()
        assert ws.record("doomed", "run.json")["status"] == "running"  # type: ignore[index]  # the claim's holder's to do
    finally:
        finalizer.kill()
        finalizer.wait()
    result = ws.run("-n", "after", "--", "true")  # the finalizer died: its claim is free, the run is finalized
    assert "run doomed: its recorder died; recorded as crashed" in result.err
    assert ws.record("doomed", "run.json")["status"] == "crashed"  # type: ignore[index]
    assert "step 1" in ws.git("show", "refs/experiments/doomed:.gitexp/stdout.log")
    assert list((ws.root / ".git/gitexp/live").iterdir()) == []
    assert list((ws.root / ".git/gitexp/tmp").iterdir()) == []


def test_a_command_that_outlives_its_killed_recorder_is_finalized_once_it_ended(ws: Workspace, tmp_path: Path) -> None:
    from gitexp import live

    gate, pid_file = tmp_path / "go-on", tmp_path / "pid"
    ws.write("quiet.py", (
        "import gitexp, os, sys, time\n"
        "open(sys.argv[2], 'w').write(str(os.getpid()))\n"
        "for i in range(25):\n"
        "    while i == 5 and not os.path.exists(sys.argv[1]):  # held here until the test lets it finish\n"
        "        time.sleep(0.05)\n"
        "    gitexp.log({'i': float(i)}, step=i)\n"
        "    time.sleep(0.01)\n"
    ))
    proc = subprocess.Popen([PY, "-m", "gitexp", "run", "-n", "orphan", "--", PY, "quiet.py", str(gate), str(pid_file)],
                            cwd=ws.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: "orphan" in ws.runs() and listed(ws)["orphan"]["metrics"].get("i", 0) >= 1)
    proc.kill()  # the recorder alone: the script goes on logging
    proc.wait()
    assert listed(ws)["orphan"]["status"] == "crashed"
    ws.run("-n", "early", "--", "true")
    assert ws.record("orphan", "run.json")["status"] == "running"  # not finalized while the script runs
    gate.touch()
    script = int(pid_file.read_text())
    wait_for(lambda: not live.pid_alive(script, live.hostname()), timeout=60)  # ended (a zombie counts as ended)
    ws.run("-n", "late", "--", "true")
    assert ws.record("orphan", "run.json")["status"] == "crashed"
    assert ws.record("orphan", "metrics.json")["i"] == 24.0  # every point it logged after its recorder died


def test_logs_replay_stdout_and_stderr_in_order_with_timestamps(ws: Workspace) -> None:
    ws.write("s.py", (
        "import sys, time\n"
        "print('first', flush=True); time.sleep(0.2)\n"
        "print('oops', file=sys.stderr, flush=True); time.sleep(0.2)\n"
        "print('last', flush=True)\n"
    ))
    ws.run("-n", "ordered", "--", PY, "s.py")
    assert ws.gitexp("logs", "ordered").out == "first\noops\nlast\n"
    stamped = ws.gitexp("logs", "-t", "ordered").out.splitlines()
    assert [line.split(" ", 1)[1].strip() for line in stamped] == ["first", "E oops", "last"]
    times = [line.split(" ", 1)[0] for line in stamped]
    assert times == sorted(times) and times[0] < times[2]
    assert ws.gitexp("logs", "--stderr", "ordered").out == "oops\n"


def test_logs_follow_prints_a_run_in_progress_until_it_ends(ws: Workspace) -> None:
    ws.write("slow.py", SLOW)
    proc = start(ws, "-n", "followed", "--", PY, "slow.py", "30")
    wait_for(lambda: "followed" in ws.runs())
    follow = subprocess.Popen([PY, "-m", "gitexp", "logs", "--follow", "followed"], cwd=ws.root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert follow.stdout is not None
    first = follow.stdout.readline()
    assert first == "step 0\n" and proc.poll() is None  # it printed while the run was still going
    out = follow.stdout.read()  # not communicate(): it would skip what readline() buffered
    err = follow.stderr.read() if follow.stderr else ""
    follow.wait(timeout=60)
    proc.wait(timeout=30)
    assert follow.returncode == 0 and "ended: completed (exit code 0)" in err
    assert first + out == "".join(f"step {i}\n" for i in range(30))  # all of it, once, and it stopped by itself


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--scalars",), [(3, {"loss": 0.41, "acc": 0.88}), (None, {"val_loss": 0.5}), (7, {"loss": 0.2})]),
        (("--scalars-regex", r"L=(?P<loss>\S+)"), [(None, {"loss": 0.9})]),
    ],
)
def test_scalars_printed_on_stdout_become_step_metrics(ws: Workspace, args: tuple[str, ...], expected: list[object]) -> None:
    ws.write("p.py", (
        "print('epoch 3 loss=0.41 acc=0.88')\n"
        "print('starting at 12:30, see http://x.org/a:1')\n"
        "print('val_loss: 0.5')\n"
        "print('Epoch 7/10 | loss=0.2 | L=0.9')\n"
    ))
    ws.run("-n", "printed", *args, "--", PY, "p.py")
    points = [json.loads(line) for line in ws.git("show", "refs/experiments/printed:.gitexp/steps.jsonl").splitlines()]
    got = [(p["step"], p["values"]) for p in points]
    if args == ("--scalars",):
        # a line without a step of its own is at the latest step printed before it
        assert got == [(3, {"loss": 0.41, "acc": 0.88}), (3, {"val_loss": 0.5}), (7, {"loss": 0.2, "L": 0.9})]
    else:
        assert got == expected


def test_scalars_can_be_turned_on_in_the_config_and_a_bad_regex_is_refused_before_running(ws: Workspace) -> None:
    ws.write(".gitexp.yaml", "scalars: true\n")
    ws.write("p.py", "open('ran', 'w')\nprint('loss=1.5')\n")
    ws.run("-n", "cfg", "--", PY, "p.py")
    assert ws.record("cfg", "metrics.json") == {"loss": 1.5}
    (ws.root / "ran").unlink()
    bad = ws.gitexp("run", "-n", "bad", "--scalars-regex", "loss=(\\d", "--", PY, "p.py")
    assert bad.code == 1 and "invalid scalars pattern" in bad.err and "Traceback" not in bad.err
    assert not (ws.root / "ran").exists() and "bad" not in ws.runs()


def test_hardware_usage_is_recorded_and_filterable(ws: Workspace) -> None:
    ws.write("mem.py", (
        "import time\n"
        "block = bytearray(220 * 10**6)\n"
        "for i in range(0, len(block), 4096):\n"
        "    block[i] = 1\n"
        "while time.process_time() < 1.2:  # CPU time, not wall time: the machine may be busy\n"
        "    pass\n"
    ))
    ws.run("-n", "big", "--sample-interval", "0.2", "--", PY, "mem.py")
    ws.run("-n", "small", "--", "true")
    resources = ws.record("big", "resources.json")
    assert resources["peak_rss_mb"] >= 200 and resources["cpu_seconds"] >= 0.8  # type: ignore[index, operator]
    assert resources["samples"] >= 2  # type: ignore[index, operator]
    samples = ws.git("show", "refs/experiments/big:.gitexp/system.jsonl").splitlines()
    assert max(json.loads(s)["values"]["rss_mb"] for s in samples) >= 200
    small = ws.gitexp("list", "--where", "name = small", "--json").json()[0]["resources"]  # type: ignore[index]
    assert small.get("peak_rss_mb", 0) < 20  # not gitexp's own memory, which a forked child starts with
    found = ws.gitexp("list", "--where", "resources.peak_rss_mb >= 200", "-c", "name", "--format", "csv").out
    assert found.split() == ["name", "big"]
    shown = ws.gitexp("show", "big").out
    assert "resources:" in shown and "peak_rss_mb" in shown and "rss_mb" in shown  # summary and series
    off = ws.run("-n", "off", "--sample-interval", "0", "--", "true")
    assert off.code == 0 and ws.gitexp("list", "--where", "name = off", "--json").json()[0]["resources"] == {}  # type: ignore[index]


def test_show_draws_each_series_and_plot_writes_the_curves_of_several_runs(ws: Workspace, tmp_path: Path) -> None:
    ws.write("curve.py", "import gitexp, sys\nfor i in range(20):\n    gitexp.log({'loss': float(sys.argv[1]) / (i + 1)}, step=i)\n")
    ws.run("-n", "a", "--", PY, "curve.py", "1")
    ws.run("-n", "b", "--", PY, "curve.py", "2")
    shown = ws.gitexp("show", "a").out
    assert "series:" in shown and "█" in shown and "n=20 first 1 last 0.05" in shown
    pytest.importorskip("matplotlib")
    out = tmp_path / "loss.png"
    plotted = ws.gitexp("plot", "a", "b", "--metric", "loss", "-o", str(out))
    assert plotted.code == 0, plotted.err
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 5000
    missing = ws.gitexp("plot", "a", "--metric", "nope", "-o", str(tmp_path / "x.png"))
    assert missing.code == 1 and "nope" in missing.err and "loss" in missing.err


def test_a_series_logged_rarely_stays_live_among_many_other_points(ws: Workspace) -> None:
    from gitexp.live import _Tail

    steps = ws.root / "steps.jsonl"
    lines = ['{"step":0,"time":1.0,"values":{"val_acc":0.5,"loss":9.0}}']
    lines += [f'{{"step":{i},"time":1.0,"values":{{"loss":{1 / i}}}}}' for i in range(1, 2000)]
    steps.write_text("\n".join(lines) + "\n")
    tail = _Tail(steps)
    assert tail.latest() == {"val_acc": 0.5, "loss": 1 / 1999}  # the old line's loss does not win
    with steps.open("a") as f:
        f.write("".join(f'{{"step":{i},"time":1.0,"values":{{"loss":{i}}}}}\n' for i in range(3000)))
        f.write('{"step":3000,"time":1.0,"values":{"other\\"name":1}}\n')
    assert tail.latest() == {"val_acc": 0.5, "loss": 2999, 'other"name': 1}


def test_a_recorder_killed_but_not_yet_reaped_is_not_alive(ws: Workspace) -> None:
    from gitexp import live

    child = subprocess.Popen([PY, "-c", "pass"])
    wait_for(lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z")  # not reaped
    state = live.LiveState("z", "0" * 40, child.pid, live.hostname(), live.boot_id(), "/nonexistent", time.time())
    try:
        assert not live.alive(state)
        assert live.alive(live.LiveState("me", "0" * 40, os.getpid(), live.hostname(), live.boot_id(), "/x", 0.0))
    finally:
        child.wait()


def test_a_name_both_printed_and_logged_is_taken_from_the_log_alone(ws: Workspace) -> None:
    ws.write("both.py", (
        "import gitexp\n"
        "for i in range(3):\n"
        "    gitexp.log({'loss': i / 10}, step=i)\n"
        "    print(f'step {i} loss={i} acc={i / 2}', flush=True)\n"
    ))
    ws.run("-n", "both", "--scalars", "--", PY, "both.py")
    points = [json.loads(line) for line in ws.git("show", "refs/experiments/both:.gitexp/steps.jsonl").splitlines()]
    assert sorted(p["values"]["loss"] for p in points if "loss" in p["values"]) == [0.0, 0.1, 0.2]  # once each
    assert [p["values"]["acc"] for p in points if "acc" in p["values"]] == [0.0, 0.5, 1.0]
    assert ws.record("both", "metrics.json") == {"loss": 0.2, "acc": 1.0}

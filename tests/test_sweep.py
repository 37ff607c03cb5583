"""Sweeps, repeats, parallel runs in temporary worktrees, and the queue."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import Workspace

PY = sys.executable

TRAIN = """\
import gitexp, os, sys, time
p = gitexp.params()
open(f"mark-{os.getpid()}", "w").write("x")           # visible to no other run
time.sleep(float(os.environ.get("SLEEP", "0")))
others = sorted(f for f in os.listdir(".") if f.startswith("mark-") and f != f"mark-{os.getpid()}")
gitexp.summary({"acc": p["lr"] * 10 + p.get("seed", 0) % 7 / 100, "others": len(others)})
print("cwd", os.getcwd())
sys.exit(3 if p.get("batch") == 99 else 0)
"""


@pytest.fixture
def project(ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # where workers make their worktrees: this test's own
    ws.write("params.yaml", "lr: 0.1\nbatch: 32\nseed: 0\n")
    ws.write("train.py", TRAIN)
    ws.write(".gitignore", "mark-*\n")
    ws.commit_all()
    return ws


def worktrees() -> list[Path]:
    return list(Path(os.environ["TMPDIR"]).glob("gitexp-wt-*"))


def runs_json(ws: Workspace, where: str = "") -> list[dict[str, object]]:
    args = ["list", "--json"] + (["--where", where] if where else [])
    return ws.gitexp(*args).json()  # type: ignore[return-value]


def test_a_grid_of_comma_lists_runs_every_combination_with_its_overrides(project: Workspace) -> None:
    ws = project
    result = ws.run("-S", "lr=0.1,0.01,0.001", "-S", "batch=[32, 64]", "--", PY, "train.py")
    runs = runs_json(ws)
    assert sorted((r["params"]["lr"], r["params"]["batch"]) for r in runs) == sorted(  # type: ignore[index]
        (lr, b) for lr in (0.1, 0.01, 0.001) for b in (32, 64)
    )
    sweeps = {r["sweep"]["id"] for r in runs}  # type: ignore[index]
    assert len(sweeps) == 1
    sweep = sweeps.pop()
    assert len(runs_json(ws, f"sweep = {sweep}")) == 6
    assert "6 run(s): 6 completed" in result.err
    meta = ws.record(runs[0]["name"], "run.json")  # type: ignore[arg-type]
    assert meta["overrides"] == meta["sweep"]["overrides"] and meta["sweep"]["size"] == 6  # type: ignore[index]
    parents = {r["parent"] for r in runs}
    assert len(parents) == 1  # siblings, not a chain
    assert (ws.root / "params.yaml").read_text() == "lr: 0.1\nbatch: 32\nseed: 0\n"


def test_repeats_get_distinct_recorded_seeds_the_same_in_every_config(project: Workspace) -> None:
    ws = project
    ws.run("--repeat", "3", "--seed-param", "seed", "-S", "lr=0.1,0.2", "--", PY, "train.py")
    runs = runs_json(ws)
    seeds = {lr: sorted(r["params"]["seed"] for r in runs if r["params"]["lr"] == lr) for lr in (0.1, 0.2)}  # type: ignore[index]
    assert len(set(seeds[0.1])) == 3 and seeds[0.1] == seeds[0.2]
    assert all(r["sweep"]["seed_param"] == "seed" for r in runs)  # type: ignore[index]
    assert len({r["config"] for r in ws.gitexp("list", "-c", "name,config", "--format", "json").json()}) == 2  # type: ignore[attr-defined]
    ws.run("-n", "fixed", "--seeds", "11,12", "--seed-param", "seed", "--", PY, "train.py")
    assert sorted(r["params"]["seed"] for r in runs_json(ws, "name = fixed-1 or name = fixed-2")) == [11, 12]  # type: ignore[index]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--seeds", "1,2", "--repeat", "3", "--seed-param", "seed"), "--seeds gives 2 seeds for --repeat 3"),
        (("--seeds", "5", "--repeat", "3", "--seed-param", "seed"), "--seeds gives 1 seed for --repeat 3"),
        (("--seeds", "4,1,4", "--seed-param", "seed"), "--seeds repeats 4: each repeat needs a seed of its own"),
        (("-S", "lr=0.1,0.2", "-S", "lr=0.3,0.4"), "-S lr=... is given twice"),
        (("--seeds", "1,x", "--seed-param", "seed"), "give integers"),
        (("--seeds", "1,2"), "--seeds needs --seed-param"),
        (("-S", "lr=uniform(0,1)"), "needs --random N"),
        (("-S", "lr=loguniform(0,1)", "--random", "2"), "low > 0"),
        (("-S", "lr=0.1,,0.2"), "empty"),
        (("--random", "2", "-S", "lr=normal(0,1)"), "unknown sampler"),
        (("--random", "2", "-S", "n=randint(1.5,3)"), "two integers"),
        (("--queue", "-j", "2"), "cannot be used together"),
    ],
)
def test_bad_sweep_options_are_refused_before_anything_runs(project: Workspace, args: tuple[str, ...], message: str) -> None:
    ws = project
    ws.freeze()
    result = ws.gitexp("run", *args, "--", PY, "train.py")
    assert result.code != 0 and message in result.err and "Traceback" not in result.err
    assert ws.runs() == {}


def test_sweeping_a_list_valued_param_is_warned_about(project: Workspace) -> None:
    ws = project
    ws.write("params.yaml", "lr: 0.1\nbatch: 32\nseed: 0\nlayers: [64, 128]\n")
    result = ws.run("--queue", "-S", "layers=[32,64]", "--", PY, "train.py")
    assert "layers is a list in your params" in result.err
    assert "list in your params" not in ws.run("--queue", "-S", "lr=0.1,0.2", "--", PY, "train.py").err


def test_a_blank_value_sets_the_param_to_null_in_single_runs_and_sweeps(project: Workspace) -> None:
    ws = project
    ws.run("-n", "blank", "-S", "seed=", "--", "true")
    assert ws.record("blank", "params.json")["seed"] is None  # type: ignore[index]
    assert ws.record("blank", "run.json").get("sweep") is None  # type: ignore[union-attr]
    ws.run("-n", "grid", "-S", "seed=", "-S", "lr=0.1,0.2", "--", "true")
    grid = runs_json(ws, "name = grid-1 or name = grid-2")
    assert sorted((r["params"]["seed"], r["params"]["lr"]) for r in grid) == [(None, 0.1), (None, 0.2)]  # type: ignore[index]


def test_random_search_draws_n_configs_from_ranges_and_choices_again_with_the_same_seed(project: Workspace) -> None:
    ws = project
    for name in ("a", "b"):
        ws.run("-n", name, "--random", "4", "--random-seed", "7", "-S", "lr=loguniform(1e-4,1e-1)", "-S", "batch=16,32",
               "--", "true")
    runs = runs_json(ws)
    assert len(runs) == 8
    assert all(1e-4 <= r["params"]["lr"] <= 1e-1 and r["params"]["batch"] in (16, 32) for r in runs)  # type: ignore[index, operator]
    assert {r["sweep"]["random_seed"] for r in runs} == {7}  # type: ignore[index]
    draws = {name: [(r["params"]["lr"], r["params"]["batch"]) for r in sorted(runs, key=lambda r: r["sweep"]["index"])  # type: ignore[index]
                    if r["name"].startswith(name + "-")] for name in ("a", "b")}  # type: ignore[attr-defined]
    assert draws["a"] == draws["b"] and len(set(draws["a"])) == 4


def test_parallel_runs_overlap_in_separate_worktrees_and_leave_the_workspace_alone(project: Workspace) -> None:
    ws = project
    ws.freeze()
    env = {**os.environ, "SLEEP": "1.5"}
    proc = subprocess.run([PY, "-m", "gitexp", "run", "-j", "2", "-S", "lr=0.1,0.2", "--", PY, "train.py"],
                          cwd=ws.root, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    runs = runs_json(ws)
    spans = sorted(
        (datetime.fromisoformat(r["started"]).timestamp(), r["duration"]) for r in runs  # type: ignore[arg-type]
    )
    (a_start, a_dur), (b_start, _) = spans
    assert b_start < a_start + a_dur  # they truly ran at the same time
    cwds = {ws.git("show", f"refs/experiments/{r['name']}:.gitexp/stdout.log").split()[1] for r in runs}
    assert len(cwds) == 2 and not any(c.startswith(str(ws.root)) for c in cwds)
    assert all(r["metrics"]["others"] == 0 for r in runs)  # type: ignore[index]
    assert not worktrees()


def test_a_failing_run_does_not_stop_the_sweep_unless_fail_fast(project: Workspace) -> None:
    ws = project
    result = ws.gitexp("run", "-S", "batch=99,32", "--", PY, "train.py")
    assert result.code == 1 and "2 run(s): 1 completed, 1 not" in result.err
    assert sorted(r["status"] for r in runs_json(ws)) == ["completed", "failed"]
    ws.git("update-ref", "-d", f"refs/experiments/{runs_json(ws)[0]['name']}")
    ws.git("update-ref", "-d", f"refs/experiments/{runs_json(ws)[0]['name']}")
    fast = ws.gitexp("run", "--fail-fast", "-j", "1", "-S", "batch=99,32,64", "--", PY, "train.py")
    assert fast.code == 1 and "2 queued run(s) of the sweep cancelled" in fast.err
    assert fast.err.count("cancelled  -") == 2  # the summary lists them
    assert [r["status"] for r in runs_json(ws)] == ["failed"]  # the rest were cancelled, not run
    inplace = ws.gitexp("run", "--fail-fast", "-S", "batch=99,32", "--", PY, "train.py")
    assert inplace.code == 1 and len(runs_json(ws)) == 2
    assert "not run" in inplace.err and "batch=32" in inplace.err


def test_the_queue_is_durable_and_survives_a_killed_worker(project: Workspace) -> None:
    ws = project
    ws.run("--queue", "-S", "lr=0.1,0.2,0.3", "--", PY, "train.py")
    status = ws.gitexp("queue", "status", "--json").json()
    assert [r["status"] for r in status] == ["queued"] * 3  # type: ignore[index]
    first = status[0]["name"]  # type: ignore[index]
    env = {**os.environ, "SLEEP": "60"}
    runner = subprocess.Popen([PY, "-m", "gitexp", "queue", "start", "-j", "1"], cwd=ws.root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline and not any(r["status"] == "running" for r in runs_json(ws)):
        time.sleep(0.1)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner, its worker and the command: all gone at once
    runner.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(r["status"] == "running" for r in runs_json(ws)):
        time.sleep(0.1)  # the worker may take a moment to be gone
    by_status = {r["name"]: r["status"] for r in runs_json(ws)}
    assert by_status[first] == "crashed"
    assert sorted(by_status.values()) == ["crashed", "queued", "queued"]
    result = ws.gitexp("queue", "start", "-j", "2", timeout=120)
    assert result.code == 0, result.err
    assert sorted(r["status"] for r in runs_json(ws)) == ["completed", "completed", "crashed"]
    assert not worktrees()  # the dead worker's copy too
    assert ws.gitexp("queue", "status").out.strip() == "nothing queued or running"


def test_a_queued_run_runs_the_code_it_was_queued_with_not_later_edits(project: Workspace) -> None:
    ws = project
    ws.run("--queue", "-n", "q", "-S", "lr=0.5", "--", PY, "train.py")
    ws.write("train.py", "import sys\nsys.exit(7)\n")  # edited after queueing: must not be what runs
    ws.freeze()
    result = ws.gitexp("queue", "start")
    assert result.code == 0, result.err
    run = runs_json(ws)[0]
    assert (run["status"], run["metrics"]["acc"]) == ("completed", 5.0)  # type: ignore[index]
    assert ws.git("show", "refs/experiments/q:train.py") == TRAIN


def running_process(pid: int) -> bool:
    """Whether pid runs (a zombie, ended but not reaped yet, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_worker_killed_alone_takes_its_command_along_its_run_crashed_and_the_queue_goes_on(project: Workspace) -> None:
    ws = project
    ws.write("train.py", TRAIN.replace('float(os.environ.get("SLEEP", "0"))', '60 if p["lr"] == 0.1 else 0'))
    ws.commit_all()
    ws.run("--queue", "-n", "q", "-S", "lr=0.1,0.2,0.3", "--", PY, "train.py")
    runner = subprocess.Popen([PY, "-m", "gitexp", "queue", "start", "-j", "1"], cwd=ws.root, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    live, state = ws.root / ".git/gitexp/live/q-1.json", {}
    try:
        deadline = time.time() + 30
        while time.time() < deadline and not state.get("command_pid"):
            time.sleep(0.1)
            state = json.loads(live.read_text()) if live.exists() else {}
        os.kill(state["pid"], signal.SIGKILL)  # the worker alone: its command is left behind, an orphan
        _, err = runner.communicate(timeout=60)
        assert not running_process(state["command_pid"])
        assert ws.record("q-1", "run.json")["status"] == "crashed"  # type: ignore[index]
        assert "q-1: crashed (" in err and "exit code None" not in err
        assert {r["name"]: r["status"] for r in runs_json(ws)} == {"q-1": "crashed", "q-2": "completed", "q-3": "completed"}
        assert runner.returncode == 1, err
        assert not worktrees()  # the dead worker's too, without waiting for the next runner
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)  # an orphan left sleeping too
        runner.wait()


def test_ctrl_c_on_queue_start_interrupts_the_runs_in_progress_and_leaves_the_rest_queued(project: Workspace) -> None:
    ws = project
    ws.run("--queue", "-n", "q", "-S", "lr=0.1,0.2,0.3", "--", PY, "train.py")
    proc = subprocess.Popen([PY, "-m", "gitexp", "queue", "start", "-j", "2"], cwd=ws.root, env={**os.environ, "SLEEP": "60"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while len(list(Path(os.environ["TMPDIR"]).glob("gitexp-wt-*/workspace/mark-*"))) < 2:  # both commands started
        assert time.time() < deadline, "the two runs never started"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert {r["name"]: r["status"] for r in runs_json(ws)} == {"q-1": "interrupted", "q-2": "interrupted", "q-3": "queued"}
    assert "2 run(s): 0 completed, 2 not" in err and len(re.findall(r"^q-[12] +interrupted +130 ", err, re.M)) == 2
    assert "stopped by Ctrl-C" in err and "1 run(s) stay queued" in err
    assert not worktrees()


def test_queue_cancel_removes_only_queued_runs(project: Workspace) -> None:
    ws = project
    ws.run("-n", "done", "--", "true")
    ws.run("--queue", "-n", "q", "-S", "lr=0.1,0.2", "--", PY, "train.py")
    refused = ws.gitexp("queue", "cancel", "done")
    assert refused.code == 1 and "not queued" in refused.err
    never_ran = ws.gitexp("reproduce", "q-1")
    assert never_ran.code == 1 and "no result to reproduce" in never_ran.err
    assert ws.gitexp("queue", "cancel", "q-1").code == 0
    assert sorted(ws.runs()) == ["done", "q-2"]
    assert ws.gitexp("queue", "cancel", "--all").out.startswith("cancelled 1")


def test_sigterm_to_a_parallel_sweep_stops_it_like_ctrl_c(project: Workspace) -> None:
    ws = project
    env = {**os.environ, "SLEEP": "60"}
    proc = subprocess.Popen([PY, "-m", "gitexp", "run", "-j", "2", "-S", "lr=0.1,0.2,0.3", "--", PY, "train.py"],
                            cwd=ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while len(list(Path(os.environ["TMPDIR"]).glob("gitexp-wt-*/workspace/mark-*"))) < 2:  # both commands started
        assert time.time() < deadline, "the two runs never started"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # to gitexp alone, as a scheduler or `kill` does: the workers never see it
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, err
    assert sorted(r["status"] for r in runs_json(ws)) == ["interrupted", "interrupted"]  # the third: cancelled
    assert not worktrees()


def test_ctrl_c_during_a_parallel_sweep_records_interrupted_runs_and_leaves_no_worktree(project: Workspace) -> None:
    ws = project
    env = {**os.environ, "SLEEP": "60"}
    proc = subprocess.Popen([PY, "-m", "gitexp", "run", "-j", "2", "-S", "lr=0.1,0.2,0.3", "--", PY, "train.py"],
                            cwd=ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while len(list(Path(os.environ["TMPDIR"]).glob("gitexp-wt-*/workspace/mark-*"))) < 2:  # both commands started
        assert time.time() < deadline, "the two runs never started"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert sorted(r["status"] for r in runs_json(ws)) == ["interrupted", "interrupted"]  # the third: cancelled
    assert "3 run(s): 0 completed, 3 not" in err and len(re.findall(r"^\S+ +interrupted +130 ", err, re.M)) == 2
    assert len(re.findall(r"^\S+ +cancelled +- ", err, re.M)) == 1
    assert "stopped by Ctrl-C" in err and "the rest cancelled" in err
    assert not worktrees()
    assert not list((ws.root / ".git/gitexp/tmp").glob("run-*"))
    assert json.loads(ws.git("show", f"refs/experiments/{runs_json(ws)[0]['name']}:.gitexp/run.json"))["sweep"]


def test_outputs_given_with_dash_o_come_back_from_parallel_and_queued_runs(project: Workspace) -> None:
    ws = project
    ws.write("train.py", TRAIN.replace('print("cwd"', 'open("model.txt", "w").write(str(p["lr"])); print("cwd"'))
    ws.write(".gitignore", "mark-*\nmodel.txt\n")
    ws.commit_all()
    ws.run("-j", "2", "-o", "model.txt", "-S", "lr=0.7,0.8", "--", PY, "train.py")
    ws.run("--queue", "-n", "q", "-o", "model.txt", "-S", "lr=0.9", "--", PY, "train.py")
    ws.gitexp("queue", "start")
    runs = runs_json(ws)
    assert len(runs) == 3 and {r["status"] for r in runs} == {"completed"}
    for r in runs:
        outputs = ws.record(r["name"], "data.json")["outputs"]  # type: ignore[arg-type, index]
        assert [o["path"] for o in outputs] == ["model.txt"]  # type: ignore[index]
        assert outputs[0]["fresh"] is True  # type: ignore[index]
    assert not (ws.root / "model.txt").exists(), "the user's workspace is left alone"


def test_queue_start_runs_a_queued_run_someone_else_recorded_only_when_named(project: Workspace) -> None:
    ws = project
    ws.git("config", "user.email", "bob@example.org")  # a teammate's queued run, as a fetch brings it
    ws.run("--queue", "-n", "bobs", "--", PY, "train.py")
    ws.git("config", "user.email", "test@example.com")
    ws.run("--queue", "-n", "mine", "--", PY, "train.py")
    worked = ws.gitexp("queue", "start")
    assert worked.code == 0, worked.err
    assert "queued run bobs was recorded by bob@example.org, not you: not run" in worked.err
    assert {r["name"]: r["status"] for r in runs_json(ws)} == {"bobs": "queued", "mine": "completed"}
    named = ws.gitexp("queue", "start", "bobs")
    assert named.code == 0, named.err
    assert {r["name"]: r["status"] for r in runs_json(ws)} == {"bobs": "completed", "mine": "completed"}

"""Logging from inside a script: gitexp.log/summary/log_artifact/params under `gitexp run`, standalone, and no-op."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Workspace

PY = sys.executable

TRAIN = """\
import gitexp
p = gitexp.params()
for epoch in range(p["epochs"]):
    gitexp.log({"loss": 1.0 / (epoch + 1), "acc": epoch / 10}, step=epoch)
gitexp.log({"diverged": float("nan"), "label": "text"}, step=99)
open("model.bin", "wb").write(b"weights" * 100)
gitexp.log_artifact("model.bin")
gitexp.summary({"best_acc": 0.95})
print("lr was", p["lr"])
"""


def steps(ws: Workspace, run: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in ws.git("show", f"refs/experiments/{run}:.gitexp/steps.jsonl").splitlines()]


def test_the_api_under_gitexp_run_records_steps_summary_artifacts_and_sees_overrides(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\nepochs: 3\n")
    ws.write("train.py", TRAIN)
    ws.commit_all()
    result = ws.run("-n", "api", "-S", "lr=0.5", "--", PY, "train.py")
    assert "lr was 0.5" in result.out  # gitexp.params() gives the effective params
    points = steps(ws, "api")
    assert [p["step"] for p in points[:3]] == [0, 1, 2]
    assert points[2]["values"] == {"loss": pytest.approx(1 / 3), "acc": 0.2}
    assert points[3]["values"] == {"diverged": "NaN"}  # a non-number is dropped with a warning, NaN kept
    assert "'label' is not a number" in result.err
    metrics = ws.record("api", "metrics.json")
    assert metrics == {"loss": pytest.approx(1 / 3), "acc": 0.2, "diverged": "NaN", "best_acc": 0.95}
    outputs = ws.record("api", "data.json")["outputs"]  # type: ignore[index]
    assert [o["path"] for o in outputs] == ["model.bin"]
    which = ws.gitexp("which", "model.bin")
    assert which.code == 0 and "api" in which.out


def test_a_metrics_file_wins_over_the_last_step_and_summary_wins_over_both(ws: Workspace) -> None:
    ws.write("s.py", (
        "import gitexp, json\n"
        "gitexp.log({'acc': 0.1, 'loss': 2.0, 'f1': 0.3})\n"
        "json.dump({'acc': 0.5, 'loss': 1.0}, open('metrics.json', 'w'))\n"
        "gitexp.summary({'loss': 0.25})\n"
    ))
    ws.run("-n", "prec", "--", PY, "s.py")
    assert ws.record("prec", "metrics.json") == {"acc": 0.5, "loss": 0.25, "f1": 0.3}


def test_forked_workers_and_subprocesses_log_into_the_same_run(ws: Workspace) -> None:
    ws.write("s.py", (
        "import gitexp, os, subprocess, sys\n"
        "gitexp.log({'parent': 1}, step=0)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    gitexp.log({'child': 2}, step=0)\n"
        "    os._exit(0) if False else sys.exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "subprocess.run([sys.executable, '-c', 'import gitexp; gitexp.log({\"sub\": 3})'], check=True)\n"
    ))
    ws.run("-n", "forks", "--", PY, "s.py")
    names = [name for p in steps(ws, "forks") for name in p["values"]]  # type: ignore[attr-defined]
    assert sorted(names) == ["child", "parent", "sub"]  # each point once: the fork did not duplicate a buffer


def test_outside_a_run_the_calls_are_no_ops_with_one_warning(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\n")
    code = (
        "import gitexp\n"
        "for i in range(1000):\n"
        "    gitexp.log({'loss': i}, step=i)\n"
        "gitexp.summary({'a': 1}); gitexp.log_artifact('params.yaml')\n"
        "print(gitexp.params())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITEXP_")}
    # -W error: a warnings-module warning would become an exception that kills training; gitexp's must not
    proc = subprocess.run([PY, "-W", "error", "-c", code], cwd=ws.root, capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "{'lr': 0.1}"  # params() still reads the params file
    assert proc.stderr.count("no run is being recorded") == 1 and len(proc.stderr.splitlines()) == 1
    assert ws.runs() == {}


def test_bad_calls_warn_and_never_raise_into_training(ws: Workspace) -> None:
    ws.write("s.py", (
        "import gitexp, time\n"
        "gitexp.log({'loss': 1.0}, step='epoch-1')\n"
        "gitexp.log({'huge': 10**400, 'ok': 2})\n"
        "gitexp.log(0.5)\n"
        "gitexp.log({'late': 3.0}, step=1)\n"
        "time.sleep(1.6)  # a long epoch: the point above reaches the file meanwhile\n"
        "import os; print(len(open(os.environ['GITEXP_RUN_DIR'] + '/steps.jsonl').read().splitlines()))\n"
    ))
    result = ws.run("-n", "bad", "--", PY, "s.py")
    assert result.out.strip() == "2"  # {'ok': 2} and {'late': 3.0}, flushed without another call
    assert "step" in result.err and "'huge' is not a number" in result.err and "not float" in result.err
    assert ws.record("bad", "metrics.json") == {"ok": 2.0, "late": 3.0}


def test_points_of_forked_children_that_exit_at_once_are_kept(ws: Workspace) -> None:
    ws.write("s.py", (
        "import gitexp, os\n"
        "with gitexp.start(name='forks'):\n"
        "    gitexp.log({'parent': 1.0})\n"
        "    for i in range(3):\n"
        "        if os.fork() == 0:\n"
        "            gitexp.log({f'child{i}': float(i)})\n"
        "            os._exit(0)  # as multiprocessing's forked workers end: no exit handlers\n"
        "        os.wait()\n"
        "    gitexp.log({'parent_after': 2.0})\n"
    ))
    proc = subprocess.run([PY, "s.py"], cwd=ws.root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert ws.record("forks", "metrics.json") == {"parent": 1.0, "child0": 0.0, "child1": 1.0, "child2": 2.0,
                                                   "parent_after": 2.0}
    assert list(ws.runs()) == ["forks"]  # the children did not end (or re-record) the parent's run


def test_start_records_a_run_from_a_python_process(ws: Workspace) -> None:
    ws.write("params.yaml", "lr: 0.1\nbatch: 32\n")
    ws.commit_all()
    ws.write("notebook_code.py", "x = 1\n")  # uncommitted: part of the snapshot
    code = (
        "import gitexp\n"
        "with gitexp.start(name='nb', params={'lr': 0.3}, tags=['notebook']) as run:\n"
        "    p = gitexp.params()\n"
        "    for i in range(3):\n"
        "        gitexp.log({'loss': 1 / (i + 1)}, step=i)\n"
        "    gitexp.summary({'final': p['lr'] * p['batch']})\n"
        "print(run.name, run.commit)\n"
    )
    proc = subprocess.run([PY, "-c", code], cwd=ws.root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    name, commit = proc.stdout.split()
    assert name == "nb" and ws.runs()["nb"] == commit
    assert ws.record("nb", "params.json") == {"lr": 0.3, "batch": 32}
    assert ws.record("nb", "metrics.json") == {"loss": pytest.approx(1 / 3), "final": pytest.approx(9.6)}
    meta = ws.record("nb", "run.json")
    assert meta["status"] == "completed" and meta["tags"] == ["notebook"]  # type: ignore[index]
    assert "notebook_code.py" in ws.git("ls-tree", "--name-only", "refs/experiments/nb")
    assert len(steps(ws, "nb")) == 3
    resources = ws.gitexp("list", "--where", "name = nb", "--json").json()[0]["resources"]  # type: ignore[index]
    assert resources["peak_rss_mb"] > 5 and resources["cpu_seconds"] >= 0  # the process itself was measured


def test_start_records_a_failed_run_when_the_block_raises_and_at_exit(ws: Workspace) -> None:
    code = (
        "import gitexp\n"
        "try:\n"
        "    with gitexp.start(name='boom'):\n"
        "        gitexp.log({'loss': 1.0})\n"
        "        raise ValueError('diverged')\n"
        "except ValueError:\n"
        "    pass\n"
        "gitexp.start(name='noend')\n"
        "gitexp.log({'loss': 2.0})\n"
        "raise SystemExit(0)\n"
    )
    proc = subprocess.run([PY, "-c", code], cwd=ws.root, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert ws.record("boom", "run.json")["status"] == "failed"  # type: ignore[index]
    assert ws.record("noend", "run.json")["status"] == "completed"  # type: ignore[index]
    assert ws.record("noend", "metrics.json") == {"loss": 2.0}


def test_start_keeps_the_exception_a_run_died_of_and_show_prints_it(ws: Workspace) -> None:
    in_block = "import gitexp\nwith gitexp.start(name='nb'):\n    raise ValueError('boom')\n"
    uncaught = "import gitexp\ngitexp.start(name='script')\ndef step():\n    raise KeyError('lr')\nstep()\n"
    for code in (in_block, uncaught):
        proc = subprocess.run([PY, "-c", code], cwd=ws.root, capture_output=True, text=True, check=False)
        assert proc.returncode == 1 and "Traceback" in proc.stderr, "the exception still reaches the caller"
    for name, error in (("nb", "ValueError: boom"), ("script", "KeyError: 'lr'")):
        meta = ws.record(name, "run.json")
        assert (meta["status"], meta["exit_code"]) == ("failed", 1)  # type: ignore[index]
        log = ws.git("show", f"refs/experiments/{name}:.gitexp/stderr.log")
        assert log.startswith("Traceback (most recent call last):\n") and log.endswith(f"{error}\n"), log
        assert f"\nerror    {error}\n" in ws.gitexp("show", name).out
    assert "in step" in ws.git("show", "refs/experiments/script:.gitexp/stderr.log")
    subprocess.run([PY, "-c", "import gitexp\nwith gitexp.start(name='ok'):\n    pass\n"], cwd=ws.root, check=True)
    assert ".gitexp/stderr.log" not in ws.tree("refs/experiments/ok"), "a run that ends well keeps no stderr.log"
    assert "error " not in ws.gitexp("show", "ok").out
    assert "ValueError: boom" in ws.gitexp("logs", "nb").out  # logs prints it too
    exit0 = "import gitexp, sys\nwith gitexp.start(name='exit0'):\n    sys.exit(0)\n"
    subprocess.run([PY, "-c", exit0], cwd=ws.root, check=True)
    assert ws.record("exit0", "run.json")["status"] == "completed"  # type: ignore[index]


def test_start_outside_a_repository_fails_before_anything_is_written(tmp_path: Path) -> None:
    code = "import gitexp\ntry:\n    gitexp.start()\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    proc = subprocess.run([PY, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.stdout.startswith("NotARepository not inside a git repository"), proc.stdout + proc.stderr


def test_start_under_gitexp_run_is_refused(ws: Workspace) -> None:
    ws.write("s.py", "import gitexp\ntry:\n    gitexp.start()\nexcept Exception as e:\n    print('refused:', e)\n")
    result = ws.run("-n", "outer", "--", PY, "s.py")
    assert "refused: gitexp.start(): this process runs under `gitexp run`" in result.out
    assert list(ws.runs()) == ["outer"]


def test_importing_gitexp_in_a_script_does_not_load_git_bindings() -> None:
    code = "import sys, gitexp\ngitexp.log({'a': 1})\nprint('pygit2' in sys.modules, 'click' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITEXP_")}
    proc = subprocess.run([PY, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env, check=False)
    assert proc.stdout.strip() == "False False", proc.stderr


def test_a_killed_start_process_shows_crashed_and_its_artifacts_are_found_by_which(ws: Workspace) -> None:
    ws.write("art.py", (
        "import gitexp, os, signal, sys, time\n"
        "with gitexp.start(name='kept'):\n"
        "    open('model.bin', 'wb').write(b'weights')\n"
        "    gitexp.log_artifact('model.bin')\n"
        "    gitexp.log_artifact('/tmp/outside-the-workspace.bin')\n"
        "with gitexp.start(name='killed'):\n"
        "    gitexp.log({'loss': 0.5}, step=1)\n"
        "    time.sleep(2.5)  # a heartbeat or two\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    ))
    open("/tmp/outside-the-workspace.bin", "wb").close()
    proc = subprocess.run([PY, "art.py"], cwd=ws.root, capture_output=True, text=True, check=False)
    assert proc.returncode == -9
    assert "outside the workspace" in proc.stderr  # said, not silently dropped
    which = ws.gitexp("which", "model.bin")
    assert which.code == 0 and "kept" in which.out
    killed = {r["name"]: r for r in ws.gitexp("list", "--json").json()}["killed"]  # type: ignore[attr-defined, index]
    assert killed["status"] == "crashed" and killed["metrics"] == {"loss": 0.5}
    logs = ws.gitexp("logs", "kept")
    assert logs.code == 0 and "gitexp.start()" in logs.err

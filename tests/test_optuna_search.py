"""`gitexp run --optuna N`: real Optuna choosing the configs of real `gitexp run`s of tiny scripts.

Concurrency, pruning and stopping are shown with marker files the scripts write and wait on, never with timing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import GITEXP, Workspace

import gitexp

pytestmark = pytest.mark.skipif(importlib.util.find_spec("optuna") is None, reason="optuna is not installed")

WAIT = 120.0  # generous: a loaded 2-core machine

# A trial: logs its metrics per step (acc, loss) and as final values; MARKS is a directory outside the repo.
SCRIPT = """\
import os, sys, time
from pathlib import Path
import gitexp
marks = Path(os.environ["MARKS"])
mode, x = sys.argv[1], float(sys.argv[2])
def wait_for(check, what):
    deadline = time.monotonic() + 120
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"gave up waiting for {what}")
        time.sleep(0.02)
if mode == "plain":
    for step in range(3):
        gitexp.log({"acc": x + step, "loss": 1 - x + step}, step=step)
elif mode == "together":  # completes only when the other trial runs at the same time
    (marks / f"started-{os.getpid()}").write_text("")
    wait_for(lambda: len(list(marks.glob("started-*"))) >= 2, "a second trial running at once")
    gitexp.log({"acc": x}, step=0)
elif mode == "prune":  # the first trial is good; the next ones are bad and wait to be pruned
    if not (marks / "first").exists():
        for step in range(3):
            gitexp.log({"acc": 1.0}, step=step)
        (marks / "first").write_text("")
    else:
        gitexp.log({"acc": 0.0}, step=0)
        (marks / f"waiting-{os.getpid()}").write_text("")
        wait_for(lambda: False, "being pruned")
elif mode == "fail-first":
    if not (marks / "failed").exists():
        (marks / "failed").write_text("")
        sys.exit(3)
    gitexp.log({"acc": x}, step=0)
elif mode == "hang":
    (marks / f"pid-{os.getpid()}").write_text(str(os.getpid()))
    wait_for(lambda: False, "a signal")
"""


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "marks"
    directory.mkdir()
    monkeypatch.setenv("MARKS", str(directory))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return directory


@pytest.fixture
def repo(ws: Workspace, marks: Path) -> Workspace:
    ws.write("train.py", SCRIPT)
    ws.commit_all()
    return ws


def search(ws: Workspace, *args: str, mode: str = "plain", param: str = "x") -> tuple[int, str]:
    result = ws.gitexp("run", *args, "--", "python", "train.py", mode, "{" + param + "}", timeout=300)
    return result.code, result.err


def sweep_runs(ws: Workspace, sweep_id: str) -> list[gitexp.Run]:
    runs = [r for r in gitexp.runs(repo=ws.root) if r.sweep.get("id") == sweep_id]
    return sorted(runs, key=lambda r: r.sweep["index"])


def sweep_runs_any(ws: Workspace, sweep_id: str) -> list[gitexp.Run]:
    runs = [r for r in gitexp.runs(repo=ws.root) if r.sweep.get("id") == sweep_id]
    return sorted(runs, key=lambda r: (r.started, r.name))


def sweep_of(err: str) -> str:
    for word in err.split():
        if word.startswith("sw-"):
            return word.rstrip(":")
    raise AssertionError(f"no sweep id in: {err}")


def best_line(err: str) -> str:
    return next(line for line in err.splitlines() if line.startswith("gitexp: best: "))


def test_search_runs_n_trials_of_one_sweep_with_params_drawn_inside_the_space(repo: Workspace) -> None:
    repo.freeze()
    code, err = search(
        repo, "--optuna", "2", "--metric", "acc", "--random-seed", "7",
        "-S", "x=loguniform(1e-4,1e-1)", "-S", "batch=32,64", "-S", "depth=randint(2,5)", "-S", "fixed=7",
        "-S", "lr=uniform(0.5,0.75)",
    )
    assert code == 0, err
    sweep_id = sweep_of(err)
    runs = sweep_runs(repo, sweep_id)
    assert [r.sweep["index"] for r in runs] == [0, 1]
    for run in runs:
        assert run.status == "completed"
        assert 1e-4 <= run.params["x"] <= 1e-1
        assert run.params["batch"] in (32, 64)
        assert run.params["depth"] in (2, 3, 4, 5) and isinstance(run.params["depth"], int)
        assert run.params["fixed"] == 7
        assert 0.5 <= run.params["lr"] <= 0.75
        assert run.sweep["method"] == "optuna" and run.sweep["metric"] == "acc"
        assert run.sweep["direction"] == "maximize" and run.sweep["sampler"] == "tpe" and run.sweep["size"] == 2
        assert run.metrics["acc"] == pytest.approx(run.params["x"] + 2)
    listed = repo.gitexp("list", "--where", f"sweep = {sweep_id}", "--format", "json")
    assert listed.code == 0, listed.err
    assert sorted(r["name"] for r in json.loads(listed.out)) == sorted(r.name for r in runs)


def test_search_optimizes_the_metric_in_its_configured_direction(repo: Workspace) -> None:
    repo.write(".gitexp.yaml", "direction:\n  acc: lower\n")  # acc is guessed higher: the config says otherwise
    repo.commit_all("acc: lower is better")
    code, err = search(repo, "--optuna", "2", "--metric", "acc", "--sampler", "qmc", "--pruner", "hyperband", "-S", "x=uniform(0,1)")
    assert code == 0, err
    runs = sweep_runs(repo, sweep_of(err))
    lowest = min(runs, key=lambda r: r.metrics["acc"])
    assert best_line(err).startswith(f"gitexp: best: {lowest.name} with acc = ")
    assert {r.sweep["direction"] for r in runs} == {"minimize"} and "for minimal acc" in err

    repo.write(".gitexp.yaml", "direction:\n  loss: higher\n")  # loss is guessed lower
    repo.commit_all("loss: higher is better")
    code, err = search(repo, "--optuna", "2", "--metric", "loss", "--sampler", "random", "--pruner", "none", "-S", "x=uniform(0,1)")
    assert code == 0, err
    runs = sweep_runs(repo, sweep_of(err))
    highest = max(runs, key=lambda r: r.metrics["loss"])
    assert best_line(err).startswith(f"gitexp: best: {highest.name} with loss = ")
    assert {r.sweep["direction"] for r in runs} == {"maximize"} and "for maximal loss" in err


def test_search_with_j_2_runs_two_trials_at_once(repo: Workspace, marks: Path) -> None:
    code, err = search(repo, "--optuna", "2", "-j", "2", "--metric", "acc", "-S", "x=uniform(0,1)", mode="together")
    assert code == 0, err  # each trial waited for the other one to be running
    runs = sweep_runs(repo, sweep_of(err))
    assert [r.status for r in runs] == ["completed", "completed"]
    assert len(list(marks.glob("started-*"))) == 2


def test_a_trial_whose_series_falls_behind_is_pruned_recorded_interrupted_and_tagged(repo: Workspace, marks: Path) -> None:
    code, err = search(
        repo, "--optuna", "2", "--metric", "acc", "--pruner", "median", "--prune-after", "1", "-S", "x=uniform(0,1)",
        mode="prune",
    )
    assert code == 0, err
    first, second = sweep_runs(repo, sweep_of(err))
    assert first.status == "completed" and "pruned" not in first.tags
    assert second.status == "interrupted" and "pruned" in second.tags
    assert second.series("acc").values == [0.0]
    assert "1 completed, 1 pruned, 0 failed" in err
    (waiting,) = marks.glob("waiting-*")
    assert not _alive(int(waiting.name.split("-")[1]))


def test_a_failing_trial_is_a_failed_run_and_the_search_goes_on(repo: Workspace) -> None:
    code, err = search(repo, "--optuna", "2", "--metric", "acc", "-S", "x=uniform(0,1)", mode="fail-first")
    assert code == 0, err
    runs = sweep_runs(repo, sweep_of(err))
    assert [r.status for r in runs] == ["failed", "completed"]
    assert runs[0].exit_code == 3
    assert "1 completed, 0 pruned, 1 failed" in err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm-to-the-search", "ctrl-c-to-the-group"])
def test_a_signal_stops_the_search_and_records_the_run_in_progress(repo: Workspace, marks: Path, signum: int) -> None:
    proc = subprocess.Popen(
        [*GITEXP, "run", "--optuna", "3", "--metric", "acc", "-S", "x=uniform(0,1)", "--", "python", "train.py", "hang", "{x}"],
        cwd=repo.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + WAIT
        while not list(marks.glob("pid-*")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        if signum == signal.SIGINT:  # a terminal's Ctrl-C reaches the whole foreground group
            os.killpg(proc.pid, signal.SIGINT)
        else:  # a scheduler's SIGTERM reaches the search alone
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signum, err
    assert ("stopped by SIGTERM" if signum == signal.SIGTERM else "stopped by Ctrl-C") in err
    (only,) = [r for r in gitexp.runs(repo=repo.root)]
    assert only.status == "interrupted"
    (script,) = marks.glob("pid-*")  # named by its pid: the signal may land before the file is written
    assert not _alive(int(script.name.split("-")[1]))
    with pytest.raises(ProcessLookupError):  # nothing of the search's session is left
        os.killpg(proc.pid, 0)


def test_sweep_id_continues_a_search_in_the_same_sweep(repo: Workspace) -> None:
    code, err = search(repo, "--optuna", "1", "--metric", "acc", "-S", "x=uniform(0,1)", mode="fail-first")
    assert code == 1 and "gitexp: no trial recorded a number for acc" in err, err  # its one trial failed
    sweep_id = sweep_of(err)
    # Runs of the sweep as a fetched record may have them: overrides outside the space, not texts, a bad index.
    hostile = [
        {"id": sweep_id, "index": "1; rm -rf /", "overrides": ["x=2.5"], "metric": "acc"},
        {"id": sweep_id, "index": 10**30, "overrides": [{"x": 0.5}, "x=nan"], "metric": "acc"},
    ]
    script = "import json, sys, gitexp\nfor sweep in json.loads(sys.argv[1]):\n    gitexp.start(params={'x': 0.5}, sweep=sweep).end()\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITEXP_")}
    subprocess.run([sys.executable, "-c", script, json.dumps(hostile)], cwd=repo.root, env=env, check=True, timeout=WAIT)
    code, err = search(
        repo, "--optuna", "1", "--metric", "acc", "-S", "x=uniform(0,1)", "--sweep", sweep_id, mode="fail-first"
    )
    assert code == 0, err
    assert "(after 1 earlier)" in err and "2 run(s) outside this search space left out" in err
    runs = [r for r in sweep_runs_any(repo, sweep_id) if r.sweep.get("method") == "optuna"]
    assert [r.sweep["index"] for r in runs] == [0, 1]
    assert [r.status for r in runs] == ["failed", "completed"] and runs[1].sweep["size"] == 2
    assert len(gitexp.runs(repo=repo.root)) == 4

    code, err = search(repo, "--optuna", "1", "--metric", "loss", "-S", "x=uniform(0,1)", "--sweep", sweep_id)
    assert code == 1 and err.strip() == f"gitexp: error: sweep {sweep_id} optimized acc, not loss (give --metric acc)"


BAD = {
    "a distribution with one number": (["-S", "x=loguniform(1e-4)", "--metric", "acc"], "takes two numbers"),
    "low above high": (["-S", "x=uniform(0.5,0.1)", "--metric", "acc"], "low <= high"),
    "low equal to high": (["-S", "x=uniform(1,1)", "--metric", "acc"], "needs low < high"),
    "loguniform from zero": (["-S", "x=loguniform(0,1)", "--metric", "acc"], "low > 0"),
    "an unknown distribution": (["-S", "x=normal(0,1)", "--metric", "acc"], "unknown sampler"),
    "an unknown sampler": (["-S", "x=uniform(0,1)", "--metric", "acc", "--sampler", "anneal"], "unknown --sampler 'anneal'"),
    "an unknown pruner": (["-S", "x=uniform(0,1)", "--metric", "acc", "--pruner", "wilcoxon"], "unknown --pruner 'wilcoxon'"),
    "no metric": (["-S", "x=uniform(0,1)"], "--optuna needs --metric NAME"),
    "no search space": (["-S", "x=0.5", "--metric", "acc"], "needs a search space"),
    "a shell name": (["-S", "$(touch pwned)=1,2", "--metric", "acc"], "a searched param's name is"),
    "a newline in a name": (["-S", "a\nb=1,2", "--metric", "acc"], "a searched param's name is"),
    "a path as a name": (["-S", "../x=1,2", "--metric", "acc"], "a searched param's name is"),
    "an empty name": (["-S", "=1,2", "--metric", "acc"], "a searched param's name is"),
    "a hostile sweep id": (["-S", "x=uniform(0,1)", "--metric", "acc", "--sweep", "../../x"], "is not a sweep id"),
    "an unknown sweep id": (["-S", "x=uniform(0,1)", "--metric", "acc", "--sweep", "sw-00000000"], "no run belongs to sweep"),
    "with --random": (["-S", "x=uniform(0,1)", "--metric", "acc", "--random", "2"], "--optuna and --random"),
}


@pytest.mark.parametrize("args,message", BAD.values(), ids=list(BAD))
def test_bad_search_input_is_one_line_error_and_nothing_is_recorded(repo: Workspace, args: list[str], message: str) -> None:
    repo.freeze()
    result = repo.gitexp("run", "--optuna", "2", *args, "--", "python", "train.py", "plain", "1")
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gitexp: error: ") and message in lines[0], result.err
    assert repo.runs() == {}
    assert not (repo.root / "pwned").exists()


def test_search_options_without_optuna_are_refused(repo: Workspace) -> None:
    result = repo.gitexp("run", "--metric", "acc", "--", "python", "train.py", "plain", "1")
    assert result.code != 0 and result.err.strip() == (
        "gitexp: error: --metric goes with --optuna N (a search); without it there is nothing to optimize"
    )
    assert repo.runs() == {}


def test_without_optuna_installed_the_search_says_how_to_install_it(repo: Workspace, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    (shadow / "optuna").mkdir(parents=True)
    (shadow / "optuna" / "__init__.py").write_text("raise ImportError('No module named optuna')\n")
    path = os.pathsep.join(p for p in (str(shadow), os.environ.get("PYTHONPATH", "")) if p)
    result = repo.gitexp(
        "run", "--optuna", "2", "--metric", "acc", "-S", "x=uniform(0,1)", "--", "python", "train.py", "plain", "{x}",
        env={"PYTHONPATH": path},
    )
    assert result.code == 1
    assert result.err.strip() == "gitexp: error: --optuna needs optuna: pip install 'gitexp[optuna]'"
    assert repo.runs() == {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended: only its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False

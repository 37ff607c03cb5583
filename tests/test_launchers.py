"""Launchers on existing engines: Dask, Ray and Slurm start `gitexp queue work` in fresh clones; the remote does the rest.

Everything is real: a `git daemon` on 127.0.0.1 with receive-pack serves the team's bare repository,
Dask's LocalCluster runs separate worker processes behind its own scheduler on loopback, Ray starts a
local cluster, and the Slurm script's body runs under bash with the variables Slurm sets (sbatch
itself is not installed here, so the #SBATCH lines are checked as text).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GITEXP, Workspace, free_port, git, gitexp
from test_remote_queue import WAIT, Team, assert_final_with_outputs, team_at, wait_for

PY = sys.executable
VALUES = [str(i) for i in range(1, 5)]  # two runs per worker: enough to race


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Team]:
    """test_remote_queue's team (a desk clone, a bare remote behind a real git daemon, a data remote it trusts)
    with four runs queued on the remote. Each run appends its value to team.mark and writes model.bin, an output.

    MARK and TMPDIR are set in this process, so engine workers started after it inherit them.
    """
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # where workers clone: this test's own, checked empty after
    with team_at(tmp_path) as (found, _stop):
        monkeypatch.setenv("MARK", str(found.mark))
        assert len(found.queue(*VALUES)) == len(VALUES)
        yield found


def assert_ran_exactly_once(team: Team) -> None:
    assert sorted(team.marks(), key=int) == VALUES, "each queued run executed exactly once"
    assert team.remote_refs("refs/gitexp-queue/") == {}
    assert_final_with_outputs(team, sorted(team.remote_refs("refs/experiments/")))
    assert len(team.remote_refs("refs/experiments/")) == len(VALUES)


def clones_left() -> list[Path]:
    return list(Path(os.environ["TMPDIR"]).glob("gitexp-work-*"))


@contextlib.contextmanager
def dask_cluster() -> Iterator[str]:
    """A real Dask cluster: its scheduler and two single-threaded worker processes on loopback (they inherit
    this process's environment as it is now); yields the scheduler's address."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0",
        resources={"GPU": 1},  # declared, not real: each worker holds one, so --gpus 1 puts one gitexp worker on each
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


@pytest.fixture
def dask_scheduler(team: Team) -> Iterator[str]:
    with dask_cluster() as address:
        yield address


def test_dask_workers_each_in_a_fresh_clone_run_every_queued_run_exactly_once(team: Team, dask_scheduler: str) -> None:
    result = gitexp(team.desk, "queue", "start", "--dask", dask_scheduler, "-j", "2", "--gpus", "1", "--json", timeout=WAIT)
    assert result.code == 0, result.err
    reports = result.json()
    assert [r["index"] for r in reports] == [0, 1] and all(r["exit_code"] == 0 for r in reports)  # type: ignore[index]
    ran = [o["name"] for r in reports for o in r["summary"]]  # type: ignore[index]
    assert len(ran) == len(VALUES) == len(set(ran)), "the workers' own summaries name each run once"
    assert len(re.findall(r"^gitexp: worker \d on \S+ exited 0 \(\d run\(s\)", result.err, re.MULTILINE)) == 2, result.err
    assert_ran_exactly_once(team)
    assert clones_left() == [], "each worker's clone is removed when it ends"


def test_a_worker_that_cannot_clone_is_reported_and_the_exit_is_nonzero(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # before the cluster starts: its workers clone there
    nowhere = f"git://127.0.0.1:{free_port()}/origin.git"
    with dask_cluster() as address:
        result = ws.gitexp("queue", "start", "--dask", address, "-j", "2", "--remote", nowhere, timeout=WAIT)
    assert result.code == 1, result.err
    assert result.err.count(f"did not run: git clone {nowhere} failed") == 2, result.err
    assert result.out.startswith("2 worker(s): 0 ended well, 2 failed"), result.out
    assert clones_left() == []


def test_ctrl_c_stops_waiting_and_the_dask_workers_finish_the_queue_exactly_once(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = team.tmp / "started", team.tmp / "release"
    monkeypatch.setenv("STARTED", str(started))  # each run waits for release (the cluster's workers inherit this)
    monkeypatch.setenv("RELEASE", str(release))
    with dask_cluster() as address:
        launcher = subprocess.Popen(
            [*GITEXP, "queue", "start", "--dask", address, "-j", "2"], cwd=team.desk, text=True, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        wait_for("a run to start", started.exists)
        launcher.send_signal(signal.SIGINT)
        _, err = launcher.communicate(timeout=WAIT)
        assert launcher.returncode == 130, err
        assert "gitexp: stopped waiting: the workers already started go on until the queue is empty" in err, err
        assert "Traceback" not in err
        release.touch()
        wait_for("the workers to finish the queue", lambda: len(team.marks()) == len(VALUES) and not clones_left())
    assert_ran_exactly_once(team)


def test_a_data_remote_this_clone_does_not_trust_is_refused_before_anything_starts(team: Team) -> None:
    pytest.importorskip("distributed")
    stranger = team.tmp / "stranger"
    git(team.tmp, "clone", "-q", team.url, str(stranger))  # .gitexp.yaml names a data remote; this clone never allowed it
    result = gitexp(stranger, "queue", "start", "--dask", f"tcp://127.0.0.1:{free_port()}", "-j", "2")
    assert result.code == 1
    assert "refusing to send data to data remote 'shared'" in result.err and "gitexp remote trust shared" in result.err
    assert "Traceback" not in result.err and "starting" not in result.err
    script = gitexp(stranger, "queue", "slurm-script", "--array", "2")
    assert script.code == 1 and "refusing to send data to data remote 'shared'" in script.err and script.out == ""


def test_an_unreachable_dask_scheduler_is_one_line(ws: Workspace) -> None:
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{free_port()}"
    remote = ["--remote", "https://bob:s3cret@127.0.0.1:1/team.git"]  # a token in the URL is never printed
    result = ws.gitexp("queue", "start", "--dask", address, "-j", "2", *remote, env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"})
    assert result.code == 1
    *said, error = result.err.strip().splitlines()
    assert error.startswith(f"gitexp: error: cannot reach the Dask scheduler at '{address}'"), result.err
    assert "Traceback" not in result.err and len(said) == 1 and said[0].startswith("gitexp: starting 2 worker(s)")
    assert "https://bob:***@127.0.0.1:1/team.git" in said[0] and "s3cret" not in result.err


@pytest.mark.parametrize("engine,module", [("ray", "ray"), ("dask", "distributed")])
def test_a_missing_engine_names_the_extra_to_install(ws: Workspace, engine: str, module: str) -> None:
    # sys.modules[name] = None is Python's own "this module is not there": its import raises ImportError
    code = f"import sys; sys.modules[{module!r}] = None; from gitexp.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [PY, "-P", "-c", code, "queue", "start", f"--{engine}", "auto", "-j", "2"],
        cwd=ws.root, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == f"gitexp: error: {engine} is not installed (install it with: pip install 'gitexp[{engine}]')\n"


def test_engine_options_and_local_options_do_not_mix(ws: Workspace) -> None:
    both = ws.gitexp("queue", "start", "--ray", "auto", "--dask", "tcp://127.0.0.1:1")
    assert both.code == 2 and "give --ray or --dask, not both" in both.err
    local = ws.gitexp("queue", "start", "--dask", "tcp://127.0.0.1:1", "--fail-fast")
    assert local.code == 2 and "--fail-fast: only for the local queue" in local.err
    remote = ws.gitexp("queue", "start", "--idle-exit", "5")
    assert remote.code == 2 and "--idle-exit needs --ray or --dask" in remote.err
    unnamed = ws.gitexp("queue", "start", "--dask", "tcp://127.0.0.1:1", "--remote", "nowhere")
    assert unnamed.code == 1 and "no git remote named 'nowhere' here" in unnamed.err


def test_ray_tasks_on_a_local_cluster_run_every_queued_run_exactly_once(team: Team) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'gitexp[ray]'); Dask covers the same path")
    # Ray's sockets live under its temporary directory: this test's TMPDIR is longer than AF_UNIX allows (107 bytes)
    short = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    try:
        result = gitexp(team.desk, "queue", "start", "--ray", "local", "-j", "2", env={"RAY_TMPDIR": short}, timeout=WAIT)
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert result.code == 0, result.err
    assert result.out.startswith("2 worker(s): 2 ended well"), result.out
    assert_ran_exactly_once(team)
    assert clones_left() == []


def test_the_slurm_script_is_valid_bash_and_its_body_runs_workers_in_their_own_clones(team: Team) -> None:
    made = gitexp(team.desk, "queue", "slurm-script", "--array", "8", "--gpus", "1", "--cpus", "2", "--time", "4:00:00",
                  "--partition", "gpu", "--idle-exit", "0")
    assert made.code == 0, made.err
    script = made.out
    assert script.startswith("#!/bin/bash\n")
    sbatch = [line for line in script.splitlines() if line.startswith("#SBATCH ")]
    for line in ("--array=1-8", "--gpus=1", "--cpus-per-task=2", "--time=4:00:00", "--partition=gpu"):
        assert f"#SBATCH {line}" in sbatch
    assert "\ngitexp queue work --remote origin --idle-exit 0 --data-remote shared\n" in script
    assert f"remote={team.url}\n" in script, "the remote's name is resolved to its URL, so the script runs on any node"
    assert f"gitexp remote add --local shared {team.datastore}" in script, "the data remote the desk trusts, carried over"
    path = team.tmp / "work.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True, check=False).returncode == 0
    # The body, as Slurm would run two tasks of the array at once (sbatch is not installed here).
    env = {**os.environ, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}", "SLURM_ARRAY_JOB_ID": "41"}
    tasks = [
        subprocess.Popen(["bash", str(path)], cwd=team.tmp, env={**env, "SLURM_JOB_ID": str(42 + k), "SLURM_ARRAY_TASK_ID": str(k + 1)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        for k in range(2)
    ]
    for task in tasks:
        _, err = task.communicate(timeout=WAIT)
        assert task.returncode == 0, err
    assert_ran_exactly_once(team)
    assert clones_left() == [], "the script's trap removes its clone"


def test_slurm_script_refuses_what_cannot_stand_on_an_sbatch_line(ws: Workspace) -> None:
    bad = ws.gitexp("queue", "slurm-script", "--remote", "git://127.0.0.1:1/x.git", "--partition", "gpu\n#SBATCH --x")
    assert bad.code == 2 and "only letters, digits" in bad.err


def test_the_cluster_docs_show_the_script_gitexp_prints_and_a_valid_job_manifest(ws: Workspace) -> None:
    import yaml

    doc = (Path(__file__).resolve().parent.parent / "docs" / "cluster.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, re.DOTALL)
    script = next(text for lang, text in blocks if lang == "bash")
    made = ws.gitexp("queue", "slurm-script", "--remote", "git@example.org:team/project.git", "--array", "8", "--gpus", "1",
                     "--time", "4:00:00", "--partition", "gpu")
    assert made.code == 0 and made.out == script, "docs/cluster.md shows what gitexp queue slurm-script prints"
    job = yaml.safe_load(next(text for lang, text in blocks if lang == "yaml"))
    assert job["kind"] == "Job" and job["spec"]["parallelism"] == 8 and "completions" not in job["spec"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "gitexp queue work --remote origin --idle-exit 60" in container["args"][0]
    assert 'sbatch --array=1-8 --wrap "gitexp queue work --remote origin --idle-exit 60"' in doc

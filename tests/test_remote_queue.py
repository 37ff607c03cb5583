"""The queue over a git remote: workers anywhere claim runs by compare-and-swap pushes to a real `git daemon`.

Each run's command appends its value to a marker file, so the tests count executions, not claims.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import GITEXP, IDENTITY, free_port, git, git_daemon, gitexp

WAIT = 120.0  # generous: CI runs beside a CPU hog on every core

COMMAND = """\
echo "$1" >> "$MARK"
echo "output of run $1"
if [ -n "$STARTED" ]; then touch "$STARTED"; while [ ! -e "$RELEASE" ]; do sleep 0.05; done; fi
cat data/train.csv > model.bin
echo "run $1" >> model.bin
"""


def wait_for(what: str, check: Callable[[], object], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@dataclass
class Team:
    base: Path  # what the daemon serves
    bare: Path  # the remote's repository on disk (the tests look at it directly)
    url: str
    desk: Path  # the user's clone, where runs are queued
    datastore: Path
    tmp: Path
    mark: Path

    def clone(self, name: str, url: str | None = None) -> Path:
        path = self.tmp / name
        git(self.tmp, "clone", "-q", url or self.url, str(path))
        trusted = gitexp(path, "remote", "trust", "shared")
        assert trusted.code == 0, trusted.err
        return path

    def remote_refs(self, prefix: str) -> dict[str, str]:
        out = git(self.bare, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return {line.split()[0][len(prefix) :]: line.split()[1] for line in out.splitlines()}

    def trailer(self, rev: str, key: str) -> str:
        return git(self.bare, "log", "-1", f"--format=%(trailers:key={key},valueonly)", rev).strip()

    def marks(self) -> list[str]:
        return self.mark.read_text().split() if self.mark.exists() else []

    def queue(self, *values: str, **env: str) -> list[str]:
        result = gitexp(self.desk, "run", "--queue", "-S", "x=" + ",".join(values), "--", "sh", "t.sh", "{x}", env=env)
        assert result.code == 0, result.err
        pushed = gitexp(self.desk, "push", "origin")
        assert pushed.code == 0, pushed.err
        return sorted(self.remote_refs("refs/gitexp-queue/"))

    def worker(self, clone: Path, *args: str, env: dict[str, str] | None = None, wrap: list[str] | None = None,
               remote: str = "origin") -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*(wrap or []), *GITEXP, "queue", "work", "--remote", remote, *args], cwd=clone, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "MARK": str(self.mark), **(env or {})},
        )


@contextlib.contextmanager
def team_at(tmp_path: Path) -> Iterator[tuple[Team, Callable[[], None]]]:
    base = tmp_path / "served"
    base.mkdir()
    bare = base / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    stack = contextlib.ExitStack()
    with stack:
        prefix = stack.enter_context(git_daemon(base, receive_pack=True))
        url = f"{prefix}/origin.git"
        desk = tmp_path / "desk"
        desk.mkdir()
        git(desk, "init", "-q", "-b", "main")
        datastore = tmp_path / "datastore"
        (desk / ".gitexp.yaml").write_text(f"data: [data]\noutputs: [model.bin]\nremotes:\n  shared: {datastore}\n")
        (desk / ".gitignore").write_text("model.bin\n")
        (desk / "t.sh").write_text(COMMAND)
        (desk / "data").mkdir()
        (desk / "data" / "train.csv").write_text("a,b\n1,2\n")
        git(desk, "add", "-A")
        git(desk, "commit", "-q", "-m", "base")
        git(desk, "remote", "add", "origin", url)
        git(desk, "push", "-q", "origin", "main")
        assert gitexp(desk, "remote", "trust", "shared").code == 0
        yield Team(base, bare, url, desk, datastore, tmp_path, tmp_path / "marks"), stack.close


@pytest.fixture
def team(tmp_path: Path) -> Iterator[Team]:
    with team_at(tmp_path) as (found, _stop):
        yield found


@pytest.fixture
def team_and_stop(tmp_path: Path) -> Iterator[tuple[Team, Callable[[], None]]]:
    with team_at(tmp_path) as found:
        yield found


def finish(proc: subprocess.Popen[str], timeout: float = WAIT) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"worker did not end: {err}") from None
    return proc.returncode, out, err


def assert_final_with_outputs(team: Team, names: list[str]) -> None:
    final = team.remote_refs("refs/experiments/")
    assert sorted(final) == sorted(names)
    for name in names:
        assert team.trailer(f"refs/experiments/{name}", "Gitexp-Status") == "completed"
        data = json.loads(git(team.bare, "show", f"refs/experiments/{name}:.gitexp/data.json"))
        (output,) = data["outputs"]
        digest = output["digest"]
        assert (team.datastore / "objects" / digest[:2] / digest[2:]).is_file(), f"the output of {name} is not on the data remote"


def test_forty_queued_runs_and_four_workers_run_each_exactly_once(team: Team) -> None:
    values = [str(i) for i in range(1, 41)]
    queued = team.queue(*values)
    assert len(queued) == 40
    local = gitexp(team.desk, "queue", "status")
    assert local.out.strip() == "nothing queued or running", "handed over: not in the local queue any more"
    assert "40 run(s) were handed over to a remote's queue" in local.err
    clones = [team.clone(f"worker{i}") for i in range(4)]
    workers = [team.worker(c, "--idle-exit", "0", "--json") for c in clones]
    results = [finish(w) for w in workers]
    for code, _, err in results:
        assert code == 0, err
        assert "Traceback" not in err
    ran = [o["name"] for _, out, _ in results for o in json.loads(out)]
    assert sorted(ran) == queued, "each run executed by exactly one worker"
    assert sorted(team.marks(), key=int) == values, "each command ran exactly once"
    assert team.remote_refs("refs/gitexp-queue/") == {}
    assert_final_with_outputs(team, queued)
    output = json.loads(git(team.bare, "show", f"refs/experiments/{queued[0]}:.gitexp/data.json"))["outputs"][0]
    got = team.datastore / "objects" / output["digest"][:2] / output["digest"][2:]
    assert got.read_bytes().startswith(b"a,b\n1,2\n"), "the worker had the queued run's inputs"
    pulled = gitexp(team.desk, "pull", "origin")
    assert pulled.code == 0, pulled.err
    listed = gitexp(team.desk, "list", "--json").out
    assert sorted(run["status"] for run in json.loads(listed)) == ["completed"] * 40
    status = gitexp(team.desk, "queue", "status", "--remote", "origin", "--json")
    assert status.code == 0 and json.loads(status.out) == [], status.err
    assert git(team.desk, "for-each-ref", "refs/gitexp-queue/") == "", "the handed-over copies are gone once final"
    for repo in (team.bare, team.desk):
        fsck = subprocess.run(["git", "fsck", "--strict", "--no-dangling"], cwd=repo, capture_output=True, text=True, check=False)
        assert fsck.returncode == 0 and "error" not in fsck.stderr, fsck.stderr


def test_a_worker_fetches_only_the_queue_refs(team: Team) -> None:
    from gitexp.remote_queue import fetch_queue

    for i in range(3):
        git(team.desk, "push", "-q", "origin", f"HEAD:refs/experiments/done-{i}")
    team.queue("1")
    repo = team.tmp / "probe"
    git(team.tmp, "init", "-q", str(repo))
    trace = team.tmp / "packets"
    os.environ["GIT_TRACE_PACKET"] = str(trace)
    try:
        fetch_queue(repo, team.url)
    finally:
        del os.environ["GIT_TRACE_PACKET"]
    packets = trace.read_text(errors="replace")
    assert "ref-prefix refs/gitexp-queue/" in packets
    assert "refs/gitexp-queue/" in packets and "refs/experiments/" not in packets, "the remote listed only queue refs"
    assert git(repo, "for-each-ref", "--format=%(refname)").startswith("refs/gitexp-queue/")


def test_of_two_workers_racing_for_one_run_one_wins_and_the_other_moves_on(team: Team) -> None:
    from gitexp.remote_queue import Lease, Options, Worker, cas_push, claim_commit
    from gitexp.store import Store

    (name,) = team.queue("1")
    clones = [team.clone(n) for n in ("a", "b")]
    a, b = (Worker(Store.discover(c), Options("origin"), lambda _m: None) for c in clones)
    for w in (a, b):
        w.open()
    try:
        (seen_a,), (seen_b,) = a.look(), b.look()
        assert seen_a.run.status == seen_b.run.status == "queued"
        assert a.store is not None and b.store is not None
        claims = [claim_commit(w.store, e, e.run.commit, Lease(host, 1, int(time.time()) + 300))  # type: ignore[union-attr]
                  for host, w, e in (("a", a, seen_a), ("b", b, seen_b))]
        assert cas_push(a.store.root, a.url, {seen_a.ref: seen_a.run.commit}, [f"{claims[0]}:{seen_a.ref}"])
        assert not cas_push(b.store.root, b.url, {seen_b.ref: seen_b.run.commit}, [f"{claims[1]}:{seen_b.ref}"])
        assert b.execute(seen_b) is None, "the loser moves on"
        assert team.marks() == [] and team.remote_refs("refs/gitexp-queue/") == {name: claims[0]}
    finally:
        a.close()
        b.close()
    git(team.bare, "update-ref", "-d", f"refs/gitexp-queue/{name}")
    team.queue("2")
    ws = [team.worker(c, "--idle-exit", "0", "--json") for c in clones]
    outs = [finish(w) for w in ws]
    assert all(code == 0 for code, _, _ in outs), [err for _, _, err in outs]
    assert sorted(len(json.loads(out)) for _, out, _ in outs) == [0, 1]
    assert team.marks() == ["2"]


def test_a_worker_killed_mid_run_leaves_a_crashed_run_that_is_retried_once(team: Team) -> None:
    started, release = team.tmp / "started", team.tmp / "release"
    (name,) = team.queue("7")
    env = {"STARTED": str(started), "RELEASE": str(release)}
    doomed = team.worker(team.clone("doomed"), "--lease", "3", env=env)
    wait_for("the run to start", started.exists)
    os.killpg(doomed.pid, signal.SIGKILL)  # the machine dies: worker and command
    doomed.wait()
    lease = team.trailer(f"refs/gitexp-queue/{name}", "Gitexp-Lease")
    _host, pid, until = lease.split()
    assert pid.isdigit()
    wait_for("the lease to end", lambda: time.time() > int(until) + 0.5)
    release.touch()
    code, out, err = finish(team.worker(team.clone("heir"), "--lease", "3", "--retry-crashed", "1", "--idle-exit", "0", "--json", env=env))
    assert code == 0, err
    retry = f"{name}-attempt2"
    assert f"{name}: crashed" in err and f"queued again as {retry}" in err
    assert [o["name"] for o in json.loads(out)] == [retry]
    assert team.marks() == ["7", "7"], "the killed attempt and its retry"
    assert team.trailer(f"refs/experiments/{name}", "Gitexp-Status") == "crashed"
    assert team.trailer(f"refs/experiments/{name}", "Gitexp-Incomplete") == '["logs"]'
    assert team.trailer(f"refs/experiments/{retry}", "Gitexp-Status") == "completed"
    crashed = git(team.bare, "rev-parse", f"refs/experiments/{name}").strip()
    assert crashed[:12] in git(team.bare, "log", "-1", "--format=%B", f"refs/experiments/{retry}")
    assert team.remote_refs("refs/gitexp-queue/") == {}
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"gitexp-rq-{doomed.pid}-*")), "its temporary copy was removed"
    # no more retries than asked: a crash of the retry is final
    git(team.bare, "update-ref", "-d", f"refs/experiments/{retry}")


def test_a_worker_whose_remote_goes_down_stops_cleanly_and_leaves_the_lease(
    team_and_stop: tuple[Team, Callable[[], None]],
) -> None:
    team, stop = team_and_stop
    started, release = team.tmp / "started", team.tmp / "release"
    (name,) = team.queue("5")
    clone = team.clone("w")
    worker = team.worker(clone, env={"STARTED": str(started), "RELEASE": str(release)})
    wait_for("the run to start", started.exists)
    stop()  # the daemon: the remote is down
    release.touch()
    code, _, err = finish(worker)
    assert code == 1
    lines = [line for line in err.splitlines() if "cannot push" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{name} is left to its lease" in lines[0]
    assert team.trailer(f"refs/gitexp-queue/{name}", "Gitexp-Status") == "running", "left to its lease"
    assert team.trailer(f"refs/gitexp-queue/{name}", "Gitexp-Lease")
    again = team.worker(clone, "--idle-exit", "0")
    code, _, err = finish(again)
    assert code == 1 and "cannot fetch the queue" in err and len(err.strip().splitlines()) == 1, err


def test_hostile_queue_refs_are_refused_in_one_line_and_nothing_runs(team: Team) -> None:
    (name,) = team.queue("1")
    good = team.remote_refs("refs/gitexp-queue/")[name]
    git(team.bare, "update-ref", "-d", f"refs/gitexp-queue/{name}")
    tree = git(team.bare, "rev-parse", f"{good}^{{tree}}").strip()
    message = git(team.bare, "log", "-1", "--format=%B", good)

    def commit(text: str) -> str:
        proc = subprocess.run(["git", "commit-tree", tree], cwd=team.bare, input=text, capture_output=True, text=True,
                              env={**os.environ, **IDENTITY}, check=True)
        return proc.stdout.strip()

    running = message.replace("Gitexp-Status: queued", "Gitexp-Status: running")
    hostile = {
        "sub/dir": commit(message.replace(f"Gitexp-Run: {name}", "Gitexp-Run: sub/dir")),
        "-rf": commit(message.replace(f"Gitexp-Run: {name}", "Gitexp-Run: -rf")),
        "blob": git(team.bare, "rev-parse", f"{good}:t.sh").strip(),
        "other-name": commit(message),
        "bad-lease": commit(running.replace(f"Gitexp-Run: {name}", "Gitexp-Run: bad-lease")
                            + "Gitexp-Lease: x;rm -rf / 1 99999999999999999999\n"),
        "huge-lease": commit(running.replace(f"Gitexp-Run: {name}", "Gitexp-Run: huge-lease")
                             + "Gitexp-Lease: " + "h" * (1 << 20) + " 1 1\n"),
        "bad-attempt": commit(message.replace(f"Gitexp-Run: {name}", "Gitexp-Run: bad-attempt") + "Gitexp-Attempt: -3\n"),
        "done": commit(message.replace(f"Gitexp-Run: {name}", "Gitexp-Run: done").replace("Gitexp-Status: queued", "Gitexp-Status: completed")),
    }
    for ref, target in hostile.items():
        git(team.bare, "update-ref", f"refs/gitexp-queue/{ref}", target)
    before = team.remote_refs("refs/")
    clone = team.clone("w")
    code, _, err = finish(team.worker(clone, "--idle-exit", "0", "--retry-crashed", "3"))
    assert code == 0, err
    refused = [line for line in err.splitlines() if line.startswith("gitexp: refused refs/gitexp-queue/")]
    assert len(refused) == len(hostile), err
    assert all(len(line) < 700 for line in refused)
    assert "Traceback" not in err and team.marks() == []
    assert team.remote_refs("refs/") == before, "nothing was written to the remote"
    status = gitexp(team.desk, "queue", "status", "--remote", "origin")
    assert status.code == 0 and status.out.strip() == "nothing queued or running on origin"
    assert len([line for line in status.err.splitlines() if "refused" in line]) == len(hostile)
    untrusting = team.tmp / "untrusting"
    git(team.tmp, "clone", "-q", team.url, str(untrusting))
    refused = gitexp(untrusting, "queue", "work", "--remote", "origin", "--idle-exit", "0")
    assert refused.code == 1 and "gitexp remote trust shared" in refused.err and len(refused.err.strip().splitlines()) == 1
    assert team.remote_refs("refs/") == before
    some = next(iter(before.values()))
    with (team.bare / "packed-refs").open("a") as packed:  # git itself would never write it
        packed.write(f"{some} refs/gitexp-queue/x/../../../heads/evil\n")
    code, _, err = finish(team.worker(clone, "--idle-exit", "0"))
    assert code == 1 and "cannot fetch the queue" in err and len(err.strip().splitlines()) == 1, err
    assert team.marks() == []


def _netns_ready() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    probe = subprocess.run(["ip", "netns", "add", f"gxq-probe-{os.getpid()}"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", f"gxq-probe-{os.getpid()}"], capture_output=True, check=False)
    return None


@contextlib.contextmanager
def namespace(name: str, index: int) -> Iterator[tuple[str, str]]:
    """A network namespace joined to this one by a veth pair: (namespace, the address of this side)."""
    subnet = f"10.{200 + index}.{os.getpid() % 250}"
    host_if, ns_if = f"gxh{index}{os.getpid() % 10000}", f"gxn{index}{os.getpid() % 10000}"
    cmds = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
        ["ip", "link", "set", ns_if, "netns", name],
        ["ip", "addr", "add", f"{subnet}.1/30", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", f"{subnet}.2/30", "dev", ns_if],
        ["ip", "netns", "exec", name, "ip", "link", "set", ns_if, "up"],
    ]
    try:
        for cmd in cmds:
            subprocess.run(cmd, check=True, capture_output=True)
        yield name, f"{subnet}.1"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def test_workers_in_separate_network_namespaces_reach_the_remote_only_over_their_veth(team: Team) -> None:
    why = _netns_ready()
    if why:
        pytest.skip(why)
    queued = team.queue("1", "2", "3", "4", "5", "6")
    with contextlib.ExitStack() as stack:
        spaces = [stack.enter_context(namespace(f"gxq-{os.getpid()}-{i}", i)) for i in range(2)]
        port = free_port()
        daemons = []
        for _, address in spaces:  # a daemon listening on each veth's address only
            daemons.append(subprocess.Popen(
                ["git", "daemon", "--reuseaddr", f"--listen={address}", f"--port={port}", "--export-all",
                 "--enable=receive-pack", f"--base-path={team.base}", str(team.base)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))
            stack.callback(lambda d=daemons[-1]: (d.terminate(), d.wait(30)))
            wait_for("the daemon", lambda a=address: _answers(a, port))
        workers = []
        for i, (ns, address) in enumerate(spaces):
            clone = team.clone(f"machine{i}")
            url = f"git://{address}:{port}/origin.git"
            unreachable = subprocess.run(["ip", "netns", "exec", ns, "git", "ls-remote", team.url], capture_output=True, timeout=60, check=False)
            assert unreachable.returncode != 0, "the loopback daemon is not reachable from the namespace"
            workers.append(team.worker(clone, "--idle-exit", "0", "--json", remote=url, wrap=["ip", "netns", "exec", ns]))
        results = [finish(w) for w in workers]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    ran = sorted(o["name"] for _, out, _ in results for o in json.loads(out))
    assert ran == queued
    assert sorted(team.marks(), key=int) == ["1", "2", "3", "4", "5", "6"]
    assert_final_with_outputs(team, queued)


def _answers(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_run_longer_than_its_lease_keeps_its_claim_by_renewing_it(team: Team) -> None:
    started, release = team.tmp / "started", team.tmp / "release"
    (name,) = team.queue("3")
    env = {"STARTED": str(started), "RELEASE": str(release)}
    holder = team.worker(team.clone("holder"), "--lease", "6", "--idle-exit", "0", env=env)
    wait_for("the run to start", started.exists)
    first = int(team.trailer(f"refs/gitexp-queue/{name}", "Gitexp-Lease").split()[2])
    wait_for("the first lease end to pass", lambda: time.time() > first + 0.5)
    renewed = int(team.trailer(f"refs/gitexp-queue/{name}", "Gitexp-Lease").split()[2])
    assert renewed > first
    status = gitexp(team.desk, "queue", "status", "--remote", "origin")
    assert status.code == 0, status.err
    row = next(line for line in status.out.splitlines() if line.startswith(name))
    assert "running" in row and "pid" in row and "crashed" not in row
    code, out, err = finish(team.worker(team.clone("other"), "--idle-exit", "0", "--json", "--retry-crashed", "1"))
    assert code == 0 and json.loads(out) == [], err
    assert team.trailer(f"refs/gitexp-queue/{name}", "Gitexp-Status") == "running", "a live claim is not taken over"
    release.touch()
    code, _, err = finish(holder)
    assert code == 0, err
    assert team.marks() == ["3"]
    assert team.trailer(f"refs/experiments/{name}", "Gitexp-Status") == "completed"


def test_sigterm_records_the_run_in_progress_as_interrupted_and_publishes_it(team: Team) -> None:
    started, release = team.tmp / "started", team.tmp / "release"
    names = team.queue("1", "2")
    worker = team.worker(team.clone("w"), env={"STARTED": str(started), "RELEASE": str(release)})
    wait_for("the run to start", started.exists)
    worker.send_signal(signal.SIGTERM)
    code, _, err = finish(worker)
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    (ran,) = team.remote_refs("refs/experiments/")
    assert team.trailer(f"refs/experiments/{ran}", "Gitexp-Status") == "interrupted"
    assert sorted(team.remote_refs("refs/gitexp-queue/")) == [n for n in names if n != ran]
    assert team.trailer(f"refs/gitexp-queue/{next(n for n in names if n != ran)}", "Gitexp-Status") == "queued"


def test_a_run_a_worker_cannot_start_is_left_queued_for_another(team: Team) -> None:
    tools = team.tmp / "bin"
    tools.mkdir()
    (tools / "mytool").write_text('#!/bin/sh\necho "$1" >> "$MARK"\n')
    (tools / "mytool").chmod(0o755)
    with_tool = {"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    queued = gitexp(team.desk, "run", "--queue", "--", "mytool", "9", env=with_tool)
    assert queued.code == 0, queued.err
    assert gitexp(team.desk, "push", "origin").code == 0
    (name,) = team.remote_refs("refs/gitexp-queue/")
    before = team.remote_refs("refs/gitexp-queue/")[name]
    clone = team.clone("w")
    code, out, err = finish(team.worker(clone, "--idle-exit", "0", "--json"))  # this node lacks the tool
    assert code == 1 and "command not found: 'mytool'" in err and "left queued" in err, err
    assert json.loads(out)[0]["status"] == "error"
    assert team.remote_refs("refs/gitexp-queue/") == {name: before}, "back in the queue, as it was"
    code, out, err = finish(team.worker(clone, "--idle-exit", "0", "--json", env=with_tool))
    assert code == 0, err
    assert team.marks() == ["9"] and team.trailer(f"refs/experiments/{name}", "Gitexp-Status") == "completed"

"""Benchmark: what a run costs through the queue of a git remote, against the local queue and plain git.

A throw-away desk repository (under /tmp) queues --runs runs of `true` (a sweep, `gitexp run --queue`)
and hands them over to a bare repository served by a real `git daemon` on 127.0.0.1 (`gitexp push`).
Per repetition, timed as subprocesses:

  remote   one `gitexp queue work --remote origin --idle-exit 0` in a clone: per run a fetch of the
           queue refs, a claim push, the run, a final push (wall / runs);
  local    the same runs queued in the clone itself, worked off by `gitexp queue start` (wall / runs):
           the run without the remote protocol;
  floor    plain git, the same traffic per run: `git fetch` of the queue refs, then two
           `git push --atomic --force-with-lease` to the same daemon (a claim and a publish).
  4x       --runs runs, 4 workers (`queue work` each in its own clone) at once: wall / runs.

Reported (medians over --repeat): each per-run figure; the remote protocol's cost per run
(remote - local) and its ratio to the plain-git floor (the protocol is three git commands per run:
near 1x means gitexp adds nothing to git's own round trips); the load average. Each remote pass checks
that every run is final on the remote and the queue is empty (FAIL otherwise). It reports; it is not a
test (exit 0 unless it crashed).

    python bench/remote_queue.py [--runs 20] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ENV, ensure_bytecode, gitexp_cmd, timed


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=True).stdout


@contextlib.contextmanager
def daemon(base: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}", "--export-all",
         "--enable=receive-pack", f"--base-path={base}", str(base)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


def sweep(n: int) -> list[str]:
    return ["run", "--queue", "-S", "x=" + ",".join(str(i) for i in range(n)), "--", "true", "{x}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ensure_bytecode()
    gx = gitexp_cmd()
    figures: dict[str, list[float]] = {"remote": [], "local": [], "floor": [], "4x": []}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gitexp-bench-rq-") as tmp_name:
        tmp = Path(tmp_name)
        env = {**ENV, "HOME": str(tmp), "GIT_CONFIG_NOSYSTEM": "1", "TMPDIR": str(tmp)}
        base = tmp / "served"
        base.mkdir()
        git(tmp, "init", "-q", "--bare", str(base / "origin.git"))
        with daemon(base) as prefix:
            url = f"{prefix}/origin.git"
            desk = tmp / "desk"
            desk.mkdir()
            git(desk, "init", "-q", "-b", "main")
            (desk / "README").write_text("bench\n")
            git(desk, "add", "-A")
            git(desk, "commit", "-q", "-m", "base")
            git(desk, "remote", "add", "origin", url)
            git(desk, "push", "-q", "origin", "main")
            clones = []
            for i in range(4):
                git(tmp, "clone", "-q", url, str(tmp / f"w{i}"))
                clones.append(tmp / f"w{i}")
            probe = tmp / "probe"
            git(tmp, "init", "-q", str(probe))
            head = git(desk, "rev-parse", "HEAD").strip()
            for rep in range(args.repeat):
                # remote: one worker
                timed([*gx, *sweep(args.runs)], desk, env)
                timed([*gx, "push", "origin"], desk, env)
                wall, _ = timed([*gx, "queue", "work", "--remote", "origin", "--idle-exit", "0"], clones[0], env)
                figures["remote"].append(wall / args.runs)
                failures += check(base / "origin.git", args.runs * (2 * rep + 1))
                # 4 workers
                timed([*gx, *sweep(args.runs)], desk, env)
                timed([*gx, "push", "origin"], desk, env)
                t0 = time.perf_counter()
                procs = [subprocess.Popen([*gx, "queue", "work", "--remote", "origin", "--idle-exit", "0"], cwd=c, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in clones]
                for p in procs:
                    p.wait()
                figures["4x"].append((time.perf_counter() - t0) / args.runs)
                failures += check(base / "origin.git", args.runs * (2 * rep + 2))
                # local: the same runs, queued and worked off in the clone
                timed([*gx, *sweep(args.runs)], clones[0], env)
                wall, _ = timed([*gx, "queue", "start"], clones[0], env)
                figures["local"].append(wall / args.runs)
                # floor: the same git traffic per run, plain git (the push that queues it is not counted)
                per_run = []
                for i in range(args.runs):
                    ref = f"refs/gitexp-queue/floor-{rep}-{i}"
                    git(desk, "push", "-q", url, f"{head}:{ref}")
                    start = time.perf_counter()
                    git(probe, "fetch", "-q", "--prune", url, "+refs/gitexp-queue/*:refs/gitexp-queue/*")
                    git(desk, "push", "-q", "--atomic", f"--force-with-lease={ref}:{head}", url, f"HEAD~0:{ref}")
                    git(desk, "push", "-q", "--atomic", f"--force-with-lease={ref}:{head}", url, f":{ref}")
                    per_run.append(time.perf_counter() - start)
                figures["floor"].append(statistics.median(per_run))
    med = {k: statistics.median(v) for k, v in figures.items() if v}
    protocol = med["remote"] - med["local"]
    result = {
        "runs": args.runs, "repeat": args.repeat, "load_average": os.getloadavg(),
        "per_run_seconds": med, "protocol_per_run": protocol, "protocol_vs_floor": protocol / med["floor"],
        "failures": failures,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.runs} runs of `true`, median of {args.repeat}")
    print(f"  remote queue, 1 worker : {med['remote'] * 1000:7.0f} ms/run")
    print(f"  remote queue, 4 workers: {med['4x'] * 1000:7.0f} ms/run (wall / runs)")
    print(f"  local queue (queue start): {med['local'] * 1000:5.0f} ms/run")
    print(f"  plain git floor (fetch + 2 CAS pushes): {med['floor'] * 1000:.0f} ms/run")
    print(f"  remote protocol cost: {protocol * 1000:.0f} ms/run = {protocol / med['floor']:.2f}x the plain-git floor")
    for line in failures:
        print(f"FAIL {line}")
    return 0


def check(bare: Path, expected: int) -> list[str]:
    final = git(bare, "for-each-ref", "--format=%(refname)", "refs/experiments/").split()
    queue = [r for r in git(bare, "for-each-ref", "--format=%(refname)", "refs/gitexp-queue/").split() if "/floor-" not in r]
    out = []
    if len(final) != expected:
        out.append(f"{len(final)} final runs on the remote, expected {expected}")
    if queue:
        out.append(f"{len(queue)} runs left in the remote's queue")
    return out


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a sweep of 20 runs of a trivial command, `gitexp run -j 2` against sequential, and both against bare.

A throw-away git repo (under /tmp) holds a params.yaml (`lr: 0.1`, `seed: 0`)
and --files small .py files (default 200, 50 to a directory), committed with
the git CLI, its index refreshed so it is not racily clean. The sweep is
`-S lr=0.01,0.02,...` (--runs values, default 20). Two commands are swept:

  sleep   `python -c "import time; time.sleep(S)"`, S = --sleep (default 0.5 s):
          something to parallelise;
  true    `true`: no work at all, so what is left is gitexp's own cost.

Per repetition, interleaved to share machine noise (the order of the modes
rotates from one repetition to the next), for each command it times, as
subprocesses, spawn to exit:

  gitexp seq   `gitexp run -S lr=... -- CMD`: the runs one after another, in place;
  gitexp -j N  `gitexp run -j N -S lr=... -- CMD` (--jobs, default 2): each run
               queued as a commit, then N workers (`gitexp queue serve`, one
               process each, fed run names on stdin) run them, each in its
               temporary copy of the code under $TMPDIR, reused from run to run;
  floor seq    the same commands run bare, one after another;
  floor -j N   the same commands run bare, N at a time (a pool of N threads,
               each starting one subprocess at a time).

After each gitexp sweep it checks that `gitexp list --json` shows exactly the
sweep's runs, all `completed` with exit code 0, one sweep id, and the swept lr
values; that `git status --porcelain` is clean (the in-place overrides undone);
then it deletes the runs (`git update-ref --stdin` of `delete refs/experiments/...`)
so every sweep starts from the same repo (the workspace's last run is then
gone, so each sweep starts a new root: gitexp says so on stderr). Every subprocess gets its own
$TMPDIR (inside the scratch directory, same filesystem as /tmp), so at the end
it checks that nothing, in particular no `gitexp-wt-*` worktree, is left there,
and no run's scratch directory (`run-*`) in .git/gitexp/tmp. A failed check prints FAIL.

Reported (medians over --repeat, default 3): the wall time of each; the
speedup of -j N over sequential (and the floor's, the ideal); the per-run
overhead = (gitexp wall - floor wall of the same mode) / runs, for both modes
and both commands (with `true` it is the pure per-run cost of each mode); and
the CPU seconds (user + sys of all descendants) per run above the floor.

There is no numeric target: -j 2 with S = 0.5 on 2 cores is expected to be
more than 1.5x faster than sequential; the verdict line says whether it is.
This script reports; it is not a test: it exits 0 whatever the figures,
non-zero only if it crashed. With the defaults it takes about 2 minutes, 90 s
of which is the sleep command sleeping (4 x 20 x 0.5 s / 1 or 2, 3 times).

    python bench/sweep.py [--runs N] [--jobs N] [--sleep S] [--files N] [--repeat N] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import ENV, ensure_bytecode, gitexp_cmd, timed  # bench/ is the script's own directory

EXPECTED_SPEEDUP = 1.5
FILES_PER_DIR = 50
WT_PREFIX = "gitexp-wt-"  # gitexp.queue.WORKTREE_PREFIX


def make_repo(repo: Path, files: int) -> None:
    repo.mkdir()
    timed(["git", "init", "-q", "-b", "main"], repo)
    (repo / "params.yaml").write_text("lr: 0.1\nseed: 0\n")
    for n in range(files):
        pkg = repo / f"pkg{n // FILES_PER_DIR:02d}"
        pkg.mkdir(exist_ok=True)
        body = "".join(f"def f{n}_{i}(x: int) -> int:\n    return x * {i} + {n}\n\n" for i in range(6))
        (pkg / f"mod{n % FILES_PER_DIR:03d}.py").write_text(f'"""Module {n}."""\n\n{body}')
    timed(["git", "add", "-A"], repo)
    timed(["git", "commit", "-q", "-m", "initial"], repo)
    time.sleep(1.5)  # let the index's stat data stop being racily clean, then refresh it
    timed(["git", "status", "--porcelain"], repo)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_gitexp(
    repo: Path, cmd: list[str], jobs: int | None, values: list[str], command: list[str]
) -> tuple[float, float, str]:
    """One sweep; (wall seconds, CPU seconds of it and all its descendants, error or '')."""
    argv = [*cmd, "run", *(["-j", str(jobs)] if jobs else []), "-S", "lr=" + ",".join(values), "--", *command]
    c0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=repo, env=ENV, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    cpu = children_cpu() - c0
    error = "" if proc.returncode == 0 else f"exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
    return wall, cpu, error


def run_floor(repo: Path, jobs: int | None, runs: int, command: list[str]) -> tuple[float, float, str]:
    """The same commands bare, one after another or `jobs` at a time; (wall, CPU, error or '')."""

    def one(_: int) -> int:  # no timeout=: subprocess's wait(timeout) polls, returning up to 50 ms late
        return subprocess.run(
            command,
            cwd=repo,
            env=ENV,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        ).returncode

    c0 = children_cpu()
    t0 = time.perf_counter()
    if jobs:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            codes = list(pool.map(one, range(runs)))
    else:
        codes = [one(i) for i in range(runs)]
    wall = time.perf_counter() - t0
    cpu = children_cpu() - c0
    bad = [c for c in codes if c != 0]
    return wall, cpu, f"{len(bad)} of {runs} bare commands failed" if bad else ""


def check_and_reset(repo: Path, cmd: list[str], values: list[str]) -> list[str]:
    """What is wrong with the sweep just run (nothing: []); then delete its runs."""
    problems: list[str] = []
    _, out = timed([*cmd, "list", "--json"], repo)
    runs = json.loads(out or "[]")
    if len(runs) != len(values):
        problems.append(f"{len(runs)} runs recorded, expected {len(values)}")
    statuses: dict[str, int] = {}
    for r in runs:
        key = f"{r.get('status')}/exit {r.get('exit_code')}"
        statuses[key] = statuses.get(key, 0) + 1
    if set(statuses) - {"completed/exit 0"}:
        problems.append("statuses: " + ", ".join(f"{n} {k}" for k, n in sorted(statuses.items())))
    sweeps = {(r.get("sweep") or {}).get("id") for r in runs}
    if len(sweeps) != 1 or None in sweeps:
        problems.append(f"sweep ids: {sorted(map(str, sweeps))}")
    got = sorted(float((r.get("params") or {}).get("lr", "nan")) for r in runs)
    if got != sorted(float(v) for v in values):
        problems.append(f"lr values recorded {got} != swept")
    _, status = timed(["git", "status", "--porcelain"], repo)
    if status:
        problems.append(f"workspace not clean afterwards: {status.splitlines()[:3]}")
    refs = subprocess.run(
        ["git", "for-each-ref", "refs/experiments/", "--format=delete %(refname)"],
        cwd=repo,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, env=ENV, input=refs, text=True, check=True)
    return problems


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ensure_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per sweep (default 20)")
    parser.add_argument("--jobs", type=int, default=2, help="N of the parallel mode, -j N (default 2)")
    parser.add_argument(
        "--sleep", type=float, default=0.5, help="seconds each run of the sleep command sleeps (default 0.5)"
    )
    parser.add_argument("--files", type=int, default=200, help="small .py files committed in the repo (default 200)")
    parser.add_argument("--repeat", type=int, default=3, help="measured repetitions (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and print where it is")
    args = parser.parse_args()
    if args.runs < 2 or args.jobs < 2 or args.repeat < 1 or args.files < 0 or args.sleep < 0:
        parser.error("--runs and --jobs must be at least 2, --repeat at least 1, --files and --sleep not negative")

    cmd = gitexp_cmd()
    values = [f"{(i + 1) / 100:g}" for i in range(args.runs)]
    commands = {
        "sleep": [sys.executable, "-c", f"import time; time.sleep({args.sleep:g})"],
        "true": ["true"],
    }
    modes = ("floor_seq", "gitexp_seq", "floor_par", "gitexp_par")
    wall: dict[str, dict[str, list[float]]] = {c: {m: [] for m in modes} for c in commands}
    cpu: dict[str, dict[str, list[float]]] = {c: {m: [] for m in modes} for c in commands}
    problems: list[str] = []
    scratch = Path(tempfile.mkdtemp(prefix="gitexp-sweep-bench-", dir="/tmp"))
    tmpdir = scratch / "tmp"  # the workers' $TMPDIR: their own, so no one else's worktrees are counted
    tmpdir.mkdir()
    ENV["TMPDIR"] = str(tmpdir)  # every subprocess of this script, gitexp's and the floor's alike
    t_start = time.perf_counter()
    try:
        repo = scratch / "repo"
        make_repo(repo, args.files)
        # warm-up, not counted: two short sweeps, so the first measured one does not pay cold caches
        for jobs in (None, args.jobs):
            _, _, error = run_gitexp(repo, cmd, jobs, values[:2], ["true"])
            problems += [f"warm-up -j {jobs}: {error}"] if error else []
            problems += [f"warm-up -j {jobs}: {p}" for p in check_and_reset(repo, cmd, values[:2])]
        for rep in range(args.repeat):
            for cname, command in commands.items():
                k = rep % len(modes)
                for mode in modes[k:] + modes[:k]:
                    jobs = args.jobs if mode.endswith("_par") else None
                    if mode.startswith("gitexp"):
                        secs, cpus, error = run_gitexp(repo, cmd, jobs, values, command)
                        found = check_and_reset(repo, cmd, values)
                    else:
                        secs, cpus, error = run_floor(repo, jobs, args.runs, command)
                        found = []
                    problems += [f"rep {rep + 1} {cname} {mode}: {p}" for p in ([error] if error else []) + found]
                    wall[cname][mode].append(secs)
                    cpu[cname][mode].append(cpus)
        run_dirs = sorted(p.name for p in (repo / ".git" / "gitexp" / "tmp").glob("run-*"))
        if run_dirs:
            problems.append(f"run scratch directories left in .git/gitexp/tmp: {run_dirs[:3]}")
        left = sorted(p.name for p in tmpdir.iterdir())
        if left:
            kind = f"{WT_PREFIX}* directories" if all(n.startswith(WT_PREFIX) for n in left) else "entries"
            problems.append(f"{len(left)} {kind} left in $TMPDIR: {left[:3]}")
    finally:
        if args.keep:
            print(f"kept the scratch directory {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    runtime = time.perf_counter() - t_start

    n = args.runs
    cases: dict[str, Any] = {}
    for cname, command in commands.items():
        w = {m: med(wall[cname][m]) for m in modes}
        c = {m: med(cpu[cname][m]) for m in modes}
        cases[cname] = {
            "command": command,
            "wall_seconds": wall[cname],
            "cpu_seconds": cpu[cname],
            "median_wall_seconds": w,
            "median_cpu_seconds": c,
            "speedup": w["gitexp_seq"] / w["gitexp_par"],
            "floor_speedup": w["floor_seq"] / w["floor_par"],
            "overhead_ms_per_run": {
                "seq": (w["gitexp_seq"] - w["floor_seq"]) / n * 1000,
                "par": (w["gitexp_par"] - w["floor_par"]) / n * 1000,
            },
            "cpu_overhead_ms_per_run": {
                "seq": (c["gitexp_seq"] - c["floor_seq"]) / n * 1000,
                "par": (c["gitexp_par"] - c["floor_par"]) / n * 1000,
            },
        }
    speedup = cases["sleep"]["speedup"]
    real = speedup > EXPECTED_SPEEDUP
    oh = cases["sleep"]["overhead_ms_per_run"]
    pure = cases["true"]["overhead_ms_per_run"]
    verdict = (
        f"-j {args.jobs} {'gives' if real else 'does NOT give'} a real speedup: {speedup:.2f}x over sequential "
        f"with sleep {args.sleep:g}s (expected > {EXPECTED_SPEEDUP}x; bare: {cases['sleep']['floor_speedup']:.2f}x); "
        f"per-run overhead {oh['seq']:.0f} ms sequential, {oh['par']:.0f} ms with -j {args.jobs} "
        f"(pure, with true: {pure['seq']:.0f} ms, {pure['par']:.0f} ms)"
    )
    result = {
        "runs": n,
        "jobs": args.jobs,
        "sleep": args.sleep,
        "files": args.files,
        "repeat": args.repeat,
        "gitexp_cmd": cmd,
        "cases": cases,
        "expected_speedup": EXPECTED_SPEEDUP,
        "real_speedup": real,
        "correct": not problems,
        "problems": problems,
        "verdict": verdict,
        "runtime_seconds": runtime,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    j = args.jobs
    print(
        f"sweep of {n} runs, -j {j} vs sequential vs bare; {args.files} source files, "
        f"{args.repeat} repetitions (medians), {runtime:.0f}s in all"
    )
    for cname, case in cases.items():
        w, c = case["median_wall_seconds"], case["median_cpu_seconds"]
        print(f"\n{cname}: {' '.join(case['command'])}")
        print(f"{'':<12}{'wall':>9}{'per run':>10}{'cpu':>9}{'cpu/run':>10}")
        for mode, label in (
            ("floor_seq", "floor seq"),
            ("gitexp_seq", "gitexp seq"),
            ("floor_par", f"floor -j {j}"),
            ("gitexp_par", f"gitexp -j {j}"),
        ):
            print(
                f"{label:<12}{w[mode]:>8.2f}s{w[mode] / n * 1000:>8.0f}ms{c[mode]:>8.2f}s{c[mode] / n * 1000:>8.0f}ms"
            )
        o, co = case["overhead_ms_per_run"], case["cpu_overhead_ms_per_run"]
        print(f"speedup -j {j} over seq: {case['speedup']:.2f}x (bare: {case['floor_speedup']:.2f}x)")
        print(
            f"overhead per run, wall: seq {o['seq']:.0f} ms, -j {j} {o['par']:.0f} ms;"
            f" cpu: seq {co['seq']:.0f} ms, -j {j} {co['par']:.0f} ms"
        )
    print()
    print(
        f"checks ({n} completed runs per sweep, clean workspace, no {WT_PREFIX}* left): "
        + ("PASS" if not problems else "FAIL")
    )
    for p in problems:
        print(f"  FAIL {p}")
    print(f"verdict: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

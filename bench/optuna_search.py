"""Benchmark: what Optuna's choosing costs per run: `gitexp run --optuna N` against `--random N` and bare commands.

A throw-away git repo (under /tmp) holds train.py, which logs `acc` at 5 steps with gitexp.log
(the series the pruner reads; the same in every run, so none is pruned and the runs compare) and exits. Per repetition, interleaved so that they share the
machine's noise (the order rotates), each timed from spawn to exit as a subprocess:

  optuna -j J   `gitexp run --optuna N --metric acc -j J -S x='uniform(0,1)' --pruner median`
  random -j J   `gitexp run --random N -j J -S x='uniform(0,1)'`: the same runs, the same workers,
                configs drawn without Optuna: the floor of the mechanics the search shares
  bare          the N commands run bare, one after another (`python train.py` outside gitexp:
                gitexp.log is then a no-op)

for J = 1 and --jobs (default 2). After each gitexp sweep it checks that the runs recorded are
N, all completed, in one sweep (a failed check prints FAIL), then deletes them.

Reported (medians over --repeat, default 3): wall times; the search's overhead per run over the
--random sweep of the same J ((optuna - random) / N: Optuna's import, ask/tell and the live reading
of the series), and the ratio optuna / random. It reports; it is not a test.

    python bench/optuna_search.py [--runs N] [--jobs J] [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, ensure_bytecode, gitexp_cmd, timed  # bench/ is the script's own directory

SCRIPT = """\
import sys, gitexp
x = float(sys.argv[1])
for step in range(5):
    gitexp.log({"acc": step + 1.0, "x": x}, step=step)  # the same curve in every run: read, never pruned
"""


def sweep(repo: Path, argv: list[str], runs: int) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=repo, env=ENV, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    problems = [] if proc.returncode == 0 else [f"exited {proc.returncode}: {proc.stderr.strip()[-300:]}"]
    _, out = timed([*gitexp_cmd(), "list", "--json"], repo)
    recorded = json.loads(out or "[]")
    if len(recorded) != runs or {r.get("status") for r in recorded} != {"completed"}:
        problems.append(f"{len(recorded)} runs, statuses {sorted({str(r.get('status')) for r in recorded})}")
    if len({(r.get("sweep") or {}).get("id") for r in recorded}) != 1:
        problems.append("not one sweep")
    refs = subprocess.run(["git", "for-each-ref", "refs/experiments/", "--format=delete %(refname)"],
                          cwd=repo, env=ENV, capture_output=True, text=True, check=True).stdout
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, env=ENV, input=refs, text=True, check=True)
    return wall, "; ".join(problems)


def bare(repo: Path, runs: int) -> float:
    env = {k: v for k, v in ENV.items() if not k.startswith("GITEXP_")}
    t0 = time.perf_counter()
    for i in range(runs):
        subprocess.run([sys.executable, "train.py", str(i / runs)], cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ensure_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per sweep (default 10)")
    parser.add_argument("--jobs", type=int, default=2, help="J of the parallel mode (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="measured repetitions (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.runs < 2 or args.jobs < 2 or args.repeat < 1:
        parser.error("--runs and --jobs must be at least 2, --repeat at least 1")
    scratch = Path(tempfile.mkdtemp(prefix="gitexp-optuna-bench-", dir="/tmp"))
    repo = scratch / "repo"
    repo.mkdir()
    timed(["git", "init", "-q", "-b", "main"], repo)
    (repo / "train.py").write_text(SCRIPT)
    timed(["git", "add", "-A"], repo)
    timed(["git", "commit", "-q", "-m", "initial"], repo)
    cmd = gitexp_cmd()
    modes: dict[str, list[str] | None] = {"bare": None}
    for jobs in (1, args.jobs):
        common = ["-j", str(jobs), "-S", "x=uniform(0,1)", "--", sys.executable, "train.py", "{x}"]
        modes[f"optuna -j {jobs}"] = [*cmd, "run", "--optuna", str(args.runs), "--metric", "acc", "--pruner", "median", *common]
        modes[f"random -j {jobs}"] = [*cmd, "run", "--random", str(args.runs), *common]
    walls: dict[str, list[float]] = {m: [] for m in modes}
    problems: list[str] = []
    names = list(modes)
    try:
        for rep in range(args.repeat):
            for mode in names[rep % len(names):] + names[: rep % len(names)]:
                argv = modes[mode]
                if argv is None:
                    walls[mode].append(bare(repo, args.runs))
                    continue
                wall, problem = sweep(repo, argv, args.runs)
                walls[mode].append(wall)
                if problem:
                    problems.append(f"{mode}: {problem}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    med = {m: statistics.median(w) for m, w in walls.items()}
    figures = {
        "runs": args.runs, "repeat": args.repeat, "wall_s": med,
        "overhead_per_run_s": {j: (med[f"optuna -j {j}"] - med[f"random -j {j}"]) / args.runs for j in (1, args.jobs)},
        "optuna_over_random": {j: med[f"optuna -j {j}"] / med[f"random -j {j}"] for j in (1, args.jobs)},
        "random_over_bare": med["random -j 1"] / med["bare"],
        "problems": problems,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.runs} runs per sweep, medians of {args.repeat}:")
    for mode, wall in med.items():
        print(f"  {mode:12s} {wall:7.2f} s")
    for j in (1, args.jobs):
        print(f"  -j {j}: --optuna costs {figures['overhead_per_run_s'][j] * 1000:+.0f} ms per run over --random "
              f"(x{figures['optuna_over_random'][j]:.2f})")
    print(f"  --random -j 1 over bare: x{figures['random_over_bare']:.2f}")
    for problem in problems:
        print(f"FAIL {problem}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

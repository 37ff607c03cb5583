"""Benchmark: start-up of small commands, against the floors of the interpreter and of git.

A throw-away git repo (under /tmp) with `.gitexp.yaml` declaring `outputs:
[model.bin]` records one run `r1` (a 7-byte output), pushes it to a bare
`origin` and its data to a data remote, so that every command below has
nothing heavy to do: what it costs is start-up (interpreter, imports) plus the
little it reads. Per round, interleaved to share machine noise, each spawned
to exit (the console script, cwd the repo):

  list       `gitexp list`
  show       `gitexp show r1`
  get        `gitexp get r1 model.bin -o OUT --force` (a cached output, verified)
  push       `gitexp push` (nothing to send)
  checkout   `gitexp checkout r1` (the workspace already is r1: nothing to write)
  run        `gitexp run -- true` (records a run each time)
  version    `gitexp --version` (click and gitexp.cli only: no git)

and the floors:

  python     `python -c pass` (this interpreter, its site as the console script's)
  deps       `python -c "import click, pygit2"`: what every command that reads runs pays before gitexp's own code
  git        `git --version`

Reported per command: median wall and CPU (user + system, from the OS's
accounting of the finished child) in ms, the wall ratio to `python -c pass`,
and CPU above `deps` (gitexp's own imports and work). To see what a command
imports: `PYTHONPROFILEIMPORTTIME=1 gitexp list 2>&1 | sort -t'|' -k2 -n`.
This script reports; it is not a test: it exits 0 whatever the figures.

    python bench/startup.py [--repeat N] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import ENV, ensure_bytecode, gitexp_cmd, scratch_dir, timed  # bench/ is the script's own directory


def setup(scratch: Path, cmd: list[str]) -> Path:
    repo = scratch / "repo"
    repo.mkdir()
    timed(["git", "init", "-q", "-b", "main"], repo)
    (repo / ".gitexp.yaml").write_text("outputs: [model.bin]\n")
    (repo / ".gitignore").write_text("model.bin\n")
    (repo / "train.py").write_text("open('model.bin', 'w').write('weights')\n")
    timed(["git", "add", "-A"], repo)
    timed(["git", "commit", "-q", "-m", "base"], repo)
    timed([*cmd, "run", "-n", "r1", "--", sys.executable, "train.py"], repo)
    timed(["git", "init", "-q", "--bare", str(scratch / "origin.git")], repo)
    timed(["git", "remote", "add", "origin", str(scratch / "origin.git")], repo)
    timed([*cmd, "remote", "add", "shared", str(scratch / "datastore")], repo)
    timed([*cmd, "init", "origin"], repo)
    timed([*cmd, "push"], repo)
    return repo


def spawn(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of argv, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout.decode()}{proc.stderr.decode()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    ensure_bytecode()
    cmd = gitexp_cmd()
    with scratch_dir("gitexp-bench-startup-", args.keep) as scratch:
        repo = setup(scratch, cmd)
        out = scratch / "got.bin"
        steps: dict[str, list[str]] = {
            "python": [sys.executable, "-c", "pass"],
            "deps": [sys.executable, "-c", "import click, pygit2"],
            "git": ["git", "--version"],
            "version": [*cmd, "--version"],
            "list": [*cmd, "list"],
            "show": [*cmd, "show", "r1"],
            "get": [*cmd, "get", "r1", "model.bin", "-o", str(out), "--force"],
            "push": [*cmd, "push"],
            "checkout": [*cmd, "checkout", "r1"],
            "run": [*cmd, "run", "--", "true"],
        }
        for argv in steps.values():  # warm-up, not counted: page cache, bytecode, the first checkout's save
            spawn(argv, repo)
        walls: dict[str, list[float]] = {k: [] for k in steps}
        cpus: dict[str, list[float]] = {k: [] for k in steps}
        for _ in range(args.repeat):
            for name, argv in steps.items():
                w, c = spawn(argv, repo)
                walls[name].append(w)
                cpus[name].append(c)
        if out.read_text() != "weights":
            raise RuntimeError("gitexp get wrote the wrong bytes")
        wall = {k: statistics.median(v) for k, v in walls.items()}
        cpu = {k: statistics.median(v) for k, v in cpus.items()}
        rows: dict[str, dict[str, Any]] = {
            k: {"wall_ms": wall[k] * 1000, "cpu_ms": cpu[k] * 1000, "wall_vs_python": wall[k] / wall["python"],
                "cpu_above_deps_ms": (cpu[k] - cpu["deps"]) * 1000}
            for k in steps
        }
        if args.json:
            print(json.dumps({"repeat": args.repeat, "commands": rows}, indent=2))
        else:
            print(f"start-up of small commands; median of {args.repeat} interleaved rounds")
            print(f"{'':10} {'wall':>9} {'cpu':>9} {'wall/python':>12} {'cpu-deps':>9}")
            for k, r in rows.items():
                print(f"{k:10} {r['wall_ms']:7.1f}ms {r['cpu_ms']:7.1f}ms {r['wall_vs_python']:11.2f}x {r['cpu_above_deps_ms']:7.1f}ms")
            print(f"floors: python -c pass {wall['python'] * 1000:.1f}ms, git --version {wall['git'] * 1000:.1f}ms, "
                  f"import click+pygit2 {wall['deps'] * 1000:.1f}ms (wall medians)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

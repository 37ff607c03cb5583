"""Benchmark: the overhead of `gitexp run -- true` against a native floor.

A throw-away git repo of 2,000 small source files (20 dirs x 100 .py files) is
committed with the git CLI, its index refreshed so it is not racily clean, then
one tracked file is modified and one untracked file added. Per repetition,
interleaved to share machine noise, it times:

  gitexp  `gitexp run -- true` as a subprocess in the repo, spawn to exit;
  floor   `python -c 'import pygit2, click'` (same interpreter) plus a
          temp-index snapshot by plain git: `git add -A`, `git write-tree`,
          `git commit-tree`, `git update-ref`; the sum of those five wall times.

Target: gitexp's median time is at most 1.5x the floor's. This script reports;
it is not a test: it exits 0 whatever the ratio, non-zero only if it crashed.

    python bench/run_overhead.py [--repeat N] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ENV, ensure_bytecode, gitexp_cmd, timed  # bench/ is the script's own directory

TARGET = 1.5
DIRS, FILES_PER_DIR = 20, 100




def make_repo(repo: Path) -> None:
    repo.mkdir()
    timed(["git", "init", "-q", "-b", "main"], repo)
    for d in range(DIRS):
        pkg = repo / f"pkg{d:02d}"
        pkg.mkdir()
        for f in range(FILES_PER_DIR):
            body = "".join(f"def f{f}_{i}(x: int) -> int:\n    return x * {i} + {d}\n\n" for i in range(6))
            (pkg / f"mod{f:03d}.py").write_text(f'"""Module {d}/{f}."""\n\n{body}')
    timed(["git", "add", "-A"], repo)
    timed(["git", "commit", "-q", "-m", "initial"], repo)
    time.sleep(1.5)  # let the index's stat data stop being racily clean, then refresh it
    timed(["git", "status", "--porcelain"], repo)
    with open(repo / "pkg00" / "mod000.py", "a") as fh:
        fh.write("\nCHANGED = True\n")
    (repo / "untracked.py").write_text("NEW = 1\n")




def run_gitexp(repo: Path, cmd: list[str]) -> float:
    return timed([*cmd, "run", "--", "true"], repo)[0]


def run_floor(repo: Path, scratch: Path, i: int) -> tuple[float, float]:
    """One native snapshot; returns (python import seconds, git seconds)."""
    t_import, _ = timed([sys.executable, "-c", "import pygit2, click"], repo)
    index = scratch / f"index-{i}"
    shutil.copyfile(repo / ".git" / "index", index)
    env = {**ENV, "GIT_INDEX_FILE": str(index)}
    t_add, _ = timed(["git", "add", "-A"], repo, env)
    t_tree, tree = timed(["git", "write-tree"], repo, env)
    t_commit, commit = timed(["git", "commit-tree", tree, "-p", "HEAD", "-m", f"floor {i}"], repo, env)
    t_ref, _ = timed(["git", "update-ref", f"refs/bench/floor-{i}", commit], repo, env)
    index.unlink()
    return t_import, t_add + t_tree + t_commit + t_ref


def stats(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs)}


def main() -> int:
    ensure_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="measured repetitions (default 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    scratch = Path(tempfile.mkdtemp(prefix="gitexp-bench-"))
    try:
        repo = scratch / "repo"
        make_repo(repo)
        cmd = gitexp_cmd()
        run_floor(repo, scratch, 0)  # warm-ups, not counted
        run_gitexp(repo, cmd)
        imports: list[float] = []
        gits: list[float] = []
        gitexps: list[float] = []
        for i in range(1, args.repeat + 1):
            t_import, t_git = run_floor(repo, scratch, i)
            imports.append(t_import)
            gits.append(t_git)
            gitexps.append(run_gitexp(repo, cmd))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    floors = [a + b for a, b in zip(imports, gits)]
    floor, gexp = stats(floors), stats(gitexps)
    ratio = gexp["median"] / floor["median"]
    result = {
        "repeat": args.repeat,
        "files": DIRS * FILES_PER_DIR,
        "gitexp_cmd": cmd,
        "floor": floor,
        "floor_import": stats(imports),
        "floor_git": stats(gits),
        "gitexp": gexp,
        "ratio_median": ratio,
        "ratio_min": gexp["min"] / floor["min"],
        "target": TARGET,
        "pass": ratio <= TARGET,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ms = 1000.0
    print(f"gitexp run -- true vs native floor; {DIRS * FILES_PER_DIR} files, {args.repeat} repetitions")
    print(f"{'':<8}{'median':>10}{'min':>10}")
    print(f"{'floor':<8}{floor['median'] * ms:>8.1f}ms{floor['min'] * ms:>8.1f}ms")
    print(f"{'gitexp':<8}{gexp['median'] * ms:>8.1f}ms{gexp['min'] * ms:>8.1f}ms")
    print(f"{'ratio':<8}{ratio:>9.2f}x{result['ratio_min']:>9.2f}x")
    print(
        f"floor breakdown (median): python import {statistics.median(imports) * ms:.1f}ms"
        f" + git {statistics.median(gits) * ms:.1f}ms"
    )
    print(f"ratio: {ratio:.2f}x (target <= {TARGET}x): {'PASS' if result['pass'] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: `gitexp checkout RUN` against a native floor of git checkout plus cp of the data.

A throw-away git repo (under /tmp) of 2,000 small source files (20 dirs x 100
.py files) and a `.gitexp.yaml` declaring `data: [data/]` is committed (C1);
`data/` holds --size-mb MiB (default 1024) in --files files (default 64),
untracked and not ignored. `gitexp run -n A -- true` records it (caching the
data). Then every source file is changed and committed (C2, on main), `data/`
is replaced by the same number of files of other bytes, and `gitexp run -n B
-- true` records that. The workspace is then exactly run B: code committed at
HEAD, data in the cache, so a checkout has nothing to save and every byte to
write: all 2,000 source files and all of the data.

The floor is a `git clone` of that repo (same trees, same filesystem) with
pristine copies of both data sets beside it. Per round, interleaved to share
machine noise, each step after an os.sync (so no earlier writeback overlaps):

  gitexp  `gitexp checkout A` (console script, cwd the repo), spawn to exit;
  floor   in the clone: `git checkout -q --detach C1`, then `rm -rf data` and
          `cp -r --reflink=auto pristine-A data`; the sum of the three;
  gitexp  `gitexp checkout B` back;
  floor   `git checkout -q main`, `rm -rf data`, `cp -r --reflink=auto pristine-B data`.

A warm-up round comes first and is reported apart, not counted: its first
checkout is the one right after `gitexp run` (the stat cache knows the data
files); in the counted rounds, the data in the workspace was written by the
previous checkout, so gitexp must hash it again to know whether it is safe to
overwrite. After every step the result is verified: every data file's
xxh3-128, `git status --porcelain` (with --no-optional-locks, so the check does
not refresh the index the next step starts from) showing only `?? data/`, HEAD
where it should be, and for gitexp that no `saved` run was made.

Target: gitexp's median time (both directions) is at most 1.5x the floor's.
This script reports; it is not a test: it exits 0 whatever the ratio, non-zero
only if it crashed (a failed verification is reported as FAIL, not a crash).

    python bench/checkout.py [--size-mb N] [--files N] [--repeat N] [--json] [--keep] [--profile FILE]

--profile FILE: after the rounds, one more `gitexp checkout A` run in-process
under cProfile (`gitexp.cli.main(['checkout', 'A'])`, cwd the repo), its stats
written to FILE and the top 15 functions by cumulative and by own time printed.
--keep: keep the scratch directory and print where it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import xxhash
from common import ENV, ensure_bytecode, gitexp_cmd, timed  # bench/ is the script's own directory

TARGET = 1.5
DIRS, FILES_PER_DIR = 20, 100
CHUNK = 4 << 20
PROFILE_SCRIPT = """\
import cProfile, pstats, sys
from gitexp.cli import main

prof = cProfile.Profile()
prof.enable()
code = main(['checkout', sys.argv[2]])
prof.disable()
prof.dump_stats(sys.argv[1])
for key in ('cumulative', 'tottime'):
    print(f'--- top 15 by {key} ---')
    pstats.Stats(sys.argv[1], stream=sys.stdout).sort_stats(key).print_stats(15)
sys.exit(code)
"""






def write_sources(repo: Path, version: int) -> None:
    for d in range(DIRS):
        pkg = repo / f"pkg{d:02d}"
        pkg.mkdir(exist_ok=True)
        for f in range(FILES_PER_DIR):
            body = "".join(f"def f{f}_{i}(x: int) -> int:\n    return x * {i} + {d}\n\n" for i in range(6))
            tail = f"\nVERSION = {version}\n" if version > 1 else ""
            (pkg / f"mod{f:03d}.py").write_text(f'"""Module {d}/{f}."""\n\n{body}{tail}')


def make_data(data: Path, tag: int, size_mb: int, files: int) -> tuple[dict[str, str], int]:
    """Write one data set: files of one os.urandom block, each prefixed by (tag, index) so every digest differs.

    Returns ({file name: xxh3-128}, total bytes).
    """
    data.mkdir(parents=True)
    per_file = max((size_mb << 20) // files, 16)
    block = os.urandom(per_file)
    digests: dict[str, str] = {}
    for i in range(files):
        prefix = tag.to_bytes(8, "little") + i.to_bytes(8, "little")
        h = xxhash.xxh3_128()
        with open(data / f"part-{i:04d}.bin", "wb") as f:
            for chunk in (prefix, memoryview(block)[16:]):
                f.write(chunk)
                h.update(chunk)
        digests[f"part-{i:04d}.bin"] = h.hexdigest()
    return digests, per_file * files


def cp_data(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-r", "--reflink=auto", str(src), str(dst)], check=True)


def reflink_supported(scratch: Path) -> bool:
    a, b = scratch / "reflink-probe", scratch / "reflink-probe-copy"
    a.write_bytes(b"x" * 4096)
    ok = subprocess.run(["cp", "--reflink=always", str(a), str(b)], capture_output=True, check=False).returncode == 0
    a.unlink()
    b.unlink(missing_ok=True)
    return ok


def hash_dir(data: Path) -> dict[str, str]:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    out: dict[str, str] = {}
    if not data.is_dir():
        return out
    for path in sorted(data.rglob("*")):
        if not path.is_file():
            continue
        h = xxhash.xxh3_128()
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
        out[path.relative_to(data).as_posix()] = h.hexdigest()
    return out


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=ENV, capture_output=True, text=True, check=False).stdout.strip()


def verify(repo: Path, expect_data: dict[str, str], head: str, branch: str | None, runs: int | None) -> list[str]:
    """What is wrong with the workspace after a step (empty: all as expected)."""
    problems: list[str] = []
    got = hash_dir(repo / "data")
    if got != expect_data:
        wrong = sorted(k for k in set(got) | set(expect_data) if got.get(k) != expect_data.get(k))
        problems.append(f"data differs in {len(wrong)} files: {', '.join(wrong[:3])}")
    status = git_out(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=normal")
    if status.splitlines() != ["?? data/"]:
        lines = status.splitlines()
        problems.append(f"git status --porcelain: {len(lines)} lines, first: {lines[:3]}")
    if git_out(repo, "rev-parse", "HEAD") != head:
        problems.append(f"HEAD is {git_out(repo, 'rev-parse', 'HEAD')[:10]}, expected {head[:10]}")
    sym = git_out(repo, "symbolic-ref", "-q", "HEAD")
    if sym != (f"refs/heads/{branch}" if branch else ""):
        problems.append(
            f"HEAD is {'on ' + sym if sym else 'detached'}, expected {'on ' + branch if branch else 'detached'}"
        )
    if runs is not None:
        refs = git_out(repo, "for-each-ref", "--format=%(refname)", "refs/experiments/").splitlines()
        if len(refs) != runs:
            problems.append(f"{len(refs)} runs, expected {runs} (a 'saved' run was made?): {refs}")
    return problems


def setup(scratch: Path, size_mb: int, files: int, cmd: list[str]) -> dict[str, Any]:
    repo, floor = scratch / "repo", scratch / "floor"
    repo.mkdir()
    timed(["git", "init", "-q", "-b", "main"], repo)
    write_sources(repo, 1)
    (repo / ".gitexp.yaml").write_text("data: [data/]\n")
    timed(["git", "add", "-A"], repo)
    timed(["git", "commit", "-q", "-m", "C1: 2000 source files"], repo)
    c1 = git_out(repo, "rev-parse", "HEAD")
    digests = {}
    digests["A"], total = make_data(scratch / "pristine-A", 1, size_mb, files)
    digests["B"], _ = make_data(scratch / "pristine-B", 2, size_mb, files)
    cp_data(scratch / "pristine-A", repo / "data")
    timed([*cmd, "run", "-n", "A", "--", "true"], repo)
    write_sources(repo, 2)
    timed(["git", "commit", "-q", "-a", "-m", "C2: every source file changed"], repo)
    c2 = git_out(repo, "rev-parse", "HEAD")
    shutil.rmtree(repo / "data")
    cp_data(scratch / "pristine-B", repo / "data")
    timed([*cmd, "run", "-n", "B", "--", "true"], repo)
    timed(["git", "clone", "-q", str(repo), str(floor)], scratch)
    cp_data(scratch / "pristine-B", floor / "data")
    return {"repo": repo, "floor": floor, "c1": c1, "c2": c2, "digests": digests, "total": total}


def step_gitexp(s: dict[str, Any], cmd: list[str], run: str) -> tuple[float, str, list[str]]:
    os.sync()
    t, out = timed([*cmd, "checkout", run], s["repo"])
    head, branch = (s["c1"], None) if run == "A" else (s["c2"], "main")
    return t, out, verify(s["repo"], s["digests"][run], head, branch, 2)


def step_floor(s: dict[str, Any], scratch: Path, run: str) -> tuple[float, float, float, list[str]]:
    floor = s["floor"]
    os.sync()
    target = ["--detach", s["c1"]] if run == "A" else ["main"]
    t_git, _ = timed(["git", "checkout", "-q", *target], floor)
    t0 = time.perf_counter()
    shutil.rmtree(floor / "data")
    t_rm = time.perf_counter() - t0
    t0 = time.perf_counter()
    cp_data(scratch / f"pristine-{run}", floor / "data")
    t_cp = time.perf_counter() - t0
    head, branch = (s["c1"], None) if run == "A" else (s["c2"], "main")
    return t_git, t_rm, t_cp, verify(floor, s["digests"][run], head, branch, None)


def profile(s: dict[str, Any], out: Path) -> str:
    """One in-process `gitexp checkout A` (the repo is at B) under cProfile; the printed tables."""
    os.sync()
    proc = subprocess.run(
        [sys.executable, "-c", PROFILE_SCRIPT, str(out), "A"],
        cwd=s["repo"],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"profiled checkout exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ensure_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="data size per run in MiB (default 1024)")
    parser.add_argument("--files", type=int, default=64, help="number of data files (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds, each A then B (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and print where it is")
    parser.add_argument("--profile", type=Path, metavar="FILE", help="also profile one checkout; pstats to FILE")
    args = parser.parse_args()
    if args.repeat < 1 or args.files < 1 or args.size_mb < 1:
        parser.error("--repeat, --files and --size-mb must be at least 1")

    cmd = gitexp_cmd()
    scratch = Path(tempfile.mkdtemp(prefix="gitexp-checkout-bench-", dir="/tmp"))
    gitexp_t: dict[str, list[float]] = {"A": [], "B": []}
    floor_parts: dict[str, dict[str, list[float]]] = {r: {"git": [], "rm": [], "cp": []} for r in "AB"}
    warmup: dict[str, Any] = {}
    problems: list[str] = []
    outputs: list[str] = []
    profile_text = None
    try:
        t0 = time.perf_counter()
        reflink = reflink_supported(scratch)
        s = setup(scratch, args.size_mb, args.files, cmd)
        t_setup = time.perf_counter() - t0
        for rnd in range(args.repeat + 1):
            for run in "AB":
                t, out, bad = step_gitexp(s, cmd, run)
                outputs.append(out)
                problems += [f"round {rnd} gitexp checkout {run}: {p}" for p in bad]
                t_git, t_rm, t_cp, bad = step_floor(s, scratch, run)
                problems += [f"round {rnd} floor to {run}: {p}" for p in bad]
                if rnd == 0:
                    warmup[run] = {"gitexp": t, "floor": t_git + t_rm + t_cp}
                    continue
                gitexp_t[run].append(t)
                for k, v in (("git", t_git), ("rm", t_rm), ("cp", t_cp)):
                    floor_parts[run][k].append(v)
        if args.profile:
            profile_text = profile(s, args.profile.resolve())
    finally:
        if args.keep:
            print(f"kept the scratch directory {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    floor_t = {r: [g + m + c for g, m, c in zip(*(floor_parts[r][k] for k in ("git", "rm", "cp")))] for r in "AB"}
    all_g = gitexp_t["A"] + gitexp_t["B"]
    all_f = floor_t["A"] + floor_t["B"]
    ratio = med(all_g) / med(all_f)
    mb = s["total"] / (1 << 20)
    result = {
        "files": DIRS * FILES_PER_DIR,
        "data_bytes": s["total"],
        "data_files": args.files,
        "repeat": args.repeat,
        "gitexp_cmd": cmd,
        "reflink": reflink,
        "setup_seconds": t_setup,
        "seconds": {"gitexp": gitexp_t, "floor": floor_t, "floor_parts": floor_parts},
        "warmup_seconds": warmup,
        "median_seconds": {
            "gitexp": med(all_g),
            "floor": med(all_f),
            **{f"gitexp_{r}": med(gitexp_t[r]) for r in "AB"},
            **{f"floor_{r}": med(floor_t[r]) for r in "AB"},
            **{f"floor_{k}": med(floor_parts["A"][k] + floor_parts["B"][k]) for k in ("git", "rm", "cp")},
        },
        "ratio_median": ratio,
        "ratio_min": min(all_g) / min(all_f),
        "target": TARGET,
        "pass": ratio <= TARGET,
        "correct": not problems,
        "problems": problems,
        "gitexp_output": outputs[-1] if outputs else None,
        "profile_file": str(args.profile) if args.profile else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    ms = 1000.0
    print(
        f"gitexp checkout vs git checkout + cp; {DIRS * FILES_PER_DIR} source files + {mb:.0f} MiB in "
        f"{args.files} data files; {args.repeat} rounds (A and B each), setup {t_setup:.1f}s"
    )
    print(f"cp --reflink=auto: reflink {'supported' if reflink else 'not supported here (plain copy)'}")
    print(f"{'':<22}{'median':>10}{'min':>10}{'MiB/s':>8}")
    rows = [
        ("gitexp checkout A", gitexp_t["A"]),
        ("gitexp checkout B", gitexp_t["B"]),
        ("gitexp (both)", all_g),
        ("floor to A", floor_t["A"]),
        ("floor to B", floor_t["B"]),
        ("floor (both)", all_f),
    ]
    for label, xs in rows:
        print(f"{label:<22}{med(xs) * ms:>8.0f}ms{min(xs) * ms:>8.0f}ms{mb / med(xs):>8.0f}")
    parts = {k: med(floor_parts["A"][k] + floor_parts["B"][k]) for k in ("git", "rm", "cp")}
    print(
        f"floor breakdown (median): git checkout {parts['git'] * ms:.0f}ms + rm -rf data {parts['rm'] * ms:.0f}ms"
        f" + cp -r {parts['cp'] * ms:.0f}ms"
    )
    print(
        "warm-up round (not counted; its checkout A comes right after `gitexp run`): "
        + ", ".join(f"gitexp {r} {w['gitexp'] * ms:.0f}ms / floor {w['floor'] * ms:.0f}ms" for r, w in warmup.items())
    )
    print(f"last gitexp output: {outputs[-1] if outputs else '-'}")
    print(
        f"ratio: {ratio:.2f}x median, {result['ratio_min']:.2f}x min (target <= {TARGET}x):"
        f" {'PASS' if result['pass'] else 'FAIL'}"
    )
    print(
        f"correctness (data xxh3, git status, HEAD, no saved run; after every step): "
        f"{'PASS' if not problems else 'FAIL'}"
    )
    for p in problems[:20]:
        print(f"  {p}")
    if profile_text is not None:
        print(f"profile of one more `gitexp checkout A` (stats in {args.profile}):")
        print(profile_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

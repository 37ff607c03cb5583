"""Benchmark: `gitexp push` of 100 runs and 1 GB of data against `git push` plus `cp -r` of the same.

Setup (untimed, under /tmp): a git repo of a few source files and a
`.gitexp.yaml` declaring `outputs: [out/]` and one data remote
`remotes: {shared: <scratch>/datastore}` (an absolute directory path), its
`main` pushed to a bare `origin.git` added as remote `origin`. --runs runs
(default 100) are recorded with the real CLI, `gitexp run -n rNNN -- python
make.py N BLOCK`, where make.py writes `out/part.bin`: one os.urandom block of
--mb-per-run MiB (default 10, made once, kept outside the repo) whose first 16
bytes are replaced by the run number, so every run's output is a distinct cache
object (100 x 10 MiB = 1000 MiB by default).

Per round, on fresh remotes (a new bare repo holding only `main`, and an
empty data store, for each side), each step after an os.sync (so no earlier
writeback overlaps), the two sides in alternating order from round to round:

  gitexp        `gitexp push origin` (console script, cwd the repo), spawn to
                exit: every run ref to origin.git, every object to the empty
                data store;
  gitexp no-op  `gitexp push origin` again, nothing new to send;
  floor         `git push <floor.git> 'refs/experiments/*:refs/experiments/*'`
                (the same refs) plus `cp -r .git/gitexp/cache/objects
                <floorstore>/objects` (the same bytes); the sum of the two;
  floor no-op   that `git push` again (for reference).

Neither `cp -r` nor gitexp flushes its writes to disk (gitexp, like git's
loose objects, relies on an atomic rename and on readers re-hashing); for
reference only, the time of an os.sync right after the `cp -r` is also
reported (floor + sync), untimed in the floor itself.

After every round it verifies: every local run ref is on origin.git with the
same commit (and on floor.git), the data store holds exactly the cache's
objects (same names, same sizes, nothing left in its tmp/), each object's bytes
hash (xxh3-128) to its name, and gitexp reported all refs and objects sent the
first time and none the second.

Targets: gitexp's median push time is at most 1.3x the floor's; the no-op push
takes under 0.5 s (median). For scale: `dvc exp push` of 300 experiments took
26.9 s on this machine, and 23.8 s again with nothing new to send. This script
reports; it is not a test: it exits 0 whatever the figures, non-zero only if it
crashed (a failed verification is reported as FAIL, not a crash).

    python bench/share.py [--runs N] [--mb-per-run N] [--repeat N] [--json] [--keep] [--profile FILE]

--profile FILE: after the rounds, one more `gitexp push origin` to fresh
remotes run in-process under cProfile (`gitexp.cli.main(['push', 'origin'])`,
cwd the repo), its stats written to FILE, then a no-op push likewise to
FILE.noop; the top 15 functions of each by cumulative and by own time printed.
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

TARGET = 1.3
NOOP_TARGET = 0.5
CHUNK = 4 << 20
RUNS_REFSPEC = "refs/experiments/*:refs/experiments/*"
MAKE_PY = """\
import os, sys

i, block = int(sys.argv[1]), sys.argv[2]
os.makedirs("out", exist_ok=True)
with open(block, "rb") as src, open("out/part.bin", "wb") as out:
    data = src.read()
    out.write(i.to_bytes(16, "little"))
    out.write(memoryview(data)[16:])
"""
SOURCES = {
    "README.md": "# share bench\n\nA throw-away project for bench/share.py.\n",
    "train.py": "def train(lr: float = 0.01) -> float:\n    return 1.0 - lr\n",
    "model.py": "class Model:\n    layers = 4\n",
    "make.py": MAKE_PY,
}
PROFILE_SCRIPT = """\
import cProfile, pstats, sys
from gitexp.cli import main

prof = cProfile.Profile()
prof.enable()
code = main(['push', 'origin'])
prof.disable()
prof.dump_stats(sys.argv[1])
for key in ('cumulative', 'tottime'):
    print(f'--- top 15 by {key} ---')
    pstats.Stats(sys.argv[1], stream=sys.stdout).sort_stats(key).print_stats(15)
sys.exit(code)
"""






def git_out(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=False).stdout.strip()


def objects_in(root: Path) -> dict[str, int]:
    """{digest: size} of the objects/<2 hex>/<30 hex> files under root."""
    found: dict[str, int] = {}
    if not root.is_dir():
        return found
    for sub in os.scandir(root):
        if len(sub.name) == 2 and sub.is_dir():
            for e in os.scandir(sub.path):
                found[sub.name + e.name] = e.stat().st_size
    return found


def xxh3_file(path: Path, buf: bytearray) -> str:
    view = memoryview(buf)
    h = xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def setup(scratch: Path, runs: int, mb: int, cmd: list[str]) -> dict[str, Any]:
    repo = scratch / "repo"
    repo.mkdir()
    timed(["git", "init", "-q", "-b", "main"], repo)
    for name, text in SOURCES.items():
        (repo / name).write_text(text)
    (repo / ".gitexp.yaml").write_text(f"outputs: [out/]\nremotes:\n  shared: {scratch / 'datastore'}\n")
    timed(["git", "add", "-A"], repo)
    timed(["git", "commit", "-q", "-m", "sources"], repo)
    timed(["git", "remote", "add", "origin", str(scratch / "origin.git")], repo)
    timed([*cmd, "remote", "trust", "shared"], repo)  # a data remote written by hand: this clone consents once
    block = scratch / "block.bin"
    block.write_bytes(os.urandom(mb << 20))
    t0 = time.perf_counter()
    for i in range(runs):
        timed([*cmd, "run", "-n", f"r{i:03d}", "--", sys.executable, "make.py", str(i), str(block)], repo)
    t_runs = time.perf_counter() - t0
    refs = dict(
        line.split(" ", 1)[::-1]
        for line in git_out(repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/experiments/").splitlines()
    )
    cache = objects_in(repo / ".git" / "gitexp" / "cache" / "objects")
    if len(refs) != runs or len(cache) != runs:
        raise RuntimeError(f"setup made {len(refs)} run refs and {len(cache)} cache objects, expected {runs} of each")
    return {"repo": repo, "refs": refs, "cache": cache, "total": sum(cache.values()), "t_runs": t_runs}


def fresh_remotes(s: dict[str, Any], scratch: Path) -> None:
    """Empty bare repos (holding only main, as after the project's first push) and empty data stores."""
    for name in ("origin.git", "floor.git"):
        bare = scratch / name
        shutil.rmtree(bare, ignore_errors=True)
        timed(["git", "init", "-q", "--bare", str(bare)], scratch)
        timed(["git", "push", "-q", str(bare), "main"], s["repo"])
    for name in ("datastore", "floorstore"):
        shutil.rmtree(scratch / name, ignore_errors=True)
    (scratch / "floorstore").mkdir()


def remote_refs(bare: Path) -> dict[str, str]:
    out = git_out(bare, "for-each-ref", "--format=%(objectname) %(refname)", "refs/experiments/")
    return dict(line.split(" ", 1)[::-1] for line in out.splitlines())


def verify(s: dict[str, Any], scratch: Path, out_push: str, out_noop: str) -> list[str]:
    problems: list[str] = []
    runs, objs = len(s["refs"]), len(s["cache"])
    for name in ("origin.git", "floor.git"):
        there = remote_refs(scratch / name)
        if there != s["refs"]:
            wrong = sorted(k for k in set(there) | set(s["refs"]) if there.get(k) != s["refs"].get(k))
            problems.append(f"{name}: {len(there)} run refs, {len(wrong)} missing or different: {wrong[:3]}")
    store = scratch / "datastore"
    got = objects_in(store / "objects")
    if got != s["cache"]:
        wrong = sorted(k for k in set(got) | set(s["cache"]) if got.get(k) != s["cache"].get(k))
        problems.append(
            f"datastore: {len(got)} objects / {sum(got.values())} bytes vs cache {objs} / {s['total']};"
            f" {len(wrong)} differ: {wrong[:3]}"
        )
    leftovers = list((store / "tmp").iterdir()) if (store / "tmp").is_dir() else []
    if leftovers:
        problems.append(f"datastore tmp/ holds {len(leftovers)} leftovers")
    buf = bytearray(CHUNK)
    bad = [d for d in got if xxh3_file(store / "objects" / d[:2] / d[2:], buf) != d]
    if bad:
        problems.append(f"datastore: {len(bad)} objects whose bytes do not hash to their name: {bad[:3]}")
    floor = objects_in(scratch / "floorstore" / "objects")
    if floor != s["cache"]:
        problems.append(f"floorstore: {len(floor)} objects, expected {objs}")
    if f"pushed {runs} ref(s)" not in out_push or f"{objs} object(s)" not in out_push:
        problems.append(f"first push reported: {out_push!r}")
    if "pushed 0 ref(s)" not in out_noop or "0 object(s)" not in out_noop or f"{objs} already there" not in out_noop:
        problems.append(f"no-op push reported: {out_noop!r}")
    return problems


def step_gitexp(s: dict[str, Any], cmd: list[str]) -> tuple[float, str, float, str]:
    os.sync()
    t_push, out_push = timed([*cmd, "push", "origin"], s["repo"])
    os.sync()
    t_noop, out_noop = timed([*cmd, "push", "origin"], s["repo"])
    return t_push, out_push, t_noop, out_noop


def step_floor(s: dict[str, Any], scratch: Path) -> tuple[float, float, float, float]:
    """(git push s, cp -r s, sync-after-cp s, no-op git push s)."""
    floor = str(scratch / "floor.git")
    os.sync()
    t_git, _ = timed(["git", "push", "-q", floor, RUNS_REFSPEC], s["repo"])
    t_cp, _ = timed(
        ["cp", "-r", str(s["repo"] / ".git" / "gitexp" / "cache" / "objects"), str(scratch / "floorstore" / "objects")],
        scratch,
    )
    t0 = time.perf_counter()
    os.sync()
    t_sync = time.perf_counter() - t0
    t_noop, _ = timed(["git", "push", "-q", floor, RUNS_REFSPEC], s["repo"])
    return t_git, t_cp, t_sync, t_noop


def profile(s: dict[str, Any], scratch: Path, out: Path) -> str:
    """One in-process full push to fresh remotes, then one no-op push, each under cProfile; the printed tables."""
    fresh_remotes(s, scratch)
    text = []
    for label, path in (("full push", out), ("no-op push", out.with_name(out.name + ".noop"))):
        os.sync()
        proc = subprocess.run(
            [sys.executable, "-c", PROFILE_SCRIPT, str(path)],
            cwd=s["repo"],
            env=ENV,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"profiled push exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        text.append(f"=== {label} (stats in {path}) ===\n{proc.stdout}")
    return "\n".join(text)


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ensure_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="number of runs (default 100)")
    parser.add_argument("--mb-per-run", type=int, default=10, help="MiB of output per run (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and print where it is")
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="also profile one push (and a no-op); pstats to FILE"
    )
    args = parser.parse_args()
    if args.repeat < 1 or args.runs < 1 or args.mb_per_run < 1:
        parser.error("--repeat, --runs and --mb-per-run must be at least 1")

    cmd = gitexp_cmd()
    scratch = Path(tempfile.mkdtemp(prefix="gitexp-share-bench-", dir="/tmp"))
    t: dict[str, list[float]] = {k: [] for k in ("gitexp", "gitexp_noop", "git", "cp", "sync", "git_noop")}
    problems: list[str] = []
    outputs: list[str] = []
    profile_text = None
    try:
        t0 = time.perf_counter()
        s = setup(scratch, args.runs, args.mb_per_run, cmd)
        t_setup = time.perf_counter() - t0
        for rnd in range(args.repeat):
            fresh_remotes(s, scratch)
            res_g: tuple[float, str, float, str] | None = None
            res_f: tuple[float, float, float, float] | None = None
            for side in ("gitexp", "floor") if rnd % 2 == 0 else ("floor", "gitexp"):
                if side == "gitexp":
                    res_g = step_gitexp(s, cmd)
                else:
                    res_f = step_floor(s, scratch)
            assert res_g is not None and res_f is not None
            t_push, out_push, t_noop, out_noop = res_g
            outputs = [out_push, out_noop]
            problems += [f"round {rnd + 1}: {p}" for p in verify(s, scratch, out_push, out_noop)]
            for k, v in zip(("gitexp", "gitexp_noop"), (t_push, t_noop)):
                t[k].append(v)
            for k, v in zip(("git", "cp", "sync", "git_noop"), res_f):
                t[k].append(v)
        if args.profile:
            profile_text = profile(s, scratch, args.profile.resolve())
    finally:
        if args.keep:
            print(f"kept the scratch directory {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    floor = [g + c for g, c in zip(t["git"], t["cp"])]
    floor_sync = [f + y for f, y in zip(floor, t["sync"])]
    ratio = med(t["gitexp"]) / med(floor)
    noop = med(t["gitexp_noop"])
    mb = s["total"] / (1 << 20)
    result = {
        "runs": args.runs,
        "data_bytes": s["total"],
        "objects": len(s["cache"]),
        "repeat": args.repeat,
        "gitexp_cmd": cmd,
        "setup_seconds": t_setup,
        "setup_runs_seconds": s["t_runs"],
        "seconds": {**t, "floor": floor, "floor_plus_sync": floor_sync},
        "median_seconds": {
            "gitexp": med(t["gitexp"]),
            "gitexp_noop": noop,
            "floor": med(floor),
            "floor_git": med(t["git"]),
            "floor_cp": med(t["cp"]),
            "sync_after_cp": med(t["sync"]),
            "floor_plus_sync": med(floor_sync),
            "git_noop": med(t["git_noop"]),
        },
        "ratio_median": ratio,
        "ratio_min": min(t["gitexp"]) / min(floor),
        "ratio_vs_floor_plus_sync": med(t["gitexp"]) / med(floor_sync),
        "target": TARGET,
        "noop_target_seconds": NOOP_TARGET,
        "pass": ratio <= TARGET,
        "noop_pass": noop < NOOP_TARGET,
        "correct": not problems,
        "problems": problems,
        "gitexp_output": outputs,
        "profile_file": str(args.profile) if args.profile else None,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        if profile_text is not None:
            print(profile_text, file=sys.stderr)
        return 0
    ms = 1000.0
    print(
        f"gitexp push vs git push + cp -r; {args.runs} runs, {mb:.0f} MiB in {len(s['cache'])} objects;"
        f" {args.repeat} rounds; setup {t_setup:.1f}s ({args.runs} x gitexp run: {s['t_runs']:.1f}s)"
    )
    print(f"{'':<34}{'median':>10}{'min':>10}{'MiB/s':>8}")
    rows = [
        ("gitexp push origin", t["gitexp"], True),
        ("floor: git push + cp -r", floor, True),
        ("  git push refs/experiments/*", t["git"], False),
        ("  cp -r cache/objects", t["cp"], True),
        ("  (sync after cp -r, not in floor)", t["sync"], False),
        ("floor + sync (reference)", floor_sync, True),
        ("gitexp push origin, nothing new", t["gitexp_noop"], False),
        ("git push, nothing new (reference)", t["git_noop"], False),
    ]
    for label, xs, rate in rows:
        print(f"{label:<34}{med(xs) * ms:>8.0f}ms{min(xs) * ms:>8.0f}ms" + (f"{mb / med(xs):>8.0f}" if rate else ""))
    print(f"last gitexp output: {' | '.join(o.replace(chr(10), ' / ') for o in outputs)}")
    print(
        f"for reference: gitexp / (floor + sync) = {result['ratio_vs_floor_plus_sync']:.2f}x"
        " (neither flushes to disk; this row only shows what durability would cost)"
    )
    print(
        f"ratio: {ratio:.2f}x median, {result['ratio_min']:.2f}x min (target <= {TARGET}x):"
        f" {'PASS' if result['pass'] else 'FAIL'}"
    )
    print(f"no-op push: {noop:.3f}s median (target < {NOOP_TARGET}s): {'PASS' if result['noop_pass'] else 'FAIL'}")
    print(
        f"correctness (all refs on the remote, datastore objects/bytes == cache's, xxh3 of every object,"
        f" gitexp's report; every round): {'PASS' if not problems else 'FAIL'}"
    )
    for p in problems[:20]:
        print(f"  {p}")
    if profile_text is not None:
        print(profile_text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

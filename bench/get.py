"""Benchmark: `gitexp get RUN model.bin` of a 1 GiB output against the floor of `cp` of its cache object.

A throw-away git repo (under /tmp) with `.gitexp.yaml` declaring `outputs:
[model.bin]` records one run whose command writes --size-mb MiB (default 1024)
to model.bin, so the output is in the cache (stamped as verified as it was
stored). Per repetition, interleaved to share machine noise (gitexp first in
odd repetitions, the floor first in even ones: allocating the memory a step
freed can cost the next step much, on a VM that hands freed memory back),
each step after an os.sync (so no earlier writeback overlaps) and with its
destination removed first:

  gitexp  `gitexp get big model.bin -o OUT --force` (console script, cwd the repo), spawn to exit;
          it copies the object out of the cache in the kernel; the object's stamp still matching
          its file, it is not hashed again (without a stamp it would be hashed on the way);
  floor   `cp <the cache object> OUT2`: the same bytes copied, nothing verified.

After every gitexp step OUT's xxh3-128 is checked against the run's digest.
Reported: wall medians and minimums, and CPU (user + system of the finished
child, as the OS accounts it; the steadier figure when other work loads the
machine), with the load average before and after.
Target: gitexp's median time is at most 1.3x the floor's. This script reports;
it is not a test: it exits 0 whatever the ratio, non-zero only if it crashed.

    python bench/get.py [--size-mb N] [--repeat N] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

import xxhash
from common import ENV, ensure_bytecode, gitexp_cmd, scratch_dir, timed  # bench/ is the script's own directory

TARGET = 1.3
CHUNK = 4 << 20
WRITER = """\
import os, sys
block = os.urandom(1 << 20)
with open('model.bin', 'wb') as f:
    for i in range(int(sys.argv[1])):
        f.write(i.to_bytes(8, 'little') + block[8:])
"""


def xxh(path: Path) -> str:
    h = xxhash.xxh3_128()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def setup(scratch: Path, size_mb: int, cmd: list[str]) -> dict[str, Any]:
    repo = scratch / "repo"
    repo.mkdir()
    timed(["git", "init", "-q", "-b", "main"], repo)
    (repo / ".gitexp.yaml").write_text("outputs: [model.bin]\n")
    (repo / ".gitignore").write_text("model.bin\n")
    (repo / "write.py").write_text(WRITER)
    timed(["git", "add", "-A"], repo)
    timed(["git", "commit", "-q", "-m", "writer"], repo)
    timed([*cmd, "run", "-n", "big", "--", sys.executable, "write.py", str(size_mb)], repo)
    digest = xxh(repo / "model.bin")
    obj = repo / ".git" / "gitexp" / "cache" / "objects" / digest[:2] / digest[2:]
    if not obj.is_file():
        raise RuntimeError(f"the output is not in the cache at {obj}")
    (repo / "model.bin").unlink()  # the get reads the cache, not a copy in the workspace
    return {"repo": repo, "object": obj, "digest": digest, "out": scratch / "out.bin", "floor_out": scratch / "floor.bin"}


def timed_cpu(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the finished child) of argv, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, _ = timed(argv, cwd, ENV)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def step_gitexp(s: dict[str, Any], cmd: list[str]) -> tuple[float, float, list[str]]:
    s["out"].unlink(missing_ok=True)
    os.sync()
    t, cpu = timed_cpu([*cmd, "get", "big", "model.bin", "-o", str(s["out"]), "--force"], s["repo"])
    got = xxh(s["out"])
    return t, cpu, [] if got == s["digest"] else [f"gitexp get wrote {got}, expected {s['digest']}"]


def step_floor(s: dict[str, Any]) -> tuple[float, float]:
    s["floor_out"].unlink(missing_ok=True)
    os.sync()
    return timed_cpu(["cp", str(s["object"]), str(s["floor_out"])], s["repo"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=6)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    ensure_bytecode()
    cmd = gitexp_cmd()
    with scratch_dir("gitexp-bench-get-", args.keep) as scratch:
        s = setup(scratch, args.size_mb, cmd)
        step_gitexp(s, cmd)  # warm-up, not counted: page cache and bytecode as in the rounds
        step_floor(s)
        gitexp_t: list[float] = []
        floor_t: list[float] = []
        gitexp_cpu: list[float] = []
        floor_cpu: list[float] = []
        problems: list[str] = []
        load_before = os.getloadavg()
        for i in range(args.repeat):
            for step in ("gitexp", "floor") if i % 2 == 0 else ("floor", "gitexp"):
                if step == "gitexp":
                    t, cpu, wrong = step_gitexp(s, cmd)
                    gitexp_t.append(t)
                    gitexp_cpu.append(cpu)
                    problems += wrong
                else:
                    t, cpu = step_floor(s)
                    floor_t.append(t)
                    floor_cpu.append(cpu)
        load_after = os.getloadavg()
        g, f = statistics.median(gitexp_t), statistics.median(floor_t)
        gc, fc = statistics.median(gitexp_cpu), statistics.median(floor_cpu)
        paired = statistics.median(a / b for a, b in zip(gitexp_t, floor_t))
        ratio = g / f
        result = {
            "size_mb": args.size_mb, "repeat": args.repeat, "gitexp_median_s": g, "floor_median_s": f,
            "gitexp_min_s": min(gitexp_t), "floor_min_s": min(floor_t), "ratio": ratio, "paired_ratio": paired,
            "gitexp_cpu_median_s": gc, "floor_cpu_median_s": fc, "cpu_ratio": gc / fc,
            "load_before": load_before, "load_after": load_after,
            "target": TARGET, "pass": ratio <= TARGET and not problems, "problems": problems,
        }
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(f"gitexp get of a {args.size_mb} MiB output vs cp of its cache object; {args.repeat} repetitions")
            print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
            print(f"{'':10} {'median':>9} {'min':>9} {'cpu':>9}")
            print(f"{'floor':10} {f * 1000:8.1f}ms {min(floor_t) * 1000:8.1f}ms {fc * 1000:8.1f}ms")
            print(f"{'gitexp':10} {g * 1000:8.1f}ms {min(gitexp_t) * 1000:8.1f}ms {gc * 1000:8.1f}ms")
            print(f"ratio of medians {ratio:.2f}x, median of paired ratios {paired:.2f}x, of CPU medians {gc / fc:.2f}x")
            for p in problems:
                print(f"FAIL: {p}")
            print(f"ratio: {ratio:.2f}x (target <= {TARGET}x): {'PASS' if result['pass'] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

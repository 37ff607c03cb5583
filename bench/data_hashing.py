"""Benchmark: gitexp's hashing of a data directory against a plain xxh3-128 floor.

A throw-away directory `data/` of --size-mb MiB (default 1024) in --files files
(default 64) is written: one os.urandom block, each file prefixed with its own
index so every digest differs. All files are read once, untimed, so every
measurement starts from the page cache, and synced so no writeback overlaps.
Per round, interleaved to share noise:

  raw     xxhash.xxh3_128 over every file, 4 MiB readinto a preallocated buffer;
  first   `collect(root, "data", cache=None, ...)` with a new StatCache on an
          empty db (flush and close included), as `gitexp run` does for a
          declared data directory with `cache_inputs: false`;
  rerun   `collect` again, data unchanged, with a new StatCache on the same db;
          it must read 0 bytes.

Targets: first's median throughput >= 80% of raw's; rerun's median time < 5%
of first's. Informational, no target, in later rounds of their own (each
after an os.sync): `collect` with a real Cache in a fresh cache dir (first
store: one pass hashing and copying, an fsync per object) against `cp -r` of
the same directory (which does not fsync). This script reports; it is not a
test: it exits 0 whatever the figures, non-zero only if it crashed.

    python bench/data_hashing.py [--size-mb N] [--files N] [--repeat N] [--json]
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

import xxhash

from gitexp.data.cache import Cache
from gitexp.data.hashing import StatCache
from gitexp.data.pointers import collect
from gitexp.model import Progress

CHUNK = 4 << 20
FIRST_TARGET = 0.80  # first-hash throughput, as a fraction of raw's
RERUN_TARGET = 0.05  # re-run time, as a fraction of first-hash time


def make_data(data: Path, size_mb: int, files: int) -> int:
    """Write `files` files totalling about size_mb MiB; return the total bytes."""
    data.mkdir()
    per_file = max((size_mb << 20) // files, 8)
    block = os.urandom(per_file)
    for i in range(files):
        with open(data / f"part-{i:04d}.bin", "wb") as f:
            f.write(i.to_bytes(8, "little"))
            f.write(memoryview(block)[8:])
    return per_file * files


def raw_hash(paths: list[Path]) -> tuple[float, int]:
    """Seconds and bytes to xxh3-128 every file with the fastest plain loop."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    for path in paths:
        h = xxhash.xxh3_128()
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
                total += n
        h.hexdigest()
    return time.perf_counter() - t0, total


def gitexp_collect(root: Path, db: Path, cache: Cache | None = None) -> tuple[float, int]:
    """Seconds for collect() on root/data with a new StatCache on db; and the bytes it read."""
    t0 = time.perf_counter()
    stats = StatCache(db)
    collect(root, "data", cache=cache, stats=stats, progress=Progress(), manifests={})
    stats.close()
    return time.perf_counter() - t0, stats.hashed_bytes


def cp_r(src: Path, dst: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="total data size in MiB (default 1024)")
    parser.add_argument("--files", type=int, default=64, help="number of files (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if args.repeat < 1 or args.files < 1 or args.size_mb < 1:
        parser.error("--repeat, --files and --size-mb must be at least 1")

    scratch = Path(tempfile.mkdtemp(prefix="gitexp-bench-", dir="/tmp"))
    try:
        root = scratch / "repo"
        root.mkdir()
        t0 = time.perf_counter()
        total = make_data(root / "data", args.size_mb, args.files)
        t_gen = time.perf_counter() - t0
        paths = sorted((root / "data").iterdir())
        raw_hash(paths)  # warm-up: every file in the page cache, not counted
        raws: list[float] = []
        firsts: list[float] = []
        reruns: list[float] = []
        rerun_bytes: list[int] = []
        stores: list[float] = []
        cps: list[float] = []
        os.sync()  # no writeback of the generated data during the measurements
        for i in range(args.repeat):
            t_raw, n = raw_hash(paths)
            assert n == total, (n, total)
            raws.append(t_raw)
            db = scratch / f"stat-{i}.db"
            t_first, n = gitexp_collect(root, db)
            assert n == total, f"first hash read {n} bytes, expected {total}"
            firsts.append(t_first)
            t_rerun, n = gitexp_collect(root, db)
            reruns.append(t_rerun)
            rerun_bytes.append(n)
        for i in range(args.repeat):  # after the hashing rounds, so their writeback cannot disturb those
            os.sync()
            cache_dir = scratch / f"cache-{i}"
            stores.append(gitexp_collect(root, scratch / f"stat-cache-{i}.db", Cache(cache_dir))[0])
            shutil.rmtree(cache_dir)
            os.sync()
            cps.append(cp_r(root / "data", scratch / f"cp-{i}"))
            shutil.rmtree(scratch / f"cp-{i}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    mb = total / (1 << 20)  # MiB, as --size-mb
    med = {k: statistics.median(v) for k, v in
           {"raw": raws, "first": firsts, "rerun": reruns, "store": stores, "cp": cps}.items()}
    first_ratio = med["raw"] / med["first"]  # throughput ratio, first / raw
    rerun_ratio = med["rerun"] / med["first"]
    store_ratio = med["cp"] / med["store"]  # throughput ratio, store / cp -r
    rerun_zero = all(n == 0 for n in rerun_bytes)
    result = {
        "size_bytes": total,
        "files": args.files,
        "repeat": args.repeat,
        "generate_seconds": t_gen,
        "seconds": {"raw": raws, "first": firsts, "rerun": reruns, "store": stores, "cp": cps},
        "median_seconds": med,
        "median_mib_per_s": {k: mb / v for k, v in med.items() if k != "rerun"},
        "first_vs_raw": first_ratio,
        "rerun_vs_first": rerun_ratio,
        "rerun_hashed_bytes": rerun_bytes,
        "store_vs_cp": store_ratio,
        "first_target": FIRST_TARGET,
        "rerun_target": RERUN_TARGET,
        "first_pass": first_ratio >= FIRST_TARGET,
        "rerun_pass": rerun_ratio < RERUN_TARGET and rerun_zero,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"hashing {mb:.0f} MiB in {args.files} files; {args.repeat} rounds (generated in {t_gen:.1f}s)")
    print(f"{'':<24}{'median':>10}{'min':>10}{'MiB/s':>10}")
    rows = [("raw xxh3-128", raws, True), ("gitexp first hash", firsts, True), ("gitexp re-run", reruns, False),
            ("gitexp store in cache", stores, True), ("cp -r (floor)", cps, True)]
    for label, xs, rate in rows:
        speed = f"{mb / statistics.median(xs):>10.0f}" if rate else f"{'-':>10}"
        print(f"{label:<24}{statistics.median(xs) * 1000:>8.1f}ms{min(xs) * 1000:>8.1f}ms{speed}")
    print(f"re-run hashed bytes: {rerun_bytes}")
    print(f"first hash / raw throughput: {first_ratio:.1%} (target >= {FIRST_TARGET:.0%}):"
          f" {'PASS' if result['first_pass'] else 'FAIL'}")
    print(f"re-run / first hash time: {rerun_ratio:.2%} (target < {RERUN_TARGET:.0%}, 0 bytes read):"
          f" {'PASS' if result['rerun_pass'] else 'FAIL'}")
    print(f"store in cache / cp -r throughput: {store_ratio:.1%} (informational; gitexp fsyncs, cp does not)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

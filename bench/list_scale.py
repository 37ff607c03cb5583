"""Benchmark: `gitexp list` wall time at 1,000 and 10,000 runs, cold and warm.

For each size N, N runs are generated in-process through the storage layer
(`Store.write_run`, with the trailers `gitexp run` would write; params and
metrics vary so the --where expression below selects roughly 10%) in a
"source" repo. A second repo, the "teammate", is `git init`ed and fetches them
with the real git CLI (`git fetch <source> 'refs/experiments/*:refs/experiments/*'`).
In each repo it times, as real subprocesses (the `gitexp` console script, cwd
the repo, stdout read fully from a pipe):

  cold    the FIRST `gitexp list` there (no gitexp state of any kind exists yet;
          in the teammate repo: right after the fetch);
  warm    `gitexp list`, `gitexp list --where EXPR`, `gitexp list --json`,
          median of --repeat interleaved repetitions;
  floor   `git for-each-ref refs/experiments/ --format='%(objectname) %(contents:trailers)'`,
          native git reading the same information (median); and once per suite
          `python -c 'import pygit2, click'`, the interpreter floor.

Targets (at the largest size, the worse of the two repos):
  cold list < 1 s, warm list < 1 s, warm --where < 1 s (this 2-core machine),
  and growth no worse than linear: t(largest)/t(smallest) <= largest/smallest
  (10 for the default sizes) for cold list, warm list and warm --where.

A measurement that fails (e.g. an option not implemented yet) is reported as
"n/a (error: ...)" and counts as FAIL. This script reports; it is not a test:
it exits 0 whatever the figures, non-zero only if it crashed.

    python bench/list_scale.py [--sizes 1000,10000] [--repeat N] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import ENV, IDENTITY, ensure_bytecode, gitexp_cmd  # bench/ is the script's own directory

TARGET_SECONDS = 1.0
WHERE = "metrics.acc > 0.9 and params.lr <= 0.01"
LRS = (0.001, 0.003, 0.01, 0.03, 0.1)  # 3 of 5 satisfy lr <= 0.01
ACC_LOW, ACC_HIGH = 0.65, 0.95  # acc > 0.9 for 1 run in 6; with the lr condition: 1 in 10
SUBPROCESS_TIMEOUT = 300




def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Run cmd, stdout read fully from a pipe; return (wall seconds, stdout); raise if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=False
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise RuntimeError(f"exit {proc.returncode}: {detail[-1] if detail else '(no output)'}")
    return elapsed, proc.stdout


def attempt(cmd: list[str], cwd: Path) -> tuple[float | None, str]:
    """Like timed, but a failure gives (None, error text) instead of raising."""
    try:
        return timed(cmd, cwd)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        return None, str(exc)


# -- generation ---------------------------------------------------------------


def generate(path: Path, n: int) -> tuple[float, int]:
    """Make a repo with a base commit and n runs; return (seconds, runs the --where expression should match)."""
    from gitexp import format as fmt
    from gitexp.model import RunSummary
    from gitexp.store import Store

    t0 = time.perf_counter()
    path.mkdir()
    store = Store.init_repository(path)
    store.repo.config["user.name"] = IDENTITY["GIT_AUTHOR_NAME"]
    store.repo.config["user.email"] = IDENTITY["GIT_AUTHOR_EMAIL"]
    (path / "train.py").write_text("import json\nprint(json.dumps({'acc': 0.9}))\n")
    (path / "params.yaml").write_text("lr: 0.01\nbatch: 64\nmodel:\n  depth: 4\n")
    store.commit_workspace("base", (IDENTITY["GIT_AUTHOR_NAME"], IDENTITY["GIT_AUTHOR_EMAIL"]))
    snap = store.snapshot()
    user = f"{IDENTITY['GIT_AUTHOR_NAME']} <{IDENTITY['GIT_AUTHOR_EMAIL']}>"
    rng = random.Random(n)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=n + 60)
    commits: list[str] = []
    matches = 0
    for i in range(n):
        name = f"run-{i:05d}"
        lr = LRS[i % len(LRS)]
        batch = (32, 64, 128)[(i // 5) % 3]
        depth = 2 + (i * 3) % 7  # 2..8
        a = round(rng.uniform(ACC_LOW, ACC_HIGH), 4)
        loss = round(1.0 - a + rng.uniform(0.0, 0.05), 4)
        matches += a > 0.9 and lr <= 0.01
        status, exit_code = ("failed", 1) if i % 20 == 7 else ("completed", 0)
        duration = round(rng.uniform(5.0, 500.0), 3)
        started = start + timedelta(seconds=i)
        ended = started + timedelta(seconds=duration)
        parent = commits[i - 1] if commits and i % 4 else None  # chains of 4 runs
        params = {"lr": lr, "batch": batch, "model.depth": depth}
        metrics = {"acc": a, "loss": loss}
        summary = RunSummary(
            name=name,
            commit="",
            status=status,
            exit_code=exit_code,
            started=started.isoformat(timespec="milliseconds"),
            duration=duration,
            user=user,
            base=snap.base,
            base_branch="main",
            parent=parent,
            tags=(),
            params=params,
            metrics=metrics,
            note="",
        )
        nested_params = {"lr": lr, "batch": batch, "model": {"depth": depth}}
        files: dict[str, Any] = {
            fmt.RUN_FILE: b"{}\n",
            fmt.PARAMS_FILE: fmt.to_json(nested_params).encode(),
            fmt.METRICS_FILE: fmt.to_json(metrics).encode(),
            fmt.ENV_FILE: b"{}\n",
            fmt.STDOUT_FILE: b"",
            fmt.STDERR_FILE: b"",
        }
        subject = f"{name}: {status} (python train.py --seed {i})"
        message = fmt.build_message(subject, "", fmt.run_trailers(summary))
        commits.append(store.write_run(name, snap, parent, files, message, started, ended))
    return time.perf_counter() - t0, matches


# -- measuring ------------------------------------------------------------------


def fmt_s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def median_or_none(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def measure_repo(repo: Path, n: int, cmd: list[str], repeat: int, expect_where: int) -> dict[str, Any]:
    """Cold then warm figures of one repo holding n runs."""
    out: dict[str, Any] = {"errors": {}, "checks": []}
    state = repo / ".git" / "gitexp"
    out["state_before_cold"] = sorted(str(p.relative_to(state)) for p in state.rglob("*")) if state.exists() else []

    t, text = attempt([*cmd, "list"], repo)
    out["cold_list"] = t
    if t is None:
        out["errors"]["cold_list"] = text
    out["state_after_cold"] = sorted(str(p.relative_to(state)) for p in state.rglob("*")) if state.exists() else []

    commands = {
        "list": [*cmd, "list"],
        "where": [*cmd, "list", "--where", WHERE],
        "json": [*cmd, "list", "--json"],
        "floor_git": ["git", "for-each-ref", "refs/experiments/", "--format=%(objectname) %(contents:trailers)"],
    }
    samples: dict[str, list[float]] = {k: [] for k in commands}
    failed: set[str] = set()
    outputs: dict[str, str] = {}
    for _ in range(repeat):
        for key, argv in commands.items():
            if key in failed:
                continue
            t, text = attempt(argv, repo)
            if t is None:
                failed.add(key)
                out["errors"][key] = text
            else:
                samples[key].append(t)
                outputs[key] = text
    for key in commands:
        out[f"warm_{key}"] = median_or_none(samples[key])
        out[f"warm_{key}_min"] = min(samples[key]) if samples[key] else None

    # Sanity checks (untimed): every run listed, the filter selects what it should.
    if "json" in outputs:
        try:
            listed = len(json.loads(outputs["json"]))
            out["checks"].append(f"--json lists {listed} runs (expected {n}){'' if listed == n else '  <-- MISMATCH'}")
        except ValueError as exc:
            out["checks"].append(f"--json output is not JSON: {exc}")
    if "floor_git" in outputs:
        refs = sum(1 for line in outputs["floor_git"].splitlines() if line[:40].isalnum() and len(line) > 41)
        out["checks"].append(f"for-each-ref printed {refs} run lines")
    if "where" not in failed:
        t, text = attempt([*cmd, "list", "--where", WHERE, "--json"], repo)
        if t is None:
            out["checks"].append(f"--where --json failed: {text}")
        else:
            try:
                got = len(json.loads(text))
                flag = "" if got == expect_where else "  <-- MISMATCH"
                out["checks"].append(f"--where selects {got} runs ({got / n:.1%}; expected {expect_where}){flag}")
            except ValueError as exc:
                out["checks"].append(f"--where --json output is not JSON: {exc}")
    lf = out["warm_list"]
    fl = out["warm_floor_git"]
    out["ratio_list_floor"] = lf / fl if lf and fl else None
    return out


def interpreter_floor(cwd: Path, repeat: int) -> float | None:
    xs = []
    for _ in range(repeat):
        t, _ = attempt([sys.executable, "-c", "import pygit2, click"], cwd)
        if t is not None:
            xs.append(t)
    return median_or_none(xs)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def main() -> int:
    ensure_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated run counts (default 1000,10000)")
    parser.add_argument("--repeat", type=int, default=5, help="warm repetitions, median reported (default 5)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the generated repos and print where they are")
    args = parser.parse_args()
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error("--sizes must be comma-separated integers")
    if not sizes or sizes[0] < 1:
        parser.error("--sizes must be positive integers")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    cmd = gitexp_cmd()
    scratch = Path(tempfile.mkdtemp(prefix="gitexp-list-bench-"))
    results: dict[int, dict[str, Any]] = {}
    try:
        py_floor = interpreter_floor(scratch, args.repeat)
        for n in sizes:
            source, mate = scratch / f"source-{n}", scratch / f"teammate-{n}"
            gen_s, expect_where = generate(source, n)
            if not args.json:
                print(f"generated {n} runs in {gen_s:.1f}s", file=sys.stderr, flush=True)
            mate.mkdir()
            timed(["git", "init", "-q", "-b", "main"], mate)
            fetch_s, _ = timed(["git", "fetch", "-q", str(source), "refs/experiments/*:refs/experiments/*"], mate)
            res: dict[str, Any] = {"runs": n, "generate_s": gen_s, "fetch_s": fetch_s, "where_expected": expect_where}
            res["teammate"] = measure_repo(mate, n, cmd, args.repeat, expect_where)
            res["source"] = measure_repo(source, n, cmd, args.repeat, expect_where)
            results[n] = res
    finally:
        if args.keep:
            print(f"kept the repos in {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    small, large = sizes[0], sizes[-1]
    linear = large / small
    repos = ("teammate", "source")
    keys = ("cold_list", "warm_list", "warm_where", "warm_json", "warm_floor_git")
    labels = {
        "cold_list": "cold",
        "warm_list": "warm",
        "warm_where": "where",
        "warm_json": "json",
        "warm_floor_git": "git",
    }
    ratios = {repo: {k: ratio(results[large][repo][k], results[small][repo][k]) for k in keys} for repo in repos}

    def most(values: list[float | None]) -> float | None:
        """The largest value, or None when any is missing (a failed measurement)."""
        present = [v for v in values if v is not None]
        return max(present) if present and len(present) == len(values) else None

    def worst(key: str) -> float | None:
        return most([results[large][r][key] for r in repos])

    def worst_ratio(key: str) -> float | None:
        return most([ratios[r][key] for r in repos])

    growth = [worst_ratio(k) for k in ("cold_list", "warm_list", "warm_where")] if large > small else []
    checks = [
        (f"{large} runs, cold `gitexp list` < {TARGET_SECONDS:g} s", worst("cold_list"), "s", TARGET_SECONDS),
        (f"{large} runs, warm `gitexp list` < {TARGET_SECONDS:g} s", worst("warm_list"), "s", TARGET_SECONDS),
        (f"{large} runs, warm `gitexp list --where` < {TARGET_SECONDS:g} s", worst("warm_where"), "s", TARGET_SECONDS),
    ]
    if large > small:
        checks.append((f"growth {large}/{small} <= {linear:g}x (cold, warm, --where)", most(growth), "x", linear))
    verdicts = [  # times must be under the limit, growth at most the limit
        {
            "check": label,
            "value": value,
            "unit": unit,
            "limit": limit,
            "pass": value is not None and (value < limit if unit == "s" else value <= limit),
        }
        for label, value, unit, limit in checks
    ]

    if args.json:
        print(
            json.dumps(
                {
                    "gitexp_cmd": cmd,
                    "where": WHERE,
                    "repeat": args.repeat,
                    "python_import_floor_s": py_floor,
                    "sizes": {str(n): r for n, r in results.items()},
                    "ratios": {r: {k: v for k, v in ratios[r].items()} for r in repos},
                    "verdicts": verdicts,
                },
                indent=2,
            )
        )
        return 0

    print(f"gitexp list at scale; gitexp = {' '.join(cmd)}; warm = median of {args.repeat}")
    print(f"--where {WHERE!r}")
    print(f"interpreter floor `python -c 'import pygit2, click'`: {fmt_s(py_floor)}s")
    head = f"{'runs':>6} {'repo':<9}{'gen s':>7}{'cold s':>8}{'warm s':>8}{'where s':>9}{'json s':>8}{'git s':>7}{'list/git':>9}"
    print(head)
    for n, res in results.items():
        for repo in repos:
            r = res[repo]
            gen = f"{res['generate_s']:.1f}" if repo == "source" else f"{res['fetch_s']:.1f}f"
            print(
                f"{n:>6} {repo:<9}{gen:>7}{fmt_s(r['cold_list']):>8}{fmt_s(r['warm_list']):>8}"
                f"{fmt_s(r['warm_where']):>9}{fmt_s(r['warm_json']):>8}{fmt_s(r['warm_floor_git']):>7}"
                f"{'n/a' if r['ratio_list_floor'] is None else format(r['ratio_list_floor'], '.1f') + 'x':>9}"
            )
    print("(gen s: generation through the storage layer; on teammate rows: the git fetch, marked f.")
    print(" git s: `git for-each-ref ... %(contents:trailers)`, the native floor; list/git: warm list over it)")
    if large > small:
        print(f"ratio {large}/{small} (linear = {linear:g}x):")
        for repo in repos:
            cells = "  ".join(
                f"{labels[k]} {'n/a' if ratios[repo][k] is None else format(ratios[repo][k], '.2f') + 'x'}"
                for k in keys
            )
            print(f"  {repo:<9}{cells}")
        for repo in repos:
            a, b = results[small][repo]["warm_list"], results[large][repo]["warm_list"]
            if a is not None and b is not None:
                per_k = (b - a) / (large - small) * 1000
                print(f"  {repo:<9}marginal warm list cost: {per_k * 1000:.1f} ms per 1000 runs")
    for n, res in results.items():
        for repo in repos:
            r = res[repo]
            for key, err in r["errors"].items():
                print(f"n/a (error: {err})  [{n} {repo} {key}]")
            for line in r["checks"]:
                print(f"check [{n} {repo}]: {line}")
            if r["state_before_cold"]:
                print(f"note [{n} {repo}]: gitexp state existed before the cold list: {r['state_before_cold']}")
            if r["state_after_cold"]:
                print(f"note [{n} {repo}]: gitexp state after the cold list: {r['state_after_cold']}")
    for v in verdicts:
        shown = "n/a" if v["value"] is None else f"{v['value']:.3f}{v['unit']}"
        print(f"{v['check']}: {shown} (worse of teammate/source): {'PASS' if v['pass'] else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: `gitexp.log` throughput against a plain-file floor and MLflow, and the hardware sampler's overhead.

A throw-away git repo under the temp dir holds small scripts, committed. Per
repetition (--repeat, default 5), interleaved to share machine noise:

  floor    `python floor.py`, same interpreter, not under gitexp: --points
           times `f.write(json.dumps({"step": i, "time": time.time(),
           "values": {"loss": x}}) + "\\n")` to a file opened in append mode
           (default buffering), then close; timed inside the script, open to
           close. Also with 4 values per line.
  gitexp   `gitexp run -- python log.py` (default sampler on): --points calls
           `gitexp.log({"loss": x}, step=i)`, timed inside the script with
           perf_counter, plus the final `gitexp.tracking._writer.flush()`;
           the run's `.gitexp/steps.jsonl` (read back with `git show`) must
           have exactly --points lines, else FAIL.
  wide     the same with 4 values per call (loss, acc, lr, grad_norm); each
           value counts as a point.
  bound    (diagnostic, no target) the 1-value loop calling a pre-bound
           `log = gitexp.log`, which skips the package's module __getattr__.

x = 1 / (i + 1) in every loop. Medians are reported.

MLflow (skipped by --no-mlflow): a venv of its own at bench/.venv-mlflow
(created on first use with `python -m venv` and `pip install mlflow`; never a
project dependency) runs --mlflow-calls `mlflow.log_metric("loss", x, step=i)`
inside `mlflow.start_run()` (one untimed warm-up call under another key) into
a local sqlite store and into the legacy file store; if MLflow refuses the
file store, the refusal is reported and it is measured again with MLflow's
opt-out (MLFLOW_ALLOW_FILE_STORE=true). Telemetry is turned off.

Sampler overhead: a single-threaded pure-Python loop of a fixed amount of
work (calibrated once to about --work-seconds) timed inside the script, under
`gitexp run --sample-interval 0` (off), `--sample-interval 2` (the default)
and `--sample-interval 0.5` (stress), --overhead-repeat times, the order
rotated per repetition. gitexp's own CPU time (RUSAGE_CHILDREN of this
process around the run, less the script's own RUSAGE_SELF), against 'off',
gives the sampler's whole cost per run; resources.json its sample count. The
sampling thread's own CPU per sample is then read directly: a Sampler in this
process on a sleeping child, 0.05 s interval, for 2 s. The machine's core
count is printed: with 2 cores the sampler thread runs beside the work.

Targets: the 1-value `gitexp.log` median >= 100,000 points/s; its time
<= 3x the floor's; sampler overhead at 2 s < 2%. This script reports; it is
not a test: it exits 0 whatever the figures, non-zero only if it crashed.

    python bench/log_throughput.py [--points N] [--repeat N] [--mlflow-calls N] [--no-mlflow]
                                   [--overhead-repeat N] [--work-seconds S] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ENV, ensure_bytecode, gitexp_cmd, timed  # bench/ is the script's own directory

POINTS_TARGET = 100_000  # points/s of the 1-value gitexp.log loop
FLOOR_TARGET = 3.0  # gitexp time / floor time
OVERHEAD_TARGET = 2.0  # % slower work with the sampler at its default interval
STRESS_INTERVAL = 0.5
DEFAULT_INTERVAL = 2.0
BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".venv-mlflow"

LOG_SCRIPT = '''\
import json, sys, time
import gitexp
import gitexp.tracking  # imported before the clock starts; `gitexp.log` still goes through the package
n, mode = int(sys.argv[1]), sys.argv[2]
perf = time.perf_counter
if mode == "wide":
    t0 = perf()
    for i in range(n):
        x = 1.0 / (i + 1)
        gitexp.log({"loss": x, "acc": 1.0 - x, "lr": 0.001, "grad_norm": x + x}, step=i)
    t1 = perf()
elif mode == "bound":
    log = gitexp.log
    t0 = perf()
    for i in range(n):
        log({"loss": 1.0 / (i + 1)}, step=i)
    t1 = perf()
else:
    t0 = perf()
    for i in range(n):
        gitexp.log({"loss": 1.0 / (i + 1)}, step=i)
    t1 = perf()
gitexp.tracking._writer.flush()
t2 = perf()
print(json.dumps({"loop": t1 - t0, "flush": t2 - t1}))
'''

FLOOR_SCRIPT = '''\
import json, sys, time
n, path = int(sys.argv[1]), sys.argv[2]
perf = time.perf_counter
t0 = perf()
f = open(path + ".narrow", "a")
for i in range(n):
    f.write(json.dumps({"step": i, "time": time.time(), "values": {"loss": 1.0 / (i + 1)}}) + "\\n")
f.close()
t1 = perf()
f = open(path + ".wide", "a")
for i in range(n):
    x = 1.0 / (i + 1)
    f.write(json.dumps({"step": i, "time": time.time(), "values": {"loss": x, "acc": 1.0 - x, "lr": 0.001, "grad_norm": x + x}}) + "\\n")
f.close()
t2 = perf()
print(json.dumps({"narrow": t1 - t0, "wide": t2 - t1}))
'''

WORK_FUNCTION = '''\
def work(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total
'''

WORK_SCRIPT = WORK_FUNCTION + '''
import json, resource, sys, time
n = int(sys.argv[1])
t0 = time.perf_counter()
total = work(n)
elapsed = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"work": elapsed, "cpu": usage.ru_utime + usage.ru_stime, "total": total}))
'''

MLFLOW_SCRIPT = '''\
import json, sys, time
n, uri = int(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
import mlflow
t1 = time.perf_counter()
try:
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run():
        t2 = time.perf_counter()
        mlflow.log_metric("warmup", 0.0, step=0)
        t3 = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        t4 = time.perf_counter()
except Exception as exc:
    reason = " ".join(str(exc).split())
    print(json.dumps({"version": mlflow.__version__, "error": f"{type(exc).__name__}: {reason}"}))
    sys.exit(0)
print(json.dumps({"version": mlflow.__version__, "seconds": t4 - t3, "import": t1 - t0, "start_run": t2 - t1}))
'''


def note(message: str) -> None:
    """Progress goes to stderr, so --json's stdout stays JSON."""
    print(message, file=sys.stderr, flush=True)


def last_json(stdout: str) -> dict[str, Any]:
    """The last line of stdout that is a JSON object (gitexp passes the script's stdout through)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            figure: dict[str, Any] = json.loads(line)
            return figure
    raise RuntimeError(f"no JSON figure in the output:\n{stdout}")


def git_show(repo: Path, run: str, filename: str) -> bytes | None:
    proc = subprocess.run(
        ["git", "show", f"refs/experiments/{run}:.gitexp/{filename}"], cwd=repo, env=ENV, capture_output=True, check=False
    )
    return proc.stdout if proc.returncode == 0 else None


def make_repo(repo: Path) -> None:
    repo.mkdir()
    timed(["git", "init", "-q", "-b", "main"], repo)
    (repo / "log.py").write_text(LOG_SCRIPT)
    (repo / "work.py").write_text(WORK_SCRIPT)
    timed(["git", "add", "-A"], repo)
    timed(["git", "commit", "-q", "-m", "bench scripts"], repo)


def check_steps(repo: Path, run: str, points: int) -> str | None:
    """None if the run's steps.jsonl has exactly `points` lines, steps 0 .. points-1 at the ends; else what is wrong."""
    data = git_show(repo, run, "steps.jsonl")
    if data is None:
        return f"{run}: no .gitexp/steps.jsonl in the run"
    lines = data.count(b"\n")
    if lines != points:
        return f"{run}: steps.jsonl has {lines:,} lines, not {points:,}"
    rows = data.splitlines()
    first, last = json.loads(rows[0]).get("step"), json.loads(rows[-1]).get("step")
    if (first, last) != (0, points - 1):
        return f"{run}: steps.jsonl runs from step {first} to {last}, not 0 to {points - 1}"
    return None


# -- part 1 and 2: gitexp.log against the floor ------------------------------


def measure_log(repo: Path, scratch: Path, cmd: list[str], points: int, repeat: int) -> dict[str, Any]:
    seconds: dict[str, list[float]] = {"floor": [], "floor_wide": [], "gitexp": [], "wide": [], "bound": []}
    flushes: dict[str, list[float]] = {"gitexp": [], "wide": [], "bound": []}
    problems: list[str] = []
    checked = 0
    floor_script = scratch / "floor.py"
    floor_script.write_text(FLOOR_SCRIPT)
    for r in range(1, repeat + 1):
        note(f"log throughput: repetition {r}/{repeat}")
        out = scratch / f"floor-{r}.jsonl"
        _, stdout = timed([sys.executable, str(floor_script), str(points), str(out)], scratch)
        figure = last_json(stdout)
        seconds["floor"].append(figure["narrow"])
        seconds["floor_wide"].append(figure["wide"])
        for suffix in (".narrow", ".wide"):
            Path(str(out) + suffix).unlink()
        for mode in ("gitexp", "wide", "bound"):
            run = f"log-{mode}-{r}"
            _, stdout = timed([*cmd, "run", "-n", run, "--", sys.executable, "log.py", str(points), mode], repo)
            figure = last_json(stdout)
            seconds[mode].append(figure["loop"] + figure["flush"])
            flushes[mode].append(figure["flush"])
            problem = check_steps(repo, run, points)
            checked += 1
            if problem:
                problems.append(problem)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    return {
        "seconds": {k: {"median": med[k], "min": min(v), "max": max(v)} for k, v in seconds.items()},
        "flush_seconds_median": {k: statistics.median(v) for k, v in flushes.items()},
        "points_per_s": {
            "floor": points / med["floor"],
            "gitexp": points / med["gitexp"],
            "floor_wide": 4 * points / med["floor_wide"],
            "wide": 4 * points / med["wide"],
            "bound": points / med["bound"],
        },
        "calls_per_s": {"gitexp": points / med["gitexp"], "wide": points / med["wide"], "bound": points / med["bound"]},
        "ratio_to_floor": med["gitexp"] / med["floor"],
        "ratio_to_floor_wide": med["wide"] / med["floor_wide"],
        "steps_checked": checked,
        "steps_problems": problems,
    }


# -- part 3: MLflow ----------------------------------------------------------


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_mlflow() -> tuple[str | None, str | None]:
    """(mlflow version, None) from the bench's own venv, installing it there if needed; (None, reason) if impossible."""
    py = venv_python()
    probe = [str(py), "-c", "import mlflow; print(mlflow.__version__)"]
    if py.exists():
        proc = subprocess.run(probe, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout.strip(), None
    if not py.exists():
        note(f"mlflow: creating the venv {VENV}")
        proc = subprocess.run([sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            return None, f"python -m venv failed: {tail(proc.stderr or proc.stdout)}"
    note("mlflow: pip install mlflow into it (one time; a few minutes)")
    install = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--timeout", "30", "mlflow"]
    proc = subprocess.run(install, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None, f"pip install mlflow failed: {tail(proc.stderr or proc.stdout)}"
    proc = subprocess.run(probe, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None, f"mlflow installed but not importable: {tail(proc.stderr)}"
    return proc.stdout.strip(), None


def tail(text: str) -> str:
    """The last meaningful line of a tool's error output (pip's index WARNINGs are noise)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("WARNING:")]
    return lines[-1] if lines else "(no output)"


def measure_mlflow(scratch: Path, calls: int) -> dict[str, Any]:
    version, reason = ensure_mlflow()
    if version is None:
        return {"measured": False, "reason": reason}
    note(f"mlflow {version}: {calls:,} log_metric calls per store")
    script = scratch / "mlflow_bench.py"
    script.write_text(MLFLOW_SCRIPT)
    quiet = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}  # no traffic, no waiting on it
    stores: dict[str, Any] = {}
    for kind in ("sqlite", "file"):
        home = scratch / f"mlflow-{kind}"
        home.mkdir()
        uri = f"sqlite:///{home}/mlflow.db" if kind == "sqlite" else (home / "mlruns").as_uri()
        env = {**os.environ, **quiet}
        env.pop("MLFLOW_ALLOW_FILE_STORE", None)
        figure = mlflow_once(script, home, calls, uri, env)
        entry: dict[str, Any] = {"uri": uri}
        if "error" in figure and kind == "file" and "MLFLOW_ALLOW_FILE_STORE" in figure["error"]:
            entry["refused"] = figure["error"]
            shutil.rmtree(home / "mlruns", ignore_errors=True)
            figure = mlflow_once(script, home, calls, uri, {**env, "MLFLOW_ALLOW_FILE_STORE": "true"})
            entry["opt_in"] = "MLFLOW_ALLOW_FILE_STORE=true"
        if "error" in figure:
            entry.update(available=False, reason=figure["error"])
        else:
            entry.update(
                available=True, seconds=figure["seconds"], calls_per_s=calls / figure["seconds"],
                import_seconds=figure["import"], start_run_seconds=figure["start_run"],
            )
        stores[kind] = entry
    return {"measured": True, "version": version, "venv": str(VENV), "calls": calls, "stores": stores}


def mlflow_once(script: Path, home: Path, calls: int, uri: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [str(venv_python()), str(script), str(calls), uri], cwd=home, env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": f"exited {proc.returncode}: {tail(proc.stderr)}"}
    return last_json(proc.stdout)


# -- part 4: the sampler's overhead ------------------------------------------


def calibrate(target: float) -> int:
    """Iterations of the work loop that take about `target` seconds here."""
    scope: dict[str, Any] = {}
    exec(WORK_FUNCTION, scope)  # noqa: S102 - our own constant
    work = scope["work"]
    n = 200_000
    while True:
        t0 = time.perf_counter()
        work(n)
        elapsed = time.perf_counter() - t0
        if elapsed >= 0.25:
            return max(int(n * target / elapsed), 1)
        n *= 4


def measure_sampler(repo: Path, cmd: list[str], repeat: int, work_seconds: float) -> dict[str, Any]:
    n = calibrate(work_seconds)
    arms = [("off", 0.0), ("default", DEFAULT_INTERVAL), ("stress", STRESS_INTERVAL)]
    work: dict[str, list[float]] = {name: [] for name, _ in arms}
    gitexp_cpu: dict[str, list[float]] = {name: [] for name, _ in arms}
    samples: dict[str, list[float]] = {name: [] for name, _ in arms}
    for r in range(repeat):
        note(f"sampler overhead: repetition {r + 1}/{repeat}")
        for name, interval in arms[r % 3 :] + arms[: r % 3]:  # rotated: no arm always first
            run = f"work-{name}-{r + 1}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            _, stdout = timed(
                [*cmd, "run", "-n", run, "--sample-interval", f"{interval:g}", "--", sys.executable, "work.py", str(n)],
                repo,
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            figure = last_json(stdout)
            children = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            work[name].append(figure["work"])
            gitexp_cpu[name].append(children - figure["cpu"])
            raw = git_show(repo, run, "resources.json")
            samples[name].append(float(json.loads(raw).get("samples", 0)) if raw else 0.0)
    med = {name: statistics.median(xs) for name, xs in work.items()}
    cpu = {name: statistics.median(xs) for name, xs in gitexp_cpu.items()}
    count = {name: statistics.median(xs) for name, xs in samples.items()}
    result: dict[str, Any] = {"iterations": n, "arms": {}}
    for name, interval in arms:
        xs = work[name]
        result["arms"][name] = {
            "interval": interval,
            "work_seconds": {"median": med[name], "min": min(xs), "max": max(xs)},
            "spread_percent": (max(xs) - min(xs)) / med[name] * 100,
            "overhead_percent": None if name == "off" else (med[name] - med["off"]) / med["off"] * 100,
            # Cross-checks on the noise: the median of per-repetition ratios (neighbouring runs), and min against min.
            "overhead_percent_paired": None if name == "off" else statistics.median(
                (on - off) / off * 100 for on, off in zip(xs, work["off"])
            ),
            "overhead_percent_min": None if name == "off" else (min(xs) - min(work["off"])) / min(work["off"]) * 100,
            "work_seconds_all": xs,
            "gitexp_cpu_seconds_median": cpu[name],
            "sampler_cpu_seconds": None if name == "off" else cpu[name] - cpu["off"],  # growth over 'off'
            "samples_median": count[name],
        }
    result["thread"] = sampler_thread_cost()
    return result


def sampler_thread_cost(seconds: float = 2.0, interval: float = 0.05) -> dict[str, float]:
    """The sampling thread's own CPU per sample, read directly: a Sampler in this process on a sleeping child.

    Uses the Sampler's private per-thread CPU count (time.thread_time in its thread), which
    includes the baseline reading; the summary's sample count may include the last reading,
    taken by stop() in this thread. Good to a few percent at ~40 samples.
    """
    from gitexp.sampler import Sampler

    child = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds + 5})"])
    out = Path(tempfile.mkdtemp(prefix="gitexp-bench-sampler-"))
    try:
        sampler = Sampler(child.pid, out / "system.jsonl", interval)
        sampler.start()
        time.sleep(seconds)
        samples = float(sampler.stop()["samples"])
        thread_cpu = sampler._thread_cpu  # private, but the figure we want: nothing public gives it
    finally:
        child.kill()
        child.wait()
        shutil.rmtree(out, ignore_errors=True)
    per_sample = thread_cpu / samples if samples else 0.0
    return {
        "interval": interval,
        "samples": samples,
        "thread_cpu_seconds": thread_cpu,
        "ms_per_sample": per_sample * 1000,
        "core_percent_at_default": per_sample / DEFAULT_INTERVAL * 100,
        "core_percent_at_stress": per_sample / STRESS_INTERVAL * 100,
        "processes_on_machine": float(len([p for p in os.listdir("/proc") if p.isdigit()])) if os.path.isdir("/proc") else 0.0,
    }


# -- output ------------------------------------------------------------------


def main() -> int:
    ensure_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000, help="gitexp.log calls per run (default 100000)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions of the log and floor loops (default 5)")
    parser.add_argument("--mlflow-calls", type=int, default=2000, help="log_metric calls per MLflow store (default 2000)")
    parser.add_argument("--no-mlflow", action="store_true", help="skip MLflow")
    parser.add_argument("--overhead-repeat", type=int, default=7, help="repetitions of the sampler arms (default 7)")
    parser.add_argument("--work-seconds", type=float, default=4.0, help="CPU-bound work per sampler run (default 4)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if min(args.points, args.repeat, args.mlflow_calls, args.overhead_repeat) < 1 or args.work_seconds <= 0:
        parser.error("counts must be at least 1 and --work-seconds positive")

    started = time.perf_counter()
    cmd = gitexp_cmd()
    scratch = Path(tempfile.mkdtemp(prefix="gitexp-bench-"))
    try:
        repo = scratch / "repo"
        make_repo(repo)
        log = measure_log(repo, scratch, cmd, args.points, args.repeat)
        mlflow: dict[str, Any] = {"measured": False, "reason": "skipped (--no-mlflow)"}
        if not args.no_mlflow:
            mlflow = measure_mlflow(scratch, args.mlflow_calls)
        sampler = measure_sampler(repo, cmd, args.overhead_repeat, args.work_seconds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    gitexp_rate = log["points_per_s"]["gitexp"]
    if mlflow.get("measured"):
        for store in mlflow["stores"].values():
            if store.get("available"):
                store["gitexp_speedup"] = log["calls_per_s"]["gitexp"] / store["calls_per_s"]
    overhead = sampler["arms"]["default"]["overhead_percent"]
    result = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "gitexp_cmd": cmd,
        "points": args.points,
        "repeat": args.repeat,
        "overhead_repeat": args.overhead_repeat,
        "log": log,
        "mlflow": mlflow,
        "sampler": sampler,
        "targets": {
            "points_per_s": {"target": POINTS_TARGET, "value": gitexp_rate, "pass": gitexp_rate >= POINTS_TARGET},
            "ratio_to_floor": {"target": FLOOR_TARGET, "value": log["ratio_to_floor"], "pass": log["ratio_to_floor"] <= FLOOR_TARGET},
            "sampler_overhead_percent": {"target": OVERHEAD_TARGET, "value": overhead, "pass": overhead < OVERHEAD_TARGET},
            "steps_complete": {"pass": not log["steps_problems"]},
        },
        "wall_seconds": time.perf_counter() - started,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result, args)
    return 0


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    log, mlflow, sampler, targets = result["log"], result["mlflow"], result["sampler"], result["targets"]
    sec, pps, cps = log["seconds"], log["points_per_s"], log["calls_per_s"]
    n = result["points"]
    print(
        f"gitexp.log throughput: {n:,} calls per run, {result['repeat']} repetitions interleaved, medians;"
        f" Python {result['python']}, {result['cpus']} CPUs"
    )
    print(f"{'':<44}{'seconds':>9}{'points/s':>12}{'calls/s':>12}")
    rows = [
        ("floor: json.dumps + append, 1 value", "floor", pps["floor"], pps["floor"]),
        ("gitexp.log({'loss': x}, step=i)", "gitexp", pps["gitexp"], cps["gitexp"]),
        ("floor: json.dumps + append, 4 values", "floor_wide", pps["floor_wide"], pps["floor_wide"] / 4),
        ("gitexp.log, 4 values per call", "wide", pps["wide"], cps["wide"]),
        ("diagnostic: pre-bound log = gitexp.log", "bound", pps["bound"], cps["bound"]),
    ]
    for label, key, points_s, calls_s in rows:
        print(f"{label:<44}{sec[key]['median']:>9.3f}{points_s:>12,.0f}{calls_s:>12,.0f}")
    flush = log["flush_seconds_median"]
    print(
        f"gitexp / floor time: {log['ratio_to_floor']:.2f}x (1 value), {log['ratio_to_floor_wide']:.2f}x (4 values);"
        f" final flush {flush['gitexp'] * 1000:.2f} ms (included)"
    )
    if log["steps_problems"]:
        print(f"steps.jsonl check: FAIL in {len(log['steps_problems'])} of {log['steps_checked']} runs:")
        for problem in log["steps_problems"]:
            print(f"  {problem}")
    else:
        print(f"steps.jsonl check: all {log['steps_checked']} runs have exactly {n:,} lines, steps 0..{n - 1:,}: OK")

    print()
    if not mlflow.get("measured"):
        print(f"MLflow: not measured: {mlflow['reason']}")
    else:
        print(f"MLflow {mlflow['version']} log_metric, {mlflow['calls']:,} calls per store (venv {VENV.relative_to(BENCH_DIR.parent)})")
        print(f"{'store':<44}{'seconds':>9}{'calls/s':>12}{'gitexp x':>12}")
        for kind, store in mlflow["stores"].items():
            label = "sqlite (sqlite:///.../mlflow.db)" if kind == "sqlite" else "file (file://.../mlruns)"
            if store.get("opt_in"):
                label += " opted in"
            if store.get("available"):
                print(f"{label:<44}{store['seconds']:>9.2f}{store['calls_per_s']:>12,.0f}{store['gitexp_speedup']:>11,.0f}x")
            else:
                print(f"{label:<44}  unavailable: {store['reason']}")
            if store.get("refused"):
                print(f"  without {store['opt_in']} MLflow refuses it: {shorten(store['refused'], 150)}")
        print("  (gitexp x: gitexp.log's 1-value calls/s over MLflow's; setup, import and start_run not timed)")

    print()
    arms = sampler["arms"]
    print(
        f"Hardware sampler overhead: pure-Python loop of {sampler['iterations']:,} iterations under `gitexp run`,"
        f" {result['overhead_repeat']} repetitions, order rotated, medians of the script's own work time"
    )
    print(
        f"{'--sample-interval':<18}{'work s':>8}{'spread':>8}{'overhead':>10}{'paired':>9}{'by min':>9}"
        f"{'samples':>9}{'gitexp CPU':>12}{'sampler CPU':>13}"
    )
    for name, label in (("off", "0 (off)"), ("default", "2 (default)"), ("stress", f"{STRESS_INTERVAL:g} (stress)")):
        arm = arms[name]
        own = "-" if arm["sampler_cpu_seconds"] is None else f"{arm['sampler_cpu_seconds'] * 1000:+.0f} ms"
        print(
            f"{label:<18}{arm['work_seconds']['median']:>8.3f}{arm['spread_percent']:>7.1f}%{percent(arm['overhead_percent']):>10}"
            f"{percent(arm['overhead_percent_paired']):>9}{percent(arm['overhead_percent_min']):>9}"
            f"{arm['samples_median']:>9.0f}{arm['gitexp_cpu_seconds_median']:>10.3f} s{own:>13}"
        )
    thread = sampler["thread"]
    print(
        "  overhead: of the medians (the target's figure); paired: median of the per-repetition ratios; by min: min against"
        " min.\n  spread: (max-min)/median of the arm's work times. gitexp CPU: the gitexp process's CPU time (RUSAGE_CHILDREN"
        " around the run less the script's own); sampler CPU: its growth over 'off' per run (mostly fixed costs: psutil import, thread start; noisy)"
    )
    print(
        f"  sampler thread alone (a Sampler in the bench on a sleeping child, {thread['samples']:.0f} samples at"
        f" {thread['interval']:g} s): {thread['ms_per_sample']:.2f} ms CPU per sample = {thread['core_percent_at_default']:.2f}%"
        f" of a core at 2 s, {thread['core_percent_at_stress']:.2f}% at 0.5 s ({thread['processes_on_machine']:.0f} processes"
        " on the machine: psutil's children() scans them all)"
    )
    print(
        f"  note: this machine has {result['cpus']} CPUs; the sampler thread lives in the gitexp process, so with a"
        " single-threaded script it runs on another core: this measures contention, not a shared core"
    )

    print()
    print("Targets")
    t = targets
    checks = [
        (f"gitexp.log >= {POINTS_TARGET:,} points/s", f"{t['points_per_s']['value']:,.0f}", t["points_per_s"]["pass"]),
        (f"gitexp.log within {FLOOR_TARGET:g}x of the floor", f"{t['ratio_to_floor']['value']:.2f}x", t["ratio_to_floor"]["pass"]),
        (
            f"sampler overhead < {OVERHEAD_TARGET:g}% (2 s interval)",
            f"{t['sampler_overhead_percent']['value']:+.2f}%",
            t["sampler_overhead_percent"]["pass"],
        ),
    ]
    for label, value, ok in checks:
        print(f"  {label:<42}{value:>12}  {'PASS' if ok else 'MISS'}")
    print(f"  {'steps.jsonl complete in every run':<42}{'':>12}  {'OK' if t['steps_complete']['pass'] else 'FAIL'}")
    print(f"(benchmark wall time {result['wall_seconds']:.0f} s)")


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}%"


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: `gitexp ui`'s /api/runs over 10,000 runs, first and warm, against `gitexp list --json`.

N runs are written in one `git fast-import` stream (what `gitexp run` would write: the trailers of
fmt.run_trailers, a record directory with run.json, params.json, metrics.json, env.json and a 50-point
steps.jsonl, parents base + parent run in chains of 4), then a real `gitexp ui` subprocess serves the repo
and is asked over HTTP (urllib, 127.0.0.1):

  first        the first GET /api/runs after the server started (every run commit read once: nothing
               cached yet; more than 200 runs: their commands and step statistics are read in the background);
  stats-ready  from that request until /api/version says the background read is done (every run.json and
               steps file read);
  warm         GET /api/runs again, nothing changed (median of --repeat): the payload kept for this version;
  after-change GET /api/runs after one more run ref appeared (median): the version changed, so the table is
               rebuilt, but each run's summary, command and statistics come from the per-commit cache;
  where        GET /api/runs?where=... after a change (median);
  version      GET /api/version (median): what the front end polls every 2 s;
  floor        `gitexp list --json` as a subprocess (median): the CLI reading the same runs.

Figures are printed as seconds and as ratios to the floor, with the load average (the machine is shared).
Targets: warm < 0.1 s, after-change within 2x the floor, version < 50 ms at 10,000 runs.

    python bench/ui_api.py [--runs 10000] [--repeat 5] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from common import ENV, IDENTITY, ensure_bytecode, gitexp_cmd  # bench/ is the script's own directory

WHERE = "metrics.acc > 0.9 and params.lr <= 0.01"
LRS = (0.001, 0.003, 0.01, 0.03, 0.1)


def _data(text: bytes) -> bytes:
    return b"data %d\n" % len(text) + text + b"\n"


def generate(path: Path, n: int) -> float:
    """A repo with a base commit and n runs written by one git fast-import; returns the seconds it took."""
    from gitexp import format as fmt
    from gitexp.model import RunSummary

    t0 = time.perf_counter()
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=ENV)
    (path / "train.py").write_text("import json\nprint(json.dumps({'acc': 0.9}))\n")
    (path / "params.yaml").write_text("lr: 0.01\nbatch: 64\n")
    subprocess.run(["git", "add", "-A"], cwd=path, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", "base"], cwd=path, check=True, env=ENV)
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, check=True, env=ENV, capture_output=True,
                          text=True).stdout.strip()
    user = f"{IDENTITY['GIT_AUTHOR_NAME']} <{IDENTITY['GIT_AUTHOR_EMAIL']}>"
    rng = random.Random(n)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=n + 60)
    out: list[bytes] = []
    for i in range(n):
        name = f"run-{i:05d}"
        lr = LRS[i % len(LRS)]
        acc = round(rng.uniform(0.65, 0.95), 4)
        loss = round(1.0 - acc + rng.uniform(0.0, 0.05), 4)
        started = start + timedelta(seconds=i)
        duration = round(rng.uniform(5.0, 500.0), 3)
        params = {"lr": lr, "batch": (32, 64, 128)[(i // 5) % 3], "seed": i % 3}
        metrics = {"acc": acc, "loss": loss}
        summary = RunSummary(name=name, commit="", status="completed", exit_code=0,
                             started=started.isoformat(timespec="milliseconds"), duration=duration, user=user,
                             base=base, base_branch="main", parent=None, params=params, metrics=metrics)
        message = fmt.build_message(f"{name}: completed (python train.py)", "", fmt.run_trailers(summary)).encode()
        steps = b"".join(b'{"step":%d,"time":%.3f,"values":{"loss":%r}}\n' % (s, started.timestamp() + s, loss + (50 - s) / 50)
                         for s in range(50))
        files = {
            fmt.RUN_FILE: json.dumps({"command": ["python", "train.py"], "cwd": ""}).encode(),
            fmt.PARAMS_FILE: json.dumps(params).encode(),
            fmt.METRICS_FILE: json.dumps(metrics).encode(),
            fmt.ENV_FILE: b"{}\n",
            fmt.STEPS_FILE: steps,
        }
        when = int(started.timestamp())
        out.append(b"commit refs/experiments/%s\nmark :%d\n" % (name.encode(), i + 1))
        out.append(b"committer %s %d +0000\n" % (user.encode(), when + int(duration)))
        out.append(_data(message))
        out.append(b"from %s\n" % base.encode())
        if i % 4:
            out.append(b"merge :%d\n" % i)  # the parent run (chains of 4), as write_run's second parent
        for filename, content in files.items():
            out.append(b"M 100644 inline .gitexp/%s\n" % filename.encode() + _data(content))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=b"".join(out), check=True, env=ENV)
    return time.perf_counter() - t0


def fetch(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as response:  # 127.0.0.1 only
        body = response.read()
    return time.perf_counter() - t0, body


def median_of(repeat: int, fn: Any) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    ensure_bytecode()
    scratch = Path(tempfile.mkdtemp(prefix="gitexp-ui-bench-"))
    repo = scratch / "repo"
    result: dict[str, Any] = {"runs": args.runs, "load_before": os.getloadavg()}
    try:
        result["generate_s"] = generate(repo, args.runs)
        cmd = gitexp_cmd()

        def floor() -> float:
            t0 = time.perf_counter()
            subprocess.run([*cmd, "list", "--json"], cwd=repo, env=ENV, check=True, capture_output=True)
            return time.perf_counter() - t0

        floor()  # the first list (cold) is not the floor: the warm one is
        result["floor_list_json_s"] = median_of(args.repeat, floor)
        server = subprocess.Popen([*cmd, "ui"], cwd=repo, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, start_new_session=True)
        try:
            assert server.stdout is not None
            ready, _, _ = select.select([server.stdout], [], [], 120)
            url = server.stdout.readline().strip() if ready else ""
            if not url.startswith("http://"):
                raise RuntimeError("gitexp ui printed no URL")
            t0 = time.perf_counter()
            first, body = fetch(url + "api/runs")
            payload = json.loads(body)
            rows = len(payload["runs"])
            result["first_s"] = first
            result["first_pending"] = payload.get("pending", 0)
            while json.loads(fetch(url + "api/version")[1])["version"] == payload["version"] and payload.get("pending"):
                time.sleep(0.1)  # the background read of every run's command and statistics
            result["stats_ready_s"] = time.perf_counter() - t0
            result["payload_bytes"] = len(body)
            result["warm_s"] = median_of(args.repeat, lambda: fetch(url + "api/runs")[0])
            result["version_s"] = median_of(args.repeat * 4, lambda: fetch(url + "api/version")[0])
            head = subprocess.run(["git", "rev-parse", "refs/experiments/run-00000"], cwd=repo, env=ENV, check=True,
                                  capture_output=True, text=True).stdout.strip()
            changes = iter(range(10**6))

            def after_change(path: str) -> float:
                subprocess.run(["git", "update-ref", f"refs/experiments/extra-{next(changes)}", head], cwd=repo,
                               env=ENV, check=True)
                return fetch(url + path)[0]

            result["after_change_s"] = median_of(args.repeat, lambda: after_change("api/runs"))
            where = "api/runs?" + urllib.parse.urlencode({"where": WHERE})
            result["after_change_where_s"] = median_of(args.repeat, lambda: after_change(where))
            result["rows"] = rows
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    finally:
        result["load_after"] = os.getloadavg()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            result["repo"] = str(repo)
    fl = result.get("floor_list_json_s")
    for key in ("first_s", "stats_ready_s", "warm_s", "after_change_s", "after_change_where_s", "version_s"):
        if key in result and fl:
            result[key.replace("_s", "_over_floor")] = result[key] / fl
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"gitexp ui /api/runs over {args.runs} runs (generated in {result['generate_s']:.1f}s by git fast-import); "
          f"load {result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}")
    print(f"  floor `gitexp list --json` (warm, median): {fl:.3f}s")
    for key, label in (("first_s", "first /api/runs (nothing cached)"),
                       ("stats_ready_s", "... until every run's stats are read"), ("warm_s", "warm /api/runs (unchanged)"),
                       ("after_change_s", "/api/runs after a new run ref"),
                       ("after_change_where_s", "/api/runs?where after a new run ref"),
                       ("version_s", "/api/version")):
        ratio = result.get(key.replace("_s", "_over_floor"))
        print(f"  {label:<40} {result[key]:.3f}s  {ratio:.2f}x floor")
    print(f"  payload {result['payload_bytes'] / 1e6:.1f} MB, {result['rows']} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())

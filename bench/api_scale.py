"""Benchmark: `gitexp.runs()` then `.to_pandas()` over 10,000 runs, beside `mlflow.search_runs` over the same runs.

gitexp: N runs are generated in-process through the storage layer, as bench/list_scale.py makes them
(`Store.write_run` with the trailers `gitexp run` writes; 3 params, 2 metrics). Then, in a fresh
interpreter (cwd the repo):

  warm      gitexp.runs() + .to_pandas() in one process, median of --repeat (pandas already imported);
            also gitexp.runs(where=WHERE, sort="-metrics.acc") + .to_pandas();
  cold      the whole `python -c "import gitexp; gitexp.runs().to_pandas()"` process, wall time
            (interpreter, gitexp, pandas and the read);

MLflow, in its own venv (--mlflow-python, default /tmp/mlvenv/bin/python; made with
`python -m venv /tmp/mlvenv && /tmp/mlvenv/bin/pip install mlflow`): the SAME runs (name, status, start
and end time, params, metrics as gitexp read them) go into an MLflow sqlite tracking store: the first
--mlflow-api runs through MlflowClient.create_run/log_batch/set_terminated (timed: what logging costs),
the rest written straight into MLflow's own tables in one transaction (the same rows the client writes,
checked against the client's rows), since logging 10,000 runs through the client takes ~20 minutes here.
Then the same measurements with `mlflow.search_runs(experiment_ids=[id], max_results=N)` (a DataFrame),
with and without filter_string=WHERE, order_by=["metrics.acc DESC"].

Target: gitexp warm runs()+to_pandas() < 1 s at 10,000 runs on this machine. The load average is
printed with the figures (the machine is shared; figures under load are slower).

    python bench/api_scale.py [--runs 10000] [--repeat 5] [--mlflow-python PATH] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WHERE = "metrics.acc > 0.9"
TARGET_SECONDS = 1.0

GITEXP_WARM = """
import json, statistics, sys, time
import pandas
import gitexp
repeat = int(sys.argv[1])
gitexp.runs().to_pandas()  # warm-up, not counted (as for MLflow)
out = {}
for label, kw in (("all", {}), ("where", {"where": %(where)r, "sort": "-metrics.acc"})):
    runs_s, pandas_s, rows = [], [], 0
    for _ in range(repeat):
        t0 = time.perf_counter(); runs = gitexp.runs(**kw); t1 = time.perf_counter(); df = runs.to_pandas(); t2 = time.perf_counter()
        runs_s.append(t1 - t0); pandas_s.append(t2 - t1); rows = len(df)
    total = [a + b for a, b in zip(runs_s, pandas_s)]
    out[label] = {"runs": statistics.median(runs_s), "to_pandas": statistics.median(pandas_s),
                  "total": statistics.median(total), "total_min": min(total), "rows": rows, "columns": len(df.columns)}
print(json.dumps(out))
""" % {"where": WHERE}

GITEXP_COLD = "import gitexp; df = gitexp.runs().to_pandas(); assert len(df) > 0"

MLFLOW_WARM = """
import json, logging, statistics, sys, time, warnings
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
import mlflow
uri, experiment, n, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
mlflow.set_tracking_uri(uri)
mlflow.search_runs(experiment_ids=[experiment], max_results=n)  # warm-up, not counted (as for gitexp)
out = {}
for label, kw in (("all", {}), ("where", {"filter_string": %(where)r, "order_by": ["metrics.acc DESC"]})):
    xs, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter(); df = mlflow.search_runs(experiment_ids=[experiment], max_results=n, **kw); xs.append(time.perf_counter() - t0)
        rows = len(df)
    out[label] = {"total": statistics.median(xs), "total_min": min(xs), "rows": rows, "columns": len(df.columns)}
print(json.dumps(out))
""" % {"where": WHERE}

MLFLOW_COLD = """
import logging, sys, warnings
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
df = mlflow.search_runs(experiment_ids=[sys.argv[2]], max_results=int(sys.argv[3]))
assert len(df) == int(sys.argv[3]), len(df)
"""

MLFLOW_LOAD = r'''
import json, logging, sqlite3, sys, time, uuid, warnings
warnings.filterwarnings("ignore"); logging.disable(logging.WARNING)
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
db, runs_file, through_api = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = json.load(open(runs_file))
client = MlflowClient(tracking_uri="sqlite:///" + db)
experiment = client.create_experiment("bench")
STATUS = {"completed": "FINISHED", "failed": "FAILED"}
t0 = time.perf_counter()
for r in runs[:through_api]:
    run = client.create_run(experiment, start_time=r["start_ms"], run_name=r["name"])
    rid = run.info.run_id
    client.log_batch(rid, metrics=[Metric(k, v, r["end_ms"], 0) for k, v in r["metrics"].items()],
                     params=[Param(k, str(v)) for k, v in r["params"].items()])
    client.set_terminated(rid, STATUS.get(r["status"], "FAILED"), end_time=r["end_ms"])
api_seconds = time.perf_counter() - t0
con = sqlite3.connect(db)
template = con.execute("select source_type, source_name, entry_point_name, user_id, source_version, lifecycle_stage, artifact_uri "
                       "from runs limit 1").fetchone()
t0 = time.perf_counter()
rows = {"runs": [], "params": [], "metrics": [], "latest_metrics": [], "tags": []}
for r in runs[through_api:]:
    rid = uuid.uuid4().hex
    st, sn, ep, user, sv, stage, art = template
    art = art.rsplit("/", 2)[0] + "/" + rid + "/artifacts"
    rows["runs"].append((rid, r["name"], st, sn, ep, user, STATUS.get(r["status"], "FAILED"), r["start_ms"], r["end_ms"],
                         None, sv, stage, art, int(experiment)))
    rows["params"] += [(k, str(v), rid) for k, v in r["params"].items()]
    rows["metrics"] += [(k, float(v), r["end_ms"], rid, 0, 0) for k, v in r["metrics"].items()]
    rows["latest_metrics"] += [(k, float(v), r["end_ms"], 0, 0, rid) for k, v in r["metrics"].items()]
    rows["tags"].append(("mlflow.runName", r["name"], rid))
with con:
    con.executemany("insert into runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, "
                    "end_time, deleted_time, source_version, lifecycle_stage, artifact_uri, experiment_id) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows["runs"])
    con.executemany("insert into params (key, value, run_uuid) values (?,?,?)", rows["params"])
    con.executemany("insert into metrics (key, value, timestamp, run_uuid, step, is_nan) values (?,?,?,?,?,?)", rows["metrics"])
    con.executemany("insert into latest_metrics (key, value, timestamp, step, is_nan, run_uuid) values (?,?,?,?,?,?)", rows["latest_metrics"])
    con.executemany("insert into tags (key, value, run_uuid) values (?,?,?)", rows["tags"])
bulk_seconds = time.perf_counter() - t0
# The bulk rows must read back as the client's do: same columns, same kinds of values.
import mlflow
mlflow.set_tracking_uri("sqlite:///" + db)
df = mlflow.search_runs(experiment_ids=[experiment], max_results=len(runs))
by_api = df[df["tags.mlflow.runName"].isin([r["name"] for r in runs[:through_api]])]
by_bulk = df[~df.index.isin(by_api.index)]
same = sorted(by_api.columns) == sorted(by_bulk.columns) and by_api.dtypes.equals(by_bulk.dtypes)
print(json.dumps({"experiment": experiment, "api_runs": through_api, "api_seconds": api_seconds, "bulk_seconds": bulk_seconds,
                  "rows": len(df), "bulk_rows_like_api_rows": bool(same)}))
'''


def sh(argv: list[str], cwd: Path | None = None, timeout: float = 3600) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return elapsed, proc.stdout.strip()


def last_json(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


def gitexp_figures(repo: Path, repeat: int) -> dict[str, Any]:
    _, out = sh([sys.executable, "-c", GITEXP_WARM, str(repeat)], cwd=repo)
    figures: dict[str, Any] = last_json(out)
    cold = [sh([sys.executable, "-c", GITEXP_COLD], cwd=repo)[0] for _ in range(repeat)]
    figures["cold_process"] = statistics.median(cold)
    imports = [sh([sys.executable, "-c", "import pandas, gitexp"], cwd=repo)[0] for _ in range(repeat)]
    figures["cold_imports_only"] = statistics.median(imports)
    return figures


def export_runs(repo: Path, path: Path) -> int:
    """The runs as gitexp reads them, for MLflow: name, status, start/end in ms, params, metrics."""
    import gitexp

    rows = []
    for run in gitexp.runs(repo=repo):
        start = run.started.timestamp()
        rows.append({"name": run.name, "status": run.status, "start_ms": int(start * 1000),
                     "end_ms": int((start + (run.duration or 0)) * 1000), "params": run.params, "metrics": run.metrics})
    path.write_text(json.dumps(rows))
    return len(rows)


def mlflow_figures(python: str, work: Path, runs_file: Path, n: int, through_api: int, repeat: int) -> dict[str, Any]:
    db = work / "mlflow.db"
    _, out = sh([python, "-c", MLFLOW_LOAD, str(db), str(runs_file), str(through_api)], cwd=work)
    load = last_json(out)
    uri, experiment = "sqlite:///" + str(db), str(load["experiment"])
    _, out = sh([python, "-c", MLFLOW_WARM, uri, experiment, str(n), str(repeat)], cwd=work)
    figures: dict[str, Any] = last_json(out)
    figures["load"] = load
    cold = [sh([python, "-c", MLFLOW_COLD, uri, experiment, str(n)], cwd=work)[0] for _ in range(repeat)]
    figures["cold_process"] = statistics.median(cold)
    imports = [sh([python, "-c", "import mlflow"], cwd=work)[0] for _ in range(repeat)]
    figures["cold_imports_only"] = statistics.median(imports)
    _, version = sh([python, "-c", "import mlflow, pandas; print(mlflow.__version__, pandas.__version__)"], cwd=work)
    figures["versions"] = version.splitlines()[-1]
    return figures


def s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f} s"


def main() -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from common import ensure_bytecode
    from list_scale import generate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mlflow-python", default="/tmp/mlvenv/bin/python")
    parser.add_argument("--mlflow-api", type=int, default=100, help="runs logged through MlflowClient (the rest in bulk)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    ensure_bytecode()
    work = Path(tempfile.mkdtemp(prefix="gitexp-api-scale-"))
    result: dict[str, Any] = {"runs": args.runs, "load_average_before": os.getloadavg()}
    try:
        repo = work / "repo"
        generated, _ = generate(repo, args.runs)
        result["generate_seconds"] = generated
        result["gitexp"] = gitexp_figures(repo, args.repeat)
        if not Path(args.mlflow_python).is_file():
            result["mlflow"] = {"error": f"{args.mlflow_python} not found (python -m venv /tmp/mlvenv && /tmp/mlvenv/bin/pip install mlflow)"}
        else:
            runs_file = work / "runs.json"
            export_runs(repo, runs_file)
            try:
                result["mlflow"] = mlflow_figures(args.mlflow_python, work, runs_file, args.runs, min(args.mlflow_api, args.runs), args.repeat)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                result["mlflow"] = {"error": str(exc)}
        result["load_average_after"] = os.getloadavg()
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    g, m = result["gitexp"], result.get("mlflow", {})
    print(f"{args.runs} runs; load average {result['load_average_before'][0]:.1f} before, {result['load_average_after'][0]:.1f} after "
          f"(2 cores; generated in {generated:.1f} s)")
    print(f"{'':44} {'gitexp':>12} {'mlflow':>12}")
    rows = [
        ("all runs -> DataFrame, warm (median)", g["all"]["total"], m.get("all", {}).get("total")),
        ("  of which reading the runs", g["all"]["runs"], None),
        ("  of which to_pandas()", g["all"]["to_pandas"], None),
        (f"where {WHERE!r}, sorted -> DataFrame", g["where"]["total"], m.get("where", {}).get("total")),
        ("whole process (start, imports, read)", g["cold_process"], m.get("cold_process")),
        ("  of which imports alone", g["cold_imports_only"], m.get("cold_imports_only")),
    ]
    for label, a, b in rows:
        print(f"{label:44} {s(a):>12} {s(b):>12}")
    print(f"rows x columns: gitexp {g['all']['rows']} x {g['all']['columns']}, where {g['where']['rows']}; "
          + (f"mlflow {m['all']['rows']} x {m['all']['columns']}, where {m['where']['rows']}" if "all" in m else "mlflow n/a"))
    if "load" in m:
        load = m["load"]
        per_run = load["api_seconds"] / max(load["api_runs"], 1)
        print(f"mlflow {m['versions']} (mlflow, pandas), sqlite store: {load['api_runs']} runs logged through MlflowClient at "
              f"{per_run * 1000:.0f} ms/run (10,000 would take {per_run * args.runs / 60:.0f} min), the rest written in bulk in "
              f"{load['bulk_seconds']:.1f} s; bulk rows read back like the client's: {load['bulk_rows_like_api_rows']}")
    elif "error" in m:
        print(f"mlflow not measured: {m['error']}")
    verdict = "PASS" if g["all"]["total"] < TARGET_SECONDS else "FAIL"
    print(f"target: warm runs()+to_pandas() < {TARGET_SECONDS:.0f} s at {args.runs} runs: {verdict} ({s(g['all']['total'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: gitexp at 100,000 runs, each operation against its plain-git floor measured in the same run.

Setup (untimed; kept between invocations with --reuse DIR, and built again once the remote holds 10% more
runs than --runs: each invocation adds --repeat x 1,010):

  work       a repository of a few source files, a `.gitexp.yaml` declaring the data remote `shared`
             (a directory, trusted by this clone), and --runs run refs (default 100,000) written with
             `git fast-import`: each run commit has the trailers `gitexp run` writes, a record
             (.gitexp/run.json, params.json, metrics.json, data.json); every run's data.json points to one
             shared input (1 MiB, in the cache) and every 100th run also to an output of its own (4 KiB).
             Refs are packed. The cache objects are on the data remote already.
  origin.git a mirror of work: every run already pushed (the remote of `gitexp push`);
  floor.git  another mirror (the remote of the plain `git push` floor);
  mate-g     a clone of work holding every run (and its data, pulled once, untimed), which `gitexp pull`s;
  mate-f     the same for the floor, which `git fetch`es;
  restore    2,000 source files (20 dirs x 100) and data/ (24 small files and one of 11 MiB); run A recorded,
             then 2 source files changed and committed, the 11 MiB file rewritten, run B recorded.
             Its floor is a clone of it with pristine copies of both versions of the 11 MiB file.

Measured (spawn to exit, the console script, cwd the repository; median of --repeat rounds, the two
sides alternating which goes first; page cache warm):

  list        `gitexp list` with no gitexp cache in .git/gitexp (run-refs deleted before each sample: "cold") and
              again right after ("warm"); floor: `git for-each-ref refs/experiments/
              --format='%(objectname) %(contents:trailers)'`.  Target: cold < 2 s.
  no-op push  `gitexp push origin` with nothing new; floor: `git push origin 'refs/experiments/*:refs/experiments/*'`
              with nothing new.  Target: < 2x floor + start-up.
  push 10     10 new runs (fast-import, untimed) then `gitexp push origin`; floor: `git push floor.git` of
              those 10 refs.  Target: <= 1.5x floor.
  pull 1000   1,000 new runs written into origin.git (untimed) then `gitexp pull origin` in mate-g; floor:
              `git fetch origin 'refs/experiments/*:refs/experiments/*'` in mate-f.  Target: <= 1.5x floor.
  restore     `gitexp checkout A` then `gitexp checkout B` (3 files, 11 MiB change, each way); floor:
              `git checkout -q --detach C1` + `cp` of the 11 MiB file (and back).  Target: <= 2x floor + start-up.

start-up, in the verdicts, is what the issue calls start-up ("about 90 ms of the 100 ms of `gitexp list`;
pygit2 alone 28 ms plus the ssl/socket modules it pulls in"): the median of `python -c "import gitexp.cli,
gitexp.store"` (interpreter, click, pygit2, gitexp.store), the floor of every command that opens the
repository. Also reported, and printed beside each verdict that adds start-up, the stricter limit with
`gitexp --version` (interpreter, click, gitexp's top module: no pygit2) as start-up.
This script reports; it is not a test: it exits 0 whatever the figures, non-zero only if it crashed.

    python bench/scale.py [--runs N] [--repeat N] [--reuse DIR] [--json]
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
from common import ENV, IDENTITY, ensure_bytecode, gitexp_cmd, timed  # bench/ is the script's own directory

RUNS_REFSPEC = "refs/experiments/*:refs/experiments/*"
BUILD_VERSION = "3"  # bump when the layout built below changes (a --reuse DIR of another version is rebuilt)
DIRS, FILES_PER_DIR = 20, 100
BIG_MB = 11


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=ENV, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} in {cwd} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return proc.stdout.decode().strip()


def run_t(cmd: list[str], cwd: Path) -> float:
    return timed(cmd, cwd)[0]


# -- building ---------------------------------------------------------------------


def store_object(objects: Path, data: bytes) -> str:
    digest = xxhash.xxh3_128_hexdigest(data)
    path = objects / digest[:2] / digest[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, 0o444)
    return digest


def fast_import_runs(repo: Path, base: str, names: list[str], shared: str, outputs: dict[str, str], when: int) -> None:
    """Write one run commit per name on refs/experiments/<name> (parent: base) with `git fast-import`."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gitexp import format as fmt
    from gitexp.model import RunSummary

    user = f"{IDENTITY['GIT_AUTHOR_NAME']} <{IDENTITY['GIT_AUTHOR_EMAIL']}>"
    chunks: list[bytes] = []

    def blob(data: bytes) -> None:
        chunks.append(b"data %d\n" % len(data) + data + b"\n")

    chunks.append(b"blob\nmark :1\n")
    blob(b'{"command": ["python", "train.py"]}\n')
    chunks.append(b"blob\nmark :2\n")
    blob(b"{}\n")
    for i, name in enumerate(names):
        lr = (0.001, 0.003, 0.01, 0.03, 0.1)[i % 5]
        acc = round(0.6 + (i * 7919 % 1000) / 3000, 4)
        started = when + i
        summary = RunSummary(
            name=name, commit="", status="completed", exit_code=0,
            started=time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(started)), duration=12.5,
            user=user, base=base, base_branch="main", parent=None, tags=(),
            params={"lr": lr, "seed": i}, metrics={"acc": acc, "loss": round(1 - acc, 4)}, note="",
        )
        message = fmt.build_message(f"{name}: completed (python train.py --seed {i})", "", fmt.run_trailers(summary)).encode()
        pointers = [{"path": "dataset.bin", "kind": "file", "digest": shared, "size": 1 << 20, "files": 1,
                     "cached": True, "executable": False}]
        data: dict[str, Any] = {"inputs": pointers, "outputs": [], "large_files": []}
        if name in outputs:
            data["outputs"] = [{"path": "out/model.bin", "kind": "file", "digest": outputs[name], "size": 4096,
                                "files": 1, "cached": True, "fresh": True, "executable": False}]
        chunks.append(b"commit refs/experiments/%s\n" % name.encode())
        chunks.append(b"author %s %d +0000\ncommitter %s %d +0000\n" % (user.encode(), started, user.encode(), started + 12))
        chunks.append(b"data %d\n" % len(message) + message + b"\n")
        chunks.append(b"from %s\n" % base.encode())
        chunks.append(b"M 100644 :1 .gitexp/run.json\nM 100644 :2 .gitexp/env.json\n")
        chunks.append(b"M 100644 inline .gitexp/params.json\n")
        blob(json.dumps({"lr": lr, "seed": i}).encode() + b"\n")
        chunks.append(b"M 100644 inline .gitexp/metrics.json\n")
        blob(json.dumps(summary.metrics).encode() + b"\n")
        chunks.append(b"M 100644 inline .gitexp/data.json\n")
        blob(json.dumps(data, sort_keys=True).encode() + b"\n")
    git(repo, "fast-import", "--quiet", "--done", stdin=b"".join(chunks) + b"done\n")


def new_runs(repo: Path, objects: Path | None, prefix: str, count: int, every_output: int = 100) -> list[str]:
    """count runs named prefix-NNNNNN in repo; every every_output-th with an output of its own (in objects)."""
    state = json.loads((repo.parent / "build.json").read_text()) if (repo.parent / "build.json").is_file() else {}
    base, shared = state["base"], state["shared"]
    names = [f"{prefix}-{i:06d}" for i in range(count)]
    outputs = {}
    if objects is not None:
        for i, name in enumerate(names):
            if i % every_output == 0:
                outputs[name] = store_object(objects, name.encode() + os.urandom(4096 - len(name)))
    fast_import_runs(repo, base, names, shared, outputs, int(time.time()) - 86400)
    return names


def _remote_runs(d: Path) -> int:
    """How many run refs the remote (origin.git) holds; 0 when there is none."""
    if not (d / "origin.git").is_dir():
        return 0
    return len(git(d / "origin.git", "for-each-ref", "--format=x", "refs/experiments/").split())


def build(d: Path, runs: int, cmd: list[str]) -> None:
    """Everything the measurements need, under d (see the module docstring)."""
    work = d / "work"
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    (work / "train.py").write_text("print('train')\n")
    (work / ".gitexp.yaml").write_text(f"inputs: [dataset.bin]\nremotes:\n  shared: {d / 'datastore'}\n")
    (work / ".gitignore").write_text("dataset.bin\nout/\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "sources")
    base = git(work, "rev-parse", "HEAD")
    timed([*cmd, "remote", "trust", "shared"], work)
    objects = work / ".git" / "gitexp" / "cache" / "objects"
    shared = store_object(objects, os.urandom(1 << 20))
    (d / "build.json").write_text(json.dumps({"base": base, "shared": shared, "runs": runs, "version": BUILD_VERSION}))
    t0 = time.perf_counter()
    new_runs(work, objects, "run", runs)
    print(f"  fast-import of {runs} runs: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    git(work, "pack-refs", "--all")
    shutil.copytree(objects, d / "datastore" / "objects")
    for name in ("origin.git", "floor.git"):
        git(d, "clone", "-q", "--mirror", str(work), name)
    git(work, "remote", "add", "origin", str(d / "origin.git"))
    for mate in ("mate-g", "mate-f"):
        git(d, "clone", "-q", str(work), mate)
        git(d / mate, "remote", "set-url", "origin", str(d / "origin.git"))
        git(d / mate, "fetch", "-q", "origin", RUNS_REFSPEC)
        git(d / mate, "pack-refs", "--all")
    timed([*cmd, "pull", "origin"], d / "mate-g")  # its data, and whatever gitexp keeps locally (untimed)
    build_restore(d, cmd)
    (d / "built").write_text(BUILD_VERSION)


def build_restore(d: Path, cmd: list[str]) -> None:
    repo = d / "restore"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(DIRS):
        sub = repo / f"pkg{i:02d}"
        sub.mkdir()
        for j in range(FILES_PER_DIR):
            (sub / f"mod{j:03d}.py").write_text(f"def f(x: int) -> int:\n    return x * {j} + {i}\n")
    data = repo / "data"
    data.mkdir()
    for j in range(24):
        (data / f"small{j:02d}.txt").write_text(f"row {j}\n" * 50)
    (data / "big.bin").write_bytes(os.urandom(BIG_MB << 20))
    (repo / ".gitexp.yaml").write_text("data: [data/]\n")
    (repo / ".gitignore").write_text("data/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "C1")
    timed([*cmd, "run", "-n", "A", "--", "true"], repo)
    shutil.copy(data / "big.bin", d / "big-A.bin")
    for path in ("pkg03/mod007.py", "pkg11/mod050.py"):
        (repo / path).write_text("def f(x: int) -> int:\n    return x  # changed\n")
    git(repo, "commit", "-q", "-am", "C2")
    (data / "big.bin").unlink()
    (data / "big.bin").write_bytes(os.urandom(BIG_MB << 20))
    shutil.copy(data / "big.bin", d / "big-B.bin")
    timed([*cmd, "run", "-n", "B", "--", "true"], repo)
    git(d, "clone", "-q", str(repo), "restore-floor")
    shutil.copytree(data, d / "restore-floor" / "data")


# -- measuring ------------------------------------------------------------------


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def drop_gitexp_caches(repo: Path) -> None:
    """Remove what gitexp keeps to list faster: the run refs as last read (store/refcache.py). Not the data
    cache, trust, stats, nor what push needs."""
    state = repo / ".git" / "gitexp"
    for name in ("run-refs",):
        for p in state.glob(f"{name}*"):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()


def measure(d: Path, cmd: list[str], repeat: int, remote_runs: int) -> dict[str, Any]:
    work, origin, floor = d / "work", d / "origin.git", d / "floor.git"
    s: dict[str, list[float]] = {k: [] for k in (
        "startup", "startup_store", "list_cold", "list_warm", "list_floor", "noop", "noop_floor", "push10", "push10_floor",
        "pull1000", "pull1000_floor", "restore", "restore_floor")}
    checks: list[str] = []
    state = json.loads((d / "build.json").read_text())
    tag = f"{int(time.time())}"
    objects = work / ".git" / "gitexp" / "cache" / "objects"
    # Untimed: a first push derives what each run needs (once per commit; a user's earlier pushes did it).
    first_push = run_t([*cmd, "push", "origin"], work)
    checks.append(f"first push here (derives what every run needs, if not yet known): {first_push:.3f}s")
    for r in range(repeat):
        first = r % 2 == 0
        s["startup"].append(run_t([*cmd, "--version"], work))
        s["startup_store"].append(run_t([sys.executable, "-c", "import gitexp.cli, gitexp.store"], work))
        # list
        pair = [("list_floor", ["git", "for-each-ref", "refs/experiments/", "--format=%(objectname) %(contents:trailers)"])]
        for key, argv in ([("gitexp", None)] + pair) if first else (pair + [("gitexp", None)]):
            if key == "gitexp":
                drop_gitexp_caches(work)
                t, out = timed([*cmd, "list", "--format", "csv"], work)
                s["list_cold"].append(t)
                s["list_warm"].append(run_t([*cmd, "list", "--format", "csv"], work))
                if r == 0:
                    checks.append(f"list printed {len(out.splitlines()) - 1} runs")
            else:
                s[key].append(run_t(argv, work))  # type: ignore[arg-type]
        # no-op push
        # both to origin.git: the pull rounds below add 1,000 runs each to it (not to floor.git), and a no-op
        # push costs what the remote advertises
        steps = [("noop", [*cmd, "push", "origin"]), ("noop_floor", ["git", "push", "-q", "origin", RUNS_REFSPEC])]
        for key, argv in steps if first else steps[::-1]:
            s[key].append(run_t(argv, work))
        # push of 10 new runs
        names = new_runs(work, objects, f"p{tag}r{r}", 10, every_output=5)
        steps = [("push10", [*cmd, "push", "origin"]),
                 ("push10_floor", ["git", "push", "-q", str(floor), *(f"refs/experiments/{n}:refs/experiments/{n}" for n in names)])]
        for key, argv in steps if first else steps[::-1]:
            s[key].append(run_t(argv, work))
        there = git(origin, "for-each-ref", "--format=%(refname)", f"refs/experiments/p{tag}r{r}-*").split()
        if len(there) != 10:
            checks.append(f"round {r}: origin.git has {len(there)} of the 10 pushed runs  <-- FAIL")
        # pull of 1,000 new runs
        new_runs(origin, None, f"q{tag}r{r}", 1000)
        steps = [("pull1000", [*cmd, "pull", "origin"], d / "mate-g"),
                 ("pull1000_floor", ["git", "fetch", "-q", "origin", RUNS_REFSPEC], d / "mate-f")]
        for key, argv, cwd in steps if first else steps[::-1]:
            s[key].append(run_t(argv, cwd))
        for mate in ("mate-g", "mate-f"):
            got = git(d / mate, "for-each-ref", "--format=%(refname)", f"refs/experiments/q{tag}r{r}-*").split()
            if len(got) != 1000:
                checks.append(f"round {r}: {mate} has {len(got)} of the 1000 new runs  <-- FAIL")
        # small restore, both ways
        t_g = run_t([*cmd, "checkout", "A"], d / "restore") + run_t([*cmd, "checkout", "B"], d / "restore")
        fl = d / "restore-floor"

        def floor_way(rev: str, big: str) -> float:
            t0 = time.perf_counter()
            git(fl, "checkout", "-q", *(["--detach"] if rev != "main" else []), rev)
            subprocess.run(["cp", str(d / big), str(fl / "data" / "big.bin")], check=True)
            return time.perf_counter() - t0

        c1 = git(fl, "rev-parse", "main~1")
        t_f = floor_way(c1, "big-A.bin") + floor_way("main", "big-B.bin")
        s["restore"].append(t_g / 2)
        s["restore_floor"].append(t_f / 2)
    status = git(d / "restore", "--no-optional-locks", "status", "--porcelain")
    if status:
        checks.append(f"restore repo not clean after the rounds: {status[:200]}  <-- FAIL")
    checks.append(f"runs: {state['runs']} built, plus {repeat * 10} pushed and {repeat * 1000} pulled in earlier rounds")
    return {"samples": s, "checks": checks, "remote_runs": remote_runs}


def verdicts(s: dict[str, list[float]]) -> list[dict[str, Any]]:
    m = {k: med(v) for k, v in s.items()}
    su, bare = m["startup_store"], m["startup"]
    return [
        {"check": "cold `gitexp list` < 2 s", "value": m["list_cold"], "floor": m["list_floor"],
         "limit": 2.0, "pass": m["list_cold"] < 2.0},
        {"check": "no-op push < 2x git push + start-up", "value": m["noop"], "floor": m["noop_floor"],
         "limit": 2 * m["noop_floor"] + su, "pass": m["noop"] < 2 * m["noop_floor"] + su,
         "strict_limit": 2 * m["noop_floor"] + bare},
        {"check": "push of 10 runs <= 1.5x git push", "value": m["push10"], "floor": m["push10_floor"],
         "limit": 1.5 * m["push10_floor"], "pass": m["push10"] <= 1.5 * m["push10_floor"]},
        {"check": "pull of 1000 runs <= 1.5x git fetch", "value": m["pull1000"], "floor": m["pull1000_floor"],
         "limit": 1.5 * m["pull1000_floor"], "pass": m["pull1000"] <= 1.5 * m["pull1000_floor"]},
        {"check": "small restore <= 2x (checkout + cp) + start-up", "value": m["restore"], "floor": m["restore_floor"],
         "limit": 2 * m["restore_floor"] + su, "pass": m["restore"] <= 2 * m["restore_floor"] + su,
         "strict_limit": 2 * m["restore_floor"] + bare},
    ]


def main() -> int:
    ensure_bytecode()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000, help="runs in the repository (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, median reported (default 3)")
    parser.add_argument("--reuse", type=Path, help="build in DIR once and reuse it on later invocations")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    cmd = gitexp_cmd()
    d = args.reuse.resolve() if args.reuse else Path(tempfile.mkdtemp(prefix="gitexp-scale-bench-"))
    try:
        marker = d / "built"
        state = json.loads((d / "build.json").read_text()) if (d / "build.json").is_file() else {}
        # Each invocation adds repeat x 1,010 runs to the remote and the mates: a DIR reused too often measures
        # another scale (168,680 runs on the remote was seen). Rebuilt once they hold 10% more than --runs.
        remote_runs = _remote_runs(d) if marker.is_file() else 0
        if remote_runs > args.runs * 1.1 or not (marker.is_file() and marker.read_text() == BUILD_VERSION and state.get("runs") == args.runs):
            if d.exists():
                shutil.rmtree(d)
            t0 = time.perf_counter()
            build(d, args.runs, cmd)
            remote_runs = args.runs
            print(f"built {args.runs} runs in {d} in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        result = measure(d, cmd, args.repeat, remote_runs)
    finally:
        if not args.reuse:
            shutil.rmtree(d, ignore_errors=True)
    s = result["samples"]
    v = verdicts(s)
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"runs": args.runs, "remote_runs": result["remote_runs"], "repeat": args.repeat, "loadavg": load, "samples": s,
                          "checks": result["checks"], "verdicts": v}, indent=2))
        return 0
    print(f"gitexp at {args.runs} runs (the remote held {result['remote_runs']} at the start); median of {args.repeat} rounds; "
          f"gitexp = {' '.join(cmd)}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"start-up (what every command that opens the repository imports: interpreter, click, pygit2, gitexp.store): "
          f"{med(s['startup_store']):.3f}s; `gitexp --version`: {med(s['startup']):.3f}s")
    print(f"list: cold {med(s['list_cold']):.3f}s, warm {med(s['list_warm']):.3f}s; git for-each-ref {med(s['list_floor']):.3f}s")
    for line in result["checks"]:
        print(f"check: {line}")
    for x in v:
        ratio = x["value"] / x["floor"] if x["floor"] else float("nan")
        strict = (f"; with `gitexp --version` as start-up the limit would be {x['strict_limit']:.3f}s: "
                  f"{'within' if x['value'] <= x['strict_limit'] else 'over'}") if "strict_limit" in x else ""
        print(f"{x['check']}: {x['value']:.3f}s vs floor {x['floor']:.3f}s ({ratio:.2f}x; limit {x['limit']:.3f}s): "
              f"{'PASS' if x['pass'] else 'FAIL'}{strict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

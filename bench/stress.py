"""Stress benchmark: nothing is lost under concurrency and SIGKILL (issue 12).

A throw-away repository (under $TMPDIR) with a train.py that writes a --size-mb
output `out/model.bin` of fresh random bytes and a `metrics.json` holding the
run's numeric id, `.gitexp.yaml` declaring `outputs: [out/]`, a bare git remote
`origin` (`gitexp init`) and a directory data remote.

Phase 1, concurrency. Before: 8 `pre-*` runs (targets of tags and notes) and 8
`doomed-*` runs (targets of rm). Then --runs concurrent `gitexp run`s (half
named `stress-K`, half automatic names), each in its own `git worktree` of the
repository (one workspace holds one live run per metrics file: that is gitexp's
policy), while beside them, until they have all ended:

  2 loops of `gitexp gc --now`       (must never take an object a run needs)
  2 loops of `gitexp tag pre-K tN`   (every tag that exited 0 must be kept)
  2 loops of `gitexp note pre-K ...` (each loop owns 4 runs: its last note must be kept)
  1 loop of `gitexp list --json`     (must always succeed)
  1 loop of `gitexp rm -y doomed-K`  (each must be gone afterwards, nothing else)

Phase 2, faults. --kills rounds; each SIGKILLs, after a random delay, the
process group of one of: a `gitexp run` (in a worktree), a `gitexp checkout`
(main workspace), a `gitexp push origin` (runs + data), a `gitexp pull origin`
(in a clone), then retries the same command until it succeeds. A killed run
whose command had started (train.py writes a mark first) must still be a run
(crashed); its retry is a new run.

Then one ordinary `gitexp run` in each workspace (which finalizes crashed runs
there), and the checks. Printed: runs expected / recorded, tags and notes
expected / kept, list failures, objects referenced / present (in the cache, on
the data remote, in the clone after pull), `git fsck --strict` and `gitexp
fsck`, and debris: files left in .git/gitexp/tmp, the cache's tmp, the data
remote's tmp, and gitexp-* entries in $TMPDIR. Target: everything kept, fsck
clean, no debris; the last line is the verdict, and the exit code is 1 when a
target is missed (so CI or a person can rely on it).

    python bench/stress.py [--runs 32] [--size-mb 20] [--kills 12] [--seed 1] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import ENV, ensure_bytecode, gitexp_cmd  # bench/ is the script's own directory

TRAIN = """\
import json, os, sys, time
marks = os.environ["STRESS_MARKS"]
ident = os.environ["STRESS_ID"]
with open(os.path.join(marks, ident + ".started"), "w") as f:
    f.write(str(os.getpid()))
size = int(float(os.environ.get("STRESS_MB", "1")) * 1024 * 1024)
os.makedirs("out", exist_ok=True)
with open("out/model.bin", "wb") as f:
    left = size
    while left > 0:
        chunk = min(left, 1 << 20)
        f.write(os.urandom(chunk))
        left -= chunk
print("loss=0.5 acc=0.9")
with open("metrics.json", "w") as f:
    json.dump({"id": int(ident), "acc": 0.9}, f)
"""


class Bench:
    def __init__(self, top: Path, args: argparse.Namespace) -> None:
        self.top = top
        self.args = args
        self.repo = top / "repo"
        self.marks = top / "marks"
        self.tmpdir = top / "tmp"
        self.remote_data = top / "remote-data"
        self.origin = top / "origin.git"
        self.clone = top / "clone"
        self.gitexp = gitexp_cmd()
        self.env = {**ENV, "TMPDIR": str(self.tmpdir), "STRESS_MARKS": str(self.marks), "NO_COLOR": "1"}
        self.next_id = 0
        self.lock = threading.Lock()
        self.expected_ids: dict[int, str | None] = {}  # runs whose command started (id -> name): each must be a run
        self.failures: list[str] = []

    # -- helpers ---------------------------------------------------------------------------------------

    def new_id(self) -> int:
        with self.lock:
            self.next_id += 1
            return self.next_id

    def cmd(self, args: list[str], cwd: Path, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(args, cwd=cwd, env=env or self.env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
        return proc

    def gx(self, *args: str, cwd: Path | None = None, check: bool = True, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
        return self.cmd([*self.gitexp, *args], cwd or self.repo, env=env, check=check)

    def run_env(self, ident: int, mb: float) -> dict[str, str]:
        return {**self.env, "STRESS_ID": str(ident), "STRESS_MB": str(mb)}

    def fail(self, what: str) -> None:
        with self.lock:
            self.failures.append(what)

    # -- set-up ----------------------------------------------------------------------------------------

    def setup(self) -> None:
        for d in (self.repo, self.marks, self.tmpdir, self.remote_data):
            d.mkdir()
        self.cmd(["git", "init", "-q", "-b", "main"], self.repo)
        (self.repo / "train.py").write_text(TRAIN)
        (self.repo / "params.yaml").write_text("lr: 0.1\n")
        (self.repo / ".gitexp.yaml").write_text("outputs: [out/]\n")
        (self.repo / ".gitignore").write_text("out/\nmetrics.json\n")
        self.cmd(["git", "init", "-q", "--bare", str(self.origin)], self.top)
        self.cmd(["git", "remote", "add", "origin", str(self.origin)], self.repo)
        self.gx("remote", "add", "origin", str(self.remote_data))
        self.cmd(["git", "add", "-A"], self.repo)
        self.cmd(["git", "commit", "-q", "-m", "stress"], self.repo)
        self.cmd(["git", "push", "-q", "origin", "main"], self.repo)
        self.gx("init")
        for prefix in ("pre", "doomed"):
            for k in range(8):
                ident = self.new_id()
                self.gx("run", "-n", f"{prefix}-{k}", "--", sys.executable, "train.py", env=self.run_env(ident, 0.1))
                if prefix == "pre":
                    self.expected_ids[ident] = f"{prefix}-{k}"

    def worktree(self, name: str) -> Path:
        path = self.top / "wt" / name
        if not path.exists():
            self.cmd(["git", "worktree", "add", "-q", "--detach", str(path)], self.repo)
        return path

    # -- phase 1 ---------------------------------------------------------------------------------------

    def phase1(self) -> dict[str, Any]:
        n = self.args.runs
        trees = [self.worktree(f"w{k}") for k in range(n)]
        done = threading.Event()
        kept_tags: dict[str, set[str]] = {f"pre-{k}": set() for k in range(8)}
        last_note: dict[str, str] = {}
        counts = {"gc": 0, "tag": 0, "note": 0, "list": 0, "rm": 0, "list_failed": 0, "tag_failed": 0,
                  "note_failed": 0, "gc_failed": 0}
        removed: list[str] = []

        def loop_gc() -> None:
            while not done.is_set():
                p = self.gx("gc", "--now", check=False)
                counts["gc"] += 1
                if p.returncode != 0:
                    counts["gc_failed"] += 1
                    self.fail(f"gc failed: {p.stderr.strip()[-300:]}")

        def loop_tag(tid: int) -> None:
            i = 0
            while not done.is_set():
                run, tag = f"pre-{i % 8}", f"t{tid}-{i}"
                p = self.gx("tag", run, tag, check=False)
                counts["tag"] += 1
                if p.returncode == 0:
                    with self.lock:
                        kept_tags[run].add(tag)
                else:
                    counts["tag_failed"] += 1
                    self.fail(f"tag failed: {p.stderr.strip()[-300:]}")
                i += 1

        def loop_note(tid: int) -> None:
            i = 0
            while not done.is_set():
                run, text = f"pre-{tid * 4 + i % 4}", f"note {tid}-{i}"
                p = self.gx("note", run, text, check=False)
                counts["note"] += 1
                if p.returncode == 0:
                    last_note[run] = text
                else:
                    counts["note_failed"] += 1
                    self.fail(f"note failed: {p.stderr.strip()[-300:]}")
                i += 1

        def loop_list() -> None:
            while not done.is_set():
                p = self.gx("list", "--json", check=False)
                counts["list"] += 1
                if p.returncode != 0:
                    counts["list_failed"] += 1
                    self.fail(f"list failed: {p.stderr.strip()[-300:]}")

        def loop_rm() -> None:
            for k in range(8):
                if done.is_set():
                    break
                p = self.gx("rm", "-y", f"doomed-{k}", check=False)
                counts["rm"] += 1
                if p.returncode == 0:
                    removed.append(f"doomed-{k}")
                else:
                    self.fail(f"rm failed: {p.stderr.strip()[-300:]}")
                time.sleep(0.2)

        def one_run(k: int) -> None:
            ident = self.new_id()
            name = ["-n", f"stress-{k}"] if k < n // 2 else []
            p = self.gx("run", *name, "--", sys.executable, "train.py", cwd=trees[k],
                        env=self.run_env(ident, self.args.size_mb), check=False)
            if (self.marks / f"{ident}.started").exists():
                with self.lock:
                    self.expected_ids[ident] = name[1] if name else None
            if p.returncode != 0:
                self.fail(f"run {k} exited {p.returncode}: {p.stderr.strip()[-300:]}")

        side = [threading.Thread(target=loop_gc) for _ in range(2)]
        side += [threading.Thread(target=loop_tag, args=(t,)) for t in range(2)]
        side += [threading.Thread(target=loop_note, args=(t,)) for t in range(2)]
        side += [threading.Thread(target=loop_list), threading.Thread(target=loop_rm)]
        runners = [threading.Thread(target=one_run, args=(k,)) for k in range(n)]
        t0 = time.perf_counter()
        for t in side + runners:
            t.start()
        for t in runners:
            t.join()
        done.set()
        for t in side:
            t.join()
        elapsed = time.perf_counter() - t0

        # What the side loops wrote must all be there.
        notes = {r["name"]: r for r in json.loads(self.gx("list", "--json").stdout)}
        tags_expected = sum(len(v) for v in kept_tags.values())
        tags_kept = sum(len(v & set(notes.get(r, {}).get("tags", []))) for r, v in kept_tags.items())
        notes_kept = sum(1 for r, text in last_note.items() if notes.get(r, {}).get("note") == text)
        back = [r for r in removed if r in notes]
        if back:
            self.fail(f"removed runs still there: {back}")
        for run in ("pre-0", "pre-7"):
            if run not in notes:
                self.fail(f"{run} was lost")
        return {"seconds": round(elapsed, 1), "loops": counts, "tags_expected": tags_expected, "tags_kept": tags_kept,
                "notes_expected": len(last_note), "notes_kept": notes_kept, "removed": len(removed)}

    # -- phase 2 ---------------------------------------------------------------------------------------

    def killed(self, args: list[str], cwd: Path, env: dict[str, str], delay: float) -> int | None:
        """Start args in its own process group, SIGKILL the group after delay; the exit code if it ended first."""
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            return proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return None

    def kill_children_of(self, ident: int) -> None:
        """A killed run's command may have been in a session of its own: end it too (its pid is in its mark)."""
        mark = self.marks / f"{ident}.started"
        if mark.exists():
            try:
                os.kill(int(mark.read_text() or "0"), signal.SIGKILL)
            except (ProcessLookupError, ValueError, PermissionError):
                pass

    def retry(self, what: str, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        for _ in range(3):
            p = self.cmd(args, cwd, env=env, check=False)
            if p.returncode == 0:
                return
        self.fail(f"{what} retry failed 3 times: {p.stderr.strip()[-400:]}")

    def phase2(self) -> dict[str, Any]:
        rng = random.Random(self.args.seed)
        kinds = ["run", "checkout", "push", "pull"]
        self.cmd(["git", "clone", "-q", str(self.origin), str(self.clone)], self.top)
        self.gx("remote", "add", "--local", "origin", str(self.remote_data), cwd=self.clone)
        self.gx("init", cwd=self.clone)
        stats: dict[str, int] = {k: 0 for k in kinds}
        ended_first = 0
        wt = self.worktree("killer")
        for i in range(self.args.kills):
            kind = kinds[i % len(kinds)]
            stats[kind] += 1
            delay = rng.uniform(0.05, 1.5)
            if kind == "run":
                ident = self.new_id()
                env = self.run_env(ident, self.args.size_mb)
                args = [*self.gitexp, "run", "-n", f"killed-{i}", "--", sys.executable, "train.py"]
                code = self.killed(args, wt, env, delay)
                self.kill_children_of(ident)
                if (self.marks / f"{ident}.started").exists():
                    self.expected_ids[ident] = f"killed-{i}"  # crashed runs have no metrics: found by name
                ended_first += code is not None
                retry_id = self.new_id()
                self.retry("run", [*self.gitexp, "run", "-n", f"retried-{i}", "--", sys.executable, "train.py"], wt,
                           env=self.run_env(retry_id, self.args.size_mb))
                self.expected_ids[retry_id] = f"retried-{i}"
            elif kind == "checkout":
                target = f"stress-{rng.randrange(self.args.runs // 2)}"
                code = self.killed([*self.gitexp, "checkout", target], self.repo, self.env, delay)
                ended_first += code is not None
                self.retry("checkout", [*self.gitexp, "checkout", target], self.repo)
            elif kind == "push":
                code = self.killed([*self.gitexp, "push", "origin"], self.repo, self.env, delay)
                ended_first += code is not None
                self.retry("push", [*self.gitexp, "push", "origin"], self.repo)
            else:
                code = self.killed([*self.gitexp, "pull", "origin"], self.clone, self.env, delay)
                ended_first += code is not None
                self.retry("pull", [*self.gitexp, "pull", "origin"], self.clone)
        return {"kills": stats, "ended_before_kill": ended_first}

    # -- checks ----------------------------------------------------------------------------------------

    def referenced(self, repo: Path) -> set[str]:
        """Every cache digest any run of repo points at (files, and the files of directory manifests)."""
        refs = self.cmd(["git", "for-each-ref", "--format=%(objectname)", "refs/experiments/"], repo).stdout.split()
        digests: set[str] = set()
        for commit in refs:
            p = self.cmd(["git", "show", f"{commit}:.gitexp/data.json"], repo, check=False)
            if p.returncode != 0:
                continue
            data = json.loads(p.stdout)
            for section in ("inputs", "outputs", "large_files"):
                for ptr in data.get(section, []):
                    if ptr.get("kind") == "file" and ptr.get("digest"):
                        digests.add(ptr["digest"])
                    elif ptr.get("kind") == "dir":
                        man = self.cmd(["git", "show", f"{commit}:.gitexp/manifests/{ptr['digest']}.json"], repo)
                        for e in json.loads(man.stdout).get("files", []):
                            if e.get("digest"):
                                digests.add(e["digest"])
        return digests

    @staticmethod
    def present(root: Path, digests: set[str]) -> int:
        return sum(1 for d in digests if (root / d[:2] / d[2:]).is_file())

    @staticmethod
    def debris(*dirs: Path) -> list[str]:
        found: list[str] = []
        for d in dirs:
            if d.is_dir():
                found += [str(p) for p in d.rglob("*") if p.is_file() or (p.is_dir() and not any(p.iterdir()))]
        return found

    def checks(self) -> dict[str, Any]:
        # One ordinary command of each kind afterwards, as a user would go on working.
        for wt in sorted((self.top / "wt").iterdir()):
            ident = self.new_id()
            self.gx("run", "--", sys.executable, "train.py", cwd=wt, env=self.run_env(ident, 0.01))
            self.expected_ids[ident] = None
        self.gx("gc", "--now")
        self.gx("push", "origin")
        self.gx("pull", "origin", cwd=self.clone)
        listed = json.loads(self.gx("list", "--json").stdout)
        ids = {int(r["metrics"]["id"]) for r in listed if isinstance(r.get("metrics", {}).get("id"), (int, float))}
        names = {r["name"] for r in listed}
        missing_ids = sorted(i for i, name in self.expected_ids.items() if i not in ids and name not in names)
        if missing_ids:
            self.fail(f"runs whose command started but which are not recorded: ids {missing_ids[:20]}")
        statuses: dict[str, int] = {}
        for r in listed:
            statuses[r.get("status", "?")] = statuses.get(r.get("status", "?"), 0) + 1
        common = Path(self.cmd(["git", "rev-parse", "--git-common-dir"], self.repo).stdout.strip())
        common = common if common.is_absolute() else self.repo / common
        cache_objects = common / "gitexp" / "cache" / "objects"
        refd = self.referenced(self.repo)
        present = self.present(cache_objects, refd)
        remote_present = self.present(self.remote_data / "objects", refd) if (self.remote_data / "objects").is_dir() \
            else self.present(self.remote_data, refd)
        clone_refd = self.referenced(self.clone)
        clone_present = self.present(self.clone / ".git" / "gitexp" / "cache" / "objects", clone_refd)
        git_fsck = self.cmd(["git", "fsck", "--strict", "--no-dangling"], self.repo, check=False)
        gx_fsck = self.gx("fsck", check=False)
        clone_fsck = self.gx("fsck", cwd=self.clone, check=False)
        debris = self.debris(common / "gitexp" / "tmp", common / "gitexp" / "cache" / "tmp", self.remote_data / "tmp",
                             self.clone / ".git" / "gitexp" / "tmp", self.clone / ".git" / "gitexp" / "cache" / "tmp")
        debris += [str(p) for p in self.tmpdir.iterdir() if p.name.startswith("gitexp")]
        live = [str(p) for p in (common / "gitexp" / "live").glob("*")] if (common / "gitexp" / "live").is_dir() else []
        for what, ok in (("objects missing from the cache", present == len(refd)),
                         ("objects missing from the data remote", remote_present == len(refd)),
                         ("objects missing from the clone after pull", clone_present == len(clone_refd)),
                         ("git fsck --strict", git_fsck.returncode == 0 and "error" not in git_fsck.stderr),
                         ("gitexp fsck", gx_fsck.returncode == 0), ("gitexp fsck in the clone", clone_fsck.returncode == 0),
                         ("debris left", not debris), ("live files left", not live)):
            if not ok:
                self.fail(what)
        return {
            "runs_expected": len(self.expected_ids), "runs_recorded": len(self.expected_ids) - len(missing_ids),
            "runs_listed": len(listed), "statuses": statuses,
            "objects_referenced": len(refd), "objects_present": present, "objects_on_data_remote": remote_present,
            "clone_objects_referenced": len(clone_refd), "clone_objects_present": clone_present,
            "git_fsck": "clean" if git_fsck.returncode == 0 else git_fsck.stderr.strip()[-300:],
            "gitexp_fsck": "clean" if gx_fsck.returncode == 0 else (gx_fsck.stdout + gx_fsck.stderr).strip()[-300:],
            "debris": debris[:20], "debris_count": len(debris), "live_files_left": live[:10],
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=32)
    ap.add_argument("--size-mb", type=float, default=20)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    ensure_bytecode()
    top = Path(tempfile.mkdtemp(prefix="stress-"))
    bench = Bench(top, args)
    report: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        bench.setup()
        report["phase1"] = bench.phase1()
        report["phase2"] = bench.phase2()
        report["checks"] = bench.checks()
        report["seconds"] = round(time.perf_counter() - t0, 1)
    finally:
        if not args.keep:
            shutil.rmtree(top, ignore_errors=True)
        else:
            print(f"kept: {top}", file=sys.stderr)
    report["failures"] = bench.failures
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        p1, c = report["phase1"], report["checks"]
        print(f"phase 1: {args.runs} concurrent runs of {args.size_mb:g} MB beside gc/tag/note/list/rm loops "
              f"({p1['seconds']} s; loops: {p1['loops']})")
        print(f"phase 2: SIGKILLs {report['phase2']['kills']} (ended before the kill: "
              f"{report['phase2']['ended_before_kill']}), each retried")
        print(f"runs expected / recorded:        {c['runs_expected']} / {c['runs_recorded']}   statuses {c['statuses']}")
        print(f"tags expected / kept:            {p1['tags_expected']} / {p1['tags_kept']}")
        print(f"notes expected / kept:           {p1['notes_expected']} / {p1['notes_kept']}")
        print(f"objects referenced / present:    {c['objects_referenced']} / {c['objects_present']} (cache), "
              f"{c['objects_on_data_remote']} (data remote); clone {c['clone_objects_referenced']} / "
              f"{c['clone_objects_present']}")
        print(f"git fsck --strict: {c['git_fsck']}; gitexp fsck: {c['gitexp_fsck']}")
        print(f"debris left: {c['debris_count']} {c['debris'][:5]}")
        print(f"total {report['seconds']} s")
        for f in bench.failures[:30]:
            print(f"FAIL {f}")
        print("verdict: " + ("everything kept, fsck clean, no debris" if not bench.failures
                             else f"{len(bench.failures)} failures"))
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())

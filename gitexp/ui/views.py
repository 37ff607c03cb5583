"""The JSON payloads of `gitexp ui` and `gitexp report`, built from gitexp's one read path.

Every payload comes from the functions the CLI uses: query.runs/select/resolve (list, --where, --sort),
filter (its errors, with their column), grouping (list --group-by, diff -g's Welch test), compare
(compare, diff --code), lineage (tree), series (show's curves), logs (logs), get (get), query.details
(show --json). Nothing here writes to the repository except the tag and note edits (query.set_tags/set_note,
as `gitexp tag` and `gitexp note`) and the derived data of diskcache under .git/gitexp/ui-cache.

Caching. A run commit never changes, so what is read from one is kept keyed by its commit id: its summary
(the trailers), its command (run.json) and its per-series statistics; parsed step series in a small LRU.
The runs list is rebuilt only when `version()` changes (a digest of the run refs, the notes ref and the live
files of runs in progress). The first /api/runs reads every run commit once (as `gitexp list` does) plus each
run's run.json and step files for the command and statistics; later ones reuse all of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shlex
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pygit2

from gitexp import format as fmt
from gitexp.config import Config, higher_is_better
from gitexp.errors import GitexpError, RunNotFound
from gitexp.model import RunSummary
from gitexp.series import Point
from gitexp.store import Store
from gitexp.ui import diskcache

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".svg": "image/svg+xml"}
X_AXES = ("step", "time", "relative")
MAX_POINTS = 100_000  # the most points a series request may ask for
PAGE_POINTS = 2000  # the points per curve the page asks for (app.js): a long run's answer is made ready in advance
LOG_CHUNK = 1 << 20  # the most bytes of output one logs request returns
SERIES_CACHE = 32  # runs whose parsed step series are kept
ROWS_CACHE = 100_000  # encoded rows kept (emptied when it grows past this)
SYNC_EXTRAS = 200  # runs whose command and statistics /api/runs reads before answering (more: in the background)


class BadRequest(GitexpError):
    """A request the UI cannot answer as asked (HTTP 400); column: where in a --where expression (1-based)."""

    def __init__(self, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


class NotFound(GitexpError):
    """What a request names is not there (HTTP 404)."""


class _CachingStore(Store):
    """A Store whose run summaries are read once per (name, commit): a commit never changes."""

    def __init__(self, repo: pygit2.Repository, cache: dict[tuple[str, str], RunSummary]) -> None:
        super().__init__(repo, bare_ok=True)
        self._summaries = cache

    def summary(self, name: str, commit: str) -> RunSummary:
        key = (name, commit)
        found = self._summaries.get(key)
        if found is None:
            found = super().summary(name, commit)
            self._summaries[key] = found
        return found


@dataclass(frozen=True)
class _Extra:
    command: str
    stats: dict[str, dict[str, float | None]]


def to_json_bytes(payload: Any) -> bytes:
    """Strict JSON (NaN and infinities as the strings the CLI's JSON uses), ASCII, with `<`, `>` and `&`
    \\u-escaped: whatever a run holds, the text can sit inside an HTML <script> element (the report) inert."""
    try:
        text = json.dumps(payload, ensure_ascii=True, allow_nan=False, default=str, separators=(",", ":"))
    except ValueError:
        text = json.dumps(fmt.strict(payload), ensure_ascii=True, allow_nan=False, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def _finite(x: Any) -> float | None:
    return x if isinstance(x, float) and math.isfinite(x) else (float(x) if isinstance(x, int) and not isinstance(x, bool) else None)


# Seconds after a request during which the background reading of stats waits (the page's next request,
# the server's own reading and sending of it, also need the GIL).
GIVE_WAY = 0.25

class Views:
    """The payloads over one repository; safe to use from several threads (one Store per thread)."""

    def __init__(self, store: Store) -> None:
        self.path = store.repo.path
        self.workdir = store.repo.workdir
        self.root = store.root
        self._config: tuple[tuple[int, int] | None, Config] | None = None
        self._common = store.git_common_dir()
        self._local = threading.local()
        self._summaries: dict[tuple[str, str], RunSummary] = {}
        self._extras: dict[str, _Extra] = {}
        self._kept = diskcache.load_stats(self._common)  # what earlier servers read (commit -> command, stats)
        self._unsaved: list[tuple[str, str, diskcache.Stats]] = []
        self._series: OrderedDict[str, dict[str, list[Point]]] = OrderedDict()
        self._lock = threading.Lock()
        self._serving = 0  # requests being answered: the background reading of stats gives way to them
        self._served_at = 0.0  # and for a moment after one (the page asks for the next thing then)
        self._building: dict[tuple[str, str, str], threading.Lock] = {}  # per answer: a second asker waits for it
        self._every: tuple[str, list[RunSummary], list[str]] | None = None
        self._payloads: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._rows: dict[tuple[Any, ...], bytes] = {}
        self._generation = 0  # counts the background fills that ended (a part of the version)
        self._filling: threading.Thread | None = None

    # -- the repository ------------------------------------------------------------

    def store(self) -> Store:
        found: Store | None = getattr(self._local, "store", None)
        if found is None:
            repo = pygit2.Repository(self.path)
            if self.workdir and repo.workdir != self.workdir:
                repo.workdir = self.workdir
            found = _CachingStore(repo, self._summaries)
            self._local.store = found
        return found

    def config(self) -> Config:
        """.gitexp.yaml of the work tree (directions, metrics files), read again when it changes."""
        from gitexp import config

        try:
            st = (self.root / fmt.CONFIG_FILE).stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        cached = self._config
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            found = config.load(self.root)
        except GitexpError:
            found = Config()
        if cached is not None:  # the directions may have changed: each run's "best" with them
            self._extras.clear()
            self._rows.clear()
        self._config = (stamp, found)
        return found

    def version(self) -> str:
        """Changes whenever a run ref, the notes ref or a live run's heartbeat file changes (or the background
        reading of run statistics finished). Read from the file system, not through git: no ref is opened.

        Loose run refs: each entry's name and inode (git writes a ref by renaming a new file over it: a new
        inode) and the directory's mtime and inode; packed-refs and the notes ref: inode, mtime, size. A
        repository whose refs are not files (reftable) is read through libgit2 instead.
        """
        from gitexp.workspace import live_dir

        h = hashlib.blake2b(digest_size=12)
        h.update(b"%d\n" % self._generation)
        h.update(_stamp(self.root / fmt.CONFIG_FILE))  # directions: which value of a metric is best
        common = self._common
        if (common / "reftable").is_dir():
            for ref in self.store().repo.references.iterator():
                name = ref.name
                if name.startswith(fmt.REF_PREFIX) or name == fmt.NOTES_REF:
                    h.update(f"{name}\0{ref.target}\n".encode("utf-8", "surrogateescape"))
        else:
            for path in (common / "packed-refs", common / fmt.NOTES_REF, common / "refs" / "experiments"):
                h.update(_stamp(path))
            try:
                with os.scandir(common / "refs" / "experiments") as entries:
                    for entry in entries:
                        h.update(f"{entry.name}\0{entry.inode()}\n".encode("utf-8", "surrogateescape"))
            except OSError:
                pass
        try:
            with os.scandir(live_dir(common)) as entries:
                for entry in entries:
                    try:
                        st = entry.stat()
                    except OSError:
                        continue
                    h.update(f"{entry.name}\0{st.st_mtime_ns}\0{st.st_size}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            pass
        return h.hexdigest()

    def every(self, version: str | None = None) -> tuple[str, list[RunSummary], list[str]]:
        """(version, every readable run newest first, problems), read again only when the version changed."""
        from gitexp import query

        version = version or self.version()
        cached = self._every
        if cached is not None and cached[0] == version:
            return cached
        problems: list[str] = []
        found = query.runs(self.store(), problems)
        result = (version, found, problems)
        self._every = result
        return result

    def resolve(self, spec: str) -> RunSummary:
        from gitexp import query

        return query.resolve(self.store(), spec)

    # -- the runs table ------------------------------------------------------------

    def select(self, where: str | None, sort: str | None) -> tuple[str, list[RunSummary], list[RunSummary]]:
        """(version, the runs matching where sorted by sort, every run): `gitexp list --where --sort`."""
        from gitexp import query
        from gitexp.filter import FilterError

        version, every, _ = self.every()
        try:
            found = query.select(self.store(), where or None, sort or None, None, None, every)
        except FilterError as exc:
            raise BadRequest(exc.message, exc.column) from None
        except GitexpError as exc:
            raise BadRequest(exc.message) from None
        return version, found, every

    def runs_json(self, where: str | None = None, sort: str | None = None) -> bytes:
        """/api/runs, as JSON bytes (kept per version, filter and sort: a poll that changes nothing is free)."""
        version = self.version()
        key = (version, where or "", sort or "")
        with self._lock:
            hit = self._payloads.get(key)
        if hit is not None:
            return hit
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:  # the same answer is built once (the warm-up's and the page's first request)
            with self._lock:
                hit = self._payloads.get(key)
            try:
                return hit if hit is not None else self._build_runs_json(key, where, sort)
            finally:
                with self._lock:
                    self._building.pop(key, None)

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Around a request: while one is answered, the background reading of stats pauses, so a filter or a
        page asked during a first load is not slowed by it (both need the GIL)."""
        with self._lock:
            self._serving += 1
        try:
            yield
        finally:
            with self._lock:
                self._serving -= 1
                self._served_at = time.monotonic()

    def warm(self) -> None:
        """Build the table's first answer (/api/runs, no filter) in a background thread, begun as the server
        starts: the browser's first request then waits for a build already under way, or finds it done."""
        def build() -> None:
            with contextlib.suppress(Exception):  # the request will meet the same error and report it
                self.runs_json()

        threading.Thread(target=build, name="gitexp-ui-warm", daemon=True).start()

    def _build_runs_json(self, key: tuple[str, str, str], where: str | None, sort: str | None) -> bytes:
        payload = self.runs_payload(where, sort)
        rows = payload.pop("runs")
        head = to_json_bytes({**payload, "runs": []})
        data = head[: -len(b"]}")] + b",".join(self._row_json(row) for row in rows) + b"]}"
        with self._lock:
            self._payloads[key] = data
            while len(self._payloads) > 8:
                self._payloads.popitem(last=False)
        return data

    def _row_json(self, row: dict[str, Any]) -> bytes:
        """A row's JSON, kept for a finished run by everything in it that can change without a new commit (its
        name, parent's name, tags, note, whether its stats are read): rebuilding 10,000 rows encodes only new ones."""
        if row["status"] == "running":
            return to_json_bytes(row)
        key = (row["commit"], row["name"], row["status"], row["parent"], tuple(row["tags"]), row["note"],
               bool(row["stats"]), row["command"])
        found = self._rows.get(key)
        if found is None:
            found = to_json_bytes(row)
            if len(self._rows) > ROWS_CACHE:
                self._rows.clear()
            self._rows[key] = found
        return found

    def runs_payload(self, where: str | None = None, sort: str | None = None, wait: bool = False) -> dict[str, Any]:
        """/api/runs. Each run's command and series statistics are read once per commit: up to SYNC_EXTRAS
        unread runs (or all, with wait) are read now; more (a first load of thousands of runs) are read by a
        background thread, and meanwhile those rows have no stats (`pending` counts them) and the version
        changes once they are all read."""
        config = self.config()  # first: a changed config empties the caches that depend on it
        version, found, every = self.select(where, sort)
        names = {r.commit: r.name for r in every}
        missing = [r for r in found if r.status != "running" and r.commit not in self._extras]
        for r in missing:
            if r.commit in self._kept:  # read by an earlier server: a lookup
                self._extra(r)
        missing = [r for r in missing if r.commit not in self._extras]
        if wait or len(missing) <= SYNC_EXTRAS:
            for r in missing:
                self._extra(r)
            missing = []
            self.save_stats()
        else:
            self._fill_in_background(missing)
        rows = [self.row(r, names, pending=True) for r in found]
        params = sorted({k for r in found for k in r.params})
        metrics = sorted({k for r in found for k in r.metrics})
        series = sorted({k for row in rows for k in row["stats"]})
        directions = {m: ("max" if higher_is_better(config, m) else "min") for m in sorted(set(metrics) | set(series))}
        return {"version": version, "params": params, "metrics": metrics, "series": series,
                "directions": directions, "pending": len(missing), "runs": rows}

    def _fill_in_background(self, runs: list[RunSummary]) -> None:
        with self._lock:
            if self._filling is not None and self._filling.is_alive():
                return

            def fill() -> None:
                try:
                    for r in runs:
                        while self._serving or time.monotonic() - self._served_at < GIVE_WAY:  # requests first
                            time.sleep(0.005)
                        if r.commit not in self._extras:
                            self._extra(r)
                finally:
                    self.save_stats()
                    with self._lock:
                        self._generation += 1

            self._filling = threading.Thread(target=fill, name="gitexp-ui-fill", daemon=True)
            self._filling.start()

    def row(self, run: RunSummary, names: dict[str, str], pending: bool = False) -> dict[str, Any]:
        """A run as the table shows it; pending: without its command and stats when they are not read yet."""
        extra = self._extras.get(run.commit) if pending and run.status != "running" else None
        extra = extra or (_Extra("", {}) if pending and run.status != "running" else self._extra(run))
        return {
            "name": run.name,
            "commit": run.commit,
            "status": run.status,
            "started": run.started,
            "duration": run.duration,
            "parent": names.get(run.parent) if run.parent else None,
            "sweep": run.sweep.get("id"),
            "config": run.config,
            "tags": list(run.tags),
            "note": run.note or None,
            "command": extra.command,
            "params": run.params,
            "metrics": run.metrics,
            "stats": extra.stats,
        }

    def _extra(self, run: RunSummary) -> _Extra:
        """The command and per-series statistics of a run: read once per commit (unless still running), and kept
        on disk (diskcache) for the next server."""
        finished = run.status != "running"
        if finished:
            hit = self._extras.get(run.commit)
            if hit is not None:
                return hit
        config = self.config()
        kept = self._kept.get(run.commit) if finished else None
        if kept is not None:
            command, triples = kept
        else:
            triples = {}
            try:
                curves = self.all_series(run, keep=False)
                readable = True
            except GitexpError:
                curves, readable = {}, False
            for name, points in curves.items():
                values = [p.value for p in points if math.isfinite(p.value)]
                if values:
                    triples[name] = (_finite(points[-1].value), min(values), max(values))
            command = self._command(run)
            if finished and _long(curves):  # the curves page's first answer ready before it is asked
                self._keep_answer(run, curves, "step", PAGE_POINTS)
            if finished and readable:
                self._unsaved.append((run.commit, command, triples))
                if len(self._unsaved) >= 500:
                    self.save_stats()
        stats = {name: {"last": last, "min": low, "max": high, "best": high if higher_is_better(config, name) else low}
                 for name, (last, low, high) in triples.items()}
        extra = _Extra(command, stats)
        if finished:
            self._extras[run.commit] = extra
        return extra

    def save_stats(self) -> None:
        """Append the statistics read since the last call to the disk cache."""
        with self._lock:
            unsaved, self._unsaved = self._unsaved, []
        diskcache.append_stats(self._common, unsaved)

    def _command(self, run: RunSummary) -> str:
        from gitexp.safeload import json_object

        try:
            raw = self.store().read_record(run.commit, fmt.RUN_FILE)
            meta = json_object(raw, f"{fmt.RECORD_DIR}/{fmt.RUN_FILE} of run {run.name!r}") if raw else {}
        except GitexpError:
            return ""
        command = meta.get("command")
        return shlex.join(str(c) for c in command) if isinstance(command, list) else ""

    def csv(self, where: str | None, sort: str | None) -> str:
        """The table as CSV, as `gitexp list --format csv --columns ...` writes it (every param and metric)."""
        from gitexp import render

        _, found, _ = self.select(where, sort)
        columns = ["name", "created", "status", "duration", "tags"]
        for section in ("params", "metrics"):
            columns += [f"{section}.{k}" for k in sorted({k for r in found for k in getattr(r, section)})]
        return render.runs_output(found, columns, "csv") + "\n"

    # -- one run -------------------------------------------------------------------

    def detail(self, spec: str) -> dict[str, Any]:
        """/api/runs/<name>: everything `gitexp show --json` gives, plus the files and the parent's name."""
        from gitexp import query

        run = self.resolve(spec)
        _, every, _ = self.every()
        names = {r.commit: r.name for r in every}
        details = query.details(self.store(), run)
        out = self.row(run, names)
        problems: list[str] = []
        out.update({
            "exit_code": run.exit_code,
            "user": run.user,
            "base": run.base,
            "branch": run.base_branch,
            "parent_commit": run.parent,
            "resources": run.resources,
            "incomplete": list(run.incomplete),
            "meta": details.get("meta") or {},
            "env": details.get("env") or {},
            "params_nested": details.get("params_nested") or {},
            "data": self._pointers(details.get("data")),
            "files": self._files(run, problems),
            "problems": problems,
        })
        return out

    @staticmethod
    def _pointers(data: Any) -> list[dict[str, Any]]:
        out = []
        if isinstance(data, dict):
            for section, pointers in data.items():
                if isinstance(pointers, list):
                    out += [{**p, "section": section} for p in pointers if isinstance(p, dict)]
        return out

    def _files(self, run: RunSummary, problems: list[str]) -> list[dict[str, Any]]:
        """Every file of the run (code, inputs, outputs and artifacts, large files), with its size."""
        from gitexp.data.inventory import SECTION_ROLES, manifest, run_pointers
        from gitexp.restore import target

        if run.status in ("running", "queued"):
            return []
        store = self.store()
        try:
            entries = target(store, run).entries
            pointers = run_pointers(store, run.commit)
        except GitexpError as exc:
            problems.append(exc.message)
            return []
        kinds: dict[str, tuple[str, int | None]] = {}
        for section, found in pointers.items():
            role = SECTION_ROLES[section].replace("large file", "large")
            for p in found:
                kinds[p.path] = (role, p.size if p.kind == "file" else None)
                if p.kind == "dir":
                    for e in manifest(store, run.commit, p).entries:
                        size = e.get("size")
                        kinds[f"{p.path}/{e['path']}"] = (role, size if isinstance(size, int) else None)
        out = []
        for path, entry in sorted(entries.items()):
            role, size = kinds.get(path, ("code", None))
            if entry.kind == "blob":
                size = store.blob_size(entry.source)
            if entry.kind == "link":
                continue
            out.append({"path": path, "size": size, "kind": role,
                        "image": PurePosixPath(path).suffix.lower() in IMAGE_TYPES})
        return out

    # -- step series ---------------------------------------------------------------

    def all_series(self, run: RunSummary, keep: bool = True) -> dict[str, list[Point]]:
        """The run's step series (script's, then hardware samples): its record's, or while it runs its scratch
        files'. A finished run's are kept (by commit) in a small LRU (with keep)."""
        from gitexp import api

        if run.status == "running":
            live = self._live_series(run)
            if live is not None:
                return live
        with self._lock:
            hit = self._series.get(run.commit)
            if hit is not None:
                self._series.move_to_end(run.commit)
                return hit
        found = diskcache.load(self._common, run.commit) if run.status != "running" else None
        if found is None:
            found = {name: list(s.points) for name, s in api.Run(run, self.store()).all_series().items()}
            if run.status != "running":
                diskcache.save(self._common, run.commit, found)
        if keep and run.status != "running":
            with self._lock:
                self._series[run.commit] = found
                while len(self._series) > SERIES_CACHE:
                    self._series.popitem(last=False)
        return found

    def _live_series(self, run: RunSummary) -> dict[str, list[Point]] | None:
        from gitexp import live, series
        from gitexp.recorder import _combined_steps, _steps_bytes

        state = live.read(self._common, run.name)
        if state is None or state.commit != run.commit:
            return None
        scratch = Path(state.scratch)
        return series.merge(series.parse(_combined_steps(scratch)), series.parse(_steps_bytes(scratch / fmt.SYSTEM_FILE)))

    def series(self, spec: str, names: list[str] | None, x: str = "step", points: int = 2000,
               xmin: float | None = None, xmax: float | None = None) -> dict[str, Any]:
        """/api/runs/<name>/series: each asked series (all when names is None) as x and y lists, at most
        `points` of them per series (the min and max of every bucket kept; exact when the window holds fewer)."""
        if x not in X_AXES:
            raise BadRequest(f"x must be one of {', '.join(X_AXES)}, not {x!r}")
        if not 2 <= points <= MAX_POINTS:
            raise BadRequest(f"points must be between 2 and {MAX_POINTS}, not {points}")
        run = self.resolve(spec)
        whole = xmin is None and xmax is None and run.status != "running"
        kept = diskcache.load_answer(self._common, run.commit, x, points) if whole else None
        if kept is not None:  # a long run's whole-range curves, drawn before (by this server or an earlier one)
            wanted = sorted(kept) if names is None else [n for n in names if n in kept]
            return {"run": run.name, "x": x, "series": {name: kept[name] for name in wanted}}
        curves = self.all_series(run)
        if whole and _long(curves):
            out = self._keep_answer(run, curves, x, points)
            out = {name: out[name] for name in (sorted(out) if names is None else names) if name in out}
        else:
            out = _curves_answer(curves, sorted(curves) if names is None else names, x, points, xmin, xmax)
        return {"run": run.name, "x": x, "series": out}

    def _keep_answer(self, run: RunSummary, curves: dict[str, list[Point]], x: str, points: int) -> dict[str, Any]:
        """The whole-range answer of every curve of a long finished run, kept on disk for the next asker."""
        out = _curves_answer(curves, sorted(curves), x, points, None, None)
        diskcache.save_answer(self._common, run.commit, x, points, out)
        return out

    # -- logs, diff, files ---------------------------------------------------------

    def logs(self, spec: str, offset: int = 0) -> dict[str, Any]:
        """/api/runs/<name>/logs: the output from byte `offset` on (of stdout and stderr in arrival order), as
        `gitexp logs -t` plays it; a running run's from its scratch directory."""
        from gitexp import live, logs

        if offset < 0:
            raise BadRequest(f"offset must be 0 or more, not {offset}")
        run = self.resolve(spec)
        source: list[bytes] | None = None
        running = False
        if run.status in ("running", "crashed"):
            state = live.read(self._common, run.name)
            if state is not None and state.commit == run.commit:
                running = run.status == "running"
                try:
                    source = [(Path(state.scratch) / f).read_bytes()
                              for f in (fmt.STDOUT_FILE, fmt.STDERR_FILE, fmt.LOG_TIMES_FILE)]
                except OSError:
                    source = None
                    run = self.resolve(run.name)  # it ended meanwhile: its record has everything
                    running = False
        if source is None:
            store = self.store()
            source = [store.read_record(run.commit, f) or b"" for f in (fmt.STDOUT_FILE, fmt.STDERR_FILE, fmt.LOG_TIMES_FILE)]
        done = 0
        text: list[bytes] = []
        lines: list[dict[str, Any]] = []
        pending: dict[str, tuple[float | None, bytes]] = {}  # per stream: a line begun, not yet ended
        taken = 0
        for when, stream, data in logs.pieces(*source):
            end = done + len(data)
            if end <= offset:
                done = end
                continue
            part = data[max(0, offset - done):]
            if taken + len(part) > LOG_CHUNK and taken:
                break
            done = end
            taken += len(part)
            text.append(part)
            begun, head = pending.pop(stream, (when, b""))
            *complete, rest = (head + part).split(b"\n")
            for i, line in enumerate(complete):
                lines.append(_line(begun if i == 0 else when, stream, line))
            if rest:
                pending[stream] = (begun if not complete else when, rest)
        for stream, (begun, rest) in pending.items():
            lines.append(_line(begun, stream, rest))
        return {"run": run.name, "text": b"".join(text).decode("utf-8", errors="replace"), "offset": max(done, offset),
                "running": running, "lines": lines}

    def diff(self, spec: str, against: str) -> dict[str, Any]:
        """/api/runs/<name>/diff: the code diff (as `gitexp diff --code`) against the run's base commit or its parent run."""
        from gitexp import compare, query

        run = self.resolve(spec)
        store = self.store()
        if against == "base":
            if not run.base:
                raise NotFound(f"run {run.name!r} has no base commit (its workspace had no commit)")
            if not store.has_object(run.base):
                raise NotFound(f"the base commit {run.base[:12]} of run {run.name!r} is not in this repository (git fetch it)")
            other = replace(run, name=run.base[:12], commit=run.base)
        elif against == "parent":
            if not run.parent:
                raise NotFound(f"run {run.name!r} has no parent run")
            name = query.name_of(store, run.parent)
            if name is None:
                raise NotFound(f"the parent run of {run.name!r} was deleted")
            other = query.resolve(store, name)
        else:
            raise BadRequest(f"against must be base or parent, not {against!r}")
        return {"run": run.name, "against": against, "other": other.name,
                "diff": compare.code_patch(store, self.config(), other, run)}

    def file(self, spec: str, path: str) -> tuple[bytes | Path, str]:
        """(the run's file at path: a code file's bytes or a data object's verified cache path, as `gitexp get`
        reads them; its name). Only a path of the run itself: anything else is NotFound."""
        from gitexp.get import source

        run = self.resolve(spec)
        try:
            data = source(self.store(), run, path)
        except GitexpError as exc:
            raise NotFound(exc.message) from None
        return data, PurePosixPath(path).name

    # -- several runs --------------------------------------------------------------

    def compare(self, specs: list[str]) -> dict[str, Any]:
        """/api/compare: `gitexp compare` (best marked) with each metric's delta against the first run, and the
        code diff of the first two."""
        from gitexp import compare
        from gitexp.compare import number

        if not specs:
            raise BadRequest("give the runs to compare: ?runs=a,b")
        found = [self.resolve(s) for s in specs]
        config = self.config()
        rows = compare.compare_table(found, False)
        best = compare.best_columns(config, rows)
        params, metrics = [], []
        for key, values in rows:
            section, _, name = key.partition(".")
            if section == "params":
                differs = len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1
                params.append({"key": name, "values": values, "differs": differs})
            else:
                first = number(values[0])
                deltas = [None if first is None or (n := number(v)) is None else n - first for v in values]
                metrics.append({"key": name, "values": values, "best": best.get(key), "deltas": deltas,
                                "direction": "max" if higher_is_better(config, name) else "min"})
        patch = compare.code_patch(self.store(), config, found[0], found[1]) if len(found) > 1 else ""
        return {"runs": [r.name for r in found], "params": params, "metrics": metrics, "diff": patch}

    def tree(self, where: str | None = None, only: list[str] | None = None) -> dict[str, Any]:
        """/api/tree: `gitexp tree --where` as nodes with their (nearest shown) parent (only: of these runs)."""
        from gitexp import lineage, query

        _, shown, every = self.select(where, None)
        shown = _only(shown, only)
        groups = lineage.build(every, shown)
        metric = query.primary_metric(self.config(), every)
        nodes: list[dict[str, Any]] = []
        for group in groups:
            todo: list[tuple[lineage.Node, str | None]] = [(n, None) for n in reversed(group.roots)]
            while todo:
                node, parent = todo.pop()
                r = node.run
                value = r.metrics.get(metric) if metric else None
                nodes.append({"name": r.name, "parent": parent, "base": group.base, "branch": group.branch,
                              "status": r.status, "metric": _finite(value), "parent_deleted": node.detached})
                todo += [(c, r.name) for c in reversed(node.children)]
        return {"nodes": nodes, "metric": metric}

    def groups(self, where: str | None = None, by: str = "config", metric: str | None = None,
               only: list[str] | None = None) -> dict[str, Any]:
        """/api/groups: `gitexp list --group-by BY` over the runs matching where (only: of these runs), and
        Welch's t-test (as `gitexp diff -g`) of each group against the best one on metric."""
        from gitexp import query
        from gitexp.grouping import group_runs, tests

        _, found, _ = self.select(where, None)
        found = _only(found, only)
        try:
            keys = query.parse_columns(by or "config")
        except GitexpError as exc:
            raise BadRequest(exc.message) from None
        config = self.config()
        metric = metric or query.primary_metric(config, found)
        groups = group_runs(found, keys)
        higher = higher_is_better(config, metric) if metric else True
        out = []
        means: list[float | None] = []
        for g in groups:
            s = g.stats.get(metric) if metric else None
            means.append(s.mean if s and math.isfinite(s.mean) else None)
            out.append({"key": _group_key(g.key), "params": g.key, "n": len(g.runs),
                        "mean": s.mean if s else None, "sem": s.sem if s else None,
                        "min": s.min if s else None, "max": s.max if s else None,
                        "runs": [r.name for r in g.runs], "left_out": [r.name for r in g.left_out]})
        welch = []
        scored = [(m, i) for i, m in enumerate(means) if m is not None]
        if metric and scored:
            best = (max if higher else min)(scored)[1]
            for i, g in enumerate(groups):
                if i == best:
                    continue
                result = next((t for t in tests(config, groups[best], g) if t.metric == metric), None)
                if result is None or result.test is None:
                    continue
                w = result.test
                welch.append({"a": out[best]["key"], "b": out[i]["key"], "t": w.t, "p": w.p, "df": w.df,
                              "diff": w.diff, "better": result.better})
        return {"by": keys, "metric": metric, "direction": "max" if higher else "min", "groups": out, "welch": welch}

    # -- edits ---------------------------------------------------------------------

    def set_tags(self, spec: str, add: list[str], remove: list[str]) -> dict[str, Any]:
        from gitexp import query

        run = query.set_tags(self.store(), self.resolve(spec), tuple(add), tuple(remove))
        return {"name": run.name, "tags": list(run.tags), "note": run.note or None}

    def set_note(self, spec: str, note: str) -> dict[str, Any]:
        from gitexp import query

        run = query.set_note(self.store(), self.resolve(spec), note)
        return {"name": run.name, "tags": list(run.tags), "note": run.note or None}


def _stamp(path: Path) -> bytes:
    try:
        st = path.stat()
    except OSError:
        return b"-\n"
    return b"%d %d %d\n" % (st.st_ino, st.st_mtime_ns, st.st_size)


def _only(runs: list[RunSummary], names: list[str] | None) -> list[RunSummary]:
    if names is None:
        return runs
    keep = set(names)
    return [r for r in runs if r.name in keep]


def _line(when: float | None, stream: str, data: bytes) -> dict[str, Any]:
    return {"t": when, "stream": "out" if stream == "stdout" else "err",
            "text": data.decode("utf-8", errors="replace").removesuffix("\r")}


def _group_key(key: dict[str, Any]) -> str:
    if list(key) == ["config"]:
        return str(key["config"])
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in key.items())


# -- series geometry -----------------------------------------------------------------


def coordinates(points: list[Point], x: str) -> tuple[list[float], list[float]]:
    """x and y of a curve: x by step (series.xy), by seconds since its first point (relative), or unix time."""
    from gitexp import series

    if x == "step":
        return series.xy(points, "step")
    if x == "relative":
        return series.xy(points, "time")
    return [p.time for p in points], [p.value for p in points]


def downsample(xs: list[float], ys: list[float], points: int, xmin: float | None = None,
               xmax: float | None = None) -> tuple[list[float | None], list[float], bool]:
    """The points with xmin <= x <= xmax; when more than `points`, cut into points // 2 buckets of consecutive
    points and keep, of each, the point with the smallest and the one with the largest value (in their order),
    so no peak or dip is lost. Returns (xs, ys, exact): exact when nothing was dropped."""
    if xmin is not None or xmax is not None:
        lo = -math.inf if xmin is None else xmin
        hi = math.inf if xmax is None else xmax
        kept = [i for i, v in enumerate(xs) if lo <= v <= hi]
        xs, ys = [xs[i] for i in kept], [ys[i] for i in kept]
    n = len(xs)
    clean: Callable[[Iterable[float]], list[float | None]] = lambda vals: [v if math.isfinite(v) else None for v in vals]
    if n <= points:
        return clean(xs), ys, True
    buckets = max(1, points // 2)
    out_x: list[float] = []
    out_y: list[float] = []
    all_finite = all(map(math.isfinite, ys))
    for b in range(buckets):
        start, end = b * n // buckets, (b + 1) * n // buckets
        if start >= end:
            continue
        if all_finite:  # the common case, in C: min, max and index over the bucket's slice (the first of equals)
            seg = ys[start:end]
            low, high = start + seg.index(min(seg)), start + seg.index(max(seg))
            for i in sorted({low, high}):
                out_x.append(xs[i])
                out_y.append(ys[i])
            continue
        finite = [i for i in range(start, end) if math.isfinite(ys[i])]
        if not finite:
            out_x.append(xs[start])
            out_y.append(ys[start])
            continue
        low = min(finite, key=ys.__getitem__)
        high = max(finite, key=ys.__getitem__)
        for i in sorted({low, high}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return clean(out_x), out_y, False


def _long(curves: dict[str, list[Point]]) -> bool:
    """Whether a run's curves are long enough to keep what is read of them on disk."""
    return sum(len(p) for p in curves.values()) >= diskcache.MIN_POINTS


def _curves_answer(curves: dict[str, list[Point]], names: list[str], x: str, points: int,
                   xmin: float | None, xmax: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        if name in curves:
            raw_x, raw_y = coordinates(curves[name], x)
            xs, ys, exact = downsample(raw_x, raw_y, points, xmin, xmax)
            out[name] = {"x": xs, "y": [v if math.isfinite(v) else None for v in ys], "exact": exact}
    return out


def run_not_found(exc: RunNotFound) -> NotFound:
    return NotFound(exc.message)

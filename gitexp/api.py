"""The read API: runs as Python objects, with the CLI's powers (`gitexp.runs`, `gitexp.run`, `gitexp.groups`).

    import gitexp
    runs = gitexp.runs(where="metrics.acc > 0.9", sort="-metrics.acc", limit=20)
    df = runs.to_pandas()
    best = runs[0]; best.series("loss").to_pandas(); best.read_bytes("model.pkl")

A thin layer over what the read commands use (query.select/resolve, filter, groups, series, get,
restore.materialize): `gitexp list`, `show` and `list --group-by` are built on these functions, so the
API and the CLI give the same answers. Nothing here writes to the repository. pandas is optional
(`pip install 'gitexp[pandas]'`) and imported only by the to_pandas() methods. docs/api.md is the guide.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from gitexp.errors import GitexpError

if TYPE_CHECKING:
    import os

    from gitexp.grouping import Group as CoreGroup
    from gitexp.model import RunSummary
    from gitexp.series import Point
    from gitexp.stats import Summary
    from gitexp.store import Store



class PandasMissing(GitexpError):
    def __init__(self) -> None:
        super().__init__("to_pandas() needs pandas: pip install 'gitexp[pandas]'")


class UnknownSeries(GitexpError):
    def __init__(self, run: str, name: str, available: list[str]) -> None:
        shown = ", ".join(available[:20]) + (", ..." if len(available) > 20 else "")
        hint = f"recorded: {shown}" if available else "it recorded no per-step values"
        super().__init__(f"run {run!r} has no step series {name!r} ({hint})")
        self.name = name
        self.available = available


def _pandas() -> Any:
    import importlib

    try:
        return importlib.import_module("pandas")
    except ImportError as exc:
        raise PandasMissing() from exc


def _store(repo: str | os.PathLike[str] | None) -> Store:
    """The repository at repo (a work tree, any directory inside one, or a bare repository); None: the current one."""
    import os

    from gitexp.errors import NotARepository
    from gitexp.store import Store

    if repo is None:
        return Store.discover(bare_ok=True)
    path = os.fspath(repo)
    if not os.path.isdir(path):
        raise NotARepository(str(path))
    return Store.discover(path, bare_ok=True)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise GitexpError(f"limit must be a positive integer, not {limit!r}")


def _keys(text: str | Sequence[str] | None) -> str | None:
    """'a,-b' or ['a', '-b'] -> 'a,-b' (the CLI's spelling)."""
    if text is None or isinstance(text, str):
        return text or None
    return ",".join(text) or None


# -- step series ---------------------------------------------------------------------


class Series:
    """One step series of a run, in the order it was logged: `points` are (step, time, value) tuples.

    step is None for a point logged without one; time is unix seconds (NaN when unknown); value is a float.
    """

    __slots__ = ("name", "points", "run")

    def __init__(self, run: str, name: str, points: Sequence[Point]) -> None:
        self.run = run
        self.name = name
        self.points: tuple[Point, ...] = tuple(points)

    @property
    def steps(self) -> list[int | None]:
        return [p.step for p in self.points]

    @property
    def values(self) -> list[float]:
        return [p.value for p in self.points]

    @property
    def times(self) -> list[float]:
        return [p.time for p in self.points]

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[Point]:
        return iter(self.points)

    def __repr__(self) -> str:
        return f"<Series {self.name!r} of run {self.run!r}: {len(self.points)} points>"

    def to_pandas(self) -> Any:
        """A DataFrame with columns step (nullable integer), time (UTC timestamps) and value."""
        pd = _pandas()
        return pd.DataFrame({
            "step": pd.array(self.steps, dtype="Int64"),
            "time": pd.to_datetime([None if math.isnan(t) else t for t in self.times], unit="s", utc=True),
            "value": pd.array(self.values, dtype="float64"),
        })


# -- runs ----------------------------------------------------------------------------


class Run:
    """One run, as `gitexp show` sees it. Attributes are read from the run's commit; methods read its files.

    Plain values: name, commit, status, exit_code, started (an aware datetime), duration (seconds),
    user, parent (the parent run's commit id), base (the code's base commit), base_branch,
    params (flattened: {"model.depth": 4}), metrics, tags, note, sweep, resources, incomplete.
    `summary` is the underlying record (gitexp.model.RunSummary), as `gitexp list --json` prints it.
    """

    __slots__ = ("_store", "summary")

    def __init__(self, summary: RunSummary, store: Store) -> None:
        self.summary = summary
        self._store = store

    # the recorded values
    @property
    def name(self) -> str:
        return self.summary.name

    @property
    def commit(self) -> str:
        return self.summary.commit

    @property
    def status(self) -> str:
        return self.summary.status

    @property
    def exit_code(self) -> int | None:
        return self.summary.exit_code

    @property
    def started(self) -> datetime:
        return self.summary.started_at

    @property
    def duration(self) -> float | None:
        return self.summary.duration

    @property
    def user(self) -> str:
        return self.summary.user

    @property
    def parent(self) -> str | None:
        return self.summary.parent

    @property
    def base(self) -> str | None:
        return self.summary.base

    @property
    def base_branch(self) -> str | None:
        return self.summary.base_branch

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.summary.params)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.summary.metrics)

    @property
    def tags(self) -> tuple[str, ...]:
        return self.summary.tags

    @property
    def note(self) -> str:
        return self.summary.note

    @property
    def config(self) -> str:
        """The params without the seed, as one text (what --group-by config groups by)."""
        return self.summary.config

    @property
    def sweep(self) -> dict[str, Any]:
        return dict(self.summary.sweep)

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.summary.resources)

    @property
    def incomplete(self) -> tuple[str, ...]:
        return self.summary.incomplete

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and (other.name, other.commit) == (self.name, self.commit)

    def __hash__(self) -> int:
        return hash((self.name, self.commit))

    def __repr__(self) -> str:
        return f"<Run {self.name} {self.status} {self.commit[:10]}>"

    def to_dict(self) -> dict[str, Any]:
        """The run as `gitexp list --json` prints it."""
        return self.summary.to_dict()

    # reading the record
    def details(self) -> dict[str, Any]:
        """Everything recorded, as `gitexp show --json` prints it (adds run.json, nested params, env and data)."""
        from gitexp import query

        return query.details(self._store, self.summary)

    def stdout(self) -> bytes:
        """What the command printed on stdout (as recorded)."""
        from gitexp import format as fmt
        from gitexp import query

        return query.read_log(self._store, self.summary, fmt.STDOUT_FILE)

    def stderr(self) -> bytes:
        from gitexp import format as fmt
        from gitexp import query

        return query.read_log(self._store, self.summary, fmt.STDERR_FILE)

    def parent_run(self) -> Run | None:
        """The parent run, or None (no parent, or it was deleted)."""
        from gitexp import query

        if not self.parent:
            return None
        name = query.name_of(self._store, self.parent)
        return Run(query.resolve(self._store, name), self._store) if name else None

    def all_series(self) -> dict[str, Series]:
        """Every step series: what the script logged (steps.jsonl), then the hardware samples (system.jsonl)."""
        from gitexp import format as fmt
        from gitexp import query, series

        files = (query.read_log(self._store, self.summary, f) for f in (fmt.STEPS_FILE, fmt.SYSTEM_FILE))
        merged = series.merge(*(series.parse(data) for data in files))
        return {name: Series(self.name, name, points) for name, points in sorted(merged.items())}

    def series(self, name: str) -> Series:
        """The step series name (UnknownSeries, naming those recorded, when there is none)."""
        found = self.all_series()
        if name not in found:
            raise UnknownSeries(self.name, name, list(found))
        return found[name]

    def read_bytes(self, path: str) -> bytes:
        """The bytes of any file of the run (code, params, input, output, large file, artifact), as
        `gitexp get` writes it: code from the run's tree, data from the cache, or fetched from a data
        remote when the cache lacks it; always checked against its digest."""
        from gitexp.get import read

        return read(self._store, self.summary, path)

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(path).decode(encoding)

    def checkout(self, *, into: str | Path) -> Path:
        """Write every file of the run into the new or empty directory into (as `gitexp checkout --into`);
        the workspace, HEAD and index are left alone. Returns the directory."""
        from gitexp import restore

        target = Path(into).expanduser().resolve()
        restore.materialize(self._store, self.summary, target)
        return target


class Runs(Sequence[Run]):
    """Runs in the order asked for (default: newest first): a sequence of Run, and a table.

    `problems` lists what the CLI would warn about: runs that could not be read, and when where matched
    nothing, what in it may be a mistake.
    """

    def __init__(self, runs: Sequence[Run], problems: Sequence[str] = ()) -> None:
        self._runs = list(runs)
        self.problems: tuple[str, ...] = tuple(problems)

    @overload
    def __getitem__(self, index: int) -> Run: ...

    @overload
    def __getitem__(self, index: slice) -> Runs: ...

    def __getitem__(self, index: int | slice) -> Run | Runs:
        if isinstance(index, slice):
            return Runs(self._runs[index], self.problems)
        return self._runs[index]

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(self._runs)

    def __repr__(self) -> str:
        shown = ", ".join(r.name for r in self._runs[:5]) + (", ..." if len(self._runs) > 5 else "")
        return f"<Runs ({len(self._runs)}): {shown}>"

    @property
    def names(self) -> list[str]:
        return [r.name for r in self._runs]

    def summaries(self) -> list[RunSummary]:
        return [r.summary for r in self._runs]

    def to_dicts(self) -> list[dict[str, Any]]:
        """Each run as `gitexp list --json` prints it."""
        return [r.summary.to_dict() for r in self._runs]

    def to_pandas(self) -> Any:
        """A DataFrame, one row per run: name, status, started (UTC), duration (s), commit, parent, user,
        tags (a tuple), note, then a column per param (params.NAME) and per metric (metrics.NAME),
        empty (NaN/None) where a run lacks it."""
        pd = _pandas()
        summaries = [r.summary for r in self._runs]
        columns: dict[str, Any] = {
            "name": [s.name for s in summaries],
            "status": [s.status for s in summaries],
            "started": pd.to_datetime([s.started for s in summaries], utc=True, format="ISO8601", errors="coerce"),
            "duration": pd.array([s.duration for s in summaries], dtype="float64"),
            "commit": [s.commit for s in summaries],
            "parent": [s.parent for s in summaries],
            "user": [s.user for s in summaries],
            "tags": [s.tags for s in summaries],
            "note": [s.note for s in summaries],
        }
        for section in ("params", "metrics"):
            maps: list[dict[str, Any]] = [getattr(s, section) for s in summaries]
            for key in sorted({k for m in maps for k in m}):
                columns[f"{section}.{key}"] = [m.get(key) for m in maps]
        return pd.DataFrame(columns)


def runs(
    where: str | None = None,
    sort: str | Sequence[str] | None = None,
    limit: int | None = None,
    repo: str | os.PathLike[str] | None = None,
) -> Runs:
    """The runs matching where (the --where language), sorted by sort ('-metrics.acc,name' or a list;
    default newest first), at most limit of them: `gitexp list --where W --sort S --limit L`.

    repo: a repository path (a work tree, a directory in one, or a bare repository); default: the
    current one (GIT_DIR, when set, wins, as it does for git).
    """
    from gitexp import query

    _check_limit(limit)
    store = _store(repo)
    problems: list[str] = []
    found = query.select(store, where or None, _keys(sort), limit, problems)
    return Runs([Run(s, store) for s in found], problems)


def run(spec: str = "latest", repo: str | os.PathLike[str] | None = None) -> Run:
    """One run: by name, alias, commit id prefix (4+ hex digits) or 'latest' (RunNotFound, AmbiguousRun)."""
    from gitexp import query

    store = _store(repo)
    return Run(query.resolve(store, spec), store)


class Group:
    """Runs sharing the values of the group-by fields: key (field -> value), the completed runs the
    statistics are over (runs, n), those left out (failed, crashed, running...), and stats: metric ->
    gitexp.stats.Summary (n, mean, sem, std, min, max, missing)."""

    __slots__ = ("core", "left_out", "runs")

    def __init__(self, core: CoreGroup, store: Store) -> None:
        self.core = core
        self.runs = Runs([Run(s, store) for s in core.runs])
        self.left_out = Runs([Run(s, store) for s in core.left_out])

    @property
    def key(self) -> dict[str, Any]:
        return dict(self.core.key)

    @property
    def n(self) -> int:
        return len(self.core.runs)

    @property
    def stats(self) -> dict[str, Summary]:
        return dict(self.core.stats)

    def __repr__(self) -> str:
        return f"<Group {self.core.key} n={self.n}>"

    def to_dict(self) -> dict[str, Any]:
        """As `gitexp list --group-by ... --json` prints it."""
        return self.core.to_dict()


class Groups(Sequence[Group]):
    """Groups in key order (or sorted as asked), `by` the fields they are grouped by."""

    def __init__(self, groups: Sequence[Group], by: Sequence[str], problems: Sequence[str] = ()) -> None:
        self._groups = list(groups)
        self.by: tuple[str, ...] = tuple(by)
        self.problems: tuple[str, ...] = tuple(problems)

    @overload
    def __getitem__(self, index: int) -> Group: ...

    @overload
    def __getitem__(self, index: slice) -> Groups: ...

    def __getitem__(self, index: int | slice) -> Group | Groups:
        if isinstance(index, slice):
            return Groups(self._groups[index], self.by, self.problems)
        return self._groups[index]

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self) -> Iterator[Group]:
        return iter(self._groups)

    def __repr__(self) -> str:
        return f"<Groups by {', '.join(self.by)}: {len(self._groups)}>"

    def cores(self) -> list[CoreGroup]:
        return [g.core for g in self._groups]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [g.to_dict() for g in self._groups]

    def to_pandas(self) -> Any:
        """A DataFrame, one row per group: the group-by fields, n, then per metric M the columns
        metrics.M.mean, .sem, .std, .n, .min and .max (as `--group-by --format csv`, plus std)."""
        pd = _pandas()
        metrics = sorted({m for g in self._groups for m in g.core.stats})
        stats = ("mean", "sem", "std", "n", "min", "max")
        columns: dict[str, Any] = {k: [g.core.key.get(k) for g in self._groups] for k in self.by}
        columns["n"] = [len(g.core.runs) for g in self._groups]
        for m in metrics:
            for stat in stats:
                columns[f"metrics.{m}.{stat}"] = [
                    getattr(g.core.stats[m], stat) if m in g.core.stats else None for g in self._groups
                ]
        return pd.DataFrame(columns)


def groups(
    by: str | Sequence[str] = "config",
    where: str | None = None,
    sort: str | Sequence[str] | None = None,
    limit: int | None = None,
    repo: str | os.PathLike[str] | None = None,
) -> Groups:
    """The runs matching where, grouped by the fields by ('config', 'params.lr', 'sweep', ...; a comma
    list or a list): `gitexp list --group-by BY`. sort orders the groups by group fields or by a metric's
    mean ('-metrics.acc'); statistics are over each group's completed runs."""
    from gitexp import query
    from gitexp.grouping import group_runs, sort_groups

    _check_limit(limit)
    keys = query.parse_columns(_keys(by) or "")
    if not keys:
        raise GitexpError("by names no field: give one, such as 'config' or 'params.lr'")
    store = _store(repo)
    problems: list[str] = []
    found = group_runs(query.select(store, where or None, None, None, problems), keys)
    order = _keys(sort)
    found = sort_groups(found, query.parse_columns(order)) if order else found
    found = found[:limit] if limit else found
    return Groups([Group(g, store) for g in found], keys, problems)

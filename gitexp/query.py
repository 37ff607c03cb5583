"""Find runs: by name, by commit id prefix, or 'latest'; list them newest first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gitexp import format as fmt
from gitexp.config import Config
from gitexp.errors import AmbiguousRun, RunInProgress, RunNotFound
from gitexp.model import RunSummary
from gitexp.safeload import json_object
from gitexp.store import Store

MIN_PREFIX = 4


def runs(store: Store, problems: list[str] | None = None) -> list[RunSummary]:
    """Every readable run with its tags and notes, newest first (unreadable ones are described in problems)."""
    found = [_now(store, r) for r in store.summaries(problems)]
    notes = store.annotations()
    if notes:
        found = [annotated(r, notes.get(r.commit, {})) for r in found]
    return sorted(found, key=lambda r: (r.started_at, r.name), reverse=True)


def settled(run: RunSummary) -> RunSummary:
    """run, unless it is still running (RunInProgress): for commands that need its final record or must not race it."""
    if run.status == "running":
        raise RunInProgress(run.name)
    return run


def _now(store: Store, run: RunSummary) -> RunSummary:
    """A run still `running` as it stands now: with its latest metrics, or `crashed` if its recorder died."""
    if run.status != "running":
        return run
    from gitexp.live import current

    return current(store.git_common_dir(), run)


def annotated(run: RunSummary, annotation: dict[str, Any]) -> RunSummary:
    """The run with the tags and note set after it ran (they replace those given at run time)."""
    if not annotation:
        return run
    return replace(
        run,
        tags=tuple(annotation.get("tags", run.tags)),
        note=annotation.get("note", run.note),
    )


def resolve(store: Store, spec: str) -> RunSummary:
    """A run named spec (or refs/experiments/NAME: any run, even one named 'latest'), 'latest', or the run
    whose commit id starts with spec."""
    from gitexp.names import readable

    name = spec.removeprefix(fmt.REF_PREFIX)
    commit = store.run_commit(name) if readable(name) and (name != "latest" or name != spec) else None
    if commit is None and name == spec and readable(name) and name != "latest":
        from gitexp.aliases import find  # an alias names its run

        name, commit = find(store, name) or (name, None)
    if commit is not None:
        return annotated(_now(store, store.summary(name, commit)), store.annotation(commit))
    if spec == "latest":
        all_runs = runs(store)
        if not all_runs:
            raise RunNotFound(spec)
        return all_runs[0]
    if len(spec) >= MIN_PREFIX and all(c in "0123456789abcdefABCDEF" for c in spec):
        matches = store.commits_with_prefix(spec)
        if len(matches) == 1:
            return annotated(_now(store, store.summary(*matches[0])), store.annotation(matches[0][1]))
        if len(matches) > 1:
            raise AmbiguousRun(spec, sorted(n for n, _ in matches))
    import difflib  # only on this path: list and show must start fast

    raise RunNotFound(spec, difflib.get_close_matches(name, [n for n, _ in store.run_refs()], n=3))  # a typo?


def set_tags(store: Store, run: RunSummary, add: tuple[str, ...], remove: tuple[str, ...]) -> RunSummary:
    """Add and remove tags of a run (kept in the notes ref; the run commit never changes)."""
    from gitexp.names import validate_tag

    for tag in add:
        validate_tag(tag)
    recorded = store.summary(run.name, run.commit).tags  # those given at run time, until tags are set here

    def change(annotation: dict[str, Any]) -> dict[str, Any]:
        tags = [t for t in dict.fromkeys((*annotation.get("tags", recorded), *add)) if t not in remove]
        return {**annotation, "tags": tags}

    return _annotate(store, run, change)


def set_note(store: Store, run: RunSummary, note: str) -> RunSummary:
    text = note.strip()
    return _annotate(store, run, lambda annotation: {**annotation, "note": text})


def _annotate(store: Store, run: RunSummary, change: Callable[[dict[str, Any]], dict[str, Any]]) -> RunSummary:
    """Apply change to the run's tags and note, as they are now (compare-and-swap on the notes ref).

    If the run's ref moved meanwhile (it finished, was finalized as crashed, or left the queue), the
    change is applied to its new commit too, starting from the old commit's tags and note if the new one
    has none yet: a tag set while a run ends is never left behind on a commit no ref points to.
    """
    commit = run.commit
    annotation = store.update_annotation(commit, change)
    for _ in range(10):
        now = store.run_commit(run.name)
        if now is None or now == commit:
            break
        carried = annotation
        annotation = store.update_annotation(now, lambda current: change(current or carried))
        commit = now
    return annotated(run, annotation)


def details(store: Store, run: RunSummary) -> dict[str, Any]:
    """Everything recorded about a run: the summary plus its record files."""
    out: dict[str, Any] = run.to_dict()
    for key, filename in (
        ("meta", fmt.RUN_FILE),
        ("params_nested", fmt.PARAMS_FILE),
        ("env", fmt.ENV_FILE),
        ("data", fmt.DATA_FILE),
    ):
        raw = store.read_record(run.commit, filename)
        out[key] = json_object(raw, f"{fmt.RECORD_DIR}/{filename} of run {run.name!r}") if raw else None
    return out


def read_log(store: Store, run: RunSummary, filename: str) -> bytes:
    return store.read_record(run.commit, filename) or b""


def name_of(store: Store, commit: str) -> str | None:
    """The name of the run ref pointing at commit (None once that run was deleted)."""
    return next((n for n, c in store.run_refs() if c == commit), None)


def select(
    store: Store,
    where: str | None,
    sort: str | None,
    limit: int | None,
    problems: list[str] | None,
    every: list[RunSummary] | None = None,
) -> list[RunSummary]:
    """Runs matching where, sorted by sort (default newest first), at most limit of them.

    problems gets a line per unreadable run and, when where matches no run, what in it may be a
    mistake (a key no run has, text compared with numbers: see filter.hints).
    """
    found = runs(store, problems) if every is None else every
    if where:
        from gitexp.filter import hints, parse

        condition = parse(where)
        matching = [r for r in found if condition.matches(r)]
        if not matching and problems is not None:
            problems += hints(condition, found)
        found = matching
    if sort:
        found = sort_runs(found, parse_columns(sort))
    return found[:limit] if limit else found


def parse_columns(text: str) -> list[str]:
    """'name, -metrics.acc' -> ['name', '-metrics.acc'], checking each key is a known field."""
    from gitexp.filter import check_field

    columns = [c.strip() for c in text.split(",") if c.strip()]
    for column in columns:
        check_field(column.removeprefix("-"))
    return columns


def sort_runs(found: list[RunSummary], keys: list[str]) -> list[RunSummary]:
    """Stable sort by each key in turn ('-' prefix: descending).

    Numbers sort before text, and runs missing a key always come last, ascending or not.
    """
    from gitexp.compare import number
    from gitexp.filter import MISSING, getter

    result = list(found)
    for key in reversed(keys):
        descending = key.startswith("-")
        field = key.removeprefix("-")
        get = (lambda r: r.started_at.timestamp()) if field == "created" else getter(field)
        numbers: list[tuple[float, RunSummary]] = []
        texts: list[tuple[str, RunSummary]] = []
        missing: list[RunSummary] = []
        for run in result:
            raw = get(run)
            num = None if raw is MISSING or raw is None else number(raw)
            if raw is MISSING or raw is None:
                missing.append(run)
            elif num is not None:
                numbers.append((num, run))
            else:
                texts.append((str(raw), run))
        numbers.sort(key=lambda pair: pair[0], reverse=descending)
        texts.sort(key=lambda pair: pair[0], reverse=descending)
        result = [r for _, r in numbers] + [r for _, r in texts] + missing
    return result


def primary_metric(config: Config, every: list[RunSummary]) -> str | None:
    """The first metric named in 'direction:' of the config, else the first recorded (alphabetically)."""
    if config.direction:
        return config.direction[0][0]
    names = sorted({k for r in every for k in r.metrics})
    return names[0] if names else None

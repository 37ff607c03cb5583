"""`gitexp run`: record one run of a command as a commit on refs/experiments/<name>."""

from __future__ import annotations

import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitexp import config as config_mod
from gitexp import environment, names, process
from gitexp import format as fmt
from gitexp import metrics as metrics_mod
from gitexp import params as params_mod
from gitexp.environment import hostname, login
from gitexp.errors import GitexpError, RunNameTaken
from gitexp.model import Progress, RunSummary, Snapshot
from gitexp.store import Store
from gitexp.workspace import ParamsGuard, Pointer, pid_alive, read_pointer, write_pointer

if TYPE_CHECKING:
    from gitexp.data.session import DataSession

ENV_RUN_NAME = "GITEXP_RUN_NAME"
ENV_RUN_DIR = "GITEXP_RUN_DIR"


@dataclass(frozen=True)
class RunRequest:
    command: list[str]
    cwd: Path = field(default_factory=Path.cwd)
    name: str | None = None
    note: str = ""
    overrides: tuple[str, ...] = ()
    parent: str | None = None
    no_parent: bool = False
    tags: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    # For `gitexp reproduce`: run in a copy of a run's workspace instead of the repository's.
    repository: Path | None = None  # the repository to record into (default: the one around cwd)
    workdir: Path | None = None  # the copy's root: params, metrics and data paths are read there
    code: Snapshot | None = None  # the code state, instead of snapshotting the workspace
    update_pointer: bool = True  # make the run the branch's current run


@dataclass(frozen=True)
class RunResult:
    run: RunSummary
    exit_code: int


Notify = Callable[[str], None]


def record_run(request: RunRequest, notify: Notify = lambda _msg: None, progress: Progress | None = None) -> RunResult:
    """Run request.command and record it; everything checkable is checked before it starts."""
    if not request.command:
        raise GitexpError("no command given (usage: gitexp run [OPTIONS] -- COMMAND [ARGS]...)")
    store = Store.discover(request.repository or request.cwd)
    root = request.workdir or store.root
    guard = ParamsGuard(store.state_dir, root)
    for path in guard.recover():
        notify(f"restored {path}, left rewritten by a gitexp run that was killed")
    config = config_mod.load(root)
    for warning in config.warnings:
        notify(warning)

    name = _choose_name(store, request.name)
    for tag in request.tags:
        names.validate_tag(tag)
    process.check_command(request.command[0], request.cwd, dict(os.environ))
    overrides = [params_mod.parse_override(text) for text in request.overrides]
    files = params_mod.load_files(root, config.params, required=config.params_explicit)
    params = params_mod.effective(files, overrides)
    for key in params.new_keys:
        notify(f"-S {key}: no params file defines {key}; it is added for this run (a typo?)")
    if params.contents:
        guard.ensure_free()
    parent = _choose_parent(store, request, notify)
    inputs, outputs = _data_paths(config, request, root)

    snap = request.code or store.snapshot(
        replace=params.contents, exclude=inputs + outputs, large_threshold=config.large_files
    )
    for path in snap.skipped:
        notify(f"{path}/ is a separate git repository inside this one; it is not part of the snapshot")
    data = _data_session(store, root, progress) if inputs or outputs or snap.large else None
    outputs_before = _outputs_state(root, outputs)
    metric_states = metrics_mod.before(root, config.metrics)
    scratch = _scratch_root(store) / f"run-{os.getpid()}-{os.urandom(4).hex()}"
    scratch.mkdir()
    env = dict(os.environ)
    env[ENV_RUN_NAME] = name
    env[ENV_RUN_DIR] = str(scratch)
    try:
        if data is not None:
            data.add("inputs", inputs, config.cache_inputs, "hashing inputs")
            for path in snap.large:
                notify(f"{path} is large and untracked: recorded as a data pointer, not a git blob")
            data.add("large_files", snap.large, True, "caching large files")
        guard.apply(params.contents, {f.target: f.original for f in files if f.target})
        try:
            env_record: dict[str, Any] = {}
            env_thread = threading.Thread(target=lambda: env_record.update(environment.capture(request.command, env)), daemon=True)
            env_thread.start()
            notify(f"run {name}: {shlex.join(request.command)}")
            started = datetime.now(timezone.utc).astimezone()
            t0 = time.monotonic()
            outcome = process.execute(request.command, request.cwd, env, scratch / fmt.STDOUT_FILE, scratch / fmt.STDERR_FILE)
            duration = time.monotonic() - t0
            ended = datetime.now(timezone.utc).astimezone()
        finally:
            for path in guard.restore():
                notify(f"{path} was edited during the run; your edit was kept")
        metrics = metrics_mod.read(root, metric_states)
        for warning in metrics.warnings:
            notify(warning)
        if data is not None:
            unchanged = {p for p in outputs if _outputs_state(root, (p,))[p] == outputs_before[p]}
            for pointer in data.add("outputs", outputs, True, "caching outputs", unchanged):
                if pointer.kind == "missing":
                    notify(f"output {pointer.path} was not produced by this run")
                elif pointer.fresh is False:
                    notify(f"output {pointer.path} was not written by this run; recorded as it stands, marked unchanged")
        env_thread.join()
        env_record["git"] = {"base": snap.base, "branch": snap.base_branch, "dirty": snap.dirty}
        status = "interrupted" if outcome.interrupted else ("completed" if outcome.exit_code == 0 else "failed")
        user, email = store.identity()
        summary = RunSummary(
            name=name,
            commit="",
            status=status,
            exit_code=outcome.exit_code,
            started=started.isoformat(timespec="milliseconds"),
            duration=round(duration, 3),
            user=f"{user} <{email}>",
            base=snap.base,
            base_branch=snap.base_branch,
            parent=parent.commit if parent else None,
            tags=tuple(dict.fromkeys(request.tags)),
            params=params_mod.flatten(params.params),
            metrics=metrics.values,
            note=request.note.strip(),
        )
        record = _record_files(request, summary, ended, params.params, env_record, parent, config, root)
        record[fmt.STDOUT_FILE] = scratch / fmt.STDOUT_FILE
        record[fmt.STDERR_FILE] = scratch / fmt.STDERR_FILE
        if data is not None:
            record.update(data.record_files())
        commit, name = _write(store, summary, snap, parent, record, request.command, started, ended, notify)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if data is not None:
            data.close()
    if request.update_pointer:
        write_pointer(store.state_dir, snap.base_branch, Pointer(name, commit))
    return RunResult(replace(summary, name=name, commit=commit), outcome.exit_code)


def save_workspace(
    store: Store, notify: Notify, progress: Progress | None = None, extra_outputs: tuple[str, ...] = ()
) -> RunSummary:
    """Record the workspace as it is, without running anything, as a run with status 'saved'.

    Code, params, declared data and outputs and large files are all kept (data
    in the cache), and the staged tree too, so `gitexp checkout` of this run
    gives everything back.
    """
    root = store.root
    config = config_mod.load(root)
    try:
        params = params_mod.effective(params_mod.load_files(root, config.params, required=False), []).params
    except GitexpError as exc:  # a half-edited params file must not stop the save: its bytes are in the code
        notify(f"params not recorded in the saved run: {exc.message}")
        params = {}
    inputs = tuple(p for p in config.data if os.path.lexists(root / p))
    outputs = tuple(p for p in dict.fromkeys(config.outputs + extra_outputs) if p not in inputs and os.path.lexists(root / p))
    snap = store.snapshot(exclude=inputs + outputs, large_threshold=config.large_files)
    _, branch = store.head()
    pointer = read_pointer(store.state_dir, branch)
    parent = pointer if pointer and store.run_commit(pointer.name) == pointer.commit else None
    name = names.generate(store.run_exists, prefix="saved-")
    now = datetime.now(timezone.utc).astimezone()
    data = _data_session(store, root, progress) if inputs or outputs or snap.large else None
    try:
        if data is not None:
            data.verify_existing = True  # a save must not point at a damaged cache object
            data.add("inputs", inputs, True, "saving data")
            data.add("large_files", snap.large, True, "saving large files")
            data.add("outputs", outputs, True, "saving outputs")
        user, email = store.identity()
        summary = RunSummary(
            name=name, commit="", status="saved", exit_code=None, started=now.isoformat(timespec="milliseconds"),
            duration=0.0, user=f"{user} <{email}>", base=snap.base, base_branch=snap.base_branch,
            parent=parent.commit if parent else None, tags=("saved",), params=params_mod.flatten(params),
            metrics={}, note="the workspace as it was before a gitexp checkout",
        )
        env_record = {"git": {"base": snap.base, "branch": snap.base_branch, "dirty": snap.dirty}}
        request = RunRequest(command=[], cwd=root)
        record = _record_files(request, summary, now, params, env_record, parent, config, root)
        if data is not None:
            record.update(data.record_files())
        index_tree = store.index_tree()
        if index_tree is None and store.index_has_conflicts():
            notify("the index has unresolved conflicts: file contents are saved, which files were staged is not")
        trees = {fmt.INDEX_TREE: index_tree} if index_tree else {}
        commit, name = _write(store, summary, snap, parent, record, [], now, now, notify, trees)
    finally:
        if data is not None:
            data.close()
    return replace(summary, name=name, commit=commit)


def _data_paths(config: config_mod.Config, request: RunRequest, root: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Declared inputs and outputs, root-relative; inputs must exist before the run."""
    inputs, outputs = config.data, config.outputs
    if request.data or request.outputs:  # imported only for runs with data: it costs start-up time
        from gitexp.data.pointers import normalize

        inputs += tuple(normalize(root, request.cwd, p) for p in request.data)
        outputs += tuple(normalize(root, request.cwd, p) for p in request.outputs)
    for path in inputs:
        if not os.path.lexists(root / path):
            from gitexp.data.pointers import BadDataPath

            raise BadDataPath(path, "does not exist", "inputs declared as data must exist before the run; create it, or drop it from 'data:'")
    return tuple(dict.fromkeys(inputs)), tuple(dict.fromkeys(outputs))


def _outputs_state(root: Path, outputs: tuple[str, ...]) -> dict[str, Any]:
    """What the output paths look like (names, sizes, mtimes), to tell afterwards which the run wrote."""
    if not outputs:
        return {}
    from gitexp.data.pointers import stat_state

    return {p: stat_state(root, p) for p in outputs}


def _data_session(store: Store, root: Path, progress: Progress | None) -> DataSession:
    from gitexp.data.session import DataSession

    return DataSession(store.git_common_dir(), root, progress)


def _choose_name(store: Store, requested: str | None) -> str:
    if requested is None:
        return names.generate(store.run_exists)
    names.validate(requested)
    if store.run_exists(requested):
        raise RunNameTaken(requested)
    return requested


def _choose_parent(store: Store, request: RunRequest, notify: Notify) -> Pointer | None:
    if request.no_parent:
        return None
    if request.parent is not None:
        from gitexp.query import resolve

        run = resolve(store, request.parent)
        return Pointer(run.name, run.commit)
    _, branch = store.head()
    pointer = read_pointer(store.state_dir, branch)
    if pointer is None:
        return None
    if store.run_commit(pointer.name) != pointer.commit:
        notify(f"the workspace's last run {pointer.name!r} no longer exists; this run starts a new root")
        return None
    return pointer


def _scratch_root(store: Store) -> Path:
    """.git/gitexp/tmp, cleared of what runs whose gitexp died left behind."""
    path = store.state_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("run-*-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid), hostname()):
            shutil.rmtree(old, ignore_errors=True)
    return path


def _record_files(
    request: RunRequest,
    run: RunSummary,
    ended: datetime,
    effective: dict[str, Any],
    env_record: dict[str, Any],
    parent: Pointer | None,
    config: config_mod.Config,
    root: Path,
) -> dict[str, bytes | Path]:
    cwd = os.path.relpath(request.cwd.resolve(), root.resolve())
    meta = {
        "format": fmt.FORMAT_VERSION,
        "name": run.name,
        "command": list(request.command),
        "cwd": "" if cwd == "." else cwd.replace(os.sep, "/"),
        "status": run.status,
        "exit_code": run.exit_code,
        "started": run.started,
        "ended": ended.isoformat(timespec="milliseconds"),
        "duration": run.duration,
        "user": run.user,
        "os_user": login(),
        "host": hostname(),
        "note": run.note,
        "tags": list(run.tags),
        "base": run.base,
        "base_branch": run.base_branch,
        "parent_run": {"name": parent.name, "commit": parent.commit} if parent else None,
        "params_files": [p for p in config.params if (root / p).exists()],
        "overrides": list(request.overrides),
        "metrics_files": list(config.metrics),
    }
    return {
        fmt.RUN_FILE: fmt.to_json(meta).encode(),
        fmt.PARAMS_FILE: fmt.to_json(effective).encode(),
        fmt.METRICS_FILE: fmt.to_json(run.metrics).encode(),
        fmt.ENV_FILE: fmt.to_json(env_record).encode(),
    }


def _write(
    store: Store,
    run: RunSummary,
    snap: Snapshot,
    parent: Pointer | None,
    record: dict[str, bytes | Path],
    command: list[str],
    started: datetime,
    ended: datetime,
    notify: Notify,
    record_trees: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Write the commit and ref; if the name was taken meanwhile, keep the run under a new name."""
    name = run.name
    for attempt in range(2, 100):
        subject = f"{name}: {run.status} ({shlex.join(command)})" if command else f"{name}: {run.status} workspace"
        message = fmt.build_message(subject, run.note, fmt.run_trailers(replace(run, name=name)))
        try:
            commit = store.write_run(
                name, snap, parent.commit if parent else None, record, message, started, ended, record_trees
            )
            return commit, name
        except RunNameTaken:
            suffix = f"-{attempt}"
            new = run.name[: names.MAX_LENGTH - len(suffix)] + suffix
            notify(f"the name {name!r} was taken while the command ran; the run is recorded as {new!r}")
            name = new
    raise RunNameTaken(name)

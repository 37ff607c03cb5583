"""`gitexp run`: record one run of a command as a commit on refs/experiments/<name>."""

from __future__ import annotations

import contextlib
import os
import resource
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
from gitexp import live as live_mod
from gitexp import metrics as metrics_mod
from gitexp import paramfiles as params_mod
from gitexp.environment import hostname, login
from gitexp.errors import GitexpError, RunNameTaken
from gitexp.live import Heartbeat, LiveState, boot_id, recorder_tag
from gitexp.live import remove as remove_live
from gitexp.model import Progress, RunSummary, Snapshot
from gitexp.scalars import ScalarCapture, compile_pattern
from gitexp.signals import signals_deferred
from gitexp.store import Store
from gitexp.trust import Trust
from gitexp.workspace import (
    CheckoutInProgress,
    ParamsGuard,
    ParamsInUse,
    Pointer,
    checkout_in_progress,
    pid_alive,
    read_pointer,
    write_pointer,
)

if TYPE_CHECKING:
    from gitexp.data.session import DataSession
    from gitexp.sampler import Sampler

ENV_RUN_NAME = "GITEXP_RUN_NAME"
ENV_RUN_DIR = "GITEXP_RUN_DIR"
ENV_RUN_ROOT = "GITEXP_RUN_ROOT"


class RunNotFinalized(GitexpError):
    def __init__(self, name: str, why: str) -> None:
        super().__init__(
            f"the final record of run {name!r} could not be written ({why}); it stays 'running' with its logs,"
            " and the next `gitexp run` in this repository records it as crashed (free some space first)"
        )


class WorkspaceShared(GitexpError):
    def __init__(self, other: LiveState, shared: list[str]) -> None:
        super().__init__(
            f"run {other.name!r} (gitexp pid {other.pid}) is running in this workspace and also writes "
            f"{', '.join(shared)}: the two runs would record each other's results. Wait for it to end, or run "
            "several at once with -j N (each in its own copy), queue this one with --queue, or start it in "
            "another worktree (git worktree add ../other)"
        )


class ClaimLost(GitexpError):
    def __init__(self, name: str) -> None:
        super().__init__(f"run {name!r} was started by another worker (or changed) before this one could start it")


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
    scalars: str | None = None  # capture stdout scalars: "default" or a regex (None: as .gitexp.yaml says)
    sample_interval: float | None = None  # seconds between hardware samples, 0: off (None: as .gitexp.yaml says)
    # For `gitexp.start()`: the params the script passes, merged over the params files; the "command" is the process.
    extra_params: dict[str, Any] | None = None
    in_process: bool = False
    sweep: dict[str, Any] | None = None  # the sweep this run belongs to (gitexp.sweep.Plan.record)
    claim: RunSummary | None = None  # a queued run to execute: its name, parent, code (in `code`) and inputs
    apply_overrides: bool = True  # False: the code already has them (a queued run); they are only recorded
    template: bool = True  # the command's {name} are placeholders for params (False: a record from before them)
    # For `gitexp reproduce`: run in a copy of a run's workspace instead of the repository's.
    repository: Path | None = None  # the repository to record into (default: the one around cwd)
    workdir: Path | None = None  # the copy's root: params, metrics and data paths are read there
    code: Snapshot | None = None  # the code state, instead of snapshotting the workspace
    update_pointer: bool = True  # make the run the branch's current run


@dataclass(frozen=True)
class RunResult:
    run: RunSummary
    exit_code: int
    parent_name: str | None = None  # the parent run's name, as it was when the run started


Notify = Callable[[str], None]

# Files of the scratch directory ($GITEXP_RUN_DIR) that the in-script API writes (see gitexp/tracking.py).
API_STEPS = "steps.jsonl"
API_SUMMARY = "summary.jsonl"
API_ARTIFACTS = "artifacts.jsonl"
API_PARAMS = "params.json"
API_LOGGED_PARAMS = "logged_params.jsonl"
CAPTURED_STEPS = "scalars.jsonl"


def record_run(request: RunRequest, notify: Notify = lambda _msg: None, progress: Progress | None = None) -> RunResult:
    """Run request.command and record it; everything checkable is checked before it starts."""
    recording = Recording.begin(request, notify, progress)
    try:
        outcome = recording.execute()
        with signals_deferred():  # a second Ctrl-C must not lose the run being written
            return recording.finish(outcome.exit_code, outcome.interrupted, outcome.usage, outcome.lost)
    finally:
        recording.close()


class Recording:
    """One run being recorded, from its `running` commit to its final one.

    begin() checks everything, snapshots the code and writes the run's ref with
    status `running` (its live file kept fresh by a heartbeat); execute() runs
    the command; finish() writes the final commit over the running one; close()
    cleans up. A run whose command never started is deleted; one whose command
    started but whose final commit could not be written stays `running`, with its
    live file and scratch dir, for `finalize_crashed` to record it as crashed.
    """

    def __init__(self, store: Store, request: RunRequest, notify: Notify, progress: Progress | None) -> None:
        self.store = store
        self.request = request
        self.notify = _heedless(notify)
        self.progress = progress
        self.root = request.workdir or store.root
        self.guard = ParamsGuard(store.state_dir, self.root)
        self.common_dir = store.git_common_dir()
        self.data: DataSession | None = None
        self.scratch: Path | None = None
        self.running_commit: str | None = None
        self.heartbeat: Heartbeat | None = None
        self.sampler: Sampler | None = None
        self.finished = False
        self.command_started = False
        self.env_record: dict[str, Any] = {}
        self._env_thread: threading.Thread | None = None

    # -- begin -------------------------------------------------------------

    @classmethod
    def begin(cls, request: RunRequest, notify: Notify = lambda _msg: None, progress: Progress | None = None) -> Recording:
        """Check, snapshot, and write the run's `running` commit: the command may start."""
        self = cls._checked(request, notify, progress)
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def enqueue(cls, request: RunRequest, notify: Notify = lambda _msg: None, progress: Progress | None = None) -> RunSummary:
        """Check, snapshot (inputs hashed and cached too) and store the run as a commit with status `queued`."""
        self = cls._checked(request, notify, progress, queued=True)
        try:
            started = datetime.now(timezone.utc).astimezone()
            summary = replace(self._summary(started), status="queued", recorder="")
            record = self._record_files(summary, None)
            if self.data is not None:
                record.update(self.data.record_files())
            commit, name = _write(
                self.store, summary, self.snap, self.parent, record, self.argv, started, started, notify
            )
            self.finished = True
            return replace(summary, name=name, commit=commit)
        finally:
            self.close()

    @classmethod
    def _checked(
        cls, request: RunRequest, notify: Notify, progress: Progress | None, queued: bool = False
    ) -> Recording:
        if not request.command:
            raise GitexpError("no command given (usage: gitexp run [OPTIONS] -- COMMAND [ARGS]...)")
        self = cls(Store.discover(request.repository or request.cwd), request, notify, progress)
        try:
            self._prepare(queued)
        except BaseException:
            self.close()
            raise
        return self

    def _prepare(self, queued: bool) -> None:
        store, request, root, notify = self.store, self.request, self.root, self.notify
        in_place = request.workdir is None  # a copy (a queue worker's, reproduce's) has params files of its own
        if in_place:
            checkout = checkout_in_progress(store.state_dir)
            if checkout is not None:
                raise CheckoutInProgress(checkout)
            for note in self.guard.recover():
                notify(note)
        for crashed in finalize_crashed(store, notify):
            notify(f"run {crashed}: its recorder died; recorded as crashed with the logs and metrics it left")
        cache_tmp = store.git_common_dir() / "gitexp" / "cache" / "tmp"  # data.session.cache_root(...) / "tmp"
        if cache_tmp.is_dir():  # what killed runs and pulls left there (their owners are gone)
            from gitexp.data.cache import clear_dead

            clear_dead(cache_tmp)
        config = config_mod.load(root, store.state_dir)
        for warning in config.warnings:
            notify(warning)
        self.config = config
        claim = request.claim
        self.name = claim.name if claim else _choose_name(store, request.name)
        for tag in request.tags:
            names.validate_tag(tag)
        scalars = request.scalars if request.scalars is not None else config.scalars
        self.scalars_setting = scalars  # recorded, so that `reproduce` captures the same way
        self.scalars = compile_pattern(scalars) if scalars else None
        self.sample_interval = request.sample_interval if request.sample_interval is not None else config.sample_interval
        rewrite = self.guard.rewritten() if in_place else None
        held = rewrite.originals if rewrite and queued else {}  # a queued run is snapshotted with the user's bytes
        trust = Trust.load(store.git_common_dir(), root)  # consent to read outside the work tree
        files = params_mod.load_files(root, config.params, required=config.params_explicit, instead=held, trust=trust)
        if rewrite and not queued and (busy := sorted(rewrite.originals.keys() & {f.target for f in files})):
            raise ParamsInUse(rewrite.pid, rewrite.run, tuple(busy))  # the command would read the other run's -S values
        self._params(files)
        if not request.in_process:
            process.check_command(self.argv[0], request.cwd, dict(os.environ))
        self.parent = _claimed_parent(store, claim) if claim else _choose_parent(store, request, notify)
        self.inputs, self.outputs = _data_paths(config, request, root)
        for path in self.inputs + self.outputs + config.metrics:  # before the command, not after hours of it
            trust.check(path, "data path" if path in self.inputs else "output" if path in self.outputs else "metrics file")
        self.snap = request.code or store.snapshot(
            replace={**{p: b for p, b in held.items() if b is not None}, **self.params.contents},
            exclude=self.inputs + self.outputs + tuple(p for p, b in held.items() if b is None),
            large_threshold=config.large_files,
        )
        for path in self.snap.skipped:
            notify(f"{path}/ is a separate git repository inside this one; it is not part of the snapshot")
        if self.inputs or self.outputs or self.snap.large or (claim and store.read_record(claim.commit, fmt.DATA_FILE)):
            self.data = _data_session(store, root, self.progress, notify, config.exclude)
        if in_place and not queued:
            self._check_not_shared()  # before any hashing: a mistake costs seconds
        self.outputs_before = _outputs_state(root, self.outputs)
        self.metric_states = metrics_mod.before(root, config.metrics)
        if self.data is not None and claim is not None:
            self.data.adopt(store, claim.commit, ("inputs", "large_files"))  # hashed when it was queued
        elif self.data is not None:
            self.data.add("inputs", self.inputs, config.cache_inputs, "hashing inputs")
            for path in self.snap.large:
                notify(f"{path} is large and untracked: recorded as a data pointer, not a git blob")
            self.data.add("large_files", self.snap.large, True, "caching large files")

    def _params(self, files: list[params_mod.ParamsFile]) -> None:
        """The effective params and the command to run: -S values go to the params files that define their
        keys, or, for a key none defines, to the command's `{key}` (or, written -S +key=..., to a file)."""
        request = self.request
        fields = params_mod.placeholders(request.command) if request.template and not request.in_process else ()
        defined = params_mod.flatten(params_mod.effective(files, []).params)
        argv_values: dict[str, Any] = {}
        to_files, adding = [], set()
        for text in request.overrides:
            plus, _ = params_mod.split_plus(text)
            keys, value = params_mod.parse_override(text)
            key = ".".join(keys)
            if key in fields and key not in defined:
                argv_values[key] = value
            elif request.apply_overrides:
                to_files.append((keys, value))
                adding |= {key} if plus else set()
        self.params = params_mod.effective(files, to_files)
        # a typo is refused; with no params file at all, -S creates the first one (nothing to mistype)
        unknown = [k for k in self.params.new_keys if k not in adding] if any(f.original is not None for f in files) else []
        if unknown:
            raise params_mod.UnknownParam(unknown[0], sorted(defined))
        self.param_originals = {f.target: f.original for f in files if f.target}
        self.effective_params = _merged(
            _merged(self.params.params, params_mod.nest(argv_values)), request.extra_params or {}
        )
        self.argv = params_mod.substitute(request.command, params_mod.flatten(self.effective_params)) if fields else list(request.command)

    def _start(self) -> None:
        """The scratch dir, the environment capture, and the `running` commit."""
        if self.params.contents:
            self.guard.ensure_free()
        self.scratch = _scratch_root(self.store) / f"run-{os.getpid()}-{os.urandom(4).hex()}"
        self.scratch.mkdir()
        (self.scratch / API_PARAMS).write_text(fmt.to_json(self.effective_params), encoding="utf-8")
        self.env = dict(os.environ)
        self.env[ENV_RUN_NAME] = self.name
        self.env[ENV_RUN_DIR] = str(self.scratch)
        self.env[ENV_RUN_ROOT] = str(self.root)  # log_artifact refuses paths outside it
        self._env_thread = threading.Thread(target=self._capture_env, daemon=True)
        self._env_thread.start()
        self._write_running()

    def _capture_env(self) -> None:
        """The environment, into the record and, for a crash to leave it behind, into the scratch dir."""
        self.env_record.update(environment.capture(self.argv, self.env))
        if self.scratch is not None:
            with contextlib.suppress(OSError):
                (self.scratch / fmt.ENV_FILE).write_text(fmt.to_json(self.env_record), encoding="utf-8")

    def _summary(self, started: datetime) -> RunSummary:
        user, email = self.store.identity()
        return RunSummary(
            name=self.name,
            commit="",
            status="running",
            exit_code=None,
            started=started.isoformat(timespec="milliseconds"),
            duration=None,
            user=f"{user} <{email}>",
            base=self.snap.base,
            base_branch=self.snap.base_branch,
            parent=self.parent.commit if self.parent else None,
            tags=tuple(dict.fromkeys(self.request.tags)),
            params=params_mod.flatten(self.effective_params),
            note=self.request.note.strip(),
            recorder=recorder_tag(),
            sweep=self.request.sweep or {},
        )

    def _write_running(self) -> None:
        """The run's ref, from now on: a commit with status `running`, and its live file."""
        assert self.scratch is not None
        self.started = datetime.now(timezone.utc).astimezone()
        self.t0 = time.monotonic()
        self.summary = self._summary(self.started)
        record = self._record_files(self.summary, None)
        if self.data is not None:
            record.update(self.data.record_files())  # the inputs, hashed already: a crash keeps them too
        claim = self.request.claim
        commit, self.name = _write(
            self.store, self.summary, self.snap, self.parent, record, self.argv, self.started,
            self.started, self.notify, replacing=claim.commit if claim else None, rename=claim is None,
        )
        self.running_commit = commit
        self.summary = replace(self.summary, name=self.name)
        self.env[ENV_RUN_NAME] = self.name
        state = LiveState(
            name=self.name, commit=commit, pid=os.getpid(), host=hostname(), boot=boot_id(),
            scratch=str(self.scratch), started=round(self.started.timestamp(), 3), workdir=str(self.root),
            files=list(self._declared()),
        )
        self.heartbeat = Heartbeat(self.common_dir, state, [self.scratch / API_STEPS, self.scratch / CAPTURED_STEPS])
        with live_mod.registering(self.common_dir):  # checked again, under a lock: of two runs, one sees the other
            if self.request.workdir is None:
                self._check_not_shared()
            self.heartbeat.start()

    def _declared(self) -> tuple[str, ...]:
        """The files this run's command is expected to write: metrics files and outputs."""
        return tuple(dict.fromkeys(self.config.metrics + self.outputs))

    def _check_not_shared(self) -> None:
        """Refuse to run beside a live run in this workspace that writes the same metrics files or outputs."""
        found = live_mod.sharing(self.common_dir, self.root, self._declared(), self.name)
        if found is not None:
            raise WorkspaceShared(*found)

    # -- execute -----------------------------------------------------------

    def execute(self) -> process.Outcome:
        """Run the command (params files rewritten for it, hardware sampled); its outcome."""
        assert self.scratch is not None
        request = self.request
        self.guard.apply(self.params.contents, self.param_originals, self.name)
        try:
            self.notify(f"run {self.name}: {shlex.join(self.argv)}")
            self.t0 = time.monotonic()
            capture = ScalarCapture(self.scalars, self.scratch / CAPTURED_STEPS) if self.scalars else None
            return process.execute(
                self.argv, request.cwd, self.env, self.scratch / fmt.STDOUT_FILE, self.scratch / fmt.STDERR_FILE,
                self.scratch / fmt.LOG_TIMES_FILE, self.start_sampler, capture,
            )
        finally:
            for note in self.guard.restore():
                self.notify(note)

    def start_sampler(self, pid: int, include_self: bool = False) -> None:
        """The command (pid) started: sample it, and tell its pid in the live file."""
        self.command_started = True  # from now on the run is recorded, whatever happens
        if self.heartbeat is not None and not include_self:
            self.heartbeat.command_started(pid)
        if self.sample_interval > 0 and self.scratch is not None:
            from gitexp.sampler import Sampler

            self.sampler = Sampler(pid, self.scratch / fmt.SYSTEM_FILE, self.sample_interval, include_self=include_self)
            self.sampler.start()

    # -- finish ------------------------------------------------------------

    def finish(
        self,
        exit_code: int,
        interrupted: bool,
        usage: resource.struct_rusage | None = None,
        lost: tuple[tuple[str, str], ...] = (),
    ) -> RunResult:
        """Write the final commit over the running one: status, metrics, logs, steps, resources, outputs.

        What cannot be kept (an output larger than the free space, a log cut short by a full disk, a
        metrics file nested too deep) is left out and listed, with why, in run.json's `incomplete`. Only
        if not even a commit without logs can be written does this raise RunNotFinalized: the run then
        stays `running` (see close()). lost: (log file, why) for the logs the command's output did not
        reach in full.
        """
        assert self.scratch is not None and self.heartbeat is not None
        duration = time.monotonic() - self.t0
        ended = datetime.now(timezone.utc).astimezone()
        scratch, notify, root = self.scratch, self.notify, self.root
        missing: list[dict[str, str]] = []

        def lacking(what: str, why: str, path: str = "") -> None:
            missing.append({"what": what, "why": why, **({"path": path} if path else {})})
            notify(f"{what}{f' ({path})' if path else ''} not recorded in full: {why}")

        resources: dict[str, Any] = {}
        try:
            resources = self.sampler.stop(usage) if self.sampler is not None else {}
        except Exception as exc:
            lacking("resources", _reason(exc))
        self.heartbeat.stop()
        for filename, why in lost:
            lacking("steps" if filename == "scalars" else "logs", why, filename)
        steps = b""
        metrics: dict[str, Any] = {}
        metrics_files: tuple[str, ...] = ()
        artifacts: tuple[str, ...] = ()
        try:
            steps = _combined_steps(scratch)
        except Exception as exc:
            lacking("steps", _reason(exc))
        try:
            metrics, metrics_files, unreadable = self._final_metrics(steps)
            fmt.compact_json(metrics)  # a value nested too deep fails here, not in the commit message
            for rel, why in unreadable:
                lacking("metrics", why, rel)
        except Exception as exc:
            metrics, metrics_files = {}, ()
            lacking("metrics", _reason(exc))
        try:
            artifacts = _artifacts(scratch / API_ARTIFACTS, root, notify)
        except Exception as exc:
            lacking("artifacts", _reason(exc))
        self._store_outputs(tuple(dict.fromkeys(self.outputs + artifacts)), lacking)
        if self._env_thread is not None:
            self._env_thread.join()
        self.env_record["git"] = environment.git_record(self.store, self.snap, self.request.code is None)
        status = "interrupted" if interrupted else ("completed" if exit_code == 0 else "failed")
        self._merge_logged_params()
        summary = replace(
            self.summary, status=status, exit_code=exit_code, duration=round(duration, 3), metrics=metrics,
            resources=resources, recorder="", params=params_mod.flatten(self.effective_params),
        )
        code = self._with_metrics_files(metrics_files)

        def write(with_logs: bool) -> tuple[str, str]:
            run = replace(summary, incomplete=tuple(dict.fromkeys(m["what"] for m in missing)))
            record = self._record_files(run, ended, missing)
            if with_logs:
                for filename in (fmt.STDOUT_FILE, fmt.STDERR_FILE, fmt.LOG_TIMES_FILE, fmt.SYSTEM_FILE):
                    if (scratch / filename).exists():
                        record[filename] = scratch / filename
                if steps:
                    record[fmt.STEPS_FILE] = steps
            if resources:
                record[fmt.RESOURCES_FILE] = fmt.to_json(resources).encode()
            if self.data is not None:
                record.update(self.data.record_files())
            return _write(
                self.store, run, code, self.parent, record, self.argv, self.started, ended, notify,
                replacing=self.running_commit,
            )

        try:
            commit, name = write(with_logs=True)
        except Exception as exc:  # a full disk, most likely: the logs are the bulk of what is written
            lacking("logs", f"the final commit could not be written with the logs, steps and samples ({_reason(exc)})")
            try:
                commit, name = write(with_logs=False)
            except Exception as again:
                raise RunNotFinalized(self.name, _reason(again)) from again
        self.finished = True
        summary = replace(summary, incomplete=tuple(dict.fromkeys(m["what"] for m in missing)))
        try:
            _carry_annotation(self.store, self.running_commit, commit)
            if self.request.update_pointer:
                write_pointer(self.store.state_dir, self.snap.base_branch, Pointer(name, commit))
        except (GitexpError, OSError) as exc:
            notify(f"run {name} is recorded, but {_reason(exc)}")
        return RunResult(replace(summary, name=name, commit=commit), exit_code, self.parent.name if self.parent else None)

    def _merge_logged_params(self) -> None:
        """gitexp.log_params() values join the run's params, over the files and -S: they are what the script used."""
        assert self.scratch is not None
        logged = _summary_values(self.scratch / API_LOGGED_PARAMS)
        if not logged:
            return
        flat, given = params_mod.flatten(logged), params_mod.flatten(self.effective_params)
        for text in self.request.overrides:
            key = ".".join(params_mod.parse_override(text)[0])
            if key in flat and key in given and flat[key] != given[key]:
                self.notify(
                    f"-S {key}={given[key]} but the script logged {key}={flat[key]}: the script's value is recorded "
                    f"(-S reaches a script through its params files, a {{{key}}} in the command or gitexp.params())"
                )
        self.effective_params = _merged(self.effective_params, logged)

    def _store_outputs(self, outputs: tuple[str, ...], lacking: Callable[[str, str, str], None]) -> None:
        """Hash and cache the outputs; one that does not fit (a full disk) is left out, the others kept."""
        root, notify = self.root, self.notify
        try:
            if outputs and self.data is None:
                self.data = _data_session(self.store, root, self.progress, notify, self.config.exclude)
            if self.data is None:
                return
            unchanged = {p for p in self.outputs if _outputs_state(root, (p,))[p] == self.outputs_before[p]}
        except Exception as exc:
            for path in outputs:
                lacking("outputs", _reason(exc), path)
            return
        try:
            pointers = self.data.add("outputs", outputs, True, "caching outputs", unchanged)
        except Exception:
            pointers = []
            for path in outputs:  # again one by one, to keep those that fit
                try:
                    pointers += self.data.add("outputs", (path,), True, f"caching {path}", unchanged)
                except Exception as exc:
                    lacking("outputs", _reason(exc), path)
        for pointer in pointers:
            if pointer.kind == "missing":
                notify(f"output {pointer.path} was not produced by this run")
            elif pointer.fresh is False:
                notify(f"output {pointer.path} was not written by this run; recorded as it stands, marked unchanged")

    def _final_metrics(
        self, steps: bytes
    ) -> tuple[dict[str, Any], tuple[str, ...], tuple[tuple[str, str], ...]]:
        """The last value of each step series, then the metrics files, then gitexp.summary() (later wins).

        Also: the metrics files the command wrote, and (file, why) for those that could not be read.
        """
        from gitexp.series import parse

        assert self.scratch is not None
        metrics: dict[str, Any] = {name: points[-1].value for name, points in parse(steps).items() if points}
        read = metrics_mod.read(self.root, self.metric_states)
        for warning in read.warnings:
            self.notify(warning)
        metrics.update(read.values)
        metrics.update(_summary_values(self.scratch / API_SUMMARY))
        return metrics, read.written, read.unreadable

    def _with_metrics_files(self, written: tuple[str, ...]) -> Snapshot:
        """The code state with the metrics files the command wrote as it left them (the snapshot predates them).

        Data and output paths stay out of the code, as in the snapshot.
        """
        declared = self.inputs + self.outputs
        under = tuple(p.rstrip("/") + "/" for p in declared)
        paths = [p for p in written if p not in declared and not p.startswith(under)]
        if not paths:
            return self.snap
        try:
            return replace(self.snap, tree=self.store.with_files(self.snap.tree, self.root, paths))
        except Exception as exc:
            self.notify(f"{_reason(exc)}; the run's code holds the metrics files as they were before it")
            return self.snap

    def _record_files(
        self, run: RunSummary, ended: datetime | None, incomplete: list[dict[str, str]] | None = None
    ) -> dict[str, bytes | Path]:
        shaped = replace(self.request, scalars=self.scalars_setting, sample_interval=self.sample_interval)
        record = _record_files(
            shaped, run, ended, self.effective_params, self.env_record, self.parent, self.config, self.root,
            self.outputs, incomplete, self.argv, self.inputs,
        )
        if ended is None:
            del record[fmt.ENV_FILE]  # not known yet: the running commit has what is
        return record

    # -- close -------------------------------------------------------------

    def close(self) -> None:
        """Stop the helpers and remove the scratch dir; an unfinished run's ref and live file go too.

        Unless its command started: such a run is never deleted. Its ref stays at its `running` commit,
        with its live file and scratch dir, so that the next `gitexp run` records it as crashed.
        """
        keep = not self.finished and self.running_commit is not None and self.command_started
        if self.sampler is not None:
            with contextlib.suppress(Exception):
                self.sampler.stop()
        if self.heartbeat is not None:
            self.heartbeat.stop()
            if not keep:
                remove_live(self.common_dir, self.heartbeat.state.name)
        if not self.finished and self.running_commit is not None and not keep:
            self.store.delete_run(self.name, self.running_commit)
        if self.scratch is not None and not keep:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.data is not None:
            self.data.close()


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
        trust = Trust.load(store.git_common_dir(), root)
        params = params_mod.effective(params_mod.load_files(root, config.params, required=False, trust=trust), []).params
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
    data = _data_session(store, root, progress, notify, config.exclude) if inputs or outputs or snap.large else None
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
        env_record = {"git": environment.git_record(store, snap)}
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


def _data_session(
    store: Store, root: Path, progress: Progress | None, notify: Notify, exclude: tuple[str, ...]
) -> DataSession:
    from gitexp.data.session import DataSession

    return DataSession(store.git_common_dir(), root, progress, notify, exclude)


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
    awaited = live_mod.awaited_scratches(store.git_common_dir())
    for old in path.glob("run-*-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid), hostname()) and str(old) not in awaited:
            shutil.rmtree(old, ignore_errors=True)  # (a crashed run's, still to be finalized, is kept)
    return path


def _record_files(
    request: RunRequest,
    run: RunSummary,
    ended: datetime | None,
    effective: dict[str, Any],
    env_record: dict[str, Any],
    parent: Pointer | None,
    config: config_mod.Config,
    root: Path,
    outputs: tuple[str, ...] = (),
    incomplete: list[dict[str, str]] | None = None,
    argv: list[str] | None = None,
    inputs: tuple[str, ...] = (),
) -> dict[str, bytes | Path]:
    cwd = os.path.relpath(request.cwd.resolve(), root.resolve())
    meta = {
        "format": fmt.FORMAT_VERSION,
        "name": run.name,
        "command": list(request.command),  # the template, when it has {name} placeholders (then argv: what ran)
        "cwd": "" if cwd == "." else cwd.replace(os.sep, "/"),
        "status": run.status,
        "exit_code": run.exit_code,
        "started": run.started,
        "ended": ended.isoformat(timespec="milliseconds") if ended else None,
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
    if argv is not None and argv != list(request.command):
        meta["argv"] = argv
    if run.sweep:
        meta["sweep"] = run.sweep
    if request.outputs:  # a queued run gets them back from here when it is executed
        meta["outputs"] = [p for p in outputs if p not in config.outputs]
    if request.data:  # -d paths, root-relative: reproduce declares them again
        meta["data"] = [p for p in inputs if p not in config.data]
    if request.scalars:
        meta["scalars"] = request.scalars
    if request.sample_interval is not None:
        meta["sample_interval"] = request.sample_interval
    if incomplete:
        meta["incomplete"] = incomplete
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
    replacing: str | None = None,
    rename: bool = True,
) -> tuple[str, str]:
    """Write the commit and ref (over the run's `running` commit); if the name was taken meanwhile, take a new one."""
    name = run.name
    for attempt in range(2, 100):
        subject = f"{name}: {run.status} ({shlex.join(command)})" if command else f"{name}: {run.status} workspace"
        message = fmt.build_message(subject, run.note, fmt.run_trailers(replace(run, name=name)))
        try:
            commit = store.write_run(
                name, snap, parent.commit if parent else None, record, message, started, ended, record_trees,
                replacing,
            )
            return commit, name
        except RunNameTaken:
            if not rename:
                raise ClaimLost(name)
            suffix = f"-{attempt}"
            new = run.name[: names.MAX_LENGTH - len(suffix)] + suffix
            notify(f"the name {name!r} was taken meanwhile; the run is recorded as {new!r}")
            name, replacing = new, None
    raise RunNameTaken(name)


def _heedless(notify: Notify) -> Notify:
    """notify, but a message that cannot be shown (gitexp's stderr closed) changes nothing."""

    def say(message: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            notify(message)

    return say


def _reason(exc: BaseException) -> str:
    """Why something failed, in a few words for a user."""
    if isinstance(exc, GitexpError):
        return exc.message
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"


def _carry_annotation(store: Store, old: str | None, new: str) -> None:
    """Tags and notes set on a run while it ran (on its `running` commit) move to its final commit."""
    annotation = store.annotation(old) if old else {}
    if annotation:
        store.annotate(new, annotation)


def _claimed_parent(store: Store, claim: RunSummary) -> Pointer | None:
    """The parent run a queued run was given when it was queued."""
    if not claim.parent:
        return None
    from gitexp.safeload import json_object

    meta = json_object(store.read_record(claim.commit, fmt.RUN_FILE) or b"{}", f"{fmt.RECORD_DIR}/{fmt.RUN_FILE} of run {claim.name!r}")
    parent = meta.get("parent_run")
    name = parent.get("name") if isinstance(parent, dict) else None
    return Pointer(name if isinstance(name, str) else "", claim.parent)


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """base with extra merged in, nested mappings key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _steps_bytes(path: Path) -> bytes:
    """A steps file's complete lines (a line cut short by a kill is dropped)."""
    try:
        data = path.read_bytes()
    except OSError:
        return b""
    return data[: data.rfind(b"\n") + 1]


def _combined_steps(scratch: Path) -> bytes:
    """The steps of a run: scalars captured from stdout, then gitexp.log's points.

    A name the script logs itself is taken from gitexp.log alone: a script that also prints it
    (with --scalars on) would otherwise get every point twice.
    """
    import json

    captured, logged = _steps_bytes(scratch / CAPTURED_STEPS), _steps_bytes(scratch / API_STEPS)
    if not captured or not logged:
        return captured + logged
    from gitexp.series import last_line_of_each

    names = last_line_of_each(logged)
    kept = []
    for line in captured.splitlines(keepends=True):
        try:
            item = json.loads(line)
            values = {k: v for k, v in item["values"].items() if k not in names}
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue
        if values:
            kept.append(json.dumps({**item, "values": values}, separators=(",", ":")).encode() + b"\n")
    return b"".join(kept) + logged


def _summary_values(path: Path) -> dict[str, Any]:
    """What gitexp.summary() calls gave, later calls winning."""
    import json

    values: dict[str, Any] = {}
    for line in _steps_bytes(path).splitlines():
        try:
            item = json.loads(line)
            fmt.compact_json(item)  # a value nested too deeply is skipped here, not fatal in the record
        except (ValueError, RecursionError):
            continue
        if isinstance(item, dict):
            values.update(item)
    return values


def _artifacts(path: Path, root: Path, notify: Notify) -> tuple[str, ...]:
    """The workspace-relative paths gitexp.log_artifact() named (outside the workspace: skipped, said)."""
    import json

    found: list[str] = []
    for line in _steps_bytes(path).splitlines():
        try:
            target = Path(os.path.abspath(json.loads(line)["path"]))  # "a/../../b" is outside
        except (ValueError, KeyError, TypeError, RecursionError):
            continue
        try:
            rel = target.relative_to(root.resolve())
        except ValueError:
            notify(f"artifact {target} is outside the workspace {root}: not recorded (save artifacts inside it)")
            continue
        if not os.path.lexists(target):
            notify(f"artifact {rel.as_posix()} no longer exists at the end of the run: not recorded")
            continue
        found.append(rel.as_posix())
    return tuple(dict.fromkeys(found))


def finalize_crashed(store: Store, notify: Notify) -> list[str]:
    """Write the final `crashed` commit of every run whose recorder on this host died, from what it left."""

    def finish(state: LiveState) -> None:
        commit = store.run_commit(state.name)
        if commit != state.commit:
            return  # deleted, renamed or finished meanwhile
        run = store.summary(state.name, commit)
        scratch = Path(state.scratch)
        files: dict[str, bytes | Path] = {}
        for filename in (fmt.STDOUT_FILE, fmt.STDERR_FILE, fmt.LOG_TIMES_FILE, fmt.SYSTEM_FILE, fmt.ENV_FILE):
            if (scratch / filename).is_file():
                files[filename] = scratch / filename
        steps = _combined_steps(scratch)
        if steps:
            files[fmt.STEPS_FILE] = steps
        from gitexp.sampler import summarise_samples
        from gitexp.series import parse

        metrics = {**state.metrics, **{k: points[-1].value for k, points in parse(steps).items() if points}}
        last = max([state.updated, state.started] + [p.stat().st_mtime for p in files.values() if isinstance(p, Path)])
        duration = round(last - state.started, 3)
        ended = datetime.fromtimestamp(last, timezone.utc).astimezone()
        import json

        meta = json.loads(store.read_record(commit, fmt.RUN_FILE) or b"{}")
        meta.update(status="crashed", duration=duration, ended=ended.isoformat(timespec="milliseconds"))
        files[fmt.RUN_FILE] = fmt.to_json(meta).encode()
        files[fmt.METRICS_FILE] = fmt.to_json(metrics).encode()
        resources = summarise_samples(_steps_bytes(scratch / fmt.SYSTEM_FILE))
        if resources:
            files[fmt.RESOURCES_FILE] = fmt.to_json(resources).encode()
        final = replace(run, status="crashed", duration=duration, metrics=metrics, resources=resources, recorder="")
        subject = run.subject.replace(": running", ": crashed", 1)
        new = store.amend_record(state.name, commit, files, fmt.build_message(subject, run.note, fmt.run_trailers(final)))
        _carry_annotation(store, commit, new)

    try:
        return live_mod.finalize_crashed(store.git_common_dir(), finish)
    except GitexpError as exc:
        notify(f"a crashed run could not be finalized: {exc.message}")
    except OSError as exc:  # what it left could not be read: it stays for the next run to try; this one goes on
        notify(f"a crashed run could not be finalized: {exc}")
    return []

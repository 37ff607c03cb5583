"""Log from inside a training script: `gitexp.log`, `summary`, `log_params`, `log_artifact`, `params`, `start`.

Under `gitexp run` the calls write into the run's scratch directory, which the
environment variable GITEXP_RUN_DIR names; `gitexp run` folds what they wrote
into the run's record when the command ends. Outside it, `gitexp.start()`
records a run from this process (a script or a notebook). With no run at all,
every call is a cheap no-op that warns once: tracking never kills training.

This module is imported by scripts, so it imports nothing heavy until needed.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gitexp.recorder import Recording

ENV_RUN_DIR = "GITEXP_RUN_DIR"  # the same as gitexp.recorder.ENV_RUN_DIR (not imported: it pulls in pygit2)
ENV_RUN_ROOT = "GITEXP_RUN_ROOT"  # the work tree of the run (gitexp.recorder.ENV_RUN_ROOT)
FLUSH_SECONDS = 1.0  # logged points reach the file at least this often, so `gitexp list` sees them live
MAX_PENDING = 1000  # or when this many points wait
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


class _Writer:
    """Appends steps lines to the run's scratch files: whole lines per write, flushed every FLUSH_SECONDS and at exit."""

    def __init__(self, run_dir: Path, eager: bool = False) -> None:
        self.run_dir = run_dir
        self._fd = os.open(run_dir / "steps.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._pending: list[str] = []
        self._max_pending = 1 if eager else MAX_PENDING  # a forked child may end by os._exit: write at once
        self._next_flush = time.monotonic() + FLUSH_SECONDS
        self._lock = threading.Lock()
        self._bad: set[str] = set()
        self._pid = os.getpid()
        self.rank = process_rank()  # under torchrun & co: only rank 0 makes the series (see log)
        if not eager:  # points logged before a long pause (an epoch) must not wait in memory for the next call
            threading.Thread(target=self._flush_regularly, name="gitexp-flush", daemon=True).start()

    def _flush_regularly(self) -> None:
        while self._fd >= 0 and os.getpid() == self._pid:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def log(self, values: Mapping[str, Any], step: int | None, all_ranks: bool = False) -> None:
        if self.rank:
            if not all_ranks:
                return
            values = {f"{k}@rank{self.rank}": v for k, v in values.items()} if isinstance(values, Mapping) else values
        try:
            self._log(values, step)
        except Exception as exc:  # noqa: BLE001 - logging must never kill training
            _warn(f"gitexp.log: {type(exc).__name__}: {exc}; not logged")

    def _log(self, values: Mapping[str, Any], step: int | None) -> None:
        if not isinstance(values, Mapping):
            raise TypeError(f"give a dict of name -> number, e.g. gitexp.log({{'loss': 0.4}}), not {type(values).__name__}")
        clean: dict[str, float | str] = {}
        for key, value in values.items():
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                self._reject(key, value)
                continue
            if math.isnan(number):
                clean[str(key)] = "NaN"
            elif number in _NON_FINITE:
                clean[str(key)] = _NON_FINITE[number]
            else:
                clean[str(key)] = number
        if not clean:
            return
        try:
            step_text = "null" if step is None else int(step)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"step must be an integer, not {step!r}") from None
        line = f'{{"step":{step_text},"time":{time.time():.3f},"values":{json.dumps(clean, separators=(",", ":"))}}}\n'
        with self._lock:
            self._pending.append(line)
            if len(self._pending) >= self._max_pending or time.monotonic() >= self._next_flush:
                self._flush()

    def _flush(self) -> None:
        data, self._pending = "".join(self._pending).encode(), []
        self._next_flush = time.monotonic() + FLUSH_SECONDS
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            _warn(f"gitexp.log: cannot write to the run's directory ({exc}); points lost")

    def _reject(self, key: object, value: object) -> None:
        if str(key) not in self._bad:
            self._bad.add(str(key))
            _warn(f"gitexp.log: {key!r} is not a number ({type(value).__name__}); not logged")

    def append(self, filename: str, item: dict[str, Any]) -> None:
        """One JSON line to a small side file (summary, artifacts), written at once."""
        with open(self.run_dir / filename, "ab") as f:
            f.write((json.dumps(item, default=str) + "\n").encode())

    def flush(self) -> None:
        with self._lock:
            if self._pending and self._fd >= 0:
                self._flush()

    def close(self) -> None:
        self.flush()
        with self._lock:
            fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


_writer: _Writer | None = None
_active: ActiveRun | None = None
_warned: set[str] = set()


def _warn(message: str) -> None:
    """Once per message, on stderr (not the warnings module: `-W error` would turn it into an exception)."""
    if message not in _warned:
        _warned.add(message)
        with contextlib.suppress(Exception):
            print(message, file=sys.stderr, flush=True)


def _current() -> _Writer | None:
    """The writer of the run being recorded (found through GITEXP_RUN_DIR), or None: no run."""
    global _writer
    if _writer is not None:
        return _writer
    run_dir = os.environ.get(ENV_RUN_DIR)
    if not run_dir or not os.path.isdir(run_dir):
        _warn("gitexp: no run is being recorded (use `gitexp run -- ...` or `with gitexp.start():`); not logged")
        return None
    try:
        _writer = _Writer(Path(run_dir), eager=_forked)
    except OSError as exc:
        _warn(f"gitexp: cannot write to the run's directory {run_dir}: {exc}; not logged")
        return None
    return _writer


_forked = False


def _forget_writer() -> None:
    """In a forked child (a DataLoader worker): drop the parent's buffer, open the file anew on the next call,
    and write each point at once (a child often ends with os._exit, which runs no exit handler)."""
    global _writer, _forked
    _writer, _forked = None, True


os.register_at_fork(after_in_child=_forget_writer)
atexit.register(lambda: _writer.close() if _writer is not None else None)


def process_rank() -> int:
    """This process's rank in a distributed job (torchrun, accelerate, Lightning DDP, ...), 0 when there is none.

    RANK (torchrun, accelerate, deepspeed) is the global rank; without it, LOCAL_RANK on node NODE_RANK
    (Lightning's own launcher sets only these): NODE_RANK x LOCAL_WORLD_SIZE (else WORLD_SIZE) + LOCAL_RANK.
    """
    env = os.environ

    def number(name: str) -> int:
        text = env.get(name, "").strip()
        return int(text) if text.isdigit() else 0

    if env.get("RANK", "").strip().isdigit():
        return number("RANK")
    local, node = number("LOCAL_RANK"), number("NODE_RANK")
    return node * max(number("LOCAL_WORLD_SIZE") or number("WORLD_SIZE"), local + 1) + local if node else local


def log(values: Mapping[str, Any], step: int | None = None, all_ranks: bool = False) -> None:
    """Record one point of each named series, e.g. log({"loss": 0.41, "acc": 0.88}, step=epoch).

    Values are anything float() takes (Python, NumPy or 0-d tensor numbers);
    NaN and infinities are kept. The last point of each series becomes the
    run's metric of that name, unless a metrics file or summary() says otherwise.
    In a distributed job (RANK / LOCAL_RANK set) only rank 0's points are kept;
    all_ranks=True keeps the other ranks' too, as `name@rank1`, `name@rank2`, ...
    """
    writer = _writer or _current()
    if writer is not None:
        writer.log(values, step, all_ranks)


def summary(values: Mapping[str, Any]) -> None:
    """Set final metrics of the run (they win over the last logged points and the metrics files).

    In a distributed job only rank 0's call counts.
    """
    writer = _writer or _current()
    if writer is not None and not writer.rank:
        writer.append("summary.jsonl", {str(k): _plain(v) for k, v in values.items()})


def log_params(values: Any) -> None:
    """Record params the script uses (a mapping, an argparse.Namespace or an OmegaConf/Hydra DictConfig).

    They are merged into the run's params when it ends, over the params files and -S: the script's
    values are what ran (-S reaches a script only through its params files, a `{key}` of the command
    or gitexp.params()). Nested mappings nest; values that are not JSON become their text. Rank 0 only.
    """
    writer = _writer or _current()
    if writer is None or writer.rank:
        return
    try:
        writer.append("logged_params.jsonl", _as_mapping(values))
    except Exception as exc:  # noqa: BLE001 - recording params must never kill training
        _warn(f"gitexp.log_params: {type(exc).__name__}: {exc}; not recorded")


def _as_mapping(values: Any) -> dict[str, Any]:
    if type(values).__module__.startswith("omegaconf"):  # DictConfig: resolved, without importing omegaconf
        import importlib

        values = importlib.import_module("omegaconf").OmegaConf.to_container(values, resolve=True)
    elif not isinstance(values, Mapping) and hasattr(values, "__dict__"):  # argparse.Namespace & co
        values = vars(values)
    if not isinstance(values, Mapping):
        raise TypeError(f"give a dict, an argparse.Namespace or a DictConfig, not {type(values).__name__}")
    return {str(k): _as_mapping(v) if isinstance(v, Mapping) else _param(v) for k, v in values.items()}


def _param(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_param(v) for v in value]
    return str(value)  # a path, an enum, a dtype, ...


def log_artifact(path: str | os.PathLike[str]) -> None:
    """Record a file or directory the run produced: cached by content, its pointer in the run (`gitexp which`).

    Refused, with a warning, for a path outside the run's workspace and for a file that looks like a
    secret (`.env`, `*.key`, ...: artifacts are shared with the run); never raises.
    """
    writer = _writer or _current()
    if writer is None:
        return
    try:
        target = os.path.abspath(os.fspath(path))  # "a/../../b" is normalized, so it is seen to be outside
        refused = _refused_artifact(target)
        if refused is None:
            writer.append("artifacts.jsonl", {"path": target})
    except Exception as exc:  # noqa: BLE001 - recording an artifact must never kill training
        refused = f"{type(exc).__name__}: {exc}"
    if refused is not None:
        _warn(f"gitexp.log_artifact: {refused}; not recorded")


def _refused_artifact(target: str) -> str | None:
    from gitexp.trust import secret_pattern

    if not os.path.exists(target):
        return f"{target} does not exist"
    secret = secret_pattern(os.path.basename(target))
    if secret is not None:
        return f"{target} looks like a secret ({secret}), and artifacts are shared with the run (rename it if it is not one)"
    root = os.environ.get(ENV_RUN_ROOT)
    if root:
        real, real_root = os.path.realpath(target), os.path.realpath(root)
        rel = os.path.relpath(real, real_root)
        parts = Path(rel).parts
        if rel == os.curdir or parts[0] == os.pardir or ".git" in {p.lower() for p in parts}:
            return f"{target} is outside the workspace {root} (save artifacts inside it, not in .git)"
    return None


def params() -> dict[str, Any]:
    """The run's effective params (params files with the -S overrides applied), as a nested dict.

    With no run being recorded: the params files of the repository around the
    current directory as they are (so the script also works without gitexp).
    """
    run_dir = _writer.run_dir if _writer is not None else os.environ.get(ENV_RUN_DIR)
    if run_dir:
        try:
            data = json.loads(Path(run_dir, "params.json").read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            pass
    try:
        from gitexp import config
        from gitexp import paramfiles as params_mod
        from gitexp.store import Store
        from gitexp.trust import Trust

        store = Store.discover()
        root = store.root
        trust = Trust.load(store.git_common_dir(), root)
        files = params_mod.load_files(root, config.load(root).params, required=False, trust=trust)
        return params_mod.effective(files, []).params
    except Exception as exc:  # noqa: BLE001 - reading params must never stop a script
        _warn(f"gitexp.params: no params ({exc})")
        return {}


def _plain(value: Any) -> Any:
    """A summary value as JSON can hold it: numbers as floats where float() takes them, else as they are."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "NaN" if math.isnan(number) else _NON_FINITE.get(number, number)


class ActiveRun:
    """A run recorded from this process; a context manager (also closed at interpreter exit)."""

    def __init__(self, recording: Recording) -> None:
        self._recording = recording
        self.name = recording.name
        self.commit = ""
        self.ended = False
        self.uncaught: type[BaseException] | None = None  # set by the excepthook: the script died of it
        self._owner = os.getpid()
        self._previous_dir: str | None = None

    def __enter__(self) -> ActiveRun:  # noqa: PYI034
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None or (kind is SystemExit and getattr(exc, "code", None) in (0, None)):
            self.end()  # sys.exit(0) in the block is a normal end
        else:
            self.keep_traceback(kind, exc, tb)
            self.end(interrupted=issubclass(kind, KeyboardInterrupt), failed=True)

    def keep_traceback(self, kind: type[BaseException], exc: BaseException | None, tb: TracebackType | None) -> None:
        """Keep the exception the run dies of, as Python prints it, as the record's stderr.log (read by `gitexp show`)."""
        if self.ended or os.getpid() != self._owner or self._recording.scratch is None:
            return
        import traceback

        from gitexp.format import STDERR_FILE  # the recorder takes it from the scratch dir into the record

        text = "".join(traceback.format_exception(kind, exc, tb))
        try:
            with open(self._recording.scratch / STDERR_FILE, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(text)
        except OSError as error:
            _warn(f"gitexp: cannot keep the traceback of run {self.name}: {error}")

    def end(self, failed: bool = False, interrupted: bool = False) -> None:
        """Finish the run: status completed (or failed/interrupted), with everything logged so far."""
        global _writer, _active
        if self.ended or os.getpid() != self._owner:
            return  # a forked child leaving the block or exiting: the run is its parent's to end
        self.ended = True
        if _writer is not None:
            _writer.close()
            _writer = None
        os.environ.pop(ENV_RUN_DIR, None)
        os.environ.pop(ENV_RUN_ROOT, None)
        _active = None
        try:
            result = self._recording.finish(1 if failed else 0, interrupted)
            self.commit = result.run.commit
            self.name = result.run.name
        finally:
            self._recording.close()
            if self._previous_dir is not None:
                os.environ[ENV_RUN_DIR] = self._previous_dir


def start(
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    note: str = "",
    tags: tuple[str, ...] | list[str] = (),
    sweep: Mapping[str, Any] | None = None,
) -> ActiveRun:
    """Record a run from this Python process (a script or a notebook), in the repository around the cwd.

    `with gitexp.start(name="baseline", params={"lr": 0.1}):` ... The code state
    is snapshot now; params are the params files merged with `params`; the
    process's hardware use is sampled; the run ends with the block (failed if
    it raised), or at exit. Under `gitexp run` there is a run already: this
    raises, as does any problem found before the run starts (not a repo, ...).
    `sweep` makes the run one of a sweep (recorded as run.json `sweep` and the
    Gitexp-Sweep trailer: `id` shared by the sweep's runs, `index`, ...), as the
    Optuna integration does for a study's trials.
    """
    global _active, _writer
    from gitexp.errors import GitexpError
    from gitexp.recorder import Recording, RunRequest

    if os.environ.get(ENV_RUN_DIR) and os.environ.get("GITEXP_RUN_NAME"):
        raise GitexpError("gitexp.start(): this process runs under `gitexp run`, which records it already")
    if _active is not None and not _active.ended:
        raise GitexpError(f"gitexp.start(): run {_active.name!r} is still active (end it first: run.end())")
    argv = [sys.executable, *sys.argv] if sys.argv and sys.argv[0] else [sys.executable]
    request = RunRequest(
        command=argv, cwd=Path.cwd(), name=name, note=note, tags=tuple(tags), extra_params=dict(params or {}),
        in_process=True, sweep=dict(sweep) if sweep else None,
    )
    recording = Recording.begin(request, notify=lambda msg: _warn(f"gitexp: {msg}"))
    assert recording.scratch is not None
    run = ActiveRun(recording)
    run._previous_dir = os.environ.get(ENV_RUN_DIR)
    if _writer is not None:
        _writer.close()
    _writer = _Writer(recording.scratch)
    os.environ[ENV_RUN_DIR] = str(recording.scratch)  # child processes log into this run too
    os.environ[ENV_RUN_ROOT] = str(recording.root)
    recording.start_sampler(os.getpid(), include_self=True)
    _active = run
    previous_hook = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        run.uncaught = kind
        run.keep_traceback(kind, value, tb)
        previous_hook(kind, value, tb)

    sys.excepthook = hook
    atexit.register(_end_at_exit, run)
    return run


def _end_at_exit(run: ActiveRun) -> None:
    if not run.ended:
        kind = run.uncaught
        try:
            run.end(failed=kind is not None, interrupted=kind is not None and issubclass(kind, KeyboardInterrupt))
        except Exception as exc:  # noqa: BLE001 - at exit, a message is all that is left to give
            print(f"gitexp: run {run.name} could not be recorded: {exc}", file=sys.stderr)

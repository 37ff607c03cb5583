"""Optuna search: `gitexp run --optuna N -S lr='loguniform(1e-4,1e-1)' -S batch=32,64 --metric acc -- python train.py`.

Optuna's sampler (TPE by default) chooses N configs, each run as a real `gitexp run` of one sweep:
one after another, or `-j J` at a time (ask/tell: a trial is asked for whenever a slot is free, told
when its run ends). The search space is the -S syntax of `--random` (gitexp.sweep.parse_axis):

    uniform(a,b)      a float in [a, b]              (optuna: suggest_float)
    loguniform(a,b)   a float in [a, b], log scale   (suggest_float(log=True); a > 0)
    randint(a,b)      an integer in [a, b]           (suggest_int)
    32,64 / [32,64] / choice(32,64)   one of these   (suggest_categorical)
    0.1               fixed: the same in every run

The metric is optimized in its configured direction (`direction:` of .gitexp.yaml, else guessed from
its name: gitexp.config.higher_is_better), and is read from each run's final metrics. While a run is
live, the points of its step series of that metric (gitexp.log, captured scalars) are reported to its
trial; when the pruner says so, the run's recorder gets SIGTERM: the command is stopped as for any
interrupted run, the run is recorded `interrupted` with the tag `pruned`, and the trial is told PRUNED.
A run that fails, crashes or records no number for the metric is a FAIL trial; the search goes on.

Every trial runs in a temporary copy of the code (a queue worker, gitexp.queue), so that it can be
stopped alone. Each run's `Gitexp-Sweep` carries `method: optuna`, `metric`, `direction` and `sampler`;
`--sweep ID` continues a search: the study is rebuilt from the runs that sweep already holds.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gitexp import format as fmt
from gitexp.errors import GitexpError, InvalidOverride
from gitexp.recorder import Recording, RunRequest
from gitexp.sweep import BadSweep, parse_axis

SAMPLERS = ("tpe", "random", "cmaes", "qmc", "gp")
PRUNERS = ("median", "hyperband", "none")
PRUNED_TAG = "pruned"
POLL_SECONDS = 0.2  # how often the step series of the live runs are read
MAX_TRIALS = 10_000
MAX_INDEX = 1_000_000  # a recorded index beyond it (a hostile record) does not push the numbering
_KEY = re.compile(r"^\+?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_SWEEP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class OptunaMissing(GitexpError):
    def __init__(self) -> None:
        super().__init__("--optuna needs optuna: pip install 'gitexp[optuna]'")


class BadSearch(GitexpError):
    pass


@dataclass(frozen=True)
class Param:
    """One -S of a search: a distribution, or a fixed value (kind 'fixed', its one text in choices)."""

    key: str  # as given (a leading '+' adds a key no params file defines)
    kind: str  # float | int | categorical | fixed
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()  # YAML texts

    @property
    def name(self) -> str:
        return self.key.lstrip("+")


@dataclass(frozen=True)
class Spec:
    """What to search: how many trials, for which metric, how."""

    trials: int
    metric: str
    space: tuple[Param, ...]
    sampler: str = "tpe"
    pruner: str = "median"
    prune_after: int = 5  # trials completed before the median pruner prunes (optuna's n_startup_trials)
    jobs: int = 1
    random_seed: int | None = None
    sweep_id: str | None = None  # continue this sweep
    gpus_per_run: int | None = None


@dataclass
class Trial:
    """One trial of the search and how it ended."""

    number: int  # optuna's trial number
    index: int  # in the sweep
    name: str
    overrides: tuple[str, ...]
    status: str = "running"
    value: float | None = None
    state: str = ""  # COMPLETE | PRUNED | FAIL
    error: str = ""


@dataclass
class Result:
    sweep_id: str
    direction: str  # maximize | minimize
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None
    resumed: int = 0  # trials rebuilt from the sweep's earlier runs


def parse_space(overrides: tuple[str, ...]) -> tuple[Param, ...]:
    """The -S of a search as distributions; a bad one raises a one-line error."""
    space: list[Param] = []
    for text in overrides:
        key = text.partition("=")[0].strip()
        if not _KEY.match(key):
            raise InvalidOverride(text, "a searched param's name is letters, digits, '_' and '-', dotted for nested keys")
        axis = parse_axis(text)
        if axis.sampler is not None:
            kind, (low, high) = axis.sampler
            if not (math.isfinite(low) and math.isfinite(high)):
                raise InvalidOverride(text, f"{kind}() takes two finite numbers")
            if low >= high:
                raise InvalidOverride(text, f"{kind}() needs low < high (to fix a value, give it alone: -S {key}={low:g})")
            if kind == "randint":
                space.append(Param(axis.key, "int", low, high))
            else:
                space.append(Param(axis.key, "float", low, high, log=kind == "loguniform"))
        elif len(axis.values) == 1:
            space.append(Param(axis.key, "fixed", choices=axis.values))
        else:
            if len(set(axis.values)) != len(axis.values):
                raise InvalidOverride(text, "a value is given twice in the list")
            space.append(Param(axis.key, "categorical", choices=axis.values))
    names = [p.name for p in space]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise BadSweep(f"-S {twice}=... is given twice (give all its values in one -S: {twice}=a,b,c)")
    if not any(p.kind != "fixed" for p in space):
        raise BadSearch("--optuna needs a search space: -S KEY=uniform(a,b), loguniform(a,b), randint(a,b) or a,b,c")
    return tuple(space)


def check(spec: Spec) -> None:
    """Refuse a bad spec before anything is recorded."""
    if spec.trials < 1 or spec.trials > MAX_TRIALS:
        raise BadSearch(f"--optuna takes a number of trials from 1 to {MAX_TRIALS}")
    if not spec.metric.strip() or any(not part for part in spec.metric.split(".")) or not spec.metric.isprintable():
        raise BadSearch(f"--metric {spec.metric!r} is not a metric name (e.g. --metric acc)")
    if spec.sampler not in SAMPLERS:
        raise BadSearch(f"unknown --sampler {spec.sampler!r} (use one of: {', '.join(SAMPLERS)})")
    if spec.pruner not in PRUNERS:
        raise BadSearch(f"unknown --pruner {spec.pruner!r} (use one of: {', '.join(PRUNERS)})")
    if spec.sweep_id is not None and not _SWEEP_ID.match(spec.sweep_id):
        raise BadSearch(f"--sweep {spec.sweep_id!r} is not a sweep id (e.g. sw-3f9a2c1b; see gitexp list)")


def load_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise OptunaMissing() from exc
    import warnings

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def _needs(module: str, sampler: str, install: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise BadSearch(f"--sampler {sampler} needs {module}: pip install {install}")


def make_sampler(optuna: Any, name: str, seed: int | None) -> Any:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        _needs("cmaes", name, "cmaes")
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed)
    if name == "gp":
        _needs("torch", name, "torch scipy")
        _needs("scipy", name, "torch scipy")
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(optuna: Any, name: str, prune_after: int) -> Any:
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=prune_after)


def distributions(optuna: Any, space: tuple[Param, ...]) -> dict[str, Any]:
    d = optuna.distributions
    out: dict[str, Any] = {}
    for p in space:
        if p.kind == "float":
            out[p.name] = d.FloatDistribution(p.low, p.high, log=p.log)
        elif p.kind == "int":
            out[p.name] = d.IntDistribution(int(p.low), int(p.high))
        elif p.kind == "categorical":
            out[p.name] = d.CategoricalDistribution(p.choices)
    return out


def overrides_of(params: dict[str, Any], space: tuple[Param, ...]) -> tuple[str, ...]:
    """A trial's params as -S texts (fixed values included), in the order of the -S given."""
    out = []
    for p in space:
        if p.kind == "fixed":
            out.append(f"{p.key}={p.choices[0]}")
        elif p.kind == "float":
            out.append(f"{p.key}={float(params[p.name])!r}")
        else:
            out.append(f"{p.key}={params[p.name]}")
    return tuple(out)


def params_of(overrides: Any, space: tuple[Param, ...]) -> dict[str, Any] | None:
    """The searched params of a recorded run (its sweep's overrides), or None when they do not fit the space."""
    from gitexp.paramfiles import parse_override

    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        return None
    given = {o.partition("=")[0].lstrip("+").strip(): o for o in overrides}
    out: dict[str, Any] = {}
    for p in space:
        if p.kind == "fixed":
            continue
        text = given.get(p.name)
        if text is None:
            return None
        raw = text.partition("=")[2]
        if p.kind == "categorical":
            if raw not in p.choices:
                return None
            out[p.name] = raw
            continue
        try:
            value = parse_override(text)[1]
        except GitexpError:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        if p.kind == "int":
            if float(value) != int(value):
                return None
            value = int(value)
        else:
            value = float(value)
        if not p.low <= value <= p.high:
            return None
        out[p.name] = value
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def resume(optuna: Any, study: Any, store: Any, spec: Spec, notify: Callable[[str], None]) -> tuple[int, int]:
    """Add the runs already in sweep spec.sweep_id to the study; (how many were added, the next index)."""
    from gitexp import query

    runs = [r for r in query.runs(store) if r.sweep.get("id") == spec.sweep_id]
    if not runs:
        raise BadSearch(f"no run belongs to sweep {spec.sweep_id} (gitexp list shows each run's sweep)")
    metrics = {r.sweep.get("metric") for r in runs} - {None}
    if metrics and metrics != {spec.metric}:
        theirs = ", ".join(sorted(str(m) for m in metrics))
        raise BadSearch(f"sweep {spec.sweep_id} optimized {theirs}, not {spec.metric} (give --metric {theirs})")
    dists = distributions(optuna, spec.space)
    indexes = [i for r in runs if isinstance(i := r.sweep.get("index"), int) and not isinstance(i, bool) and 0 <= i < MAX_INDEX]
    added, skipped = 0, []
    for run in sorted(runs, key=lambda r: (r.started_at, r.name)):
        if run.status in ("queued", "running"):
            continue
        params = params_of(run.sweep.get("overrides"), spec.space)
        if params is None:
            skipped.append(run.name)
            continue
        value = _number(run.metrics.get(spec.metric))
        State = optuna.trial.TrialState
        if run.status == "completed" and value is not None:
            state, values = State.COMPLETE, value
        elif PRUNED_TAG in run.tags:
            state, values = State.PRUNED, None
        else:
            state, values = State.FAIL, None
        try:
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=values, state=state))
        except ValueError:  # a value optuna refuses (a hostile or hand-made record)
            skipped.append(run.name)
            continue
        added += 1
    if skipped:
        notify(f"sweep {spec.sweep_id}: {len(skipped)} run(s) outside this search space left out ({', '.join(skipped[:5])})")
    return added, max(indexes, default=-1) + 1


class _Tail:
    """The new points of one metric in a live run's step files (read incrementally)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.offsets: dict[Path, int] = {}
        self.reported: set[int] = set()
        self.count = 0

    def points(self, scratch: Path) -> list[tuple[int, float]]:
        from gitexp.recorder import API_STEPS, CAPTURED_STEPS
        from gitexp.series import parse

        out: list[tuple[int, float]] = []
        for path in (scratch / API_STEPS, scratch / CAPTURED_STEPS):
            offset = self.offsets.get(path, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read(1 << 22)
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1  # a line being written waits for the next look
            self.offsets[path] = offset + end
            for point in parse(chunk[:end]).get(self.metric, []):
                step = point.step if point.step is not None else self.count
                self.count += 1
                if step not in self.reported and math.isfinite(point.value):
                    self.reported.add(step)
                    out.append((step, point.value))
        return out


    def recorded(self, steps: bytes) -> list[tuple[int, float]]:
        """The points of the run's final record not reported yet."""
        from gitexp.series import parse

        out = []
        for i, point in enumerate(parse(steps).get(self.metric, [])):
            step = point.step if point.step is not None else i
            if step not in self.reported and math.isfinite(point.value):
                self.reported.add(step)
                out.append((step, point.value))
        return out


@dataclass
class _Slot:
    worker: Any  # gitexp.queue._Worker
    trial: Any = None  # optuna's Trial
    record: Trial | None = None
    tail: _Tail | None = None
    pruned: bool = False


def search(base: RunRequest, spec: Spec, notify: Callable[[str], None]) -> Result:
    """Run the search; Stopped (gitexp.queue) when a signal stops it, after its runs were recorded."""
    check(spec)
    optuna = load_optuna()
    from gitexp import config as config_mod
    from gitexp import queue
    from gitexp.store import Store

    store = Store.discover(base.cwd)
    direction = "maximize" if config_mod.higher_is_better(config_mod.load(store.root), spec.metric) else "minimize"
    seed = spec.random_seed
    study = optuna.create_study(
        direction=direction, sampler=make_sampler(optuna, spec.sampler, seed),
        pruner=make_pruner(optuna, spec.pruner, spec.prune_after),
    )
    sweep_id = spec.sweep_id or "sw-" + os.urandom(4).hex()
    result = Result(sweep_id, direction)
    next_index = 0
    if spec.sweep_id is not None:
        result.resumed, next_index = resume(optuna, study, store, spec, notify)
    info: dict[str, Any] = {"method": "optuna", "metric": spec.metric, "direction": direction, "sampler": spec.sampler}
    if seed is not None:
        info["random_seed"] = seed
    size = next_index + spec.trials
    common = store.git_common_dir()
    gpus = queue.visible_gpus()
    queue.remove_stale_worktrees()
    slots: list[_Slot] = []
    asked = 0
    pending: str | None = None  # queued, not yet given to a worker
    quiet = _once(notify)  # a warning every run would repeat (uncommitted changes, ...) is said once
    what = f"{spec.jobs} at a time" if spec.jobs > 1 else "one after another"
    announce = (f"sweep {sweep_id}: {spec.trials} {spec.sampler} trials for {'max' if direction == 'maximize' else 'min'}"
                f"imal {spec.metric}, {what} (find them with: gitexp list --where 'sweep = {sweep_id}')")
    restore_signals = queue._terminate_on_signals()
    try:
        while True:
            while asked < spec.trials and sum(s.trial is not None for s in slots) < spec.jobs:
                trial = study.ask()
                overrides = overrides_of(_suggest(trial, spec.space), spec.space)
                index = next_index + asked
                asked += 1
                name = f"{base.name}-{index + 1}" if base.name else None
                record = {"id": sweep_id, "index": index, "size": size, "overrides": list(overrides), **info}
                request = replace(base, name=name, overrides=overrides, sweep=record, update_pointer=False)
                try:
                    queued = Recording.enqueue(request, quiet)
                except BaseException:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    raise
                pending = queued.name
                if asked == 1:  # said once the first run is queued: a refused one says only why
                    notify(announce)
                slot = next((s for s in slots if s.trial is None), None)
                if slot is None:
                    used = {s.worker.slot for s in slots}
                    number = min(set(range(spec.jobs + len(slots))) - used)
                    slot = _Slot(queue._Worker(store, number, queue.share(number, spec.jobs, gpus, spec.gpus_per_run)))
                    slots.append(slot)
                slot.trial, slot.pruned, slot.tail = trial, False, _Tail(spec.metric)
                slot.record = Trial(trial.number, index, queued.name, overrides)
                result.trials.append(slot.record)
                slot.worker.give(queued.name)
                pending = None
                notify(f"started {queued.name} ({', '.join(overrides)})")
            busy = [s for s in slots if s.trial is not None]
            if not busy:
                break
            ready, _, _ = select.select([s.worker.events for s in busy], [], [], POLL_SECONDS)
            for slot in busy:
                if slot.worker.events in ready:
                    _finish(slot, slots, store, study, optuna, spec, result, notify)
                elif spec.pruner != "none" and not slot.pruned:
                    _watch(slot, common, notify)
    except (KeyboardInterrupt, queue.Stopped, GitexpError) as exc:
        _stop_all(slots, exc, queue)
        if pending is not None:
            with contextlib.suppress(GitexpError):
                queue.cancel(store, [pending])
        for slot in slots:
            if slot.trial is None or slot.record is None:
                continue
            with contextlib.suppress(Exception):  # (a trial told already, when the signal came as it was told)
                _settle(slot, store, study, optuna, spec, result, queue._finished(store, slot.record.name, ""))
        if isinstance(exc, GitexpError):
            raise
        signum = exc.signum if isinstance(exc, queue.Stopped) else signal.SIGINT
        raise queue.Stopped(signum, []) from None
    finally:
        for slot in slots:
            slot.worker.close()
        for slot in slots:
            slot.worker.proc.wait()
            slot.worker.events.close()
        restore_signals()
    result.best = _best(result.trials, direction)
    return result


def _once(notify: Callable[[str], None]) -> Callable[[str], None]:
    said: set[str] = set()

    def tell(message: str) -> None:
        if message not in said:
            said.add(message)
            notify(message)

    return tell


def _suggest(trial: Any, space: tuple[Param, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in space:
        if p.kind == "float":
            out[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        elif p.kind == "int":
            out[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high))
        elif p.kind == "categorical":
            out[p.name] = trial.suggest_categorical(p.name, p.choices)
    return out


def _watch(slot: _Slot, common: Path, notify: Callable[[str], None]) -> None:
    """Report the run's new points to its trial; stop the run when the pruner says so."""
    from gitexp import live

    assert slot.record is not None and slot.tail is not None
    state = live.read(common, slot.record.name)
    if state is None or state.pid != slot.worker.proc.pid:
        return  # not started yet, or already finished
    points = slot.tail.points(Path(state.scratch))
    for step, value in points:
        slot.trial.report(value, step)
    if points and slot.trial.should_prune():
        slot.pruned = True
        notify(f"pruning {slot.record.name}: {slot.tail.metric} at step {points[-1][0]} is {points[-1][1]:g}")
        slot.worker.proc.send_signal(signal.SIGTERM)  # its recorder stops the command and records it interrupted


def _finish(slot: _Slot, slots: list[_Slot], store: Any, study: Any, optuna: Any, spec: Spec, result: Result,
            notify: Callable[[str], None]) -> None:
    from gitexp import queue

    assert slot.record is not None
    answer = slot.worker.answer()
    if answer is None:  # the worker died: its run is crashed
        slot.worker.proc.wait()
        queue._bury(store, slot.worker.proc.pid, slot.record.name)
    outcome = queue._finished(store, slot.record.name, answer[1] if answer else "its worker died")
    _settle(slot, store, study, optuna, spec, result, outcome)
    trial = slot.record
    if trial.state == "COMPLETE":
        best = _best(result.trials, result.direction)
        mark = " (best so far)" if best is trial else ""
        notify(f"{trial.name}: completed, {spec.metric} = {trial.value:g}{mark}")
    elif trial.state == "PRUNED":
        notify(f"{trial.name}: pruned (recorded as interrupted, tagged {PRUNED_TAG})")
    else:
        notify(f"{trial.name}: {trial.status}" + (f": {trial.error}" if trial.error else ""))
    pruned, slot.trial, slot.record, slot.tail = slot.pruned, None, None, None
    # A worker ends after an interrupted run; one sent SIGTERM just as its run ended is retired too.
    if answer is None or outcome.status == "interrupted" or pruned:
        slot.worker.close()
        slot.worker.proc.wait()
        slot.worker.events.close()
        slots.remove(slot)


def _settle(slot: _Slot, store: Any, study: Any, optuna: Any, spec: Spec, result: Result, outcome: Any) -> None:
    """Tell the trial how its run ended."""
    from gitexp import query

    trial, record = slot.trial, slot.record
    assert record is not None
    State = optuna.trial.TrialState
    record.status = outcome.status if outcome is not None else "error"
    record.error = outcome.error if outcome is not None else ""
    value = None
    try:
        run = query.resolve(store, record.name)
    except GitexpError:
        run = None
    if run is not None and slot.tail is not None:  # the points logged since the last look (a short run: all of them)
        for step, point in slot.tail.recorded(query.read_log(store, run, fmt.STEPS_FILE)):
            trial.report(point, step)
    if record.status == "completed":
        value = _number(run.metrics.get(spec.metric)) if run is not None else None
        if value is None:
            record.error = f"it recorded no number for {spec.metric}"
    if value is not None:
        record.state, record.value = "COMPLETE", value
        study.tell(trial, value)
    elif slot.pruned and record.status == "interrupted":
        record.state = "PRUNED"
        try:
            query.set_tags(store, query.resolve(store, record.name), (PRUNED_TAG,), ())
        except GitexpError as exc:
            record.error = f"not tagged {PRUNED_TAG}: {exc.message}"
        study.tell(trial, state=State.PRUNED)
    else:
        record.state = "FAIL"
        study.tell(trial, state=State.FAIL)


def _stop_all(slots: list[_Slot], exc: BaseException, queue: Any) -> None:
    """Stop the runs in progress so that each is recorded: Ctrl-C as the queue does (the terminal's Ctrl-C
    reached the workers too); a SIGTERM to the search alone, or an error, reaches their recorders now."""
    workers = [s.worker for s in slots]
    if isinstance(exc, KeyboardInterrupt):
        queue._stop(workers)
        return
    for slot in slots:
        slot.worker.close()  # an idle worker ends by itself
        if slot.trial is not None and slot.worker.proc.poll() is None:
            slot.worker.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + queue.STOP_GRACE_SECONDS
    while any(w.proc.poll() is None for w in workers) and time.monotonic() < deadline:
        time.sleep(queue.POLL_SECONDS)
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.kill()


def _best(trials: list[Trial], direction: str) -> Trial | None:
    done = [t for t in trials if t.state == "COMPLETE" and t.value is not None]
    if not done:
        return None
    key: Callable[[Trial], float] = lambda t: t.value if t.value is not None else 0.0
    return max(done, key=key) if direction == "maximize" else min(done, key=key)


def exit_code(result: Result) -> int:
    """0 when at least one trial completed with a value; else 1."""
    return 0 if result.best is not None else 1

"""Optuna studies in gitexp: `study.optimize(objective, callbacks=[GitexpCallback()])` or `track(study)`.

Outside `gitexp run`, each finished trial is recorded as a run of its own: the trial's params, its
value as the metric `metric_name` (by default named after the study's direction, `minimize` or
`maximize`, so gitexp's "better" follows it; one name per objective for a multi-objective study), status `completed` (COMPLETE), `failed` (FAIL) or `interrupted` with the tag `pruned`
(PRUNED), and the sweep record {id, index = trial number, study, direction}: every trial of a study
shares the sweep id `sw-` + 8 hex digits derived from the study's name, so
`gitexp list --where "sweep = <id>"` and `--group-by` treat the study like a sweep.

Under `gitexp run` (the whole study is that one run) the trials cannot be runs of their own: each
trial's value is logged as the series `metric_name` at step = trial number, and the best trial's
params and value are kept as the run's summary metrics (`best.<metric>`, `best.<param>`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import optuna  # noqa: F401 - the framework this module is for: fail here, clearly, without it

from gitexp import tracking
from gitexp.integrations import numbers

_STATUS = {"COMPLETE": (False, False), "FAIL": (True, False), "PRUNED": (False, True)}  # (failed, interrupted)


def sweep_id(study: Any) -> str:
    """The sweep id of a study: stable for its name, so a callback and track() agree."""
    return "sw-" + hashlib.sha256(str(study.study_name).encode()).hexdigest()[:8]


class GitexpCallback:
    """`study.optimize(..., callbacks=[GitexpCallback()])`: record each trial as it finishes."""

    def __init__(self, metric_name: str | Sequence[str] | None = None, n_trials: int | None = None) -> None:
        self._metric_name = metric_name
        self._size = n_trials

    def __call__(self, study: Any, trial: Any) -> None:
        record_trial(study, trial, metric_names(study, self._metric_name), self._size)


def metric_names(study: Any, metric_name: str | Sequence[str] | None) -> list[str]:
    """The names of a study's objectives: as given, else named after each objective's direction (`minimize`,
    `maximize`; `minimize_0`, `maximize_1`... for several), so gitexp's "better" follows the study."""
    if metric_name is not None:
        return [metric_name] if isinstance(metric_name, str) else list(metric_name)
    directions = [d.name.lower() for d in study.directions]
    return directions if len(directions) == 1 else [f"{d}_{i}" for i, d in enumerate(directions)]


def track(study: Any, metric_name: str | Sequence[str] | None = None) -> None:
    """Record every finished trial of a study already optimized (trials still running are left out)."""
    names = metric_names(study, metric_name)
    finished = [t for t in study.trials if t.state.is_finished()]
    for trial in finished:
        record_trial(study, trial, names, len(study.trials))


def _values(trial: Any, names: list[str]) -> dict[str, float]:
    values = list(trial.values or ())
    keys = names if len(names) == len(values) else [f"{names[0]}_{i}" for i in range(len(values))] if len(values) > 1 else names[:1]
    return numbers(dict(zip(keys, values, strict=False)))


def record_trial(study: Any, trial: Any, names: list[str], size: int | None = None) -> None:
    """One finished trial: a run of its own, or (under `gitexp run`) a point of the run's series."""
    if tracking.process_rank():
        return
    values = _values(trial, names) if trial.state.name == "COMPLETE" else {}  # a pruned trial's value is its last report
    if os.environ.get(tracking.ENV_RUN_DIR):  # one run for the whole study: the trials are its steps
        if values:
            tracking.log(values, step=trial.number)
        try:
            best = study.best_trial
        except ValueError:  # no completed trial yet
            return
        tracking.summary({f"best.{k}": v for k, v in {**_values(best, names), **best.params}.items()})
        tracking.summary({"best.trial": best.number})
        return
    directions = [d.name.lower() for d in study.directions]
    sweep: dict[str, Any] = {
        "id": sweep_id(study), "index": trial.number, "study": str(study.study_name),
        "direction": directions[0] if len(directions) == 1 else directions,
        "overrides": [f"{k}={v}" for k, v in sorted(trial.params.items())],
    }
    if size is not None:
        sweep["size"] = size
    failed, interrupted = _STATUS.get(trial.state.name, (True, False))
    tags = ("pruned",) if trial.state.name == "PRUNED" else ()
    run = tracking.start(params=dict(trial.params), tags=tags, sweep=sweep)
    try:
        for step, value in sorted((trial.intermediate_values or {}).items()):
            tracking.log({f"{names[0]}/intermediate": value}, step=step)
        if values:
            tracking.summary(values)
    finally:
        run.end(failed=failed or interrupted, interrupted=interrupted)


__all__ = ["GitexpCallback", "record_trial", "sweep_id", "track"]

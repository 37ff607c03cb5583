"""A LightGBM callback writing into a gitexp run: `lgb.train(..., callbacks=[callback()])`.

At the first iteration the training params (`env.params`: what was given to lgb.train, with LightGBM's
aliases resolved) become the run's params. After each iteration, every evaluation result becomes a point of the series `<dataset>-<metric>`
(`training-l2`, `valid_0-l2`: LightGBM's names, as in `record_evaluation`) at step = the iteration
(0-based).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightgbm  # noqa: F401 - the framework this module is for: fail here, clearly, without it

from gitexp import tracking
from gitexp.integrations import RunScope


def callback(run_name: str | None = None) -> Callable[[Any], None]:
    """The callback; outside `gitexp run` it starts a run at the first iteration and ends it at the last."""
    scope = RunScope(name=run_name)

    def _callback(env: Any) -> None:
        if env.iteration == env.begin_iteration:
            scope.open()
            if env.params:
                tracking.log_params(dict(env.params))
        point = {f"{item[0]}-{item[1]}": item[2] for item in env.evaluation_result_list or ()}
        if point:
            tracking.log(point, step=env.iteration)
        if env.iteration >= env.end_iteration - 1:
            scope.close()

    _callback.order = 30  # type: ignore[attr-defined]  # after LightGBM's own (record_evaluation is 20)
    return _callback

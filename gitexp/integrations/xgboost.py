"""An XGBoost `TrainingCallback` writing into a gitexp run: `xgb.train(..., callbacks=[GitexpCallback()])`.

Before training, the booster's training parameters (from `Booster.save_config()`: the learner's
`booster` and `objective` and the booster's train params such as `eta`, `max_depth`, `subsample`, with
XGBoost's defaults filled in, numbers as numbers) become the run's params. After each boosting round, every evaluation metric becomes a point of the series `<data>-<metric>`
(`train-rmse`, `eval-logloss`: the names of `evals` and of the metrics) at step = the round (0-based,
as in `evals_result`).
"""

from __future__ import annotations

import json
import math
from typing import Any

from xgboost.callback import TrainingCallback

from gitexp import tracking
from gitexp.integrations import RunScope


def booster_params(model: Any) -> dict[str, Any]:
    """The training parameters of a Booster, from its JSON config ({} when it has none to give)."""
    try:
        config = json.loads(model.save_config())
        learner = config["learner"]
        found: dict[str, Any] = {k: v for k, v in learner["learner_train_param"].items() if k in ("booster", "objective")}
        for key, section in learner["gradient_booster"].items():
            if key.endswith("_train_param") and isinstance(section, dict):
                found.update(section)
    except (AttributeError, KeyError, TypeError, ValueError):
        return {}
    return {k: _number(v) for k, v in sorted(found.items()) if isinstance(v, str) and v != ""}


def _number(text: str) -> Any:
    """XGBoost's config holds every value as text, floats as float32 ('0.100000001'): give back 3 and 0.1."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    import numpy

    return float(numpy.format_float_positional(numpy.float32(value), unique=True, trim="-")) if math.isfinite(value) else text


class GitexpCallback(TrainingCallback):  # type: ignore[misc]
    """Log xgboost.train (or the sklearn API's callbacks=) into gitexp; starts a run outside `gitexp run`."""

    def __init__(self, run_name: str | None = None) -> None:
        super().__init__()
        self._scope = RunScope(name=run_name)

    def before_training(self, model: Any) -> Any:
        self._scope.open()
        params = booster_params(model)
        if params:
            tracking.log_params(params)
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[Any]]]) -> bool:
        point: dict[str, Any] = {}
        for data, metrics in evals_log.items():
            for metric, values in metrics.items():
                if values:
                    last = values[-1]
                    point[f"{data}-{metric}"] = last[0] if isinstance(last, tuple) else last  # xgb.cv: (mean, std)
        if point:
            tracking.log(point, step=epoch)
        return False  # never stop training

    def after_training(self, model: Any) -> Any:
        self._scope.close()
        return model
